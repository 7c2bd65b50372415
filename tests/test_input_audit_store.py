"""Input audit of pools (``read_pool``) and ``runs import``: bad input is refused naming the file,
row and field; nothing the user gave is dropped."""

from __future__ import annotations

import pandas as pd
import pytest

from bayes_scaling.cli import main
from bayes_scaling.design.candidates import read_pool
from bayes_scaling.errors import InputError
from bayes_scaling.runs.store import RunStore


def _write(path, text):
    path.write_text(text)
    return path


# -- pools -----------------------------------------------------------------------------------------
def test_a_pool_with_a_blank_run_id_is_refused_by_row(tmp_path):
    pool = _write(tmp_path / "pool.csv", "run_id,N,D\np1,1e8,2e9\n  ,2e8,4e9\np3,3e8,6e9\n")
    with pytest.raises(InputError, match=r"pool\.csv: row 2, column 'run_id' is empty"):
        read_pool(pool)


def test_a_parquet_pool_with_a_null_run_id_is_refused_by_row(tmp_path):
    pd.DataFrame({"run_id": ["a", "b", None], "N": [1e8, 2e8, 3e8], "D": [2e9, 4e9, 6e9]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"p\.parquet: row 3, column 'run_id' is empty"):
        read_pool(tmp_path / "p.parquet")


def test_pool_run_ids_are_stripped(tmp_path):
    assert read_pool(_write(tmp_path / "a.csv", "run_id,N,D\n p1 ,1e8,2e9\n"))[0].keys == ("p1",)
    with pytest.raises(InputError, match=r"rows 1 and 2 are the same run \(run_id 'p2'\)"):
        read_pool(_write(tmp_path / "b.csv", "run_id,N,D\np2,1e8,2e9\np2 ,3e8,6e9\n"))


def test_a_pool_of_n_and_c_reads_d_as_c_over_6n(tmp_path):
    candidates = read_pool(_write(tmp_path / "nc.csv", "N,C\n1e8,1.2e18\n2e8,4.8e18\n"))[0]
    assert list(candidates.D) == pytest.approx([2e9, 4e9]) and list(candidates.cost) == pytest.approx([1.2e18, 4.8e18])
    with pytest.raises(InputError, match="no column D or tokens"):  # a cost in other units gives no D
        read_pool(_write(tmp_path / "cost.csv", "N,cost\n1e8,3\n"))


def test_a_semicolon_pool_gets_a_separator_hint(tmp_path):
    with pytest.raises(InputError, match="separated by ';' rather than commas"):
        read_pool(_write(tmp_path / "semi.csv", "N;D\n1e8;2e9\n"))


def test_two_columns_for_one_pool_field_are_refused(tmp_path):
    with pytest.raises(InputError, match="columns 'N' and 'params' both give N"):
        read_pool(_write(tmp_path / "np.csv", "N,params,D\n1e8,2e8,2e9\n"))
    with pytest.raises(InputError, match="columns 'D' and 'tokens' both give D"):
        read_pool(_write(tmp_path / "dt.csv", "N,D,tokens\n1e8,2e9,4e9\n"))


def test_a_folder_or_store_as_pool_says_csv_or_parquet(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="is a folder") as err:
        read_pool(tmp_path / "folder")
    assert ".sqlite" not in str(err.value) and ".csv or .parquet" in str(err.value)
    RunStore(tmp_path / "s.sqlite")
    with pytest.raises(InputError, match=r"must be a \.csv or \.parquet table, got '\.sqlite'"):
        read_pool(tmp_path / "s.sqlite")


def test_loop_refuses_a_pool_with_a_blank_run_id_before_planning(tmp_path, capsys):
    pool = _write(tmp_path / "pool.csv", "run_id,N,D\np1,1e8,2e9\n,2e8,4e9\n")
    assert main(["loop", "--simulate", "--candidates", str(pool), "--target-budget", "1e22",
                 "--experiment-budget", "1e20", "--state", str(tmp_path / "state")]) == 2
    assert "pool.csv: row 2, column 'run_id' is empty" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


# -- runs import -------------------------------------------------------------------------------------
def test_import_refuses_unknown_statuses_by_row(tmp_path, capsys):
    table = _write(tmp_path / "t.csv", "run_id,N,D,loss,status\nr1,1e8,2e9,3.1,ok\nr2,2e8,4e9,3.0,OK\nr3,3e8,6e9,2.9,done\n")
    store = tmp_path / "s.sqlite"
    assert main(["runs", "import", str(table), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "t.csv: row 2, column 'status': 'OK' is not one of 'ok', 'failed', 'interrupted'" in err
    assert "row 3, column 'status': 'done'" in err
    assert not store.exists()  # refused before a store is made
    with pytest.raises(InputError, match="row 2, column 'status': 'OK'"):
        RunStore(tmp_path / "api.sqlite").import_runs(table)


def test_import_of_a_status_table_names_a_bad_loss_by_row_and_value(tmp_path, capsys):
    table = _write(tmp_path / "t.csv", "run_id,N,D,loss,status\nr1,1e8,2e9,3.1,ok\nr2,2e8,4e9,abc,failed\n"
                                       "r3,3e8,6e9,-3,interrupted\nr4,4e8,8e9,,failed\nr5,5e8,1e10,abc,ok\nr6,6e8,1.2e10,,ok\n")
    assert main(["runs", "import", str(table), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    for part in ("row 2, column 'loss': 'abc' is not a positive number", "row 3, column 'loss': '-3'",
                 "row 5, column 'loss': 'abc'", "row 6, column 'loss' is empty; status 'ok' needs a loss"):
        assert part in err
    assert "row 4" not in err  # a failed run may lack its loss


def test_a_status_table_with_blank_losses_on_failed_runs_imports_whole(tmp_path):
    table = _write(tmp_path / "t.csv", "run_id,N,D,loss,status\nr1,1e8,2e9,3.1, ok\nr2,2e8,4e9,,failed\nr3,3e8,6e9,,interrupted\n")
    store = RunStore(tmp_path / "s.sqlite")
    assert store.import_runs(table)["new"] == 3
    frame = store.to_frame(status=None).set_index("run_id")
    assert list(frame["status"]) == ["ok", "failed", "interrupted"] and frame.loc["r1", "loss"] == 3.1


@pytest.mark.parametrize("name", ["version", "recorded_at", "source_path"])
def test_import_refuses_a_column_named_like_a_store_field(tmp_path, capsys, name):
    table = _write(tmp_path / "t.csv", f"run_id,N,D,loss,{name}\nr1,1e8,2e9,3.1,v2\n")
    assert main(["runs", "import", str(table), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert f"t.csv: column '{name}'" in err and f"rename the column (e.g. 'my_{name}')" in err
    assert not (tmp_path / "s.sqlite").exists()


def test_a_store_export_with_its_bookkeeping_columns_still_imports(tmp_path):
    store = RunStore(tmp_path / "a.sqlite")
    store.append_many([{"run_id": "r1", "N": 1e8, "D": 2e9, "loss": 3.0},
                       {"run_id": "r2", "N": 2e8, "D": 4e9, "loss": None, "status": "failed"}])
    store.export(tmp_path / "all.csv", status=None)
    assert {"version", "recorded_at", "source_path"} & set(pd.read_csv(tmp_path / "all.csv").columns)
    assert RunStore(tmp_path / "b.sqlite").import_runs(tmp_path / "all.csv")["new"] == 2
