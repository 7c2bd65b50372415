"""The command line end to end on the bundled data, and its clear errors."""

import json

import pandas as pd
import pytest

from bayes_scaling.cli import main
from bayes_scaling.posterior import Posterior


def test_fit_then_frontier_json(tmp_path, capsys):
    out = tmp_path / "fit"
    # the plain law: its N_opt at Chinchilla's budget is the published order (Epoch 2024: tens of billions);
    # the default model's answer there carries its learned drift (docs/extrapolation.md, tested there)
    assert main(["fit", "chinchilla", "--out", str(out), "--chains", "2", "--draws", "200", "--warmup", "200", "--json",
                 "--model", "plain"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["n_runs"] == 240 and set(fitted["parameters"]) >= {"E", "A", "B", "alpha", "beta"}
    assert main(["frontier", str(out), "--budget", "1e21", "--budget", "5.76e23", "--json"]) == 0
    frontier = json.loads(capsys.readouterr().out)["frontier"]
    assert [row["budget"] for row in frontier] == [1e21, 5.76e23]
    n = frontier[1]["N_opt"]
    assert n["lo"] < n["median"] < n["hi"] and 3e10 < n["median"] < 2e11


def test_frontier_human_table(tmp_path, capsys):
    out = tmp_path / "fit"
    main(["fit", "chinchilla", "--out", str(out), "--chains", "2", "--draws", "100", "--warmup", "200"])
    capsys.readouterr()
    assert main(["frontier", str(out), "--budget", "1e22", "--level", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "median [50% interval]" in text and "1e+22" in text


def test_fit_with_column_mapping_from_csv(tmp_path, capsys):
    from bayes_scaling.runs import load_marin

    runs = load_marin().for_fit().frame
    dclm = runs[runs["group"] == "dclm"].rename(columns={"N": "params", "D": "tokens", "loss": "val_loss"})
    dclm[["params", "tokens", "val_loss"]].to_csv(tmp_path / "dclm.csv", index=False)
    args = ["fit", str(tmp_path / "dclm.csv"), "--out", str(tmp_path / "fit"), "--column", "N=params",
            "--column", "D=tokens", "--column", "loss=val_loss", "--chains", "2", "--draws", "100", "--warmup", "200"]
    assert main(args) == 0
    assert "alpha" in capsys.readouterr().out


def test_a_pooled_fit_of_several_groups_says_so_and_how_to_fit_each(tmp_path, capsys):
    """Runs of several groups fitted without --group-by get one law between them: the fit says so
    and names the option; runs of one group get no such note."""
    from bayes_scaling.runs import load_marin

    frame = load_marin().for_fit().frame
    two = frame[frame["group"].isin(["comma", "dclm"])][["N", "D", "loss", "group"]]
    tiny = ["--model", "plain", "--chains", "2", "--draws", "100", "--warmup", "200"]
    for name, table in (("two", two), ("one", two[two["group"] == "dclm"])):
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        assert main(["fit", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / name), *tiny]) == 0
        err = capsys.readouterr().err
        if name == "two":
            assert "these runs hold 2 groups (comma, dclm); one law is fitted to all of them" in err
            assert "--group-by group" in err
        else:
            assert "groups" not in err


def test_bad_csv_gives_one_clear_error(tmp_path, capsys):
    pd.DataFrame({"N": [1e8, 2e8], "D": [1e9, "lots"], "loss": [3.0, 2.9]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["fit", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "fit")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv row 2, column 'D' is not a number: 'lots'" in err


def test_missing_file_and_not_a_fit(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "fit")]) == 2
    assert "no such run table" in capsys.readouterr().err
    assert main(["frontier", str(tmp_path), "--budget", "1e20"]) == 2
    assert "not a saved fit" in capsys.readouterr().err


def test_bad_budget_is_rejected_by_the_parser(tmp_path):
    with pytest.raises(SystemExit):
        main(["frontier", str(tmp_path), "--budget", "lots"])


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    text = capsys.readouterr().out
    assert "Compute-optimal frontier" in text and "5.76e+23" in text and "Epoch 2024" in text
    assert (tmp_path / "demo" / "fit" / "posterior.nc").exists()


def test_point_fit_reproduces_epoch_from_the_cli(tmp_path, capsys):
    out = tmp_path / "map"
    assert main(["fit", "chinchilla", "--method", "map", "--out", str(out), "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["parameters"]
    assert params["E"]["median"] == pytest.approx(1.817, rel=0.01)
    assert params["alpha"]["median"] == pytest.approx(0.348, rel=0.01)
    assert main(["frontier", str(out), "--budget", "5.76e23", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["frontier"][0]
    assert row["N_opt"]["lo"] == row["N_opt"]["median"] == row["N_opt"]["hi"]  # a point fit: no interval


def test_fit_from_a_run_store(tmp_path, capsys):
    from bayes_scaling.runs import load_chinchilla
    from bayes_scaling.runs.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    frame = load_chinchilla().for_fit().frame
    csv = tmp_path / "chinchilla.csv"
    frame[["run_id", "N", "D", "loss"]].to_csv(csv, index=False)
    store.import_file(csv)
    assert main(["fit", str(tmp_path / "runs.sqlite"), "--out", str(tmp_path / "fit"), "--chains", "2",
                 "--draws", "100", "--warmup", "200", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_runs"] == 240


@pytest.mark.slow
def test_data_constrained_fit_reloads_and_needs_a_corpus_size_for_its_frontier(tmp_path, capsys):
    out = tmp_path / "dc"
    assert main(["fit", "chinchilla", "--law", "data_constrained", "--out", str(out), "--chains", "2",
                 "--draws", "100", "--warmup", "100"]) == 0
    capsys.readouterr()
    assert main(["frontier", str(out), "--budget", "1e22"]) == 2
    assert "--unique-tokens" in capsys.readouterr().err
    assert main(["frontier", str(out), "--budget", "1e22", "--unique-tokens", "1e11", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["law"].startswith("data_constrained")
    # predict and decide answer for one corpus size too; a table's unique_tokens column gives each row its own
    assert main(["predict", str(out), "--N", "1e9", "--D", "2e10"]) == 2
    assert "--unique-tokens U" in capsys.readouterr().err
    assert main(["predict", str(out), "--N", "1e9,1e9", "--D", "2e11,2e11", "--unique-tokens", "1e12", "--json"]) == 0
    roomy = json.loads(capsys.readouterr().out)["predictions"][0]["median"]
    table = tmp_path / "rows.csv"
    pd.DataFrame({"N": [1e9, 1e9], "D": [2e11, 2e11], "unique_tokens": [1e12, 2e10], "loss": [2.2, 2.2]}).to_csv(
        table, index=False)
    assert main(["predict", str(out), "--runs", str(table), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert rows[0]["median"] == pytest.approx(roomy, rel=2e-3) and rows[1]["median"] > rows[0]["median"]  # 10 epochs
    assert main(["decide", str(out), "--budget", "1e22", "--unique-tokens", "1e11", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["law"].startswith("data_constrained")
    assert main(["report", str(out)]) == 2 and "--unique-tokens U" in capsys.readouterr().err
    # the law stays plain: an explicit request for the extrapolating model is refused, not ignored
    assert main(["fit", "chinchilla", "--law", "data_constrained", "--model", "extrapolating", "--out",
                 str(tmp_path / "dcx")]) == 2
    assert "fitted as the plain law only" in capsys.readouterr().err


@pytest.mark.slow
def test_console_entry_point_flushes_output_and_keeps_exit_codes(tmp_path):
    """``python -m bayes_scaling`` leaves through ``entry_point``'s quick exit: every line printed
    still arrives (stdout is a pipe, so block-buffered), and an input error still exits with 2."""
    import os
    import subprocess
    import sys
    from bayes_scaling.runs import load_chinchilla

    csv = tmp_path / "runs.csv"
    load_chinchilla().frame[["N", "D", "loss"]].to_csv(csv, index=False)
    env = {**os.environ, "BAYES_SCALING_STORE": str(tmp_path / "runs.sqlite")}
    env.pop("PYTHONUNBUFFERED", None)  # block-buffered, as a user's pipe would be
    cli = [sys.executable, "-m", "bayes_scaling"]
    done = subprocess.run([*cli, "runs", "import", str(csv)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([*cli, "runs", "list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.strip()]
    assert len(rows) >= len(pd.read_csv(csv)) + 1  # a header and every run, nothing lost at exit
    failed = subprocess.run([*cli, "frontier", str(tmp_path / "no-fit"), "--budget", "1e21"],
                            env=env, capture_output=True, text=True)
    assert failed.returncode == 2 and "error" in failed.stderr


@pytest.mark.slow
def test_hierarchical_fit_from_csv_then_a_groups_frontier(tmp_path, capsys):
    """``fit RUNS --group-by COLUMN``: one saved fit per group and the population's, each with the
    sampler's verdict; a group's frontier reads back like any fit."""
    from bayes_scaling.runs import load_marin

    frame = load_marin().for_fit().frame
    frame = frame[frame["group"].isin(["comma", "dclm"])][["N", "D", "loss", "group", "budget"]]
    path = tmp_path / "runs.csv"
    frame.rename(columns={"group": "dataset"}).to_csv(path, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(path), "--group-by", "dataset", "--out", str(out), "--chains", "2", "--draws", "150",
                 "--warmup", "150", "--target-accept", "0.95", "--spread-prior", "gamma", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert set(result["members"]) == {"groups/comma", "groups/dclm", "population"}
    assert result["diagnostics"]["divergences"] >= 0 and "sampler, whole model:" in captured.err
    for name in ("comma", "dclm"):
        assert f"[{name}] Sampler diagnostics:" in captured.err
    assert "do not apply" not in captured.err
    assert Posterior.load(out / "groups" / "comma").meta["spread_prior"] == "gamma"
    assert main(["frontier", str(out / "groups" / "comma"), "--budget", "1e22", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["frontier"][0]
    assert row["N_opt"]["lo"] < row["N_opt"]["median"] < row["N_opt"]["hi"]


@pytest.mark.slow
def test_group_by_fits_answer_with_each_groups_drift_by_default(tmp_path, capsys):
    """``fit --group-by`` adds each group's own drift (``add_drift``) by default, saved with the group and
    named in the output, the population's law left plain; ``--model plain`` keeps the hierarchical laws alone."""
    from bayes_scaling.runs import load_marin

    frame = load_marin().for_fit().frame
    frame = frame[frame["group"].isin(["comma", "dclm"])][["N", "D", "loss", "group", "budget"]]
    path = tmp_path / "runs.csv"
    frame.rename(columns={"group": "dataset"}).to_csv(path, index=False)
    short = ["--chains", "2", "--draws", "100", "--warmup", "150", "--target-accept", "0.95", "--json"]
    assert main(["fit", str(path), "--group-by", "dataset", "--out", str(tmp_path / "plain"), "--model", "plain",
                 *short]) == 0
    plain = json.loads(capsys.readouterr().out)["members"]
    assert all(m["model"] == "plain law" for m in plain.values())
    assert main(["fit", str(path), "--group-by", "dataset", "--out", str(tmp_path / "drift"), *short]) == 0
    drift = json.loads(capsys.readouterr().out)["members"]
    assert {name: m["model"] for name, m in drift.items()} == {
        "groups/comma": "extrapolating", "groups/dclm": "extrapolating", "population": "plain law"}
    loaded = Posterior.load(tmp_path / "drift" / "groups" / "comma")
    assert loaded.model == "extrapolating" and loaded.meta["extrapolation"]["folds"] >= 1
    wide = [Posterior.load(tmp_path / m / "groups" / "comma").frontier([1e23]).iloc[0] for m in ("plain", "drift")]
    assert wide[1].N_opt_hi / wide[1].N_opt_lo > wide[0].N_opt_hi / wide[0].N_opt_lo  # the drift widens it beyond the runs


def test_a_reader_that_stops_early_is_not_an_internal_error(tmp_path, monkeypatch, capsys):
    """``bayes-scaling ... | head``: once the pipe closes, printing raises BrokenPipeError; the command
    stops quietly with the shell's status for it (141), not an "internal error" and a bug report."""
    import io
    import sys

    csv = tmp_path / "runs.csv"
    pd.DataFrame({"N": [1e8, 2e8], "D": [2e9, 4e9], "loss": [3.1, 2.9]}).to_csv(csv, index=False)
    store = tmp_path / "runs.sqlite"
    assert main(["runs", "import", str(csv), "--store", str(store)]) == 0
    capsys.readouterr()
    sink = open(tmp_path / "sink", "w")  # what stdout is pointed at once the reader has gone

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return sink.fileno()

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["runs", "list", "--store", str(store)]) == 141
    assert "internal error" not in capsys.readouterr().err
    sink.close()


def test_a_saved_fit_whose_runs_cannot_identify_the_law_says_so_before_answering(tmp_path, capsys):
    """A ladder of runs all at 20 tokens per parameter: ``fit`` and then ``frontier`` on the saved fit name the
    design limit and that more draws will not fix it, instead of advising more warm-up."""
    import numpy as np

    N = np.geomspace(1e7, 1e9, 10)
    csv = tmp_path / "ladder.csv"
    pd.DataFrame({"N": N, "D": 20 * N, "loss": 1.7 + 400 * N ** -0.34 + 410 * (20 * N) ** -0.28}).to_csv(csv, index=False)
    out = tmp_path / "fit"
    assert main(["fit", str(csv), "--out", str(out), "--model", "plain", "--chains", "2", "--draws", "100",
                 "--warmup", "100"]) == 0
    assert "these runs cannot identify the law: every run has about the same tokens per parameter" in capsys.readouterr().err
    assert main(["frontier", str(out), "--budget", "1e21"]) == 0
    err = capsys.readouterr().err
    assert "cannot identify the law" in err and "more warm-up or draws will not fix this" in err
    assert "--warmup 1000 --draws 2000" not in err


def test_fit_with_psis_refits_records_them_and_says_nothing_of_missed_modes(tmp_path, capsys):
    """``--refits psis``: every calibration refit starts its chains at one point, so no refit misses its
    mode and no note is printed; the saved fit says which refits calibrated it."""
    out = tmp_path / "fit"
    assert main(["fit", "chinchilla", "--out", str(out), "--chains", "2", "--draws", "200", "--warmup", "200",
                 "--refits", "psis"]) == 0
    assert "calibration refits ended with chains" not in capsys.readouterr().err
    assert Posterior.load(out).meta["extrapolation"]["refits"] == "psis"


def test_target_accept_reaches_every_nuts_fit_of_fit_and_backtest(monkeypatch, tmp_path):
    """``--target-accept P`` is passed to a pooled fit, a WSD fit's settings and a backtest's refits, not only
    to ``--group-by``; left out, each fit keeps its own default."""
    from bayes_scaling import wsd
    from bayes_scaling.cli import main
    from bayes_scaling.errors import InputError
    from bayes_scaling.fitting import nuts

    given = []

    def stop(*args, **kwargs):
        given.append(kwargs.get("settings", kwargs))
        raise InputError("stand-in: no sampling")

    monkeypatch.setattr(nuts, "fit_nuts", stop)
    monkeypatch.setattr(wsd, "fit_wsd", stop)
    branches = tmp_path / "wsd.csv"
    pd.DataFrame({"N": [1e7, 1e7, 3e7, 1e8] * 2, "D": [2e8, 5e8, 6e8, 2e9] * 2, "loss": [3.0] * 8,
                  "role": ["run"] * 4 + ["branch"] * 4, "trunk_id": [""] * 4 + ["t0"] * 4}).to_csv(branches, index=False)
    for extra in ([], ["--target-accept", "0.95"]):
        assert main(["fit", "chinchilla", "--out", str(tmp_path / "p"), *extra]) != 0
        assert main(["fit", str(branches), "--out", str(tmp_path / "w"), *extra]) != 0
        assert main(["backtest", "chinchilla", *extra]) != 0
    pooled, branch, backtest, *asked = given
    assert "target_accept" not in pooled and "target_accept" not in backtest and branch.target_accept == 0.8
    assert asked[0]["target_accept"] == 0.95 and asked[1].target_accept == 0.95 and asked[2]["target_accept"] == 0.95


def test_compare_names_a_grouped_fit_and_its_members(tmp_path, capsys):
    grouped = tmp_path / "fits"
    grouped.mkdir()
    (grouped / "grouped_fit.json").write_text(json.dumps({"members": [{"group": "a", "path": "groups/a"}]}))
    assert main(["compare", str(grouped), str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "is a grouped fit" in err and str(grouped / "groups" / "a") in err


def test_runs_import_and_export_say_what_was_stored_as_failed_and_left_out(tmp_path, capsys):
    table = pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": [2e9, 4e9, 8e9], "loss": [3.0, float("nan"), 2.6],
                          "flagged": [False, True, False], "flag_reason": ["", "diverged", ""]})
    table.to_csv(tmp_path / "t.csv", index=False)
    store = str(tmp_path / "s.sqlite")
    assert main(["runs", "import", str(tmp_path / "t.csv"), "--store", store]) == 0
    assert "1 flagged without a usable loss, stored as failed" in capsys.readouterr().out
    assert main(["runs", "export", str(tmp_path / "ok.csv"), "--store", store]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 runs" in out and "(1 not ok, failed or refused, left out: --all-statuses keeps them)" in out
    assert main(["runs", "export", str(tmp_path / "all.csv"), "--store", store, "--all-statuses"]) == 0
    assert capsys.readouterr().out.strip().endswith("wrote 3 runs to " + str(tmp_path / "all.csv"))


def test_a_grouped_split_names_the_group_with_too_few_budgets():
    from bayes_scaling.errors import InputError
    from bayes_scaling.runs.table import validate_runs
    from bayes_scaling.splits import split_by_compute

    frame = pd.DataFrame({"N": [1e8, 2e8, 1e8, 2e8, 3e8], "D": [2e9, 1e9, 2e10, 1e10, 1e10], "loss": [3.0, 3.1, 2.7, 2.8, 2.75],
                          "budget": [1.2e18, 1.2e18, 1.2e19, 1.2e19, 1.8e19], "group": ["a", "a", "a", "a", "d"]})
    with pytest.raises(InputError, match="top 1 budget of group 'd', which has 1 budget in column 'budget'"):
        split_by_compute(validate_runs(frame), top_budgets=1)


def test_backtest_and_report_refuse_an_output_they_could_not_write_before_any_work(tmp_path, capsys, monkeypatch):
    from bayes_scaling import backtest

    def no_work(*args, **kwargs):
        raise AssertionError("the output should have been refused before any work")

    monkeypatch.setattr(backtest, "backtest", no_work)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["backtest", "chinchilla", "--out", str(a_file)]) == 2
    assert f"--out {a_file}: a file, expected a directory" in capsys.readouterr().err
    assert main(["backtest", "chinchilla", "--out", str(a_file / "inside")]) == 2
    assert "is a file, so nothing can be written under it" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "fit"), "--out", str(a_file / "report.html")]) == 2
    assert "is a file, so nothing can be written under it" in capsys.readouterr().err
    from bayes_scaling.errors import InputError
    from bayes_scaling.posterior import check_fit_directory  # a fit's directory is checked by the same rule

    with pytest.raises(InputError, match=r"notes.txt/fit: .*notes.txt is a file, so nothing can be written under it"):
        check_fit_directory(a_file / "fit")
    assert a_file.read_text() == "mine"
