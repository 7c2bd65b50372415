"""Fixtures for the harness tests (CPU, seconds each).

``bayes_scaling.configure()`` runs first (as in tests/conftest.py) so that JAX's process-wide
settings (float64, host devices) are fixed before any backend starts, whatever order pytest collects
the suite in; the harness keeps its own dtypes explicit under those settings too.
"""

import bayes_scaling
import pytest
from harness_helpers import tiny_spec

bayes_scaling.configure()


@pytest.fixture(scope="session")
def tiny_result():
    """One finished tiny run on the standard-library corpus (shared by several tests)."""
    from training.train import run

    return run(tiny_spec(tokens=256 * 120, eval_points=4))
