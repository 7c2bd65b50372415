"""NumPyro model functions, one module each, and the likelihood they share.

* ``pooled``: one law for all runs (``pooled_model``, ``ModelSpec``);
* ``hierarchical``: one law per group tied by a population (``hierarchical_model``, ``HierSpec``);
* ``misfit``: the law plus the planner's marginalised discrepancy term (``misfit_model``);
* ``likelihood``: the observation noise on log-loss (``Likelihood``), defined once.

A model is a plain function of its data; ``fitting.sampler`` samples any of them.
"""

from bayes_scaling.models.likelihood import DEFAULT_NU, LIKELIHOODS, Likelihood, noise_variance
from bayes_scaling.models.pooled import ModelSpec, data_centre, pooled_model

__all__ = ["DEFAULT_NU", "LIKELIHOODS", "Likelihood", "ModelSpec", "data_centre", "noise_variance", "pooled_model"]
