"""Why the drift's calibration moves with the seed where faithful refits do not steady it (a diagnosis, no rule;
sixteenth session, after bench_extrapolation.py's twenty-fourth run).

The measurements, each (but ``misses``) under PSIS refits with the drift priors x2 (the twenty-fourth run's candidate):

* ``folds``: on one sweep, the calibration alone (``extrapolation.calibrate``) at refit seeds 0-5, per seed
  each fold's N_opt rows (residual r, sd, directions U) and the learned mean drift, for refits by PSIS
  (1,000 proposal draws a round), PSIS with 4,000, NUTS (4 x 1,000 draws), PSIS with the N_opt rows'
  directions averaged over 200 of the fold's draws instead of taken at its medians, and PSIS with the drifted
  optima located on a 10x finer grid of ln N.
* ``edge``: where that sweep's third fold puts the law's optimum at its lowest held-out slice, D_opt over the
  fold's largest D, per refit seed.
* ``misses``: under the default (jittered Gaussian refits), per fit seed of Chinchilla and Marin comma, how
  many nats each calibration refit's chains end short of its best chain, with the learned mean drift.
* ``tilt``: full default fits at seeds 0-5 of the sweeps where PSIS x2 moved most, with and without the
  exponents' tilt (d_N - d_D, the drift in ``extrapolation.BASIS`` with the tilt's sd set to 0), with the
  N_opt rows' directions averaged over draws, and with the N_opt rows informing the allocation drift only: the spread over the seeds of ln N_opt at 100x the largest
  fitted 6ND.

Run: .venv/bin/python experiments/calibration_seeds.py [--part folds|tilt|edge|misses|chains|ramp|all]
into results/calibration_seeds.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

import bayes_scaling
from bayes_scaling import extrapolation as ex
from bayes_scaling.fitting import importance, sampler
from bayes_scaling.fitting.nuts import fit_laplace, fit_nuts
from bayes_scaling.fitting.settings import SamplerSettings
from bayes_scaling.runs.bundled import load_chinchilla, load_marin, load_porian
from bayes_scaling.runs.table import Runs

OUT = Path(__file__).parent / "results" / "calibration_seeds.json"
SEEDS = range(6)
FOLD_SWEEP = ("porian", "rw-base-short-kaplan-standard-val")
TILT_GROUPS = [("porian", "rw-base-short-kaplan-standard-val"), ("porian", "rw-base-long-kaplan-attention-train"),
               ("porian", "rw-tuned-short-const-standard-val"), ("porian", "owt2-tuned-short-const-standard-val"),
               ("marin", "comma"), ("chinchilla", "all")]
LOADERS = {"porian": load_porian, "marin": load_marin, "chinchilla": load_chinchilla}
REFITS = ("psis", "psis, 4000 draws a round", "nuts", "psis, directions averaged over draws",
          "psis, optima on a 10x finer grid")


def group_runs(source: str, group: str) -> Runs:
    data = LOADERS[source]().for_fit()
    return Runs(data.frame[data.frame["group"] == group].reset_index(drop=True))


def psis_x2():
    sampler.LAPLACE_CORRECTION = "psis"
    ex.PRIOR_SCALES = {k: 2 * v for k, v in BASE_PRIORS.items()}


BASE_PRIORS = dict(ex.PRIOR_SCALES)


def mean_directions(posterior, C, draws: int = 200) -> np.ndarray:
    """d ln N_opt(C) / d drift averaged over ``draws`` evenly spaced draws (forward differences, as
    ``extrapolation.optimum_residuals`` takes them at the medians)."""
    from bayes_scaling.frontier import drifted_optimum

    steps = np.vstack([np.zeros(4), ex.STEP_OPT * np.eye(4)])
    keep = posterior.thinned(draws)
    points = {k: np.asarray(v)[keep] for k, v in posterior.theta().items()}
    m = len(next(iter(points.values())))
    th = {k: np.repeat(v, len(steps))[:, None] for k, v in points.items()}
    G = np.tile(steps, (m, 1))
    N_law = np.asarray(posterior.law.optimal_allocation(th, C[None])[0])
    ranges = ex.log_range(posterior.runs.N, posterior.runs.D)
    moved = np.log(drifted_optimum(posterior.law, th, C[None], N_law, G, ranges)[0]).reshape(m, len(steps), len(C))
    slopes = (moved[:, 1:] - moved[:, :1]) / ex.STEP_OPT
    finite = np.isfinite(slopes).all(axis=(1, 2))
    return slopes[finite].mean(axis=0).T


def calibration_at(runs: Runs, seed: int, refit: str) -> dict:
    """One calibration of ``runs`` with refits of kind ``refit`` at ``seed``: its folds' N_opt rows and the
    learned mean drift and scales."""
    rows = []
    undo = averaged_directions() if refit.endswith("averaged over draws") else (lambda: None)
    inner = ex.optimum_residuals  # the library's, or with the directions averaged over draws

    def recorded(posterior, test, column, **kw):
        fold = inner(posterior, test, column, **kw)
        rows.append({"r": fold.r.round(4).tolist(), "sd": np.sqrt(fold.v).round(4).tolist(),
                     "U": fold.U.round(3).tolist()})
        return fold

    def fit(train: Runs):
        if refit == "nuts":
            return fit_nuts(train, model="plain", seed=seed, progress=False)
        return fit_laplace(train, settings=SamplerSettings(seed=seed, progress=False))

    from bayes_scaling import frontier

    grid = frontier.drifted_optimum.__defaults__
    if refit.endswith("finer grid"):  # 1,601 points in +-4 e-folds of ln N (spacing 0.005) instead of 161
        frontier.drifted_optimum.__defaults__ = (grid[0], 1601)
    draws, count = importance.importance_laplace.__defaults__, importance.DRAWS
    if refit.startswith("psis, 4000"):  # the compiled log density's shape reads DRAWS, the sampler its default
        importance.DRAWS, importance.importance_laplace.__defaults__ = 4000, (*draws[:-1], 4000)
    ex.optimum_residuals = recorded
    try:
        scales = ex.calibrate(runs, fit)
    finally:
        ex.optimum_residuals = inner
        undo()
        importance.DRAWS, importance.importance_laplace.__defaults__ = count, draws
        frontier.drifted_optimum.__defaults__ = grid
    return {"seed": seed, "optimum_rows": rows, "mean_drift": scales.mean_drift().round(4).tolist(),
            "scales_5_50_95": {k: [round(x, 4) for x in v] for k, v in scales.quantiles([0.05, 0.5, 0.95]).items()}}


def folds_part() -> dict:
    runs = group_runs(*FOLD_SWEEP)
    out = {"sweep": "/".join(FOLD_SWEEP)}
    for refit in REFITS:
        rows = [calibration_at(runs, seed, refit) for seed in SEEDS]
        d_a = [r["mean_drift"][3] for r in rows]
        d_D = [r["mean_drift"][1] for r in rows]
        out[refit] = {"rows": rows, "d_a_range": [min(d_a), max(d_a)], "d_D_range": [min(d_D), max(d_D)]}
        print(refit, "d_a", out[refit]["d_a_range"], "d_D", out[refit]["d_D_range"], flush=True)
    return out


def without_tilt():
    """The drift without the exponents' tilt: BASIS coordinates with the tilt's sd 0 (returns the undo)."""
    grid, from_folds = ex._site_grid, ex.ScalePosterior.from_folds.__func__

    def no_tilt():
        g = grid().copy()
        g[..., 1] = 0.0  # BASIS row 1: (d_N - d_D) / sqrt 2
        return g

    ex._site_grid = no_tilt
    ex.ScalePosterior.from_folds = classmethod(
        lambda cls, folds, prior_scales=None, shared=None, basis=None: from_folds(cls, folds, prior_scales, shared, ex.BASIS))

    def undo():
        ex._site_grid, ex.ScalePosterior.from_folds = grid, classmethod(from_folds)
    return undo


def averaged_directions():
    """Every fold's N_opt rows with directions averaged over 200 of its draws (``mean_directions``) instead
    of at its medians (returns the undo)."""
    original = ex.optimum_residuals

    def averaged(posterior, test, column, **kw):
        fold = original(posterior, test, column, **kw)
        if len(fold.r):
            budgets = test.frame[column].to_numpy(np.float64)
            C = np.array([np.exp(np.mean(np.log(test.C[budgets == b]))) for b in np.unique(budgets[np.isfinite(budgets)])
                          if np.sum(budgets == b) >= 5])
            if len(C) == len(fold.r):  # every slice kept: replace the directions
                fold = ex.FoldResiduals(r=fold.r, v=fold.v, U=mean_directions(posterior, C), optima=fold.optima)
        return fold

    ex.optimum_residuals = averaged

    def undo():
        ex.optimum_residuals = original
    return undo


def allocation_only_rows():
    """Every fold's N_opt rows with their exponent-drift directions (d_N, d_D) set to 0: they inform the
    allocation drift only, whose direction is exactly u_C (returns the undo)."""
    original = ex.optimum_residuals

    def allocation_only(posterior, test, column, **kw):
        fold = original(posterior, test, column, **kw)
        U = fold.U.copy()
        U[:, :2] = 0.0
        return ex.FoldResiduals(r=fold.r, v=fold.v, U=U, optima=fold.optima)

    ex.optimum_residuals = allocation_only

    def undo():
        ex.optimum_residuals = original
    return undo


def spread_at_100x(runs: Runs) -> dict:
    """Full default fits of ``runs`` at seeds ``SEEDS``: N_opt (90% bounds, median) at 100x the largest fitted 6ND,
    and the spread over the seeds of the logs of bounds and median (max - min)."""
    budget = 100.0 * float(np.max(6.0 * runs.N * runs.D))
    rows = []
    for seed in SEEDS:
        post = fit_nuts(runs, seed=seed, progress=False)
        t = post.frontier([budget], level=0.9)
        extra = post.meta["extrapolation"]
        rows.append({"seed": seed, "n_opt": [float(t[f"N_opt_{q}"].iloc[0]) for q in ("lo", "median", "hi")],
                     "mean_drift": extra["mean drift (d_N, d_D, g_C, d_a)"], "refit_chain_gaps_nats": extra[ex.GAPS_KEY]})
    logs = np.log(np.array([r["n_opt"] for r in rows]))
    return {"rows": rows, "spread_lo_median_hi": (logs.max(0) - logs.min(0)).round(3).tolist()}


def tilt_part() -> dict:
    out = {}
    for source, group in TILT_GROUPS:
        runs = group_runs(source, group)
        entry = {}
        for setting in ("with tilt", "without tilt", "directions averaged over draws", "N_opt rows inform d_a only"):
            undo = {"without tilt": without_tilt, "directions averaged over draws": averaged_directions,
                    "N_opt rows inform d_a only": allocation_only_rows}.get(setting, lambda: (lambda: None))()
            try:
                entry[setting] = spread_at_100x(runs)
            finally:
                undo()
            print(source, group, setting, entry[setting]["spread_lo_median_hi"], flush=True)
        out[f"{source}/{group}"] = entry
    return out


def edge_part() -> dict:
    """Where the third fold's lowest held-out slice puts the law's optimum: D_opt / D_max at the fold's PSIS
    refit's posterior medians, per refit seed (D_max the fold's largest fitted D: the kink of u_D)."""
    from bayes_scaling.splits import budget_column_of, forward_chain

    runs = group_runs(*FOLD_SWEEP)
    column = budget_column_of(runs, "auto")
    split = forward_chain(runs, folds=3, budget_column=column)[2]
    budgets = split.test.frame[column].to_numpy(np.float64)
    C = float(np.exp(np.mean(np.log(split.test.C[budgets == np.nanmin(budgets)]))))
    rows = []
    for seed in SEEDS:
        post = fit_laplace(split.train, settings=SamplerSettings(seed=seed, progress=False))
        th = {k: np.array([[np.median(v)]]) for k, v in post.theta().items()}
        n_opt = float(np.asarray(post.law.optimal_allocation(th, np.array([[C]]))[0]).ravel()[0])
        rows.append({"seed": seed, "n_opt": n_opt, "d_opt_over_d_max": C / (6.0 * n_opt) / float(split.train.D.max())})
        print("edge", rows[-1], flush=True)
    return {"slice_compute": C, "d_max": float(split.train.D.max()), "rows": rows}


def misses_part(groups=(("chinchilla", "all"), ("marin", "comma"))) -> dict:
    """Under the default (jittered Gaussian refits, the first priors): per fit seed, how far each calibration
    refit's chains end from their best chain (``extrapolation.GAPS_KEY``: max - min of the potential at the
    Newton end points, nats), with the learned mean drift."""
    correction, priors = sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES
    sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES = None, dict(BASE_PRIORS)
    out = {}
    try:
        for source, group in groups:
            runs, rows = group_runs(source, group), []
            for seed in SEEDS:
                extra = fit_nuts(runs, seed=seed, progress=False).meta["extrapolation"]
                rows.append({"seed": seed, "refit_chain_gaps_nats": extra[ex.GAPS_KEY],
                             "mean_drift": extra["mean drift (d_N, d_D, g_C, d_a)"]})
                print("misses", source, group, rows[-1], flush=True)
            out[f"{source}/{group}"] = rows
    finally:
        sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES = correction, priors
    return out


REFIT_CHAIN_COUNTS = (4, 16, 64)


def chains_part(groups=(("chinchilla", "all"), ("marin", "comma"))) -> dict:
    """Under the default: the calibration's Laplace refits with more jittered chains (``REFIT_CHAIN_COUNTS``, the
    fit's chains x draws shared among them), through a wrapper of ``nuts._fit`` that changes the settings of the
    Laplace fits only (the final NUTS fit is the default's)."""
    from bayes_scaling.fitting import nuts

    correction, priors, inner = sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES, nuts._fit
    sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES = None, dict(BASE_PRIORS)
    out = {}
    try:
        for source, group in groups:
            runs, entry = group_runs(source, group), {}
            for count in REFIT_CHAIN_COUNTS:
                def wrapped(train, *, settings, laplace=False, count=count, **kw):
                    if laplace:
                        settings = settings.replace(chains=count, draws=max(1, settings.chains * settings.draws // count))
                    return inner(train, settings=settings, laplace=laplace, **kw)

                nuts._fit = wrapped
                entry[str(count)] = spread_at_100x(runs)
                nuts._fit = inner
                print("chains", source, group, count, entry[str(count)]["spread_lo_median_hi"], flush=True)
            out[f"{source}/{group}"] = entry
    finally:
        sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES, nuts._fit = correction, priors, inner
    return out


RAMP_WIDTH = 0.25  # e-folds


def ramp_part() -> dict:
    """The four Porian sweeps of ``TILT_GROUPS`` under PSIS x2 and under the default, with ``extrapolation.distances``
    replaced by one whose kink at the fitted range's top is smoothed over ``RAMP_WIDTH`` (C^1, zero inside)."""
    inner, correction, priors = ex.distances, sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES
    w = RAMP_WIDTH

    def ramped(ranges, N, D):
        x = np.stack([ex._logs(N, D)[k] - ranges[k][1] for k in ex.AXES], axis=-1)
        return np.where(x <= 0, 0.0, np.where(x < w, x * x / (2 * w), x - w / 2))

    out = {"width_e_folds": w}
    try:
        for setting in ("psis x2", "default"):
            sampler.LAPLACE_CORRECTION = "psis" if setting == "psis x2" else None
            ex.PRIOR_SCALES = {k: (2 if setting == "psis x2" else 1) * v for k, v in BASE_PRIORS.items()}
            for source, group in TILT_GROUPS[:4]:
                ex.distances = ramped
                entry = spread_at_100x(group_runs(source, group))
                ex.distances = inner
                out[f"{setting}: {source}/{group}"] = entry
                print("ramp", setting, group, entry["spread_lo_median_hi"], flush=True)
    finally:
        ex.distances, sampler.LAPLACE_CORRECTION, ex.PRIOR_SCALES = inner, correction, priors
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("folds", "tilt", "edge", "misses", "chains", "ramp", "all"), default="all")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    bayes_scaling.configure()
    psis_x2()
    result = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} CPUs",
              "settings": "PSIS refits, drift priors x2 (bench_extrapolation.py's twenty-fourth run candidate)"}
    parts = {"folds": folds_part, "tilt": tilt_part, "edge": edge_part, "misses": misses_part,
             "chains": chains_part, "ramp": ramp_part}
    for name, part in parts.items():
        if args.part in (name, "all"):
            result[name] = part()
    if args.out.exists() and args.part != "all":  # one part: merged into the file's other parts
        result = {**json.loads(args.out.read_text()), **result}
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
