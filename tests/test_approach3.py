"""Chinchilla's Approach 3 point fit (bayes_scaling.fitting.approach3)."""

import numpy as np
import pytest
from scipy.optimize import minimize

from bayes_scaling.fitting import approach3 as a3
from bayes_scaling.laws import EPOCH_2024
from bayes_scaling.runs import load_chinchilla

SMALL_GRID = a3.paper_grid()[::300]  # 15 of the paper's starts


@pytest.fixture(scope="module")
def runs():
    return load_chinchilla().for_fit()  # 240 runs: Epoch's 5 highest-loss rows excluded


@pytest.fixture(scope="module")
def paper_fit(runs):
    return a3.fit_approach3(runs.N, runs.D, runs.loss)


def test_paper_grid_is_hoffmanns():
    grid = a3.paper_grid()
    assert grid.shape == (4500, 5)
    assert len({tuple(row) for row in grid}) == 4500
    e, a, b, alpha, beta = grid.T
    assert set(alpha) == set(beta) == {0.0, 0.5, 1.0, 1.5, 2.0}
    assert set(e) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert set(a) == set(b) == {0.0, 5.0, 10.0, 15.0, 20.0, 25.0}


def test_objective_is_huber_of_log_residuals():
    rng = np.random.default_rng(1)
    log_N, log_D = rng.uniform(18, 23, 50), rng.uniform(20, 26, 50)
    params = np.array([0.6, 6.2, 7.6, 0.35, 0.37])
    e, a, b, alpha, beta = params
    pred = np.log(np.exp(e) + np.exp(a) / np.exp(alpha * log_N) + np.exp(b) / np.exp(beta * log_D))
    r = rng.normal(0, 0.004, 50)  # residuals on both sides of delta = 1e-3
    log_L = pred - r
    expected = np.sum(np.where(np.abs(r) <= 1e-3, r**2 / 2, 1e-3 * (np.abs(r) - 5e-4)))
    assert float(a3.huber_objective(params, log_N, log_D, log_L, 1e-3)) == pytest.approx(expected, rel=1e-12)
    # the hand-written gradient of the SciPy reference agrees with JAX's autodiff
    import jax

    weights = rng.integers(0, 3, 50).astype(float)
    value, grad = a3._numpy_value_and_grad(params, log_N, log_D, log_L, weights, 1e-3)
    jax_value, jax_grad = jax.value_and_grad(a3.huber_objective)(params, log_N, log_D, log_L, 1e-3, weights)
    assert value == pytest.approx(float(jax_value), rel=1e-12)
    np.testing.assert_allclose(grad, np.asarray(jax_grad), rtol=1e-10, atol=1e-16)


def test_reproduces_epoch(paper_fit):
    theta = paper_fit.theta
    for name in ("E", "alpha", "beta"):
        assert theta[name] == pytest.approx(EPOCH_2024[name], rel=0.01), name
    # A and B sit on a flat ridge of J: Epoch's published values are within a few percent of ours
    for name in ("A", "B"):
        assert theta[name] == pytest.approx(EPOCH_2024[name], rel=0.05), name
    assert paper_fit.objectives.shape == (4500,)
    assert paper_fit.objective == paper_fit.objectives.min()
    assert paper_fit.n_converged >= 128


def test_paper_optimum_is_a_stationary_point(runs, paper_fit):
    """A tight SciPy L-BFGS-B polish from our optimum cannot improve it beyond 1e-9 (relative)."""
    args = (np.log(runs.N), np.log(runs.D), np.log(runs.loss), np.ones(len(runs)), 1e-3)
    polish = minimize(a3._numpy_value_and_grad, paper_fit.params, args=args, jac=True, method="L-BFGS-B",
                      options={"ftol": 0.0, "gtol": 1e-13, "maxiter": 10_000})
    assert polish.fun >= paper_fit.objective * (1 - 1e-9)


@pytest.mark.slow
def test_jax_matches_scipy_on_a_few_starts(runs):
    """Per start, the JAX L-BFGS and a tightly converged SciPy L-BFGS-B agree on the best optimum."""
    fit = a3.fit_approach3(runs.N, runs.D, runs.loss, grid=SMALL_GRID)
    args = (np.log(runs.N), np.log(runs.D), np.log(runs.loss), np.ones(len(runs)), 1e-3)
    scipy_best = min(
        minimize(a3._numpy_value_and_grad, x0, args=args, jac=True, method="L-BFGS-B",
                 options={"ftol": 0.0, "gtol": 1e-12, "maxiter": 10_000, "maxfun": 20_000}).fun
        for x0 in SMALL_GRID
    )
    assert fit.objective == pytest.approx(scipy_best, rel=1e-9)
    # SciPy at Epoch's (default) settings stops earlier, but on the same optimum
    reference = a3.scipy_approach3(runs.N, runs.D, runs.loss, grid=SMALL_GRID)
    assert reference.objective == pytest.approx(fit.objective, rel=1e-5)
    assert reference.objective >= fit.objective * (1 - 1e-12)


def test_recovers_synthetic_truth():
    """Noise-free losses from a known law on a Chinchilla-like design are fitted back exactly."""
    truth = {"E": 1.9, "A": 350.0, "B": 1500.0, "alpha": 0.32, "beta": 0.29}
    log_N = np.repeat(np.linspace(np.log(7e7), np.log(1.6e10), 16), 15)
    log_D = np.tile(np.linspace(np.log(3e8), np.log(3e11), 15), 16)
    N, D = np.exp(log_N), np.exp(log_D)
    loss = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    fit = a3.fit_approach3(N, D, loss, grid=SMALL_GRID)
    assert fit.objective < 1e-16
    for name, value in truth.items():
        assert fit.theta[name] == pytest.approx(value, rel=1e-5), name


def test_bootstrap_sanity(runs, paper_fit):
    draws = a3.bootstrap_approach3(runs.N, runs.D, runs.loss, n_resamples=64, seed=3, start=paper_fit.params)
    assert set(draws) >= {"E", "A", "B", "alpha", "beta", "objective", "converged"}
    assert all(np.shape(v) == (64,) for v in draws.values())
    assert draws["converged"].all()
    for name in ("E", "alpha", "beta"):
        lo, hi = np.quantile(draws[name], [0.05, 0.95])
        assert lo < paper_fit.theta[name] < hi, name
        assert hi - lo < 0.2 * paper_fit.theta[name], name  # Epoch's 95% widths are ~5-15%
    # each resample is its own weighted fit: the optimum of J_w, here checked against SciPy for one
    weights = a3.resample_counts(len(runs), 64, seed=3)[7]
    args = (np.log(runs.N), np.log(runs.D), np.log(runs.loss), weights, 1e-3)
    ref = minimize(a3._numpy_value_and_grad, paper_fit.params, args=args, jac=True, method="L-BFGS-B",
                   options={"ftol": 0.0, "gtol": 1e-13, "maxiter": 10_000})
    assert draws["objective"][7] == pytest.approx(ref.fun, rel=1e-9)
    # same seed, same draws
    again = a3.bootstrap_approach3(runs.N, runs.D, runs.loss, n_resamples=64, seed=3, start=paper_fit.params)
    np.testing.assert_array_equal(again["alpha"], draws["alpha"])


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        a3.fit_approach3([1e8, -1.0], [1e9, 1e9], [3.0, 3.0])
    with pytest.raises(ValueError):
        a3.fit_approach3([1e8, 1e9], [1e9], [3.0, 3.0])
