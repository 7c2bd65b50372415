"""Warmup-stable-decay: the schedule's boundaries, trunk checkpoints, and branches that equal straight runs."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from harness_helpers import tiny_spec

from training import optim
from training.spec import RunSpec, SpecError
from training.train import make_plan


def _lrs(schedule, steps):
    return np.array([float(schedule(jnp.int32(c))) for c in range(steps)], np.float32)  # count = s - 1


@pytest.mark.parametrize("shape", optim.COOLDOWN_SHAPES)
@pytest.mark.parametrize("steps,warmup,cooldown", [(100, 5, 20), (40, 0, 8), (10, 3, 7), (12, 1, 1)])
def test_wsd_schedule_values_at_the_boundaries(shape, steps, warmup, cooldown):
    peak, ratio = 3e-3, 0.1
    lrs = _lrs(optim.make_wsd_schedule(peak=peak, total_steps=steps, warmup=warmup, cooldown=cooldown,
                                       floor_ratio=ratio, shape=shape), steps)
    start = steps - cooldown  # S_c: the last update at the peak
    if warmup:  # update s uses peak * s / W; the peak is reached at s = W
        np.testing.assert_allclose(lrs[:warmup], peak * np.arange(1, warmup + 1) / warmup, rtol=1e-6)
    assert np.all(lrs[warmup:start] == np.float32(peak))  # stable: exactly the peak, up to S_c
    assert lrs[-1] == np.float32(peak * ratio)  # exactly the floor at D
    p = np.arange(1, cooldown + 1) / cooldown
    expected = peak * ratio + peak * (1 - ratio) * (1 - (p if shape == "linear" else np.sqrt(p)))
    np.testing.assert_allclose(lrs[start:], expected, rtol=1e-5)
    assert np.all(np.diff(lrs[start - 1:]) < 0)  # strictly falling through the cool-down


def test_trunk_schedule_is_constant_after_warmup_and_equals_any_branch_before_its_cooldown():
    trunk = _lrs(optim.make_wsd_schedule(peak=1e-3, total_steps=80, warmup=4, cooldown=0, floor_ratio=0.1), 80)
    assert np.all(trunk[4:] == np.float32(1e-3))
    branch = _lrs(optim.make_wsd_schedule(peak=1e-3, total_steps=50, warmup=4, cooldown=10, floor_ratio=0.1), 50)
    assert np.array_equal(branch[:40], trunk[:40])


def test_wsd_plan_counts_warmup_in_tokens_and_cooldown_in_updates():
    plan = make_plan(tiny_spec(schedule="wsd", tokens=256 * 50, warmup_tokens=256 * 4, cooldown_fraction=0.2), 256)
    assert (plan.steps, plan.warmup, plan.cooldown) == (50, 4, 10)
    trunk = make_plan(tiny_spec(schedule="wsd", tokens=256 * 50, cooldown_fraction=0.0, save_at_tokens=[2560, 5120],
                                checkpoint_dir="x", warmup_tokens=512), 256)
    assert trunk.keep_steps == (10, 20) and {10, 20} <= set(trunk.checkpoint_steps) and trunk.cooldown == 0
    assert tiny_spec(schedule="wsd", cooldown_fraction=0.0, warmup_tokens=512).role == "trunk"
    with pytest.raises(SpecError, match="branch_at_tokens"):  # the branch point is inside the cool-down
        make_plan(tiny_spec(schedule="wsd", tokens=256 * 50, branch_from="t", branch_at_tokens=256 * 45,
                            warmup_tokens=512), 256)


def test_cosine_run_ids_do_not_change_with_the_new_fields():
    spec = tiny_spec()
    assert spec.resolved_run_id.endswith("-" + __import__("hashlib").sha256(json.dumps(
        {k: v for k, v in spec.to_dict().items() if k not in ("run_id", "progress", "checkpoint_dir", "devices")
         and k not in ("warmup_tokens", "schedule", "cooldown_fraction", "cooldown_shape", "save_at_tokens",
                       "branch_from", "branch_at_tokens")}, sort_keys=True).encode()).hexdigest()[:8])
    assert tiny_spec(schedule="wsd").resolved_run_id != spec.resolved_run_id


@pytest.mark.parametrize("changes,field", [
    (dict(schedule="step"), "schedule"),
    (dict(schedule="wsd", cooldown_shape="cosine"), "cooldown_shape"),
    (dict(schedule="wsd", cooldown_fraction=1.5), "cooldown_fraction"),
    (dict(save_at_tokens=[512]), "save_at_tokens"),  # cosine runs keep no branch points
    (dict(schedule="wsd", checkpoint_dir="c", save_at_tokens=[10**9]), "save_at_tokens"),
    (dict(schedule="wsd", save_at_tokens="a,b"), "save_at_tokens"),
    (dict(branch_from="trunk", branch_at_tokens=512), "branch_from"),
    (dict(schedule="wsd", branch_from="trunk", warmup_tokens=512), "branch_at_tokens"),
    (dict(schedule="wsd", branch_from="c", checkpoint_dir="c", branch_at_tokens=512, warmup_tokens=512), "branch_from"),
    (dict(schedule="wsd", cooldown_fraction=0.0), "warmup_tokens"),  # a trunk's warmup must not depend on D
])
def test_bad_wsd_fields_name_the_field(changes, field):
    with pytest.raises(SpecError, match=f"RunSpec.{field}"):
        tiny_spec(**changes)


def test_wsd_spec_round_trips_through_json_and_the_command_line():
    spec = tiny_spec(schedule="wsd", cooldown_fraction=0.0, save_at_tokens=[5120, 2560], checkpoint_dir="c",
                     warmup_tokens=512)
    assert spec.save_at_tokens == (2560, 5120)
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    from training.__main__ import build_parser, spec_from_args

    args = build_parser().parse_args(["--params", "2e4", "--tokens", "1e4", "--schedule", "wsd", "--cooldown-fraction",
                                      "0", "--checkpoint-dir", "c", "--save-at-tokens", "2560,5120", "--warmup-tokens", "512"])
    assert spec_from_args(args).save_at_tokens == (2560, 5120)


@pytest.mark.slow
def test_branch_from_a_trunk_checkpoint_equals_a_straight_run_bitwise(tmp_path):
    from training.train import run

    common = dict(schedule="wsd", warmup_tokens=256 * 3, tokens=256 * 36, cooldown_fraction=0.25)
    straight = run(tiny_spec(**common))
    trunk_dir = str(tmp_path / "trunk")
    trunk = run(tiny_spec(**{**common, "tokens": 256 * 30, "cooldown_fraction": 0.0}, checkpoint_dir=trunk_dir,
                          save_at_tokens=[256 * 12, 256 * 27]))
    assert trunk.status == "ok" and trunk.role == "trunk" and trunk.cooldown_tokens == 0
    # a killed branch (stopped after 31 updates) resumes from its own checkpoint, then ends as the straight run
    branch = tiny_spec(**common, branch_from=trunk_dir, branch_at_tokens=256 * 12, checkpoint_dir=str(tmp_path / "b"))
    first = run(branch, stop_after_steps=31)
    assert first.status == "interrupted" and first.resumed_from_step == 12
    resumed = run(branch)
    assert resumed.status == "ok" and resumed.resumed_from_step == 31
    assert resumed.loss == straight.loss  # bitwise on CPU
    assert resumed.curve[-1] == straight.curve[-1]
    assert (resumed.role, resumed.trunk_id, resumed.branch_tokens) == ("branch", trunk.run_id, 256 * 12)
    assert resumed.C_own == pytest.approx(resumed.C * (36 - 12) / 36)
    assert resumed.trunk_curve and all(p["step"] <= 12 for p in resumed.trunk_curve)
    late = run(tiny_spec(**common, branch_from=trunk_dir, branch_at_tokens=256 * 27))  # the kept later branch point
    assert late.loss == straight.loss
    with pytest.raises(SpecError, match="RunSpec.branch_at_tokens=.*expected one of"):
        run(tiny_spec(**common, branch_from=trunk_dir, branch_at_tokens=256 * 20))
    with pytest.raises(SpecError, match="RunSpec.seed=1: expected the trunk's value 0"):
        run(tiny_spec(**common, seed=1, branch_from=trunk_dir, branch_at_tokens=256 * 12))
    # another shape is refused by its field, from the trunk's record, before Orbax reads the arrays
    with pytest.raises(SpecError, match="RunSpec.params=60000: expected the trunk's value"):
        run(tiny_spec(**common, params=60_000, branch_from=trunk_dir, branch_at_tokens=256 * 12))
    # a finished trunk is extended by running it again with more tokens: it resumes where it stopped
    longer = run(tiny_spec(**{**common, "tokens": 256 * 33, "cooldown_fraction": 0.0}, checkpoint_dir=trunk_dir,
                           save_at_tokens=[256 * 12, 256 * 27, 256 * 33]))
    assert longer.status == "ok" and longer.resumed_from_step == 30 and longer.steps_done == 33
