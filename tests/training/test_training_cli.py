"""The harness as its own process: ``python -m training``, a hard kill and resume, ``bayes-scaling train``."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from harness_helpers import tiny_spec



def _training(*args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.Popen([sys.executable, "-m", "training", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.slow
def test_bad_spec_exits_2_with_one_line_naming_the_field():
    proc = _training("--params", "1e5", "--tokens", "10", "--progress", "false")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and out == ""
    assert err.strip().splitlines() == [
        "python -m training: error: RunSpec.tokens=10: below one batch (batch_size * context = 2048 tokens)"
    ]


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint_to_the_same_loss(tmp_path):
    """SIGKILL mid-run, start again: the same final loss, bitwise, as an uninterrupted run.

    All three runs are child processes, as in production: in this pytest process JAX runs with the
    suite's float64 flag, under which optax's bias correction rounds differently.
    """
    ckpt = tmp_path / "ckpt"
    spec = tiny_spec(tokens=256 * 300, checkpoint_every=10, checkpoint_dir=str(ckpt)).to_dict()
    proc = _training("--spec", json.dumps(spec))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and any(p.name.isdigit() for p in ckpt.iterdir()):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed_proc = _training("--spec", json.dumps(spec))
    straight_proc = _training("--spec", json.dumps({**spec, "checkpoint_dir": ""}))
    resumed = json.loads(resumed_proc.communicate(timeout=300)[0])
    straight = json.loads(straight_proc.communicate(timeout=300)[0])
    assert 0 < resumed["resumed_from_step"] < resumed["steps"] and resumed["status"] == "ok"
    assert resumed["loss"] == straight["loss"] and resumed["curve"] == straight["curve"]


@pytest.mark.slow
def test_bayes_scaling_train_appends_the_result_to_the_store(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.runs.store import RunStore

    store = tmp_path / "runs.sqlite"
    spec = json.dumps({"eval_tokens": 512, "eval_points": 2, "progress": False})
    argv = ["train", "--params", "2e4", "--tokens", "1e4", "--context", "32", "--batch-size", "8",
            "--store", str(store), "--run-id", "cli-run", "--spec", spec]
    assert main(argv) == 0
    assert "cli-run v1: ok, N=20,576 D=9,984" in capsys.readouterr().out
    record = RunStore(store).get("cli-run")
    assert record["status"] == "ok" and record["corpus_id"].startswith("python-stdlib") and record["curve"]
    assert main(["train", "--params", "10", "--tokens", "1e4", "--store", str(store)]) == 2
    assert "RunSpec.params=10: too small for any shape" in capsys.readouterr().err
    assert RunStore(store).get("cli-run")["status"] == "ok"  # a store that held runs is kept
    fresh = tmp_path / "fresh.sqlite"  # a refused run leaves no empty store behind (nor its SQLite companions)
    assert main(["train", "--params", "10", "--tokens", "1e4", "--store", str(fresh)]) == 2
    assert not list(tmp_path.glob("fresh.sqlite*"))


@pytest.mark.slow
def test_bayes_scaling_train_opens_a_trunk_and_branches_it(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.runs.store import RunStore

    store, trunk_dir = tmp_path / "runs.sqlite", str(tmp_path / "trunk")
    common = ["--params", "2e4", "--context", "32", "--batch-size", "8", "--store", str(store), "--schedule", "wsd",
              "--warmup-tokens", "768", "--spec", json.dumps({"eval_tokens": 512, "eval_points": 2, "progress": False})]
    assert main(["train", *common, "--tokens", "5120", "--cooldown-fraction", "0", "--save-at-tokens", "2560,5120",
                 "--checkpoint-dir", trunk_dir, "--run-id", "trunk"]) == 0
    assert main(["train", *common, "--tokens", "3200", "--cooldown-fraction", "0.2", "--cooldown-shape", "1-sqrt",
                 "--branch-from", trunk_dir, "--branch-at-tokens", "2560", "--run-id", "branch"]) == 0
    branch = RunStore(store).get("branch")
    assert (branch["role"], branch["trunk_id"], branch["branch_tokens"], branch["cooldown_tokens"]) == ("branch", "trunk", 2560, 512)
    assert branch["trunk_curve"] and list(RunStore(store).to_frame()["run_id"]) == ["branch"]
