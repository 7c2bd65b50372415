"""`loop` is always resumable (issue 19): a default state directory derived from the experiment's
options, the resume command printed, --max-runs counting every result of the state, SIGTERM
handled like Ctrl-C. The simulated loop answers runs instantly; at most 5 results, so no refit
(the first NUTS refit comes at 6 runs) and each call takes about a second."""

from __future__ import annotations

import contextlib
import io
import os
import signal

from bayes_scaling.cli import main
from bayes_scaling.cli.loop import DEFAULT_STATE_ROOT
from bayes_scaling.design.planner import Planner

LOOP = ["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e19", "--grid-points", "6"]


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_default_state_is_resumed_and_max_runs_counts_the_whole_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli([*LOOP, "--max-runs", "3"])
    assert code == 0, err
    states = list((tmp_path / DEFAULT_STATE_ROOT).iterdir())
    assert len(states) == 1
    state = states[0]
    assert f"to resume after a stop: bayes-scaling {' '.join(LOOP)} --max-runs 3 --state {DEFAULT_STATE_ROOT / state.name}" in err
    assert len(Planner.open(state).done) == 3

    code, _, err = run_cli([*LOOP, "--max-runs", "5", "--workers", "2"])  # workers and max-runs: same experiment
    assert code == 0, err
    assert "resuming" in err and len(list((tmp_path / DEFAULT_STATE_ROOT).iterdir())) == 1
    assert len(Planner.open(state).done) == 5  # 5 in all, not 3 + 5

    code, _, err = run_cli([*LOOP, "--max-runs", "5"])
    assert code == 0 and "nothing to run" in err and len(Planner.open(state).done) == 5

    code, _, err = run_cli([*LOOP, "--max-runs", "2", "--seed", "1"])  # another experiment: another state
    assert code == 0 and len(list((tmp_path / DEFAULT_STATE_ROOT).iterdir())) == 2


def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(tmp_path, monkeypatch):
    from bayes_scaling.design import oracles

    calls = []
    original = oracles.Simulator.__call__

    def answer_then_terminate(self, run):
        calls.append(run.run_id)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill <pid>` would, during the third run
        return original(self, run)

    monkeypatch.setattr(oracles.Simulator, "__call__", answer_then_terminate)
    state = tmp_path / "state"
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli([*LOOP, "--state", str(state), "--max-runs", "5"])
    assert code == 143
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    line = [x for x in err.splitlines() if x.startswith("SIGTERM")][0]
    assert f"resume with: bayes-scaling {' '.join(LOOP)} --state {state} --max-runs 5" in line
    planner = Planner.open(state)
    assert len(planner.done) == 2 and len(planner.pending) >= 1  # the third run is pending, not lost

    monkeypatch.setattr(oracles.Simulator, "__call__", original)
    code, _, err = run_cli([*LOOP, "--state", str(state), "--max-runs", "5"])
    assert code == 0, err
    planner = Planner.open(state)
    assert len(planner.done) == 5 and not planner.pending
    assert len({r["run_id"] for r in planner.done}) == 5


def test_a_signal_whose_interrupt_python_swallowed_still_stops_the_loop(tmp_path):
    """A KeyboardInterrupt raised by a signal handler inside a garbage-collection callback is
    'ignored' by Python (the soak test met it in JAX's); run_loop also checks the recorded signal."""
    import pytest

    from bayes_scaling.cli import build_parser, loop
    from bayes_scaling.design.loop import run_loop

    args = build_parser().parse_args([*LOOP, "--state", str(tmp_path)])
    executor, make_spec = loop._simulator(args)
    planner = loop.open_planner(args)
    with pytest.raises(KeyboardInterrupt):
        run_loop(planner, executor, make_spec, stop_requested=lambda: len(planner.done) >= 2)
    assert len(Planner.open(tmp_path).done) == 2
