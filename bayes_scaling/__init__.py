"""bayes-scaling: Bayesian scaling laws and compute-optimal frontiers with credible intervals.

Importing the package changes no JAX setting. ``configure()`` applies the ones a fit needs (float64,
host devices for parallel chains, a compilation cache) and leaves a user's own alone; the CLI and
every function that computes with JAX call it, and a script calls it first to get parallel chains
(see ``bayes_scaling._jax_setup``).
"""

from bayes_scaling import _jax_setup
from bayes_scaling._jax_setup import configure, release_compiled

_jax_setup._load_numpyro_eagerly()  # before any module here imports NumPyro (ArviZ's lazy import)

__all__ = ["configure", "release_compiled"]
__version__ = "0.1.0"
