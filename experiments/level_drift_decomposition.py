"""Where the default model's intervals at Gadre's (or Marin's) held-out runs get their width and their bias, drift
component by component (twenty-eighth session; a diagnosis, no rule).

Per Gadre group: the default fit (``fit_nuts()``) of the standard split's training runs (the top 30% of
compute held out, as ``bench_extrapolation.py``), then at each held-out run the 5/50/95% quantiles over the
posterior draws of what each drift component alone adds to the law's log-loss (d_N, d_D, g_C, d_a: the
others set to zero, centres too), beside the law's own 90% spread without the drift, the drifted mean's, the
90% predictive interval's log width and the observed run's relative error from the predictive median.
``--level-on reducible`` measures ``extrapolation.LEVEL_ON`` "reducible" instead of the default "loss".

``--reach``: instead, per group of every development source's full data, the farthest distances (u*_N, u*_D,
u*_C) that a held-out run of the calibration's folds lay beyond its fold's runs (no fitting: the folds' splits
only), into experiments/results/fold_reach.json.

Usage: .venv/bin/python experiments/level_drift_decomposition.py [--level-on loss|reducible] [--reach] [--out FILE]
Writes experiments/results/level_drift_decomposition[_reducible].json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from bayes_scaling import extrapolation as X
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.posterior import compiled_log_loss
from bayes_scaling.runs import Runs
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.splits import budget_column_of, forward_chain, split_by_compute

COMPONENTS = ("d_N", "d_D", "g_C", "d_a")
RESULTS = Path(__file__).parent / "results"


def only(G: np.ndarray, k: int) -> np.ndarray:
    """The drift draws with every component but k (and its cell centre) set to zero."""
    out = G.copy()
    for j in range(4):
        if j != k:
            out[:, j] = 0.0
            if G.shape[1] >= 8:
                out[:, 4 + j] = 0.0
    return out


def group_decomposition(runs: Runs, seed: int = 0) -> dict:
    split = split_by_compute(runs)
    post = fit_nuts(split.train, seed=seed, progress=False)
    test = split.test.frame.sort_values("C").reset_index(drop=True)
    N, D, y = test.N.to_numpy(), test.D.to_numpy(), test.loss.to_numpy()
    G, ranges = X.drift_of(post)
    theta = {k: v[:, None] for k, v in post.theta().items()}
    law = compiled_log_loss(post.law)
    base = np.asarray(law(theta, N[None], D[None]))
    drifted = X.drifted_log_loss(law, theta, G, ranges, N[None], D[None])
    lo, med, hi = np.quantile(post.predict(N, D), [0.05, 0.5, 0.95], axis=0)
    parts = {name: X.drifted_log_loss(law, theta, only(G, k), ranges, N[None], D[None]) - base
             for k, name in enumerate(COMPONENTS)}
    U = X.distances(ranges, N, D)
    spread = lambda a: float(np.quantile(a, 0.95) - np.quantile(a, 0.05))  # noqa: E731
    rows = [{"N": float(N[i]), "D": float(D[i]), "tokens_per_param": round(float(D[i] / N[i]), 1),
             "u_N_D_C": [round(float(u), 3) for u in U[i]], "observed": float(y[i]),
             "relative_error_of_median": round(float((y[i] - med[i]) / med[i]), 4),
             "log_width_90": round(float(np.log(hi[i] / lo[i])), 4),
             "law_mean_spread_90": round(spread(base[:, i]), 4), "drifted_mean_spread_90": round(spread(drifted[:, i]), 4),
             **{name: [round(float(q), 4) for q in np.quantile(v[:, i], [0.05, 0.5, 0.95])] for name, v in parts.items()}}
            for i in range(len(test))]
    meta = post.meta["extrapolation"]
    return {"mean drift (d_N, d_D, g_C, d_a)": meta["mean drift (d_N, d_D, g_C, d_a)"],
            **{f"{s} 5/50/95%": meta[f"{s} 5/50/95%"] for s in X.SCALES}, "held_out": rows}


def fold_reach() -> dict:
    """Per source and group (full data): (u*_N, u*_D, u*_C), as ``extrapolation.calibrate`` records them."""
    out = {}
    for name, load in (("chinchilla", load_chinchilla), ("marin", load_marin), ("porian", load_porian),
                       ("gadre", load_gadre)):
        runs = load().for_fit()
        groups = runs.groups if "group" in runs.frame else [None]
        out[name] = {}
        for g in groups:
            sub = runs if g is None else Runs(runs.frame[runs.frame.group == g].reset_index(drop=True))
            seen = np.zeros(3)
            for split in forward_chain(sub, budget_column=budget_column_of(sub, "auto")):
                ranges = X.log_range(split.train.N, split.train.D)
                seen = np.maximum(seen, X.distances(ranges, split.test.N, split.test.D).max(axis=0))
            out[name][g or "all"] = [round(float(u), 3) for u in seen]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level-on", choices=X.LEVEL_ONS, default="loss")
    parser.add_argument("--reach", action="store_true", help="the folds' farthest distances per group, no fits")
    parser.add_argument("--source", choices=("gadre", "marin"), default="gadre",
                        help="the development source whose groups to decompose (default gadre)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.reach:
        out = args.out or RESULTS / "fold_reach.json"
        reach = fold_reach()
        out.write_text(json.dumps(reach, indent=1))
        for source, groups in reach.items():
            print(source, groups)
        print(f"wrote {out}")
        return
    X.LEVEL_ON = args.level_on
    stem = "level_drift_decomposition" + ("" if args.source == "gadre" else f"_{args.source}")
    out = args.out or RESULTS / f"{stem}{'' if args.level_on == 'loss' else '_' + args.level_on}.json"
    start = time.time()
    runs = {"gadre": load_gadre, "marin": load_marin}[args.source]().for_fit()
    result = {"source": args.source, "level_on": args.level_on, "machine": f"{platform.platform()}, {platform.processor() or 'cpu'}",
              "groups": {g: group_decomposition(Runs(runs.frame[runs.frame.group == g].reset_index(drop=True)))
                         for g in runs.groups}}
    result["seconds"] = round(time.time() - start, 1)
    out.write_text(json.dumps(result, indent=1))
    for g, r in result["groups"].items():
        top = r["held_out"][-1]
        print(f"{g}: mean drift {r['mean drift (d_N, d_D, g_C, d_a)']}; top run N={top['N']:.3g}: error "
              f"{top['relative_error_of_median']:+.2%}, 90% log width {top['log_width_90']:.3f} (law alone "
              f"{top['law_mean_spread_90']:.3f}); g_C {top['g_C']}, d_N {top['d_N']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
