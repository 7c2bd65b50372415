"""Refits that reuse compiled code: observations padded to a fixed capacity and masked.

The pooled model (``bayes_scaling.models.pooled_model``) takes a ``mask``; observations beyond the
n real ones are placeholders (N = D = 1, log-loss 0) with mask False, so they add nothing to the
log density. The compiled sampler (``fitting.nuts.compiled_sampler``) depends only on the model and the
capacity, so after one compilation every refit with up to ``capacity`` runs is a plain call (and planners
in one process share it). Past the capacity it doubles (one recompile).
"""

from __future__ import annotations

import time

import jax
import numpy as np
import pandas as pd

from bayes_scaling._jax_setup import configure
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.nuts import compiled_sampler, jittered_init, padded_args
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU, ModelSpec
from bayes_scaling.priors import resolve_priors
from bayes_scaling.runs.table import Runs, validate_runs


class MaskedRefitter:
    """NUTS on (N, D, loss) arrays padded to ``capacity``; ``fit`` returns natural-parameter draws.

    The sampler is ``fitting.nuts``'s compiled one (NumPyro's NUTS kernel under one cached
    pmap/scan), keyed by the capacity instead of the observation count, so a refit with any number
    of runs up to the capacity pays no tracing or compilation.
    """

    def __init__(self, law: Law | str = "chinchilla", *, likelihood: str = "student_t", nu: float = DEFAULT_NU,
                 priors=None, num_chains: int = 2, num_warmup: int = 300, num_draws: int = 300,
                 capacity: int = 64):
        self.law = get_law(law) if isinstance(law, str) else law
        self.spec = ModelSpec(law=self.law, priors=resolve_priors(self.law, priors), likelihood=likelihood, nu=nu)
        self.num_chains, self.num_warmup, self.num_draws = num_chains, num_warmup, num_draws
        self.capacity = int(capacity)
        self.last_seconds = 0.0
        self.last_divergences = 0

    def fit(self, N, D, loss, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws given n runs: ``{E, A, B, alpha, beta, sigma} -> (chains * draws,)``."""
        configure()
        N, D, loss = (np.asarray(x, np.float64) for x in (N, D, loss))
        n = len(N)
        if n < len(self.law.param_names) + 1:
            raise InputError(f"need at least {len(self.law.param_names) + 1} runs to fit, got {n}")
        while n > self.capacity:
            self.capacity *= 2
        centre = (float(np.mean(np.log(N))), float(np.mean(np.log(D))))
        args = padded_args(N, D, np.log(loss), centre, self.capacity)
        runs = _as_runs(N, D, loss)
        init = jittered_init(self.law, initial_theta(self.law, runs), centre, runs, self.num_chains, seed)
        sampler = compiled_sampler(self.spec, self.capacity, self.num_chains, self.num_warmup, self.num_draws)
        start = time.perf_counter()
        draws, stats, _ = sampler.run(jax.random.PRNGKey(seed), init, args, progress=False)
        out = {k: np.asarray(draws[k]).reshape(-1) for k in (*self.law.param_names, "sigma")}
        self.last_seconds = time.perf_counter() - start
        self.last_divergences = int(np.sum(stats["diverging"]))
        return out


def _as_runs(N, D, loss) -> Runs:
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(N))], "N": N, "D": D, "loss": loss})
    return validate_runs(frame, source_name="planner")
