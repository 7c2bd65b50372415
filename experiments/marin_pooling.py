"""Partial, no and complete pooling on the bundled Marin data: choosing the default, a held-out
check, the sampler before and after, prior sensitivity.

    .venv/bin/python experiments/marin_pooling.py [--quick]

1. Choosing the default (without the 3e20-FLOP runs). Candidates, declared here before any was
   scored: partial pooling of all five parameters with wide spreads (the first default) or narrow
   ones, and the same with the exponents shared; later (issue 6, before any of their scores was
   recorded) wide spreads and "E only", each with per-budget offsets on log-loss shared by the
   datasets (``offset_by="budget"``). On the runs below 3e20 FLOPs only, each dataset in
   turn keeps its two lowest budgets and its 1.8e20-FLOP runs are predicted (10x extrapolation).
   Rule: among candidates whose 90% intervals cover at least 80% of these runs (all datasets
   together), the one with the smallest mean interval width; if none does, the highest coverage.
2. Held-out check, for each dataset in turn: keep only its two lowest (unflagged) budgets, all runs
   of the other two; predict its 3e20-FLOP runs. Coverage and widths of the 90% predictive
   intervals for every candidate, the "E only" variant (A, B, alpha, beta shared) and no pooling.
   Offset fits predict with the target budget's fitted offset (the other datasets ran there).
3. Per-dataset frontiers (N_opt, L_opt with 90% intervals) on all runs under the same fits and
   complete pooling; the population's frontier for a new dataset.
4. Sampler before/after for the selected default: the first sampler (mean-log centre, non-centred
   groups) against the current one (pivot centre, per-group centring), same model and chains.
5. Prior sensitivity (``bayes_scaling.prior_sets``): N_opt(C) under the weak, Hoffmann and Epoch
   prior sets, pooled Chinchilla law, on the Chinchilla data and on each Marin dataset.

Writes ``experiments/results/marin_pooling.md``. ``--quick`` uses short chains (a smoke run).

``--unseen-budget`` runs only a check the sections above lack, written to
``experiments/results/marin_unseen_budget.md``: every dataset keeps its runs below 3e20 FLOPs and all
3e20-FLOP runs are predicted, a budget no fit has seen, so offset fits draw a fresh offset per draw.
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

from bayes_scaling.hierarchical import OFFSET_SCALE, fit_hierarchical
from bayes_scaling.prior_sets import prior_sensitivity
from bayes_scaling.runs import load_chinchilla, load_marin
from bayes_scaling.runs.table import Runs

OUT = Path(__file__).parent / "results" / "marin_pooling.md"
UNSEEN_OUT = Path(__file__).parent / "results" / "marin_unseen_budget.md"
SMOKE_OUT = Path("/tmp") / "marin_pooling_smoke.md"
BUDGETS = [1e21, 1e22, 1e23]
HELD_OUT_BUDGET = 3e20
SELECTION_BUDGET = 1.8e20  # the held-out budget of the selection check, which never sees 3e20
LEVEL = 0.9
MIN_SELECTION_COVERAGE = 0.8
WIDE = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}  # the first default
NARROW = {"E": 0.1, "A": 0.1, "B": 0.1, "alpha": 0.05, "beta": 0.05}
E_ONLY = ("A", "B", "alpha", "beta")  # shared: the groups differ only in E
OFFSETS = {"offset_by": "budget"}  # per-budget offsets on log-loss, shared by the datasets
NO_OFFSETS = {"offset_by": None}  # the library's default ("auto") would take Marin's budget column
CANDIDATES = {  # for the default: group-level E, A, B (alpha, beta) with learned spreads
    "partial, wide spreads": {"pooling": "partial", "spreads": WIDE, **NO_OFFSETS},
    "partial, narrow spreads": {"pooling": "partial", "spreads": NARROW, **NO_OFFSETS},
    "partial, shared exponents, wide": {"pooling": "partial", "share_exponents": True, "spreads": WIDE, **NO_OFFSETS},
    "partial, shared exponents, narrow": {"pooling": "partial", "share_exponents": True, "spreads": NARROW,
                                          **NO_OFFSETS},
    # added with the budget offsets, before any of their held-out scores was recorded
    "partial, wide spreads, budget offsets": {"pooling": "partial", "spreads": WIDE, **OFFSETS},
    "partial, E only, budget offsets": {"pooling": "partial", "share": E_ONLY, **OFFSETS},
}
VARIANTS = {
    **CANDIDATES,
    "partial, E only": {"pooling": "partial", "share": E_ONLY, **NO_OFFSETS},
    "none": {"pooling": "none", **NO_OFFSETS},
}
FRONTIER_FITS = {**VARIANTS, "complete": {"pooling": "complete", **NO_OFFSETS}}
BEFORE = {"centre": "mean", "centring": "none"}  # the sampler before the fix


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs the optional tabulate package)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def frontier_section(runs: Runs, fits: dict, chains: dict) -> tuple[str, dict]:
    rows, diag = [], {}
    for label, kwargs in fits.items():
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


def held_out_scores(runs: Runs, fits: dict, chains: dict, predict_budget: float, tag: str):
    """For each dataset: keep its two lowest budgets (others: all runs), fit each of ``fits``, score
    the 90% predictive intervals (noise included) for its ``predict_budget`` runs."""
    frame = runs.frame
    rows, diag = [], {}
    for dataset in runs.groups:
        mine = frame["group"] == dataset
        low = np.sort(frame.loc[mine, "budget"].unique())[:2]
        keep = ~mine | frame["budget"].isin(low)
        target = frame[mine & np.isclose(frame["budget"], predict_budget)]
        train = Runs(frame[keep].reset_index(drop=True))
        for label, kwargs in fits.items():
            start = time.perf_counter()
            fit = fit_hierarchical(train, **kwargs, **chains)
            diag[f"{tag} {dataset}: {label}"] = {**fit.diagnostics, "seconds": time.perf_counter() - start}
            # offset fits: the target budget's offset as fitted from the other datasets' runs there
            pred = fit.groups[dataset].predict(target["N"].to_numpy(), target["D"].to_numpy(), noise=True, seed=1,
                                               offset_at=target["budget"].to_numpy())
            lo, hi = np.quantile(pred, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
            loss = target["loss"].to_numpy()
            missed = ~((lo <= loss) & (loss <= hi))
            rows.append({
                "dataset": dataset, "fit": label, "kept budgets": ", ".join(f"{b:.1e}" for b in low),
                "covered": int(np.sum(~missed)), "runs": len(loss), "mean width": float(np.mean(hi - lo)),
                "max width": float(np.max(hi - lo)),
                "mean abs error": float(np.mean(np.abs(np.median(pred, axis=0) - loss))),
                "missed (N)": ", ".join(f"{n:.3g}" for n in target["N"].to_numpy()[missed]) or "-",
            })
            print(f"{tag} {dataset}: {label} {rows[-1]}", flush=True)
    return pd.DataFrame(rows), diag


def score_table(scores: pd.DataFrame) -> str:
    """Per dataset and fit: coverage, widths, and the mean width over no pooling's."""
    none = scores[scores["fit"] == "none"].set_index("dataset")["mean width"]
    out = scores.assign(
        covered=[f"{c}/{n}" for c, n in zip(scores["covered"], scores["runs"])],
        **{"width / none": [w / none[d] if d in none.index else float("nan")
                            for d, w in zip(scores["dataset"], scores["mean width"])]},
    )
    for col in ("mean width", "max width", "mean abs error"):
        out[col] = out[col].map(lambda v: f"{v:.4f}")
    out["width / none"] = out["width / none"].map(lambda v: f"{v:.2f}")
    cols = ["dataset", "kept budgets", "fit", "covered", "mean width", "max width", "width / none",
            "mean abs error", "missed (N)"]
    return markdown(out[cols])


