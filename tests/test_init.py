"""The cheap NUTS starting point: variable projection with non-negative least squares."""

import numpy as np
import pytest
from scipy.optimize import nnls

from bayes_scaling.fitting.init import _nonnegative_least_squares, initial_theta
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.runs import load_chinchilla


@pytest.mark.parametrize("seed", range(20))
def test_nonnegative_least_squares_matches_scipy_nnls(seed):
    rng = np.random.default_rng(seed)
    design, target = rng.normal(size=(40, 3)), rng.normal(size=40)
    expected, residual = nnls(design, target)
    coef, sse = _nonnegative_least_squares(design, target)
    np.testing.assert_allclose(coef, expected, atol=1e-9)
    assert sse == pytest.approx(residual**2, rel=1e-9, abs=1e-12)


def test_projection_lands_near_the_published_fit():
    theta = initial_theta(Chinchilla(), load_chinchilla().for_fit())
    assert theta["E"] == pytest.approx(EPOCH_2024["E"], rel=0.05)
    assert abs(theta["alpha"] - EPOCH_2024["alpha"]) <= 0.05 and abs(theta["beta"] - EPOCH_2024["beta"]) <= 0.05
