"""An MSPE-style selector, written from the description in Li et al. (2026), "Spend Less, Fit
Better: Budget-Efficient Scaling Law Fitting via Active Experiment Selection": a baseline for
``experiments/bench_design.py``, not the planner's utility.

Model: the loss itself, y = L(N, D; p) + noise (variance s2), L = E + A N^-alpha + B D^-beta,
p = (log E, log A, log B, alpha, beta). Fitting: least squares on y from ``starts`` random starts
in a box (``box``); the fits within 1.5x the best mean squared error are kept and grouped into
modes (fits whose predictions at the target runs agree within ``mode_tol`` relative RMS are one
mode, represented by its best fit). Mode weights w_k ~ exp(-n log mse_k / (2 T)), T = max(1, n / 2P)
(a tempered BIC; all modes have the same P). s2 = (b0 + n mse / 2) / (a0 + n / 2 - 1) with a0 = 2,
b0 = a0 Var(y). Each mode's covariance is the Gauss-Newton Laplace one,
Sigma_k = (J'J / s2 + diag(prior precision))^-1, prior sd a quarter of the box's width.

Score of candidate x (expected reduction of the mean squared prediction error over the target
runs t, mixed over modes):

    intra(x) = sum_k w_k sum_t (j_t' Sigma_k j_x)^2 / (s2 + j_x' Sigma_k j_x)        (V-optimal per mode)
    inter(x) = V_inter - E_y[V_inter | y_x = y],   V_inter = sum_{k<l} w_k w_l |f_k - f_l|^2,

where after observing y mode k's target predictions move to f_k + g_k (y - m_k), g_k = Sigma_k-
cross / (s2 + h_k) (linear update), and its weight to w_k phi_k(y) / p(y) (phi_k: the mode's
predictive density of y, p their mixture); the expectation over y ~ p is a 1-D quadrature. The
choice is argmax (intra + inter) / (cost / total cost)^0.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

COST_EXPONENT = 0.4
QUADRATURE_POINTS = 200


@dataclass(frozen=True)
class MSPESettings:
    starts: int = 16
    mode_tol: float = 1e-3
    cost_exponent: float = COST_EXPONENT
    a0: float = 2.0


def loss_and_jacobian(p: np.ndarray, N: np.ndarray, D: np.ndarray):
    """L(N, D; p) and dL/dp (n, 5) for p = (log E, log A, log B, alpha, beta)."""
    E, A, B, alpha, beta = np.exp(p[0]), np.exp(p[1]), np.exp(p[2]), p[3], p[4]
    a_term, b_term = A * N ** -alpha, B * D ** -beta
    J = np.column_stack([np.full_like(N, E), a_term, b_term, -a_term * np.log(N), -b_term * np.log(D)])
    return E + a_term + b_term, J


def box(loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on p: E in [0.05, min loss], A and B in [1, 1e6], alpha and beta in [0.05, 1.5]."""
    lo = np.array([np.log(0.05), 0.0, 0.0, 0.05, 0.05])
    hi = np.array([np.log(max(float(np.min(loss)), 0.06)), np.log(1e6), np.log(1e6), 1.5, 1.5])
    return lo, hi


@dataclass
class Modes:
    """Mode parameters (K, 5), weights (K,), covariances (K, 5, 5), noise variance s2."""

    p: np.ndarray
    w: np.ndarray
    cov: np.ndarray
    s2: float

    def predict(self, N, D) -> np.ndarray:
        """The weighted mean of the modes' losses at (N, D)."""
        return self.w @ np.stack([loss_and_jacobian(p, N, D)[0] for p in self.p])


