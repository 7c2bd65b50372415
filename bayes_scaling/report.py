"""One page a researcher can read and trust: ``write_report(posterior, out_path)``.

The HTML report is a single self-contained file (figures embedded as base64 PNG, no external
assets). Sections, in order, each a ``<section id=...>``:

    verdict      the sampler diagnostics' verdict in one paragraph
    data         runs used (counts, ranges of N, D, C, loss) and the rows excluded as flagged, with why
    diagnostics  R-hat, bulk/tail ESS, divergences, E-BFMI, tree-depth saturation, with warnings
    parameters   median and 90% interval of each parameter, with R-hat and ESS, beside published fits
    frontier     N_opt, D_opt, L_opt and tokens per parameter at 1e19 .. 1e25 FLOPs, or decades around a fit of smaller runs (90% intervals)
    decisions    the posterior IsoFLOP profile at the user's budgets (``decisions.isoflop_profile``):
                 the N of lowest expected loss, where P(best) lies, the regret of the median N_opt
    checks       posterior predictive coverage and PSIS-LOO with Pareto-k flags
    backtest     "How far can these runs be trusted?": the leave-future-out backtest of the fitted
                 runs (``bayes_scaling.backtest``), refitted with the fit's law and settings
    figures      every figure of ``bayes_scaling.plots.all_figures``

The markdown variant (``fmt="md"``) has the same sections and writes its figures as PNG files in a
folder beside it (``<name>_figures/``). ``write_grouped_report`` writes a grouped fit's page: a part
per group and the population's (``<div class='group' id=GROUP>``), each with these sections, their
ids prefixed ``GROUP-``.
"""

from __future__ import annotations

import base64
import html
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling import extrapolation
from bayes_scaling.errors import InputError

LEVEL = 0.9
# The backtest refits the runs once per group (about one default fit's time each, measured in
# docs/backtest.md), so the report runs it unless asked not to.
BACKTEST_BY_DEFAULT = True
SECTIONS = {
    "verdict": "Verdict",
    "data": "Data",
    "diagnostics": "Sampler diagnostics",
    "parameters": "Parameters",
    "frontier": "Compute-optimal frontier",
    "decisions": "Deciding at a budget",
    "checks": "Model checks",
    "backtest": "How far can these runs be trusted?",
    "figures": "Figures",
}
CAPTIONS = {
    "loss_vs_compute": "Each run's final loss against its compute, coloured by model size; the line and bands "
                       "are the posterior median and 50%/90% intervals of the compute-optimal loss L_opt(C).",
    "isoflop": "Runs grouped by compute (bins in log10 C); the bands are the 50%/90% posterior predictive "
               "intervals of the loss (law plus observation noise) at the bin's median compute. Runs in a bin "
               "differ slightly in C, which adds spread beyond the band.",
    "allocation": "Compute-optimal parameters and tokens with 50%/90% bands, beside the published point fits "
                  "of Hoffmann et al. (2022, Approach 3) and Epoch AI (2024) to Chinchilla's runs (a reference for "
                  "Chinchilla-like training; other data need not follow them).",
    "exponents": "Posterior of the law's allocation exponents: its N_opt grows as C^a and D_opt as C^b (a + b = 1 "
                 "under C = 6ND).",
    "pair": "Pairwise posterior draws of the law's parameters; ridges show which combinations the data pin down.",
    "trace_rank": "Traces by chain (divergent transitions marked in red) and per-chain rank histograms, which "
                  "are flat when the chains mix.",
    "residuals": "Log-loss residuals against the posterior-median law; runs outside their 90% predictive "
                 "interval in red. Bottom right: observed against predicted loss with 90% predictive intervals.",
}
DRIFT_CAPTIONS = {  # appended where the fit has the extrapolating model's drift
    "exponents": "Beyond the fitted runs the extrapolating model's drift moves the optimum away from this power law; "
                 "the frontier table gives the optimum it answers with.",
}


def figure_captions(posterior) -> dict[str, str]:
    """Each figure's caption, with ``DRIFT_CAPTIONS``' sentence where the fit has a drift (a plain fit's exponents
    are the optimum's, beyond the runs too)."""
    drift = bool(posterior.meta.get("extrapolation"))
    return {name: text + (" " + DRIFT_CAPTIONS[name] if drift and name in DRIFT_CAPTIONS else "")
            for name, text in CAPTIONS.items()}


BACKTEST_CAPTION = ("Held-out runs against the predictions of the refit on the cheaper runs: bars are the 50% and 90% "
                    "predictive intervals, ticks the medians, dots the observed losses (red outside the 90% interval); "
                    "runs ordered by held-out budget, then N.")


