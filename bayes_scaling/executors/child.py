"""One training run as a child process: ``python -m training --spec <json> --out <file>``.

The harness trains in bf16 on its own devices, while ``bayes_scaling`` runs JAX in float64 with
several host devices; the two settings never share a process. Every executor ends up here: the
process pool starts children directly, the inline, Ray and Slurm executors call ``train_job``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bayes_scaling.errors import InputError

RESULT_FILE = "result.json"
STDERR_FILE = "stderr.log"


class SpecRejected(InputError):
    """The harness refused the spec (``python -m training`` exit status 2): retrying cannot help."""


class ChildDied(RuntimeError):
    """The child ended without writing a result (killed, out of memory, crashed): worth retrying."""


def child_environment(memory_fraction: float | None = None) -> dict[str, str]:
    """This process's environment for a training child: the host-device flag and float64 switch that
    ``bayes_scaling`` adds for NUTS removed; with ``memory_fraction``, the child's JAX may take at
    most that share of the GPU's memory and allocates it as needed (so several runs share one GPU)."""
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", "")).strip()
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    env.pop("JAX_ENABLE_X64", None)
    if memory_fraction is not None:
        env.pop("XLA_CLIENT_MEM_FRACTION", None)  # jax refuses both names at once; jax 0.11 and 0.12 read the older one
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{memory_fraction:g}"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def launch(spec: dict[str, Any], folder: Path, env: dict[str, str], *, stderr=None, nice: int = 0) -> subprocess.Popen:
    """Start ``python -m training`` for ``spec``; it writes its RunResult to ``folder/result.json``.
    Its stderr goes to ``stderr`` (default: ``folder/stderr.log``). The child exits within about a
    second of this process's death, however it dies (``TRAINING_PARENT_PID``, read by
    ``python -m training``); cancelling through an executor kills it at once."""
    env = {**env, "TRAINING_PARENT_PID": str(os.getpid())}
    command = [sys.executable, "-m", "training", "--spec", json.dumps(spec), "--out", str(folder / RESULT_FILE)]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    if stderr is None:
        with open(folder / STDERR_FILE, "wb") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def result_of(folder: Path, returncode: int, stderr_tail: str) -> dict[str, Any]:
    """The child's RunResult; ``SpecRejected`` for a refused spec, ``ChildDied`` when there is no result."""
    out = folder / RESULT_FILE
    if out.exists():
        return json.loads(out.read_text())
    if returncode == 2:
        lines = stderr_tail.strip().splitlines()[-1:] or ["the training harness rejected the spec"]
        raise SpecRejected(lines[0].removeprefix("python -m training: error: "))
    tail = "\n".join(stderr_tail.strip().splitlines()[-5:])
    raise ChildDied(f"python -m training exited with status {returncode} and no result" + (f":\n{tail}" if tail else ""))


def stderr_tail(folder: Path, keep: int = 4000) -> str:
    path = folder / STDERR_FILE
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - keep))
        return f.read().decode(errors="replace")


def train_job(spec: dict[str, Any], memory_fraction: float | None = None) -> dict[str, Any]:
    """Run one spec to the end in a child and return its RunResult as a dict (the job that the
    inline, Ray and Slurm executors run, on whichever machine they run it). A refused spec comes
    back as a failed result; a child that dies without a result raises ``ChildDied``."""
    environment = child_environment(memory_fraction)
    with tempfile.TemporaryDirectory(prefix="bayes-scaling-train-") as tmp:
        folder = Path(tmp)
        proc = launch(spec, folder, environment)
        try:
            returncode = _wait(proc)
        finally:  # cancelled (KeyboardInterrupt from Ray or submitit): take the child down too
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        try:
            return result_of(folder, returncode, stderr_tail(folder))
        except SpecRejected as err:
            return rejected_result(spec, str(err))


def _wait(proc: subprocess.Popen) -> int:
    """``proc.wait()`` in short slices: a cancel that Ray delivers as an asynchronous KeyboardInterrupt
    arrives between them (a blocking wait would not see it until the child ends)."""
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass


def rejected_result(spec: dict[str, Any], error: str) -> dict[str, Any]:
    return {"run_id": spec.get("run_id", ""), "status": "failed", "loss": None, "error": f"spec rejected: {error}"}


def train_in_subprocess(spec: dict[str, Any], *, quiet: bool = False, nice: int = 0) -> dict[str, Any]:
    """Run ``python -m training --spec <spec>`` and return its RunResult as a dict, relaying its
    progress bar to stderr unless ``quiet``. A spec the harness rejects raises ``InputError``
    (``SpecRejected``) with the harness's one-line message; a child that ends without a result
    raises ``RuntimeError`` (``ChildDied``)."""
    with tempfile.TemporaryDirectory(prefix="bayes-scaling-train-") as tmp:
        folder = Path(tmp)
        proc = launch(spec, folder, child_environment(), stderr=subprocess.PIPE, nice=nice)
        tail = _relay(proc.stderr, None if quiet else sys.stderr)
        return result_of(folder, proc.wait(), tail)


CHILD_ERROR = "python -m training: error: "


def _relay(stream, sink, keep: int = 4000) -> str:
    """Copy the child's stderr to ``sink`` as it comes (progress bars redraw with \\r); return its tail.
    The child's own error line (``CHILD_ERROR``) is held back: the command reports it once, itself."""
    tail, pending = b"", ""
    while chunk := os.read(stream.fileno(), 4096):
        tail = (tail + chunk)[-keep:]
        if sink is None:
            continue
        pending += chunk.decode(errors="replace")
        cut = max(pending.rfind("\n"), pending.rfind("\r")) + 1
        ready, pending = pending[:cut], pending[cut:]
        if not (CHILD_ERROR.startswith(pending) or pending.startswith(CHILD_ERROR)):  # not the error line: now
            ready, pending = ready + pending, ""
        _write_relayed(sink, ready)
    if sink is not None:
        _write_relayed(sink, pending)
    stream.close()
    return tail.decode(errors="replace")


def _write_relayed(sink, text: str) -> None:
    kept = [line for line in text.splitlines(keepends=True) if not line.startswith(CHILD_ERROR)]
    if kept:
        sink.write("".join(kept))
        sink.flush()
