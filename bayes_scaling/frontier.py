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
    C = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    if C.ndim != 1 or not np.all(np.isfinite(C)) or np.any(C <= 0):
        raise InputError(f"budgets must be positive finite FLOP counts, got {budgets!r}")
    return C


def check_level(level: float) -> float:
    if not 0 < level < 1:
        raise InputError(f"interval level must lie in (0, 1), got {level}")
    return float(level)


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


def drifted_optimum(law: Law, th, C, N_law, G, ranges, half_width: float = 4.0, points: int = 161):
    """argmin over ln N of the drifted log-loss (``extrapolation.drifted_log_loss``) along
    6ND = C, per draw and budget: a grid of ``points`` values of ln N within ``half_width`` e-folds
    of the law's own N_opt moved by the draw's allocation drift, refined by the parabola through
    the best grid point and its neighbours (an optimum beyond the grid is reported at its edge).
    A draw whose law has no finite optimum (``N_law`` infinite: A or B overflowed) stays non-finite,
    without NumPy's warnings. Returns N, D, L (S, K)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _drifted_optimum(law, th, C, N_law, G, ranges, half_width, points)


def _drifted_optimum(law: Law, th, C, N_law, G, ranges, half_width: float, points: int):
    from bayes_scaling.extrapolation import allocation_shift, drifted_log_loss
    from bayes_scaling.posterior import compiled_log_loss

    log_loss = compiled_log_loss(law)
    offsets = np.linspace(-half_width, half_width, points)
    u_C = np.maximum(np.log(C) - ranges["log_C"][1], 0.0)
    centre = np.log(N_law) + allocation_shift(G, ranges, u_C)  # the law's optimum moved by the allocation drift
    log_n = centre[..., None] + offsets  # (S, K, points)

    def objective(log_n):
        N = np.exp(log_n)
        D = C[..., None] / (6.0 * N) if log_n.ndim == 3 else C / (6.0 * N)
        theta = {k: np.asarray(v)[..., None] for k, v in th.items()} if log_n.ndim == 3 else th
        return drifted_log_loss(log_loss, theta, G, ranges, N, D)

    f = objective(log_n)
    i = np.clip(np.argmin(f, axis=-1), 1, points - 2)[..., None]
    f0, f1, f2 = (np.take_along_axis(f, i + k, axis=-1)[..., 0] for k in (-1, 0, 1))
    curvature = f0 - 2 * f1 + f2
    shift = np.where(curvature > 0, 0.5 * (f0 - f2) / np.where(curvature > 0, curvature, 1.0), 0.0)
    step = offsets[1] - offsets[0]
    best = np.take_along_axis(log_n, i, axis=-1)[..., 0] + np.clip(shift, -1, 1) * step
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
