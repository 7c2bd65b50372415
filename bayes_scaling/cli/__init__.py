"""The ``bayes-scaling`` command line.

Each sub-command lives in its own module here with ``register(subparsers)``, which adds its parser
and sets ``func``; modules are discovered at start-up, so a new command is a new file. Heavy imports
(NumPyro, ArviZ, matplotlib) stay inside the command functions to keep ``--help`` fast.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import pkgutil
import sys
import threading

from bayes_scaling.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-scaling",
        description="Bayesian scaling laws: compute-optimal frontiers with credible intervals.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, FileNotFoundError) as err:
        print(f"bayes-scaling {args.command}: error: {err}", file=sys.stderr)
        return 2


def entry_point() -> None:
    """The console script: ``main``, then a quick exit.

    A normal interpreter shutdown tears down JAX's CPU client and thousands of modules, about half
    a second after the work is done (experiments/bench_cli.py). Once ``main`` returns every file it
    wrote is closed, so this flushes stdout and stderr, runs the ``atexit`` handlers (Ray's
    shutdown, logging, temporary directories) and leaves with ``os._exit``; if a non-daemon thread
    is still running, it exits the normal way and waits for it."""
    code = main()
    if threading.active_count() > 1 and any(
        t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()
    ):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # e.g. piped into head: nothing more to say
        pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
