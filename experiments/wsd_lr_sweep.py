"""Is the WSD-vs-cosine gap of bench_wsd a baseline bug or an untuned peak rate? Checks, then a sweep.

    nice -n 10 python experiments/wsd_lr_sweep.py [--peaks 3e-3,1e-2,3e-2] [--max-minutes 20]

1. Baseline checks (no training): for every D of bench_wsd at N = 2e4, the harness's own plans and
   schedules (``training.train.make_plan`` / ``make_schedule``) of the cosine run and of the WSD
   branch: optimizer updates, tokens (D = S b), warmup updates, peak, the rate on the last update
   (the floor), the mean rate over the run, and whether the validation batches are the same.
2. Sweep: at one (N, D) = (2e4, 4e5), each schedule (cosine to lr/10 at D; WSD with a 20% 1-sqrt
   cool-down to lr/10, trained straight: a branch equals this bitwise, tests/training) at each
   ``--peaks`` rate, seeds 0 and 1.
3. Agreement at the tuned rates: each schedule's best peak (lowest mean loss over the seeds), over
   bench_wsd's four D at N = 2e4: cosine at seeds 0, 1, 2 (the run-to-run sd), WSD at seeds 0, 1.

Runs go to experiments/results/wsd_lr_sweep.sqlite (runs stored "ok" are skipped: a cut run
continues), the summary to experiments/results/wsd_lr_sweep.json. Harness settings as bench_wsd
(stdlib bytes, context 64, batch 32, float32, warmup 10,240 tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_wsd import BASE_SPEC, COOLDOWN_FRACTION, COOLDOWN_SHAPE, TOKENS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STORE = RESULTS / "wsd_lr_sweep.sqlite"
SUMMARY = RESULTS / "wsd_lr_sweep.json"
N = 2e4
SWEEP_D = 4e5
WSD = {"schedule": "wsd", "cooldown_fraction": COOLDOWN_FRACTION, "cooldown_shape": COOLDOWN_SHAPE}


def spec(schedule: str, peak: float, d: float, seed: int) -> dict:
    extra = WSD if schedule == "wsd" else {}
    return {**BASE_SPEC, **extra, "params": int(N), "tokens": int(d), "seed": seed, "learning_rate": peak,
            "group": "wsd-lr-sweep", "run_id": f"{schedule}-lr{peak:g}-D{d:.1e}-s{seed}".replace("+0", "")}


def baseline_checks(peak: float = 0.0) -> list[dict]:
    """Plans and schedules of the cosine run and the WSD branch at each D (module docstring, 1)."""
    from training import data as data_lib
    from training.spec import RunSpec
    from training.train import make_plan, make_schedule

    rows = []
    for d in TOKENS:
        out = {"D_asked": d}
        for name, extra in (("cosine", {}), ("wsd", WSD)):
            s = {k: v for k, v in spec(name, peak, d, 0).items() if k not in ("progress",)}
            run_spec = RunSpec(**{k: v for k, v in s.items() if k in RunSpec.__dataclass_fields__})
            corpus = data_lib.load_corpus(run_spec)
            plan = make_plan(run_spec, corpus.vocab_size)
            sched = make_schedule(run_spec, plan)
            lr = np.array([float(sched(c)) for c in range(plan.steps)])
            val = data_lib.eval_batches(corpus.val, n_tokens=run_spec.eval_tokens, batch_size=run_spec.batch_size,
                                        context=run_spec.context)
            out[name] = {"steps": plan.steps, "tokens": plan.steps * run_spec.tokens_per_step, "warmup_updates": plan.warmup,
                         "cooldown_updates": plan.cooldown, "peak": plan.peak_lr, "lr_first": lr[0], "lr_last": lr[-1],
                         "lr_max": lr.max(), "lr_mean": lr.mean(), "val_digest": float(np.sum([np.sum(b) for b in val]))}
        c, w = out["cosine"], out["wsd"]
        out["same"] = {k: bool(c[k] == w[k]) for k in ("steps", "tokens", "warmup_updates", "peak", "val_digest")}
        for k in ("lr_first", "lr_last"):  # lr_last: both floors; equal up to float32 rounding
            out["same"][k] = bool(np.isclose(c[k], w[k], rtol=1e-6))
        out["wsd_over_cosine_mean_lr"] = w["lr_mean"] / c["lr_mean"]
        rows.append(out)
    return rows


def train_all(specs: list[dict], store, done: set, t0: float, max_minutes: float, source: str = "wsd_lr_sweep") -> bool:
    """Train the specs not yet stored (as ``source``); False when the time cap stopped it."""
    from bayes_scaling.executors.child import train_in_subprocess

    for s in specs:
        if s["run_id"] in done:
            continue
        if (time.perf_counter() - t0) / 60 > max_minutes:
            print("time cap reached; rerun to continue", flush=True)
            return False
        result = train_in_subprocess(s, quiet=True, nice=10)
        if result.get("N"):
            store.append(result, source=source)
            done.add(s["run_id"])
        print(f"{s['run_id']}: {result['status']} loss={result.get('loss')} wall={result.get('wall_time', 0):.1f}s "
              f"[{(time.perf_counter() - t0) / 60:.1f} min]", flush=True)
    return True


def first_eval_gaps(store, peaks) -> dict:
    """Per sweep peak and seed: WSD - cosine validation loss at the first evaluation (25% of D),
    where the two schedules' rates still differ little: a check that they are the same run so far."""
    out = {}
    for pk in peaks:
        for seed in (0, 1):
            ids = [spec(sch, pk, SWEEP_D, seed)["run_id"] for sch in ("cosine", "wsd")]
            try:
                c, w = (store.get(i)["curve"][0] for i in ids)
            except (KeyError, IndexError, TypeError):
                continue
            out[f"{pk:g}/s{seed}"] = {"tokens": c["tokens"], "lr_cosine": c["lr"], "lr_wsd": w["lr"],
                                      "wsd_minus_cosine": w["val_loss"] - c["val_loss"]}
    return out