def fit_modes(N, D, loss, N_target, D_target, settings: MSPESettings = MSPESettings(), seed: int = 0) -> Modes:
    """Multi-start least-squares fits grouped into weighted modes with Laplace covariances."""
    N, D, y = (np.asarray(x, np.float64) for x in (N, D, loss))
    lo, hi = box(y)
    rng = np.random.default_rng(seed)
    fits = []
    for start in lo + (hi - lo) * rng.uniform(size=(settings.starts, 5)):
        res = least_squares(lambda p: loss_and_jacobian(p, N, D)[0] - y, np.clip(start, lo, hi),
                            jac=lambda p: loss_and_jacobian(p, N, D)[1], bounds=(lo, hi), method="trf", max_nfev=200)
        fits.append((float(np.mean(res.fun**2)), res.x))
    fits.sort(key=lambda f: f[0])
    best = max(fits[0][0], 1e-300)
    modes, targets = [], []
    for mse, p in fits:
        if mse > 1.5 * best:
            break
        f = loss_and_jacobian(p, N_target, D_target)[0]
        if all(np.sqrt(np.mean((f - g) ** 2)) > settings.mode_tol * np.mean(np.abs(g)) for g in targets):
            modes.append((mse, p))
            targets.append(f)
    n, P = len(y), 5
    s2 = (settings.a0 * np.var(y) + n * best / 2) / (settings.a0 + n / 2 - 1)
    temper = max(1.0, n / (2.0 * P))
    log_w = np.array([-n * np.log(max(m, 1e-300)) / (2 * temper) for m, _ in modes])
    w = np.exp(log_w - log_w.max())
    keep = w / w.sum() > 1e-3
    prior_precision = 1.0 / ((hi - lo) / 4.0) ** 2
    covs = []
    for _, p in modes:
        J = loss_and_jacobian(p, N, D)[1]
        covs.append(np.linalg.pinv(J.T @ J / s2 + np.diag(prior_precision), hermitian=True))
    w = w[keep] / w[keep].sum()
    return Modes(np.array([p for (_, p), k in zip(modes, keep) if k]), w,
                 np.array([c for c, k in zip(covs, keep) if k]), float(s2))


def scores(modes: Modes, N_cand, D_cand, N_target, D_target) -> np.ndarray:
    """intra + inter (see the module docstring) per candidate, before the cost weighting."""
    K = len(modes.w)
    m, s2, f, G = [], [], [], []
    intra = 0.0
    for k in range(K):
        mc, Jc = loss_and_jacobian(modes.p[k], N_cand, D_cand)
        ft, Jt = loss_and_jacobian(modes.p[k], N_target, D_target)
        SJc = modes.cov[k] @ Jc.T  # (5, C)
        s2_k = modes.s2 + np.sum(Jc.T * SJc, axis=0)  # (C,)
        cross = Jt @ SJc  # (M, C)
        intra = intra + modes.w[k] * np.sum(cross**2, axis=0) / s2_k
        m.append(mc), s2.append(s2_k), f.append(ft), G.append(cross / s2_k)
    if K < 2:
        return intra
    m, s2 = np.array(m), np.array(s2)  # (K, C)
    sd = np.sqrt(s2)
    grid = np.linspace((m - 4 * sd).min(axis=0), (m + 4 * sd).max(axis=0), QUADRATURE_POINTS)  # (Q, C)
    phi = np.exp(-0.5 * (grid[None] - m[:, None]) ** 2 / s2[:, None]) / np.sqrt(2 * np.pi * s2[:, None])  # (K, Q, C)
    p_y = np.maximum(np.einsum("k,kqc->qc", modes.w, phi), 1e-300)
    before, after = 0.0, 0.0
    for k in range(K):
        for j in range(k + 1, K):
            gap = (f[k] - f[j])[:, None]  # (M, 1)
            before += modes.w[k] * modes.w[j] * float(np.sum(gap**2))
            # moved gap at y: a + b y, a = gap - g_k m_k + g_j m_j, b = g_k - g_j (M, C)
            a = gap - G[k] * m[k][None] + G[j] * m[j][None]
            b = G[k] - G[j]
            sq = (np.sum(a**2, axis=0)[None] + 2 * np.sum(a * b, axis=0)[None] * grid
                  + np.sum(b**2, axis=0)[None] * grid**2)  # (Q, C)
            after = after + modes.w[k] * modes.w[j] * np.trapezoid(phi[k] * phi[j] / p_y * sq, grid, axis=0)
    return intra + np.maximum(before - after, 0.0)


def choose(modes: Modes, N_cand, D_cand, cost, total_cost: float, N_target, D_target,
           settings: MSPESettings = MSPESettings()) -> int:
    """The index of the candidate with the largest score / (cost / total cost)^gamma."""
    value = scores(modes, np.asarray(N_cand, np.float64), np.asarray(D_cand, np.float64),
                   np.asarray(N_target, np.float64), np.asarray(D_target, np.float64))
    return int(np.argmax(value / (np.asarray(cost, np.float64) / total_cost) ** settings.cost_exponent))