# --- content shared by both formats ---------------------------------------------------------------
def excluded_runs(posterior, all_runs=None) -> pd.DataFrame | None:
    """Rows of the full run table that the fit left out (flagged), with the reason.

    From ``all_runs`` when given; else the rows the fit recorded as excluded
    (``posterior.excluded``); else, for a fit of a bundled dataset, from that dataset. Only rows of
    the groups the fit holds count (a grouped fit's member does not leave out the other groups' runs).
    None when the full table is unknown."""
    fitted = posterior.runs.frame
    if all_runs is None and posterior.excluded is not None:
        left_out = posterior.excluded
    else:
        if all_runs is None:
            all_runs = _bundled_source(fitted)
            if all_runs is None:
                return None
        frame = all_runs.frame
        frame = frame[frame["group"].astype(str).isin(fitted["group"].astype(str))]  # a group's fit: its own rows only
        left_out = frame[~frame["run_id"].astype(str).isin(fitted["run_id"].astype(str))]
    table = left_out[["run_id", "N", "D", "C", "loss", "flag_reason"]].reset_index(drop=True)
    for col in ("N", "D", "C", "loss"):
        table[col] = [f"{v:.4g}" for v in table[col]]
    return table


def _sources(runs) -> str:
    """The fitted runs' sources (file names or bundled datasets), as the Data section names them."""
    return ", ".join(sorted(set(runs.frame["source"].astype(str))))


def _bundled_source(fitted: pd.DataFrame):
    from bayes_scaling.runs import DATASETS

    sources = set(fitted["source"].astype(str))
    for load in DATASETS.values():
        runs = load()
        if sources <= set(runs.frame["source"].astype(str)):
            return runs
    return None


def data_summary(posterior, all_runs=None) -> tuple[pd.DataFrame, str, pd.DataFrame | None]:
    """(ranges table, one-line description, excluded rows or None)."""
    runs = posterior.runs
    ranges = pd.DataFrame(
        [{"quantity": q, "min": f"{v.min():.4g}", "median": f"{np.median(v):.4g}", "max": f"{v.max():.4g}"}
         for q, v in (("N (parameters)", runs.N), ("D (tokens)", runs.D), ("C (FLOPs)", runs.C),
                      ("loss", runs.loss), ("tokens per parameter", runs.D / runs.N))]
    )
    excluded = excluded_runs(posterior, all_runs)
    sources = _sources(runs)
    groups = ", ".join(runs.groups)
    line = f"{len(runs)} runs fitted, from {sources} (groups: {groups})."
    if excluded is None:
        line += " The full run table is not recorded with this fit, so excluded rows cannot be listed."
    elif excluded.empty:
        line += " No rows were excluded."
    else:
        reasons = excluded["flag_reason"].replace("", "unspecified").value_counts()
        line += (f" {len(excluded)} flagged rows were excluded ("
                 + ", ".join(f"{n} {r}" for r, n in reasons.items()) + "); they are listed below.")
    return ranges, line, excluded


def parameter_table(posterior, diagnosis) -> pd.DataFrame:
    """Median [90% interval] per parameter, R-hat and ESS, and the published values."""
    from bayes_scaling import laws

    table = posterior.summary(LEVEL)
    refs = {"Hoffmann 2022": laws.HOFFMANN_2022, "Epoch 2024": laws.EPOCH_2024}
    rows = []
    for _, r in table.iterrows():
        name = r["parameter"]
        row = {"parameter": name, "median": f"{r['median']:.5g}", f"{LEVEL:.0%} interval": f"[{r['lo']:.5g}, {r['hi']:.5g}]"}
        if diagnosis.applicable and name in diagnosis.table.index:
            d = diagnosis.table.loc[name]
            row.update({"R-hat": f"{d['r_hat']:.3f}", "bulk ESS": f"{d['ess_bulk']:.0f}", "tail ESS": f"{d['ess_tail']:.0f}"})
        if set(posterior.law.param_names) == set(laws.HOFFMANN_2022):
            for ref, theta in refs.items():
                row[ref] = f"{theta[name]:.5g}" if name in theta else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("")  # a parameter held fixed has no R-hat or ESS


STANDARD_SPAN = (1e17, 1e25)  # fits whose largest run lies here get the standard budgets; others decades around it


def frontier_budgets(posterior) -> list[float]:
    """The report's frontier budgets: the standard ones (1e19 to 1e25 FLOPs) for a fit whose largest run's
    compute lies in ``STANDARD_SPAN``; else (small harness runs, say) the decades from 100x below to 1000x
    above that compute, so the table starts among the fitted runs."""
    from bayes_scaling.formatting import fitted_compute
    from bayes_scaling.frontier import STANDARD_BUDGETS

    top = fitted_compute(posterior)
    if STANDARD_SPAN[0] <= top <= STANDARD_SPAN[1]:
        return list(STANDARD_BUDGETS)
    k = int(np.floor(np.log10(top)))
    return [10.0 ** j for j in range(k - 2, k + 4)]


def decision_budgets(posterior, budgets=None) -> tuple:
    """The decisions section's budgets: ``budgets`` as given where they are not the default; else
    ``DECISION_BUDGETS`` for a fit whose largest run lies in ``STANDARD_SPAN``, and 10x, 100x and 1000x its
    compute (decades) for one outside it."""
    from bayes_scaling.formatting import fitted_compute

    budgets = DECISION_BUDGETS if budgets is None else tuple(budgets)
    top = fitted_compute(posterior)
    if budgets != DECISION_BUDGETS or STANDARD_SPAN[0] <= top <= STANDARD_SPAN[1]:
        return budgets
    k = int(np.floor(np.log10(top)))
    return tuple(10.0 ** j for j in range(k + 1, k + 4))


