"""How reliably ``fit_wsd`` samples the WSD test's simulation (17 runs: cosine runs and branches of 4
trunks, ``tests/test_wsd.simulated_runs``), over fit seeds.

Per seed: the split R-hat of the WSD-vs-cosine offset delta (2 chains: each halved), the divergent
transitions, and the largest error of the trunks' effect means against their truth, at the test's
settings (2 chains x 300 draws after 300 warm-up, normal likelihood), each with and without
``pool_step_size="min"`` (each chain's step size capped at the chains' smallest after the warm-up,
the hierarchical fit's default); and at the defaults (4 x 1,000), the diagnosis's verdict. A
measurement for docs/training.md ("A limit"), no rule.

    python experiments/wsd_sampling_check.py [--seeds 1 2 ... 9] [--default-seeds 1 ... 6]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401  (the suite's settings: fits keep their draws)
from test_wsd import EFFECTS, simulated_runs  # noqa: E402

import bayes_scaling.wsd as wsd  # noqa: E402
from bayes_scaling.diagnostics import diagnose  # noqa: E402
from bayes_scaling.fitting.settings import SamplerSettings  # noqa: E402
from bayes_scaling.models.likelihood import Likelihood  # noqa: E402

OUT = ROOT / "experiments" / "results" / "wsd_sampling_check.json"


def split_rhat(x: np.ndarray, chains: int) -> float:
    """Split R-hat of one scalar: each chain's draws halved, between- against within-half variance."""
    x = np.asarray(x).reshape(chains, -1)
    h = x.shape[1] // 2
    halves = np.concatenate([x[:, :h], x[:, h:2 * h]])
    within, between = halves.var(1, ddof=1).mean(), h * halves.mean(1).var(ddof=1)
    return float(np.sqrt(((h - 1) / h * within + between / h) / within))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 10)))
    parser.add_argument("--default-seeds", type=int, nargs="+", default=list(range(1, 7)))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import jax

    original, runs, rows = wsd.sample, simulated_runs(), []
    for pool in (None, "min"):
        wsd.sample = functools.partial(original, pool_step_size=pool)
        for seed in args.seeds:
            fit = wsd.fit_wsd(runs, likelihood=Likelihood("normal"),
                              settings=SamplerSettings(chains=2, warmup=300, draws=300, seed=seed))
            diverging = np.asarray(fit.posterior.idata["sample_stats"]["diverging"])
            rows.append({"settings": "2 x 300", "pool_step_size": pool, "seed": seed,
                         "offset_split_rhat": split_rhat(fit.offset, 2),
                         "divergences_per_chain": diverging.sum(axis=1).tolist(),
                         "max_effect_error": float(np.abs(fit.trunk_effects()["mean"].values - np.array(EFFECTS)).max())})
            print(rows[-1], flush=True)
    wsd.sample = original
    for seed in args.default_seeds:
        d = diagnose(wsd.fit_wsd(runs, settings=SamplerSettings(seed=seed)).posterior)
        rows.append({"settings": "defaults", "seed": seed, "verdict_ok": bool(d.ok), "verdict": d.verdict()[:300]})
        print(rows[-1], flush=True)
    out = {"machine": f"{os.cpu_count()} cores, {os.uname().machine}", "jax": jax.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
