"""Data parallelism over local devices with ``jax.sharding``.

A one-axis mesh named ``data`` over the first n local devices: every batch is split along its
first (batch) axis across the mesh, and the model and optimizer state is replicated on every
device. The train step is the same jitted function as on one device; XLA partitions it from the
shardings of its arguments, so the gradient is averaged across devices by an all-reduce and every
replica applies the same update. ``RunSpec.devices`` selects it (1, the default, never builds a mesh).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from training.spec import RunSpec, SpecError

AXIS = "data"


def device_count(spec: RunSpec) -> int:
    """How many local devices ``spec`` trains on (``devices=0``: all); ``SpecError`` if it cannot."""
    available = jax.local_device_count()
    n = spec.devices or available
    if n > available:
        raise SpecError(f"RunSpec.devices={spec.devices}: only {available} local device(s) are available")
    if spec.batch_size % n:
        raise SpecError(f"RunSpec.batch_size={spec.batch_size}: expected a multiple of the {n} devices it is split over")
    return n


def data_mesh(n: int) -> Mesh:
    """A mesh of the first ``n`` local devices along one axis, ``data``."""
    return Mesh(np.asarray(jax.local_devices()[:n]), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Rows (sequences) split across the ``data`` axis; each device holds batch_size / n of them."""
    return NamedSharding(mesh, P(AXIS))


def replicate(tree, mesh: Mesh):
    """Place a pytree (model and optimizer state) on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: np.ndarray, mesh: Mesh) -> jax.Array:
    return jax.device_put(batch, batch_sharded(mesh))
