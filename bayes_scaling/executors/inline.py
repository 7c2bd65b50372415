"""The inline executor: each run is done at submission, one at a time, in this thread.

The training itself still happens in a ``python -m training`` child (``child.train_job``); any
other job (the loop's simulator) can be passed as ``job(spec, memory_fraction) -> dict``.
Deterministic order and no concurrency: for simulations, debugging and single-run checks.
"""

from __future__ import annotations

from typing import Any, Callable

from bayes_scaling.executors.base import Executor, Run
from bayes_scaling.executors.child import train_job


class InlineExecutor(Executor):
    """Runs ``job(spec, memory_fraction)`` at submission; ``wait`` hands back what is done."""

    def __init__(self, *, job: Callable[..., dict[str, Any]] = train_job, **kwargs):
        super().__init__(**kwargs)
        self.job = job

    def _start(self, run: Run) -> tuple[dict[str, Any] | None, BaseException | None]:
        try:
            return self.job(run.spec, self.resources.memory_fraction), None
        except Exception as err:  # noqa: BLE001  (handed back through _result, where retries happen)
            return None, err

    def _finished(self, handles: dict[str, Any], timeout: float | None) -> list[str]:
        return list(handles)

    def _result(self, handle) -> dict[str, Any]:
        result, error = handle
        if error is not None:
            raise error
        return result

    def _stop(self, handle) -> None:
        pass  # already done
