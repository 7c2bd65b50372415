"""`plan FIT --candidates POOL` as a new user meets it (the thirty-fifth session's audit): --budget alone is
spent and totalled; a pool priced in its own units is labelled so; the fit's own runs are left out and
repeats marked; a grouped member reads its group's rows; rows that round alike are not taken for one run;
the target table's errors name it; a loss column is said to be unread."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_design_pool import a_pool, epoch_fit

from bayes_scaling.cli import main
from bayes_scaling.cli.plan import own_group_rows
from bayes_scaling.design.candidates import Candidates, read_pool
from bayes_scaling.errors import InputError


def write_pool(path, pool: Candidates, cost=None, extra: str = "", rows=None) -> None:
    cost = pool.cost if cost is None else cost
    path.write_text("run_id,N,D,cost" + (",loss" if extra else "") + "\n" + "".join(
        f"{k},{n},{d},{c}{extra}\n" for k, n, d, c in zip(pool.keys, pool.N, pool.D, cost)))


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    directory = tmp_path_factory.mktemp("plan") / "fit"
    epoch_fit(directory)
    return directory


def test_a_budget_alone_is_spent_and_the_total_printed(fit, tmp_path, capsys):
    pool = a_pool(60, seed=1)
    write_pool(tmp_path / "pool.csv", pool)
    (tmp_path / "target.csv").write_text("N,D\n2e9,8e11\n4e9,4e11\n8e9,2e11\n")
    budget = 0.3 * float(pool.cost.sum())
    args = ["plan", str(fit), "--candidates", str(tmp_path / "pool.csv"), "--target", str(tmp_path / "target.csv"),
            "--budget", str(budget), "--shape-span", "off"]
    assert main(args + ["--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    spent = plan["total_cost"]
    assert len(plan["proposals"]) > 1 and spent <= budget and plan["budget"] == budget
    left = set(pool.keys) - {p["run_id"] for p in plan["proposals"]}
    assert min(c for k, c in zip(pool.keys, pool.cost) if k in left) > budget - spent  # nothing else fits
    assert "trunk_id" not in plan["proposals"][0] and plan["cost_unit"] == "FLOPs"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"total: {len(plan['proposals'])} runs, {spent:.3g} FLOPs of --budget {budget:.3g}" in out
    assert main(args + ["--batch", "2"]) == 0  # --batch still caps the batch
    assert "total: 2 runs" in capsys.readouterr().out


def test_a_pool_in_gpu_hours_is_labelled_in_its_units(fit, tmp_path, capsys):
    pool = a_pool(30, seed=2)
    write_pool(tmp_path / "pool.csv", pool, cost=pool.cost / 3.6e18)
    assert main(["plan", str(fit), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "1e22",
                 "--budget", str(float(pool.cost.sum() / 3.6e18) / 10)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "is not in FLOPs" in captured.err and "budgets (--budget, --experiment-budget) are in those units" in captured.err
    assert "cost (cost units)" in out and "gain / cost^0.4" in out and "cost units of --budget" in out
    assert "FLOPs)" not in out.splitlines()[1]


def test_the_fits_own_runs_are_left_out_and_repeats_marked(fit, tmp_path, capsys):
    from bayes_scaling.runs import load_chinchilla

    runs = load_chinchilla().for_fit()
    own = str(runs.frame["run_id"].iloc[3])
    pool = a_pool(20, seed=4)
    keys = (own, "repeat", *pool.keys[2:])
    N = np.r_[runs.N[3] * 1.001, runs.N[7], pool.N[2:]]  # the fit's own run (rounded), and a repeat of another
    D = np.r_[runs.D[3], runs.D[7], pool.D[2:]]
    write_pool(tmp_path / "pool.csv", Candidates(N, D, 6 * N * D, keys))
    assert main(["plan", str(fit), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "1e22", "--batch", "30",
                 "--shape-span", "off", "--json"]) == 0
    captured = capsys.readouterr()
    proposals = json.loads(captured.out)["proposals"]
    assert own not in {p["run_id"] for p in proposals}
    assert f"1 pool run is the fit's own (by run_id: {own})" in captured.err
    assert [p.get("repeats_fitted_run") for p in proposals if p["run_id"] == "repeat"] == [True]


def test_a_grouped_members_plan_reads_its_groups_rows():
    table = Candidates(np.array([1e8, 2e8, 3e8]), np.array([1e9, 2e9, 3e9]), np.ones(3), ("x", "y", "z"))
    frame = pd.DataFrame({"group": ["a", "b", "a"]})
    member = SimpleNamespace(method="nuts-hierarchical", meta={"group": "a"})
    assert own_group_rows(table, frame, member, "--candidates").keys == ("x", "z")
    other = SimpleNamespace(method="nuts-hierarchical", meta={"group": "c"})
    with pytest.raises(InputError, match="--candidates: no row of group 'c'.*a, b"):
        own_group_rows(table, frame, other, "--candidates")
    plain = SimpleNamespace(method="nuts", meta={})
    assert own_group_rows(table, frame, plain, "--candidates").keys == ("x", "y", "z")
    holes = pd.DataFrame({"group": ["a", np.nan, "a"]})
    with pytest.raises(InputError, match="--candidates: rows 2: column 'group' is empty"):
        own_group_rows(table, holes, member, "--candidates")


def test_rows_that_round_alike_are_two_runs_and_target_errors_name_the_target(tmp_path):
    (tmp_path / "p.csv").write_text("N,D\n6.322e8,7.3398e9\n6.322e8,7.3403e9\n1e8,2e9\n")
    pool = read_pool(tmp_path / "p.csv")[0]
    assert len(set(pool.keys)) == 3 and pool.keys[2] == "N1e+08-D2e+09"  # keys as before where unambiguous
    (tmp_path / "t.csv").write_text("N,D\n1e9,2e10\n1e9,2e10\n")
    with pytest.raises(InputError, match="a target table lists each run once"):
        read_pool(tmp_path / "t.csv", target=True)
    with pytest.raises(InputError, match="expected the target runs"):
        read_pool(tmp_path / "missing.csv", target=True)


def test_unread_loss_and_bad_target_budget_are_said(fit, tmp_path, capsys):
    pool = a_pool(20, seed=5)
    write_pool(tmp_path / "pool.csv", pool, extra=",3.1")
    assert main(["plan", str(fit), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "1e22"]) == 0
    assert "--candidates's loss column is not read" in capsys.readouterr().err
    code = main(["plan", str(fit), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "nan"])
    assert code == 2 and "--target-budget must be positive, finite FLOPs, got nan" in capsys.readouterr().err


def test_a_loop_whose_budget_pays_for_no_run_is_refused_before_its_state(tmp_path, capsys):
    pool = a_pool(10, seed=6)
    write_pool(tmp_path / "pool.csv", pool)
    code = main(["loop", "--simulate", "--target-budget", "1e22", "--experiment-budget", str(pool.cost.min() / 2),
                 "--candidates", str(tmp_path / "pool.csv"), "--state", str(tmp_path / "state")])
    assert code == 2 and "pays for no candidate run: the cheapest costs" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
def test_a_target_loop_reports_its_target_regions_width(tmp_path, capsys):
    pool = a_pool(30, seed=2)
    write_pool(tmp_path / "pool.csv", pool)
    (tmp_path / "target.csv").write_text("N,D\n2e9,8e11\n4e9,4e11\n8e9,2e11\n")
    assert main(["loop", "--simulate", "--target-budget", "1e22", "--experiment-budget", str(0.2 * pool.cost.sum()),
                 "--candidates", str(tmp_path / "pool.csv"), "--target", str(tmp_path / "target.csv"), "--state",
                 str(tmp_path / "state"), "--draws", "100", "--max-runs", "7", "--n-init", "6"]) == 0
    captured = capsys.readouterr()
    assert "target runs' mean width of log-loss" in captured.out + captured.err
    assert "target region (the --target runs, 3 runs): mean 90% width of the predicted log-loss" in captured.out


def test_a_target_in_gpu_hours_sets_c_star_from_its_compute_and_grids_keep_one_run(fit, tmp_path, capsys):
    pool = a_pool(20, seed=7)
    write_pool(tmp_path / "pool.csv", pool)
    (tmp_path / "target.csv").write_text("N,D,cost\n2e9,8e11,2700\n4e9,4e11,2700\n")
    assert main(["plan", str(fit), "--candidates", str(tmp_path / "pool.csv"), "--target", str(tmp_path / "target.csv"),
                 "--batch", "1"]) == 0
    assert f"C* = {6 * 2e9 * 8e11:.3g} FLOPs, the largest compute of the --target runs" in capsys.readouterr().err
    assert main(["plan", str(fit), "--target-budget", "1e23", "--budget", "1e25", "--grid-points", "4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["proposals"]) == 1  # no pool: --budget caps, --batch 1


def test_a_wsd_loop_refuses_a_pool_priced_in_other_units(tmp_path, capsys):
    pool = a_pool(10, seed=8)
    write_pool(tmp_path / "pool.csv", pool, cost=pool.cost / 3.6e18)
    code = main(["loop", "--simulate", "--wsd", "--target-budget", "1e22", "--experiment-budget", "60",
                 "--candidates", str(tmp_path / "pool.csv"), "--state", str(tmp_path / "state")])
    assert code == 2 and "--wsd prices each branch in FLOPs" in capsys.readouterr().err


@pytest.mark.slow
def test_plan_from_a_gpu_hour_loop_state_labels_its_units(tmp_path, capsys):
    from bayes_scaling.design import Planner, Simulator
    from bayes_scaling.design.settings import PlannerSettings
    from bayes_scaling.laws import EPOCH_2024

    flops = a_pool(20, seed=3)
    gpu_hours = Candidates(flops.N, flops.D, flops.cost / 3.6e18, flops.keys)
    planner = Planner.create(tmp_path / "state", gpu_hours, settings=PlannerSettings(
        target_budget=1e22, experiment_budget=float(gpu_hours.cost.sum()), strategy="target", n_init=6, seed=0,
        num_warmup=100, num_draws=100))
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)
    for p in planner.ask(6):
        planner.tell(p.run_id, simulator(p))
    assert main(["plan", str(tmp_path / "state"), "--dry-run", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "cost (cost units)" in out and "gain / cost^0.4" in out and "cost units" in out.splitlines()[-1]
