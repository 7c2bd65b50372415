"""The pooled model: one law for all runs.

    theta ~ priors (on the law's natural parameters; sampled in the law's centred coordinates)
    log L_i ~ likelihood(log L(N_i, D_i; theta), sigma)      (``models.likelihood``)

With ``misfit_noise`` the scale is each run's own, growing with the distance of its tokens per
parameter r_i = D_i / N_i beyond the band [lo, hi] of the fitted runs' ln r (their quartiles,
``likelihood.misfit_band``; the data argument ``band``; ``likelihood.misfit_scale``):

    s_i^2 = sigma^2 + (k_under max(0, lo - ln r_i))^2 + (k_over max(0, ln r_i - hi))^2,
    k_under, k_over ~ HalfNormal(MISFIT_PRIOR_SCALE)

(k = 0 is the plain model; the runs inside the band pin sigma, the core spread).

The likelihood is on log-loss, as in Chinchilla's Approach 3, so sigma is a relative error; the
Student-t tails (default) keep a few bad runs from dragging the law (the Bayesian analogue of
Approach 3's Huber loss). ``mask`` switches observations off without changing shapes, so a refit
with more runs (padded to a fixed capacity) reuses compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

from bayes_scaling.laws.base import Law
from bayes_scaling.models import likelihood as likelihood_module
from bayes_scaling.models.likelihood import DEFAULT_NU, MISFIT_SITES, Likelihood, misfit_scale


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the pooled model apart from the data."""

    law: Law
    priors: dict = field(hash=False)
    likelihood: str = "student_t"
    nu: float = DEFAULT_NU
    misfit_noise: bool = False  # per-run noise growing with |ln(D/N) - c| (module docstring)

    def __post_init__(self):
        Likelihood(self.likelihood, self.nu)  # checks both

    @property
    def noise_model(self) -> Likelihood:
        return Likelihood(self.likelihood, self.nu)

    def noise(self, mu, sigma):
        return self.noise_model.distribution(mu, sigma)


def pooled_model(spec: ModelSpec, N, D, centre, log_loss=None, mask=None, band=None):
    """One law for all runs. ``centre = (mean log N, mean log D)`` of the fitted runs; ``band``
    ([lo, hi] of ln(D/N)): the misfit term's band, with ``spec.misfit_noise`` only."""
    theta = spec.law.sample(spec.priors, centre)
    sigma = numpyro.sample("sigma", spec.priors["sigma"])
    mu = spec.law.log_loss(theta, N, D)
    if spec.misfit_noise:
        prior = dist.HalfNormal(likelihood_module.MISFIT_PRIOR_SCALE)  # read when traced (experiments vary it)
        k_under, k_over = (numpyro.sample(site, prior) for site in MISFIT_SITES)
        sigma = misfit_scale(sigma, k_under, k_over, jnp.log(D) - jnp.log(N), band)
    with numpyro.plate("runs", N.shape[0]), handlers.mask(mask=True if mask is None else mask):
        numpyro.sample("log_loss", spec.noise(mu, sigma), obs=log_loss)


def data_centre(N, D) -> tuple:
    """(mean log N, mean log D): where the law's sampling coordinates are centred."""
    return jnp.mean(jnp.log(N)), jnp.mean(jnp.log(D))
