"""Extrapolation-aware predictions: the law's own error, which grows with the distance from the data.

A fitted law is exact nowhere. Inside the fitted runs its misfit is absorbed by theta and sigma;
beyond them nothing in the data says whether the law's exponents, its compute-optimal allocation
and its level stay right, and an interval that ignores this is too narrow exactly where a team
extrapolates. The model (docs/extrapolation.md):

    log L(N, D) = log L_law(N e^(d_N u_N - d_a u_C), D e^(d_D u_D + d_a u_C); theta) + g_C u_C + eps,
    u_X = max(0, ln X - ln X_max)                      for X in N, D and C = 6ND,
    d_N, d_D ~ Normal(0, tau_shape^2),  g_C ~ Normal(0, tau_level^2),  d_a ~ Normal(0, tau_alloc^2),

with X_max the largest X among the fitted runs, so every u is 0 inside (and below) their range:
there the model *is* the plain law, draw for draw. Beyond it

* an e-fold of N counts as 1 + d_N e-folds (the law's exponent in N scaled by 1 + d_N; likewise D);
* the IsoFLOP profile shifts by d_a u_C in ln N: the compute-optimal N_opt drifts by d_a per
  e-fold of compute (the allocation exponent a = d ln N_opt / d ln C becomes a + d_a);
* the level drifts by g_C per e-fold of compute (a floor or a data mix the small runs could not
  pin down).

Each draw's drift is shared by every point it predicts: it is a slope, not noise, so the error
grows linearly with the log-distance from the data, correlated across predictions.

The scales are learned from how the law extrapolates *within* the given runs (leave-future-out,
``splits.forward_chain``): in fold f the plain law is fitted to the lower budgets (``fit_laplace``
by default) and predicts the held-out higher ones; r_j = log y_j - m_j (m_j, v_j: mean and
variance of the fold's predictive log-loss draws), u_j measured from the fold's own range. To
first order in the drift (``directions``),

    r_f ~ Normal(0, diag(v_f) + U_f T U_f'),   U_f = [s_N u_N, s_D u_D, u_C, -(s_N - s_D) u_C],
    T = diag(tau_shape^2, tau_shape^2, tau_level^2, tau_alloc^2),

with s_N, s_D the law's local slopes d log L / d ln N and d log L / d ln D, and the posterior of
(tau_shape, tau_level, tau_alloc) on a grid is half-Cauchy priors x prod_f p(r_f | tau) (a
composite likelihood: folds overlap). Each posterior draw of theta is paired with a draw of the
scales and of (d_N, d_D, g_C, d_a) given them, so the predictive integrates over the scales: folds
with little to say leave heavy tails rather than false confidence. No held-out run is ever seen:
the folds live inside the runs the fit is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_scaling.splits import forward_chain

# Half-Cauchy priors: heavy tails let folds that show a large drift overrule the scale. Grids are
# denser near zero (quadratic spacing); a grid point's prior mass includes its cell width.
SCALES = ("tau_shape", "tau_level", "tau_alloc")
PRIOR_SCALES = {"tau_shape": 0.1,    # relative drift of the local exponents in N and D
                "tau_level": 0.005,  # log-loss per e-fold of compute
                "tau_alloc": 0.02}   # drift of the allocation exponent a = d ln N_opt / d ln C
GRID_MAX = {"tau_shape": 2.0, "tau_level": 0.2, "tau_alloc": 1.0}
GRID_POINTS = 33
FOLD_DRAWS = 1000  # enough for a held-out run's predictive mean and variance
DRIFT_SITES = ("drift_N", "drift_D", "drift_C", "drift_alloc")
SITE_SCALE = (0, 0, 1, 2)  # which scale each drift site has
AXES = ("log_N", "log_D", "log_C")
MODEL_NAME = "extrapolating"
STEP = 1e-3  # central differences of the law's log-loss in ln N and ln D


def _grid(name: str) -> np.ndarray:
    return GRID_MAX[name] * np.linspace(0.0, 1.0, GRID_POINTS) ** 2


@dataclass(frozen=True)
class FoldResiduals:
    """One leave-future-out fold: residuals r, predictive variances v, drift directions U (n, 4)."""

    r: np.ndarray
    v: np.ndarray
    U: np.ndarray

    def log_likelihood(self, scales: np.ndarray) -> np.ndarray:
        """log Normal(r; 0, V + U T U') for each row of ``scales`` (..., 4): the per-site drift sds
        (T = diag(scales^2), V = diag(v)); rank 4, so through the matrix determinant lemma and
        Woodbury's identity with W = I + T^1/2 U'V^-1 U T^1/2:
        log det = log det V + log det W,  r'Sigma^-1 r = r'V^-1 r - b' W^-1 b,  b = T^1/2 U'V^-1 r."""
        Vinv_U = self.U / self.v[:, None]
        M, c = self.U.T @ Vinv_U, Vinv_U.T @ self.r  # (4, 4), (4,)
        W = np.eye(len(M)) + scales[..., :, None] * scales[..., None, :] * M
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
    """(..., 3): log-distances (u_N, u_D, u_C) beyond the top of the fitted range, zero inside it
    and below it (smaller runs than the fitted ones are left to the plain law: extrapolating
    downwards is not what the drift is calibrated on, and a drift there would let the frontier's
    optimiser find spurious optima among tiny models)."""
    logs = _logs(N, D)
    return np.stack([np.maximum(logs[k] - ranges[k][1], 0.0) for k in AXES], axis=-1)


def directions(log_loss, theta, ranges, N, D) -> np.ndarray:
    """(..., 4): the drift's directions at (N, D) under the law's ``log_loss(theta, N, D)``
    (theta's arrays broadcast against N and D): [s_N u_N, s_D u_D, u_C, -(s_N - s_D) u_C], with
    s_N, s_D the law's local exponents d log L / d ln N and d log L / d ln D (central differences).
    s_N - s_D is the slope of the run's IsoFLOP profile in ln N, so the last direction is, to first
    order, that profile shifted by d_a u_C in ln N: the optimum moves by d_a per e-fold of compute."""
    h = STEP
    f = lambda n, d: np.asarray(log_loss(theta, n, d))  # noqa: E731
    U = distances(ranges, N, D)
    s_N = (f(N * np.exp(h), D) - f(N * np.exp(-h), D)) / (2 * h)
    s_D = (f(N, D * np.exp(h)) - f(N, D * np.exp(-h))) / (2 * h)
    return np.stack(np.broadcast_arrays(s_N * U[..., 0], s_D * U[..., 1], U[..., 2], -(s_N - s_D) * U[..., 2]),
                    axis=-1)


def fold_residuals(posterior, test, max_draws: int = FOLD_DRAWS) -> FoldResiduals:
    """Residuals of a plain fit's predictive log-loss at held-out runs ``test`` (from at most
    ``max_draws`` of its draws), with the drift's directions at the posterior mean slopes, from the
    fit's own range. The points are padded (to 64, or the next power of two), so folds share
    compiled programs."""
    from bayes_scaling.posterior import compiled_log_loss

    n = len(test)
    pad = max(64, 1 << max(n - 1, 1).bit_length()) - n  # one compiled shape for every fold of up to 64 runs
    N, D = (np.concatenate([x, np.full(pad, x[-1])]) for x in (test.N, test.D))
    log_loss = compiled_log_loss(posterior.law)
    theta = posterior.theta()
    keep = np.linspace(0, len(next(iter(theta.values()))) - 1, max_draws).astype(int)
    theta = {k: v[keep, None] for k, v in theta.items()}
    sigma = posterior.draws("sigma")[keep, None]
    mu = np.asarray(log_loss(theta, N[None], D[None]))[:, :n]
    log_draws = mu + sigma * posterior.noise_draws(mu.shape, np.random.default_rng(0))
    U = directions(log_loss, theta, log_range(posterior.runs.N, posterior.runs.D), N[None], D[None])[:, :n]
    ok = np.isfinite(log_draws).all(axis=0) & np.isfinite(U).all(axis=(0, 2))  # a diverged draw says nothing
    return FoldResiduals(r=(np.log(test.loss) - log_draws.mean(axis=0))[ok], v=log_draws.var(axis=0)[ok],
                         U=U.mean(axis=0)[ok])


@dataclass(frozen=True)
class ScalePosterior:
    """The posterior of the drift scales (tau_shape, tau_level, tau_alloc) on a 3-D grid."""

    weights: np.ndarray  # (shape, level, alloc) grid indices: posterior mass per cell
    folds: int
    held_out: int
    prior_scales: dict

    @classmethod
    def from_folds(cls, folds: list[FoldResiduals], prior_scales: dict | None = None) -> ScalePosterior:
        prior_scales = {**PRIOR_SCALES, **(prior_scales or {})}
        axes = np.meshgrid(*(_grid(name) for name in SCALES), indexing="ij")
        log_post = 0.0
        for name, t in zip(SCALES, axes):
            width = np.gradient(_grid(name))
            shape = [1, 1, 1]
            shape[SCALES.index(name)] = -1
            log_post = log_post - np.log1p((t / prior_scales[name]) ** 2) + np.log(width).reshape(shape)
        sites = np.stack([axes[k] for k in SITE_SCALE], axis=-1)
        for fold in folds:
            log_post = log_post + fold.log_likelihood(sites)
        log_post = np.where(np.isfinite(log_post), log_post, -np.inf)
        w = np.exp(log_post - log_post.max())
        return cls(weights=w / w.sum(), folds=len(folds), held_out=int(sum(len(f.r) for f in folds)),
                   prior_scales=prior_scales)

    def marginal(self, name: str) -> np.ndarray:
        k = SCALES.index(name)
        return self.weights.sum(axis=tuple(i for i in range(3) if i != k))

    def quantiles(self, q) -> dict[str, list[float]]:
        """Marginal quantiles of each scale."""
        def upper_edges(grid):  # each cell's mass sits in [g - w/2, g + w/2]: its CDF ends at g + w/2
            return grid + np.gradient(grid) / 2

        return {name: np.interp(q, np.cumsum(self.marginal(name)), upper_edges(_grid(name))).tolist()
                for name in SCALES}

    def draws(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(size, 3) draws of the scales: a cell by its mass, then uniform within the cell."""
        cells = np.unravel_index(rng.choice(self.weights.size, size=size, p=self.weights.ravel()), self.weights.shape)
        out = []
        for name, index in zip(SCALES, cells):
            grid = _grid(name)
            width = np.gradient(grid)
            out.append(np.clip(grid[index] + width[index] * (rng.random(size) - 0.5), 0.0, None))
        return np.stack(out, axis=1)


def calibrate(runs, fit_plain, *, folds: int = 3, budget_column: str | None = "auto",
              prior_scales: dict | None = None) -> ScalePosterior:
    """The drift scales' posterior from leave-future-out folds of ``runs``, each fitted by
    ``fit_plain`` (a callable Runs -> Posterior of the plain law). With no usable fold (too few
    budgets or runs), the scales keep their priors."""
    residuals = [fold_residuals(fit_plain(split.train), split.test)
                 for split in forward_chain(runs, folds=folds, budget_column=budget_column)]
    return ScalePosterior.from_folds(residuals, prior_scales)


def attach_drift(posterior, scales: ScalePosterior, *, seed: int = 0):
    """The plain posterior made extrapolation-aware: beside each theta draw, a draw of the scales
    and of the drift (d_N, d_D, g_C, d_a); the fitted range and the calibration go into ``meta``."""
    post = posterior.idata["posterior"]
    shape = (post.sizes["chain"], post.sizes["draw"])
    rng = np.random.default_rng([seed, 7])
    sds = scales.draws(int(np.prod(shape)), rng)
    drifts = sds[:, SITE_SCALE] * rng.standard_normal((len(sds), len(DRIFT_SITES)))
    dims = ("chain", "draw")
    posterior.idata["posterior"] = post.to_dataset().assign(
        **{name: (dims, sds[:, k].reshape(shape)) for k, name in enumerate(SCALES)},
        **{site: (dims, drifts[:, k].reshape(shape)) for k, site in enumerate(DRIFT_SITES)},
    )
    posterior.meta["model"] = MODEL_NAME
    posterior.meta["extrapolation"] = {
        "range": log_range(posterior.runs.N, posterior.runs.D),
        "priors": ", ".join(f"{name} ~ HalfCauchy({scales.prior_scales[name]:g})" for name in SCALES),
        **{f"{name} 5/50/95%": value for name, value in scales.quantiles([0.05, 0.5, 0.95]).items()},
        "folds": scales.folds, "held_out_in_folds": scales.held_out,
    }
    return posterior


def drift_of(posterior):
    """(G, ranges): the drift draws (S, 4) and the fitted range, or None for a plain-law fit."""
    if DRIFT_SITES[-1] not in posterior.idata["posterior"]:
        return None
    G = np.stack([posterior.draws(site) for site in DRIFT_SITES], axis=1)
    return G, posterior.meta["extrapolation"]["range"]


def drifted_log_loss(log_loss, theta, G, ranges, N, D) -> np.ndarray:
    """log L under each draw's drift, for draws G (S, 4) = (d_N, d_D, g_C, d_a) and theta (arrays
    (S, 1, ...)) at points N, D that broadcast against them with a leading draw axis:

        log L_law(N e^(d_N u_N - d_a u_C), D e^(d_D u_D + d_a u_C)) + g_C u_C.

    Beyond the fitted range an e-fold of N counts as 1 + d_N e-folds (the law's exponent in N
    scaled by 1 + d_N; likewise D), and the IsoFLOP profile is shifted by d_a u_C in ln N: drifts
    of the law's own effective sizes, so the loss stays above the law's floor E. To first order in
    the drift this is log L_law + the ``directions`` that the folds' likelihood uses."""
    G = np.asarray(G)
    U = distances(ranges, N, D)  # (S, ..., 3)
    g = [G[(slice(None), k) + (None,) * (U.ndim - 2)] for k in range(4)]
    log_n = g[0] * U[..., 0] - g[3] * U[..., 2]
    log_d = g[1] * U[..., 1] + g[3] * U[..., 2]
    return np.asarray(log_loss(theta, N * np.exp(log_n), D * np.exp(log_d))) + g[2] * U[..., 2]
