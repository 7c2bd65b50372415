"""The pooled model: one law for all runs.

    theta ~ priors (on the law's natural parameters; sampled in the law's centred coordinates)
    log L_i ~ likelihood(log L(N_i, D_i; theta), sigma)      (``models.likelihood``)

The likelihood is on log-loss, as in Chinchilla's Approach 3, so sigma is a relative error; the
Student-t tails (default) keep a few bad runs from dragging the law (the Bayesian analogue of
Approach 3's Huber loss). ``mask`` switches observations off without changing shapes, so a refit
with more runs (padded to a fixed capacity) reuses compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpyro
from numpyro import handlers

from bayes_scaling.laws.base import Law
from bayes_scaling.models.likelihood import DEFAULT_NU, Likelihood


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the pooled model apart from the data."""

    law: Law
    priors: dict = field(hash=False)
    likelihood: str = "student_t"
    nu: float = DEFAULT_NU

    def __post_init__(self):
        Likelihood(self.likelihood, self.nu)  # checks both

    @property
    def noise_model(self) -> Likelihood:
        return Likelihood(self.likelihood, self.nu)

    def noise(self, mu, sigma):
        return self.noise_model.distribution(mu, sigma)


def pooled_model(spec: ModelSpec, N, D, centre, log_loss=None, mask=None):
    """One law for all runs. ``centre = (mean log N, mean log D)`` of the fitted runs."""
    theta = spec.law.sample(spec.priors, centre)
    sigma = numpyro.sample("sigma", spec.priors["sigma"])
    mu = spec.law.log_loss(theta, N, D)
    with numpyro.plate("runs", N.shape[0]), handlers.mask(mask=True if mask is None else mask):
        numpyro.sample("log_loss", spec.noise(mu, sigma), obs=log_loss)


def data_centre(N, D) -> tuple:
    """(mean log N, mean log D): where the law's sampling coordinates are centred."""
    return jnp.mean(jnp.log(N)), jnp.mean(jnp.log(D))
