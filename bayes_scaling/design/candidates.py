"""Candidate runs: the feasible (N, D) pairs a planner may propose, each with its cost in FLOPs.

A candidate is a point of a grid (``grid``: N on a log grid, or the sizes the training harness can
build, times D on a log grid) or a run of an existing dataset (``pool``, for replay). Its cost is
6 N D FLOPs by default, or what a given ``cost`` function (e.g. the harness's exact count) returns.
Candidates over the per-run cost cap are dropped; so are done and pending runs (``without``).
Each candidate has a stable key, so a state file can name it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError, InputWarning
from bayes_scaling.laws.base import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.runs.table import Runs


def flops_6nd(N, D):
    """C = 6 N D (Chinchilla's and Kaplan's convention)."""
    return FLOPS_PER_PARAM_TOKEN * np.asarray(N, np.float64) * np.asarray(D, np.float64)


@dataclass(frozen=True)
class Candidates:
    """Parallel arrays: ``N``, ``D``, ``cost`` (FLOPs) and ``keys`` (str), one entry per candidate."""

    N: np.ndarray
    D: np.ndarray
    cost: np.ndarray
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, index) -> Candidates:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Candidates(self.N[index], self.D[index], self.cost[index], tuple(self.keys[i] for i in index))

    def without(self, keys: Iterable[str]) -> Candidates:
        """The candidates whose key is not in ``keys`` (done, pending or failed runs)."""
        drop = set(keys)
        return self.take(np.array([k not in drop for k in self.keys], dtype=bool))

    def affordable(self, max_cost: float) -> Candidates:
        return self.take(self.cost <= max_cost)

    def to_dict(self) -> dict:
        return {"N": self.N.tolist(), "D": self.D.tolist(), "cost": self.cost.tolist(), "keys": list(self.keys)}

    @classmethod
    def from_dict(cls, data: dict) -> Candidates:
        return cls(np.asarray(data["N"], np.float64), np.asarray(data["D"], np.float64),
                   np.asarray(data["cost"], np.float64), tuple(data["keys"]))


def grid_key(N: float, D: float) -> str:
    return f"N{N:.4g}-D{D:.4g}"


def grid(
    *,
    N: Iterable[float] | None = None,
    n_range: tuple[float, float] = (1e7, 1e10),
    n_points: int = 20,
    d_range: tuple[float, float] = (1e8, 1e11),
    d_points: int = 20,
    max_cost: float = np.inf,
    cost: Callable | None = None,
    exclude: Iterable[str] = (),
) -> Candidates:
    """All (N, D) with N from ``N`` (e.g. the harness's buildable sizes) or a log grid over
    ``n_range``, D from a log grid over ``d_range``, and cost(N, D) <= ``max_cost``."""
    Ns = np.asarray(sorted(N), np.float64) if N is not None else _log_grid(n_range, n_points, "n_range")
    Ds = _log_grid(d_range, d_points, "d_range")
    if Ns.size == 0 or np.any(Ns <= 0):
        raise InputError("candidate sizes N must be positive")
    NN, DD = (a.ravel() for a in np.meshgrid(Ns, Ds, indexing="ij"))
    costs = np.asarray((cost or flops_6nd)(NN, DD), np.float64)
    keep = costs <= max_cost
    if not keep.any():
        raise InputError(f"no candidate run costs at most {max_cost:.3g} FLOPs; raise the cap or lower N and D")
    keys = tuple(grid_key(n, d) for n, d in zip(NN[keep], DD[keep]))
    return Candidates(NN[keep], DD[keep], costs[keep], keys).without(exclude)


def pool(runs: Runs, *, max_cost: float = np.inf, exclude: Iterable[str] = ()) -> Candidates:
    """The runs of a dataset as candidates (replay): key = run id, cost = the table's C."""
    c = Candidates(runs.N, runs.D, runs.C, tuple(str(r) for r in runs.frame["run_id"]))
    return c.affordable(max_cost).without(exclude)


def _log_grid(bounds, points: int, name: str) -> np.ndarray:
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo <= hi) or points < 1:
        raise InputError(f"{name} must be 0 < low <= high with at least one point, got {bounds} and {points}")
    return np.geomspace(lo, hi, points) if hi > lo else np.array([lo])


POOL_ALIASES = {"N": ("N", "params"), "D": ("D", "tokens"), "cost": ("cost", "C", "flops")}
COMPUTE_COLUMNS = ("C", "flops")  # cost columns in FLOPs, from which D = C / 6N where no D is given


