"""``bayes-scaling predict`` and ``bayes-scaling backtest`` end to end, and their clear errors."""

import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli import main

SHORT = ["--chains", "2", "--draws", "200", "--warmup", "200"]


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "chinchilla"
    assert main(["fit", "chinchilla", "--out", str(out), *SHORT]) == 0
    return out


def test_predict_points_json(fit_dir, capsys):
    capsys.readouterr()
    assert main(["predict", str(fit_dir), "--N", "1e9,7e10", "--D", "2e10", "--D", "1.4e12", "--level", "0.8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] and out["level"] == 0.8 and len(out["predictions"]) == 2
    first, second = out["predictions"]
    assert first["N"] == 1e9 and second["D"] == 1.4e12
    assert first["lo"] < first["median"] < first["hi"] and second["median"] < first["median"]
    assert first["model"] == out["model"]


def test_a_point_s_interval_does_not_depend_on_the_other_points_asked(fit_dir, capsys):
    """X alone and X asked after Y (same seed): the same median and interval for X, to the last digit."""
    answers = []
    for N, D in (("1e9", "2e10"), ("7e10,1e9", "1.4e12,2e10")):
        capsys.readouterr()
        assert main(["predict", str(fit_dir), "--N", N, "--D", D, "--seed", "5", "--json"]) == 0
        answers.append(json.loads(capsys.readouterr().out)["predictions"])
    (alone,), (_, together) = answers
    assert {k: alone[k] for k in ("N", "D", "median", "lo", "hi")} == {k: together[k] for k in ("N", "D", "median", "lo", "hi")}


def test_predict_runs_table_text(fit_dir, tmp_path, capsys):
    pd.DataFrame({"N": [4e8, 2e9], "D": [8e9, 4e10], "loss": [2.6, 2.3]}).to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    assert main(["predict", str(fit_dir), "--runs", str(tmp_path / "new.csv")]) == 0
    text = capsys.readouterr().out
    assert "median [90% interval]" in text and "model:" in text and "runs inside their 90% interval" in text
    assert "*" not in text  # both runs lie inside the fitted compute: nothing marked, no note


def test_predict_marks_points_beyond_the_fitted_runs(fit_dir, capsys):
    capsys.readouterr()
    assert main(["predict", str(fit_dir), "--N", "1e9,7e10", "--D", "2e10,1.4e12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if "[" in line and "]" in line and "interval" not in line]
    assert len(rows) == 2 and "*" not in rows[0] and "5.88e+23*" in rows[1]  # 6ND beyond the largest fitted run
    assert any(line.startswith("* beyond the fitted runs (") for line in lines)


def test_predict_places_each_point_against_the_fitted_runs(fit_dir, capsys):
    """A point inside the fitted compute but beyond the fitted tokens is beyond the runs (the drift acts
    there), one under the smallest runs is below them; text marks and notes, JSON a range per row."""
    capsys.readouterr()
    points = ["--N", "1e8,1e9,3e7", "--D", "5e12,2e10,1e8"]  # 16x the largest fitted D; inside; under every run
    assert main(["predict", str(fit_dir), *points]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if "[" in line and "]" in line and "interval" not in line]
    assert [row.split()[2] for row in rows] == ["3e+21*", "1.2e+20", "1.8e+16<"]
    assert any(line.startswith("* beyond the fitted runs (") for line in lines)
    assert any(line.startswith("< below the fitted runs (") for line in lines)
    assert main(["predict", str(fit_dir), *points, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [row["range"] for row in doc["predictions"]] == ["beyond", "within", "below"]
    assert doc["fitted_ranges"]["D"][1] < 5e12


def test_predict_points_get_the_unit_check_a_table_gets(fit_dir, capsys):
    capsys.readouterr()
    assert main(["predict", str(fit_dir), "--N", "70", "--D", "1.4e12"]) == 2  # 70B meant
    err = capsys.readouterr().err
    assert "--N/--D point 1" in err and "in billions (7e+10 parameters)" in err and "--no-unit-check" in err
    assert main(["predict", str(fit_dir), "--N", "70", "--D", "1.4e3", "--no-unit-check"]) == 0
    assert main(["predict", str(fit_dir), "--N", "1e9", "--D", "2e10", "--unique-tokens", "1e10"]) == 2  # not ignored
    assert "--unique-tokens is the corpus size of a data-constrained fit" in capsys.readouterr().err


def test_a_compute_column_that_is_not_6nd_is_kept_and_noted(fit_dir, tmp_path, capsys):
    frame = pd.DataFrame({"N": [4e8, 2e9], "D": [8e9, 4e10], "loss": [2.6, 2.3]})
    frame.assign(C=[12 * 4e8 * 8e9, 6 * 2e9 * 4e10]).to_csv(tmp_path / "c.csv", index=False)
    capsys.readouterr()
    assert main(["predict", str(fit_dir), "--runs", str(tmp_path / "c.csv")]) == 0
    err = capsys.readouterr().err
    assert "differs from 6ND in 1 row(s) (1; up to 2x)" in err and "C = 6ND" in err
    frame.assign(C=6 * frame.N * frame.D).to_csv(tmp_path / "ok.csv", index=False)
    assert main(["predict", str(fit_dir), "--runs", str(tmp_path / "ok.csv")]) == 0
    assert "6ND" not in capsys.readouterr().err


def test_predict_bad_input_is_one_clear_line(fit_dir, capsys):
    assert main(["predict", str(fit_dir), "--N", "1e9,2e9", "--D", "2e10"]) == 2
    assert "--N and --D need one value each per point, got 2 N and 1 D" in capsys.readouterr().err
    assert main(["predict", str(fit_dir)]) == 2
    assert "give the points to predict with --N and --D, or a run table with --runs" in capsys.readouterr().err
    assert main(["predict", str(fit_dir), "--N", "1e9", "--D", "2e10", "--level", "2"]) == 2
    assert "--level must lie in (0, 1)" in capsys.readouterr().err


def test_backtest_cli_json_and_out(tmp_path, capsys):
    out = tmp_path / "bt"
    args = ["backtest", "gadre", "--group-by", "dataset", "--holdout-fraction", "0.25", *SHORT, "--json", "--out", str(out)]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["split"].startswith("compute, top 25%") and payload["n_held_out"] == len(payload["runs"])
    assert {r["group"] for r in payload["runs"]} == {"c4_original", "rpj", "rw_original"}
    run = payload["runs"][0]
    assert {"N", "D", "loss", "median", "intervals"} <= set(run) and run["intervals"]["90"]["lo"] < run["median"]
    assert any(s["group"] == "(all groups)" for s in payload["summary"])
    for name in ("backtest_runs.csv", "backtest.json", "backtest.png", "backtest.svg"):
        assert (out / name).exists()


def test_backtest_cli_text_table(tmp_path, capsys):
    runs = tmp_path / "dclm.csv"
    from bayes_scaling.runs import load_marin

    frame = load_marin().for_fit().frame
    frame[frame["group"] == "dclm"][["N", "D", "loss", "budget"]].to_csv(runs, index=False)
    assert main(["backtest", str(runs), "--holdout-top-budgets", "2", *SHORT]) == 0
    text = capsys.readouterr().out
    assert "budget column 'budget', top 2 budgets" in text and "cov90" in text and "Empirical N_opt" in text


def test_backtest_cli_top_budgets_without_a_budget_column(capsys):
    assert main(["backtest", "gadre", "--holdout-top-budgets", "2", *SHORT]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bayes-scaling backtest: error: --holdout-top-budgets needs an IsoFLOP budget column")
    assert "--holdout-fraction F" in err[-1]
    assert main(["backtest", "gadre", "--budget-column", "tokens_budget", *SHORT]) == 2
    assert "budget column 'tokens_budget' not in the run table" in capsys.readouterr().err


def test_backtest_cli_refuses_a_law_bound_to_the_fitted_runs(capsys):
    assert main(["backtest", "gadre", "--law", "data_constrained", *SHORT]) == 2
    assert "cannot predict held-out runs yet" in capsys.readouterr().err


def _saved_draws(tmp_path, name: str, shift: float) -> str:
    """A saved fit of independent Gaussian draws near the 2024 fit; chain 0 moved by ``shift`` in E."""
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.laws import Chinchilla
    from bayes_scaling.laws.chinchilla import EPOCH_2024
    from bayes_scaling.runs import load_chinchilla

    runs = load_chinchilla().for_fit()
    rng = np.random.default_rng(0)
    samples = {k: EPOCH_2024[k] * (1 + 1e-3 * rng.standard_normal((4, 300))) for k in ("E", "A", "B", "alpha", "beta")}
    samples["sigma"] = 0.005 * (1 + 0.05 * rng.standard_normal((4, 300)))
    samples["E"][0] += shift
    extra = {"diverging": np.zeros((4, 300), bool), "num_steps": np.full((4, 300), 15),
             "energy": rng.standard_normal((4, 300)), "accept_prob": np.full((4, 300), 0.85)}
    extra["potential_energy"] = -extra["energy"]
    post = build_posterior(Chinchilla(), runs, samples, extra, None, method="nuts", meta={"likelihood": "normal"})
    return str(post.save(tmp_path / name))


@pytest.mark.parametrize("command", [["frontier", "--budget", "1e22"], ["predict", "--N", "1e9", "--D", "2e10"],
                                     ["decide", "--budget", "1e22"]])
def test_answers_from_a_fit_that_failed_its_checks_say_so(tmp_path, capsys, command):
    bad, good = _saved_draws(tmp_path, "bad", shift=0.05), _saved_draws(tmp_path, "good", shift=0.0)
    assert main([command[0], bad, *command[1:]]) == 0
    err = capsys.readouterr().err
    assert "warning: this fit failed its sampler checks (R-hat" in err and "do not trust its intervals" in err
    assert main([command[0], good, *command[1:]]) == 0
    assert "failed its sampler checks" not in capsys.readouterr().err


def test_fit_keeps_its_draws_with_no_more_draws(tmp_path, capsys):
    """40 draws per chain are short of the verdict's effective draws; --no-more-draws keeps them."""
    from bayes_scaling.posterior import Posterior

    out = tmp_path / "short"
    assert main(["fit", "chinchilla", "--out", str(out), "--model", "plain", "--chains", "2", "--draws", "40",
                 "--warmup", "60", "--seed", "4", "--no-more-draws"]) == 0
    assert "longer chains" not in capsys.readouterr().err
    assert Posterior.load(out).meta["num_draws"] == 40


def test_a_flagged_run_without_a_loss_is_kept_through_fit_save_and_predict(tmp_path, capsys):
    """A diverged run (flagged, no loss) is excluded from the fit, saved with the fit's excluded runs, and
    the saved fit still loads; predicting the table scores only the runs that have a loss."""
    import json

    import numpy as np

    from bayes_scaling.cli import main
    from bayes_scaling.runs import load_chinchilla

    frame = load_chinchilla().for_fit().frame[["N", "D", "loss"]].sample(40, random_state=0).reset_index(drop=True)
    frame["flagged"] = False
    frame.loc[len(frame)] = {"N": 3e8, "D": 6e9, "loss": np.nan, "flagged": True}
    csv = tmp_path / "runs.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(csv), "--out", str(out), "--model", "plain", "--chains", "2", "--draws", "100",
                 "--warmup", "100"]) == 0
    assert "excluded 1 flagged (1 flagged (no usable loss))" in capsys.readouterr().err
    assert main(["predict", str(out), "--runs", str(csv), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert len(rows) == 41 and rows[-1]["loss"] is None and rows[-1]["inside"] is None
    assert all(isinstance(r["inside"], bool) for r in rows[:-1])
    assert main(["predict", str(out), "--runs", str(csv)]) == 0
    assert "of 40 runs inside their 90% interval (1 without an observed loss left out)" in capsys.readouterr().out


def test_predict_runs_keeps_each_row_s_id_and_flag_and_predicts_runs_without_a_loss(fit_dir, tmp_path, capsys):
    pd.DataFrame({"run_id": ["small", "big"], "N": [4e8, 2e9], "D": [8e9, 4e10], "loss": [2.6, 2.3],
                  "flagged": [False, True]}).to_csv(tmp_path / "ids.csv", index=False)
    capsys.readouterr()
    assert main(["predict", str(fit_dir), "--runs", str(tmp_path / "ids.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(p["run_id"], p["flagged"]) for p in out["predictions"]] == [("small", False), ("big", True)]
    assert isinstance(out["checks"]["ok"], bool) and out["checks"]["design_limits"] == [] and "verdict" in out["checks"]
    assert isinstance(out["notes"], list)
    pd.DataFrame({"N": [4e8, 2e9], "D": [8e9, 4e10]}).to_csv(tmp_path / "planned.csv", index=False)  # still to train
    assert main(["predict", str(fit_dir), "--runs", str(tmp_path / "planned.csv")]) == 0
    text = capsys.readouterr().out
    assert "planned.csv:1" in text and "planned.csv:2" in text and "observed" not in text and "inside" not in text


def test_frontier_and_decide_json_carry_the_fit_s_checks_and_notes(fit_dir, capsys):
    capsys.readouterr()
    assert main(["frontier", str(fit_dir), "--budget", "1e21", "--budget", "1e25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["checks"]["ok"], bool) and any(note.startswith("* beyond the fitted runs") for note in out["notes"])
    assert main(["decide", str(fit_dir), "--budget", "1e22", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checks"]["verdict"].startswith("Sampler diagnostics")
