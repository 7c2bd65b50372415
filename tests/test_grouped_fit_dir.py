"""A grouped fit's directory is itself a saved fit: ``frontier``, ``predict`` and ``report`` on it
show every group and the population, each labelled and naming its model; a directory that is
neither a fit nor a grouped fit is one clear error."""

import json
import shutil
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from bayes_scaling.cli import main
from bayes_scaling.grouped import MANIFEST_FILE, load_fits, save_grouped

GROUPS = ["comma", "dclm"]
POPULATION = "population (new group)"


@pytest.fixture(scope="module")
def grouped_dir(tmp_path_factory):
    """The layout ``fit --group-by`` writes (``save_grouped``), with short pooled NUTS fits as members
    (each labelled by its group in ``meta`` as the hierarchical fit's are): seconds, not a minute."""
    from bayes_scaling.diagnostics import SamplerWarning
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import load_marin
    from bayes_scaling.runs.table import Runs

    frame = load_marin().for_fit().frame
    frame = frame[frame["group"].isin(GROUPS)].reset_index(drop=True)

    def fit(rows, group):
        with warnings.catch_warnings():  # short chains: the sampler's verdict is not under test here
            warnings.simplefilter("ignore", SamplerWarning)
            post = fit_nuts(Runs(rows.reset_index(drop=True)), model="plain", num_chains=2, num_warmup=100, num_draws=100)
        post.meta["group"] = group
        return post

    groups = {g: fit(frame[frame["group"] == g], g) for g in GROUPS}
    out = tmp_path_factory.mktemp("grouped") / "fit"
    # every other run of both groups: as many rows as a group's, so all three fits share one compiled sampler
    save_grouped(out, groups, fit(frame.iloc[::2], POPULATION), {"pooling": "partial", "group_by": "group"})
    return out


