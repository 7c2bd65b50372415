"""Issue 15's targets read per Marin dataset, as the issue states them ("each Marin dataset").

``bench_extrapolation.py`` pools Marin's three datasets into one source (134 held-out runs). This
script scores each dataset on its own with the same split (top three IsoFLOP budgets held out), the
same models (the default extrapolating model, the plain law, the CSL-style conformal baseline) and
the same metrics (90% coverage, mean 90% interval score, N_opt at the top held-out budget inside the
90% interval), by calling ``bench_extrapolation``'s own scoring functions on one dataset at a time.
A measurement, no rule: nothing is chosen by it.

    python experiments/marin_per_dataset.py [--out experiments/results/marin_per_dataset.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extrapolation import conformal_scores, model_scores  # noqa: E402

from bayes_scaling.fitting.nuts import fit_nuts  # noqa: E402
from bayes_scaling.runs import load_marin  # noqa: E402
from bayes_scaling.runs.table import Runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "marin_per_dataset.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs = load_marin().for_fit()
    load_before = os.getloadavg()
    results = {}
    for name in runs.groups:
        one = Runs(runs.frame[runs.frame["group"] == name].reset_index(drop=True))
        results[name] = {
            "default": model_scores(one, lambda r: fit_nuts(r)),
            "plain": model_scores(one, lambda r: fit_nuts(r, model="plain")),
            "conformal": conformal_scores(one),
        }
        row = results[name]
        print(f"{name}: " + "; ".join(
            f"{model} {s['coverage']:.1%} of {s['n']}, IS {s['interval_score']:.3f}"
            + (f", N_opt {s['n_opt_top_inside']}/{s['n_opt_top_judged']}" if "n_opt_top_judged" in s else "")
            for model, s in row.items()), flush=True)
    out = {"machine": f"{os.cpu_count()} cores, {os.uname().machine}",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(),
           "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
           "split": "top three IsoFLOP budgets of each dataset held out (bench_extrapolation's standard split)",
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
