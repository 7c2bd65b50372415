"""A real scaling sweep on this CPU: 5 sizes x 4 token budgets, trained by the harness, stored.

    python experiments/cpu_sweep.py [--max-minutes 28] [--store experiments/results/cpu_sweep.sqlite]

Each run is ``python -m training`` in a child process (niced), on the Python standard library's
source as byte-level text, context 64, batch 32. On this CPU the harness's bfloat16 train step is
slower than its float32 one at these sizes (experiments/results/bench_train_cpu.json, although a bare
bf16 matmul is faster here), so the sweep computes in float32; parameters and optimizer state are
float32 either way, and the recipe is otherwise the harness's default. Runs already in the store with status "ok"
are skipped, so an interrupted sweep continues where it stopped. At the end the store is exported to
``experiments/results/cpu_sweep.csv``.

``sweep_frame()`` returns the stored runs as a DataFrame with the canonical run columns, ready for
the Bayesian fit (``bayes_scaling.runs.load_runs(frame)`` and the fitting API).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
STORE = RESULTS / "cpu_sweep.sqlite"
CSV = RESULTS / "cpu_sweep.csv"
TIMING = RESULTS / "cpu_sweep_timing.json"
# Target N (total parameters, byte vocabulary of 256); the sizing rule builds 7.2k, 20.6k, 40.1k,
# 97.5k and 330k. The largest models stop at 3e5 so that the 20 runs fit 30 minutes on 2 cores
# (a first sweep up to 1e6 took 37.7 minutes of training) and still straddle the frontier:
# at the largest D the compute-optimal N is inside the grid.
SIZES = (1e4, 2e4, 5e4, 1e5, 3e5)
TOKENS = (2e5, 4e5, 8e5, 1.6e6)  # D
BASE_SPEC = {
    "corpus": "stdlib", "context": 64, "batch_size": 32, "compute_dtype": "float32",
    "eval_points": 4, "eval_tokens": 16384, "group": "cpu-sweep", "progress": False,
}


def run_id(n: float, d: float, seed: int) -> str:
    return f"cpu-N{n:.0e}-D{d:.1e}-s{seed}".replace("+0", "").replace("+", "")


def sweep_frame(store: str | Path = STORE):
    """The sweep's runs with status "ok" (pandas DataFrame, canonical columns first): the fit's input."""
    from bayes_scaling.runs.store import RunStore

    return RunStore(store).to_frame(status="ok")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=str(STORE))
    parser.add_argument("--csv", default=str(CSV))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=28.0, help="start no new run after this")
    args = parser.parse_args(argv)

    from bayes_scaling.executors.child import train_in_subprocess
    from bayes_scaling.runs.store import RunStore

    store = RunStore(args.store)
    done = set(store.to_frame(status="ok")["run_id"])
    t0 = time.perf_counter()
    # Cheapest first (by N * D): a sweep cut short by its time limit still spans every size.
    for n, d in sorted(((n, d) for n in SIZES for d in TOKENS), key=lambda nd: nd[0] * nd[1]):
        rid = run_id(n, d, args.seed)
        if rid in done:
            continue
        minutes = (time.perf_counter() - t0) / 60
        if minutes > args.max_minutes:
            print(f"stopping after {minutes:.1f} min; rerun to continue", flush=True)
            break
        spec = {**BASE_SPEC, "params": int(n), "tokens": int(d), "seed": args.seed, "run_id": rid}
        result = train_in_subprocess(spec, quiet=True, nice=10)
        store.append(result, source="cpu_sweep")
        print(f"{rid}: {result['status']} N={result['N']} D={result['D']} loss={result['loss']} "
              f"tok/s={result['tokens_per_s'] or 0:,.0f} wall={result['wall_time']:.1f}s "
              f"[{(time.perf_counter() - t0) / 60:.1f} min]", flush=True)
    timing = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "wall_minutes_this_invocation": (time.perf_counter() - t0) / 60,
              "training_minutes_all_runs": float(store.to_frame(status=None)["wall_time"].fillna(0).sum()) / 60,
              "load_average_1min_at_end": os.getloadavg()[0], "cpu_count": os.cpu_count()}
    TIMING.write_text(json.dumps(timing, indent=1))
    print(json.dumps(timing))
    rows = store.export(args.csv, status=None)
    with sqlite3.connect(args.store) as db:  # fold the WAL into the main file before committing it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"{rows} runs -> {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
