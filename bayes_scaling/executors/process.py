"""The local process pool (the default executor): each run is its own ``python -m training`` child.

The loop keeps at most ``--workers`` runs in flight, so this executor starts every run it is
given at once. Cancelling a run kills its child. With ``Resources.memory_fraction`` every child's
JAX takes at most that share of the GPU's memory, allocated as needed, so that several runs share
one GPU (measured with four runs at 0.2 on an H200: docs/scale-out.md).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayes_scaling.executors import child
from bayes_scaling.executors.base import Executor, Run, poll_until


@dataclass
class _Child:
    run_id: str
    proc: Any  # subprocess.Popen
    folder: Path


class ProcessExecutor(Executor):
    """Each run a local ``python -m training`` child (``nice``: its scheduling priority offset)."""

    def __init__(self, *, nice: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.nice = nice

    def _start(self, run: Run) -> _Child:
        folder = Path(tempfile.mkdtemp(prefix=f"bayes-scaling-{run.run_id[:40]}-"))
        env = child.child_environment(self.resources.memory_fraction)
        return _Child(run.run_id, child.launch(run.spec, folder, env, nice=self.nice), folder)

    def _finished(self, handles: dict[str, _Child], timeout: float | None) -> list[str]:
        return poll_until(lambda c: c.proc.poll() is not None, handles, timeout)

    def _result(self, handle: _Child) -> dict[str, Any]:
        try:
            return child.result_of(handle.folder, handle.proc.returncode, child.stderr_tail(handle.folder))
        except child.SpecRejected as err:
            return child.rejected_result({"run_id": handle.run_id}, str(err))
        finally:
            shutil.rmtree(handle.folder, ignore_errors=True)

    def _stop(self, handle: _Child) -> None:
        handle.proc.kill()
        handle.proc.wait()
        shutil.rmtree(handle.folder, ignore_errors=True)
