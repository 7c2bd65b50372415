"""Where and how the hierarchical model's coordinates are centred: the sampler's efficiency only,
never the model.

* ``pivot_centre``: the (log N, log D) at which the data measure each group's reducible terms
  independently of their exponents (for laws with the pairs (A, alpha) and (B, beta); others use
  ``mean_centre``);
* ``auto_centring``: per group and parameter, the lambda of NumPyro's ``LocScaleReparam``.

Both read the Laplace covariance of a group's parameters from its point estimate: with J the
Jacobian of the runs' log-losses in some coordinates phi (``_jacobian``, by automatic
differentiation of the law) the posterior covariance of phi is about sigma^2 (J^T J)^-1 (a Normal
likelihood on log L).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.laws.base import Law
from bayes_scaling.models.hierarchical import DEFAULT_SPREAD_PRIOR, latent_from_natural, natural_from_latent

HALFNORMAL_MEDIAN = 0.6745  # median of HalfNormal(1)
# The prior median of tau_k per unit scale s_k, by spread prior family (``spread_distribution``).
SPREAD_PRIOR_MEDIAN = {"halfnormal": HALFNORMAL_MEDIAN, "gamma": 1.678347 * np.sqrt(2 / np.pi) / 2}
PIVOTS = (("A", "alpha"), ("B", "beta"))  # (coefficient, its exponent) in N and in D


def _jacobian(fn, x0, N, D) -> np.ndarray:
    """d log L_i / d x at x0: (runs, coordinates), for ``fn(x, N, D)`` = the runs' log-losses."""
    return np.asarray(jax.jacfwd(fn)(jnp.asarray(x0, jnp.float64), jnp.asarray(N), jnp.asarray(D)))


def _log_coordinates(law: Law):
    """phi = log of every natural parameter, and log L as a function of it."""
    names = law.param_names

    def fn(phi, N, D):
        return law.log_loss({p: jnp.exp(phi[i]) for i, p in enumerate(names)}, N, D)

    return fn


def mean_centre(law: Law, N, D, estimates=None, group=None) -> tuple[float, float]:
    """(mean log N, mean log D): the pooled model's centre."""
    return float(np.mean(np.log(N))), float(np.mean(np.log(D)))


def has_pivot(law: Law) -> bool:
    return all(a in law.param_names and b in law.param_names for a, b in PIVOTS)


def pivot_centre(law: Law, N, D, estimates: list[dict], group) -> tuple[float, float]:
    """The log N and log D at which each group's reducible terms are measured independently of
    their exponents, averaged over groups.

    With Sigma the covariance of phi = log theta (``_jacobian``), the shear x_A = log A - alpha n_c
    has cov(x_A, alpha) = 0 at

        n_c = cov(log A, alpha) / var(alpha) = Sigma_(log A, log alpha) / (alpha Sigma_(log alpha, log alpha)),

    likewise d_c with (B, beta). ``estimates`` are point estimates of each group's law (``group``
    indexes them per run); the centre is the mean of the groups' (n_c, d_c), one for all groups so
    that the partially pooled coordinates mean the same in every group. On Marin it sits near
    N = 1.3e8 and D = 5e8, far below the mean log N and log D (1.3e9, 8e9). Laws without those
    pairs: ``mean_centre``."""
    if not has_pivot(law):
        return mean_centre(law, N, D)
    N, D, group = np.asarray(N, float), np.asarray(D, float), np.asarray(group)
    names, fn = law.param_names, _log_coordinates(law)
    pivots = []
    for g, theta in enumerate(estimates):
        rows = group == g
        phi = np.log([float(np.squeeze(theta[p])) for p in names])
        J = _jacobian(fn, phi, N[rows], D[rows])
        cov = np.linalg.pinv(J.T @ J)
        pivots.append([cov[names.index(a), names.index(b)] / (cov[names.index(b), names.index(b)] * np.exp(phi[names.index(b)]))
                       for a, b in PIVOTS])
    n_c, d_c = np.mean(pivots, axis=0)
    return float(n_c), float(d_c)


