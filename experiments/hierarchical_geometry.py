"""Where the hierarchical Marin fit's leapfrog steps go: the default model against the same model
without budget offsets and with detrended offsets (which have no common level and no trend in
log C, so the level that the likelihood cannot tell from a common shift of every group's log E,
log A and log B is absent). Same data (``load_marin().for_fit()``), sampler defaults
(4 chains x (500 + 500), target acceptance 0.9), one seed, fitted in turn in one process.

Writes experiments/results/hierarchical_geometry.json. Usage:
    nice -n 10 .venv/bin/python experiments/hierarchical_geometry.py [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.runs import load_marin

RESULTS = Path(__file__).resolve().parent / "results" / "hierarchical_geometry.json"
VARIANTS = {"default (free offsets by budget)": {}, "no offsets": {"offset_by": None},
            "detrended offsets": {"detrend_offsets": True}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = load_marin().for_fit()
    out = {"machine": "2-core CPU, shared with other jobs", "seed": args.seed, "fits": {}}
    for name, options in VARIANTS.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_hierarchical(runs, seed=args.seed, **options)
        out["fits"][name] = {"seconds": time.perf_counter() - start, **fit.diagnostics}
        print(name, out["fits"][name], flush=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
