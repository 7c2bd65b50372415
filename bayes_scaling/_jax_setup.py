"""JAX settings for inference, applied once before JAX starts.

* float64 everywhere: scaling-law fits difference log-losses of order 1e-3, and the Huber grid fit
  is checked to 1e-9 relative against SciPy.
* At least ``DEFAULT_HOST_DEVICES`` CPU devices, so NUTS chains run in parallel (``pmap``). XLA reads
  the device count once, when its CPU backend starts, so this must run before any JAX computation.
* A persistent compilation cache, so a repeated CLI call does not recompile the sampler; the
  traced sampler programs are stored beside it (``fitting/sampler_cache.py``), so it does not
  retrace them either.

The training harness (``training/``) runs in its own process and never sees these settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_HOST_DEVICES = 4


def _ensure_host_devices(count: int) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    match = re.search(r"--xla_force_host_platform_device_count=(\d+)", flags)
    if match is None:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def cache_dir() -> Path:
    root = os.environ.get("BAYES_SCALING_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bayes-scaling"
    )
    return Path(root) / "jax"


def _load_numpyro_eagerly() -> None:
    """ArviZ registers NumPyro as a lazy module; if ArviZ was imported first, NumPyro's own
    submodules then fail to bind (``numpyro.distributions.distribution`` goes missing inside
    ``numpyro.factor``). Touching an attribute executes the lazy module before anything else."""
    import numpyro

    _ = numpyro.__version__


def configure() -> None:
    _ensure_host_devices(DEFAULT_HOST_DEVICES)
    _load_numpyro_eagerly()
    import jax

    jax.config.update("jax_enable_x64", True)
    if os.environ.get("BAYES_SCALING_NO_COMPILE_CACHE") != "1":
        jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


configure()
