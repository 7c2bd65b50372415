"""Target-region utility (design.target): constructed cases with known answers."""

import numpy as np
import pytest

from bayes_scaling.design.eig import eig_gaussian
from bayes_scaling.design.target import TargetRegion, UtilitySettings, choose
from bayes_scaling.errors import InputError


def constructed(seed=0, S=2000):
    """Draws of a drift d that moves the target region and N_opt; a run near the target sees d,
    a cheap run sees only a nuisance parameter that the targets do not depend on."""
    rng = np.random.default_rng(seed)
    d, nuisance = rng.standard_normal(S), rng.standard_normal(S)
    Z = np.column_stack([0.1 * d, 0.12 * d, 0.08 * d, 0.3 * d])  # region (3 runs) and log N_opt
    mu = np.column_stack([0.1 * d + 0.01 * nuisance, 0.1 * nuisance])  # near the target, cheap
    return Z, mu


def test_prefers_a_run_near_the_target_over_a_cheaper_uninformative_one():
    Z, mu = constructed()
    cost = np.array([1e4, 1.0])  # the near run costs 10,000x more
    [best], gains = choose(Z, mu, np.full(len(Z), 0.01), cost, 1, likelihood="normal")
    assert best == 0 and gains[0] > 0.9  # it removes almost all of the targets' variance
    # per FLOP (gamma = 1) of a utility with a slight signal in the cheap run, the cheap run wins:
    mu_weak = mu.copy()
    mu_weak[:, 1] += 0.1 * Z[:, 0]  # correlation ~0.1 with the region
    [per_flop], _ = choose(Z, mu_weak, np.full(len(Z), 0.01), cost, 1, likelihood="normal",
                           settings=UtilitySettings(cost_exponent=1.0))
    [ours], _ = choose(Z, mu_weak, np.full(len(Z), 0.01), cost, 1, likelihood="normal")
    assert per_flop == 1 and ours == 0


def test_information_about_n_opt_alone_is_the_eig():
    Z, mu = constructed(seed=1, S=500)
    sigma = np.full(len(Z), 0.05)
    settings = UtilitySettings(kind="information", n_opt_weight=1.0, cost_exponent=0.0)
    _, gains = choose(Z, mu, sigma, np.ones(2), 2, likelihood="normal", settings=settings)
    eig = eig_gaussian(Z[:, -1], mu, 0.05**2)
    assert gains[0] == pytest.approx(eig.max(), rel=1e-9)


def test_a_batch_does_not_repeat_what_it_already_learns():
    # two copies of the informative run and a weaker independent one: after one copy is chosen the
    # second copy is worth less than the other run
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3000))
    Z = np.column_stack([a + b, 0.5 * (a + b)])
    mu = np.column_stack([a, a, 0.8 * b])
    chosen, gains = choose(Z, mu, np.full(3000, 0.05), np.ones(3), 2, likelihood="normal")
    assert chosen[0] in (0, 1) and chosen[1] == 2 and gains[1] < gains[0]


def test_isoflop_region_lies_on_the_budget_and_bad_inputs_are_named():
    region = TargetRegion.isoflop(1e9, 6e21, span=3.0, points=5)
    np.testing.assert_allclose(6 * region.N * region.D, 6e21)
    assert region.N.min() == pytest.approx(1e9 / 3) and region.N.max() == pytest.approx(3e9)
    with pytest.raises(InputError, match="cost_exponent"):
        UtilitySettings(cost_exponent=-1)
    with pytest.raises(InputError, match="one N and one D"):
        TargetRegion(np.ones(2), np.ones(3))


def test_draws_with_overflowing_predictions_are_left_out():
    Z, mu = constructed(seed=2, S=500)
    bad = mu.copy()
    bad[:3, 0] = np.inf  # three draws whose law overflows at the near run
    cost = np.array([1e4, 1.0])
    assert choose(Z, bad, np.full(500, 0.01), cost, 1)[0] == choose(Z[3:], mu[3:], np.full(497, 0.01), cost, 1)[0]
    with pytest.raises(InputError, match="finite"):
        choose(Z, np.full_like(mu, np.nan), np.full(500, 0.01), cost, 1)


