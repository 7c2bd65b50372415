"""A cheap starting point for NUTS: variable projection over the exponents.

For the Chinchilla law, given (alpha, beta) the loss is linear in (E, A, B):
L_i = E + A N_i^-alpha + B D_i^-beta. On a grid of exponents we solve that least-squares problem
with non-negative coefficients and keep the best. Other laws fall back to their prior medians.
"""

from __future__ import annotations

import itertools

import numpy as np

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
            coef, sse = _nonnegative_least_squares(design, np.ones_like(loss))  # relative residuals, like log-loss
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


def _nonnegative_least_squares(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """argmin ||X c - y||^2 subject to c >= 0 for a few columns, and its value. The solution is the
    unconstrained least squares on its own support, so it is the best of those supports' solutions
    that are non-negative: 2^k - 1 small solves of the normal equations (k = 3 here; the columns
    are of order one), cheaper than importing scipy.optimize for its nnls."""
    k = design.shape[1]
    gram, moment, total = design.T @ design, design.T @ target, float(target @ target)
    best = (np.zeros(k), total)
    for support in itertools.product((False, True), repeat=k):
        columns = np.flatnonzero(support)
        if columns.size == 0:
            continue
        try:
            solution = np.linalg.solve(gram[np.ix_(columns, columns)], moment[columns])
        except np.linalg.LinAlgError:
            continue
        if np.any(solution < 0):
            continue
        coef = np.zeros(k)
        coef[columns] = solution
        sse = total - 2 * coef @ moment + coef @ gram @ coef
        if sse < best[1]:
            best = (coef, float(sse))
    return best
