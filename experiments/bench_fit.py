"""Fitting benchmark on the bundled Chinchilla data (240 runs), all in one run:

1. Approach 3 grid fit, 4,500 starts: JAX (``fit_approach3``) cold and warm vs SciPy L-BFGS-B
   (``scipy_approach3``, Epoch's settings); the objective agreement, raw and after a tight polish.
2. Epoch-style bootstrap, 4,000 resamples: JAX (``bootstrap_approach3``) cold and warm vs the SciPy
   loop (``scipy_bootstrap_approach3``: BFGS with the exact gradient per resample, Epoch's bootstrap),
   both from the same start; and a check that the single start finds the full 4,500-start grid's
   optimum on a sample of resamples.
3. NUTS, 4 chains x 1,000 draws (500 warm-up each): ours (``bayes_scaling.fitting.nuts.fit_nuts``),
   nutpie with its low-rank mass matrix, and PyMC's default NUTS, on the identical Student-t model.
   Minimum bulk ESS (ArviZ) over E, A, B, alpha, beta, sigma; ESS per second; divergences; mean
   leapfrog steps per draw.

    .venv/bin/python experiments/bench_fit.py [--skip-pymc] [--verify-resamples 10] [--nuts-only]

Writes experiments/results/bench_fit.json and the section "## Fitting (bench_fit.py)" of
docs/benchmarks.md. "Cold" is the first call in this process, compilation included; JAX's persistent
compilation cache is switched off here so that cold means compiling. "Warm" is the best of repeated
calls for the point fits, the median over ``WARM_SEEDS`` for ours and nutpie, one run for PyMC.
``--nuts-only`` reruns ours and nutpie and keeps the other numbers from the JSON. PyMC and nutpie
come from the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("BAYES_SCALING_NO_COMPILE_CACHE", "1")  # cold = with compilation

import numpy as np  # noqa: E402

from bayes_scaling.fitting import approach3 as a3  # noqa: E402
from bayes_scaling.runs import load_chinchilla  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_fit.json"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Fitting (bench_fit.py)"
PARAMS = ("E", "A", "B", "alpha", "beta", "sigma")
CHAINS, DRAWS, WARMUP = 4, 1000, 500
WARM_SEEDS = (1, 2, 3, 4, 5)  # warm runs per sampler (ours and nutpie); the table gives medians


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def timed_cpu(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process, 1-minute load average after)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu, os.getloadavg()[0]


def warm_time(fn, repeats=3):
    """Best wall time of ``repeats`` calls, with that call's CPU time."""
    return min((timed_cpu(fn)[1:3] for _ in range(repeats)), key=lambda wc: wc[0])


def rel(a, b):
    return float(abs(a - b) / abs(b))


