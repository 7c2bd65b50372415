"""Does each posterior draw's compute-optimal N_opt grow with the budget? A check of the drift beyond the fitted D.

The plain law's N_opt(C) = G C^a grows with C in every draw. The extrapolating model (docs/extrapolation.md)
reads a run beyond the largest fitted D at an effective D e^((e^d_D - 1) u_D): for a draw with d_D > 0 the data
exponent is steeper beyond D_max, the IsoFLOP profile gets a second local optimum at larger D, and once it is
the lower one the optimum jumps there: N_opt falls as the budget grows. The allocation bound
(``extrapolation.ALLOCATION_BOUNDS``) keeps d ln N_opt / d ln C >= 0 where both D and compute lie beyond the
runs; the jump happens where the optimum's D first passes D_max, which can be inside the fitted compute.

Per group of every development source (all its runs), the product's default fit (``fit_nuts`` at its defaults,
seed 0) and its frontier draws (``Posterior.frontier_draws``) at budgets C_max 10^k, k from -1.5 to 2 in steps
of 0.25 (C_max the largest fitted 6ND). Per draw, the largest fall of N_opt between consecutive budgets; reported,
separately for pairs of budgets inside the fitted compute (both <= C_max) and beyond it: the share of draws with
a fall of more than 5% and of more than 20%, and whether the median N_opt falls anywhere. A measurement, no rule.

    python experiments/allocation_monotonicity_check.py [--sources chinchilla marin] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.table import Runs

SOURCES = {"chinchilla": load_chinchilla, "marin": load_marin, "porian": load_porian, "gadre": load_gadre}
STEPS = 10.0 ** np.arange(-1.5, 2.01, 0.25)  # budgets relative to the largest fitted compute
FALLS = (0.05, 0.20)


def check(runs: Runs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = fit_nuts(runs, seed=0)
    top = float(np.max(6 * runs.N * runs.D))
    budgets = top * STEPS
    draws = post.frontier_draws(list(budgets))
    log_n = np.log(np.asarray(draws["N_opt"], np.float64))  # (draws, budgets)
    steps = np.diff(log_n, axis=1)
    inside = budgets[1:] <= top * (1 + 1e-9)  # both budgets of the pair within the fitted compute
    out = {"model": post.model, "draws": int(log_n.shape[0]), "fitted_compute_max": top,
           "fitted_D_max": float(np.max(runs.D))}
    for where, pairs in (("inside", inside), ("beyond", ~inside)):
        worst = steps[:, pairs].min(axis=1)
        median_steps = np.diff(np.median(log_n, axis=0))[pairs]
        out[where] = {**{f"share_falling_over_{int(100 * f)}pct": float(np.mean(worst < np.log1p(-f))) for f in FALLS},
                      "median_falls": bool(np.any(median_steps < -1e-3)),
                      "median_largest_fall": float(-min(0.0, median_steps.min()))}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "allocation_monotonicity_check.json"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)",
           "fit": "fit_nuts defaults, seed 0, all runs of each group", "budgets_over_fitted_compute": STEPS.tolist(),
           "groups": {}}
    for source in args.sources:
        frame = SOURCES[source]().for_fit().frame
        for group in sorted(frame["group"].unique()):
            key = f"{source}/{group}"
            out["groups"][key] = r = check(Runs(frame[frame["group"] == group].reset_index(drop=True)))
            print(f"{key}: draws whose N_opt falls >5% / >20% inside the fitted compute "
                  f"{r['inside']['share_falling_over_5pct']:.1%} / {r['inside']['share_falling_over_20pct']:.1%}, beyond "
                  f"{r['beyond']['share_falling_over_5pct']:.1%} / {r['beyond']['share_falling_over_20pct']:.1%}; median "
                  f"falls inside {r['inside']['median_falls']}, beyond {r['beyond']['median_falls']}", flush=True)
    groups = out["groups"].values()
    out["summary"] = {where: {"groups_with_draws_falling_over_20pct_in_over_5pct_of_draws":
                              f"{sum(g[where]['share_falling_over_20pct'] > 0.05 for g in groups)} of {len(groups)}",
                              "groups_whose_median_falls": f"{sum(g[where]['median_falls'] for g in groups)} of {len(groups)}"}
                      for where in ("inside", "beyond")}
    out["seconds"] = time.perf_counter() - start
    out["load_avg_1min_at_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
