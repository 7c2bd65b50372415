"""``bayes-scaling predict FIT --N ... --D ... | --runs FILE``: the predicted loss of runs not yet
trained (or of a table of runs, beside what they got), median and interval, naming the model."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bayes_scaling.cli import _common
from bayes_scaling.errors import InputError


def _counts(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers such as 1e9 or 1e9,7e10, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predicted loss at (N, D) with an interval, from a saved fit")
    p.add_argument("fit_dir", help="a directory saved by 'bayes-scaling fit' (a grouped fit: every group's)")
    p.add_argument("--N", type=_counts, action="append", metavar="PARAMS", help="parameters (repeatable, or comma-separated)")
    p.add_argument("--D", type=_counts, action="append", metavar="TOKENS", help="training tokens, one per --N value")
    p.add_argument("--runs", metavar="FILE", help="a run table (or bundled dataset name): predict each row, beside its loss where it has one "
                                                      "(a table of runs still to train may leave the loss out)")
    p.add_argument("--column", action="append", metavar="FIELD=NAME", help="with --runs: map a field to your column name")
    p.add_argument("--at", metavar="LEVEL", help="with --N/--D: predict every point at this level: a WSD fit's trunk id "
                   "(each point a branch of that trunk; a trunk the fit has not seen gets a fresh trunk effect), or a "
                   "value of the offset column of a fit with offsets (an unseen value gets a fresh offset). Without "
                   "it a WSD fit predicts cosine runs and an offsets fit a new level")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--unique-tokens", type=float, metavar="U",
                   help="a data-constrained fit: the corpus's unique tokens for the --N/--D points (with --runs, a "
                        "unique_tokens column gives each row's own, else U = this for every row)")
    p.add_argument("--no-unit-check", action="store_true",
                   help="accept parameter and token counts outside what any real run has (with --N/--D or --runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """One table per fit: a grouped fit's directory gives each group's and the population's. With --runs,
    a table whose rows name the fit's groups (its ``group`` column, or the column the fit was grouped by)
    has each group predict its own rows (a group it lacks is left out) and the population every row; a
    table without them has every member predict every row."""
    from bayes_scaling.grouped import group_column, load_fits
    from bayes_scaling.hierarchical.fit import POPULATION

    if not 0 < args.level < 1:
        raise InputError(f"--level must lie in (0, 1), got {args.level}")
    given = args.N is not None or args.D is not None
    if given == (args.runs is not None):
        raise InputError("give the points to predict with --N and --D, or a run table with --runs (one of them)")
    if args.at is not None and (args.runs is not None or not str(args.at).strip()):
        raise InputError("--at names one level for the --N/--D points (a non-empty trunk id or offset level); "
                         "with --runs each row's level is read from its own columns")
    runs = None
    if args.runs is not None:
        runs = _common.read_runs(args.runs, args.column, check_units=not args.no_unit_check, require_loss=False)
    else:
        N = np.array([v for chunk in args.N or [] for v in chunk])
        D = np.array([v for chunk in args.D or [] for v in chunk])
        if len(N) == 0 or len(N) != len(D):
            raise InputError(f"--N and --D need one value each per point, got {len(N)} N and {len(D)} D")
        if not args.no_unit_check:  # the check a run table gets (--runs): a count given in millions or billions
            from bayes_scaling.runs.validate import check_plausible_units, point_locator

            check_plausible_units(N, D, point_locator("--N/--D"), "--N", "--D")
    fits = load_fits(args.fit_dir)
    _common.warn_untrusted(fits)
    _common.check_unique_tokens(args, fits)
    if runs is not None and fits[0][0] is not None:
        runs = rows_by_group(runs, group_column(args.fit_dir), [group for group, _ in fits])
    routed = runs is not None and fits[0][0] is not None and any(group in runs.groups for group, _ in fits)
    answers = []
    for group, post in fits:
        observed = levels = rows = None
        if args.at is not None:
            levels = given_level(post, args.at, len(N), group)
        if runs is not None:
            rows = member_rows(runs, group, routed, group == POPULATION)
            if rows is None:
                _common.info(f"[{group}] {args.runs} has no rows of this group: not predicted")
                continue
            N, D, observed = runs.N[rows], runs.D[rows], runs.loss[rows]
            if not np.isfinite(observed).any():  # runs to be trained (no loss yet): predicted, nothing to compare
                observed = None
            levels = row_levels(post, runs.frame[rows].reset_index(drop=True), group)
        if hasattr(post.law, "with_unique_tokens"):
            post.law = corpus_law(post.law, args, None if runs is None else runs.frame[rows].reset_index(drop=True))
        table = post.predict_summary(N, D, level=args.level, seed=args.seed, offset_at=levels)
        if runs is not None:  # the user's ids (generated ones name the file and row) and flags, beside each row
            chosen = runs.frame[rows].reset_index(drop=True)
            table.insert(0, "run_id", chosen["run_id"].astype(str).to_numpy())
            table["flagged"] = chosen["flagged"].to_numpy(bool)
        if levels is not None:
            table["predicted_as"] = predicted_as(post, levels)
        elif runs is None and post.meta.get("offset_by") and not post.has_draws("wsd_offset"):
            # a fit with per-level offsets predicts points without --at at a new level: wider, and said so
            table["predicted_as"] = f"new level of {post.meta['offset_by']}"
            if not any("predicted_as" in earlier for _, _, earlier in answers):  # one note for every member
                _common.info(f"note: this fit has an offset per {post.meta['offset_by']!r} level; the points are "
                             "predicted at a new level (a fresh offset, a wider interval): --at LEVEL predicts them at "
                             "a fitted one")
        if observed is not None:
            table["loss"] = observed
            # a flagged run without a usable loss (NaN) is predicted, and counted neither inside nor outside
            table["inside"] = ((table["lo"] <= observed) & (observed <= table["hi"])).where(np.isfinite(observed))
        answers.append((group, post, table))
    if args.json:
        docs = [_json(args, group, post, table) for group, post, table in answers]
        _common.print_json(docs[0] if fits[0][0] is None else docs)
        return 0
    for i, (group, post, table) in enumerate(answers):
        if i:
            print()
        _print_table(args, group, post, table)
    return 0


def corpus_law(law, args: argparse.Namespace, frame: pd.DataFrame | None):
    """A data-constrained law bound to the unique tokens U of the points to predict: with --runs (``frame``:
    the rows predicted), each row's ``unique_tokens`` where the table has that column; else the one corpus of
    --unique-tokens."""
    from bayes_scaling.laws.data_constrained import UNIQUE_TOKENS_COLUMN
    from bayes_scaling.runs.table import Runs

    if frame is not None and UNIQUE_TOKENS_COLUMN in frame:
        return type(law).for_runs(Runs(frame))
    if args.unique_tokens is None:
        raise InputError("this fit's law is data-constrained: its loss depends on the corpus's unique tokens U; give "
                         "--unique-tokens U" + (f" or a {UNIQUE_TOKENS_COLUMN} column in {args.runs}" if frame is not None
                                                 else ""))
    if not args.unique_tokens > 0:
        raise InputError(f"--unique-tokens must be a positive token count, got {args.unique_tokens:g}")
    return law.with_unique_tokens(args.unique_tokens)


def rows_by_group(runs, column: str | None, groups: list[str]):
    """``runs`` with its ``group`` column taken from ``column`` (the column the grouped fit was grouped by)
    where the table has it and its ``group`` column names none of the fit's ``groups``."""
    from bayes_scaling.runs.table import Runs

    if column is None or column == "group" or column not in runs.frame.columns or any(g in runs.groups for g in groups):
        return runs
    return Runs(runs.frame.assign(group=runs.frame[column].astype(str)))


