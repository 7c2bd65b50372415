"""Damaged input, every reader: each case ends in one line on stderr naming the file, exit 2, no
traceback, and nothing already stored is lost or rewritten (issue 19).

The corpus comes from a seeded generator (``SEED``): every kind of file the CLI reads (CSV and
Parquet run tables, the SQLite run store, a fit directory's meta.json, posterior.nc and runs.csv,
a planner state), damaged in ways that cannot leave a valid file (emptied, truncated, foreign
bytes, a foreign format under the right name, a bad cell, a missing column or field, implausible
values). Each case runs the CLI in this process (``bayes_scaling.cli.main``) with stdout and stderr
captured. After the corpus come the cases the issue names, as regression tests.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.cli import main
from bayes_scaling.posterior import NETCDF_ENGINE
from bayes_scaling.runs.store import RunStore

SEED = 19
CASES_PER_KIND = {"csv": 80, "parquet": 50, "store": 60, "meta": 30, "posterior": 35, "fit_runs": 30, "planner": 40}

BASE = pd.DataFrame({
    "N": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 6.4e9],
    "D": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10, 1.28e11],
    "loss": [3.10, 2.95, 2.80, 2.66, 2.55, 2.46, 2.40],
})


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_clear_line(code: int, err: str, names: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}: {err!r}"
    assert len(lines) == 1, err
    assert lines[0].startswith("bayes-scaling ") and ": error: " in lines[0], lines[0]
    assert names in lines[0], f"{names!r} not named in {lines[0]!r}"
    return lines[0]


# --- valid material, made once ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def material(tmp_path_factory) -> dict[str, bytes | Path]:
    """Bytes of valid files of every kind (and a valid fit directory) that the cases damage."""
    root = tmp_path_factory.mktemp("material")
    BASE.to_csv(root / "runs.csv", index=False)
    BASE.to_parquet(root / "runs.parquet", index=False)
    store = RunStore(root / "store.sqlite")
    store.import_file(root / "runs.csv")
    foreign = root / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE photos (id INTEGER, path TEXT)")
        db.execute("INSERT INTO photos VALUES (1, 'a.jpg')")
    fit = _saved_fit(root / "fit")
    from bayes_scaling.design.candidates import grid
    from bayes_scaling.design.planner import Planner

    planner = Planner.create(root / "planner", grid(n_range=(1e7, 1e9), d_range=(1e8, 1e11), n_points=6, d_points=6,
                                                     max_cost=1e20), target_budget=1e21, experiment_budget=1e19)
    planner.ask(2)  # two pending runs in the state
    return {"root": root, "csv": (root / "runs.csv").read_bytes(), "parquet": (root / "runs.parquet").read_bytes(),
            "store": (root / "store.sqlite").read_bytes(), "foreign_sqlite": foreign.read_bytes(), "fit": fit,
            "planner": (root / "planner" / "planner.json").read_bytes()}


def _saved_fit(directory: Path) -> Path:
    """A small saved posterior (40 draws around Epoch AI's estimates) on the Chinchilla runs."""
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.laws import EPOCH_2024, Chinchilla
    from bayes_scaling.runs import load_chinchilla

    rng = np.random.default_rng(0)
    samples = {k: v * np.exp(0.01 * rng.standard_normal((2, 20))) for k, v in EPOCH_2024.items()}
    samples["sigma"] = np.full((2, 20), 0.02)
    post = build_posterior(Chinchilla(), load_chinchilla().for_fit(), samples, None, None, method="nuts", meta={})
    post.save(directory)
    return directory


# --- the damage ------------------------------------------------------------------------------------
def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _foreign(rng: random.Random, material, exclude: str) -> tuple[str, bytes]:
    kinds = {"csv": material["csv"], "parquet": material["parquet"], "sqlite": material["store"],
             "netcdf": (material["fit"] / "posterior.nc").read_bytes()[:4096],
             "gzip": gzip.compress(material["csv"]), "png": b"\x89PNG\r\n\x1a\n" + _random_bytes(rng, 200),
             "json": json.dumps({"N": [1, 2], "loss": [3]}).encode()}
    name = rng.choice(sorted(k for k in kinds if k != exclude))
    return f"foreign-{name}", kinds[name]


def damage_csv(rng: random.Random, material) -> tuple[str, bytes]:
    text = material["csv"].decode()
    header, *rows = text.strip().splitlines()
    modes = ["empty", "blank", "header_only", "garbage", "utf16", "bad_cell", "truncated", "missing_column",
             "renamed", "perplexity", "units", "duplicate", "ragged", "foreign", "nul"]
    mode = rng.choice(modes)
    if mode == "empty":
        return mode, b""
    if mode == "blank":
        return mode, b"\n" * rng.randint(1, 5) + b"  \n"
    if mode == "header_only":
        return mode, (header + "\n" * rng.randint(0, 2)).encode()
    if mode == "garbage":
        return mode, _random_bytes(rng, rng.randint(1, 3000))
    if mode == "nul":
        cut = rng.randint(1, len(text) - 1)
        return mode, (text[:cut] + "\x00" * rng.randint(1, 8) + text[cut:]).encode()
    if mode == "utf16":
        return mode, text.encode("utf-16")
    if mode == "bad_cell":
        i, j = rng.randrange(len(rows)), rng.randrange(3)
        cells = rows[i].split(",")
        cells[j] = rng.choice(["abc", "1e8x", "--", "NaN", "", "inf", "-1", "0", "1e400", "null", " ", "-inf", "1e8e9"])
        rows[i] = ",".join(cells)
        return f"{mode}", "\n".join([header, *rows]).encode()
    if mode == "truncated":  # cut the last row inside N or D: a field goes missing
        last = rows[-1]
        cut = rng.randint(0, last.index(",", last.index(",") + 1) - 1)
        return mode, ("\n".join([header, *rows[:-1], last[:cut]])).encode()
    if mode == "missing_column":
        drop = rng.choice([[0], [1], [2], [0, 1], [1, 2]])
        keep = [k for k in range(3) if k not in drop]
        lines = [",".join(np.array(line.split(","))[keep]) for line in [header, *rows]]
        return f"{mode}", "\n".join(lines).encode()
    if mode == "renamed":
        names = header.split(",")
        names[rng.randrange(3)] = rng.choice(["params", "tokens", "final_loss", "n", "Loss "])
        return mode, "\n".join([",".join(names), *rows]).encode()
    if mode == "perplexity":
        frame = BASE.assign(loss=np.exp(BASE["loss"]) * rng.uniform(10, 100))
        return mode, frame.to_csv(index=False).encode()
    if mode == "units":
        column, scale = rng.choice([("D", 1e9), ("D", 1e6), ("N", 1e6), ("N", 1e9)])
        return mode, BASE.assign(**{column: BASE[column] / scale}).to_csv(index=False).encode()
    if mode == "duplicate":
        i = rng.randrange(len(rows))
        return mode, "\n".join([header, *rows, rows[i]]).encode()
    if mode == "ragged":
        i = rng.randrange(len(rows))
        rows[i] = rows[i] + "," + ",".join(["9"] * rng.randint(1, 3))
        return mode, "\n".join([header, *rows]).encode()
    name, data = _foreign(rng, material, "csv")
    return name, data


def damage_parquet(rng: random.Random, material) -> tuple[str, bytes]:
    data = material["parquet"]
    mode = rng.choice(["empty", "truncated", "garbage", "foreign", "bad_values", "missing_column", "no_rows",
                       "lists", "nulls", "head_cut"])
    if mode == "empty":
        return mode, b""
    if mode == "truncated":
        return mode, data[: rng.randint(1, len(data) - 1)]
    if mode == "head_cut":
        return mode, data[rng.randint(1, len(data) - 8):]
    if mode == "garbage":
        return mode, b"PAR1" + _random_bytes(rng, rng.randint(0, 2000)) + b"PAR1"
    if mode == "foreign":
        return _foreign(rng, material, "parquet")
    buffer = io.BytesIO()
    if mode == "bad_values":
        column = rng.choice(["N", "D", "loss"])
        frame = BASE.astype({column: object})
        frame.loc[rng.randrange(len(frame)), column] = rng.choice(["abc", -1.0, 0.0, float("inf"), float("nan"), "1e8x"])
        frame[column] = frame[column].astype(str) if isinstance(frame[column].iloc[0], str) else frame[column]
        frame = frame.astype({column: str}) if frame[column].map(type).nunique() > 1 else frame
    elif mode == "missing_column":
        frame = BASE.drop(columns=rng.choice([["N"], ["loss"], ["D"]]))
    elif mode == "no_rows":
        frame = BASE.iloc[:0]
    elif mode == "lists":
        frame = BASE.assign(N=[[v, v] for v in BASE["N"]])
    else:
        frame = BASE.assign(**{rng.choice(["N", "D", "loss"]): None})
    frame.to_parquet(buffer, index=False)
    return mode, buffer.getvalue()


def damage_store(rng: random.Random, material, tmp: Path) -> tuple[str, bytes]:
    data = material["store"]
    mode = rng.choice(["empty", "truncated", "tiny", "magic", "csv", "parquet", "foreign_db", "no_columns",
                       "bad_record", "zero_pages", "garbage"])
    if mode == "empty":
        return mode, b""
    if mode == "truncated":  # the runs and their index live past the first page
        return mode, data[: rng.randint(4096, len(data) - 1)]
    if mode == "tiny":
        return mode, data[: rng.randint(1, 4095)]
    if mode == "magic":
        return mode, _random_bytes(rng, 16) + data[16:]
    if mode == "csv":
        return mode, material["csv"]
    if mode == "parquet":
        return mode, material["parquet"]
    if mode == "garbage":
        return mode, _random_bytes(rng, rng.randint(1, 20000))
    if mode == "foreign_db":
        return mode, material["foreign_sqlite"]
    if mode == "zero_pages":  # a page of the file overwritten with zeros
        page = rng.randrange(1, len(data) // 4096)
        return mode, data[: page * 4096] + bytes(4096) + data[(page + 1) * 4096:]
    path = tmp / f"{mode}.sqlite"
    path.write_bytes(data)
    with contextlib.closing(sqlite3.connect(path)) as db:
        if mode == "no_columns":
            db.execute("ALTER TABLE runs RENAME TO old_runs")
            db.execute("CREATE TABLE runs (run_id TEXT, x REAL)")
        else:
            db.execute("UPDATE runs SET record = ? WHERE row_id = ?", (rng.choice(["{", "not json", "[1,"]),
                                                                       rng.randint(1, len(BASE))))
        db.commit()
    return mode, path.read_bytes()


def damage_json(rng: random.Random, data: bytes, required: list[str]) -> tuple[str, bytes]:
    text = data.decode()
    mode = rng.choice(["empty", "truncated", "garbage", "list", "missing", "wrong_type", "binary", "null"])
    if mode == "empty":
        return mode, b""
    if mode == "truncated":  # every proper prefix of a JSON object is invalid JSON
        return mode, text[: rng.randint(1, len(text.rstrip()) - 1)].encode()
    if mode == "garbage":
        return mode, ("{" + "".join(rng.choice("ab:,[]{}\"1 ") for _ in range(rng.randint(1, 80)))).encode()
    if mode == "list":
        return mode, b"[1, 2, 3]"
    if mode == "null":
        return mode, b"null"
    if mode == "binary":
        return mode, b"\xff\xfe" + _random_bytes(rng, rng.randint(1, 500))
    obj = json.loads(text)
    key = rng.choice(required)
    if mode == "missing":
        del obj[key]
    else:
        obj[key] = rng.choice([12, "nonsense", [1, 2], None, {"x": 1}])
    return f"{mode}-{key}", json.dumps(obj).encode()


def damage_fit_runs(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, dtype=str)
    mode = rng.choice(["empty", "header_only", "missing_column", "bad_value", "bad_flag", "garbage"])
    if mode == "empty":
        return mode, b""
    if mode == "header_only":
        return mode, frame.iloc[:0].to_csv(index=False).encode()
    if mode == "garbage":
        return mode, _random_bytes(rng, rng.randint(1, 4000))
    if mode == "missing_column":
        column = rng.choice(["run_id", "N", "D", "C", "loss", "group", "flagged"])
        return f"{mode}-{column}", frame.drop(columns=[column]).to_csv(index=False).encode()
    if mode == "bad_flag":
        frame.loc[rng.randrange(len(frame)), "flagged"] = rng.choice(["maybe", "2", "x"])
        return mode, frame.to_csv(index=False).encode()
    column = rng.choice(["N", "D", "C", "loss"])
    frame.loc[rng.randrange(len(frame)), column] = rng.choice(["abc", "-5", "0", "", "inf"])
    return f"{mode}-{column}", frame.to_csv(index=False).encode()


def damage_posterior(rng: random.Random, data: bytes, material) -> tuple[str, bytes]:
    mode = rng.choice(["empty", "truncated", "garbage", "foreign", "no_posterior", "missing_variable", "signature"])
    if mode == "empty":
        return mode, b""
    if mode == "truncated":
        return mode, data[: rng.randint(1, len(data) - 1)]
    if mode == "signature":
        return mode, _random_bytes(rng, 8) + data[8:]
    if mode == "garbage":
        return mode, _random_bytes(rng, rng.randint(1, 5000))
    if mode == "foreign":
        return _foreign(rng, material, "netcdf")
    import xarray as xr

    tmp = material["root"] / f"nc-{rng.getrandbits(32)}.nc"
    if mode == "no_posterior":
        tree = xr.DataTree.from_dict({"other": xr.Dataset({"x": ("i", np.arange(3.0))})})
    else:
        with xr.open_datatree(material["fit"] / "posterior.nc", engine=NETCDF_ENGINE) as full:
            tree = full.load()
        drop = rng.choice(["E", "A", "B", "alpha", "beta"])
        tree["posterior"] = xr.DataTree(tree["posterior"].to_dataset().drop_vars(drop))
        mode = f"{mode}-{drop}"
    tree.to_netcdf(tmp, engine=NETCDF_ENGINE)
    return mode, tmp.read_bytes()


# --- the corpus ------------------------------------------------------------------------------------
def corpus() -> list[tuple[str, int]]:
    cases = []
    for kind, count in CASES_PER_KIND.items():
        cases += [(kind, i) for i in range(count)]
    return cases


CORPUS = corpus()
assert len(CORPUS) >= 300


@pytest.mark.parametrize("kind,index", CORPUS, ids=[f"{k}-{i}" for k, i in CORPUS])
def test_damaged_input_ends_in_one_line_and_loses_nothing(kind, index, material, tmp_path):
    rng = random.Random(f"{SEED}-{kind}-{index}")
    store = tmp_path / "good.sqlite"
    store.write_bytes(material["store"])
    before = RunStore.open(store).to_frame(status=None, history=True)
    good_csv = tmp_path / "good.csv"
    good_csv.write_bytes(material["csv"])
    protected = store  # a store whose runs must all be there afterwards

    if kind in ("csv", "parquet"):
        mode, data = (damage_csv if kind == "csv" else damage_parquet)(rng, material)
        damaged = tmp_path / f"runs.{kind}"
        damaged.write_bytes(data)
        command = rng.choice(["import", "fit"])
        argv = (["runs", "import", damaged, "--store", store] if command == "import"
                else ["fit", damaged, "--out", tmp_path / "fit", "--chains", "1", "--draws", "10", "--warmup", "10"])
        names = damaged.name
    elif kind == "store":
        mode, data = damage_store(rng, material, tmp_path)
        damaged = tmp_path / "damaged.sqlite"
        damaged.write_bytes(data)
        argv = rng.choice([["runs", "list", "--store", damaged], ["runs", "export", tmp_path / "out.csv", "--store", damaged],
                           ["runs", "import", good_csv, "--store", damaged], ["fit", damaged, "--out", tmp_path / "fit"],
                           ["train", "--params", "2e4", "--tokens", "1e4", "--store", damaged],  # before any training
                           ["loop", "--simulate", "--target-budget", "1e21", "--experiment-budget", "1e19",
                            "--state", tmp_path / "state", "--store", damaged]])
        names = damaged.name
    elif kind == "planner":
        mode, data = damage_json(rng, material["planner"], ["settings", "candidates", "pending", "rng"])
        directory = tmp_path / "state"
        directory.mkdir()
        damaged = directory / "planner.json"
        damaged.write_bytes(data)
        argv = rng.choice([["plan", directory, "--batch", "2"],
                           ["loop", "--state", directory, "--simulate", "--target-budget", "1e21",
                            "--experiment-budget", "1e19", "--store", store]])
        names = "planner.json"
    else:
        directory = tmp_path / "fit"
        shutil.copytree(material["fit"], directory)
        file = {"meta": "meta.json", "posterior": "posterior.nc", "fit_runs": "runs.csv"}[kind]
        damaged = directory / file
        if kind == "meta":
            mode, data = damage_json(rng, damaged.read_bytes(), ["law", "method"])
        elif kind == "posterior":
            mode, data = damage_posterior(rng, damaged.read_bytes(), material)
        else:
            mode, data = damage_fit_runs(rng, damaged.read_bytes())
        if rng.random() < 0.1:  # or the file is gone
            mode, data = "missing", None
            damaged.unlink()
        else:
            damaged.write_bytes(data)
        argv = rng.choice([["frontier", directory, "--budget", "1e21"], ["report", directory, "--out", tmp_path / "r.md"],
                           ["plan", directory, "--target-budget", "1e22"], ["compare", directory, material["fit"]]])
        names = file

    code, out, err = run_cli(argv)
    try:
        assert_one_clear_line(code, err, names)
    except AssertionError as failure:
        raise AssertionError(f"{kind} case {index} ({mode}): {' '.join(map(str, argv))}: {failure}") from None
    if data is not None and damaged.exists():
        assert damaged.read_bytes() == data, "the damaged file was rewritten"
    after = RunStore.open(protected).to_frame(status=None, history=True)
    pd.testing.assert_frame_equal(before, after)


# --- the cases the issue names ---------------------------------------------------------------------
def test_empty_and_header_only_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    line = assert_one_clear_line(*run_cli(["fit", tmp_path / "e.csv", "--out", tmp_path / "f"])[::2], "e.csv")
    assert "empty" in line
    (tmp_path / "h.csv").write_text("N,D,loss\n")
    line = assert_one_clear_line(*run_cli(["fit", tmp_path / "h.csv", "--out", tmp_path / "f"])[::2], "h.csv")
    assert "no rows" in line


def test_truncated_posterior_and_corrupted_meta(material, tmp_path):
    fit = tmp_path / "fit"
    shutil.copytree(material["fit"], fit)
    nc = (fit / "posterior.nc").read_bytes()
    (fit / "posterior.nc").write_bytes(nc[: len(nc) // 2])
    for argv in (["frontier", fit, "--budget", "1e21"], ["report", fit]):
        assert "truncated" in assert_one_clear_line(*run_cli(argv)[::2], "posterior.nc")
    (fit / "meta.json").write_text('{"law": "chinchilla", "method"')
    assert "not valid JSON" in assert_one_clear_line(*run_cli(["frontier", fit])[::2], "meta.json")


def test_truncated_store_and_a_csv_as_store(material, tmp_path):
    (tmp_path / "t.sqlite").write_bytes(material["store"][:5000])
    assert_one_clear_line(*run_cli(["runs", "list", "--store", tmp_path / "t.sqlite"])[::2], "t.sqlite")
    (tmp_path / "runs.csv").write_bytes(material["csv"])
    for argv in (["runs", "list", "--store", tmp_path / "runs.csv"],
                 ["runs", "import", tmp_path / "runs.csv", "--store", tmp_path / "runs.csv"]):
        assert "not a run store" in assert_one_clear_line(*run_cli(argv)[::2], "runs.csv")
    assert (tmp_path / "runs.csv").read_bytes() == material["csv"]


def test_zero_byte_store_is_never_turned_into_a_store(material, tmp_path):
    store = tmp_path / "z.sqlite"
    store.write_bytes(b"")
    (tmp_path / "runs.csv").write_bytes(material["csv"])
    for argv in (["runs", "list", "--store", store], ["runs", "import", tmp_path / "runs.csv", "--store", store]):
        assert "empty (0 bytes)" in assert_one_clear_line(*run_cli(argv)[::2], "z.sqlite")
        assert store.stat().st_size == 0


def test_two_files_of_the_same_name_keep_all_their_runs_and_reimport_is_idempotent(tmp_path):
    for folder, shift in (("a", 0.0), ("b", 0.1)):
        (tmp_path / folder).mkdir()
        BASE.iloc[:5].assign(loss=BASE["loss"].iloc[:5] + shift).to_csv(tmp_path / folder / "runs.csv", index=False)
    store = tmp_path / "s.sqlite"
    code, out, _ = run_cli(["runs", "import", tmp_path / "a" / "runs.csv", "--store", store])
    assert code == 0 and "5 new" in out
    code, out, _ = run_cli(["runs", "import", tmp_path / "b" / "runs.csv", "--store", store])
    assert code == 0 and "5 new" in out and "10 runs in the store" in out
    assert len(RunStore.open(store)) == 10
    code, out, _ = run_cli(["runs", "import", tmp_path / "b" / "runs.csv", "--store", store])
    assert code == 0 and out.startswith("already imported") and "nothing written" in out
    assert len(RunStore.open(store).to_frame(history=True)) == 10
    BASE.iloc[:5].assign(loss=BASE["loss"].iloc[:5] + 0.2).to_csv(tmp_path / "b" / "runs.csv", index=False)
    code, out, _ = run_cli(["runs", "import", tmp_path / "b" / "runs.csv", "--store", store])
    assert code == 0 and "5 updated" in out and "10 runs in the store" in out  # an edited file: new versions


def test_d_in_billions_is_caught_with_the_likely_unit(tmp_path):
    BASE.assign(D=BASE["D"] / 1e9).to_csv(tmp_path / "units.csv", index=False)
    line = assert_one_clear_line(*run_cli(["fit", tmp_path / "units.csv", "--out", tmp_path / "f"])[::2], "units.csv")
    assert "row 1" in line and "'D' in billions" in line and "--no-unit-check" in line
    BASE.assign(N=BASE["N"] / 1e6).to_csv(tmp_path / "n.csv", index=False)
    line = assert_one_clear_line(*run_cli(["runs", "import", tmp_path / "n.csv", "--store", tmp_path / "s.sqlite"])[::2],
                                 "n.csv")
    assert "'N' in millions" in line
    assert not (tmp_path / "s.sqlite").exists()
    code, out, err = run_cli(["runs", "import", tmp_path / "n.csv", "--store", tmp_path / "s.sqlite", "--no-unit-check"])
    assert code == 0, err


def test_too_few_runs_is_said_before_sampling(tmp_path):
    BASE.iloc[:5].to_csv(tmp_path / "five.csv", index=False)
    code, _, err = run_cli(["fit", tmp_path / "five.csv", "--out", tmp_path / "f"])
    assert code == 2 and "need at least 6 runs" in err and "sampling" not in err


def test_negative_budget_reaches_our_validation(material):
    with pytest.raises(SystemExit) as stop, contextlib.redirect_stderr(io.StringIO()) as err:
        main(["frontier", str(material["fit"]), "--budget", "-1e21"])
    assert stop.value.code == 2 and "budget must be positive, got -1e21" in err.getvalue()


def test_internal_error_is_short_without_debug_and_has_the_traceback_with_it(monkeypatch, material):
    from bayes_scaling import posterior

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(posterior.Posterior, "frontier", broken)
    code, _, err = run_cli(["frontier", material["fit"], "--budget", "1e21"])
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error (ZeroDivisionError: boom)" in err and "report" in err and "--debug" in err
    code, _, err = run_cli(["frontier", material["fit"], "--budget", "1e21", "--debug"])
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_fit_out_that_is_a_file_is_refused_before_sampling(tmp_path):
    BASE.to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "taken").write_text("x")
    code, _, err = run_cli(["fit", tmp_path / "runs.csv", "--out", tmp_path / "taken"])
    assert "a file, expected a directory" in assert_one_clear_line(code, err, "taken") and "sampling" not in err


def _create_and_append(path, worker, barrier):
    barrier.wait()  # every process opens the (not yet existing) store at the same moment
    store = RunStore(path)
    store.append_many([{"run_id": f"w{worker}-{i}", "N": 1e8, "D": 2e9, "loss": 3.0} for i in range(20)])


@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_a_new_store_created_by_several_processes_at_once_is_one_store(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    path = tmp_path / "new.sqlite"
    workers = [ctx.Process(target=_create_and_append, args=(path, w, barrier)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0] * 4
    assert len(RunStore.open(path)) == 80
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")]  # no temporary store left
