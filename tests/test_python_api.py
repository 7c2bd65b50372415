"""The Python API as a user calls it: inputs checked with one clear InputError (never a numpy or pandas
traceback), DataFrames and paths accepted wherever runs are, answers placed against the fitted runs."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import checking
from bayes_scaling import decisions as dc
from bayes_scaling import frontier as frontier_mod
from bayes_scaling.errors import InputError, InputWarning
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Chinchilla
from bayes_scaling.posterior import Posterior
from bayes_scaling.report import report_format
from bayes_scaling.runs.table import fit_input, load_runs, validate_runs

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
LAW = Chinchilla()


def _frame():
    C = np.repeat(np.logspace(18, 20, 3), 4)
    N = np.sqrt(C / 120) * np.tile(np.logspace(-0.5, 0.5, 4), 3)
    D = C / (6 * N)
    return pd.DataFrame({"N": N, "D": D, "loss": np.asarray(LAW.loss({k: np.float64(v) for k, v in TRUTH.items()}, N, D))})


@pytest.fixture(scope="module")
def post():
    rng = np.random.default_rng(0)
    samples = {k: (v * np.exp(0.02 * rng.standard_normal(200)))[None, :] for k, v in TRUTH.items()}
    samples["sigma"] = np.full((1, 200), 0.01)
    return build_posterior(LAW, validate_runs(_frame(), source_name="sim"), samples, None, None, method="nuts",
                           meta={"likelihood": "normal"})


@pytest.mark.parametrize("N, D, message", [
    ([-1e8], [1e9], "positive finite"), ([1e8], [0.0], "positive finite"), ([1e8, 2e8], [1e9, 2e9, 3e9], "one value each"),
    ([[1e8, 2e8]], [[1e9, 2e9]], "one value each"), (["a lot"], [1e9], "must be numbers")])
def test_predict_refuses_points_that_are_not_one_positive_n_and_d_each(post, N, D, message):
    with pytest.raises(InputError, match=message):
        post.predict(N, D)
    with pytest.raises(InputError, match=message):
        post.predict_summary(N, D)


def test_one_d_for_several_n_is_used_for_each(post):
    assert post.predict([1e8, 2e8], [1e9]).shape == (200, 2)
    assert list(post.predict_summary([1e8, 2e8], 1e9)["D"]) == [1e9, 1e9]


def test_frontier_and_predictions_say_where_they_lie_against_the_fitted_runs(post):
    table = post.frontier([1e19, 1e24])
    assert list(table["range"]) == ["within", "beyond"]
    summary = post.predict_summary([3e8, 3e8, 1e11, 1e5], [5e9, 5e9, 1e9, 1e6])
    assert list(summary["range"]) == ["within", "within", "beyond", "below"]


def test_save_and_load_name_a_file_given_for_a_fit_directory(post, tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    with pytest.raises(InputError, match="a file, expected a directory"):
        post.save(path)
    with pytest.raises(InputError, match="a file, expected a fit directory"):
        Posterior.load(path)


def test_a_save_over_an_earlier_fit_leaves_none_of_its_excluded_runs(post, tmp_path):
    from bayes_scaling.posterior import EXCLUDED_FILE

    post.excluded = _frame().head(2)
    post.save(tmp_path / "fit")
    assert (tmp_path / "fit" / EXCLUDED_FILE).exists()
    post.excluded = None
    post.save(tmp_path / "fit")
    assert not (tmp_path / "fit" / EXCLUDED_FILE).exists() and Posterior.load(tmp_path / "fit").excluded is None


def test_tables_as_dicts_lists_and_empty_frames():
    frame = _frame()
    assert len(load_runs(frame.to_dict("list"))) == len(load_runs(frame.to_dict("records"))) == len(frame)
    with pytest.raises(InputError, match="no runs"):
        load_runs(frame.iloc[:0])


def test_flagged_rows_of_a_frame_are_left_out_with_a_warning_and_kept_for_the_fit():
    frame = _frame().assign(flagged=[True, True] + [False] * 10, flag_reason="diverged")
    with pytest.warns(InputWarning, match="using 10 of 12 runs; excluded 2 flagged"):
        runs, excluded = fit_input(frame)
    assert len(runs) == 10 and len(excluded) == 2 and excluded["flagged"].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_input(_frame())[1] is None and fit_input(runs)[0] is runs  # Runs are fitted as given


def test_decisions_take_a_posterior_or_a_surface_and_check_their_points(post):
    surface = dc.Surface.of(post)
    a, b = dc.isoflop_profile(post, 1e21), dc.isoflop_profile(surface, 1e21)
    np.testing.assert_allclose(a.expected_loss, b.expected_loss)
    assert dc.budget_for_target(post, [2.5])[0]["target_loss"] == 2.5
    with pytest.raises(InputError, match="takes one budget"):
        dc.isoflop_profile(post, [1e23, 1e24])
    with pytest.raises(InputError, match="positive finite"):
        dc.replace_plan(post, -13e9, 5.76e11, 2e12)
    with pytest.raises(InputError, match="one number each"):
        dc.p_run_below(post, [7e10, 1e10], [1.4e12, 2e11], 2.0)
    with pytest.raises(InputError, match="expected a Posterior"):
        dc.isoflop_profile("fits/mine", 1e21)


def test_levels_budgets_and_fits_of_the_wrong_type_are_clear_errors(post):
    assert frontier_mod.check_level("0.9") == 0.9
    with pytest.raises(InputError, match="must be a number in"):
        frontier_mod.check_level("ninety")
    with pytest.raises(InputError, match=r"e.g. 0.9 for 90%"):
        checking.residuals(post, 90)
    with pytest.raises(InputError, match="FLOP counts"):
        post.frontier("1e20 FLOPs")
    with pytest.raises(InputError, match="dict of fits"):
        checking.compare(post)
    with pytest.raises(InputError, match="at least two fits"):
        checking.compare([post])


def test_the_report_format_follows_the_file_name_unless_given():
    assert report_format("r.md") == "md" and report_format("r.MARKDOWN") == "md"
    assert report_format("r.html") == report_format("r") == "html" and report_format("r.md", "html") == "html"
    with pytest.raises(InputError, match="'html' or 'md'"):
        report_format("r.pdf", "pdf")


def test_a_backtest_reads_a_frame_as_a_fit_does():
    from bayes_scaling.backtest import backtest

    with pytest.raises(InputError, match="row 3, column 'loss'"):
        backtest(_frame().assign(loss=[2.0, 2.0, -1.0] + [2.0] * 9), fit=lambda runs: None)


def test_the_planner_refuses_an_impossible_loss(tmp_path):
    from bayes_scaling.design import Planner, grid

    planner = Planner.create(tmp_path, grid(n_range=(1e7, 1e9), d_range=(1e8, 1e10), n_points=4, d_points=4),
                             target_budget=5.76e23, strategy="random", n_init=4, seed=1)
    (p,) = planner.ask(1)
    with pytest.raises(InputError, match="a loss must be positive"):
        planner.tell(p.run_id, -1.0)
    with pytest.raises(InputError, match="must be a number"):
        planner.tell(p.run_id, "low")
    planner.tell(p.run_id, float("nan"))  # a diverged run: recorded as failed
    assert len(planner.failed) == 1


def test_the_report_s_decisions_mark_budgets_whose_chosen_run_lies_beyond_the_fitted_runs(post):
    from bayes_scaling.report import decisions_table

    table = decisions_table(post, (1e19, 1e21))
    assert list(table["budget C (FLOPs)"]) == ["1e+19", "1e+21*"]  # the fitted runs reach 1e20 FLOPs
    assert any("beyond" in note for note in table.attrs["notes"])


def test_a_compute_column_that_is_not_6nd_is_kept_and_said_so_from_python_too():
    frame = _frame()
    with pytest.warns(InputWarning, match=r"differs from 6ND in 1 row\(s\) \(1; up to 2x\)"):
        runs = load_runs(frame.assign(C=6 * frame.N * frame.D * np.where(frame.index == 0, 2.0, 1.0)))
    assert runs.C[0] == pytest.approx(12 * frame.N[0] * frame.D[0])


def test_a_fit_is_saved_whole_beside_the_user_s_files_and_never_over_them(post, tmp_path):
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "runs.csv").write_text("params,tokens,loss\n")  # the user's table, named as a fit's file
    with pytest.raises(InputError, match="a directory holding other files .*runs.csv"):
        post.save(theirs)
    assert (theirs / "runs.csv").read_text() == "params,tokens,loss\n"
    with pytest.raises(InputError, match="an empty path"):
        post.save("")
    fit = post.save(tmp_path / "fit")
    (fit / "notes.txt").write_text("mine")
    post.save(fit)  # replaced whole; the user's note kept, nothing left aside
    assert (fit / "notes.txt").read_text() == "mine" and Posterior.load(fit).num_draws == post.num_draws
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit", "mine"]


def test_a_fit_whose_files_disagree_is_refused(post, tmp_path):
    fit = post.save(tmp_path / "fit")
    frame = pd.read_csv(fit / "runs.csv")
    frame.head(5).to_csv(fit / "runs.csv", index=False)
    with pytest.raises(InputError, match="its files disagree"):
        Posterior.load(fit)


def test_a_grouped_fit_saved_over_a_plain_one_replaces_it(post, tmp_path):
    from bayes_scaling.grouped import load_fits, save_grouped

    fit = post.save(tmp_path / "fit")
    save_grouped(fit, {"a": post, "b": post}, None, {"pooling": "none"})
    assert [group for group, _ in load_fits(fit)] == ["a", "b"] and not (fit / "meta.json").exists()
