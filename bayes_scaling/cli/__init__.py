"""The ``bayes-scaling`` command line.

Each sub-command lives in its own module here with ``register(subparsers)``, which adds its parser
and sets ``func``; modules are discovered at start-up, so a new command is a new file. Heavy imports
(NumPyro, ArviZ, matplotlib) stay inside the command functions to keep ``--help`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


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


if __name__ == "__main__":
    sys.exit(main())
