"""``bayes-scaling train``: one training run in its own process, appended to the run store.

The run happens in ``python -m training`` (a child process): the harness trains in bf16 on one
device, while this process runs JAX in float64 with several host devices; the two settings must
never share a process. The child's progress bar streams to this terminal; its RunResult JSON comes
back through a temporary file and is appended to the store (failed runs too: they are kept, not fit).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bayes_scaling.errors import InputError
from bayes_scaling.executors.child import child_environment, train_in_subprocess

__all__ = ["child_environment", "default_store", "train_in_subprocess"]

DEFAULT_STORE = "runs.sqlite"


def default_store() -> str:
    return os.environ.get("BAYES_SCALING_STORE", DEFAULT_STORE)


def _positive_count(text: str, option: str = "") -> int:
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = -1.0
    if not (value > 0 and value != float("inf")) or value != int(value):
        raise InputError(f"{option + ': ' if option else ''}expected a positive whole number (e.g. 1e6), got {text!r}")
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
    p.add_argument("--seed", type=int, default=None, help="initialisation and data-order seed (default 0)")
    p.add_argument("--corpus", default=None, help='"stdlib" (default), a text file/folder, or a .bin token file')
    p.add_argument("--context", type=int, default=None, help="sequence length (default 128)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (default 16)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: by width)")
    p.add_argument("--compute-dtype", choices=("bfloat16", "float32"), default=None)
    p.add_argument("--checkpoint-dir", default=None, help="save checkpoints here; rerun to resume")
    p.add_argument("--group", default=None, help="group label of the run in the store")
    p.add_argument("--run-id", default=None)
    wsd = p.add_argument_group("warmup-stable-decay (docs/training.md)")
    wsd.add_argument("--schedule", choices=("cosine", "wsd"), default=None, help="learning-rate schedule (default cosine)")
    wsd.add_argument("--cooldown-fraction", type=float, default=None,
                     help="wsd: share of the updates cooling down (default 0.2); 0 = a constant-rate trunk")
    wsd.add_argument("--cooldown-shape", choices=("linear", "1-sqrt"), default=None)
    wsd.add_argument("--warmup-tokens", default=None, help="warmup length in tokens (trunk and branches must agree)")
    wsd.add_argument("--save-at-tokens", default=None, help="trunk: keep checkpoints at these token counts (comma-separated)")
    wsd.add_argument("--branch-from", default=None, help="branch: the trunk's --checkpoint-dir")
    wsd.add_argument("--branch-at-tokens", default=None, help="branch: the trunk checkpoint (token count) to cool down from")
    p.add_argument("--spec", default=None, help="extra RunSpec fields as JSON (see `python -m training --help`); a "
                                                 "field given both here and as an option must agree")
    p.set_defaults(func=_train)


def _train(args) -> int:
    spec: dict[str, Any] = {}
    if args.spec:
        try:
            spec = json.loads(args.spec)
        except json.JSONDecodeError as err:
            raise InputError(f"--spec: expected a JSON object, got {args.spec!r} ({err})") from None
        if not isinstance(spec, dict):
            raise InputError(f"--spec: expected a JSON object of RunSpec fields, got {args.spec!r}")
    given = {"params": _positive_count(args.params, "--params"), "tokens": _positive_count(args.tokens, "--tokens"),
             "seed": args.seed, "corpus": args.corpus}
    optional = {"context": args.context, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "compute_dtype": args.compute_dtype, "checkpoint_dir": args.checkpoint_dir, "group": args.group,
                "run_id": args.run_id, "schedule": args.schedule, "cooldown_fraction": args.cooldown_fraction,
                "cooldown_shape": args.cooldown_shape, "branch_from": args.branch_from}
    counts = {"warmup_tokens": args.warmup_tokens, "branch_at_tokens": args.branch_at_tokens}
    optional.update({k: _positive_count(v, f"--{k.replace('_', '-')}") for k, v in counts.items() if v is not None})
    if args.save_at_tokens is not None:
        optional["save_at_tokens"] = [_positive_count(t, "--save-at-tokens") for t in args.save_at_tokens.split(",")
                                      if t.strip()]
    options = {k: v for k, v in {**given, **optional}.items() if v is not None}
    clashes = [f"{k} (--spec {spec[k]!r}, --{k.replace('_', '-')} {v!r})" for k, v in options.items()
               if k in spec and spec[k] != v]
    if clashes:
        raise InputError(f"--spec and the options disagree on {', '.join(clashes)}: give each field once")
    spec.update(options)
    from bayes_scaling.runs.store import RunStore

    path = Path(args.store or default_store())
    new_store = not path.exists()
    store = RunStore(path)  # open first: a bad store path fails before training
    try:
        result = train_in_subprocess(spec)
    except InputError:  # a refused spec: a store this call created stays behind only if it holds runs
        if new_store and len(store) == 0:
            for suffix in ("", "-wal", "-shm", "-journal"):  # SQLite's companions of the file too
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise
    version = store.append(result, source="training")
    loss = "n/a" if result["loss"] is None else f"{result['loss']:.4f} nats/token"
    print(f"{result['run_id']} v{version}: {result['status']}, N={result['N']:,} D={result['D']:,} "
          f"loss={loss} ({result['wall_time']:.1f} s) -> {store.path}")
    if result["status"] != "ok":
        print(f"  {result['error']}", file=sys.stderr)
        return 1
    return 0
