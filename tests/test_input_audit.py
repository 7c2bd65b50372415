"""Run tables a new user may write (the thirty-third session's input audit): a null run id, a loss to
predict that is not a number, a mapping that would drop a column of the table's own, a header that names
a column twice, a ragged row, a file not in UTF-8, identifiers with leading zeros, a budget column with
holes, and offset cells that hold no value. Each is refused naming where, or kept as given."""

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.runs.table import load_runs


def _table() -> pd.DataFrame:
    return pd.DataFrame({"run_id": ["a", "b", "c", "d"], "N": [1e8, 2e8, 4e8, 8e8], "D": [2e9, 4e9, 8e9, 1.6e10],
                         "loss": [3.1, 2.9, 2.8, 2.7]})


def test_run_ids_null_or_padded(tmp_path):
    frame = _table()
    frame.loc[2, "run_id"] = None
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(InputError, match=r"t.parquet row 3, column 'run_id' is empty; expected a run id"):
        load_runs(tmp_path / "t.parquet")
    frame.loc[2, "run_id"] = " c "
    assert list(load_runs(frame).frame["run_id"]) == ["a", "b", "c", "d"]


def test_a_loss_to_predict_may_be_blank_but_not_wrong():
    frame = _table().astype(str)
    frame.loc[2, "loss"] = ""
    assert np.isnan(load_runs(frame, require_loss=False).loss[2])
    frame.loc[3, "loss"] = "N/A"  # a word for "no value", as in budget and offset columns
    assert np.isnan(load_runs(frame, require_loss=False).loss[3])
    frame.loc[1, "loss"] = "abc"
    with pytest.raises(InputError, match=r"row 2, column 'loss' is not a number: 'abc'"):
        load_runs(frame, require_loss=False)


def test_a_mapping_keeps_or_refuses_the_tables_own_column():
    frame = _table().assign(group="y", dataset="x")
    runs = load_runs(frame, columns={"group": "dataset"})
    assert set(runs.frame["group"]) == {"x"} and set(runs.frame["table_group"]) == {"y"}
    with pytest.raises(InputError, match=r"column 'params' is mapped to N, and the table has a column 'N' of its own"):
        load_runs(frame.assign(params=frame["N"] * 2), columns={"N": "params"})


def test_headers_ragged_rows_and_encodings_are_named(tmp_path):
    (tmp_path / "dup.csv").write_text("run_id,N,D,loss,loss\nr1,1e8,2e9,3.1,9.9\n")
    with pytest.raises(InputError, match=r"column 'loss' appears twice in the header \(columns 4 and 5\)"):
        load_runs(tmp_path / "dup.csv")
    (tmp_path / "trailing.csv").write_text("run_id,N,D,loss,,\nr1,1e8,2e9,3.1,,\nr2,2e8,4e9,2.9,,\n")  # a sheet's commas
    assert len(load_runs(tmp_path / "trailing.csv")) == 2
    (tmp_path / "rag.csv").write_text("run_id,N,D,loss\nr1,1e8,2e9,3.1\nr2,2e8,4e9,2.9,7\n")
    with pytest.raises(InputError, match=r"row 2 \(line 3\) has 5 fields and the header 4"):
        load_runs(tmp_path / "rag.csv")
    (tmp_path / "latin.csv").write_bytes(b"run_id,N,D,loss\nr\xe91,1e8,2e9,3.1\n")
    with pytest.raises(InputError, match=r"text in an encoding other than UTF-8 \(byte 0xe9 at offset 17; save it as UTF-8"):
        load_runs(tmp_path / "latin.csv")
    (tmp_path / "u16.csv").write_text("run_id,N,D,loss\nr1,1e8,2e9,3.1\n", encoding="utf-16")
    with pytest.raises(InputError, match=r"UTF-16 text \(save it as UTF-8\)"):
        load_runs(tmp_path / "u16.csv")
    late = b"run_id,N,D,loss\n" + b"".join(b"r%d,1e8,%de9,3.1\n" % (i, i + 1) for i in range(60)) + b"r\xe9,1e8,2e9,3\n"
    (tmp_path / "late.csv").write_bytes(late)
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0xe9 at offset \d+\); save it as UTF-8"):
        load_runs(tmp_path / "late.csv")
    (tmp_path / "case.csv").write_text("run_id, N,D,Loss\nr1,1e8,2e9,3.1\n")
    with pytest.raises(InputError, match=r"column ' N' differs from 'N' only in case or spaces.*--column loss=Loss"):
        load_runs(tmp_path / "case.csv")


