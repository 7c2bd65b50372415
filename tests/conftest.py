import os

os.environ.setdefault("MPLBACKEND", "Agg")

import bayes_scaling  # noqa: E402,F401  (float64 and host devices before any JAX use)
