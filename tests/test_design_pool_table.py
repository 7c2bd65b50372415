"""experiments/design_pool.py on a user's run table (``--table``): its groups split as the backtest splits
them, every strategy bought from the pool within 10% of its cost, the tables printed and written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def design_pool(monkeypatch):
    """A fresh copy of the module per test (``--table`` adds to its SOURCES)."""
    spec = importlib.util.spec_from_file_location("design_pool", ROOT / "experiments" / "design_pool.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "design_pool", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def sweep(path: Path) -> Path:
    """Two groups of IsoFLOP sweeps from L = 1.7 + 400 / N^0.34 + 410 / D^0.28 with 1% noise."""
    rng = np.random.default_rng(0)
    rows = []
    for group in ("a", "b"):
        for budget in np.geomspace(1e15, 1e19, 12):
            for N in np.geomspace(3e6, 1e9, 9):
                D = budget / (6 * N)
                if D >= 5e7:
                    loss = 1.7 + 400 / N ** 0.34 + 410 / D ** 0.28
                    rows.append({"N": N, "D": D, "loss": loss * np.exp(rng.normal(0, 0.01)), "group": group,
                                 "budget": budget})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_users_table_runs_every_strategy(design_pool, tmp_path, capsys):
    table = sweep(tmp_path / "mine.csv")
    out = tmp_path / "results.json"
    design_pool.main(["--table", str(table), "--scorer", "laplace", "--picker", "common",
                      "--strategies", "cheapest", "random", "vopt", "--seeds", "1", "--out", str(out)])
    results = json.loads(out.read_text())
    assert [g["group"] for g in results["groups"]] == ["mine/a", "mine/b"]
    for g in results["groups"]:
        assert g["split"] == "budget column 'budget', top 3 budgets per group"
        for strategy, record in g["seeds"]["0"].items():
            ten = record["0.1"]
            assert ten["cost_fraction"] <= 0.1 and ten["runs"] > len(record["0.01"]["rows"])  # bought past the start
            assert max(ten["rows"]) < g["pool"] and len(set(ten["rows"])) == len(ten["rows"])
    printed = capsys.readouterr().out
    assert "**mine** (2 groups, 1 seeds)" in printed and str(out) in printed
    assert "Target at" not in printed  # issue 16's verdict is about the development sources


def test_table_and_bundled_sources_are_not_mixed(design_pool, tmp_path):
    table = sweep(tmp_path / "mine.csv")
    with pytest.raises(SystemExit):
        design_pool.main(["--table", str(table), "--sources", "chinchilla", "--out", str(tmp_path / "r.json")])


def test_a_table_named_like_a_bundled_source_is_refused(design_pool, tmp_path):
    table = sweep(tmp_path / "gadre.csv")
    with pytest.raises(design_pool.InputError, match="already a source"):
        design_pool.main(["--table", str(table), "--out", str(tmp_path / "r.json")])


def test_a_changed_table_is_not_resumed_from_its_old_records(design_pool, tmp_path):
    table = sweep(tmp_path / "mine.csv")
    out = tmp_path / "r.json"
    out.write_text('{"tables": {"mine": "0000"}}')
    with pytest.raises(design_pool.InputError, match="other contents of --table mine"):
        design_pool.main(["--table", str(table), "--out", str(out)])
