"""Full-posterior inference with NumPyro's NUTS.

NumPyro's ``NUTS`` kernel does every step; ``_Sampler`` only drives it (see its docstring).
Settings that make it fast on the Chinchilla data: float64; a dense mass matrix (the posterior in the
law's centred coordinates is close to Gaussian but correlated) estimated *without* NumPyro's default
shrinkage towards 1e-3 I — the posterior standard deviations here are 0.01-0.06, so that shrinkage
swamps the narrow, correlated directions and cuts the step size about fivefold (leapfrog steps per
draw with and without it: experiments/bench_cli.py); target acceptance 0.8; chains on separate host devices
(``chain_method="parallel"``); every chain started near the point estimate, jittered; and the
compiled sampler cached per (model, data shape, settings), with the data passed as arguments, so an
in-process refit of new data of the same size does not recompile. Across processes JAX's persistent
compilation cache (see ``_jax_setup``) serves the same purpose.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer import NUTS
from numpyro.infer.util import log_likelihood

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU, ModelSpec, data_centre, pooled_model
from bayes_scaling.posterior import Posterior
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs

EXTRA_FIELDS = ("diverging", "num_steps", "energy", "potential_energy", "accept_prob")
_SAMPLERS: dict[tuple, "_Sampler"] = {}


def fit_nuts(
    runs: Runs,
    *,
    law: Law | str = "chinchilla",
    priors: Mapping[str, dist.Distribution] | None = None,
    likelihood: str = "student_t",
    nu: float = DEFAULT_NU,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_draws: int = 1000,
    seed: int = 0,
    progress: bool = False,
    init_theta: Mapping[str, float] | str = "projection",
) -> Posterior:
    """Sample the posterior of the law's parameters given ``runs`` (all rows used: select first
    with ``runs.for_fit()``).

    ``init_theta``: where the chains start (jittered): "projection" (default; the cheap
    variable-projection estimate of ``fitting.init``), "approach3" (Chinchilla's Approach 3 point
    fit, 4,500 L-BFGS starts; Chinchilla law only), or a dict of natural parameters.
    """
    law = get_law(law) if isinstance(law, str) else law
    if len(runs) < len(law.param_names) + 1:
        raise InputError(f"need at least {len(law.param_names) + 1} runs to fit {law.name}, got {len(runs)}")
    if num_chains < 1 or num_draws < 1 or num_warmup < 1:
        raise InputError("num_chains, num_warmup and num_draws must be positive")
    resolved = resolve_priors(law, priors)
    spec = ModelSpec(law=law, priors=resolved, likelihood=likelihood, nu=nu)
    N, D, log_loss = jnp.asarray(runs.N), jnp.asarray(runs.D), jnp.log(jnp.asarray(runs.loss))
    centre = tuple(float(c) for c in data_centre(N, D))
    theta0 = _starting_point(law, runs, init_theta)
    init_params = jittered_init(law, theta0, centre, runs, num_chains, seed)

    sampler = compiled_sampler(spec, len(runs), num_chains, num_warmup, num_draws)
    args = (N, D, jnp.asarray(centre), log_loss, jnp.ones(len(runs), bool))
    start = time.perf_counter()
    samples, extra, loglik = sampler.run(jax.random.PRNGKey(seed), init_params, args, progress)
    seconds = time.perf_counter() - start
    meta = {
        "likelihood": likelihood,
        "nu": nu,
        "centre": list(centre),
        "priors": describe_priors(resolved),
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_draws": num_draws,
        "seed": seed,
        "sampling_seconds": seconds,
    }
    return build_posterior(law, runs, samples, extra, np.asarray(loglik), method="nuts", meta=meta)


class _Sampler:
    """NumPyro's NUTS kernel driven by one ``lax.scan`` per chain, compiled once per model and shape.

    ``MCMC.run`` re-traces its parallel map on every call (about a second per refit); here the
    chains run under one ``jax.pmap`` (or ``jit(vmap)``) object that lives in ``_SAMPLERS``, so a
    refit with new data of the same shape is a cache hit and costs only the sampling itself.
    ``run(key, init, (N, D, centre, log_loss, mask), progress)``: observations with mask False are
    padding (see ``design.refit``), so data of any size up to the shape reuse the compiled code.
    """

    def __init__(self, spec: ModelSpec, num_chains: int, num_warmup: int, num_draws: int):
        self.num_chains, self.num_warmup, self.num_draws = num_chains, num_warmup, num_draws
        self.progress = None
        model = partial(pooled_model, spec)
        total = num_warmup + num_draws
        report_every = max(total // 20, 1)

        def one_chain(key, init, *args):
            kernel = NUTS(model, dense_mass=True, regularize_mass_matrix=False, target_accept_prob=0.8)
            state = kernel.init(key, num_warmup, init_params=init, model_args=args)

            def step(state, i):
                state = kernel.sample(state, args, {})
                jax.lax.cond(
                    (i + 1) % report_every == 0,
                    lambda: jax.debug.callback(self._report, report_every),
                    lambda: None,
                )
                stats = {name: getattr(state, name) for name in EXTRA_FIELDS}
                return state, (state.z, stats)

            _, (z, stats) = jax.lax.scan(step, state, jnp.arange(total))
            keep = jax.tree.map(lambda x: x[num_warmup:], (z, stats))
            constrained = jax.vmap(kernel.postprocess_fn(args, {}))(keep[0])
            loglik = log_likelihood(model, constrained, *args)["log_loss"]
            return constrained, keep[1], loglik

        in_axes = (0, 0, None, None, None, None, None)
        if jax.local_device_count() >= num_chains:
            self.run_chains = jax.pmap(one_chain, in_axes=in_axes)
        else:
            self.run_chains = jax.jit(jax.vmap(one_chain, in_axes=in_axes))

    def _report(self, steps):
        if self.progress is not None:
            self.progress.update(int(steps))

    def run(self, key, init_params, args, progress: bool):
        from tqdm.auto import tqdm

        keys = jax.random.split(key, self.num_chains)
        total = (self.num_warmup + self.num_draws) * self.num_chains
        self.progress = tqdm(total=total, desc="NUTS (all chains)", unit="it", disable=not progress, leave=False)
        try:
            samples, stats, loglik = jax.block_until_ready(self.run_chains(keys, init_params, *args))
        finally:
            self.progress.close()
            self.progress = None
        return samples, stats, loglik


def compiled_sampler(spec: ModelSpec, n_obs: int, num_chains, num_warmup, num_draws) -> _Sampler:
    """The cached sampler for this model, observation count (or padded capacity) and run length."""
    key = (spec.law.name, tuple(sorted(describe_priors(spec.priors).items())), spec.likelihood, spec.nu,
           n_obs, num_chains, num_warmup, num_draws)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = _Sampler(spec, num_chains, num_warmup, num_draws)
    return _SAMPLERS[key]


def _starting_point(law: Law, runs: Runs, init_theta) -> dict:
    if isinstance(init_theta, Mapping):
        return dict(init_theta)
    if init_theta == "projection":
        return initial_theta(law, runs)
    if init_theta == "approach3" and law.name == "chinchilla":
        from bayes_scaling.fitting.approach3 import fit_approach3

        return fit_approach3(runs.N, runs.D, runs.loss).theta
    raise InputError(f"init_theta must be 'projection', 'approach3' (chinchilla only) or a dict, got {init_theta!r}")


def jittered_init(law: Law, theta0, centre, runs: Runs, num_chains: int, seed: int) -> dict:
    """Unconstrained starting points: the point estimate plus N(0, 0.05^2) jitter per chain."""
    theta0 = {k: jnp.asarray(float(v)) for k, v in theta0.items() if k in law.param_names}
    latent = law.latent_from_natural(theta0, centre)
    resid = np.log(runs.loss) - np.asarray(law.log_loss(theta0, jnp.asarray(runs.N), jnp.asarray(runs.D)))
    latent["sigma"] = jnp.log(jnp.clip(jnp.std(resid), 1e-3, 0.5))
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(float(v) + 0.05 * rng.standard_normal(num_chains)) for k, v in latent.items()}
