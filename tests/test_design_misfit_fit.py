"""The misfit-aware fit (design.misfit_fit): its marginal density against SciPy's multivariate
normal, and a short NUTS fit on simulated runs."""

import numpy as np
import pytest
from scipy import stats

from bayes_scaling.design import Simulator
from bayes_scaling.design.discrepancy import Discrepancy, coordinates
from bayes_scaling.design.eig import target_draws
from bayes_scaling.design.misfit_fit import MisfitModel, fit_misfit, log_density
from bayes_scaling.errors import InputError
from bayes_scaling.laws import EPOCH_2024, Chinchilla


def _runs(n_side=6):
    N, D = np.meshgrid(np.geomspace(1e7, 1e9, n_side), np.geomspace(1e9, 1e11, n_side))
    return N.ravel(), D.ravel()


@pytest.mark.parametrize("model,normal", [(MisfitModel(kappa=1.0, growth=0.5, reference=20.0), False),
                                          (MisfitModel(tau0=0.02, growth=0.25, length=0.3, reference=19.0), True),
                                          (MisfitModel(reference=20.0), True)])
def test_marginal_density_is_the_multivariate_normal_of_the_planner_model(model, normal):
    law = Chinchilla()
    N, D = _runs()
    truth = {k: np.float64(v) for k, v in EPOCH_2024.items()}
    loss = np.exp(np.asarray(law.log_loss(truth, N, D)) + 0.01 * np.random.default_rng(0).standard_normal(len(N)))
    sigma, nu = 0.007, 5.0
    tau = np.hypot(model.kappa * sigma, model.tau0)
    where = coordinates(N, D, 6 * N * D)
    cov = Discrepancy(tau, model.length, model.growth, model.reference).kernel(where, where) if tau > 0 else 0.0
    cov = cov + (1.0 if normal else nu / (nu - 2)) * sigma**2 * np.eye(len(N))
    expected = stats.multivariate_normal(np.asarray(law.log_loss(truth, N, D)), cov).logpdf(np.log(loss))
    assert log_density(law, truth, sigma, N, D, loss, model, nu=nu, normal=normal) == pytest.approx(expected, rel=1e-9)


def test_misfit_model_checks_its_settings_and_takes_a_fitted_term():
    with pytest.raises(InputError):
        MisfitModel(kappa=-1.0)
    fitted = MisfitModel.from_discrepancy(Discrepancy(0.01, 0.4, 0.25, 21.0))
    assert (fitted.kappa, fitted.tau0, fitted.length, fitted.growth, fitted.reference) == (0.0, 0.01, 0.4, 0.25, 21.0)


@pytest.mark.slow
def test_fit_under_the_misfit_model_recovers_a_law_that_holds():
    sim = Simulator(truth=EPOCH_2024, sigma=0.01, seed=3)
    N, D = _runs(7)
    loss = np.array([sim.loss(n, d) for n, d in zip(N, D)])
    model = MisfitModel(kappa=1.0, growth=0.5, length=0.5, reference=float(np.log10(6 * N.max() * D.max())))
    draws = fit_misfit(N, D, loss, model, num_chains=2, num_warmup=200, num_draws=200, seed=0)
    assert set(draws) == {"E", "A", "B", "alpha", "beta", "sigma"}
    assert all(np.all(np.isfinite(v)) and v.shape == (400,) for v in draws.values())
    T = target_draws(Chinchilla(), draws, 5.76e23)[:, 0]
    truth = sim.true_targets(5.76e23)["log_N_opt"]
    lo, hi = np.quantile(T, [0.02, 0.98])
    assert lo <= truth <= hi
    assert 0.002 < np.median(draws["sigma"]) < 0.03
