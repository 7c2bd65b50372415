"""Ctrl-C and SIGTERM on the command line (``cli/_interrupts.py``) and JAX settings that stop JAX
from starting (``_jax_setup.environment_error``, ``_check_backend``): one line and a status, never
a traceback or a lost interrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SWALLOWED = textwrap.dedent("""
    import contextlib, gc, os, signal, sys
    from bayes_scaling.cli import _interrupts

    fired = []

    def in_gc(phase, info):  # a SIGINT that arrives inside a gc callback (JAX registers one)
        if phase == "start" and not fired:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass

    gc.callbacks.append(in_gc)
    handling = _interrupts.handled("test") if sys.argv[1] == "on" else contextlib.nullcontext()
    try:
        with handling:
            gc.collect()
            for _ in range(10**6):
                pass
        print("not interrupted")
    except KeyboardInterrupt as err:
        print("interrupted", _interrupts.exit_status(err))
""")

BLOCKED = textwrap.dedent("""
    import numpy as np
    from bayes_scaling.cli import _interrupts

    matrix = np.random.default_rng(0).random((4500, 4500))  # 18 s on an idle 2-core box (2500: 3.4 s, too short)
    try:
        with _interrupts.handled("test"):
            print("ready", flush=True)
            np.linalg.eigvals(matrix)  # one long call into LAPACK: no Python handler runs inside it
        print("finished", flush=True)
    except KeyboardInterrupt as err:
        print("caught", _interrupts.exit_status(err), flush=True)
""")


def _as_from_a_terminal() -> None:
    """The child's SIGINT and SIGTERM at their defaults, as a command started at a terminal has them: a test
    suite started in the background by a script inherits SIGINT ignored (POSIX), which the CLI respects."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    kwargs.setdefault("preexec_fn", _as_from_a_terminal)
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


@pytest.mark.parametrize("mode, expected", [("off", "not interrupted"), ("on", "interrupted 130")])
def test_an_interrupt_swallowed_in_a_gc_callback_is_raised_again(mode, expected):
    out, err = _python(SWALLOWED, mode).communicate(timeout=120)
    assert out.strip() == expected, err


def _signals_during_a_long_call(*signals: int, pause: float = 1.5):
    proc = _python(BLOCKED)
    assert proc.stdout.readline().strip() == "ready"
    for signum in signals:
        time.sleep(pause)
        proc.send_signal(signum)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err, time.monotonic() - sent


def test_a_second_ctrl_c_quits_at_once_with_a_message():
    status, out, err, waited = _signals_during_a_long_call(signal.SIGINT, signal.SIGINT)
    assert status == 130
    assert "press Ctrl-C again to quit at once" in err  # said while the call went on
    assert err.strip().endswith("bayes-scaling test: interrupted")
    assert "finished" not in out and "Traceback" not in err
    assert waited < 12, "the second Ctrl-C should not wait for the call to end (it takes 20 s or more)"


def test_sigterm_ends_a_long_call_within_its_grace():
    from bayes_scaling.cli import _interrupts

    status, out, err, waited = _signals_during_a_long_call(signal.SIGTERM, pause=0.5)
    if status == 0:  # the call ended inside the grace on a fast moment: the handler raised it as SIGTERM's 143
        assert out.strip().endswith("caught 143"), (out, err)
        return
    assert status == 143
    assert "bayes-scaling test: terminated (SIGTERM)" in err and "Traceback" not in err
    assert waited < _interrupts.TERM_GRACE_S + 12  # not the 20+ s of the call: margin for a loaded machine


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bayes_scaling", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


@pytest.mark.parametrize("value", ["garbage", "", "2"])
def test_a_jax_boolean_it_cannot_read_is_one_line(value, tmp_path):
    done = _cli("frontier", str(tmp_path / "no-fit"), "--budget", "1e22", JAX_ENABLE_X64=value)
    assert done.returncode == 2
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]
    assert f"JAX_ENABLE_X64={value!r} is not a value JAX accepts" in done.stderr


