"""Target-region utility: how much a run is expected to reduce the predictive error where the team
will train, jointly with N_opt(C*), per cost^gamma.

Target region. The runs the team may train at its target budget: by default the IsoFLOP slice
6 N D = C* around the posterior median N_opt(C*) (``TargetRegion.isoflop``: ``points`` sizes
log-evenly from N_opt / ``span`` to N_opt x ``span``), or a user's table of target runs
(``TargetRegion.from_runs``). Targets per posterior draw s:

    Z_s = ( m_s(t_1), ..., m_s(t_M),  log N_opt(C*)_s ),   m_s(t) = the model's log-loss at run t,

taken from the posterior itself (``posterior_columns``), so under the default extrapolating model
they carry the drift beyond the fitted runs, and draws from several modes keep their spread.

Utility. A candidate x returns y_x = mu_x + noise (variance r). In the joint-Gaussian (linear
Bayes) approximation across draws, with c_j = Cov(Z_j, mu_x), v_x = Var(mu_x) + r, observing y_x
lowers Var(Z_j) by c_j^2 / v_x, whatever the value of y_x. The utility is the expected fraction of
the predictive variance removed,

    U(x) = (1 - lambda) sum_{j<=M} c_j^2 / (v_x sum_{j<=M} Var(Z_j))  +  lambda c_N^2 / (v_x Var(log N_opt)),

(``kind="variance"``, the default: expected reduction of mean squared predictive error over the
region, and of N_opt's), or the information -1/2 log(1 - c' S^-1 c / v_x) about each block, mixed
by the same lambda (``kind="information"``). With ``lambda = 1`` and ``kind="information"`` it is
the EIG about log N_opt of ``design.eig``. Runs are ranked by U(x) / cost(x)^gamma.

gamma. Declared before any result (docs/design.md): gamma = 0.4, the exponent Li et al. (2026,
"Spend Less, Fit Better") use for MSPE, so that the comparison is at equal cost weighting; gamma = 1
(information per FLOP, the old planner) over-buys cheap runs when the law is off at small scale.
lambda = 0.5: the region and N_opt count equally.

Batches: the covariances are conditioned on pending and chosen runs exactly as for the EIG
(``batch._GaussianConditioner``: Var(Z | O) does not depend on the fantasised values), so a batch
does not repeat itself. Cost O(S (K + M)) per pick for K candidates and S draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from bayes_scaling._jax_setup import configure
from bayes_scaling.design.batch import best_affordable
from bayes_scaling.design.eig import noise_variance, predicted_log_loss, target_draws
from bayes_scaling.errors import InputError

KINDS = ("variance", "information")
PARTS = ("model", "law")  # which draws the covariances come from (``posterior_columns``)
DEFAULT_COST_EXPONENT = 0.4  # gamma: declared before results (MSPE's exponent)
DEFAULT_N_OPT_WEIGHT = 0.5  # lambda
SHAPE_SPAN = 3.0  # compute-optimal band: N within 3x of N_opt at the run's compute (the default region's span)


@dataclass(frozen=True)
class UtilitySettings:
    """``kind`` (variance | information), ``cost_exponent`` gamma, ``n_opt_weight`` lambda."""

    kind: str = "variance"
    cost_exponent: float = DEFAULT_COST_EXPONENT
    n_opt_weight: float = DEFAULT_N_OPT_WEIGHT

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"utility kind must be one of {KINDS}, got {self.kind!r}")
        if not self.cost_exponent >= 0:
            raise InputError(f"cost_exponent must be >= 0, got {self.cost_exponent!r}")
        if not 0 <= self.n_opt_weight <= 1:
            raise InputError(f"n_opt_weight must lie in [0, 1], got {self.n_opt_weight!r}")


@dataclass(frozen=True)
class TargetRegion:
    """The target runs (N, D), one entry each."""

    N: np.ndarray
    D: np.ndarray

    def __post_init__(self):
        N, D = np.atleast_1d(np.asarray(self.N, np.float64)), np.atleast_1d(np.asarray(self.D, np.float64))
        if N.shape != D.shape or N.ndim != 1 or len(N) == 0:
            raise InputError(f"a target region needs one N and one D per run, got {N.size} N and {D.size} D")
        if not (np.all(np.isfinite(N)) and np.all(np.isfinite(D)) and np.all(N > 0) and np.all(D > 0)):
            raise InputError("target runs need positive finite N (parameters) and D (tokens)")
        object.__setattr__(self, "N", N)
        object.__setattr__(self, "D", D)

    def __len__(self) -> int:
        return len(self.N)

    @classmethod
    def isoflop(cls, n_opt: float, target_budget: float, *, span: float = 3.0, points: int = 9) -> TargetRegion:
        """``points`` runs on 6 N D = C* with N log-even in [n_opt / span, n_opt x span]."""
        if not (n_opt > 0 and target_budget > 0 and span >= 1 and points >= 1):
            raise InputError(f"an IsoFLOP target needs n_opt > 0, target_budget > 0, span >= 1 and points >= 1, "
                             f"got {n_opt!r}, {target_budget!r}, {span!r}, {points!r}")
        N = np.geomspace(n_opt / span, n_opt * span, points)
        return cls(N, target_budget / (6.0 * N))

    @classmethod
    def from_runs(cls, runs) -> TargetRegion:
        """The runs of a table (``Runs``: its N and D)."""
        return cls(np.asarray(runs.N, np.float64), np.asarray(runs.D, np.float64))


def posterior_columns(posterior, N, D, part: str = "model") -> np.ndarray:
    """(S, K) log-loss draws at (N, D): of the posterior's model (``part="model"``: the law, plus
    the drift beyond the fitted runs where the fit has one) or of the law alone (``part="law"``:
    theta's draws, the drift left out)."""
    N, D = np.asarray(N, np.float64), np.asarray(D, np.float64)
    if part == "law":
        return predicted_log_loss(posterior.law, posterior.theta(), N, D)
    return np.log(posterior.predict(N, D, noise=False))


def target_matrix(posterior, region: TargetRegion | None, target_budget: float, part: str = "model",
                  **isoflop) -> tuple[np.ndarray, TargetRegion]:
    """Z (S, M + 1): the region's log-loss draws then log N_opt(C*), and the region used (the
    IsoFLOP slice around the median N_opt when ``region`` is None); ``part`` as in
    ``posterior_columns`` (``"law"``: N_opt of the law alone)."""
    if part not in PARTS:
        raise InputError(f"part must be one of {PARTS}, got {part!r}")
    if part == "law":
        n_opt = np.exp(target_draws(posterior.law, posterior.theta(), float(target_budget))[:, 0])
    else:
        n_opt = posterior.frontier_draws([float(target_budget)])["N_opt"][:, 0]
    if region is None:
        region = TargetRegion.isoflop(float(np.median(n_opt)), target_budget, **isoflop)
    return np.column_stack([posterior_columns(posterior, region.N, region.D, part), np.log(n_opt)]), region


def make_gain(S_TT0: np.ndarray, settings: UtilitySettings):
    """gain(S_TT, c, v) -> U per candidate, for ``batch.greedy_batch``; the last target column is
    log N_opt, the others the region. ``S_TT0``: the unconditioned covariance (fixes the
    normalisers, so gains at every greedy step are fractions of the same totals)."""
    M = len(S_TT0) - 1
    region_total = max(float(np.trace(S_TT0[:M, :M])), 1e-300)
    n_total = max(float(S_TT0[M, M]), 1e-300)
    lam = settings.n_opt_weight

    def gain(S_TT, c, v):
        if settings.kind == "variance":
            region = np.sum(c[:M] ** 2, axis=0) / v / region_total
            n_opt = c[M] ** 2 / v / n_total
        else:
            region = _information(S_TT[:M, :M], c[:M], v)
            n_opt = _information(S_TT[M:, M:], c[M:], v)
        return (1 - lam) * region + lam * n_opt

    return gain


def _information(S, c, v):
    """-1/2 log(1 - c' S^+ c / v) per column (pseudo-inverse: region columns may be collinear)."""
    r2 = np.sum(c * (np.linalg.pinv(S, rcond=1e-10, hermitian=True) @ c), axis=0) / v
    return -0.5 * np.log1p(-np.clip(r2, 0.0, 1.0 - 1e-12))


def choose(Z: np.ndarray, mu: np.ndarray, sigma, cost, q: int, *, settings: UtilitySettings = UtilitySettings(),
           mu_pending=None, likelihood: str = "student_t", nu: float = 5.0, misfit=None, budget: float | None = None):
    """Greedy batch of q candidates (columns of ``mu``, (S, K) log-loss draws) by U / cost^gamma
    given target draws ``Z`` (S, M + 1; ``target_matrix``): (indices, their U when chosen).
    ``misfit``: the law's misfit covariance over the region's runs, the pending runs and the
    candidates, in that order (``misfit_covariance``), added to the draws' covariance (``joint_choose``).
    ``budget``: the most the batch may cost together (``batch.greedy_batch``)."""
    from bayes_scaling.design.batch import greedy_batch
    from bayes_scaling.design.eig import _as_2d

    Z = _as_2d(Z)
    if Z.shape[1] < 2:
        raise InputError("target draws need the region's columns and log N_opt (at least 2 columns)")
    Z, mu, sigma, mu_pending = finite_draws(Z, _as_2d(mu), np.broadcast_to(np.asarray(sigma, np.float64), (len(Z),)),
                                            None if mu_pending is None else _as_2d(mu_pending))
    Zc = Z - Z.mean(axis=0)
    if misfit is not None:
        r = noise_variance(sigma, likelihood, nu)
        columns = mu if mu_pending is None else np.column_stack([mu_pending, mu])
        return joint_choose(Z, columns, 0 if mu_pending is None else mu_pending.shape[1], r, misfit, cost, q, settings,
                            budget=budget)
    S_TT0 = Zc.T @ Zc / len(Z)
    return greedy_batch(Z, mu, sigma, cost, q, mu_pending=mu_pending, score="eig_per_cost", likelihood=likelihood,
                        nu=nu, gain=make_gain(S_TT0, settings), cost_exponent=settings.cost_exponent, budget=budget)


def misfit_covariance(discrepancy, where_region, where_runs, where_done, noise_var: float) -> np.ndarray:
    """The misfit delta's covariance over [region runs, runs] given the done runs' residuals:

        K_post = K_PP - K_PD (K_DD + r I)^-1 K_DP,

    with K the discrepancy's kernel (``design.discrepancy.Discrepancy``: squared-exponential in
    (log10 N, log10 D), sd growing below the reference scale) and rows of coordinates
    (log10 N, log10 D, log10 C) (``discrepancy.coordinates``). Done runs reveal delta near them,
    so a candidate next to one adds little about the misfit, and the region's misfit is known only
    where runs like it have been done."""
    P = np.vstack([np.reshape(where_region, (-1, 3)), np.reshape(where_runs, (-1, 3))])
    K = discrepancy.kernel(P, P)
    if where_done is None or len(where_done) == 0:
        return K
    K_done = discrepancy.kernel(where_done, where_done) + noise_var * np.eye(len(where_done))
    K_PD = discrepancy.kernel(P, where_done)
    return K - K_PD @ np.linalg.solve(K_done, K_PD.T)


def fit_misfit(residuals, where_done, *, length: float = 0.5):
    """The misfit term from the done runs' residuals (log-loss minus the posterior median law):
    type-II maximum likelihood over its sd and growth (``discrepancy.fit_discrepancy``), the
    reference scale the largest done run, correlation ``length`` decades."""
    from bayes_scaling.design.discrepancy import fit_discrepancy

    where_done = np.reshape(where_done, (-1, 3))
    return fit_discrepancy(np.asarray(residuals, np.float64), where_done, reference=float(where_done[:, 2].max()),
                           length=length)[0]


def joint_choose(Z, columns, n_pending: int, noise_var: float, misfit: np.ndarray, cost, q: int,
                 settings: UtilitySettings = UtilitySettings(), *, budget: float | None = None):
    """Greedy U / cost^gamma over the joint covariance of (Z, y): the draws' covariance of
    (Z, columns) plus the misfit delta (``misfit``, over the region's M runs then the columns; log
    N_opt has none) plus the noise r on each y. A target run's loss is m(t) + delta(t) and a run
    returns mu(x) + delta(x) + eps, so Cov(Z_t, y_x) = Cov_s(m_t, mu_x) + k(t, x): a run like the
    target learns its misfit too, while a run far from it in (log N, log D) carries misfit that does
    not transfer (its k(x, x) only adds to v_x). Observing y_j conditions every block exactly
    (rank one: Sigma <- Sigma - Sigma_.j Sigma_j. / Sigma_jj); the first ``n_pending`` columns are
    observed from the start. O((M + K)^2) per pick."""
    X = np.column_stack([Z, columns])
    Xc = X - X.mean(axis=0)
    Sigma = Xc.T @ Xc / len(X)
    T, M = Z.shape[1], Z.shape[1] - 1
    index = np.r_[np.arange(M), np.arange(T, X.shape[1])]
    if misfit.shape != (len(index), len(index)):
        raise InputError(f"misfit covariance must be {len(index)} x {len(index)} (region runs, pending, candidates), "
                         f"got {misfit.shape}")
    Sigma[np.ix_(index, index)] += misfit
    Sigma[T:, T:] += noise_var * np.eye(X.shape[1] - T)
    gain = make_gain(Sigma[:T, :T].copy(), settings)
    cost = np.asarray(cost, np.float64)
    first = T + n_pending

    def observe(k):
        a = Sigma[:, k].copy()
        Sigma[...] -= np.outer(a, a) / max(a[k], 1e-300)

    for k in range(T, first):
        observe(k)
    chosen, gains = [], []
    for _ in range(min(int(q), X.shape[1] - first)):
        value_gain = gain(Sigma[:T, :T], Sigma[:T, first:], np.maximum(np.diag(Sigma)[first:], 1e-300))
        j = best_affordable(value_gain / cost**settings.cost_exponent, chosen, cost, budget)
        if j is None:
            break
        chosen.append(j)
        gains.append(float(value_gain[j]))
        observe(first + j)
    return chosen, np.asarray(gains)


def shape_offsets(posterior, N, D) -> np.ndarray:
    """ln(N / N_opt(6 N D)) per run: how far each run's size lies from the posterior median
    compute-optimal N at the run's own compute (N_opt of the law's draws, an extrapolating fit's
    drift left out; closed form, O(S K))."""
    N, D = np.atleast_1d(np.asarray(N, np.float64)), np.atleast_1d(np.asarray(D, np.float64))
    configure()
    th = {k: jnp.asarray(v)[:, None] for k, v in posterior.theta().items() if k in posterior.law.param_names}
    draws = np.asarray(posterior.law.optimal_allocation(th, jnp.asarray(6.0 * N * D)[None, :])[0])
    n_opt = np.median(draws, axis=0) if np.isfinite(draws).all() else np.nanmedian(draws, axis=0)  # same value, 3x faster
    return np.log(N / n_opt)


def compute_optimal_band(posterior, N, D, span: float = SHAPE_SPAN, region: TargetRegion | None = None) -> np.ndarray:
    """Which runs (N, D) have a compute-optimal shape under ``posterior``: N within a factor
    ``span`` of the posterior median N_opt at the run's own compute 6 N D (equivalently tokens per
    parameter within span^2 of the optimum's), a boolean mask. With ``span`` = 3 it is the band the
    default target region spans at C* (``TargetRegion.isoflop``), carried down to each run's scale:
    runs shaped like those the team will train. N_opt is the law's (theta's draws, an
    extrapolating fit's drift left out): the band is a filter on shapes, not a prediction, and the
    law's allocation costs O(S K).

    ``region`` (a user's target runs): the band widened to the shapes the team will train, i.e. to
    [min, max] over the region's runs of ln(N_t / N_opt(C_t)) where that reaches beyond the span (the
    default IsoFLOP region spans exactly +-ln 3, so it leaves the span-3 band as it is)."""
    if not span >= 1:
        raise InputError(f"the compute-optimal band's span must be >= 1, got {span!r}")
    offsets = shape_offsets(posterior, N, D)
    lo, hi = -np.log(span), np.log(span)
    if region is not None:
        at = shape_offsets(posterior, region.N, region.D)
        at = at[np.isfinite(at)]
        if len(at):
            lo, hi = min(lo, float(at.min())), max(hi, float(at.max()))
    return (offsets >= lo - 1e-12) & (offsets <= hi + 1e-12)


def in_band(posterior, N, D, span: float | None, region: TargetRegion | None = None) -> np.ndarray:
    """Indices of the runs to score: those in ``compute_optimal_band`` (all when ``span`` is None,
    or when no run is in the band, so a pool without such shapes still gets a proposal);
    ``region``: the band widened to the target runs' shapes (``compute_optimal_band``)."""
    if span is None:
        return np.arange(len(np.atleast_1d(N)))
    keep = np.flatnonzero(compute_optimal_band(posterior, N, D, span, region))
    return keep if len(keep) else np.arange(len(np.atleast_1d(N)))


def finite_draws(*arrays):
    """The same rows (draws) of each array (None passes through), keeping only draws finite in all:
    a draw whose law overflows somewhere (a Laplace draw far in a tail) would make every covariance
    NaN. Raises InputError when fewer than 2 draws are left."""
    keep = np.ones(len(arrays[0]), bool)
    for a in arrays:
        if a is not None:
            keep &= np.all(np.isfinite(np.reshape(a, (len(a), -1))), axis=1)
    if keep.sum() < 2:
        raise InputError(f"only {int(keep.sum())} posterior draws give finite predictions; cannot score candidates")
    return tuple(None if a is None else np.asarray(a)[keep] for a in arrays)