def standard_frontier(posterior) -> pd.DataFrame:
    """``Posterior.frontier`` at the report's budgets (``frontier_budgets``) and its level."""
    return posterior.frontier(frontier_budgets(posterior), level=LEVEL)


def frontier_table(posterior, frontier: pd.DataFrame | None = None) -> pd.DataFrame:
    """The frontier at the standard budgets (``frontier``, else ``standard_frontier``) as text cells:
    median [lo, hi], each budget marked by where its optimum lies against the fitted runs (``Reach.mark``)."""
    from bayes_scaling.formatting import Reach, format_ratio, format_si
    from bayes_scaling.posterior import NEW_TRUNK

    f = standard_frontier(posterior) if frontier is None else frontier
    reach = Reach.of(posterior)
    branch = None  # a WSD fit: L_opt of a new trunk's branch too (``Posterior.frontier(branch_of=...)``)
    if posterior.has_draws("wsd_offset"):
        branch = posterior.frontier(list(f["budget"]), level=LEVEL, branch_of=NEW_TRUNK)

    def cell(row, q, fmt):
        return f"{fmt(row[q + '_median'])} [{fmt(row[q + '_lo'])}, {fmt(row[q + '_hi'])}]"

    loss = lambda v: f"{v:.4f}"  # noqa: E731
    return pd.DataFrame([
        {"budget C (FLOPs)": f"{row['budget']:.0e}" + reach.mark(row["N_opt_median"], row["D_opt_median"],
                                                                  row["budget"]).strip(),
         "N_opt": cell(row, "N_opt", format_si),
         "D_opt": cell(row, "D_opt", format_si),
         "L_opt": cell(row, "L_opt", loss),
         **({} if branch is None else {"L_opt, WSD branch of a new trunk": cell(branch.iloc[i], "L_opt", loss)}),
         "tokens / parameter": cell(row, "tokens_per_param", format_ratio)}
        for i, (_, row) in enumerate(f.iterrows())
    ])


def frontier_notes(posterior, frontier: pd.DataFrame | None = None) -> list[str]:
    """``formatting.beyond_notes`` for the standard budgets' optima (``frontier``, else ``standard_frontier``;
    those marked in the frontier table)."""
    from bayes_scaling.formatting import (beyond_notes, corner_optimum_notes, falling_optimum_notes,
                                          runs_beat_frontier_notes)

    f = standard_frontier(posterior) if frontier is None else frontier
    notes = [*beyond_notes(posterior, f["budget"], points=(f["N_opt_median"], f["D_opt_median"])),
             *falling_optimum_notes(posterior, f), *corner_optimum_notes(posterior, f),
             *runs_beat_frontier_notes(posterior, LEVEL)]
    if posterior.has_draws("wsd_offset"):
        notes.append("L_opt, WSD branch of a new trunk: the loss a WSD-trained run (a new trunk's cool-down branch) "
                     "reaches at the optimum, the cosine runs' L_opt times e^(delta + u) with the fitted branch shift "
                     "delta and a fresh trunk effect u; N_opt and D_opt are the cosine runs' ('bayes-scaling frontier "
                     "--as-branch', docs/training.md)")
    return notes


DECISION_BUDGETS = (1e21, 1e23, 1e25)
DECISIONS_INTRO = ("One run per budget, chosen under the posterior (model: {model}): the N of lowest expected loss "
                   "along 6ND = C with its loss, the N range holding {level:.0%} of P(this N is best), and the "
                   "regret (loss above each draw's own optimum) of choosing the median N_opt: its mean, then its median "
                   "[{level:.0%} interval]; other cells median [{level:.0%} interval]. 'bayes-scaling decide' answers "
                   "the same at any budget.")


