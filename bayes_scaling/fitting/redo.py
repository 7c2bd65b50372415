"""A fit redone where its own sampler diagnostics fail: the reliability policy NUTS fits share
(``fitting.nuts.fit_nuts``, ``hierarchical.fit.fit_hierarchical``).

* ``retry_divergent`` (``SamplerSettings``): a fit with divergent transitions at a target
  acceptance below ``RETRY_TARGET_ACCEPT`` is redone once at it (smaller steps, to follow the
  posterior's curvature).
* ``more_draws``: a fit short only of effective draws (``Check.short_of_draws``: its failed checks
  are ESS or R-hat, no divergence, R-hat at most ``MORE_DRAWS_RHAT``) is redone with twice the
  draws per chain, at most ``MORE_DRAWS_DOUBLINGS`` times, until it passes; where those longer
  chains find a divergence they are redone once more at ``RETRY_TARGET_ACCEPT``
  (``RETRY_AFTER_MORE_DRAWS``, with ``retry_divergent``).

What was redone and why is in ``Attempt.notes`` ("retried", "more_draws"), which each fit writes
into its ``meta`` (the CLI and the report print them). Each fit reads its diagnostics into a
``Check``: ``Check.from_diagnosis`` for a ``diagnostics.Diagnosis``; the hierarchical fit builds
one from its whole-model diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bayes_scaling.diagnostics import CHECK_NAMES
from bayes_scaling.fitting.settings import SamplerSettings

RETRY_TARGET_ACCEPT = 0.99  # a fit with divergences is redone once with these smaller steps
# A fit short only of effective draws is redone with twice the draws per chain, at most this many
# times (4x the draws at the defaults), while its R-hat is at most MORE_DRAWS_RHAT.
MORE_DRAWS_DOUBLINGS = 2
MORE_DRAWS_RHAT = 1.1
# Longer chains that find a divergence are redone once more at RETRY_TARGET_ACCEPT (with
# retry_divergent): on by experiments/bench_small_fits.py --retry-after's declared rule.
RETRY_AFTER_MORE_DRAWS = True
DRAWS_CHECKS = frozenset({"ess_bulk", "ess_tail", "r_hat"})  # what longer chains can settle


@dataclass(frozen=True)
class Check:
    """A fit's validity checks as the policy reads them: ``failed`` (the checks that failed, by
    ``diagnostics.Problem.check`` name: "divergences", "r_hat", "ess_bulk", ...), the divergent
    transitions, the largest R-hat, and ``detail`` (what it was read from, e.g. the ``Diagnosis``)."""

    failed: tuple[str, ...]
    divergences: int
    max_rhat: float
    detail: object = field(default=None, compare=False, repr=False)

    @classmethod
    def from_diagnosis(cls, diagnosis) -> Check:
        """The validity problems of a ``diagnostics.Diagnosis`` (efficiency warnings are not failures)."""
        failed = tuple(dict.fromkeys(p.check for p in diagnosis.problems if not p.efficiency))
        table = diagnosis.table
        max_rhat = float(table["r_hat"].max()) if "r_hat" in table else float("nan")
        return cls(failed, int(diagnosis.divergences), max_rhat, diagnosis)

    @property
    def ok(self) -> bool:
        return not self.failed

    def short_of_draws(self) -> bool:
        """Failed only on effective sample sizes and a mild R-hat: longer chains of the same sampler
        can settle it (divergences or a large R-hat cannot be drawn away)."""
        return (bool(self.failed) and set(self.failed) <= DRAWS_CHECKS and self.divergences == 0
                and self.max_rhat <= MORE_DRAWS_RHAT)


@dataclass(frozen=True)
class Attempt:
    """The fit kept so far: what ``fit`` returned, its ``Check``, the settings it was fitted with and
    the notes on what was redone ("retried", "more_draws" -> one sentence each)."""

    result: object
    check: Check
    settings: SamplerSettings
    notes: dict = field(default_factory=dict)


def redone(fit: Callable, check: Callable, settings: SamplerSettings, *, doublings: int | None = None,
           retry_after: bool | None = None, retry_target: float | None = None) -> Attempt:
    """``fit(settings=settings)``, redone by the policy (module docstring) as ``settings.retry_divergent``
    and ``settings.more_draws`` allow; ``check(result)`` reads a result's ``Check``. ``doublings``,
    ``retry_after`` and ``retry_target`` default to this module's constants (read at call time)."""
    doublings = MORE_DRAWS_DOUBLINGS if doublings is None else doublings
    retry_after = RETRY_AFTER_MORE_DRAWS if retry_after is None else retry_after
    retry_target = RETRY_TARGET_ACCEPT if retry_target is None else retry_target
    result = fit(settings=settings)
    attempt = retried(fit, check, Attempt(result, check(result), settings), retry_target)
    if settings.more_draws:
        attempt = with_more_draws(fit, check, attempt, doublings)
        if retry_after and "more_draws" in attempt.notes:  # longer chains that found a divergence
            attempt = retried(fit, check, attempt, retry_target)
    return attempt


def retried(fit: Callable, check: Callable, attempt: Attempt, target: float = RETRY_TARGET_ACCEPT) -> Attempt:
    """``attempt`` redone once at target acceptance ``target`` (smaller steps) where it diverged at a
    lower one (``settings.retry_divergent``); the notes' "retried" says so."""
    s = attempt.settings
    if not (s.retry_divergent and attempt.check.divergences and s.target_accept < target):
        return attempt
    first = f"{attempt.check.divergences} divergences at target acceptance {s.target_accept:g}"
    settings = s.replace(target_accept=target)
    result = fit(settings=settings)
    return Attempt(result, check(result), settings, {**attempt.notes, "retried": f"{first}; refitted at {target:g}"})


def with_more_draws(fit: Callable, check: Callable, attempt: Attempt, doublings: int = MORE_DRAWS_DOUBLINGS) -> Attempt:
    """``attempt`` redone with twice the draws per chain while it is only short of draws
    (``Check.short_of_draws``), at most ``doublings`` times; the last fit is kept, the notes'
    "more_draws" says what was short and the lengths tried."""
    short = ", ".join(CHECK_NAMES.get(name, name) for name in attempt.check.failed)
    counts = [attempt.settings.draws]
    while len(counts) <= doublings and attempt.check.short_of_draws():
        counts.append(2 * counts[-1])
        settings = attempt.settings.replace(draws=counts[-1])
        result = fit(settings=settings)
        note = f"{short} short at {counts[0]} draws per chain; redone with " + ", then ".join(map(str, counts[1:]))
        attempt = Attempt(result, check(result), settings, {**attempt.notes, "more_draws": note})
    return attempt
