"""The ``bayes-scaling`` console script: Ctrl-C or SIGTERM while the package is still importing
ends in the command line's one line and status, not in a traceback.

``import bayes_scaling`` imports JAX and NumPyro, the first seconds of every call, before the
command line's own handling (``bayes_scaling.cli._interrupts``, the loop's) is installed. A Ctrl-C
there printed a KeyboardInterrupt traceback, a SIGTERM ended the process with no message. This
module lives outside the package, so that it runs before that import (any module inside the
package imports the package first); it imports only the standard library. Until the import is done,
SIGINT and SIGTERM end the process at once with ``bayes-scaling COMMAND: interrupted`` (status 130)
or ``terminated (SIGTERM)`` (143), as ``_interrupts.EXIT_STATUS`` and ``stop_word`` say later on:
nothing has been written yet, so there is nothing to clean up. Then the handlers are put back and
``bayes_scaling.cli.entry_point`` runs the command. A signal the process was started ignoring (a
background job's SIGINT) stays ignored.

``python -m bayes_scaling`` imports the package before its ``__main__`` runs, so this cannot cover
it: there a Ctrl-C in the first seconds still prints a traceback.
"""

from __future__ import annotations

import os
import signal
import sys

# status and word per signal: those of bayes_scaling.cli._interrupts (tests/test_interrupts.py compares them)
STOPPED = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated (SIGTERM)")}


def entry_point() -> None:
    previous = {sig: signal.signal(sig, _quit) for sig in STOPPED if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        from bayes_scaling.cli import entry_point as run_command
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    run_command()


def _quit(signum: int, frame) -> None:
    status, word = STOPPED[signum]
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")  # as cli.main names it before parsing
    try:
        os.write(2, f"\nbayes-scaling {command}: {word}\n".replace(" :", ":").encode())
    except OSError:
        pass
    os._exit(status)


if __name__ == "__main__":
    entry_point()
