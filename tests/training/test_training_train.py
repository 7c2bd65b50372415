import json
import math

import pytest
from harness_helpers import tiny_spec

from training.spec import RunSpec, SpecError
from training.train import run


def test_loss_falls_on_real_text(tiny_result):
    r = tiny_result
    assert r.status == "ok" and r.steps_done == r.steps == 120
    val = [point["val_loss"] for point in r.curve]
    assert val[-1] < val[0] - 0.3 and r.loss == val[-1]
    assert r.loss < 0.7 * math.log(256)  # well below a uniform guess over bytes
    assert r.bits_per_byte == pytest.approx(r.loss / math.log(2))


def test_result_records_exact_counts_and_is_json(tiny_result):
    r = tiny_result
    assert r.N == r.n_params_total == 20576 and r.D == 120 * 256 and r.C == 6.0 * r.N * r.D
    assert r.curve[-1]["lr"] == pytest.approx(r.learning_rate * 0.1)  # the floor, at D
    assert r.corpus_id.startswith("python-stdlib") and r.tokens_per_s > 0 and r.device.startswith("cpu")
    assert json.loads(r.to_json())["loss"] == r.loss


@pytest.mark.slow
def test_resume_reaches_the_same_final_loss_bitwise(tmp_path):
    spec = tiny_spec(checkpoint_dir=str(tmp_path / "ckpt"))
    straight = run(tiny_spec())
    first = run(spec, stop_after_steps=17)
    assert first.status == "interrupted" and first.steps_done == 17 and first.loss is None
    resumed = run(spec)
    assert resumed.resumed_from_step == 17 and resumed.status == "ok"
    assert resumed.loss == straight.loss  # bitwise on CPU
    assert resumed.curve == straight.curve


@pytest.mark.slow
def test_nan_loss_ends_the_run_as_failed_not_a_crash():
    r = run(tiny_spec(learning_rate=1e12))
    assert r.status == "failed" and "nan" in r.error.lower() and r.loss is None
    json.loads(r.to_json())


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"params": 50}, r"RunSpec.params=50: too small for any shape"),
        ({"tokens": 100}, r"RunSpec.tokens=100: below one batch \(batch_size \* context = 256 tokens\)"),
        ({"corpus": "/no/such/corpus"}, r"RunSpec.corpus='/no/such/corpus': no such file or folder"),
    ],
)
def test_bad_specs_give_clear_errors(changes, message):
    with pytest.raises(SpecError, match=message):
        run(tiny_spec(**changes))


def test_spec_fields_are_checked():
    with pytest.raises(SpecError, match=r"RunSpec.compute_dtype='float16': expected \"bfloat16\" or \"float32\""):
        RunSpec(params=1e5, tokens=1e6, compute_dtype="float16")
    with pytest.raises(SpecError, match="unknown field"):
        RunSpec.from_dict({"params": 1, "tokens": 2, "lr": 3})
