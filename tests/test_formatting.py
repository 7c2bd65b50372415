"""Shared text renderings: the frontier table marks budgets beyond the fitted runs and says how to read them."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

from bayes_scaling.formatting import beyond_notes, fitted_compute, frontier_text


def _posterior(model: str, allocation_mean: str | None = None, folds: int = 3):
    runs = SimpleNamespace(N=np.array([1e8, 1e9]), D=np.array([2e9, 2e10]))  # largest 6ND = 1.2e20
    meta = {} if allocation_mean is None else {"extrapolation": {"allocation mean": allocation_mean, "folds": folds}}
    return SimpleNamespace(runs=runs, meta=meta, model=model)


def _table(budgets):
    cols = {f"{q}_{s}": 1.0 for q in ("N_opt", "D_opt", "L_opt", "tokens_per_param") for s in ("median", "lo", "hi")}
    return pd.DataFrame([{"budget": b, "level": 0.9, **cols} for b in budgets])


def test_budgets_beyond_the_fitted_runs_are_marked_and_explained():
    plain = _posterior("plain law")
    assert fitted_compute(plain) == 1.2e20
    lines = frontier_text(_table([1e19, 1e21]), fitted_compute(plain)).splitlines()
    assert lines[2].split()[0] == "1e+19" and lines[3].split()[0] == "1e+21*"
    assert "*" not in frontier_text(_table([1e19, 1e21])).splitlines()[3]  # no fitted compute given: no marks
    assert beyond_notes(plain, [1e19, 1e20]) == []  # nothing beyond the runs: nothing to say
    (note,) = beyond_notes(plain, [1e19, 1e21])
    assert note.startswith("* beyond the fitted runs (6ND above 1.2e+20 FLOPs, N above 1B or D above 20B") and "assumes itself exact" in note
    learned = _posterior("extrapolating", "learned")
    assert len(beyond_notes(learned, [1e21])) == 1 and "drift" in beyond_notes(learned, [1e21])[0]
    loss_only = _posterior("extrapolating", "learned from loss residuals only (no fold observes an optimum): ...")
    notes = beyond_notes(loss_only, [1e21])
    assert len(notes) == 2 and "loss residuals only" in notes[1] and "read the interval" in notes[1]
    few = beyond_notes(_posterior("extrapolating", "learned", folds=2), [1e21])
    assert len(few) == 2 and few[1].startswith("  only 2 calibration fold(s) by compute")
    assert len(beyond_notes(loss_only, [1e21], optima=False)) == 1  # a table of losses: no N_opt note



def test_a_median_loss_that_rises_with_scale_is_called_out():
    """The extrapolating fit records how its median loss changes per 10x in N and D beyond the runs;
    where it rises the notes say the medians there are not credible forecasts, where it falls nothing."""
    rising = _posterior("extrapolating", "learned")
    rising.meta["extrapolation"]["median loss rise per 10x N and D"] = 0.142
    notes = beyond_notes(rising, [1e21])
    assert len(notes) == 2 and "RISES" in notes[1] and "+14.2%" in notes[1] and "--model plain" in notes[1]
    falling = _posterior("extrapolating", "learned")
    falling.meta["extrapolation"]["median loss rise per 10x N and D"] = -0.05
    assert len(beyond_notes(falling, [1e21])) == 1


def test_budgets_beyond_what_the_calibration_observed_are_marked_twice():
    """A budget farther than any fold's held-out run lay from its fold's runs (u*_C in ``meta``) is marked
    ** and gets a note saying so; a fit with no usable fold, or a plain one, has no such reach."""
    from bayes_scaling.formatting import beyond_mark, observed_compute, reach_json

    post = _posterior("extrapolating", "learned")
    post.meta["extrapolation"]["range"] = {"seen": [0.5, 0.5, float(np.log(10.0))]}
    post.meta["extrapolation"]["mean beyond the folds' distances"] = (
        "held beyond (u_N, u_D, u_C) = (0.50, 0.50, 2.30) in 50% of the draws, linear in the rest")
    assert np.isclose(observed_compute(post), 1.2e21)
    assert [beyond_mark(C, 1.2e20, 1.2e21) for C in (1e19, 1e21, 1e22)] == [" ", "*", "**"]
    lines = frontier_text(_table([1e21, 1e22]), fitted_compute(post), observed_compute(post)).splitlines()
    assert lines[2].split()[0] == "1e+21*" and lines[3].split()[0] == "1e+22**"
    assert len(beyond_notes(post, [1e21])) == 1  # within the calibration's reach: the * note only
    notes = beyond_notes(post, [1e22])
    assert len(notes) == 2 and notes[1].startswith("** beyond 1.2e+21 FLOPs (10x the largest fitted run)")
    assert "50% of the draws" in notes[1]
    assert reach_json(post) == {"fitted_compute_max": 1.2e20, "calibration_observed_compute": observed_compute(post),
                                "calibration_untested_axes": [],
                                "fitted_ranges": {"N": [1e8, 1e9], "D": [2e9, 2e10], "C": [1.2e18, 1.2e20]}}
    post.meta["extrapolation"]["folds"] = 0  # no fold: the drift keeps its prior, nothing was observed
    assert observed_compute(post) is None and len(beyond_notes(post, [1e22])) == 2  # the few-folds note instead
    assert observed_compute(_posterior("plain law")) is None


def test_an_axis_no_fold_extrapolated_along_is_named():
    """Where no fold held out a run larger in N than its own runs (u*_N = 0: IsoFLOP sweeps that reuse one
    grid of model sizes, over-training grids' early folds), the notes beyond the runs say the drift there
    is untested along model size, naming the largest fitted N; likewise D; nothing where both were tested,
    for a plain fit, or for a calibration without folds."""
    from bayes_scaling.formatting import reach_json, untested_axes

    post = _posterior("extrapolating", "learned")
    post.meta["extrapolation"]["range"] = {"seen": [0.0, 1.1, 2.1]}
    assert untested_axes(post) == ["N"]
    notes = beyond_notes(post, [5e20])
    assert len(notes) == 2 and notes[1].startswith(
        "  no fold of the calibration extrapolated in N (model size beyond the largest fitted, 1B):")
    assert "exponent is centred on no drift, with the scale learned along D" in notes[1]
    post.meta["extrapolation"]["range"]["seen"] = [0.0, 0.0, 2.1]
    assert reach_json(post)["calibration_untested_axes"] == untested_axes(post) == ["N", "D"] and "exponents is centred on no drift, with the prior's scale" in beyond_notes(
        post, [5e20])[1]
    assert beyond_notes(post, [1e19]) == []  # nothing beyond the runs: nothing to say
    post.meta["extrapolation"]["range"]["seen"] = [0.3, 1.1, 2.1]
    assert untested_axes(post) == [] and len(beyond_notes(post, [5e20])) == 1
    post.meta["extrapolation"]["folds"] = 0
    assert untested_axes(post) == []
    assert untested_axes(_posterior("plain law")) == []


def test_tokens_per_parameter_never_read_as_zero_or_as_fourteen_digits():
    from bayes_scaling.formatting import format_ratio

    assert [format_ratio(x) for x in (20.0, 349.44, 0.1, 0.0)] == ["20.0", "349.4", "0.1", "0.0"]
    assert [format_ratio(x) for x in (0.00393, 85484058712106.8, float("inf"))] == ["0.00393", "8.55e+13", "inf"]


def test_folds_along_an_axis_do_not_count_as_compute_folds():
    """A calibration of two compute folds and one along N (``extrapolation.AXIS_FOLDS``) still gets the
    few-folds note: that note is about how far the folds tested compute."""
    post = _posterior("extrapolating", "learned", folds=3)
    assert len(beyond_notes(post, [1e21])) == 1
    post.meta["extrapolation"]["axis folds"] = ["N"]
    notes = beyond_notes(post, [1e21])
    assert len(notes) == 2 and notes[1].startswith("  only 2 calibration fold(s) by compute")


def test_a_grouped_plain_fit_says_how_to_get_the_drift():
    """A grouped fit adds each group's drift by default: a plain member's note beyond the runs names --model
    plain as what made it plain; the population's law is plain in every grouped fit, and its note says so."""
    from bayes_scaling.hierarchical import POPULATION

    grouped = _posterior("plain law")
    grouped.meta["pooling"] = "partial"
    (note,) = beyond_notes(grouped, [1e21])
    assert "adds each group's drift unless fitted with --model plain" in note and "the default model adds" not in note
    grouped.meta["group"] = POPULATION
    (note,) = beyond_notes(grouped, [1e21])
    assert "population (a new group's law) keeps the plain law" in note and "--model" not in note


def test_answers_are_placed_against_the_fitted_runs_on_every_axis():
    """A point is beyond the fitted runs where N, D or 6ND exceeds the largest fitted value (a compute inside
    the runs' range with D beyond it too), below them where it is under the smallest and not beyond; a
    frontier row is judged by its optimum, and the notes explain each mark that appears."""
    from bayes_scaling.formatting import Reach

    post = _posterior("extrapolating", "learned")  # runs (1e8, 2e9) and (1e9, 2e10): 6ND 1.2e18 to 1.2e20
    post.meta["extrapolation"]["range"] = {"seen": [0.5, 0.5, float(np.log(10.0))]}  # observed up to 1.2e21
    reach = Reach.of(post)
    assert reach.N == (1e8, 1e9) and reach.D == (2e9, 2e10) and reach.C == (1.2e18, 1.2e20)
    assert [reach.mark(N, D) for N, D in [(5e8, 1e10), (2e8, 4e10), (2e9, 1e10), (1e9, 4e11), (5e7, 1e10),
                                          (2e8, 1e9), (5e7, 4e10)]] == [" ", "*", "*", "**", "<", "<", "*"]
    assert reach.where(2e8, 4e10) == "beyond" and reach.where(1e9, 4e11) == "far beyond"
    assert reach.where(5e7, 1e10) == "below" and reach.where(5e8, 1e10) == "within"
    table = _table([1e19, 1e19, 1e15])
    table.loc[:, "N_opt_median"], table.loc[:, "D_opt_median"] = [3e8, 1e8, 1e6], [5e9, 5e10, 1e8]
    lines = frontier_text(table, reach=reach).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["1e+19", "1e+19*", "1e+15<"]
    # a budget with inference FLOPs is not the runs' compute: the row is judged by its optimum's 6ND alone
    table.loc[0, "budget"] = 1e21
    assert frontier_text(table, reach=reach, training_budgets=False).splitlines()[2].split()[0] == "1e+21"
    assert frontier_text(table, reach=reach).splitlines()[2].split()[0] == "1e+21*"
    assert beyond_notes(post, [1e19], points=([3e8], [5e9])) == []
    notes = beyond_notes(post, [1e19], points=([1e8], [5e10]))  # within compute, beyond the fitted D
    assert notes[0].startswith("* beyond the fitted runs (6ND above 1.2e+20 FLOPs, N above 1B or D above 20B")
    assert not any(note.startswith("<") for note in notes)
    (below,) = beyond_notes(post, [1e15], points=([1e6], [1e8]))
    assert below.startswith("< below the fitted runs (6ND under 1.2e+18 FLOPs, N under 100M or D under 2B")
    assert "plain law's uncertainty only" in below


def test_a_median_optimum_that_falls_with_the_budget_is_called_out():
    from bayes_scaling.formatting import falling_optimum_notes

    post = _posterior("extrapolating", "learned")
    table = _table([1e21, 1e20, 1e22])  # given out of order: read by budget
    table.loc[:, "N_opt_median"] = [5e8, 3e8, 4e8]
    (note,) = falling_optimum_notes(post, table)
    assert note.startswith("  the median N_opt FALLS from 500M at 1e+21 FLOPs to 400M at 1e+22")
    assert "largest fitted D (20B)" in note
    table.loc[:, "N_opt_median"] = [5e8, 3e8, 6e8]
    assert falling_optimum_notes(post, table) == []
    table.loc[:, "N_opt_median"] = [5e8, 3e8, 4e8]
    assert falling_optimum_notes(_posterior("plain law"), table) == []  # the plain law's never falls


def test_a_median_optimum_on_the_corner_at_the_largest_fitted_size_is_called_out():
    """The drift starts at the fitted runs' edge, so many draws' optima sit on the largest fitted N (or D):
    a median that is that corner is named as such, by budget; the plain law's median is never pinned there."""
    from bayes_scaling.formatting import corner_optimum_notes

    post = _posterior("extrapolating", "learned")  # largest fitted N 1B, D 20B
    table = _table([1e22, 1e21, 1e23])
    table.loc[:, "N_opt_median"] = [1e9, 4e8, 3e9]
    table.loc[:, "D_opt_median"] = [1.7e12, 4e11, 2e10]
    notes = corner_optimum_notes(post, table)
    assert len(notes) == 2
    assert notes[0].startswith("  the median N_opt at 1e+22 FLOPs is the largest fitted model size N (1B)")
    assert notes[1].startswith("  the median D_opt at 1e+23 FLOPs is the largest fitted token count D (20B)")
    table.loc[:, "N_opt_median"] = [1.01e9, 4e8, 3e9]
    table.loc[:, "D_opt_median"] = 1e11
    assert corner_optimum_notes(post, table) == []
    table.loc[0, "N_opt_median"] = 1e9
    assert corner_optimum_notes(_posterior("plain law"), table) == []


def test_a_drift_with_no_calibration_fold_is_not_said_to_be_learned_from_residuals():
    """A fit whose calibration had no fold keeps the drift's priors: its notes say so, and not that the mean
    allocation shift was learned from loss residuals (nothing was learned)."""
    residuals = "learned from loss residuals only (no fold observes an optimum): ..."
    notes = beyond_notes(_posterior("extrapolating", residuals, folds=0), [1e21])
    assert "priors alone" in notes[0] and not any("loss residuals only" in note for note in notes)
    assert any("loss residuals only" in note for note in beyond_notes(_posterior("extrapolating", residuals), [1e21]))


def test_a_grouped_fit_s_population_read_alone_keeps_its_label():
    from bayes_scaling.cli._common import member_group
    from bayes_scaling.hierarchical import POPULATION

    population = SimpleNamespace(method="nuts-hierarchical-population", meta={"group": POPULATION})
    assert member_group(None, population) == POPULATION
    assert member_group(None, SimpleNamespace(method="nuts-hierarchical", meta={"group": "comma"})) == "comma"
    assert member_group(None, SimpleNamespace(method="nuts", meta={"group": "comma"})) is None
