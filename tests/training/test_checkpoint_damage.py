"""A damaged, truncated or foreign checkpoint stops the run with one SpecError naming the folder
(``python -m training`` exit 2, one line from ``bayes-scaling train``), never a traceback (issue 19)."""

import random

import pytest
from harness_helpers import tiny_spec

from training.spec import SpecError
from training.train import run


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after 5 steps, with its checkpoint (the folder is copied by each test)."""
    folder = tmp_path_factory.mktemp("ckpt") / "run"
    first = run(tiny_spec(checkpoint_dir=str(folder)), stop_after_steps=5)
    assert first.status == "interrupted"
    return folder


def _copy(stopped, tmp_path):
    import shutil

    target = tmp_path / "ckpt"
    shutil.copytree(stopped, target)
    return target


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "delete_meta"])
def test_damaged_checkpoint_is_a_clear_spec_error(stopped, tmp_path, damage):
    folder = _copy(stopped, tmp_path)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0)
    rng = random.Random(damage)
    if damage == "delete_meta":
        for p in folder.rglob("*"):
            if p.is_dir() and p.name == "meta":
                import shutil

                shutil.rmtree(p)
    else:
        for p in files:
            data = p.read_bytes()
            if damage == "truncate":
                p.write_bytes(data[: rng.randrange(len(data))])
            elif damage == "garbage":
                p.write_bytes(bytes(rng.getrandbits(8) for _ in range(len(data))))
            else:
                p.write_bytes(b"")
    with pytest.raises(SpecError, match=r"RunSpec.checkpoint_dir=.*cannot be restored"):
        run(tiny_spec(checkpoint_dir=str(folder)))


def test_another_specs_checkpoint_is_refused_by_the_field_that_differs(stopped, tmp_path):
    """Another shape is refused from the checkpoint's record, before Orbax reads arrays of the wrong shape."""
    folder = _copy(stopped, tmp_path)
    with pytest.raises(SpecError, match=r"RunSpec.params=60000: the checkpoint in .* was written by run .* with params="):
        run(tiny_spec(params=60_000, checkpoint_dir=str(folder)))


@pytest.mark.parametrize("changes, field", [(dict(tokens=256 * 60), "tokens"), (dict(seed=7), "seed"),
                                            (dict(learning_rate=2e-3), "learning_rate")])
def test_a_checkpoint_of_the_same_shape_but_another_run_is_refused_not_continued(stopped, tmp_path, changes, field):
    """Same shapes, so Orbax restores it; but another token count (another schedule), seed or learning
    rate would silently continue the other run (a loop's runs once shared one --train-spec folder)."""
    folder = _copy(stopped, tmp_path)
    assert field in tiny_spec().to_dict()
    with pytest.raises(SpecError, match=rf"RunSpec.{field}=.*was written by run .* with {field}=.*expected the same run"):
        run(tiny_spec(checkpoint_dir=str(folder), **changes))
    resumed = run(tiny_spec(checkpoint_dir=str(folder), run_id="renamed", progress=False))  # execution fields are free
    assert resumed.status == "ok" and resumed.resumed_from_step == 5


def test_a_file_as_checkpoint_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match="a file, expected a folder"):
        run(tiny_spec(checkpoint_dir=str(tmp_path / "file")))


@pytest.mark.slow  # a Ray cluster, a fresh interpreter or a browser process: in `make test`
def test_train_command_prints_one_line_for_a_damaged_checkpoint(stopped, tmp_path):
    """End to end: `bayes-scaling train` starts `python -m training`, which refuses the checkpoint
    (exit 2); the command prints one line naming the folder, exit 2, and stores nothing."""
    import contextlib
    import io

    from bayes_scaling.cli import main

    folder = _copy(stopped, tmp_path)
    for p in folder.rglob("*"):
        if p.is_file() and p.stat().st_size > 0:
            p.write_bytes(b"\x00garbage" * 10)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--params", "20000", "--tokens", str(256 * 40), "--context", "32", "--batch-size", "8",
                     "--checkpoint-dir", str(folder), "--store", str(tmp_path / "runs.sqlite"),
                     "--spec", '{"eval_tokens": 512, "eval_points": 3, "progress": false}'])
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert code == 2, err.getvalue()
    assert "Traceback" not in err.getvalue() and len(lines) == 1
    assert lines[0].startswith("bayes-scaling train: error: RunSpec.checkpoint_dir=") and "cannot be restored" in lines[0]
    assert not list(tmp_path.glob("runs.sqlite*"))  # the store this call created is not left behind, empty
