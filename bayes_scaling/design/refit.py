"""Refits that reuse compiled code: observations padded to a fixed capacity and masked.

The pooled model (``bayes_scaling.models.pooled_model``) takes a ``mask``; observations beyond the
n real ones are placeholders (N = D = 1, log-loss 0) with mask False, so they add nothing to the
log density. The compiled sampler depends only on the model and the capacity, so after one compilation every
refit with up to ``capacity`` runs is a plain call (and planners in one process share it). Past the
capacity it doubles (one recompile).
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.nuts import _jittered_init
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU, ModelSpec, pooled_model
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs, validate_runs

_COMPILED: dict[tuple, object] = {}  # one compiled sampler per model and shape, shared by refitters


class MaskedRefitter:
    """NUTS on (N, D, loss) arrays padded to ``capacity``; ``fit`` returns natural-parameter draws.

    The whole run (per-chain init, warmup with step-size and dense mass-matrix adaptation, sampling,
    the map back to natural parameters) is one jitted function of the data, vmapped over chains, so
    a refit pays no tracing or compilation; NumPyro's ``MCMC`` object re-lowers on every call.
    """

    def __init__(self, law: Law | str = "chinchilla", *, likelihood: str = "student_t", nu: float = DEFAULT_NU,
                 priors=None, num_chains: int = 2, num_warmup: int = 300, num_draws: int = 300,
                 capacity: int = 64):
        self.law = get_law(law) if isinstance(law, str) else law
        self.spec = ModelSpec(law=self.law, priors=resolve_priors(self.law, priors), likelihood=likelihood, nu=nu)
        self.num_chains, self.num_warmup, self.num_draws = num_chains, num_warmup, num_draws
        self.capacity = int(capacity)
        self._run = None
        self.last_seconds = 0.0
        self.last_divergences = 0

    def _compiled(self):
        if self._run is None:
            key = (self.law.name, tuple(sorted(describe_priors(self.spec.priors).items())), self.spec.likelihood,
                   self.spec.nu, self.capacity, self.num_warmup, self.num_draws)
            if key not in _COMPILED:
                _COMPILED[key] = _build_sampler(self.spec, self.capacity, self.num_warmup, self.num_draws)
            self._run = _COMPILED[key]
        return self._run

    def fit(self, N, D, loss, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws given n runs: ``{E, A, B, alpha, beta, sigma} -> (chains * draws,)``."""
        N, D, loss = (np.asarray(x, np.float64) for x in (N, D, loss))
        n = len(N)
        if n < len(self.law.param_names) + 1:
            raise InputError(f"need at least {len(self.law.param_names) + 1} runs to fit, got {n}")
        while n > self.capacity:
            self.capacity *= 2
            self._run = None
        pad = self.capacity - n
        args = (
            jnp.asarray(np.concatenate([N, np.ones(pad)])),
            jnp.asarray(np.concatenate([D, np.ones(pad)])),
            jnp.asarray([np.mean(np.log(N)), np.mean(np.log(D))]),
            jnp.asarray(np.concatenate([np.log(loss), np.zeros(pad)])),
            jnp.asarray(np.arange(self.capacity) < n),
        )
        runs = _as_runs(N, D, loss)
        centre = tuple(float(c) for c in args[2])
        init = _jittered_init(self.law, initial_theta(self.law, runs), centre, runs, self.num_chains, seed)
        keys = jax.random.split(jax.random.PRNGKey(seed), self.num_chains)
        start = time.perf_counter()
        draws, diverging = self._compiled()(keys, init, args)
        out = {k: np.asarray(draws[k]).reshape(-1) for k in (*self.law.param_names, "sigma")}
        self.last_seconds = time.perf_counter() - start
        self.last_divergences = int(np.sum(diverging))
        return out


def _build_sampler(spec: ModelSpec, capacity: int, num_warmup: int, num_draws: int):
    """A jitted ``(keys, init, args) -> (draws, diverging)`` for data padded to ``capacity``."""
    model = partial(pooled_model, spec)
    dummy = (jnp.ones(capacity), jnp.ones(capacity), jnp.zeros(2), jnp.zeros(capacity), jnp.ones(capacity, bool))
    info = initialize_model(jax.random.PRNGKey(0), model, model_args=dummy, dynamic_args=True)
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")

    def one_chain(key, z0, args):
        state = init_kernel(z0, num_warmup, dense_mass=True, target_accept_prob=0.8, model_args=args, rng_key=key)

        def step(state, _):
            state = sample_kernel(state, model_args=args)
            return state, (state.z, state.diverging)

        state, _ = jax.lax.scan(step, state, None, length=num_warmup)
        _, (zs, diverging) = jax.lax.scan(step, state, None, length=num_draws)
        return jax.vmap(info.postprocess_fn(*args))(zs), diverging

    return jax.jit(jax.vmap(one_chain, in_axes=(0, 0, None)))


def _as_runs(N, D, loss) -> Runs:
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(N))], "N": N, "D": D, "loss": loss})
    return validate_runs(frame, source_name="planner")
