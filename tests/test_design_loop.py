"""The closed loop in the library (``design.loop.run_loop``): results in the planner's run store
(the only record of them), a resume that neither loses nor repeats a run, and a loop that ends
with a saved fit the CLI opens. Inline executor and the simulator: runs are answered instantly."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from bayes_scaling.design import Planner, Simulator, grid
from bayes_scaling.design.loop import FIT_DIR, LoopSettings, run_loop
from bayes_scaling.design.planner import RUNS_FILE, STATE_FILE, Proposal
from bayes_scaling.executors.inline import InlineExecutor
from bayes_scaling.laws import EPOCH_2024
from bayes_scaling.runs.store import RunStore

CANDIDATES = dict(n_range=(1e7, 1e9), d_range=(1e8, 1e10), n_points=6, d_points=6)


def new_planner(directory, **settings):
    return Planner.create(directory, grid(**CANDIDATES), target_budget=5.76e23,
                          **{"strategy": "random", "n_init": 6, "seed": 1, **settings})


def simulated(answered: list | None = None):
    """An inline executor answering from Epoch AI's law (noise 0.01), and its spec maker."""
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)

    def job(spec, memory_fraction=None):
        if answered is not None:
            answered.append(spec["run_id"])
        return simulator(Proposal(spec["run_id"], spec["N"], spec["D"], spec["cost"]))

    return InlineExecutor(job=job), lambda p: {"run_id": p.run_id, "N": p.N, "D": p.D, "cost": p.cost}


