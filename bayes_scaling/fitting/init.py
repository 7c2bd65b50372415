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
    alphas, betas = (g.ravel() for g in np.meshgrid(_EXPONENTS, _EXPONENTS, indexing="ij"))
    x_n = np.exp(-alphas[:, None] * (ln_n - c_n))  # (grid, runs): every (alpha, beta) at once
    x_d = np.exp(-betas[:, None] * (ln_d - c_d))
    design = np.stack([np.ones_like(x_n), x_n, x_d], axis=-1) / loss[:, None]
    coefs, sse = _nonnegative_least_squares(design, np.ones_like(loss))  # relative residuals, like log-loss
    best = int(np.argmin(sse))  # the first of equals, as the loop over alpha, then beta, kept
    alpha, beta, (E, a_c, b_c) = alphas[best], betas[best], coefs[best]
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
    are of order one), cheaper than importing scipy.optimize for its nnls. ``design`` (n, k), or
    (G, n, k) for G problems at once (then coefficients (G, k) and values (G,))."""
    batch = design.ndim == 3
    design = design if batch else design[None]
    k = design.shape[-1]
    gram = np.einsum("gni,gnj->gij", design, design)
    moment = np.einsum("gni,n->gi", design, target)
    total = float(target @ target)
    best_coef, best_sse = np.zeros((len(design), k)), np.full(len(design), total)
    for support in itertools.product((False, True), repeat=k):
        columns = np.flatnonzero(support)
        if columns.size == 0:
            continue
        solution, solved = _solve_each(gram[:, columns[:, None], columns], moment[:, columns])
        coef = np.zeros((len(design), k))
        coef[:, columns] = solution
        sse = total - 2 * np.einsum("gi,gi->g", coef, moment) + np.einsum("gi,gij,gj->g", coef, gram, coef)
        better = solved & np.all(solution >= 0, axis=1) & (sse < best_sse)
        best_coef[better], best_sse[better] = coef[better], sse[better]
    return (best_coef, best_sse) if batch else (best_coef[0], float(best_sse[0]))


def _solve_each(matrices: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solutions of a batch of small linear systems, and which were solvable (a singular one: zeros, False)."""
    try:
        return np.linalg.solve(matrices, rhs[..., None])[..., 0], np.ones(len(rhs), bool)
    except np.linalg.LinAlgError:
        out, ok = np.zeros_like(rhs), np.ones(len(rhs), bool)
        for i, (m, b) in enumerate(zip(matrices, rhs)):
            try:
                out[i] = np.linalg.solve(m, b)
            except np.linalg.LinAlgError:
                ok[i] = False
        return out, ok
