"""Leave-future-out splits by compute: fit on the cheaper runs, hold out the most expensive.

Two rules, per group (each group is split on its own budgets or compute):

* IsoFLOP data (a budget column): the runs of the top ``k`` budgets are held out;
* otherwise: the runs whose compute C = 6ND exceeds the ``1 - fraction`` quantile of C are held out.

``forward_chain`` repeats the split inside the fitted runs (the top 1, 2, ..., k of their budgets,
or growing compute fractions), the folds that the extrapolation model calibrates itself on;
``split_by_axis`` holds out the largest model sizes (or token counts) instead, a fold along an axis
that no compute fold extrapolates in. A split never moves a held-out run into the fit: train and test
partition the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.runs.table import Runs

DEFAULT_TOP_BUDGETS = 3
DEFAULT_FRACTION = 0.3


@dataclass(frozen=True)
class Split:
    """Rows of one table: ``train`` fitted, ``test`` held out; ``by`` says which rule made them."""

    train: Runs
    test: Runs
    by: str  # "budget column 'budget', top 3 of 9" or "compute, top 30%"


def budget_column_of(runs: Runs, budget_column: str | None = "auto") -> str | None:
    """The column holding each run's IsoFLOP budget: ``budget_column`` if given (must exist),
    ``"budget"`` where present and ``budget_column == "auto"``, else None (split on compute)."""
    if budget_column in (None, "none"):
        return None
    if budget_column == "auto":
        if "budget" not in runs.frame.columns:
            return None
        budget_column = "budget"
    if budget_column not in runs.frame.columns:
        from bayes_scaling.runs.schema import CANONICAL_COLUMNS

        extras = [str(c) for c in runs.frame.columns if c not in CANONICAL_COLUMNS]
        raise InputError(f"budget column {budget_column!r} not in the run table; its columns beyond N, D, C and loss: "
                         f"{', '.join(extras) or 'none'}; name the column that holds each run's IsoFLOP budget, or "
                         "split on compute (--holdout-fraction F, or fraction=F) for runs without one")
    cells = runs.frame[budget_column]
    values = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if len(bad):
        shown = "; ".join(f"run {runs.frame['run_id'].iloc[i]!r}: {cells.iloc[i]!r}" for i in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InputError(f"budget column {budget_column!r} must hold positive FLOP counts in every row; {shown}{more} "
                         "(give every run its IsoFLOP budget; a column of that name that holds something else: rename it; "
                         "backtest: split on compute with --budget-column none)")
    return budget_column


MIN_RUNS_PER_BUDGET = 2.0  # an IsoFLOP budget holds a slice of runs; fewer per budget (median): not IsoFLOP budgets


def budget_column_note(runs: Runs, column: str | None) -> str | None:
    """Where ``column`` holds about one run per budget (median runs per budget value within a group below
    ``MIN_RUNS_PER_BUDGET``), a note that it does not look like IsoFLOP budgets (each run's own compute,
    say): holding out its top budgets then holds out a few single runs, and no slice yields an N_opt."""
    if column is None:
        return None
    per_budget = runs.frame.groupby(["group", column]).size()
    if np.median(per_budget) >= MIN_RUNS_PER_BUDGET:
        return None
    return (f"budget column {column!r} holds {per_budget.size} budgets for {len(runs)} runs (median "
            f"{np.median(per_budget):g} run per budget): it does not look like IsoFLOP budgets (a slice of runs "
            "at one compute each); if it is each run's own compute, pass --budget-column none (budget_column=None) "
            "to split on compute, or round the budgets to the sweep's")


def split_by_compute(
    runs: Runs,
    *,
    top_budgets: int | None = None,
    fraction: float | None = None,
    budget_column: str | None = "auto",
) -> Split:
    """Hold out each group's top ``top_budgets`` budgets (IsoFLOP data) or top ``fraction`` of
    compute. With neither given: top 3 budgets where there is a budget column, else top 30%."""
    column = budget_column_of(runs, budget_column)
    if top_budgets is not None and fraction is not None:
        raise InputError("give top_budgets or fraction, not both")
    if top_budgets is not None and column is None:
        raise InputError("top_budgets needs a budget column (IsoFLOP data); use fraction instead")
    if fraction is None and top_budgets is None:
        if column is not None:
            top_budgets = DEFAULT_TOP_BUDGETS
        else:
            fraction = DEFAULT_FRACTION
    held = np.zeros(len(runs), bool)
    frame = runs.frame
    several = frame["group"].nunique() > 1
    for group, rows in frame.groupby("group", sort=True).groups.items():
        rows = np.asarray(rows)
        if top_budgets is not None:
            levels = np.unique(frame[column].to_numpy(np.float64)[rows])
            if top_budgets < 1 or top_budgets >= len(levels):
                which = f"group {group!r}, which has" if several else "these runs, which have"
                raise InputError(f"cannot hold out the top {top_budgets} budget{'s' if top_budgets != 1 else ''} of "
                                 f"{which} {len(levels)} budget{'s' if len(levels) != 1 else ''} in column {column!r} "
                                 "(at least one must be left to fit); hold out fewer, or leave that group out")
            cut = levels[-top_budgets]
            held[rows] = frame[column].to_numpy(np.float64)[rows] >= cut
        else:
            if not 0 < fraction < 1:
                raise InputError(f"holdout fraction must lie in (0, 1), got {fraction}")
            C = runs.C[rows]
            held[rows] = C > np.quantile(C, 1 - fraction)
    by = (f"budget column {column!r}, top {top_budgets} budgets per group" if top_budgets is not None
          else f"compute, top {fraction:.0%} per group")
    train, test = Runs(frame[~held].reset_index(drop=True)), Runs(frame[held].reset_index(drop=True))
    if len(train) == 0 or len(test) == 0:
        raise InputError(f"the split ({by}) leaves {len(train)} runs to fit and {len(test)} to hold out")
    return Split(train=train, test=test, by=by)


MIN_FOLD_SIZES = 3  # distinct N, and distinct D, that a fold's fitted runs need in every group


def forward_chain(runs: Runs, *, folds: int = 3, budget_column: str | None = "auto",
                  min_train: int = 8, min_budgets: int = 2, min_sizes: int = MIN_FOLD_SIZES) -> list[Split]:
    """Leave-future-out folds inside ``runs``: hold out the top 1..``folds`` budgets (IsoFLOP
    data), else the top 10%, 20%, ... of compute; folds whose fitted part would have fewer than
    ``min_train`` runs, (IsoFLOP data) ``min_budgets`` budgets, or ``min_sizes`` distinct model
    sizes N or token counts D in a group are skipped: a law fitted to one IsoFLOP slice, or to runs
    of one or two model sizes, is not identified (E + A N^-alpha needs three distinct N to pin A and
    alpha apart from E; likewise D), and its errors say nothing about a real fit's. (Twelve Gadre
    runs, whose folds each refitted 11M-parameter runs and one or two at 79M, taught the drift an
    allocation shift of 3.5 per e-fold of compute, and the default model predicted losses 2-30x the
    truth at 79M-6.9B parameters: docs/extrapolation.md.)"""
    column = budget_column_of(runs, budget_column)
    out = []
    for k in range(1, folds + 1):
        try:
            if column is not None:
                split = split_by_compute(runs, top_budgets=k, budget_column=column)
            else:
                split = split_by_compute(runs, fraction=0.1 * k, budget_column=None)
        except InputError:
            continue
        if usable_fold(split, column, min_train=min_train, min_budgets=min_budgets, min_sizes=min_sizes):
            out.append(split)
    return out


def usable_fold(split: Split, column: str | None, *, min_train: int = 8, min_budgets: int = 2,
                min_sizes: int = MIN_FOLD_SIZES) -> bool:
    """Whether every group of a fold's fitted runs has at least ``min_train`` runs, ``min_sizes`` distinct
    N and D and (IsoFLOP data, ``column``) ``min_budgets`` budgets (``forward_chain``)."""
    fitted = split.train.frame.groupby("group")
    enough_budgets = column is None or fitted[column].nunique().min() >= min_budgets
    enough_sizes = min(fitted["N"].nunique().min(), fitted["D"].nunique().min()) >= min_sizes
    return bool(fitted.size().min() >= min_train and enough_budgets and enough_sizes)


AXIS_FRACTION = 0.1  # an axis fold holds out each group's runs at its largest sizes: at least this share of them


def split_by_axis(runs: Runs, axis: str, *, fraction: float = AXIS_FRACTION) -> Split:
    """Hold out each group's runs at its largest model sizes N (``axis`` "N") or token counts D ("D"):
    those at or above the (1 - ``fraction``) quantile of the group's values (the smallest value held
    out is one that some run has, so a grid of sizes loses its top sizes whole). A fold that
    extrapolates along that axis, where a compute split may never move beyond the fitted N or D (a
    sweep whose largest models are all among its most expensive runs)."""
    if axis not in ("N", "D"):
        raise InputError(f"axis must be 'N' or 'D', got {axis!r}")
    frame = runs.frame
    values = frame[axis].to_numpy(np.float64)
    held = np.zeros(len(runs), bool)
    for _, rows in frame.groupby("group", sort=True).groups.items():
        rows = np.asarray(rows)
        x = values[rows]
        cut = np.quantile(x, 1 - fraction, method="higher")
        if cut <= x.min():
            raise InputError(f"cannot hold out the largest {axis} of a group whose runs share one {axis}")
        held[rows] = x >= cut
    train, test = Runs(frame[~held].reset_index(drop=True)), Runs(frame[held].reset_index(drop=True))
    return Split(train=train, test=test, by=f"{axis}, runs at the largest {fraction:.0%} of {axis} per group")


# --- IsoFLOP slices of a table without a budget column ---------------------------------------------
SLICE_TOLERANCE = 1.3  # a slice's runs have C = 6ND within this factor of each other (end to end)
SLICE_MIN_RUNS = 5  # an IsoFLOP slice's fewest runs (backtest's held-out slices too)
SLICE_MIN_SPAN = 3.0  # the slice's largest N over its smallest


def infer_slices(N, D, loss, *, tolerance: float = SLICE_TOLERANCE, min_runs: int = SLICE_MIN_RUNS,
                 min_span: float = SLICE_MIN_SPAN) -> np.ndarray:
    """Each run's inferred IsoFLOP budget (NaN for runs in no slice), for one sweep of runs given
    without a budget column.

    Candidates by mode seeking on x = ln C, C = 6ND: the window [x_i - w/2, x_i + w/2] with
    w = ln ``tolerance`` that holds the most unassigned runs becomes a candidate and its runs are
    assigned; repeated while a window holds at least ``min_runs`` runs. A candidate counts as a
    slice only if its N spans at least ``min_span`` with at least 3 distinct N, and Approach 2 finds
    an interior minimum: the parabola loss = c0 + c1 ln N + c2 ln N^2 (least squares) opens upward
    (c2 > 0) with its vertex -c1 / (2 c2) strictly inside the slice's ln N range, and the run of
    lowest loss is neither its smallest nor its largest model. Its budget is the
    geometric mean of its runs' C. The rest (scatter, one-sided or flat candidates) stay runs
    without a slice."""
    N, D, loss = (np.asarray(a, np.float64) for a in (N, D, loss))
    if tolerance <= 1:
        raise InputError(f"slice tolerance must exceed 1 (a factor in compute), got {tolerance}")
    x = np.log(6.0 * N * D)
    half = np.log(tolerance) / 2
    free = np.ones(len(x), bool)
    budgets = np.full(len(x), np.nan)
    while free.sum() >= min_runs:
        inside = free[None, :] & (np.abs(x[None, :] - x[:, None]) <= half + 1e-12)  # (centre, run)
        counts = np.where(free, inside.sum(axis=1), 0)
        centre = int(np.argmax(counts))
        if counts[centre] < min_runs:
            break
        members = np.flatnonzero(inside[centre])
        free[members] = False
        n = N[members]
        if len(np.unique(n)) < 3 or n.max() / n.min() < min_span:
            continue
        ln_n, y = np.log(n), loss[members]
        c2, c1, _ = np.polyfit(ln_n - ln_n.mean(), y, 2)
        lowest = ln_n[np.argmin(y)]
        if c2 > 0 and ln_n.min() < ln_n.mean() - c1 / (2 * c2) < ln_n.max() and ln_n.min() < lowest < ln_n.max():
            budgets[members] = float(np.exp(x[members].mean()))
    return budgets


def inferred_budgets(runs: Runs, **settings) -> np.ndarray:
    """``infer_slices`` per group of ``runs``: each row's inferred budget, NaN outside slices."""
    out = np.full(len(runs), np.nan)
    for _, rows in runs.frame.groupby("group", sort=True).groups.items():
        rows = np.asarray(rows)
        out[rows] = infer_slices(runs.N[rows], runs.D[rows], runs.loss[rows], **settings)
    return out
