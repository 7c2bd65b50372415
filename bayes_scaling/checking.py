"""Does the law fit the data? Posterior predictive checks, PSIS-LOO and model comparison.

Everything here is on the model's own scale, log-loss: the likelihood is

    log L_i ~ StudentT(nu, mu_i, sigma)   or   Normal(mu_i, sigma),   mu_i = log L(N_i, D_i; theta),

so a replicated observation is log L_rep = mu_i + sigma * eps with eps drawn from the same family.

* ``add_posterior_predictive`` stores one replicate per draw as the DataTree group
  ``posterior_predictive`` (var ``log_loss``, dims chain, draw, run), beside ``observed_data``.
* ``residuals`` gives, per run, the residual r_i = log L_i - median_s(mu_i^s) and the
  ``level`` predictive interval of the loss, and whether the observed loss lies inside it;
  ``residual_trends`` tests whether r drifts with log N, log D or log C (Spearman's rho).
* ``loo`` is PSIS-LOO (``arviz.loo``): elpd_loo = sum_i log p(y_i | y_-i), estimated by
  Pareto-smoothed importance weights 1 / p(y_i | theta_s). A Pareto shape k_i above the threshold
  (ArviZ's ``good_k``, 0.7 for large samples) flags run i: the estimate for it is unreliable and the
  run is influential (often an outlier the law cannot explain).
* ``compare`` ranks fits of the same runs by elpd_loo (``arviz.compare``); differences smaller than
  about 4 or than twice their standard error are not meaningful.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.errors import InputError

MIN_PREDICTIVE_DRAWS = 1000


# --- posterior predictive ------------------------------------------------------------------------
def run_offset_levels(posterior, runs=None):
    """Each run's level (``runs``: the fitted runs by default) of the fit's offset column
    (``meta["offset_by"]``, e.g. its IsoFLOP budget), for ``Posterior.predict(offset_at=...)``; for a
    WSD fit each run's trunk (a branch's ``trunk_id``, None for a cosine run); None for a fit without
    offsets."""
    frame = (posterior.runs if runs is None else runs).frame
    if posterior.has_draws("wsd_offset"):
        from bayes_scaling.wsd import is_branch

        branch = is_branch(frame)
        if branch.any() and "trunk_id" not in frame:
            raise InputError("rows with role 'branch' need a trunk_id column naming each branch's trunk (a WSD fit "
                             "predicts a branch with its trunk's effect; leave trunk_id empty for a new trunk)")
        return np.where(branch, frame["trunk_id"].fillna("").astype(str).to_numpy(), None) if branch.any() else None
    column = posterior.meta.get("offset_by")
    if column is None or "offset" not in posterior.idata["posterior"]:
        return None
    if column not in frame:
        raise InputError(f"the fit has offsets by {column!r}, but the runs have no {column!r} column")
    return frame[column].to_numpy()


def predictive_log_loss(posterior, N, D, *, seed: int = 0, min_draws: int = MIN_PREDICTIVE_DRAWS,
                        offset_at=None) -> np.ndarray:
    """Predictive draws of log L at (N, D): mu_s + sigma_s eps, shape (M, n) with M >= min_draws.

    Each posterior draw is repeated ceil(min_draws / S) times with fresh noise, so a point fit
    (S = 1) still gets a predictive interval from its fitted noise scale. A fit with offsets adds
    the offset of each point's level ``offset_at`` (a fresh one where None or unseen)."""
    mu = np.log(posterior.predict(N, D, noise=False, offset_at=offset_at))  # (S, n)
    if "sigma" not in posterior.idata["posterior"]:
        return mu
    reps = int(np.ceil(min_draws / mu.shape[0]))
    mu = np.tile(mu, (reps, 1))
    sigma = np.tile(posterior.draws("sigma"), reps)[:, None]
    return mu + sigma * posterior.noise_draws(mu.shape, np.random.default_rng(seed))


