"""Budget offsets of the hierarchical model: a crossed random effect on log-loss by the levels of a
column (an IsoFLOP budget), common to all groups.

    delta_b ~ Normal(0, tau_o^2),   tau_o ~ HalfNormal(s_o)             (free offsets)
    delta = Q c,  c_k ~ Normal(0, tau_o^2)                             (detrended)
    delta = l 1 + R c,  l ~ Normal(0, tau_o^2 / B),  c_k ~ Normal(0, tau_o^2)   (free, level absorbed)

The last is the free offsets rotated (R: B x (B - 1), ``complement_basis`` of 1), for a sampler that
moves the level l into the laws' coordinates (``level_params``; ``models.hierarchical``).

Q (B x (B - 2), ``detrending_basis``) is an orthonormal basis of the orthogonal complement of
span{1, u} in R^B, u_b = log of level b's value: detrended offsets sum to zero with no linear trend
in log C in every draw, so the laws keep the level and the trend. The offsets absorb a misfit of
the law that every group shares at one budget, so that it does not bend the groups' laws.
s_o = ``OFFSET_SCALE`` = 0.01 (1% of the loss): on Marin the law's budget-level mean residuals are
0.5-0.7%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpyro.distributions as dist
import pandas as pd

from bayes_scaling.errors import InputError
from bayes_scaling.hierarchical.centring import HALFNORMAL_MEDIAN
from bayes_scaling.laws.base import Law
from bayes_scaling.posterior import offset_key


@dataclass(frozen=True)
class Offsets:
    """The offsets of one fit: the levels (``offset_key``s), each run's level index, the basis Q
    (B x k: the identity for free offsets, R for free offsets whose level the laws carry, Q
    detrended) and each coordinate's centring lambda."""

    levels: list
    index: np.ndarray
    basis: np.ndarray
    centring: np.ndarray
    detrended: bool = False
    level_apart: bool = False  # free offsets sampled as l 1 + R c (the level l sampled on its own)


def build_offsets(law: Law, column: pd.Series, runs, estimates, group, *, detrend: bool, scale: float,
                  centred: bool, level_apart: bool = False) -> Offsets:
    """The offsets by ``column``'s levels, with the centring lambda = t^2 / (t^2 + s^2) per
    coordinate (t the prior median of tau_o, s its standard error from the groups' point
    estimates; lambda = 0 where not ``centred``). ``level_apart`` (free offsets only): the basis
    is R, the complement of the common level, which the model samples on its own."""
    levels, index = offset_levels(column, runs.frame["run_id"] if hasattr(runs, "frame") else None)
    level_apart = level_apart and not detrend and len(levels) >= 2
    if detrend:
        basis = detrending_basis(level_logs(levels, column.name))
    else:
        basis = complement_basis(np.ones((len(levels), 1))) if level_apart else np.eye(len(levels))
    lam = np.zeros(basis.shape[1])
    if centred:
        se2 = (basis**2).T @ offset_se2(law, runs, estimates, group, index, len(levels))
        t2 = (HALFNORMAL_MEDIAN * scale) ** 2
        lam = t2 / (t2 + se2)
    return Offsets(levels, index, basis, lam, detrended=detrend, level_apart=level_apart)


def offset_levels(column: pd.Series, run_ids: pd.Series | None = None) -> tuple[list[str], np.ndarray]:
    """The offset column's levels (``offset_key`` of each value, sorted numerically where the
    values are numbers) and each run's index among them. A missing cell (NaN, blank, "N/A", ...)
    is an error naming its runs (``run_ids``) or rows: it would be a level of its own."""
    from bayes_scaling.runs.validate import missing_cells

    missing = missing_cells(column).to_numpy()
    if missing.any():
        where = np.flatnonzero(missing)
        names = (", ".join(repr(str(run_ids.iloc[i])) for i in where[:5]) if run_ids is not None
                 else ", ".join(str(i + 1) for i in where[:5]))
        more = f" and {len(where) - 5} more" if len(where) > 5 else ""
        raise InputError(f"offset column {column.name!r} has no value for {'runs' if run_ids is not None else 'rows'} "
                         f"{names}{more} ({', '.join(sorted({repr(str(column.iloc[i])) for i in where[:5]}))}); "
                         "expected a level (an IsoFLOP budget) in every row, or --offset-by none")
    keys = [offset_key(v) for v in column]
    unique = sorted(set(keys), key=lambda k: (0, float(k), k) if _is_number(k) else (1, 0.0, k))
    return unique, np.array([unique.index(k) for k in keys])


