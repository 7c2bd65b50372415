"""Does the default model's predicted loss fall when a run grows? A check of the drift's shape.

Any sensible law of training loss falls when the model and its data both grow. The plain law does by
construction; the extrapolating model (docs/extrapolation.md) moves each prediction beyond the fitted runs
by a drift, and its allocation part shifts the IsoFLOP profile by d_a u_C in ln N, so a run of a fixed
shape is read further from the drifted optimum as compute grows. For a large d_a that can outweigh the
law's own fall.

Per group of every development source (the backtest's training runs and all runs), the product's default
fit (``fit_nuts`` at its defaults, or ``--laplace`` for the benchmark's fast construction) and the ratio of
the median predicted loss (no noise) along two rays, N and D both scaled by k = 1, 10, 100:
* ``top_run``: from the fitted run of largest compute 6ND (its shape, whatever it is);
* ``optimum``: from the posterior median compute-optimal (N_opt, D_opt) at that run's compute.
Reported: the largest ratio of successive medians minus 1 (> 0: the median loss rises along the ray);
and ``frontier``: the same for the median compute-optimal loss L_opt (``Posterior.frontier``, the drifted
optimum searched per draw) at the top run's compute times 1, 10, ..., 10^4.
The ``optimum`` ray is what every extrapolating fit now records (``extrapolation.loss_rise``, from the law's
closed-form N_opt rather than the frontier's; 0.142 both ways on rw-base-long-kaplan-standard-val); this script
keeps the record of the measurement and adds the ``top_run`` ray.

    python experiments/monotonicity_check.py [--laplace] [--level-bound frontier] [--laplace-start mode]
        [--laplace-correction psis] [--prior-scale-factor F] [--out results/monotonicity_check.json]

``--level-bound`` sets ``extrapolation.LEVEL_BOUND`` (the sixteenth run of bench_extrapolation.py: its rule's (j));
``--laplace-start`` sets ``sampler.LAPLACE_START`` (the eighteenth run's (j)); ``--laplace-correction`` sets
``sampler.LAPLACE_CORRECTION`` and ``--prior-scale-factor`` multiplies ``extrapolation.PRIOR_SCALES`` (the
twenty-first run's (j)).
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

from bayes_scaling import extrapolation
from bayes_scaling.fitting import sampler
from bayes_scaling.fitting.nuts import fit_laplace, fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import split_by_compute

SOURCES = {"chinchilla": load_chinchilla, "marin": load_marin, "porian": load_porian, "gadre": load_gadre}
SCALES = np.array([1.0, 10.0, 100.0])
FRONTIER_SCALES = 10.0 ** np.arange(5)


def largest_rise(posterior, N0: float, D0: float) -> float:
    """max over k of median L(10 k N0, 10 k D0) / median L(k N0, k D0) - 1 along ``SCALES``."""
    median = np.median(posterior.predict(N0 * SCALES, D0 * SCALES, noise=False, max_draws=1000), axis=0)
    return float(np.max(median[1:] / median[:-1]) - 1)


def check(runs: Runs, laplace: bool) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if laplace:
            def fit(train):
                return fit_laplace(train, num_chains=2, num_draws=500, seed=0)
            post = extrapolation.attach_drift(fit(runs), extrapolation.calibrate(runs, fit), seed=0)
        else:
            post = fit_nuts(runs, seed=0)
    i = int(np.argmax(runs.N * runs.D))
    C = float(6 * runs.N[i] * runs.D[i])
    row = post.frontier([C], 0.9).iloc[0]
    n_opt = float(row["N_opt_median"])
    extra = post.meta["extrapolation"]
    L_opt = post.frontier(list(C * FRONTIER_SCALES), 0.9)["L_opt_median"].to_numpy()
    return {"top_run": largest_rise(post, runs.N[i], runs.D[i]),
            "frontier": float(np.max(L_opt[1:] / L_opt[:-1]) - 1),
            "top_run_tokens_per_param": float(runs.D[i] / runs.N[i]),
            "optimum": largest_rise(post, n_opt, C / (6 * n_opt)),
            "mean_drift": extra["mean drift (d_N, d_D, g_C, d_a)"], "folds": extra["folds"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laplace", action="store_true", help="the benchmark's Laplace construction, not fit_nuts")
    parser.add_argument("--level-bound", choices=[b for b in extrapolation.LEVEL_BOUNDS if b], default=None,
                        help="extrapolation.LEVEL_BOUND for this run (default: the library's)")
    parser.add_argument("--laplace-start", choices=sampler.LAPLACE_STARTS, default=None,
                        help="sampler.LAPLACE_START for this run (default: the library's; bench_extrapolation.py's eighteenth run)")
    parser.add_argument("--laplace-correction", choices=[c for c in sampler.LAPLACE_CORRECTIONS if c], default=None,
                        help="sampler.LAPLACE_CORRECTION for this run (default: the library's)")
    parser.add_argument("--prior-scale-factor", type=float, default=None,
                        help="multiply extrapolation.PRIOR_SCALES by this for this run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "monotonicity_check.json"))
    args = parser.parse_args(argv)
    if args.laplace_correction:
        sampler.LAPLACE_CORRECTION = args.laplace_correction
    if args.prior_scale_factor is not None:
        extrapolation.PRIOR_SCALES = {k: args.prior_scale_factor * v for k, v in extrapolation.PRIOR_SCALES.items()}
    if args.level_bound:
        extrapolation.LEVEL_BOUND = args.level_bound
    if args.laplace_start:
        sampler.LAPLACE_START = args.laplace_start
    start = time.perf_counter()
    out = {"level_bound": extrapolation.LEVEL_BOUND, "laplace_start": sampler.LAPLACE_START,
           "laplace_correction": sampler.LAPLACE_CORRECTION, "prior_scales": extrapolation.PRIOR_SCALES, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)",
           "fit": "laplace construction" if args.laplace else "fit_nuts defaults", "groups": {}}
    for source, load in SOURCES.items():
        frame = load().frame
        for group in sorted(frame["group"].unique()):
            runs = Runs(frame[frame["group"] == group].reset_index(drop=True))
            for label, subset in (("train", split_by_compute(runs).train), ("all", runs)):
                key = f"{source}/{group}/{label}"
                out["groups"][key] = check(subset, args.laplace)
                r = out["groups"][key]
                print(f"{key}: rise along the top run's ray {r['top_run']:+.3f} (D/N {r['top_run_tokens_per_param']:.3g}), "
                      f"along the optimum's {r['optimum']:+.3f}, frontier {r['frontier']:+.4f}, mean drift {r['mean_drift']}", flush=True)
    rises = {k: [v[k] > 0 for v in out["groups"].values()] for k in ("top_run", "optimum", "frontier")}
    out["rising"] = {k: f"{sum(v)} of {len(v)}" for k, v in rises.items()}
    out["seconds"] = time.perf_counter() - start
    out["load_avg_1min_at_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["rising"]))


if __name__ == "__main__":
    main()
