"""Model discrepancy for the planner's utility: the law is not exact, and its misfit is shared by
nearby runs and larger for small ones.

Observation model used to *score* candidates (the fit itself stays the plain law):

    y_x = mu_x(theta) + delta(x) + eps_x,     eps_x ~ noise of variance r,
    delta ~ GP(0, k),   k(x, x') = tau^2 g(u_x) g(u_x') exp(-|z_x - z_x'|^2 / (2 l^2)),

with z = (log10 N, log10 D) and u = log10 C. delta is the law's misfit as a smooth function of the
run (Chinchilla's small runs sit off the law that the large ones follow); g(u) = 10^(gamma (u_ref
- u)) for u < u_ref (1 above) lets it grow by 10^gamma per decade of compute below the reference
scale u_ref, the largest run in sight. Effect on design: runs near each other share delta, so
piling up cheap runs in one region cannot average it away, and the information a region carries
about theta is bounded by its misfit variance. The planner has to move to larger, cleaner runs.
With tau = 0 everything reduces to independent noise r.

Done runs. The posterior draws theta_s come from the plain fit to the n done runs D. Given theta,
their residuals y_D - mu_D(theta) reveal delta_D + eps_D, so a new observation is, given theta and
y_D (Gaussian conditioning),

    y_x | theta, y_D ~ N( mu_x(theta) - w_x' mu_D(theta) + const,  s_xx ),
    w_x = Sigma_D^-1 k_Dx,   Sigma_D = K_DD + r I,   s_xy = k_xy + r [x = y] - k_xD Sigma_D^-1 k_Dy.

A candidate's information about the target comes from its *innovation* a_x(theta) = mu_x(theta) -
w_x' mu_D(theta), observed with the correlated noise covariance s (``innovations``). A run next to
done runs has a_x close to zero and s_xx close to r: it adds little.

Hyperparameters (``fit_discrepancy``): tau, gamma and the white-noise sd are chosen by maximum
marginal likelihood (type-II, empirical Bayes) of the done runs' residuals under the posterior-mean
law, e ~ N(0, tau^2 G A G + s^2 I), with gamma from a small grid. When the law fits (simulated
data) the residuals are white, tau comes out near zero and the planner is the plain one; on real
data with structured misfit it does not. The length l is fixed (half a decade by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from bayes_scaling.errors import InputError

GROWTHS = (0.0, 0.25, 0.5)  # gamma grid for the empirical-Bayes fit (per decade of compute)


@dataclass(frozen=True)
class Discrepancy:
    """Squared-exponential misfit over z = (log10 N, log10 D): sd ``scale`` (tau, log-loss units)
    at and above the ``reference`` scale (log10 C), growing by 10^``growth`` per decade below it;
    correlation length ``length`` decades."""

    scale: float
    length: float = 0.5
    growth: float = 0.0
    reference: float = 0.0

    def __post_init__(self):
        if not self.scale >= 0 or not self.length > 0 or not self.growth >= 0:
            raise InputError(f"discrepancy needs scale >= 0, length > 0 and growth >= 0, got {self.scale}, "
                             f"{self.length} and {self.growth}")

    def amplitude(self, u: np.ndarray) -> np.ndarray:
        """g(u) = 10^(growth x decades below the reference scale)."""
        return 10.0 ** (self.growth * np.maximum(self.reference - np.asarray(u, np.float64), 0.0))

    def kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """k(x_i, y_j) for rows (log10 N, log10 D, log10 C): (len(x), len(y))."""
        x, y = np.atleast_2d(np.asarray(x, np.float64)), np.atleast_2d(np.asarray(y, np.float64))
        d2 = sum(np.subtract.outer(x[:, j], y[:, j]) ** 2 for j in range(2))
        return self.scale**2 * np.outer(self.amplitude(x[:, 2]), self.amplitude(y[:, 2])) * np.exp(-0.5 * d2 / self.length**2)


def coordinates(N, D, cost) -> np.ndarray:
    """Rows (log10 N, log10 D, log10 C): where the discrepancy is evaluated."""
    return np.column_stack([np.log10(N), np.log10(D), np.log10(cost)])


def innovations(mu: np.ndarray, where: np.ndarray, noise_var: float, discrepancy: Discrepancy | None,
                mu_done: np.ndarray | None = None, where_done: np.ndarray | None = None):
    """(a, s): the innovation columns a (S, K) and their noise covariance s (K, K), see the module
    docstring. Without a discrepancy a = mu and s = r I; without done runs a = mu and s = K + r I."""
    mu = np.asarray(mu, np.float64)
    K = mu.shape[1]
    if discrepancy is None or discrepancy.scale == 0:
        return mu, noise_var * np.eye(K)
    s = discrepancy.kernel(where, where) + noise_var * np.eye(K)
    if mu_done is None or np.shape(mu_done)[1] == 0:
        return mu, s
    sigma_done = discrepancy.kernel(where_done, where_done) + noise_var * np.eye(len(where_done))
    k_done = discrepancy.kernel(where_done, where)  # (n, K)
    W = np.linalg.solve(sigma_done, k_done)  # column x holds w_x
    return mu - np.asarray(mu_done, np.float64) @ W, s - k_done.T @ W


def fit_discrepancy(residuals: np.ndarray, where: np.ndarray, *, reference: float, length: float = 0.5,
                    growths=GROWTHS) -> tuple[Discrepancy, float]:
    """Type-II maximum likelihood of residuals e ~ N(0, tau^2 B + s^2 I), B = G A G, over (tau, s)
    for each growth gamma in ``growths``; returns the best Discrepancy and its white-noise sd s.

    With B = Q diag(lambda) Q' (one eigendecomposition per gamma) and f = Q'e, the negative log
    likelihood is 1/2 sum_i [f_i^2 / (tau^2 lambda_i + s^2) + log(tau^2 lambda_i + s^2)], O(n) per
    evaluation."""
    e = np.asarray(residuals, np.float64)
    spread = max(float(np.std(e)), 1e-6)
    best = (np.inf, Discrepancy(0.0, length, 0.0, reference), spread)
    for growth in growths:
        lam, Q = np.linalg.eigh(Discrepancy(1.0, length, growth, reference).kernel(where, where))
        lam, f2 = np.maximum(lam, 0.0), (Q.T @ e) ** 2

        def nll(log_params, lam=lam, f2=f2):
            tau2, s2 = np.exp(2 * np.asarray(log_params))
            v = tau2 * lam + s2 + 1e-300
            return 0.5 * np.sum(f2 / v + np.log(v))

        start = np.log([spread / 2 / np.sqrt(max(np.mean(lam), 1e-300)), spread / 2])
        result = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 600})
        if result.fun < best[0]:
            tau, s = np.exp(result.x)
            best = (result.fun, Discrepancy(float(tau), length, growth, reference), float(s))
    return best[1], best[2]
