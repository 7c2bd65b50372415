"""Training throughput of the Flax harness: tokens/s and MFU for several model sizes.

    python experiments/bench_train.py            # CPU; writes experiments/results/bench_train_cpu.json

Each size is a harness model (``training.model``) with the harness's AdamW train step, timed on
random tokens after two compiling/warm-up steps; each (size, dtype) is measured ``--repeats`` times,
alternating dtypes, and the median is kept (the machine may be shared: its load average is recorded). MFU counts FLOPs per token as nanoGPT does,
6 N + 12 L d T, and divides by a peak: the datasheet bf16 peak where the device is known (GPUs), and on
a CPU, which has no datasheet number here, the measured throughput of a large float32 matmul on
the same machine (so CPU "MFU" reads as a fraction of what XLA's best kernel achieves there).
``measure`` is shared with experiments/bench_train_gpu.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from training.sizing import Shape, shape_for_params
from training.spec import RunSpec
from training.train import Plan, build, library_versions, make_steps, peak_flops

RESULTS = Path(__file__).resolve().parent / "results"


def measure(shape: Shape, *, batch_size: int, compute_dtype: str = "bfloat16", attention: str = "auto",
            steps: int = 10, warmup: int = 2, min_seconds: float = 0.0) -> dict:
    """Tokens/s of the harness's train step for ``shape`` (random tokens, AdamW, bf16 or fp32 compute).

    Times ``steps`` steps after ``warmup`` untimed ones, and keeps stepping until ``min_seconds`` passed.
    """
    spec = RunSpec(n_layers=shape.n_layers, d_model=shape.d_model, n_heads=shape.n_heads, tokens=1,
                   context=shape.context, batch_size=batch_size, compute_dtype=compute_dtype, attention=attention)
    plan = Plan(shape=shape, steps=10_000, warmup=100, peak_lr=1e-3, eval_steps=(), checkpoint_steps=())
    model, optimizer = build(spec, plan)
    graphdef, state = nnx.split((model, optimizer))
    del model, optimizer
    train_step, _ = make_steps(graphdef, 0.0)
    rng = np.random.default_rng(0)
    batches = [jnp.asarray(rng.integers(0, shape.vocab_size, (batch_size, shape.context + 1), dtype=np.int32))
               for _ in range(2)]
    for i in range(warmup):
        state, loss = train_step(state, batches[i % 2])
    float(loss)
    t0 = time.perf_counter()
    done = 0
    while done < steps or time.perf_counter() - t0 < min_seconds:
        state, loss = train_step(state, batches[done % 2])
        done += 1
        if done >= steps:
            float(loss)  # waits for the device, so the clock sees finished work
    steps = done
    seconds = time.perf_counter() - t0
    tokens_per_s = steps * batch_size * shape.context / seconds
    return {
        "n_layers": shape.n_layers, "d_model": shape.d_model, "n_heads": shape.n_heads, "context": shape.context,
        "vocab_size": shape.vocab_size, "batch_size": batch_size, "compute_dtype": compute_dtype,
        "n_params_total": shape.n_params_total, "n_params_non_embedding": shape.n_params_non_embedding,
        "flops_per_token_nanogpt": shape.flops_per_token_nanogpt(), "steps_timed": steps,
        "seconds": seconds, "tokens_per_s": tokens_per_s, "model_flops_per_s": tokens_per_s * shape.flops_per_token_nanogpt(),
        "final_loss": float(loss),
    }


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n x n @ n x n matmul in ``dtype`` on the default device (best of ``repeats``)."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def machine() -> dict:
    device = jax.devices()[0]
    info = {"platform": device.platform, "device_kind": getattr(device, "device_kind", "?"), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "load_average_1min_at_start": os.getloadavg()[0]}
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        info["cpu_model"] = names[0] if names else "?"
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU training throughput of the harness")
    parser.add_argument("--sizes", default="1e5,1e6,1e7", help="target N (byte vocabulary)")
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps at least")
    parser.add_argument("--min-seconds", type=float, default=4.0, help="time each measurement at least this long")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per size and dtype (median reported)")
    parser.add_argument("--out", default=str(RESULTS / "bench_train_cpu.json"))
    args = parser.parse_args(argv)

    info = machine()
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    device_peak = peak_flops(jax.devices()[0])
    rows = []
    for target in (float(s) for s in args.sizes.split(",")):
        shape = shape_for_params(int(target), vocab_size=256, context=args.context)
        samples: dict[str, list[dict]] = {"bfloat16": [], "float32": []}
        for _ in range(args.repeats):  # alternate the dtypes so a change in machine load hits both
            for dtype in samples:
                samples[dtype].append(measure(shape, batch_size=args.batch_size, compute_dtype=dtype,
                                              steps=args.steps, min_seconds=args.min_seconds))
        for dtype, runs in samples.items():
            row = sorted(runs, key=lambda r: r["tokens_per_s"])[len(runs) // 2]  # the median measurement
            row = {**row, "target_params": target, "tokens_per_s_samples": [r["tokens_per_s"] for r in runs]}
            row["mfu_vs_measured_fp32_matmul"] = row["model_flops_per_s"] / peaks["float32"]
            row["mfu_vs_datasheet_bf16"] = row["model_flops_per_s"] / device_peak if device_peak else None
            rows.append(row)
            print(f"N={shape.n_params_total:>10,} ({shape.n_layers}x{shape.d_model}) {dtype:>8}: "
                  f"{row['tokens_per_s']:>10,.0f} tok/s (median of {len(runs)})  {row['model_flops_per_s'] / 1e9:6.1f} GFLOP/s  "
                  f"MFU vs fp32 matmul {row['mfu_vs_measured_fp32_matmul']:.1%}", flush=True)
    out = {"machine": info, "measured_matmul_flops_per_s": peaks, "datasheet_bf16_peak": device_peak,
           "versions": library_versions(), "load_average_1min_at_end": os.getloadavg()[0],
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"matmul peak on this device: fp32 {peaks['float32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bfloat16'] / 1e9:.1f} GFLOP/s")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
