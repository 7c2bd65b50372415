"""The leave-future-out backtest, its scores, the bundled development data and the run table's
duplicate rule."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import scoring
from bayes_scaling.backtest import backtest, slice_optimum
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs import load_gadre, load_marin, load_porian, load_runs


def short_fit(record=None):
    def fit(runs):
        if record is not None:
            record.append(runs)
        return fit_nuts(runs, num_chains=2, num_warmup=200, num_draws=200)

    return fit


# --- scores -------------------------------------------------------------------------------------------
def test_crps_from_draws_matches_the_normal_closed_form():
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 0.5, size=(40_000, 1))
    for y in (1.0, 1.7, -0.3):
        got = scoring.crps_from_draws(draws, [y])[0]
        want = scoring.crps_normal(1.0, 0.5, y)
        assert got == pytest.approx(float(want), rel=0.02)


def test_crps_of_a_point_mass_is_the_absolute_error():
    assert scoring.crps_from_draws(np.full((10, 1), 2.0), [3.5])[0] == pytest.approx(1.5)


def test_interval_score_closed_form_and_coverage():
    y = np.array([1.0, 0.5, 3.0])
    lo, hi = np.array([0.8, 0.8, 0.8]), np.array([1.2, 1.2, 1.2])
    # width 0.4; misses below by 0.3 and above by 1.8, each penalised by 2 / alpha = 20 at 90%
    assert scoring.interval_score(y, lo, hi, 0.9) == pytest.approx([0.4, 0.4 + 20 * 0.3, 0.4 + 20 * 1.8])
    assert scoring.covered(y, lo, hi).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(InputError, match="level"):
        scoring.interval_score(y, lo, hi, 1.5)


def test_interval_score_of_normal_quantiles_is_minimal_at_the_true_quantiles():
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000)
    z = 1.6448536269514722  # the 95% quantile: the central 90% interval
    best = scoring.interval_score(y, -z, z, 0.9).mean()
    assert best < scoring.interval_score(y, -1.2 * z, 1.2 * z, 0.9).mean()
    assert best < scoring.interval_score(y, -0.8 * z, 0.8 * z, 0.9).mean()


# --- Approach 2 -------------------------------------------------------------------------------------
def test_slice_parabola_recovers_a_known_vertex():
    N = np.logspace(7, 9, 9)
    loss = 3.0 + 0.05 * (np.log(N) - np.log(2e8)) ** 2
    opt = slice_optimum(N, loss, level=0.9)
    assert opt.n_opt == pytest.approx(2e8, rel=1e-6)
    assert opt.lo <= 2e8 * 1.0001 and opt.hi >= 2e8 * 0.9999 and opt.vertex_in_slice and not opt.opens_downward


def test_slice_parabola_with_replicate_sizes_resamples_three_distinct_sizes():
    """Runs that share N (seeds) count once towards the three sizes a parabola needs: resamples that hold
    only two sizes are dropped, not solved as a singular system."""
    N = np.repeat([1e8, 2e8, 4e8], 2)
    loss = 3.0 + 0.05 * (np.log(N) - np.log(2e8)) ** 2 + np.tile([0.001, -0.001], 3)
    for seed in range(5):
        opt = slice_optimum(N, loss, seed=seed)
        assert opt.n_opt == pytest.approx(2e8, rel=1e-3) and 0 < opt.valid_resamples < 1 and opt.lo <= opt.hi


def test_slice_parabola_says_when_it_opens_downward_or_leaves_the_slice():
    N = np.logspace(7, 9, 7)
    down = slice_optimum(N, 3.0 - 0.05 * (np.log(N) - np.log(1e8)) ** 2)
    assert down.opens_downward and math.isnan(down.n_opt) and "downward" in down.note
    outside = slice_optimum(N, 3.0 + 0.05 * (np.log(N) - np.log(1e10)) ** 2)
    assert not outside.vertex_in_slice and "outside" in outside.note


# --- the backtest -----------------------------------------------------------------------------------
def test_backtest_never_fits_a_held_out_run_and_scores_every_one():
    runs = load_marin().for_fit()
    runs = type(runs)(runs.frame[runs.frame["group"].isin(["dclm", "comma"])].reset_index(drop=True))
    seen = []
    result = backtest(runs, fit=short_fit(seen), top_budgets=2)
    held = set(result.runs["run_id"])
    assert len(seen) == 2  # one fit per group, on that group's rows only
    for fitted in seen:
        assert held.isdisjoint(fitted.frame["run_id"]) and fitted.frame["group"].nunique() == 1
    fitted_ids = set().union(*(set(f.frame["run_id"]) for f in seen))
    assert fitted_ids | held == set(runs.frame["run_id"])
    budgets = runs.frame.groupby("group")["budget"].apply(lambda b: sorted(b.unique())[-2:])
    for name, top in budgets.items():
        assert set(result.runs.loc[result.runs["group"] == name, "budget"]) == set(top)
        assert seen[sorted(budgets.index).index(name)].frame["budget"].max() < min(top)
    for column in ("median", "lo_50", "hi_50", "lo_80", "hi_80", "lo_90", "hi_90", "crps", "interval_score_90"):
        assert result.runs[column].notna().all()
    assert (result.runs["lo_90"] <= result.runs["lo_50"]).all() and (result.runs["hi_50"] <= result.runs["hi_90"]).all()
    summary = result.summary
    assert set(summary["budget_label"]) >= {"all held-out"} and {"coverage_90", "crps", "median_rel_error"} <= set(summary)
    assert len(result.n_opt) == 4 and result.n_opt["inside"].isin([True, False]).all()
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["n_held_out"] == len(result.runs) and payload["model"] == result.model and result.model
    first = payload["runs"][0]
    assert {"N", "D", "loss", "median", "intervals"} <= set(first) and set(first["intervals"]) == {"50", "80", "90"}
    assert "Backtest" in result.text() and "dclm" in result.text()
    assert set(payload["diagnostics"]) == {"comma", "dclm"}  # each group's fit: its verdict and design limits
    assert all({"ok", "verdict", "design_limits"} <= set(v) for v in payload["diagnostics"].values())


def test_a_joint_fit_sees_every_groups_training_runs_once_and_no_held_out_run(capsys, monkeypatch):
    """``fit_groups`` (a hierarchical fit): called once on all groups' training rows; each group is predicted
    by its member of that fit. The CLI's --hierarchical refuses what cannot pool."""
    from bayes_scaling.cli import main

    runs = load_marin().for_fit()
    runs = type(runs)(runs.frame[runs.frame["group"].isin(["dclm", "comma"])].reset_index(drop=True))
    seen = []

    def joint(train):
        seen.append(train)
        return {name: short_fit()(type(train)(train.frame[train.frame["group"] == name].reset_index(drop=True)))
                for name in train.groups}

    result = backtest(runs, fit_groups=joint, top_budgets=2)
    assert len(seen) == 1 and set(seen[0].frame["group"]) == {"dclm", "comma"}
    assert set(seen[0].frame["run_id"]).isdisjoint(result.runs["run_id"])
    assert set(seen[0].frame["run_id"]) | set(result.runs["run_id"]) == set(runs.frame["run_id"])
    assert list(result.fit_seconds) == ["all groups (one joint fit)"] and set(result.diagnostics) == {"comma", "dclm"}
    with pytest.raises(InputError, match="not both"):
        backtest(runs, fit=short_fit(), fit_groups=joint, top_budgets=2)
    assert main(["backtest", "chinchilla", "--hierarchical"]) == 2
    assert "--hierarchical pools groups, and these runs have 1" in capsys.readouterr().err
    assert main(["backtest", "marin", "--group-by", "group", "--hierarchical", "--method", "map"]) == 2
    assert "drop --method map" in capsys.readouterr().err
    assert main(["backtest", "marin", "--group-by", "group", "--offset-by", "none"]) == 2  # without --hierarchical
    assert "--offset-by sets the hierarchical model: add --hierarchical" in capsys.readouterr().err
    from bayes_scaling import backtest as bt
    from bayes_scaling.cli import build_parser
    from bayes_scaling.cli.backtest import hierarchical_fit_from_args

    captured = {}
    monkeypatch.setattr(bt, "hierarchical_fit", lambda **keywords: captured.update(keywords))
    args = build_parser().parse_args(["backtest", "marin", "--hierarchical", "--pooling", "none", "--offset-by", "none",
                                      "--spread-prior", "gamma"])
    hierarchical_fit_from_args(args, runs)
    assert (captured["pooling"], captured["offset_by"], captured["spread_prior"]) == ("none", None, "gamma")


