"""Scores of predictive distributions against what was then observed: small pure functions.

Each takes predictive draws or interval bounds and the observations, and returns one score per
observation (average them yourself), so a backtest, a benchmark script and a test read the same
definitions. Lower is better for the interval score and CRPS; coverage should match the level.

* ``quantiles(draws, q)``: NumPy's quantiles, infinite (not NaN) between infinite draws.
* ``central_interval(draws, level)``: the equal-tailed ``level`` interval of draws (S, n).
* ``covered(y, lo, hi)``: 1 where lo <= y <= hi.
* ``interval_score(y, lo, hi, level)``: Gneiting & Raftery (2007), eq. 43, for the central
  interval at ``level`` (alpha = 1 - level):
  ``(hi - lo) + (2 / alpha) (lo - y) 1{y < lo} + (2 / alpha) (y - hi) 1{y > hi}``,
  in the unit of y: the width, plus a penalty for a miss that grows with its distance.
* ``crps_from_draws(draws, y)``: the continuous ranked probability score of the empirical
  distribution of the draws, in its energy form ``E|X - y| - 0.5 E|X - X'|`` (X, X' independent
  draws; Gneiting & Raftery 2007, eq. 20), computed exactly from the sorted draws in O(S log S).
* ``crps_normal(mu, sd, y)``: the closed form for a normal predictive, to check the above.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from bayes_scaling.errors import InputError


def _level(level: float) -> float:
    if not 0 < level < 1:
        raise InputError(f"interval level must lie in (0, 1), got {level}")
    return float(level)


def quantiles(draws, q, axis: int = 0) -> np.ndarray:
    """``np.quantile`` (linear interpolation) that stays defined where draws are infinite. A quantile
    that interpolates towards an infinite draw is that infinity: a + t (inf - a) = inf for any t > 0,
    which NumPy's arithmetic turns into NaN (inf - inf) between two infinite draws and, at t >= 0.5,
    between a finite draw and an infinite one. A far prediction whose law overflows in a few draws then
    keeps an infinite bound rather than losing its interval or getting a finite one. NaN draws (and a
    quantile between -inf and +inf) still give NaN."""
    draws = np.asarray(draws, np.float64)
    out = np.quantile(draws, q, axis=axis)
    bad = np.isnan(out)
    if bad.any():
        below = np.quantile(draws, q, axis=axis, method="lower")
        above = np.quantile(draws, q, axis=axis, method="higher")
        towards = np.where(above == np.inf, np.inf, np.where(below == -np.inf, -np.inf, np.nan))
        towards = np.where((below == -np.inf) & (above == np.inf), np.nan, towards)
        out = np.where(bad, towards, out)
    return out


def central_interval(draws, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper equal-tailed ``level`` quantiles of draws (S, n) across draws: (n,), (n,)
    (``quantiles``: infinite draws give infinite bounds, not NaN)."""
    level = _level(level)
    lo, hi = quantiles(draws, [(1 - level) / 2, (1 + level) / 2])
    return lo, hi


def covered(y, lo, hi) -> np.ndarray:
    """1.0 where lo <= y <= hi, else 0.0 (elementwise)."""
    y, lo, hi = (np.asarray(a, np.float64) for a in (y, lo, hi))
    return ((lo <= y) & (y <= hi)).astype(np.float64)


def interval_score(y, lo, hi, level: float) -> np.ndarray:
    """Gneiting & Raftery's (2007) interval score of the central ``level`` interval [lo, hi]."""
    alpha = 1.0 - _level(level)
    y, lo, hi = (np.asarray(a, np.float64) for a in (y, lo, hi))
    return (hi - lo) + (2.0 / alpha) * np.maximum(lo - y, 0.0) + (2.0 / alpha) * np.maximum(y - hi, 0.0)


def crps_from_draws(draws, y) -> np.ndarray:
    """CRPS of the empirical distribution of ``draws`` (S, n) at observations ``y`` (n,).

    E|X - y| is the mean absolute deviation of the draws from y; E|X - X'| over all S^2 ordered
    pairs of draws equals (2 / S^2) sum_i (2i - S - 1) x_(i) with x_(1) <= ... <= x_(S)."""
    x = np.sort(np.asarray(draws, np.float64), axis=0)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y, np.float64)
    S = x.shape[0]
    if S < 1:
        raise InputError("crps_from_draws needs at least one draw")
    to_y = np.mean(np.abs(x - y), axis=0)
    weights = (2.0 * np.arange(1, S + 1) - S - 1)[:, None]
    between = 2.0 * np.sum(weights * x, axis=0) / S**2
    return to_y - 0.5 * between


def crps_normal(mu, sd, y) -> np.ndarray:
    """Closed-form CRPS of Normal(mu, sd^2) at y (Gneiting & Raftery 2007, eq. 21):
    sd * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)), z = (y - mu) / sd."""
    mu, sd, y = (np.asarray(a, np.float64) for a in (mu, sd, y))
    z = (y - mu) / sd
    phi = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + erf(z / math.sqrt(2)))
    return sd * (z * (2 * Phi - 1) + 2 * phi - 1 / math.sqrt(math.pi))
