"""Executors: real tiny training runs through a local Ray instance (loopback, 2 CPUs, no dashboard),
through submitit's local executor and through the local process pool; retries after a killed
child, failures recorded after the last retry, cancellation, and the loop's executor flags.

Each run is ``python -m training`` on a 1-layer model for 20-40 steps. A crash is real: the test
SIGKILLs a training child (found in /proc by a marker in its spec) as an out-of-memory killer would.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.executors import Resources
from bayes_scaling.executors.base import Finished
from bayes_scaling.executors.child import child_environment
from bayes_scaling.executors.inline import InlineExecutor
from bayes_scaling.executors.process import ProcessExecutor
from bayes_scaling.runs.store import RunStore

TINY = {"context": 32, "batch_size": 8, "eval_tokens": 512, "eval_points": 2}
LOOP = ["loop", "--target-budget", "1e12", "--experiment-budget", "1e13", "--n-range", "2e4", "4e4",
        "--d-range", "5120", "10240", "--grid-points", "4", "--workers", "2", "--max-runs", "3", "--json"]


def training_children(marker: str) -> list[int]:
    """Pids of ``python -m training`` processes whose spec contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"training" in argv and any(marker.encode() in a for a in argv):
                pids.append(int(entry.name))
    return pids


def wait_for(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {condition}")


def kill_first_child(marker: str) -> threading.Thread:
    """In the background: SIGKILL the first training child carrying ``marker`` (once)."""

    def kill():
        os.kill(wait_for(lambda: training_children(marker), timeout=90)[0], signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def tiny_spec(marker: str, **changes) -> dict:
    return {**TINY, "params": 20_000, "tokens": 256 * 20, "group": marker, "progress": False, **changes}


def check_batch(state: Path, store: RunStore, *, killed: bool) -> None:
    """Three tiny runs ended ok, each in the store and in the planner; one took two attempts if ``killed``."""
    from bayes_scaling.design.planner import Planner

    frame = store.to_frame(status=None)
    assert len(frame) == 3 and set(frame["status"]) == {"ok"}, frame[["run_id", "status", "error"]]
    assert (frame["loss"] > 0).all() and (frame["source"] == "loop").all()
    assert sorted(frame["attempts"]) == ([1, 1, 2] if killed else [1, 1, 1])
    planner = Planner.open(state)
    assert len(planner.done) == 3 and not planner.pending and not planner.failed
    assert {r["run_id"] for r in planner.done} == set(frame["run_id"])


@pytest.fixture(scope="module")
def ray_instance():
    """A private Ray instance for this module: 2 CPUs, every server on 127.0.0.1, no dashboard, no usage reports."""
    from bayes_scaling.executors.ray_executor import LOCAL_ENV

    os.environ.update(LOCAL_ENV)  # before Ray is imported
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_loop_on_ray_trains_a_batch_retries_a_killed_run_and_streams_into_the_store(ray_instance, tmp_path):
    from bayes_scaling.cli import main

    marker = f"ray-{uuid.uuid4().hex[:8]}"
    killer = kill_first_child(marker)
    store = tmp_path / "runs.sqlite"
    code = main([*LOOP, "--executor", "ray", "--retries", "1", "--state", str(tmp_path / "state"),
                 "--store", str(store), "--train-spec", json.dumps({**TINY, "group": marker})])
    killer.join(timeout=1)
    assert code == 0
    check_batch(tmp_path / "state", RunStore(store), killed=True)
    wait_for(lambda: ray_instance.available_resources().get("CPU") == 2, timeout=10)  # every task gave its CPU back


@pytest.mark.slow  # a Ray cluster, a fresh interpreter or a browser process: in `make test`
def test_ray_cancel_stops_the_run_and_its_training_child(ray_instance):
    from bayes_scaling.executors.ray_executor import RayExecutor

    marker = f"cancel-{uuid.uuid4().hex[:8]}"
    executor = RayExecutor(resources=Resources(memory_fraction=0.3))
    executor.submit("long", tiny_spec(marker, tokens=256 * 100_000))
    pid = wait_for(lambda: training_children(marker))[0]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"XLA_PYTHON_CLIENT_MEM_FRACTION=0.3" in environ and b"XLA_PYTHON_CLIENT_PREALLOCATE=false" in environ
    assert executor.cancel("long") and executor.pending == []
    wait_for(lambda: not training_children(marker), timeout=30)
    assert executor.wait(timeout=0.5) == []
    executor.close()


@pytest.mark.slow
def test_loop_through_submitit_local_executor_runs_the_same_batch(tmp_path):
    pytest.importorskip("submitit")
    from bayes_scaling.cli import build_parser, loop
    from bayes_scaling.design.loop import LoopSettings, run_loop
    from bayes_scaling.executors.submitit_executor import SubmititExecutor

    marker = f"slurm-{uuid.uuid4().hex[:8]}"
    args = build_parser().parse_args([*LOOP, "--state", str(tmp_path / "state"), "--train-spec", json.dumps({**TINY, "group": marker})])
    # The flags' executor with cluster="local": submitit runs each job as a local process instead of sbatch.
    executor = SubmititExecutor(folder=tmp_path / "submitit", cluster="local", time_min=5, retries=1)
    make_spec = loop.spec_maker(args)
    planner = loop.open_planner(args)
    store = RunStore(tmp_path / "runs.sqlite")
    run_loop(planner, executor, make_spec, LoopSettings(workers=3, max_runs=3), store=store)  # all three at once
    check_batch(tmp_path / "state", store, killed=False)
    assert len(list((tmp_path / "submitit").glob("*_result.pkl"))) == 3  # one submitit job per run


@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_process_pool_records_a_run_failed_after_its_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_no_such_flag=1")  # every child aborts at start-up, without a result
    executor = ProcessExecutor(retries=1)
    executor.submit("doomed", tiny_spec("doomed"))
    finished = []
    while executor.pending:
        finished += executor.wait()
    (f,) = finished
    assert f.run_id == "doomed" and f.result is None and f.attempts == 2
    assert "ChildDied" in f.error and "no result" in f.error
    assert len(executor.log) == 1 and "attempt 1 crashed" in executor.log[0]
    # The loop turns it into a failed record with the proposal's N and D: stored, not lost.
    from bayes_scaling.design.loop import record

    row = record(f, {"N": 2e4, "D": 5120.0})
    store = RunStore(tmp_path / "runs.sqlite")
    store.append(row, source="loop")
    stored = store.to_frame(status=None)
    assert list(stored["status"]) == ["failed"] and list(stored["attempts"]) == [2] and store.to_frame().empty


def test_process_pool_passes_the_memory_fraction_and_cancel_kills_the_child():
    marker = f"pool-{uuid.uuid4().hex[:8]}"
    executor = ProcessExecutor(resources=Resources(memory_fraction=0.25))
    executor.submit("long", tiny_spec(marker, tokens=256 * 100_000))
    executor.submit("refused", tiny_spec("refused", tokens=10))  # below one batch: refused, not retried
    (pid,) = wait_for(lambda: training_children(marker))
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"XLA_PYTHON_CLIENT_MEM_FRACTION=0.25" in environ and b"XLA_PYTHON_CLIENT_PREALLOCATE=false" in environ
    (refused,) = executor.wait(timeout=60)
    assert refused.run_id == "refused" and refused.attempts == 1
    assert refused.result["status"] == "failed" and "RunSpec.tokens=10" in refused.result["error"]
    assert executor.cancel("long") and not executor.cancel("long")
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    assert executor.pending == [] and executor.wait(timeout=0) == []


def test_retries_restart_a_crashed_job_and_stop_after_the_last():
    calls = []

    def flaky(spec, memory_fraction=None):
        calls.append(spec["run_id"])
        if calls.count(spec["run_id"]) <= 2:
            raise RuntimeError("worker lost")
        return {"run_id": spec["run_id"], "status": "ok", "loss": 1.0}

    with InlineExecutor(job=flaky, retries=2) as executor:
        executor.submit("a", {})
        assert executor.wait() == [Finished("a", {"run_id": "a", "status": "ok", "loss": 1.0}, 3)]
    with InlineExecutor(job=flaky, retries=1) as executor:
        executor.submit("b", {})
        (f,) = executor.wait()
        assert f.result is None and f.attempts == 2 and f.error == "RuntimeError: worker lost"
        executor.submit("b", {})  # the same id may be submitted again once it has ended
        assert executor.wait()[0].result["status"] == "ok"
    with pytest.raises(InputError, match="retries must be at least 0"):
        InlineExecutor(job=flaky, retries=-1)


def test_loop_refuses_flags_that_do_not_apply(tmp_path, capsys):
    from bayes_scaling.cli import main

    base = [*LOOP, "--state", str(tmp_path)]
    assert main([*base, "--gpus-per-run", "1"]) == 2
    assert "--gpus-per-run applies to --executor ray or slurm" in capsys.readouterr().err
    assert main([*base, "--memory-fraction", "1.5"]) == 2
    assert "--memory-fraction must be in (0, 1]" in capsys.readouterr().err
    assert main([*base, "--simulate", "--executor", "process"]) == 2
    assert "--simulate answers runs in this process" in capsys.readouterr().err
    assert main([*base, "--executor", "slurm"]) == 2
    assert "--slurm-folder" in capsys.readouterr().err


def test_child_environment_sets_the_memory_fraction_and_drops_the_host_device_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_cpu_enable_fast_math=false")
    monkeypatch.setenv("XLA_CLIENT_MEM_FRACTION", "0.9")  # jax refuses it together with the older name
    env = child_environment(0.2)
    assert env["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.2" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "XLA_CLIENT_MEM_FRACTION" not in env
    assert child_environment()["XLA_CLIENT_MEM_FRACTION"] == "0.9"  # no fraction asked: the user's setting stays


def test_ctrl_c_in_the_loop_cancels_and_leaves_the_runs_pending_for_a_resume(tmp_path):
    from bayes_scaling.cli import build_parser, loop
    from bayes_scaling.design.loop import run_loop
    from bayes_scaling.design.planner import Planner

    args = build_parser().parse_args(["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e19",
                                      "--grid-points", "6", "--state", str(tmp_path)])
    answered = []

    def job(spec, memory_fraction=None):
        if len(answered) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third run is going
        answered.append(spec["run_id"])
        return {"run_id": spec["run_id"], "status": "ok", "loss": 3.0}

    executor = InlineExecutor(job=job)
    with pytest.raises(KeyboardInterrupt):
        run_loop(loop.open_planner(args), executor, lambda p: {"run_id": p.run_id, "params": p.N, "tokens": p.D})
    assert executor.pending == []
    planner = Planner.open(tmp_path)
    assert [r["run_id"] for r in planner.done] == answered and len(planner.pending) == 1


def test_slurm_flags_become_the_sbatch_script(tmp_path, monkeypatch):
    """No Slurm here: stand-ins for srun, sbatch and scancel record what submitit asks of them."""
    pytest.importorskip("submitit")
    from bayes_scaling.cli import build_parser
    from bayes_scaling.cli.loop import make_executor_from_args

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"srun": "exit 0", "sbatch": f'cp "$1" {tmp_path}/job.sh; echo "Submitted batch job 4242"',
               "scancel": f'echo "$@" > {tmp_path}/scancel.txt'}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    args = build_parser().parse_args([*LOOP, "--executor", "slurm", "--slurm-folder", str(tmp_path / "jobs"),
                                      "--slurm-partition", "gpu", "--slurm-time", "90", "--gpus-per-run", "1",
                                      "--cpus-per-run", "8", "--slurm-option", "account=scaling",
                                      "--slurm-option", "mem=32G"])
    executor = make_executor_from_args(args)
    executor.submit("run-a", tiny_spec("slurm"))
    lines = set((tmp_path / "job.sh").read_text().splitlines())
    for expected in ("--partition=gpu", "--time=90", "--gpus-per-node=1", "--cpus-per-task=8", "--account=scaling",
                     "--mem=32G", "--job-name=bayes-scaling-train"):
        assert f"#SBATCH {expected}" in lines
    executor.close()  # cancels the job still pending
    assert (tmp_path / "scancel.txt").read_text().split() == ["4242"]
    with pytest.raises(InputError, match="--slurm-option expects KEY=VALUE"):
        make_executor_from_args(build_parser().parse_args([*LOOP, "--executor", "slurm", "--slurm-folder", "x",
                                                           "--slurm-option", "account"]))


def test_a_training_child_exits_when_the_process_that_started_it_is_killed(tmp_path):
    import subprocess
    import sys

    marker = f"orphan-{uuid.uuid4().hex[:8]}"
    script = (
        "import sys, time\nfrom pathlib import Path\n"
        "from bayes_scaling.executors.child import child_environment, launch\n"
        f"proc = launch({tiny_spec(marker, tokens=256 * 100_000)!r}, Path({str(tmp_path)!r}), child_environment())\n"
        "print(proc.pid, flush=True)\ntime.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert wait_for(lambda: training_children(marker)) == [child]
    finally:
        parent.kill()  # SIGKILL: the parent runs no clean-up of its own
        parent.wait()
    wait_for(lambda: not training_children(marker), timeout=30)


def test_the_loop_gives_each_run_its_own_checkpoint_folder_under_the_train_spec_s(tmp_path):
    """A shared --train-spec checkpoint_dir once made every run resume the first run's checkpoint."""
    from bayes_scaling.cli import build_parser, loop
    from bayes_scaling.design.planner import Proposal

    args = build_parser().parse_args([*LOOP, "--state", str(tmp_path / "state"),
                                      "--train-spec", json.dumps({**TINY, "checkpoint_dir": str(tmp_path / "ck")})])
    make_spec = loop.spec_maker(args)
    specs = [make_spec(Proposal(run_id, 2e4, d, 6 * 2e4 * d)) for run_id, d in (("N2e+04-D2e+05", 2e5), ("a/b:c", 4e5))]
    assert [s["checkpoint_dir"] for s in specs] == [str(tmp_path / "ck" / "N2e+04-D2e+05"), str(tmp_path / "ck" / "a_b_c")]
    assert loop.run_folder("") == "run"
