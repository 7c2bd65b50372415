"""Where does bench_wsd's WSD-vs-cosine gap come from? Schedule variants at the tuned peak, measured.

    nice -n 10 python experiments/wsd_gap.py [--tokens 4e5,1.6e6] [--seeds 0,1] [--long] [--max-minutes 40]

bench_wsd (and wsd_lr_sweep at each schedule's tuned peak, 1e-2) finds WSD branches (20% 1-sqrt
cool-down to lr/10) 0.088 nats below cosine runs (to lr/10) of the same (N, D) at N = 2e4, with the
two runs' plans equal but for the rate. This script trains, at N = 2e4 and peak 1e-2, straight runs
(a branch equals a straight WSD run bitwise, tests/training) of these schedules, same seeds (same
initialisation and batches), same warmup (10,240 tokens, 5 updates), same evaluation set:

    cosine            cosine to 0.1 peak (bench_wsd's cosine arm)
    wsd20-1sqrt       WSD, 20% cool-down, 1-sqrt, to 0.1 peak (bench_wsd's branches)
    wsd20-linear      WSD, 20% cool-down, linear
    wsd50-1sqrt       WSD, 50% cool-down, 1-sqrt
    wsd100-linear     WSD with a 100% cool-down, linear: a linear decay from the peak after the warmup,
                      the schedule closest to the cosine (same endpoints, same mean rate 0.55 peak)
    wsd100-1sqrt      WSD, 100% cool-down, 1-sqrt (mean rate 0.40 peak)
    constant          the trunk: constant peak after the warmup, no cool-down
    cosine-floor0     cosine to 0 (Hagele et al. 2024 find the floor matters)
    wsd20-1sqrt-floor0  WSD 20% 1-sqrt cool-down to 0
    cosine-peak1.6e-2 cosine at peak 1.6e-2: the same total learning-rate area (sum of lr) as
                      wsd20-1sqrt at 1e-2

and, with ``--long``, longer runs (Hagele et al.'s comparisons run thousands of updates), at most
``--long-max-tokens`` (default 6.4M: D = 25.6M is too long for this CPU in the time there was):

    D = 6.4M   (3,125 updates): cosine, wsd20-1sqrt, cosine-peak1.6e-2, constant, wsd100-linear
    D = 25.6M (12,500 updates): cosine, wsd20-1sqrt
    D = 1.6M at batch 8 (3,125 updates of 512 tokens), peak 5e-3: cosine-b8, wsd20-1sqrt-b8

For every variant it records, from the harness's own plan and schedule (``training.train``), the
mean rate over the run (lr area / S, in units of the peak), the share of updates at >= half the peak
and the updates from the last one at the peak to the end; and the final validation loss.

Rules, written before the results (the seed sd is the cosine arm's over seeds 0-2 at 1e-2, from
wsd_lr_sweep.json, mean over D: 0.026; "paired" = same seed, mean over the seeds):

1. Consistency of the two code paths: if wsd100-linear - cosine (paired) is within 2 sd at every D,
   the cosine and WSD schedules agree where the schedules nearly agree: no bug in either arm; the
   gap comes from where the schedules differ (the stable phase and the cool-down).
2. An unequal setting in the cosine arm: if cosine-floor0 or cosine-peak1.6e-2 is lower than cosine
   by more than 2 sd at every D, bench_wsd's cosine arm is under-tuned and bench_wsd adopts it (with
   the same floor for the WSD arm); otherwise bench_wsd keeps the same peak and floor for both.
3. The gap is a short-run effect if |wsd20-1sqrt - cosine| (paired) at the most updates measured
   (12,500, D = 25.6M; else 3,125, D = 6.4M) is within 2 sd, or less than half the gap at 781
   updates (D = 1.6M).

Runs go to experiments/results/wsd_gap.sqlite (runs stored "ok" are skipped: a cut run continues),
the summary to experiments/results/wsd_gap.json. Harness settings as bench_wsd (stdlib bytes,
context 64, batch 32, float32).
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
from bench_wsd import BASE_SPEC  # noqa: E402
from wsd_lr_sweep import train_all  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STORE = RESULTS / "wsd_gap.sqlite"
SUMMARY = RESULTS / "wsd_gap.json"
N = 2e4
PEAK = 1e-2
SEED_SD = 0.026  # wsd_lr_sweep.json: cosine at 1e-2, seeds 0-2, mean over D of the seed sd (rules above)


def _wsd(fraction: float, shape: str = "1-sqrt") -> dict:
    return {"schedule": "wsd", "cooldown_fraction": fraction, "cooldown_shape": shape}


VARIANTS = {
    "cosine": {},
    "wsd20-1sqrt": _wsd(0.2),
    "wsd20-linear": _wsd(0.2, "linear"),
    "wsd50-1sqrt": _wsd(0.5),
    "wsd100-linear": _wsd(1.0, "linear"),
    "wsd100-1sqrt": _wsd(1.0),
    "constant": _wsd(0.0),
    "cosine-floor0": {"lr_floor_ratio": 0.0},
    "wsd20-1sqrt-floor0": {**_wsd(0.2), "lr_floor_ratio": 0.0},
    "cosine-peak1.6e-2": {"learning_rate": 1.6e-2},
    "cosine-b8": {"batch_size": 8, "learning_rate": 5e-3},
    "wsd20-1sqrt-b8": {**_wsd(0.2), "batch_size": 8, "learning_rate": 5e-3},
}
SHORT_VARIANTS = tuple(VARIANTS)[:10]
LONG_VARIANTS = ("cosine", "wsd20-1sqrt")
LONG_RUNS = ([(v, 6.4e6) for v in ("cosine", "wsd20-1sqrt", "cosine-peak1.6e-2", "constant", "wsd100-linear")]
               + [(v, 2.56e7) for v in LONG_VARIANTS] + [(v, 1.6e6) for v in ("cosine-b8", "wsd20-1sqrt-b8")])


def spec(variant: str, d: float, seed: int) -> dict:
    return {**BASE_SPEC, "learning_rate": PEAK, **VARIANTS[variant], "params": int(N), "tokens": int(d), "seed": seed,
            "group": "wsd-gap", "run_id": f"{variant}-D{d:.1e}-s{seed}".replace("+0", "")}


def schedule_stats(variant: str, d: float) -> dict:
    """The harness's plan and schedule for the variant at D: updates, mean rate / peak (the lr
    area over S), share of updates at >= half the peak, updates after the last one at the peak."""
    from training.spec import RunSpec
    from training.train import make_plan, make_schedule

    s = spec(variant, d, 0)
    run_spec = RunSpec(**{k: v for k, v in s.items() if k in RunSpec.__dataclass_fields__})
    plan = make_plan(run_spec, 256)
    lr = np.array([float(make_schedule(run_spec, plan)(c)) for c in range(plan.steps)])
    at_peak = np.flatnonzero(lr >= plan.peak_lr * (1 - 1e-6))
    return {"steps": plan.steps, "warmup": plan.warmup, "peak": plan.peak_lr, "lr_last": float(lr[-1]),
            "lr_area": float(lr.sum()), "mean_lr_over_peak_1e-2": float(lr.mean() / PEAK),
            "share_at_half_peak_or_more": float(np.mean(lr >= 0.5 * plan.peak_lr)),
            "updates_after_last_peak": int(plan.steps - 1 - at_peak[-1]) if len(at_peak) else plan.steps}


def table(frame, variants, tokens, base: str = "cosine") -> dict:
    """Per D and variant: losses by seed, the paired (same seed) difference to ``base`` (the cosine
    run of the same batch size), schedule stats."""
    out = {}
    for d in tokens:
        cos = _losses(frame, base, d)
        cells = {}
        for v in variants:
            loss = _losses(frame, v, d)
            if not loss:
                continue
            same = [s for s in loss if s in cos]
            cell = {"loss_by_seed": loss, "mean_loss": statistics.mean(loss.values()), **schedule_stats(v, d)}
            if same:
                cell["minus_cosine_paired"] = statistics.mean(loss[s] - cos[s] for s in same)
                cell["paired_seeds"] = same
            cells[v] = cell
        out[f"{d:.1e}"] = cells
    return out


def _losses(frame, variant: str, d: float) -> dict[int, float]:
    prefix = f"{variant}-D{d:.1e}-".replace("+0", "")
    rows = frame[frame["run_id"].str.startswith(prefix) & frame["run_id"].str.slice(len(prefix)).str.fullmatch(r"s\d+")]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows["loss"])}


def long_table(frame) -> dict:
    """The longer runs (module docstring) that are in the store, as ``table`` gives them."""
    out = {}
    for d in sorted({d for _, d in LONG_RUNS}):
        names = [v for v, dd in LONG_RUNS if dd == d]
        base = "cosine-b8" if "cosine-b8" in names else "cosine"
        rows = table(frame, names, [d], base=base)[f"{d:.1e}"]
        if rows:
            out[f"{d:.1e}" + ("-b8" if base == "cosine-b8" else "")] = rows
    return out


def rules(cells: dict, long_cells: dict | None) -> dict:
    """The rules of the module docstring, applied to the measured table."""
    sd2 = 2 * SEED_SD

    def paired(v):
        return [c[v]["minus_cosine_paired"] for c in cells.values() if v in c and "minus_cosine_paired" in c[v]]

    lin = paired("wsd100-linear")
    out = {"two_sd": sd2, "consistency_wsd100_linear_minus_cosine": lin,
           "rule1_no_bug": bool(lin) and all(abs(x) <= sd2 for x in lin)}
    better = {v: paired(v) for v in ("cosine-floor0", "cosine-peak1.6e-2")}
    adopt = [v for v, xs in better.items() if xs and len(xs) == len(cells) and all(x < -sd2 for x in xs)]
    out.update(rule2_cosine_variants_minus_cosine=better, rule2_adopt=adopt)
    if long_cells:
        gaps = {d: c["wsd20-1sqrt"]["minus_cosine_paired"] for d, c in long_cells.items()
                if "wsd20-1sqrt" in c and "minus_cosine_paired" in c["wsd20-1sqrt"]}
        longest = next((d for d in (f"{2.56e7:.1e}", f"{6.4e6:.1e}") if d in gaps), None)
        short = cells.get(f"{1.6e6:.1e}", {}).get("wsd20-1sqrt", {}).get("minus_cosine_paired")
        if longest:
            g = gaps[longest]
            out.update(gaps_long=gaps, rule3_longest=longest, gap_at_781_updates=short,
                       rule3_short_run_effect=bool(abs(g) <= sd2 or (short is not None and abs(g) < abs(short) / 2)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", default="4e5,1.6e6")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--variants", default=",".join(SHORT_VARIANTS))
    p.add_argument("--long", action="store_true", help="also the longer runs (module docstring)")
    p.add_argument("--long-max-tokens", type=float, default=6.4e6)
    p.add_argument("--long-seeds", default="0,1")
    p.add_argument("--max-minutes", type=float, default=40.0)
    args = p.parse_args(argv)
    tokens = [float(x) for x in args.tokens.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {unknown}; known {list(VARIANTS)}")
    from bayes_scaling.runs.store import RunStore

    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    store = RunStore(STORE)
    done = set(store.to_frame(status="ok", trunks=True)["run_id"]) if len(store) else set()
    specs = [spec(v, d, s) for s in seeds for d in tokens for v in variants]
    finished = train_all(specs, store, done, t0, args.max_minutes, source="wsd_gap")
    if finished and args.long:
        long_specs = [spec(v, d, int(s)) for s in args.long_seeds.split(",") for v, d in LONG_RUNS if d <= args.long_max_tokens]
        finished = train_all(long_specs, store, done, t0, args.max_minutes, source="wsd_gap")
    frame = store.to_frame(status="ok", trunks=True)
    cells = table(frame, variants, tokens)
    long_cells = long_table(frame) or None
    summary = {"N": N, "peak": PEAK, "seed_sd_from_wsd_lr_sweep": SEED_SD, "cells": cells, "long": long_cells,
               "rules": rules(cells, long_cells), "complete": finished,
               "machine": {"cpu": "2-core AMD EPYC (shared, loaded)", "cpu_count": os.cpu_count(),
                           "load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0]},
               "settings": {"base_spec": BASE_SPEC, "tokens": tokens, "seeds": seeds, "variants": {v: VARIANTS[v] for v in variants}},
               "wall_minutes": (time.perf_counter() - t0) / 60,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    SUMMARY.write_text(json.dumps(summary, indent=1, default=float))
    for d, row in cells.items():
        for v, c in row.items():
            print(f"D={d} {v:20s} loss={c['mean_loss']:.3f} minus_cos={c.get('minus_cosine_paired', float('nan')):+.3f} "
                  f"mean_lr={c['mean_lr_over_peak_1e-2']:.2f} high={c['share_at_half_peak_or_more']:.2f}")
    print(json.dumps(summary["rules"], indent=1, default=float))
    with sqlite3.connect(STORE) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
