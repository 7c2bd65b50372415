"""GPU benchmark: the Flax harness against a PyTorch nanoGPT-style baseline, same card, same call.

    python experiments/bench_train_gpu.py            # on a GPU machine (one call, a few minutes)
    python experiments/bench_train_gpu.py --tiny     # a 2-layer smoke test that runs on a CPU

Order: ~124M and ~350M first (the sizes with targets), then ~45M, then Flax variants that each
change one thing (attention through XLA instead of cuDNN; XLA's Triton GEMMs off), each while the
``--deadline`` (seconds for the whole script) leaves room; every finished row is written at once,
so a call cut short still returns what it measured.

Sizes (context 1024, vocabulary 50304, bf16 compute, random tokens): ~45M (8 x 512, Chinchilla's
44M shape), ~124M (12 x 768, GPT-2 small), ~350M (24 x 1024, GPT-2 medium). Each measurement runs
in its own child process, so each framework starts with the whole card. MFU is counted as nanoGPT
counts it: (6 N + 12 L d T) tokens/s over the card's datasheet bf16 dense peak (989 TFLOP/s on an
H100 SXM or H200). Writes experiments/results/bench_train_gpu.json (bench_train_gpu_tiny.json with
--tiny) and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SIZES = {"124M": (12, 768, 12, 16), "350M": (24, 1024, 16, 16), "45M": (8, 512, 8, 32)}  # layers, width, heads, batch
TINY = {"tiny": (2, 64, 4, 4)}
# Flax variants, each one change from the default: (attention implementation, extra XLA_FLAGS).
VARIANTS = {"xla-attention": ("xla", ""), "no-triton-gemm": ("auto", "--xla_gpu_enable_triton_gemm=false")}


def _child(command: list[str], timeout: float, xla_flags: str = "") -> dict:
    env = dict(os.environ)
    if xla_flags:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla_flags}".strip()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-1500:]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["process_seconds"] = time.perf_counter() - t0  # start-up, compilation and timing together
    return row


def jax_worker(args) -> int:
    """Child: one harness measurement, printed as JSON."""
    import jax

    sys.path.insert(0, str(HERE))
    from bench_train import measure

    from training.sizing import Shape
    from training.train import attention_implementation, peak_flops
    from training.spec import RunSpec

    shape = Shape(args.layers, args.width, args.heads, args.vocab, args.context)
    row = measure(shape, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, attention=args.attention,
                  min_seconds=args.min_seconds)
    spec = RunSpec(n_layers=args.layers, d_model=args.width, n_heads=args.heads, tokens=1, attention=args.attention)
    device = jax.devices()[0]
    row.update(framework="jax", jax=jax.__version__, device=getattr(device, "device_kind", device.platform),
               attention=attention_implementation(spec, shape), peak=peak_flops(device),
               xla_flags=os.environ.get("XLA_FLAGS", ""))
    print(json.dumps(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="2 layers, width 64, context 64, vocabulary 256 (CPU smoke test)")
    parser.add_argument("--sizes", default=None, help="comma-separated subset of 45M,124M,350M")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=None, help="time at least this long per measurement")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per child process")
    parser.add_argument("--deadline", type=float, default=480, help="seconds for the whole script; later rows are skipped")
    parser.add_argument("--no-variants", action="store_true", help="skip the Flax variants")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", choices=["jax"], help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--heads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--context", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=int, default=50304, help=argparse.SUPPRESS)
    parser.add_argument("--attention", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return jax_worker(args)

    t_start = time.perf_counter()
    sizes = TINY if args.tiny else {k: SIZES[k] for k in (args.sizes.split(",") if args.sizes else SIZES)}
    context, vocab = (64, 256) if args.tiny else (1024, 50304)
    steps = args.steps or (3 if args.tiny else 20)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.tiny else 3.0)
    has_torch = importlib.util.find_spec("torch") is not None
    out = Path(args.out or RESULTS / ("bench_train_gpu_tiny.json" if args.tiny else "bench_train_gpu.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def left() -> float:
        return args.deadline - (time.perf_counter() - t_start)

    def save() -> None:
        out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tiny": args.tiny,
                                   "deadline_s": args.deadline, "rows": rows}, indent=1))

    def common(layers, width, heads, batch) -> list[str]:
        return ["--layers", str(layers), "--width", str(width), "--heads", str(heads), "--batch-size", str(batch),
                "--context", str(context), "--vocab", str(vocab), "--steps", str(steps), "--warmup", str(args.warmup),
                "--min-seconds", str(min_seconds)]

    def flax(shape_args, attention="auto", xla_flags="") -> dict:
        command = [sys.executable, __file__, "--worker", "jax", *shape_args, "--attention", attention]
        return _child(command, min(args.timeout, max(left(), 1.0)), xla_flags)

    for name, (layers, width, heads, batch) in sizes.items():
        if left() < 60 and not args.tiny:
            rows.append({"size": name, "skipped": f"{args.deadline:.0f} s deadline"})
            continue
        shape_args = common(layers, width, heads, batch)
        flax_row = flax(shape_args)
        torch_row = {"skipped": "torch is not installed"}
        if has_torch:
            extra = ["--no-compile", "--device", "cpu"] if args.tiny else []
            torch_row = _child([sys.executable, str(HERE / "nanogpt_torch.py"), *shape_args, *extra],
                               min(args.timeout, max(left(), 1.0)))
        row = {"size": name, "variant": "default", "flax": flax_row, "torch": torch_row}
        if "tokens_per_s" in flax_row and "tokens_per_s" in torch_row:
            row["ratio_flax_over_torch"] = flax_row["tokens_per_s"] / torch_row["tokens_per_s"]
        peak = flax_row.get("peak")
        if peak:
            row["mfu_flax"] = flax_row["model_flops_per_s"] / peak
            if "tokens_per_s" in torch_row:
                row["mfu_torch"] = torch_row["tokens_per_s"] * flax_row["flops_per_token_nanogpt"] / peak
        rows.append(row)
        save()
        print(json.dumps(row), flush=True)

    # Variants: one change each from the default Flax step, on the sizes with targets, while time is left.
    for variant, (attention, xla_flags) in ({} if args.no_variants else VARIANTS).items():
        for name in [k for k in ("350M", "124M", "tiny") if k in sizes]:
            if left() < 75 and not args.tiny:
                continue
            layers, width, heads, batch = sizes[name]
            flax_row = flax(common(layers, width, heads, batch), attention, xla_flags)
            row = {"size": name, "variant": variant, "flax": flax_row}
            default = next((r for r in rows if r.get("size") == name and r.get("variant") == "default"), None)
            if default and "tokens_per_s" in flax_row and "tokens_per_s" in default["flax"]:
                row["ratio_over_default_flax"] = flax_row["tokens_per_s"] / default["flax"]["tokens_per_s"]
                if "tokens_per_s" in default.get("torch", {}):
                    row["ratio_flax_over_torch"] = flax_row["tokens_per_s"] / default["torch"]["tokens_per_s"]
            if flax_row.get("peak"):
                row["mfu_flax"] = flax_row["model_flops_per_s"] / flax_row["peak"]
            rows.append(row)
            save()
            print(json.dumps(row), flush=True)
    save()
    print("\n| size | variant | card | Flax tok/s | PyTorch tok/s | ratio | MFU Flax | MFU PyTorch |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['size']} | skipped: {r['skipped']} |")
            continue
        f, t = r["flax"], r.get("torch", {})
        fmt = lambda x, spec: format(x, spec) if isinstance(x, (int, float)) else "n/a"  # noqa: E731
        print(f"| {r['size']} | {r['variant']} | {f.get('device', 'n/a')} | {fmt(f.get('tokens_per_s'), ',.0f')} | {fmt(t.get('tokens_per_s'), ',.0f')} "
              f"| {fmt(r.get('ratio_flax_over_torch'), '.2f')} | {fmt(r.get('mfu_flax'), '.1%')} | {fmt(r.get('mfu_torch'), '.1%')} |")
    for r in rows:
        for framework in ("flax", "torch"):
            if "error" in r.get(framework, {}):
                print(f"{r['size']} {r.get('variant')} {framework} error: {r[framework]['error'][-600:]}")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