def test_the_planner_reads_its_done_runs_from_its_run_store(tmp_path):
    planner = new_planner(tmp_path)
    executor, make_spec = simulated()
    result = run_loop(planner, executor, make_spec, LoopSettings(workers=2, max_runs=4), notify=lambda line: None)
    assert result.told == 4 and result.fit_dir is None  # too few runs to fit: no fit saved
    assert not result.status["stop"] and result.status["ended_by"] == "max_runs 4: the state holds 4 results"
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert "done" not in state and "failed" not in state  # no second copy in planner.json
    stored = RunStore(tmp_path / RUNS_FILE).to_frame()
    assert list(stored["run_id"]) == [r["run_id"] for r in planner.done] and (stored["source"] == "loop").all()
    np.testing.assert_allclose(stored["loss"], [r["loss"] for r in planner.done])
    assert list(planner.runs().frame["run_id"]) == list(stored["run_id"])
    np.testing.assert_allclose(planner.runs().C, stored["C"])
    # What the store holds is what the planner knows: a run appended there by hand is done...
    asked = planner.ask(1)[0]
    RunStore(tmp_path / RUNS_FILE).append({"run_id": asked.run_id, "key": asked.run_id, "N": asked.N, "D": asked.D,
                                           "C": asked.cost, "loss": 3.0})
    reopened = Planner.open(tmp_path)
    assert len(reopened.done) == 5 and not reopened.pending  # ...and no longer pending
    # ...and without the store there is nothing done.
    for name in (RUNS_FILE, RUNS_FILE + "-wal", RUNS_FILE + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    assert Planner.open(tmp_path).done == []


def test_an_old_state_with_its_runs_in_planner_json_moves_them_into_the_store_once(tmp_path):
    planner = new_planner(tmp_path)
    asked = planner.ask(3)
    planner.tell(asked[0].run_id, 3.1)
    planner.tell(asked[1].run_id, {"status": "failed", "loss": None, "error": "out of memory"})
    old = json.loads((tmp_path / STATE_FILE).read_text())
    old["done"] = [dict(r) for r in planner.done]
    old["failed"] = [dict(r) for r in planner.failed]
    del old["version"]
    for name in (RUNS_FILE, RUNS_FILE + "-wal", RUNS_FILE + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / STATE_FILE).write_text(json.dumps(old))
    for _ in range(2):  # the second open finds them in the store only
        reopened = Planner.open(tmp_path)
        assert reopened.done == planner.done and reopened.failed == planner.failed
        assert list(reopened.pending) == [asked[2].run_id]
        assert "done" not in json.loads((tmp_path / STATE_FILE).read_text())
    frame = RunStore(tmp_path / RUNS_FILE).to_frame(status=None, history=True)
    assert sorted(frame["run_id"]) == sorted([asked[0].run_id, asked[1].run_id])  # one version each
    assert reopened.flops_spent == planner.flops_spent


def test_a_stop_between_the_store_and_the_state_neither_loses_nor_repeats_the_run(tmp_path, monkeypatch):
    """The result reaches the store, then the process stops before planner.json is rewritten: the
    resumed loop counts the run as done (not pending, not run again) and ends with 5 distinct runs."""
    answered = []
    executor, make_spec = simulated(answered)
    planner = new_planner(tmp_path)
    append = Planner._record

    def stop_after_third_store_append(self, record, source):
        append(self, record, source)
        if len(self.done) == 3:
            raise KeyboardInterrupt  # the store has the third result; the state still lists it pending

    monkeypatch.setattr(Planner, "_record", stop_after_third_store_append)
    with pytest.raises(KeyboardInterrupt):
        run_loop(planner, executor, make_spec, LoopSettings(max_runs=5), notify=lambda line: None)
    monkeypatch.setattr(Planner, "_record", append)
    assert answered[2] in json.loads((tmp_path / STATE_FILE).read_text())["pending"]

    resumed = Planner.open(tmp_path)
    assert len(resumed.done) == 3 and not resumed.pending
    executor, make_spec = simulated(answered)
    result = run_loop(resumed, executor, make_spec, LoopSettings(max_runs=5), notify=lambda line: None)
    assert result.told == 2 and len(answered) == 5 and len(set(answered)) == 5  # the third run was not run again
    history = RunStore(tmp_path / RUNS_FILE).to_frame(history=True)
    assert sorted(history["run_id"]) == sorted(answered) and (history["version"] == 1).all()
    assert [r["run_id"] for r in Planner.open(tmp_path).done] == answered


@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_the_loop_ends_with_a_saved_fit_that_posterior_load_and_the_cli_open(tmp_path):
    from bayes_scaling.cli import main
    from bayes_scaling.posterior import Posterior

    planner = new_planner(tmp_path / "state", num_warmup=100, num_draws=100)
    executor, make_spec = simulated()
    lines = []
    result = run_loop(planner, executor, make_spec, LoopSettings(workers=2, max_runs=8), notify=lines.append)
    assert result.fit_dir == tmp_path / "state" / FIT_DIR and len(lines) == 8
    fit = Posterior.load(result.fit_dir)
    assert fit.method == "nuts" and fit.model == "plain law" and fit.num_draws == 200
    assert list(fit.runs.frame["run_id"]) == [r["run_id"] for r in planner.done]
    for name, values in planner.draws().items():  # the fit the loop's last status was computed from
        np.testing.assert_array_equal(fit.draws(name), values)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["frontier", str(result.fit_dir), "--budget", "5.76e23", "--json"]) == 0
    (row,) = json.loads(out.getvalue())["frontier"]
    interval = result.status["log_N_opt"]
    log_n = np.log(fit.frontier_draws(np.array([5.76e23]))["N_opt"][:, 0])  # the saved fit's draws
    for key, q in (("median", 0.5), ("lo", 0.05), ("hi", 0.95)):  # what the loop printed last
        # the loop takes quantiles of ln N_opt, the frontier of N_opt: both interpolate between the same
        # two neighbouring draws (ln of an interpolated N is not the interpolated ln N: equal only there)
        below, above = (np.quantile(log_n, q, method=m) for m in ("lower", "higher"))
        assert below - 1e-9 <= interval[key] <= above + 1e-9 and below - 1e-9 <= np.log(row["N_opt"][key]) <= above + 1e-9
    assert not list((tmp_path / "state").glob(".fit.*"))  # no temporary folder left
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(result.fit_dir), "--no-backtest", "--out", str(tmp_path / "report.md")]) == 0
    assert "plain law" in (tmp_path / "report.md").read_text()


def test_a_store_given_twice_gets_each_run_once_and_settings_are_checked(tmp_path):
    planner = new_planner(tmp_path)
    executor, make_spec = simulated()
    run_loop(planner, executor, make_spec, LoopSettings(max_runs=3), store=RunStore(tmp_path / RUNS_FILE),
             notify=lambda line: None)
    history = RunStore(tmp_path / RUNS_FILE).to_frame(history=True)
    assert len(history) == 3 and (history["version"] == 1).all()
    from bayes_scaling.errors import InputError

    with pytest.raises(InputError, match="workers"):
        LoopSettings(workers=0)
    with pytest.raises(InputError, match="max_runs"):
        LoopSettings(max_runs=0)


