"""The run store: an append-only SQLite table of runs, safe with several writer processes.

* One row per *version* of a run: recording a run_id again appends version k+1; nothing is updated
  or deleted. ``latest`` (a view) holds the newest version of each run_id.
* WAL journal, a busy timeout and one short ``BEGIN IMMEDIATE`` transaction per append, so processes
  writing at once queue for a few milliseconds instead of failing or losing rows.
* The canonical columns (``run_id, N, D, C, loss, group, source, flagged, flag_reason``) and the
  status are real columns; every other field of a record (RunResult fields such as corpus_id,
  wall_time, tokens_per_s, curve, spec) is kept as JSON and flattened into the frame when scalar.

Only ``status == "ok"`` runs are meant to be fit: ``to_frame()`` returns those by default;
``to_frame(status=None)`` lists every run, failed ones included.
"""

from __future__ import annotations

import datetime
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bayes_scaling.errors import InputError

CANONICAL = ("run_id", "N", "D", "C", "loss", "group", "source", "flagged", "flag_reason")
_COLUMNS = CANONICAL + ("status",)
BUSY_TIMEOUT_MS = 60_000

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
    """``RunStore(path)``: open (creating if needed) the SQLite run store at ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise InputError(f"run store {self.path}: is a folder, expected a .sqlite file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

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
        rows = [self._row(r, source, group) for r in records]
        versions = []
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now: no two writers pick the same version
            for row in rows:
                (last,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone()
                row["version"] = last + 1
                db.execute(
                    'INSERT INTO runs (run_id, version, recorded_at, N, D, C, loss, "group", source, status, flagged, '
                    "flag_reason, record) VALUES (:run_id, :version, :recorded_at, :N, :D, :C, :loss, :group, :source, "
                    ":status, :flagged, :flag_reason, :record)",
                    row,
                )
                versions.append(row["version"])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()
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
        row = {k: data[k] for k in _COLUMNS if k != "run_id"}
        row.update(run_id=str(run_id), flagged=int(row["flagged"]), loss=loss if isinstance(loss, (int, float)) else None,
                   recorded_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
                   record=json.dumps(data, allow_nan=False, default=str))
        return row

    # -- reading ---------------------------------------------------------------------------------
    def _select(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
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

    def __len__(self) -> int:
        return self._select("SELECT COUNT(*) AS n FROM latest")[0]["n"]

    def to_frame(self, *, status: str | None = "ok", history: bool = False):
        """A pandas DataFrame: canonical columns first, then status, version, recorded_at and every
        other scalar field recorded (corpus_id, corpus_hash, wall_time, tokens_per_s, ...).

        ``status="ok"`` (default) keeps the runs a fit may use; ``status=None`` keeps all.
        ``history=True`` returns every version instead of the latest of each run.
        """
        import pandas as pd

        sql = f"SELECT * FROM {'runs' if history else 'latest'}"
        params: tuple = ()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        records = [self._record(r) for r in self._select(sql + " ORDER BY row_id", params)]
        flat = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in records]
        frame = pd.DataFrame(flat)
        lead = list(CANONICAL) + ["status", "version", "recorded_at"]
        if frame.empty:
            return pd.DataFrame(columns=lead)
        frame["flagged"] = frame["flagged"].astype(bool)
        return frame[lead + [c for c in frame.columns if c not in lead]]

    # -- import / export ---------------------------------------------------------------------------
    def import_file(self, path: str | Path, *, group: str | None = None, columns: Mapping[str, str] | None = None) -> int:
        """Append every row of a CSV or Parquet run table (validated as ``load_runs`` does); return the count.

        Rows without a ``status`` column count as "ok"; their source is the file name unless given.
        """
        from bayes_scaling.runs.table import load_runs

        path = Path(path)
        frame = load_runs(path, columns=columns).frame
        records = frame.to_dict(orient="records")
        for r in records:
            r.setdefault("status", "ok")
        self.append_many(records, group=group)
        return len(records)

    def export(self, path: str | Path, *, status: str | None = "ok", history: bool = False) -> int:
        """Write the frame (see ``to_frame``) to .csv or .parquet; return the number of rows."""
        path = Path(path)
        frame = self.to_frame(status=status, history=history)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix in (".parquet", ".pq"):
            frame.to_parquet(path, index=False)
        else:
            raise InputError(f"export path {path}: expected a .csv or .parquet file name, got '{suffix or 'no suffix'}'")
        return len(frame)
