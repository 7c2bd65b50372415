"""Sampler settings shared by every fitting entry point (``fit_nuts``, ``fit_laplace``,
``fit_hierarchical``, ``design.misfit_fit.fit_misfit``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from bayes_scaling.errors import InputError

TARGET_ACCEPT = 0.8
# The old keyword names of the fitting functions -> the fields here.
KEYWORDS = {"num_chains": "chains", "num_warmup": "warmup", "num_draws": "draws", "seed": "seed",
            "target_accept": "target_accept", "progress": "progress", "retry_divergent": "retry_divergent",
            "init_theta": "init", "more_draws": "more_draws"}


@dataclass(frozen=True)
class SamplerSettings:
    """How NUTS runs: ``chains`` x (``warmup`` + ``draws``) transitions from ``seed``, NUTS's
    ``target_accept`` (step-size adaptation), a progress bar, whether a fit with divergent
    transitions is redone once at smaller steps (``retry_divergent``), whether a fit short only of
    effective draws is redone with longer chains (``more_draws``) (both ``fitting.redo``: on for
    ``fit_nuts``; ``fit_hierarchical`` uses them where ``hierarchical.fit.REDO`` or its caller says), and
    where the chains start (``init``: "projection", "approach3" or a dict of natural parameters;
    pooled fits)."""

    chains: int = 4
    warmup: int = 500
    draws: int = 1000
    seed: int = 0
    target_accept: float = TARGET_ACCEPT
    progress: bool = False
    retry_divergent: bool = True
    more_draws: bool = True
    init: Mapping[str, float] | str = "projection"

    def __post_init__(self):
        for name in ("chains", "warmup", "draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"sampler setting {name} must be a positive whole number, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"sampler setting seed must be a non-negative whole number, got {self.seed!r}")
        if not 0.0 < float(self.target_accept) < 1.0:
            raise InputError(f"target_accept (--target-accept) must lie strictly between 0 and 1, "
                             f"got {self.target_accept!r}")

    def replace(self, **changes) -> SamplerSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def resolve(cls, settings: SamplerSettings | None, defaults: SamplerSettings | None = None,
                **keywords) -> SamplerSettings:
        """``settings`` (else ``defaults``, else the class defaults) with the old keyword arguments
        (``num_chains``, ``num_warmup``, ``num_draws``, ``seed``, ``target_accept``, ``progress``,
        ``retry_divergent``, ``init_theta``) that were given (not None) applied on top."""
        if settings is not None and not isinstance(settings, SamplerSettings):
            raise InputError(f"the sampler's settings must be a SamplerSettings, got {type(settings).__name__}")
        base = settings if settings is not None else (defaults if defaults is not None else cls())
        unknown = set(keywords) - set(KEYWORDS)
        if unknown:
            raise TypeError(f"unknown sampler keyword(s): {', '.join(sorted(unknown))}")
        changes = {KEYWORDS[k]: v for k, v in keywords.items() if v is not None}
        return dataclasses.replace(base, **changes) if changes else base
