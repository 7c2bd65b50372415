"""Priors: a law's defaults on its natural parameters plus the noise scale, overridable by name.

The likelihood is on log-loss (see ``models``); its scale ``sigma`` is the relative error of a
final loss, about 1% for well-run sweeps, so the default HalfNormal(0.1) is weak.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpyro.distributions as dist

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Law

NOISE_PRIORS = {"sigma": dist.HalfNormal(0.1)}


def resolve_priors(law: Law, overrides: Mapping[str, dist.Distribution] | None = None) -> dict:
    """The law's default priors and the noise prior, with ``overrides`` replacing any by name."""
    priors = {**law.default_priors(), **NOISE_PRIORS}
    for name, prior in (overrides or {}).items():
        if name not in priors:
            raise InputError(f"prior for unknown parameter {name!r}; {law.name} has {', '.join(priors)}")
        if not isinstance(prior, dist.Distribution):
            raise InputError(f"prior for {name!r} must be a numpyro Distribution, got {type(prior).__name__}")
        priors[name] = prior
    return priors


def describe_priors(priors: Mapping[str, dist.Distribution]) -> dict[str, str]:
    """A readable record of each prior (stored with a fit)."""
    out = {}
    for name, prior in priors.items():
        params = {k: float(getattr(prior, k)) for k in prior.arg_constraints if hasattr(prior, k)}
        out[name] = f"{type(prior).__name__}(" + ", ".join(f"{k}={v:.4g}" for k, v in params.items()) + ")"
    return out
