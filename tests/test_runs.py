"""The run table: validation errors name the row and field; nothing is dropped silently."""

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.runs import load_chinchilla, load_marin, load_runs, validate_runs


def frame(**overrides):
    base = {"N": [1e8, 2e8, 4e8], "D": [2e9, 4e9, 8e9], "loss": [3.1, 2.9, 2.7]}
    base.update(overrides)
    return pd.DataFrame(base)


def test_canonical_columns_and_derived_compute():
    runs = validate_runs(frame())
    assert list(runs.frame.columns[:9]) == ["run_id", "N", "D", "C", "loss", "group", "source", "flagged", "flag_reason"]
    assert runs.C[0] == pytest.approx(6 * 1e8 * 2e9)


def test_tokens_derived_from_flops():
    runs = validate_runs(pd.DataFrame({"N": [1e8], "C": [1.2e18], "loss": [3.0]}))
    assert runs.D[0] == pytest.approx(2e9)


def test_column_mapping_and_extras_kept():
    raw = pd.DataFrame({"params": [1e8, 2e8], "tokens": [1e9, 2e9], "val_loss": [3.0, 2.8], "lr": [1e-3, 2e-3]})
    runs = validate_runs(raw, columns={"N": "params", "D": "tokens", "loss": "val_loss"})
    assert list(runs.N) == [1e8, 2e8] and list(runs.frame["lr"]) == [1e-3, 2e-3]


@pytest.mark.parametrize(
    "data, message",
    [
        (frame().drop(columns="loss"), "missing column 'loss'"),
        (frame().drop(columns="D"), "missing column 'D' (tokens) or 'C'"),
        (frame(loss=[3.1, float("nan"), 2.7]), "row 2, column 'loss' is missing"),
        (frame(N=["1e8", "abc", "4e8"]), "row 2, column 'N' is not a number: 'abc'"),
        (frame(D=[2e9, -4e9, 8e9]), "row 2, column 'D': expected a positive finite number, got -4e+09"),
        (frame(loss=[3.1, 2.9, 270.0]), "row 3, column 'loss': implausible loss 270"),
        (frame(N=[1e8, 1e8, 4e8], D=[2e9, 2e9, 8e9]), "1 set of duplicate runs (same group, N and D): rows 1 and 2;"),
        (frame(run_id=["a", "b", "a"]), "row 1 and row 3 have the same run_id 'a'"),
        (frame(flagged=["yes", "maybe", "no"]), "row 2, column 'flagged': expected true/false"),
    ],
)
def test_bad_input_names_row_and_field(data, message):
    with pytest.raises(InputError) as err:
        validate_runs(data, source_name="runs.csv")
    assert message in str(err.value)


def test_unknown_mapping_field_is_an_error():
    with pytest.raises(InputError, match="unknown field"):
        validate_runs(frame(), columns={"params": "N"})


def test_repeats_with_distinct_run_ids_are_kept():
    runs = validate_runs(frame(N=[1e8, 1e8, 4e8], D=[2e9, 2e9, 8e9], run_id=["s0", "s1", "s2"]))
    assert len(runs) == 3


def test_csv_and_parquet_round_trip(tmp_path):
    frame().to_csv(tmp_path / "runs.csv", index=False)
    frame().to_parquet(tmp_path / "runs.parquet")
    assert len(load_runs(tmp_path / "runs.csv")) == 3
    assert len(load_runs(tmp_path / "runs.parquet")) == 3
    with pytest.raises(InputError, match="runs.csv row 2, column 'loss'"):
        frame(loss=[3.0, "", 2.0]).to_csv(tmp_path / "bad.csv", index=False)
        load_runs(tmp_path / "bad.csv", source_name="runs.csv")


def test_unsupported_file_type(tmp_path):
    (tmp_path / "runs.txt").write_text("x")
    with pytest.raises(InputError, match="expected a .csv"):
        load_runs(tmp_path / "runs.txt")


def test_chinchilla_flags_epochs_five_rows_and_keeps_them():
    runs = load_chinchilla()
    assert len(runs) == 245 and runs.n_flagged == 5
    fit = runs.for_fit()
    assert len(fit) == 240 and fit.loss.max() < 3.41
    assert "excluded 5 flagged (5 epoch2024_excluded)" in runs.describe_selection()
    assert len(runs.for_fit(include_flagged=True)) == 245


def test_marin_groups_and_flags():
    runs = load_marin()
    assert len(runs) == 258 and runs.groups == ["comma", "dclm", "nemotron"]
    assert runs.n_flagged == 19 and len(runs.for_fit()) == 239


