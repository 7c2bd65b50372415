"""NumPyro models built from a law: a model is a plain function of the data.

Pooled model, for runs i = 1..n:

    theta ~ priors (on the law's natural parameters; sampled in the law's centred coordinates)
    log L_i ~ StudentT(nu, log L(N_i, D_i; theta), sigma)     (likelihood="student_t", default nu=5)
    log L_i ~ Normal(log L(N_i, D_i; theta), sigma)           (likelihood="normal")

The likelihood is on log-loss, as in Chinchilla's Approach 3, so sigma is a relative error; the
Student-t tails keep a few bad runs from dragging the law (the Bayesian analogue of Approach 3's
Huber loss). ``mask`` switches observations off without changing shapes, so a refit with more runs
(padded to a fixed capacity) reuses compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Law

LIKELIHOODS = ("student_t", "normal")
DEFAULT_NU = 5.0


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the pooled model apart from the data."""

    law: Law
    priors: dict = field(hash=False)
    likelihood: str = "student_t"
    nu: float = DEFAULT_NU

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise InputError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        if not self.nu > 0:
            raise InputError(f"Student-t degrees of freedom nu must be positive, got {self.nu}")

    def noise(self, mu, sigma) -> dist.Distribution:
        if self.likelihood == "normal":
            return dist.Normal(mu, sigma)
        return dist.StudentT(self.nu, mu, sigma)


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
