"""The ask/tell experiment planner.

    planner = Planner.create(directory, candidates, target_budget=5.76e23, tolerance=0.3)
    for proposal in planner.ask(4):      # q runs for q workers; they become "pending"
        ...start the run...
    planner.tell(run_id, result)          # a loss, or the harness's RunResult dict
    planner.status()                      # FLOPs spent, interval of log N_opt(C*), stop rule

State. The results live in one place, the run store ``directory/runs.sqlite`` (``runs.store``):
``tell`` appends each run, done or failed, and the planner reads its done runs from there
(``done``, ``runs()``). Settings, candidates, pending runs and the RNG live in
``directory/planner.json``, rewritten atomically (temporary file + rename) after every ask and tell,
so a crash loses nothing: ``Planner.open(directory)`` carries on where it stopped (a pending run
whose result reached the store before the crash counts as done, once). A state written before the
store (done and failed runs in planner.json) is moved into the store when opened.

Choice. The first ``n_init`` runs are a space-filling design (farthest-point in standardised
(log N, log D)) over the cheapest quarter of candidates (by log cost; the q cheapest left, where
fewer than a batch of q remain there). After that each ask refits
the posterior (NUTS, observations padded to a capacity and masked: no recompilation) and picks a
greedy batch by expected information gain about the targets per FLOP (``design.batch``), with
pending runs conditioned on as fantasised outcomes; optionally (``discrepancy``) under the law plus
a misfit term (``design.discrepancy``). Strategy ``target`` instead picks by the target-region
utility (``design.target``: expected reduction of predictive error over the target runs, jointly
with log N_opt(C*), per cost^0.4) under the refits' model (``model``: plain or extrapolating).
Other scores (``eig``, ``uncertainty``, ``random``) exist for baselines. The settings are a
``PlannerSettings`` (``design.settings``), saved with ``asdict`` in planner.json. Only candidates that fit in the remaining experiment budget
(budget - spent - pending) are proposed.

WSD sweep (``wsd_cooldown`` > 0). New runs are warmup-stable-decay branches: ``trunks_per_size``
trunks (default 1) per size N of the candidate grid, each grid (N, D) a branch of each of them
(``design.branches.sweep_branches``; trunk i of a size is ``wsd-N<N>-t<i>``, seeded + i), priced
at what it still costs: the cool-down plus the stable tokens the trunk must train first (its first
branch: a whole run). ``ask`` proposes at most one run per trunk at a time (a trunk's pending run
may extend it) and records how far each trunk has trained (``state["wsd"]["trunks"]``). Refits
with a branch done are ``bayes_scaling.wsd.fit_wsd`` (law + WSD offset delta + per-trunk effect;
the plain law, whatever ``model`` says: the extrapolating drift is not part of that fit);
each branch column is scored with delta + u_t added to the law's log-loss draws
(``branches.branch_shifts``), so branches of one trunk are correlated, not independent runs.

Stop rule. The ``level`` interval of log N_opt(C*) is at most ``tolerance`` wide, or the
experiment budget is spent, or no affordable candidate is left.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayes_scaling.design.batch import greedy_batch
from bayes_scaling.design.branches import BranchCandidates, branch_shifts, sweep_branches
from bayes_scaling.design.candidates import Candidates, cost_unit
from bayes_scaling.design.discrepancy import Discrepancy, coordinates, fit_discrepancy
from bayes_scaling.design.eig import check_targets, predicted_log_loss, target_draws
from bayes_scaling.design.refit import MaskedRefitter, as_runs, draws_of, verdict_kept
from bayes_scaling.design.settings import STRATEGIES, PlannerSettings
from bayes_scaling.design.target import TargetRegion, choose, in_band, posterior_columns, target_matrix
from bayes_scaling.errors import ComputeColumnWarning, InputError
from bayes_scaling.laws import Law, get_law
from bayes_scaling.posterior import Posterior
from bayes_scaling.runs.store import RunStore
from bayes_scaling.runs.table import Runs
from bayes_scaling.wsd import TRUNK_SCALE

STATE_FILE = "planner.json"
RUNS_FILE = "runs.sqlite"  # the planner's run store, in its state directory
TRUNKS_DIR = "trunks"  # a WSD sweep's trunk checkpoints (loop --wsd), in its state directory
DEFAULT_DISCREPANCY = 0.0  # no misfit term; "auto": fitted to the residuals; kappa > 0: a fixed prior (design.discrepancy)
DEFAULT_DISCREPANCY_LENGTH = 0.5  # decades of N and of D over which the misfit is correlated
DEFAULT_DISCREPANCY_GROWTH = 0.5  # fixed prior: misfit sd x 10^0.5 per decade of compute below the largest run
MIN_RUNS_FOR_MISFIT = 12  # fewer done runs: no misfit estimate (the plain utility)
NESTED_OUTER = 200  # outer samples of the nested estimator when the planner uses it (cost O(200 S K))


@dataclass(frozen=True)
class Proposal:
    """A run to start: its id (the candidate key), size, tokens, cost (FLOPs) and expected gain (nats)."""

    run_id: str
    N: float
    D: float
    cost: float
    gain: float = float("nan")
    trunk_id: str = ""  # a WSD branch: its trunk, its branch point and the trunk tokens to train first
    branch_at: float = 0.0
    extend: float = 0.0


def propose(law: Law, draws: dict, candidates: Candidates, *, target_budget: float, q: int,
            targets=("log_N_opt",), score: str = "eig_per_cost", estimator: str = "gaussian",
            likelihood: str = "student_t", nu: float = 5.0, pending: Candidates | None = None,
            done: Candidates | None = None, done_loss=None, discrepancy: str | float = 0.0,
            discrepancy_length: float = DEFAULT_DISCREPANCY_LENGTH, discrepancy_growth: float = DEFAULT_DISCREPANCY_GROWTH,
            seed: int = 0, report: dict | None = None, shift=None, shift_pending=None,
            budget: float | None = None) -> list[Proposal]:
    """The greedy batch of ``q`` proposals from posterior ``draws`` (natural parameters and sigma).

    ``discrepancy`` scores the information gain under the law plus a misfit term
    (``design.discrepancy``; Gaussian estimator, information scores only): ``"auto"`` fits its size
    and growth to the residuals of the ``done`` runs (losses ``done_loss``) by marginal likelihood;
    a number kappa > 0 fixes tau = kappa x the posterior median of sigma at the largest scale in
    sight, growing by 10^``discrepancy_growth`` per decade below it; 0 is off. ``report`` (a dict),
    if given, receives the misfit term used (``report["misfit"]``: its fields, or None). ``shift``
    (S, K) and ``shift_pending`` (S, P): draws added to the candidates' and pending runs' predicted
    log-losses (a WSD branch's offset and trunk effect, ``branches.branch_shifts``). ``budget``: the
    most the batch may cost together, each pick made among what the rest of it pays for."""
    T = target_draws(law, draws, target_budget, targets)
    mu = predicted_log_loss(law, draws, candidates.N, candidates.D)
    if shift is not None:
        mu = mu + shift
    has_pending = pending is not None and len(pending) > 0
    mu_pending = predicted_log_loss(law, draws, pending.N, pending.D) if has_pending else None
    if has_pending and shift_pending is not None:
        mu_pending = mu_pending + shift_pending
    has_done = done is not None and len(done) > 0
    misfit, mu_done = None, None
    if discrepancy not in (0, 0.0, None) and estimator == "gaussian" and score in ("eig_per_cost", "eig"):
        mu_done = predicted_log_loss(law, draws, done.N, done.D) if has_done else None
        misfit = _misfit(discrepancy, discrepancy_length, discrepancy_growth, draws, candidates,
                         done if has_done else None, mu_done, done_loss)
    chosen, gains = greedy_batch(T, mu, draws["sigma"], candidates.cost, q, mu_pending=mu_pending, score=score,
                                 estimator=estimator, likelihood=likelihood, nu=nu, seed=seed,
                                 nested_options={"n_outer": min(NESTED_OUTER, len(T))}, discrepancy=misfit,
                                 where=coordinates(candidates.N, candidates.D, candidates.cost),
                                 where_pending=coordinates(pending.N, pending.D, pending.cost) if has_pending else None,
                                 mu_done=mu_done, where_done=coordinates(done.N, done.D, done.cost) if has_done else None,
                                 budget=budget)
    if report is not None:
        report["misfit"] = None if misfit is None else dict(vars(misfit))
    return [Proposal(candidates.keys[j], float(candidates.N[j]), float(candidates.D[j]), float(candidates.cost[j]), float(g))
            for j, g in zip(chosen, gains)]


def _misfit(discrepancy, length, growth, draws, candidates, done, mu_done, done_loss) -> Discrepancy | None:
    """The Discrepancy to score with: fitted to the done runs' residuals ("auto") or fixed (kappa)."""
    reference = float(np.log10(max(candidates.cost.max(), done.cost.max() if done is not None else 0.0)))
    if discrepancy == "auto":
        if done is None or len(done) < MIN_RUNS_FOR_MISFIT or done_loss is None:
            return None
        residuals = np.log(np.asarray(done_loss, np.float64)) - mu_done.mean(axis=0)
        misfit, _ = fit_discrepancy(residuals, coordinates(done.N, done.D, done.cost), reference=reference, length=length)
        return misfit
    kappa = float(discrepancy)
    if kappa < 0:
        raise InputError(f"discrepancy must be 'auto' or a number >= 0, got {discrepancy!r}")
    return Discrepancy(scale=kappa * float(np.median(draws["sigma"])), length=length, growth=growth, reference=reference)


def interval(values: np.ndarray, level: float) -> dict[str, float]:
    lo, med, hi = np.quantile(values, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return {"median": float(med), "lo": float(lo), "hi": float(hi), "width": float(hi - lo)}


class Planner:
    """Ask/tell planner with its results in ``directory/runs.sqlite`` and the rest of its state in
    ``directory/planner.json`` (see the module docstring)."""

    def __init__(self, directory: str | Path, state: dict, store: RunStore | None = None):
        self.directory = Path(directory)
        self.state = state
        s = state["settings"]
        self.law = get_law(s["law"])
        self.candidates = Candidates.from_dict(state["candidates"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.refitter = MaskedRefitter(self.law, likelihood=s["likelihood"], nu=s["nu"], num_chains=s["num_chains"],
                                       num_warmup=s["num_warmup"], num_draws=s["num_draws"],
                                       model=s.get("model", "plain"))
        self.store = store if store is not None else RunStore(self.directory / RUNS_FILE)
        self.wsd = float(s.get("wsd_cooldown", 0.0)) > 0
        self._wsd_fit, self._previewing = None, False
        self.done, self.failed = [], []
        self._read_store()
        self._posterior, self._draws_n = None, -1
        self.last_fit_seconds = self.last_ask_seconds = 0.0

    # --- creation and persistence ----------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path, candidates: Candidates, *, settings: PlannerSettings | None = None,
               overwrite: bool = False, tokens_per_step: int = 1, trunk_scale: float = TRUNK_SCALE, **fields) -> Planner:
        """A new planner in ``directory`` over ``candidates``: ``settings`` (a ``PlannerSettings``)
        or its fields as keywords (``target_budget=...``, ``strategy=...``, ...). ``tokens_per_step``
        (WSD sweep): the harness's tokens per update (batch x context), where branches may start;
        ``trunk_scale``: the prior scale of the trunks' spread tau (``bayes_scaling.wsd``)."""
        if settings is None:
            if "target_budget" not in fields:
                raise InputError("Planner.create needs target_budget (C*, FLOPs) or settings=PlannerSettings(...)")
            settings = PlannerSettings(**fields)
        elif fields:
            raise InputError(f"give settings or its fields, not both (got {', '.join(sorted(fields))})")
        directory = Path(directory)
        if (directory / STATE_FILE).exists() and not overwrite:
            raise InputError(f"{directory / STATE_FILE} exists; open it with Planner.open or pass overwrite=True")
        if overwrite:  # a new experiment: the old one's results go with its state
            for leftover in (RUNS_FILE, RUNS_FILE + "-wal", RUNS_FILE + "-shm"):
                (directory / leftover).unlink(missing_ok=True)
            shutil.rmtree(directory / TRUNKS_DIR, ignore_errors=True)  # a new sweep must not resume old trunks
        if len(candidates) == 0:
            raise InputError("no candidate runs")
        state = {"version": 2, "settings": settings.to_dict(), "candidates": candidates.to_dict(), "pending": {},
                 "fits": 0, "rng": np.random.default_rng(settings.seed).bit_generator.state}
        if settings.wsd_cooldown > 0:
            if int(tokens_per_step) < 1:
                raise InputError(f"tokens_per_step must be a positive whole number, got {tokens_per_step!r}")
            if not trunk_scale > 0:
                raise InputError(f"trunk_scale must be positive, got {trunk_scale!r}")
            state["wsd"] = {"tokens_per_step": int(tokens_per_step), "trunks": {}, "trunk_scale": float(trunk_scale)}
        planner = cls(directory, state)
        planner.save()
        return planner

    @classmethod
    def open(cls, directory: str | Path) -> Planner:
        path = Path(directory) / STATE_FILE
        if not path.exists():
            raise InputError(f"{directory} is not a planner state directory (no {STATE_FILE})")
        expected = "expected the planner state 'bayes-scaling loop --state' or Planner.create writes"
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except IsADirectoryError:
            raise InputError(f"{path}: a folder; {expected}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            empty = path.stat().st_size == 0
            what = "empty (0 bytes)" if empty else f"not valid JSON ({str(err).splitlines()[0][:120]})"
            raise InputError(f"{path}: {what}; {expected}") from None
        missing = [k for k in ("settings", "candidates", "pending", "rng") if not isinstance(state, dict) or k not in state]
        if missing:
            raise InputError(f"{path}: missing field(s) {', '.join(missing)}; {expected}")
        store = RunStore(Path(directory) / RUNS_FILE)  # a damaged store is named as such, not as planner.json
        try:
            old = (state.pop("done"), state.pop("failed")) if "done" in state else None
            planner = cls(directory, state, store)
            if old is not None:
                planner._move_into_store(*old)
            planner._settle_pending()
            planner.done_runs(), planner.remaining()  # reads every run and setting once, without a fit
            for r in planner.done:
                if not (isinstance(r["loss"], (int, float)) and r["loss"] > 0):
                    raise ValueError(f"done run {r.get('key')!r} has loss {r['loss']!r}")
            for name in ("target_budget", "experiment_budget", "level", "tolerance"):
                float(planner.settings[name])
        except InputError as err:
            raise InputError(f"{path}: {err}; {expected}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise InputError(f"{path}: a damaged field ({type(err).__name__}: {str(err)[:120]}); {expected}") from None
        return planner

    def save(self) -> None:
        """Atomic rewrite of the state file: a crash leaves the old or the new state, never half."""
        if self._previewing:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state["rng"] = self.rng.bit_generator.state
        tmp = self.directory / (STATE_FILE + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(self.state, handle, indent=1, default=float)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / STATE_FILE)

    # --- bookkeeping ---------------------------------------------------------------------------------
    @property
    def settings(self) -> dict:
        return self.state["settings"]

    @property
    def config(self) -> PlannerSettings:
        """The settings as a ``PlannerSettings`` (checked; older states get the new fields' defaults)."""
        return PlannerSettings.from_dict(self.settings)

    @property
    def pending(self) -> dict[str, dict]:
        return self.state["pending"]

    def runs(self) -> Runs:
        """The done runs as a validated run table (run_id, N, D, C = their cost, loss), in the
        order they were told: what the refits fit. A WSD sweep's table adds ``role`` and ``trunk_id``."""
        runs = as_runs([r["N"] for r in self.done], [r["D"] for r in self.done], [r["loss"] for r in self.done],
                       run_ids=[r["run_id"] for r in self.done], C=[r.get("C", r["cost"]) for r in self.done],
                       source="planner")
        if self.wsd:
            runs.frame["role"] = [r.get("role", "run") for r in self.done]
            runs.frame["trunk_id"] = [r.get("trunk_id", "") for r in self.done]
        return runs

    # --- the run store ---------------------------------------------------------------------------
    def _read_store(self) -> None:
        """``done`` and ``failed`` from the store (the latest record of each run, in the order told)."""
        frame = self.store.to_frame(status=None)
        self.done, self.failed = [], []
        for r in frame.to_dict(orient="records"):
            cost = experiment_cost(r)
            key = r["key"] if isinstance(r.get("key"), str) else str(r["run_id"])  # a record without one: its id
            if r["status"] == "ok":
                self.done.append({"run_id": str(r["run_id"]), "key": key, "N": float(r["N"]), "D": float(r["D"]),
                                  "cost": cost, "C": float(r["C"]), "loss": float(r["loss"]), **_branch_fields(r)})
            else:
                self.failed.append({"run_id": str(r["run_id"]), "key": key, "cost": cost,
                                    "error": r["error"] if isinstance(r.get("error"), str) else f"status {r['status']}"})

    def _record(self, record: dict, source: str) -> None:
        """Append one result to the store and to ``done`` or ``failed``."""
        self.store.append(record, source=source)
        entry = {k: record[k] for k in ("run_id", "key")}
        if record["status"] == "ok":
            self.done.append({**entry, "N": record["N"], "D": record["D"], "cost": experiment_cost(record), "C": record["C"],
                              "loss": record["loss"], **_branch_fields(record)})
        else:
            self.failed.append({**entry, "cost": experiment_cost(record), "error": record["error"]})

    def _move_into_store(self, done: list, failed: list) -> None:
        """A state written before the store: its done and failed runs appended to the store (those
        not there yet), then the state saved without them."""
        have = {r["run_id"] for r in (*self.done, *self.failed)}
        for r in done:
            if r["run_id"] not in have:
                self._record({"run_id": r["run_id"], "key": r["key"], "N": float(r["N"]), "D": float(r["D"]),
                              "C": float(r["cost"]), "loss": float(r["loss"]), "status": "ok"}, "planner")
        for r in failed:
            if r["run_id"] not in have:
                asked = self.candidates.keys.index(r["key"])
                self._record({"run_id": r["run_id"], "key": r["key"], "N": float(self.candidates.N[asked]),
                              "D": float(self.candidates.D[asked]), "C": float(r["cost"]), "loss": None,
                              "status": "failed", "error": str(r.get("error", ""))}, "planner")
        self.state["version"] = 2
        self.save()

    def _settle_pending(self) -> None:
        """Pending runs whose result is already in the store (a stop between the store's append
        and the state's rewrite) are done: dropped from pending, so they are neither lost nor run twice."""
        told = {r["run_id"] for r in (*self.done, *self.failed)}
        settled = [run_id for run_id in self.pending if run_id in told]
        for run_id in settled:
            del self.pending[run_id]
        if settled:
            self.save()

    def done_runs(self) -> Candidates:
        """The done runs as a Candidates table (N, D, cost, key)."""
        return Candidates(np.array([r["N"] for r in self.done], np.float64), np.array([r["D"] for r in self.done], np.float64),
                          np.array([r["cost"] for r in self.done], np.float64), tuple(r["key"] for r in self.done))

    @property
    def flops_spent(self) -> float:
        return float(sum(r["cost"] for r in self.done) + sum(r["cost"] for r in self.failed))

    @property
    def flops_pending(self) -> float:
        return float(sum(r["cost"] for r in self.pending.values()))

    def remaining(self) -> Candidates:
        """Candidates not done, pending or failed that fit in the budget left (a WSD sweep: the
        branches of trunks with no run pending, priced from how far each trunk has trained)."""
        used = {r["key"] for r in self.done} | {r["key"] for r in self.pending.values()} | {r["key"] for r in self.failed}
        left = self.settings["experiment_budget"] - self.flops_spent - self.flops_pending
        if self.wsd:
            return self.wsd_branches(used, left).candidates
        return self.candidates.without(used).affordable(left)

    def wsd_branches(self, used=(), max_cost: float = np.inf) -> BranchCandidates:
        """The WSD sweep's branch candidates now (``branches.sweep_branches``), less ``used`` keys."""
        wsd = self.state["wsd"]
        busy = {p["trunk_id"] for p in self.pending.values() if p.get("trunk_id")}
        return sweep_branches(self.candidates, wsd["trunks"], cooldown_fraction=self.settings["wsd_cooldown"],
                              tokens_per_step=wsd["tokens_per_step"], busy=busy, exclude=used, max_cost=max_cost,
                              trunks_per_size=int(self.settings.get("trunks_per_size", 1)))

    # --- ask / tell --------------------------------------------------------------------------------
    def ask(self, q: int = 1) -> list[Proposal]:
        """Propose up to ``q`` runs (fewer when fewer are affordable) and record them as pending."""
        if q < 1:
            raise InputError(f"batch size q must be at least 1, got {q}")
        start = time.perf_counter()
        if self.wsd:
            proposals = []
            for _ in range(q):  # one run per trunk: each pick changes what the others cost
                picked = self._ask_once(1)
                if not picked:
                    break
                proposals += picked
        else:
            proposals = self._ask_once(q)
        self.last_ask_seconds = time.perf_counter() - start
        return proposals

    def preview(self, q: int = 1) -> list[Proposal]:
        """What ``ask(q)`` would propose, recording nothing: pending runs, trunks and the RNG are
        left as they were, and the state file is not written."""
        state, rng = copy.deepcopy(self.state), self.rng.bit_generator.state
        self._previewing = True
        try:
            return self.ask(q)
        finally:
            fits, last = self.state["fits"], self.state.get("last_fit")  # the refit it may have made stays valid
            self.state, self._previewing = state, False
            self.state["fits"] = fits
            if last is not None:
                self.state["last_fit"] = last
            self.rng.bit_generator.state = rng

    def _ask_once(self, q: int) -> list[Proposal]:
        s, cands = self.settings, self.remaining()
        if len(cands) == 0:
            return []
        left = s["experiment_budget"] - self.flops_spent - self.flops_pending  # each pick within what is left
        min_fit = len(self.law.param_names) + 1
        if len(self.done) + len(self.pending) < s["n_init"] or len(self.done) < min_fit:
            proposals = self._initial_design(cands, q)
        elif s["strategy"] == "random":
            pick = self.rng.choice(len(cands), size=min(q, len(cands)), replace=False)
            proposals = [Proposal(cands.keys[j], float(cands.N[j]), float(cands.D[j]), float(cands.cost[j])) for j in pick]
        elif s["strategy"] == "target":
            proposals = self.target_proposals(cands, q, budget=left)
        else:
            pending = self._pending_candidates()
            shift, shift_pending = self._shifts(cands, pending)
            proposals = propose(self.law, self.draws(), cands, target_budget=s["target_budget"], q=q,
                                targets=s["targets"], score=s["strategy"], estimator=s["estimator"],
                                likelihood=s["likelihood"], nu=s["nu"], pending=pending, done=self.done_runs(),
                                done_loss=[r["loss"] for r in self.done], discrepancy=s.get("discrepancy", 0.0),
                                discrepancy_length=s.get("discrepancy_length", DEFAULT_DISCREPANCY_LENGTH),
                                discrepancy_growth=s.get("discrepancy_growth", DEFAULT_DISCREPANCY_GROWTH),
                                seed=int(self.rng.integers(2**31)), report=self.state, shift=shift,
                                shift_pending=shift_pending, budget=left)
        proposals = self._within_budget([self._as_branch(p) for p in proposals] if self.wsd else proposals)
        for p in proposals:
            self.pending[p.run_id] = {"key": p.run_id, "N": p.N, "D": p.D, "cost": p.cost, "gain": p.gain}
            if p.trunk_id:
                self.pending[p.run_id].update(trunk_id=p.trunk_id, branch_at=p.branch_at, extend=p.extend)
                trunks = self.state["wsd"]["trunks"]
                trunks[p.trunk_id] = max(float(trunks.get(p.trunk_id, 0.0)), p.branch_at)
        self.save()
        return proposals

    def _as_branch(self, p: Proposal) -> Proposal:
        """A WSD sweep's proposal with its trunk, branch point and trunk extension filled in."""
        b = self.wsd_branches()
        j = b.candidates.keys.index(p.run_id)
        return Proposal(p.run_id, p.N, p.D, p.cost, p.gain, b.trunk_ids[j], float(b.branch_at[j]), float(b.extend[j]))

    def _shifts(self, cands: Candidates, pending: Candidates) -> tuple[np.ndarray | None, np.ndarray | None]:
        """WSD sweep: (S, K) and (S, P) draws of delta + u_t for the candidates and pending runs
        (``branches.branch_shifts``; the WSD refit's draws where there is one, else the priors);
        (None, None) otherwise."""
        if not self.wsd:
            return None, None
        draws = self.draws()
        S = len(draws["sigma"])
        trunks = {k: p.get("trunk_id", "") for k, p in self.pending.items()}
        fields = {}
        if self._wsd_fit is not None:
            fit = self._wsd_fit
            effects = fit._draws("trunk_effect")
            fields = {"offset": fit.offset, "spread": fit.trunk_spread,
                      "effects": {t: effects[:, i] for i, t in enumerate(fit.trunks)}}
        b = self.wsd_branches()
        trunk_of = dict(zip(b.candidates.keys, b.trunk_ids))
        columns = [trunk_of.get(k, "") for k in cands.keys] + [trunks.get(k, "") for k in pending.keys]
        shift = branch_shifts(columns, S, seed=self.settings["seed"] * 100_003 + self.state["fits"],
                              trunk_scale=self.state["wsd"].get("trunk_scale", TRUNK_SCALE), **fields)
        return shift[:, :len(cands)], (shift[:, len(cands):] if len(pending) else None)

    def tell(self, run_id: str, result, *, source: str = "planner") -> None:
        """Record a result: a loss (float) or a dict like the harness's RunResult (``loss``, and
        optionally the run's exact ``N``, ``D``, ``C`` and ``status``; its other fields are kept).
        It is appended to the run store (``source``; C = the run's cost), then the state is saved.
        A failed run counts its cost as spent and is not proposed again."""
        if run_id not in self.pending:
            raise InputError(f"{run_id!r} is not a pending run (pending: {', '.join(self.pending) or 'none'})")
        asked = self.pending[run_id]
        result = {"loss": result} if not isinstance(result, dict) else result
        loss = result.get("loss")
        if loss is not None:
            try:
                loss = float(loss)
            except (TypeError, ValueError):
                raise InputError(f"run {run_id!r}: the loss must be a number, got {loss!r}") from None
            if np.isfinite(loss) and loss <= 0 and result.get("status", "ok") == "ok":
                raise InputError(f"run {run_id!r}: a loss must be positive, got {loss!r}; to record a failed run, tell "
                                 "{'status': 'failed', 'error': '...'} (a NaN loss, a diverged run, is recorded as failed)")
        N, D = float(result.get("N") or asked["N"]), float(result.get("D") or asked["D"])
        compute = float(result.get("C") or (asked["cost"] if self.cost_unit == "FLOPs" else 6 * N * D))
        # spent: what the candidate was priced at (a pool's cost column may be GPU-hours; the budget is in its units)
        record = {**result, "run_id": run_id, "key": asked["key"], "N": N, "D": D, "C": compute,
                  "experiment_cost": float(asked["cost"])}
        if asked.get("trunk_id"):  # a WSD branch: C is what it cost the experiment (cool-down + trunk extension)
            record.update(role="branch", trunk_id=asked["trunk_id"], C=float(asked["cost"]))
        if result.get("status", "ok") != "ok" or loss is None or not np.isfinite(loss) or loss <= 0:
            if asked.get("trunk_id"):  # its trunk may not have reached the branch point: price it from before
                self.state["wsd"]["trunks"][asked["trunk_id"]] = float(asked["branch_at"]) - float(asked["extend"])
            record.update(status=result.get("status") if result.get("status", "ok") != "ok" else "failed", loss=None,
                          error=str(result.get("error") or f"status {result.get('status')}, loss {loss}"))
        else:
            record.update(status="ok", loss=float(loss))
        self._record(record, source)
        del self.pending[run_id]
        self.save()

    def forget_pending(self, run_id: str) -> None:
        """Drop a pending run that will never report (its worker died): it may be proposed again."""
        self.pending.pop(run_id, None)
        self.save()

    # --- posterior and status ---------------------------------------------------------------------
    def posterior(self) -> Posterior:
        """The posterior given the done runs (``refit.MaskedRefitter``, under the settings' model;
        refit only when runs were added since the last fit). Refit k uses seed
        settings.seed * 100003 + k. The state records which runs its last refit saw and that seed
        (``last_fit``), so a planner reopened from disk with the same done runs refits them with the
        same seed: its posterior, and what it proposes next, are those of a planner that never
        stopped."""
        if self._draws_n != len(self.done):
            start = time.perf_counter()
            last, fitted = self.state.get("last_fit"), self._done_digest()
            resumed = self._posterior is None and isinstance(last, dict) and last.get("done") == fitted
            seed = int(last["seed"]) if resumed else self.settings["seed"] * 100_003 + self.state["fits"]
            if self.wsd and any(r.get("role") == "branch" for r in self.done):
                self._wsd_fit = self._fit_wsd(seed)
                self._posterior = self._wsd_fit.posterior
            else:
                self._wsd_fit, self._posterior = None, self.refitter.posterior(self.runs(), seed=seed)
            self._draws = draws_of(self._posterior)
            self.last_fit_seconds = time.perf_counter() - start
            self._draws_n = len(self.done)
            if not resumed:
                self.state["fits"] += 1
                self.state["last_fit"] = {"done": fitted, "seed": seed}
        return self._posterior

    def _done_digest(self) -> str:
        """A digest of the done runs (keys and losses, in order): what a refit saw."""
        rows = [[r["key"], float(r["loss"])] for r in self.done]
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]

    def _fit_wsd(self, seed: int):
        """``bayes_scaling.wsd.fit_wsd`` of the done runs (cosine runs and branches), with the
        planner's law, likelihood, sampler settings and refits' model (``refitter.model``: plain, or
        extrapolating with the drift, ``wsd.add_wsd_drift``); like the plain refits (``design.refit``) it is
        not redone where its checks fail: the next result's refit comes soon."""
        from bayes_scaling.fitting.settings import SamplerSettings
        from bayes_scaling.models.likelihood import Likelihood
        from bayes_scaling.wsd import fit_wsd

        s = self.settings
        settings = SamplerSettings(chains=int(s["num_chains"]), warmup=int(s["num_warmup"]), draws=int(s["num_draws"]),
                                   seed=int(seed) % 2**31, retry_divergent=False, more_draws=False)
        with warnings.catch_warnings():  # the runs' C is each branch's cost (cool-down + trunk), not 6ND by design
            warnings.simplefilter("ignore", ComputeColumnWarning)
            fit, self.refitter.last_warning = verdict_kept(lambda: fit_wsd(  # the verdict kept, as for plain refits
                self.runs().frame, law=self.law, likelihood=Likelihood(s["likelihood"], float(s["nu"])),
                settings=settings, trunk_scale=self.state["wsd"].get("trunk_scale", TRUNK_SCALE),
                model=self.refitter.model))
        return fit

    def draws(self) -> dict[str, np.ndarray]:
        """The posterior's draws of the law's natural parameters and sigma, flattened."""
        self.posterior()
        return self._draws

    def target_draws(self, budget: float) -> np.ndarray:
        """(S, 2) draws of log N_opt and log L_opt at ``budget`` under the refit's model: the law's closed form
        for a plain refit, the posterior's frontier (the law plus its drift beyond the done runs) for an
        extrapolating one, so the stop rule and the status judge the interval that STATE/fit answers with."""
        post = self.posterior()
        if post.meta.get("extrapolation") is None:
            return target_draws(self.law, self.draws(), budget, ("log_N_opt", "log_L_opt"))
        draws = post.frontier_draws([float(budget)])
        return np.stack([np.log(draws["N_opt"][:, 0]), np.log(draws["L_opt"][:, 0])], axis=1)

    def status(self) -> dict:
        """FLOPs spent and pending, the ``level`` intervals of the targets at C*, the stop rule, and
        ``refit_verdict``: the sampler's verdict on the refit those intervals come from ("passed", or
        the verdict's text where its checks failed; None before the first refit). The target strategy
        adds ``target_runs``: how many runs its region holds (the user's target runs, or the IsoFLOP slice
        at C*) and the mean over them of the ``level`` interval's width of the predicted log-loss (the
        model's, noise left out): what its utility works to shrink."""
        s = self.settings
        out = {"runs_done": len(self.done), "runs_pending": len(self.pending), "runs_failed": len(self.failed),
               "flops_spent": self.flops_spent, "flops_pending": self.flops_pending,
               "cost_unit": self.cost_unit,
               "experiment_budget": s["experiment_budget"], "target_budget": s["target_budget"], "level": s["level"],
               "tolerance": s["tolerance"], "log_N_opt": None, "log_L_opt": None,
               "misfit": self.state.get("misfit")}
        if len(self.done) >= len(self.law.param_names) + 1:
            T = self.target_draws(s["target_budget"])
            out["log_N_opt"], out["log_L_opt"] = interval(T[:, 0], s["level"]), interval(T[:, 1], s["level"])
            if s["strategy"] == "target":
                out["target_runs"] = self.target_widths(s["level"])
        out["refit_verdict"] = None if self._posterior is None else (self.refitter.last_warning or "passed")
        reasons = []
        if out["log_N_opt"] is not None and out["log_N_opt"]["width"] <= s["tolerance"]:
            reasons.append(f"{s['level']:.0%} interval of log N_opt(C*) is {out['log_N_opt']['width']:.3g} <= tolerance {s['tolerance']:.3g}")
        if self.flops_spent >= s["experiment_budget"]:
            reasons.append("experiment budget spent")
        elif not self.pending and len(self.remaining()) == 0:
            reasons.append("no affordable candidate left")
        out["stop"], out["reason"] = bool(reasons), "; ".join(reasons)
        return out

    @property
    def cost_unit(self) -> str:
        """What costs and budgets are counted in: FLOPs, or a pool's own cost units (``candidates.cost_unit``;
        a WSD sweep prices its branches in FLOPs)."""
        return "FLOPs" if self.wsd or not len(self.candidates) else cost_unit(self.candidates)

    def target_widths(self, level: float) -> dict:
        """The target region's size and the mean ``level`` width of its runs' predicted log-loss."""
        config = self.config
        region = TargetRegion(*np.array(config.target_runs).T) if config.target_runs else None
        Z, used = target_matrix(self.posterior(), region, config.target_budget, span=config.target_span,
                                points=config.target_points)
        widths = [interval(Z[:, j], level)["width"] for j in range(Z.shape[1] - 1)]
        return {"runs": len(used.N), "mean_width": float(np.mean(widths)), "given": bool(config.target_runs)}

    # --- helpers ---------------------------------------------------------------------------------
    def _pending_candidates(self) -> Candidates:
        keys = list(self.pending)
        return Candidates(np.array([self.pending[k]["N"] for k in keys], np.float64),
                          np.array([self.pending[k]["D"] for k in keys], np.float64),
                          np.array([self.pending[k]["cost"] for k in keys], np.float64), tuple(keys))

    def target_proposals(self, cands: Candidates, q: int, budget: float | None = None) -> list[Proposal]:
        """Greedy batch by the target-region utility (``design.target``) under the refit's
        posterior (the drift included where ``model`` is extrapolating), pending runs conditioned on;
        with ``shape_span``, among the candidates in the compute-optimal band only (``shape_region``:
        the band widened to the target region's shapes); ``budget``: the most the batch may cost."""
        config = self.config
        post = self.posterior()
        region = TargetRegion(*np.array(config.target_runs).T) if config.target_runs else None
        Z, used = target_matrix(post, region, config.target_budget, span=config.target_span, points=config.target_points)
        cands = cands.take(in_band(post, cands.N, cands.D, config.shape_span, used if config.shape_region else None))
        pending = self._pending_candidates()
        shift, shift_pending = self._shifts(cands, pending)
        mu_pending = posterior_columns(post, pending.N, pending.D) if len(pending) else None
        if mu_pending is not None and shift_pending is not None:
            mu_pending = mu_pending + shift_pending
        mu = posterior_columns(post, cands.N, cands.D)
        chosen, gains = choose(Z, mu if shift is None else mu + shift, post.draws("sigma"), cands.cost, q,
                               settings=config.utility(), mu_pending=mu_pending, likelihood=config.likelihood,
                               nu=config.nu, budget=budget)
        return [Proposal(cands.keys[j], float(cands.N[j]), float(cands.D[j]), float(cands.cost[j]), float(g))
                for j, g in zip(chosen, gains)]

    def _initial_design(self, cands: Candidates, q: int) -> list[Proposal]:
        """Farthest-point picks in standardised (log N, log D) among the cheapest quarter of the
        candidates (by log cost; the quarter of the range of log cost over all candidates). Where
        fewer than ``q`` of the remaining candidates lie there, among the ``q`` cheapest remaining
        ones: the start never reaches for the pool's expensive runs (before, a pool whose cheapest
        quarter held 4 runs got those 4, then its most expensive run as a starting run)."""
        log_cost = np.log(self.candidates.cost)
        cheap_cut = log_cost.min() + 0.25 * (log_cost.max() - log_cost.min())
        within = np.log(cands.cost) <= cheap_cut
        if within.sum() < q:
            within = np.zeros(len(cands), bool)
            within[np.argsort(cands.cost, kind="stable")[:q]] = True
        cheap = cands.take(within)
        X = np.column_stack([np.log(cheap.N), np.log(cheap.D)])
        scale = np.maximum(X.std(axis=0), 1e-9)
        Z = (X - X.mean(axis=0)) / scale
        taken = [(np.log(r["N"]), np.log(r["D"])) for r in [*self.done, *self.pending.values()]]
        chosen = []
        if taken:
            anchors = (np.array(taken) - X.mean(axis=0)) / scale
            dist = np.min(np.linalg.norm(Z[:, None, :] - anchors[None, :, :], axis=2), axis=1)
        else:  # start from the centre of the cheap region, then spread out
            chosen.append(int(np.argmin(np.linalg.norm(Z, axis=1))))
            dist = np.linalg.norm(Z - Z[chosen[0]], axis=1)
        while len(chosen) < min(q, len(cheap)):
            dist[chosen] = -np.inf
            j = int(np.argmax(dist))
            chosen.append(j)
            dist = np.minimum(dist, np.linalg.norm(Z - Z[j], axis=1))
        return [Proposal(cheap.keys[j], float(cheap.N[j]), float(cheap.D[j]), float(cheap.cost[j])) for j in chosen]

    def _within_budget(self, proposals: list[Proposal]) -> list[Proposal]:
        left = self.settings["experiment_budget"] - self.flops_spent - self.flops_pending
        kept = []
        for p in proposals:
            if p.cost <= left:
                kept.append(p)
                left -= p.cost
        return kept



def experiment_cost(record) -> float:
    """What a told run cost the experiment budget: the price it was proposed at (``experiment_cost``, in the
    candidates' units: FLOPs, or a pool's own cost column), or its C for a record told before that field."""
    cost = record.get("experiment_cost")
    try:
        cost = float(cost)
    except (TypeError, ValueError):
        cost = float("nan")
    return cost if np.isfinite(cost) else float(record["C"])


def _branch_fields(record: dict) -> dict:
    """``role`` and ``trunk_id`` of a stored record that is a WSD branch; {} for a cosine run."""
    if record.get("role") != "branch":
        return {}
    return {"role": "branch", "trunk_id": str(record.get("trunk_id") or "")}
