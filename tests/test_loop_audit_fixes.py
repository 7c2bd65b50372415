"""`bayes-scaling loop`: fixes from an audit of its options and its resume. The simulated loop
answers runs instantly; the harness loop is refused before any run starts, so no training happens
(except where a test says so)."""

from __future__ import annotations

import json

import pytest
from test_loop_resume import run_cli

from bayes_scaling.design.planner import Planner

SIM = ["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e19", "--grid-points", "6"]
HARNESS = ["loop", "--target-budget", "1e12", "--experiment-budget", "1e13", "--n-range", "2e4", "4e4",
           "--d-range", "5120", "10240", "--grid-points", "4", "--max-runs", "1", "--json"]
TINY = {"context": 32, "batch_size": 8, "eval_tokens": 512, "eval_points": 2}


def test_a_loop_with_a_store_resumes_though_its_runs_were_trained_at_other_sizes_than_the_grid_s(tmp_path, monkeypatch):
    """The harness builds the shape nearest N and whole updates of D: the store holds those sizes."""
    from bayes_scaling.design import oracles

    original = oracles.Simulator.__call__

    def as_the_harness_built_it(self, run):
        result = original(self, run)
        return {**result, "N": result["N"] * 1.03, "D": result["D"] * 0.99}

    monkeypatch.setattr(oracles.Simulator, "__call__", as_the_harness_built_it)
    argv = [*SIM, "--state", str(tmp_path / "state"), "--store", str(tmp_path / "store.sqlite")]
    code, _, err = run_cli([*argv, "--max-runs", "2"])
    assert code == 0, err
    code, _, err = run_cli([*argv, "--max-runs", "3"])  # its own printed command resumes it
    assert code == 0, err
    assert len(Planner.open(tmp_path / "state").done) == 3
    # Another state's loop meets those runs as someone else's, with other N and D: refused, naming no pool.
    code, _, err = run_cli([*SIM, "--state", str(tmp_path / "other"), "--store", str(tmp_path / "store.sqlite"),
                            "--max-runs", "1"])
    assert code == 2 and "already holds runs under the names of this loop's candidates" in err
    assert "give another --store" in err and "pool" not in err


def test_a_train_spec_typo_is_refused_before_the_state_is_made(tmp_path):
    state = tmp_path / "state"
    code, _, err = run_cli([*HARNESS, "--state", str(state), "--train-spec", json.dumps({**TINY, "contxt": 64})])
    assert code == 2
    assert "--train-spec" in err and "contxt" in err and "known fields are" in err
    assert not state.exists()


def test_a_train_spec_value_the_harness_refuses_is_named(tmp_path):
    code, _, err = run_cli([*HARNESS, "--state", str(tmp_path / "s"), "--train-spec", json.dumps({**TINY, "batch_size": 0})])
    assert code == 2 and "--train-spec" in err and "batch_size" in err


@pytest.mark.parametrize("field, value", [("params", 30000), ("tokens", 5120), ("run_id", "mine")])
def test_train_spec_fields_the_loop_sets_are_refused(tmp_path, field, value):
    code, _, err = run_cli([*HARNESS, "--state", str(tmp_path / "s"), "--train-spec", json.dumps({**TINY, field: value})])
    assert code == 2 and f"--train-spec field {field!r}: the loop sets it" in err
    assert not (tmp_path / "s").exists()


def test_a_train_spec_seed_must_agree_with_the_seed_option(tmp_path):
    code, _, err = run_cli([*HARNESS, "--state", str(tmp_path / "s"), "--train-spec", json.dumps({**TINY, "seed": 5})])
    assert code == 2 and "--train-spec seed 5 and --seed 0 disagree" in err
    from bayes_scaling.cli import build_parser, loop

    args = build_parser().parse_args([*HARNESS, "--seed", "5", "--train-spec", json.dumps({**TINY, "seed": 5})])
    loop.check_train_spec(args, loop.candidates_from_args(args, (2e4, 4e4), (5120, 10240), 1e13))  # agreeing: fine


