"""Muennighoff et al. (2023): Chinchilla's law with repeated data worth less than fresh data.

A run sees D tokens drawn from U unique tokens: U_s = min(D, U) of them, R = D / U_s - 1 times over. Repeated tokens
are worth exponentially less; the effective data are

    D' = U_s + U_s R* (1 - exp(-R / R*)),    U_s = min(D, U),    R = D / U_s - 1,
    L(N, D; U) = E + A / N^alpha + B / D'^beta.

D' = D when U >= D (no repetition) and D' -> U (1 + R*) as D -> infinity: beyond about R* epochs
more passes stop helping. Parameters: Chinchilla's five and R* (``R_star``). Muennighoff et al.
also discount excess *parameters* (their R_N*); that term needs the data-optimal model size for U
and is not included here.

How U reaches the law. ``Law.log_loss(theta, N, D)`` has no slot for a third covariate, and models
and the frontier must not change, so U lives on the law instance: ``DataConstrained(unique_tokens=U)``
with U a scalar (one corpus: every run and every frontier point draws from the same U unique tokens)
or an array aligned with the runs being fitted (``DataConstrained.for_runs(runs)`` reads the run
table's optional ``unique_tokens`` column; rows without it, or a table without it, use U = D, i.e. no
repetition). ``unique_tokens=None`` means unlimited unique data: D' = D, Chinchilla's frontier.

The law's ``name`` (which the NUTS fit uses to cache its compiled sampler, and a saved posterior uses
to find its law again) is ``"data_constrained"`` only for ``unique_tokens=None``; a law bound to a U
gets a name carrying a digest of U, so two fits with different U never share a compiled sampler.
For a frontier at a corpus size U, or to save a fit, rebind the posterior's law:
``post.law = DataConstrained(unique_tokens=U)`` (draws of R* are kept either way).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Theta, numerical_budget_for_loss, numerical_optimal_allocation, sample_log_positive
from bayes_scaling.laws.chinchilla import Chinchilla

UNIQUE_TOKENS_COLUMN = "unique_tokens"
MUENNIGHOFF_2023_R_STAR = 15.4  # R_D*, their fitted half-life of repeated data, in epochs


def effective_data(D, U, R_star):
    """D' = U_s + U_s R* (1 - exp(-R/R*)), U_s = min(D, U), R = D/U_s - 1; D' = D where U is None."""
    if U is None:
        return D
    seen = jnp.minimum(D, U)  # unique tokens actually seen
    R = D / seen - 1.0
    return seen + seen * R_star * (-jnp.expm1(-R / R_star))


class DataConstrained(Chinchilla):
    name = "data_constrained"
    param_names = ("E", "A", "B", "alpha", "beta", "R_star")

    def __init__(self, unique_tokens=None):
        if unique_tokens is None:
            self.unique_tokens = None
            return
        U = np.asarray(unique_tokens, dtype=np.float64)
        if U.ndim > 1 or not np.all(np.isfinite(U)) or np.any(U <= 0):
            raise InputError(f"unique_tokens must be positive and finite (a scalar or one per run): {unique_tokens!r}")
        self.unique_tokens = jnp.asarray(U)
        digest = hashlib.sha1(U.tobytes()).hexdigest()[:10]
        self.name = f"data_constrained[U:{digest}]"

    @classmethod
    def for_runs(cls, runs) -> DataConstrained:
        """The law bound to each run's U: the ``unique_tokens`` column, U = D where absent or blank."""
        frame = runs.frame
        if UNIQUE_TOKENS_COLUMN not in frame:
            return cls(unique_tokens=frame["D"].to_numpy(np.float64))
        U = np.asarray(frame[UNIQUE_TOKENS_COLUMN].replace("", np.nan), dtype=np.float64)
        bad = np.flatnonzero(~np.isnan(U) & ~(U > 0))
        if bad.size:
            raise InputError(f"row {int(bad[0])}: field {UNIQUE_TOKENS_COLUMN!r} must be positive, got {U[bad[0]]}")
        return cls(unique_tokens=np.where(np.isnan(U), frame["D"].to_numpy(np.float64), U))

    def with_unique_tokens(self, U) -> DataConstrained:
        """The same family for one corpus of U unique tokens (or None: unlimited)."""
        return type(self)(unique_tokens=U)

    def log_loss(self, theta: Theta, N, D):
        """Chinchilla's log L at (N, D'); a theta without R* (a Chinchilla start) uses R* = 15.4."""
        R_star = theta.get("R_star", MUENNIGHOFF_2023_R_STAR)
        return super().log_loss(theta, N, effective_data(D, self.unique_tokens, R_star))

    def default_priors(self) -> dict[str, dist.Distribution]:
        """Chinchilla's weak defaults, and R* ~ LogNormal(log 15.4, 1) (Muennighoff's R_D*;
        95%: 2.2 .. 110 epochs)."""
        return {**super().default_priors(), "R_star": dist.LogNormal(jnp.log(MUENNIGHOFF_2023_R_STAR), 1.0)}

    def sample(self, priors: Mapping[str, dist.Distribution], centre):
        theta = super().sample(priors, centre)
        theta["R_star"] = sample_log_positive("R_star", priors["R_star"])
        return theta

    def latent_from_natural(self, theta: Theta, centre):
        R_star = theta.get("R_star", MUENNIGHOFF_2023_R_STAR)
        return {**super().latent_from_natural(theta, centre), "R_star_latent": jnp.log(R_star)}

    # --- frontier: Chinchilla's closed form without a data limit, numerical with one -----------
    def _one_corpus(self):
        if self.unique_tokens is not None and jnp.ndim(self.unique_tokens) > 0:
            raise InputError(
                "this data-constrained law holds one U per fitted run; for a frontier choose one corpus "
                "size: law.with_unique_tokens(U)"
            )
        return self.unique_tokens is None

    def optimal_allocation(self, theta: Theta, C):
        if self._one_corpus():
            return super().optimal_allocation(theta, C)
        return numerical_optimal_allocation(self, theta, C)

    def optimal_loss(self, theta: Theta, C):
        if self._one_corpus():
            return super().optimal_loss(theta, C)
        N, D = self.optimal_allocation(theta, C)
        return self.loss(theta, N, D)

    def budget_for_loss(self, theta: Theta, target_loss):
        if self._one_corpus():
            return super().budget_for_loss(theta, target_loss)
        return numerical_budget_for_loss(self, theta, target_loss)