POOL_EXPECTED = ("expected a pool of runnable runs: one run a row, with columns N (or params), D (or tokens; "
                 "or C, D = C / 6N) and optionally cost")
TARGET_EXPECTED = ("expected the target runs (--target): one run a row, with columns N (or params) and D (or tokens; "
                   "or C, D = C / 6N)")
MAX_PROBLEMS = 5  # bad fields named in one error, then how many more


def read_pool(path, check_units: bool = True, *, target: bool = False) -> tuple[Candidates, pd.DataFrame]:
    """A table of runnable runs (CSV or Parquet) as candidates, and its raw frame: columns N (or
    params), D (or tokens; without one, D = C / 6N from a column C or flops), optionally cost (or C,
    flops; default 6 N D) and run_id (the key, stripped; default N..-D..); other columns (U, ...)
    are kept in the frame. Each field comes from one column (N and params both: refused). Every bad
    field is named by row (from 1 after the header) and column, as a run table's are; a blank run_id
    too; N and D get the run tables' unit check (``check_units=False`` to skip it); rows that repeat
    a run are named. ``target``: the table is the target runs (``--target``), and its errors say so.
    Without run_id, a row's key is N..-D.. to 4 significant figures (a loop state names grid runs so), to
    10 where two distinct rows would share one."""
    from bayes_scaling.runs.files import check_table_path, read_file
    from bayes_scaling.runs.validate import _Locator, check_plausible_units

    expected = TARGET_EXPECTED if target else POOL_EXPECTED
    path, suffix, kind = check_table_path(_check_pool_path(path, expected), expected)
    frame = read_file(path, suffix, kind, expected)
    names = _pool_columns(frame, path, expected)
    values, problems = {}, []
    for field, name in names.items():
        raw = frame[name]
        column = np.asarray(pd.to_numeric(raw.replace("", np.nan), errors="coerce"), np.float64)
        for i in np.flatnonzero(~(np.isfinite(column) & (column > 0))):
            problems.append(f"row {i + 1}, column {name!r}: {str(raw.iloc[i])!r} is not a positive number")
        values[field] = column
    _raise_pool_problems(problems, path, "expected FLOPs, parameters or tokens: positive numbers")
    derived_d = "D" not in names
    if derived_d:  # D = C / 6N, as in a run table
        values["D"] = values["cost"] / flops_6nd(values["N"], 1.0)
    if check_units:
        check_plausible_units(values["N"], values["D"], _Locator(str(path)), names["N"],
                              names["cost"] if derived_d else names["D"], derived_d=derived_d)
    cost = values.get("cost", flops_6nd(values["N"], values["D"]))
    keys = _pool_run_ids(frame, path) if "run_id" in frame.columns else pool_keys(values["N"], values["D"])
    once = "a target table lists each run once" if target else "a pool lists each runnable run once"
    first = {}
    for i, key in enumerate(keys):
        if key in first:
            what = "run_id" if "run_id" in frame.columns else "(N, D)"
            raise InputError(f"{path}: rows {first[key] + 1} and {i + 1} are the same run ({what} {key!r}); {once}")
        first[key] = i
    _refuse_repeated_runs(frame, values, path, once)
    _note_cost_units(values, names, path)
    return Candidates(values["N"], values["D"], np.asarray(cost, np.float64), keys), frame


def pool_keys(N, D) -> tuple[str, ...]:
    """Keys of rows without a run_id: ``grid_key`` (4 significant figures), or 10 for rows whose N and D
    differ but round to one key there (a pool from real runs, whose D = C / 6N rarely is round)."""
    short = [grid_key(n, d) for n, d in zip(N, D)]
    exact = {}
    for key, n, d in zip(short, N, D):
        exact.setdefault(key, set()).add((float(n), float(d)))
    return tuple(f"N{n:.10g}-D{d:.10g}" if len(exact[key]) > 1 else key for key, n, d in zip(short, N, D))


