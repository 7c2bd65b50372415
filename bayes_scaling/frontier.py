"""The compute-optimal frontier as posterior draws, and its summary table.

For each draw theta_s and budget C_k: N_opt, D_opt = law.optimal_allocation(theta_s, C_k),
L_opt = L(N_opt, D_opt), tokens per parameter D_opt / N_opt. The table reports, per budget, the
median and the equal-tailed interval at ``level`` of each quantity across draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_scaling import scoring
from bayes_scaling._jax_setup import configure
from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Law

QUANTITIES = ("N_opt", "D_opt", "L_opt", "tokens_per_param")
STANDARD_BUDGETS = tuple(10.0**k for k in range(19, 26))


def check_budgets(budgets) -> np.ndarray:
    try:
        C = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(f"budgets must be positive finite FLOP counts (numbers, e.g. 1e21), got {budgets!r}") from None
    if C.ndim != 1 or not np.all(np.isfinite(C)) or np.any(C <= 0):
        raise InputError(f"budgets must be positive finite FLOP counts, got {budgets!r}")
    return C


def check_level(level: float) -> float:
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise InputError(f"interval level must be a number in (0, 1), e.g. 0.9, got {level!r}") from None
    if not 0 < value < 1:
        raise InputError(f"interval level must lie in (0, 1), e.g. 0.9 for 90%, got {level!r}")
    return value


def frontier_draws(law: Law, theta: dict[str, np.ndarray], budgets, drift=None) -> dict[str, np.ndarray]:
    """Draws of each frontier quantity, shape (S, K) for S draws and K budgets. ``drift``: the
    extrapolating model's (G, ranges) (``extrapolation.drift_of``), whose drift beyond the fitted
    runs moves the optimum: then N_opt is found numerically (``drifted_optimum``)."""
    configure()
    import jax.numpy as jnp

    C = jnp.asarray(check_budgets(budgets))[None, :]
    th = {k: jnp.asarray(v)[:, None] for k, v in theta.items()}
    N, D = law.optimal_allocation(th, C)
    if drift is not None:
        N, D, L = drifted_optimum(law, th, np.asarray(C), np.asarray(N), *drift)
    else:
        L = law.loss(th, N, D)
    return {
        "N_opt": np.asarray(N),
        "D_opt": np.asarray(D),
        "L_opt": np.asarray(L),
        "tokens_per_param": np.asarray(D / N),
    }


def drifted_optimum(law: Law, th, C, N_law, G, ranges, half_width: float = 4.0, points: int = 161,
                    refine: str = "kinks"):
    """argmin over ln N of the drifted log-loss (``extrapolation.drifted_log_loss``) along
    6ND = C, per draw and budget: a grid of ``points`` values of ln N within ``half_width`` e-folds
    of the law's own N_opt moved by the draw's allocation drift, with the drift's kinks along the
    constraint added (``extrapolation.constraint_kinks``), refined by ``refined_minimum``
    (``refine`` "kinks"); "parabola": no kinks, and the vertex of the parabola through the best point
    and its neighbours taken whatever its value, which misplaces a corner optimum by up to a grid
    step (the search before the twenty-first session; ``extrapolation.OPTIMUM_SEARCH`` names the one
    the calibration's finite differences use). An optimum
    beyond the grid is reported at its edge. A draw whose law has no finite optimum (``N_law``
    infinite: A or B overflowed) stays non-finite, without NumPy's warnings. Returns N, D, L (S, K)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _drifted_optimum(law, th, C, N_law, G, ranges, half_width, points, refine)


def refined_minimum(objective, log_n: np.ndarray, f: np.ndarray, kinks: np.ndarray | None = None,
                    f_kinks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The minimiser of ``objective`` (ln N -> its value, elementwise, in the shape of f[..., 0]) near
    the best of its samples f on the sorted grid log_n (..., P), and its value: the vertex of the
    parabola through the best sample and its neighbours (kept within them) where the objective there
    is lower than at the sample, else the sample itself; and then whichever of ``kinks`` (..., m), with
    their values ``f_kinks``, is lower still. A minimum on a kink (a corner optimum at the top of the
    fitted runs, ``extrapolation.constraint_kinks``) lies between grid points, where a parabola
    through three of them misplaces it by up to a step; evaluated there, it is found exactly."""
    i = np.argmin(f, axis=-1)[..., None]
    x_best, f_best = np.take_along_axis(log_n, i, axis=-1)[..., 0], np.take_along_axis(f, i, axis=-1)[..., 0]
    j = np.clip(i, 1, f.shape[-1] - 2)
    (x0, x1, x2), (f0, f1, f2) = ([np.take_along_axis(a, j + k, axis=-1)[..., 0] for k in (-1, 0, 1)] for a in (log_n, f))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        num = (x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)
        den = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
        vertex = np.clip(x1 - 0.5 * num / den, x0, x2)
    vertex = np.where(np.isfinite(vertex) & (den < 0), vertex, x_best)  # den < 0: f1 below the chord
    f_vertex = objective(vertex)
    better = f_vertex < f_best
    x_best, f_best = np.where(better, vertex, x_best), np.where(better, f_vertex, f_best)
    if kinks is not None:
        k = np.argmin(np.where(np.isnan(f_kinks), np.inf, f_kinks), axis=-1)[..., None]
        x_kink, f_kink = np.take_along_axis(kinks, k, axis=-1)[..., 0], np.take_along_axis(f_kinks, k, axis=-1)[..., 0]
        lower = f_kink < f_best
        x_best, f_best = np.where(lower, x_kink, x_best), np.where(lower, f_kink, f_best)
    return x_best, f_best


def parabola_minimum(log_n: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The minimiser over the last axis of f sampled at log_n: the best grid point moved to the
    vertex of the parabola through it and its neighbours (at most one step; not where the
    parabola is not convex or a neighbour is infinite), whatever the objective is there."""
    i = np.clip(np.argmin(f, axis=-1), 1, f.shape[-1] - 2)[..., None]
    f0, f1, f2 = (np.take_along_axis(f, i + k, axis=-1)[..., 0] for k in (-1, 0, 1))
    with np.errstate(invalid="ignore"):
        curvature = f0 - 2 * f1 + f2
        ok = np.isfinite(curvature) & (curvature > 0)
        shift = np.where(ok, 0.5 * (f0 - f2) / np.where(ok, curvature, 1.0), 0.0)
    step = np.take_along_axis(log_n, i + 1, axis=-1)[..., 0] - np.take_along_axis(log_n, i, axis=-1)[..., 0]
    return np.take_along_axis(log_n, i, axis=-1)[..., 0] + np.clip(shift, -1, 1) * step


def _drifted_optimum(law: Law, th, C, N_law, G, ranges, half_width: float, points: int, refine: str):
    from bayes_scaling.extrapolation import allocation_shift, constraint_kinks, drifted_log_loss
    from bayes_scaling.posterior import compiled_log_loss

    log_loss = compiled_log_loss(law)
    offsets = np.linspace(-half_width, half_width, points)
    u_C = np.maximum(np.log(C) - ranges["log_C"][1], 0.0)
    centre = np.log(N_law) + allocation_shift(G, ranges, u_C)  # the law's optimum moved by the allocation drift
    log_n = centre[..., None] + offsets  # (S, K, points)
    if refine == "kinks":  # evaluated with the grid, in one call
        kinks = constraint_kinks(ranges, C)
        kinks = np.where(np.isfinite(centre)[..., None], kinks, np.nan)  # a draw with no optimum keeps none
        log_n = np.concatenate([log_n, np.broadcast_to(kinks, centre.shape + kinks.shape[-1:])], axis=-1)

    def objective(log_n):
        N = np.exp(log_n)
        D = C[..., None] / (6.0 * N) if log_n.ndim == 3 else C / (6.0 * N)
        theta = {k: np.asarray(v)[..., None] for k, v in th.items()} if log_n.ndim == 3 else th
        return drifted_log_loss(log_loss, theta, G, ranges, N, D)

    f = objective(log_n)
    if refine == "kinks":
        best, f_best = refined_minimum(objective, log_n[..., :points], f[..., :points], log_n[..., points:],
                                       f[..., points:])
        N = np.exp(best)
        return N, C / (6.0 * N), np.exp(f_best)
    best = parabola_minimum(log_n, f)
    N = np.exp(best)
    D = C / (6.0 * N)
    return N, D, np.exp(objective(best))


def summarise(draws: dict[str, np.ndarray], budgets, level: float) -> pd.DataFrame:
    """Median and equal-tailed ``level`` interval per budget, one row per budget."""
    level = check_level(level)
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    rows = {"budget": check_budgets(budgets), "level": level}
    for name in QUANTITIES:
        lo, med, hi = scoring.quantiles(draws[name], q)
        rows[f"{name}_median"], rows[f"{name}_lo"], rows[f"{name}_hi"] = med, lo, hi
    return pd.DataFrame(rows)
