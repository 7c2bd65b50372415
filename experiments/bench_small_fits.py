"""Default fits that come back short of effective draws: how often, and what longer chains buy.

``fit_nuts`` checks its draws (``diagnostics.diagnose``: R-hat <= 1.01, bulk and tail ESS >= 100 per
chain, no divergence, E-BFMI). With few runs (the issue's "works from about 25 runs up") the default
4 x 1,000 draws often pass every check but the ESS, and the verdict then says "do not trust the
intervals yet". ``SamplerSettings.more_draws`` redoes such a fit (divergence-free, R-hat <= 1.1)
with twice the draws per chain, at most twice (``fitting.nuts._more_draws``); the ESS thresholds are
per chain, so longer chains, not more of them.

Fits, each with ``more_draws`` off and on, side by side (same seed, same process, interleaved), the
default model (extrapolating), seed 0:
* 20 random subsets of 25 runs and 20 of 40 runs of the bundled Chinchilla data (``random_state``
  100-119: not the states 0-7 the option was prototyped on, on 25-run subsets, where 3 of 8 passed
  without it and 8 of 8 with it);
* every group of the development data: Chinchilla (240 runs), Marin's 3 datasets, Porian's 15
  sweeps, Gadre's 3 datasets.
Recorded per fit: the verdict (ok), the failed checks, max R-hat, min bulk and tail ESS,
divergences, wall seconds, and whether the option redid the fit.

THE RULE (written before the results): ``more_draws`` stays the default (on) if (a) on the random
subsets the share of fits whose verdict passes rises by at least 20 points, (b) no group of the
development data that passes without it fails with it, (c) on the development groups the option
redoes no fit that passes without it (their draws are then identical), and (d) the median over the
random subsets of the wall-time ratio (on / off) is at most 2.0. Otherwise it is turned off by
default and stays an option.

``--retry-after``: the same fits (``more_draws`` on), with ``fitting.nuts.RETRY_AFTER_MORE_DRAWS``
off and on: longer chains that find a divergence are redone once more at target acceptance 0.99. The
main run (above) found 3 such fits of 62 (two 25-run subsets, Gadre's ``rw_original``). THE RULE
(written before its results): the constant is turned on if (a) more verdicts pass with it over the
subsets and groups together, (b) no fit that passes without it fails with it, and (c) the median
wall-time ratio (on / off) over all fits is at most 1.1. Writes
experiments/results/bench_small_fits_retry_after.json.

``--seeds S ...`` (fifteenth session; a measurement, no rule rides on it): every development group fitted at
the library's defaults (``fit_nuts``: the extrapolating model, ``more_draws`` and both retries on) with each
seed given, to check issue 15's target "zero divergences and R-hat <= 1.01 at defaults on every group" beyond
the one seed the main run used. Writes experiments/results/bench_small_fits_seeds.json.

Run: .venv/bin/python experiments/bench_small_fits.py [--subsets 20] [--retry-after | --seeds S ...] [--out FILE]
Writes experiments/results/bench_small_fits.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_small_fits.json"
SIZES = (25, 40)
STATES = range(100, 120)


def one_fit(runs, more_draws: bool, retry_after: bool | None = None, seed: int = 0) -> dict:
    from bayes_scaling.diagnostics import SamplerWarning, diagnose
    from bayes_scaling.fitting import nuts
    from bayes_scaling.fitting.nuts import fit_nuts

    if retry_after is not None:
        nuts.RETRY_AFTER_MORE_DRAWS = retry_after
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        post = fit_nuts(runs, seed=seed, more_draws=more_draws)
    seconds = time.perf_counter() - start
    d = diagnose(post)
    return {"ok": bool(d.ok), "failed": [p.check for p in d.problems if not p.efficiency],
            "max_rhat": float(d.table["r_hat"].max()), "min_ess_bulk": float(d.table["ess_bulk"].min()),
            "min_ess_tail": float(d.table["ess_tail"].min()), "divergences": int(d.divergences),
            "seconds": seconds, "redone": post.meta.get("more_draws"), "retried": post.meta.get("retried"),
            "median_E": float(np.median(post.draws("E")))}


def both(runs, retry_after: bool = False) -> dict:
    if retry_after:
        return {"off": one_fit(runs, True, retry_after=False), "on": one_fit(runs, True, retry_after=True)}
    return {"off": one_fit(runs, False), "on": one_fit(runs, True)}


def development_groups():
    from bayes_scaling.runs import load_chinchilla, load_gadre, load_marin, load_porian
    from bayes_scaling.runs.table import Runs

    yield "chinchilla", load_chinchilla().for_fit()
    for name, load in (("marin", load_marin), ("porian", load_porian), ("gadre", load_gadre)):
        runs = load().for_fit()
        for group in runs.groups:
            yield f"{name}/{group}", Runs(runs.frame[runs.frame["group"] == group].reset_index(drop=True))


def judge(out: dict) -> dict:
    subsets = [v for v in out["subsets"].values()]
    share = {k: float(np.mean([s[k]["ok"] for s in subsets])) for k in ("off", "on")}
    ratios = [s["on"]["seconds"] / s["off"]["seconds"] for s in subsets]
    groups = out["groups"].values()
    a = share["on"] - share["off"] >= 0.20
    b = not any(g["off"]["ok"] and not g["on"]["ok"] for g in groups)
    c = not any(g["off"]["ok"] and g["on"]["redone"] for g in groups)
    d = float(np.median(ratios)) <= 2.0
    return {"pass_share_off": share["off"], "pass_share_on": share["on"],
            "median_seconds_ratio_on_off": float(np.median(ratios)),
            "groups_ok_off": sum(g["off"]["ok"] for g in groups), "groups_ok_on": sum(g["on"]["ok"] for g in groups),
            "groups": len(out["groups"]), "a": a, "b": b, "c": c, "d": d,
            "keep_default_on": bool(a and b and c and d)}


def judge_retry_after(out: dict) -> dict:
    fits = [*out["subsets"].values(), *out["groups"].values()]
    ok = {k: sum(f[k]["ok"] for f in fits) for k in ("off", "on")}
    ratio = float(np.median([f["on"]["seconds"] / f["off"]["seconds"] for f in fits]))
    a, b = ok["on"] > ok["off"], not any(f["off"]["ok"] and not f["on"]["ok"] for f in fits)
    c = ratio <= 1.1
    return {"fits": len(fits), "ok_off": ok["off"], "ok_on": ok["on"], "median_seconds_ratio_on_off": ratio,
            "a": a, "b": b, "c": c, "turn_on": bool(a and b and c)}


def over_seeds(seeds) -> dict:
    """Every development group at the defaults, once per seed (``--seeds``)."""
    out = {"machine": "x86_64, 2 cores (the project's CPU machine, shared)", "load_avg_1min_at_start": os.getloadavg()[0],
           "seeds": list(seeds), "groups": {}}
    for name, runs in development_groups():
        out["groups"][name] = fits = {str(seed): one_fit(runs, True, seed=seed) for seed in seeds}
        print(f"{name}: " + ", ".join(f"seed {k} {'ok' if f['ok'] else f['failed']} (R-hat {f['max_rhat']:.3f}, "
                                      f"{f['divergences']} div.{', redone' if f['redone'] else ''}"
                                      f"{', retried' if f['retried'] else ''})" for k, f in fits.items()), flush=True)
    fits = [f for g in out["groups"].values() for f in g.values()]
    out["summary"] = {
        "fits": len(fits), "ok": sum(f["ok"] for f in fits),
        "with_divergences": sum(f["divergences"] > 0 for f in fits),
        "rhat_over_1.01": sum(f["max_rhat"] > 1.01 for f in fits),
        "not_ok": [f"{name} seed {k}: {f['failed']}" for name, g in out["groups"].items() for k, f in g.items() if not f["ok"]],
        "median_seconds": float(np.median([f["seconds"] for f in fits])),
    }
    out["load_avg_1min_at_end"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subsets", type=int, default=len(STATES), help="random subsets per size (default 20)")
    parser.add_argument("--retry-after", action="store_true",
                        help="compare RETRY_AFTER_MORE_DRAWS off and on (more_draws on in both)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="every development group at the defaults with each of these seeds (no subsets)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.seeds:
        out = over_seeds(args.seeds)
        print(json.dumps(out["summary"], indent=1))
        path = args.out or RESULTS.with_name("bench_small_fits_seeds.json")
        path.write_text(json.dumps(out, indent=1))
        print(f"results: {path}")
        return
    args.out = args.out or (RESULTS.with_name("bench_small_fits_retry_after.json") if args.retry_after else RESULTS)

    from bayes_scaling.runs import load_chinchilla
    from bayes_scaling.runs.table import Runs

    chinchilla = load_chinchilla().for_fit()
    out = {"machine": "x86_64, 2 cores (the project's CPU machine, shared)", "load_avg_1min_at_start": os.getloadavg()[0],
           "subsets": {}, "groups": {}}
    for size in SIZES:
        for state in list(STATES)[: args.subsets]:
            sub = Runs(chinchilla.frame.sample(size, random_state=state).reset_index(drop=True))
            out["subsets"][f"{size}/{state}"] = r = both(sub, args.retry_after)
            print(f"subset {size}/{state}: off {'ok' if r['off']['ok'] else r['off']['failed']} {r['off']['seconds']:.1f} s, "
                  f"on {'ok' if r['on']['ok'] else r['on']['failed']} {r['on']['seconds']:.1f} s", flush=True)
    for name, runs in development_groups():
        out["groups"][name] = r = both(runs, args.retry_after)
        print(f"{name}: off {'ok' if r['off']['ok'] else r['off']['failed']}, on {'ok' if r['on']['ok'] else r['on']['failed']}"
              f"{' (redone)' if r['on']['redone'] else ''}", flush=True)
    out["load_avg_1min_at_end"] = os.getloadavg()[0]
    out["verdict"] = judge_retry_after(out) if args.retry_after else judge(out)
    print(json.dumps(out["verdict"], indent=1))
    args.out.write_text(json.dumps(out, indent=1))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
