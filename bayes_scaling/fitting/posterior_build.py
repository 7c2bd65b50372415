"""Assemble a Posterior's ArviZ DataTree from draws grouped by chain."""

from __future__ import annotations

import arviz_base as azb  # the converters only: importing all of ArviZ costs ~1 s per CLI call
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
    (chains, draws, n_runs). Latent sampling coordinates are kept under their own names."""
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
    idata = azb.from_dict(groups, dims=run_dim, coords={"run": np.arange(len(runs))})
    return Posterior(law=law, idata=idata, runs=runs, method=method, meta=meta)
