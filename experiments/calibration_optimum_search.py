"""Should the calibration's N_opt sensitivities use the frontier's current search? A candidate with its rule.

On IsoFLOP data each calibration fold adds rows for its held-out slices' optima, whose loadings U are
finite differences of the model's ln N_opt in the drift (``extrapolation.optimum_residuals``). Since the
twenty-first session the frontier evaluates the drift's kinks along 6ND = C (``constraint_kinks``), but
these finite differences kept the former search (``extrapolation.OPTIMUM_SEARCH = "parabola"``), so
that the calibration, every fit's draws and the backtest stayed as they were. The candidate: the same search
as the frontier (``refine="kinks"``), so the calibration models how the drift moves the optimum the
frontier then reports. Only data with a budget column is affected (Marin, Porian; Chinchilla and Gadre
have no slices).

THE RULE, written before the results: the candidate replaces the former search if, on the standard
split (``backtest`` defaults: the top 3 IsoFLOP budgets held out; ``default_fit(seed=0)``), on both
Marin and Porian (a) its 90% coverage of the held-out runs lies in 80-97%, (b) its mean 90% interval
score is at most 2% above the current one's, and (c) summed over both, the empirical N_opt at the top
held-out budget lies inside its 90% interval on at least as many sweeps as the current one's. Otherwise
the former search stays.

Outcome (run at 8a192de and again after the change, the same numbers; results/calibration_optimum_search.json):
adopted; ``OPTIMUM_SEARCH`` is "kinks".
The script sets ``extrapolation.OPTIMUM_SEARCH`` to each candidate in turn, so it reruns at any commit.

Results go to experiments/results/calibration_optimum_search.json (``--out``). Usage:
    .venv/bin/python experiments/calibration_optimum_search.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import bayes_scaling
from bayes_scaling.backtest import backtest, default_fit
from bayes_scaling.runs.bundled import load_marin, load_porian

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontier_accuracy import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"marin": load_marin, "porian": load_porian}
CANDIDATES = ("parabola", "kinks")  # the current search first


def scores(source: str) -> dict:
    result = backtest(SOURCES[source]().for_fit(), fit=default_fit(seed=0))
    runs, n_opt = result.runs, result.n_opt
    top = n_opt.loc[n_opt.groupby("group")["budget"].idxmax()]
    judged = top[top["inside"].notna()]
    return {"held_out": int(len(runs)), "coverage_90": float(runs["covered_90"].mean()),
            "interval_score_90": float(runs["interval_score_90"].mean()), "crps": float(runs["crps"].mean()),
            "n_opt_top_inside": int(judged["inside"].astype(bool).sum()), "n_opt_top_judged": int(len(judged))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "calibration_optimum_search.json"))
    args = parser.parse_args()
    bayes_scaling.configure()
    load_before, start = os.getloadavg(), time.perf_counter()
    from bayes_scaling import extrapolation

    default, results = extrapolation.OPTIMUM_SEARCH, {}
    for candidate in CANDIDATES:  # only the calibration's finite differences change; the frontier's own search stays
        extrapolation.OPTIMUM_SEARCH = candidate
        try:
            results[candidate] = {source: scores(source) for source in SOURCES}
        finally:
            extrapolation.OPTIMUM_SEARCH = default
        for source, r in results[candidate].items():
            print(f"{candidate:9s} {source:7s}: coverage {r['coverage_90']:.1%}, interval score {r['interval_score_90']:.4f}, "
                  f"CRPS {r['crps']:.4f}, N_opt inside at the top budget {r['n_opt_top_inside']} of {r['n_opt_top_judged']}",
                  flush=True)
    cur, new = results["parabola"], results["kinks"]
    checks = {
        "a_coverage_in_band": all(0.80 <= new[s]["coverage_90"] <= 0.97 for s in SOURCES),
        "b_interval_score_within_2pct": all(new[s]["interval_score_90"] <= 1.02 * cur[s]["interval_score_90"] for s in SOURCES),
        "c_n_opt_at_least": sum(new[s]["n_opt_top_inside"] for s in SOURCES) >= sum(cur[s]["n_opt_top_inside"] for s in SOURCES),
    }
    adopt = all(checks.values())
    print(f"rule: {checks} -> {'adopt the frontier search' if adopt else 'keep the former search'}")
    doc = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": " ".join(sys.argv), "split": "backtest defaults (top 3 IsoFLOP budgets held out)",
           "fit": "backtest.default_fit(seed=0)", "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
           "seconds": time.perf_counter() - start, "results": results, "rule_checks": checks, "adopt": adopt}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
