"""The closed loop: ask the planner for runs, run them on an executor, tell it each result as it
comes back (which refits the posterior), until the stop rule holds; then save the final fit.

    planner = Planner.open(state) if (state / "planner.json").exists() else Planner.create(state, ...)
    result = run_loop(planner, executor, make_spec, LoopSettings(workers=4, max_runs=40))
    result.status        # the planner's final status (FLOPs spent, interval of log N_opt(C*), stop rule)
    result.fit_dir       # state/fit: a saved Posterior, opened by Posterior.load, `frontier`, `report`

``make_spec(proposal)`` turns a ``Proposal`` into the spec the executor starts (RunSpec fields for
the training harness; anything the executor's job reads for a simulator), or into a list of specs
run one after the other, the last one the proposal's run: a WSD branch whose trunk must train on
first is [the trunk's extension, the branch] (``design.branches.sweep_specs``). An earlier step's
result goes to the run stores as a trunk's record (role "trunk", under the step spec's run_id); if
it fails, the proposal is told failed. Every result, failed runs
too, goes to the planner's run store in the state directory (the one record of what was run) and,
if given, to a second ``store`` (a shared run store). The loop resumes: pending runs of the state
are started again first, and ``max_runs`` counts every result of the state, earlier calls' too.

The saved fit is the planner's last refit: the plain law's NUTS posterior of every done run
(``design.refit``), so ``bayes-scaling frontier STATE/fit`` answers what the loop printed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayes_scaling.design.planner import Planner, Proposal
from bayes_scaling.errors import InputError, one_line

FIT_DIR = "fit"  # the loop's final fit, in the planner's state directory
STEP_SUFFIX = "#before"  # executor ids of a chain's earlier steps: <run id>#before<steps left>


@dataclass(frozen=True)
class _Ended:
    """An ended run as ``record`` reads it (the executor's finished object's fields)."""

    run_id: str
    result: dict | None
    error: str | None
    attempts: int


@dataclass(frozen=True)
class LoopSettings:
    """How a loop runs (not what it asks: that is the planner's settings).

    ``workers``: runs in flight at once. ``max_runs``: stop once the state holds this many results
    (earlier calls' included; None: no cap). ``quiet``: no waiting/refitting status lines (``busy``
    is not called). ``source``: the run store's source field of the loop's runs. ``save_fit``: save
    the final fit to ``STATE/fit`` when the loop ends (not when it is interrupted)."""

    workers: int = 1
    max_runs: int | None = None
    quiet: bool = False
    source: str = "loop"
    save_fit: bool = True

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}")
        if self.max_runs is not None and self.max_runs < 1:
            raise InputError(f"max_runs must be at least 1, got {self.max_runs}")


@dataclass(frozen=True)
class LoopResult:
    """The planner's final ``status``, the saved fit's directory (None when the state has too few
    done runs to fit, or ``save_fit`` is off) and how many results this call told the planner."""

    status: dict
    fit_dir: Path | None
    told: int


@dataclass
class RunDurations:
    """How long a run takes, from the runs ended so far: seconds = a + b * cost (least squares over
    the ended runs' planner cost in FLOPs and their ``wall_time``, a, b >= 0: a start-up cost such as
    compilation plus a rate; proportional from a single run). ``eta(...)`` gives the seconds left for
    the first and the last of the running runs, or None until a run with a wall time has ended."""

    costs: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, cost, seconds) -> None:
        try:
            cost, seconds = float(cost), float(seconds)
        except (TypeError, ValueError):
            return
        if np.isfinite(cost) and np.isfinite(seconds) and cost > 0 and seconds >= 0:
            self.costs.append(cost)
            self.seconds.append(seconds)

    def coefficients(self) -> tuple[float, float] | None:
        if not self.costs:
            return None
        c, t = np.asarray(self.costs), np.asarray(self.seconds)
        if np.ptp(c) > 0:
            scale = c.mean()  # costs of 1e15 beside a column of ones: solve in units of the mean cost
            (b, a), *_ = np.linalg.lstsq(np.stack([c / scale, np.ones_like(c)], axis=1), t, rcond=None)
            b /= scale
            if b >= 0 and a >= 0:
                return float(a), float(b)
            if b < 0:
                return float(t.mean()), 0.0
        return 0.0, float((c * t).sum() / (c * c).sum())

    def eta(self, running: list[tuple[float, float]]) -> tuple[float, float] | None:
        """``running``: (cost, seconds since it started) of each running run."""
        fit = self.coefficients()
        if fit is None or not running:
            return None
        a, b = fit
        left = [max(0.0, a + b * cost - elapsed) for cost, elapsed in running]
        return min(left), max(left)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def eta_text(durations: RunDurations, running: list[tuple[float, float]]) -> str:
    """The waiting line's estimate: "; next ends in about 40 s, all in about 3 min (from 5 ended runs)"."""
    eta = durations.eta(running)
    if eta is None:
        return ""
    first, last = eta
    n = len(durations.costs)
    source = f"(from {n} ended run{'s' if n != 1 else ''})"
    if last == 0:
        return f"; past the time expected {source}"
    if len(running) == 1 or first == last:
        return f"; ends in about {_duration(last)} {source}"
    return f"; next ends in about {_duration(first)}, all in about {_duration(last)} {source}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_loop(planner: Planner, executor, make_spec: Callable[[Proposal], dict | list[dict]], settings: LoopSettings = LoopSettings(),
             *, store=None, stop_requested: Callable[[], bool] | None = None, notify: Callable[[str], None] | None = None,
             busy: Callable[[str], contextlib.AbstractContextManager] | None = None,
             on_status: Callable[[dict], None] | None = None) -> LoopResult:
    """Keep ``settings.workers`` runs in flight on ``executor``; as runs end, record each (the
    planner's store, and ``store`` if given) and tell the planner, then refit once (the planner's
    status: runs that end together share one refit) and ``notify`` a progress line per run
    (default: stderr) and ``on_status(status)`` (optional); when the stop rule holds, or
    ``max_runs`` results are in the state, or no affordable run is left, save the final fit and
    return. The executor is closed either way. With an executor that runs each job at submission
    (``InlineExecutor``) this is the synchronous protocol: ask ``workers`` runs, run them, tell
    them all, refit, ask again.

    On KeyboardInterrupt the runs that have already ended with a result are recorded and told
    (``Executor.ended``, and those the last wait handed back; no refit), the running runs are
    cancelled (they stay pending in the state, and a later call starts them again) and the interrupt
    propagates. A chain is one run here: a WSD branch stopped in its trunk's extension or after it
    stays pending, and a later call runs the extension again (the harness resumes the trunk from its
    newest checkpoint: one that had reached the branch point trains nothing) and then the branch. ``stop_requested()`` (optional)
    says a stop signal has arrived: checked between results and every second of a wait, so a
    KeyboardInterrupt that a signal handler raised where Python swallows it (in a garbage-collection
    callback, say) still stops the loop. ``busy(text)`` (optional) is a context manager shown while
    waiting on runs or refitting (the CLI's status line on a terminal)."""
    notify = notify or _stderr
    workers, max_runs = settings.workers, settings.max_runs

    def waiting(text: str):
        return busy(text) if busy is not None and not settings.quiet else contextlib.nullcontext()

    def check() -> None:
        if stop_requested is not None and stop_requested():
            raise KeyboardInterrupt

    same_store = store is not None and Path(store.path).resolve() == Path(planner.store.path).resolve()
    durations, started = RunDurations(), {}  # run id -> (cost, monotonic start time) of the runs in flight
    chains: dict[str, tuple[str, list, str]] = {}  # executor id of an earlier step -> (proposal's run id, steps left, step's run id)

    def submit(run_id: str, spec) -> None:
        steps = list(spec) if isinstance(spec, (list, tuple)) else [spec]
        if len(steps) > 1:
            key = f"{run_id}{STEP_SUFFIX}{len(steps) - 1}"
            chains[key] = (run_id, steps[1:], str(steps[0].get("run_id") or key))
            executor.submit(key, steps[0])
        else:
            executor.submit(run_id, steps[0])
        started.setdefault(run_id, (float(planner.pending.get(run_id, {}).get("cost", np.nan)), time.monotonic()))

    def step_ended(finished):
        """An earlier step of a chain ended: store its result; start the next step, or return the
        proposal's failed record when it failed."""
        run_id, rest, step_id = chains.pop(finished.run_id)
        result = dict(finished.result) if finished.result is not None else None
        if result is not None:
            result.update(run_id=step_id, attempts=finished.attempts)  # a trunk's record: under the trunk's id
            asked = planner.pending[run_id]  # a failed step may lack them: the trunk's size and branch point
            result.setdefault("N", asked["N"])
            result.setdefault("D", asked.get("branch_at") or asked["D"])
            result.setdefault("role", "trunk")
            for target in [planner.store] + ([store] if store is not None and not same_store else []):
                target.append(result, source=settings.source)
        if result is None or result.get("status", "ok") != "ok":
            error = (result or {}).get("error") or finished.error or "no result"
            return {"run_id": run_id, "status": "failed", "loss": None, "error": f"step {finished.run_id} failed: {error}"}
        submit(run_id, rest)
        return None
    def tell(finished) -> dict:
        """Record an ended run (the stores) and tell the planner; its record."""
        result = record(finished, planner.pending[finished.run_id])
        cost, _ = started.pop(finished.run_id, (np.nan, 0.0))
        durations.add(cost, result.get("wall_time"))
        if store is not None and not same_store:
            store.append(result, source=settings.source)
        planner.tell(finished.run_id, result, source=settings.source)
        return result

    collected: list = []  # runs the last wait handed back that the loop has not begun to tell

    def keep_ended() -> None:
        """On an interrupt: record the runs that have already ended with a result, those the loop
        had taken from the executor and not told yet included (not a chain's earlier step, nor a
        run the harness stopped as interrupted: those stay pending)."""
        kept = [f for f in [*collected, *executor.ended()] if f.run_id not in chains and f.run_id in planner.pending
                and (f.result or {}).get("status") != "interrupted"]
        for finished in kept:
            tell(finished)
        if kept:
            notify(f"kept {len(kept)} run{'' if len(kept) == 1 else 's'} that had ended: "
                   f"{', '.join(f.run_id for f in kept)}")

    told, stopping, status = len(planner.done) + len(planner.failed), False, planner.status()
    told_here = 0
    if max_runs is not None and told >= max_runs:
        notify(f"the state already holds {told} results (--max-runs {max_runs}); nothing to run")
        stopping = True
    try:
        restart = list(planner.pending.items())  # restart what was pending when we stopped
        if max_runs is not None:
            restart = restart[:max(0, max_runs - told)]
        for run_id, pending in restart:
            submit(run_id, make_spec(_proposal(run_id, pending)))
        while True:
            check()
            running = len(executor.pending)
            if not stopping and running < workers and (max_runs is None or told + running < max_runs):
                free = workers - running if max_runs is None else min(workers - running, max_runs - told - running)
                for p in planner.ask(free):
                    submit(p.run_id, make_spec(p))
            if not executor.pending:
                break
            label = f"waiting for {len(executor.pending)} running run{'' if len(executor.pending) == 1 else 's'}"
            with waiting(label) as tick:
                ended = []
                while not ended and executor.pending:
                    if tick is not None:
                        now = time.monotonic()
                        tick.update(label + eta_text(durations, [(cost, now - t0) for cost, t0 in started.values()]))
                    ended = collected[:] = executor.wait(timeout=1.0)
                    check()
            results = []
            for finished in ended:
                collected.remove(finished)  # being told: a stop from here on leaves it to the store (Planner.open)
                if finished.run_id in chains:
                    failed = step_ended(finished)
                    if failed is None:
                        continue
                    finished = _Ended(failed["run_id"], failed, None, finished.attempts)
                results.append((finished.run_id, tell(finished)))
            if not results:
                continue
            with waiting(f"refitting on {len(planner.done)} runs"):
                status = planner.status()
            for run_id, result in results:
                told, told_here = told + 1, told_here + 1
                notify(progress_line(told, run_id, result, status))
            if on_status is not None:
                on_status(status)
            stopping = stopping or status["stop"] or (max_runs is not None and told >= max_runs)
            check()
    except KeyboardInterrupt:
        keep_ended()
        notify(f"cancelling {len(executor.pending)} running run{'' if len(executor.pending) == 1 else 's'} (they stay "
               "pending in the state)")
        raise
    finally:
        executor.close()
    if max_runs is not None and told >= max_runs and not status["stop"]:  # the loop's own limit, not the stop rule
        status = {**status, "ended_by": f"max_runs {max_runs}: the state holds {told} result{'' if told == 1 else 's'}"}
    fit_dir = save_fit(planner) if settings.save_fit else None
    return LoopResult(status=status, fit_dir=fit_dir, told=told_here)