def test_backtest_compute_quantile_split_and_figure(tmp_path):
    runs = load_gadre()
    runs = type(runs)(runs.frame[runs.frame["group"] == "rpj"].reset_index(drop=True))
    result = backtest(runs, fit=short_fit(), fraction=0.3)
    C = runs.C
    assert len(result.runs) == int((C > np.quantile(C, 0.7)).sum())
    assert result.runs["budget_label"].str.match(r"1e\d+-1e\d+").all() and result.n_opt.empty
    paths = result.save(tmp_path)
    assert paths["runs"].exists() and json.loads(paths["json"].read_text())["runs"]
    assert all(p.stat().st_size > 1000 for p in paths["figure"])


def test_a_group_too_small_to_backtest_is_named_and_the_others_still_run():
    from bayes_scaling.errors import InputWarning

    frame = load_gadre().frame
    groups = sorted(frame["group"].unique())
    big = frame[frame["group"] == "rpj"]
    three = frame[frame["group"] == [g for g in groups if g != "rpj"][0]].head(3).assign(group="three")
    one = frame[frame["group"] == [g for g in groups if g != "rpj"][1]].head(1).assign(group="one")
    runs = type(load_gadre())(pd.concat([big, three, one], ignore_index=True))
    with pytest.warns(InputWarning, match="group one not backtested"):
        result = backtest(runs, fit=short_fit(), fraction=0.3)
    assert set(result.runs["group"]) == {"rpj"}
    assert set(result.skipped) == {"one", "three"} and "at least 6 runs" in result.skipped["three"]
    assert "not backtested: three:" in result.text() and result.to_json()["skipped"] == result.skipped