def member_rows(runs, group: str, routed: bool, population: bool):
    """The rows of ``runs`` that fit member ``group`` predicts: its own where the table names it; the
    ``population`` (a new group's law) and, in a table without the fit's group names (``routed`` False),
    every member every row; a fitted group that a table with group names lacks, None."""
    if group in runs.groups:
        return (runs.frame["group"].astype(str) == group).to_numpy()
    return slice(None) if population or not routed else None


def row_levels(post, frame: pd.DataFrame, group: str | None):
    """Each row's level for ``Posterior.predict(offset_at=...)`` (``checking.run_offset_levels``): a WSD
    fit's trunk for a branch (``role`` "branch", ``trunk_id``), a fit with offsets the row's value of its
    offset column; None for a fit without either. A table without the offset column gets a fresh offset
    per row (an unseen level), said on stderr."""
    from bayes_scaling.checking import run_offset_levels
    from bayes_scaling.runs.table import Runs

    column = post.meta.get("offset_by")
    if not post.has_draws("wsd_offset") and column is not None and column not in frame:
        _common.info(_common.group_prefix(group, post) + f"note: the fit has offsets by {column!r} and the "
                     f"table has no {column!r} column: each row is predicted at a new level (a fresh offset)")
        return None
    return run_offset_levels(post, Runs(frame))


