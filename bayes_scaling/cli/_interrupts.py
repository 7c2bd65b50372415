"""Ctrl-C and SIGTERM on the command line: stop cleanly, at once when asked twice.

Python runs a signal's handler in the main thread between bytecodes, which leaves three gaps this
module closes for every command but ``loop`` (which cancels its runs itself, ``cli/loop.py``):

* A KeyboardInterrupt raised inside a garbage-collection callback (JAX registers one) is printed
  as "Exception ignored" and lost: the command then ran on to exit 0. ``sys.unraisablehook`` sees
  the lost interrupt and the watchdog below delivers it again (``_thread.interrupt_main``) once
  the callback has returned.
* While the main thread is inside a long compiled call (XLA compiling or running a sampler), no
  Python handler runs until the call returns. A watchdog thread reads the signals from
  ``signal.set_wakeup_fd``, which the C-level handler writes at once: after ``HINT_AFTER_S`` it
  says that the command is stopping and that a second Ctrl-C quits at once; a second Ctrl-C
  prints "interrupted" and leaves with status 130 (``os._exit``: no interpreter teardown, which
  a second interrupt used to crash). Fits are saved by moving a finished directory into place,
  so quitting at once never leaves half a fit.
* SIGTERM (a scheduler's stop) ended the process with no message. It is Ctrl-C here, reported as
  "terminated", status 143; it still ends the process within ``TERM_GRACE_S`` if the main thread
  does not get to its handler sooner, as the default action would have.

A signal the process was started ignoring (a background job's SIGINT) stays ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import _thread

HINT_AFTER_S = 1.0
TERM_GRACE_S = 3.0
REDELIVER_AFTER_S = 0.01
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
REDELIVER = 0  # the byte that asks the watchdog to raise a swallowed interrupt again (no signal is 0)


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that records which signal raised it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(err: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal, as a shell reports it)."""
    return EXIT_STATUS.get(getattr(err, "signum", signal.SIGINT), 130)


def stop_word(err: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if getattr(err, "signum", None) == signal.SIGTERM else "interrupted"


@contextlib.contextmanager
def handled(command: str):
    """Inside: SIGINT and SIGTERM raise ``Interrupted``; a swallowed one is raised again; a second
    signal, or a SIGTERM the main thread cannot take within ``TERM_GRACE_S``, ends the process
    with a one-line message. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    done = threading.Event()
    state = {"last": None}

    def on_signal(signum, frame):
        state["last"] = signum
        raise Interrupted(signum)

    def redeliver(unraisable):  # the watchdog raises it again, once this callback has returned
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and not done.is_set():
            with contextlib.suppress(OSError):
                os.write(write_end, bytes([REDELIVER]))
        else:
            default_hook(unraisable)

    def quit_now(signum: int, why: str) -> None:
        word = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        _write_stderr(f"\nbayes-scaling {command}: {word}{why}\n")
        os._exit(EXIT_STATUS.get(signum, 130))

    def watchdog():
        seen, echoes = 0, 0  # signals received; re-deliveries whose own wake-up byte is still to come
        deadline = None  # (time, signum, what happens then)
        while not done.is_set():
            timeout = None if deadline is None else max(0.0, deadline[0] - time.monotonic())
            ready = _wait_readable(read_end, timeout)
            if done.is_set():
                return
            if ready:
                try:
                    data = os.read(read_end, 64)
                except OSError:
                    return
                for signum in data:
                    if signum == REDELIVER:
                        time.sleep(REDELIVER_AFTER_S)
                        echoes += 1
                        _thread.interrupt_main(state["last"] or signal.SIGINT)
                        continue
                    if signum not in EXIT_STATUS:
                        continue
                    if echoes:
                        echoes -= 1
                        continue
                    seen += 1
                    if seen > 1:
                        quit_now(signum, "")
                    deadline = ((time.monotonic() + TERM_GRACE_S, signum, "quit") if signum == signal.SIGTERM
                                else (time.monotonic() + HINT_AFTER_S, signum, "hint"))
            elif deadline is not None:
                _, signum, action = deadline
                if action == "quit":
                    quit_now(signum, f" (the work did not stop within {TERM_GRACE_S:g} s)")
                _write_stderr(f"\nbayes-scaling {command}: stopping after the current step "
                              "(press Ctrl-C again to quit at once)\n")
                deadline = None

    previous = {sig: signal.signal(sig, on_signal) for sig in listened()}
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    default_hook = sys.unraisablehook
    sys.unraisablehook = redeliver
    thread = threading.Thread(target=watchdog, name="bayes-scaling-interrupts", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = default_hook
        os.close(write_end)  # wakes the watchdog, which sees ``done`` and returns
        thread.join(timeout=1.0)
        os.close(read_end)


def listened() -> list[int]:
    """SIGINT and SIGTERM, less any this process was started ignoring: a shell starts a background job
    (``cmd &`` in a script) with SIGINT ignored, and that choice is the caller's."""
    return [sig for sig in EXIT_STATUS if signal.getsignal(sig) is not signal.SIG_IGN]


def _wait_readable(fd: int, timeout: float | None) -> bool:
    import select

    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _write_stderr(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, text.encode("utf-8", "replace"))
