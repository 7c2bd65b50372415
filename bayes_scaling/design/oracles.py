"""Oracles that answer a proposed run with a loss, for evaluating planners without training.

* ``Simulator``: a ground-truth law theta* (given, or drawn from a prior) plus noise on log-loss,
      log y = log L(N, D; theta*) + sigma eps,   eps ~ N(0, 1) (log-normal loss) or Student-t(nu).
* ``Replay``: a real dataset as a pool. The candidates are its runs (``candidates.pool``) and the
  answer to a run is its recorded loss, e.g. the bundled Chinchilla data.

Both return what the training harness returns, a dict with ``loss``, ``N``, ``D``, ``C``, ``status``.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayes_scaling.design.candidates import Candidates, flops_6nd, pool
from bayes_scaling._jax_setup import configure
from bayes_scaling.errors import InputError
from bayes_scaling.laws import Law, get_law
from bayes_scaling.runs.table import Runs

NOISES = ("lognormal", "student_t")


def world_prior() -> dict[str, dist.Distribution]:
    """Truths for benchmarks: LLM-like worlds around Epoch AI's (2024) Chinchilla estimates,
    E ~ LogN(log 1.82, 0.1), A ~ LogN(log 482, 0.5), B ~ LogN(log 2085, 0.5),
    alpha ~ N(0.348, 0.04), beta ~ N(0.366, 0.04)."""
    configure()
    return {
        "E": dist.LogNormal(jnp.log(1.817), 0.1),
        "A": dist.LogNormal(jnp.log(482.0), 0.5),
        "B": dist.LogNormal(jnp.log(2085.0), 0.5),
        "alpha": dist.Normal(0.348, 0.04),
        "beta": dist.Normal(0.366, 0.04),
    }


class Simulator:
    """Ground-truth law plus noise; ``truth`` given or drawn from ``prior`` (default: the law's)."""

    def __init__(self, law: Law | str = "chinchilla", *, truth: Mapping[str, float] | None = None,
                 prior: Mapping[str, dist.Distribution] | None = None, noise: str = "lognormal",
                 sigma: float = 0.01, nu: float = 5.0, seed: int = 0):
        configure()
        self.law = get_law(law) if isinstance(law, str) else law
        if noise not in NOISES:
            raise InputError(f"noise must be one of {NOISES}, got {noise!r}")
        if not sigma > 0:
            raise InputError(f"noise sigma must be positive, got {sigma}")
        if truth is None:
            prior = prior or self.law.default_priors()
            keys = jax.random.split(jax.random.PRNGKey(seed), len(self.law.param_names))
            truth = {name: float(prior[name].sample(key)) for name, key in zip(self.law.param_names, keys)}
        missing = set(self.law.param_names) - set(truth)
        if missing:
            raise InputError(f"truth lacks {sorted(missing)}")
        self.truth = {k: float(truth[k]) for k in self.law.param_names}
        self.noise, self.sigma, self.nu = noise, float(sigma), float(nu)
        self.rng = np.random.default_rng(seed + 1)

    def mean_log_loss(self, N, D) -> np.ndarray:
        th = {k: jnp.asarray(v) for k, v in self.truth.items()}
        return np.asarray(self.law.log_loss(th, jnp.asarray(N, jnp.float64), jnp.asarray(D, jnp.float64)))

    def loss(self, N: float, D: float) -> float:
        eps = self.rng.standard_normal() if self.noise == "lognormal" else self.rng.standard_t(self.nu)
        return float(np.exp(self.mean_log_loss(N, D) + self.sigma * eps))

    def __call__(self, proposal) -> dict:
        N, D = float(proposal.N), float(proposal.D)
        return {"run_id": proposal.run_id, "status": "ok", "loss": self.loss(N, D), "N": N, "D": D,
                "C": float(flops_6nd(N, D))}

    def true_targets(self, target_budget: float) -> dict[str, float]:
        """log N_opt(C*) and log L_opt(C*) of the truth."""
        th = {k: jnp.asarray(v) for k, v in self.truth.items()}
        N, D = self.law.optimal_allocation(th, jnp.asarray(float(target_budget)))
        return {"log_N_opt": float(jnp.log(N)), "log_L_opt": float(self.law.log_loss(th, N, D))}


class Replay:
    """A dataset as a pool: proposals must be its runs (by run id); the answer is the recorded loss."""

    def __init__(self, runs: Runs):
        self.runs = runs
        frame = runs.frame.set_index(runs.frame["run_id"].astype(str))
        self._rows = frame

    def candidates(self, max_cost: float = np.inf) -> Candidates:
        return pool(self.runs, max_cost=max_cost)

    @property
    def total_flops(self) -> float:
        return float(self.runs.C.sum())

    def __call__(self, proposal) -> dict:
        if proposal.run_id not in self._rows.index:
            raise InputError(f"{proposal.run_id!r} is not a run of the replayed dataset")
        row = self._rows.loc[proposal.run_id]
        return {"run_id": proposal.run_id, "status": "ok", "loss": float(row["loss"]), "N": float(row["N"]),
                "D": float(row["D"]), "C": float(row["C"])}
