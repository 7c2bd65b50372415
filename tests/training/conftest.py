"""Shared tiny configurations for the harness tests (CPU, seconds each).

``bayes_scaling`` is imported first so that JAX's process-wide flags (float64, host devices) are
fixed before any backend starts, whatever order pytest collects the suite in; the harness must, and
does, keep its own dtypes explicit under those flags too.
"""

import bayes_scaling  # noqa: F401
import pytest

from training.spec import RunSpec

TINY = dict(params=20_000, context=32, batch_size=8, eval_tokens=512, eval_points=3, progress=False)


def tiny_spec(**changes) -> RunSpec:
    """A 1-layer, width-32 model; 256 tokens per step."""
    return RunSpec(**{**TINY, "tokens": 256 * 40, **changes})


@pytest.fixture(scope="session")
def tiny_result():
    """One finished tiny run on the standard-library corpus (shared by several tests)."""
    from training.train import run

    return run(tiny_spec(tokens=256 * 120, eval_points=4))