def decisions_table(posterior, budgets=DECISION_BUDGETS) -> pd.DataFrame:
    """The posterior IsoFLOP profile at each budget as text cells (``decisions.isoflop_profile``), each
    budget marked by where its run of lowest expected loss lies against the fitted runs (``Reach.mark``,
    as the frontier table's); ``table.attrs["notes"]``: what the marks mean (``formatting.beyond_notes``)."""
    from bayes_scaling.decisions import Surface, isoflop_profile
    from bayes_scaling.formatting import Reach, beyond_notes, format_ratio, format_si

    surface, reach = Surface.of(posterior), Reach.of(posterior)
    rows, chosen, profile_notes = [], [], []
    for C in budgets:
        p = isoflop_profile(surface, C, level=LEVEL)
        best, med, lo_hi = p.best, p.median_choice, p.p_best_set()
        chosen.append((best["N"], best["D"]))
        notes = p.notes()
        profile_notes += notes
        rows.append({
            "budget C (FLOPs)": f"{C:.0e}" + reach.mark(best["N"], best["D"], C).strip(),
            "N of lowest expected loss": f"{format_si(best['N'])} ({format_ratio(best['tokens_per_param'])} tokens/param)"
                                         + (" (set by a few draws: see the note)" if notes else ""),
            "its loss": f"{best['loss']['median']:.4f} [{best['loss']['lo']:.4f}, {best['loss']['hi']:.4f}]",
            f"{LEVEL:.0%} of P(best) on N in": f"[{format_si(lo_hi[0])}, {format_si(lo_hi[1])}]",
            "median N_opt": f"{format_si(med['N'])} [{format_si(p.n_opt['lo'])}, {format_si(p.n_opt['hi'])}]",
            "regret of median N_opt: mean (median [interval])": f"{med['expected_regret']:.2g} "
                                                                 f"({med['regret']['median']:.2g} [{med['regret']['lo']:.2g}, "
                                                                 f"{med['regret']['hi']:.2g}])",
        })
    table = pd.DataFrame(rows)
    N, D = (np.array([c[i] for c in chosen]) for i in (0, 1))
    table.attrs["notes"] = ([*beyond_notes(posterior, list(budgets), points=(N, D)), *profile_notes, GRID_NOTE]
                            if len(chosen) else [])
    return table


GRID_NOTE = ("Each draw's N_opt here is the decision grid's (decisions.isoflop_profile), the frontier table's its own "
             "search: the two can differ by a few tenths of a percent (docs/decisions.md).")


POPULATION_CHECKS = ("Not computed for the population: its law is a new group's, drawn from the population, and the "
                     "groups' runs are not its data, so coverage of them or PSIS-LOO would test nothing; each group's "
                     "part checks that group's law against its runs.")


def model_checks(posterior) -> tuple[list[str], pd.DataFrame | None]:
    """Lines on predictive coverage and PSIS-LOO, and the runs with high Pareto k (or None)."""
    from bayes_scaling import checking

    resid = checking.residuals(posterior, LEVEL)
    lines = [f"Posterior predictive coverage: {resid['inside'].mean():.1%} of runs lie inside their "
             f"{LEVEL:.0%} predictive interval (about {LEVEL:.0%} if the law and noise model fit); "
             f"robust residual scale of log-loss (1.4826 x median |residual|) "
             f"{1.4826 * np.median(np.abs(resid['log_resid'])):.4f}."]
    trends = checking.residual_trends(posterior)
    drifting = trends[trends["trend"]]
    if drifting.empty:
        lines.append("No residual trend against log N, log D or log C (Spearman p >= 0.01 for each).")
    else:
        lines.append("Residuals drift with " + ", ".join(
            f"log {r.against} (Spearman rho {r.spearman_rho:+.2f}, p = {r.p_value:.1g})" for r in drifting.itertuples())
            + ": the law's shape misses the data along that axis; see the residual figure.")
    try:
        result = checking.loo(posterior)
    except InputError as err:
        return [*lines, f"PSIS-LOO not computed: {err}."], None
    lines.append(result.text() + " ELPD is on the log-loss scale; compare fits with 'bayes-scaling compare'.")
    flagged = result.flagged.assign(pareto_k=lambda t: t["pareto_k"].round(2)) if not result.flagged.empty else None
    return lines, flagged


