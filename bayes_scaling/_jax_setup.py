"""JAX settings for inference: ``configure()``, an explicit step that importing the package never takes.

What a fit needs, and why:

* float64 (``jax_enable_x64``): scaling-law fits difference log-losses of order 1e-3, and the Huber
  grid fit is checked to 1e-9 relative against SciPy. Required: a fit does not run in float32.
* At least ``DEFAULT_HOST_DEVICES`` CPU devices, so NUTS chains run in parallel. XLA reads the
  device count once, when its CPU backend starts, so this only takes effect before any JAX
  computation; with fewer devices the chains share them (``fitting.sampler._devices_for``): on one
  device, vmapped together, so a fit takes longer.
* A persistent compilation cache, so a repeated CLI call does not recompile the sampler; the
  traced sampler programs are stored beside it (``fitting/sampler_cache.py``), so it does not
  retrace them either.

``configure()`` is idempotent and cheap after its first call. The CLI calls it before running a
command, and every library function that computes with JAX (the fits, refits, the planner's
simulators, predictions and frontiers) calls it first, so a script needs no set-up of its own; a
script that wants parallel chains calls ``bayes_scaling.configure()`` before its own first JAX use.

A user's own settings are left alone:

* Host devices: ``XLA_FLAGS`` is changed only when it names no device count of its own and JAX's
  backend has not started. Once JAX has run anything (a Flax model built first), the device count
  stays as the user's process has it.
* Compilation cache: set only when JAX's backend has not started and no cache directory is set
  (``jax_compilation_cache_dir`` / ``JAX_COMPILATION_CACHE_DIR``); then the two thresholds are set
  to cache every program, and its size is bounded (``cache_max_bytes``: JAX evicts the least
  recently used programs). ``BAYES_SCALING_NO_COMPILE_CACHE=1`` turns it off.
* float64: left on when on. Turned off *explicitly* -- ``JAX_ENABLE_X64`` set to a false value, or
  ``jax_enable_x64`` switched off after ``configure()`` switched it on -- it raises
  ``JaxSettingsError`` rather than fit in float32. Off by JAX's default, it is switched on: silently
  in a fresh process, with a ``UserWarning`` when JAX had already started (the user's later arrays
  default to 64 bits from then on). JAX cannot tell ``jax.config.update("jax_enable_x64", False)``
  made before ``configure()`` from its default; set ``JAX_ENABLE_X64=0`` to opt out visibly.

The training harness (``training/``) runs in its own process and never sees these settings.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

from bayes_scaling.errors import InputError, one_line

DEFAULT_HOST_DEVICES = 4
DEFAULT_CACHE_MAX_MB = 1024
_FALSE = {"0", "false", "no", "off", "f", "n"}
_configured = False  # the one-time steps (devices, cache, x64) ran


class JaxSettingsError(InputError):
    """The process's JAX settings rule out a correct fit (float64 switched off explicitly)."""


def configure() -> None:
    """Apply the JAX settings a fit needs, leaving the user's own alone (see the module docstring).
    Idempotent: a second call only checks that float64 is still on."""
    global _configured
    problem = environment_error()
    if problem is not None:
        raise problem
    started = jax_started()
    if not _configured:
        if not started:
            _ensure_host_devices(DEFAULT_HOST_DEVICES)
        import jax

        caching = os.environ.get("BAYES_SCALING_NO_COMPILE_CACHE") != "1"
        limit = cache_max_bytes() if caching else None  # a bad value raises before any setting changes
        if not started and jax.config.jax_compilation_cache_dir is None and caching:
            jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
            jax.config.update("jax_compilation_cache_max_size", limit)
        _check_backend()
    _require_x64(started)
    _configured = True


def jax_started() -> bool:
    """Whether JAX's backend is running in this process (after which XLA ignores a device count)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def _require_x64(started: bool) -> None:
    import jax

    if jax.config.jax_enable_x64:
        return
    env = os.environ.get("JAX_ENABLE_X64")
    if _configured or (env is not None and env.strip().lower() in _FALSE):
        how = f"JAX_ENABLE_X64={env}" if not _configured else "jax_enable_x64 was switched off after configure()"
        raise JaxSettingsError(
            f"bayes-scaling fits need float64 but JAX's 64-bit mode is off ({how}); "
            "unset JAX_ENABLE_X64 or call jax.config.update('jax_enable_x64', True)")
    if started:
        warnings.warn("bayes_scaling switched on jax_enable_x64 in a process already using JAX: arrays "
                      "created from now on default to 64 bits. Call bayes_scaling.configure() before "
                      "your own JAX code, or set JAX_ENABLE_X64=1, to make this explicit.",
                      UserWarning, stacklevel=3)
    jax.config.update("jax_enable_x64", True)


def _ensure_host_devices(count: int) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    match = re.search(r"--xla_force_host_platform_device_count=(\d+)", flags)
    if match is None:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def cache_dir() -> Path:
    """``$BAYES_SCALING_CACHE/jax``, else ``$XDG_CACHE_HOME/bayes-scaling/jax`` (the XDG base directory rule:
    an empty or relative XDG_CACHE_HOME is ignored), else ``~/.cache/bayes-scaling/jax``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache")
    root = os.environ.get("BAYES_SCALING_CACHE") or os.path.join(base, "bayes-scaling")
    return Path(root) / "jax"


