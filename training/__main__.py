"""``python -m training``: run one RunSpec and print its RunResult as JSON.

    python -m training --params 100000 --tokens 2000000 [--seed 0] [--out result.json]
    python -m training --spec spec.json            # or --spec '{"params": 1e5, ...}'

Every RunSpec field is a flag (underscores as dashes); flags override --spec. The progress bar goes
to stderr, the RunResult JSON to stdout (and to --out). Exit status: 0 ok, 1 failed or interrupted,
2 a spec that cannot be run (one line on stderr naming the field).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path

from training.spec import RunSpec, SpecError


def _number(text: str) -> int:
    """Integers also as 1e6 or 2_000_000."""
    value = float(text.replace("_", ""))
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text}")
    return int(value)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text}")


def _numbers(text: str) -> tuple[int, ...]:
    """Comma-separated whole numbers: ``--save-at-tokens 2e5,4e5``."""
    return tuple(_number(part) for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description="Train one scaling-law run.")
    parser.add_argument("--spec", help="a RunSpec as JSON text or a path to a JSON file")
    parser.add_argument("--out", help="also write the RunResult JSON here")
    parser.add_argument("--stop-after-steps", type=int, default=None, help="stop (resumably) after this many updates")
    for f in dataclasses.fields(RunSpec):
        kind = {int: _number, float: float, bool: _bool, str: str, tuple: _numbers}[type(f.default)]
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None,
                            help=f"(default {f.default!r})")
    return parser


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    base: dict = {}
    if args.spec:
        if not args.spec.lstrip().startswith("{") and not Path(args.spec).is_file():
            raise SpecError(f"--spec: expected JSON text or a JSON file, got {args.spec!r} (no such file)")
        text = args.spec if args.spec.lstrip().startswith("{") else Path(args.spec).read_text()
        try:
            base = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"--spec: expected JSON or a JSON file, got {args.spec!r} ({err})") from None
    for f in dataclasses.fields(RunSpec):
        value = getattr(args, f.name)
        if value is not None:
            base[f.name] = value
    return RunSpec.from_dict(base)


def exit_with_parent() -> None:
    """If ``TRAINING_PARENT_PID`` is set (by the process that started this run), exit as soon as
    that process is gone, so a killed scheduler or executor worker leaves no orphaned training."""
    parent = os.environ.get("TRAINING_PARENT_PID")
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os._exit(143)  # as if terminated: no result file, so the executor sees a run that died

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    exit_with_parent()
    args = build_parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
        from training.train import run

        result = run(spec, stop_after_steps=args.stop_after_steps)
    except SpecError as err:
        print(f"python -m training: error: {err}", file=sys.stderr)
        return 2
    text = result.to_json()
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    if result.status != "ok":
        print(f"python -m training: run {result.run_id} {result.status}: {result.error}", file=sys.stderr)
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
