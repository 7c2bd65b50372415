"""Data-parallel training (training/parallel.py) on 2 host CPU devices, in a child process.

The child sets ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before JAX starts (this
process's JAX is already started with bayes_scaling's settings) and trains the same tiny bf16 run
on one device and on two: the loss curves agree within bf16 tolerance, the batch is split across
the devices, the parameters and optimizer state are replicated on both, and a two-device run
resumed from its checkpoint ends with the same loss as the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from harness_helpers import TINY

from training.parallel import device_count
from training.spec import RunSpec, SpecError

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
import jax
from flax import nnx
from training import data as data_lib, parallel
from training.spec import RunSpec
from training.train import build, make_plan, make_steps, run

spec = RunSpec(**json.loads(sys.argv[1]))
results = {n: run(RunSpec(**{**spec.to_dict(), "devices": n})) for n in (1, 2)}
# Stopped after 17 steps and resumed from its checkpoint, on two devices.
two_ckpt = RunSpec(**{**spec.to_dict(), "devices": 2, "checkpoint_dir": sys.argv[2]})
stopped = run(two_ckpt, stop_after_steps=17)
resumed = run(two_ckpt)

# One step by hand: where the batch and the state live.
mesh = parallel.data_mesh(2)
corpus = data_lib.load_corpus(spec)
plan = make_plan(spec, corpus.vocab_size)
graphdef, state = nnx.split(build(spec, plan))
train_step, _ = make_steps(graphdef, spec.z_loss, mesh)
batch = parallel.shard_batch(data_lib.train_batch(corpus.train, seed=0, step=0, batch_size=spec.batch_size,
                                                  context=spec.context), mesh)
state, ce = train_step(parallel.replicate(state, mesh), batch)
leaves = jax.tree.leaves(state)
print(json.dumps({
    "devices": jax.local_device_count(), "device": results[2].device,
    "curves": {n: [p["val_loss"] for p in r.curve] for n, r in results.items()},
    "train": {n: r.train_loss for n, r in results.items()},
    "resume": [stopped.status, resumed.resumed_from_step, resumed.loss, results[2].loss],
    "batch_shards": sorted({tuple(s.data.shape) for s in batch.addressable_shards}),
    "batch_devices": len(batch.sharding.device_set),
    "state_replicated": all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 2 for x in leaves),
}))
"""


@pytest.mark.slow
def test_two_devices_give_the_one_device_loss_curve_within_bf16_tolerance(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    spec = {**TINY, "tokens": 256 * 60, "eval_points": 3, "compute_dtype": "bfloat16"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(tmp_path / "ckpt")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["device"] == "cpu:cpu x2"
    one, two = out["curves"]["1"], out["curves"]["2"]
    assert len(one) == len(two) == 3 and one[-1] < one[0]  # it learns
    # Same data, same initialisation: only the order of bf16 reductions differs between the two, so
    # the curves agree to half a bf16 epsilon (2^-8, relative); measured here: about 1e-4.
    assert max(abs(a - b) / a for a, b in zip(one, two)) < 2**-8, (one, two)
    assert abs(out["train"]["1"] - out["train"]["2"]) / out["train"]["1"] < 2**-8
    assert out["batch_shards"] == [[4, 33]] and out["batch_devices"] == 2  # 8 sequences of 32+1 tokens, split in two
    assert out["state_replicated"]
    # A two-device run stopped and resumed from its checkpoint ends exactly where the uninterrupted one does.
    stopped, resumed_from, resumed_loss, full_loss = out["resume"]
    assert stopped == "interrupted" and resumed_from == 17 and resumed_loss == full_loss


def test_device_count_refuses_what_cannot_be_split():
    available = jax.local_device_count()
    assert device_count(RunSpec(**TINY, tokens=2560, devices=0)) == available
    with pytest.raises(SpecError, match=rf"RunSpec.devices={available + 1}: only {available} local device"):
        device_count(RunSpec(**{**TINY, "batch_size": available + 1}, tokens=2560, devices=available + 1))
    with pytest.raises(SpecError, match=r"RunSpec.batch_size=8: expected a multiple of devices=3"):
        RunSpec(**TINY, tokens=2560, devices=3)
    with pytest.raises(SpecError, match=r"RunSpec.devices=-1"):
        RunSpec(**TINY, tokens=2560, devices=-1)
    # How a run is executed is not part of its identity.
    assert RunSpec(**TINY, tokens=2560, devices=2).resolved_run_id == RunSpec(**TINY, tokens=2560).resolved_run_id
