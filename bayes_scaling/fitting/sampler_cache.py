"""Traced samplers kept on disk (``jax.export``), so a new process skips tracing NumPyro's NUTS.

Tracing and lowering the sampler costs about a second per process; JAX's persistent compilation
cache (``_jax_setup``) only saves the compile that follows. Here the lowered StableHLO of each
sampler program is serialised with ``jax.export`` under the cache directory, keyed by everything
the program depends on:

* the caller's description of the program (model, priors at full precision, shapes, run lengths),
* the source of every ``bayes_scaling`` module and of the law's own module,
* the versions of Python, jax, jaxlib and numpyro, the platform, the device count and x64.

A change to any of them gives a new key, so a stale program is never loaded. A file that cannot be
read back is ignored and written again. ``BAYES_SCALING_NO_COMPILE_CACHE=1`` switches this cache
off together with JAX's. Serialising needs the ``flatbuffers`` package; without it every process
traces its samplers again (the draws are the same either way).

The compiled programs are kept too (``jax.experimental.serialize_executable``, zlib-compressed): a
hit in JAX's persistent cache still traces and lowers each program to find its key (on a repeated
``bayes-scaling fit``, 14 programs), whereas these are loaded directly.

* An exported program's compiled form (``load_compiled``, ``compile_exported``) is keyed by the
  program's bytes, its XLA options, the versions, ``XLA_FLAGS``, the platform and the host's
  processor (unlike JAX's own cache). An edit outside the traced programs retraces them in the next
  process but does not recompile them.
* ``stored_jit`` keeps a small jitted function's programs (a law's log-loss, the starting point),
  one per signature of its arguments, keyed by its description and the package's sources, since
  finding its bytes would mean tracing it.

They are the bytes XLA's compiler gave, so a loaded program computes exactly what a compiled one
does. Like JAX's own cache, this trusts the cache directory (loading an executable runs its code).

The directory is bounded like JAX's (``_jax_setup.cache_max_bytes``, 1 GiB unless
``$BAYES_SCALING_CACHE_MAX_MB`` says otherwise): a file's modification time is renewed whenever it
is read, and after each write the least recently used files are deleted until the rest fit
(``evict``). A program whose file was deleted is traced or compiled again by the next process.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import jax
import numpy as np

from bayes_scaling import _jax_setup

FORMAT = b"bayes-scaling sampler v1\n"
EXECUTABLES_FORMAT = b"bayes-scaling executables v2\n"


def enabled() -> bool:
    return os.environ.get("BAYES_SCALING_NO_COMPILE_CACHE") != "1"


def directory() -> Path:
    return _jax_setup.cache_dir().parent / "samplers"


@cache
def _environment_digest() -> str:
    """Sources of the package and versions of everything that shapes a traced program."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    h.update(_versions().encode())
    return h.hexdigest()


@cache
def _versions() -> str:
    """Python, jax, jaxlib and numpyro, the backend, device count and x64."""
    import jaxlib
    import numpyro

    return "\0".join((sys.version, jax.__version__, jaxlib.__version__, numpyro.__version__,
                      jax.default_backend(), str(jax.device_count()), str(jax.config.jax_enable_x64)))


def law_source_digest(law) -> str:
    """The source file of the law's class (a law defined outside the package counts too)."""
    try:
        return hashlib.sha256(Path(inspect.getfile(type(law))).read_bytes()).hexdigest()
    except (OSError, TypeError):
        return type(law).__qualname__


def prior_fingerprint(prior) -> str:
    """A distribution's class and parameters at full precision (``describe_priors`` rounds)."""
    parts = [f"{type(prior).__module__}.{type(prior).__qualname__}"]
    for name in sorted(getattr(prior, "arg_constraints", {})):
        if hasattr(prior, name):
            value = np.asarray(getattr(prior, name), np.float64)
            parts.append(f"{name}={value.shape}:{value.tobytes().hex()}")
    base = getattr(prior, "base_dist", None)
    if base is not None and base is not prior:
        parts.append(f"base={prior_fingerprint(base)}")
    return "(" + ",".join(parts) + ")"


