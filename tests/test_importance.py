"""Importance-sampled Laplace (``fitting/importance.py``, ``sampler.LAPLACE_CORRECTION``)."""

import numpy as np
import pytest
from scipy.special import digamma

from bayes_scaling.fitting import importance


def test_importance_sampling_moves_a_skewed_laplace_fit_to_the_mean():
    """x = ln g, g ~ Gamma(2, 1): p(x) ∝ exp(2x - e^x), mode ln 2 = 0.693, mean digamma(2) = 0.423,
    sd sqrt(trigamma(2)) = 0.802; the Laplace approximation there is Normal(ln 2, 1/2). Weighted
    and resampled, the draws have the exact mean and sd (Monte Carlo error ~0.02), not the mode's."""
    def log_density(z):
        return 2 * z[:, 0] - np.exp(z[:, 0])

    draws, khat = importance.importance_laplace(log_density, np.array([np.log(2.0)]), np.array([[0.5]]), 8000,
                                                np.random.default_rng(0))
    assert draws.shape == (8000, 1)
    assert abs(draws.mean() - digamma(2.0)) < 0.05, draws.mean()
    assert abs(draws.std() - 0.802) < 0.06, draws.std()
    assert khat < 0.7


def test_psis_weights_are_normalised_and_zero_where_the_density_is_not_finite():
    rng = np.random.default_rng(1)
    log_q = -0.5 * rng.standard_normal(500) ** 2
    log_p = log_q + 0.1 * rng.standard_normal(500)
    log_p[:5] = -np.inf
    weights, khat = importance.psis_weights(log_p, log_q)
    assert np.isclose(weights.sum(), 1.0)
    assert np.all(weights[:5] == 0) and np.all(weights[5:] > 0)
    assert khat < 0.5


@pytest.mark.parametrize("case", ["light tail", "heavy tail", "non-finite", "few draws", "flat tail"])
def test_pareto_smoothing_is_arviz_stats_psislw(case):
    """``fitting.pareto`` is arviz_stats' ``psislw`` (r_eff 1) written out: the same log weights and k-hat,
    on light and heavy tails, with -inf ratios, under 225 draws (the tail is a fifth of them) and a tail
    too flat to fit (k-hat nan: nothing smoothed)."""
    from arviz_stats.base.array import array_stats

    from bayes_scaling.fitting import pareto

    rng = np.random.default_rng(7)
    ratio = {"light tail": 0.3 * rng.standard_normal(1000), "heavy tail": 2.0 * rng.standard_t(2, 4000),
             "non-finite": np.where(rng.uniform(size=1000) < 0.05, -np.inf, rng.standard_normal(1000)),
             "few draws": rng.standard_normal(100),
             "flat tail": np.concatenate([np.zeros(900), -rng.uniform(1, 2, 100)])}[case]
    if case == "flat tail":
        ratio[:90] = 1e-300  # the tail's first quartile equals its minimum: no fit
    ours, ours_k = pareto.smoothed_log_weights(ratio)
    theirs, their_k = array_stats.psislw(-ratio)  # arviz_stats takes minus the log ratios (the LOO convention)
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-10, atol=1e-12)
    assert ours_k == pytest.approx(float(their_k), rel=1e-10, nan_ok=True)
    assert np.isnan(ours_k) == (case == "flat tail")
    assert np.logaddexp.reduce(ours) == pytest.approx(0.0, abs=1e-12)


def test_systematic_resampling_keeps_the_weights_proportions():
    weights = np.array([0.5, 0.25, 0.25, 0.0])
    index = importance.systematic_resample(weights, 1000, np.random.default_rng(2))
    counts = np.bincount(index, minlength=4)
    assert counts[3] == 0
    np.testing.assert_allclose(counts / 1000, weights, atol=0.002)


def test_a_psis_laplace_refit_predicts_as_nuts_where_the_gaussian_at_the_mode_does_not(monkeypatch):
    """A calibration refit of the drifting simulation (its first leave-future-out fold): the posterior
    is skewed, so the Gaussian at the mode's mean prediction of the held-out runs is about one
    predictive sd off NUTS's (experiments/laplace_psis_check.py); importance-sampled, it is within a
    fifth of one, and the fit records its k-hat."""
    from test_extrapolation import simulate_sweeps

    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_laplace, fit_nuts
    from bayes_scaling.splits import forward_chain, split_by_compute

    fold = forward_chain(split_by_compute(simulate_sweeps(0, 0.03)).train)[0]

    def mean_log_prediction(post):  # each held-out run's mean log-loss over the draws (the law, no noise)
        return np.log(post.predict(fold.test.N, fold.test.D, noise=False)).mean(axis=0)

    reference = fit_nuts(fold.train, model="plain")
    expected = mean_log_prediction(reference)
    sd = np.log(reference.predict(fold.test.N, fold.test.D)).std(axis=0).mean()  # predictive, noise included
    monkeypatch.setattr(sampler, "LAPLACE_START", "mode")
    gap_at_mode = np.abs(mean_log_prediction(fit_laplace(fold.train)) - expected).mean()
    monkeypatch.setattr(sampler, "LAPLACE_CORRECTION", "psis")
    post = fit_laplace(fold.train)
    gap = np.abs(mean_log_prediction(post) - expected).mean()
    assert post.meta["laplace_correction"] == "psis" and post.meta["laplace_start"] == "mode"
    assert 0 < post.meta["importance_khat"] < 1.5
    assert gap_at_mode > 0.5 * sd
    assert gap < 0.2 * sd


def test_an_unknown_laplace_correction_is_refused(monkeypatch):
    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_laplace
    from bayes_scaling.runs.bundled import load_chinchilla

    monkeypatch.setattr(sampler, "LAPLACE_CORRECTION", "bootstrap")
    with pytest.raises(ValueError, match="LAPLACE_CORRECTION"):
        fit_laplace(load_chinchilla().for_fit())


def test_the_importance_weights_read_the_potential_through_newtons_stencil_program():
    """``sampler.stencil_potential`` evaluates any number of points through the program compiled for
    (chain, 2n + 1, n) stencils: every row in order, whatever the remainder of the last block."""
    from bayes_scaling.fitting.sampler import stencil_potential

    calls = []

    def value_and_grad(points):  # the potential program's contract: (chain, 2n + 1, n) -> values, gradients
        assert points.shape == (4, 7, 3)
        calls.append(1)
        return (points ** 2).sum(-1) + points[..., 0], 2 * points

    z = np.random.default_rng(0).normal(size=(61, 3))
    np.testing.assert_allclose(stencil_potential(value_and_grad, z, (4, 3)), (z ** 2).sum(1) + z[:, 0], rtol=1e-15)
    assert len(calls) == 3  # ceil(61 / 28)