def test_backtest_needs_a_budget_column_for_top_budgets():
    with pytest.raises(InputError, match="budget column"):
        backtest(load_gadre(), fit=short_fit(), top_budgets=2)


# --- bundled development data and the duplicate rule -------------------------------------------------
def test_porian_and_gadre_load_in_full():
    porian = load_porian()
    assert len(porian) == 1745 and len(porian.groups) == 15 and (porian.loss > 7).sum() == 117
    assert porian.n_flagged == 0 and "budget" in porian.frame.columns
    gadre = load_gadre()
    assert len(gadre) == 104 and gadre.groups == ["c4_original", "rpj", "rw_original"]


def test_runs_sharing_n_and_d_but_differing_in_another_column_are_distinct():
    frame = pd.DataFrame({"N": [1e8, 1e8, 4e8], "D": [2e9, 2e9, 8e9], "unique_tokens": [1e8, 5e8, 8e9],
                          "loss": [3.1, 3.0, 2.8]})
    assert len(load_runs(frame)) == 3
    same = frame.assign(unique_tokens=[1e8, 1e8, 8e9], loss=[3.0, 3.0, 2.8])  # an exact duplicate row
    with pytest.raises(InputError, match="duplicate runs .*: rows 1 and 2"):
        load_runs(same)


def test_interval_bounds_stay_defined_where_draws_are_infinite():
    """NumPy interpolates a quantile between two infinite draws as inf - inf = NaN; the scores'
    quantiles give that infinity instead (a far prediction that overflows in a few draws keeps an
    infinite upper bound and is scored), and agree with NumPy everywhere else."""
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(400, 3))
    draws[-40:, 1] = np.inf  # 10% of one column's draws overflowed
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.quantile(draws, 0.95, axis=0)[1])
    lo, hi = scoring.central_interval(draws, 0.9)
    assert hi[1] == np.inf and np.isfinite(lo).all()
    np.testing.assert_array_equal(np.delete(hi, 1), np.delete(np.quantile(draws, 0.95, axis=0), 1))
    assert scoring.interval_score(np.zeros(3), lo, hi, 0.9)[1] == np.inf
    draws[0, 2] = np.nan
    assert np.isnan(scoring.central_interval(draws, 0.9)[1][2])  # a NaN draw still says something is wrong
    # interpolating from a finite draw towards an infinite one is that infinity, whatever the fraction (NumPy
    # gives NaN at fractions >= 0.5); quantiles stay in order
    q = scoring.quantiles(np.array([1.0, 2.0, 3.0, np.inf]), [0.5, 0.7, 0.95])
    assert q[0] == 2.5 and q[1] == np.inf and q[2] == np.inf
    assert scoring.quantiles(np.array([-np.inf, 1.0, 2.0, 3.0]), 0.05) == -np.inf
    tail = np.concatenate([np.linspace(0, 1, 1187), np.full(63, np.inf)])  # S = 1250: the 95% point falls in the tail
    assert scoring.central_interval(tail[:, None], 0.9)[1][0] == np.inf


def test_a_budget_column_of_one_run_per_budget_is_called_out():
    """A budget column that is each run's own compute (no IsoFLOP slices) is accepted but named: holding out
    its top budgets holds out single runs. Marin's real budgets are not."""
    import warnings

    from bayes_scaling.errors import InputWarning
    from bayes_scaling.splits import budget_column_note

    marin = load_marin().for_fit()
    assert budget_column_note(marin, "budget") is None
    per_run = type(marin)(marin.frame.assign(budget=marin.C))
    note = budget_column_note(per_run, "budget")
    assert note and "does not look like IsoFLOP budgets" in note and "--budget-column none" in note
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backtest(type(marin)(per_run.frame[per_run.frame["group"] == "dclm"].reset_index(drop=True)),
                 fit=short_fit(), top_budgets=3)
    assert any(issubclass(w.category, InputWarning) and "IsoFLOP" in str(w.message) for w in caught)
