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


# Options of the drifted search, off by default (measured, not adopted: experiments/frontier_search_edges.py and
# docs/extrapolation.md, "A limit: the frontier's search window"): how many times the window moves on while its
# best point is its edge, and whether a coarse scan (WIDE) re-centres it on a lower basin.
EDGE_STEPS = 0
WIDE_SCAN = False
WIDE = (-12.0, 8.0, 81)  # the coarse scan of ln N around the window's centre (e-folds below, above; points)


def drifted_optimum(law: Law, th, C, N_law, G, ranges, half_width: float = 4.0, points: int = 161,
                    refine: str = "kinks", edge_steps: int | None = None, wide: bool | None = None):
    """argmin over ln N of the drifted log-loss (``extrapolation.drifted_log_loss``) along
    6ND = C, per draw and budget: a grid of ``points`` values of ln N within ``half_width`` e-folds
    of the law's own N_opt moved by the draw's allocation drift, with the drift's kinks along the
    constraint added (``extrapolation.constraint_kinks``), refined by ``refined_minimum``
    (``refine`` "kinks"); "parabola": no kinks, and the vertex of the parabola through the best point
    and its neighbours taken whatever its value, which misplaces a corner optimum by up to a grid
    step (the search before the twenty-first session; ``extrapolation.OPTIMUM_SEARCH`` names the one
    the calibration's finite differences use). A window's local or edge minimum is reported as the optimum.
    Two options (off by default: ``WIDE_SCAN``, ``EDGE_STEPS``; measured, not adopted) search further for
    draws whose drift moves the optimum far from the law's or gives the profile a second basin: with
    ``wide``, a coarse scan over ``WIDE`` around the centre, the window re-centred where it finds a lower
    loss; with ``edge_steps`` > 0, where the window's best point is its edge (and no kink is lower), the
    window moves on by its width, up to that many times; either searches only where tokens per parameter
    are plausible for a real run (``plausible_log_n``). A draw whose law has no finite optimum (``N_law``
    infinite: A or B overflowed) stays non-finite, without NumPy's warnings. Returns N, D, L (S, K)."""
    edge_steps = EDGE_STEPS if edge_steps is None else edge_steps
    wide = WIDE_SCAN if wide is None else wide
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _drifted_optimum(law, th, C, N_law, G, ranges, half_width, points, refine, edge_steps, wide)


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


def _drifted_optimum(law: Law, th, C, N_law, G, ranges, half_width: float, points: int, refine: str,
                     edge_steps: int = 0, wide: bool = False):
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

    band = None
    if wide or edge_steps:  # the search stays where a real run could be: tokens per parameter in PLAUSIBLE_TOKENS_PER_PARAM
        band = plausible_log_n(C)
        log_n = np.concatenate([_clipped(log_n[..., :points], band), log_n[..., points:]], axis=-1)
    f = objective(log_n)
    if wide:
        f, log_n = _to_the_lowest_basin(objective, f, log_n, centre, offsets, points, band)
    f, log_n = _past_the_edges(objective, f, log_n, centre, offsets, points, 2 * half_width, edge_steps, band)
    if refine == "kinks":
        best, f_best = refined_minimum(objective, log_n[..., :points], f[..., :points], log_n[..., points:],
                                       f[..., points:])
        N = np.exp(best)
        return N, C / (6.0 * N), np.exp(f_best)
    best = parabola_minimum(log_n, f)
    N = np.exp(best)
    D = C / (6.0 * N)
    return N, D, np.exp(objective(best))


def plausible_log_n(C) -> tuple[np.ndarray, np.ndarray]:
    """The range of ln N along 6ND = C where tokens per parameter D/N = C/(6N^2) lies in
    ``runs.schema.PLAUSIBLE_TOKENS_PER_PARAM`` (what any real run has): a drifted optimum is searched there."""
    from bayes_scaling.runs.schema import PLAUSIBLE_TOKENS_PER_PARAM

    lo_r, hi_r = PLAUSIBLE_TOKENS_PER_PARAM
    log_c6 = np.log(np.asarray(C, np.float64) / 6.0)
    return 0.5 * (log_c6 - np.log(hi_r)), 0.5 * (log_c6 - np.log(lo_r))


