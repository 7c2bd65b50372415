"""Kaplan et al. (2020), eq. 1.5: L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D.

No irreducible term: the loss falls as a power law in both N and D for ever.

Compute-optimal allocation under C = 6 N D (closed form). Write p = alpha_N / alpha_D,
x = (N_c / N)^p and y = D_c / D = 6 D_c N / C. L = (x + y)^alpha_D is minimised where
d(x + y)/dN = (-p x + y) / N = 0, i.e. y = p x, so

    N_opt(C) = (p N_c^p (C / 6) / D_c)^(1 / (1 + p)),    D_opt = C / (6 N_opt),
    L_opt(C) = ((1 + p) x_opt)^alpha_D,  x_opt = (N_c / N_opt)^p.

Inverting, a target loss L is reached at x = L^(1/alpha_D) / (1 + p): N = N_c x^(-1/p),
D = D_c / (p x), C = 6 N D; every L > 0 is reachable.

Sampling coordinates. The data measure each term near the data centre (log N_c, log D_c of the runs,
written n_c, d_c below), not N_c and D_c far outside it. NUTS samples log alpha_N, log alpha_D,
u_D = log D_c - d_c (a shift) and u_N = p (log N_c - n_c), the log of the N-term at the centre.
The last map scales log N_c by p, so its Jacobian |d log N_c / d u_N| = 1/p enters the density;
the priors stay priors on the natural parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp

from bayes_scaling.laws.base import FLOPS_PER_PARAM_TOKEN, Law, Theta, sample_log_positive

# Kaplan, McCandlish, Henighan, Brown, Chess, Child, Gray, Radford, Wu & Amodei (2020), "Scaling
# Laws for Neural Language Models", arXiv:2001.08361: Table 2, the joint fit of eq. 1.5 (= eq. 4.1)
# to L(N, D). N counts non-embedding parameters, D tokens; loss in nats per token on WebText2 with
# their 50,257-token BPE vocabulary. Not the single-variable constants of eqs. 1.1-1.2 (alpha_N 0.076,
# N_c 8.8e13; alpha_D 0.095, D_c 5.4e13), which describe L(N) and L(D) separately.
KAPLAN_2020 = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}


class Kaplan(Law):
    name = "kaplan"
    param_names = ("N_c", "D_c", "alpha_N", "alpha_D")

    def log_loss(self, theta: Theta, N, D):
        p = theta["alpha_N"] / theta["alpha_D"]
        terms = jnp.stack(
            jnp.broadcast_arrays(
                p * (jnp.log(theta["N_c"]) - jnp.log(N)),
                jnp.log(theta["D_c"]) - jnp.log(D),
            )
        )
        return theta["alpha_D"] * logsumexp(terms, axis=0)

    def default_priors(self) -> dict[str, dist.Distribution]:
        """Centred on Kaplan's fit, wide (their constants depend on tokenizer and data):

        N_c, D_c ~ LogNormal(log Kaplan value, 5)        95%: a factor of 1.8e4 either way
        alpha_N, alpha_D ~ LogNormal(log Kaplan value, 0.75)   95%: a factor of 4.4 either way
        """
        return {
            "N_c": dist.LogNormal(jnp.log(KAPLAN_2020["N_c"]), 5.0),
            "D_c": dist.LogNormal(jnp.log(KAPLAN_2020["D_c"]), 5.0),
            "alpha_N": dist.LogNormal(jnp.log(KAPLAN_2020["alpha_N"]), 0.75),
            "alpha_D": dist.LogNormal(jnp.log(KAPLAN_2020["alpha_D"]), 0.75),
        }

    def sample(self, priors: Mapping[str, dist.Distribution], centre):
        log_n_c, log_d_c = centre
        alpha_N = sample_log_positive("alpha_N", priors["alpha_N"])
        alpha_D = sample_log_positive("alpha_D", priors["alpha_D"])
        D_c = sample_log_positive("D_c", priors["D_c"], shift=log_d_c)
        p = alpha_N / alpha_D
        u_n = numpyro.sample("N_c_latent", dist.ImproperUniform(dist.constraints.real, (), ()))
        log_nc = log_n_c + u_n / p
        numpyro.factor("N_c_prior", priors["N_c"].log_prob(jnp.exp(log_nc)) + log_nc - jnp.log(p))
        N_c = numpyro.deterministic("N_c", jnp.exp(log_nc))
        return {"N_c": N_c, "D_c": D_c, "alpha_N": alpha_N, "alpha_D": alpha_D}

    def latent_from_natural(self, theta: Theta, centre):
        log_n_c, log_d_c = centre
        p = theta["alpha_N"] / theta["alpha_D"]
        return {
            "alpha_N_latent": jnp.log(theta["alpha_N"]),
            "alpha_D_latent": jnp.log(theta["alpha_D"]),
            "D_c_latent": jnp.log(theta["D_c"]) - log_d_c,
            "N_c_latent": p * (jnp.log(theta["N_c"]) - log_n_c),
        }

    # --- closed-form frontier -----------------------------------------------------------------
    def optimal_allocation(self, theta: Theta, C):
        p = theta["alpha_N"] / theta["alpha_D"]
        log_c6 = jnp.log(jnp.asarray(C) / FLOPS_PER_PARAM_TOKEN)
        log_n = (jnp.log(p) + p * jnp.log(theta["N_c"]) + log_c6 - jnp.log(theta["D_c"])) / (1.0 + p)
        return jnp.exp(log_n), jnp.exp(log_c6 - log_n)

    def budget_for_loss(self, theta: Theta, target_loss):
        p = theta["alpha_N"] / theta["alpha_D"]
        log_x = jnp.log(jnp.asarray(target_loss)) / theta["alpha_D"] - jnp.log1p(p)
        log_n = jnp.log(theta["N_c"]) - log_x / p
        log_d = jnp.log(theta["D_c"]) - jnp.log(p) - log_x
        return FLOPS_PER_PARAM_TOKEN * jnp.exp(log_n + log_d)