def trust_section(posterior, backtest=None, progress: bool = False) -> dict:
    """The backtest section's content: lines, the per-group table, the N_opt table and the figure.
    ``backtest``: a ``BacktestResult`` to show, or None to run one on the fitted runs (refitted
    with the fit's law and settings, ``backtest.fit_like``)."""
    from bayes_scaling.backtest import backtest as run_backtest
    from bayes_scaling.backtest import fit_like, level_tag

    member = posterior.method == "nuts-hierarchical"
    intro = ("Leave-future-out backtest: the fit's law and settings refitted to each group's lower-compute runs, "
             "predicting the runs held out above them. Honest intervals cover about their level of those runs.")
    if member and backtest is not None and backtest.joint:
        intro = ("Leave-future-out backtest of the grouped fit: the hierarchical model, with this fit's settings, "
                 "refitted once to every group's lower-compute runs together, predicting this group's runs held out "
                 "above them" + ("; a held-out budget's offset, which no fit has seen, is drawn from the offsets' "
                                 "spread" if posterior.meta.get("offset_by") else "")
                 + ". Honest intervals cover about their level of those runs.")
    elif member:
        intro = ("Leave-future-out backtest of this group's law: its lower-compute runs refitted alone, as one law (no "
                 "pooling with the other groups" + (", no budget offsets" if posterior.meta.get("offset_by") else "")
                 + "), predicting the runs held out above them. It tests how the law extrapolates from these runs; "
                 "the grouped fit itself is not refitted here.")
    if backtest is None:
        try:
            # a line per refit wherever stderr goes; the sampler's progress bars only on a terminal
            bars = progress and sys.stderr.isatty()
            backtest = run_backtest(posterior.runs, fit=fit_like(posterior, progress=bars), level=LEVEL,
                                    progress=progress)
        except InputError as err:
            return {"lines": [intro, f"Backtest not run: {err}. Choose the split yourself with 'bayes-scaling backtest "
                                     "RUNS --holdout-top-budgets K' or '--holdout-fraction F' (docs/backtest.md)."],
                    "table": None, "n_opt": None, "figure": None}
    tag = level_tag(LEVEL)
    lines = [intro, f"Split: {backtest.split}; predictions by: {backtest.model}. {len(backtest.runs)} held-out runs; "
             + ", ".join(f"{lv:.0%} intervals covered {backtest.coverage(lv):.0%}" for lv in backtest.levels) + "."]
    errors = backtest.runs["rel_error"]
    lines.append(f"The predictive median was off by {errors.abs().median():.2%} (median; signed {errors.median():+.2%}) "
                 f"at up to {backtest.runs['extrapolation_decades'].max():.2g} decade(s) of compute beyond the fitted "
                 "runs.")
    short = [(lv, backtest.coverage(lv)) for lv in backtest.levels if backtest.coverage(lv) < lv - 0.1]
    if short:
        whose = ("the law refitted alone" if member and not backtest.joint
                 else "this fit's intervals beyond the fitted compute")
        advice = ""
        if posterior.model != extrapolation.MODEL_NAME and not hasattr(posterior.law, "with_unique_tokens"):  # no drift there
            advice = (" This fit takes the law as exact beyond its runs; refit without --model plain: the grouped "
                      "default adds each group's drift, calibrated on its own runs (docs/extrapolation.md)." if member else
                      " This fit takes the law as exact beyond its runs; refit with --model extrapolating, which adds "
                      "the law's own error there (docs/extrapolation.md).")
        lines.append("Warning: " + ", ".join(f"the {lv:.0%} intervals covered only {c:.0%}" for lv, c in short)
                     + f" of the held-out runs: read {whose} as too narrow there." + advice)
    for group, verdict in backtest.diagnostics.items():  # the refit behind the scores failed its checks
        if verdict.get("ok") is False or verdict.get("design_limits"):
            head = ". ".join(str(verdict.get("verdict", "")).split(". ")[:2])
            lines.append(f"Warning: the backtest's refit{'' if backtest.joint else ' of ' + str(group)} "
                         + ("failed its sampler checks" if verdict.get("ok") is False else "passed its sampler checks")
                         + "".join(f"; its runs cannot identify the law: {limit}" for limit in verdict.get("design_limits") or [])
                         + (f" ({head})" if head else "") + ": read these scores with care.")
            if backtest.joint:
                break  # one joint fit: its verdict is every group's
    table = pd.DataFrame([
        {"group": r["group"], "held-out budget": r["budget_label"], "runs": r["n"],
         **{f"coverage {lv:.0%}": f"{r['coverage_' + level_tag(lv)]:.0%}" for lv in backtest.levels},
         f"interval score {LEVEL:.0%}": f"{r['interval_score_' + tag]:.4f}", "CRPS": f"{r['crps']:.4f}",
         "median error": f"{r['median_rel_error']:+.2%}", "median |error|": f"{r['median_abs_rel_error']:.2%}",
         f"{LEVEL:.0%} width / median": f"{r['rel_width_' + tag]:.2%}"}
        for r in backtest.summary.to_dict("records")])
    n_opt = None
    if not backtest.n_opt.empty:
        from bayes_scaling.formatting import format_si

        def si(v):
            return format_si(v) if np.isfinite(v) else "n/a"

        n_opt = pd.DataFrame([
            {"group": r["group"], "budget": f"{r['budget']:.3g}", "runs": r["n_runs"],
             "empirical N_opt (Approach 2)": f"{si(r['empirical_n_opt'])} [{si(r['empirical_lo'])}, {si(r['empirical_hi'])}]",
             "model N_opt": f"{si(r['model_n_opt'])} [{si(r['model_lo'])}, {si(r['model_hi'])}]",
             "inside": {True: "yes", False: "no"}.get(r["inside"], "n/a"), "note": r["note"]}
            for r in backtest.n_opt.to_dict("records")])
    return {"lines": lines, "table": table, "n_opt": n_opt, "figure": backtest.figure()}


# --- writing --------------------------------------------------------------------------------------
def write_report(posterior, out_path, *, fmt: str | None = None, title: str | None = None, all_runs=None,
                 backtest=None, progress: bool = False, budgets=DECISION_BUDGETS) -> Path:
    """Write the report of ``posterior`` to ``out_path`` as ``fmt`` ("html" or "md"; None: "md" for a
    .md or .markdown file, else "html"); returns the path.

    ``all_runs``: the full run table before flagged rows were dropped, to list the exclusions
    (found automatically for the bundled datasets). ``backtest``: True to run the backtest section
    (refits the runs once per group), False to leave it out, a ``BacktestResult`` to show, or None
    for ``BACKTEST_BY_DEFAULT``; ``progress`` reports the refits on stderr; ``budgets``: where the
    "Deciding at a budget" section shows the posterior IsoFLOP profile."""
    out_path, fmt = _check_out(out_path, fmt)
    title = title or f"bayes-scaling report: {_sources(posterior.runs)} ({posterior.law.name} law, {posterior.method})"
    content = report_content(posterior, all_runs=all_runs, backtest=backtest, progress=progress, budgets=budgets)
    (_write_html if fmt == "html" else _write_markdown)(title, [(None, content)], out_path)
    return out_path


