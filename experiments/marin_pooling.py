"""Partial, no and complete pooling on the bundled Marin data, a held-out check, prior sensitivity.

    .venv/bin/python experiments/marin_pooling.py [--quick]

1. Per-dataset frontiers (N_opt, L_opt with 90% intervals) under partial pooling (default spreads;
   shared exponents; "E only": A, B, alpha, beta shared, so datasets differ only in E),
   no pooling and complete pooling; the population's frontier for a new dataset.
2. Held-out check, for each dataset in turn: keep only its two lowest (unflagged) budgets, all runs of
   the other two; predict its 3e20-FLOP runs. Reports how many of them the 90% predictive intervals
   cover and the intervals' widths, for the partial-pooling variants beside no pooling.
3. Prior sensitivity (``bayes_scaling.prior_sets``): N_opt(C) under the weak, Hoffmann and Epoch
   prior sets, pooled Chinchilla law, on the Chinchilla data and on each Marin dataset.

Writes ``experiments/results/marin_pooling.md``. ``--quick`` uses short chains (a smoke run).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import bayes_scaling  # noqa: F401  (float64, host devices)
import numpy as np
import pandas as pd

from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.prior_sets import prior_sensitivity
from bayes_scaling.runs import load_chinchilla, load_marin
from bayes_scaling.runs.table import Runs

OUT = Path(__file__).parent / "results" / "marin_pooling.md"
BUDGETS = [1e21, 1e22, 1e23]
HELD_OUT_BUDGET = 3e20
LEVEL = 0.9
FITS = {
    "partial": dict(pooling="partial"),
    "partial, shared exponents": dict(pooling="partial", share_exponents=True),
    "partial, E only": dict(pooling="partial", share=("A", "B", "alpha", "beta")),
    "none": dict(pooling="none"),
    "complete": dict(pooling="complete"),
}
HELD_OUT_FITS = ("partial", "partial, shared exponents", "partial, E only", "none")


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs the optional tabulate package)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def frontier_section(runs: Runs, chains: dict) -> tuple[str, dict]:
    rows, diag = [], {}
    for label, kwargs in FITS.items():
        start = time.perf_counter()
        fit = fit_hierarchical(runs, **kwargs, **chains)
        diag[f"all runs: {label}"] = {**fit.diagnostics, "seconds": time.perf_counter() - start}
        table = fit.frontier(BUDGETS, LEVEL)
        for _, r in table.iterrows():
            rows.append({
                "pooling": label, "dataset": r["group"], "C": f"{r['budget']:.0e}",
                "N_opt (90% CI)": f"{r['N_opt_median']:.3g} [{r['N_opt_lo']:.3g}, {r['N_opt_hi']:.3g}]",
                "tokens/param": (f"{r['tokens_per_param_median']:.1f} "
                                 f"[{r['tokens_per_param_lo']:.1f}, {r['tokens_per_param_hi']:.1f}]"),
                "L_opt (90% CI)": f"{r['L_opt_median']:.3f} [{r['L_opt_lo']:.3f}, {r['L_opt_hi']:.3f}]",
            })
        print(f"frontier: {label} done", flush=True)
    return markdown(pd.DataFrame(rows)), diag


def held_out_section(runs: Runs, chains: dict) -> tuple[str, dict]:
    frame = runs.frame
    rows, diag = [], {}
    for dataset in runs.groups:
        mine = frame["group"] == dataset
        low = np.sort(frame.loc[mine, "budget"].unique())[:2]
        keep = ~mine | frame["budget"].isin(low)
        target = frame[mine & np.isclose(frame["budget"], HELD_OUT_BUDGET)]
        train = Runs(frame[keep].reset_index(drop=True))
        for pooling in HELD_OUT_FITS:
            start = time.perf_counter()
            fit = fit_hierarchical(train, **FITS[pooling], **chains)
            diag[f"held out {dataset}: {pooling}"] = {**fit.diagnostics, "seconds": time.perf_counter() - start}
            pred = fit.groups[dataset].predict(target["N"].to_numpy(), target["D"].to_numpy(), noise=True, seed=1)
            lo, hi = np.quantile(pred, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
            loss = target["loss"].to_numpy()
            missed = ~((lo <= loss) & (loss <= hi))
            rows.append({
                "held-out dataset": dataset, "kept budgets": ", ".join(f"{b:.1e}" for b in low),
                "pooling": pooling, "covered": f"{int(np.sum(~missed))}/{len(loss)}",
                "mean 90% width": f"{np.mean(hi - lo):.4f}",
                "max 90% width": f"{np.max(hi - lo):.4f}",
                "mean abs error of median": f"{np.mean(np.abs(np.median(pred, axis=0) - loss)):.4f}",
                "missed runs (N)": ", ".join(f"{n:.3g}" for n in target["N"].to_numpy()[missed]) or "-",
            })
            print(f"held out {dataset}: {pooling} done {rows[-1]}", flush=True)
    return markdown(pd.DataFrame(rows)), diag


def sensitivity_section(marin: Runs, chains: dict) -> str:
    datasets = {"chinchilla (240 runs)": load_chinchilla().for_fit()}
    for name in marin.groups:
        datasets[f"marin {name}"] = Runs(marin.frame[marin.frame["group"] == name].reset_index(drop=True))
    tables = []
    for label, runs in datasets.items():
        table = prior_sensitivity(runs, [1e22, 5.76e23], **chains)
        tables.append(table.assign(data=label))
        print(f"sensitivity: {label} done", flush=True)
    out = pd.concat(tables, ignore_index=True)
    out["budget"] = out["budget"].map(lambda b: f"{b:.3g}")
    out["N_opt (90% CI)"] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in
                             zip(out["N_opt_median"], out["N_opt_lo"], out["N_opt_hi"])]
    out["N_opt / weak"] = out["N_opt_shift"].map(lambda s: f"{s:.2f}")
    out["tokens/param"] = out["tokens_per_param_median"].map(lambda s: f"{s:.1f}")
    out["L_opt"] = out["L_opt_median"].map(lambda s: f"{s:.3f}")
    cols = ["data", "budget", "prior_set", "N_opt (90% CI)", "N_opt / weak", "tokens/param", "L_opt", "divergences"]
    return markdown(out[cols])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short chains: a smoke run, not for the record")
    args = parser.parse_args()
    draws = 150 if args.quick else 500
    hier = dict(num_chains=4, num_warmup=(300 if args.quick else 800), num_draws=draws, seed=0)
    pooled = dict(num_chains=4, num_warmup=draws, num_draws=draws, seed=0)

    marin = load_marin().for_fit()
    start = time.perf_counter()
    frontier_md, frontier_diag = frontier_section(marin, hier)
    held_md, held_diag = held_out_section(marin, hier)
    sens_md = sensitivity_section(marin, pooled)
    total = time.perf_counter() - start

    diag_rows = [{"fit": k, "divergences": v["divergences"], "max R-hat": f"{v['max_rhat']:.3f}",
                  "min bulk ESS": f"{v['min_ess']:.0f}", "mean leapfrog steps": f"{v['mean_steps']:.0f}",
                  "seconds": f"{v['seconds']:.0f}"} for k, v in {**frontier_diag, **held_diag}.items()]
    text = f"""# Marin: partial, no and complete pooling