def test_a_platform_jax_cannot_start_is_one_line(tmp_path):
    done = _cli("frontier", str(tmp_path / "no-fit"), "--budget", "1e22", JAX_PLATFORMS="no-such-platform")
    assert done.returncode == 2, done.stderr
    assert "JAX_PLATFORMS=no-such-platform names no platform JAX can start" in done.stderr
    assert "Traceback" not in done.stderr and "this is a bug" not in done.stderr


def test_a_signal_the_caller_ignores_stays_ignored():
    code = textwrap.dedent("""
        import time
        from bayes_scaling.cli import _interrupts
        with _interrupts.handled("test"):
            print("ready", flush=True)
            time.sleep(3)
        print("finished", flush=True)
    """)
    proc = _python(code, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as `cmd &` in a script
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.strip() == "finished", err


def test_a_fit_stopped_while_compiling_exits_at_once_and_cleanly(tmp_path):
    """With no compile cache the sampler compiles in threads for a minute; Ctrl-C (twice, as an impatient
    user does) must not wait for them, nor crash in the interpreter's teardown (it used to: 5-10 s, then
    status -11 and a traceback)."""
    env = {**os.environ, "BAYES_SCALING_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "bayes_scaling", "fit", "chinchilla", "--model", "plain", "--out",
                             str(tmp_path / "fit")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_as_from_a_terminal)
    for line in proc.stderr:
        if line.startswith("sampling"):
            break
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    time.sleep(0.3)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 12 and "Traceback" not in err and "interrupted" in err  # not the compile's minute
    assert not (tmp_path / "fit").exists()


# The console script as pip writes it (``[project.scripts]``), with ``import bayes_scaling`` held where it starts
# importing JAX (then NumPyro: the slow part) until the test has sent its signal, which so lands inside the import.
CONSOLE_SCRIPT = textwrap.dedent("""
    import importlib, sys, time

    hold_s, (module, _, function) = float(sys.argv.pop(1)), sys.argv.pop(1).partition(":")

    class HeldImport:
        def find_spec(self, name, path=None, target=None):
            if name == "jax":
                sys.meta_path.remove(self)
                print("importing", flush=True)
                time.sleep(hold_s)
            return None

    sys.meta_path.insert(0, HeldImport())
    sys.exit(getattr(importlib.import_module(module), function)())
""")


def _console_script(hold_s: float, *args: str, **kwargs) -> subprocess.Popen:
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    target = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["bayes-scaling"]
    return _python(CONSOLE_SCRIPT, str(hold_s), target, *args, cwd=root, **kwargs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_package_imports_ends_in_one_line_and_the_status(signum):
    """Ctrl-C in the first seconds of a call (``import bayes_scaling``: JAX and NumPyro) printed a
    KeyboardInterrupt traceback; a SIGTERM there ended the process with no message."""
    from bayes_scaling.cli import _interrupts

    proc = _console_script(60, "fit", "chinchilla")
    assert proc.stdout.readline().strip() == "importing"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    error = _interrupts.Interrupted(signum)
    assert proc.returncode == _interrupts.exit_status(error), err
    assert err.strip() == f"bayes-scaling fit: {_interrupts.stop_word(error)}"


def test_a_signal_the_caller_ignores_stays_ignored_while_the_package_imports():
    proc = _console_script(1.5, "--help", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout.readline().strip() == "importing"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "usage: bayes-scaling" in out, err


def test_the_console_script_puts_the_handlers_back_before_the_command_runs(monkeypatch):
    """Once the package is imported the command's own handling takes over (``cli/_interrupts.py``, the loop's)."""
    import _bayes_scaling_entry
    import bayes_scaling.cli

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen = {}
    monkeypatch.setattr(bayes_scaling.cli, "entry_point", lambda: seen.update({s: signal.getsignal(s) for s in before}))
    _bayes_scaling_entry.entry_point()
    assert seen == before and {s: signal.getsignal(s) for s in before} == before
