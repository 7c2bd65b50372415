"""IsoFLOP slices inferred from compute for run tables without a budget column (splits.infer_slices)."""

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import extrapolation as ex
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_laplace
from bayes_scaling.runs.table import validate_runs
from bayes_scaling.splits import infer_slices, inferred_budgets

E, A, B, ALPHA, BETA = 1.8, 400.0, 1500.0, 0.34, 0.33


def law(N, D):
    return E + A / N**ALPHA + B / D**BETA


def sweep(C, low=-0.6, high=0.6, sizes=7, jitter=0.05, rng=None):
    """One IsoFLOP slice: ``sizes`` model sizes from 10^low to 10^high times 0.1 sqrt(C / 6) (the
    law's optimum lies near the middle for low < 0 < high), each run's 6ND off C by up to ``jitter``
    in ln (real FLOP counts are not exactly 6ND)."""
    rng = rng or np.random.default_rng(0)
    N = 0.1 * np.sqrt(C / 6) * np.logspace(low, high, sizes)
    D = C * np.exp(jitter * rng.uniform(-1, 1, sizes)) / (6 * N)
    return N, D, law(N, D) * np.exp(0.002 * rng.standard_normal(sizes))


def stack(*parts):
    return tuple(np.concatenate(x) for x in zip(*parts))


def test_finds_the_sweeps_budgets_and_rejects_a_slice_without_an_interior_minimum():
    rng = np.random.default_rng(1)
    budgets = [1e18, 1e19, 1e20]
    one_sided = sweep(1e21, low=-2.0, high=-1.0, rng=rng)  # all far below the optimum: loss falls with N throughout
    N, D, loss = stack(*(sweep(C, rng=rng) for C in budgets), one_sided)
    found = infer_slices(N, D, loss)
    np.testing.assert_allclose(np.unique(found[np.isfinite(found)]), budgets, rtol=0.03)
    assert np.isfinite(found[:21]).all() and np.isnan(found[21:]).all()
    for k in range(3):  # each sweep is one slice
        assert len(np.unique(found[7 * k:7 * (k + 1)])) == 1


def test_random_scatter_and_narrow_sweeps_have_no_slices():
    rng = np.random.default_rng(2)
    N, D = 10 ** rng.uniform(7, 10, 60), 10 ** rng.uniform(9, 12, 60)
    assert np.isnan(infer_slices(N, D, law(N, D))).all()
    narrow = sweep(1e19, low=-0.2, high=0.2, rng=rng)  # spans 2.5x in N, under the 3x asked for
    assert np.isnan(infer_slices(*narrow)).all()
    assert np.isfinite(infer_slices(*narrow, min_span=2.0)).all()
    with pytest.raises(InputError, match="tolerance must exceed 1"):
        infer_slices(*narrow, tolerance=1.0)


def test_slices_are_inferred_per_group():
    rng = np.random.default_rng(3)
    frames = [pd.DataFrame(dict(zip(("N", "D", "loss"), stack(sweep(1e19, rng=rng), sweep(1e20, rng=rng))))).assign(
        group=g) for g in ("a", "b")]
    runs = validate_runs(pd.concat(frames, ignore_index=True), source_name="two groups")
    budgets = inferred_budgets(runs)
    assert np.isfinite(budgets).all()
    for g in ("a", "b"):
        assert len(np.unique(budgets[runs.frame["group"].to_numpy() == g])) == 2


def test_a_budget_column_leaves_the_calibration_as_it_was(monkeypatch):
    """Inference runs only without a budget column: with one, INFER_SLICES changes nothing."""
    rng = np.random.default_rng(4)
    budgets = np.logspace(18, 21, 6)
    parts = [sweep(C, rng=rng) for C in budgets]
    frame = pd.DataFrame(dict(zip(("N", "D", "loss"), stack(*parts)))).assign(budget=np.repeat(budgets, 7))
    runs = validate_runs(frame, source_name="sweeps with budgets")
    on = ex.calibrate(runs, fit_laplace)
    monkeypatch.setattr(ex, "INFER_SLICES", False)
    off = ex.calibrate(runs, fit_laplace)
    assert on.inferred_slices == () and on.optima == off.optima > 0
    np.testing.assert_array_equal(on.weights, off.weights)
    np.testing.assert_array_equal(on.z_mean, off.z_mean)
