"""The run store: an append-only SQLite table of runs, safe with several writer processes.

* One row per *version* of a run: recording a run_id again appends version k+1; nothing is updated
  or deleted. ``latest`` (a view) holds the newest version of each run_id.
* WAL journal, a busy timeout and one short ``BEGIN IMMEDIATE`` transaction per append, so processes
  writing at once queue for a few milliseconds instead of failing or losing rows.
* The canonical columns (``run_id, N, D, C, loss, group, source, flagged, flag_reason``) and the
  status are real columns; every other field of a record (RunResult fields such as corpus_id,
  wall_time, tokens_per_s, curve, spec) is kept as JSON and flattened into the frame when scalar.

Only ``status == "ok"`` runs are meant to be fit: ``to_frame()`` returns those by default;
``to_frame(status=None)`` lists every run, failed ones included. WSD trunks (``role == "trunk"``)
are left out unless ``trunks=True``: their loss is measured at a constant learning rate.

Schema versions (SQLite's ``user_version``): 1 (or 0), the first; 2 adds the warmup-stable-decay
columns ``role, trunk_id, branch_tokens, cooldown_tokens, C_own`` (``schema.BRANCH_COLUMNS``). Opening
a version-1 store adds them (``ALTER TABLE ... ADD COLUMN``, in one transaction), with the values of
a plain run ("run", "", 0, 0, and C for C_own); its rows and ids are kept.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayes_scaling.errors import InputError
from bayes_scaling.runs.files import STORE_SUFFIXES, check_table_path, read_file
from bayes_scaling.runs.schema import BRANCH_COLUMNS, ROLES, TABLE_EXPECTED
from bayes_scaling.runs.schema import CANONICAL_COLUMNS as CANONICAL
from bayes_scaling.runs.validate import validate_runs

if TYPE_CHECKING:
    import pandas as pd

_COLUMNS = CANONICAL + ("status",) + BRANCH_COLUMNS
STATUSES = ("ok", "failed", "interrupted")  # a run's status in an imported table ("ok": a run to fit)
RESERVED_COLUMNS = ("version", "recorded_at", "source_path")  # fields the store writes itself
BUSY_TIMEOUT_MS = 60_000
SCHEMA_VERSION = 2
# Version 2's columns, as added to a version-1 table (their defaults are a plain run's).
_BRANCH_DDL = {
    "role": "role TEXT NOT NULL DEFAULT 'run'",
    "trunk_id": "trunk_id TEXT NOT NULL DEFAULT ''",
    "branch_tokens": "branch_tokens REAL NOT NULL DEFAULT 0",
    "cooldown_tokens": "cooldown_tokens REAL NOT NULL DEFAULT 0",
    "C_own": "C_own REAL",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    row_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    N           REAL,
    D           REAL,
    C           REAL,
    loss        REAL,
    "group"     TEXT NOT NULL,
    source      TEXT NOT NULL,
    status      TEXT NOT NULL,
    flagged     INTEGER NOT NULL DEFAULT 0,
    flag_reason TEXT NOT NULL DEFAULT '',
    record      TEXT NOT NULL,
    role        TEXT NOT NULL DEFAULT 'run',
    trunk_id    TEXT NOT NULL DEFAULT '',
    branch_tokens   REAL NOT NULL DEFAULT 0,
    cooldown_tokens REAL NOT NULL DEFAULT 0,
    C_own       REAL,
    UNIQUE (run_id, version)
);
CREATE VIEW IF NOT EXISTS latest AS
    SELECT r.* FROM runs r
    WHERE r.version = (SELECT MAX(version) FROM runs s WHERE s.run_id = r.run_id);
"""


