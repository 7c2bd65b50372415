"""Figures of a fit, with the uncertainty drawn in (matplotlib, no display needed; PNG and SVG).

Every function takes a ``Posterior`` and returns a ``matplotlib.figure.Figure``. Bands are
equal-tailed posterior intervals: the darker band 50%, the lighter 90%, the line the median.

* ``loss_vs_compute``: the runs' loss against C = 6ND, with the frontier L_opt(C) band.
* ``isoflop_slices``: loss against N at fixed C (runs binned by log10 C), with the predictive
  band of L(N, C / 6N) including observation noise, and the median N_opt(C).
* ``allocation``: N_opt(C) and D_opt(C) with bands, beside Hoffmann et al. (2022) and Epoch AI (2024).
* ``exponents``: the posterior of a = beta / (alpha + beta) and b = alpha / (alpha + beta), the
  exponents of N_opt ~ C^a and D_opt ~ C^b.
* ``pair``: pairwise scatter of the law's parameters (log10 A and log10 B).
* ``trace_rank``: trace and rank plots per chain (ranks of the pooled draws; uniform if mixed).
* ``residuals``: log-loss residuals against N, D and C, and observed against predicted with intervals.
* ``inference_sizing`` (not in ``all_figures``: it needs a target loss): N and D/N of the cheapest
  model over its lifetime for a target loss, against the inference tokens it will serve.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from bayes_scaling import checking
from bayes_scaling.errors import InputError

BANDS = (0.9, 0.5)
MAX_DRAWS = 1000
REFERENCES = {"Hoffmann 2022": ("HOFFMANN_2022", "tab:red", "--"), "Epoch 2024": ("EPOCH_2024", "tab:purple", ":")}
FORMATS = ("png", "svg")


# --- helpers -------------------------------------------------------------------------------------
def _thin(x: np.ndarray, max_draws: int = MAX_DRAWS) -> np.ndarray:
    """Evenly spaced rows of x, at most max_draws of them."""
    if len(x) <= max_draws:
        return x
    return x[np.linspace(0, len(x) - 1, max_draws).astype(int)]


def _band(ax, x, draws: np.ndarray, color: str, label: str | None = None) -> None:
    """Median line and 50% / 90% bands of draws (S, len(x)) over x."""
    for level, alpha in zip(BANDS, (0.18, 0.35)):
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0, label=f"{level:.0%} interval")
    ax.plot(x, np.median(draws, axis=0), color=color, lw=1.6, label=label or "median")


def _budget_grid(posterior, n: int = 60) -> np.ndarray:
    """log-spaced budgets from below the smallest run to 1e25 FLOPs (or the largest run)."""
    C = posterior.runs.C
    return np.logspace(np.log10(C.min()) - 0.3, max(25.0, np.log10(C.max()) + 0.3), n)


def _references(posterior) -> dict[str, dict]:
    """Published Chinchilla fits, when the posterior is of that law."""
    from bayes_scaling import laws

    if set(posterior.law.param_names) != {"E", "A", "B", "alpha", "beta"}:
        return {}
    return {name: getattr(laws, const) for name, (const, _, _) in REFERENCES.items()}


def _thinned_posterior_theta(posterior) -> dict[str, np.ndarray]:
    return {k: _thin(v) for k, v in posterior.theta().items()}


def _new_figure(rows: int, cols: int, width: float = 4.2, height: float = 3.3):
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


# --- figures -------------------------------------------------------------------------------------
def loss_vs_compute(posterior) -> Figure:
    """Runs' loss against compute, coloured by N, with the compute-optimal loss L_opt(C) band."""
    runs = posterior.runs
    grid = _budget_grid(posterior)
    L = posterior.frontier_draws(grid, max_draws=MAX_DRAWS)["L_opt"]
    fig, axes = _new_figure(1, 1, 6.5, 4.5)
    ax = axes[0, 0]
    _band(ax, grid, L, "tab:blue", "L_opt(C) median")
    sc = ax.scatter(runs.C, runs.loss, c=np.log10(runs.N), cmap="viridis", s=12, zorder=3, label="runs")
    fig.colorbar(sc, ax=ax, label="log10 N (parameters)")
    ax.set(xscale="log", xlabel="training compute C = 6ND (FLOPs)", ylabel="loss",
           title="Loss against compute, with the compute-optimal frontier")
    ax.legend(fontsize=8)
    return fig


