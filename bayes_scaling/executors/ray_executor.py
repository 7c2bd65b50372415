"""The Ray executor (``pip install 'bayes-scaling[ray]'``): each run is a Ray task.

A task asks Ray for ``Resources.cpus`` CPUs and ``Resources.gpus`` GPUs (a fraction such as 0.25
packs four runs onto one GPU; combine it with ``memory_fraction`` so their JAX allocators fit) and
runs ``child.train_job`` on whichever node Ray picks; every node needs this package and the
training extra installed. ``address=None`` starts a private local Ray instance (loopback only, no
dashboard, usage statistics off; Ray must not have been imported before, or its servers may bind
to every interface); ``"auto"`` or ``"ray://host:10001"`` joins a running cluster. A Ray instance
already started in this process (``ray.init`` by the caller) is used as it is and left running.
Retries are ours, not Ray's (``max_retries=0``), so that every executor counts attempts alike.
"""

from __future__ import annotations

import os
from typing import Any

from bayes_scaling.errors import InputError
from bayes_scaling.executors.base import Executor, Run
from bayes_scaling.executors.child import train_job

# A local instance stays on this machine: node address 127.0.0.1, so every Ray server binds to
# loopback (read by Ray when it is imported), and no usage statistics are sent.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _import_ray(local: bool):
    if local:
        for name, value in LOCAL_ENV.items():
            os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'bayes-scaling[ray]'") from None
    return ray


class RayExecutor(Executor):
    """Each run a Ray task running ``child.train_job`` with the run's CPU and GPU request."""

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ray = _import_ray(local=address is None)
        self._started_ray = False
        if not self.ray.is_initialized():
            if address is None:
                self.ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                              log_to_driver=False, configure_logging=False)
            else:
                try:
                    self.ray.init(address=address)
                except ConnectionError as err:  # "auto" with no cluster running, or a head that does not answer
                    raise InputError(f"--ray-address {address}: could not join a Ray cluster ({err}); start one "
                                     "(ray start --head) or leave --ray-address out for a local instance") from None
            self._started_ray = True
        self._task = self.ray.remote(train_job).options(num_cpus=self.resources.cpus, num_gpus=self.resources.gpus,
                                                        max_retries=0, name="bayes-scaling-train")

    def _start(self, run: Run):
        return self._task.remote(run.spec, self.resources.memory_fraction)

    def _finished(self, handles: dict[str, Any], timeout: float | None) -> list[str]:
        ready, _ = self.ray.wait(list(handles.values()), num_returns=1, timeout=timeout)
        ready = set(ready)
        return [run_id for run_id, ref in handles.items() if ref in ready]

    def _result(self, handle) -> dict[str, Any]:
        return self.ray.get(handle)

    def _stop(self, handle) -> None:
        # Force: Ray kills the worker process (a polite cancel, a KeyboardInterrupt in the task, was
        # seen not to arrive); its training child then exits by itself (child.launch).
        self.ray.cancel(handle, force=True)

    def close(self) -> None:
        super().close()
        if self._started_ray:
            self.ray.shutdown()
            self._started_ray = False
