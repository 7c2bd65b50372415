"""Answers that used to mislead (the thirty-second session's audits): runs that beat the frontier at the
fit's own budgets, decisions a few draws set, pools that repeat a run or price it in other units, a
grouped fit given to ``plan``, and the markdown report's marks and links."""

import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError, InputWarning
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.runs import Runs

BUDGETS = (1e18, 3e18, 1e19, 3e19)


def isoflop_runs(scale: float) -> Runs:
    """Five runs per budget around Epoch AI's optimum, their loss the law's times ``scale``."""
    import jax.numpy as jnp

    th = {k: jnp.asarray(float(v)) for k, v in EPOCH_2024.items()}
    rows = []
    for C in BUDGETS:
        n_opt = float(np.asarray(Chinchilla().optimal_allocation(th, jnp.asarray(C))[0]))
        for k, f in enumerate((1 / 3, 1 / 1.7, 1.0, 1.7, 3.0)):
            N = n_opt * f
            D = C / (6 * N)
            loss = float(np.exp(np.asarray(Chinchilla().log_loss(th, jnp.asarray(N), jnp.asarray(D))))) * scale
            rows.append({"run_id": f"r{C:.0e}-{k}", "N": N, "D": D, "loss": loss, "budget": C})
    return Runs(pd.DataFrame(rows))


def epoch_posterior(runs: Runs, spread: float = 0.02, sigma: float = 0.01, seed: int = 0, wild: int = 0):
    """Draws around Epoch AI's estimates; ``wild`` of them with alpha 0.02, whose loss is hundreds of nats
    (a posterior too wide to read far beyond its runs)."""
    from bayes_scaling.fitting.posterior_build import build_posterior

    rng = np.random.default_rng(seed)
    draws = {k: np.full(400, float(v)) for k, v in EPOCH_2024.items()}
    for k in ("A", "B", "alpha", "beta"):
        draws[k] = draws[k] * np.exp(spread * rng.standard_normal(400))
    draws["alpha"][:wild] = 0.02
    draws["sigma"] = np.full(400, sigma)
    return build_posterior(Chinchilla(), runs, {k: v.reshape(2, 200) for k, v in draws.items()}, None, None,
                           method="nuts", meta={"likelihood": "student_t", "nu": 5.0})


def test_runs_that_beat_the_frontier_at_their_own_budget_are_named():
    from bayes_scaling.formatting import runs_beat_frontier_notes

    assert runs_beat_frontier_notes(epoch_posterior(isoflop_runs(1.0))) == []  # runs on the law: nothing to say
    (note,) = runs_beat_frontier_notes(epoch_posterior(isoflop_runs(0.9)))  # every run 10% below the law
    assert "reached a lower loss than its frontier allows" in note and "at 1e+18 FLOPs a run reached" in note
    assert "and at 1 more budgets" in note and "The law does not describe these runs' best loss" in note
    grouped = epoch_posterior(isoflop_runs(0.9))
    grouped.meta.update(offset_by="budget", offset_detrended=False)
    assert "free per-budget offsets" in runs_beat_frontier_notes(grouped)[0]


def test_decide_keeps_to_real_shapes_and_says_when_a_few_draws_set_the_expected_loss():
    from bayes_scaling.decisions import isoflop_profile

    post = epoch_posterior(isoflop_runs(1.0), wild=8)  # 2% of the draws far off
    profile = isoflop_profile(post, 1e25)
    ratio = profile.D / profile.N
    assert ratio.min() >= 1e-3 * (1 - 1e-6) and ratio.max() <= 1e6 * (1 + 1e-6)
    assert any("the expected loss is set by a few draws" in n for n in profile.notes())
    assert profile.to_json()["notes"] == profile.notes()
    narrow = isoflop_profile(epoch_posterior(isoflop_runs(1.0)), 1e21)
    assert narrow.notes() == []
    from bayes_scaling.report import decisions_table

    table = decisions_table(post, budgets=(1e25,))
    assert "set by a few draws: see the note" in table["N of lowest expected loss"][0]
    assert any("the expected loss is set by a few draws" in n for n in table.attrs["notes"])


