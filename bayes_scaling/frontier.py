"""The compute-optimal frontier as posterior draws, and its summary table.

For each draw theta_s and budget C_k: N_opt, D_opt = law.optimal_allocation(theta_s, C_k),
L_opt = L(N_opt, D_opt), tokens per parameter D_opt / N_opt. The table reports, per budget, the
median and the equal-tailed interval at ``level`` of each quantity across draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def frontier_draws(law: Law, theta: dict[str, np.ndarray], budgets) -> dict[str, np.ndarray]:
    """Draws of each frontier quantity, shape (S, K) for S draws and K budgets."""
    configure()
    import jax.numpy as jnp

    C = jnp.asarray(check_budgets(budgets))[None, :]
    th = {k: jnp.asarray(v)[:, None] for k, v in theta.items()}
    N, D = law.optimal_allocation(th, C)
    L = law.loss(th, N, D)
    return {
        "N_opt": np.asarray(N),
        "D_opt": np.asarray(D),
        "L_opt": np.asarray(L),
        "tokens_per_param": np.asarray(D / N),
    }


def summarise(draws: dict[str, np.ndarray], budgets, level: float) -> pd.DataFrame:
    """Median and equal-tailed ``level`` interval per budget, one row per budget."""
    level = check_level(level)
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    rows = {"budget": check_budgets(budgets), "level": level}
    for name in QUANTITIES:
        lo, med, hi = np.quantile(draws[name], q, axis=0)
        rows[f"{name}_median"], rows[f"{name}_lo"], rows[f"{name}_hi"] = med, lo, hi
    return pd.DataFrame(rows)