def program_key(description: str) -> str:
    return hashlib.sha256((_environment_digest() + "\0" + description).encode()).hexdigest()[:32]


def load_or_export(key: str, trace: Callable[[], list[jax.export.Exported]]) -> list[jax.export.Exported]:
    """The exported programs stored under ``key``; else ``trace()``'s, stored there. Every caller
    runs the same ``Exported`` code, whether just traced or read back, so draws do not depend on
    the cache."""
    return load_or_export_bytes(key, trace)[0]


def load_or_export_bytes(key: str, trace: Callable[[], list[jax.export.Exported]]) -> tuple[list, list]:
    """``load_or_export``'s programs and each one's bytes as stored (None where not serialisable)."""
    path = directory() / f"{key}.bin"
    if enabled():
        blobs = _parse(path)
        if blobs is not None:
            try:
                return [jax.export.deserialize(bytearray(blob)) for blob in blobs], blobs
            except Exception:  # from an incompatible jax: trace again
                pass
    exported = trace()
    blobs = [exported_bytes(e) for e in exported]
    if enabled() and None not in blobs:
        _write(path, blobs)
    return exported, blobs


def exported_bytes(exported: jax.export.Exported) -> bytes | None:
    """A program's bytes as ``load_or_export`` stores them; None without the ``flatbuffers`` package
    that jax's serialiser needs (then nothing is kept on disk)."""
    try:
        return bytes(exported.serialize())
    except ImportError:
        return None


def load_compiled(export_key: str, placements: list[list], options: list[str]) -> list | None:
    """The compiled programs of those ``load_or_export`` keeps under ``export_key``, program i on
    the devices ``placements[i]`` under XLA ``options[i]``, if every one is stored
    (``compile_exported``); else None. Reads the exported programs' bytes without deserialising them."""
    blobs = _parse(directory() / f"{export_key}.bin") if enabled() else None
    if blobs is None or len(blobs) != len(placements):
        return None
    paths = [directory() / f"{compiled_key(blob, option)}.exe" for blob, option in zip(blobs, options)]
    if not all(path.exists() for path in paths):
        return None
    with ThreadPoolExecutor(len(paths)) as pool:  # XLA links each program's code outside the GIL
        loaded = list(pool.map(_read_executable, paths, placements))
    return None if any(program is None for program in loaded) else loaded


def compile_exported(blob: bytes | None, compile: Callable[[str], jax.stages.Compiled], devices: list,
                     options: str) -> jax.stages.Compiled:
    """The exported program ``blob`` (its bytes, ``exported_bytes``) compiled under XLA ``options``
    onto ``devices``: loaded if stored, else ``compile(name)``'s, stored (not with ``blob`` None).

    Keyed by the program's bytes, not the package's sources: an edit that leaves a traced program
    as it was (any edit outside it) retraces but does not recompile it (its bytes hold source line
    numbers, so an edit that moves its lines does). ``compile`` jits the program under ``name``,
    as ``load_or_compile`` explains."""
    if blob is None:
        return compile("program")
    (compiled,) = load_or_compile(compiled_key(blob, options), lambda name: [compile(name)], [devices])
    return compiled


def compiled_key(blob: bytes, options: str) -> str:
    """An exported program's compiled form: its bytes, the XLA options, the versions, ``XLA_FLAGS``,
    the platform and the host's processor."""
    return hashlib.sha256(b"\0".join((b"compiled", blob, options.encode(), _versions().encode(),
                                       _compile_environment().encode()))).hexdigest()[:32]


def _compile_environment() -> str:
    """What else shapes a compiled program: ``XLA_FLAGS``, the platform and the host's processor
    (XLA compiles for the CPU it runs on; a cache directory shared by machines of different CPUs,
    a cluster's home directory, keeps one set per CPU)."""
    return "\0".join((os.environ.get("XLA_FLAGS", ""), jax.devices()[0].client.platform_version, _host_processor()))