def add_posterior_predictive(posterior, *, seed: int = 0):
    """Add (or replace) the ``posterior_predictive`` group: one replicated log-loss per draw and run.
    Returns the same Posterior."""
    post = posterior.idata["posterior"]
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    runs = posterior.runs
    mu = np.log(posterior.predict(runs.N, runs.D, noise=False, offset_at=run_offset_levels(posterior)))
    sigma = posterior.draws("sigma")[:, None] if "sigma" in post else np.zeros((mu.shape[0], 1))
    rep = mu + sigma * posterior.noise_draws(mu.shape, np.random.default_rng(seed))
    ds = xr.Dataset(
        {"log_loss": (("chain", "draw", "run"), rep.reshape(chains, draws, -1))},
        coords={"chain": post["chain"].values, "draw": post["draw"].values, "run": np.arange(len(runs))},
    )
    posterior.idata["posterior_predictive"] = ds
    return posterior


def residuals(posterior, level: float = 0.9, *, seed: int = 0) -> pd.DataFrame:
    """Per run: N, D, C, loss; the log-loss residual against the posterior-median law; the median
    and ``level`` interval of the predictive loss; ``inside`` says whether the loss lies within it."""
    from bayes_scaling.frontier import check_level

    runs, level = posterior.runs, check_level(level)
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    levels = run_offset_levels(posterior)
    mu = np.log(posterior.predict(runs.N, runs.D, noise=False, offset_at=levels))
    rep = predictive_log_loss(posterior, runs.N, runs.D, seed=seed, offset_at=levels)
    lo, med, hi = np.exp(np.quantile(rep, q, axis=0))
    frame = runs.frame[["run_id", "N", "D", "C", "loss"]].copy()
    frame["log_resid"] = np.log(runs.loss) - np.median(mu, axis=0)
    frame["pred_median"], frame["pred_lo"], frame["pred_hi"] = med, lo, hi
    frame["inside"] = (runs.loss >= lo) & (runs.loss <= hi)
    frame["level"] = level
    return frame


def residual_trends(posterior, alpha: float = 0.01) -> pd.DataFrame:
    """Does the residual drift with scale? Spearman's rank correlation rho of the log-loss residual
    with log N, log D and log C, its p-value, and ``trend`` = p < alpha. A trend means the law's
    shape is wrong along that axis, even where coverage looks right (a larger sigma can absorb a
    systematic misfit)."""
    from scipy import stats

    table = residuals(posterior)
    rows = []
    for col in ("N", "D", "C"):
        x = np.log(table[col].to_numpy(np.float64))
        if np.ptp(x) == 0 or len(x) < 3:  # one size (or token count) only: no trend to test along it
            rho, p = float("nan"), float("nan")
        else:
            rho, p = stats.spearmanr(x, table["log_resid"])
        rows.append({"against": col, "spearman_rho": float(rho), "p_value": float(p), "trend": bool(p < alpha)})
    return pd.DataFrame(rows)


def coverage(posterior, level: float = 0.9) -> float:
    """Fraction of runs inside their ``level`` predictive interval (about ``level`` if calibrated)."""
    return float(residuals(posterior, level)["inside"].mean())


# --- PSIS-LOO ------------------------------------------------------------------------------------
@dataclass
class LooResult:
    """PSIS-LOO of one fit. ``pareto_k`` has one value per run; ``flagged`` lists runs with k > good_k."""

    elpd: float
    se: float
    p_loo: float
    good_k: float
    pareto_k: np.ndarray
    flagged: pd.DataFrame
    elpd_data: object  # arviz ELPDData, reusable by arviz.compare

    def text(self) -> str:
        head = f"PSIS-LOO: elpd_loo = {self.elpd:.1f} (SE {self.se:.1f}), p_loo = {self.p_loo:.1f}"
        if self.flagged.empty:
            return f"{head}; all Pareto k <= {self.good_k:.2f}."
        return (f"{head}; {len(self.flagged)} run(s) with Pareto k > {self.good_k:.2f} "
                f"(influential or poorly predicted): {', '.join(self.flagged['run_id'].astype(str))}.")


def _require_loglik(posterior, name: str = "this fit") -> None:
    if "log_likelihood" not in posterior.idata.children or posterior.num_draws < 10:
        raise InputError(
            f"{name} ({posterior.method}) has no pointwise log-likelihood draws, so PSIS-LOO does not "
            "apply; fit with --method nuts to compare or check it by LOO"
        )


