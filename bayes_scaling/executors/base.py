"""The executor interface: start training runs somewhere, collect each result as it finishes.

``submit(run_id, spec)`` starts a run (``spec``: RunSpec fields as JSON-able values);
``wait(timeout)`` blocks until at least one run has finished and returns those as ``Finished``;
``cancel(run_id)`` stops one; ``ended()`` takes the runs already ended with a result without
waiting (on an interrupt, before ``close``); ``close()`` cancels whatever is still running and releases the
backend. A run whose worker crashes without a result (``ChildDied``, a lost Ray worker, a failed
Slurm job) is started again, up to ``retries`` more times; after that it comes back as a
``Finished`` with ``result=None`` and the last error, so the caller can record it as failed.
A harness result, ok or failed (a NaN loss is not retried: the same seed diverges again), ends the run.

A backend implements four methods on its own handles: ``_start(run)``, ``_finished(handles,
timeout)``, ``_result(handle)`` (raises if the run crashed) and ``_stop(handle)``.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from bayes_scaling.errors import InputError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Resources:
    """What one run asks for: CPU cores and GPUs (fractions allowed on Ray) and, for packing several
    runs onto one GPU, the share of its memory each run's JAX may take (``None``: JAX's default)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.cpus <= 0:
            raise InputError(f"Resources.cpus must be positive, got {self.cpus!r}")
        if self.gpus < 0:
            raise InputError(f"Resources.gpus must be non-negative, got {self.gpus!r}")
        if self.memory_fraction is not None and not 0.0 < self.memory_fraction <= 1.0:
            raise InputError(f"Resources.memory_fraction must be in (0, 1], got {self.memory_fraction!r}")


@dataclass(frozen=True)
class Run:
    """One submitted run and how many times it has been started."""

    run_id: str
    spec: dict[str, Any] = field(repr=False)
    attempt: int = 1


@dataclass(frozen=True)
class Finished:
    """A run that ended: its RunResult dict, or ``None`` with ``error`` when every attempt crashed."""

    run_id: str
    result: dict[str, Any] | None
    attempts: int
    error: str = ""


class Executor(ABC):
    """Runs training specs; see the module docstring for the contract."""

    def __init__(self, *, retries: int = 0, resources: Resources | None = None, notify=None):
        """``notify(line)`` is called with one line per retry (default: appended to ``self.log``)."""
        if retries < 0:
            raise InputError(f"retries must be at least 0, got {retries}")
        self.retries = retries
        self.resources = resources or Resources()
        self._running: dict[str, tuple[Run, Any]] = {}  # run_id -> (run, backend handle)
        self.log: list[str] = []
        self.notify = notify or self.log.append

    # -- the interface ------------------------------------------------------------------------------
    @property
    def pending(self) -> list[str]:
        """Run ids submitted and not yet returned by ``wait`` (nor cancelled)."""
        return list(self._running)

    def submit(self, run_id: str, spec: dict[str, Any]) -> None:
        if run_id in self._running:
            raise InputError(f"run {run_id!r} is already running")
        run = Run(run_id, {**spec, "run_id": run_id})
        self._running[run_id] = (run, self._start(run))

    def wait(self, timeout: float | None = None) -> list[Finished]:
        """Block until at least one run has ended (or ``timeout`` seconds pass: then maybe none);
        crashed runs with retries left are restarted here and not returned."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = self._finished({run_id: h for run_id, (_, h) in self._running.items()}, left)
            finished = [f for f in (self._collect(run_id) for run_id in done) if f is not None]
            if finished or (deadline is not None and time.monotonic() >= deadline):
                return finished
        return []

    def ended(self) -> list[Finished]:
        """The runs that have already ended with a result, without waiting or retrying (for an
        interrupt: what finished is kept); crashed runs stay running, for ``close`` to cancel."""
        done = self._finished({run_id: h for run_id, (_, h) in self._running.items()}, 0.0)
        kept = []
        for run_id in done:
            run, handle = self._running[run_id]
            try:
                result = self._result(handle)
            except Exception:  # noqa: BLE001  (a crash: not a result to keep)
                continue
            del self._running[run_id]
            kept.append(Finished(run_id, result, run.attempt))
        return kept

    def cancel(self, run_id: str) -> bool:
        """Stop a running run; it will not be returned by ``wait``. False if it was not running."""
        entry = self._running.pop(run_id, None)
        if entry is None:
            return False
        self._stop(entry[1])
        return True

    def close(self) -> None:
        """Cancel every run still running and release the backend."""
        for run_id in list(self._running):
            self.cancel(run_id)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- retries ------------------------------------------------------------------------------------
    def _collect(self, run_id: str) -> Finished | None:
        run, handle = self._running.pop(run_id)
        try:
            result = self._result(handle)
        except Exception as err:  # noqa: BLE001  (any crash of the worker: retry, then report)
            error = _ANSI.sub("", f"{type(err).__name__}: {str(err).strip()}")  # Ray colours its messages
            if run.attempt <= self.retries:
                self.notify(f"{run_id}: attempt {run.attempt} crashed ({error.splitlines()[0][:120]}); starting again")
                again = replace(run, attempt=run.attempt + 1)
                self._running[run_id] = (again, self._start(again))
                return None
            return Finished(run_id, None, run.attempt, error)
        return Finished(run_id, result, run.attempt)

    # -- what a backend implements ----------------------------------------------------------------------
    @abstractmethod
    def _start(self, run: Run) -> Any:
        """Start ``run`` (non-blocking, except for the inline executor) and return a handle."""

    @abstractmethod
    def _finished(self, handles: dict[str, Any], timeout: float | None) -> list[str]:
        """The run ids whose handles have ended, waiting up to ``timeout`` seconds for at least one."""

    @abstractmethod
    def _result(self, handle: Any) -> dict[str, Any]:
        """The RunResult dict of an ended run; raises if the run crashed."""

    @abstractmethod
    def _stop(self, handle: Any) -> None:
        """Stop a running run."""


def poll_until(done, handles: dict[str, Any], timeout: float | None, interval: float = 0.2) -> list[str]:
    """Check ``done(handle)`` every ``interval`` seconds until some are done or ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ended = [run_id for run_id, h in handles.items() if done(h)]
        if ended or (deadline is not None and time.monotonic() >= deadline):
            return ended
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
