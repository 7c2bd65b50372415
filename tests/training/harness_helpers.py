"""Tiny run configurations shared by the harness tests (imported by name: pytest puts this folder on sys.path)."""

from training.spec import RunSpec

TINY = dict(params=20_000, context=32, batch_size=8, eval_tokens=512, eval_points=3, progress=False)


def tiny_spec(**changes) -> RunSpec:
    """A 1-layer, width-32 model; 256 tokens per step, 40 steps unless ``tokens`` is given."""
    return RunSpec(**{**TINY, "tokens": 256 * 40, **changes})
