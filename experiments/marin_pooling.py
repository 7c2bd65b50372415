"""Partial, no and complete pooling on the bundled Marin data: choosing the default, a held-out
check, the sampler before and after, prior sensitivity.

    .venv/bin/python experiments/marin_pooling.py [--quick]

1. Choosing the default (without the 3e20-FLOP runs, apart from the unseen-budget step of the
   rule). Candidates, declared before any detrended result existed: partial pooling of all five
   parameters with wide spreads without offsets, with free per-budget offsets on log-loss shared
   by the datasets (``offset_by="budget"``, the previous default) and with detrended offsets
   (``detrend_offsets=True``: no level and no linear trend in log C across the fitted budgets);
   "E only" (A, B, alpha, beta shared) with free and with detrended offsets. (The previous run's
   narrow-spread and shared-exponent candidates, which covered 59-70% in the selection check, are
   not rerun.)
   Selection check: on the runs below 3e20 FLOPs only, each dataset in turn keeps its two lowest
   budgets and its 1.8e20-FLOP runs are predicted (10x extrapolation). Unseen-budget check: every
   dataset keeps its runs below 3e20 FLOPs and every 3e20-FLOP run is predicted (a budget no fit
   saw).
   DEFAULT SELECTION RULE (declared before any detrended result existed): (1) among candidates
   covering >= 80% of the 1.8e20-budget runs in the selection check, (2) keep those whose
   unseen-budget check (predict every 3e20 run from the runs below 3e20) covers >= 80%; (3) among
   those the narrowest at 1.8e20; if none passes (2), the one with the best unseen-budget coverage
   among those passing (1); if none passes (1), the best covering at 1.8e20. (Ties in coverage:
   the narrower at 1.8e20.)
2. Held-out check, for each dataset in turn: keep only its two lowest (unflagged) budgets, all runs
   of the other two; predict its 3e20-FLOP runs. Coverage and widths of the 90% predictive
   intervals for every candidate, "E only" without offsets and no pooling.
   Offset fits predict with the target budget's fitted offset (the other datasets ran there).
3. Per-dataset frontiers (N_opt, L_opt with 90% intervals) on all runs under the same fits and
   complete pooling; the population's frontier for a new dataset.
4. Sampler before/after for the selected default: the first sampler (mean-log centre, non-centred
   groups) against the current one (pivot centre, per-group centring), same model and chains.
5. Prior sensitivity (``bayes_scaling.prior_sets``): N_opt(C) under the weak, Hoffmann and Epoch
   prior sets, pooled Chinchilla law, on the Chinchilla data and on each Marin dataset.

Writes ``experiments/results/marin_pooling.md``. ``--quick`` uses short chains (a smoke run).

The unseen-budget check (every dataset keeps its runs below 3e20 FLOPs; all 3e20-FLOP runs are
predicted, a budget no fit has seen, so offset fits draw a fresh offset per draw) is part of the
rule and is also written to ``experiments/results/marin_unseen_budget.md``;
``--unseen-budget`` runs only that check. The results file is rewritten after each section, so an
interrupted run leaves what it reached (marked as such).

The held-out check also scores the 90% intervals and the predictive draws by two proper scoring
rules, which reward narrow intervals only as far as they stay calibrated (no pooling's intervals
are narrow because they are overconfident, so "narrower than no pooling" alone can favour a worse
forecast): the interval score (Gneiting & Raftery 2007) and the CRPS, both on the loss, mean over
each dataset's 3e20 runs, lower is better, and each over no pooling's. Declared before any of these
scores was computed: partial pooling (the selected default) beats no pooling on the held-out
check by these rules if its mean interval score and mean CRPS are lower for every dataset.
``--held-out-only`` runs only the held-out check (writes ``marin_held_out_scores.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import bayes_scaling
import numpy as np
import pandas as pd

from bayes_scaling.hierarchical import OFFSET_SCALE, fit_hierarchical
from bayes_scaling.prior_sets import prior_sensitivity
from bayes_scaling.runs import load_chinchilla, load_marin
from bayes_scaling.runs.table import Runs

bayes_scaling.configure()  # float64, host devices for parallel chains: before any JAX use

OUT = Path(__file__).parent / "results" / "marin_pooling.md"
UNSEEN_OUT = Path(__file__).parent / "results" / "marin_unseen_budget.md"
HELD_OUT_OUT = Path(__file__).parent / "results" / "marin_held_out_scores.md"
SMOKE_OUT = Path("/tmp") / "marin_pooling_smoke.md"
BUDGETS = [1e21, 1e22, 1e23]
HELD_OUT_BUDGET = 3e20
SELECTION_BUDGET = 1.8e20  # the held-out budget of the selection check, which never sees 3e20
LEVEL = 0.9
MIN_SELECTION_COVERAGE = 0.8
MIN_UNSEEN_COVERAGE = 0.8
WIDE = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}  # the first default
# The prior family of the spreads, spelled out like the offsets below: every candidate here was fitted
# (and the default selected) with HalfNormal spreads; experiments/marin_spread_prior.py compares the
# Gamma family on the selected model.
HALFNORMAL = {"spread_prior": "halfnormal"}
E_ONLY = ("A", "B", "alpha", "beta")  # shared: the groups differ only in E
# Offsets always spelled out: the library's defaults (offset_by="auto", DETREND_OFFSETS) follow this
# script's choice and must not change what a candidate is.
OFFSETS = {"offset_by": "budget", "detrend_offsets": False}  # free per-budget offsets on log-loss
DETRENDED = {"offset_by": "budget", "detrend_offsets": True}  # ... with no level and no trend in log C
NO_OFFSETS = {"offset_by": None}
CANDIDATES = {  # for the default: group-level E, A, B (alpha, beta) with learned spreads
    "partial, wide spreads": {"pooling": "partial", "spreads": WIDE, **NO_OFFSETS, **HALFNORMAL},
    "partial, wide spreads, budget offsets": {"pooling": "partial", "spreads": WIDE, **OFFSETS, **HALFNORMAL},
    "partial, wide spreads, detrended offsets": {"pooling": "partial", "spreads": WIDE, **DETRENDED, **HALFNORMAL},
    "partial, E only, budget offsets": {"pooling": "partial", "share": E_ONLY, **OFFSETS, **HALFNORMAL},
    "partial, E only, detrended offsets": {"pooling": "partial", "share": E_ONLY, **DETRENDED, **HALFNORMAL},
}
VARIANTS = {
    **CANDIDATES,
    "partial, E only": {"pooling": "partial", "share": E_ONLY, **NO_OFFSETS, **HALFNORMAL},
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
                "interval score": float(np.mean(interval_score(lo, hi, loss, 1 - LEVEL))),
                "CRPS": float(np.mean(crps_from_draws(pred, loss))),
                "mean abs error": float(np.mean(np.abs(np.median(pred, axis=0) - loss))),
                "missed (N)": ", ".join(f"{n:.3g}" for n in target["N"].to_numpy()[missed]) or "-",
            })
            print(f"{tag} {dataset}: {label} {rows[-1]}", flush=True)
    return pd.DataFrame(rows), diag


def interval_score(lo, hi, y, alpha: float) -> np.ndarray:
    """Gneiting & Raftery's (2007) interval score of central (1 - alpha) intervals [lo, hi]:
    (hi - lo) + (2 / alpha) (lo - y)_+ + (2 / alpha) (y - hi)_+. Proper: lower is better, and an
    interval gains nothing by being narrower than its coverage allows."""
    return (hi - lo) + (2 / alpha) * np.maximum(lo - y, 0) + (2 / alpha) * np.maximum(y - hi, 0)


def crps_from_draws(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score per column of ``draws`` (S, n) against y (n):
    E|X - y| - E|X - X'| / 2, with E|X - X'| = (2 / S^2) sum_i (2i - S - 1) x_(i) over the sorted
    draws. Proper; in the loss's units; lower is better."""
    x = np.sort(draws, axis=0)
    S = x.shape[0]
    weights = (2 * np.arange(1, S + 1) - S - 1)[:, None]
    return np.mean(np.abs(x - y[None]), axis=0) - np.sum(weights * x, axis=0) / S**2


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
    if "interval score" in scores:  # proper scores, against no pooling's for the same dataset
        for col in ("interval score", "CRPS"):
            base = scores[scores["fit"] == "none"].set_index("dataset")[col]
            ratio = [v / base[d] if d in base.index else float("nan") for d, v in zip(scores["dataset"], scores[col])]
            out[col] = scores[col].map(lambda v: f"{v:.4f}")
            out[f"{col} / none"] = [f"{r:.2f}" for r in ratio]
        cols += ["interval score", "interval score / none", "CRPS", "CRPS / none"]
    return markdown(out[cols])