def test_the_train_spec_is_compared_and_hashed_as_json_not_as_text(tmp_path, monkeypatch):
    from bayes_scaling.cli import build_parser, loop

    monkeypatch.chdir(tmp_path)
    spaced, tight = '{"context": 32, "batch_size": 8}', '{"batch_size":8,"context":32}'
    parse = build_parser().parse_args
    assert loop.default_state_dir(parse([*SIM, "--train-spec", spaced])) == \
        loop.default_state_dir(parse([*SIM, "--train-spec", tight]))
    assert loop.default_state_dir(parse([*SIM, "--train-spec", spaced])) != \
        loop.default_state_dir(parse([*SIM, "--train-spec", '{"context": 64}']))
    state = tmp_path / "state"
    (state).mkdir()
    (state / loop.OPTIONS_FILE).write_text(json.dumps({**loop.experiment_options(parse([*SIM, "--train-spec", spaced])),
                                                       "train_spec": spaced}))  # as older loops saved it: the text
    loop.check_same_options(parse([*SIM, "--train-spec", tight]), state)  # the same experiment
    with pytest.raises(Exception, match="--train-spec"):
        loop.check_same_options(parse([*SIM, "--train-spec", '{"context": 64}']), state)


def test_a_state_made_under_the_hash_of_the_train_spec_s_text_is_still_found(tmp_path, monkeypatch):
    import hashlib

    from bayes_scaling.cli import build_parser, loop

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args([*SIM, "--train-spec", '{"context":32}'])
    options = {name: getattr(args, name, None) for name in loop.STATE_OPTIONS}
    options["strategy"] = loop.resolved_strategy(args)
    options = {k: v for k, v in options.items() if not (k in loop.NEW_STATE_OPTIONS and v is None)}
    legacy = loop.DEFAULT_STATE_ROOT / hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert loop.default_state_dir(args) != legacy
    legacy.mkdir(parents=True)
    (legacy / "planner.json").write_text("{}")
    assert loop.default_state_dir(args) == legacy