def loo(posterior, *, name: str = "this fit") -> LooResult:
    """PSIS-LOO via ``arviz.loo`` with per-run Pareto-k flags."""
    import arviz as az

    _require_loglik(posterior, name)
    try:
        with warnings.catch_warnings():  # high Pareto k is reported per run in ``flagged``
            warnings.filterwarnings("ignore", message=".*shape parameter of Pareto", category=UserWarning)
            elpd = az.loo(posterior.idata, pointwise=True, var_name="log_loss")
    except ValueError as err:  # too few draws for Pareto smoothing
        raise InputError(f"PSIS-LOO failed for {name} ({posterior.num_draws} draws): {err}; sample more draws") from None
    k = np.asarray(elpd.pareto_k).reshape(-1)
    frame = posterior.runs.frame[["run_id", "N", "D", "C", "loss"]].copy()
    frame["pareto_k"] = k
    flagged = frame[k > elpd.good_k].sort_values("pareto_k", ascending=False).reset_index(drop=True)
    return LooResult(float(elpd.elpd), float(elpd.se), float(elpd.p), float(elpd.good_k), k, flagged, elpd)


def run_order(reference, runs) -> np.ndarray | None:
    """The permutation p with ``runs`` row p[i] the same run as ``reference`` row i (equal N, D and loss),
    or None where the two tables do not hold the same runs."""
    a = reference.frame[["N", "D", "loss"]].to_numpy(np.float64)
    b = runs.frame[["N", "D", "loss"]].to_numpy(np.float64)
    if a.shape != b.shape:
        return None
    ia, ib = np.lexsort(a.T[::-1]), np.lexsort(b.T[::-1])
    if not np.allclose(a[ia], b[ib], rtol=1e-12, atol=0.0):
        return None
    order = np.empty(len(a), dtype=int)
    order[ia] = ib
    return order


def reordered(posterior, order: np.ndarray):
    """A copy of ``posterior`` with its runs, and every group's ``run`` dimension, in the row order ``order``."""
    from dataclasses import replace

    from bayes_scaling.runs.table import Runs

    def take(ds):
        return ds.isel(run=order).assign_coords(run=np.arange(len(order))) if "run" in ds.dims else ds

    return replace(posterior, idata=posterior.idata.map_over_datasets(take),
                   runs=Runs(posterior.runs.frame.iloc[order].reset_index(drop=True)))


def compare(posteriors: dict) -> pd.DataFrame:
    """Rank fits of the same runs by elpd_loo (best first). ``posteriors``: {name: Posterior}, or a
    list of fits (named "fit 1", "fit 2", ...).

    Columns: rank (1 = best), elpd (elpd_loo), se, elpd_diff and dse (difference to the best and its SE),
    p (effective parameters), weight (stacking), n_high_k (runs with Pareto k above threshold)."""
    import arviz as az

    if isinstance(posteriors, (list, tuple)):  # unnamed fits: named by position
        posteriors = {f"fit {i + 1}": post for i, post in enumerate(posteriors)}
    if not isinstance(posteriors, dict):
        raise InputError(f"compare takes a dict of fits by name (or a list of fits), got {type(posteriors).__name__}")
    if len(posteriors) < 2:
        raise InputError(f"compare needs at least two fits, got {len(posteriors)}")
    results, reference = {}, None
    for name, post in posteriors.items():
        observed = post.idata["observed_data"]["log_loss"].values
        if reference is None:
            reference = (name, observed, post.runs)
        elif observed.shape != reference[1].shape or not np.allclose(observed, reference[1]):
            order = run_order(reference[2], post.runs)
            if order is None:
                raise InputError(
                    f"fits '{reference[0]}' and '{name}' were fitted to different runs (their (N, D, loss) rows differ: "
                    f"{reference[1].size} and {observed.size} runs); ELPD compares fits of the same runs only")
            post = reordered(post, order)  # the same runs in another row order: compared run by run
        results[name] = loo(post, name=f"fit '{name}'")
    table = az.compare({n: r.elpd_data for n, r in results.items()}, round_to="none")
    table = table.rename(columns={"elpd_loo": "elpd"})
    table["rank"] = table["rank"] + 1  # 1 = best
    table["n_high_k"] = [len(results[n].flagged) for n in table.index]
    table.index.name = "fit"
    keep = [c for c in ("rank", "elpd", "se", "elpd_diff", "dse", "p", "weight", "n_high_k") if c in table]
    return table[keep]