Generated by `experiments/marin_pooling.py`{' --quick (short chains: not for the record)' if args.quick else ''};
{len(marin)} unflagged Marin runs (3 datasets, one architecture). Hierarchical fits: 4 chains x
{hier["num_warmup"]} warm-up + {draws} draws, Student-t likelihood (nu = 5). Machine: {platform.machine()},
{os.cpu_count()} CPU cores shared with other jobs, {platform.python_version()}; total {total:.0f} s.

## Per-dataset frontiers (90% credible intervals)

Pooling variants: `partial` (all five parameters partially pooled, default spreads), `partial,
shared exponents` (alpha, beta common), `partial, E only` (A, B, alpha, beta common; only the
irreducible loss E varies by dataset, partially pooled), `none` (independent fits), `complete`
(one law).

{frontier_md}

## Held-out check

Each dataset in turn keeps only its two lowest unflagged budgets (the other datasets keep all
runs); the table scores that dataset's 90% posterior predictive intervals (observation noise
included) for its {HELD_OUT_BUDGET:.0e}-FLOP runs, which the fit never saw.

{held_md}

## Prior sensitivity (pooled Chinchilla law, NUTS 4 x {draws})

`N_opt / weak`: median N_opt under the set over the median under the weak defaults.

{sens_md}

## Sampler diagnostics (hierarchical fits)

{markdown(pd.DataFrame(diag_rows))}
"""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} in {total:.0f} s")


if __name__ == "__main__":
    main()
