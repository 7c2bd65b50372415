"""The point fit (Chinchilla's Approach 3) as a Posterior, with optional bootstrap draws.

A point fit is a posterior of one draw: the frontier table then shows a zero-width interval, which
is the honest statement of what a point fit knows. With ``bootstrap=B`` the draws are the B refits
on resampled runs (Epoch AI's intervals), so every downstream tool reads them like NUTS draws.
``sigma`` is the robust residual scale 1.4826 * MAD of the log-loss residuals at the optimum.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.fitting.approach3 import bootstrap_approach3, fit_approach3
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Chinchilla
from bayes_scaling.runs.table import Runs, as_runs


def fit_map(runs: Runs, *, bootstrap: int = 0, seed: int = 0, delta: float = 1e-3, progress=None):
    """Approach 3 on ``runs`` (and ``bootstrap`` refits on resamples) as a Posterior;
    ``progress(done, total)`` is told as the bootstrap refits finish (``bootstrap_approach3``)."""
    law, runs = Chinchilla(), as_runs(runs)
    result = fit_approach3(runs.N, runs.D, runs.loss, delta=delta)
    theta = {k: np.asarray(result.theta[k], np.float64) for k in law.param_names}
    resid = np.log(runs.loss) - np.asarray(law.log_loss(theta, runs.N, runs.D))
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    if bootstrap:
        draws = bootstrap_approach3(runs.N, runs.D, runs.loss, n_resamples=bootstrap, seed=seed, progress=progress)
        samples = {k: np.asarray(draws[k], np.float64)[None, :] for k in law.param_names}
        method = "map+bootstrap"
    else:
        samples = {k: v.reshape(1, 1) for k, v in theta.items()}
        method = "map"
    n = samples["E"].shape[1]
    samples["sigma"] = np.full((1, n), sigma)
    meta = {"likelihood": "normal", "objective": float(result.objective), "delta": delta,
            "point_estimate": {k: float(v) for k, v in theta.items()}, "bootstrap": bootstrap, "seed": seed}
    return build_posterior(law, runs, samples, None, None, method=method, meta=meta)
