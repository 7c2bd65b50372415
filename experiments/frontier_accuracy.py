"""How exactly the drifted frontier finds each draw's optimum: this tree's search against a git
revision's, both against a dense search, side by side on one fit.

Beyond the fitted runs a draw's drifted loss along 6ND = C has kinks (at the largest fitted N and D,
where the drift starts), and its minimum often sits on one: a corner. The fit is the default fit of
the bundled Chinchilla data (``fit_nuts``, seed 0: 4 chains x 1000 draws, the extrapolating model),
made in-process. At each budget, for ``Posterior.frontier_draws`` (``frontier.drifted_optimum``) and
``decisions.lifetime_optimum`` (T = 0) of both revisions: the 5/50/95% quantiles of N_opt, the share
of draws whose N_opt is more than 1% from the dense search's, and the largest excess of their L_opt
over the dense search's (relative). The dense search: 6,001 points of ln N within 6 e-folds of the
draw's N_opt (step 0.002 e-folds). Also the wall time of ``frontier_draws`` at the eight budgets the
CLI prints, both revisions interleaved, median of ``--repeats`` after a warm-up. Results go to
experiments/results/frontier_accuracy.json (``--out``). Usage:
    .venv/bin/python experiments/frontier_accuracy.py [--baseline a499d29] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bayes_scaling
from bayes_scaling import decisions, extrapolation
from bayes_scaling import frontier as ours
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (1e22, 1e23, 5.76e23, 1e24, 1e25)
CLI_BUDGETS = (1e19, 1e20, 1e21, 1e22, 1e23, 5.76e23, 1e24, 1e25)


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def module_at(ref: str, name: str):
    """``bayes_scaling/<name>.py`` as it was at ``ref``, imported beside this tree's package."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:bayes_scaling/{name}.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}_at_{ref}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def dense_optimum(surface, C: float, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw: the best of 6,001 points of ln N within 6 e-folds of ``centre`` (ln N) along 6ND = C."""
    N_best, L_best = np.empty(len(centre)), np.empty(len(centre))
    for lo in range(0, len(centre), 500):
        rows = np.arange(lo, min(lo + 500, len(centre)))
        N = np.exp(centre[rows, None] + np.linspace(-6.0, 6.0, 6001))[:, None, :]
        L = np.exp(surface.take(rows).log_loss(N, C / (6.0 * N)))[:, 0, :]
        j = np.argmin(L, axis=1)
        N_best[rows], L_best[rows] = N[np.arange(len(rows)), 0, j], L[np.arange(len(rows)), j]
    return N_best, L_best


def frontier_of(module, posterior, budgets):
    theta = posterior.theta()
    return module.frontier_draws(posterior.law, theta, budgets, drift=extrapolation.drift_of(posterior))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="a499d29")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "frontier_accuracy.json"))
    args = parser.parse_args()
    bayes_scaling.configure()
    base_frontier, base_decisions = module_at(args.baseline, "frontier"), module_at(args.baseline, "decisions")
    load_before = os.getloadavg()
    print("fitting the bundled Chinchilla data (the default fit)...", flush=True)
    posterior = fit_nuts(load_chinchilla().for_fit(), seed=0, progress=False)
    surface = decisions.Surface.of(posterior)
    rows = []
    for C in BUDGETS:
        found = {
            "frontier (ours)": frontier_of(ours, posterior, [C]),
            "frontier (baseline)": frontier_of(base_frontier, posterior, [C]),
            "lifetime_optimum (ours)": decisions.lifetime_optimum(surface, np.array([[C]]), 0.0),
            "lifetime_optimum (baseline)": base_decisions.lifetime_optimum(base_decisions.Surface.of(posterior),
                                                                           np.array([[C]]), 0.0),
        }
        centre = np.log(found["frontier (ours)"]["N_opt"][:, 0])
        N_dense, L_dense = dense_optimum(surface, C, centre)
        row = {"budget": C, "dense": {"N_opt_quantiles_5_50_95": np.quantile(N_dense, [0.05, 0.5, 0.95]).tolist()}}
        for name, out in found.items():
            N = (out["N_opt"] if "N_opt" in out else out["N"])[:, 0]
            L = (out["L_opt"] if "L_opt" in out else out["L"])[:, 0]
            row[name] = {"N_opt_quantiles_5_50_95": np.quantile(N, [0.05, 0.5, 0.95]).tolist(),
                         "share_over_1pct_from_dense": float(np.mean(np.abs(np.log(N / N_dense)) > 0.01)),
                         "max_L_excess_over_dense": float(np.max(L / L_dense - 1.0)),
                         "share_at_largest_fitted_N": float(np.mean(np.isclose(N, posterior.runs.N.max(), rtol=1e-9)))}
        rows.append(row)
        print(f"C = {C:.3g}: dense N_opt {np.round(np.array(row['dense']['N_opt_quantiles_5_50_95']) / 1e9, 3)} B", flush=True)
        for name in found:
            r = row[name]
            print(f"   {name:28s} {np.round(np.array(r['N_opt_quantiles_5_50_95']) / 1e9, 3)} B; "
                  f">1% from dense {r['share_over_1pct_from_dense']:.1%}; L above dense <= {r['max_L_excess_over_dense']:.1e}; "
                  f"at the largest fitted N {r['share_at_largest_fitted_N']:.1%}", flush=True)
    frontier_of(ours, posterior, CLI_BUDGETS), frontier_of(base_frontier, posterior, CLI_BUDGETS)  # warm-up
    times = {"ours": [], "baseline": []}
    for _ in range(args.repeats):
        for name, module in (("ours", ours), ("baseline", base_frontier)):
            start = time.perf_counter()
            frontier_of(module, posterior, CLI_BUDGETS)
            times[name].append(time.perf_counter() - start)
    timing = {name: {"wall_s": t, "wall_s_median": float(np.median(t))} for name, t in times.items()}
    timing["ratio"] = timing["ours"]["wall_s_median"] / timing["baseline"]["wall_s_median"]
    print(f"frontier_draws at the CLI's 8 budgets: ours {timing['ours']['wall_s_median']:.3f} s, baseline "
          f"{timing['baseline']['wall_s_median']:.3f} s ({timing['ratio']:.2f}x)")
    doc = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": " ".join(sys.argv), "baseline": args.baseline,
           "fit": "fit_nuts(load_chinchilla().for_fit(), seed=0): 4 chains x 1000 draws, extrapolating",
           "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
           "budgets": rows, "frontier_draws_timing": timing}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
