"""Executors: where the loop's training runs happen (inline, local processes, Ray, Slurm).

``make_executor(name, ...)`` builds one by name; see ``base`` for the interface.
"""

from __future__ import annotations

import math

from bayes_scaling.executors.base import Executor, Finished, Resources
from bayes_scaling.errors import InputError

EXECUTORS = ("inline", "process", "ray", "slurm")


def make_executor(name: str, *, workers: int = 1, retries: int = 0, resources: Resources | None = None, notify=None,
                  ray_address: str | None = None, folder: str | None = None, partition: str | None = None,
                  time_min: int = 60, sbatch_options: dict[str, str] | None = None) -> Executor:
    """The executor called ``name`` (one of ``EXECUTORS``); backends are imported only when chosen."""
    common = {"retries": retries, "resources": resources, "notify": notify}
    if name == "inline":
        from bayes_scaling.executors.inline import InlineExecutor

        return InlineExecutor(**common)
    if name == "process":
        from bayes_scaling.executors.process import ProcessExecutor

        return ProcessExecutor(**common)
    if name == "ray":
        from bayes_scaling.executors.ray_executor import RayExecutor

        # A local instance gets CPUs for exactly ``workers`` runs at once, like the process pool.
        cpus = (resources or Resources()).cpus
        return RayExecutor(address=ray_address, num_cpus=None if ray_address else math.ceil(workers * cpus), **common)
    if name == "slurm":
        from bayes_scaling.executors.submitit_executor import SubmititExecutor

        if not folder:
            raise InputError("--executor slurm needs --slurm-folder (a folder the compute nodes can read)")
        return SubmititExecutor(folder=folder, partition=partition, time_min=time_min, sbatch_options=sbatch_options,
                                **common)
    raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


__all__ = ["EXECUTORS", "Executor", "Finished", "Resources", "make_executor"]
