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

Sampling: the shared NUTS driver (``fitting.sampler``: a dense mass matrix started at the Laplace
approximation, compiled programs cached per model and data shape), chains started at the projection
estimate jittered, as the plain fit does. The model function is ``models.misfit.misfit_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from bayes_scaling.design.discrepancy import Discrepancy, coordinates
from bayes_scaling.design.refit import as_runs
from bayes_scaling._jax_setup import configure
from bayes_scaling.errors import InputError
from bayes_scaling.fitting import sampler, sampler_cache
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.nuts import jittered_init
from bayes_scaling.fitting.settings import SamplerSettings
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models.likelihood import DEFAULT_NU, Likelihood
from bayes_scaling.models.misfit import misfit_model  # noqa: F401 -- the model, re-exported here
from bayes_scaling.priors import resolve_priors

SAMPLER_DEFAULTS = SamplerSettings(chains=2, warmup=300, draws=300, retry_divergent=False)


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
               nu: float = DEFAULT_NU, normal: bool = False, settings: SamplerSettings | None = None,
               num_chains: int | None = None, num_warmup: int | None = None, num_draws: int | None = None,
               seed: int | None = None) -> dict[str, np.ndarray]:
    """Posterior draws of the law's natural parameters and sigma under the misfit model:
    ``{E, A, B, alpha, beta, sigma} -> (chains * draws,)``. ``cost`` defaults to 6ND. ``settings``
    (``SamplerSettings``; default 2 chains x (300 + 300)), or its fields by their older names."""
    configure()
    s = SamplerSettings.resolve(settings, SAMPLER_DEFAULTS, num_chains=num_chains, num_warmup=num_warmup,
                                num_draws=num_draws, seed=seed)
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
    data = (N, D, np.asarray(centre), np.log(loss), Q, np.maximum(lam, 0.0), np.float64(model.kappa**2),
            np.float64(model.tau0**2), np.float64(_noise_factor(nu, normal)))
    init = jittered_init(law, initial_theta(law, runs), centre, runs, s.chains, s.seed)
    description = ("misfit", law.name, sampler_cache.law_source_digest(law),
                   sorted((k, sampler_cache.prior_fingerprint(v)) for k, v in resolved.items()))
    draws = sampler.sample(partial(misfit_model, law, resolved), init, data, description=description, settings=s)
    return {k: np.asarray(draws.samples[k]).reshape(-1) for k in (*law.param_names, "sigma")}


def _noise_factor(nu: float, normal: bool) -> float:
    """Var(eps) / sigma^2 of the plain likelihood that the planner's utility moment-matches."""
    return Likelihood("normal" if normal else "student_t", nu).variance_factor()