# --- 1. the grid fit ------------------------------------------------------------------------------
def bench_grid(runs) -> dict:
    from scipy.optimize import minimize

    N, D, loss = runs.N, runs.D, runs.loss
    jax_fit, cold, _, load = timed_cpu(a3.fit_approach3, N, D, loss)
    warm, warm_cpu = warm_time(lambda: a3.fit_approach3(N, D, loss))
    print(f"JAX grid: cold {cold:.2f} s, warm {warm:.2f} s (CPU {warm_cpu:.2f} s), J* = {jax_fit.objective:.16g}",
          flush=True)
    ref, scipy_s, scipy_cpu, scipy_load = timed_cpu(a3.scipy_approach3, N, D, loss)
    print(f"SciPy grid: {scipy_s:.1f} s (CPU {scipy_cpu:.1f} s), J = {ref.objective:.16g}", flush=True)
    args = (np.log(N), np.log(D), np.log(loss), np.ones(len(loss)), 1e-3)
    tight = {"ftol": 0.0, "gtol": 1e-13, "maxiter": 10_000}  # run to convergence, not to Epoch's ftol
    polish = minimize(a3._numpy_value_and_grad, ref.params, args=args, jac=True, method="L-BFGS-B", options=tight)
    from_ours = minimize(a3._numpy_value_and_grad, jax_fit.params, args=args, jac=True, method="L-BFGS-B",
                         options=tight)
    return {
        "starts": len(jax_fit.objectives),
        "jax_cold_s": cold, "jax_warm_s": warm, "scipy_s": scipy_s, "speedup_warm": scipy_s / warm,
        "jax_warm_cpu_s": warm_cpu, "scipy_cpu_s": scipy_cpu, "speedup_warm_cpu": scipy_cpu / warm_cpu,
        "load_avg_1min_after_jax": load, "load_avg_1min_after_scipy": scipy_load,
        "jax_objective": jax_fit.objective, "scipy_objective": ref.objective,
        "objective_rel_diff": rel(ref.objective, jax_fit.objective),
        "scipy_polished_objective": float(polish.fun),
        "polished_rel_diff": rel(float(polish.fun), jax_fit.objective),
        "scipy_from_jax_optimum_objective": float(from_ours.fun),
        "scipy_from_jax_optimum_gain_rel": float((jax_fit.objective - from_ours.fun) / jax_fit.objective),
        "jax_theta": jax_fit.theta, "scipy_theta": ref.theta,
        "jax_converged": jax_fit.n_converged, "scipy_successful": ref.n_converged,
        "jax_evaluations": jax_fit.evaluations, "scipy_evaluations": ref.evaluations,
        "starts_within_1e-9_jax": int(np.sum(jax_fit.objectives <= jax_fit.objective * (1 + 1e-9))),
        "starts_within_1e-6_scipy": int(np.sum(ref.objectives <= jax_fit.objective * (1 + 1e-6))),
        "_start": jax_fit.params,
    }


# --- 2. the bootstrap ------------------------------------------------------------------------------
def bench_bootstrap(runs, start, n_resamples=4000, n_verify=10) -> dict:
    N, D, loss = runs.N, runs.D, runs.loss
    boot = lambda: a3.bootstrap_approach3(N, D, loss, n_resamples=n_resamples, start=start)  # noqa: E731
    draws, cold, _, load = timed_cpu(boot)
    warm, warm_cpu = warm_time(boot)
    print(f"JAX bootstrap x{n_resamples}: cold {cold:.2f} s, warm {warm:.2f} s (CPU {warm_cpu:.2f} s)", flush=True)
    ref, scipy_s, scipy_cpu, scipy_load = timed_cpu(
        a3.scipy_bootstrap_approach3, N, D, loss, n_resamples=n_resamples, start=start)
    print(f"SciPy bootstrap loop x{n_resamples}: {scipy_s:.1f} s (CPU {scipy_cpu:.1f} s)", flush=True)
    gap = ref["objective"] / draws["objective"] - 1  # > 0: SciPy stopped above the JAX optimum

    # The single start against the full grid, on the first n_verify resamples (rows duplicated by count)
    counts = a3.resample_counts(len(loss), n_resamples, seed=0)[:n_verify].astype(int)
    grid_gap = []
    for i, c in enumerate(counts):
        rows = np.repeat(np.arange(len(loss)), c)
        full = a3.fit_approach3(N[rows], D[rows], loss[rows])
        grid_gap.append(draws["objective"][i] / full.objective - 1)
    grid_gap = np.array(grid_gap)
    print(f"single start vs 4,500-start grid on {n_verify} resamples: max rel gap {np.max(np.abs(grid_gap)):.1e}")
    q = [0.025, 0.5, 0.975]
    return {
        "resamples": n_resamples,
        "jax_cold_s": cold, "jax_warm_s": warm, "scipy_s": scipy_s, "speedup_warm": scipy_s / warm,
        "jax_warm_cpu_s": warm_cpu, "scipy_cpu_s": scipy_cpu, "speedup_warm_cpu": scipy_cpu / warm_cpu,
        "load_avg_1min_after_jax": load, "load_avg_1min_after_scipy": scipy_load,
        "jax_converged": int(draws["converged"].sum()), "scipy_successful": int(ref["converged"].sum()),
        "scipy_minus_jax_rel_objective_quantiles_0_50_90_100": np.quantile(gap, [0, 0.5, 0.9, 1]).tolist(),
        "max_abs_alpha_diff": float(np.max(np.abs(ref["alpha"] - draws["alpha"]))),
        "jax_95pct": {k: np.quantile(draws[k], q).tolist() for k in ("E", "A", "B", "alpha", "beta")},
        "scipy_95pct": {k: np.quantile(ref[k], q).tolist() for k in ("E", "A", "B", "alpha", "beta")},
        "verify_resamples": n_verify,
        "single_start_vs_grid_max_rel_gap": float(np.max(np.abs(grid_gap))),
    }


