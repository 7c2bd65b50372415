"""Assemble a Posterior (its ArviZ DataTree built when first read) from draws grouped by chain."""

from __future__ import annotations

import numpy as np

from bayes_scaling.laws import Law
from bayes_scaling.posterior import Posterior
from bayes_scaling.runs.table import Runs


def build_posterior(
    law: Law,
    runs: Runs,
    samples: dict,
    extra: dict | None,
    loglik: np.ndarray | None,
    *,
    method: str,
    meta: dict,
) -> Posterior:
    """``samples`` and ``extra`` hold arrays of shape (chains, draws, ...); ``loglik`` is
    (chains, draws, n_runs). Latent sampling coordinates are kept under their own names. The
    DataTree is built when something reads ``idata`` (``Posterior.lazy``): a refit that is only
    read through ``theta()`` and ``predict()`` never builds one."""
    groups = {"posterior": {k: np.asarray(v) for k, v in samples.items()}}
    if extra:
        stats = {k: np.asarray(v) for k, v in extra.items()}
        if "num_steps" in stats:
            stats["n_steps"] = stats.pop("num_steps")
            stats["tree_depth"] = np.floor(np.log2(stats["n_steps"])).astype(int) + 1
        if "potential_energy" in stats:
            stats["lp"] = -stats.pop("potential_energy")
        groups["sample_stats"] = stats
    run_dim = {"log_loss": ["run"]}
    if loglik is not None:
        groups["log_likelihood"] = {"log_loss": loglik}
    groups["observed_data"] = {"log_loss": np.log(runs.loss)}
    return Posterior.lazy(law=law, groups=groups, dims=run_dim, coords={"run": np.arange(len(runs))}, runs=runs,
                          method=method, meta=meta)