def select_default(scores: pd.DataFrame, unseen: pd.DataFrame) -> tuple[str, str, str]:
    """The rule in the module docstring: ``scores`` the selection check's rows, ``unseen`` the
    unseen-budget check's rows (both per dataset and fit). Returns (chosen, why, table)."""
    totals = scores[scores["fit"].isin(list(CANDIDATES))].groupby("fit", sort=False).agg(
        covered=("covered", "sum"), runs=("runs", "sum"), width=("mean width", "mean"))
    totals["coverage"] = totals["covered"] / totals["runs"]
    seen = unseen.groupby("fit", sort=False).agg(u_covered=("covered", "sum"), u_runs=("runs", "sum"))
    totals = totals.join(seen)
    totals["unseen"] = totals["u_covered"] / totals["u_runs"]
    step1 = totals[totals["coverage"] >= MIN_SELECTION_COVERAGE]
    step2 = step1[step1["unseen"] >= MIN_UNSEEN_COVERAGE]
    if len(step2):
        chosen = step2.sort_values(["width"]).index[0]
        why = (f"passes (1) and (2) ({len(step2)} of {len(totals)} candidates do); the narrowest of them at "
               f"{SELECTION_BUDGET:.1e}")
    elif len(step1):
        chosen = step1.sort_values(["unseen", "width"], ascending=[False, True]).index[0]
        why = "no candidate passes (2); the best unseen-budget coverage among those passing (1)"
    else:
        chosen = totals.sort_values(["coverage", "width"], ascending=[False, True]).index[0]
        why = f"no candidate passes (1); the best coverage at {SELECTION_BUDGET:.1e}"
    lines = [f"| {name} | {int(r.covered)}/{int(r.runs)} ({r.coverage:.0%}) | {r.width:.4f} | "
             f"{int(r.u_covered)}/{int(r.u_runs)} ({r.unseen:.0%}) | "
             f"{'yes' if name in step1.index else 'no'} | {'yes' if name in step2.index else 'no'} |"
             for name, r in totals.iterrows()]
    table = (f"| candidate | covered at {SELECTION_BUDGET:.1e} (all datasets) | mean width at {SELECTION_BUDGET:.1e} | "
             f"unseen-budget covered ({HELD_OUT_BUDGET:.0e}) | passes (1) | passes (2) |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(lines))
    return chosen, why, table


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


def unseen_budget(marin: Runs, fits: dict, chains: dict, tag: str) -> tuple[pd.DataFrame, dict]:
    """All datasets keep their runs below 3e20 FLOPs; each dataset's 3e20 runs are predicted
    (offset fits: a budget they never saw, so a fresh offset per draw). Rows per fit and dataset."""
    frame = marin.frame
    train = Runs(frame[frame["budget"] < HELD_OUT_BUDGET].reset_index(drop=True))
    rows, diag = [], {}
    for label, kwargs in fits.items():
        start = time.perf_counter()
        fit = fit_hierarchical(train, **kwargs, **chains)
        d, seconds = fit.diagnostics, time.perf_counter() - start
        diag[f"{tag}: {label}"] = {**d, "seconds": seconds}
        for dataset in marin.groups:
            target = frame[(frame["group"] == dataset) & np.isclose(frame["budget"], HELD_OUT_BUDGET)]
            pred = fit.groups[dataset].predict(target["N"].to_numpy(), target["D"].to_numpy(), noise=True, seed=1,
                                               offset_at=target["budget"].to_numpy())
            lo, med, hi = np.quantile(pred, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2], axis=0)
            loss = target["loss"].to_numpy()
            rows.append({"fit": label, "dataset": dataset, "covered": int(np.sum((lo <= loss) & (loss <= hi))),
                         "runs": len(loss), "mean width": float(np.mean(hi - lo)),
                         "mean error": float(np.mean(med - loss)), "mean abs error": float(np.mean(np.abs(med - loss))),
                         "divergences": d["divergences"], "max_rhat": d["max_rhat"], "min_ess": d["min_ess"],
                         "seconds": seconds})
            print(f"{tag}: {rows[-1]}", flush=True)
    return pd.DataFrame(rows), diag