def _json_safe(value: Any) -> Any:
    """NaN/Inf -> None (JSON has neither), numpy scalars -> Python numbers, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunStore:
    """``RunStore(path)``: open the SQLite run store at ``path``, creating it where no file is.

    An existing file is never turned into a store: one that is empty (0 bytes), not SQLite (a CSV
    passed as ``--store``), a SQLite database of something else, or damaged raises ``InputError``
    naming it, and is left as it was. ``RunStore.open(path)`` also refuses a missing file.
    """

    def __init__(self, path: str | Path, *, create: bool = True):
        from bayes_scaling.errors import describe_file

        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise InputError(f"run store {self.path}: is a folder, expected a .sqlite file")
        if self.path.exists():
            kind = describe_file(self.path)
            if kind != "a SQLite database":
                raise InputError(f"run store {self.path}: not a run store (it is {kind}); expected a SQLite run "
                                 "store written by bayes-scaling; give a new path to start a store there")
            with self._guard():
                tables = {r["name"] for r in self._select("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
            if "runs" not in tables:
                if tables:
                    raise InputError(f"run store {self.path}: a SQLite database without a 'runs' table (tables: "
                                     f"{', '.join(sorted(tables)[:8])}); expected a run store written by bayes-scaling")
            else:
                self._check_columns()
            with self._guard():
                (check,) = self._select("PRAGMA quick_check(1)")[0].values()
            if check != "ok":
                raise InputError(f"run store {self.path}: the file is damaged (SQLite's check: {str(check)[:120]}); "
                                 "expected a SQLite run store written by bayes-scaling; restore it from a copy or "
                                 "recover it with the sqlite3 shell's .recover")
            if "runs" in tables:
                bad = self._select("SELECT row_id, run_id FROM runs WHERE json_valid(record) = 0 LIMIT 1")
                if bad:
                    raise InputError(f"run store {self.path}: row {bad[0]['row_id']} (run {bad[0]['run_id']!r}) has a "
                                     "damaged record (not valid JSON); expected a run store written by bayes-scaling")
        elif not create:
            raise InputError(f"run store {self.path}: no such file")
        else:
            self._create()
        with self._guard(), self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a version-1 store to ``SCHEMA_VERSION`` (see the module docstring), under the write
        lock, so two processes opening an old store at once add the columns once."""
        with self._guard():
            db = self._connect()
            try:
                (version,) = db.execute("PRAGMA user_version").fetchone()
            finally:
                db.close()
            if version >= SCHEMA_VERSION:
                return
            with self._write_transaction() as db:
                have = {r[1] for r in db.execute("PRAGMA table_info(runs)").fetchall()}
                for name, ddl in _BRANCH_DDL.items():
                    if name not in have:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {ddl}")
                db.execute("UPDATE runs SET C_own = C WHERE C_own IS NULL")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write_transaction(self):
        """One ``BEGIN IMMEDIATE`` transaction (the write lock taken at once), committed at the end
        of the block or rolled back on any error."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _create(self) -> None:
        """Write a new store next to ``path`` and link it into place in one step, so no process
        ever sees a half-made (0-byte) store; if another process was first, use its store."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.new")
        try:
            with self._guard():
                db = sqlite3.connect(tmp, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                finally:
                    db.close()  # the last connection checkpoints: the file is complete, no -wal left
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        """An existing run store; ``InputError`` if there is none at ``path``."""
        return cls(path, create=False)

    def _check_columns(self) -> None:
        with self._guard():
            have = {r["name"] for r in self._select("PRAGMA table_info(runs)")}
        missing = [c for c in ("run_id", "version", "record", "status", *CANONICAL) if c not in have]
        if missing:
            raise InputError(f"run store {self.path}: its 'runs' table lacks column(s) {', '.join(missing)}; "
                             "expected a run store written by bayes-scaling")

    @contextlib.contextmanager
    def _guard(self):
        """SQLite's errors about the file (damaged, truncated, not a database, read-only) as one
        ``InputError`` naming the store."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            raise InputError(f"run store {self.path}: {err} (the file is damaged, truncated, locked or not writable; "
                             "expected a SQLite run store written by bayes-scaling)") from None
        except json.JSONDecodeError as err:
            raise InputError(f"run store {self.path}: a run record is not valid JSON ({err}); the store is damaged") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # -- writing ---------------------------------------------------------------------------------
    def append(self, record: Mapping[str, Any] | Any, *, source: str | None = None, group: str | None = None) -> int:
        """Append one run (a RunResult, or a mapping with at least run_id, N, D, loss); return its version."""
        return self.append_many([record], source=source, group=group)[0]

    def append_many(self, records: Iterable[Mapping[str, Any] | Any], *, source: str | None = None,
                    group: str | None = None) -> list[int]:
        """Append runs in one short transaction; each run_id gets its next version number."""
        return self._append_rows([self._row(r, source, group) for r in records])

    def _append_rows(self, rows: list[dict[str, Any]], *, skip_unchanged: bool = False) -> list[int]:
        """Append rows in one transaction; with ``skip_unchanged`` a row whose run's latest version
        records the same values is not appended (its entry in the result is 0)."""
        with self._guard():
            return self._append_rows_unguarded(rows, skip_unchanged)

    def _append_rows_unguarded(self, rows: list[dict[str, Any]], skip_unchanged: bool) -> list[int]:
        versions = []
        with self._write_transaction() as db:  # the write lock: no two writers pick the same version
            for row in rows:
                (last,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone()
                if skip_unchanged and last:
                    (recorded,) = db.execute("SELECT record FROM runs WHERE run_id = ? AND version = ?",
                                             (row["run_id"], last)).fetchone()
                    if _same_record(json.loads(recorded), json.loads(row["record"])):
                        versions.append(0)
                        continue
                row["version"] = last + 1
                db.execute(
                    'INSERT INTO runs (run_id, version, recorded_at, N, D, C, loss, "group", source, status, flagged, '
                    "flag_reason, record, role, trunk_id, branch_tokens, cooldown_tokens, C_own) VALUES (:run_id, "
                    ":version, :recorded_at, :N, :D, :C, :loss, :group, :source, :status, :flagged, :flag_reason, "
                    ":record, :role, :trunk_id, :branch_tokens, :cooldown_tokens, :C_own)",
                    row,
                )
                versions.append(row["version"])
        return versions

    def flag(self, run_id: str, reason: str) -> int:
        """Append a new version of ``run_id`` marked as suspect (fits exclude flagged runs by default)."""
        return self._reversion(run_id, flagged=True, flag_reason=reason)

    def unflag(self, run_id: str) -> int:
        return self._reversion(run_id, flagged=False, flag_reason="")

    def _reversion(self, run_id: str, **changes: Any) -> int:
        record = self.get(run_id)
        record.update(changes)
        return self.append(record)

    @staticmethod
    def _row(record: Mapping[str, Any] | Any, source: str | None, group: str | None) -> dict[str, Any]:
        if hasattr(record, "to_dict") and not isinstance(record, Mapping):
            record = record.to_dict()
        data = _json_safe(dict(record))
        data.pop("version", None)
        data.pop("recorded_at", None)
        if source is not None:
            data["source"] = source
        if group is not None:
            data["group"] = group
        run_id = data.get("run_id")
        if not run_id:
            raise InputError(f"run record {str(data)[:120]}: field 'run_id' is missing or empty")
        status = str(data.get("status") or "ok")
        for name in ("N", "D"):
            if not isinstance(data.get(name), (int, float)) or data[name] <= 0:
                raise InputError(f"run {run_id}: field '{name}' must be a positive number, got {data.get(name)!r}")
        loss = data.get("loss")
        if status == "ok" and (not isinstance(loss, (int, float)) or not math.isfinite(loss)):
            raise InputError(f"run {run_id}: status 'ok' needs a finite 'loss', got {loss!r}")
        if data.get("C") is None:
            data["C"] = 6.0 * data["N"] * data["D"]
        data.update(status=status, group=str(data.get("group") or "all"), source=str(data.get("source") or "unknown"),
                    flagged=bool(data.get("flagged") or False), flag_reason=str(data.get("flag_reason") or ""))
        data.update(_branch_fields(run_id, data))
        row = {k: data[k] for k in _COLUMNS if k != "run_id"}
        row.update(run_id=str(run_id), flagged=int(row["flagged"]), loss=loss if isinstance(loss, (int, float)) else None,
                   recorded_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
                   record=json.dumps(data, allow_nan=False, default=str))
        return row

    # -- reading ---------------------------------------------------------------------------------
    def _select(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self._guard():
            db = self._connect()
            try:
                db.row_factory = sqlite3.Row
                return [dict(r) for r in db.execute(sql, params).fetchall()]
            finally:
                db.close()

    def get(self, run_id: str, version: int | None = None) -> dict[str, Any]:
        """The full record (all fields, curve included) of the latest or a given version of a run."""
        sql, params = "SELECT * FROM latest WHERE run_id = ?", (run_id,)
        if version is not None:
            sql, params = "SELECT * FROM runs WHERE run_id = ? AND version = ?", (run_id, version)
        rows = self._select(sql, params)
        if not rows:
            raise InputError(f"run store {self.path}: no run '{run_id}'" + (f" version {version}" if version else ""))
        return self._record(rows[0])

    @staticmethod
    def _record(row: dict[str, Any]) -> dict[str, Any]:
        record = json.loads(row["record"])
        record.update({k: row[k] for k in _COLUMNS}, version=row["version"], recorded_at=row["recorded_at"])
        record["flagged"] = bool(record["flagged"])
        return record

    def branches(self, trunk_id: str) -> pd.DataFrame:
        """The branches recorded for ``trunk_id`` (latest versions, any status), by branch point."""
        frame = self.to_frame(status=None)
        if frame.empty or "trunk_id" not in frame:
            return frame
        return frame[frame["trunk_id"] == trunk_id].sort_values("branch_tokens").reset_index(drop=True)

    def __len__(self) -> int:
        return self._select("SELECT COUNT(*) AS n FROM latest")[0]["n"]

    def to_frame(self, *, status: str | None = "ok", history: bool = False, trunks: bool = False):
        """A pandas DataFrame: canonical columns first, then status, version, recorded_at and every
        other scalar field recorded (role, trunk_id, corpus_id, wall_time, tokens_per_s, ...).

        ``status="ok"`` (default) keeps the runs a fit may use; ``status=None`` keeps all.
        ``history=True`` returns every version instead of the latest of each run. WSD trunks are
        left out unless ``trunks=True`` (a trunk's loss is not a finished run's).
        """
        import pandas as pd

        sql = f"SELECT * FROM {'runs' if history else 'latest'}"
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if not trunks:
            where.append("role != 'trunk'")
        if where:
            sql += " WHERE " + " AND ".join(where)
        params = tuple(params)
        with self._guard():
            records = [self._record(r) for r in self._select(sql + " ORDER BY row_id", params)]
        flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in records]
        frame = pd.DataFrame(flat)
        lead = list(CANONICAL) + ["status", "version", "recorded_at"]
        if frame.empty:
            return pd.DataFrame(columns=lead)
        frame["flagged"] = frame["flagged"].astype(bool)
        return frame[lead + [c for c in frame.columns if c not in lead]]

    # -- import / export ---------------------------------------------------------------------------
    def import_file(self, path: str | Path, *, group: str | None = None, columns: Mapping[str, str] | None = None,
                    check_units: bool = True) -> int:
        """Append every row of a CSV or Parquet run table (validated as ``load_runs`` does); return
        how many were appended (see ``import_runs``)."""
        counts = self.import_runs(path, group=group, columns=columns, check_units=check_units)
        return counts["new"] + counts["updated"]

    def import_runs(self, path: str | Path, *, group: str | None = None, columns: Mapping[str, str] | None = None,
                    check_units: bool = True) -> dict[str, int]:
        """Import a CSV or Parquet run table; return the counts ``new``, ``updated`` (a new version
        of a run already in the store) and ``unchanged`` (already there with the same values: not
        appended, so importing a file twice is idempotent).

        Rows without a ``status`` column count as "ok"; their source is the file name unless given. With
        one (``export(status=None)`` writes it), a run that is not "ok" may lack a loss, so an export of
        every status imports back whole; bad statuses and losses, and columns named like the store's own
        fields, are refused by row and column (``check_import_table``).
        Rows without a ``run_id`` get ``NAME@PATHHASH:ROW`` (``import_run_id``): the file's name, a
        hash of its full path and the row, so two files called ``runs.csv`` in different folders
        never share ids, while the same file imported again (even edited) maps onto its own runs.
        """
        path, suffix, kind = check_table_path(path)
        raw = read_store_table(path) if suffix in STORE_SUFFIXES else read_file(path, suffix, kind)
        check_import_table(raw, columns, path.name)
        # a table with a status column (an export with --all-statuses): its failed runs may have no loss; an "ok"
        # run without one is refused below (``_row``)
        frame = validate_runs(raw, columns=columns, source_name=path.name, check_units=check_units,
                              require_loss="status" not in raw.columns).frame.copy()
        given_ids = columns.get("run_id", "run_id") if columns else "run_id"
        if given_ids not in _raw_columns(path):
            frame["run_id"] = [import_run_id(path, i + 1) for i in range(len(frame))]
        frame["source_path"] = str(path.resolve())
        if "status" in frame:
            frame["status"] = frame["status"].astype(str).str.strip()
        records = frame.to_dict(orient="records")
        for r in records:  # a flagged row without a usable loss (validate_runs: NaN) is a run that failed
            r.setdefault("status", "ok" if math.isfinite(r["loss"]) else "failed")
        rows = [self._row(r, None, group) for r in records]
        versions = self._append_rows(rows, skip_unchanged=True)
        return {"new": sum(v == 1 for v in versions), "updated": sum(v > 1 for v in versions),
                "unchanged": sum(v == 0 for v in versions)}

    def export(self, path: str | Path, *, status: str | None = "ok", history: bool = False,
               trunks: bool = False) -> int:
        """Write the frame (see ``to_frame``, trunks included with ``trunks=True``) to .csv or .parquet;
        return the number of rows."""
        path = Path(path)
        frame = self.to_frame(status=status, history=history, trunks=trunks)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(path, index=False)
        else:
            raise InputError(f"export path {path}: expected a .csv or .parquet file name, got '{suffix or 'no suffix'}'")
        return len(frame)


def check_import_file(path: str | Path, columns: Mapping[str, str] | None = None) -> None:
    """``check_import_table`` on a CSV or Parquet file (a run store's own rows need no check)."""
    path, suffix, kind = check_table_path(path)
    if suffix not in STORE_SUFFIXES:
        check_import_table(read_file(path, suffix, kind), columns, path.name)


def check_import_table(raw: pd.DataFrame, columns: Mapping[str, str] | None, name: str) -> None:
    """``InputError`` naming the file, rows and columns of what an import would drop or misread: a
    column named like a field the store writes (``RESERVED_COLUMNS``; an export of a store, whose
    version and recorded_at are the store's, is re-recorded), a status not in ``STATUSES``, and in a
    table with a status column a loss that is neither blank nor a positive number, or blank where
    the status is "ok"."""
    import numpy as np
    import pandas as pd

    mapped = set((columns or {}).values())
    reserved = [c for c in RESERVED_COLUMNS if c in raw.columns and c not in mapped]
    if reserved and not _is_store_export(raw):
        raise InputError(f"{name}: column {reserved[0]!r} has the name of a field the run store writes itself "
                         f"({', '.join(RESERVED_COLUMNS)}), so its values would be lost; rename the column "
                         f"(e.g. 'my_{reserved[0]}') and import again")
    if "status" not in raw.columns:
        return
    status = raw["status"].where(raw["status"].notna(), "").astype(str).str.strip()
    problems = [(i, f"column 'status': {raw['status'].iloc[i]!r} is not one of {', '.join(map(repr, STATUSES))}")
                for i in np.flatnonzero(~status.isin(STATUSES))]
    loss_name = (columns or {}).get("loss", "loss")
    cells = raw[loss_name] if loss_name in raw.columns else pd.Series([None] * len(raw), index=raw.index)
    loss = pd.to_numeric(cells, errors="coerce").astype(np.float64).to_numpy()
    blank = (cells.isna() | cells.astype(str).str.strip().isin(["", "nan", "NaN", "None"])).to_numpy()
    for i in range(len(raw)):
        if blank[i] and status.iloc[i] == "ok":
            problems.append((i, f"column {loss_name!r} is empty; status 'ok' needs a loss"))
        elif not blank[i] and not (np.isfinite(loss[i]) and loss[i] > 0):
            problems.append((i, f"column {loss_name!r}: {cells.iloc[i]!r} is not a positive number"))
    if problems:
        shown = "; ".join(f"row {i + 1}, {what}" for i, what in sorted(problems)[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise InputError(f"{name}: {shown}{more} (expected, in a table with a status column, a status of "
                         f"{', '.join(STATUSES)} in every row and a positive loss, blank only where the status "
                         "is not 'ok')")


def _is_store_export(raw: pd.DataFrame) -> bool:
    """Whether a table is a run store's export (``RunStore.export``): whole version numbers from 1
    and ISO recorded_at times in every row."""
    import pandas as pd

    if not {"version", "recorded_at"} <= set(raw.columns):
        return False
    version = pd.to_numeric(raw["version"], errors="coerce")
    recorded = pd.to_datetime(raw["recorded_at"], errors="coerce", format="ISO8601", utc=True)
    return bool((version >= 1).all() and (version == version.round()).all() and recorded.notna().all())


def _branch_fields(run_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The WSD columns of a record (a plain run's values where it has none); ``InputError`` naming
    the field when a branch lacks its trunk or the role is unknown."""
    role = str(data.get("role") or "run")
    if role not in ROLES:
        raise InputError(f"run {run_id}: field 'role' must be one of {', '.join(ROLES)}, got {role!r}")
    trunk_id = data.get("trunk_id")
    trunk_id = "" if trunk_id is None or (isinstance(trunk_id, float) and math.isnan(trunk_id)) else str(trunk_id).strip()
    if role == "branch" and not trunk_id:
        raise InputError(f"run {run_id}: field 'trunk_id' is empty; a branch must name the trunk it resumed")
    fields = {"role": role, "trunk_id": trunk_id}
    for name in ("branch_tokens", "cooldown_tokens"):
        value = _number_or_none(data.get(name))
        if value is _NOT_A_NUMBER or (value is not None and value < 0):
            raise InputError(f"run {run_id}: field '{name}' must be a non-negative number (blank for 0), "
                             f"got {data.get(name)!r}")
        fields[name] = 0 if value is None else value
    own = _number_or_none(data.get("C_own"))
    if own is _NOT_A_NUMBER:
        raise InputError(f"run {run_id}: field 'C_own' must be a positive number of FLOPs (blank for C), "
                         f"got {data.get('C_own')!r}")
    fields["C_own"] = own if own is not None and own > 0 else data["C"]
    return fields


_NOT_A_NUMBER = object()


def _number_or_none(value):
    """A record's numeric field: the number (a table read as text gives "1.6e9"), None where it is blank
    or NaN, ``_NOT_A_NUMBER`` where it is something else."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = float(value)
        except ValueError:
            return _NOT_A_NUMBER
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return _NOT_A_NUMBER
    return value


def read_store_table(path: str | Path) -> pd.DataFrame:
    """The ``status == "ok"`` runs of the run store at ``path`` as a raw run table (see
    ``RunStore.to_frame``); ``InputError`` when it holds none."""
    frame = RunStore.open(path).to_frame(status="ok")
    if frame.empty:
        raise InputError(f"{path}: the run store holds no runs with status 'ok'; {TABLE_EXPECTED}")
    return frame


# Fields that say when or where a record was written, not what the run was: a re-import that
# differs only in these is the same run.
_BOOKKEEPING = {"recorded_at", "version", "source_path"}


def _same_record(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = (set(a) | set(b)) - _BOOKKEEPING
    return all(_json_equal(a.get(k), b.get(k)) for k in keys)


def _json_equal(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        return math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0) or x == y
    return x == y


def import_run_id(path: str | Path, row: int) -> str:
    """The id of row ``row`` (from 1) of an imported file without run ids: ``NAME@HASH:ROW``, HASH
    the first 8 hex digits of the SHA-256 of the file's absolute path."""
    path = Path(path)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.name}@{digest}:{row}"


def has_status_column(path: str | Path) -> bool:
    """Whether a run table to import carries each run's ``status`` (an export of every status does)."""
    try:
        return "status" in _raw_columns(Path(path))
    except (OSError, ValueError):
        return False


def _raw_columns(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file (already read once by ``load_runs``)."""
    import pandas as pd

    if path.suffix.lower() == ".csv":
        return [str(c) for c in pd.read_csv(path, nrows=0, dtype=str).columns]
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(CANONICAL)  # a run store: its rows carry their run ids
