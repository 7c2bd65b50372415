"""The misfit-aware model as a *fit*: the law plus the planner's discrepancy term in the likelihood.

The planner's misfit-aware utility (``design.discrepancy``) scores candidates under

    y = mu(theta) + delta + eps,   delta ~ N(0, tau^2 B),   eps ~ N(0, r I),

with B = G A G the unit-sd kernel over the runs (squared-exponential in (log10 N, log10 D), length l,
amplitude g(u) = 10^(gamma (u_ref - u)) below the reference scale u_ref), but its posterior draws
come from the plain law (``design.refit``). This module fits the same observation model, with the
discrepancy marginalised out (a multivariate normal on the log-losses):

    theta ~ the law's priors,   sigma ~ its prior (HalfNormal(0.1)),
    y ~ N( mu(theta),  (kappa^2 sigma^2 + tau_0^2) B + c sigma^2 I ),

* ``kappa`` (the planner's fixed prior, ``discrepancy=kappa``): tau = kappa x sigma, as the
  planner sets tau = kappa x the posterior median of sigma;
* ``tau_0`` (the planner's ``discrepancy="auto"``): tau fixed at the value fitted to residuals by
  ``fit_discrepancy`` (empirical Bayes), kappa = 0;
* c = nu / (nu - 2) (5/3 for nu = 5): the planner's utility takes the observation-noise variance
  r = E[sigma^2] nu / (nu - 2) of the Student-t likelihood, so the Gaussian here has the same
  variance (``normal=True``, c = 1, treats sigma as a Gaussian sd).

With B = Q diag(lambda) Q' computed once per data set (it does not depend on theta or sigma), the
log density is -1/2 sum_i [f_i^2 / v_i + log(2 pi v_i)], f = Q'(y - mu), v_i = (kappa^2 sigma^2 +
tau_0^2) lambda_i + c sigma^2: O(n^2) per gradient, no Cholesky. With kappa = tau_0 = 0 it is the
plain law with Gaussian noise of variance c sigma^2 (a test checks the density against SciPy's
multivariate normal).

Sampling: NumPyro's NUTS with a dense mass matrix started at the Laplace approximation
(``fitting.nuts.laplace_inverse_mass``), chains started at the projection estimate jittered, as the
plain fit does.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import MCMC, NUTS

from bayes_scaling.design.discrepancy import Discrepancy, coordinates
from bayes_scaling.design.refit import as_runs
from bayes_scaling._jax_setup import configure
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.nuts import (
    TARGET_ACCEPT,
    jittered_init,
    laplace_inverse_mass,
)
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU
from bayes_scaling.priors import resolve_priors


@dataclass(frozen=True)
class MisfitModel:
    """The discrepancy's settings for a fit: tau = kappa x sigma + (in quadrature) a fixed tau_0;
    growth gamma per decade of compute below ``reference`` (log10 C); correlation ``length``
    (decades of N and of D)."""

    kappa: float = 0.0
    tau0: float = 0.0
    growth: float = 0.5
    length: float = 0.5
    reference: float = 0.0

    def __post_init__(self):
        if not (self.kappa >= 0 and self.tau0 >= 0 and self.growth >= 0 and self.length > 0):
            raise InputError(f"misfit model needs kappa, tau0, growth >= 0 and length > 0, got {self}")

    @classmethod
    def from_discrepancy(cls, discrepancy: Discrepancy) -> MisfitModel:
        """The fitted ("auto") term: tau fixed at its empirical-Bayes value."""
        return cls(kappa=0.0, tau0=discrepancy.scale, growth=discrepancy.growth, length=discrepancy.length,
                   reference=discrepancy.reference)

    def unit_kernel(self, N, D, cost) -> np.ndarray:
        """B: the kernel with unit sd at and above the reference scale, over the runs."""
        where = coordinates(N, D, cost)
        return Discrepancy(1.0, self.length, self.growth, self.reference).kernel(where, where)


def misfit_model(law: Law, priors, centre, N, D, log_loss, Q, lam, kappa2, tau02, noise_factor):
    """NumPyro model: the law's priors, then the marginal Gaussian likelihood in B's eigenbasis."""
    theta = law.sample(priors, centre)
    sigma = numpyro.sample("sigma", priors["sigma"])
    resid = log_loss - law.log_loss(theta, N, D)
    f = Q.T @ resid
    v = (kappa2 * sigma**2 + tau02) * lam + noise_factor * sigma**2
    numpyro.factor("log_loss", -0.5 * jnp.sum(f**2 / v + jnp.log(2.0 * jnp.pi * v)))


def log_density(law: Law, theta: dict, sigma: float, N, D, loss, model: MisfitModel, *, nu: float = DEFAULT_NU,
                normal: bool = False) -> float:
    """The marginal log-likelihood of the log-losses given theta and sigma (for tests and checks)."""
    N, D, loss = (np.asarray(x, np.float64) for x in (N, D, loss))
    lam, Q = np.linalg.eigh(model.unit_kernel(N, D, 6.0 * N * D))
    lam = np.maximum(lam, 0.0)
    f = Q.T @ (np.log(loss) - np.asarray(law.log_loss(theta, N, D)))
    v = (model.kappa**2 * sigma**2 + model.tau0**2) * lam + _noise_factor(nu, normal) * sigma**2
    return float(-0.5 * np.sum(f**2 / v + np.log(2.0 * np.pi * v)))


def fit_misfit(N, D, loss, model: MisfitModel, *, law: Law | str = "chinchilla", priors=None, cost=None,
               nu: float = DEFAULT_NU, normal: bool = False, num_chains: int = 2, num_warmup: int = 300,
               num_draws: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior draws of the law's natural parameters and sigma under the misfit model:
    ``{E, A, B, alpha, beta, sigma} -> (chains * draws,)``. ``cost`` defaults to 6ND."""
    configure()
    law = get_law(law) if isinstance(law, str) else law
    N, D, loss = (np.asarray(x, np.float64) for x in (N, D, loss))
    n = len(N)
    if n < len(law.param_names) + 1:
        raise InputError(f"need at least {len(law.param_names) + 1} runs to fit, got {n}")
    cost = 6.0 * N * D if cost is None else np.asarray(cost, np.float64)
    lam, Q = np.linalg.eigh(model.unit_kernel(N, D, cost))
    resolved = resolve_priors(law, priors)
    runs = as_runs(N, D, loss)
    centre = (float(np.mean(np.log(N))), float(np.mean(np.log(D))))
    args = (law, resolved, centre, jnp.asarray(N), jnp.asarray(D), jnp.asarray(np.log(loss)), jnp.asarray(Q),
            jnp.asarray(np.maximum(lam, 0.0)), model.kappa**2, model.tau0**2, _noise_factor(nu, normal))
    init = jittered_init(law, initial_theta(law, runs), centre, runs, num_chains, seed)
    inverse_mass = laplace_inverse_mass(misfit_model, args, {k: v[0] for k, v in init.items()})
    kernel = NUTS(misfit_model, dense_mass=True, regularize_mass_matrix=False, target_accept_prob=TARGET_ACCEPT,
                  inverse_mass_matrix=inverse_mass)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_draws, num_chains=num_chains,
                chain_method="parallel" if jax.device_count() >= num_chains else "sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), *args, init_params=init)
    samples = mcmc.get_samples()
    return {k: np.asarray(samples[k]).reshape(-1) for k in (*law.param_names, "sigma")}


def _noise_factor(nu: float, normal: bool) -> float:
    """Var(eps) / sigma^2 of the plain likelihood that the planner's utility moment-matches."""
    if normal:
        return 1.0
    return nu / (nu - 2.0) if nu > 2 else 1e3
