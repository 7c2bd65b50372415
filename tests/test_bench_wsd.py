"""experiments/bench_wsd.py's scheduling for the long GPU grid: priorities, trunk-before-branch,
each finished run stored at once, the deadlines (children faked: no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_wsd", ROOT / "experiments" / "bench_wsd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_long_grid_is_long_and_ordered(bench, tmp_path):
    specs = sorted(bench.plan([2e4, 5e4, 1e5], checkpoints=tmp_path, tokens=bench.LONG_TOKENS), key=bench.priority)
    assert len(specs) == 3 * (4 * 3 + 5 * 2)
    finals = [s for s in specs if "save_at_tokens" not in s]  # cosine runs and branches: a whole schedule each
    assert min(s["tokens"] // bench.TOKENS_PER_STEP for s in finals) >= 3000
    tiers = [bench.priority(s)[0] for s in specs]
    assert tiers == sorted(tiers)
    seed0 = specs[:tiers.count(0)]
    assert {s["seed"] for s in seed0} == {0} and len(seed0) == 3 * 9  # both sweeps at every size first
    assert all("save_at_tokens" in s for s in seed0[:3])  # the trunks (the longest chains) lead
    rest = [(s["run_id"][:4], s["seed"]) for s in specs[len(seed0):]]  # then cosine seeds 1, 2, then WSD seed 1
    assert rest == [("cos-", 1)] * 12 + [("cos-", 2)] * 12 + [("wsd-", 1)] * 15
    branch = next(s for s in specs if "branch_from" in s and s["tokens"] == 5.12e7)
    assert bench.updates(branch) == 5000  # a branch trains its cool-down only


def test_jobs_to_run_retrains_a_trunk_whose_checkpoints_are_gone(bench, tmp_path):
    specs = bench.plan([2e4], seeds_cos=(0,), seeds_wsd=(0,), checkpoints=tmp_path, tokens=(40960, 81920))
    trunk = next(s for s in specs if "save_at_tokens" in s)
    branches = [s["run_id"] for s in specs if "branch_from" in s]
    done = {trunk["run_id"], branches[0]}
    todo, trunk_of = bench.jobs_to_run(specs, done)
    assert [s["run_id"] for s in todo] == [s["run_id"] for s in specs if s["run_id"] not in done or s is trunk]  # in order
    assert trunk_of[branches[1]] == trunk["run_id"]
    Path(trunk["checkpoint_dir"]).mkdir()
    todo, trunk_of = bench.jobs_to_run(specs, done)
    assert trunk["run_id"] not in {s["run_id"] for s in todo} and trunk_of[branches[1]] == ""
    assert branches[0] not in {s["run_id"] for s in todo}


def _fake_launch(log: list, seconds: dict):
    """A launch() whose child sleeps a while and writes a result, as ``python -m training`` would."""
    import subprocess

    def launch(spec, folder, env, *, stderr=None, nice=0):
        log.append((spec["run_id"], time.perf_counter()))
        result = {"run_id": spec["run_id"], "status": "ok", "N": spec["params"], "D": spec["tokens"], "loss": 2.0,
                  "tokens_per_s": 1e5, "seed": spec["seed"]}
        code = f"import time, pathlib; time.sleep({seconds.get(spec['run_id'], 0.3)}); " \
               f"pathlib.Path({str(folder / 'result.json')!r}).write_text({json.dumps(json.dumps(result))})"
        return subprocess.Popen([sys.executable, "-c", code])
    return launch


def test_pool_runs_branches_after_their_trunk_and_stores_each_run(bench, tmp_path, monkeypatch):
    from bayes_scaling.executors import child
    from bayes_scaling.runs.store import RunStore

    specs = sorted(bench.plan([2e4], seeds_cos=(0,), seeds_wsd=(0,), checkpoints=tmp_path, tokens=(40960, 81920)),
                   key=bench.priority)
    trunk = next(s["run_id"] for s in specs if "save_at_tokens" in s)
    log: list = []
    monkeypatch.setattr(child, "launch", _fake_launch(log, {trunk: 1.0}))
    store_path = str(tmp_path / "runs.sqlite")
    store = RunStore(store_path)
    pool = bench.Pool(store, store_path, workers=3, nice=0, memory_fraction=0.3, max_s=60, kill_s=None, t0=time.perf_counter())
    todo, trunk_of = bench.jobs_to_run(specs, set())
    pool.run(todo, trunk_of)
    started = dict(log)
    assert pool.ok == {s["run_id"] for s in specs} and not pool.failed
    trunk_end = started[trunk] + 1.0
    assert all(started[b] >= trunk_end - 0.05 for b, t in trunk_of.items() if t == trunk)
    assert set(store.to_frame()["run_id"]) == {s["run_id"] for s in specs}
    assert pool.env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_pool_kills_at_the_deadline_and_keeps_what_finished(bench, tmp_path, monkeypatch):
    from bayes_scaling.executors import child
    from bayes_scaling.runs.store import RunStore

    specs = bench.plan([2e4], seeds_cos=(0,), seeds_wsd=(), checkpoints=tmp_path, tokens=(40960, 81920))
    log: list = []
    monkeypatch.setattr(child, "launch", _fake_launch(log, {specs[1]["run_id"]: 30.0}))
    store_path = str(tmp_path / "runs.sqlite")
    store = RunStore(store_path)
    pool = bench.Pool(store, store_path, workers=2, nice=0, memory_fraction=None, max_s=60, kill_s=2.0, t0=time.perf_counter())
    t = time.perf_counter()
    pool.run(specs, {})
    assert time.perf_counter() - t < 10
    assert pool.ok == {specs[0]["run_id"]} and pool.killed == [specs[1]["run_id"]]
    assert list(RunStore(store_path).to_frame()["run_id"]) == [specs[0]["run_id"]]