def _read_executable(path: Path, devices: list):
    loaded = _read_executables(path, [devices])
    return None if loaded is None else loaded[0]


def load_or_compile(key: str, compile: Callable[[str], list[jax.stages.Compiled]],
                    placements: list[list]) -> list[jax.stages.Compiled]:
    """The compiled programs stored under ``key`` (``executables_key`` of their description, or
    ``compiled_key`` of an exported program), program i loaded onto the devices ``placements[i]``;
    else ``compile(name)``'s, stored there.

    ``compile`` names its jitted programs after ``name`` (``named``), which holds the key. XLA's CPU
    client cannot serialise an executable that it loaded back (jaxlib 0.12: the functions of a
    re-serialised program are missing when it is loaded again), so what JAX read from its own
    persistent cache must not be stored here; a name holding the key makes JAX's cache miss exactly
    when this one does, and a hit there anyway (this file lost, JAX's kept) is seen and not stored."""
    path = directory() / f"{key}.exe"
    if enabled():
        loaded = _read_executables(path, placements)
        if loaded is not None:
            return loaded
    hits = _jax_cache_hits()
    compiled = compile(f"program_{key}")
    if enabled() and _jax_cache_hits() == hits:
        _write_executables(path, compiled)
    return compiled


def _write_executables(path: Path, compiled: list) -> None:
    """The executables, pickled with their argument trees and compressed (zlib level 1: a sixth
    of the size, about 10 ms to read back a fit's sampler)."""
    try:
        from jax.experimental.serialize_executable import serialize

        blob = pickle.dumps([serialize(c) for c in compiled], protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an executable this backend cannot serialise: compile again next time
        return
    _write_raw(path, EXECUTABLES_FORMAT + zlib.compress(blob, 1))


def named(fn: Callable, name: str) -> Callable:
    """``fn`` under another name: a jitted program's name is part of JAX's cache key."""
    def program(*args):
        return fn(*args)

    program.__name__ = program.__qualname__ = name
    return program


def stored_jit(fn: Callable, description: str) -> Callable:
    """``jax.jit(fn)`` whose compiled programs, one per signature of the arguments (their tree,
    shapes and dtypes), are kept on disk as the sampler's are (``load_or_compile``): a new process
    loads them instead of tracing and lowering ``fn`` to look each up in JAX's cache. The arguments
    are passed as arrays (a Python float as a float64 array, not JAX's weakly typed scalar).
    ``description`` must name everything ``fn`` computes with beyond its arguments."""
    programs = {}

    def call(*args):
        flat, tree = jax.tree_util.tree_flatten(args)
        flat = [x if isinstance(x, (jax.Array, np.ndarray)) else np.asarray(x) for x in flat]
        signature = (tree, *((x.shape, x.dtype) for x in flat))
        program = programs.get(signature)
        if program is None:
            specs = tree.unflatten([jax.ShapeDtypeStruct(x.shape, x.dtype) for x in flat])
            shapes = repr((str(tree), tuple((x.shape, x.dtype.str) for x in flat)))
            (program,) = load_or_compile(
                executables_key(f"{description}\0{shapes}"),
                lambda name: [jax.jit(named(fn, name)).lower(*specs).compile()], [jax.devices()[:1]])
            programs[signature] = program
        return program(*tree.unflatten(flat))

    return call


_hits = [0]


def _jax_cache_hits() -> int:
    """Hits of JAX's persistent cache in this process since the first call (counted by a listener
    registered then; any thread's hit counts, which can only leave a program unstored)."""
    if not _hits[1:]:
        def count(event, **_):
            if event == "/jax/compilation_cache/cache_hits":
                _hits[0] += 1

        from jax import monitoring

        monitoring.register_event_listener(count)
        _hits.append(count)
    return _hits[0]


def _read_executables(path: Path, placements: list[list]) -> list[jax.stages.Compiled] | None:
    try:
        data = path.read_bytes()
        if not data.startswith(EXECUTABLES_FORMAT):
            return None
        from jax.experimental.serialize_executable import deserialize_and_load

        stored = pickle.loads(zlib.decompress(data[len(EXECUTABLES_FORMAT):]))
        if len(stored) != len(placements):
            return None
        _prepare_host_kernels()

        def load(entry, devices):
            payload, in_tree, out_tree = entry
            return deserialize_and_load(payload, in_tree, out_tree, execution_devices=devices)

        _mark_used(path)
        if len(stored) == 1:
            return [load(stored[0], placements[0])]
        with ThreadPoolExecutor(len(stored)) as pool:  # XLA links each program's code outside the GIL
            return list(pool.map(load, stored, placements))
    except Exception:  # missing, truncated or from an incompatible jax: compile again
        return None


@cache
def _prepare_host_kernels() -> None:
    """XLA's CPU LAPACK kernels (Cholesky, eigh, ...) take their function pointers from SciPy when JAX
    first lowers a program that calls one. A loaded executable is never lowered, and its first
    factorisation would crash the process; lowering a 2 x 2 Cholesky once sets them all."""
    jax.jit(jax.numpy.linalg.cholesky).lower(jax.ShapeDtypeStruct((2, 2), np.float32))


def executables_key(description: str) -> str:
    """``program_key`` of compiled programs: their description and ``_compile_environment``."""
    return program_key(description + "\0compiled\0" + _compile_environment())


@cache
def _host_processor() -> str:
    """The CPU's model and instruction-set flags (Linux: /proc/cpuinfo), else what ``platform`` says."""
    import platform

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = ("model name", "flags", "Features", "CPU part")
        return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _parse(path: Path) -> list[bytes] | None:
    """The programs' bytes in a stored file; None if missing or not whole."""
    try:
        data = path.read_bytes()
        if not data.startswith(FORMAT):
            return None
        pos, blobs = len(FORMAT), []
        (count,) = struct.unpack_from("<I", data, pos)
        pos += 4
        for _ in range(count):
            (size,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            if pos + size > len(data):
                return None
            blobs.append(data[pos: pos + size])
            pos += size
        _mark_used(path)
        return blobs
    except (OSError, struct.error):
        return None


def _write(path: Path, blobs: list[bytes]) -> None:
    _write_raw(path, FORMAT + struct.pack("<I", len(blobs)) + b"".join(struct.pack("<Q", len(b)) + b for b in blobs))


def _write_raw(path: Path, payload: bytes) -> None:
    """Atomic: a reader sees the old file, the whole new file, or none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
        evict(path.parent, _jax_setup.cache_max_bytes(), keep=path)
    except OSError:  # a read-only cache directory only costs the next process a trace
        pass


def _mark_used(path: Path) -> None:
    """Renew the file's modification time: ``evict`` deletes the least recently used first."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache directory: eviction then goes by when files were written
        pass


STALE_TEMPORARY_SECONDS = 3600


def evict(folder: Path, limit: int, keep: Path | None = None) -> int:
    """Delete the least recently used cache files (oldest modification time first, ``keep``
    never) until those left take at most ``limit`` bytes; also temporary files that a killed
    process left over an hour ago. Returns the bytes left. Another process deleting the same files
    at the same time only makes this one delete fewer."""
    now, total, entries = time.time(), 0, []
    try:
        with os.scandir(folder) as scan:
            for entry in scan:
                try:
                    info = entry.stat()
                except OSError:
                    continue
                if entry.name.startswith(".tmp-"):
                    if now - info.st_mtime > STALE_TEMPORARY_SECONDS:
                        _unlink(entry.path)
                    continue
                if not entry.name.endswith((".bin", ".exe")):
                    continue
                total += info.st_size
                if keep is None or entry.path != str(keep):
                    entries.append((info.st_mtime, info.st_size, entry.path))
    except OSError:
        return total
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        _unlink(path)
        total -= size
    return total


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