def isoflop_bins(C: np.ndarray, max_bins: int = 9, min_runs: int = 3) -> list[np.ndarray]:
    """Group runs by log10 C into at most ``max_bins`` bins of equal width (>= 0.1 dex), keeping
    those with at least ``min_runs`` runs: a list of index arrays, by increasing C."""
    logc = np.log10(C)
    width = max(0.1, math.ceil((logc.max() - logc.min()) / max_bins * 20) / 20)
    key = np.floor((logc - logc.min()) / width + 1e-9).astype(int)
    groups = [np.flatnonzero(key == k) for k in np.unique(key)]
    groups = [g for g in groups if len(g) >= min_runs]
    groups = sorted(groups, key=len, reverse=True)[:max_bins]
    return sorted(groups, key=lambda g: np.median(logc[g]))


def isoflop_slices(posterior, max_slices: int = 9) -> Figure:
    """Loss against N at fixed compute: runs binned by C, with the predictive band of
    L(N, C_bin / 6N) (law plus observation noise) at the bin's median C, and the median N_opt."""
    runs = posterior.runs
    bins = isoflop_bins(runs.C, max_slices)
    if not bins:  # too few runs per compute level: one slice through all of them
        bins = [np.arange(len(runs))]
    cols = min(3, len(bins))
    rows = math.ceil(len(bins) / cols)
    fig, axes = _new_figure(rows, cols, 4.0, 3.2)
    theta = _thinned_posterior_theta(posterior)
    group = posterior.runs.frame["group"].astype(str).to_numpy()
    groups = {name: np.flatnonzero(group == name) for name in sorted(set(group))}  # coloured when several
    levels = checking.run_offset_levels(posterior)
    for ax, idx in zip(axes.flat, bins):
        c_bin = 10 ** np.median(np.log10(runs.C[idx]))
        n_grid = np.logspace(np.log10(runs.N[idx].min()) - 0.25, np.log10(runs.N[idx].max()) + 0.25, 50)
        # a fit with offsets: the slice's own offset where its runs share one level, else a fresh one
        level = levels[idx[0]] if levels is not None and len(set(levels[idx])) == 1 else None
        rep = checking.predictive_log_loss(posterior, n_grid, c_bin / (6.0 * n_grid), offset_at=level)
        _band(ax, n_grid, np.exp(rep), "tab:blue", "predictive median")
        for g, (name, members) in enumerate(groups.items()):
            sel = idx[np.isin(idx, members)]
            if len(sel):
                ax.scatter(runs.N[sel], runs.loss[sel], s=14, zorder=3, color="black" if len(groups) == 1 else f"C{g + 1}",
                           label="runs" if len(groups) == 1 else f"runs: {name}")
        n_opt = np.median(np.asarray(posterior.law.optimal_allocation(theta, c_bin)[0]))
        ax.axvline(n_opt, color="tab:orange", lw=1, ls="--", label="median N_opt")
        ax.set(xscale="log", xlabel="N (parameters)", ylabel="loss", title=f"C ~ {c_bin:.2g} FLOPs ({len(idx)} runs)")
        ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in list(axes.flat)[len(bins):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("IsoFLOP slices: loss against N at fixed compute, 50% and 90% predictive bands")
    return fig


def allocation(posterior) -> Figure:
    """N_opt(C) and D_opt(C), median with 50% and 90% bands, and the published fits' lines."""
    from bayes_scaling.frontier import frontier_draws

    grid = _budget_grid(posterior)
    draws = posterior.frontier_draws(grid, max_draws=MAX_DRAWS)
    refs = _references(posterior)
    fig, axes = _new_figure(1, 2, 5.2, 4.2)
    for ax, key, label in ((axes[0, 0], "N_opt", "N_opt (parameters)"), (axes[0, 1], "D_opt", "D_opt (tokens)")):
        _band(ax, grid, draws[key], "tab:blue", "this fit, median")
        for name, theta in refs.items():
            ref = frontier_draws(posterior.law, {k: np.array([v]) for k, v in theta.items()}, grid)[key][0]
            _, color, style = REFERENCES[name]
            ax.plot(grid, ref, color=color, ls=style, lw=1.8, label=name, zorder=5)
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=label, title=f"{key}(C)")
        ax.legend(fontsize=8)
    fig.suptitle("Compute-optimal allocation under C = 6ND")
    return fig


def exponent_draws(posterior, at: float = 1e22) -> dict[str, np.ndarray]:
    """Draws of the local allocation exponents a = d log N_opt / d log C and b = d log D_opt / d log C
    at compute ``at``. For Chinchilla's law they are constant: a = beta / (alpha + beta),
    b = alpha / (alpha + beta); any law family gets its local slope."""
    from bayes_scaling.frontier import frontier_draws

    budgets = np.array([at / 10, at * 10])
    f = frontier_draws(posterior.law, posterior.theta(), budgets)  # the law's own exponents, without drift
    span = np.log(budgets[1] / budgets[0])
    return {"a": np.log(f["N_opt"][:, 1] / f["N_opt"][:, 0]) / span,
            "b": np.log(f["D_opt"][:, 1] / f["D_opt"][:, 0]) / span}


