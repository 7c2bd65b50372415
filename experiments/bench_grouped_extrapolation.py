"""Grouped (hierarchical) fits beyond the data: does each group's law plus its drift predict the
held-out top-compute runs better than the group's plain law?

``bayes-scaling fit --group-by`` fits the hierarchical model (``fit_hierarchical``), whose groups'
Posteriors are the plain law. ``fitting.nuts.add_drift`` calibrates each group's drift on
leave-future-out Laplace refits of that group's own runs, as ``fit_nuts`` does for a pooled fit, and
attaches it to the group's hierarchical draws. Data: the bundled sources with groups of their own,
Marin (three datasets, IsoFLOP budgets) and Gadre (three datasets, no budget column); Porian's 15
sweeps make a hierarchical fit too slow for this machine. Split (``splits.split_by_compute``): each
group's top three budgets held out (Marin) or top 30% of compute (Gadre); one hierarchical fit of all
groups' training runs at defaults, seed 0; every held-out run predicted with noise (Marin: at its
budget's offset, a budget no fit has seen, so a fresh offset per draw). Scores at 90%: coverage,
mean interval score, mean CRPS; for Marin, whether the empirical N_opt (Approach 2) at the top
held-out budget lies in the group's 90% N_opt interval.

THE RULE (written before the results): grouped fits answer with the drift by default (the CLI's
``fit --group-by`` adds it to every group unless ``--model plain``) if, on each source, its 90%
coverage lies in 80-97% or is closer to 90% than the plain hierarchical fit's; its mean interval
score is lower than the plain's on at least one source; and its N_opt intervals hold at least as many
of Marin's top held-out optima as the plain's. Otherwise it stays an option (``add_drift``).

Run: .venv/bin/python experiments/bench_grouped_extrapolation.py [--out FILE]
Writes experiments/results/bench_grouped_extrapolation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import bayes_scaling
from bayes_scaling import scoring
from bayes_scaling.backtest import slice_optimum
from bayes_scaling.fitting.nuts import add_drift
from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.runs.bundled import load_gadre, load_marin
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import budget_column_of, split_by_compute

LEVEL = 0.9
SOURCES = {"marin": load_marin, "gadre": load_gadre}
OUT = Path(__file__).parent / "results" / "bench_grouped_extrapolation.json"


def group_scores(post, test: Runs, column: str | None) -> dict:
    """90% coverage, interval score and CRPS of ``post``'s predictive draws at ``test``, and, with a
    budget column, the N_opt check at the top held-out budget."""
    at = None if column is None else test.frame[column].to_numpy(np.float64)
    draws = post.predict(test.N, test.D, noise=True, seed=1, **({} if at is None else {"offset_at": at}))
    lo, hi = scoring.central_interval(draws, LEVEL)
    y = test.loss
    out = {"n": len(y), "covered": int(scoring.covered(y, lo, hi).sum()),
           "interval_score_sum": float(scoring.interval_score(y, lo, hi, LEVEL).sum()),
           "crps_sum": float(scoring.crps_from_draws(draws, y).sum())}
    if column is not None:
        top = test.frame[column].max()
        idx = np.flatnonzero(test.frame[column].to_numpy() == top)
        emp = slice_optimum(test.N[idx], test.loss[idx], level=LEVEL)
        if not emp.opens_downward and emp.vertex_in_slice:
            row = post.frontier([top], level=LEVEL).iloc[0]
            out["n_opt"] = {"budget": float(top), "empirical": float(emp.n_opt), "median": float(row.N_opt_median),
                            "lo": float(row.N_opt_lo), "hi": float(row.N_opt_hi),
                            "inside": bool(row.N_opt_lo <= emp.n_opt <= row.N_opt_hi)}
    return out


def totals(groups: dict) -> dict:
    n = sum(g["n"] for g in groups.values())
    judged = [g["n_opt"] for g in groups.values() if "n_opt" in g]
    return {"n": n, "coverage": sum(g["covered"] for g in groups.values()) / n,
            "interval_score": sum(g["interval_score_sum"] for g in groups.values()) / n,
            "crps": sum(g["crps_sum"] for g in groups.values()) / n,
            "n_opt_inside": sum(j["inside"] for j in judged), "n_opt_judged": len(judged)}


def rule(results: dict) -> dict:
    def closer_or_in_band(s):
        d, p = results[s]["drift"]["coverage"], results[s]["plain"]["coverage"]
        return 0.8 <= d <= 0.97 or abs(d - 0.9) < abs(p - 0.9)

    a = all(closer_or_in_band(s) for s in results)
    b = any(results[s]["drift"]["interval_score"] < results[s]["plain"]["interval_score"] for s in results)
    c = sum(results[s]["drift"]["n_opt_inside"] for s in results) >= sum(results[s]["plain"]["n_opt_inside"] for s in results)
    return {"coverage_in_band_or_closer_on_each_source": a, "interval_score_lower_on_one_source": b,
            "n_opt_at_least_plain": c, "adopted": bool(a and b and c)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    args = parser.parse_args()
    bayes_scaling.configure()
    results, seconds = {}, {}
    for source in args.sources:
        runs = SOURCES[source]().for_fit()
        column = budget_column_of(runs, "auto")
        split = split_by_compute(runs)
        start = time.perf_counter()
        fit = fit_hierarchical(split.train, group_by="group")
        seconds[source] = {"hierarchical_fit_s": time.perf_counter() - start}
        per = {"plain": {}, "drift": {}}
        start = time.perf_counter()
        for name, post in fit.groups.items():
            test = Runs(split.test.frame[split.test.frame["group"] == name].reset_index(drop=True))
            per["plain"][name] = group_scores(post, test, column)
            drifted = add_drift(post)
            per["drift"][name] = group_scores(drifted, test, column)
            per["drift"][name]["mean_drift"] = drifted.meta["extrapolation"]["mean drift (d_N, d_D, g_C, d_a)"]
        seconds[source]["add_drift_and_score_s"] = time.perf_counter() - start
        results[source] = {model: totals(groups) for model, groups in per.items()}
        results[source]["per_group"] = per
        print(source, {m: {k: round(v, 3) for k, v in results[source][m].items()} for m in ("plain", "drift")}, flush=True)
    verdict = rule({s: {m: results[s][m] for m in ("plain", "drift")} for s in results})
    report = {"machine": f"{platform.machine()}, 2 cores (the project's CPU machine)", "level": LEVEL,
              "load_avg_1min_at_end": os.getloadavg()[0], "results": results, "seconds": seconds, "rule": verdict}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("rule:", json.dumps(verdict))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
