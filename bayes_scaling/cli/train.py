"""``bayes-scaling train``: one training run in its own process, appended to the run store.

The run happens in ``python -m training`` (a child process): the harness trains in bf16 on one
device, while this process runs JAX in float64 with several host devices; the two settings must
never share a process. The child's progress bar streams to this terminal; its RunResult JSON comes
back through a temporary file and is appended to the store (failed runs too: they are kept, not fit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bayes_scaling.errors import InputError
from bayes_scaling.executors.child import child_environment, launch, result_of

__all__ = ["child_environment", "default_store", "train_in_subprocess"]

DEFAULT_STORE = "runs.sqlite"


def default_store() -> str:
    return os.environ.get("BAYES_SCALING_STORE", DEFAULT_STORE)


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


def _positive_count(text: str) -> int:
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = -1.0
    if value <= 0 or value != int(value):
        raise InputError(f"expected a positive whole number (e.g. 1e6), got {text!r}")
    return int(value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train one run (N params, D tokens) and append it to the run store",
        description="Train a decoder-only LM of about N parameters on D tokens (bf16, AdamW, cosine to "
        "lr/10 at D) in a child process `python -m training`, then append its RunResult to the store.",
    )
    p.add_argument("--params", required=True, help="target parameter count N (e.g. 1e5)")
    p.add_argument("--tokens", required=True, help="token budget D (e.g. 2e6)")
    p.add_argument("--store", default=None, help=f"run store (SQLite); default $BAYES_SCALING_STORE or {DEFAULT_STORE}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", default="stdlib", help='"stdlib" (default), a text file/folder, or a .bin token file')
    p.add_argument("--context", type=int, default=None, help="sequence length (default 128)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default 16)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: by width)")
    p.add_argument("--compute-dtype", choices=("bfloat16", "float32"), default=None)
    p.add_argument("--checkpoint-dir", default=None, help="save checkpoints here; rerun to resume")
    p.add_argument("--group", default=None, help="group label of the run in the store")
    p.add_argument("--run-id", default=None)
    p.add_argument("--spec", default=None, help="extra RunSpec fields as JSON (see `python -m training --help`)")
    p.set_defaults(func=_train)


def _train(args) -> int:
    spec: dict[str, Any] = {}
    if args.spec:
        try:
            spec = json.loads(args.spec)
        except json.JSONDecodeError as err:
            raise InputError(f"--spec: expected a JSON object, got {args.spec!r} ({err})") from None
    spec.update(params=_positive_count(args.params), tokens=_positive_count(args.tokens), seed=args.seed, corpus=args.corpus)
    optional = {"context": args.context, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "compute_dtype": args.compute_dtype, "checkpoint_dir": args.checkpoint_dir, "group": args.group,
                "run_id": args.run_id}
    spec.update({k: v for k, v in optional.items() if v is not None})
    from bayes_scaling.runs.store import RunStore

    store = RunStore(args.store or default_store())  # open first: a bad store path fails before training
    result = train_in_subprocess(spec)
    version = store.append(result, source="training")
    loss = "n/a" if result["loss"] is None else f"{result['loss']:.4f} nats/token"
    print(f"{result['run_id']} v{version}: {result['status']}, N={result['N']:,} D={result['D']:,} "
          f"loss={loss} ({result['wall_time']:.1f} s) -> {store.path}")
    if result["status"] != "ok":
        print(f"  {result['error']}", file=sys.stderr)
        return 1
    return 0
