"""``bayes-scaling runs list|import|export``: look into and move data through the run store."""

from __future__ import annotations

from pathlib import Path

from bayes_scaling.cli.train import DEFAULT_STORE, default_store
from bayes_scaling.errors import InputError

LIST_COLUMNS = ["run_id", "version", "status", "N", "D", "loss", "group", "source", "flagged"]


def register(subparsers) -> None:
    p = subparsers.add_parser("runs", help="list, import or export the runs in a run store")
    sub = p.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    store_help = f"run store (SQLite); default $BAYES_SCALING_STORE or {DEFAULT_STORE}"

    ls = sub.add_parser("list", help="list the latest version of every run (failed ones too)")
    _selection_args(ls, store_help)
    ls.add_argument("--status", default=None, help='only runs with this status (e.g. "ok", "failed")')
    ls.set_defaults(func=_list)

    imp = sub.add_parser("import", help="append the rows of a CSV or Parquet run table")
    imp.add_argument("path", help="a .csv or .parquet file with at least N, D (or C) and loss")
    imp.add_argument("--store", default=None, help=store_help)
    imp.add_argument("--group", default=None, help="group label for every imported row")
    imp.add_argument("--column", action="append", metavar="FIELD=NAME", help="map a field to your column name, e.g. N=params")
    imp.add_argument("--no-unit-check", action="store_true",
                     help="accept parameter counts and tokens per parameter outside what any real run has")
    imp.set_defaults(func=_import)

    exp = sub.add_parser("export", help="write the store's runs to CSV or Parquet")
    exp.add_argument("path", help="output .csv or .parquet")
    _selection_args(exp, store_help)
    exp.add_argument("--all-statuses", action="store_true", help='include runs whose status is not "ok"')
    exp.set_defaults(func=_export)


def _selection_args(parser, store_help: str) -> None:
    """--store, --history and --trunks: which store and which of its rows (list and export; both count the trunks
    they leave out)."""
    parser.add_argument("--store", default=None, help=store_help)
    parser.add_argument("--history", action="store_true", help="every version, not only the latest")
    parser.add_argument("--trunks", action="store_true",
                        help="also WSD trunks (left out by default: a trunk's loss is at a constant learning rate)")


def _open(path: str | None, *, must_exist: bool):
    from bayes_scaling.runs.store import RunStore

    path = Path(path or default_store())
    if must_exist and not path.exists():
        raise InputError(f"--store {path}: no such run store")
    return RunStore(path, create=not must_exist)


def _list(args) -> int:
    import pandas as pd

    store = _open(args.store, must_exist=True)
    frame = store.to_frame(status=args.status, history=args.history, trunks=args.trunks)
    hidden = _hidden_trunks(store, len(frame), args, status=args.status)
    if frame.empty:
        print(f"{store.path}: no runs" + (f" with status {args.status!r}" if args.status else "") + hidden)
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(frame[LIST_COLUMNS].to_string(index=False))
    counts = frame["status"].value_counts().to_dict()
    print(f"{len(frame)} runs in {store.path}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + hidden)
    return 0


def _hidden_trunks(store, shown: int, args, status, verb: str = "not listed (--trunks lists them)") -> str:
    """"; 2 WSD trunks not listed (--trunks lists them)" where the selection left trunks out; "" otherwise."""
    if args.trunks:
        return ""
    hidden = len(store.to_frame(status=status, history=args.history, trunks=True)) - shown
    return f"; {hidden} WSD trunk{'s' if hidden != 1 else ''} {verb}" if hidden else ""


def _import(args) -> int:
    from bayes_scaling.cli._common import parse_column_mapping

    from bayes_scaling.runs.store import check_import_file, has_status_column
    from bayes_scaling.runs.table import load_runs

    columns = parse_column_mapping(args.column) or None
    check_import_file(args.path, columns)  # statuses, losses and reserved names, before a store is made
    runs = load_runs(args.path, columns=columns, check_units=not args.no_unit_check,  # bad rows stop before a store is
                     require_loss=not has_status_column(args.path))  # made; a failed run of an export may lack a loss
    _check_group_option(args, runs)
    new_store = not Path(args.store or default_store()).exists()
    store = _open(args.store, must_exist=False)
    try:
        counts = store.import_runs(args.path, group=args.group, columns=columns, check_units=not args.no_unit_check)
    except InputError:
        if new_store and len(store) == 0:  # a refused import leaves no empty store behind
            for suffix in ("", "-wal", "-shm"):  # SQLite's write-ahead log beside it
                Path(f"{store.path}{suffix}").unlink(missing_ok=True)
        raise
    total = sum(counts.values())
    if counts["unchanged"] == total:
        print(f"already imported: all {total} runs of {args.path} are in {store.path} unchanged; nothing written")
        return 0
    parts = [f"{counts['new']} new"] + [f"{counts[k]} {k}" for k in ("updated", "unchanged") if counts[k]]
    import numpy as np

    no_loss = int((~np.isfinite(runs.loss)).sum()) if "status" not in runs.frame else 0
    print(f"imported {counts['new'] + counts['updated']} runs from {args.path} into {store.path} ({', '.join(parts)}"
          f"; {len(store)} runs in the store)"
          + (f"; {no_loss} flagged without a usable loss, stored as failed (runs export --all-statuses lists them)"
             if no_loss else ""))
    return 0


def _check_group_option(args, runs) -> None:
    """``--group G`` on a table with groups of its own would replace them: refuse, naming the groups."""
    from bayes_scaling.runs.schema import DEFAULT_GROUP

    if args.group is None:
        return
    own = sorted(set(runs.frame["group"].astype(str)) - {DEFAULT_GROUP, str(args.group)})
    if own:
        shown = ", ".join(map(repr, own[:5])) + (f" and {len(own) - 5} more" if len(own) > 5 else "")
        raise InputError(f"--group {args.group}: {args.path} has its own groups ({shown}) in its group column, which "
                         "--group would replace; leave out --group to keep them, or drop or rename that column")


def _export(args) -> int:
    store = _open(args.store, must_exist=True)
    status = None if args.all_statuses else "ok"
    n = store.export(args.path, status=status, history=args.history, trunks=args.trunks)
    left = 0 if args.all_statuses else len(store.to_frame(status=None, history=args.history, trunks=args.trunks)) - n
    print(f"wrote {n} runs to {args.path}" + (f" ({left} not ok, failed or refused, left out: --all-statuses keeps them)"
                                               if left else "")
          + _hidden_trunks(store, n, args, status, "left out (--trunks keeps them)"))
    return 0
