"""The budget a target loss needs (``decide --target-loss``): this tree's root search against a git
revision's, side by side on the same fit.

The fit is the CLI's default fit of the bundled Chinchilla data (240 runs, 4 chains x 1000 draws, the
extrapolating model), made once in-process. Both revisions' ``decisions`` modules answer the same
questions on it, interleaved, ``--repeats`` times after one warm-up each (the log-loss programs
compile on first use): ``lifetime_budget_for_loss`` for one target (2.0) and for three
(1.95, 2.05, 2.2), without inference (T = 0, what ``decide --target-loss`` asks) and with 1e12
inference tokens. Per question: median wall and CPU seconds of each, their ratio, how many times
each called ``lifetime_optimum`` and the largest |ln(C_ours / C_baseline)| and |ln(N_ours / N_baseline)|
over the draws that reach the target (and whether the same draws do). Then ``Posterior.budget_for_loss``
for two targets (2.0, 1.95) against the baseline's ``frontier.drifted_budget_for_loss`` (what it was
until the twenty-first session), with the draws each calls unreachable. Results go to
experiments/results/bench_decide.json (``--out``). Usage:
    .venv/bin/python experiments/bench_decide.py [--baseline 81431a1] [--repeats 3] [--out FILE] [--budget-for-loss-only]
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
from bayes_scaling import decisions as ours
from bayes_scaling import extrapolation
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [(0.0, (2.0,)), (0.0, (1.95, 2.05, 2.2)), (1e12, (2.0,)), (1e12, (1.95, 2.05, 2.2))]


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def baseline_module(ref: str, name: str = "decisions"):
    """``bayes_scaling/<name>.py`` as it was at ``ref``, imported beside this tree's package."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:bayes_scaling/{name}.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def answer(module, posterior, T: float, targets) -> tuple[dict, float, float, int]:
    """The module's answer, its wall and CPU seconds, and its calls of ``lifetime_optimum``."""
    calls, inner = [0], module.lifetime_optimum

    def counted(*args, **kwargs):
        calls[0] += 1
        return inner(*args, **kwargs)

    module.lifetime_optimum = counted
    try:
        surface = module.Surface.of(posterior)
        wall, cpu = time.perf_counter(), time.process_time()
        out = module.lifetime_budget_for_loss(surface, np.array([targets]), T)
        return out, time.perf_counter() - wall, time.process_time() - cpu, calls[0]
    finally:
        module.lifetime_optimum = inner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="81431a1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_decide.json"))
    parser.add_argument("--budget-for-loss-only", action="store_true",
                        help="only the Posterior.budget_for_loss comparison (into --out)")
    args = parser.parse_args()
    bayes_scaling.configure()
    base = baseline_module(args.baseline)
    load_before = os.getloadavg()
    print("fitting the bundled Chinchilla data (the CLI's default fit)...", flush=True)
    posterior = fit_nuts(load_chinchilla().for_fit(), seed=0, progress=False)
    results, answers = [], {}
    for T, targets in [] if args.budget_for_loss_only else QUESTIONS:
        for module in (ours, base):  # warm-up: the log-loss programs of each padded shape
            answer(module, posterior, T, targets)
        times, answers = {"ours": [], "baseline": []}, {}
        for _ in range(args.repeats):
            for name, module in (("ours", ours), ("baseline", base)):
                out, wall, cpu, calls = answer(module, posterior, T, targets)
                times[name].append((wall, cpu, calls))
                answers[name] = out
        mine, theirs = answers["ours"], answers["baseline"]
        C_o, C_b = mine["lifetime_flops"], theirs["lifetime_flops"]
        reach = np.isfinite(C_b)
        row = {
            "inference_tokens": T, "targets": list(targets),
            "same_draws_reach": bool(np.array_equal(np.isfinite(C_o), reach)),
            "max_abs_log_C_ratio": float(np.max(np.abs(np.log(C_o[reach] / C_b[reach])))) if reach.any() else 0.0,
            "max_abs_log_N_ratio": float(np.nanmax(np.abs(np.log(mine["N"][reach] / theirs["N"][reach]))))
            if reach.any() else 0.0,
            "median_C_ours": float(np.median(C_o[reach])), "median_C_baseline": float(np.median(C_b[reach])),
        }
        for name in ("ours", "baseline"):
            walls, cpus, calls = zip(*times[name])
            row[name] = {"wall_s": list(walls), "cpu_s": list(cpus), "wall_s_median": float(np.median(walls)),
                         "cpu_s_median": float(np.median(cpus)), "lifetime_optimum_calls": calls[0]}
        row["ratio_wall"] = row["ours"]["wall_s_median"] / row["baseline"]["wall_s_median"]
        row["ratio_cpu"] = row["ours"]["cpu_s_median"] / row["baseline"]["cpu_s_median"]
        results.append(row)
        print(f"T={T:g} targets={targets}: ours {row['ours']['wall_s_median']:.2f} s "
              f"({row['ours']['lifetime_optimum_calls']} calls), baseline {row['baseline']['wall_s_median']:.2f} s "
              f"({row['baseline']['lifetime_optimum_calls']} calls): {row['ratio_wall']:.2f}x wall, "
              f"{row['ratio_cpu']:.2f}x CPU; same draws reach {row['same_draws_reach']}, "
              f"max |ln C ratio| {row['max_abs_log_C_ratio']:.1e}, max |ln N ratio| {row['max_abs_log_N_ratio']:.1e}",
              flush=True)
    # Posterior.budget_for_loss: now training_budget_for_loss; at the baseline frontier.drifted_budget_for_loss,
    # a 45-step bisection on [1e6, 1e40] FLOPs that assumed L_opt(C) falls throughout
    old_frontier = baseline_module(args.baseline, "frontier")
    targets = (2.0, 1.95)
    theta = {k: v[:, None] for k, v in posterior.theta().items()}
    drift = extrapolation.drift_of(posterior)

    def baseline_budget():
        return old_frontier.drifted_budget_for_loss(posterior.law, theta, np.array([targets]), *drift)

    def ours_budget():
        return posterior.budget_for_loss(list(targets))

    ours_budget(), baseline_budget()  # warm-up
    timing = {"ours": [], "baseline": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", ours_budget), ("baseline", baseline_budget)):
            wall, cpu = time.perf_counter(), time.process_time()
            answers[name] = fn()
            timing[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    mine, theirs = answers["ours"], answers["baseline"]
    both = np.isfinite(mine) & np.isfinite(theirs)
    budget_row = {
        "targets": list(targets),
        "ours_wall_s_median": float(np.median([w for w, _ in timing["ours"]])),
        "baseline_wall_s_median": float(np.median([w for w, _ in timing["baseline"]])),
        "ours_cpu_s_median": float(np.median([c for _, c in timing["ours"]])),
        "baseline_cpu_s_median": float(np.median([c for _, c in timing["baseline"]])),
        "unreachable_draws_ours": np.isinf(mine).sum(axis=0).tolist(),
        "unreachable_draws_baseline": np.isinf(theirs).sum(axis=0).tolist(),
        "median_C_ours": np.median(mine, axis=0).tolist(), "median_C_baseline": np.median(theirs, axis=0).tolist(),
        "share_within_1e-3_in_ln_C": float(np.mean(np.abs(np.log(mine[both] / theirs[both])) < 1e-3)),
    }
    budget_row["ratio_wall"] = budget_row["ours_wall_s_median"] / budget_row["baseline_wall_s_median"]
    print(f"Posterior.budget_for_loss{targets}: ours {budget_row['ours_wall_s_median']:.2f} s, baseline "
          f"{budget_row['baseline_wall_s_median']:.2f} s ({budget_row['ratio_wall']:.2f}x); unreachable draws "
          f"{budget_row['unreachable_draws_ours']} against {budget_row['unreachable_draws_baseline']}; medians "
          f"{budget_row['median_C_ours']} against {budget_row['median_C_baseline']}", flush=True)
    doc = {"machine": f"{os.cpu_count()} cores, {cpu_model()}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": " ".join(sys.argv), "baseline": args.baseline, "repeats": args.repeats,
           "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
           "fit": "fit_nuts(load_chinchilla().for_fit(), seed=0): 4 chains x 1000 draws, extrapolating",
           "questions": results, "posterior_budget_for_loss": budget_row}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
