"""WSD roles in a run table (the thirty-second session's WSD audit): trunks are left out of fits and
named, a role that is none of run/trunk/branch is refused by its row, and a branch whose shape is
not its trunk's is refused by the field that differs (tests/training/test_training_wsd.py)."""

import warnings

import pandas as pd
import pytest

from bayes_scaling.errors import InputError, InputWarning
from bayes_scaling.runs import load_chinchilla
from bayes_scaling.runs.table import fit_input, load_runs


def _table(roles: dict[int, str]) -> pd.DataFrame:
    frame = load_chinchilla().frame.head(30).copy()
    frame["flagged"] = False
    frame["role"] = "run"
    for row, role in roles.items():
        frame.loc[row, "role"] = role
    return frame


def test_trunk_rows_are_left_out_of_fits_and_named():
    runs = load_runs(_table({3: "trunk", 4: "trunk", 5: " ", 6: None}))
    assert list(runs.frame["role"][3:7]) == ["trunk", "trunk", "run", "run"]
    assert len(runs.for_fit()) == 28 and len(runs.for_fit(include_flagged=True)) == 28
    assert list(runs.left_out()["run_id"]) == list(runs.frame["run_id"][3:5])
    assert "excluded 2 WSD trunks" in runs.describe_selection()
    with pytest.warns(InputWarning, match="2 WSD trunks"):
        fitted, left_out = fit_input(_table({3: "trunk", 4: "trunk"}))
    assert len(fitted) == 28 and len(left_out) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_input(_table({}))[1] is None


def test_an_unknown_role_is_refused_by_its_row():
    with pytest.raises(InputError, match=r"column 'role': dataframe row 8: 'brnach'; dataframe row 9: 'Branch'; "
                                         r"expected one of 'run', 'trunk', 'branch'"):
        load_runs(_table({7: "brnach", 8: "Branch"}))


def test_fit_leaves_trunks_out_and_records_them(tmp_path, capsys):
    from bayes_scaling.cli import main

    path = tmp_path / "runs.csv"
    _table({0: "trunk"}).to_csv(path, index=False)
    assert main(["fit", str(path), "--method", "map", "--out", str(tmp_path / "fit")]) == 0
    assert "using 29 of 30 runs; excluded 1 WSD trunk" in capsys.readouterr().err
    excluded = pd.read_csv(tmp_path / "fit" / "excluded_runs.csv")
    assert list(excluded["role"]) == ["trunk"]