def _is_number(key: str) -> bool:
    try:
        float(key)
    except ValueError:
        return False
    return True


def detrending_basis(u) -> np.ndarray:
    """Q (B x (B - 2)): an orthonormal basis of the orthogonal complement of span{1, u} in R^B, so
    that delta = Q c has sum(delta) = 0 and sum(u * delta) = 0 for every c. Needs B >= 3 distinct u."""
    u = np.asarray(u, dtype=float)
    if u.ndim != 1 or len(u) < 3:
        raise InputError(f"detrended offsets need at least 3 levels (a level and a trend leave none free "
                         f"with fewer), got {len(np.atleast_1d(u))}")
    X = np.column_stack([np.ones(len(u)), u - u.mean()])
    if np.linalg.matrix_rank(X) < 2:
        raise InputError("detrended offsets need levels with distinct values")
    return complement_basis(X)


def complement_basis(X) -> np.ndarray:
    """An orthonormal basis (B x (B - k)) of the orthogonal complement of the columns of X (B x k,
    full column rank) in R^B, from a complete QR decomposition."""
    X = np.asarray(X, dtype=float)
    q, _ = np.linalg.qr(X, mode="complete")
    return q[:, X.shape[1]:]


def level_params(law: Law, priors, latent: dict, centre, N, D, shift: float = 0.05) -> tuple:
    """The smallest set S of the law's parameters such that raising the latent coordinates of S
    by d raises log L by exactly d (Chinchilla: E, A, B, whose terms all scale by e^d), checked
    at ``latent`` (parameter -> value) on the runs (N, D); () if none (e.g. Kaplan's law) or if a
    parameter of S has a point-mass prior (it cannot move). Such an S can carry the free offsets'
    common level (``models.hierarchical``)."""
    from itertools import combinations

    from bayes_scaling.models.hierarchical import natural_from_latent

    names = [p for p in law.param_names if not isinstance(priors.get(p), dist.Delta)]
    base = np.asarray(law.log_loss(natural_from_latent(law, priors, latent, centre), N, D))
    for size in range(1, len(names) + 1):
        for subset in combinations(names, size):
            moved = {p: v + shift if p in subset else v for p, v in latent.items()}
            lifted = np.asarray(law.log_loss(natural_from_latent(law, priors, moved, centre), N, D))
            if np.allclose(lifted - base, shift, rtol=0, atol=1e-9):
                return tuple(subset)
    return ()


def level_logs(levels: list[str], column: str) -> np.ndarray:
    """u_b = log of each level's value (levels are ``offset_key``s); the column must be numeric, > 0."""
    if not all(_is_number(k) for k in levels):
        raise InputError(f"detrended offsets need a numeric offset column; {column!r} has non-numeric values "
                         f"({', '.join(k for k in levels if not _is_number(k))[:80]})")
    values = np.array([float(k) for k in levels])
    if np.any(values <= 0) or not np.all(np.isfinite(values)):
        raise InputError(f"detrended offsets take the log of column {column!r}; its values must be positive and finite")
    return np.log(values)


def offset_se2(law: Law, runs, estimates, group, index, n_levels: int) -> np.ndarray:
    """s_b^2 = sigma^2 / n_b per level: the squared standard error of a level's mean residual from the
    groups' point estimates (sigma their residuals' RMS, n_b the level's runs)."""
    resid = np.empty(len(runs))
    for g, estimate in enumerate(estimates):
        rows = group == g
        theta = {k: float(np.squeeze(v)) for k, v in estimate.items()}
        resid[rows] = np.log(runs.loss[rows]) - np.asarray(law.log_loss(theta, runs.N[rows], runs.D[rows]))
    sigma = np.sqrt(np.mean(resid**2))
    return sigma**2 / np.maximum(np.bincount(index, minlength=n_levels), 1)