def auto_centring(law: Law, N, D, log_loss, estimates: list[dict], group, centre, spreads: Mapping[str, float],
                  spread_prior: str = DEFAULT_SPREAD_PRIOR, basis=None) -> dict:
    """Per group and parameter, how far to centre its parameterisation: lambda_gk in [0, 1].

    For x_g ~ Normal(mu, tau^2) observed through data with standard error s_g, the sampler's best
    coordinates are the partially centred z_g = lambda_g mu + tau^(lambda_g - 1) (x_g - mu) with
    lambda_g = tau^2 / (tau^2 + s_g^2) (Papaspiliopoulos, Roberts & Skold 2007; Gorinova, Moore &
    Hoffman 2020): centred (lambda = 1) where the group's data pin x_g down, non-centred (0) where
    the population does. Here s_gk is the Laplace standard error of the latent coordinate x_gk at
    the group's point estimate (the Jacobian of its runs' log-losses in the law's latent
    coordinates, sigma from its residuals), and tau_k^2 the DerSimonian-Laird estimate of the
    between-group variance of the point estimates (``between_group_variance``), at most the square
    of the prior median of tau_k (``SPREAD_PRIOR_MEDIAN`` x s_k): a sparse group's wild point
    estimate must not make the others centred where tau may be small, which is a funnel. Returns
    {parameter: lambda per group} for the parameters in ``spreads``; with ``basis`` (G x m, the
    deviations' C of ``models.hierarchical.mean_deviations``) the lambda of each coordinate
    d_j = (C^T x)_j instead, whose squared standard error is sum_g C_gj^2 s_gk^2: {parameter:
    lambda per coordinate}."""
    N, D, log_loss, group = (np.asarray(v, float) for v in (N, D, log_loss, group))
    centre = tuple(float(c) for c in centre)
    names = law.param_names

    def fn(x, N, D):
        theta = natural_from_latent(law, law.default_priors(), {p: x[i] for i, p in enumerate(names)}, centre)
        return law.log_loss(theta, N, D)

    xs, ses = [], []
    for g, estimate in enumerate(estimates):
        theta = {k: float(np.squeeze(v)) for k, v in estimate.items()}
        rows = group == g
        resid = log_loss[rows] - np.asarray(law.log_loss(theta, N[rows], D[rows]))
        sigma = np.sqrt(np.mean(resid**2))
        latent = latent_from_natural(law, theta, centre)
        x = np.array([float(latent[p]) for p in names])
        J = _jacobian(fn, x, N[rows], D[rows])
        ses.append(np.sqrt(np.diag(sigma**2 * np.linalg.pinv(J.T @ J))))
        xs.append(x)
    xs, ses = np.array(xs), np.array(ses)
    tau2 = between_group_variance(xs, ses)
    medians = SPREAD_PRIOR_MEDIAN[spread_prior] * np.array([spreads.get(k, 0.0) for k in names])
    tau2 = np.minimum(tau2, medians**2)
    se2 = ses**2 if basis is None else (np.asarray(basis) ** 2).T @ ses**2
    lam = tau2 / (tau2 + se2)
    return {k: lam[:, names.index(k)] for k in spreads}


def between_group_variance(xs: np.ndarray, ses: np.ndarray) -> np.ndarray:
    """DerSimonian-Laird: estimates x_gk with standard errors s_gk, weights w_g = 1/s_gk^2,
    Q = sum_g w_g (x_gk - xbar_k)^2 around the weighted mean, and
    tau_k^2 = max(0, (Q - (G - 1)) / (sum w - sum w^2 / sum w)): groups with poor data count little."""
    if len(xs) < 2:
        return np.zeros(xs.shape[1])
    w = 1.0 / ses**2
    mean = np.sum(w * xs, axis=0) / np.sum(w, axis=0)
    q = np.sum(w * (xs - mean) ** 2, axis=0)
    scale = np.sum(w, axis=0) - np.sum(w**2, axis=0) / np.sum(w, axis=0)
    return np.maximum((q - (len(xs) - 1)) / scale, 0.0)
