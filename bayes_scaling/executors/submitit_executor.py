"""The Slurm executor via submitit (``pip install 'bayes-scaling[slurm]'``): each run is a Slurm job.

submitit pickles ``child.train_job`` with the run's spec into ``folder`` (which must be on a file
system the compute nodes share, like this package's installation), submits one ``sbatch`` job per
run with the requested partition, time limit, CPUs and GPUs (and any other ``#SBATCH --key=value``
from ``sbatch_options``, e.g. account or mem), and reads the result back from the same folder.
``cluster="local"`` runs the same jobs as local processes (submitit's LocalExecutor), which is how
the tests exercise this path without a Slurm cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bayes_scaling.errors import InputError
from bayes_scaling.executors.base import Executor, Run, poll_until
from bayes_scaling.executors.child import train_job


class SubmititExecutor(Executor):
    """Each run a submitit job: on Slurm (``cluster="slurm"``) or as a local process (``"local"``)."""

    def __init__(self, *, folder: str | Path, cluster: str | None = "slurm", partition: str | None = None,
                 time_min: int = 60, sbatch_options: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        try:
            import submitit
        except ImportError:
            raise InputError("--executor slurm needs submitit: pip install 'bayes-scaling[slurm]'") from None
        if time_min < 1:
            raise InputError(f"--slurm-time must be at least 1 minute, got {time_min}")
        if self.resources.gpus != int(self.resources.gpus):
            raise InputError(f"--gpus-per-run must be a whole number on Slurm, got {self.resources.gpus}")
        try:
            self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        except RuntimeError as err:  # submitit's "Could not detect srun": not on a Slurm machine
            raise InputError(f"--executor slurm: {err} (run the loop on a Slurm login node)") from None
        params: dict[str, Any] = {"timeout_min": time_min, "cpus_per_task": max(1, round(self.resources.cpus)),
                                  "gpus_per_node": int(self.resources.gpus), "name": "bayes-scaling-train"}
        if partition:
            params["slurm_partition"] = partition
        if sbatch_options:
            params["slurm_additional_parameters"] = dict(sbatch_options)
        self.executor.update_parameters(**params)

    def _start(self, run: Run):
        return self.executor.submit(train_job, run.spec, self.resources.memory_fraction)

    def _finished(self, handles: dict[str, Any], timeout: float | None) -> list[str]:
        return poll_until(lambda job: job.done(), handles, timeout, interval=0.5)

    def _result(self, handle) -> dict[str, Any]:
        return handle.result()

    def _stop(self, handle) -> None:
        handle.cancel(check=False)
