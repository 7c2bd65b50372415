"""The run store: append-only versions, the canonical frame, import/export, concurrent writers."""

import multiprocessing
import sqlite3

import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.runs.store import CANONICAL, RunStore


def _run(run_id, loss=2.5, status="ok", **extra):
    return {"run_id": run_id, "N": 1e5, "D": 2e6, "loss": loss, "status": status, "group": "g", "source": "test", **extra}


def test_rerun_appends_a_version_and_latest_shows_the_newest(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    assert store.append(_run("a", 3.0, corpus_id="stdlib", curve=[{"step": 1, "val_loss": 3.0}])) == 1
    assert store.append(_run("a", 2.9)) == 2
    assert store.append(_run("b", 2.0)) == 1
    frame = store.to_frame()
    assert list(frame.columns[: len(CANONICAL)]) == list(CANONICAL)
    assert sorted(frame["run_id"]) == ["a", "b"] and frame.set_index("run_id").loc["a", "loss"] == 2.9
    history = store.to_frame(history=True)
    assert list(history.loc[history.run_id == "a", "loss"]) == [3.0, 2.9]  # nothing overwritten
    assert store.get("a", version=1)["curve"] == [{"step": 1, "val_loss": 3.0}]
    assert frame["C"].tolist() == [6 * 1e5 * 2e6] * 2  # derived when absent
    assert "curve" not in frame.columns and len(store) == 2


def test_failed_runs_are_kept_and_listed_but_not_fit(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    store.append(_run("ok"))
    store.append(_run("bad", loss=None, status="failed", error="training loss became nan by step 3"))
    assert list(store.to_frame()["run_id"]) == ["ok"]  # status "ok" by default: what a fit may use
    everything = store.to_frame(status=None)
    assert list(everything["status"]) == ["ok", "failed"]
    assert everything.set_index("run_id").loc["bad", "error"].startswith("training loss became nan")


def test_flagging_is_a_new_version(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    store.append(_run("a"))
    assert store.flag("a", "diverged late") == 2
    row = store.to_frame().iloc[0]
    assert row["flagged"] and row["flag_reason"] == "diverged late"
    assert not store.to_frame(history=True).iloc[0]["flagged"]


def test_csv_and_parquet_round_trip_and_import(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    store.append_many([_run(f"r{i}", 2.0 + i, wall_time=1.5) for i in range(3)])
    for name in ("out.csv", "out.parquet"):
        assert store.export(tmp_path / name) == 3
        other = RunStore(tmp_path / f"{name}.sqlite")
        assert other.import_file(tmp_path / name) == 3
        a, b = store.to_frame(), other.to_frame()
        pd.testing.assert_series_equal(a["loss"], b["loss"])
        assert list(b["source"]) == ["test"] * 3 and list(b["wall_time"]) == [1.5] * 3
    with pytest.raises(InputError, match=r"expected a \.csv or \.parquet"):
        store.export(tmp_path / "out.txt")


def test_bad_records_name_the_field(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(InputError, match="field 'N' must be a positive number"):
        store.append({**_run("x"), "N": -1})
    with pytest.raises(InputError, match="status 'ok' needs a finite 'loss'"):
        store.append(_run("x", loss=float("nan")))
    with pytest.raises(InputError, match="'run_id' is missing"):
        store.append({"N": 1, "D": 1, "loss": 1})
    assert len(store) == 0


def _writer(path, worker, n, barrier):
    store = RunStore(path)
    barrier.wait()  # both processes start writing at the same moment
    for i in range(n):
        store.append(_run(f"w{worker}-{i}", loss=float(i)))
        store.append(_run("shared", loss=float(worker)))  # both writers version the same run_id


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_writer, args=(path, w, 60, barrier)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0]
    history = RunStore(path).to_frame(history=True)
    assert len(history) == 240
    shared = history[history.run_id == "shared"]
    assert sorted(shared["version"]) == list(range(1, 121))  # no version taken twice, none lost
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_store_keeps_a_branch_trunk_link_and_leaves_trunks_out_of_fits(tmp_path, capsys):
    store = RunStore(tmp_path / "runs.sqlite")
    curve = [{"step": 10, "tokens": 2560, "val_loss": 3.1}]
    store.append(_run("trunk", 3.0, role="trunk", C_own=6e5 * 2e6))
    store.append(_run("b1", 2.7, role="branch", trunk_id="trunk", branch_tokens=1.6e6, cooldown_tokens=4e5,
                      C_own=6e5 * 4e5, trunk_curve=curve))
    store.append(_run("cos", 2.7))
    record = store.get("b1")
    assert (record["trunk_id"], record["branch_tokens"], record["cooldown_tokens"]) == ("trunk", 1.6e6, 4e5)
    assert record["C_own"] == 6e5 * 4e5 and record["trunk_curve"] == curve
    assert list(store.to_frame()["run_id"]) == ["b1", "cos"]  # a trunk's constant-rate loss is not fit
    assert "trunk" in list(store.to_frame(trunks=True)["run_id"])
    assert list(store.branches("trunk")["run_id"]) == ["b1"]
    assert store.export(tmp_path / "no_trunks.csv") == 2 and store.export(tmp_path / "all.csv", trunks=True) == 3
    from bayes_scaling.cli import main

    assert main(["runs", "list", "--store", str(tmp_path / "runs.sqlite"), "--trunks"]) == 0
    assert "3 runs in" in capsys.readouterr().out
    assert main(["runs", "list", "--store", str(tmp_path / "runs.sqlite")]) == 0  # the hidden trunk is counted
    assert "2 runs in" in (out := capsys.readouterr().out) and "1 WSD trunk not listed (--trunks lists them)" in out
    assert main(["runs", "export", str(tmp_path / "again.csv"), "--store", str(tmp_path / "runs.sqlite")]) == 0
    assert "wrote 2 runs" in (out := capsys.readouterr().out) and "1 WSD trunk left out" in out
    # --group would replace the groups a table has of its own: refused, naming them
    pd.DataFrame({"N": [1e8, 2e8], "D": [2e9, 4e9], "loss": [3.1, 2.9], "group": ["a", "b"]}).to_csv(
        tmp_path / "grouped.csv", index=False)
    assert main(["runs", "import", str(tmp_path / "grouped.csv"), "--store", str(tmp_path / "runs.sqlite"),
                 "--group", "c"]) == 2
    assert "--group c: " in (err := capsys.readouterr().err) and "has its own groups ('a', 'b')" in err
    assert len(RunStore(tmp_path / "runs.sqlite").to_frame()) == 2  # nothing imported
    assert store.get("cos")["C_own"] == store.get("cos")["C"]  # a run's own cost is its whole cost
    with pytest.raises(InputError, match="'trunk_id'"):
        store.append(_run("b2", role="branch"))
    with pytest.raises(InputError, match="'role'"):
        store.append(_run("b3", role="twig"))


# The run table as schema version 1 wrote it (before the WSD columns).
_VERSION_1 = """
CREATE TABLE runs (row_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, version INTEGER NOT NULL,
    recorded_at TEXT NOT NULL, N REAL, D REAL, C REAL, loss REAL, "group" TEXT NOT NULL, source TEXT NOT NULL,
    status TEXT NOT NULL, flagged INTEGER NOT NULL DEFAULT 0, flag_reason TEXT NOT NULL DEFAULT '',
    record TEXT NOT NULL, UNIQUE (run_id, version));
CREATE VIEW latest AS SELECT r.* FROM runs r
    WHERE r.version = (SELECT MAX(version) FROM runs s WHERE s.run_id = r.run_id);
INSERT INTO runs (run_id, version, recorded_at, N, D, C, loss, "group", source, status, record)
    VALUES ('old', 1, '2026-11-28', 1e5, 2e6, 1.2e12, 2.5, 'g', 'test', 'ok', '{"run_id": "old", "seed": 3}');
"""


def test_a_version_1_store_opens_and_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_VERSION_1)
    db.close()
    store = RunStore.open(path)
    record = store.get("old")
    assert record["seed"] == 3 and record["role"] == "run" and record["C_own"] == 1.2e12 and record["trunk_id"] == ""
    assert store.append(_run("old", 2.4)) == 2 and list(store.to_frame()["loss"]) == [2.4]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (2,)
    assert RunStore.open(path).get("old", version=1)["loss"] == 2.5  # opening again changes nothing