def unseen_table(rows: pd.DataFrame) -> str:
    out = pd.DataFrame({
        "fit": rows["fit"], "dataset": rows["dataset"],
        "covered": [f"{c}/{n}" for c, n in zip(rows["covered"], rows["runs"])],
        "mean width": rows["mean width"].map(lambda v: f"{v:.4f}"),
        "mean error (median - observed)": rows["mean error"].map(lambda v: f"{v:+.4f}"),
        "mean abs error": rows["mean abs error"].map(lambda v: f"{v:.4f}"),
        "divergences": rows["divergences"], "max R-hat": rows["max_rhat"].map(lambda v: f"{v:.3f}"),
        "min bulk ESS": rows["min_ess"].map(lambda v: f"{v:.0f}"), "seconds": rows["seconds"].map(lambda v: f"{v:.0f}"),
    })
    return markdown(out)


def unseen_text(table: str, hier: dict, seconds: float, short: bool) -> str:
    return f"""# Marin: predicting a budget no fit has seen

Generated by `experiments/marin_pooling.py`{' (short chains: not for the record)' if short else ''};
machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs; {seconds:.0f} s for these fits.
Hierarchical fits: 4 chains x {hier["num_warmup"]} warm-up + {hier["num_draws"]} draws, Student-t likelihood.

Every dataset keeps its runs below {HELD_OUT_BUDGET:.0e} FLOPs (all five lower budgets); each
dataset's fifteen {HELD_OUT_BUDGET:.0e}-FLOP runs are predicted (90% predictive intervals, noise
included). No fit saw that budget, so the offset fits (free or detrended) add a fresh offset
delta ~ Normal(0, tau_o^2) per draw. Spreads: wide = {WIDE}. Sampler columns are per fit (one
fit per row group, shared by its datasets). Step (2) of the default's selection rule reads this check.

{table}
"""


