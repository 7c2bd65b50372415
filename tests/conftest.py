import os

os.environ.setdefault("MPLBACKEND", "Agg")

import bayes_scaling  # noqa: E402

# The settings a fit needs (float64, host devices for parallel chains) before any test uses JAX:
# tests of laws and models call JAX directly, without going through an entry point that configures.
bayes_scaling.configure()

# Tests of other features use tiny fits on purpose (2 chains x 20-200 draws), which the default
# would redo with longer chains (``fitting.nuts.MORE_DRAWS_DOUBLINGS``): each redone length compiles
# its own set of sampler programs, and the whole suite in one process then ran out of memory
# mappings for XLA's compiled code ("LLVM compilation error: Cannot allocate memory", then a crash).
# So the suite keeps each fit's draws; the redo has its own tests, which switch it back on.
from bayes_scaling import wsd as _wsd  # noqa: E402
from bayes_scaling.fitting import nuts as _nuts  # noqa: E402

_nuts.MORE_DRAWS_DOUBLINGS = 0
_wsd.MORE_DRAWS_DOUBLINGS = 0  # likewise for WSD fits (``wsd.REDO``)


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_after_each_module():
    """Each test module's compiled programs are released when it ends (``release_compiled``): the
    suite compiles many hundreds, and in one process their machine code exhausted the memory
    mappings (a crash near test 720); the on-disk caches serve the next module."""
    yield
    bayes_scaling.release_compiled()