def _check_pool_path(path, expected: str = POOL_EXPECTED) -> Path:
    """``path`` if it names a .csv or .parquet file; ``InputError`` saying what a pool is otherwise
    (a folder, a run store or another kind of file)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; {expected}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; {expected}, in a .csv or .parquet file")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{path}: {'the target runs' if expected == TARGET_EXPECTED else 'a pool of runs'} must be "
                         "a .csv or .parquet table, got "
                         f"'{path.suffix or 'no suffix'}' (export a run store with `runs export POOL.csv`)")
    return path


def _pool_columns(frame: pd.DataFrame, path, expected: str = POOL_EXPECTED) -> dict[str, str]:
    """The column holding each field ({"N": "params", ...}; "cost" only where given). Two columns for
    one field (N and params) are refused; so is a missing N or D (a C or flops column stands for D)."""
    names = {}
    for field, aliases in POOL_ALIASES.items():
        given = [n for n in aliases if n in frame.columns]
        if len(given) > 1:
            raise InputError(f"{path}: columns {' and '.join(map(repr, given))} both give {field}; "
                             "keep one (drop or rename the other)")
        if given:
            names[field] = given[0]
    missing = [" or ".join(POOL_ALIASES[f]) for f in ("N", "D") if f not in names
               and not (f == "D" and names.get("cost") in COMPUTE_COLUMNS)]
    if missing:
        columns = [str(c) for c in frame.columns]
        separator = next((sep for sep in (";", "\t", "|") if any(sep in c for c in columns)), None)
        hint = (f"; the header holds {separator!r}: is the file separated by {separator!r} rather than commas? "
                "save it with commas" if separator is not None and len(columns) <= 2 else "")
        raise InputError(f"{path}: no column {' and no column '.join(missing)} ({expected}); columns: "
                         f"{', '.join(columns)}{hint}")
    return names


def _pool_run_ids(frame: pd.DataFrame, path) -> tuple[str, ...]:
    """The run_id column, stripped; ``InputError`` naming the rows where it is blank (an empty cell,
    a Parquet null, NaN): a run without an id cannot be recorded."""
    ids = [("" if pd.isna(k) else str(k)).strip() for k in frame["run_id"]]
    blank = [f"row {i + 1}, column 'run_id' is empty or null ({str(frame['run_id'].iloc[i])!r})"
             for i, k in enumerate(ids) if k in ("", "nan", "NaN", "None")]
    _raise_pool_problems(blank, path, "expected a run id in every row (or leave the column out: ids N..-D..)")
    return tuple(ids)


def _raise_pool_problems(problems: list[str], path, expected: str) -> None:
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise InputError(f"{path}: " + "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
                         + f" ({expected})")


def _refuse_repeated_runs(frame: pd.DataFrame, values: dict, path, once: str = "a pool lists each runnable run once") -> None:
    """Rows under two run_ids that describe one run (the same N and D, and the same value in every
    other column but run_id and cost: a data-constrained pool's rows differ in U) are named."""
    other = [c for c in frame.columns if c not in ("run_id", *POOL_ALIASES["N"], *POOL_ALIASES["D"],
                                                      *POOL_ALIASES["cost"])]
    described = pd.DataFrame({"N": values["N"], "D": values["D"]}).join(frame[other].astype(str).reset_index(drop=True))
    repeated = described[described.duplicated(keep=False)]
    if len(repeated):
        rows = repeated.groupby(list(described.columns), sort=False).groups
        sets = [" and ".join(str(i + 1) for i in index) for index in list(rows.values())[:5]]
        raise InputError(f"{path}: rows {'; rows '.join(sets)} describe the same run (the same N and D"
                         + (f" and {', '.join(map(str, other))}" if other else "") + f") under different run_ids; {once}")


COST_RATIO_BAND = (0.1, 10.0)  # cost / 6ND outside this, for the median row: the cost is not in FLOPs


def cost_unit(candidates: Candidates) -> str:
    """'FLOPs', or 'cost units' where the median candidate's cost lies outside ``COST_RATIO_BAND`` x 6ND
    (a pool priced in GPU-hours or dollars: its budgets are in those units)."""
    ratio = float(np.median(candidates.cost / flops_6nd(candidates.N, candidates.D)))
    return "FLOPs" if COST_RATIO_BAND[0] <= ratio <= COST_RATIO_BAND[1] else "cost units"


def _note_cost_units(values: dict, names: dict, path) -> None:
    """A cost column is compared with budgets and weighs gains as it is: where its median ratio to 6ND lies
    outside ``COST_RATIO_BAND`` (GPU-hours, dollars), say that budgets are then in its units."""
    if "cost" not in values:
        return
    ratio = float(np.median(values["cost"] / flops_6nd(values["N"], values["D"])))
    if not COST_RATIO_BAND[0] <= ratio <= COST_RATIO_BAND[1]:
        warnings.warn(f"{path}: column {names['cost']!r} is not in FLOPs (its median row is {ratio:.3g} x 6ND): it is "
                      "read in its own units (GPU-hours, dollars), so budgets (--budget, --experiment-budget) are "
                      "in those units too, and the cost^gamma weighting reads it as is", InputWarning, stacklevel=3)
