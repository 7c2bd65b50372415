"""The drifted frontier's search and whether L_opt(C) rises beyond the runs: a check of the default model.

``frontier.drifted_optimum`` searches ln N within 4 e-folds of the law's own N_opt moved by the draw's
allocation drift. A draw whose drift moves its optimum further (a strongly negative d_N, say), or gives its
IsoFLOP profile a second, lower basin outside that window, has a local or edge minimum reported. Two options
(thirty-first session; off by default) search further: a coarse scan (``frontier.WIDE_SCAN``, ``WIDE``) that
re-centres the window on a lower basin, and a window that moves on past an edge (``frontier.EDGE_STEPS``), both
kept to plausible tokens per parameter (``frontier.plausible_log_n``). And the level bound (``extrapolation.LEVEL_BOUND``) cuts each
draw's level drift so that its compute-optimal loss does not rise; it reads L at the law's optimum moved by the
allocation shift, which is not the drifted optimum for such draws, so some draws' L_opt(C) may still rise.

Per group of the sources asked (all its runs; the product's default fit, ``fit_nuts`` at its defaults, seed 0),
the frontier draws at budgets 10^20 .. 10^27 FLOPs in quarter decades, searched by the default window ("held")
and with both options (``wide=True, edge_steps=8``, "the search now" below), and the lifetime optimum at T = 0 (``decisions.lifetime_optimum``,
a coarse-to-fine search over a wide range, which should agree). Reported per group:
- the share of draw-budget cells where the search now finds a lower L_opt than before, the largest relative
  difference in L_opt, and the largest |ln| ratio of N_opt;
- the largest relative gap in L_opt between the search now and the lifetime optimum, either way;
- the share of draws whose L_opt rises between some pair of consecutive budgets (by more than 1e-9
  relative), the largest rise per quarter decade, and the largest rise above the draw's running minimum,
  with the options (and the share rising with the default window).
A measurement of options, no rule; not adopted (docs/extrapolation.md, "A limit: the frontier's search window").

``--level-cut-draws`` (thirty-fourth session; criterion (m) of bench_extrapolation.py's twenty-eighth run): per
group, the same default fit's frontier searched by the default window with the level cut as fitted
(``extrapolation.LEVEL_CUT_DRAWS`` "level rises") and with the cut recomputed for every draw ("every draw"; the
NUTS and drift draws are the same, only the cut table differs): the share of draws whose L_opt rises between
consecutive quarter decades (by more than 1e-9 relative), the largest rise, and the median and 95% bound of
L_opt at each budget under both.

    python experiments/frontier_search_edges.py [--sources chinchilla] [--out FILE]
    python experiments/frontier_search_edges.py --level-cut-draws --sources chinchilla marin porian gadre --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from bayes_scaling import decisions, extrapolation
from bayes_scaling import frontier as frontier_mod
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.table import Runs

SOURCES = {"chinchilla": load_chinchilla, "marin": load_marin, "porian": load_porian, "gadre": load_gadre}
BUDGETS = 10.0 ** np.arange(20.0, 27.01, 0.25)


def default_fit(runs: Runs):
    """The default fit of ``runs`` and what the searches read: (post, law, C (1, K), theta (S, 1), the law's
    N_opt (S, K), G, ranges)."""
    post = fit_nuts(runs, progress=False)
    law, C = post.law, BUDGETS[None, :]
    th = {k: np.asarray(v)[:, None] for k, v in post.theta().items()}
    N_law = np.asarray(law.optimal_allocation(th, C)[0])
    return (post, law, C, th, N_law, *extrapolation.drift_of(post))


def check(runs: Runs) -> dict:
    post, law, C, th, N_law, G, ranges = default_fit(runs)
    held = frontier_mod.drifted_optimum(law, th, C, N_law, G, ranges, edge_steps=0, wide=False)
    moving = frontier_mod.drifted_optimum(law, th, C, N_law, G, ranges, edge_steps=8, wide=True)
    life = decisions.lifetime_optimum(decisions.Surface.of(post), C, 0.0)
    L_held, L_move, L_life = held[2], moving[2], life["L"]
    lower = L_move < L_held * (1 - 1e-12)
    rises = np.diff(np.log(L_move), axis=1)
    above = np.log(L_move) - np.minimum.accumulate(np.log(L_move), axis=1)
    return {
        "runs": len(runs), "draws": int(L_move.shape[0]), "budgets": [float(c) for c in BUDGETS],
        "cells_lower_with_moving_window": float(lower.mean()),
        "max_relative_L_difference": float(np.nanmax(1 - L_move / L_held)),
        "max_N_opt_ratio": float(np.nanmax(np.abs(np.log(moving[0] / held[0])))),
        "max_relative_gap_to_lifetime_optimum": float(np.nanmax(np.abs(L_move / L_life - 1))),
        "lifetime_optimum_lower_by_up_to": float(np.nanmax(1 - L_life / L_move)),
        "search_lower_than_lifetime_optimum_by_up_to": float(np.nanmax(1 - L_move / L_life)),
        "share_of_draws_rising": float((rises > 1e-9).any(axis=1).mean()),
        "share_of_draws_rising_held_window": float((np.diff(np.log(L_held), axis=1) > 1e-9).any(axis=1).mean()),
        "max_rise_per_quarter_decade": float(np.nanmax(rises)),
        "max_rise_above_running_minimum": float(np.nanmax(above)),
        "median_N_opt": {"held": [float(x) for x in np.median(held[0], axis=0)],
                         "moving": [float(x) for x in np.median(moving[0], axis=0)]},
    }


def level_cut_draws(runs: Runs) -> dict:
    """Criterion (m): the default fit's frontier under each ``LEVEL_CUT_DRAWS`` (docstring above)."""
    post, law, C, th, N_law, G, ranges = default_fit(runs)
    drifts, _ = extrapolation._drift_columns(G, ranges)
    bare = {k: v for k, v in ranges.items() if k != "level_cut_points"}
    out = {"runs": len(runs), "draws": int(G.shape[0]), "budgets": [float(c) for c in BUDGETS]}
    saved = extrapolation.LEVEL_CUT_DRAWS
    for setting in extrapolation.LEVEL_CUT_DRAW_CHOICES:
        extrapolation.LEVEL_CUT_DRAWS = setting
        try:
            cut = extrapolation.frontier_level_cut(post, drifts, bare)
        finally:
            extrapolation.LEVEL_CUT_DRAWS = saved
        table = drifts if cut is None else np.hstack([drifts, cut])
        cut_ranges = bare if cut is None else {**bare, "level_cut_points": cut.shape[1]}
        if setting == saved and cut is not None:  # the fit's own cut, recomputed: the same table
            assert np.allclose(table, G, equal_nan=True)
        L = frontier_mod.drifted_optimum(law, th, C, N_law, table, cut_ranges)[2]
        rises = np.diff(np.log(L), axis=1)
        out[setting] = {
            "draws_cut": float(np.mean(cut.max(axis=1) > 0)) if cut is not None else 0.0,
            "share_of_draws_rising": float((rises > 1e-9).any(axis=1).mean()),
            "max_rise_per_quarter_decade": float(np.nanmax(rises)),
            "L_opt_median": [float(x) for x in np.nanmedian(L, axis=0)],
            "L_opt_95": [float(x) for x in np.nanquantile(L, 0.95, axis=0)],
            "L_opt_5": [float(x) for x in np.nanquantile(L, 0.05, axis=0)]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["chinchilla"], choices=sorted(SOURCES))
    parser.add_argument("--out", default="experiments/results/frontier_search_edges.json")
    parser.add_argument("--level-cut-draws", action="store_true",
                        help="criterion (m): the frontier under each extrapolation.LEVEL_CUT_DRAWS (docstring)")
    args = parser.parse_args()
    started = time.time()
    results = {}
    for source in args.sources:
        runs = SOURCES[source]().for_fit()
        for group in runs.groups:
            one = Runs(runs.frame[runs.frame["group"] == group].reset_index(drop=True))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[f"{source}/{group}"] = r = (level_cut_draws if args.level_cut_draws else check)(one)
            if args.level_cut_draws:
                print(f"{source}/{group}: " + "; ".join(
                    f"{k}: cut {r[k]['draws_cut']:.1%}, rising {r[k]['share_of_draws_rising']:.1%} (up to "
                    f"{r[k]['max_rise_per_quarter_decade']:.2%} per quarter decade)"
                    for k in extrapolation.LEVEL_CUT_DRAW_CHOICES), flush=True)
                continue
            print(f"{source}/{group}: the search now lower in {r['cells_lower_with_moving_window']:.2%} of cells "
                  f"(L by up to {r['max_relative_L_difference']:.2%}); gap to lifetime optimum "
                  f"{r['max_relative_gap_to_lifetime_optimum']:.1e}; draws rising {r['share_of_draws_rising']:.1%} "
                  f"(held window {r['share_of_draws_rising_held_window']:.1%}), up to "
                  f"{r['max_rise_per_quarter_decade']:.2%} per quarter decade, "
                  f"{r['max_rise_above_running_minimum']:.2%} above the running minimum", flush=True)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'unknown CPU'})",
           "load_average": os.getloadavg(), "seconds": time.time() - started, "groups": results}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
