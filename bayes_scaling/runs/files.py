"""Reading run-table files into raw frames: CSV and Parquet, after checking that the path is a
readable table of a known kind. A missing, empty, truncated or mislabelled file raises
``InputError`` naming it and saying what was expected. (Run-store files are read by the store,
``bayes_scaling.runs.store``; ``bayes_scaling.runs.table.read_table`` reads any of them.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayes_scaling.errors import InputError, describe_file, one_line
from bayes_scaling.runs.schema import TABLE_EXPECTED, present_columns

FILE_SUFFIXES = (".csv", ".parquet", ".pq")
STORE_SUFFIXES = (".sqlite", ".db", ".sqlite3")


def check_table_path(path: str | Path, expected: str = TABLE_EXPECTED) -> tuple[Path, str, str]:
    """``(path, suffix, kind)`` of a run-table file (.csv, .parquet or .sqlite) that exists, is a
    file and is not empty; otherwise ``InputError`` naming it and saying what was expected."""
    source, path = path, Path(path)
    if not path.exists():
        raise InputError(f"{source}: no such run table")
    if path.is_dir():
        raise InputError(f"{source}: is a folder; {expected} (.csv, .parquet or .sqlite)")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES + STORE_SUFFIXES:
        raise InputError(f"{path}: expected a .csv, .parquet or .sqlite run table, got '{suffix or 'no suffix'}'")
    kind = describe_file(path)
    if kind == "empty (0 bytes)":
        raise InputError(f"{path}: the file is empty (0 bytes); {expected}")
    return path, suffix, kind


def read_file(path: Path, suffix: str, kind: str, expected: str = TABLE_EXPECTED) -> pd.DataFrame:
    """The raw rows of a checked (``check_table_path``) .csv or .parquet file. A file of another
    kind, truncated or unparsable raises ``InputError`` ending in ``expected`` (what such a file
    should hold); a table with a header and no rows too."""
    expected_kind = "text" if suffix == ".csv" else "a Parquet file"
    if suffix == ".csv" and kind.startswith(("text in", "UTF-16")):
        raise InputError(f"{path}: {kind}; {expected}")
    if kind != expected_kind:
        raise InputError(f"{path}: not a {suffix[1:].upper()} file (it looks like {kind}); {expected}")
    try:
        if suffix == ".csv":
            _check_header(path)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: no header and no rows (blank lines only); {expected}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); save it "
                         f"as UTF-8 (CSV UTF-8 in a spreadsheet); {expected}") from None
    except (MemoryError, InputError):
        raise
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: cannot be read as CSV ({_ragged_row(err)}); {expected}") from None
    except Exception as err:  # noqa: BLE001 -- any parser failure: the file is damaged
        raise InputError(f"{path}: cannot be read as {suffix[1:].upper()} ({type(err).__name__}: "
                         f"{_short(err)}); it may be truncated or damaged; {expected}") from None
    if len(frame) == 0:
        raise InputError(f"{path}: a header ({present_columns(frame.columns)}) and no rows; {expected}")
    return frame


def _check_header(path: Path) -> None:
    """``InputError`` for a CSV header that names a column twice (pandas would rename the second 'loss.1'
    and a fit would read the first, silently)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if not name.strip():  # empty names (a spreadsheet's trailing commas) are pandas' "Unnamed: k" columns
            continue
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice in the header (columns {seen[name] + 1} and "
                             f"{i + 1}); expected each column once")
        seen[name] = i


def _ragged_row(err: Exception) -> str:
    """pandas' "Expected 5 fields in line 36, saw 6" counted as the table's rows (line 36 is row 35)."""
    import re

    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
    if not found:
        return f"{type(err).__name__}: {_short(err)}"
    fields, line, saw = map(int, found.groups())
    return (f"row {line - 1} (line {line}) has {saw} fields and the header {fields}; a comma inside a value needs "
            "quotes")


def _short(err: BaseException, limit: int = 160) -> str:
    return one_line(str(err), limit)
