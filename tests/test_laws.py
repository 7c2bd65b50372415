"""The Chinchilla law: closed-form frontier against numerical minimisation on 6ND = C."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from bayes_scaling.laws import EPOCH_2024, HOFFMANN_2022, Chinchilla
from bayes_scaling.laws.base import numerical_budget_for_loss, numerical_optimal_allocation

LAW = Chinchilla()
BUDGETS = np.array([1e18, 1e21, 5.76e23, 1e26])


@pytest.mark.parametrize("theta", [EPOCH_2024, HOFFMANN_2022, {"E": 0.5, "A": 50.0, "B": 9e4, "alpha": 0.2, "beta": 0.6}])
def test_closed_form_matches_scipy_minimisation_on_the_constraint(theta):
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    N_opt, D_opt = map(np.asarray, LAW.optimal_allocation(th, BUDGETS))
    np.testing.assert_allclose(6 * N_opt * D_opt, BUDGETS, rtol=1e-12)
    for C, n in zip(BUDGETS, N_opt):
        f = lambda u: float(LAW.loss(th, np.exp(u), C / (6 * np.exp(u))))  # noqa: E731
        res = minimize_scalar(f, bounds=(np.log(1e3), np.log(C / 6e3)), method="bounded", options={"xatol": 1e-10})
        assert np.exp(res.x) == pytest.approx(n, rel=1e-4)
    # The generic golden-section solver (used by laws without a closed form) agrees too.
    N_num, _ = numerical_optimal_allocation(LAW, th, BUDGETS)
    np.testing.assert_allclose(np.asarray(N_num), N_opt, rtol=1e-5)


def test_optimal_loss_and_budget_for_loss_are_inverse():
    th = {k: jnp.asarray(v) for k, v in EPOCH_2024.items()}
    L = LAW.optimal_loss(th, BUDGETS)
    N, D = LAW.optimal_allocation(th, BUDGETS)
    np.testing.assert_allclose(np.asarray(L), np.asarray(LAW.loss(th, N, D)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(LAW.budget_for_loss(th, L)), BUDGETS, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(numerical_budget_for_loss(LAW, th, L)), BUDGETS, rtol=1e-6)
    assert np.isinf(float(LAW.budget_for_loss(th, 1.0)))  # below E: unreachable


def test_exponents_of_the_allocation():
    th = {k: jnp.asarray(v) for k, v in EPOCH_2024.items()}
    N1, D1 = LAW.optimal_allocation(th, 1e20)
    N2, D2 = LAW.optimal_allocation(th, 1e21)
    a = EPOCH_2024["beta"] / (EPOCH_2024["alpha"] + EPOCH_2024["beta"])
    assert float(jnp.log10(N2 / N1)) == pytest.approx(a)
    assert float(jnp.log10(D2 / D1)) == pytest.approx(1 - a)


def test_log_loss_is_stable_and_matches_direct_sum():
    th = {k: jnp.asarray(v) for k, v in EPOCH_2024.items()}
    N, D = jnp.array([1e7, 1e12]), jnp.array([1e8, 1e15])
    direct = th["E"] + th["A"] / N ** th["alpha"] + th["B"] / D ** th["beta"]
    np.testing.assert_allclose(np.asarray(LAW.loss(th, N, D)), np.asarray(direct), rtol=1e-12)