def cache_max_bytes() -> int:
    """The most bytes each of the two on-disk caches may hold (JAX's compiled programs in
    ``cache_dir()``, and ``fitting.sampler_cache``'s beside it): ``$BAYES_SCALING_CACHE_MAX_MB``
    megabytes (2^20 bytes), ``DEFAULT_CACHE_MAX_MB`` if unset. Beyond it the least recently used
    files are deleted; a later process compiles what it needs again."""
    raw = os.environ.get("BAYES_SCALING_CACHE_MAX_MB")
    if raw is None or not raw.strip():
        return DEFAULT_CACHE_MAX_MB * 2**20
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = float("nan")
    if not megabytes > 0 or megabytes == float("inf"):
        raise InputError(f"BAYES_SCALING_CACHE_MAX_MB={raw!r}: expected a positive number of megabytes "
                         f"(the default is {DEFAULT_CACHE_MAX_MB}; BAYES_SCALING_NO_COMPILE_CACHE=1 "
                         "turns the caches off)")
    return int(megabytes * 2**20)


class CompiledPrograms(OrderedDict):
    """A process's compiled programs by key, at most ``limit`` of them: the least recently used is
    dropped (and its machine code freed with it) when a new one would exceed the limit. A process
    that fits many differently shaped tables would otherwise keep every program mapped in memory
    (``release_compiled`` forgets all of them at once)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def get_or_build(self, key, build):
        """The program under ``key``, built by ``build()`` where absent."""
        if key in self:
            self.move_to_end(key)
            return self[key]
        while len(self) >= self.limit:
            self.popitem(last=False)
        self[key] = program = build()
        return program


def release_compiled() -> None:
    """Forget the compiled programs this process holds: the samplers' (``fitting.sampler``), the
    starting points' (``fitting.nuts``), the pilots' (``fitting.pilot``), the log-loss programs
    (``posterior``) and JAX's own in-memory caches. Each compiled program keeps its machine code
    mapped in memory, and a process that fits many differently shaped tables (a test suite, a sweep
    over data sets) can run out of memory mappings (XLA: "LLVM compilation error: Cannot allocate
    memory"). Later fits load their programs again from the on-disk caches."""
    import gc

    import jax

    from bayes_scaling import posterior
    from bayes_scaling.fitting import nuts, sampler

    pilot = sys.modules.get("bayes_scaling.fitting.pilot")  # imported only by a fit that asked for a pilot
    for cache in (sampler._SAMPLERS, nuts._LATENT_STARTS, posterior._LAW_PROGRAMS, pilot._PILOTS if pilot else {}):
        cache.clear()
    jax.clear_caches()
    gc.collect()


def environment_error() -> JaxSettingsError | None:
    """What stops JAX from importing under this process's environment, in words, or None: JAX
    refuses a boolean variable (``JAX_ENABLE_X64``, ``JAX_DISABLE_JIT``, ...) that is not one of
    y/yes/t/true/on/1 or n/no/f/false/off/0 with a bare ``ValueError`` at ``import jax``."""
    try:
        import jax  # noqa: F401
    except ValueError as err:
        match = re.search(r"invalid truth value (.+) for environment '(\w+)'", str(err))
        if match is None:
            raise
        name, value = match.group(2), match.group(1)
        return JaxSettingsError(
            f"{name}={value} is not a value JAX accepts (true: 1, y, yes, t, true, on; false: 0, n, no, f, false, "
            f"off), so JAX cannot start; set it to one of those or unset it"
            + (" (bayes-scaling needs 64-bit mode on: 1, or unset)" if name == "JAX_ENABLE_X64" else ""))
    return None


def _check_backend() -> None:
    """Start JAX's backend where ``JAX_PLATFORMS`` names the platforms, so that one this machine
    lacks (``cuda`` without a GPU, a misspelt name) is an error that says so rather than a failure
    deep inside the first computation (JAX raises a bare AssertionError for a missing CUDA)."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if not platforms:
        return
    import jax

    try:
        jax.devices()
    except Exception as err:  # noqa: BLE001 -- any failure to start is the setting's
        detail = one_line(str(err), limit=300) or type(err).__name__
        raise JaxSettingsError(
            f"JAX_PLATFORMS={platforms} names no platform JAX can start on this machine ({detail}); "
            "unset it, or set it to cpu") from err


def _load_numpyro_eagerly() -> None:
    """ArviZ registers NumPyro as a lazy module; if ArviZ was imported first, NumPyro's own
    submodules then fail to bind (``numpyro.distributions.distribution`` goes missing inside
    ``numpyro.factor``). Touching an attribute executes the lazy module before anything else.

    Run on ``import bayes_scaling``, whether ArviZ comes before or after the package: importing
    NumPyro (and JAX) changes no JAX setting and does not start JAX's backend."""
    if environment_error() is not None:  # configure() raises it, as the first thing any fit does
        return
    import numpyro

    _ = numpyro.__version__
