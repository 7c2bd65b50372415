"""What a scaling-law family is: parameters, priors, a loss surface and a compute-optimal solver.

A law is data plus pure JAX functions. Models, the frontier, design and plots take a ``Law`` and call
only the methods below, so a new family (Kaplan 2020, data-constrained, ...) joins by subclassing
``Law`` in its own module and registering it in ``bayes_scaling.laws``; nothing else is edited.

Parameters travel as a ``Theta``: a mapping from parameter name to an array. Arrays broadcast, so a
``Theta`` of posterior draws with shape ``(S, 1)`` against budgets of shape ``(K,)`` gives ``(S, K)``.

Compute is counted as C = 6 N D (``FLOPS_PER_PARAM_TOKEN``), Chinchilla's and Kaplan's convention.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

Array = jax.Array
Theta = Mapping[str, Array]

FLOPS_PER_PARAM_TOKEN = 6.0
_GOLDEN = 0.5 * (math.sqrt(5.0) - 1.0)


class Law(ABC):
    """A scaling-law family L(N, D; theta)."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]

    # --- the surface -------------------------------------------------------------------------
    @abstractmethod
    def log_loss(self, theta: Theta, N: Array, D: Array) -> Array:
        """log L(N, D; theta), computed stably (log-sum-exp where terms add)."""

    def loss(self, theta: Theta, N: Array, D: Array) -> Array:
        """L(N, D; theta)."""
        return jnp.exp(self.log_loss(theta, N, D))

    # --- priors and the NumPyro latent parameterisation --------------------------------------
    @abstractmethod
    def default_priors(self) -> dict[str, dist.Distribution]:
        """Independent priors on the natural parameters, keyed by ``param_names``."""

    @abstractmethod
    def sample(self, priors: Mapping[str, dist.Distribution], centre: tuple[float, float]) -> dict:
        """NumPyro statements drawing theta; returns the natural parameters.

        ``centre = (mean log N, mean log D)`` of the data: a law may sample in coordinates centred
        there to break posterior ridges, as long as the prior stays the one on natural parameters.
        """

    @abstractmethod
    def latent_from_natural(self, theta: Theta, centre: tuple[float, float]) -> dict:
        """The inverse of ``sample``'s map: latent site values for a natural theta (NUTS init)."""

    # --- the compute-optimal frontier ---------------------------------------------------------
    def optimal_allocation(self, theta: Theta, C: Array) -> tuple[Array, Array]:
        """argmin over N of L(N, C / 6N): (N_opt, D_opt). Numerical by default (golden section
        on log N over [1e3, C/6e3]); families with a closed form override it."""
        return numerical_optimal_allocation(self, theta, C)

    def optimal_loss(self, theta: Theta, C: Array) -> Array:
        """L_opt(C) = L(N_opt(C), D_opt(C))."""
        N, D = self.optimal_allocation(theta, C)
        return self.loss(theta, N, D)

    def budget_for_loss(self, theta: Theta, target_loss: Array) -> Array:
        """The compute C at which L_opt(C) = target_loss (inf where the target is unreachable,
        i.e. at or below the irreducible loss). Numerical by default (bisection on log C)."""
        return numerical_budget_for_loss(self, theta, target_loss)


def tokens_per_parameter(N_opt: Array, D_opt: Array) -> Array:
    return D_opt / N_opt


def sample_log_positive(name: str, prior: dist.Distribution, shift: Array = 0.0) -> Array:
    """Sample ``log theta`` for a positive parameter, with ``prior`` on theta itself.

    The latent site is ``f"{name}_latent" = log theta - shift`` with a flat base measure; the prior
    enters as a factor ``log p(theta) + log theta`` (the Jacobian of theta = exp(log theta)). A
    ``shift`` that depends on other parameters only through a unit-triangular map (a shear such as
    log A - alpha log N_c) leaves the Jacobian unchanged, so centring costs no correction.
    """
    latent = numpyro.sample(f"{name}_latent", dist.ImproperUniform(dist.constraints.real, (), ()))
    log_theta = latent + shift
    theta = jnp.exp(log_theta)
    numpyro.factor(f"{name}_prior", prior.log_prob(theta) + log_theta)
    return numpyro.deterministic(name, theta)


def numerical_optimal_allocation(law: Law, theta: Theta, C: Array, iters: int = 90):
    """Golden-section search for argmin_{log N} log L(N, C/(6N)); assumes one minimum in range."""
    C = jnp.asarray(C)
    log_budget = jnp.log(C / FLOPS_PER_PARAM_TOKEN)  # = log N + log D on the constraint

    def f(log_n):
        return law.log_loss(theta, jnp.exp(log_n), jnp.exp(log_budget - log_n))

    lo = jnp.full(jnp.broadcast_shapes(log_budget.shape, jnp.shape(f(log_budget / 2))), jnp.log(1e3))
    hi = jnp.broadcast_to(log_budget - jnp.log(1e3), lo.shape)

    def step(_, bounds):
        lo, hi = bounds
        x1 = hi - _GOLDEN * (hi - lo)
        x2 = lo + _GOLDEN * (hi - lo)
        left = f(x1) < f(x2)
        return jnp.where(left, lo, x1), jnp.where(left, x2, hi)

    lo, hi = jax.lax.fori_loop(0, iters, step, (lo, hi))
    log_n = 0.5 * (lo + hi)
    return jnp.exp(log_n), jnp.exp(log_budget - log_n)


def numerical_budget_for_loss(law: Law, theta: Theta, target_loss: Array, iters: int = 200):
    """Bisection on log C in [log 1, log 1e60] for L_opt(C) = target (L_opt falls with C)."""
    target = jnp.asarray(target_loss)
    shape = jnp.broadcast_shapes(target.shape, jnp.shape(law.optimal_loss(theta, jnp.asarray(1e20))))
    lo = jnp.zeros(shape)
    hi = jnp.full(shape, jnp.log(1e60))

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = law.optimal_loss(theta, jnp.exp(mid)) > target
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, step, (lo, hi))
    reachable = law.optimal_loss(theta, jnp.exp(hi)) <= target * (1 + 1e-9)
    return jnp.where(reachable, jnp.exp(0.5 * (lo + hi)), jnp.inf)
