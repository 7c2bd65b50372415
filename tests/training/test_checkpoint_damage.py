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


def test_another_specs_checkpoint_is_refused(stopped, tmp_path):
    folder = _copy(stopped, tmp_path)
    with pytest.raises(SpecError, match=r"at step 5 cannot be restored.*same spec"):
        run(tiny_spec(params=60_000, checkpoint_dir=str(folder)))


def test_a_file_as_checkpoint_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match="a file, expected a folder"):
        run(tiny_spec(checkpoint_dir=str(tmp_path / "file")))
