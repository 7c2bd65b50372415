"""What a backtest costs and finds, on the bundled development data, and what it adds to a report.

For each bundled dataset (chinchilla; marin, porian and gadre per group): one default fit
(``fit_nuts`` at its defaults) of each group's runs, timed, then ``backtest`` of the same runs with
the same default fit (top 3 budgets held out where there is a budget column, else the top 30% of
compute), timed; its coverage at 50/80/90%, mean interval score at 90%, mean CRPS, and the held-out
IsoFLOP slices whose empirical N_opt (Approach 2) lies inside the model's 90% N_opt interval.
Each dataset is first backtested and fitted once untimed, so compilation is not counted.

Then the report of a default Chinchilla fit, written with and without its backtest section, and
``bayes-scaling demo`` end to end (which writes the report with the section).

Writes experiments/results/bench_backtest.json. Usage: .venv/bin/python experiments/bench_backtest.py
[--datasets chinchilla,marin,porian,gadre]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_backtest.json"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def dataset_row(name: str) -> dict:
    from bayes_scaling.backtest import backtest
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import DATASETS, Runs

    runs = DATASETS[name]().for_fit()
    groups = {g: Runs(runs.frame[runs.frame["group"] == g].reset_index(drop=True)) for g in runs.groups}
    backtest(runs)  # warm: compile every padded shape once (the refits' and, below, the full groups')
    for group in groups.values():
        fit_nuts(group)
    fit_seconds = 0.0
    for group in groups.values():
        fit_seconds += timed(lambda: fit_nuts(group))[1]
    result, bt_seconds = timed(lambda: backtest(runs))
    n_opt = result.n_opt
    decided = n_opt[n_opt["inside"].notna()] if not n_opt.empty else n_opt
    overall = result.summary.iloc[-1]
    row = {
        "dataset": name, "runs": len(runs), "groups": len(groups), "held_out": len(result.runs), "split": result.split,
        "model": result.model, "default_fit_seconds": fit_seconds, "backtest_seconds": bt_seconds,
        "backtest_over_fit": bt_seconds / fit_seconds,
        "coverage": {k: result.coverage(v) for k, v in (("50", 0.5), ("80", 0.8), ("90", 0.9))},
        "covered_90": int(result.runs["covered_90"].sum()),
        "mean_interval_score_90": float(result.runs["interval_score_90"].mean()),
        "mean_crps": float(result.runs["crps"].mean()),
        "median_rel_error": float(overall["median_rel_error"]),
        "median_abs_rel_error": float(overall["median_abs_rel_error"]),
        "mean_rel_width_90": float(result.runs["rel_width_90"].mean()),
        "n_opt_slices": len(n_opt), "n_opt_decided": len(decided),
        "n_opt_inside": int(decided["inside"].astype(bool).sum()) if len(decided) else 0,
        "n_opt_inside_top_budget": _inside_at_top(n_opt),
    }
    print(json.dumps(row), flush=True)
    return row


def _inside_at_top(n_opt) -> dict:
    if n_opt.empty:
        return {"decided": 0, "inside": 0}
    top = n_opt.loc[n_opt.groupby("group")["budget"].idxmax()]
    top = top[top["inside"].notna()]
    return {"decided": len(top), "inside": int(top["inside"].astype(bool).sum())}


def report_row() -> dict:
    from bayes_scaling.checking import add_posterior_predictive
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.report import write_report
    from bayes_scaling.runs import load_chinchilla

    post = fit_nuts(load_chinchilla().for_fit())
    add_posterior_predictive(post)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(post, Path(tmp) / "warm.html", backtest=True)  # warm the figures and the refit
        _, without = timed(lambda: write_report(post, Path(tmp) / "a.html", backtest=False))
        _, with_bt = timed(lambda: write_report(post, Path(tmp) / "b.html", backtest=True))
        _, demo = timed(lambda: subprocess.run([str(ROOT / ".venv" / "bin" / "bayes-scaling"), "demo", "--out",
                                                str(Path(tmp) / "demo")], check=True, capture_output=True))
    row = {"report_seconds_without_backtest": without, "report_seconds_with_backtest": with_bt,
           "demo_cli_seconds_with_backtest": demo}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="chinchilla,marin,porian,gadre")
    args = parser.parse_args()
    import bayes_scaling

    if hasattr(bayes_scaling, "configure"):
        bayes_scaling.configure()
    rows = [dataset_row(name) for name in args.datasets.split(",")]
    report = report_row()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), "
                   f"Python {sys.version.split()[0]}",
        "load_average_at_end": os.getloadavg(), "datasets": rows, "report": report,
    }, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
