"""Embedding lookup by gather or by one-hot matmul: train-step tokens/s on real byte-level text.

    python experiments/bench_embedding.py            # the GPU run's shape: 7 x 512, context 512, batch 64
    python experiments/bench_embedding.py --tiny     # 2 x 64, context 64, batch 8 (a CPU smoke test)

Why: on an H200 the runner trained a 22M byte-vocabulary model at 206k tokens/s while the bare
benchmark step ran a 45M model with a 50304-token vocabulary at 981k. A gather's gradient is a
scatter-add; with 256 token ids, tens of thousands of adds per step land on a few hundred rows.
This times the harness's train step (``training.train.make_steps``) for each lookup on batches of
the default corpus (skewed byte frequencies) and on uniform random tokens, batches already on the
device, then the whole runner (``training.train.run``, lookup "auto") on the same shape.
Writes experiments/results/bench_embedding[_tiny].json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from training import data as data_lib
from training import optim
from training.model import Transformer
from training.sizing import Shape
from training.spec import RunSpec
from training.train import attention_implementation, make_steps, run

RESULTS = Path(__file__).resolve().parent / "results"


def step_rate(spec: RunSpec, shape: Shape, lookup: str, batches: list[jax.Array], *, steps: int, min_seconds: float) -> float:
    """Tokens/s of the harness's AdamW train step with ``lookup``, after two untimed steps."""
    model = Transformer(shape, attention=attention_implementation(spec, shape), embed_lookup=lookup, rngs=nnx.Rngs(0))
    tx = optim.make_optimizer(lambda count: 1e-3, weight_decay=0.1, beta1=0.9, beta2=0.95, grad_clip=1.0)
    graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))
    train_step, _ = make_steps(graphdef, 0.0)
    for i in range(2):
        state, loss = train_step(state, batches[i % len(batches)])
    float(loss)
    t0, done = time.perf_counter(), 0
    while done < steps or time.perf_counter() - t0 < min_seconds:
        state, loss = train_step(state, batches[done % len(batches)])
        done += 1
        if done >= steps:
            float(loss)
    return done * batches[0].shape[0] * (batches[0].shape[1] - 1) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--min-seconds", type=float, default=None, help="time each step variant at least this long (default 3)")
    p.add_argument("--no-runner", action="store_true", help="skip the whole-runner row")
    args = p.parse_args(argv)
    layers, width, heads, context, batch = (2, 64, 4, 64, 8) if args.tiny else (7, 512, 8, 512, 64)
    steps, min_seconds = (3, 0.0) if args.tiny else (20, 3.0)
    min_seconds = args.min_seconds if args.min_seconds is not None else min_seconds
    spec = RunSpec(n_layers=layers, d_model=width, n_heads=heads, context=context, batch_size=batch,
                   tokens=(40 if args.tiny else 150) * batch * context, progress=False)
    corpus = data_lib.load_corpus(spec)
    shape = Shape(layers, width, heads, corpus.vocab_size, context)
    corpus_batches = [jnp.asarray(data_lib.train_batch(corpus.train, seed=0, step=k, batch_size=batch, context=context))
                      for k in range(8)]
    rng = np.random.default_rng(0)
    uniform_batches = [jnp.asarray(rng.integers(0, corpus.vocab_size, (batch, context + 1), dtype=np.int32)) for _ in range(8)]
    device = jax.devices()[0]
    rows = []
    for lookup in ("gather", "one_hot"):
        for tokens, batches in (("corpus", corpus_batches), ("uniform", uniform_batches)):
            rate = step_rate(spec, shape, lookup, batches, steps=steps, min_seconds=min_seconds)
            rows.append({"what": "train step", "lookup": lookup, "tokens": tokens, "tokens_per_s": rate})
            print(json.dumps(rows[-1]), flush=True)
    if not args.no_runner:
        result = run(spec)
        rows.append({"what": "runner (auto lookup)", "lookup": "one_hot" if corpus.vocab_size <= 4096 else "gather",
                     "tokens": "corpus", "tokens_per_s": result.tokens_per_s, "status": result.status, "loss": result.loss,
                     "steps": result.steps, "wall_time": result.wall_time})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out or RESULTS / ("bench_embedding_tiny.json" if args.tiny else "bench_embedding.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "device": f"{device.platform}:{getattr(device, 'device_kind', '?')}", "jax": jax.__version__,
                               "shape": {"n_layers": layers, "d_model": width, "n_heads": heads, "context": context,
                                         "batch_size": batch, "vocab_size": corpus.vocab_size}, "rows": rows}, indent=1))
    print(f"\n| measured | lookup | tokens | tokens/s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['lookup']} | {r['tokens']} | {r['tokens_per_s']:,.0f} |")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