def test_a_pool_that_repeats_a_run_or_prices_it_in_other_units(tmp_path):
    from bayes_scaling.design.candidates import read_pool

    (tmp_path / "dup.csv").write_text("run_id,N,D,U\na,1e8,2e9,1e9\nb,2e8,4e9,1e9\nc,1e8,2e9,1e9\nd,1e8,2e9,5e8\n")
    with pytest.raises(InputError, match="rows 1 and 3 describe the same run"):
        read_pool(tmp_path / "dup.csv")  # row 4 differs in U: a data-constrained pool's other run
    (tmp_path / "gpuh.csv").write_text("run_id,N,D,cost\na,1e8,2e9,3\nb,2e8,4e9,10\n")
    with pytest.warns(InputWarning, match="is not in FLOPs \\(its median row is"):
        read_pool(tmp_path / "gpuh.csv")


def test_plan_names_a_grouped_fits_members(tmp_path, capsys):
    from bayes_scaling.cli import main

    (tmp_path / "fits").mkdir()
    (tmp_path / "fits" / "grouped_fit.json").write_text(json.dumps(
        {"kind": "grouped fit", "members": [{"group": "a", "path": "groups/a"}, {"group": "b", "path": "groups/b"}]}))
    assert main(["plan", str(tmp_path / "fits"), "--target-budget", "1e22"]) == 2
    err = capsys.readouterr().err
    assert "is a grouped fit: plan from one group's fit" in err and str(tmp_path / "fits" / "groups" / "b") in err


def test_markdown_notes_and_links_read_as_meant():
    from bayes_scaling.report import _md_link, _md_note

    assert _md_note("* beyond the fitted runs") == "\\* beyond the fitted runs"
    assert _md_note("** beyond 1e21") == "\\*\\* beyond 1e21" and _md_note("  plain") == "plain"
    assert _md_link("my rep_figures/a.png") == "<my rep_figures/a.png>" and _md_link("x/a.png") == "x/a.png"


def test_a_group_called_none_is_a_name_not_an_empty_cell(tmp_path):
    from bayes_scaling.runs import load_runs

    (tmp_path / "g.csv").write_text("N,D,loss,g\n1e8,2e9,3.0,None\n2e8,4e9,2.9,None\n1e8,2e9,3.1,x\n")
    assert load_runs(tmp_path / "g.csv", columns={"group": "g"}).frame["group"].tolist() == ["None", "None", "x"]
    (tmp_path / "e.csv").write_text("N,D,loss,g\n1e8,2e9,3.0,\n2e8,4e9,2.9,x\n")
    with pytest.raises(InputError, match="row 1, column 'g': empty"):
        load_runs(tmp_path / "e.csv", columns={"group": "g"})


def test_train_refuses_a_spec_the_options_contradict_and_names_the_option(tmp_path, capsys):
    from bayes_scaling.cli import main

    store = str(tmp_path / "s.sqlite")
    assert main(["train", "--params", "1e4", "--tokens", "1e5", "--seed", "1", "--spec", '{"seed": 3}', "--store", store]) == 2
    assert "--spec and the options disagree on seed (--spec 3, --seed 1)" in capsys.readouterr().err
    assert main(["train", "--params", "1e4", "--tokens", "1e5", "--spec", "[1]", "--store", store]) == 2
    assert "expected a JSON object of RunSpec fields" in capsys.readouterr().err
    assert main(["train", "--params", "abc", "--tokens", "1e5", "--store", store]) == 2
    assert "--params: expected a positive whole number" in capsys.readouterr().err


def test_an_export_of_every_status_imports_back_whole(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.runs.store import RunStore

    store = RunStore(tmp_path / "a.sqlite")
    store.append({"run_id": "good", "N": 1e8, "D": 2e9, "loss": 3.0})
    store.append({"run_id": "boom", "N": 2e8, "D": 4e9, "loss": None, "status": "failed", "error": "nan at step 7"})
    assert main(["runs", "export", str(tmp_path / "all.csv"), "--store", str(tmp_path / "a.sqlite"), "--all-statuses"]) == 0
    assert main(["runs", "import", str(tmp_path / "all.csv"), "--store", str(tmp_path / "b.sqlite")]) == 0
    back = RunStore(tmp_path / "b.sqlite").to_frame(status=None).set_index("run_id")
    assert back.loc["boom", "status"] == "failed" and back.loc["good", "status"] == "ok"


def test_compare_refuses_one_fit_given_twice(tmp_path, capsys):
    from bayes_scaling.cli import main

    assert main(["compare", str(tmp_path / "f"), str(tmp_path / "f")]) == 2
    assert "the same fit is given twice" in capsys.readouterr().err
