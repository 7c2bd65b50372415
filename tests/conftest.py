import os

os.environ.setdefault("MPLBACKEND", "Agg")

import bayes_scaling  # noqa: E402

# The settings a fit needs (float64, host devices for parallel chains) before any test uses JAX:
# tests of laws and models call JAX directly, without going through an entry point that configures.
bayes_scaling.configure()