def test_a_refit_that_fails_its_checks_keeps_the_verdict_instead_of_warning(recwarn):
    from bayes_scaling.design.refit import MaskedRefitter, as_runs
    from bayes_scaling.diagnostics import SamplerWarning

    c = grid(**CANDIDATES)
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)
    loss = [simulator.loss(n, d) for n, d in zip(c.N[:8], c.D[:8])]
    refitter = MaskedRefitter(num_warmup=10, num_draws=10)  # 10 draws a chain: too few to trust
    posterior = refitter.posterior(as_runs(c.N[:8], c.D[:8], loss), seed=0)
    assert posterior.num_draws == 20 and refitter.last_warning
    assert not [w for w in recwarn if issubclass(w.category, SamplerWarning)]


def test_a_damaged_run_store_in_the_state_is_named_and_left_alone(tmp_path):
    from bayes_scaling.cli import main

    new_planner(tmp_path).ask(2)
    for name in (RUNS_FILE + "-wal", RUNS_FILE + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / RUNS_FILE).write_text("run_id,N,D,loss\nr1,1e7,1e9,3.0\n")  # a CSV where the store was
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["plan", str(tmp_path), "--batch", "1"])
    assert code != 0 and err.getvalue().startswith(f"bayes-scaling plan: error: run store {tmp_path / RUNS_FILE}: "
                                                   "not a run store")  # not blamed on planner.json
    assert "Traceback" not in err.getvalue() and (tmp_path / RUNS_FILE).read_text().startswith("run_id,N,D,loss")


def test_the_planner_refit_calibrates_on_the_refits_it_is_given():
    from bayes_scaling.design.refit import MaskedRefitter, as_runs

    c = grid(**CANDIDATES)
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)
    n = min(len(c.N), 30)
    runs = as_runs(c.N[:n], c.D[:n], [simulator.loss(a, b) for a, b in zip(c.N[:n], c.D[:n])])
    for refits, recorded in ((None, "psis"), ("gaussian", "gaussian")):
        refitter = MaskedRefitter(model="extrapolating", refits=refits, num_warmup=50, num_draws=50)
        posterior = refitter.posterior(runs, seed=0)
        assert posterior.meta["extrapolation"]["refits"] == recorded


def test_the_progress_line_says_when_there_is_no_fit_yet():
    from bayes_scaling.design.loop import progress_line

    status = {"flops_spent": 1.3e17, "experiment_budget": 3e20, "level": 0.9, "tolerance": 0.5, "log_N_opt": None}
    line = progress_line(1, "r4", {"loss": 4.2437}, status)
    assert "width of log N_opt(C*) - (too few runs to fit yet)" in line and "nan" not in line
    status["log_N_opt"] = {"width": 0.7571}
    assert "width of log N_opt(C*) 0.757 (stop at 0.5)" in progress_line(14, "r15", {"loss": 3.798}, status)
    assert "FAILED (out of memory)" in progress_line(2, "r9", {"loss": None, "error": "out of memory"}, status)


def test_the_loop_says_when_the_refit_behind_its_intervals_failed_its_checks(tmp_path, capsys):
    """A planner whose refits are too short to trust: ``status`` carries the verdict, the loop's
    closing text says so and how to get numbers to act on (a passing verdict adds nothing), and
    ``plan`` on the state notes it beside its proposals."""
    from bayes_scaling.cli.loop import status_text

    c = grid(**CANDIDATES)
    planner = Planner.create(tmp_path, c, target_budget=1e22, experiment_budget=1e21, n_init=8, num_warmup=10,
                             num_draws=10, seed=0)
    assert planner.status()["refit_verdict"] is None  # no refit yet
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)
    for p in planner.ask(8):
        planner.tell(p.run_id, simulator.loss(p.N, p.D))
    status = planner.status()
    assert status["refit_verdict"].startswith("Sampler diagnostics:") and "do not trust" in status["refit_verdict"]
    text = status_text(status, tmp_path / "fit")
    assert "the refit behind these intervals failed its sampler checks" in text
    assert f"bayes-scaling fit {tmp_path / 'fit'}/runs.csv" in text
    assert "failed its sampler checks" not in status_text({**status, "refit_verdict": "passed"})
    from bayes_scaling.cli import main

    assert main(["plan", str(tmp_path), "--batch", "1", "--dry-run"]) == 0
    assert "note: the refit behind these proposals failed its sampler checks" in capsys.readouterr().err