NOT_REACHED = "*Not reached: the run was stopped or had not got here when this file was written.*"


def sampler_table(diag: dict) -> str:
    """One row per fit: ``fit.diagnostics`` and its wall time."""
    if not diag:
        return NOT_REACHED
    return markdown(pd.DataFrame([
        {"fit": k, "divergences": v["divergences"], "max R-hat": f"{v['max_rhat']:.3f}",
         "min bulk ESS": f"{v['min_ess']:.0f}", "mean leapfrog steps": f"{v['mean_steps']:.0f}",
         "seconds": f"{v['seconds']:.0f}"} for k, v in diag.items()]))


def held_out_text(table: str, diag: dict, hier: dict, seconds: float, short: bool) -> str:
    return f"""# Marin: the held-out check with proper scores

Generated by `experiments/marin_pooling.py --held-out-only`{' (short chains: not for the record)' if short else ''};
machine: {platform.machine()}, {os.cpu_count()} CPU cores; {seconds:.0f} s for these fits.
Hierarchical fits: 4 chains x {hier["num_warmup"]} warm-up + {hier["num_draws"]} draws, Student-t likelihood.

Each dataset in turn keeps only its two lowest unflagged budgets (the other datasets keep all
runs); its fifteen {HELD_OUT_BUDGET:.0e}-FLOP runs are predicted (90% predictive intervals, noise
included; offset fits with the {HELD_OUT_BUDGET:.0e} offset fitted from the other datasets' runs).
`width / none`: mean width over no pooling's. Proper scores on the loss, mean over the runs, lower
is better: the interval score of the 90% intervals, (hi - lo) + 20 (lo - y)_+ + 20 (y - hi)_+, and
the CRPS of the predictive draws; `/ none`: over no pooling's for the same dataset. Declared before
any score was computed: partial pooling beats no pooling here if both scores are lower for every dataset.

{table}

Sampler (one fit per row):

{sampler_table(diag)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short chains: a smoke run, not for the record")
    parser.add_argument("--smoke", action="store_true", help="tiny chains: checks the script runs, nothing else")
    parser.add_argument("--unseen-budget", action="store_true",
                        help=f"only the unseen-budget check (writes {UNSEEN_OUT.name})")
    parser.add_argument("--held-out-only", action="store_true",
                        help=f"only the held-out check with its proper scores (writes {HELD_OUT_OUT.name})")
    args = parser.parse_args()
    draws = 20 if args.smoke else 150 if args.quick else 500
    warmup = 20 if args.smoke else 300 if args.quick else 500
    hier = {"num_chains": 4, "num_warmup": warmup, "num_draws": draws, "seed": 0}
    pooled = {"num_chains": 4, "num_warmup": draws, "num_draws": draws, "seed": 0}
    short = args.quick or args.smoke
    unseen_out = Path("/tmp/marin_unseen_budget_smoke.md") if short else UNSEEN_OUT
    out = SMOKE_OUT if short else OUT
    out.parent.mkdir(parents=True, exist_ok=True)

    marin = load_marin().for_fit()
    start = time.perf_counter()
    if args.unseen_budget:
        rows, _ = unseen_budget(marin, VARIANTS, hier, "unseen budget")
        unseen_out.write_text(unseen_text(unseen_table(rows), hier, time.perf_counter() - start, short))
        print(f"wrote {unseen_out}")
        return
    if args.held_out_only:
        held, held_diag = held_out_scores(marin, VARIANTS, hier, HELD_OUT_BUDGET, "held out")
        held_out = Path("/tmp/marin_held_out_scores_smoke.md") if short else HELD_OUT_OUT
        held_out.write_text(held_out_text(score_table(held), held_diag, hier, time.perf_counter() - start, short))
        print(f"wrote {held_out}")
        return

    parts: dict[str, str] = {}
    diag: dict[str, dict] = {}
    chosen = "(not selected yet)"

    def write(done: bool) -> None:
        status = (f"total {time.perf_counter() - start:.0f} s" if done else
                  f"**incomplete: written after {time.perf_counter() - start:.0f} s, before the run finished**")
        out.write_text(f"""# Marin: partial, no and complete pooling

