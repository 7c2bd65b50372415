"""``bayes-scaling report DIR --out report.html [--format md]``: the report of a saved fit (of a grouped
fit's directory: one page with a part per group and the population's)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes_scaling.cli import _common
from bayes_scaling.cli.frontier import _budget
from bayes_scaling.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write an HTML (or markdown) report of a saved fit")
    p.add_argument("fit_dir", help="a directory saved by 'bayes-scaling fit' (a grouped fit: a part per group)")
    p.add_argument("--out", help="output file (default FIT_DIR/report.html, or report.md with --format md)")
    p.add_argument("--format", choices=["html", "md"], help="html (default) or md; inferred from --out's suffix")
    p.add_argument("--title", help="the report's title")
    p.add_argument("--backtest", action=argparse.BooleanOptionalAction, default=None,
                   help="include 'How far can these runs be trusted?', a leave-future-out backtest that refits "
                        "the runs once per group (default: on; --no-backtest leaves it out)")
    p.add_argument("--budget", type=_budget, action="append", metavar="C",
                   help="FLOP budget for the 'Deciding at a budget' section (repeatable; default 1e21, 1e23, 1e25)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayes_scaling.grouped import load_fits
    from bayes_scaling.report import report_format, write_grouped_report, write_report

    fmt = report_format(args.out or "report.html", args.format)
    out = Path(args.out) if args.out else Path(args.fit_dir) / f"report.{fmt}"
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out} is a directory; give a file name such as {out / ('report.' + fmt)}")
    _common.check_output_path(out, directory=False)  # before the report's backtest, not after it
    from bayes_scaling.report import DECISION_BUDGETS

    budgets = tuple(args.budget) if args.budget else DECISION_BUDGETS
    fits = load_fits(args.fit_dir)
    if any(hasattr(post.law, "with_unique_tokens") for _, post in fits):
        raise InputError(_common.DATA_CONSTRAINED.format(what="the report"))
    if fits[0][0] is None:
        post = fits[0][1]
        _common.info(f"writing the {fmt} report of {args.fit_dir} ({post.method}, {post.num_draws} draws)...")
        path = write_report(post, out, fmt=fmt, title=args.title, backtest=args.backtest, progress=True,
                            budgets=budgets)
    else:
        _common.info(f"writing the {fmt} report of the grouped fit {args.fit_dir} (a part for each of "
                     f"{', '.join(group for group, _ in fits)})...")
        path = write_grouped_report(fits, out, fmt=fmt, title=args.title, backtest=args.backtest, progress=True,
                                    budgets=budgets)
    print(f"report written to {path}")
    return 0
