"""Could any selector meet issue 16's targets on the pool benchmark? Read from the stored records.

Issue 16's targets, at 5% and at 10% of the pool's cost: ``ours`` has the best median target-region R^2
of all strategies on >= 3 of the 4 development sources and at least the all-pool fit's on >= 2; its 90%
intervals cover 80-97% of the target runs. ``design_pool.verdict`` applies them to ``ours``. This script
applies the same targets to every strategy in turn, as if it were ``ours`` (the others then being every
other strategy, ``ours`` included), on every pool benchmark scored by the product's fit (v10 on). It runs
nothing: it re-reads ``experiments/results/bench_design_pool_v*.json``.

For each version and checkpoint it reports, per strategy:
* the R^2 parts: sources where it is strictly best (a tie is no win, as in ``verdict``), sources where it
  is at least the all-pool fit, and sources where every strategy sits at the clip (R^2 = -1);
* coverage read per source (``verdict``'s reading: each source's pooled target runs in 80-97%) and
  read over all target runs of the four sources together (median over seeds of covered / n, each seed
  pooling every group of every source), the other reading the issue's words allow;
and per source whether ANY strategy's coverage (or the all-pool fit's) lies in 80-97%: where none does,
coverage there is set by the scoring fit (the product's default model), not by which runs were bought.

    python experiments/design_target_feasibility.py [--versions 13 16 17] [--out results/....json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VERSIONS = (10, 11, 12, 13, 16, 17)  # the pool benchmarks scored by the product's fit (``--scorer nuts``)
BAND = (0.8, 0.97)
CLIP = -1.0
FRACTIONS = ("0.05", "0.1")


def in_band(c: float) -> bool:
    return BAND[0] <= c <= BAND[1]


def pooled_coverage(groups: list[dict], strategy: str, fraction: str, seeds: list[str]) -> float:
    """Median over seeds of the coverage over every target run of every source (covered / n, summed)."""
    per_seed = []
    for seed in seeds:
        records = [g["seeds"][seed][strategy][fraction] for g in groups]
        per_seed.append(sum(r["covered"] for r in records) / sum(r["n"] for r in records))
    return float(np.median(per_seed))


def common_seeds(groups: list[dict], strategies: list[str]) -> list[str]:
    """Seeds every group ran with every strategy (Porian's v16 finished seeds 0-4 only)."""
    seeds = set.intersection(*[set(g["seeds"]) for g in groups])
    return sorted((s for s in seeds if all(k in g["seeds"][s] for g in groups for k in strategies)), key=int)


def paired(table: dict, groups: list[dict], source: str, fraction: str, strategies: list[str]) -> dict:
    """``ours`` against the other strategy with the best median R^2 on ``source``: per seed (the seeds
    both ran in every group of the source), how often ours' pooled R^2 is higher / lower, and both means."""
    others = [k for k in strategies if k != "ours"]
    rival = max(others, key=lambda k: table[f"{k}@{fraction}"]["r2"])
    mine = table[f"ours@{fraction}"]["r2_seeds"]
    theirs = table[f"{rival}@{fraction}"]["r2_seeds"]
    diff = np.asarray(mine) - np.asarray(theirs)
    return {"rival": rival, "ours_median": round(float(np.median(mine)), 4), "rival_median": round(float(np.median(theirs)), 4),
            "ours_mean": round(float(np.mean(mine)), 4), "rival_mean": round(float(np.mean(theirs)), 4),
            "seeds_ours_higher": int(np.sum(diff > 0)), "seeds_ours_lower": int(np.sum(diff < 0)), "seeds": len(diff)}


def read_version(results: dict) -> dict:
    """The targets applied to every strategy of one results file (its ``summary`` and ``groups``)."""
    summary, groups = results["summary"], results["groups"]
    strategies = [k for k in results["settings"]["strategies"] if not k.startswith("ours_")]
    seeds = common_seeds(groups, strategies)
    out = {"seeds_pooled": len(seeds), "checkpoints": {}}
    for f in FRACTIONS:
        table = {src: s["table"] for src, s in summary.items()}
        clipped = [src for src, t in table.items() if all(t[f"{k}@{f}"]["r2"] <= CLIP for k in strategies)]
        any_in_band = {src: sorted(k for k in strategies if in_band(t[f"{k}@{f}"]["coverage"]))
                       for src, t in table.items()}
        rows = {}
        for k in strategies:
            others = [o for o in strategies if o != k]
            best = [src for src, t in table.items()
                    if t[f"{k}@{f}"]["r2"] > max(t[f"{o}@{f}"]["r2"] for o in others)]
            at_least_all = [src for src, t in table.items() if t[f"{k}@{f}"]["r2"] >= t["all"]["r2"]]
            per_source = {src: round(t[f"{k}@{f}"]["coverage"], 4) for src, t in table.items()}
            pooled = pooled_coverage(groups, k, f, seeds)
            r2_met = len(best) >= 3 and len(at_least_all) >= 2
            rows[k] = {"best_on": best, "best_or_tied_at_clip_on": sorted(set(best) | set(clipped)),
                       "at_least_all_pool_on": at_least_all, "coverage_per_source": per_source,
                       "coverage_all_target_runs": round(pooled, 4),
                       "r2_parts_met": r2_met,
                       "r2_parts_met_counting_ties_at_clip": len(set(best) | set(clipped)) >= 3 and len(at_least_all) >= 2,
                       "coverage_met_per_source": all(in_band(c) for c in per_source.values()),
                       "coverage_met_all_target_runs": in_band(pooled)}
        out["checkpoints"][f] = {"sources_every_strategy_at_clip": clipped,
                                 "ours_against_best_other": {src: paired(table[src], groups, src, f, strategies)
                                                             for src in table},
                                 "strategies_in_band_per_source": any_in_band,
                                 "all_pool_coverage": {src: round(t["all"]["coverage"], 4) for src, t in table.items()},
                                 "all_pool_r2": {src: round(t["all"]["r2"], 4) for src, t in table.items()},
                                 "strategies": rows}
    return out


def print_version(v: int, r: dict) -> None:
    print(f"v{v} (seeds pooled for the all-runs coverage: {r['seeds_pooled']})")
    for f, c in r["checkpoints"].items():
        print(f"  {float(f):.0%}: every strategy at the clip on {c['sources_every_strategy_at_clip'] or 'none'}; "
              f"strategies with coverage in 80-97%: "
              + ", ".join(f"{src} {ks or 'none'} (all-pool {c['all_pool_coverage'][src]:.1%})"
                          for src, ks in c["strategies_in_band_per_source"].items()))
        print("    ours against the best other, per seed: " + "; ".join(
            f"{src} {p['rival']} higher on {p['seeds_ours_higher']} / lower on {p['seeds_ours_lower']} of {p['seeds']} "
            f"(means {p['ours_mean']:.3f} / {p['rival_mean']:.3f})" for src, p in c["ours_against_best_other"].items()))
        for k, row in c["strategies"].items():
            print(f"    {k:9s} best on {row['best_on'] or '-'}; >= all-pool on {row['at_least_all_pool_on'] or '-'}; "
                  f"R^2 parts met {row['r2_parts_met']} (ties at clip counted: {row['r2_parts_met_counting_ties_at_clip']}); "
                  f"coverage over all target runs {row['coverage_all_target_runs']:.1%}, "
                  f"per source in band {row['coverage_met_per_source']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, nargs="+", default=list(VERSIONS))
    parser.add_argument("--out", default=str(RESULTS / "design_target_feasibility.json"))
    args = parser.parse_args(argv)
    report = {"band": BAND, "clip": CLIP, "versions": {}}
    for v in args.versions:
        results = json.loads((RESULTS / f"bench_design_pool_v{v}.json").read_text())
        report["versions"][f"v{v}"] = read_version(results)
        print_version(v, report["versions"][f"v{v}"])
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
