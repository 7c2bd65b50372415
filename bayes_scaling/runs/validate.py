"""Validating a raw run frame into ``Runs``: every row and field checked (positive finite numbers,
plausible loss and units, flags, unique runs), each failure an ``InputError`` naming the row and
field."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import FLOPS_PER_PARAM_TOKEN
from bayes_scaling.runs.schema import (
    CANONICAL_COLUMNS,
    DEFAULT_GROUP,
    MAX_PLAUSIBLE_LOSS,
    PLAUSIBLE_N,
    PLAUSIBLE_TOKENS_PER_PARAM,
    ROLES,
    TABLE_EXPECTED,
    UNIT_CHECK_OFF,
    Runs,
    present_columns,
)

_UNITS = ((1e3, "thousands"), (1e6, "millions"), (1e9, "billions"), (1e12, "trillions"))
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", "", "nan", "none"}


def validate_runs(
    frame: pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    source_name: str = "dataframe",
    max_loss: float = MAX_PLAUSIBLE_LOSS,
    check_units: bool = True,
    require_loss: bool = True,
) -> Runs:
    """Check every row and field; return canonical ``Runs`` or raise ``InputError`` naming every bad
    row and field (the first ``MAX_PROBLEMS``). A row flagged as suspect may lack a usable loss (a run
    that diverged): its loss becomes NaN and fits leave it out, as they leave out every flagged row.
    ``require_loss=False`` (runs to predict, not to fit): the loss column and its cells may be missing (NaN)."""
    raw = frame.reset_index(drop=True)
    if raw.empty:
        raise InputError(f"{source_name}: no runs ({len(raw.columns)} columns and no rows); {TABLE_EXPECTED}")
    mapping = _resolve_columns(raw, columns or {}, source_name, require_loss)
    where = _Locator(source_name)
    out = pd.DataFrame(index=raw.index)
    flagged = _flags(raw, mapping["flagged"], where) if "flagged" in mapping else pd.Series(False, index=raw.index)

    problems = []
    out["N"] = _positive_numbers(raw, mapping["N"], where, problems)
    has_d, has_c = "D" in mapping, "C" in mapping
    if has_d:
        out["D"] = _positive_numbers(raw, mapping["D"], where, problems)
    if has_c:
        out["C"] = _positive_numbers(raw, mapping["C"], where, problems)
    if "loss" in mapping:
        # runs to predict may have no loss yet (a blank cell); a loss that is there must be a real one
        forgiven = flagged.to_numpy() | (False if require_loss else missing_cells(raw[mapping["loss"]]).to_numpy())
        out["loss"] = _positive_numbers(raw, mapping["loss"], where, problems, forgiven=forgiven)
    else:
        out["loss"] = np.nan
    _raise_problems(problems, where)
    if not has_d:
        out["D"] = out["C"] / (FLOPS_PER_PARAM_TOKEN * out["N"])
    if not has_c:
        out["C"] = FLOPS_PER_PARAM_TOKEN * out["N"] * out["D"]
    elif has_d:
        _note_compute_column(out, source_name)
    if check_units:
        check_plausible_units(out["N"].to_numpy(), out["D"].to_numpy(), where,
                              mapping["N"], mapping.get("D", mapping.get("C")), derived_d="D" not in mapping)
    too_high = out["loss"] > max_loss
    if too_high.any():
        i = int(np.flatnonzero(too_high)[0])
        raise InputError(
            f"{where.row(i)}, column '{mapping['loss']}': implausible loss {out['loss'][i]:g} "
            f"(expected a final loss in nats per token below {max_loss:g}; is it a perplexity "
            "or a sum over tokens?)"
        )

    out["group"] = _groups(raw, mapping["group"], where) if "group" in mapping else DEFAULT_GROUP
    out["source"] = raw[mapping["source"]].astype(str) if "source" in mapping else source_name
    out["run_id"] = (
        _run_ids(raw, mapping["run_id"], where)
        if "run_id" in mapping
        else [f"{source_name}:{i + 1}" for i in range(len(raw))]
    )
    out["flagged"] = flagged
    out["flag_reason"] = (
        raw[mapping["flag_reason"]].astype(str).replace({"nan": "", "None": ""})
        if "flag_reason" in mapping
        else ""
    )
    out.loc[out["flagged"] & (out["flag_reason"] == ""), "flag_reason"] = "flagged"
    no_loss = out["flagged"] & out["loss"].isna() & ~out["flag_reason"].str.endswith(NO_LOSS)  # once: tables re-read
    out.loc[no_loss, "flag_reason"] = out.loc[no_loss, "flag_reason"] + NO_LOSS
    used = set(mapping.values())
    extras = raw[[c for c in raw.columns if c not in used and c not in CANONICAL_COLUMNS]]
    shadowed = [f for f, name in mapping.items() if name != f and f in raw.columns]  # 'group' beside group=dataset
    if shadowed:  # kept under another name, not dropped
        extras = pd.concat([extras, raw[shadowed].rename(columns=lambda c: f"table_{c}")], axis=1)
    if "role" in extras:
        extras = extras.assign(role=_roles(extras["role"], where))
    _check_duplicates(out, where, extras)

    extras = extras.apply(_numeric_if_possible)
    return Runs(pd.concat([out[list(CANONICAL_COLUMNS)], extras], axis=1))


COMPUTE_TOLERANCE = 0.05  # a table's own compute column further than this from 6ND (relative) gets a note


def _note_compute_column(out: pd.DataFrame, source_name: str) -> None:
    """A table that gives both D and its own compute C keeps C as given; fits, frontiers and budgets use
    C = 6ND, so where the two differ by more than ``COMPUTE_TOLERANCE`` an ``InputWarning`` (``ComputeColumnWarning``) says so (and where)."""
    import warnings

    from bayes_scaling.errors import ComputeColumnWarning

    ratio = out["C"].to_numpy(np.float64) / (FLOPS_PER_PARAM_TOKEN * out["N"].to_numpy(np.float64) * out["D"].to_numpy(np.float64))
    off = np.flatnonzero(np.abs(ratio - 1.0) > COMPUTE_TOLERANCE)
    if off.size:
        worst = float(ratio[off[np.argmax(np.abs(np.log(ratio[off])))]])
        rows = ", ".join(str(i + 1) for i in off[:5]) + (f" and {off.size - 5} more" if off.size > 5 else "")
        warnings.warn(f"{source_name}: the compute column differs from 6ND in {off.size} row(s) ({rows}; up to "
                      f"{worst:.3g}x); it is kept as given, but fits, frontiers and budgets count compute as C = 6ND",
                      ComputeColumnWarning, stacklevel=4)


def check_plausible_units(N, D, where: _Locator, n_column: str = "N", d_column: str = "D", *,
                          derived_d: bool = False) -> None:
    """Raise ``InputError`` for the first row whose parameter count or tokens per parameter lies
    outside what any real run has (``PLAUSIBLE_N``, ``PLAUSIBLE_TOKENS_PER_PARAM``), suggesting the
    unit the numbers were probably given in (e.g. D in billions)."""
    N, D = np.asarray(N, np.float64), np.asarray(D, np.float64)
    lo_n, hi_n = PLAUSIBLE_N
    lo_r, hi_r = PLAUSIBLE_TOKENS_PER_PARAM
    bad_n = (N < lo_n) | (N > hi_n)
    ratio = D / N
    bad_r = (ratio < lo_r) | (ratio > hi_r)
    if not (bad_n.any() or bad_r.any()):
        return
    i = int(np.flatnonzero(bad_n | bad_r)[0])
    n, d = float(N[i]), float(D[i])
    d_name = f"'{d_column}'" + (" (D = C / 6N)" if derived_d else "")
    if bad_n[i]:
        side = "fewer" if n < lo_n else "more"
        what = (f"column '{n_column}': {n:g} parameters is {side} than any real training run has "
                f"(expected {lo_n:g} to {hi_n:g})")
    else:
        side = "fewer" if ratio[i] < lo_r else "more"
        what = (f"columns '{n_column}' and {d_name}: {d:g} tokens for {n:g} parameters is {ratio[i]:.3g} tokens per "
                f"parameter, {side} than any real training run (expected {lo_r:g} to {hi_r:g})")
    hint = _unit_hint(N, D, i, bad_n | bad_r, n_column, d_column if not derived_d else None)
    raise InputError(f"{where.row(i)}, {what}{'; ' + hint if hint else ''}; {UNIT_CHECK_OFF}")


def _unit_hint(N: np.ndarray, D: np.ndarray, i: int, bad: np.ndarray, n_column: str, d_column: str | None) -> str:
    """'is D in billions (2e10 tokens)?' for row ``i``: the unit of N or D that makes every implausible row
    (``bad``) a plausible run (else row i alone), the one whose median tokens per parameter over those rows is
    nearest 20 (Chinchilla's optimum) where several do: so a column of N in millions is not read as billions."""
    lo_n, hi_n = PLAUSIBLE_N
    lo_r, hi_r = PLAUSIBLE_TOKENS_PER_PARAM

    def options(n, d):
        found = []
        for n_scale, n_unit in ((1.0, None), *_UNITS):
            for d_scale, d_unit in ((1.0, None), *(_UNITS if d_column else ())):
                if n_unit is None and d_unit is None:
                    continue
                nn, dd = n * n_scale, d * d_scale
                if np.all((lo_n <= nn) & (nn <= hi_n) & (lo_r <= dd / nn) & (dd / nn <= hi_r)):
                    found.append((abs(np.log(np.median(dd / nn) / 20.0)), n_unit, d_unit, n_scale, d_scale))
        return found

    found = options(N[bad], D[bad]) or options(N[i:i + 1], D[i:i + 1])
    if not found:
        return ""
    _, n_unit, d_unit, n_scale, d_scale = min(found, key=lambda o: o[0])
    nn, dd = float(N[i]) * n_scale, float(D[i]) * d_scale
    parts = [f"'{n_column}' in {n_unit} ({nn:.3g} parameters)"] if n_unit else []
    parts += [f"'{d_column}' in {d_unit} ({dd:.3g} tokens)"] if d_unit else []
    return "is " + " and ".join(parts) + "? give plain counts"


class _Locator:
    """Names a row the way the user sees it: rows count from 1 after the header (``noun`` "point" for
    values given on the command line: "--N/--D point 2")."""

    def __init__(self, source_name: str, noun: str = "row"):
        self.source_name = source_name
        self.noun = noun

    def row(self, i: int) -> str:
        return f"{self.source_name} {self.noun} {i + 1}"


def point_locator(what: str) -> _Locator:
    """Names the i-th of points given on the command line, for ``check_plausible_units``."""
    return _Locator(what, noun="point")


def _resolve_columns(raw: pd.DataFrame, columns: Mapping[str, str], source_name: str,
                     require_loss: bool = True) -> dict[str, str]:
    unknown = set(columns) - set(CANONICAL_COLUMNS)
    if unknown:
        raise InputError(
            f"column mapping names unknown field(s) {sorted(unknown)}; "
            f"mappable fields are {', '.join(CANONICAL_COLUMNS)}"
        )
    mapping = {}
    for field in CANONICAL_COLUMNS:
        name = columns.get(field, field)
        if name in raw.columns:
            mapping[field] = name
        elif field in columns:
            raise InputError(
                f"{source_name}: column '{name}' (mapped to {field}) not found; "
                f"columns present: {present_columns(raw.columns)}"
            )
    shadowed = [(field, mapping[field]) for field in mapping if mapping[field] != field and field in raw.columns]
    for field, name in shadowed:
        if field in ("N", "D", "C", "loss") or f"table_{field}" in raw.columns:
            raise InputError(f"{source_name}: column '{name}' is mapped to {field}, and the table has a column "
                             f"'{field}' of its own; rename one of them (or map '{field}' itself)")
    present = present_columns(raw.columns)
    missing = [f"'{field}'" for field in ("N",) if field not in mapping]
    if "D" not in mapping and "C" not in mapping:
        missing.append("'D' (tokens) or 'C' (FLOPs, D = C / 6N)")
    missing += [f"'{field}'" for field in ("loss",) if field not in mapping and require_loss]
    if missing:
        separator = next((sep for sep in (";", "\t", "|") if any(sep in str(c) for c in raw.columns)), None)
        if separator is not None and len(raw.columns) <= 2:
            hint = (f"the header holds {separator!r}: is the file separated by {separator!r} rather than commas? "
                    "save it with commas (or read it with pandas, sep=..., and pass the DataFrame)")
        else:
            fields = [f for f in ("N", "D", "loss") if f not in mapping and not (f == "D" and "C" in mapping)
                      and (f != "loss" or require_loss)]
            near = {f: c for f in fields for c in map(str, raw.columns) if c.strip().lower() == f.lower()}
            names = {f: near.get(f, "your_name") for f in fields}
            hint = ("map yours with columns={" + ", ".join(f"'{f}': {names[f]!r}" for f in fields) + "} (CLI: "
                    + " ".join(f"--column '{f}={names[f]}'" if names[f] != names[f].strip() else f"--column {f}={names[f]}"
                               for f in fields) + ")")
            if near:
                hint = ("; ".join(f"column {c!r} differs from '{f}' only in case or spaces" for f, c in near.items())
                        + "; " + hint)
        raise InputError(f"{source_name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                         f"columns present: {present}; {hint}")
    if "D" in mapping and "C" in mapping and _blank(raw[mapping["D"]]).all():
        del mapping["D"]  # an empty D column beside a C column: D = C / 6N, as without it
    return mapping


def _roles(column: pd.Series, where: _Locator) -> pd.Series:
    """The ``role`` column, stripped, blank read as "run"; ``InputError`` naming the first rows whose role
    is not one of ``ROLES`` (a misspelt "brnach" would otherwise be fitted as a cosine run)."""
    values = column.where(column.notna(), "").astype(str).str.strip()
    bad = np.flatnonzero(~values.isin([*ROLES, ""]))
    if len(bad):
        rows = "; ".join(f"{where.row(int(i))}: {column.iloc[int(i)]!r}" for i in bad[:MAX_PROBLEMS])
        more = f" (and {len(bad) - MAX_PROBLEMS} more)" if len(bad) > MAX_PROBLEMS else ""
        raise InputError(f"column 'role': {rows}{more}; expected one of {', '.join(map(repr, ROLES))} "
                         "(blank for a run of its own)")
    return values.replace("", "run")


MISSING_WORDS = ("n/a", "na", "nan", "null", "none", "-")  # cells that say "no value", in any case


def missing_cells(column: pd.Series) -> pd.Series:
    """Cells that say "no value": blank, NaN, None, or one of ``MISSING_WORDS`` ("N/A", "null", ...)."""
    return _blank(column) | column.astype(str).str.strip().str.lower().isin(MISSING_WORDS)


def _blank(column: pd.Series) -> pd.Series:
    """Cells that hold nothing: NaN, None or only spaces."""
    return column.isna() | column.astype(str).str.strip().isin(["", "nan", "None"])


MAX_PROBLEMS = 5  # bad fields named in one error; the rest are counted
NO_LOSS = " (no usable loss)"  # appended to the flag_reason of a flagged row whose loss is missing or invalid


def _positive_numbers(raw: pd.DataFrame, column: str, where: _Locator, problems: list,
                      forgiven: np.ndarray | None = None) -> pd.Series:
    """The column as float64; each missing, non-numeric, infinite or non-positive value adds (row,
    message) to ``problems``, except in rows ``forgiven`` (flagged), where it becomes NaN."""
    text = raw[column]
    values = pd.to_numeric(text, errors="coerce").astype(np.float64)
    bad = ~(np.isfinite(values.to_numpy()) & (values.to_numpy() > 0))
    for i in np.flatnonzero(bad):
        if forgiven is not None and forgiven[i]:
            values.iloc[i] = np.nan
            continue
        v = values.iloc[i]
        if np.isnan(v):
            given = text.iloc[i]
            blank = given is None or (isinstance(given, float) and np.isnan(given)) or str(given).strip() in {"", "nan", "NaN"}
            what = "is missing (empty or NaN)" if blank else f"is not a number: {given!r}"
            problems.append((i, f"column '{column}' {what}; expected a positive number"))
        else:
            problems.append((i, f"column '{column}': expected a positive finite number, got {v:g}"))
    return values


def _raise_problems(problems: list, where: _Locator) -> None:
    """One ``InputError`` for every bad field found, in row order: the first in full (as a single
    problem reads), then the others (``MAX_PROBLEMS`` in all) and how many more; a row that is
    flagged may lack its loss (say so, for a run that diverged)."""
    if not problems:
        return
    problems = sorted(problems, key=lambda p: p[0])
    (first, what), rest = problems[0], problems[1:]
    text = f"{where.row(first)}, {what}"
    if rest:
        shown = "; ".join(f"row {i + 1}, {w}" for i, w in rest[: MAX_PROBLEMS - 1])
        more = len(rest) - (MAX_PROBLEMS - 1)
        text += f"; also {shown}" + (f"; and {more} more" if more > 0 else "") + f" ({len(problems)} bad fields in all)"
    if any("'loss'" in w for _, w in problems):
        text += "; a run that diverged can stay in the table with flagged=true (fits leave it out)"
    raise InputError(text)


def _run_ids(raw: pd.DataFrame, column: str, where: _Locator) -> pd.Series:
    """The run ids as text without surrounding spaces ("r3 " is run "r3"); an empty cell (blank, NaN, a
    Parquet null) is an error naming its row."""
    cells = raw[column]
    ids = cells.where(cells.notna(), "").astype(str).str.strip()
    for i, value in enumerate(ids):
        if value in {"", "nan", "None"}:
            raise InputError(f"{where.row(i)}, column '{column}' is empty; expected a run id")
    return ids


def _flags(raw: pd.DataFrame, column: str, where: _Locator) -> pd.Series:
    out = []
    for i, value in enumerate(raw[column]):
        if isinstance(value, (bool, np.bool_)):
            out.append(bool(value))
            continue
        text = str(value).strip().lower()
        if text in _TRUE:
            out.append(True)
        elif text in _FALSE:
            out.append(False)
        else:
            raise InputError(f"{where.row(i)}, column '{column}': expected true/false, got {value!r}")
    return pd.Series(out, index=raw.index, dtype=bool)


def _check_duplicates(out: pd.DataFrame, where: _Locator, extras: pd.DataFrame | None = None) -> None:
    """Reject two rows with one run_id, and two rows under generated ids that are the same run:
    same group, N and D and the same value in every other column the user gave (``extras``:
    unique tokens, a seed, ...). Rows that share (group, N, D) but differ in such a column are
    distinct runs, as in data-constrained sweeps; an exact duplicate row is still rejected."""
    same_id = out.duplicated("run_id", keep=False)
    if same_id.any():
        rows = np.flatnonzero(same_id)[:2]
        raise InputError(
            f"{where.row(rows[0])} and row {rows[1] + 1} have the same run_id "
            f"{out['run_id'][rows[0]]!r}; expected each run once"
        )
    extras = pd.DataFrame(index=out.index) if extras is None else extras.reset_index(drop=True)
    key = pd.concat([out[["group", "N", "D"]], extras.astype(str)], axis=1)
    generated = out["run_id"].str.startswith(f"{where.source_name}:")
    dup = key.duplicated(keep=False) & generated
    if dup.any():
        dup_rows = np.flatnonzero(dup)
        same = key.iloc[dup_rows].groupby(list(key.columns), sort=False, dropna=False).indices  # positions in dup_rows
        sets = sorted([int(dup_rows[i]) + 1 for i in positions] for positions in same.values())
        named = "; ".join(" and ".join(map(str, rows)) for rows in sets[:MAX_PROBLEMS])
        more = f"; and {len(sets) - MAX_PROBLEMS} more" if len(sets) > MAX_PROBLEMS else ""
        others = f" and every other column ({', '.join(map(str, extras.columns))})" if len(extras.columns) else ""
        raise InputError(
            f"{where.source_name}: {len(sets)} set{'s' if len(sets) > 1 else ''} of duplicate runs (same group, N and "
            f"D{others}): rows {named}{more}; remove the repeats, or tell them apart with a column (e.g. seed, "
            "unique tokens) or distinct run_id values"
        )


def _groups(raw: pd.DataFrame, column: str, where: _Locator) -> pd.Series:
    """The group column as text; an empty cell is an error naming its rows (it would be a group with no name).
    The words "None" or "nan" in a text file are names (a group may be called that), not empty cells."""
    cells = raw[column]
    blank = np.flatnonzero((cells.isna() | cells.astype(str).str.strip().eq("")).to_numpy())
    if len(blank):
        rows = ", ".join(str(i + 1) for i in blank[:MAX_PROBLEMS]) + (f" and {len(blank) - MAX_PROBLEMS} more"
                                                                       if len(blank) > MAX_PROBLEMS else "")
        raise InputError(f"{where.source_name} row{'s' if len(blank) > 1 else ''} {rows}, column '{column}': empty; "
                         "expected a group name in every row (or leave the column out for one group)")
    return raw[column].astype(str).str.strip()


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """A column of the user's as numbers where every value is one, else as given; values written with
    leading zeros ("007", "00501": identifiers, seeds, codes) keep the column as text, so they are kept."""
    text = column.dropna().astype(str).str.strip()
    if text.str.match(r"^[+-]?0\d").any():
        return column
    converted = pd.to_numeric(column, errors="coerce")
    return converted if converted.notna().sum() == column.notna().sum() else column
