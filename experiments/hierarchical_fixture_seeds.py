"""The hierarchical test fixture (``tests/test_hierarchical.simulation``: 4 groups, one sparse) over fit seeds:
divergent transitions (of 600), max R-hat, mean leapfrog steps, and the recovery test's two counts (90% intervals
covering the 15 parameters of the 3 full groups; N_opt at 1e21 inside its interval, of 3), without a redo. Run
under each jax version (its rounding changes the draws); measured for the fixture's redo (docs: the fixture's
comment; twenty-fourth session, jax 0.12.0.1 and 0.12.1). A measurement, no rule.

    python experiments/hierarchical_fixture_seeds.py [--seeds 0 1 ... 11]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401  (the suite's settings)
from test_hierarchical import FAST, LAW, _group_truths, _simulate  # noqa: E402

from bayes_scaling.hierarchical import fit_hierarchical  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(12)))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import jax

    truths = _group_truths(4, seed=3)
    runs = _simulate(truths, seed=4, sparse_runs=6)
    rows = []
    for seed in args.seeds:
        fit = fit_hierarchical(runs, pooling="partial", seed=seed, **FAST)
        covered = n_opt = 0
        for g, truth in enumerate(truths[:3]):
            post = fit.groups[f"g{g}"]
            for name, value in truth.items():
                lo, hi = np.quantile(post.draws(name), [0.05, 0.95])
                covered += int(lo <= value <= hi)
            row = post.frontier([1e21]).iloc[0]
            n_opt += int(row["N_opt_lo"] <= float(LAW.optimal_allocation(truth, 1e21)[0]) <= row["N_opt_hi"])
        d = fit.diagnostics
        rows.append({"seed": seed, "divergences": int(d["divergences"]), "max_rhat": float(d["max_rhat"]),
                     "mean_steps": float(d["mean_steps"]), "covered_of_15": covered, "n_opt_of_3": n_opt})
        print(rows[-1], flush=True)
    out = ROOT / "experiments" / "results" / f"hierarchical_fixture_seeds_jax{jax.__version__}.json"
    out.write_text(json.dumps({"machine": f"{os.cpu_count()} cores, {os.uname().machine}", "jax": jax.__version__,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
