"""Pareto-smoothed importance weights (PSIS; Vehtari, Simpson, Gelman, Yao & Gabry 2024).

Of S log ratios r_s = log p(z_s) - log q(z_s), the M largest form the tail (M = floor(3 sqrt(S)) for
S > 225, else floor(S / 5)). Their weights w = exp(r - max r), less the cutoff u (the largest weight
below the tail), are fitted by a generalised Pareto distribution GPD(k, sigma): Zhang & Stephens'
(2009) empirical-Bayes estimate, with k shrunk towards 0.5 as if by 10 prior observations (Vehtari et
al.). The tail's weights are replaced by the fitted quantiles u + GPD^-1((i - 1/2) / M), i = 1..M, in
the order of the raw weights, capped at the largest raw weight. k-hat, the fitted shape, says how far
the weighted estimate can be trusted (above 0.7 it is unreliable).

This is ``arviz_stats``' ``psislw`` (r_eff = 1) step for step, written here because importing
arviz_stats costs every CLI call about 0.5 s (it loads scipy.signal among much else) and every default
fit weighs its calibration refits; ``tests/test_importance.py`` checks the two agree to float precision.
"""

from __future__ import annotations

import numpy as np

PRIOR_K_WEIGHT, PRIOR_K_MEAN = 10, 0.5  # k shrunk towards 0.5 by the weight of 10 observations
PRIOR_B_SCALE = 3  # Zhang & Stephens' grid of b = -k / sigma, scaled by the first quartile


def tail_size(draws: int) -> int:
    """M, the number of draws in the fitted tail."""
    return int(np.floor(3 * np.sqrt(draws))) if draws > 225 else int(np.floor(draws / 5))


def gpd_fit(exceedances: np.ndarray) -> tuple[float, float]:
    """(k, sigma) of the generalised Pareto fitted to sorted positive ``exceedances`` by Zhang &
    Stephens' posterior mean of b = -k / sigma over a grid of m = 30 + sqrt(n) values, then
    k = mean(log(1 - b x)) shrunk towards 0.5; (nan, nan) where the first quartile is the minimum."""
    x = np.asarray(exceedances, np.float64)
    n = len(x)
    m = 30 + int(n ** 0.5)
    quartile = x[int((n / 4 + 0.5) - 1)]
    if quartile <= x[0]:
        return np.nan, np.nan
    b = (1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))) / (PRIOR_B_SCALE * quartile) + 1 / x[-1]
    k = np.mean(np.log1p(-b[:, None] * x), axis=1)
    log_lik = n * (np.log(-b / k) - k - 1)
    w = np.exp(log_lik - np.logaddexp.reduce(log_lik))
    keep = w >= 10 * np.finfo(float).eps
    b, w = b[keep], w[keep] / w[keep].sum()
    b_mean = np.sum(b * w)
    k_hat = np.mean(np.log1p(-b_mean * x))
    sigma = -k_hat / b_mean
    k_hat = (n * k_hat + PRIOR_K_WEIGHT * PRIOR_K_MEAN) / (n + PRIOR_K_WEIGHT)
    return (np.inf, np.nan) if np.isnan(k_hat) else (float(k_hat), float(sigma))


def gpd_quantile(p: np.ndarray, k: float, sigma: float, location: float) -> np.ndarray:
    """The GPD(k, sigma) quantile at ``p``, shifted by ``location``: u + sigma ((1 - p)^-k - 1) / k."""
    if sigma <= 0:
        return np.full_like(p, np.nan)
    if k == 0:
        return location - sigma * np.log1p(-p)
    return location + sigma * np.expm1(-k * np.log1p(-p)) / k


def smoothed_log_weights(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised Pareto-smoothed log weights for the 1-D ``log_ratio`` (-inf: weight 0) and k-hat."""
    log_w = np.asarray(log_ratio, np.float64).copy()
    log_w -= np.max(log_w)
    n = len(log_w)
    m = tail_size(n)
    if m < 5:
        raise ValueError(f"PSIS needs at least 5 tail draws: {n} draws give {m}")
    order = np.argsort(log_w)
    tail = order[n - m:]
    tail_log_w = log_w[tail]
    if tail_log_w.max() - tail_log_w.min() < np.finfo(float).tiny:
        raise ValueError("PSIS: all tail weights are the same")
    cutoff = np.exp(log_w[order[n - m - 1]])
    k_hat, sigma = gpd_fit(np.exp(tail_log_w) - cutoff)
    if np.isfinite(k_hat):
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed = np.log(gpd_quantile(np.arange(0.5, m) / m, k_hat, sigma, cutoff))
        smoothed[smoothed > tail_log_w.max()] = tail_log_w.max()
        log_w[tail] = smoothed
    log_w -= np.logaddexp.reduce(log_w)
    return log_w, k_hat