def select_default(scores: pd.DataFrame) -> tuple[str, str]:
    """The rule in the module docstring, applied to the candidates' selection-check scores."""
    totals = scores[scores["fit"].isin(list(CANDIDATES))].groupby("fit", sort=False).agg(
        covered=("covered", "sum"), runs=("runs", "sum"), width=("mean width", "mean"))
    totals["coverage"] = totals["covered"] / totals["runs"]
    eligible = totals[totals["coverage"] >= MIN_SELECTION_COVERAGE]
    chosen = eligible["width"].idxmin() if len(eligible) else totals["coverage"].idxmax()
    lines = [f"| {name} | {int(r.covered)}/{int(r.runs)} ({r.coverage:.0%}) | {r.width:.4f} |"
             for name, r in totals.iterrows()]
    table = "| candidate | covered (all datasets) | mean width |\n|---|---|---|\n" + "\n".join(lines)
    return chosen, table


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


def unseen_budget(marin: Runs, fits: dict, chains: dict, tag: str) -> str:
    """All datasets keep their runs below 3e20 FLOPs; each dataset's 3e20 runs are predicted
    (offset fits: a budget they never saw, so a fresh offset per draw)."""
    frame = marin.frame
    train = Runs(frame[frame["budget"] < HELD_OUT_BUDGET].reset_index(drop=True))
    rows = []
    for label, kwargs in fits.items():
        start = time.perf_counter()
        fit = fit_hierarchical(train, **kwargs, **chains)
        d, seconds = fit.diagnostics, time.perf_counter() - start
        for dataset in marin.groups:
            target = frame[(frame["group"] == dataset) & np.isclose(frame["budget"], HELD_OUT_BUDGET)]
            pred = fit.groups[dataset].predict(target["N"].to_numpy(), target["D"].to_numpy(), noise=True, seed=1,
                                               offset_at=target["budget"].to_numpy())
            lo, med, hi = np.quantile(pred, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2], axis=0)
            loss = target["loss"].to_numpy()
            rows.append({"fit": label, "dataset": dataset,
                         "covered": f"{int(np.sum((lo <= loss) & (loss <= hi)))}/{len(loss)}",
                         "mean width": f"{np.mean(hi - lo):.4f}",
                         "mean error (median - observed)": f"{np.mean(med - loss):+.4f}",
                         "mean abs error": f"{np.mean(np.abs(med - loss)):.4f}",
                         "divergences": d["divergences"], "max R-hat": f"{d['max_rhat']:.3f}",
                         "min bulk ESS": f"{d['min_ess']:.0f}", "seconds": f"{seconds:.0f}"})
            print(f"{tag}: {rows[-1]}", flush=True)
    return markdown(pd.DataFrame(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short chains: a smoke run, not for the record")
    parser.add_argument("--smoke", action="store_true", help="tiny chains: checks the script runs, nothing else")
    parser.add_argument("--unseen-budget", action="store_true",
                        help=f"only the unseen-budget check (writes {UNSEEN_OUT.name})")
    args = parser.parse_args()
    draws = 20 if args.smoke else 150 if args.quick else 500
    warmup = 20 if args.smoke else 300 if args.quick else 500
    hier = {"num_chains": 4, "num_warmup": warmup, "num_draws": draws, "seed": 0}
    pooled = {"num_chains": 4, "num_warmup": draws, "num_draws": draws, "seed": 0}

    marin = load_marin().for_fit()
    start = time.perf_counter()
    if args.unseen_budget:
        fits = {k: VARIANTS[k] for k in ("partial, wide spreads", "partial, wide spreads, budget offsets",
                                         "partial, E only", "partial, E only, budget offsets", "none")}
        table = unseen_budget(marin, fits, hier, "unseen budget")
        out = Path("/tmp/marin_unseen_budget_smoke.md") if args.smoke or args.quick else UNSEEN_OUT
        out.write_text(f"""# Marin: predicting a budget no fit has seen

Generated by `experiments/marin_pooling.py --unseen-budget`{' (short chains: not for the record)' if args.quick or args.smoke else ''};
machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs; total {time.perf_counter() - start:.0f} s.
Hierarchical fits: 4 chains x {hier["num_warmup"]} warm-up + {draws} draws, Student-t likelihood.

Every dataset keeps its runs below {HELD_OUT_BUDGET:.0e} FLOPs (all five lower budgets); each
dataset's fifteen {HELD_OUT_BUDGET:.0e}-FLOP runs are predicted (90% predictive intervals, noise
included). No fit saw that budget, so the budget-offset fits add a fresh offset
delta ~ Normal(0, tau_o^2) per draw. Spreads: wide = {WIDE}. Sampler columns are per fit (one
fit per row group, shared by its datasets).

{table}
""")
        print(f"wrote {out}")
        return
    below = Runs(marin.frame[marin.frame["budget"] < HELD_OUT_BUDGET].reset_index(drop=True))
    selection, selection_diag = held_out_scores(below, {**CANDIDATES, "none": VARIANTS["none"]}, hier,
                                                SELECTION_BUDGET, "selection, held out")
    chosen, totals_md = select_default(selection)
    print(f"selected default: {chosen}", flush=True)
    held, held_diag = held_out_scores(marin, VARIANTS, hier, HELD_OUT_BUDGET, "held out")
    frontier_md, frontier_diag = frontier_section(marin, FRONTIER_FITS, hier)

    sampler_rows = []
    for label, runs in [("all runs", marin)] + [
        (f"held out {d}", Runs(marin.frame[(marin.frame["group"] != d) | marin.frame["budget"].isin(
            np.sort(marin.frame.loc[marin.frame["group"] == d, "budget"].unique())[:2])].reset_index(drop=True)))
        for d in marin.groups
    ]:
        for when, extra in (("before", BEFORE), ("after", {})):
            t0 = time.perf_counter()
            fit = fit_hierarchical(runs, **CANDIDATES[chosen], **extra, **hier)
            d = fit.diagnostics
            sampler_rows.append({"data": label, "sampler": when, "divergences": d["divergences"],
                                 "max R-hat": f"{d['max_rhat']:.3f}", "min bulk ESS": f"{d['min_ess']:.0f}",
                                 "mean leapfrog steps": f"{d['mean_steps']:.0f}",
                                 "seconds": f"{time.perf_counter() - t0:.0f}"})
            print(f"sampler {label} {when}: {sampler_rows[-1]}", flush=True)
    sens_md = sensitivity_section(marin, pooled)
    total = time.perf_counter() - start

    diag_rows = [{"fit": k, "divergences": v["divergences"], "max R-hat": f"{v['max_rhat']:.3f}",
                  "min bulk ESS": f"{v['min_ess']:.0f}", "mean leapfrog steps": f"{v['mean_steps']:.0f}",
                  "seconds": f"{v['seconds']:.0f}"}
                 for k, v in {**frontier_diag, **held_diag, **selection_diag}.items()]
    text = f"""# Marin: partial, no and complete pooling

Generated by `experiments/marin_pooling.py`{' --quick/--smoke (short chains: not for the record)' if args.quick or args.smoke else ''};
{len(marin)} unflagged Marin runs (3 datasets, one architecture). Hierarchical fits: 4 chains x
{hier["num_warmup"]} warm-up + {draws} draws, Student-t likelihood (nu = 5). Machine: {platform.machine()},
{os.cpu_count()} CPU cores shared with other jobs, {platform.python_version()}; total {total:.0f} s.

Spreads (HalfNormal scales of tau, log units): wide = {WIDE}; narrow = {NARROW}.
`budget offsets`: `offset_by="budget"`, one offset on log-loss per IsoFLOP budget shared by the
datasets, delta_b ~ Normal(0, tau_o^2), tau_o ~ HalfNormal({OFFSET_SCALE}); predictions at a budget
seen in the fit use its fitted offset. Frontiers (section 3) are the laws' and carry no offset.

## 1. Choosing the default (no 3e20-FLOP run used)

Runs below {HELD_OUT_BUDGET:.0e} FLOPs only. Each dataset in turn keeps its two lowest budgets; the
90% predictive intervals (noise included) for its {SELECTION_BUDGET:.1e}-FLOP runs are scored. Rule:
among candidates covering at least {MIN_SELECTION_COVERAGE:.0%} of these runs, the narrowest on
average. **Selected: `{chosen}`.**

{totals_md}

{score_table(selection)}

## 2. Held-out check

Each dataset in turn keeps only its two lowest unflagged budgets (the other datasets keep all
runs); the table scores that dataset's 90% posterior predictive intervals (observation noise
included) for its {HELD_OUT_BUDGET:.0e}-FLOP runs, which the fit never saw. `width / none`: mean
width over no pooling's for the same dataset.

{score_table(held)}

## 3. Per-dataset frontiers on all runs (90% credible intervals)

{frontier_md}

## 4. Sampler before and after, selected default (`{chosen}`)

before: centre at mean log N, log D, every group non-centred; after: pivot centre, per-group
centring (`centring="auto"`). Same model, chains, warm-up and draws.

{markdown(pd.DataFrame(sampler_rows))}

## 5. Prior sensitivity (pooled Chinchilla law, NUTS 4 x {draws})

`N_opt / weak`: median N_opt under the set over the median under the weak defaults.

{sens_md}

## Sampler diagnostics (all hierarchical fits above)

{markdown(pd.DataFrame(diag_rows))}
"""
    out = SMOKE_OUT if args.smoke else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} in {total:.0f} s")


if __name__ == "__main__":
    main()