def write_grouped_report(members, out_path, *, fmt: str | None = None, title: str | None = None, backtest=None,
                         progress: bool = False, budgets=DECISION_BUDGETS) -> Path:
    """The report of a grouped fit (``bayes_scaling.grouped.load_fits``): ``members`` is a list of
    (group, Posterior); one page with a part per group, each with every section of ``write_report``.
    The population (a new group's law, fitted to no runs of its own) gets no backtest."""
    out_path, fmt = _check_out(out_path, fmt)
    title = title or f"bayes-scaling report: grouped fit ({', '.join(group for group, _ in members)})"
    joint = None
    if (BACKTEST_BY_DEFAULT if backtest is None else backtest) is True:
        joint = grouped_backtest([(g, p) for g, p in members if not p.method.endswith("-population")], progress)
    contents = [(group, report_content(post, backtest=False if post.method.endswith("-population") else
                                       (joint.for_group(group) if joint is not None else backtest),
                                       progress=progress, budgets=budgets)) for group, post in members]
    (_write_html if fmt == "html" else _write_markdown)(title, contents, out_path)
    return out_path


def grouped_backtest(groups, progress: bool = False):
    """One leave-future-out backtest of a grouped fit's hierarchical model (``backtest.hierarchical_fit_like``):
    refitted once to every group's lower-compute runs together; a ``BacktestResult`` to cut per group, or None
    where it cannot run (each group is then backtested alone, as its part says)."""
    from bayes_scaling.backtest import backtest as run_backtest
    from bayes_scaling.backtest import hierarchical_fit_like
    from bayes_scaling.runs import Runs

    if len(groups) < 2 or any(post.method != "nuts-hierarchical" for _, post in groups):
        return None
    runs = Runs(pd.concat([post.runs.frame.assign(group=str(group)) for group, post in groups], ignore_index=True))
    try:
        return run_backtest(runs, fit_groups=hierarchical_fit_like(groups[0][1], progress=progress and sys.stderr.isatty()),
                            level=LEVEL, progress=progress)
    except InputError as err:
        if progress:
            print(f"the grouped fit's joint backtest could not run ({err}); each group is backtested alone",
                  file=sys.stderr, flush=True)
        return None


def report_format(out_path, fmt: str | None = None) -> str:
    """``fmt`` as given, or from the file's suffix: "md" for .md and .markdown, else "html"."""
    if fmt is None:
        fmt = "md" if Path(out_path).suffix.lower() in {".md", ".markdown"} else "html"
    if fmt not in ("html", "md"):
        raise InputError(f"report format must be 'html' or 'md', got {fmt!r}")
    return fmt


