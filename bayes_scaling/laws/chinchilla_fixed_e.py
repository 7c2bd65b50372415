"""Chinchilla's law with the irreducible loss E given, not fitted: L = E + A / N^alpha + B / D^beta.

E is hard to pin from small runs, and a team often knows it better from elsewhere (a larger sweep, an
entropy estimate). Fixing it leaves four parameters and Chinchilla's closed-form frontier unchanged.

E travels as a point-mass prior, ``priors["E"] = dist.Delta(E)``: ``ChinchillaFixedE(E=1.8)`` puts
that in its default priors and ``fit_nuts(..., priors={"E": dist.Delta(1.9)})`` overrides it. Because
E is in the priors (which key the NUTS sampler cache) and is recorded as a deterministic site in
every draw (so ``Posterior.theta()`` carries it), fits with different E never share a compiled
sampler and a saved fit reloads with its own E, whatever the registry's default instance holds.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Theta
from bayes_scaling.laws.chinchilla import HOFFMANN_2022, Chinchilla


class ChinchillaFixedE(Chinchilla):
    name = "chinchilla_fixed_e"

    def __init__(self, E: float = HOFFMANN_2022["E"]):
        """``E`` defaults to Hoffmann et al.'s 1.69337 nats/token (only used where no prior gives E)."""
        if not float(E) > 0:
            raise InputError(f"the fixed irreducible loss E must be positive, got {E}")
        self.E = float(E)

    def default_priors(self) -> dict[str, dist.Distribution]:
        """Chinchilla's weak defaults for A, B, alpha, beta; E ~ Delta(E)."""
        return {**super().default_priors(), "E": dist.Delta(jnp.asarray(self.E))}

    def sample(self, priors: Mapping[str, dist.Distribution], centre):
        if not isinstance(priors["E"], dist.Delta):
            got = type(priors["E"]).__name__
            raise InputError(f"{self.name} needs a fixed E: priors['E'] must be dist.Delta(E), got {got}")
        E = numpyro.deterministic("E", jnp.asarray(priors["E"].v))
        return {"E": E, **self.sample_reducible(priors, centre)}

    def latent_from_natural(self, theta: Theta, centre):
        latent = super().latent_from_natural(theta, centre)
        del latent["E_latent"]
        return latent
