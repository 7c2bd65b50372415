"""The variational pilot (``fitting.pilot``): its covariance is a Gaussian target's covariance in
NUTS's coordinates, and ``start_mass="pilot"`` runs a hierarchical fit from it."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

from bayes_scaling.fitting import pilot
from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.runs import validate_runs

COVARIANCE = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, -0.3], [0.0, -0.3, 0.5]])
LOG_S_SD = 0.5  # s ~ LogNormal(0, 0.5): log s, the unconstrained coordinate, has sd 0.5


def gaussian_model(mean):
    numpyro.sample("x", dist.MultivariateNormal(mean, COVARIANCE))
    numpyro.sample("s", dist.LogNormal(0.0, LOG_S_SD))


def test_pilot_covariance_is_a_gaussian_targets_in_nuts_coordinates():
    """Sites in sorted order (s, then x), in u = z / c: the target's covariance / c^2, symmetric
    positive definite; the chains' starts are draws near the target's mean."""
    scale, chains = 0.5, 4
    init = {"x": np.zeros((chains, 3)), "s": np.zeros(chains)}
    mean = np.array([1.0, -2.0, 0.5])
    starts, cov = pilot.pilot_start(gaussian_model, init, (mean,), description="test gaussian", chains=chains,
                                    seed=0, latent_scale=scale)
    target = np.zeros((4, 4))
    target[0, 0], target[1:, 1:] = LOG_S_SD ** 2, COVARIANCE
    assert np.allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    assert np.linalg.norm(cov * scale ** 2 - target) / np.linalg.norm(target) < 0.15
    assert starts["x"].shape == (chains, 3) and starts["s"].shape == (chains,)
    assert np.abs(starts["x"].mean(axis=0) - mean).max() < 3 * np.sqrt(COVARIANCE.diagonal().max())
    assert np.ptp(starts["x"], axis=0).min() > 0  # each chain its own draw


@pytest.mark.slow
def test_hierarchical_fit_runs_from_the_pilot():
    """A small hierarchical fit (3 groups, 8 runs each) with ``start_mass="pilot"``: finite draws of
    every group's law and the sampler's diagnostics."""
    rng = np.random.default_rng(1)
    law = Chinchilla()
    frames = []
    for g in range(3):
        truth = {k: v * np.exp(0.05 * rng.standard_normal()) for k, v in EPOCH_2024.items()}
        N, D = (a.ravel() for a in np.meshgrid(np.logspace(7.5, 9.5, 4), np.logspace(9, 11, 2)))
        loss = np.exp(np.asarray(law.log_loss(truth, N, D)) + 0.005 * rng.standard_normal(len(N)))
        frames.append(pd.DataFrame({"N": N, "D": D, "loss": loss, "group": f"g{g}"}))
    runs = validate_runs(pd.concat(frames, ignore_index=True))
    fit = fit_hierarchical(runs, start_mass="pilot", num_chains=2, num_warmup=150, num_draws=100,
                           likelihood="normal")
    assert sorted(fit.groups) == ["g0", "g1", "g2"]
    for post in fit.groups.values():
        assert np.isfinite(post.draws("E")).all() and post.draws("E").size == 200
    assert np.isfinite(fit.diagnostics["max_rhat"]) and fit.diagnostics["mean_steps"] > 0