def save_fit(planner: Planner) -> Path | None:
    """Save the planner's posterior of its done runs to ``STATE/fit`` (replacing an earlier one in
    one step: a stop while saving leaves the old fit or the new, never half); None when there are
    too few done runs to fit."""
    if len(planner.done) < len(planner.law.param_names) + 1:
        return None
    return planner.posterior().save(planner.directory / FIT_DIR)  # written aside and moved into place whole


def record(finished, asked: dict) -> dict:
    """The run-store record of an ended run: its RunResult (N and D from the proposal where the
    result has none, as for a refused spec), or a failed record when every attempt crashed."""
    if finished.result is None:
        result = {"run_id": finished.run_id, "status": "failed", "loss": None, "error": finished.error}
    else:
        result = dict(finished.result)
    result.setdefault("N", asked["N"])
    result.setdefault("D", asked["D"])
    result["attempts"] = finished.attempts
    return result


def progress_line(i: int, run_id: str, result: dict, status: dict) -> str:
    """One line per result: its loss (or why it failed), FLOPs spent, the interval's width now."""
    loss = result.get("loss")
    loss_text = f"loss {loss:.4f}" if loss is not None else f"FAILED ({one_line(result.get('error') or 'no reason given', 400)})"
    width = f"{status['log_N_opt']['width']:.3f}" if status["log_N_opt"] else "- (too few runs to fit yet)"
    target = status.get("target_runs")
    region = f" | target runs' mean width of log-loss {target['mean_width']:.3f}" if target else ""
    return (f"[{i:>3}] {run_id:<24} {loss_text} | {status.get('cost_unit', 'FLOPs')} {status['flops_spent']:.3g} / {status['experiment_budget']:.3g}"
            f" | {status['level']:.0%} width of log N_opt(C*) {width} (stop at {status['tolerance']:.3g}){region}")


def _proposal(run_id: str, pending: dict) -> Proposal:
    return Proposal(run_id, pending["N"], pending["D"], pending["cost"], pending.get("gain", float("nan")),
                    pending.get("trunk_id", ""), float(pending.get("branch_at", 0.0)), float(pending.get("extend", 0.0)))