def losses(frame, schedule: str, peak: float, d: float) -> dict[int, float]:
    rows = frame[frame["run_id"].str.startswith(f"{schedule}-lr{peak:g}-D{d:.1e}-".replace("+0", ""))]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows["loss"])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peaks", default="3e-3,1e-2,3e-2")
    p.add_argument("--max-minutes", type=float, default=20.0)
    args = p.parse_args(argv)
    peaks = [float(x) for x in args.peaks.split(",")]
    from bayes_scaling.runs.store import RunStore

    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    summary = {"baseline_checks_default_peak": baseline_checks()}
    store = RunStore(STORE)
    done = set(store.to_frame(status="ok")["run_id"]) if len(store) else set()
    sweep = [spec(sch, pk, SWEEP_D, seed) for seed in (0, 1) for pk in peaks for sch in ("cosine", "wsd")]
    finished = train_all(sweep, store, done, t0, args.max_minutes)
    frame = store.to_frame(status="ok")
    table = {sch: {f"{pk:g}": losses(frame, sch, pk, SWEEP_D) for pk in peaks} for sch in ("cosine", "wsd")}
    best = {sch: min(peaks, key=lambda pk: statistics.mean(table[sch][f"{pk:g}"].values()) if table[sch][f"{pk:g}"] else 9e9)
            for sch in table}
    summary["sweep"] = {"N": N, "D": SWEEP_D, "losses_by_peak": table, "best_peak": best,
                        "first_eval_wsd_minus_cosine": first_eval_gaps(store, peaks)}
    if finished:
        agree = [spec("cosine", best["cosine"], d, s) for s in (0, 1, 2) for d in TOKENS]
        agree += [spec("wsd", best["wsd"], d, s) for s in (0, 1) for d in TOKENS]
        finished = train_all(agree, store, done, t0, args.max_minutes)
        frame = store.to_frame(status="ok")
        cells = []
        for d in TOKENS:
            c, w = losses(frame, "cosine", best["cosine"], d), losses(frame, "wsd", best["wsd"], d)
            same = [s for s in w if s in c]
            if len(c) >= 2 and same:
                cells.append({"D": d, "cosine": c, "wsd": w, "cosine_seed_sd": statistics.stdev(c.values()),
                              "wsd_minus_cosine_same_seed": {s: w[s] - c[s] for s in same}})
        if cells:
            diffs = [x for r in cells for x in r["wsd_minus_cosine_same_seed"].values()]
            sd = statistics.mean(r["cosine_seed_sd"] for r in cells)
            summary["agreement_at_tuned_peaks"] = {
                "cells": cells, "mean_wsd_minus_cosine": statistics.mean(diffs),
                "mean_abs_wsd_minus_cosine": statistics.mean(abs(x) for x in diffs), "mean_cosine_seed_sd": sd,
                "target_within_two_sds": statistics.mean(abs(x) for x in diffs) <= 2 * sd}
    summary["complete"] = finished
    summary["machine"] = {"cpu": "2-core AMD EPYC (shared, loaded)", "cpu_count": os.cpu_count(),
                          "load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0]}
    summary["settings"] = {"base_spec": BASE_SPEC, "peaks": peaks, "cooldown": WSD}
    summary["wall_minutes"] = (time.perf_counter() - t0) / 60
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    SUMMARY.write_text(json.dumps(summary, indent=1, default=float))
    print(json.dumps({k: v for k, v in summary.items() if k != "baseline_checks_default_peak"}, indent=1, default=float))
    with sqlite3.connect(STORE) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