def given_level(post, at: str, n: int, group: str | None) -> np.ndarray:
    """``--at``'s level for each of the ``n`` points; a fit with neither WSD trunks nor offsets has no
    level to put them at, and says so."""
    if not (post.has_draws("wsd_offset") or post.has_draws("offset")):
        raise InputError(_common.group_prefix(group, post) + f"--at {at}: this fit has no levels (neither "
                         "WSD trunks nor per-level offsets); leave --at out")
    if post.has_draws("offset") and not post.has_draws("wsd_offset"):
        from bayes_scaling.posterior import offset_key

        fitted = list(post.meta.get("offset_levels", []))
        if offset_key(str(at).strip()) not in set(fitted):
            _common.info(_common.group_prefix(group, post) + f"note: --at {at} is not a fitted level (fitted: "
                         f"{', '.join(fitted)}): predicted at a new level, with a fresh offset's wider interval")
    return np.full(n, str(at).strip(), dtype=object)


def predicted_as(post, levels) -> list[str]:
    """What each row was predicted as: a branch of its (fitted or new) trunk or a cosine run for a WSD
    fit, the fitted or a new level of the offsets otherwise."""
    if post.has_draws("wsd_offset"):
        trunks = set(post.meta.get("trunks", []))
        return [("cosine run" if not level else f"branch of {'fitted' if level in trunks else 'new'} trunk {level}")
                for level in levels]
    from bayes_scaling.posterior import offset_key

    fitted = set(post.meta.get("offset_levels", []))
    return [f"{'fitted' if offset_key(level) in fitted else 'new'} level {level}" for level in levels]


def _json(args: argparse.Namespace, group: str | None, post, table) -> dict:
    def value(k, v):
        if k in ("model", "predicted_as", "range", "run_id"):
            return v
        if k == "flagged":
            return bool(v)
        if k in ("inside", "loss") and pd.isna(v):  # no observed loss
            return None
        return bool(v) if k == "inside" else float(v)

    rows = [{k: value(k, v) for k, v in r.items()} for r in table.to_dict("records")]  # "range": predict_summary's
    return {**_common.group_json(group, post), "fit": str(args.fit_dir), "law": post.law.name,
            "method": post.method, "model": str(table["model"].iloc[0]), **_common.reach_json(post),
            **_common.checks_json(post), "level": args.level, "predictions": rows,
            "notes": [line.strip() for line in _common.beyond_notes(post, optima=False, points=(table["N"], table["D"]))]}


def _print_table(args: argparse.Namespace, group: str | None, post, table) -> None:
    observed = "loss" in table
    print(_common.group_prefix(group, post) + f"Predicted loss (median [{args.level:.0%} interval]; "
          f"law: {post.law.name}; model: {table['model'].iloc[0]}; fit {args.fit_dir}, {post.method})")
    ids = "run_id" in table
    width = max([6] + [len(str(i)) for i in table["run_id"]]) if ids else 0
    head = (f"{'run_id':<{width}} " if ids else "") + f"{'N':>10} {'D':>10} {'C = 6ND':>10}   {'loss':>28}"
    print(head + ("  observed" if observed else ""))
    reach = _common.Reach.of(post)
    for r in table.to_dict("records"):
        C = 6 * r["N"] * r["D"]
        line = ((f"{r['run_id']:<{width}} " if ids else "")
                + f"{_common.format_si(r['N']):>10} {_common.format_si(r['D']):>10} {C:>10.3g}"
                f"{reach.mark(r['N'], r['D']):<2} "
                f"{r['median']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]".rjust(28))
        if observed:
            line += ("  (no loss)" if pd.isna(r["inside"]) else f"  {r['loss']:.4f} ({'inside' if r['inside'] else 'outside'})")
        if r.get("flagged"):
            line += "  [flagged]"
        print(line)
    if "predicted_as" in table:
        counts = table["predicted_as"].str.replace(r" (trunk|level) .*", r" \1", regex=True).value_counts()
        print("rows predicted as: " + ", ".join(f"{kind} ({count})" for kind, count in counts.items())
              + " (--json names each row's)")
    if observed:
        scored = table["inside"].dropna()
        print(f"{scored.astype(bool).mean():.0%} of {len(scored)} runs inside their {args.level:.0%} interval"
              + (f" ({len(table) - len(scored)} without an observed loss left out)" if len(scored) < len(table) else ""))
    for line in _common.beyond_notes(post, optima=False, points=(table["N"], table["D"])):
        print(line)
