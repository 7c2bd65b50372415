"""Sardana et al. (2023), Figure 1: a team that would train a 13B Chinchilla-optimal model and expects
2 trillion inference tokens; the cheapest model of the same loss over training + inference.

    nice -n 10 .venv/bin/python experiments/sardana_example.py

1. Published point laws (one-draw posteriors): Sardana et al.'s own constants (their released code's
   defaults: alpha = 0.336, beta = 0.283), the rounding alpha = 0.34, beta = 0.28, and Hoffmann et
   al.'s full-precision Approach 3 (``laws.HOFFMANN_2022``). The plan: N = 13B, D = its
   Chinchilla-optimal tokens under that law (closed form). ``decisions.replace_plan`` gives the
   lifetime optimum; scipy's bounded search on the closed form D(N) | loss checks it.
2. The same plan (Sardana's constants' D) under our Chinchilla posterior: ``fit_nuts`` on the
   bundled runs (``load_chinchilla().for_fit()``), default settings (the extrapolating model), and
   the plain law for contrast: median and 90% interval of each per-draw answer.
3. Timing of decision queries on the saved default fit, in-process after ``Posterior.load``.
4. The figure docs/figures/inference_sizing.png (``plots.inference_sizing``).

Writes experiments/results/sardana_example.json.
"""

from __future__ import annotations

import argparse

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

import bayes_scaling
from bayes_scaling import decisions as dc
from bayes_scaling import plots
from bayes_scaling.laws import HOFFMANN_2022, Chinchilla
from bayes_scaling.posterior import Posterior

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "sardana_example.json"
FIGURE = ROOT / "docs" / "figures" / "inference_sizing"
N_PLAN, T = 13e9, 2e12
LEVEL = 0.9
FIGURE_TARGET = 2.0
LAWS = {
    "sardana_code_constants": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.336, "beta": 0.283},
    "rounded_0.34_0.28": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "hoffmann_full_precision": dict(HOFFMANN_2022),
}
PAPER = {"N_opt": 7e9, "saved_fraction": 0.17, "saved_flops": 1.7e22}


def chinchilla_tokens(theta: dict, N: float) -> float:
    """D of the training-optimal run with N parameters: N = G (C/6)^a  =>  C/6 = (N/G)^(1/a)."""
    a, b, A, B = theta["alpha"], theta["beta"], theta["A"], theta["B"]
    G = (a * A / (b * B)) ** (1 / (a + b))
    return (N / G) ** ((a + b) / b) / N


def scipy_check(theta: dict, N0: float, D0: float, T: float) -> dict:
    """min over N of 6ND + 2NT with D solved from L(N, D) = L(N0, D0) in closed form."""
    E, A, B, a, b = (theta[k] for k in ("E", "A", "B", "alpha", "beta"))
    target = E + A * N0**-a + B * D0**-b

    def cost(log_n):
        n = np.exp(log_n)
        gap = target - E - A * n**-a
        return 6 * n * (B / gap) ** (1 / b) + 2 * n * T if gap > 0 else np.inf

    lo = np.log((A / (target - E)) ** (1 / a)) + 1e-9  # below it no D reaches the target
    res = minimize_scalar(cost, bounds=(lo, np.log(N0) + 1), method="bounded", options={"xatol": 1e-10})
    return {"N": float(np.exp(res.x)), "lifetime_flops": float(res.fun)}


def point_surface(theta: dict) -> dc.Surface:
    return dc.Surface(Chinchilla(), {k: np.array([float(v)]) for k, v in theta.items()}, None, "plain law")


def summary(draws: dict) -> dict:
    return {k: dc._json(dc.interval(v, LEVEL)) for k, v in draws.items()}


