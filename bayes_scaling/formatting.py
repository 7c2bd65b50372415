"""Text and JSON renderings of fits shared by the CLI, reports and backtests: SI-suffixed numbers,
frontier and parameter tables."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling.extrapolation import RISE_KEY


def format_si(x: float) -> str:
    """1.23e9 -> '1.23B'; keeps three significant figures."""
    if not math.isfinite(x):
        return str(x)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def format_ratio(x: float) -> str:
    """Tokens per parameter: one decimal from 0.1 to 10,000 (20.0, 349.4), else three significant
    figures (0.0039, 8.55e+13), so that neither a tiny nor a huge ratio reads as 0.0 or as 14 digits."""
    if math.isfinite(x) and (x == 0 or 0.1 <= abs(x) < 1e4):
        return f"{x:.1f}"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Reach:
    """Where a point (N, D) lies against the fitted runs, from the smallest and largest fitted N, D and
    C = 6ND (``of``): beyond them where N, D or C exceeds the largest fitted value (there the extrapolating
    model adds the law's drift, u_X = max(0, ln X - ln X_max) > 0 on some axis), below them where none does
    and N, D or C is under the smallest fitted value (the law extrapolated downwards, by the plain law alone:
    the drift is calibrated on upward extrapolation only), else among them. ``observed``: the farthest
    compute the calibration's folds saw an extrapolation reach (``observed_compute``)."""

    N: tuple[float, float]
    D: tuple[float, float]
    C: tuple[float, float]
    observed: float | None = None

    @classmethod
    def of(cls, posterior) -> Reach:
        N, D = np.asarray(posterior.runs.N, np.float64), np.asarray(posterior.runs.D, np.float64)
        C = 6.0 * N * D
        return cls((float(N.min()), float(N.max())), (float(D.min()), float(D.max())),
                   (float(C.min()), float(C.max())), observed_compute(posterior))

    def _points(self, N, D, C):
        N, D = np.atleast_1d(np.asarray(N, np.float64)), np.atleast_1d(np.asarray(D, np.float64))
        return N, D, 6.0 * N * D if C is None else np.atleast_1d(np.asarray(C, np.float64))

    def beyond(self, N, D, C=None) -> np.ndarray:
        """Per point: N, D or C (default 6ND) above the largest fitted value."""
        N, D, C = self._points(N, D, C)
        return (N > self.N[1]) | (D > self.D[1]) | (C > self.C[1])

    def below(self, N, D, C=None) -> np.ndarray:
        """Per point: not beyond, and N, D or C under the smallest fitted value."""
        N, D, C = self._points(N, D, C)
        return ~self.beyond(N, D, C) & ((N < self.N[0]) | (D < self.D[0]) | (C < self.C[0]))

    def mark(self, N: float, D: float, C: float | None = None) -> str:
        """"**" beyond the fitted runs and beyond ``observed`` in compute, "*" beyond them, "<" below them, else " "."""
        N, D, C = self._points(N, D, C)
        if self.beyond(N, D, C)[0]:
            return "**" if self.observed is not None and C[0] > self.observed else "*"
        return "<" if self.below(N, D, C)[0] else " "

    def where(self, N: float, D: float, C: float | None = None) -> str:
        """For JSON answers: "beyond" the fitted runs (``mark``'s *), "far beyond" (also beyond the compute the
        calibration's folds observed: **), "below" (<) or "within" them."""
        return {"*": "beyond", "**": "far beyond", "<": "below"}.get(self.mark(N, D, C), "within")

    def json(self) -> dict:
        return {"N": list(self.N), "D": list(self.D), "C": list(self.C)}

    def beyond_text(self) -> str:
        return (f"6ND above {self.C[1]:.3g} FLOPs, N above {format_si(self.N[1])} or D above {format_si(self.D[1])}, "
                "the largest fitted")

    def below_text(self) -> str:
        return (f"6ND under {self.C[0]:.3g} FLOPs, N under {format_si(self.N[0])} or D under {format_si(self.D[0])}, "
                "the smallest fitted")


def beyond_mark(C: float, fitted: float | None, observed: float | None = None) -> str:
    """"*" for a compute C beyond the largest fitted run's (``fitted``), "**" beyond also the farthest
    extrapolation the calibration's folds observed (``observed``, ``observed_compute``), else " "."""
    if fitted is None or not C > fitted:
        return " "
    return "**" if observed is not None and C > observed else "*"


def frontier_text(table: pd.DataFrame, fitted_compute: float | None = None,
                  observed_compute: float | None = None, reach: Reach | None = None,
                  training_budgets: bool = True) -> str:
    """A human-readable frontier table: median [lo, hi] at the stated level; with
    ``fitted_compute`` (the largest fitted run's 6ND), budgets beyond it are marked * (** beyond
    ``observed_compute`` too: ``beyond_mark``). With ``reach`` (``Reach.of`` the fit) each row is marked
    by where its median N_opt and D_opt lie (``Reach.mark``; with ``training_budgets`` the budget counts
    as its compute, else 6 N_opt D_opt does: budgets that add inference FLOPs)."""
    level = table["level"].iloc[0]
    header = f"Compute-optimal frontier (median [{level:.0%} interval])"
    lines = [header, f"{'budget C':>11}  {'N_opt':>24}  {'D_opt':>24}  {'L_opt':>22}  {'tokens/param':>20}"]
    for _, row in table.iterrows():
        def cell(name, fmt):
            return f"{fmt(row[name + '_median'])} [{fmt(row[name + '_lo'])}, {fmt(row[name + '_hi'])}]"

        if reach is not None:
            n, d = row["N_opt_median"], row["D_opt_median"]
            mark = reach.mark(n, d, row["budget"] if training_budgets else None)
        else:
            mark = beyond_mark(row["budget"], fitted_compute, observed_compute)
        lines.append(
            f"{row['budget']:>10.3g}{mark:<2} {cell('N_opt', format_si):>24}  {cell('D_opt', format_si):>24}  "
            f"{cell('L_opt', lambda v: f'{v:.4f}'):>22}  {cell('tokens_per_param', format_ratio):>20}"
        )
    return "\n".join(lines)


FEW_FOLDS = 3  # the calibration's folds by default (``extrapolation.calibrate``); fewer: too few budgets, runs or distinct sizes


def fitted_compute(posterior) -> float:
    """The largest fitted run's compute 6ND."""
    return float(np.max(6.0 * posterior.runs.N * posterior.runs.D))


def observed_compute(posterior) -> float | None:
    """The farthest compute the extrapolating model's calibration saw an extrapolation reach: the largest
    fitted run's 6ND times e^(u*_C), u*_C the farthest compute distance of a fold's held-out run from its
    fold's runs (``meta["extrapolation"]["range"]["seen"]``); None for a plain-law fit, one whose calibration
    had no usable fold, or one saved without it."""
    extra = posterior.meta.get("extrapolation") or {}
    seen = extra.get("range", {}).get("seen")
    if seen is None or not int(extra.get("folds", 0)):
        return None
    return fitted_compute(posterior) * math.exp(float(seen[2]))


def untested_axes(posterior) -> list[str]:
    """Which of "N" and "D" no fold of the extrapolating model's calibration extrapolated along (u*_N or
    u*_D, the farthest distance of a fold's held-out run beyond its fold's runs, is 0:
    ``meta["extrapolation"]["range"]["seen"]``); empty for a plain-law fit, one without usable folds,
    or one saved without it."""
    extra = posterior.meta.get("extrapolation") or {}
    seen = extra.get("range", {}).get("seen")
    if seen is None or not int(extra.get("folds", 0)):
        return []
    return [axis for axis, u in zip("ND", seen[:2]) if float(u) <= 0.0]


def _untested_note(posterior, untested: list[str]) -> str:
    """The note of ``beyond_notes`` for the axes of ``untested_axes``."""
    tops = {"N": ("model size", np.max(posterior.runs.N)), "D": ("tokens", np.max(posterior.runs.D))}
    named = " or ".join(f"{axis} ({tops[axis][0]} beyond the largest fitted, {format_si(float(tops[axis][1]))})"
                        for axis in untested)
    both = len(untested) == 2
    scale = "the prior's scale" if both else f"the scale learned along {'D' if untested == ['N'] else 'N'}"
    return (f"  no fold of the calibration extrapolated in {named}: beyond there the drift of the law's "
            f"exponent{'s' if both else ''} is centred on no drift, with {scale}; what the folds learned (the level "
            "and allocation along compute) is carried into sizes no fold tested (docs/extrapolation.md, 'Where it "
            "answers')")


def reach_json(posterior) -> dict:
    """For JSON answers: the largest fitted run's compute (beyond it: * in text), the farthest the
    calibration's folds observed an extrapolation reach (``observed_compute``; beyond it: **; null where none)
    and the axes along which no fold extrapolated (``untested_axes``)."""
    return {"fitted_compute_max": fitted_compute(posterior), "calibration_observed_compute": observed_compute(posterior),
            "calibration_untested_axes": untested_axes(posterior), "fitted_ranges": Reach.of(posterior).json()}


def _mean_beyond(extra: dict) -> str:
    """How the fit carries the drift's learned mean beyond the folds' distances (``extrapolation.MEAN_BEYOND``)."""
    text = str(extra.get("mean beyond the folds' distances", ""))
    share = re.search(r"in (\d+%) of the draws", text)
    if share:
        return f"its learned mean is held at the folds' distance in {share.group(1)} of the draws and carried on in the rest"
    return "its learned mean is held at the folds' distance"


def beyond_notes(posterior, budgets=(), optima: bool = True, points=None) -> list[str]:
    """What a reader of a frontier or prediction must know about its answers outside the fitted runs
    (marked by ``frontier_text`` and ``Reach.mark``): for training ``budgets`` beyond the largest fitted
    compute, or ``points`` (N, D) beyond the fitted runs in N, D or 6ND, which model answers there, and
    where the extrapolating model's mean drift of the allocation was learned from loss residuals only
    (no fold observed an optimum), that its median N_opt there follows a weakly identified direction
    (docs/extrapolation.md); for answers below the fitted runs, that the law is extrapolated downwards
    with no error of its own. ``optima`` False (a table of losses, no N_opt) leaves that note out."""
    reach = Reach.of(posterior)
    budgets = np.asarray(budgets, np.float64).ravel()
    N, D = (np.empty(0), np.empty(0)) if points is None else (np.atleast_1d(np.asarray(points[0], np.float64)),
                                                              np.atleast_1d(np.asarray(points[1], np.float64)))
    below = bool(np.any(reach.below(N, D)) or np.any(budgets < reach.C[0]))
    below_note = ([f"< below the fitted runs ({reach.below_text()}): the law extrapolated downwards; no model adds the "
                   "law's own error there (the extrapolating model's drift is calibrated on extrapolation upwards), so "
                   "these intervals hold the plain law's uncertainty only"] if below else [])
    if not (np.any(budgets > reach.C[1]) or np.any(reach.beyond(N, D))):
        return below_note
    top = reach.C[1]
    extra = posterior.meta.get("extrapolation")
    if not extra:
        corpus_bound = hasattr(getattr(posterior, "law", None), "with_unique_tokens")  # a data-constrained law
        grouped = "pooling" in posterior.meta
        if grouped:
            from bayes_scaling.hierarchical.fit import POPULATION
        population = grouped and posterior.meta.get("group") == POPULATION
        how = ("a grouped fit's population (a new group's law) keeps the plain law: each group's drift is calibrated "
               "on that group's own runs" if population else
               "a grouped fit adds each group's drift unless fitted with --model plain" if grouped else
               "a law bound to each run's unique tokens has no extrapolating model; for a law of N and D alone the "
               "default model adds the law's own error beyond the runs" if corpus_bound else
               "the default model adds the law's own error beyond the runs")
        return [f"* beyond the fitted runs ({reach.beyond_text()}): the {posterior.model} assumes itself exact "
                f"there, so these intervals carry no error of the law's own: parameter uncertainty only (and a "
                f"predicted run's noise) ({how}: docs/extrapolation.md)"] + below_note
    learned = ("learned from how the law extrapolated within these runs"
               if int(extra.get("folds", FEW_FOLDS)) > 0 else
               "its size set by the drift's priors alone (no fold of these runs could calibrate it)")
    notes = [f"* beyond the fitted runs ({reach.beyond_text()}): the law plus its drift, {learned}; intervals widen "
             "with the distance"]
    observed = observed_compute(posterior)
    if observed is not None and (np.any(budgets > observed) or np.any(reach.beyond(N, D) & (6.0 * N * D > observed))):
        notes.append(f"** beyond {observed:.3g} FLOPs ({observed / top:.3g}x the largest fitted run): farther than any "
                     "held-out run of the calibration's folds lay from its fold's runs, so no fold tested the drift "
                     f"this far: {_mean_beyond(extra)}, and its spread keeps growing linearly with the distance "
                     "(docs/extrapolation.md, 'Farther out')")
    untested = untested_axes(posterior)
    if untested:
        notes.append(_untested_note(posterior, untested))
    compute_folds = int(extra.get("folds", FEW_FOLDS)) - len(extra.get("axis folds", ()))
    if compute_folds < FEW_FOLDS:
        notes.append(f"  only {compute_folds} calibration fold(s) by compute (too few budgets, runs or distinct model sizes "
                     f"and token counts for {FEW_FOLDS}): more than 10x beyond the runs these intervals can be far too "
                     "narrow (fitted on 4 budgets, a "
                     "drifting law's 90% intervals covered about half of the runs 10-300x beyond: docs/extrapolation.md, "
                     "'A limit: few fitted budgets')")
    rise = extra.get(RISE_KEY)
    if rise is not None and float(rise) > 0:
        notes.append(f"  the median loss RISES with scale here (+{float(rise):.1%} per 10x in N and D along the "
                     "compute-optimal ray): the drift learned from these runs' folds moves the optimum so fast that a run "
                     "of that shape is read ever farther from it, and its medians far beyond the runs are not credible "
                     "forecasts; read the interval and compare --model plain (docs/extrapolation.md, "
                     "'The level bounded so the frontier never rises', what is left)")
    if (optima and int(extra.get("folds", 0)) > 0  # no fold: nothing was learned (the priors alone, noted above)
            and str(extra.get("allocation mean", "")).startswith("learned from loss residuals only")):
        notes.append("  N_opt there: no fold of these runs observed an IsoFLOP optimum, so the drift's mean shift of the "
                     "allocation was learned from loss residuals only and is weakly identified; the median N_opt follows "
                     "it: read the interval rather than the median (compare --model plain; a budget column lets the folds "
                     "learn it from IsoFLOP optima: docs/extrapolation.md, 'A limit to know')")
    return notes + below_note


FALL_TOLERANCE = 0.01  # a median N_opt lower by more than this (relative) at a larger budget is called out


def falling_optimum_notes(posterior, table: pd.DataFrame) -> list[str]:
    """Where a frontier's median N_opt falls as its budget grows (an extrapolating fit: the plain law's never
    does), a note saying where and why: beyond the largest fitted D a draw whose data exponent steepens
    (d_D > 0) has a second optimum at more tokens, and its optimum jumps there once that one is lower, so its
    N_opt falls at that budget (experiments/allocation_monotonicity_check.py; docs/extrapolation.md)."""
    if posterior.meta.get("extrapolation") is None or len(table) < 2:
        return []
    rows = table.sort_values("budget")
    n = rows["N_opt_median"].to_numpy(np.float64)
    falls = np.flatnonzero(n[1:] < (1 - FALL_TOLERANCE) * n[:-1])
    if not falls.size:
        return []
    i = int(falls[0])
    budgets = rows["budget"].to_numpy(np.float64)
    return [f"  the median N_opt FALLS from {format_si(n[i])} at {budgets[i]:.3g} FLOPs to {format_si(n[i + 1])} at "
            f"{budgets[i + 1]:.3g}: past the largest fitted D ({format_si(float(np.max(posterior.runs.D)))}) the draws "
            "whose data exponent steepens have a second optimum at more tokens and jump to it, so their N_opt falls "
            "where D_opt first passes it; read the interval, and compare --model plain (docs/extrapolation.md, "
            "'A limit: the optimum's jump past the largest fitted D')"]


CORNER_TOLERANCE = 1e-6  # a median N_opt (D_opt) this close, relatively, to the largest fitted N (D) is on its corner


def corner_optimum_notes(posterior, table: pd.DataFrame) -> list[str]:
    """Where a frontier's median N_opt is the largest fitted N, or its median D_opt the largest fitted D (an
    extrapolating fit), a note saying why: the drift starts at the fitted runs' edge, so along an IsoFLOP
    slice the drifted log-loss has a kink there, and a draw whose exponent flattens past it (d_N or d_D < 0)
    finds no better size or token count beyond it: its optimum stays on that corner over a range of budgets,
    and when enough draws' do, the median is the corner itself (docs/extrapolation.md, 'A limit: the optimum's
    jump past the largest fitted D'). The median then says where the drift starts, not where the optimum is."""
    if posterior.meta.get("extrapolation") is None or not len(table):
        return []
    rows = table.sort_values("budget")
    budgets = rows["budget"].to_numpy(np.float64)
    notes = []
    for axis, largest, what in (("N_opt", float(np.max(posterior.runs.N)), "model size N"),
                                ("D_opt", float(np.max(posterior.runs.D)), "token count D")):
        on = np.isclose(rows[f"{axis}_median"].to_numpy(np.float64), largest, rtol=CORNER_TOLERANCE, atol=0.0)
        if on.any():
            at = ", ".join(f"{b:.3g}" for b in budgets[on])
            notes.append(f"  the median {axis} at {at} FLOPs is the largest fitted {what} ({format_si(largest)}): the "
                         "drift starts there, and the draws whose exponent flattens past it keep their optimum on that "
                         "corner, so the median marks where the runs end, not a measured optimum; read the interval "
                         "(docs/extrapolation.md, 'A limit: the optimum's jump past the largest fitted D')")
    return notes


BEAT_SIGMAS = 2.0  # how far (in the fit's noise sd on log-loss) a run must lie below the frontier's interval


def runs_beat_frontier_notes(posterior, level: float = 0.9) -> list[str]:
    """Where the runs of an IsoFLOP budget of the fit (its ``budget`` column, or the offset column of a
    grouped fit) reached a lower loss than the frontier allows there: log(best run) below log(L_opt's
    lower bound) by more than ``BEAT_SIGMAS`` noise sds. L_opt(C) is the law's lowest loss at compute C,
    so such a frontier contradicts runs the team already has. A grouped fit's free per-budget offsets,
    which the frontier does not carry, can cause it (docs/hierarchical.md, 'Frontiers')."""
    frame = posterior.runs.frame
    column = posterior.meta.get("offset_by") or "budget"
    if column not in frame or "sigma" not in posterior.idata["posterior"]:
        return []
    budgets = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    loss = frame["loss"].to_numpy(np.float64)
    usable = np.isfinite(budgets) & (budgets > 0) & np.isfinite(loss) & (loss > 0)
    levels = np.unique(budgets[usable])
    if not len(levels):
        return []
    table = posterior.frontier(list(levels), level=level)
    sigma = float(np.median(posterior.draws("sigma")))
    beaten = []
    for b, lo, hi in zip(levels, table["L_opt_lo"], table["L_opt_hi"]):
        best = float(np.min(loss[usable & (budgets == b)]))
        if math.log(best) < math.log(lo) - BEAT_SIGMAS * sigma:
            beaten.append(f"at {b:.3g} FLOPs a run reached {best:.4f}, L_opt {level:.0%} interval [{lo:.4f}, {hi:.4f}]")
    if not beaten:
        return []
    free_offsets = posterior.meta.get("offset_by") and not posterior.meta.get("offset_detrended")
    why = (" This grouped fit has free per-budget offsets (offset_by " + repr(posterior.meta["offset_by"]) + "), which the "
           "frontier does not carry: they can take the loss's trend in compute away from the laws (docs/hierarchical.md, "
           "'Frontiers'); refit with --detrend-offsets to keep that trend with the laws, or --offset-by none."
           if free_offsets else " The law does not describe these runs' best loss: read the frontier with care.")
    shown = "; ".join(beaten[:3]) + (f"; and at {len(beaten) - 3} more budgets" if len(beaten) > 3 else "")
    return [f"  runs of the fit's own IsoFLOP budgets reached a lower loss than its frontier allows ({shown}).{why}"]


def parameters_text(summary: pd.DataFrame) -> str:
    level = summary["level"].iloc[0]
    lines = [f"Parameters (median [{level:.0%} interval])"]
    for _, row in summary.iterrows():
        lines.append(f"  {row['parameter']:>6} = {row['median']:.5g} [{row['lo']:.5g}, {row['hi']:.5g}]")
    return "\n".join(lines)


def frontier_json(table: pd.DataFrame, reach: Reach | None = None, training_budgets: bool = True) -> list[dict]:
    """The frontier's rows; with ``reach``, each row's "range": where its median optimum lies against the
    fitted runs (``Reach.where``; the budget as its compute with ``training_budgets``)."""
    rows = []
    for _, row in table.iterrows():
        entry = {"budget": float(row["budget"]), "level": float(row["level"])}
        for q in ("N_opt", "D_opt", "L_opt", "tokens_per_param"):
            entry[q] = {"median": float(row[f"{q}_median"]), "lo": float(row[f"{q}_lo"]), "hi": float(row[f"{q}_hi"])}
        if reach is not None:
            entry["range"] = reach.where(row["N_opt_median"], row["D_opt_median"],
                                         row["budget"] if training_budgets else None)
        rows.append(entry)
    return rows


def parameters_json(summary: pd.DataFrame) -> dict:
    return {
        row["parameter"]: {"median": float(row["median"]), "lo": float(row["lo"]), "hi": float(row["hi"]), "level": float(row["level"])}
        for _, row in summary.iterrows()
    }
