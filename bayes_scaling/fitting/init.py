"""A cheap starting point for NUTS: variable projection over the exponents.

For the Chinchilla law, given (alpha, beta) the loss is linear in (E, A, B):
L_i = E + A N_i^-alpha + B D_i^-beta. On a grid of exponents we solve that least-squares problem
with non-negative coefficients and keep the best. Other laws fall back to their prior medians.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from bayes_scaling.laws import Chinchilla, Law
from bayes_scaling.runs.table import Runs

_EXPONENTS = np.linspace(0.1, 0.8, 15)


def initial_theta(law: Law, runs: Runs) -> dict[str, float]:
    if isinstance(law, Chinchilla):
        return _chinchilla_projection(runs)
    return {name: float(np.exp(prior.loc)) if hasattr(prior, "loc") else float(prior.mean)
            for name, prior in law.default_priors().items()}


def _chinchilla_projection(runs: Runs) -> dict[str, float]:
    loss = runs.loss
    # Scale the columns to order one so nnls is well conditioned.
    ln_n, ln_d = np.log(runs.N), np.log(runs.D)
    c_n, c_d = ln_n.mean(), ln_d.mean()
    best = None
    for alpha in _EXPONENTS:
        x_n = np.exp(-alpha * (ln_n - c_n))
        for beta in _EXPONENTS:
            x_d = np.exp(-beta * (ln_d - c_d))
            design = np.column_stack([np.ones_like(loss), x_n, x_d]) / loss[:, None]
            coef, _ = nnls(design, np.ones_like(loss))  # relative residuals, like log-loss
            sse = np.sum((design @ coef - 1.0) ** 2)
            if best is None or sse < best[0]:
                best = (sse, alpha, beta, coef)
    _, alpha, beta, (E, a_c, b_c) = best
    floor = 1e-3 * loss.mean()
    return {
        "E": max(E, floor),
        "A": max(a_c, floor) * np.exp(alpha * c_n),
        "B": max(b_c, floor) * np.exp(beta * c_d),
        "alpha": float(alpha),
        "beta": float(beta),
    }