# --- 3. NUTS: ours, nutpie (low rank), PyMC default -----------------------------------------------
def _ess_stats(posterior_arrays: dict, n_steps, diverging, seconds) -> dict:
    import arviz as az

    ess = {k: float(az.ess(np.asarray(v, np.float64), method="bulk")) for k, v in posterior_arrays.items()}
    min_ess = min(ess.values())
    return {
        "min_bulk_ess": min_ess, "min_ess_param": min(ess, key=ess.get), "ess_per_s": min_ess / seconds,
        "divergences": int(np.sum(diverging)), "mean_leapfrog_steps": float(np.mean(n_steps)),
    }


def _median_over_seeds(per_seed: list[dict]) -> dict:
    """One row from warm runs with different seeds: the median of each number (divergences summed),
    the ESS/s range beside it. ESS differs by ten to twenty percent between seeds, so one run is
    not enough to compare samplers within that."""
    out = {k: float(np.median([r[k] for r in per_seed])) for k in per_seed[0] if k not in ("min_ess_param", "divergences")}
    out["ess_per_s_range"] = [min(r["ess_per_s"] for r in per_seed), max(r["ess_per_s"] for r in per_seed)]
    out["divergences"] = int(sum(r["divergences"] for r in per_seed))
    out["min_ess_param"] = max({r["min_ess_param"] for r in per_seed}, key=[r["min_ess_param"] for r in per_seed].count)
    out["seeds"] = len(per_seed)
    return out


def ours_sampler(runs):
    """Ours, compiled (the cold call): ``({"cold_s": ...}, warm(seed) -> row)``."""
    from bayes_scaling.fitting.nuts import fit_nuts

    def fit(seed):
        return fit_nuts(runs, num_chains=CHAINS, num_warmup=WARMUP, num_draws=DRAWS, seed=seed)

    def warm(seed):
        post, seconds = timed(fit, seed)
        stats = post.idata["sample_stats"]
        arrays = {k: post.idata["posterior"][k].values for k in PARAMS}
        return {"warm_s": seconds, "warmup_mean_leapfrog_steps": post.meta["warmup_mean_leapfrog_steps"],
                **_ess_stats(arrays, stats["n_steps"].values, stats["diverging"].values, seconds)}

    _, cold = timed(fit, 0)
    return {"cold_s": cold}, warm