def timed(fn, repeat: int = 1):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, times


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()  # --help: this text, not a run
    bayes_scaling.configure()
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import load_chinchilla

    results = {"date": time.strftime("%Y-%m-%d"), "machine": "2-core AMD EPYC CPU, shared with other jobs (loaded); "
               f"Python {platform.python_version()}", "plan": {"N": N_PLAN, "inference_tokens": T},
               "paper_figure_1": PAPER, "level": LEVEL, "published_laws": {}}
    for name, theta in LAWS.items():
        D0 = chinchilla_tokens(theta, N_PLAN)
        out = {k: float(v[0]) for k, v in dc.replace_plan(point_surface(theta), N_PLAN, D0, T).items()}
        results["published_laws"][name] = {"theta": theta, "plan_D": D0, "plan_tokens_per_param": D0 / N_PLAN,
                                           **out, "scipy_check": scipy_check(theta, N_PLAN, D0, T)}
        print(f"{name}: plan D = {D0:.3g} ({D0 / N_PLAN:.1f} tok/param); optimum N = {out['N']:.3g}, "
              f"D = {out['D']:.3g}; saves {out['saved_flops']:.3g} FLOPs ({out['saved_fraction']:.1%})")

    D_plan = chinchilla_tokens(LAWS["sardana_code_constants"], N_PLAN)
    results["posterior_plan_D"] = D_plan
    runs = load_chinchilla().for_fit()
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("extrapolating", "plain"):
            start = time.perf_counter()
            post = fit_nuts(runs, model=model)
            fit_s = time.perf_counter() - start
            draws = dc.replace_plan(dc.Surface.of(post), N_PLAN, D_plan, T)
            results[f"posterior_{model}"] = {
                "model": post.model, "draws": post.num_draws, "fit_s": fit_s, **summary(draws),
                "share_N_below_plan": float(np.mean(draws["N"] < N_PLAN)),
                "share_N_below_training_optimal": float(np.mean(draws["N"] < draws["chinchilla_N"])),
                "share_longer_than_training_optimal": float(np.mean(draws["tokens_per_param"]
                                                                   > draws["chinchilla_D"] / draws["chinchilla_N"])),
                "plan_decades_beyond_largest_run": float(np.log10(6 * N_PLAN * D_plan / runs.C.max())),
            }
            s = results[f"posterior_{model}"]
            print(f"posterior ({post.model}): optimum N = {s['N']['median']:.3g} [{s['N']['lo']:.3g}, "
                  f"{s['N']['hi']:.3g}]; saves {s['saved_fraction']['median']:.1%} [{s['saved_fraction']['lo']:.1%}, "
                  f"{s['saved_fraction']['hi']:.1%}]")
            if model == "extrapolating":
                post.save(Path(tmp) / "fit")
                # The training budget for each draw's own plan loss (which the plan itself reaches), as
                # Posterior.budget_for_loss computes it: count the draws it calls unreachable. Until the
                # twenty-first session Posterior.budget_for_loss was a bisection on [1e6, 1e40] that
                # assumed L_opt(C) falls throughout ("frontier_bisection_missed_draws" in older results).
                need = dc.training_budget_for_loss(dc.Surface.of(post), draws["plan_loss"][:, None])
                results[f"posterior_{model}"]["budget_for_loss_missed_draws"] = int((~np.isfinite(need)).sum())

        # 3. decision queries on the saved default fit, in this process
        start = time.perf_counter()
        post = Posterior.load(Path(tmp) / "fit")
        load_s = time.perf_counter() - start
        surface = dc.Surface.of(post)
        profile = lambda: dc.isoflop_profile(surface, 1e23, level=LEVEL, target_loss=2.0)  # noqa: E731
        _, first = timed(profile)
        answer, warm = timed(profile, repeat=5)
        _, frontier_t = timed(lambda: dc.inference_frontier(post, [1e22, 1e23, 1e24], T, LEVEL), repeat=2)
        _, target_t = timed(lambda: dc.budget_for_target(surface, [2.0], inference_tokens=T, level=LEVEL), repeat=2)
        results["timing"] = {
            "draws": surface.num_draws, "load_s": load_s, "profile_1e23_first_s": first[0],
            "profile_1e23_warm_median_s": float(np.median(warm)),
            "inference_frontier_3_budgets_s": frontier_t, "budget_for_target_inference_aware_s": target_t,
            "load_avg_1min": os.getloadavg()[0],
        }
        results["profile_1e23"] = {k: v for k, v in answer.to_json().items() if k != "profile"}
        print(f"timing: load {load_s:.2f} s, profile first {first[0]:.2f} s, warm {np.median(warm):.3f} s; "
              f"inference frontier {frontier_t[-1]:.2f} s; target budget {target_t[-1]:.2f} s")

        start = time.perf_counter()
        fig = plots.inference_sizing(post, FIGURE_TARGET)
        results["figure"] = {"path": str(FIGURE.relative_to(ROOT)) + ".png", "target_loss": FIGURE_TARGET,
                             "seconds": time.perf_counter() - start}
        plots.save(fig, FIGURE, ("png",))
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
