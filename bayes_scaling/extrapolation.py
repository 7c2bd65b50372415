"""Extrapolation-aware predictions: the law's own error, which grows with the distance from the data.

A fitted law is exact nowhere; inside the fitted runs its misfit is absorbed by theta and sigma,
but beyond them nothing in the data says how far the law's log-log slopes stay right. The model:

    log L(N, D) = log L_law(N, D; theta) + g_N u_N + g_D u_D + eps,
    u_N = ln N - clip(ln N, ln N_min, ln N_max),   u_D = ln D - clip(ln D, ln D_min, ln D_max),
    g_N, g_D | tau ~ Normal(0, tau^2),   tau ~ HalfNormal(TAU_PRIOR_SCALE),

with [N_min, N_max] x [D_min, D_max] the fitted runs' range. u = 0 inside it, so there the model
*is* the plain law. Beyond it the loss's local exponent in N (or D) may differ from the law's by
g, so the log-loss error grows linearly with the log-distance from the data, and a draw's error
is shared by every point it predicts (it is a slope, not noise). N_opt moves too: along
6ND = C, the drift tilts the IsoFLOP profile by (g_N - g_D) per e-fold of N.

tau is learned from how the law extrapolates *within* the given runs (leave-future-out,
``splits.forward_chain``): in fold f the plain law is fitted to the lower budgets and predicts
the held-out higher ones; residual r_j = log y_j - m_j (m_j, v_j: mean and variance of the
fold's predictive log-loss draws), u_j measured from the fold's own fitted range. Under the model,

    r_f ~ Normal(0, diag(v_f) + tau^2 (u_N u_N' + u_D u_D')),

and tau's posterior on a grid is prior(tau) prod_f p(r_f | tau) (a composite likelihood: folds
overlap). Each posterior draw s of theta is paired with tau_s from that posterior and
g_s ~ Normal(0, tau_s^2 I): the predictive integrates over tau, so a few folds with little to
say leave heavy tails rather than false confidence. No held-out run is ever seen: the folds
live inside the runs the fit is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_scaling.splits import forward_chain

TAU_PRIOR_SCALE = 0.05  # log-loss per e-fold of N, D or C: 10% per decade is already extreme
TAU_PRIOR = "halfnormal"
TAU_GRID = np.linspace(0.0, 0.3, 151)  # each of tau_shape and tau_level
AXES = ("log_N", "log_D", "log_C")
DRIFT_SITES = ("drift_N", "drift_D", "drift_C")
MODEL_NAME = "extrapolating"


@dataclass(frozen=True)
class FoldResiduals:
    """One leave-future-out fold: residuals r, predictive variances v, distances U (n, 3)."""

    r: np.ndarray
    v: np.ndarray
    U: np.ndarray

    def log_likelihood(self, scales: np.ndarray) -> np.ndarray:
        """log Normal(r; 0, V + U T U') for each row of ``scales`` (..., 3): the per-axis drift sds
        (T = diag(scales^2), V = diag(v)); rank 3, so through the matrix determinant lemma and
        Woodbury's identity with W = I + T^1/2 U'V^-1 U T^1/2:
        log det = log det V + log det W,  r'Sigma^-1 r = r'V^-1 r - b' W^-1 b,  b = T^1/2 U'V^-1 r."""
        Vinv_U = self.U / self.v[:, None]
        M, c = self.U.T @ Vinv_U, Vinv_U.T @ self.r  # (3, 3), (3,)
        s = scales[..., :, None] * scales[..., None, :]
        W = np.eye(3) + s * M
        b = scales * c
        _, logdet_W = np.linalg.slogdet(W)
        quad = np.sum(self.r**2 / self.v) - np.einsum("...i,...i->...", b, np.linalg.solve(W, b[..., None])[..., 0])
        return -0.5 * (np.sum(np.log(2 * np.pi * self.v)) + logdet_W + quad)


def _logs(N, D) -> dict:
    lnN, lnD = np.log(np.asarray(N, np.float64)), np.log(np.asarray(D, np.float64))
    return {"log_N": lnN, "log_D": lnD, "log_C": lnN + lnD + np.log(6.0)}


def log_range(N, D) -> dict:
    """The fitted runs' range in ln N, ln D and ln C, where the drift is zero."""
    return {k: [float(v.min()), float(v.max())] for k, v in _logs(N, D).items()}


def distances(ranges: dict, N, D) -> np.ndarray:
    """(n, 3): signed log-distances (u_N, u_D, u_C) beyond the fitted range, zero inside it."""
    logs = _logs(N, D)
    return np.stack([logs[k] - np.clip(logs[k], *ranges[k]) for k in AXES], axis=1)


def fold_residuals(posterior, test) -> FoldResiduals:
    """Residuals of a plain fit's predictive log-loss at held-out runs ``test``."""
    log_draws = np.log(posterior.predict(test.N, test.D))
    U = distances(log_range(posterior.runs.N, posterior.runs.D), test.N, test.D)
    return FoldResiduals(r=np.log(test.loss) - log_draws.mean(axis=0), v=log_draws.var(axis=0), U=U)


@dataclass(frozen=True)
class TauPosterior:
    """The posterior of (tau_shape, tau_level) on ``TAU_GRID`` x ``TAU_GRID``: tau_shape scales
    the drifts along ln N and ln D, tau_level the drift along ln C."""

    weights: np.ndarray  # (G, G): [shape index, level index]
    folds: int
    held_out: int

    @classmethod
    def from_folds(cls, folds: list[FoldResiduals], prior_scale: float = TAU_PRIOR_SCALE,
                   prior: str = TAU_PRIOR, tied: bool = False) -> TauPosterior:
        shape, level = np.meshgrid(TAU_GRID, TAU_GRID, indexing="ij")
        log_prior = {"halfnormal": lambda t: -0.5 * (t / prior_scale) ** 2,
                     "halfcauchy": lambda t: -np.log1p((t / prior_scale) ** 2)}[prior]
        log_post = log_prior(shape) + log_prior(level)
        if tied:
            log_post = np.where(shape == level, log_prior(shape), -np.inf)
        scales = np.stack([shape, shape, level], axis=-1)
        for fold in folds:
            log_post = log_post + fold.log_likelihood(scales)
        w = np.exp(log_post - log_post.max())
        return cls(weights=w / w.sum(), folds=len(folds), held_out=int(sum(len(f.r) for f in folds)))

    def quantiles(self, q) -> dict[str, np.ndarray]:
        """Marginal quantiles of tau_shape and tau_level."""
        return {name: np.interp(q, np.cumsum(self.weights.sum(axis=axis)), TAU_GRID)
                for name, axis in (("tau_shape", 1), ("tau_level", 0))}

    def draws(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(size, 3) per-axis drift sds (tau_shape, tau_shape, tau_level), jittered in a grid cell."""
        step = TAU_GRID[1] - TAU_GRID[0]
        index = rng.choice(self.weights.size, size=size, p=self.weights.ravel())
        i, j = np.unravel_index(index, self.weights.shape)
        shape = np.clip(TAU_GRID[i] + step * (rng.random(size) - 0.5), 0.0, None)
        level = np.clip(TAU_GRID[j] + step * (rng.random(size) - 0.5), 0.0, None)
        return np.stack([shape, shape, level], axis=1)


def calibrate(runs, fit_plain, *, folds: int = 3, budget_column: str | None = "auto",
              prior_scale: float = TAU_PRIOR_SCALE) -> TauPosterior:
    """tau's posterior from leave-future-out folds of ``runs``, each fitted by ``fit_plain``
    (a callable Runs -> Posterior of the plain law). With no usable fold, tau keeps its prior."""
    residuals = [fold_residuals(fit_plain(split.train), split.test)
                 for split in forward_chain(runs, folds=folds, budget_column=budget_column)]
    return TauPosterior.from_folds(residuals, prior_scale)


def attach_drift(posterior, tau: TauPosterior, *, seed: int = 0, prior_scale: float = TAU_PRIOR_SCALE):
    """The plain posterior made extrapolation-aware: per theta draw, draws of the scales and the
    drifts g = (g_N, g_D, g_C) (same chain/draw shape), the fitted range and the calibration in
    ``meta``."""
    post = posterior.idata["posterior"]
    shape = (post.sizes["chain"], post.sizes["draw"])
    rng = np.random.default_rng([seed, 7])
    scales = tau.draws(int(np.prod(shape)), rng)
    drifts = scales * rng.standard_normal(scales.shape)
    dims = ("chain", "draw")
    posterior.idata["posterior"] = post.to_dataset().assign(
        tau_shape=(dims, scales[:, 0].reshape(shape)), tau_level=(dims, scales[:, 2].reshape(shape)),
        **{site: (dims, drifts[:, k].reshape(shape)) for k, site in enumerate(DRIFT_SITES)},
    )
    q = tau.quantiles([0.05, 0.5, 0.95])
    posterior.meta["model"] = MODEL_NAME
    posterior.meta["extrapolation"] = {
        "range": log_range(posterior.runs.N, posterior.runs.D),
        "tau_prior": f"HalfNormal({prior_scale:g}) on tau_shape and tau_level",
        **{name: [float(x) for x in v] for name, v in q.items()},  # 5%, 50%, 95%
        "folds": tau.folds, "held_out_in_folds": tau.held_out,
    }
    return posterior


def log_drift(posterior, N, D) -> np.ndarray | None:
    """Draws (S, n) of g . u(N, D), or None for a plain-law posterior."""
    if "drift_N" not in posterior.idata["posterior"]:
        return None
    G = np.stack([posterior.draws(site) for site in DRIFT_SITES], axis=1)  # (S, 3)
    return G @ distances(posterior.meta["extrapolation"]["range"], N, D).T
