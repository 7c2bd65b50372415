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
                  spread_prior: str = DEFAULT_SPREAD_PRIOR) -> dict:
    """Per group and parameter, how far to centre its parameterisation: lambda_gk in [0, 1].

    For x_g ~ Normal(mu, tau^2) observed through data with standard error s_g, the sampler's best
    coordinates are the partially centred z_g = lambda_g mu + tau^(lambda_g - 1) (x_g - mu) with
    lambda_g = tau^2 / (tau^2 + s_g^2) (Papaspiliopoulos, Roberts & Skold 2007; Gorinova, Moore &
    Hoffman 2020): centred (lambda = 1) where the group's data pin x_g down, non-centred (0) where
    the population does. Here s_gk is the Laplace standard error of the latent coordinate x_gk at
    the group's point estimate (``group_estimates``), and tau_k^2 the DerSimonian-Laird estimate of
    the between-group variance of the point estimates (``between_group_variance``), at most the square
    of the prior median of tau_k (``SPREAD_PRIOR_MEDIAN`` x s_k): a sparse group's wild point
    estimate must not make the others centred where tau may be small, which is a funnel. Returns
    {parameter: lambda per group} for the parameters in ``spreads``."""
    names = law.param_names
    xs, ses = group_estimates(law, N, D, log_loss, estimates, group, centre)
    tau2 = between_group_variance(xs, ses)
    medians = SPREAD_PRIOR_MEDIAN[spread_prior] * np.array([spreads.get(k, 0.0) for k in names])
    tau2 = np.minimum(tau2, medians**2)
    lam = tau2 / (tau2 + ses**2)
    return {k: lam[:, names.index(k)] for k in spreads}


def deviation_centring(law: Law, N, D, log_loss, estimates: list[dict], group, centre, spreads: Mapping[str, float],
                       spread_prior: str, basis) -> dict:
    """The lambda of each group deviation d_jk = (C^T x_k)_j (``basis`` C, G x (G - 1); the
    coordinates of ``models.hierarchical``'s ``mean_deviations``), lambda = tau_k^2 / (tau_k^2 +
    s_jk^2) with s_jk^2 = sum_g C_gj^2 s_gk^2 (``group_estimates``) and tau_k the posterior mode of
    the spread given the point estimates' deviations, d_jk ~ Normal(0, tau_k^2 + s_jk^2), under its
    prior (``spread_prior`` with scale s_k; ``deviation_spread``). With three groups the data say
    little about tau_k and its prior dominates: the zero-avoiding Gamma prior keeps tau_k from the
    DerSimonian-Laird estimate's 0, which would make well-measured deviations non-centred (a funnel
    in tau_k). Returns {parameter: lambda per coordinate} for the parameters in ``spreads``."""
    names = law.param_names
    xs, ses = group_estimates(law, N, D, log_loss, estimates, group, centre)
    C = np.asarray(basis, float)
    d, se2 = C.T @ xs, (C**2).T @ ses**2  # (G - 1, P)
    out = {}
    for k, scale in spreads.items():
        i = names.index(k)
        tau = deviation_spread(d[:, i], se2[:, i], spread_prior, scale)
        out[k] = tau**2 / (tau**2 + se2[:, i])
    return out


def deviation_spread(d, se2, spread_prior: str, scale: float) -> float:
    """argmax over tau of log p(tau) + sum_j log Normal(d_j; 0, tau^2 + se2_j), on a log grid from
    1e-4 s to 10 s (p: ``spread_distribution(spread_prior, scale)``)."""
    from bayes_scaling.models.hierarchical import spread_distribution

    grid = scale * np.geomspace(1e-4, 10.0, 2001)
    var = grid[:, None] ** 2 + np.asarray(se2)[None, :]
    loglik = -0.5 * np.sum(np.log(var) + np.asarray(d)[None, :] ** 2 / var, axis=1)
    prior = np.asarray(spread_distribution(spread_prior, scale).log_prob(grid))
    return float(grid[np.argmax(loglik + prior)])


def group_estimates(law: Law, N, D, log_loss, estimates: list[dict], group, centre) -> tuple[np.ndarray, np.ndarray]:
    """Each group's latent coordinates x_gk at its point estimate and their Laplace standard errors
    s_gk (the Jacobian of its runs' log-losses in the law's latent coordinates, sigma from its
    residuals): two (G, P) arrays."""
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
    return np.array(xs), np.array(ses)


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
