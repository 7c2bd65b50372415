"""How many draws' compute-optimal N (D) sit on the corner at the largest fitted N (D), beyond the runs.

The extrapolating model's drift starts at the fitted runs' edge (u_N = max(0, ln N - ln N_max), likewise D), so
along an IsoFLOP slice its log-loss has a kink at N_max (and at D = D_max), and a draw whose exponent flattens past
it keeps its optimum on that corner over a range of budgets (docs/extrapolation.md, "A limit: the optimum's jump
past the largest fitted D"). Per fit, at budgets 10^20 .. 10^24 FLOPs, the share of draws whose N_opt is N_max
(whose D_opt is D_max) within a relative 1e-6, and the median N_opt and D_opt (``formatting.corner_optimum_notes``
names a budget whose median is the corner). Fits: ``bayes-scaling fit marin --group-by group`` (the CLI's grouped
default: each group's drift) and ``fit chinchilla`` (the pooled default), seed 0. A measurement, no rule.

    python experiments/corner_optima.py [--out experiments/results/corner_optima.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from bayes_scaling.cli import main as cli
from bayes_scaling.grouped import load_fits

BUDGETS = [1e20, 1e21, 1e22, 1e23, 1e24]
FITS = {"marin, grouped": ["marin", "--group-by", "group"], "chinchilla": ["chinchilla"]}


def corner_shares(post) -> dict:
    N_max, D_max = float(np.max(post.runs.N)), float(np.max(post.runs.D))
    draws = post.frontier_draws(BUDGETS)
    N, D = draws["N_opt"], draws["D_opt"]
    return {"N_max": N_max, "D_max": D_max, "budgets": BUDGETS,
            "share_at_N_max": [float(x) for x in np.isclose(N, N_max, rtol=1e-6, atol=0).mean(axis=0)],
            "share_at_D_max": [float(x) for x in np.isclose(D, D_max, rtol=1e-6, atol=0).mean(axis=0)],
            "median_N_opt": [float(x) for x in np.median(N, axis=0)],
            "median_D_opt": [float(x) for x in np.median(D, axis=0)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "corner_optima.json")
    args = parser.parse_args()
    started, results = time.time(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in FITS.items():
            out = Path(tmp) / name.replace(", ", "_")
            assert cli(["fit", *command, "--out", str(out), "--seed", "0"]) == 0
            for group, post in load_fits(out):
                if post.model != "extrapolating":
                    continue  # the grouped fit's population: the plain law, no corner
                results[f"{name}/{group}" if group else name] = r = corner_shares(post)
                print(f"{name}/{group}: at N_max {[f'{x:.1%}' for x in r['share_at_N_max']]}, "
                      f"at D_max {[f'{x:.1%}' for x in r['share_at_D_max']]} (budgets {BUDGETS})", flush=True)
    args.out.write_text(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
        "seconds": time.time() - started, "fits": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
