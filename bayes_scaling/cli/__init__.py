"""The ``bayes-scaling`` command line.

Each sub-command lives in its own module here with ``register(subparsers)``, which adds its parser
and sets ``func``; modules are discovered at start-up, so a new command is a new file. A call that
names a command imports only that command's module (``loop``'s alone imports the design package,
about 0.3 s of CPU that ``fit`` has no use for); ``--help`` or an unknown command imports them all.
Heavy imports (NumPyro, ArviZ, matplotlib) stay inside the command functions to keep ``--help`` fast.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import pkgutil
import re
import signal
import sys
import warnings
import threading

from bayes_scaling._jax_setup import configure, environment_error
from bayes_scaling.cli import _interrupts
from bayes_scaling.errors import InputError, one_line

REPORT_AT = "the project's issue tracker, with the command and its output under --debug"
# argparse reads "-1e21" as an option; numbers in any float notation go on to our own validation.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` where a module of that name defines it."""
    parser = argparse.ArgumentParser(
        prog="bayes-scaling",
        description="Bayesian scaling laws: compute-optimal frontiers with credible intervals.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the traceback (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in [command] if command in names else names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    _accept_negative_numbers(parser)
    return parser


def _accept_negative_numbers(parser: argparse.ArgumentParser) -> None:
    """Let values such as ``--budget -1e21`` reach the option's own check (argparse alone takes
    only ``-1`` and ``-.5`` for numbers and calls ``-1e21`` an unknown option)."""
    parser._negative_number_matcher = _NEGATIVE_NUMBER
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _accept_negative_numbers(child)


def _sampler_warnings_on_one_line(command: str) -> None:
    """A fit whose diagnostics fail warns (``SamplerWarning``), a doubtful input too (``InputWarning``);
    on the command line each is one line on stderr, and ``fit``, which prints the verdict itself, says
    it once."""
    from bayes_scaling.diagnostics import SamplerWarning
    from bayes_scaling.errors import InputWarning, one_line

    if command == "fit":
        warnings.simplefilter("ignore", SamplerWarning)
    # another process holding the compile cache's lock: the program is compiled afresh, nothing is wrong
    warnings.filterwarnings("ignore", message=r"Error (reading|writing) persistent compilation cache entry")

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (SamplerWarning, InputWarning)):  # our own text, whole: its advice comes last
            print(f"bayes-scaling {command}: warning: {one_line(str(message), limit=4000)}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    original = warnings.showwarning
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status. Every failure the user can cause (bad options,
    unreadable, empty, truncated or foreign files) ends in one line on stderr naming the file (and
    row or field) and what was expected, status 2; an internal error in a short message saying
    where to report it, status 1, with the traceback only under ``--debug``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    name = next((a for a in argv if not a.startswith("-")), None)
    problem = environment_error()  # JAX itself would not import: the commands' modules need it
    if problem is not None:
        print(f"bayes-scaling {name or ''}: error: {problem}".replace(" :", ":"), file=sys.stderr)
        return 2
    try:
        parser = build_parser(name)  # imports the command's module: a Ctrl-C here is no error either
    except KeyboardInterrupt:
        print(f"bayes-scaling {name or ''}: interrupted".replace(" :", ":"), file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    args.argv = argv
    command = " ".join(filter(None, [args.command, getattr(args, "runs_command", None)]))
    # loop cancels its runs on Ctrl-C or SIGTERM itself (cli/loop.py)
    signals = contextlib.nullcontext() if args.command == "loop" else _interrupts.handled(command)
    try:
        with signals:
            configure()  # the JAX settings every command runs under (bayes_scaling._jax_setup)
            with warnings.catch_warnings():
                _sampler_warnings_on_one_line(command)
                return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        print(f"bayes-scaling {command}: {_interrupts.stop_word(err)}", file=sys.stderr)
        return _interrupts.exit_status(err)
    except BrokenPipeError:  # the reader went away (``... --json | head``): nothing is wrong, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return 141  # 128 + SIGPIPE, as a shell reports a command its pipe stopped
    except Exception as err:  # noqa: BLE001 -- the one place every error ends
        if debug:
            import traceback

            traceback.print_exc()
        user = user_error(err)
        if user is not None:
            print(f"bayes-scaling {command}: error: {user}", file=sys.stderr)
            return 2
        print(f"bayes-scaling {command}: internal error ({type(err).__name__}: {one_line(str(err), 300)}); this is "
              f"a bug, please report it at {REPORT_AT}" + ("" if debug else "; rerun with --debug for the traceback"),
              file=sys.stderr)
        return 1


def user_error(err: BaseException) -> str | None:
    """The one-line message of an error the user caused, or None for an internal one: InputError,
    and the operating system refusing a path the user gave (missing, a folder, no permission,
    disk full)."""
    if isinstance(err, InputError):
        return one_line(str(err))
    if isinstance(err, OSError) and (err.filename is not None or isinstance(err, FileNotFoundError)):
        what = err.strerror or str(err)
        where = f"{err.filename}: " if err.filename is not None else ""
        return one_line(f"{where}{what}")
    return None


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # e.g. piped into head: nothing more to say
        pass


def entry_point() -> None:
    """The console script: ``main``, then a quick exit.

    A normal interpreter shutdown tears down JAX's CPU client and thousands of modules, about half
    a second after the work is done (experiments/bench_cli.py). Once ``main`` returns every file it
    wrote is closed, so this flushes stdout and stderr, runs the ``atexit`` handlers (Ray's
    shutdown, logging, temporary directories) and leaves with ``os._exit``; if a non-daemon thread
    is still running, it exits the normal way and waits for it -- unless the command was stopped
    (Ctrl-C, SIGTERM): then the sampler's compiles still running in threads are of no use, and
    waiting for them delayed the exit by 5-10 s, in which a second Ctrl-C crashed the interpreter's
    teardown (status -11). The installed ``bayes-scaling`` reaches it through ``_bayes_scaling_entry``,
    which handles Ctrl-C and SIGTERM while this package is still importing."""
    code = main()
    if code in _interrupts.EXIT_STATUS.values():  # stopped by Ctrl-C or SIGTERM: see the docstring
        _flush_quietly()
        for sig in _interrupts.listened():  # another signal while the exit handlers run: leave at once
            signal.signal(sig, lambda *_: os._exit(code))
        atexit._run_exitfuncs()
        os._exit(code)
    if threading.active_count() > 1 and any(
        t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()
    ):
        sys.exit(code)
    _flush_quietly()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
