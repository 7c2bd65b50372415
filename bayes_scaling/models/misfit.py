"""The misfit-aware model: the law plus the planner's discrepancy term, marginalised out.

    theta ~ the law's priors,   sigma ~ its prior,
    y ~ N( mu(theta),  (kappa^2 sigma^2 + tau_0^2) B + c sigma^2 I ),

written in the eigenbasis B = Q diag(lambda) Q' (computed once per data set): with f = Q'(y - mu)
and v_i = (kappa^2 sigma^2 + tau_0^2) lambda_i + c sigma^2 the log density is
-1/2 sum_i [f_i^2 / v_i + log(2 pi v_i)] (``design.misfit_fit`` states the model and its settings).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro

from bayes_scaling.laws.base import Law


def misfit_model(law: Law, priors, N, D, centre, log_loss, Q, lam, kappa2, tau02, noise_factor):
    """NumPyro model: the law's priors, then the marginal Gaussian likelihood in B's eigenbasis."""
    theta = law.sample(priors, centre)
    sigma = numpyro.sample("sigma", priors["sigma"])
    resid = log_loss - law.log_loss(theta, N, D)
    f = Q.T @ resid
    v = (kappa2 * sigma**2 + tau02) * lam + noise_factor * sigma**2
    numpyro.factor("log_loss", -0.5 * jnp.sum(f**2 / v + jnp.log(2.0 * jnp.pi * v)))