Generated by `experiments/marin_pooling.py`{' --quick/--smoke (short chains: not for the record)' if short else ''};
{len(marin)} unflagged Marin runs (3 datasets, one architecture). Hierarchical fits: 4 chains x
{hier["num_warmup"]} warm-up + {draws} draws, Student-t likelihood (nu = 5). Machine: {platform.machine()},
{os.cpu_count()} CPU cores shared with other jobs, {platform.python_version()}; {status}.

Spreads (HalfNormal scales of tau, log units): wide = {WIDE}.
`budget offsets`: `offset_by="budget"`, one offset on log-loss per IsoFLOP budget shared by the
datasets, delta_b ~ Normal(0, tau_o^2), tau_o ~ HalfNormal({OFFSET_SCALE}). `detrended offsets`: the
same with `detrend_offsets=True`, delta = Q c, c_k ~ Normal(0, tau_o^2), Q an orthonormal basis of
the complement of span{{1, log C_b}} over the fitted budgets (no level, no linear trend in log C).
Predictions at a budget seen in the fit use its fitted offset; at an unseen one a fresh
delta ~ Normal(0, tau_o^2) per draw. Frontiers (section 3) are the laws' and carry no offset.

## 1. Choosing the default

Selection check: runs below {HELD_OUT_BUDGET:.0e} FLOPs only; each dataset in turn keeps its two lowest
budgets; the 90% predictive intervals (noise included) for its {SELECTION_BUDGET:.1e}-FLOP runs are
scored. Unseen-budget check: every dataset keeps its runs below {HELD_OUT_BUDGET:.0e}; all
{HELD_OUT_BUDGET:.0e}-FLOP runs are predicted (table in `marin_unseen_budget.md` and below).