def pymc_model(runs, coords: str = "centred"):
    """The pooled Student-t model of ``bayes_scaling.models`` in PyMC, priors read from ours.

    ``coords="centred"``: the same latent coordinates and density NumPyro samples (flat latents
    log E, log alpha, log beta, log A - alpha mean(log N), log B - beta mean(log D); each prior on the
    natural parameter enters with its log Jacobian, i.e. as Normal(mu, s) on log theta).
    ``coords="natural"``: the model as a PyMC user writes it, LogNormal priors on E, A, B, alpha, beta
    and PyMC's default log transforms. Both are the same posterior.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from bayes_scaling.laws import Chinchilla
    from bayes_scaling.models import DEFAULT_NU
    from bayes_scaling.priors import resolve_priors

    priors = resolve_priors(Chinchilla(), None)
    log_N, log_D, log_L = np.log(runs.N), np.log(runs.D), np.log(runs.loss)
    names = ("E", "A", "B", "alpha", "beta")
    with pm.Model() as model:
        if coords == "natural":
            log_theta = {k: pt.log(pm.LogNormal(k, mu=float(priors[k].loc), sigma=float(priors[k].scale)))
                         for k in names}
        else:
            latent = {k: pm.Flat(f"{k}_latent") for k in names}
            log_theta = {"E": latent["E"], "alpha": latent["alpha"], "beta": latent["beta"]}
            log_theta["A"] = latent["A"] + pt.exp(latent["alpha"]) * log_N.mean()
            log_theta["B"] = latent["B"] + pt.exp(latent["beta"]) * log_D.mean()
            for k in names:
                prior = pm.Normal.dist(mu=float(priors[k].loc), sigma=float(priors[k].scale))
                pm.Potential(f"{k}_prior", pm.logp(prior, log_theta[k]))
                pm.Deterministic(k, pt.exp(log_theta[k]))
        sigma = pm.HalfNormal("sigma", sigma=float(priors["sigma"].scale))
        alpha, beta = pt.exp(log_theta["alpha"]), pt.exp(log_theta["beta"])
        terms = pt.stack([
            log_theta["E"] + 0.0 * log_N,
            log_theta["A"] - alpha * log_N,
            log_theta["B"] - beta * log_D,
        ])
        pm.StudentT("log_loss", nu=DEFAULT_NU, mu=pt.logsumexp(terms, axis=0).ravel(), sigma=sigma, observed=log_L)
    return model


def _trace_stats(trace, seconds) -> dict:
    arrays = {k: trace.posterior[k].values for k in PARAMS}
    stats = trace.sample_stats
    return _ess_stats(arrays, stats["n_steps"].values, stats["diverging"].values, seconds)


def nutpie_sampler(runs, coords: str):
    """nutpie (low-rank mass matrix), compiled and run once (the cold call): like ``ours_sampler``."""
    import nutpie

    def sample(compiled, seed):
        # cores=CHAINS: one thread per chain, as ours runs one XLA device thread per chain, so that on a
        # shared machine both get the same share of the cores
        return nutpie.sample(compiled, draws=DRAWS, tune=WARMUP, chains=CHAINS, cores=CHAINS, seed=seed,
                             adaptation="low_rank", progress_bar=False)

    def warm(seed):
        trace, seconds = timed(sample, compiled, seed)
        row = {"warm_s": seconds, **_trace_stats(trace, seconds)}
        try:
            row["warmup_mean_leapfrog_steps"] = float(trace["warmup_sample_stats"]["n_steps"].mean())
        except (KeyError, AttributeError):  # no warm-up statistics kept
            pass
        return row

    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(runs, coords))
    compile_s = time.perf_counter() - start
    sample(compiled, 0)
    return {"cold_s": time.perf_counter() - start, "compile_s": compile_s}, warm


def bench_interleaved(samplers: dict) -> dict:
    """Cold call of each sampler, then the warm runs seed by seed, alternating between samplers so
    that all see the same machine load; one row of medians per sampler."""
    out, prepared = {}, {}
    for name, make in samplers.items():
        try:
            prepared[name] = make()
        except Exception as err:  # a missing optional sampler must not lose the other numbers
            out[name] = {"error": f"{type(err).__name__}: {err}"}
            print(f"{name}: {out[name]['error']}", file=sys.stderr)
    rows = {name: [] for name in prepared}
    for seed in WARM_SEEDS:
        for name, (_, warm) in prepared.items():
            rows[name].append(warm(seed))
    for name, (cold, _) in prepared.items():
        out[name] = {**cold, **_median_over_seeds(rows[name])}
        print(f"{name}: {out[name]}", flush=True)
    return out


def bench_pymc(runs, coords: str) -> dict:
    """PyMC's own NUTS (``nuts_sampler="pymc"``: with nutpie installed, PyMC 6 hands pm.sample to nutpie)
    with its default adaptation (jitter + adapt_diag)."""
    import pymc as pm

    def sample(seed):
        with pymc_model(runs, coords):
            return pm.sample(draws=DRAWS, tune=WARMUP, chains=CHAINS, random_seed=seed, progressbar=False,
                             nuts_sampler="pymc", compute_convergence_checks=False)

    _, cold = timed(sample, 0)
    trace, warm = timed(sample, 1)
    out = {"cold_s": cold, "warm_s": warm, **_trace_stats(trace, warm)}
    print(f"PyMC NUTS, {coords}: {out}", flush=True)
    return out


# --- report --------------------------------------------------------------------------------------
def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{os.cpu_count()}-core CPU ({model}), shared with other jobs; Python {platform.python_version()}"


def markdown(res: dict) -> str:
    g, b = res["grid"], res["bootstrap"]
    lines = [
        SECTION, "",
        f"Measured {res['date']} on {res['machine']}, by `experiments/bench_fit.py` in one run "
        f"(raw numbers: `experiments/results/bench_fit.json`). Cold = first call in the process, "
        f"compilation included (persistent compilation cache off); warm: as each table says. "
        f"The machine was shared (1-minute load averages are given with the results), so times vary between "
        f"runs, at times several-fold; ratios come from the same run.",
        "",
        "### Approach 3 point fit (Huber, delta = 1e-3, L-BFGS from Hoffmann's 4,500 starts, 240 runs)",
        "",
        "| method | cold (s) | warm (s) | warm CPU (s) | best objective J | starts converged (*) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| JAX, all starts vectorised (`fit_approach3`) | {g['jax_cold_s']:.2f} | {g['jax_warm_s']:.2f} | "
        f"{g['jax_warm_cpu_s']:.2f} | {g['jax_objective']:.13g} | {g['jax_converged']} |",
        f"| SciPy L-BFGS-B, one start after another (`scipy_approach3`) | {g['scipy_s']:.1f} | - | "
        f"{g['scipy_cpu_s']:.1f} | {g['scipy_objective']:.13g} | {g['scipy_successful']} (success flag) |",
        "",
        f"- Warm speed-up: **{g['speedup_warm']:.0f}x** in wall time, {g['speedup_warm_cpu']:.0f}x in CPU time "
        f"(target >= 20x; 1-minute load average {g['load_avg_1min_after_jax']:.1f} after the JAX fit, "
        f"{g['load_avg_1min_after_scipy']:.1f} after SciPy's).",
        f"- Same optimum (target: objective within 1e-9 relative). The comparison is of optima, so SciPy's "
        f"L-BFGS-B is run to convergence: continued from its best start with the exact gradient, ftol 0 and "
        f"gtol 1e-13, it reaches J within **{g['polished_rel_diff']:.1e}** of the JAX optimum (met); started at "
        f"the JAX optimum it lowers J by {g['scipy_from_jax_optimum_gain_rel']:.1e} (relative), so there is no "
        f"lower point nearby. At Epoch's default settings, the run timed above, SciPy stops early, "
        f"{g['objective_rel_diff']:.1e} above the optimum: its default ftol is relative to max(|J|, 1) = 1, "
        f"so at J ~ 1e-3 each start stops once an iteration gains less than 2.2e-9 in absolute terms. "
        f"That gap is SciPy's stopping rule, not a different optimum; the speed-up is measured against "
        f"that (faster) early-stopping run.",
        "- (*) JAX: starts that met its stopping rule; the screen stops the rest after 30 evaluations "
        "(see `bayes_scaling/fitting/approach3.py`). SciPy: its success flag, which its early ftol stop sets.",
        f"- JAX optimum: E = {g['jax_theta']['E']:.4f}, A = {g['jax_theta']['A']:.1f}, B = {g['jax_theta']['B']:.0f}, "
        f"alpha = {g['jax_theta']['alpha']:.4f}, beta = {g['jax_theta']['beta']:.4f} "
        f"(Epoch AI: 1.817, 482.0, 2085, 0.348, 0.366).",
        "",
        f"### Epoch-style bootstrap ({b['resamples']:,} resamples, each refitted from the full-data optimum)",
        "",
        "| method | cold (s) | warm (s) | warm CPU (s) | refits converged |",
        "|---|---:|---:|---:|---:|",
        f"| JAX, all resamples vectorised (`bootstrap_approach3`) | {b['jax_cold_s']:.2f} | {b['jax_warm_s']:.2f} | "
        f"{b['jax_warm_cpu_s']:.2f} | {b['jax_converged']} |",
        f"| SciPy loop, BFGS + exact gradient per resample (`scipy_bootstrap_approach3`) | {b['scipy_s']:.1f} | - | "
        f"{b['scipy_cpu_s']:.1f} | {b['scipy_successful']} (success flag) |",
        "",
        f"- Warm speed-up: **{b['speedup_warm']:.0f}x** in wall time, {b['speedup_warm_cpu']:.0f}x in CPU time "
        f"(target >= 20x; load average {b['load_avg_1min_after_jax']:.1f} / {b['load_avg_1min_after_scipy']:.1f}). "
        "The SciPy loop was timed in full, all 4,000 resamples.",
        "- SciPy's objective minus ours, relative, per resample (min / median / 90% / max): "
        + " / ".join(f"{v:.1e}" for v in b["scipy_minus_jax_rel_objective_quantiles_0_50_90_100"])
        + f"; largest alpha difference {b['max_abs_alpha_diff']:.1e}.",
        f"- One start suffices: on the first {b['verify_resamples']} resamples the full 4,500-start grid finds "
        f"the same optimum (largest relative gap in J {b['single_start_vs_grid_max_rel_gap']:.1e}).",
        "- 95% intervals (JAX): " + ", ".join(
            f"{k} {v[0]:.4g}-{v[2]:.4g}" for k, v in b["jax_95pct"].items())
        + " (Epoch AI: E 1.769-1.871, A 285-744, B 1042-5810, alpha 0.317-0.373, beta 0.331-0.415).",
        "",
    ]
    nuts = res.get("nuts", {})
    if nuts:
        lines += [
            f"### NUTS, identical Student-t model, {CHAINS} chains x {DRAWS:,} draws ({WARMUP} warm-up)",
            "",
            f"Ours and nutpie: medians over {len(WARM_SEEDS)} warm runs (seeds {WARM_SEEDS[0]}-{WARM_SEEDS[-1]}, "
            "run seed by seed in turn so that all see the same load), the range of ESS/s in brackets, "
            "divergences summed over the runs; PyMC: one warm run. Ours and nutpie each run the 4 chains "
            "on 4 threads (XLA host devices; nutpie `cores=4`), so a shared machine gives both the same share."
            + (f" Ours and nutpie rerun {res['nuts_rerun']['date']} in one run (`--nuts-only`), "
               f"1-minute load average {res['nuts_rerun']['load_avg_1min']:.1f} at its start; "
               "PyMC from the run above." if "nuts_rerun" in res else ""),
            "",
            "| sampler | cold (s) | warm (s) | min bulk ESS (param) | ESS/s (warm) | divergences | leapfrog steps/draw "
            "| leapfrog steps/warm-up iteration |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        names = {"ours": "NumPyro, ours (`fit_nuts`: centred coordinates, dense mass from a Laplace start)",
                 "nutpie_centred": "nutpie, low-rank mass matrix, same centred coordinates",
                 "nutpie_natural": "nutpie, low-rank mass matrix, natural coordinates",
                 "pymc_centred": "PyMC's own NUTS (default adaptation), centred coordinates",
                 "pymc_natural": "PyMC's own NUTS (default adaptation), natural coordinates"}
        for key, label in names.items():
            if key in nuts and "error" not in nuts[key]:
                r = nuts[key]
                spread = (f" [{r['ess_per_s_range'][0]:.0f}-{r['ess_per_s_range'][1]:.0f}]"
                          if "ess_per_s_range" in r else "")
                warmup = f"{r['warmup_mean_leapfrog_steps']:.1f}" if "warmup_mean_leapfrog_steps" in r else "-"
                lines.append(f"| {label} | {r['cold_s']:.1f} | {r['warm_s']:.2f} | {r['min_bulk_ess']:.0f} "
                             f"({r['min_ess_param']}) | {r['ess_per_s']:.0f}{spread} | {r['divergences']} | "
                             f"{r['mean_leapfrog_steps']:.1f} | {warmup} |")
            elif key in nuts:
                lines.append(f"| {label} | not measured: {nuts[key]['error']} | | | | | | |")
        lines.append("")
        ok = {k: v for k, v in nuts.items() if "error" not in v}
        if "ours" in ok:
            for key in ("nutpie_centred", "nutpie_natural"):
                if key in ok:
                    ratio = ok["ours"]["ess_per_s"] / ok[key]["ess_per_s"]
                    lines.append(f"- ESS/s (warm), ours / {names[key]}: **{ratio:.2f}** (target >= 1).")
        lines += ["", "All five sample one posterior: the pooled Student-t model (nu = 5) with our default "
                  "priors. \"Centred\" is the latent space NumPyro samples (log E, log alpha, log beta and "
                  "the log contributions at the data centre); \"natural\" is how a PyMC user writes the "
                  "model (LogNormal priors, PyMC's log transforms). PyMC 6 hands `pm.sample` to nutpie when "
                  "it is installed, so PyMC's own sampler is asked for with `nuts_sampler=\"pymc\"`. "
                  "nutpie's cold time is dominated by numba compiling the model.", ""]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    """Replace this script's section of docs/benchmarks.md (up to the next "## " heading), or append it."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        following = rest.find("\n## ")
        tail = rest[following + 1:] if following >= 0 else ""
        text = head + section.rstrip("\n") + "\n\n" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text.rstrip("\n") + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-pymc", action="store_true", help="skip PyMC and nutpie")
    parser.add_argument("--skip-nuts", action="store_true", help="skip every NUTS sampler")
    parser.add_argument("--verify-resamples", type=int, default=10)
    parser.add_argument("--from-json", action="store_true", help="only rewrite the docs section from the JSON")
    parser.add_argument("--nuts-only", action="store_true",
                        help="rerun ours and nutpie only; keep the point fits and PyMC from the JSON")
    args = parser.parse_args(argv)
    if args.from_json:
        res = json.loads(RESULTS.read_text())
        write_doc(markdown(res))
        return res

    runs = load_chinchilla().for_fit()
    if args.nuts_only:
        res = json.loads(RESULTS.read_text())
        res["nuts_rerun"] = {"date": dt.date.today().isoformat(), "machine": machine(),
                             "load_avg_1min": os.getloadavg()[0]}
    else:
        res = {"date": dt.date.today().isoformat(), "machine": machine(), "runs": len(runs)}
        res["grid"] = bench_grid(runs)
        start = res["grid"].pop("_start")
        res["bootstrap"] = bench_bootstrap(runs, start, n_verify=args.verify_resamples)
    if not args.skip_nuts:
        res["nuts"] = res.get("nuts", {}) if args.nuts_only else {}
        samplers = {"ours": partial(ours_sampler, runs)}
        if not args.skip_pymc:
            samplers |= {f"nutpie_{coords}": partial(nutpie_sampler, runs, coords) for coords in ("centred", "natural")}
        res["nuts"] |= bench_interleaved(samplers)
        if not (args.skip_pymc or args.nuts_only):
            for coords in ("centred", "natural"):
                try:
                    res["nuts"][f"pymc_{coords}"] = bench_pymc(runs, coords)
                except Exception as err:
                    res["nuts"][f"pymc_{coords}"] = {"error": f"{type(err).__name__}: {err}"}
                    print(f"pymc_{coords}: {res['nuts'][f'pymc_{coords}']['error']}", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2, default=float) + "\n")
    write_doc(markdown(res))
    print(f"wrote {RESULTS} and {DOC}")
    return res


if __name__ == "__main__":
    main()