def test_the_harness_grid_leaves_out_runs_the_harness_would_train_twice():
    """Grid sizes the harness builds as one shape (the shapes are coarse at small N), and token counts that
    round to the same number of updates, would train the same run twice: one of each is kept, the one
    nearest what is trained."""
    import argparse

    from bayes_scaling.cli.loop import distinct_harness_runs
    from bayes_scaling.cli.plan import candidates_from_args
    from training.sizing import shape_for_params

    args = argparse.Namespace(n_range=[2e4, 5e4], d_range=[4e5, 1e6], grid_points=4, max_run_cost=None,
                              train_spec=None, simulate=False)
    grid = candidates_from_args(args, (2e4, 5e5), (2e5, 4e6), 2e12)
    kept = distinct_harness_runs(grid, args)
    shapes = {shape_for_params(int(round(n)), vocab_size=256, context=128).n_params("total") for n in grid.N}
    assert len(set(kept.N)) == len(shapes) < len(set(grid.N)) and len(kept) == len(shapes) * len(set(grid.D))
    assert set(kept.keys) <= set(grid.keys)  # grid runs, not new ones
    args.train_spec = '{"batch_size": 4000, "context": 100}'  # 4e5 tokens per update: the D grid rounds to 1 and 2 updates
    assert len(set(distinct_harness_runs(grid, args).D)) == 2


def test_run_durations_fit_a_start_up_cost_and_a_rate_and_say_when_the_running_runs_end():
    from bayes_scaling.design.loop import RunDurations, eta_text

    durations = RunDurations()
    assert durations.eta([(1e15, 0.0)]) is None and eta_text(durations, [(1e15, 0.0)]) == ""
    durations.add(1e15, 30.0)
    assert durations.eta([(2e15, 10.0)]) == pytest.approx((50.0, 50.0))  # proportional from one run
    durations.add(3e15, 50.0)  # seconds = 20 + 1e-14 cost
    durations.add(float("nan"), 5.0)  # no cost (a run restarted from another call): not counted
    durations.add(2e15, None)  # no wall time (a simulator): not counted
    assert durations.coefficients() == pytest.approx((20.0, 1e-14))
    first, last = durations.eta([(1e15, 25.0), (5e15, 10.0)])
    assert first == pytest.approx(5.0) and last == pytest.approx(60.0)
    assert eta_text(durations, [(1e15, 25.0), (5e15, 10.0)]) == "; next ends in about 5 s, all in about 60 s (from 2 ended runs)"
    assert eta_text(durations, [(1e15, 100.0)]) == "; past the time expected (from 2 ended runs)"
    assert eta_text(durations, [(1e18, 0.0)]) == "; ends in about 2.8 h (from 2 ended runs)"
    durations.add(4e15, 10.0)  # a falling trend: no rate, the mean time
    assert durations.coefficients()[1] == 0.0


def test_the_loop_s_waiting_line_gains_an_estimate_once_a_timed_run_has_ended(tmp_path):
    planner = new_planner(tmp_path)
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)

    def job(spec, memory_fraction=None):
        result = simulator(Proposal(spec["run_id"], spec["N"], spec["D"], spec["cost"]))
        return {**result, "wall_time": 5.0 + spec["cost"] * 1e-17}

    labels = []

    class Busy:
        def __init__(self, text):
            labels.append(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, text):
            labels.append(text)

    run_loop(planner, InlineExecutor(job=job), lambda p: {"run_id": p.run_id, "N": p.N, "D": p.D, "cost": p.cost},
             LoopSettings(workers=1, max_runs=3, save_fit=False), notify=lambda line: None, busy=Busy)
    waits = [label for label in labels if label.startswith("waiting")]
    assert "about" not in waits[0]  # nothing has ended yet: no estimate
    assert any("(from 1 ended run)" in label for label in waits) and any("(from 2 ended runs)" in label for label in waits)