def test_the_manifest_lists_every_member(grouped_dir):
    manifest = json.loads((grouped_dir / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "grouped fit" and manifest["pooling"] == "partial"
    assert manifest["members"] == [{"group": "comma", "path": "groups/comma"},
                                   {"group": "dclm", "path": "groups/dclm"},
                                   {"group": POPULATION, "path": "population"}]
    assert [group for group, _ in load_fits(grouped_dir)] == [*GROUPS, POPULATION]
    assert load_fits(grouped_dir / "groups" / "dclm")[0][0] is None  # a member is an ordinary fit


def test_frontier_json_is_a_list_by_group_matching_each_member(grouped_dir, capsys):
    assert main(["frontier", str(grouped_dir), "--budget", "1e21", "--budget", "1e23", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["group"] for d in docs] == [*GROUPS, POPULATION]
    assert all(d["model"] == "plain law" and d["law"] == "chinchilla" for d in docs)
    for d in docs:
        assert [row["budget"] for row in d["frontier"]] == [1e21, 1e23]
        n = d["frontier"][1]["N_opt"]
        assert n["lo"] < n["median"] < n["hi"]
    assert main(["frontier", str(grouped_dir / "groups" / "dclm"), "--budget", "1e21", "--budget", "1e23", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert "group" not in alone and alone["frontier"] == docs[1]["frontier"]  # the same answer as the member alone
    assert docs[0]["frontier"] != docs[1]["frontier"]  # each group its own law


def test_frontier_text_has_a_labelled_table_per_group(grouped_dir, capsys):
    assert main(["frontier", str(grouped_dir), "--budget", "1e22"]) == 0
    text = capsys.readouterr().out
    for group in [*GROUPS, POPULATION]:
        assert f"[{group}] law: chinchilla; model: plain law" in text
    assert text.count("Compute-optimal frontier") == 3


def test_predict_points_and_runs_per_group(grouped_dir, capsys):
    assert main(["predict", str(grouped_dir), "--N", "1e9,3e9", "--D", "2e10,6e10", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["group"] for d in docs] == [*GROUPS, POPULATION]
    for d in docs:
        assert d["model"] == "plain law" and [p["N"] for p in d["predictions"]] == [1e9, 3e9]
        assert all(p["lo"] < p["median"] < p["hi"] for p in d["predictions"])
    assert docs[0]["predictions"] != docs[1]["predictions"]
    # a run table: each group predicts its own rows, the population every row
    assert main(["predict", str(grouped_dir), "--runs", "marin", "--json"]) == 0
    docs = {d["group"]: d for d in json.loads(capsys.readouterr().out)}
    from bayes_scaling.runs import load_marin

    frame = load_marin().frame
    for group in GROUPS:
        mine = frame[frame["group"] == group]
        assert len(docs[group]["predictions"]) == len(mine)
        np.testing.assert_allclose([p["loss"] for p in docs[group]["predictions"]], mine["loss"])
    assert len(docs[POPULATION]["predictions"]) == len(frame)
    assert main(["predict", str(grouped_dir), "--N", "1e9", "--D", "2e10"]) == 0
    text = capsys.readouterr().out
    for group in [*GROUPS, POPULATION]:
        assert f"[{group}] Predicted loss (median [90% interval]; law: chinchilla; model: plain law" in text


def test_report_has_a_part_per_group(grouped_dir, tmp_path, capsys, monkeypatch):
    from bayes_scaling import plots

    # the figures are the single-fit report's (tests/test_report.py) and cost ~8 s a member here; the
    # slow test below draws them for every member
    monkeypatch.setattr(plots, "all_figures", lambda post: {})
    out = tmp_path / "grouped.html"
    assert main(["report", str(grouped_dir), "--out", str(out), "--no-backtest"]) == 0
    assert f"report written to {out}" in capsys.readouterr().out
    page = out.read_text()
    for slug, group in (("comma", "comma"), ("dclm", "dclm"), ("population-new-group", POPULATION)):
        assert f"<div class='group' id='{slug}'><h2>{group}</h2>" in page
        for key in ("verdict", "data", "parameters", "frontier", "checks", "figures"):
            assert f"<section id='{slug}-{key}'><h3>" in page
        assert f"<a href='#{slug}'>" in page
    assert page.count("model plain law") == 3 and "id='comma-backtest'" not in page
    assert page.index("id='comma'") < page.index("id='dclm'") < page.index("id='population-new-group'")


def test_a_grouped_directory_without_a_manifest_still_reads(grouped_dir, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(grouped_dir, old)
    (old / MANIFEST_FILE).unlink()  # the layout written before the manifest
    assert [group for group, _ in load_fits(old)] == [*GROUPS, POPULATION]
    assert main(["frontier", str(old), "--budget", "1e22", "--json"]) == 0
    assert [d["group"] for d in json.loads(capsys.readouterr().out)] == [*GROUPS, POPULATION]


def test_neither_a_fit_nor_a_grouped_fit_is_one_clear_error(grouped_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for command in (["frontier"], ["predict", "--N", "1e9", "--D", "2e10"], ["report"]):
        assert main([command[0], str(tmp_path / "empty"), *command[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(tmp_path / "empty") in err
        assert "not a saved fit (no meta.json) nor a grouped fit (no grouped_fit.json)" in err
    broken = tmp_path / "broken"
    shutil.copytree(grouped_dir, broken)
    (broken / MANIFEST_FILE).write_text("{not json")
    assert main(["frontier", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{broken / MANIFEST_FILE}: not valid JSON" in err
    shutil.rmtree(broken / "groups" / "dclm")
    (broken / MANIFEST_FILE).write_text(json.dumps({"members": [{"group": "dclm", "path": "groups/dclm"}]}))
    assert main(["frontier", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(broken / "groups" / "dclm") in err


@pytest.mark.slow
def test_fit_group_by_then_frontier_predict_on_the_directory(tmp_path, capsys):
    """The real thing: ``fit --group-by`` (short chains), then the grouped directory read whole."""
    out = tmp_path / "fit"
    assert main(["fit", "marin", "--group-by", "dataset", "--out", str(out), "--chains", "2", "--draws", "100",
                 "--warmup", "100", "--no-more-draws", "--json"]) == 0
    groups = sorted(m.removeprefix("groups/") for m in json.loads(capsys.readouterr().out)["members"] if "/" in m)
    assert json.loads((out / MANIFEST_FILE).read_text())["group_column"] == "dataset"  # predict --runs routes by it
    assert main(["frontier", str(out), "--budget", "1e22", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["group"] for d in docs] == [*groups, POPULATION]
    assert {d["method"] for d in docs} == {"nuts-hierarchical", "nuts-hierarchical-population"}
    assert main(["predict", str(out), "--N", "1e9", "--D", "2e10", "--json"]) == 0
    assert [d["group"] for d in json.loads(capsys.readouterr().out)] == [*groups, POPULATION]
    md = tmp_path / "r.md"
    assert main(["report", str(out), "--out", str(md), "--no-backtest"]) == 0
    text = md.read_text()
    assert all(f"## {g}\n" in text for g in [*groups, POPULATION]) and text.count("### Verdict") == len(groups) + 1
    for g in groups:  # every member's figures, in a folder of its own
        assert f"](r_figures/{g}/loss_vs_compute.png)" in text and (tmp_path / "r_figures" / g / "loss_vs_compute.png").is_file()


def test_predict_routes_rows_by_the_column_the_fit_was_grouped_by(grouped_dir, tmp_path, capsys):
    """A run table that names its groups in the column the fit was grouped by (``fit --group-by dataset``
    records it in the manifest): each fitted group predicts its own rows, a fitted group the table lacks is
    left out with a note (not scored against another group's losses), the population predicts every row."""
    from bayes_scaling.runs import load_marin

    fit = tmp_path / "fit"
    shutil.copytree(grouped_dir, fit)
    manifest = json.loads((fit / MANIFEST_FILE).read_text())
    (fit / MANIFEST_FILE).write_text(json.dumps({**manifest, "group_column": "dataset"}))
    comma = load_marin().frame.query("group == 'comma'").head(4)
    table = tmp_path / "comma.csv"
    comma[["N", "D", "loss"]].assign(dataset="comma").to_csv(table, index=False)
    assert main(["predict", str(fit), "--runs", str(table), "--json"]) == 0
    captured = capsys.readouterr()
    docs = {d["group"]: d for d in json.loads(captured.out)}
    assert set(docs) == {"comma", POPULATION}
    assert [p["loss"] for p in docs["comma"]["predictions"]] == pytest.approx(comma["loss"].tolist())
    assert len(docs[POPULATION]["predictions"]) == 4
    assert "[dclm]" in captured.err and "has no rows of this group" in captured.err
    comma[["N", "D", "loss"]].to_csv(table, index=False)  # no group names: every member predicts every row
    assert main(["predict", str(fit), "--runs", str(table), "--json"]) == 0
    assert [len(d["predictions"]) for d in json.loads(capsys.readouterr().out)] == [4, 4, 4]


def test_group_folders_stay_inside_the_fit_and_apart():
    from bayes_scaling.grouped import group_folder

    used = set()
    assert [group_folder(name, used) for name in ("dclm", "../up", "a/b", "A/B", "..", "")] == \
        ["dclm", "_up", "a_b", "A_B-2", "group", "group-2"]


def test_a_grouped_report_backtests_the_hierarchical_model_once(grouped_dir, monkeypatch):
    """The report of a grouped fit backtests the grouped fit itself: one joint refit of every group's training
    runs (``backtest.hierarchical_fit_like``, with the saved fit's settings), cut into each member's part."""
    from bayes_scaling import backtest as bt
    from bayes_scaling import report
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.grouped import load_fits
    from bayes_scaling.runs.table import Runs

    members = [(g, p) for g, p in load_fits(grouped_dir) if g in GROUPS]
    member = members[0][1]
    captured = {}
    monkeypatch.setattr(bt, "hierarchical_fit", lambda **keywords: captured.update(keywords))
    member.meta.update(pooling="partial", shared=["alpha", "beta"], spread_prior="halfnormal", offset_by="budget",
                       offset_scale=0.05, offset_detrended=True, num_chains=4, num_warmup=500, num_draws=1000,
                       target_accept=0.9, seed=3)
    bt.hierarchical_fit_like(member)
    assert (captured["share"], captured["offset_by"], captured["detrend_offsets"], captured["model"],
            captured["seed"], captured["pooling"]) == (("alpha", "beta"), "budget", True, "plain", 3, "partial")
    del member.meta["offset_by"]
    bt.hierarchical_fit_like(member)
    assert captured["offset_by"] is None  # a fit without offsets is refitted without them, not with "auto"'s

    calls = []

    def like(member, progress=False):
        def fit(train):
            calls.append(train)
            return {g: fit_nuts(Runs(train.frame[train.frame["group"] == g].reset_index(drop=True)), model="plain",
                                num_chains=2, num_warmup=100, num_draws=100) for g in train.groups}
        return fit

    monkeypatch.setattr(bt, "hierarchical_fit_like", like)
    for _, post in members:
        post.method = "nuts-hierarchical"
    result = report.grouped_backtest(members)
    assert len(calls) == 1 and sorted(calls[0].groups) == sorted(GROUPS) and result.joint
    assert set(calls[0].frame["run_id"]).isdisjoint(result.runs["run_id"])
    part = report.trust_section(member, result.for_group(members[0][0]))
    assert "refitted once to every group's lower-compute runs together" in part["lines"][0]
    assert set(part["table"]["group"]) == {members[0][0]}
    short = result.for_group(members[0][0])
    short.runs["covered_90"] = 0.0  # intervals that covered nothing: the plain law is told of the drift
    warning = [line for line in report.trust_section(member, short)["lines"] if line.startswith("Warning")]
    assert warning and "refit without --model plain" in warning[0] and "each group's drift" in warning[0]
    short.diagnostics = {members[0][0]: {"ok": False, "design_limits": [],
                                         "verdict": "Sampler diagnostics: 2 problems; do not trust the intervals yet. "
                                                    "4 chains x 1000 draws. More."}}
    lines = report.trust_section(member, short)["lines"]  # the joint refit behind the scores failed its checks
    (failed,) = [line for line in lines if "failed its sampler checks" in line]
    assert failed.startswith("Warning: the backtest's refit failed") and "2 problems" in failed and "More" not in failed
    plain_caption, drift_caption = (report.figure_captions(SimpleNamespace(meta=meta))["exponents"]
                                    for meta in ({}, {"extrapolation": {"folds": 3}}))
    assert "drift" not in plain_caption and "extrapolating model's drift" in drift_caption


def test_a_plain_member_beyond_its_runs_says_how_to_get_its_drift(grouped_dir):
    """A grouped fit answers with each group's drift unless fitted with --model plain; its population's law
    is always plain (no runs of its own to calibrate a drift on): the note beyond the runs says which."""
    from bayes_scaling.formatting import beyond_notes

    members = dict(load_fits(grouped_dir))
    for group, post in members.items():
        post.meta["pooling"] = "partial"  # as the hierarchical fit's members carry it
        note = beyond_notes(post, [1e24])[0]
        if group == POPULATION:
            assert "population (a new group's law) keeps the plain law" in note and "--model plain" not in note
        else:
            assert "adds each group's drift unless fitted with --model plain" in note


def test_plan_names_the_group_and_refuses_the_population(grouped_dir, tmp_path, capsys):
    """``plan DIR/groups/NAME`` says whose fit it plans from and which model its utility reads; the population (a
    new group's law, fitted to the other groups' runs) has no runs of its own to plan beside, and is refused."""
    for member, method in (("groups/comma", "nuts-hierarchical"), ("population", "nuts-hierarchical-population")):
        copy = tmp_path / member.replace("/", "_")
        shutil.copytree(grouped_dir / member, copy)
        meta = json.loads((copy / "meta.json").read_text())
        (copy / "meta.json").write_text(json.dumps({**meta, "method": method}))
        code = main(["plan", str(copy), "--target-budget", "1e22", "--batch", "1"])
        err = capsys.readouterr().err
        if member == "population":
            assert code == 2 and "is a grouped fit's population" in err
        else:
            assert code == 0 and "planning from [comma]'s fit (model: plain law); the utility reads the law's draws" in err
