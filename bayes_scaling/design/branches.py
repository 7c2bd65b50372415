"""Branch candidates: "branch trunk T at D" beside new runs, each priced at what it still costs.

A warmup-stable-decay trunk of size N that has trained ``tokens_done`` tokens at constant learning
rate can give a run of any length D by branching it where D's cool-down starts,
s(D) = D - K(D), K(D) = the cool-down (``cooldown_fraction`` of D's updates, rounded to whole
updates as the harness does), and cooling down to D. What that costs from now is

    cost(T, D) = 6 N (K(D) + max(0, s(D) - tokens_done))

the cool-down plus the stable tokens the trunk must still train to reach s(D); a new run of the
same (N, D) costs 6 N D. A branch reports the loss of a cosine run of (N, D) up to the estimated
offset (``bayes_scaling.wsd``), so a planner that scores information per FLOP
(``design.planner.propose``) can take both kinds from one ``Candidates`` (``with_branches``):
at equal information the cheaper branch wins.

``branch_specs`` turns a chosen branch into harness specs: the trunk's own spec extended to s(D)
(when it has not trained that far: rerunning a trunk with more tokens resumes it) and the branch's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayes_scaling.design.candidates import Candidates, flops_6nd
from bayes_scaling.errors import InputError

BRANCH_PREFIX = "branch:"
DEFAULT_COOLDOWN_FRACTION = 0.2


@dataclass(frozen=True)
class Trunk:
    """A WSD trunk: its run id, parameter count N, the tokens it has trained (``tokens_done``), the
    tokens per update of its harness spec (the branch points are whole updates) and that spec."""

    trunk_id: str
    N: float
    tokens_done: float
    tokens_per_step: int = 1
    spec: Mapping[str, Any] | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Trunk:
        """From a run store record (``RunStore.get``) of a trunk (role "trunk")."""
        if record.get("role") != "trunk":
            raise InputError(f"run {record.get('run_id')!r}: field 'role' is {record.get('role')!r}; expected a WSD "
                             "trunk ('trunk')")
        spec = record.get("spec") or {}
        step = int(spec.get("context", 1)) * int(spec.get("batch_size", 1)) if spec else 1
        return cls(str(record["run_id"]), float(record["N"]), float(record["D"]), step, spec or None)

    @property
    def saved_tokens(self) -> set[float]:
        """The token counts it keeps checkpoints at: its ``save_at_tokens`` reached so far, and where it stopped."""
        kept = {float(t) for t in (self.spec or {}).get("save_at_tokens", ()) if float(t) <= self.tokens_done}
        return kept | {float(self.tokens_done)}

    def can_branch_at(self, tokens: float) -> bool:
        """Whether a branch can start at ``tokens``: a kept checkpoint, or beyond where it stopped
        (it trains on first)."""
        return tokens >= self.tokens_done or float(tokens) in self.saved_tokens


def cooldown_start(D: float, cooldown_fraction: float, tokens_per_step: int = 1) -> float:
    """s(D): the tokens at which D's cool-down starts. With S = D // b updates and
    K = min(S, max(1, round(fraction S))) cool-down updates (``training.optim.cooldown_steps``),
    s(D) = (S - K) b."""
    steps = int(D) // tokens_per_step
    k = min(steps, max(1, round(cooldown_fraction * steps))) if cooldown_fraction > 0 else 0
    return float((steps - k) * tokens_per_step)


@dataclass(frozen=True)
class BranchCandidates:
    """Branch candidates: ``candidates`` (N, D, cost, keys ``branch:<trunk>@D<D>``) and, per
    candidate, its trunk, branch point s(D) and the trunk tokens still to train first."""

    candidates: Candidates
    trunk_ids: tuple[str, ...]
    branch_at: np.ndarray
    extend: np.ndarray


def branch_key(trunk_id: str, D: float) -> str:
    return f"{BRANCH_PREFIX}{trunk_id}@D{D:.4g}"


def branch_candidates(trunks: Iterable[Trunk], D: Iterable[float], *, cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION,
                      max_cost: float = np.inf, exclude: Iterable[str] = ()) -> BranchCandidates:
    """Every (trunk, D) with a branch point after the start (s(D) > 0) and cost <= ``max_cost``,
    less the keys in ``exclude`` (branches done or pending)."""
    if not 0 < cooldown_fraction <= 1:
        raise InputError(f"cooldown_fraction must be in (0, 1], got {cooldown_fraction!r}")
    skip = set(exclude)
    rows = []
    for trunk in trunks:
        for d in sorted(set(float(x) for x in D)):
            start = cooldown_start(d, cooldown_fraction, trunk.tokens_per_step)
            steps_d = (int(d) // trunk.tokens_per_step) * trunk.tokens_per_step
            if start <= 0 or not trunk.can_branch_at(start) or branch_key(trunk.trunk_id, d) in skip:
                continue
            extend = max(0.0, start - trunk.tokens_done)
            cost = float(flops_6nd(trunk.N, steps_d - start + extend))
            if cost <= max_cost:
                rows.append((trunk.trunk_id, trunk.N, d, cost, start, extend))
    if not rows:
        empty = Candidates(np.zeros(0), np.zeros(0), np.zeros(0), ())
        return BranchCandidates(empty, (), np.zeros(0), np.zeros(0))
    ids, N, Ds, cost, start, extend = zip(*rows)
    keys = tuple(branch_key(t, d) for t, d in zip(ids, Ds))
    candidates = Candidates(np.array(N), np.array(Ds), np.array(cost), keys)
    return BranchCandidates(candidates, tuple(ids), np.array(start), np.array(extend))


def with_branches(runs: Candidates, branches: BranchCandidates) -> Candidates:
    """New runs and branches as one ``Candidates``, for ``design.planner.propose``."""
    c = branches.candidates
    return Candidates(np.concatenate([runs.N, c.N]), np.concatenate([runs.D, c.D]),
                      np.concatenate([runs.cost, c.cost]), tuple(runs.keys) + tuple(c.keys))


def branch_specs(trunk: Trunk, D: float, *, cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION,
                 run_id: str = "") -> tuple[dict | None, dict]:
    """(the trunk's spec extended to s(D), or None when it has trained that far; the branch's spec)
    for ``python -m training``. The trunk's spec must be a WSD trunk's with a checkpoint folder."""
    spec = dict(trunk.spec or {})
    if spec.get("schedule") != "wsd" or not spec.get("checkpoint_dir"):
        raise InputError(f"trunk {trunk.trunk_id!r}: field 'spec' must be a WSD trunk's harness spec with a "
                         "checkpoint_dir; got " + (f"schedule {spec.get('schedule')!r}" if spec else "none"))
    start = int(cooldown_start(D, cooldown_fraction, trunk.tokens_per_step))
    if not trunk.can_branch_at(start):
        raise InputError(f"trunk {trunk.trunk_id!r} passed {start} tokens without keeping a checkpoint there (kept: "
                         f"{sorted(trunk.saved_tokens)}); expected a D whose cool-down starts at one of them or later")
    extension = None
    if start > trunk.tokens_done:
        saved = sorted({int(t) for t in spec.get("save_at_tokens", ())} | {start})
        extension = {**spec, "tokens": start, "save_at_tokens": saved, "run_id": spec.get("run_id") or trunk.trunk_id}
    branch = {k: v for k, v in spec.items() if k not in ("save_at_tokens", "checkpoint_dir", "checkpoint_every")}
    branch.update(tokens=int(D), cooldown_fraction=cooldown_fraction, branch_from=spec["checkpoint_dir"],
                  branch_at_tokens=start, run_id=run_id or branch_key(trunk.trunk_id, D))
    return extension, branch
