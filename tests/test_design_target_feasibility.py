"""experiments/design_target_feasibility.py: issue 16's targets applied to every strategy of a stored pool
benchmark (a tie is no win, coverage per source and over all target runs, sources every strategy leaves at
the clip), on a hand-made results file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def feasibility():
    spec = importlib.util.spec_from_file_location("design_target_feasibility",
                                                  ROOT / "experiments" / "design_target_feasibility.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(r2, coverage, seeds=(0.0, 0.0)):
    return {"r2": r2, "coverage": coverage, "r2_seeds": list(seeds)}


def results(table_a, table_b, covered_a, covered_b):
    """Two sources of one group each, strategies ``ours`` and ``other``, two seeds, 10 target runs per group."""
    def group(name, covered):
        return {"group": name, "seeds": {s: {k: {f: {"covered": covered[k], "n": 10} for f in ("0.05", "0.1")}
                                             for k in ("ours", "other")} for s in ("0", "1")}}
    return {"settings": {"strategies": ["ours", "other"]},
            "summary": {"a": {"table": table_a}, "b": {"table": table_b}},
            "groups": [group("a/x", covered_a), group("b/x", covered_b)]}


def table(ours, other, all_pool):
    return {**{f"ours@{f}": ours for f in ("0.05", "0.1")}, **{f"other@{f}": other for f in ("0.05", "0.1")},
            "all": all_pool}


def test_ties_are_no_wins_and_coverage_is_read_both_ways(feasibility):
    made = results(table(row(0.9, 1.0, (0.9, 0.8)), row(0.9, 1.0, (0.7, 0.95)), row(0.85, 1.0)),
                   table(row(0.5, 0.7), row(0.2, 0.7), row(0.6, 0.9)),
                   covered_a={"ours": 10, "other": 10}, covered_b={"ours": 7, "other": 7})
    out = feasibility.read_version(made)["checkpoints"]["0.1"]
    ours = out["strategies"]["ours"]
    assert ours["best_on"] == ["b"]  # a: 0.9 against 0.9, a tie
    assert ours["at_least_all_pool_on"] == ["a"]
    assert ours["coverage_per_source"] == {"a": 1.0, "b": 0.7} and not ours["coverage_met_per_source"]
    assert ours["coverage_all_target_runs"] == pytest.approx(17 / 20) and ours["coverage_met_all_target_runs"]
    assert out["strategies_in_band_per_source"] == {"a": [], "b": []}
    paired = out["ours_against_best_other"]["a"]
    assert (paired["rival"], paired["seeds_ours_higher"], paired["seeds_ours_lower"]) == ("other", 1, 1)


def test_sources_every_strategy_leaves_at_the_clip(feasibility):
    made = results(table(row(-1.0, 0.9), row(-1.0, 0.9), row(0.9, 0.9)),
                   table(row(0.5, 0.9), row(0.2, 0.9), row(0.4, 0.9)),
                   covered_a={"ours": 9, "other": 9}, covered_b={"ours": 9, "other": 9})
    ours = feasibility.read_version(made)["checkpoints"]["0.05"]
    assert ours["sources_every_strategy_at_clip"] == ["a"]
    assert ours["strategies"]["ours"]["best_on"] == ["b"]
    assert ours["strategies"]["ours"]["best_or_tied_at_clip_on"] == ["a", "b"]
