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

A WSD sweep (the planner's ``wsd_cooldown``): one trunk per size N of the candidate grid
(``trunk_id_for``) keeps a checkpoint at the cool-down start of every D of the grid, so every grid
point is a branch of its size's trunk (``sweep_branches``); a trunk not opened yet has trained 0
tokens, so its first branch costs what a new run costs. With ``trunks_per_size`` k > 1 each size
has k trunks (``wsd-N<N>``, ``wsd-N<N>-t1``, ...; trunk i trains with the sweep's seed + i,
``sweep_specs``), so a size's losses are not all shifted by one trunk's effect. Scoring: a branch's log-loss is the law's
plus delta + u_t (``bayes_scaling.wsd``), so ``branch_shifts`` draws that term per column, shared by
the columns of one trunk (and delta by every branch): a utility built on the joint distribution of
the columns (``design.batch``) then sees two branches of one trunk as correlated, not as two
independent runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayes_scaling.design.candidates import Candidates, flops_6nd
from bayes_scaling.errors import InputError

BRANCH_PREFIX = "branch:"
TRUNK_PREFIX = "wsd-"
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


def trunk_id_for(N: float, index: int = 0) -> str:
    """The id of a WSD sweep's trunk of size N: ``wsd-N<N>`` for the first (index 0), ``wsd-N<N>-t<i>``
    for the others."""
    if index < 0 or index != int(index):
        raise InputError(f"trunk index must be a whole number >= 0, got {index!r}")
    return f"{TRUNK_PREFIX}N{N:.4g}" + (f"-t{int(index)}" if index else "")


def trunk_index(trunk_id: str) -> int:
    """i of a sweep trunk's id ``wsd-N<N>-t<i>`` (``trunk_id_for``); 0 for any other id."""
    head, sep, tail = trunk_id.rpartition("-t")
    return int(tail) if sep and head.startswith(TRUNK_PREFIX + "N") and tail.isdigit() else 0


def sweep_branches(grid: Candidates, trained: Mapping[str, float], *, cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION,
                   tokens_per_step: int = 1, busy: Iterable[str] = (), exclude: Iterable[str] = (),
                   max_cost: float = np.inf, trunks_per_size: int = 1) -> BranchCandidates:
    """The branch candidates of a WSD sweep over ``grid``: every (N, D) of it as a branch of each of
    the ``trunks_per_size`` trunks of N (``trunk_id_for``), each keeping a checkpoint at every grid
    D's cool-down start, priced by ``branch_candidates`` from ``trained`` (tokens each trunk has
    trained, or will have once its pending run is done; absent: not opened, 0). Trunks in ``busy``
    (a run of theirs pending) are left out: one job per trunk at a time, so no two jobs extend one
    trunk's checkpoints at once."""
    if trunks_per_size < 1 or trunks_per_size != int(trunks_per_size):
        raise InputError(f"trunks_per_size must be a whole number >= 1, got {trunks_per_size!r}")
    skip, parts = set(busy), []
    for n, i in ((n, i) for n in np.unique(grid.N) for i in range(int(trunks_per_size))):
        trunk_id = trunk_id_for(n, i)
        if trunk_id in skip:
            continue
        Ds = grid.D[grid.N == n]
        starts = [cooldown_start(d, cooldown_fraction, tokens_per_step) for d in Ds]
        trunk = Trunk(trunk_id, float(n), float(trained.get(trunk_id, 0.0)), tokens_per_step, {"save_at_tokens": starts})
        parts.append(branch_candidates([trunk], Ds, cooldown_fraction=cooldown_fraction, max_cost=max_cost, exclude=exclude))
    parts = [p for p in parts if len(p.candidates)]
    if not parts:
        return branch_candidates([], [])
    c = [p.candidates for p in parts]
    joined = Candidates(np.concatenate([x.N for x in c]), np.concatenate([x.D for x in c]),
                        np.concatenate([x.cost for x in c]), tuple(k for x in c for k in x.keys))
    return BranchCandidates(joined, tuple(t for p in parts for t in p.trunk_ids),
                            np.concatenate([p.branch_at for p in parts]), np.concatenate([p.extend for p in parts]))


def sweep_specs(base: Mapping[str, Any], trunk_id: str, D: float, branch_at: float, extend: float, grid_D: Iterable[float], *,
                cooldown_fraction: float, checkpoint_dir: str, run_id: str) -> list[dict]:
    """The harness specs of a WSD sweep's branch (``sweep_branches``): the trunk's extension to the
    branch point when it must train on first (``extend`` > 0), then the branch. ``base``: the
    fields every run of the sweep shares (params, seed, warmup_tokens > 0, context, ...); the trunk
    keeps the cool-down starts of every ``grid_D`` it has reached, so later branches of smaller D
    find their checkpoint. Trunk i of a size (``trunk_index``) trains with ``base``'s seed + i."""
    b = int(base.get("context", 1)) * int(base.get("batch_size", 1))
    starts = sorted({int(cooldown_start(d, cooldown_fraction, b)) for d in grid_D} | {int(branch_at)})
    if trunk_index(trunk_id):
        base = {**base, "seed": int(base.get("seed", 0)) + trunk_index(trunk_id)}
    trunk_spec = {**base, "schedule": "wsd", "cooldown_fraction": 0.0, "checkpoint_dir": checkpoint_dir, "run_id": trunk_id,
                  "save_at_tokens": [s for s in starts if s <= branch_at]}
    trunk = Trunk(trunk_id, float(base.get("params", 0)), float(branch_at - extend), b, trunk_spec)
    extension, branch = branch_specs(trunk, D, cooldown_fraction=cooldown_fraction, run_id=run_id)
    return ([extension] if extension is not None else []) + [branch]


def branch_shifts(trunk_of_column: Sequence[str], draws: int, *, offset: np.ndarray | None = None,
                  spread: np.ndarray | None = None, effects: Mapping[str, np.ndarray] | None = None,
                  seed: int = 0, trunk_scale: float | None = None) -> np.ndarray:
    """(draws, J) draws of what each column adds to the law's log-loss: 0 for a new cosine run
    (trunk id ""), delta + u_t for a branch of trunk t. delta: ``offset`` (a WSD fit's draws) or,
    before any branch was fitted, the prior Normal(0, OFFSET_SCALE); u_t: ``effects[t]`` (the fit's
    draws of a fitted trunk's effect), else tau z_t with tau = ``spread`` (the fit's draws) or the
    prior HalfNormal(``trunk_scale``, default TRUNK_SCALE) and z_t ~ Normal(0, 1), one value per trunk and draw (seeded by
    ``seed`` and the trunk id, so every column of one trunk shares it)."""
    from bayes_scaling.wsd import OFFSET_SCALE, TRUNK_SCALE

    rng = np.random.default_rng(seed)
    delta = np.asarray(offset, np.float64) if offset is not None else rng.normal(0.0, OFFSET_SCALE, draws)
    scale = TRUNK_SCALE if trunk_scale is None else float(trunk_scale)
    tau = np.asarray(spread, np.float64) if spread is not None else np.abs(rng.normal(0.0, scale, draws))
    if delta.shape != (draws,) or tau.shape != (draws,):
        raise InputError(f"offset and spread must hold {draws} draws each, got {delta.shape} and {tau.shape}")
    effects = effects or {}
    out = np.zeros((draws, len(trunk_of_column)))
    for t in sorted(set(trunk_of_column) - {""}):
        u = effects[t] if t in effects else tau * np.random.default_rng([seed, zlib.crc32(t.encode())]).normal(size=draws)
        out[:, [i for i, x in enumerate(trunk_of_column) if x == t]] = (delta + u)[:, None]
    return out
