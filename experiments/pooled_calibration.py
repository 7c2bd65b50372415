"""The drift calibrated on every group's folds together, against each group's own (twenty-eighth session; a
measurement, no rule).

The default model learns the drift beyond a group's runs from that group's leave-future-out folds alone. Marin's
training runs hold three IsoFLOP budgets per dataset, so each dataset's calibration has one fold, and the drift's
scales keep most of their half-Cauchy priors' tails (``level_drift_decomposition.py --source marin``: the level's
spread is most of the width). If the law extrapolates alike on the three datasets, their folds together say more:
here each dataset's fit gets a drift posterior computed from the folds of all three (``ScalePosterior.from_folds`` on
the union of their fold residuals, each dataset's own range, reach and draws otherwise unchanged). Only the
datasets' training runs enter any fold (every dataset's held-out budgets are the same top three), so nothing
held out reaches the calibration. Scored as ``marin_per_dataset.py`` scores (bench_extrapolation's split and
``model_scores``).

    python experiments/pooled_calibration.py [--source marin|gadre] [--out FILE]
Writes experiments/results/pooled_calibration_<source>.json.
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

from bench_extrapolation import model_scores  # noqa: E402

from bayes_scaling import extrapolation  # noqa: E402
from bayes_scaling.fitting.nuts import fit_nuts  # noqa: E402
from bayes_scaling.runs import load_gadre, load_marin  # noqa: E402
from bayes_scaling.runs.table import Runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = extrapolation.ScalePosterior.from_folds.__func__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("marin", "gadre"), default="marin")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out_path = args.out or ROOT / "experiments" / "results" / f"pooled_calibration_{args.source}.json"
    runs = {"marin": load_marin, "gadre": load_gadre}[args.source]().for_fit()
    load_before = os.getloadavg()
    recorded: dict[str, list] = {}
    current = {"group": None, "pooled": False}

    def from_folds(cls, folds, prior_scales=None, shared=None, basis=None):
        if current["pooled"]:
            folds = [f for group in recorded.values() for f in group]
        else:
            recorded[current["group"]] = list(folds)
        return ORIGINAL(cls, folds, prior_scales, shared, basis)

    extrapolation.ScalePosterior.from_folds = classmethod(from_folds)
    one = {g: Runs(runs.frame[runs.frame["group"] == g].reset_index(drop=True)) for g in runs.groups}
    results = {}
    for g in runs.groups:  # the default, recording each group's folds (its training runs' calibration)
        current["group"] = g
        results[g] = {"default": model_scores(one[g], lambda r: fit_nuts(r))}
    current["pooled"] = True
    for g in runs.groups:
        current["group"] = g
        results[g]["pooled calibration"] = model_scores(one[g], lambda r: fit_nuts(r))
        results[g]["folds"] = {k: len(v) for k, v in recorded.items()}
        print(f"{g}: " + "; ".join(f"{m} {s['coverage']:.1%} of {s['n']}, IS {s['interval_score']:.3f}, CRPS "
                                   f"{s['crps']:.4f}" + (f", N_opt {s['n_opt_top_inside']}/{s['n_opt_top_judged']}"
                                                         if "n_opt_top_judged" in s else "")
                                   for m, s in results[g].items() if m != "folds"), flush=True)
    pooled = {m: {"coverage": sum(results[g][m]["coverage"] * results[g][m]["n"] for g in results)
                  / sum(results[g][m]["n"] for g in results),
                  "interval_score": sum(results[g][m]["interval_score"] * results[g][m]["n"] for g in results)
                  / sum(results[g][m]["n"] for g in results)} for m in ("default", "pooled calibration")}
    print("all groups:", json.dumps(pooled))
    out = {"machine": f"{os.cpu_count()} cores, {os.uname().machine}",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(),
           "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
           "split": "bench_extrapolation's standard split, one group at a time", "results": results, "pooled": pooled}
    out_path.write_text(json.dumps(out, indent=2))
    print(f"results: {out_path}")


if __name__ == "__main__":
    main()
