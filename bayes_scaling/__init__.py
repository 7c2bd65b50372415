"""bayes-scaling: Bayesian scaling laws and compute-optimal frontiers with credible intervals."""

from bayes_scaling import _jax_setup  # noqa: F401  (float64, host devices: before JAX starts)

__version__ = "0.1.0"