def test_joint_choose_without_misfit_is_the_plain_utility():
    # a zero misfit covariance leaves the draws' covariance: the same picks and gains, pending included
    Z, mu = constructed(seed=4, S=800)
    rng = np.random.default_rng(4)
    mu = np.column_stack([mu, 0.5 * mu[:, 0] + 0.02 * rng.standard_normal(800)])
    sigma, cost = np.full(800, 0.02), np.array([3.0, 1.0, 2.0])
    M = Z.shape[1] - 1
    for pending in (None, mu[:, :1] + 0.01):
        P = 0 if pending is None else 1
        plain = choose(Z, mu, sigma, cost, 2, likelihood="normal", mu_pending=pending)
        joint = choose(Z, mu, sigma, cost, 2, likelihood="normal", mu_pending=pending,
                       misfit=np.zeros((M + P + 3, M + P + 3)))
        assert list(joint[0]) == list(plain[0])
        np.testing.assert_allclose(joint[1], plain[1], rtol=1e-8)


def test_a_misfit_term_prefers_the_run_like_the_target():
    # two runs that see the law's parameter equally well; with a misfit shared by nearby runs, the
    # one beside the target region also learns the region's misfit, the far one carries misfit
    # that does not transfer
    from bayes_scaling.design.discrepancy import Discrepancy, coordinates
    from bayes_scaling.design.target import misfit_covariance

    rng = np.random.default_rng(5)
    d = rng.standard_normal(1000)
    Z = np.column_stack([0.05 * d, 0.06 * d, 0.2 * d])
    mu = np.column_stack([0.05 * d, 0.05 * d])
    region = coordinates(np.array([1e10, 2e10]), np.array([2e11, 1e11]), np.array([1.2e22, 1.2e22]))
    runs = coordinates(np.array([5e9, 1e7]), np.array([1e11, 1e12]), np.array([3e21, 6e19]))
    term = Discrepancy(scale=0.05, length=0.5)
    K = misfit_covariance(term, region, runs, None, 1e-4)
    assert K[0, 2] > 10 * abs(K[0, 3])  # the near run shares the region's misfit
    [best], _ = choose(Z, mu, np.full(1000, 0.01), np.ones(2), 1, likelihood="normal", misfit=K)
    assert best == 0
    # done runs beside the near run reveal its misfit: its remaining misfit variance drops
    done = coordinates(np.array([5e9]), np.array([1e11]), np.array([3e21]))
    assert misfit_covariance(term, region, runs, done, 1e-4)[2, 2] < 0.1 * K[2, 2]
    with pytest.raises(InputError, match="misfit covariance"):
        choose(Z, mu, np.full(1000, 0.01), np.ones(2), 1, misfit=np.zeros((3, 3)))


@pytest.mark.slow  # three Laplace folds and a fit: ~16 s CPU, ~50 s on the loaded 2-core machine
def test_law_part_leaves_out_the_drift_beyond_the_fitted_runs():
    # under the extrapolating model the law alone (part="law") equals the model inside the fitted
    # runs' range (the drift is zero there) and differs beyond it, where the drift acts
    import warnings

    from bayes_scaling import extrapolation
    from bayes_scaling.design.target import posterior_columns, target_matrix
    from bayes_scaling.fitting.nuts import fit_laplace
    from bayes_scaling.runs import load_chinchilla
    from bayes_scaling.runs.table import Runs

    full = load_chinchilla()
    runs = Runs(full.frame[full.C < 3e19].reset_index(drop=True))

    def laplace(r):
        return fit_laplace(r, num_chains=1, num_draws=200, seed=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = extrapolation.attach_drift(laplace(runs), extrapolation.calibrate(runs, laplace))
    inside = posterior_columns(post, runs.N[:5], runs.D[:5], part="law")
    np.testing.assert_allclose(inside, posterior_columns(post, runs.N[:5], runs.D[:5]), rtol=1e-6)
    far_N, far_D = np.array([7e10]), np.array([1.4e12])
    assert not np.allclose(posterior_columns(post, far_N, far_D, part="law"), posterior_columns(post, far_N, far_D))
    Z, region = target_matrix(post, None, 5.76e23, part="law", points=3)
    assert Z.shape == (200, 4) and len(region) == 3 and np.all(np.isfinite(Z))
    with pytest.raises(InputError, match="part"):
        target_matrix(post, None, 5.76e23, part="drift")