def exponents(posterior) -> Figure:
    """Histograms of the allocation exponents a and b, with the published values marked."""
    draws = exponent_draws(posterior)
    fig, axes = _new_figure(1, 2, 4.5, 3.4)
    for ax, (name, x) in zip(axes.flat, draws.items()):
        ax.hist(x, bins=40, color="tab:blue", alpha=0.7, density=True, label="posterior")
        lo, hi = np.quantile(x, [0.05, 0.95])
        ax.axvspan(lo, hi, color="tab:blue", alpha=0.1, label="90% interval")
        for ref, theta in _references(posterior).items():
            value = theta["beta"] / (theta["alpha"] + theta["beta"]) if name == "a" else \
                theta["alpha"] / (theta["alpha"] + theta["beta"])
            _, color, style = REFERENCES[ref]
            ax.axvline(value, color=color, ls=style, label=f"{ref} ({value:.3f})")
        what = "N_opt ~ C^a" if name == "a" else "D_opt ~ C^b"
        ax.set(xlabel=name, ylabel="density", title=f"{name}: {what} (median {np.median(x):.3f})")
        ax.legend(fontsize=7)
    return fig


def _pair_columns(posterior) -> dict[str, np.ndarray]:
    """The law's parameters; coefficients of order 100 or more (A, B) on a log10 scale."""
    cols = {}
    for name in posterior.law.param_names:
        x = posterior.draws(name)
        if np.all(x > 0) and np.median(x) >= 100:
            cols[f"log10 {name}"] = np.log10(x)
        else:
            cols[name] = x
    return cols