def test_a_flagged_run_without_a_loss_stays_in_the_table_and_out_of_fits(tmp_path):
    """A run that diverged has no usable loss; flagged, it is kept (NaN loss, the reason says so), fits
    leave it out as every flagged row, and including it is an error naming it. Unflagged it is refused,
    and every bad field is named at once, in row order."""
    data = frame(loss=[3.1, float("nan"), 2.7], flagged=[False, True, False], flag_reason=["", "diverged", ""])
    runs = validate_runs(data, source_name="runs.csv")
    assert len(runs) == 3 and np.isnan(runs.loss[1]) and runs.frame["flag_reason"][1] == "diverged (no usable loss)"
    assert list(runs.for_fit().loss) == [3.1, 2.7]
    with pytest.raises(InputError, match=r"1 flagged run\(s\) have no usable loss \(runs.csv:2\)"):
        runs.for_fit(include_flagged=True)
    with pytest.raises(InputError) as err:
        validate_runs(frame(N=[1e8, 2e8, float("nan")], loss=[-1.0, 3.0, "x"]), source_name="runs.csv")
    assert str(err.value).startswith("runs.csv row 1, column 'loss': expected a positive finite number, got -1; also "
                                     "row 3, column 'N' is missing (empty or NaN)")
    assert "row 3, column 'loss' is not a number: 'x'" in str(err.value) and "(3 bad fields in all)" in str(err.value)
    assert "flagged=true" in str(err.value)  # the way to keep a diverged run


def test_a_flagged_run_without_a_loss_is_stored_as_failed(tmp_path):
    from bayes_scaling.runs.store import RunStore

    csv = tmp_path / "runs.csv"
    frame(loss=[3.1, float("nan"), 2.7], flagged=[False, True, False]).to_csv(csv, index=False)
    store = RunStore(tmp_path / "runs.sqlite")
    assert store.import_runs(csv)["new"] == 3
    assert len(store.to_frame()) == 2 and len(store.to_frame(status=None)) == 3


def _iso_frame():
    rows = []
    for C in (1e18, 3e18, 1e19, 3e19, 1e20):
        for f in np.geomspace(1 / 6, 6, 8):
            N = (C / 120) ** 0.5 * f
            D = C / (6 * N)
            rows.append({"N": N, "D": D, "loss": 1.7 + 400 / N**0.34 + 1500 / D**0.28})
    return pd.DataFrame(rows)


def test_a_column_of_n_in_millions_is_not_read_as_billions():
    frame = _iso_frame()
    with pytest.raises(InputError, match="is 'N' in millions"):
        validate_runs(frame.assign(N=frame.N / 1e6))


def test_every_missing_column_and_every_duplicate_set_is_named():
    frame = _iso_frame()
    with pytest.raises(InputError, match=r"missing columns 'N', 'D' \(tokens\) or 'C' .*, 'loss'.*--column N=your_name "
                                         r"--column D=your_name --column loss=your_name"):
        validate_runs(frame.rename(columns={"N": "params", "D": "tokens", "loss": "val_loss"}))
    with pytest.raises(InputError, match="2 sets of duplicate runs .*: rows 1 and 41; 6 and 42;"):
        validate_runs(pd.concat([frame, frame.iloc[[0, 5]]]))


def test_a_semicolon_separated_file_is_named_as_such(tmp_path):
    from bayes_scaling.runs.table import load_runs

    _iso_frame().to_csv(tmp_path / "semi.csv", sep=";", index=False)
    with pytest.raises(InputError, match="is the file separated by ';' rather than commas"):
        load_runs(tmp_path / "semi.csv")


def test_empty_group_cells_are_named_and_an_empty_d_beside_c_is_read_from_c():
    frame = _iso_frame().assign(group="a")
    frame.loc[:5, "group"] = ""
    with pytest.raises(InputError, match="rows 1, 2, 3, 4, 5 and 1 more, column 'group': empty"):
        validate_runs(frame)
    frame = _iso_frame()
    runs = validate_runs(frame.assign(C=6 * frame.N * frame.D, D=np.nan))
    np.testing.assert_allclose(runs.D, frame.D)


def test_a_flag_reason_read_back_gains_no_second_no_loss_note():
    frame = _iso_frame().assign(flagged=False, flag_reason="")
    frame.loc[3, ["flagged", "flag_reason", "loss"]] = [True, "diverged", np.nan]
    once = validate_runs(frame).frame
    assert once["flag_reason"][3] == "diverged (no usable loss)"
    again = validate_runs(once.drop(columns=["run_id", "source"])).frame  # an exported table, imported again
    assert again["flag_reason"][3] == "diverged (no usable loss)"