Rule (declared before any detrended result existed): (1) among candidates covering >= {MIN_SELECTION_COVERAGE:.0%}
of the {SELECTION_BUDGET:.1e}-budget runs in the selection check, (2) keep those whose unseen-budget check
(predict every {HELD_OUT_BUDGET:.0e} run from the runs below {HELD_OUT_BUDGET:.0e}) covers >= {MIN_UNSEEN_COVERAGE:.0%};
(3) among those the narrowest at {SELECTION_BUDGET:.1e}; if none passes (2), the one with the best
unseen-budget coverage among those passing (1); if none passes (1), the best covering at
{SELECTION_BUDGET:.1e}. (Ties in coverage: the narrower at {SELECTION_BUDGET:.1e}.)
**Selected: `{chosen}`**{parts.get("why", "")}.

{parts.get("totals", NOT_REACHED)}

{parts.get("selection", "")}

### Unseen budget (all {HELD_OUT_BUDGET:.0e} runs predicted from the runs below {HELD_OUT_BUDGET:.0e})

{parts.get("unseen", NOT_REACHED)}

## 2. Held-out check

Each dataset in turn keeps only its two lowest unflagged budgets (the other datasets keep all
runs); the table scores that dataset's 90% posterior predictive intervals (observation noise
included) for its {HELD_OUT_BUDGET:.0e}-FLOP runs, which the fit never saw. `width / none`: mean
width over no pooling's for the same dataset. Offset fits use the {HELD_OUT_BUDGET:.0e} offset
fitted from the other datasets' runs there.

{parts.get("held", NOT_REACHED)}

## 3. Per-dataset frontiers on all runs (90% credible intervals)

{parts.get("frontier", NOT_REACHED)}

## 4. Sampler before and after, selected default (`{chosen}`)

before: centre at mean log N, log D, every group non-centred; after: pivot centre, per-group
centring (`centring="auto"`). Same model, chains, warm-up and draws.

{parts.get("sampler", NOT_REACHED)}

## 5. Prior sensitivity (pooled Chinchilla law, NUTS 4 x {draws})

`N_opt / weak`: median N_opt under the set over the median under the weak defaults.

{parts.get("sensitivity", NOT_REACHED)}

## Sampler diagnostics (all hierarchical fits above)

{sampler_table(diag)}
""")
        print(f"wrote {out} ({'done' if done else 'partial'})", flush=True)

    below = Runs(marin.frame[marin.frame["budget"] < HELD_OUT_BUDGET].reset_index(drop=True))
    selection, selection_diag = held_out_scores(below, {**CANDIDATES, "none": VARIANTS["none"]}, hier,
                                                SELECTION_BUDGET, "selection, held out")
    diag.update(selection_diag)
    parts["selection"] = score_table(selection)
    write(False)
    t0 = time.perf_counter()
    unseen_rows, unseen_diag = unseen_budget(marin, VARIANTS, hier, "unseen budget")
    diag.update(unseen_diag)
    parts["unseen"] = unseen_table(unseen_rows)
    unseen_out.write_text(unseen_text(parts["unseen"], hier, time.perf_counter() - t0, short))
    chosen, why, parts["totals"] = select_default(selection, unseen_rows)
    parts["why"] = f": {why}"
    print(f"selected default: {chosen} ({why})", flush=True)
    write(False)
    held, held_diag = held_out_scores(marin, VARIANTS, hier, HELD_OUT_BUDGET, "held out")
    diag.update(held_diag)
    parts["held"] = score_table(held)
    write(False)
    parts["frontier"], frontier_diag = frontier_section(marin, FRONTIER_FITS, hier)
    diag.update(frontier_diag)
    write(False)

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
    parts["sampler"] = markdown(pd.DataFrame(sampler_rows))
    write(False)
    parts["sensitivity"] = sensitivity_section(marin, pooled)
    write(True)


if __name__ == "__main__":
    main()
