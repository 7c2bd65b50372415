"""Leave-future-out backtest: fit the cheaper runs, predict the held-out expensive ones, score.

``backtest(runs)`` splits each group's runs by compute (``splits.split_by_compute``: the top
IsoFLOP budgets, or the top fraction of compute where the table has no budget column), fits each
group's training runs with ``fit`` (any callable Runs -> Posterior; default ``fit_nuts`` at its
defaults), and predicts every held-out run with ``posterior.predict(N, D)``: whichever model the
fit is, its own predictive draws are scored, nothing here knows one model from another.

Per held-out run: the predictive median and the equal-tailed interval at each level, whether each
covers the observed loss, its interval score and CRPS (``bayes_scaling.scoring``). Per group and
per held-out budget (the budget column's levels; for compute splits, decades of the held-out
runs' compute): coverage, mean interval score, mean CRPS, median signed and absolute relative
error of the predictive median, and the mean interval width relative to the median.

Where a held-out budget is an IsoFLOP slice with at least ``MIN_SLICE_RUNS`` runs: the slice's own
N_opt (Chinchilla's Approach 2: a parabola of loss in log N, its vertex, with a bootstrap interval
over the slice's runs) beside the model's N_opt interval at the slice's compute
(``posterior.frontier``), and whether it lies inside.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_scaling import scoring
from bayes_scaling.errors import InputError, InputWarning
from bayes_scaling.runs.table import Runs, as_runs
from bayes_scaling.splits import SLICE_MIN_RUNS as MIN_SLICE_RUNS
from bayes_scaling.splits import budget_column_note, budget_column_of, split_by_compute

LEVELS = (0.5, 0.8, 0.9)
BOOTSTRAP_RESAMPLES = 1000
ALL = "all held-out"


def level_tag(level: float) -> str:
    """0.9 -> '90': how a level is named in column names."""
    return f"{level * 100:g}"


def default_fit(seed: int = 0, progress: bool = False) -> Callable[[Runs], object]:
    """``fit_nuts`` with its defaults (and ``seed``)."""

    def fit(runs: Runs):
        from bayes_scaling.fitting.nuts import fit_nuts

        return fit_nuts(runs, seed=seed, progress=progress)

    return fit


def fit_with(method: str = "nuts", *, law: str = "chinchilla", bootstrap: int = 0, delta: float = 1e-3,
             progress: bool = False, **nuts_settings) -> Callable[[Runs], object]:
    """A fit callable: ``fit_nuts(runs, law=law, **nuts_settings)``, or for ``method`` "map"
    Chinchilla's Approach 3 (``fit_map``, with ``bootstrap`` resamples). A law bound to per-run
    covariates (data-constrained: unique tokens) is refused: it cannot predict other runs."""
    if method.startswith("map"):
        def fit(runs: Runs):
            from bayes_scaling.fitting.point import fit_map

            return fit_map(runs, bootstrap=bootstrap, seed=int(nuts_settings.get("seed", 0)), delta=delta)

        return fit
    from bayes_scaling.laws import get_law

    if method != "nuts":
        raise InputError(f"backtest refits with method 'nuts' or 'map', got {method!r}")
    if hasattr(get_law(law), "for_runs"):
        raise InputError(f"law {law!r} is bound to each fitted run's covariates (unique tokens), so it cannot "
                         "predict held-out runs yet; backtest the chinchilla or kaplan law")

    def fit(runs: Runs):
        from bayes_scaling.fitting.nuts import fit_nuts

        return fit_nuts(runs, law=law, progress=progress, **nuts_settings)

    return fit


def hierarchical_fit(*, model: str = "extrapolating", refits: str | None = None, seed: int = 0, progress: bool = False,
                     **keywords) -> Callable[[Runs], dict]:
    """A joint fitter for ``backtest(fit_groups=...)``: Runs -> {group: Posterior}, the hierarchical model
    (``fit_hierarchical``, grouped by the runs' ``group`` column) fitted once to every group's training runs,
    with the redo policy on as ``fit --group-by`` has it; ``model`` "extrapolating" (the default, as ``fit
    --group-by``'s) adds each group's drift (``add_drift``, calibrated on that group's training runs), "plain"
    keeps the hierarchical laws alone. ``keywords`` go to ``fit_hierarchical``."""
    from bayes_scaling.fitting.nuts import add_drift
    from bayes_scaling.hierarchical import fit_hierarchical

    if model not in ("plain", "extrapolating"):
        raise InputError(f"model must be one of extrapolating, plain, got {model!r}")
    keywords = {"retry_divergent": True, "more_draws": True, **keywords}

    def fit(runs: Runs) -> dict:
        groups = fit_hierarchical(runs, group_by="group", seed=seed, progress=progress, **keywords).groups
        if model == "extrapolating":
            groups = {name: add_drift(post, refits=refits) for name, post in groups.items()}
        return groups

    return fit


def fit_like(posterior, progress: bool = False) -> Callable[[Runs], object]:
    """A fit callable with the law and settings of a saved fit (NUTS or the Approach-3 point fit),
    for backtesting the runs it was fitted to. Custom priors are not recorded in a saved fit: the
    refits use the law's defaults; a hierarchical member is refitted as one pooled law; a WSD fit as a
    WSD fit (``wsd.fit_like_wsd``)."""
    if posterior.has_draws("wsd_offset"):
        from bayes_scaling.wsd import fit_like_wsd

        return fit_like_wsd(posterior, progress)
    meta = posterior.meta
    settings = {key: meta[key] for key in ("likelihood", "nu", "num_chains", "num_warmup", "num_draws", "seed",
                                           "misfit_noise") if key in meta}
    settings["model"] = "extrapolating" if posterior.model == "extrapolating" else "plain"
    if "refits" in (meta.get("extrapolation") or {}):  # the calibration's refits, as the fit's own
        settings["refits"] = meta["extrapolation"]["refits"]
    method = "map" if posterior.method.startswith("map") else "nuts"
    if method == "map":
        settings = {"seed": meta.get("seed", 0)}
    return fit_with(method, law=posterior.law.name.split("[")[0], bootstrap=int(meta.get("bootstrap", 0)),
                    delta=float(meta.get("delta", 1e-3)), progress=progress, **settings)


def hierarchical_fit_like(member, progress: bool = False) -> Callable[[Runs], dict]:
    """``hierarchical_fit`` with the law and settings of a saved grouped fit, read from one of its
    members (``meta``: pooling, shared parameters, spread prior, budget offsets, likelihood, sampler
    settings; the extrapolating model where the member has its drift), for backtesting the grouped fit
    as one joint fit. Custom priors and spreads are not recorded in a saved fit: the law's defaults."""
    meta = member.meta
    keywords = {key: meta[key] for key in ("likelihood", "nu", "num_chains", "num_warmup", "num_draws", "target_accept",
                                           "pooling", "spread_prior") if key in meta}
    keywords["share"] = tuple(meta.get("shared", ())) if meta.get("pooling") != "complete" else ()
    keywords["offset_by"] = meta.get("offset_by")  # None: the fit had no offsets ("auto" could add them)
    if meta.get("offset_by"):
        keywords.update(offset_scale=float(meta["offset_scale"]), detrend_offsets=bool(meta["offset_detrended"]))
    refits = (meta.get("extrapolation") or {}).get("refits")
    return hierarchical_fit(model="extrapolating" if member.model == "extrapolating" else "plain", refits=refits,
                            seed=int(meta.get("seed", 0)), progress=progress, law=member.law.name.split("[")[0],
                            **keywords)


# --- Approach 2 on one IsoFLOP slice ----------------------------------------------------------------
@dataclass(frozen=True)
class SliceOptimum:
    """The empirical N_opt of one IsoFLOP slice: vertex of the parabola of loss in log N."""

    n_opt: float  # NaN where the parabola opens downward
    lo: float
    hi: float
    level: float
    opens_downward: bool
    vertex_in_slice: bool
    valid_resamples: float  # share of bootstrap resamples with a minimum

    @property
    def note(self) -> str:
        if self.opens_downward:
            return "parabola opens downward: the slice has no minimum"
        if not self.vertex_in_slice:
            return "vertex outside the slice's N range (extrapolated)"
        return ""


def _parabola(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares parabolas y = c0 + c1 x + c2 x^2, one per row of ``weights`` (B, n):
    coefficients (B, 3)."""
    X = np.stack([np.ones_like(x), x, x**2], axis=1)  # (n, 3)
    XtWX = np.einsum("ni,bn,nj->bij", X, weights, X)
    XtWy = np.einsum("ni,bn,n->bi", X, weights, y)
    return np.linalg.solve(XtWX, XtWy[..., None])[..., 0]


def slice_optimum(N, loss, *, level: float = 0.9, resamples: int = BOOTSTRAP_RESAMPLES,
                  seed: int = 0) -> SliceOptimum:
    """Approach 2 on one IsoFLOP slice: fit loss = c0 + c1 log N + c2 (log N)^2 by least squares;
    N_opt = exp(-c1 / (2 c2)) where c2 > 0. The interval: equal-tailed ``level`` quantiles of the
    vertex over ``resamples`` bootstrap resamples of the slice's runs (those with at least three
    distinct N and an upward-opening parabola)."""
    logn = np.log(np.asarray(N, np.float64))
    loss = np.asarray(loss, np.float64)
    if len(logn) < 3 or len(np.unique(logn)) < 3:
        raise InputError(f"an IsoFLOP slice needs at least 3 distinct model sizes, got {len(np.unique(logn))}")
    centre = logn.mean()
    x = logn - centre
    c = _parabola(x, loss, np.ones((1, len(x))))[0]
    opens_downward = not c[2] > 0
    vertex = centre - c[1] / (2 * c[2]) if not opens_downward else np.nan
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=resamples).astype(np.float64)
    sizes = np.unique(logn, return_inverse=True)[1]  # runs that share a model size (replicates, seeds) count once
    per_size = np.zeros((resamples, sizes.max() + 1))
    np.add.at(per_size, (slice(None), sizes), counts)
    ok = (per_size > 0).sum(axis=1) >= 3
    vertices = np.full(resamples, np.nan)
    if ok.any():
        cb = _parabola(x, loss, counts[ok])
        up = cb[:, 2] > 0
        v = np.full(len(cb), np.nan)
        v[up] = centre - cb[up, 1] / (2 * cb[up, 2])
        vertices[ok] = v
    good = vertices[np.isfinite(vertices)]
    lo, hi = (np.exp(np.quantile(good, [(1 - level) / 2, (1 + level) / 2])) if len(good) else (np.nan, np.nan))
    return SliceOptimum(
        n_opt=float(np.exp(vertex)), lo=float(lo), hi=float(hi), level=level, opens_downward=bool(opens_downward),
        vertex_in_slice=bool(not opens_downward and logn.min() <= vertex <= logn.max()),
        valid_resamples=float(len(good) / resamples),
    )


# --- the result ---------------------------------------------------------------------------------------
@dataclass
class BacktestResult:
    """A backtest's held-out runs (``runs``: one row each), its ``summary`` (per group and held-out
    budget, and per group over all its held-out runs), the IsoFLOP slices' N_opt (``n_opt``), the
    split rule, the levels, and the model that produced the predictions."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    n_opt: pd.DataFrame
    split: str
    levels: tuple[float, ...]
    level: float
    model: str
    budget_column: str | None
    fit_seconds: dict[str, float] = field(default_factory=dict)
    # per group: whether its fit passed the sampler's checks, the verdict, what its runs cannot identify
    diagnostics: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # groups not backtested, and why
    joint: bool = False  # one fit of every group's training runs together (``fit_groups``), not one per group

    def for_group(self, name) -> "BacktestResult":
        """This backtest's rows of one group (its held-out runs, summaries, slices, verdict)."""
        def rows(frame):
            return frame[frame["group"].astype(str) == str(name)].reset_index(drop=True)

        return BacktestResult(runs=rows(self.runs), summary=rows(self.summary), n_opt=rows(self.n_opt), split=self.split,
                              levels=self.levels, level=self.level, model=self.model, budget_column=self.budget_column,
                              fit_seconds=self.fit_seconds,
                              diagnostics={g: v for g, v in self.diagnostics.items() if g == str(name)},
                              skipped={g: v for g, v in self.skipped.items() if g == str(name)}, joint=self.joint)

    def coverage(self, level: float | None = None) -> float:
        """Share of all held-out runs inside their ``level`` interval (default: ``self.level``)."""
        tag = level_tag(self.level if level is None else level)
        return float(self.runs[f"covered_{tag}"].mean())

    def to_json(self) -> dict:
        """Every held-out run (N, D, observed loss, predictive median and bounds at each level), the
        summaries and the N_opt table, as plain JSON types."""
        runs = []
        for r in self.runs.to_dict("records"):
            runs.append({
                "group": str(r["group"]), "run_id": str(r["run_id"]), "N": float(r["N"]), "D": float(r["D"]),
                "C": float(r["C"]), "budget": _num(r["budget"]), "budget_label": str(r["budget_label"]),
                "extrapolation_decades": float(r["extrapolation_decades"]), "loss": float(r["loss"]),
                "median": float(r["median"]), "crps": float(r["crps"]),
                "intervals": {level_tag(lv): {"level": lv, "lo": float(r[f"lo_{level_tag(lv)}"]),
                                              "hi": float(r[f"hi_{level_tag(lv)}"]),
                                              "covered": bool(r[f"covered_{level_tag(lv)}"])}
                              for lv in self.levels},
            })
        return {
            "split": self.split, "model": self.model, "joint": self.joint, "levels": list(self.levels), "level": self.level,
            "budget_column": self.budget_column, "n_held_out": len(self.runs),
            "coverage": {level_tag(lv): self.coverage(lv) for lv in self.levels},
            "fit_seconds": self.fit_seconds, "diagnostics": self.diagnostics, "skipped": self.skipped,
            "summary": _records(self.summary), "n_opt": _records(self.n_opt), "runs": runs,
        }

    def text(self) -> str:
        """The per-group table (and the N_opt table) as plain text."""
        tag = level_tag(self.level)
        lines = [f"Backtest ({self.split}); predictions by: {self.model}",
                 f"{len(self.runs)} held-out runs; coverage "
                 + ", ".join(f"{lv:.0%}: {self.coverage(lv):.0%}" for lv in self.levels)]
        head = (f"{'group':<24} {'held-out budget':<18} {'n':>4}  "
                + " ".join(f"{'cov' + level_tag(lv):>6}" for lv in self.levels)
                + f"  {'IS' + tag:>9} {'CRPS':>9} {'med err':>8} {'med|err|':>8} {'width' + tag:>8}")
        lines.append(head)
        for r in self.summary.to_dict("records"):
            lines.append(
                f"{str(r['group'])[:24]:<24} {str(r['budget_label'])[:18]:<18} {r['n']:>4}  "
                + " ".join(f"{r['coverage_' + level_tag(lv)]:>6.0%}" for lv in self.levels)
                + f"  {r['interval_score_' + tag]:>9.4f} {r['crps']:>9.4f} {r['median_rel_error']:>+8.2%} "
                  f"{r['median_abs_rel_error']:>8.2%} {r['rel_width_' + tag]:>8.2%}")
        if not self.n_opt.empty:
            lines.append("")
            lines.append(f"Empirical N_opt of held-out IsoFLOP slices (Approach 2, bootstrap {self.level:.0%}) "
                         f"against the model's {self.level:.0%} N_opt interval")
            for r in self.n_opt.to_dict("records"):
                inside = {True: "inside", False: "OUTSIDE"}.get(r["inside"], "n/a")
                lines.append(
                    f"{str(r['group'])[:24]:<24} budget {r['budget']:<9.3g} empirical {_si(r['empirical_n_opt'])} "
                    f"[{_si(r['empirical_lo'])}, {_si(r['empirical_hi'])}]  model {_si(r['model_n_opt'])} "
                    f"[{_si(r['model_lo'])}, {_si(r['model_hi'])}]  {inside}"
                    + (f"  ({r['note']})" if r["note"] else ""))
        if self.skipped:
            lines.append("")
            lines += [f"not backtested: {group}: {why}" for group, why in self.skipped.items()]
        untrusted = {g: v for g, v in self.diagnostics.items() if v["ok"] is False or v["design_limits"]}
        if untrusted:
            lines.append("")
            for group, v in untrusted.items():
                why = "failed its sampler checks" if v["ok"] is False else "passed its sampler checks"
                lines.append(f"warning: {group}'s fit {why}; read its rows with care"
                             + "".join(f"; its runs cannot identify the law: {limit}" for limit in v["design_limits"]))
        return "\n".join(lines)

    def figure(self):
        """Observed against predicted for every held-out run: per group a panel, runs ordered by
        held-out budget then N; bars are the 50% and ``level`` predictive intervals, the tick the
        median, dots the observed loss (red outside the ``level`` interval)."""
        import math

        from bayes_scaling.plots import _new_figure

        groups = list(dict.fromkeys(self.runs["group"]))
        cols = min(3, len(groups))
        rows = math.ceil(len(groups) / cols)
        fig, axes = _new_figure(rows, cols, 5.0, 3.4)
        inner, outer = min(self.levels), self.level
        for ax, name in zip(axes.flat, groups):
            t = self.runs[self.runs["group"] == name].sort_values(["budget_order", "N"]).reset_index(drop=True)
            x = np.arange(len(t))
            for lv, alpha, width in ((outer, 0.3, 6), (inner, 0.6, 6)):
                tag = level_tag(lv)
                ax.vlines(x, t[f"lo_{tag}"], t[f"hi_{tag}"], color="tab:blue", alpha=alpha, lw=width,
                          label=f"{lv:.0%} interval")
            ax.scatter(x, t["median"], marker="_", s=60, color="tab:blue", zorder=3, label="predictive median")
            inside = t[f"covered_{level_tag(outer)}"].to_numpy(bool)
            ax.scatter(x[inside], t["loss"][inside], s=14, color="black", zorder=4, label="observed")
            ax.scatter(x[~inside], t["loss"][~inside], s=16, color="tab:red", zorder=4,
                       label=f"observed, outside {outer:.0%}")
            starts = np.flatnonzero(np.r_[True, t["budget_label"].to_numpy()[1:] != t["budget_label"].to_numpy()[:-1]])
            for s in starts[1:]:
                ax.axvline(s - 0.5, color="gray", lw=0.8, ls=":")
            ax.set_xticks(starts, [str(t["budget_label"][s]) for s in starts], fontsize=7, rotation=20, ha="right")
            cover = inside.mean()
            ax.set(ylabel="loss", xlabel="held-out runs, by budget then N",
                   title=f"{name}: {cover:.0%} inside {outer:.0%} ({len(t)} run{'' if len(t) == 1 else 's'})")
        for ax in list(axes.flat)[len(groups):]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        split = self.split if len(self.split) <= 60 else self.split[:57] + "..."
        fig.suptitle(f"Backtest: held-out runs against predictions\n({split}; {self.model})", fontsize=9, wrap=True)
        return fig

    def save(self, directory) -> dict[str, object]:
        """Write ``backtest_runs.csv``, ``backtest.json`` and the figure (PNG and SVG) into ``directory``."""
        import json
        from pathlib import Path

        from bayes_scaling import plots

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"runs": directory / "backtest_runs.csv", "json": directory / "backtest.json"}
        self.runs.drop(columns=["budget_order"]).to_csv(paths["runs"], index=False)
        paths["json"].write_text(json.dumps(self.to_json(), indent=2))
        paths["figure"] = plots.save(self.figure(), directory / "backtest")
        return paths


def _num(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for record in frame.to_dict("records"):
        clean = {}
        for k, v in record.items():
            if isinstance(v, (np.bool_, bool)):
                clean[k] = bool(v)
            elif isinstance(v, (np.integer, int)):
                clean[k] = int(v)
            elif isinstance(v, (np.floating, float)):
                clean[k] = float(v) if np.isfinite(v) else None
            elif v is None:
                clean[k] = None
            else:
                clean[k] = str(v)
        out.append(clean)
    return out


def _si(x: float) -> str:
    from bayes_scaling.formatting import format_si

    return format_si(float(x)) if np.isfinite(x) else "n/a"


# --- the backtest -------------------------------------------------------------------------------------
def backtest(
    runs: Runs,
    *,
    fit: Callable[[Runs], object] | None = None,
    fit_groups: Callable[[Runs], dict] | None = None,
    top_budgets: int | None = None,
    fraction: float | None = None,
    budget_column: str | None = "auto",
    levels=LEVELS,
    level: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> BacktestResult:
    """Fit each group's lower-compute runs, predict its held-out ones, score the predictions.

    ``runs``: the runs to use (select first, e.g. ``runs.for_fit()``; a DataFrame or a path is read as
    ``fit_nuts`` reads one, its flagged rows left out). ``fit``: Runs -> Posterior,
    called once per group on that group's training rows only (default: ``fit_nuts`` at defaults).
    ``fit_groups`` instead: Runs -> {group: Posterior}, called once on every group's training rows
    together (a hierarchical fit, ``hierarchical_fit``), so each group is predicted by the model that
    pools it with the others; it never sees a held-out run either.
    ``top_budgets`` / ``fraction`` / ``budget_column``: the split (``splits.split_by_compute``).
    ``levels``: interval levels scored; ``level`` (default the largest) is the headline level of
    the text table and of the N_opt comparison."""
    runs = as_runs(runs)  # a DataFrame or a path is checked (and its flagged rows left out) as fit_nuts does
    levels = tuple(sorted({scoring._level(lv) for lv in (*levels, *([] if level is None else [level]))}))
    if not levels:
        raise InputError("give at least one interval level")
    level = levels[-1] if level is None else float(level)
    column = budget_column_of(runs, budget_column)
    note = budget_column_note(runs, column)
    if note:
        warnings.warn(note, InputWarning, stacklevel=2)
    split = split_by_compute(runs, top_budgets=top_budgets, fraction=fraction, budget_column=column)
    if fit is not None and fit_groups is not None:
        raise InputError("give fit (one fit per group) or fit_groups (one joint fit), not both")
    fit = fit or default_fit(seed=seed, progress=progress)
    rows, n_opt_rows, fit_seconds, verdicts, models = [], [], {}, {}, []
    train_frame, test_frame = split.train.frame, split.test.frame
    groups = sorted(runs.frame["group"].unique(), key=str)
    skipped = {}
    joint = None
    if fit_groups is not None:
        if progress:
            print(f"backtest: fitting {len(split.train)} training runs of {len(groups)} groups together, predicting "
                  f"{len(split.test)} held out", file=sys.stderr, flush=True)
        start = time.perf_counter()
        joint = {str(name): post for name, post in fit_groups(split.train).items()}
        fit_seconds["all groups (one joint fit)"] = time.perf_counter() - start
    for i, name in enumerate(groups):
        train = Runs(train_frame[train_frame["group"] == name].reset_index(drop=True))
        test = Runs(test_frame[test_frame["group"] == name].reset_index(drop=True))
        if not len(test):
            skipped[str(name)] = f"its {len(train)} run(s) leave none to hold out"
            continue
        if joint is not None:
            if str(name) not in joint:
                skipped[str(name)] = "the joint fit has no law for it (no training runs)"
                continue
            posterior = joint[str(name)]
        else:
            if progress:
                print(f"backtest [{i + 1}/{len(groups)}] {name}: fitting {len(train)} runs, predicting {len(test)} "
                      "held out", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                posterior = fit(train)
            except InputError as err:  # too few runs left to fit this group: the others are still backtested
                if len(groups) == 1:
                    raise
                skipped[str(name)] = f"{err}"
                continue
            fit_seconds[str(name)] = time.perf_counter() - start
        verdicts[str(name)] = fit_verdict(posterior)
        models.append(posterior.model_label)  # the model, and its misfit noise or WSD terms where it has them
        draws = np.asarray(posterior.predict(test.N, test.D, seed=seed, offset_at=held_out_levels(posterior, test)))
        rows.append(_score_runs(name, train, test, draws, levels, column))
        if column is not None:
            n_opt_rows += _slice_optima(name, test, posterior, column, level, seed)
    if skipped:
        warnings.warn("backtest: " + "; ".join(f"group {g} not backtested ({why})" for g, why in skipped.items()),
                      InputWarning, stacklevel=2)
    if not rows:
        raise InputError("no group could be backtested: " + "; ".join(f"{g}: {why}" for g, why in skipped.items()))
    table = pd.concat(rows, ignore_index=True)
    summary = summarise(table, levels)
    n_opt = pd.DataFrame(n_opt_rows, columns=_N_OPT_COLUMNS)
    return BacktestResult(runs=table, summary=summary, n_opt=n_opt, split=split.by, levels=levels, level=level,
                          model=", ".join(dict.fromkeys(models)), budget_column=column, fit_seconds=fit_seconds,
                          diagnostics=verdicts, skipped=skipped, joint=joint is not None)


def held_out_levels(posterior, test: Runs):
    """The held-out runs' levels for ``predict(offset_at=...)`` (``checking.run_offset_levels``): a WSD
    fit's held-out branch is predicted as a branch of its trunk; a level the fit never saw (a held-out
    budget's offset, a new trunk) gets a fresh draw. None for a fit without levels or a stand-in fit."""
    if not hasattr(posterior, "has_draws"):
        return None
    from bayes_scaling.checking import run_offset_levels

    return run_offset_levels(posterior, test)


def fit_verdict(posterior) -> dict:
    """A group's fit as a backtest reports it: ``ok`` (the sampler's validity checks passed; None where they
    do not apply, as for a point fit), the ``verdict`` and the ``design_limits`` of its runs."""
    from bayes_scaling.diagnostics import design_limits, diagnose

    d = diagnose(posterior)
    return {"ok": bool(d.ok) if d.applicable else None, "verdict": d.verdict(),
            "design_limits": design_limits(posterior.runs.N, posterior.runs.D)}


def _score_runs(name, train: Runs, test: Runs, draws: np.ndarray, levels, column) -> pd.DataFrame:
    y = test.loss
    if draws.shape != (draws.shape[0], len(test)):
        raise InputError(f"posterior.predict returned draws of shape {draws.shape}; expected (S, {len(test)})")
    median = np.median(draws, axis=0)
    if column is not None:
        budget = test.frame[column].to_numpy(np.float64)
        label = [f"{b:.3g}" for b in budget]
        order = budget
    else:  # decades of compute
        decade = np.floor(np.log10(test.C) + 1e-9)
        budget = np.full(len(test), np.nan)
        label = [f"1e{int(d)}-1e{int(d) + 1}" for d in decade]
        order = decade
    table = pd.DataFrame({
        "group": name, "run_id": test.frame["run_id"].astype(str).to_numpy(), "N": test.N, "D": test.D, "C": test.C,
        "budget": budget, "budget_label": label, "budget_order": order,
        "extrapolation_decades": np.log10(test.C / train.C.max()), "loss": y, "median": median,
        "rel_error": (median - y) / y, "crps": scoring.crps_from_draws(draws, y),
    })
    for lv in levels:
        tag = level_tag(lv)
        lo, hi = scoring.central_interval(draws, lv)
        table[f"lo_{tag}"], table[f"hi_{tag}"] = lo, hi
        table[f"covered_{tag}"] = scoring.covered(y, lo, hi).astype(bool)
        table[f"interval_score_{tag}"] = scoring.interval_score(y, lo, hi, lv)
        table[f"rel_width_{tag}"] = (hi - lo) / median
    return table


def summarise(table: pd.DataFrame, levels) -> pd.DataFrame:
    """Per group and held-out budget, then per group over all its held-out runs (budget
    ``"all held-out"``), and over every group where there are several: coverage, mean interval
    score and relative width at each level, mean CRPS, median signed and absolute relative error."""

    def one(group, label, t) -> dict:
        row = {"group": group, "budget_label": label, "budget": float(t["budget"].iloc[0]) if label != ALL else np.nan,
               "n": len(t), "max_extrapolation_decades": float(t["extrapolation_decades"].max())}
        for lv in levels:
            tag = level_tag(lv)
            row[f"coverage_{tag}"] = float(t[f"covered_{tag}"].mean())
            row[f"interval_score_{tag}"] = float(t[f"interval_score_{tag}"].mean())
            row[f"rel_width_{tag}"] = float(t[f"rel_width_{tag}"].mean())
        row["crps"] = float(t["crps"].mean())
        row["median_rel_error"] = float(t["rel_error"].median())
        row["median_abs_rel_error"] = float(t["rel_error"].abs().median())
        return row

    out = []
    for group, g in table.groupby("group", sort=False):
        for _, t in g.sort_values("budget_order").groupby("budget_order", sort=True):
            out.append(one(group, t["budget_label"].iloc[0], t))
        out.append(one(group, ALL, g))
    if table["group"].nunique() > 1:
        out.append(one("(all groups)", ALL, table))
    return pd.DataFrame(out)


_N_OPT_COLUMNS = ["group", "budget", "C_slice", "n_runs", "empirical_n_opt", "empirical_lo", "empirical_hi",
                  "model_n_opt", "model_lo", "model_hi", "level", "inside", "opens_downward", "vertex_in_slice",
                  "valid_resamples", "note"]


def _slice_optima(name, test: Runs, posterior, column: str, level: float, seed: int) -> list[dict]:
    """Approach 2 on each held-out IsoFLOP slice with >= MIN_SLICE_RUNS runs (3+ distinct N),
    against the model's N_opt at the slice's compute (geometric mean of its 6ND)."""
    out = []
    budgets = test.frame[column].to_numpy(np.float64)
    for b in np.unique(budgets):
        idx = np.flatnonzero(budgets == b)
        if len(idx) < MIN_SLICE_RUNS or len(np.unique(test.N[idx])) < 3:
            continue
        emp = slice_optimum(test.N[idx], test.loss[idx], level=level, seed=seed)
        C = float(np.exp(np.mean(np.log(test.C[idx]))))
        model = posterior.frontier([C], level).iloc[0]
        inside = None if emp.opens_downward else bool(model["N_opt_lo"] <= emp.n_opt <= model["N_opt_hi"])
        out.append({"group": name, "budget": float(b), "C_slice": C, "n_runs": len(idx),
                    "empirical_n_opt": emp.n_opt, "empirical_lo": emp.lo, "empirical_hi": emp.hi,
                    "model_n_opt": float(model["N_opt_median"]), "model_lo": float(model["N_opt_lo"]),
                    "model_hi": float(model["N_opt_hi"]), "level": level, "inside": inside,
                    "opens_downward": emp.opens_downward, "vertex_in_slice": emp.vertex_in_slice,
                    "valid_resamples": emp.valid_resamples, "note": emp.note})
    return out