def _check_out(out_path, fmt: str | None) -> tuple[Path, str]:
    fmt, out_path = report_format(out_path, fmt), Path(out_path)
    if out_path.is_dir():
        raise InputError(f"{out_path} is a directory; give a file name such as {out_path / ('report.' + fmt)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return out_path, fmt


def report_content(posterior, *, all_runs=None, backtest=None, progress: bool = False,
                   budgets=DECISION_BUDGETS) -> dict:
    """Every section's content for one fit (``write_report``'s arguments)."""
    from bayes_scaling import checking, plots
    from bayes_scaling.diagnostics import DESIGN_ADVICE, design_limits, diagnose
    from bayes_scaling.extrapolation import missed_modes_note

    if "posterior_predictive" not in posterior.idata.children:
        checking.add_posterior_predictive(posterior)

    diagnosis = diagnose(posterior)
    limits = design_limits(posterior.runs.N, posterior.runs.D)
    ranges, data_line, excluded = data_summary(posterior, all_runs)
    if posterior.method.endswith("-population"):  # a new group's law: the groups' runs are not its data
        check_lines, high_k = [POPULATION_CHECKS], None
    else:
        check_lines, high_k = model_checks(posterior)
    standard = standard_frontier(posterior)
    content = {
        "subtitle": _subtitle(posterior),
        "verdict": diagnosis.verdict() + "".join(f" {label}: {posterior.meta[key]}." for key, label in
                                                 (("retried", "Refitted"), ("more_draws", "Longer chains"))
                                                 if key in posterior.meta)
                   + "".join(f" These runs cannot identify the law: {limit}." for limit in limits)
                   + (f" {DESIGN_ADVICE[0].upper()}{DESIGN_ADVICE[1:]}." if limits else "")
                   + (f" Note: {note[0].upper()}{note[1:]}." if (note := missed_modes_note(posterior.meta)) else ""),
        "trusted": diagnosis.ok and not limits,
        "data_line": data_line,
        "ranges": ranges,
        "excluded": excluded,
        "diagnostics": diagnosis.checks(),
        "warnings": diagnosis.warnings(),
        "parameters": parameter_table(posterior, diagnosis),
        "frontier": frontier_table(posterior, standard),
        "frontier_notes": frontier_notes(posterior, standard),
        "decisions": decisions_table(posterior, decision_budgets(posterior, budgets)),
        "decisions_intro": DECISIONS_INTRO.format(model=posterior.model, level=LEVEL),
        "check_lines": check_lines,
        "high_k": high_k,
        "figures": plots.all_figures(posterior),
        "captions": figure_captions(posterior),
        "trust": None,
    }
    if backtest is None:
        backtest = BACKTEST_BY_DEFAULT
    if backtest is not False:
        content["trust"] = trust_section(posterior, None if backtest is True else backtest, progress=progress)
    return content


def _subtitle(posterior) -> str:
    meta = posterior.meta
    parts = [f"law {posterior.law.name}", f"method {posterior.method}", f"model {posterior.model_label}",
             f"{posterior.num_draws} draws"]
    if "likelihood" in meta:
        parts.append(f"likelihood {posterior.likelihood.label()}")
    parts.append("generated " + datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return "; ".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0.2em}.subtitle{color:#666;margin-top:0}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.verdict{padding:0.8em 1em;border-left:5px solid #2a7;background:#f4fbf6}
.verdict.bad{border-color:#c33;background:#fdf3f3}
.warning{color:#a00}figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:0.9em}
"""


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0)


def _slug(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", group).strip("-") or "group"


def _write_html(title: str, parts: list[tuple[str | None, dict]], out_path: Path) -> None:
    """One fit's page (``parts`` = [(None, content)]), or a grouped fit's: a part per group."""
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    if parts[0][0] is None:
        body += [f"<p class='subtitle'>{esc(parts[0][1]['subtitle'])}</p>", *_html_sections(parts[0][1], "", 2)]
    else:
        body.append("<p>One part per group and the population's, each read like a single fit: "
                    + ", ".join(f"<a href='#{_slug(g)}'>{esc(g)}</a>" for g, _ in parts) + ".</p>")
        for group, c in parts:
            body.append(f"<div class='group' id='{_slug(group)}'><h2>{esc(group)}</h2>"
                        f"<p class='subtitle'>{esc(c['subtitle'])}</p>"
                        + "\n".join(_html_sections(c, _slug(group) + "-", 3)) + "</div>")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body) + "</body></html>\n"
    )
    out_path.write_text(page, encoding="utf-8")


def _html_sections(c: dict, prefix: str, level: int) -> list[str]:
    """The sections of one fit's content, ids prefixed by ``prefix``, headings at ``level``."""
    from bayes_scaling import plots

    esc = html.escape
    ok = c["trusted"]
    body = []
    h, sub = f"h{level}", f"h{level + 1}"

    def section(key: str, *parts: str) -> None:
        body.append(f"<section id='{prefix}{key}'><{h}>{SECTIONS[key]}</{h}>{''.join(parts)}</section>")

    section("verdict", f"<p class='verdict{'' if ok else ' bad'}'>{esc(c['verdict'])}</p>")
    excluded = c["excluded"]
    section(
        "data", f"<p>{esc(c['data_line'])}</p>", _html_table(c["ranges"]),
        "" if excluded is None or excluded.empty else
        f"<{sub}>Excluded rows (flagged)</{sub}>{_html_table(excluded)}",
    )
    section(
        "diagnostics",
        _html_table(c["diagnostics"]) if not c["diagnostics"].empty else
        "<p>Not applicable to this fit (see the verdict).</p>",
        "".join(f"<p class='warning'>Warning: {esc(w)}</p>" for w in c["warnings"]),
    )
    section("parameters", f"<p>Posterior median and equal-tailed {LEVEL:.0%} interval.</p>", _html_table(c["parameters"]))
    section("frontier", f"<p>Median [{LEVEL:.0%} interval] under C = 6ND.</p>", _html_table(c["frontier"]),
            "".join(f"<p>{esc(line.strip())}</p>" for line in c["frontier_notes"]))
    section("decisions", f"<p>{esc(c['decisions_intro'])}</p>", _html_table(c["decisions"]),
            "".join(f"<p>{esc(line.strip())}</p>" for line in c["decisions"].attrs.get("notes", [])))
    section(
        "checks", "".join(f"<p>{esc(line)}</p>" for line in c["check_lines"]),
        "" if c["high_k"] is None else f"<{sub}>Runs with high Pareto k</{sub}>{_html_table(c['high_k'])}",
    )
    trust = c["trust"]
    if trust is not None:
        parts = [f"<p class='{'warning' if line.startswith('Warning') else ''}'>{esc(line)}</p>" for line in trust["lines"]]
        if trust["table"] is not None:
            parts.append(_html_table(trust["table"]))
        if trust["n_opt"] is not None:
            parts.append(f"<{sub}>N_opt of held-out IsoFLOP slices ({LEVEL:.0%} intervals)</{sub}>{_html_table(trust['n_opt'])}")
        if trust["figure"] is not None:
            data = base64.b64encode(plots.png_bytes(trust["figure"], dpi=90)).decode("ascii")
            parts.append(f"<figure id='{prefix}fig-backtest'><img alt='backtest' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(BACKTEST_CAPTION)}</figcaption></figure>")
        section("backtest", *parts)
    figures = []
    for name, fig in c["figures"].items():
        data = base64.b64encode(plots.png_bytes(fig, dpi=90)).decode("ascii")
        figures.append(
            f"<figure id='{prefix}fig-{name}'><img alt='{esc(plots.TITLES[name])}' src='data:image/png;base64,{data}'>"
            f"<figcaption><b>{esc(plots.TITLES[name])}.</b> {esc(c['captions'][name])}</figcaption></figure>"
        )
    section("figures", *figures)
    return body


def _md_note(line: str) -> str:
    """A note under a markdown table: a leading mark (``*``, ``**``) escaped, so it reads as the key to the
    table's marks rather than a list bullet or emphasis."""
    line = line.strip()
    stripped = line.lstrip("*")
    return "\\*" * (len(line) - len(stripped)) + stripped if stripped != line else line


def _md_link(path: str) -> str:
    """A relative link a CommonMark reader follows: in angle brackets where it holds a space or parenthesis."""
    return f"<{path}>" if any(ch in path for ch in " ()") else path


def _md_table(frame: pd.DataFrame) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _write_markdown(title: str, parts: list[tuple[str | None, dict]], out_path: Path) -> None:
    """As ``_write_html``; figures as PNG files in ``<name>_figures/`` (a folder per group)."""
    fig_dir = out_path.parent / f"{out_path.stem}_figures"
    out = [f"# {title}", ""]
    if parts[0][0] is None:
        out += [f"_{parts[0][1]['subtitle']}_", "", *_md_sections(parts[0][1], 2, fig_dir, out_path.parent)]
    else:
        out += ["One part per group and the population's, each read like a single fit: "
                + ", ".join(group for group, _ in parts) + ".", ""]
        for group, c in parts:
            out += [f"## {group}", "", f"_{c['subtitle']}_", "",
                    *_md_sections(c, 3, fig_dir / _slug(group), out_path.parent)]
    out_path.write_text("\n".join(out), encoding="utf-8")


def _md_sections(c: dict, level: int, fig_dir: Path, base: Path) -> list[str]:
    """The sections of one fit's content as markdown lines, headings at ``level``."""
    from bayes_scaling import plots

    h, sub = "#" * level, "#" * (level + 1)
    out = []

    def section(key: str, *parts: str) -> None:
        out.extend([f"{h} {SECTIONS[key]}", "", "\n\n".join(p for p in parts if p), ""])

    section("verdict", f"> {c['verdict']}")
    excluded = c["excluded"]
    section("data", c["data_line"], _md_table(c["ranges"]),
            "" if excluded is None or excluded.empty else f"{sub} Excluded rows (flagged)\n\n{_md_table(excluded)}")
    section("diagnostics",
            _md_table(c["diagnostics"]) if not c["diagnostics"].empty else "Not applicable to this fit (see the verdict).",
            *[f"**Warning:** {w}" for w in c["warnings"]])
    section("parameters", f"Posterior median and equal-tailed {LEVEL:.0%} interval.", _md_table(c["parameters"]))
    section("frontier", f"Median [{LEVEL:.0%} interval] under C = 6ND.", _md_table(c["frontier"]),
            *[_md_note(line) for line in c["frontier_notes"]])
    section("decisions", c["decisions_intro"], _md_table(c["decisions"]),
            *[_md_note(line) for line in c["decisions"].attrs.get("notes", [])])
    section("checks", *c["check_lines"],
            "" if c["high_k"] is None else f"{sub} Runs with high Pareto k\n\n{_md_table(c['high_k'])}")
    trust = c["trust"]
    if trust is not None:
        parts = [f"**{line}**" if line.startswith("Warning") else line for line in trust["lines"]]
        if trust["table"] is not None:
            parts.append(_md_table(trust["table"]))
        if trust["n_opt"] is not None:
            parts.append(f"{sub} N_opt of held-out IsoFLOP slices ({LEVEL:.0%} intervals)\n\n{_md_table(trust['n_opt'])}")
        if trust["figure"] is not None:
            path = plots.save(trust["figure"], fig_dir / "backtest", ("png",))[0]
            parts.append(f"![backtest]({_md_link(path.relative_to(base).as_posix())})\n\n*{BACKTEST_CAPTION}*")
        section("backtest", *parts)
    figures = []
    for name, fig in c["figures"].items():
        path = plots.save(fig, fig_dir / name, ("png",))[0]
        rel = path.relative_to(base).as_posix()
        figures.append(f"![{plots.TITLES[name]}]({_md_link(rel)})\n\n*{plots.TITLES[name]}.* {c['captions'][name]}")
    section("figures", *figures)
    return out
