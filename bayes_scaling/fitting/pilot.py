"""A variational pilot for NUTS's warm-up: a Gaussian q(u) = N(m, L L^T) fitted by NumPyro's SVI
(``AutoMultivariateNormal``, optax's Adam, a fixed number of steps) in the coordinates NUTS moves in.

The pilot's target is the model's potential U(z) (``numpyro.infer.util.potential_energy``: the
negative log joint in unconstrained coordinates z, Jacobians included) seen in NUTS's coordinates
u = z / c (``latent_scale`` c), raveled in sorted site order as ``fitting.sampler`` ravels them:
one flat site ``u`` with the factor -U(c u). SVI maximises the ELBO
E_q[-U(c u)] + H[q]; its covariance L L^T is the warm-up's starting inverse mass matrix and the
chains start at draws m + L eps from q (``sampler.sample(start_mass="pilot")``).

The steps run in one ``lax.scan``, compiled once per (model description, data shapes, settings) in
the process (``_PILOTS``), so a refit of new data of the same shape does not compile again.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal
from numpyro.infer.util import potential_energy

from bayes_scaling._jax_setup import CompiledPrograms

PILOT_STEPS = 1000  # SVI steps (Adam)
PILOT_LEARNING_RATE = 0.05  # Adam's first step, in NUTS's coordinates u, decayed to 1% of it (cosine)
PILOT_PARTICLES = 4  # draws of q per ELBO gradient
PILOT_INIT_SCALE = 0.1  # q's starting standard deviation per coordinate of u
_PILOTS = CompiledPrograms(limit=8)


def flat_potential_model(model: Callable, sites: tuple, latent_scale: float) -> Callable:
    """A NumPyro model with one latent site ``u`` (n,) whose log density is -U(c u): ``model``'s
    potential at the sites ``((name, shape), ...)`` (sorted) unraveled from c u."""
    n = sum(int(np.prod(shape)) for _, shape in sites)

    def unravel(x):
        out, at = {}, 0
        for name, shape in sites:
            size = int(np.prod(shape))
            out[name] = x[at: at + size].reshape(shape)
            at += size
        return out

    def flat(*data):
        u = numpyro.sample("u", dist.ImproperUniform(dist.constraints.real, (), (n,)))
        with numpyro.handlers.block():  # the inner model's sites stay out of the guide's and the ELBO's traces
            energy = potential_energy(model, data, {}, unravel(latent_scale * u))
        numpyro.factor("potential", -energy)

    return flat


def compiled_pilot(model: Callable, description, sites: tuple, data: tuple, latent_scale: float,
                   steps: int = PILOT_STEPS) -> Callable:
    """The cached program (key, m0, *data) -> (m, L, final loss): ``steps`` SVI steps of
    ``AutoMultivariateNormal`` on ``flat_potential_model`` from mean m0 (NUTS's coordinates)."""
    shapes = tuple((np.shape(a), np.asarray(a).dtype.str) for a in data)
    key = (repr(description), sites, shapes, float(latent_scale), int(steps))
    return _PILOTS.get_or_build(key, lambda: _pilot_program(model, sites, latent_scale, steps))


def _pilot_program(model: Callable, sites: tuple, latent_scale: float, steps: int) -> Callable:
    flat = flat_potential_model(model, sites, latent_scale)
    guide = AutoMultivariateNormal(flat, init_scale=PILOT_INIT_SCALE)
    schedule = optax.cosine_decay_schedule(PILOT_LEARNING_RATE, steps, alpha=0.01)
    svi = SVI(flat, guide, optax.adam(schedule), Trace_ELBO(num_particles=PILOT_PARTICLES))

    def run(rng_key, m0, *args):
        state = svi.init(rng_key, *args, init_params={"auto_loc": m0})

        def step(state, _):
            state, loss = svi.update(state, *args)
            return state, loss

        state, losses = jax.lax.scan(step, state, length=steps)
        params = svi.get_params(state)
        return params["auto_loc"], params["auto_scale_tril"], losses[-steps // 10:].mean()

    return jax.jit(run)


def pilot_start(model: Callable, init: dict, data: tuple, *, description, chains: int, seed: int,
                latent_scale: float = 1.0, steps: int = PILOT_STEPS) -> tuple[dict, np.ndarray]:
    """The pilot's start for NUTS: each chain's starting point (site -> (chains, ...), the model's
    unconstrained coordinates z, as ``sampler.sample``'s ``init``) drawn from q, and q's covariance
    (n, n) in NUTS's coordinates u = z / ``latent_scale`` (``sample``'s ``start_mass``). SVI starts
    at the chains' mean starting point ``init``. Non-finite results are a ValueError."""
    names = sorted(init)
    sites = tuple((k, tuple(np.shape(init[k])[1:])) for k in names)
    z0 = np.concatenate([np.asarray(init[k], np.float64).reshape(np.shape(init[k])[0], -1) for k in names], axis=1)
    program = compiled_pilot(model, description, sites, data, latent_scale, steps)
    loc, scale_tril, loss = program(jax.random.PRNGKey(seed), jnp.asarray(z0.mean(axis=0) / latent_scale), *data)
    loc, scale_tril = np.asarray(loc, np.float64), np.asarray(scale_tril, np.float64)
    if not (np.isfinite(loc).all() and np.isfinite(scale_tril).all() and np.isfinite(loss)):
        raise ValueError("the variational pilot diverged (non-finite mean, covariance or loss)")
    eps = np.random.default_rng([seed, 13]).standard_normal((chains, loc.size))
    z = (loc + eps @ scale_tril.T) * latent_scale
    starts, at = {}, 0
    for name, shape in sites:
        size = int(np.prod(shape))
        starts[name] = z[:, at: at + size].reshape(chains, *shape)
        at += size
    return starts, scale_tril @ scale_tril.T