def test_identifiers_with_leading_zeros_stay_text(tmp_path):
    _table().assign(seed=["007", "008", "009", "010"], tokens_u=["1e10"] * 4).to_csv(tmp_path / "t.csv", index=False)
    runs = load_runs(tmp_path / "t.csv")
    assert list(runs.frame["seed"]) == ["007", "008", "009", "010"] and runs.frame["tokens_u"].iloc[0] == 1e10


def test_a_budget_column_with_holes_is_named_by_run():
    from bayes_scaling.splits import budget_column_of

    frame = _table().astype(str).assign(budget=["1e18", "", "N/A", "1e19"])
    with pytest.raises(InputError, match=r"budget column 'budget' must hold positive FLOP counts in every row; "
                                         r"run 'b': ''; run 'c': 'N/A'"):
        budget_column_of(load_runs(frame))


def test_offset_cells_without_a_value_are_not_a_level():
    from bayes_scaling.hierarchical.offsets import offset_levels

    levels, index = offset_levels(pd.Series([3e18, 1e18, 3e18], name="budget"))
    assert levels == ["1e+18", "3e+18"] and list(index) == [1, 0, 1]
    with pytest.raises(InputError, match=r"offset column 'budget' has no value for runs 'b', 'c' \(' ', 'N/A'\)"):
        offset_levels(pd.Series(["1e18", " ", "N/A"], name="budget"), pd.Series(["a", "b", "c"]))


def test_the_hierarchical_model_refuses_the_data_constrained_law_before_sampling():
    """``fit --group-by`` now passes ``--law`` (it fitted Chinchilla whatever was asked); a law the model cannot
    take is refused by name instead of failing inside the sampler."""
    from bayes_scaling.hierarchical import fit_hierarchical
    from bayes_scaling.runs import load_marin

    with pytest.raises(InputError, match="law data_constrained: the hierarchical model takes laws of N and D alone"):
        fit_hierarchical(load_marin().for_fit(), law="data_constrained", num_draws=10, num_warmup=10)


def test_a_wsd_table_read_as_text_imports_and_a_refused_import_leaves_no_store(tmp_path, capsys):
    """Blank branch_tokens on non-branch rows (a table read as text gives "1.6e9" and "") import with a plain
    run's values; a value that is no number is named; a refused import into a new store leaves no file."""
    from bayes_scaling.cli import main
    from bayes_scaling.runs.store import RunStore

    (tmp_path / "wsd.csv").write_text("run_id,N,D,loss,role,trunk_id,branch_tokens,cooldown_tokens,C_own\n"
                                      "c1,1e8,2e9,3.1,run,,,,\nb1,1e8,2e9,3.0,branch,t1,1.6e9,4e8,2.4e17\n"
                                      "t1,1e8,1.6e9,3.2,trunk,,,,\n")
    assert main(["runs", "import", str(tmp_path / "wsd.csv"), "--store", str(tmp_path / "w.sqlite")]) == 0
    record = RunStore(tmp_path / "w.sqlite").get("b1")
    assert (record["trunk_id"], record["branch_tokens"], record["C_own"]) == ("t1", 1.6e9, 2.4e17)
    assert RunStore(tmp_path / "w.sqlite").get("c1")["trunk_id"] == ""
    (tmp_path / "bad.csv").write_text("run_id,N,D,loss,role,trunk_id,branch_tokens\nb1,1e8,2e9,3.0,branch,t1,lots\n")
    capsys.readouterr()
    assert main(["runs", "import", str(tmp_path / "bad.csv"), "--store", str(tmp_path / "b.sqlite")]) == 2
    assert "field 'branch_tokens' must be a non-negative number (blank for 0), got 'lots'" in capsys.readouterr().err
    assert not list(tmp_path.glob("b.sqlite*"))


def test_the_grouped_fit_refuses_what_it_cannot_take_before_any_work(capsys):
    """``fit --group-by`` and ``backtest --hierarchical`` refuse a data-constrained law and ``--init approach3``
    (the hierarchical sampler starts from each group's projection estimate) before sampling; an option of the
    hierarchical model given without --hierarchical is named as given (``--no-detrend-offsets``)."""
    from bayes_scaling.cli import main

    assert main(["fit", "marin", "--group-by", "group", "--law", "data_constrained", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "laws of N and D alone" in err and "sampling" not in err
    for command in (["fit", "marin", "--group-by", "group", "--out", "x"], ["backtest", "marin", "--group-by", "group",
                                                                            "--hierarchical"]):
        assert main([*command, "--init", "approach3"]) == 2
        assert "--init approach3: the hierarchical model starts from each group's projection" in capsys.readouterr().err
    assert main(["backtest", "marin", "--group-by", "group", "--no-detrend-offsets"]) == 2
    assert "--no-detrend-offsets sets the hierarchical model" in capsys.readouterr().err
