"""The backtest's N_opt check under this tree's frontier search and a git revision's, on the same fits.

``bench_extrapolation.py`` counts the IsoFLOP sweeps whose empirical N_opt at the top held-out budget
(Approach 2 on that slice, ``backtest.slice_optimum``) lies inside the default model's 90% N_opt interval
there (issue 15's target: at least 80% of the sweeps). That interval is read off the frontier beyond the
fitted runs, whose search changed in the twenty-first session (the drift's kinks as candidates:
docs/benchmarks.md, "The frontier's search beyond the runs"); the fits themselves did not. This script
makes each group's default fit once (the backtest's split and fit: ``split_by_compute`` with its
defaults, ``backtest.default_fit(seed=0)``) on the bundled Marin and Porian sweeps and reads the 90%
N_opt interval at every held-out slice with both searches. Results go to
experiments/results/frontier_backtest_optima.json (``--out``). Usage:
    .venv/bin/python experiments/frontier_backtest_optima.py [--baseline a499d29] [--sources marin porian]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling
from bayes_scaling import extrapolation
from bayes_scaling import frontier as ours
from bayes_scaling.backtest import MIN_SLICE_RUNS, default_fit, slice_optimum
from bayes_scaling.runs.bundled import load_marin, load_porian
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import budget_column_of, split_by_compute

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontier_accuracy import module_at  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"marin": load_marin, "porian": load_porian}
LEVEL = 0.9


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def interval(module, posterior, C: float) -> tuple[float, float, float]:
    draws = module.frontier_draws(posterior.law, posterior.theta(), [C], drift=extrapolation.drift_of(posterior))
    lo, med, hi = np.quantile(draws["N_opt"][:, 0], [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2])
    return float(lo), float(med), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="a499d29")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "frontier_backtest_optima.json"))
    args = parser.parse_args()
    bayes_scaling.configure()
    base = module_at(args.baseline, "frontier")
    fit = default_fit(seed=0)
    rows, start = [], time.perf_counter()
    for source in args.sources:
        runs = SOURCES[source]().for_fit()
        column = budget_column_of(runs, "auto")
        split = split_by_compute(runs, budget_column=column)
        train_frame, test_frame = split.train.frame, split.test.frame
        for name in sorted(test_frame["group"].unique()):
            train = Runs(train_frame[train_frame["group"] == name].reset_index(drop=True))
            test = Runs(test_frame[test_frame["group"] == name].reset_index(drop=True))
            posterior = fit(train)
            budgets = test.frame[column].to_numpy(np.float64)
            for b in np.unique(budgets):
                idx = np.flatnonzero(budgets == b)
                if len(idx) < MIN_SLICE_RUNS or len(np.unique(test.N[idx])) < 3:
                    continue
                emp = slice_optimum(test.N[idx], test.loss[idx], level=LEVEL, seed=0)
                C = float(np.exp(np.mean(np.log(test.C[idx]))))
                row = {"source": source, "group": str(name), "budget": float(b), "C_slice": C,
                       "empirical_n_opt": emp.n_opt, "opens_downward": bool(emp.opens_downward)}
                for label, module in (("ours", ours), ("baseline", base)):
                    lo, med, hi = interval(module, posterior, C)
                    row[label] = {"lo": lo, "median": med, "hi": hi,
                                  "inside": None if emp.opens_downward else bool(lo <= emp.n_opt <= hi)}
                rows.append(row)
            print(f"{source}/{name}: {len(train)} runs fitted, {time.perf_counter() - start:.0f} s", flush=True)
    frame = pd.DataFrame(rows)
    summary = {}
    for source in args.sources:
        sub = frame[frame["source"] == source]
        top = sub.loc[sub.groupby("group")["budget"].idxmax()]
        judged = top[~top["opens_downward"]]
        summary[source] = {
            "sweeps": int(len(top)), "judged": int(len(judged)),
            "top_inside_ours": int(sum(r["inside"] for r in judged["ours"])),
            "top_inside_baseline": int(sum(r["inside"] for r in judged["baseline"])),
            "all_slices_inside_ours": int(sum(bool(r["inside"]) for r in sub["ours"] if r["inside"] is not None)),
            "all_slices_inside_baseline": int(sum(bool(r["inside"]) for r in sub["baseline"] if r["inside"] is not None)),
            "all_slices_judged": int(sum(r["inside"] is not None for r in sub["ours"])),
        }
        print(f"{source}: N_opt at the top held-out budget inside the 90% interval on {summary[source]['top_inside_ours']} "
              f"of {summary[source]['judged']} sweeps (baseline search {summary[source]['top_inside_baseline']}); all held-out "
              f"slices {summary[source]['all_slices_inside_ours']} against {summary[source]['all_slices_inside_baseline']} "
              f"of {summary[source]['all_slices_judged']}", flush=True)
    doc = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": " ".join(sys.argv), "baseline": args.baseline, "level": LEVEL,
           "fit": "backtest.default_fit(seed=0) on each group's training runs (split_by_compute defaults)",
           "seconds": time.perf_counter() - start, "summary": summary, "slices": rows}
    Path(args.out).write_text(json.dumps(doc, indent=1, default=float))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
