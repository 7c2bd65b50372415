"""Chinchilla's law (Hoffmann et al. 2022): L(N, D) = E + A / N^alpha + B / D^beta.

Compute-optimal allocation under C = 6 N D (closed form, Hoffmann et al. Appendix D.2):

    G = (alpha A / (beta B))^(1 / (alpha + beta)),  a = beta / (alpha + beta),  b = alpha / (alpha + beta)
    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b.

Along the frontier both reducible terms fall as (C/6)^(-alpha beta / (alpha + beta)), so

    L_opt(C) = E + K (C/6)^(-alpha beta / (alpha + beta)),   K = A G^-alpha + B G^beta,

and the budget that reaches a target loss L > E is C = 6 (K / (L - E))^((alpha + beta) / (alpha beta)).

Sampling coordinates. A and alpha are nearly non-identified apart: only A N^-alpha over the data's
range of N is measured. NUTS therefore samples log E, log alpha, log beta and the *log contributions
at the data centre*, log(A N_c^-alpha) and log(B D_c^-beta); the map to (log A, log alpha) is a shear
with unit Jacobian, so the priors below stay priors on the natural parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import logsumexp

from bayes_scaling.laws.base import FLOPS_PER_PARAM_TOKEN, Law, Theta, sample_log_positive


class Chinchilla(Law):
    name = "chinchilla"
    param_names = ("E", "A", "B", "alpha", "beta")

    def log_loss(self, theta: Theta, N, D):
        terms = jnp.stack(
            jnp.broadcast_arrays(
                jnp.log(theta["E"]),
                jnp.log(theta["A"]) - theta["alpha"] * jnp.log(N),
                jnp.log(theta["B"]) - theta["beta"] * jnp.log(D),
            )
        )
        return logsumexp(terms, axis=0)

    def default_priors(self) -> dict[str, dist.Distribution]:
        """Weakly informative, on the natural scale (losses in nats per token or similar):

        E ~ LogNormal(log 1.5, 0.75)       95%: 0.35 .. 6.5
        A, B ~ LogNormal(log 1000, 3)      95%: 2.8 .. 3.6e5
        alpha, beta ~ LogNormal(log 0.3, 0.6)   95%: 0.09 .. 0.97
        """
        return {
            "E": dist.LogNormal(math.log(1.5), 0.75),
            "A": dist.LogNormal(math.log(1000.0), 3.0),
            "B": dist.LogNormal(math.log(1000.0), 3.0),
            "alpha": dist.LogNormal(math.log(0.3), 0.6),
            "beta": dist.LogNormal(math.log(0.3), 0.6),
        }

    def sample(self, priors: Mapping[str, dist.Distribution], centre):
        E = sample_log_positive("E", priors["E"])
        return {"E": E, **self.sample_reducible(priors, centre)}

    @staticmethod
    def sample_reducible(priors: Mapping[str, dist.Distribution], centre) -> dict:
        """A, B, alpha, beta in the centred coordinates (shared with the fixed-E variant)."""
        log_n_c, log_d_c = centre
        alpha = sample_log_positive("alpha", priors["alpha"])
        beta = sample_log_positive("beta", priors["beta"])
        A = sample_log_positive("A", priors["A"], shift=alpha * log_n_c)
        B = sample_log_positive("B", priors["B"], shift=beta * log_d_c)
        return {"A": A, "B": B, "alpha": alpha, "beta": beta}

    def latent_from_natural(self, theta: Theta, centre):
        log_n_c, log_d_c = centre
        return {
            "E_latent": jnp.log(theta["E"]),
            "alpha_latent": jnp.log(theta["alpha"]),
            "beta_latent": jnp.log(theta["beta"]),
            "A_latent": jnp.log(theta["A"]) - theta["alpha"] * log_n_c,
            "B_latent": jnp.log(theta["B"]) - theta["beta"] * log_d_c,
        }

    # --- closed-form frontier -----------------------------------------------------------------
    @staticmethod
    def _allocation_constants(theta: Theta):
        alpha, beta = theta["alpha"], theta["beta"]
        G = (alpha * theta["A"] / (beta * theta["B"])) ** (1.0 / (alpha + beta))
        return G, beta / (alpha + beta), alpha / (alpha + beta)

    def optimal_allocation(self, theta: Theta, C):
        G, a, b = self._allocation_constants(theta)
        c6 = jnp.asarray(C) / FLOPS_PER_PARAM_TOKEN
        return G * c6**a, c6**b / G

    def _frontier_coefficient(self, theta: Theta):
        G, _, _ = self._allocation_constants(theta)
        K = theta["A"] * G ** (-theta["alpha"]) + theta["B"] * G ** theta["beta"]
        gamma = theta["alpha"] * theta["beta"] / (theta["alpha"] + theta["beta"])
        return K, gamma

    def optimal_loss(self, theta: Theta, C):
        K, gamma = self._frontier_coefficient(theta)
        return theta["E"] + K * (jnp.asarray(C) / FLOPS_PER_PARAM_TOKEN) ** (-gamma)

    def budget_for_loss(self, theta: Theta, target_loss):
        K, gamma = self._frontier_coefficient(theta)
        gap = jnp.asarray(target_loss) - theta["E"]
        safe_gap = jnp.where(gap > 0, gap, 1.0)
        budget = FLOPS_PER_PARAM_TOKEN * (K / safe_gap) ** (1.0 / gamma)
        return jnp.where(gap > 0, budget, jnp.inf)


# Published point estimates, for reference lines and reproductions.
HOFFMANN_2022 = {"E": 1.69337, "A": 406.401, "B": 410.723, "alpha": 0.33917, "beta": 0.28491}
EPOCH_2024 = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
