"""The validated run table: one row per finished training run, read from a file, a run store or a
DataFrame (``load_runs``, ``read_table``).

The pieces live one concern per module, imported here so that ``bayes_scaling.runs.table`` keeps
every name it had: ``schema`` (``CANONICAL_COLUMNS``, defaults, plausible ranges, ``Runs``),
``files`` (CSV and Parquet files into raw frames), ``validate`` (``validate_runs`` and its checks)
and ``store`` (the run store). Nothing is dropped: invalid input raises an ``InputError`` naming
the row and field, and flagged rows stay in the table, visible, until a fit chooses to exclude
them (and says how many it excluded).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.runs.files import STORE_SUFFIXES, check_table_path, read_file
from bayes_scaling.runs.schema import (  # noqa: F401 -- the schema, re-exported where users import it
    CANONICAL_COLUMNS,
    DEFAULT_GROUP,
    MAX_PLAUSIBLE_LOSS,
    PLAUSIBLE_N,
    PLAUSIBLE_TOKENS_PER_PARAM,
    TABLE_EXPECTED,
    UNIT_CHECK_OFF,
    Runs,
)
from bayes_scaling.runs.store import read_store_table
from bayes_scaling.runs.validate import check_plausible_units, validate_runs  # noqa: F401 -- re-exported


def load_runs(
    source: str | Path | pd.DataFrame | dict | list,
    *,
    columns: Mapping[str, str] | None = None,
    source_name: str | None = None,
    max_loss: float = MAX_PLAUSIBLE_LOSS,
    check_units: bool = True,
    require_loss: bool = True,
) -> Runs:
    """Read and validate runs from a CSV or Parquet path, a run-store database, or a DataFrame (or what
    ``pandas.DataFrame`` makes one of: a dict of columns, a list of records).

    ``columns`` maps canonical names to the user's, e.g. ``{"N": "params", "D": "tokens",
    "group": "dataset"}``. ``check_units=False`` accepts parameter and token counts outside what
    any real training run has (see ``check_plausible_units``). ``require_loss=False``: runs to predict,
    whose loss column and cells may be missing (NaN).
    """
    if isinstance(source, (dict, list)):  # columns (dict of lists) or records (list of dicts)
        try:
            source = pd.DataFrame(source)
        except (TypeError, ValueError) as err:
            raise InputError(f"a run table given as a {type(source).__name__}: cannot be read as a table ({err}); "
                             f"{TABLE_EXPECTED}") from None
    if isinstance(source, pd.DataFrame):
        return validate_runs(source, columns=columns, source_name=source_name or "dataframe", max_loss=max_loss,
                             check_units=check_units, require_loss=require_loss)
    path = Path(source)
    frame = read_table(path)
    return validate_runs(frame, columns=columns, source_name=source_name or path.name, max_loss=max_loss,
                         check_units=check_units, require_loss=require_loss)


def as_runs(source: Runs | str | Path | pd.DataFrame) -> Runs:
    """What the fitting entry points accept: ``Runs`` as given (every row: select with ``for_fit``), or a
    DataFrame or a path, validated by ``load_runs`` (errors name the row and field, rather than failing
    deep inside a fit) and with the rows its ``flagged`` column marks (and WSD trunks) left out, as ``bayes-scaling fit``
    leaves them out (``fit_input``: an ``InputWarning`` says how many and why)."""
    return fit_input(source)[0]


def fit_input(source: Runs | str | Path | pd.DataFrame) -> tuple[Runs, pd.DataFrame | None]:
    """``as_runs``'s runs and the flagged rows it left out (None where none were, or ``Runs`` were given:
    those are fitted as they are). Leaving rows out warns (``InputWarning``) with how many and why."""
    import warnings

    from bayes_scaling.errors import InputWarning

    if isinstance(source, Runs):
        return source, None
    runs = load_runs(source)
    left_out = runs.left_out()
    if left_out.empty:
        return runs, None
    warnings.warn(runs.describe_selection(), InputWarning, stacklevel=3)
    return runs.for_fit(), left_out


def read_table(path: str | Path) -> pd.DataFrame:
    """The raw rows of a .csv, .parquet or .sqlite run table. A file that is missing, a folder,
    empty, truncated, of another kind or unparsable raises ``InputError`` naming it and saying what
    was expected; a table with a header and no rows too."""
    path, suffix, kind = check_table_path(path)
    return read_store_table(path) if suffix in STORE_SUFFIXES else read_file(path, suffix, kind)