def _clipped(log_n, band):
    """``log_n`` within ``band`` (``plausible_log_n``'s), a non-finite value (a draw with no optimum) left as it is."""
    if band is None:
        return log_n
    return np.where(np.isfinite(log_n), np.clip(log_n, band[0][..., None], band[1][..., None]), log_n)


def _to_the_lowest_basin(objective, f, log_n, centre, offsets, points: int, band=None):
    """The grid part of ``log_n``/``f`` re-centred, for every cell where a coarse scan over ``WIDE`` around
    ``centre`` finds a lower value than the window and its kinks, on the scan's best point."""
    lo, hi, n = WIDE
    scan = _clipped(centre[..., None] + np.linspace(lo, hi, n), band)
    f_scan = np.where(np.isnan(f_scan := objective(scan)), np.inf, f_scan)
    j = np.argmin(f_scan, axis=-1)[..., None]
    x_scan, best_scan = np.take_along_axis(scan, j, axis=-1)[..., 0], np.take_along_axis(f_scan, j, axis=-1)[..., 0]
    best_now = np.where(np.isnan(f), np.inf, f).min(axis=-1)
    lower = best_scan < best_now
    if not lower.any():
        return f, log_n
    moved = _clipped(np.where(lower, x_scan, centre)[..., None] + offsets, band)
    f_moved = objective(moved)
    log_n = np.concatenate([np.where(lower[..., None], moved, log_n[..., :points]), log_n[..., points:]], axis=-1)
    f = np.concatenate([np.where(lower[..., None], f_moved, f[..., :points]), f[..., points:]], axis=-1)
    return f, log_n


def _past_the_edges(objective, f, log_n, centre, offsets, points: int, width: float, steps: int, band=None):
    """The grid part (first ``points``) of ``log_n``/``f`` moved on by ``width`` for every cell whose best grid
    point is an edge lower than every kink, until none is or ``steps`` moves were made (the new window
    starts at the old edge, so its minimum is never above the old one)."""
    for _ in range(steps):
        grid = np.where(np.isnan(f[..., :points]), np.inf, f[..., :points])
        i = np.argmin(grid, axis=-1)
        best = np.take_along_axis(grid, i[..., None], axis=-1)[..., 0]
        kinks = np.where(np.isnan(f[..., points:]), np.inf, f[..., points:]).min(axis=-1, initial=np.inf)
        edge = ((i == 0) | (i == points - 1)) & np.isfinite(best) & (best <= kinks)
        if band is not None:  # an edge on the plausible band's bound is the answer: nothing lies beyond
            x = np.take_along_axis(log_n[..., :points], i[..., None], axis=-1)[..., 0]
            edge &= (x > band[0] + 1e-9) & (x < band[1] - 1e-9)
        if not edge.any():
            break
        centre = centre + np.where(edge, np.where(i == 0, -width, width), 0.0)
        moved = _clipped(centre[..., None] + offsets, band)
        f_moved = objective(moved)
        log_n = np.concatenate([np.where(edge[..., None], moved, log_n[..., :points]), log_n[..., points:]], axis=-1)
        f = np.concatenate([np.where(edge[..., None], f_moved, f[..., :points]), f[..., points:]], axis=-1)
    return f, log_n


def summarise(draws: dict[str, np.ndarray], budgets, level: float) -> pd.DataFrame:
    """Median and equal-tailed ``level`` interval per budget, one row per budget."""
    level = check_level(level)
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    rows = {"budget": check_budgets(budgets), "level": level}
    for name in QUANTITIES:
        lo, med, hi = scoring.quantiles(draws[name], q)
        rows[f"{name}_median"], rows[f"{name}_lo"], rows[f"{name}_hi"] = med, lo, hi
    return pd.DataFrame(rows)