@pytest.mark.parametrize("flags, message", [
    (["--memory-fraction", "0.5"], "--memory-fraction does nothing with --simulate"),
    (["--cpus-per-run", "2"], "--cpus-per-run does nothing with --simulate"),
    (["--ray-address", "auto"], "--ray-address does nothing with --simulate"),
    (["--slurm-partition", "gpu"], "--slurm-partition does nothing with --simulate"),
    (["--train-spec", '{"context": 64}'], "--train-spec does nothing with --simulate"),
])
def test_training_flags_are_refused_with_simulate(tmp_path, flags, message):
    code, _, err = run_cli([*SIM, "--state", str(tmp_path / "s"), "--max-runs", "1", *flags])
    assert code == 2 and message in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("flags, message", [
    (["--cpus-per-run", "2"], "--cpus-per-run applies to --executor ray or slurm, not process"),
    (["--ray-address", "auto"], "--ray-address applies to --executor ray, not process"),
    (["--slurm-partition", "gpu"], "--slurm-partition applies to --executor slurm, not process"),
    (["--slurm-time", "5"], "--slurm-time applies to --executor slurm, not process"),
    (["--slurm-option", "mem=1G"], "--slurm-option applies to --executor slurm, not process"),
    (["--executor", "inline", "--slurm-folder", "x"], "--slurm-folder applies to --executor slurm, not inline"),
    (["--executor", "slurm", "--slurm-folder", "x", "--ray-address", "auto"], "--ray-address applies to --executor ray, not slurm"),
])
def test_executor_flags_are_refused_with_an_executor_that_ignores_them(tmp_path, flags, message):
    code, _, err = run_cli([*HARNESS, "--state", str(tmp_path / "s"), *flags])
    assert code == 2 and message in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("flags, message", [
    (["--memory-fraction", "1.5"], "--memory-fraction must be in (0, 1]"),
    (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be positive, got 0"),
    (["--retries", "-1"], "--retries must be at least 0, got -1"),
])
def test_range_errors_name_the_option(tmp_path, flags, message):
    code, _, err = run_cli([*HARNESS, "--state", str(tmp_path / "s"), *flags])
    assert code == 2 and message in err


def test_a_ray_address_with_no_cluster_is_named_and_refused(monkeypatch):
    import sys
    import types

    from bayes_scaling.errors import InputError
    from bayes_scaling.executors.ray_executor import RayExecutor

    def init(**kwargs):
        raise ConnectionError("Could not find any running Ray instance")

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(InputError, match="--ray-address auto: could not join a Ray cluster"):
        RayExecutor(address="auto")


def test_the_ray_executor_starts_only_after_the_state_and_store_checks(tmp_path, monkeypatch):
    from bayes_scaling.cli import loop
    from bayes_scaling.runs.store import RunStore

    started = []
    monkeypatch.setattr(loop, "make_executor_from_args", lambda args, **kw: started.append(args) or 1 / 0)
    RunStore(tmp_path / "store.sqlite").append({"run_id": "N2e+04-D5120", "N": 9e9, "D": 9e9, "loss": 2.0},
                                               source="mine")
    code, _, err = run_cli([*HARNESS, "--state", str(tmp_path / "s"), "--store", str(tmp_path / "store.sqlite"),
                            "--executor", "ray"])
    assert code == 2 and "already holds runs" in err and not started


def test_a_long_message_keeps_its_start_and_its_advice():
    from bayes_scaling.errors import one_line

    text = "RunSpec: unknown field(s) ['contxt']; known fields are [" + ", ".join(f"'f{i}'" for i in range(200)) + \
        "]; drop it from --train-spec"
    line = one_line(text)
    assert len(line) == 600 and line.startswith("RunSpec: unknown field(s) ['contxt']")
    assert line.endswith("drop it from --train-spec") and " ... " in line


def test_the_progress_line_shows_a_failure_s_reason_beyond_60_characters():
    from bayes_scaling.design.loop import progress_line

    status = {"log_N_opt": None, "flops_spent": 1e12, "experiment_budget": 1e13, "level": 0.9, "tolerance": 0.5}
    error = "spec rejected: RunSpec: unknown field(s) ['contxt']; known fields are ['attention', 'batch_size', 'context']"
    line = progress_line(1, "N2e+04-D5120", {"loss": None, "error": error}, status)
    assert "known fields are ['attention', 'batch_size', 'context']" in line


def test_an_interrupt_keeps_the_runs_that_had_already_ended(tmp_path):
    """Inline executor, 2 workers: the first run of a batch is done inside submit when the second is
    interrupted; it is recorded, not thrown away."""
    from bayes_scaling.cli import build_parser, loop
    from bayes_scaling.design.loop import LoopSettings, run_loop
    from bayes_scaling.executors.inline import InlineExecutor

    args = build_parser().parse_args([*SIM, "--state", str(tmp_path)])
    simulated, make_spec = loop._simulator(args)
    calls = []

    def job(spec, memory_fraction=None):
        calls.append(spec["run_id"])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return simulated.job(spec)

    planner = loop.open_planner(args)
    with pytest.raises(KeyboardInterrupt):
        run_loop(planner, InlineExecutor(job=job), make_spec, LoopSettings(workers=2), notify=lambda line: None)
    planner = Planner.open(tmp_path)
    assert sorted(r["run_id"] for r in planner.done) == sorted(calls[:3])
    assert list(planner.pending) == [calls[3]]


def test_a_stop_right_after_a_wait_keeps_the_runs_that_wait_handed_back(tmp_path):
    """A stop noticed between the executor's wait and the telling of what it handed back (a swallowed
    interrupt, ``stop_requested``; or a Ctrl-C between two tells) dropped those ended runs: they stayed
    pending and a resume trained them again."""
    from bayes_scaling.cli import build_parser, loop
    from bayes_scaling.design.loop import LoopSettings, run_loop
    from bayes_scaling.executors.inline import InlineExecutor

    args = build_parser().parse_args([*SIM, "--state", str(tmp_path)])
    simulated, make_spec = loop._simulator(args)
    handed_back = []

    class Recording(InlineExecutor):
        def wait(self, timeout=None):
            finished = super().wait(timeout)
            handed_back.extend(finished)
            return finished

    planner = loop.open_planner(args)
    with pytest.raises(KeyboardInterrupt):
        run_loop(planner, Recording(job=simulated.job), make_spec, LoopSettings(workers=2),
                 stop_requested=lambda: bool(handed_back), notify=lambda line: None)
    planner = Planner.open(tmp_path)
    assert len(handed_back) == 2 and not planner.pending
    assert sorted(r["run_id"] for r in planner.done) == sorted(f.run_id for f in handed_back)


def test_the_process_executor_hands_back_an_ended_child_s_result_without_waiting(tmp_path, monkeypatch):
    import subprocess
    import sys

    from bayes_scaling.executors import child
    from bayes_scaling.executors.base import poll_until
    from bayes_scaling.executors.process import ProcessExecutor

    def launch(spec, folder, env, nice=0):  # a stand-in for python -m training
        if spec["run_id"] == "slow":
            return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        result = json.dumps({"run_id": spec["run_id"], "status": "ok", "loss": 3.0})
        return subprocess.Popen([sys.executable, "-c", f"open({str(folder / child.RESULT_FILE)!r}, 'w').write({result!r})"])

    monkeypatch.setattr(child, "launch", launch)
    executor = ProcessExecutor()
    executor.submit("quick", {})
    executor.submit("slow", {})
    poll_until(lambda c: c.proc.poll() is not None, {"quick": executor._running["quick"][1]}, timeout=30)
    (kept,) = executor.ended()
    assert kept.run_id == "quick" and kept.result["loss"] == 3.0 and executor.pending == ["slow"]
    executor.close()
    assert executor.pending == []
