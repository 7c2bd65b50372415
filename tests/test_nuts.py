"""NUTS on the Chinchilla law: calibration on data simulated from the prior, and the real data."""

import jax
import numpy as np
import pandas as pd
import pytest

from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.laws import Chinchilla
from bayes_scaling.priors import resolve_priors
from bayes_scaling.runs import load_chinchilla, validate_runs

LAW = Chinchilla()
N_GRID = np.logspace(7, 10, 6)
D_GRID = np.logspace(9, 12, 5)


def simulated_runs(seed: int):
    """Truth theta ~ prior, sigma ~ prior; log L ~ StudentT(5, log L(N, D; theta), sigma)."""
    priors = resolve_priors(LAW)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(priors))
    truth = {name: float(prior.sample(k)) for (name, prior), k in zip(priors.items(), keys)}
    N, D = (g.ravel() for g in np.meshgrid(N_GRID, D_GRID))
    rng = np.random.default_rng(seed)
    mu = np.asarray(LAW.log_loss(truth, N, D))
    log_loss = mu + truth["sigma"] * rng.standard_t(5.0, size=mu.shape)
    runs = validate_runs(pd.DataFrame({"N": N, "D": D, "loss": np.exp(log_loss)}), max_loss=np.inf)
    return truth, runs


def test_ninety_percent_intervals_cover_prior_truths():
    """Simulation-based calibration, lite: 20 datasets with truths drawn from the prior; each
    parameter's 90% interval must cover its truth in at least 75% of them."""
    n_sets = 20
    covered = {name: 0 for name in (*LAW.param_names, "sigma")}
    for seed in range(n_sets):
        truth, runs = simulated_runs(seed)
        post = fit_nuts(runs, num_chains=2, num_warmup=250, num_draws=250, seed=seed)
        for name in covered:
            lo, hi = np.quantile(post.draws(name), [0.05, 0.95])
            covered[name] += lo <= truth[name] <= hi
    rates = {k: v / n_sets for k, v in covered.items()}
    assert all(rate >= 0.75 for rate in rates.values()), rates


@pytest.fixture(scope="module")
def chinchilla_posterior():
    return fit_nuts(load_chinchilla().for_fit(), num_chains=4, num_warmup=500, num_draws=500, seed=0)


def test_chinchilla_posterior_agrees_with_epoch_and_has_no_divergences(chinchilla_posterior):
    post = chinchilla_posterior
    assert int(post.idata["sample_stats"]["diverging"].sum()) == 0
    med = {k: float(np.median(v)) for k, v in post.theta().items()}
    assert med["E"] == pytest.approx(1.817, rel=0.02)
    assert med["alpha"] == pytest.approx(0.348, rel=0.05)
    assert med["beta"] == pytest.approx(0.366, rel=0.05)
    # Epoch's tokens-per-parameter at Chinchilla's budget is about 20, not Hoffmann's fit.
    row = post.frontier([5.76e23]).iloc[0]
    assert 12 < row["tokens_per_param_median"] < 30
    assert row["N_opt_lo"] < row["N_opt_median"] < row["N_opt_hi"]


def test_groups_are_all_fitted_draws_have_expected_shapes(chinchilla_posterior):
    post = chinchilla_posterior
    assert post.num_draws == 2000
    assert post.idata["log_likelihood"]["log_loss"].shape == (4, 500, 240)
    assert set(post.idata.children) >= {"posterior", "sample_stats", "log_likelihood", "observed_data"}


def test_starting_points():
    from bayes_scaling.errors import InputError
    from bayes_scaling.fitting.nuts import _starting_point

    runs = load_chinchilla().for_fit()
    projection = _starting_point(LAW, runs, "projection")
    point = _starting_point(LAW, runs, "approach3")
    assert point["E"] == pytest.approx(1.817, rel=0.01)
    assert 0.1 < projection["alpha"] < 0.8 and projection["E"] > 0
    with pytest.raises(InputError, match="init_theta must be"):
        _starting_point(LAW, runs, "nope")


def test_importing_arviz_first_does_not_break_numpyro():
    """ArviZ loads NumPyro lazily; bayes_scaling must still sample when ArviZ came first."""
    import subprocess
    import sys

    code = (
        "import arviz\n"
        "from bayes_scaling.fitting.nuts import fit_nuts\n"
        "from bayes_scaling.runs import load_chinchilla\n"
        "fit_nuts(load_chinchilla().for_fit(), num_chains=1, num_warmup=20, num_draws=20)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