def pair(posterior, max_points: int = 600) -> Figure:
    """Lower-triangle scatter of every pair of parameters; histograms on the diagonal."""
    cols = {k: _thin(v, max_points) for k, v in _pair_columns(posterior).items()}
    names = list(cols)
    k = len(names)
    fig = Figure(figsize=(2.1 * k, 2.1 * k), layout="constrained")
    axes = fig.subplots(k, k, squeeze=False)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(cols[xj], bins=30, color="tab:blue", alpha=0.7)
            else:
                ax.scatter(cols[xj], cols[yi], s=3, alpha=0.4, color="tab:blue")
            ax.tick_params(labelsize=6)
            if i == k - 1:
                ax.set_xlabel(xj, fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(yi, fontsize=8)
    fig.suptitle("Posterior pair plot")
    return fig


def trace_rank(posterior) -> Figure:
    """Per parameter: traces by chain (divergent draws marked red) and per-chain rank histograms."""
    post = posterior.idata["posterior"]
    chains, ndraws = int(post.sizes["chain"]), int(post.sizes["draw"])
    names = [*posterior.law.param_names, *(["sigma"] if "sigma" in post else [])]
    div = None
    if "sample_stats" in posterior.idata.children and "diverging" in posterior.idata["sample_stats"]:
        div = posterior.idata["sample_stats"]["diverging"].values.reshape(chains, ndraws)
    fig, axes = _new_figure(len(names), 2, 5.0, 1.7)
    bins = max(5, min(20, ndraws // 10))
    for row, name in enumerate(names):
        x = post[name].values.reshape(chains, ndraws)
        ranks = np.argsort(np.argsort(x, axis=None)).reshape(x.shape)
        for c in range(chains):
            axes[row, 0].plot(x[c], lw=0.6, alpha=0.8, label=f"chain {c}")
            counts, edges = np.histogram(ranks[c], bins=bins, range=(0, x.size))
            axes[row, 1].stairs(counts, edges, lw=1, baseline=None)
        if div is not None and div.any():
            for c in range(chains):
                hits = np.flatnonzero(div[c])
                axes[row, 0].plot(hits, x[c, hits], "|", color="red", ms=8)
        axes[row, 1].axhline(ndraws / bins, color="gray", ls=":", lw=1)
        axes[row, 0].set_ylabel(name, fontsize=8)
        axes[row, 0].tick_params(labelsize=6)
        axes[row, 1].tick_params(labelsize=6)
    axes[0, 0].set_title("trace (by chain)", fontsize=9)
    axes[0, 1].set_title("rank histogram (flat if chains mix)", fontsize=9)
    axes[-1, 0].set_xlabel("draw")
    axes[-1, 1].set_xlabel("rank of draw among all chains")
    return fig


def residuals(posterior, level: float = 0.9) -> Figure:
    """Log-loss residuals against N, D and C (runs outside the predictive interval in red), and
    observed loss against predicted with ``level`` predictive intervals."""
    table = checking.residuals(posterior, level)
    inside = table["inside"].to_numpy()
    fig, axes = _new_figure(2, 2, 4.6, 3.4)
    for ax, col, label in zip(axes.flat, ("N", "D", "C"), ("N (parameters)", "D (tokens)", "C (FLOPs)")):
        ax.axhline(0, color="gray", lw=1)
        ax.scatter(table[col][inside], table["log_resid"][inside], s=10, color="tab:blue", label="inside")
        ax.scatter(table[col][~inside], table["log_resid"][~inside], s=14, color="tab:red",
                   label=f"outside {level:.0%} interval")
        ax.set(xscale="log", xlabel=label, ylabel="log loss - median log L")
    axes[0, 0].legend(fontsize=7)
    ax = axes[1, 1]
    err = np.vstack([table["pred_median"] - table["pred_lo"], table["pred_hi"] - table["pred_median"]])
    ax.errorbar(table["pred_median"], table["loss"], xerr=err, fmt="none", ecolor="tab:blue", alpha=0.4, lw=0.8)
    ax.scatter(table["pred_median"], table["loss"], s=8, c=np.where(inside, "tab:blue", "tab:red"), zorder=3)
    lims = [min(table["loss"].min(), table["pred_lo"].min()), max(table["loss"].max(), table["pred_hi"].max())]
    ax.plot(lims, lims, color="gray", lw=1)
    ax.set(xlabel=f"predicted loss (median, {level:.0%} interval)",
           ylabel="observed loss", title=f"{inside.mean():.0%} of runs inside their {level:.0%} interval")
    fig.suptitle("Posterior predictive residuals")
    return fig


# --- collections and files -----------------------------------------------------------------------
def inference_sizing(posterior, target_loss: float, tokens=None, max_draws: int = 200) -> Figure:
    """The cheapest model over its lifetime for a fixed ``target_loss`` against the inference
    tokens T it will serve (``decisions.lifetime_budget_for_loss``): N_opt and D/N with 50%/90%
    bands, over the draws (at most ``max_draws``) that reach the target; T = 0 is the training
    frontier's model of that loss."""
    from bayes_scaling import decisions

    surface = decisions.Surface.of(posterior, max_draws=max_draws)
    target = float(decisions.check_target_loss(surface, [target_loss])[0])
    T = np.logspace(9, 15, 13) if tokens is None else np.asarray(tokens, np.float64)
    draws = decisions.lifetime_budget_for_loss(surface, np.full((1, len(T)), target), T)
    keep = np.isfinite(draws["N"]).all(axis=1)
    if not keep.any():
        raise InputError(f"target_loss {target:g}: no draw reaches it; give a higher target")
    fig, axes = _new_figure(1, 2, 5.2, 4.2)
    for ax, values, label in ((axes[0, 0], draws["N"], "N (parameters)"),
                              (axes[0, 1], draws["tokens_per_param"], "D / N (tokens per parameter)")):
        _band(ax, T, values[keep], "tab:green")
        ax.set(xscale="log", yscale="log", xlabel="inference tokens T over the model's life", ylabel=label)
        ax.legend(fontsize=8)
    fig.suptitle(f"Cheapest model for loss {target:g} over training + inference (6ND + 2NT); "
                 f"{keep.sum()} of {len(keep)} draws reach it; model: {posterior.model}", fontsize=9)
    return fig


TITLES = {
    "loss_vs_compute": "Loss against compute with the frontier band",
    "isoflop": "IsoFLOP slices with predictive bands",
    "allocation": "N_opt(C) and D_opt(C) with published fits",
    "exponents": "Allocation exponents a and b",
    "pair": "Pair plot of the parameters",
    "trace_rank": "Trace and rank plots",
    "residuals": "Residuals and observed against predicted",
}


def all_figures(posterior) -> dict[str, Figure]:
    """Every figure that applies: a point fit (one draw) has no exponent posterior or pair plot,
    and only a sampler's output has traces."""
    figs = {
        "loss_vs_compute": loss_vs_compute(posterior),
        "isoflop": isoflop_slices(posterior),
        "allocation": allocation(posterior),
    }
    if posterior.num_draws > 1:
        figs["exponents"] = exponents(posterior)
        figs["pair"] = pair(posterior)
    if "sample_stats" in posterior.idata.children and posterior.num_draws > 1:
        figs["trace_rank"] = trace_rank(posterior)
    figs["residuals"] = residuals(posterior)
    return figs


def save(fig: Figure, stem: str | Path, formats=FORMATS) -> list[Path]:
    """Write fig as ``stem.png`` / ``stem.svg``; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def save_all(posterior, out_dir: str | Path, formats=FORMATS) -> dict[str, list[Path]]:
    """Every figure of ``all_figures`` under ``out_dir`` in each format."""
    return {name: save(fig, Path(out_dir) / name, formats) for name, fig in all_figures(posterior).items()}


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
