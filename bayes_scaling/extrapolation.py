"""Extrapolation-aware predictions: the law's own error, which grows with the distance from the data.

A fitted law is exact nowhere. Inside the fitted runs its misfit is absorbed by theta and sigma;
beyond them nothing in the data says whether the law's exponents, its compute-optimal allocation
and its level stay right, and an interval that ignores this is too narrow exactly where a team
extrapolates. The model (docs/extrapolation.md):

    log L(N, D) = log L_law(N e^((e^d_N - 1) u_N - d_a u_C), D e^((e^d_D - 1) u_D + d_a u_C); theta) + g_C u_C + eps,
    u_X = max(0, ln X - ln X_max)                      for X in N, D and C = 6ND,

with X_max the largest X among the fitted runs, so every u is 0 inside (and below) their range:
there the model *is* the plain law, draw for draw. Beyond it

* an e-fold of N counts as e^d_N e-folds (the law's exponent in N scaled by e^d_N, which never
  flips its sign; likewise D);
* the IsoFLOP profile shifts by d_a u_C in ln N: the compute-optimal N_opt drifts by d_a per
  e-fold of compute (the allocation exponent a = d ln N_opt / d ln C becomes a + d_a);
* the level drifts by g_C per e-fold of compute (a floor or a data mix the small runs could not
  pin down).

Each draw's drift is shared by every point it predicts: it is a slope, not noise, so the error
grows linearly with the log-distance from the data, correlated across predictions.

The drift is learned from how the law extrapolates *within* the given runs (leave-future-out,
``splits.forward_chain``): in fold f the plain law is fitted to the lower budgets (``fit_laplace``
by default) and predicts the held-out higher ones; r_j = log y_j - m_j (m_j, v_j: mean and
variance of the fold's predictive log-loss draws), u_j measured from the fold's own range; for
IsoFLOP data also one row per held-out slice: r = ln N_opt(empirical, Approach 2) - mean of the
fold's ln N_opt draws, v = their variance + the vertex's bootstrap variance (the losses barely see
the allocation: the profile is flat at its optimum). To first order in the drift d,

    r_f ~ Normal(U_f d_f, diag(v_f)),   U_f = [s_N u_N, s_D u_D, u_C, -(s_N - s_D) u_C] (loss rows),
                                        U_f = d ln N_opt / d d (optimum rows; u_C for d_a),
    d_f = mu + e_f,  mu = sqrt(SHARED) S z, z ~ Normal(0, I),  e_f ~ Normal(0, (1 - SHARED) S^2),
    S = diag(tau_shape, tau_shape, tau_level, tau_alloc),

with s_N, s_D the law's local slopes d log L / d ln N and d log L / d ln D: every extrapolation
of these runs shares a drift mu (the law's systematic error beyond the data: a data set whose
optimum keeps moving up moves it up in every fold) and has its own part e_f. Per cell of a grid of
the three scales, mu is integrated out exactly (Gaussian; Woodbury, rank 4), giving the cell's
likelihood and mu's posterior; the scales' posterior is half-Cauchy priors x that likelihood (a
composite likelihood: folds overlap). Each posterior draw of theta is paired with a draw of the
scales and of the drift of a new extrapolation, d = mu + e with mu from its posterior and
e ~ Normal(0, (1 - SHARED) S^2): the predictive integrates over the scales and the learned mean,
so folds with little to say leave heavy tails rather than false confidence, and folds that agree
move the answer. No held-out run is ever seen: the folds live inside the runs the fit is given.

The drift is conditioned on a e^d_D + d_a >= 0, a the law's own allocation exponent per draw: a draw
that crosses it is redrawn from the drift's distribution (``ALLOCATION_BOUNDS``, ``ALLOCATION_BOUND_SHAPE``,
``ALLOCATION_BOUND_MODE``): beyond the runs N_opt does not fall as compute grows.

Each draw's level is cut where it would make the draw's drifted frontier rise (``LEVEL_BOUND``,
``frontier_level_cut``): with T(u) the frontier's log-loss at compute distance u, the level loses
T(u) - min_{s<=u} T(s), so the compute-optimal loss never grows with the budget.

Beyond u*, the farthest distance (per axis) that a fold's held-out run had from its fold's range,
the folds saw nothing: there half of the draws carry the learned mean on and half hold it at u*,
their rate beyond centred on the law's own (``MEAN_BEYOND`` "mixed"; each draw's d u becomes
d min(u, u*) + (d - c) max(0, u - u*) when held, c its cell's mean of mu).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import budget_column_of, forward_chain, inferred_budgets, split_by_axis, usable_fold

# Half-Cauchy priors: heavy tails let folds that show a large drift overrule the scale. Grids are
# denser near zero (quadratic spacing); a grid point's prior mass includes its cell width.
SCALES = ("tau_shape", "tau_level", "tau_alloc")
PRIOR_SCALES = {"tau_shape": 0.1,    # relative drift of the local exponents in N and D
                "tau_level": 0.005,  # log-loss per e-fold of compute
                "tau_alloc": 0.05}   # drift of the allocation exponent a = d ln N_opt / d ln C
GRID_MAX = {"tau_shape": 2.0, "tau_level": 0.2, "tau_alloc": 1.0}
GRID_POINTS = 21
SHARED = 0.75  # the share of the drift's variance that is common to every extrapolation of the runs
# What the drift's shared mean learns where no fold observes an optimum (loss residuals only,
# ``calibrate``): "learned": all of it, as where folds observe optima (the benchmark's rule kept it:
# docs/extrapolation.md); "allocation own": only the parts that move the loss along the frontier, the
# parts that move the allocation being each extrapolation's own (zero mean, learned spread);
# "none": nothing (the folds' drifts independent, shared 0).
LOSS_ONLY_MEAN = "learned"
# Runs given without a budget column: infer their IsoFLOP slices from compute (``splits.infer_slices``)
# and give the folds the N_opt rows of the slices they hold out whole; the split rule stays compute's.
# Off by default: the benchmark's rule rejected it on Chinchilla (coverage 79% against 82%, out of the
# 80-97% band; results/bench_extrapolation_inferred_slices.json, docs/extrapolation.md).
INFER_SLICES = False
INFERRED_COLUMN = "inferred_budget"
LOSS_ONLY_MEANS = ("learned", "allocation own", "none")
# The drift in a basis that separates what moves the compute-optimal allocation: rows
# (d_N + d_D)/sqrt 2 (the exponents' common scaling), (d_N - d_D)/sqrt 2 (their tilt), g_C, d_a. For
# L = E + A N^-alpha + B D^-beta, N_opt ~ C^a with a = beta / (alpha + beta): scaling both exponents
# by one factor leaves a alone, a tilt changes it by a (1 - a) (d_D - d_N), d_a adds itself. d_N and
# d_D share one scale, so this rotation leaves their prior as it is.
BASIS = np.array([[1, 1, 0, 0], [1, -1, 0, 0], [0, 0, np.sqrt(2), 0], [0, 0, 0, np.sqrt(2)]]) / np.sqrt(2)
MOVES_ALLOCATION = np.array([False, True, False, True])  # per row of BASIS
FOLD_DRAWS = 1000  # enough for a held-out run's predictive mean and variance
# The folds' residuals: "diagonal" (each row's own predictive variance) or "full" (the rows' predictive
# covariance over the refit's draws: one refit's parameters move all its predictions together). The
# benchmark's rule kept "diagonal" (results/bench_extrapolation_fold_covariance.json).
FOLD_COVARIANCE = "diagonal"
# How often a held-out run counts in the folds' composite likelihood. The folds are nested (a run in
# the top 10% of compute is held out by all three folds, a run in the top 30% only by the last), so
# "each" (every fold's rows at full weight) counts the top runs up to three times; "once" divides
# each row's information by the number of folds that hold it out (its variance times that count),
# so that every held-out run, and every held-out slice's optimum, weighs one unit in all.
FOLD_OVERLAP = "each"
FOLD_OVERLAPS = ("each", "once")
DRIFT_SITES = ("drift_N", "drift_D", "drift_C", "drift_alloc")
# Beyond the distances the folds observed, the learned mean of the drift (MEAN_BEYOND):
# "linear" carries it on at its learned rate per e-fold; "held" keeps what it reached at the
# farthest distance a fold's held-out run had from that fold's range (per axis: u*_N, u*_D, u*_C),
# and beyond it each draw's rate is its own minus its cell's mean (centred on the law's own rate,
# the learned spread still growing): the folds measured the mean over those distances only.
# "mixed" (the default, adopted by bench_extrapolation.py's eleventh run): each draw is "held" with
# probability HELD_SHARE, else "linear" (the folds cannot tell the two apart: within u* they are the
# same model), so the predictive mixes both continuations.
MEAN_BEYOND = "mixed"
MEAN_BEYONDS = ("linear", "held", "mixed")
HELD_SHARE = 0.5
# Bounds on the drifted allocation exponent a + d_a beyond the runs (N_opt ~ C^(a + d_a), a the law's
# own local exponent d ln N_opt / d ln C at the top of the fitted compute, per draw); a draw beyond a
# bound is brought inside it (``bound_allocation``: redrawn by default, clipped with
# ``ALLOCATION_BOUND_MODE = "clip"``). The default (0, inf): the allocation drift never makes
# N_opt fall as compute grows (every law of the family has 0 < a < 1), where the Gaussian drift's tail
# did (on all of Chinchilla's runs 39% of the draws had a + d_a < 0, and the 90% N_opt interval at 1e27
# FLOPs reached down to 46M parameters). Adopted by bench_extrapolation.py's thirteenth run (its rule,
# declared before the results; docs/extrapolation.md). (0, 1) also keeps D_opt from falling; the twelfth
# run rejected it: Porian's long-warm-up sweeps' optima move faster than compute between their budgets.
# None: the drift as drawn.
ALLOCATION_BOUNDS = (0.0, np.inf)
# The lower bound with the data exponent's drift: beyond the fitted D the law's exponent beta becomes
# beta e^d_D, and for the Chinchilla law d ln N_opt / d ln C = (beta e^d_D + (alpha + beta) d_a) /
# (alpha e^d_N + beta e^d_D), so N_opt does not fall iff d_a >= -a e^d_D (not -a). True (the default,
# adopted by bench_extrapolation.py's fourteenth run): the lower bound is lo - a e^d_D (beyond u*, for a
# held draw, e^(d_D - c_D)); the upper one is unchanged. False: lo - a.
ALLOCATION_BOUND_SHAPE = True
# How a draw beyond the allocation bound is brought inside it. "clip": its d_a (and centre) set to
# the bound, so the draws that cross it pile up on it (on all of Chinchilla's runs 45-47% of a fit's
# draws then have N_opt exactly flat in compute). "condition" (the default, adopted by
# bench_extrapolation.py's fifteenth run: every check of its rule as the clip's, interval score 0.991x
# the clip's over the four sources, far optima 4 of 5 as before): the drift's
# distribution given each draw's law is conditioned on the bound, p(d | theta, a s + d_a >= lo) (a
# constrained-parameter posterior: Gelfand, Smith & Lee 1992): a draw that crosses it is redrawn
# whole (scales, drift, centre, continuation) from the calibrated drift distribution until it does
# not, at most CONDITION_ROUNDS times, then clipped (meta says how many). theta's draws are
# unchanged, so inside the fitted runs the model is still the plain law.
ALLOCATION_BOUND_MODE = "condition"
ALLOCATION_BOUND_MODES = ("clip", "condition")
CONDITION_ROUNDS = 100
# Whether the drifted frontier may rise (LEVEL_BOUND). A positive level drift g_C adds log-loss at a
# constant rate per e-fold of compute while the law's own compute-optimal loss falls ever more slowly
# (its slope tends to 0 as the loss nears its floor), so far enough beyond the runs such a draw's
# frontier rises without end: on 10 of 44 development fits (all Porian) the median loss did
# (results/monotonicity_check.json). "frontier": each draw's level is reduced, per compute distance
# u_C, by what keeps its drifted frontier non-increasing: with L(u) its compute-optimal log-loss
# without the level and T(u) = L(u) + level(u), the level becomes level(u) - (T(u) - min_{s<=u} T(s)),
# the frontier held at its lowest value so far (``frontier_level_cut``, a table on ``level_grid()``,
# both held beyond LEVEL_GRID_MAX e-folds). A projection, like the allocation clip: the calibration
# and theta's draws are unchanged, and where a draw's frontier falls nothing moves. Adopted by
# bench_extrapolation.py's seventeenth run (the sixteenth's scores, its cost check replaced: docs/extrapolation.md):
# Porian's interval score 0.650 against 0.725, every other check as before, the frontier rising on 0 of 44 fits.
# None: the level as drawn (the default before).
LEVEL_BOUND = "frontier"
LEVEL_BOUNDS = (None, "frontier")
LEVEL_GRID_STEP, LEVEL_GRID_MAX = 0.5, 20.0  # e-folds of compute beyond the fitted runs (20: 5e8x)
LEVEL_CUT_SITE = "drift_level_cut"
# Which draws ``frontier_level_cut`` cuts (LEVEL_CUT_DRAWS). "level rises" (the default): only draws whose level
# drift rises somewhere on the grid; a draw whose exponent or allocation drift alone makes its frontier rise keeps
# it (5-34% of the draws rise somewhere in 1e20-1e27 FLOPs on Chinchilla and Marin's sweeps:
# experiments/frontier_search_edges.py). "every draw": every draw whose T(u) rises, its level lowered by the same
# cut (a level drift of zero or below made more negative where the frontier would rise). Measured by
# bench_extrapolation.py's twenty-eighth run, not adopted by its rule: the held-out runs' scores unchanged, the
# share of rising draws lower on Marin but not on Chinchilla (5.3% under both), though the largest rise per
# quarter decade fell from 49% to 1.5% on Marin and from 51% to 7.1% on Porian (docs/extrapolation.md, "The level
# cut for every draw").
LEVEL_CUT_DRAWS = "level rises"
LEVEL_CUT_DRAW_CHOICES = ("level rises", "every draw")
# What the level drift g_C scales (``apply_level``). "loss" (the default): the whole loss, log L + g_C u_C.
# "reducible": only the law's reducible part, L = E + (L_law - E) e^(g_C u_C), with E each draw's own
# irreducible loss (``theta["E"]``; a law without one, e.g. Kaplan's, keeps "loss"): the drifted loss
# never falls below the law's floor, and the level's effect on log-loss, (1 - E / L) g_C u_C to first
# order, shrinks as the loss nears E. The calibration reads the same direction, so the folds learn g_C in
# those units. A fit records it (``meta["extrapolation"]["range"]["level_on"]``, absent for "loss").
# Not adopted by bench_extrapolation.py's twenty-sixth run: Chinchilla's and Marin's coverage fell to 75% and 60%
# (the default's 89% and 93%); the law's error beyond those runs shifts the whole log-loss (docs/extrapolation.md).
LEVEL_ON = "loss"
LEVEL_ONS = ("loss", "reducible")
# Folds along an axis that no compute fold extrapolates in (AXIS_FOLDS). A compute fold holds out the most
# expensive runs; where the largest models are all among them (an over-training sweep, or IsoFLOP sweeps that
# reuse one grid of sizes), no fold's held-out run lies beyond its fold's largest N (u*_N = 0), and the drift
# learned along D and compute is carried into sizes no fold tested. "untested": for each of N and D that the
# compute folds leave at u* = 0, one more fold holds out each group's runs at its largest values of that axis
# (``splits.split_by_axis``; loss rows only: it cuts IsoFLOP slices), if its fitted runs pass the compute
# folds' checks (``splits.usable_fold``), and where at least one compute fold exists (the axis folds complement
# them; with none the scales keep their priors, as before). None: the compute folds alone.
AXIS_FOLDS = None
AXIS_FOLDS_OPTIONS = (None, "untested")
CENTRE_SITES = ("drift_centre_N", "drift_centre_D", "drift_centre_C", "drift_centre_alloc")  # "held" and "mixed"
SITE_SCALE = (0, 0, 1, 2)  # which scale each drift site has
AXES = ("log_N", "log_D", "log_C")
MODEL_NAME = "extrapolating"
STEP = 1e-3  # central differences of the law's log-loss in ln N and ln D
STEP_OPT = 0.05  # finite differences of ln N_opt in the drift
# The search those finite differences run (``frontier.drifted_optimum``'s ``refine``): "kinks", the
# frontier's own since the twenty-first session, so the calibration models how the drift moves the
# optimum the frontier reports; "parabola", the search before it. Chosen by the rule in
# experiments/calibration_optimum_search.py (results/calibration_optimum_search.json: Marin identical,
# Porian's interval score 0.6622 against 0.6628, the same coverage and N_opt counts).
OPTIMUM_SEARCH = "kinks"
SLICE_LEVEL, SLICE_Z = 0.9, 1.6449  # the empirical optimum's bootstrap interval, read as +-z sd


def _grid(name: str) -> np.ndarray:
    return GRID_MAX[name] * np.linspace(0.0, 1.0, GRID_POINTS) ** 2


def _site_grid() -> np.ndarray:
    """(shape, level, alloc, 4): each cell's per-site drift sds."""
    axes = np.meshgrid(*(_grid(name) for name in SCALES), indexing="ij")
    return np.stack([axes[k] for k in SITE_SCALE], axis=-1)


@dataclass(frozen=True)
class FoldResiduals:
    """One leave-future-out fold: residuals r, predictive variances v, drift directions U (n, 4);
    ``optima`` of the rows are IsoFLOP slices' ln N_opt, the rest held-out runs' log-loss."""

    r: np.ndarray
    v: np.ndarray
    U: np.ndarray
    optima: int = 0

    def join(self, other: FoldResiduals) -> FoldResiduals:
        """Both folds' rows as one (the same refit's residuals of two kinds)."""
        return FoldResiduals(r=np.concatenate([self.r, other.r]), v=np.concatenate([self.v, other.v]),
                             U=np.vstack([self.U, other.U]), optima=self.optima + other.optima)


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


def directions(log_loss, theta, ranges, N, D, level_on: str | None = None) -> np.ndarray:
    """(..., 4): the drift's directions at (N, D) under the law's ``log_loss(theta, N, D)``
    (theta's arrays broadcast against N and D): [s_N u_N, s_D u_D, u_C, -(s_N - s_D) u_C] (with
    ``level_on`` "reducible", default ``LEVEL_ON``, the level's (1 - E / L) u_C), with
    s_N, s_D the law's local exponents d log L / d ln N and d log L / d ln D (central differences).
    s_N - s_D is the slope of the run's IsoFLOP profile in ln N, so the last direction is, to first
    order, that profile shifted by d_a u_C in ln N: the optimum moves by d_a per e-fold of compute."""
    h = STEP
    f = lambda n, d: np.asarray(log_loss(theta, n, d))  # noqa: E731
    U = distances(ranges, N, D)
    s_N = (f(N * np.exp(h), D) - f(N * np.exp(-h), D)) / (2 * h)
    s_D = (f(N, D * np.exp(h)) - f(N, D * np.exp(-h))) / (2 * h)
    level = U[..., 2]
    if (LEVEL_ON if level_on is None else level_on) == "reducible" and "E" in theta:
        level = level * reducible_share(theta, f(N, D))
    return np.stack(np.broadcast_arrays(s_N * U[..., 0], s_D * U[..., 1], level, -(s_N - s_D) * U[..., 2]),
                    axis=-1)


def _residuals(r: np.ndarray, draws: np.ndarray, U: np.ndarray, extra_var: np.ndarray | None = None,
               optima: int = 0, overlap: np.ndarray | None = None) -> FoldResiduals:
    """Residuals r of n rows with their predictive draws (S, n) and directions U (n, 4): variances
    v = var(draws) + ``extra_var``, or with ``FOLD_COVARIANCE`` "full" the rows whitened by the
    Cholesky factor L of V = Cov(draws) + diag(extra_var): r' = L^-1 r, U' = L^-1 U, v' = 1, whose
    Gaussian likelihood N(r'; U'd, I) is N(r; Ud, V) up to log det V, which is free of the drift's
    scales. ``overlap`` (n,): the number of folds holding each row out; V becomes K^1/2 V K^1/2
    with K = diag(overlap), dividing each row's information by its count (``FOLD_OVERLAP``)."""
    extra = np.zeros(len(r)) if extra_var is None else np.asarray(extra_var)
    k = np.ones(len(r)) if overlap is None else np.asarray(overlap, np.float64)
    if FOLD_COVARIANCE == "diagonal" or len(r) == 0:
        return FoldResiduals(r=r, v=(draws.var(axis=0) + extra) * k, U=U, optima=optima)
    from scipy.linalg import solve_triangular

    cov = (np.atleast_2d(np.cov(draws, rowvar=False, ddof=0)) + np.diag(extra)) * np.sqrt(np.outer(k, k))
    L = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) / len(r) * np.eye(len(r)))
    return FoldResiduals(r=solve_triangular(L, r, lower=True), v=np.ones(len(r)), U=solve_triangular(L, U, lower=True),
                         optima=optima)


def fold_residuals(posterior, test, max_draws: int = FOLD_DRAWS, overlap: np.ndarray | None = None) -> FoldResiduals:
    """Residuals of a plain fit's predictive log-loss at held-out runs ``test`` (from at most
    ``max_draws`` of its draws, ``Posterior.predict``), with the drift's directions at the
    posterior mean slopes, from the fit's own range. The points are padded (to 64, or the next
    power of two), so folds share compiled programs. ``overlap``: per row of ``test``, the number
    of folds that hold it out (``_residuals``)."""
    from bayes_scaling.posterior import compiled_log_loss

    n = len(test)
    pad = max(64, 1 << max(n - 1, 1).bit_length()) - n  # one compiled shape for every fold of up to 64 runs
    N, D = (np.concatenate([x, np.full(pad, x[-1])]) for x in (test.N, test.D))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_draws = np.log(posterior.predict(N, D, max_draws=max_draws))[:, :n]
    keep = posterior.thinned(max_draws)
    theta = {k: v[keep, None] for k, v in posterior.theta().items()}
    U = directions(compiled_log_loss(posterior.law), theta, log_range(posterior.runs.N, posterior.runs.D),
                   N[None], D[None])[:, :n]
    ok = np.isfinite(log_draws).all(axis=0) & np.isfinite(U).all(axis=(0, 2))  # a diverged draw says nothing
    draws = log_draws[:, ok]
    return _residuals(np.log(test.loss)[ok] - draws.mean(axis=0), draws, U.mean(axis=0)[ok],
                      overlap=None if overlap is None else np.asarray(overlap)[ok])


def optimum_residuals(posterior, test, column: str, max_draws: int = FOLD_DRAWS,
                      overlap: dict | None = None) -> FoldResiduals:
    """Residuals of a plain fit's ln N_opt at the held-out IsoFLOP slices of ``test`` (``column``:
    their budget): r = ln N_emp - mean of the fit's ln N_opt draws at the slice's compute C, with
    N_emp the slice's own optimum (Approach 2, ``backtest.slice_optimum``; slices with fewer than
    ``backtest.MIN_SLICE_RUNS`` runs, no minimum or a vertex outside their N range are skipped),
    v = the draws' variance + the vertex's bootstrap variance, and U = d ln N_opt / d drift at the
    posterior medians (finite differences of ``frontier.drifted_optimum``; exactly u_C for the
    allocation drift). The losses barely see the allocation (the profile is flat at its optimum):
    these rows are what tells the folds where the optimum went. ``overlap``: budget -> the number
    of folds that hold the slice out (``_residuals``; 1 where absent)."""
    from bayes_scaling.backtest import MIN_SLICE_RUNS, slice_optimum
    from bayes_scaling.frontier import drifted_optimum

    budgets = test.frame[column].to_numpy(np.float64)
    C, r_emp, v_emp, counts = [], [], [], []
    for b in np.unique(budgets[np.isfinite(budgets)]):  # NaN: a run in no slice
        idx = np.flatnonzero(budgets == b)
        if len(idx) < MIN_SLICE_RUNS or len(np.unique(test.N[idx])) < 3:
            continue
        try:
            emp = slice_optimum(test.N[idx], test.loss[idx], level=SLICE_LEVEL)
        except np.linalg.LinAlgError:  # a bootstrap resample with too few distinct sizes
            continue
        if emp.opens_downward or not emp.vertex_in_slice or not emp.lo < emp.hi:
            continue
        C.append(np.exp(np.mean(np.log(test.C[idx]))))
        r_emp.append(np.log(emp.n_opt))
        v_emp.append((np.log(emp.hi / emp.lo) / (2 * SLICE_Z)) ** 2)
        counts.append((overlap or {}).get(float(b), 1))
    if not C:
        return FoldResiduals(r=np.zeros(0), v=np.zeros(0), U=np.zeros((0, len(DRIFT_SITES))))
    C = np.asarray(C)
    log_n = np.log(posterior.frontier_draws(C, max_draws=max_draws)["N_opt"])
    ok = np.isfinite(log_n).all(axis=1)
    th = {k: np.full((len(DRIFT_SITES) + 1, 1), np.median(v)) for k, v in posterior.theta().items()}
    N_law = np.asarray(posterior.law.optimal_allocation(th, C[None])[0])
    G = np.vstack([np.zeros(len(DRIFT_SITES)), STEP_OPT * np.eye(len(DRIFT_SITES))])
    ranges = log_range(posterior.runs.N, posterior.runs.D)
    moved = np.log(drifted_optimum(posterior.law, th, C[None], N_law, G, ranges, refine=OPTIMUM_SEARCH,
                                   edge_steps=0, wide=False)[0])  # small finite differences: the window suffices,
    # whatever frontier.EDGE_STEPS and WIDE_SCAN say
    return _residuals(np.asarray(r_emp) - log_n[ok].mean(axis=0), log_n[ok], ((moved[1:] - moved[0]) / STEP_OPT).T,
                      extra_var=np.asarray(v_emp), optima=len(C), overlap=np.asarray(counts))


def _fold_terms(fold: FoldResiduals, own: np.ndarray, shared: np.ndarray):
    """The fold's terms for each row of the grid: with the fold's own drift's sds ``own`` (..., 4)
    integrated out, A = (V + U S_o^2 U')^-1 (Woodbury, rank 4: W = I + S_o M S_o, M = U'V^-1 U,
    c = U'V^-1 r), returns log N(r; 0, A^-1), and S U'A U S and S U'A r for S = diag(``shared``):
    what the fold says about z, the shared drift in units of its sds."""
    Vinv_U = fold.U / fold.v[:, None]
    M, c = fold.U.T @ Vinv_U, Vinv_U.T @ fold.r
    SMS = own[..., :, None] * own[..., None, :] * M
    Winv = np.linalg.inv(np.eye(4) + SMS)
    _, logdet_W = np.linalg.slogdet(np.eye(4) + SMS)
    Sc = own * c
    quad = np.sum(fold.r**2 / fold.v) - np.einsum("...i,...ij,...j->...", Sc, Winv, Sc)
    log_lik = -0.5 * (np.sum(np.log(2 * np.pi * fold.v)) + logdet_W + quad)
    MS = M * own[..., None, :]  # M S_o
    UAU = M - MS @ Winv @ np.swapaxes(MS, -1, -2)
    UAr = c - np.einsum("...ij,...jk,...k->...i", MS, Winv, Sc)
    return log_lik, shared[..., :, None] * UAU * shared[..., None, :], shared * UAr


def shared_drift_likelihood(folds: list[FoldResiduals], sites: np.ndarray, shared: float | None = None):
    """For per-site drift sds s (..., 4): fold f's drift is d_f = mu + e_f, mu = sqrt(SHARED) S z
    with z ~ Normal(0, I) shared by the folds, e_f ~ Normal(0, (1 - SHARED) S^2) its own, S = diag(s),
    so r_f ~ Normal(U_f d_f, V_f). Returns the log marginal likelihood of all folds' residuals
    (z integrated out: prod_f N(r_f; 0, A_f^-1) x N(0; h, P) / N(0; 0, I) with precision
    P = I + sum_f S U_f'A_f U_f S SHARED and h = sum_f sqrt(SHARED) S U_f'A_f r_f) and z's
    posterior mean P^-1 h and covariance P^-1. ``shared``: SHARED unless given."""
    shared = SHARED if shared is None else shared
    log_lik = np.zeros(sites.shape[:-1])
    precision = np.broadcast_to(np.eye(4), sites.shape + (4,)).copy()
    score = np.zeros(sites.shape)
    for fold in folds:
        fold_log_lik, info, fold_score = _fold_terms(fold, np.sqrt(1 - shared) * sites, np.sqrt(shared) * sites)
        log_lik, precision, score = log_lik + fold_log_lik, precision + info, score + fold_score
    z_cov = np.linalg.inv(precision)
    z_mean = np.einsum("...ij,...j->...i", z_cov, score)
    _, logdet_P = np.linalg.slogdet(precision)
    return log_lik - 0.5 * logdet_P + 0.5 * np.einsum("...i,...i->...", score, z_mean), z_mean, z_cov


@dataclass(frozen=True)
class ScalePosterior:
    """The posterior of the drift scales (tau_shape, tau_level, tau_alloc) on a 3-D grid and, in
    each cell (sds s), of the shared drift mu = sqrt(shared) s z: z ~ Normal(z_mean, z_cov)."""

    weights: np.ndarray  # (shape, level, alloc) grid indices: posterior mass per cell
    z_mean: np.ndarray  # (shape, level, alloc, 4)
    z_cov: np.ndarray  # (shape, level, alloc, 4, 4)
    folds: int
    held_out: int  # held-out runs in the folds
    optima: int  # held-out IsoFLOP slices' optima in the folds
    prior_scales: dict
    shared: float | np.ndarray  # per coordinate of ``basis`` where it is an array
    basis: np.ndarray | None = None  # z's coordinates: d = basis' d_basis (None: d itself)
    inferred_slices: tuple = ()  # budgets of the IsoFLOP slices inferred from compute (no budget column)
    seen: tuple = (0.0, 0.0, 0.0)  # the farthest (u_N, u_D, u_C) of a fold's held-out run from its fold's range
    axis_folds: tuple = ()  # the axes ("N", "D") of the folds among ``folds`` that ``AXIS_FOLDS`` added
    refit_chain_gaps: tuple = ()  # per fold: its Laplace refit's potential spread over the chains' end points (nats)

    @classmethod
    def from_folds(cls, folds: list[FoldResiduals], prior_scales: dict | None = None,
                   shared: float | np.ndarray | None = None, basis: np.ndarray | None = None) -> ScalePosterior:
        """Each fold's drift d_f = mu + e_f: a part shared by the folds (the law's systematic error
        beyond the data, mu ~ Normal(0, shared S^2)) and the fold's own part
        e_f ~ Normal(0, (1 - shared) S^2). Per cell of the grid of S, mu is integrated out exactly
        (``shared_drift_likelihood``), giving the cell's marginal likelihood and mu's posterior.
        ``basis`` (orthogonal, rows mixing only drifts of one scale) states the drift in other
        coordinates, d = basis' d_b, so that ``shared`` can differ per coordinate: the folds'
        directions become U basis'."""
        prior_scales = {**PRIOR_SCALES, **(prior_scales or {})}
        axes = np.meshgrid(*(_grid(name) for name in SCALES), indexing="ij")
        log_post = 0.0
        for name, t in zip(SCALES, axes):
            width = np.gradient(_grid(name))
            shape = [1, 1, 1]
            shape[SCALES.index(name)] = -1
            log_post = log_post - np.log1p((t / prior_scales[name]) ** 2) + np.log(width).reshape(shape)
        shared = SHARED if shared is None else shared
        if basis is not None:
            folds = [FoldResiduals(r=f.r, v=f.v, U=f.U @ basis.T, optima=f.optima) for f in folds]
        log_lik, z_mean, z_cov = shared_drift_likelihood(folds, _site_grid(), shared)
        log_post = log_post + log_lik
        log_post = np.where(np.isfinite(log_post), log_post, -np.inf)
        w = np.exp(log_post - log_post.max())
        return cls(weights=w / w.sum(), z_mean=z_mean, z_cov=z_cov, folds=len(folds),
                   held_out=int(sum(len(f.r) - f.optima for f in folds)), optima=int(sum(f.optima for f in folds)),
                   prior_scales=prior_scales, shared=shared, basis=basis)

    def _to_drift(self, x: np.ndarray) -> np.ndarray:
        return x if self.basis is None else x @ self.basis

    def marginal(self, name: str) -> np.ndarray:
        k = SCALES.index(name)
        return self.weights.sum(axis=tuple(i for i in range(3) if i != k))

    def quantiles(self, q) -> dict[str, list[float]]:
        """Marginal quantiles of each scale."""
        def upper_edges(grid):  # each cell's mass sits in [g - w/2, g + w/2]: its CDF ends at g + w/2
            return grid + np.gradient(grid) / 2

        return {name: np.interp(q, np.cumsum(self.marginal(name)), upper_edges(_grid(name))).tolist()
                for name in SCALES}

    def mean_drift(self) -> np.ndarray:
        """The posterior mean of the shared drift mean mu (d_N, d_D, g_C, d_a)."""
        return self._to_drift(np.einsum("abc,abci->i", self.weights, np.sqrt(self.shared) * _site_grid() * self.z_mean))

    def _cells(self, size: int, rng: np.random.Generator):
        return np.unravel_index(rng.choice(self.weights.size, size=size, p=self.weights.ravel()), self.weights.shape)

    def draws(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(size, 3) draws of the scales: a cell by its mass, then uniform within the cell."""
        return self._scales(self._cells(size, rng), rng)

    @staticmethod
    def _scales(cells, rng) -> np.ndarray:
        out = []
        for name, index in zip(SCALES, cells):
            grid = _grid(name)
            width = np.gradient(grid)
            out.append(np.clip(grid[index] + width[index] * (rng.random(len(index)) - 0.5), 0.0, None))
        return np.stack(out, axis=1)

    def drift_draws(self, size: int, rng: np.random.Generator, centres: bool = False):
        """(scales (size, 3), drifts (size, 4)): the drift of a new extrapolation, d = mu + e with
        mu = sqrt(shared) s z, z ~ Normal(z_mean, z_cov) of the cell, and e ~ Normal(0, (1 - shared) s^2).
        ``centres``: also each draw's cell mean of mu, sqrt(shared) s z_mean (size, 4), the centre that
        ``MEAN_BEYOND`` "held" stops."""
        cells = self._cells(size, rng)
        scales = self._scales(cells, rng)
        sds = scales[:, SITE_SCALE]
        chol = np.linalg.cholesky(self.z_cov[cells] + 1e-12 * np.eye(4))
        z = self.z_mean[cells] + np.einsum("nij,nj->ni", chol, rng.standard_normal((size, 4)))
        drifts = self._to_drift(sds * (np.sqrt(self.shared) * z + np.sqrt(1 - self.shared) * rng.standard_normal((size, 4))))
        if not centres:
            return scales, drifts
        return scales, drifts, self._to_drift(sds * np.sqrt(self.shared) * self.z_mean[cells])


def calibrate(runs, fit_plain, *, folds: int = 3, budget_column: str | None = "auto",
              prior_scales: dict | None = None) -> ScalePosterior:
    """The drift scales' posterior from leave-future-out folds of ``runs``, each fitted by
    ``fit_plain`` (a callable Runs -> Posterior of the plain law): the held-out runs' log-loss
    residuals and, for IsoFLOP data, their slices' N_opt residuals. With no usable fold (too few
    budgets or runs), the scales keep their priors.

    Runs without a budget column (``INFER_SLICES``): their IsoFLOP slices are inferred from compute
    (``splits.infer_slices``), the folds stay compute splits, and each fold adds the N_opt rows of
    the inferred slices it holds out whole (``whole_slices``); the slices' budgets go into
    ``ScalePosterior.inferred_slices``.

    Where no fold observes an optimum (no N_opt rows: loss-only data), ``LOSS_ONLY_MEAN`` says what
    the drift's shared mean learns: by default ("learned") all of it. "allocation own": in the
    ``BASIS`` coordinates, the parts that move the allocation (the exponents' tilt and d_a) get shared
    share 0, so their mean stays at its prior, zero, while their scale (the spread) is still learned
    from the folds, now as each fold's own drift; the rest is shared as usual (loss residuals say how
    far the loss extrapolation was off, and only weakly where the optimum went). "none": nothing
    shared (shared 0).

    ``AXIS_FOLDS`` "untested" adds a fold along N (or D) where no compute fold extrapolated in it
    (``untested_axis_folds``); ``ScalePosterior.axis_folds`` names them."""
    if LOSS_ONLY_MEAN not in LOSS_ONLY_MEANS:
        raise InputError(f"extrapolation.LOSS_ONLY_MEAN must be one of {', '.join(map(repr, LOSS_ONLY_MEANS))}, "
                         f"got {LOSS_ONLY_MEAN!r}")
    column = budget_column_of(runs, budget_column)
    inferred = ()
    if column is None and INFER_SLICES:
        budgets = inferred_budgets(runs)
        inferred = tuple(float(b) for b in np.unique(budgets[np.isfinite(budgets)]))
        if inferred:
            runs = Runs(runs.frame.assign(**{INFERRED_COLUMN: budgets}))
    if MEAN_BEYOND not in MEAN_BEYONDS:
        raise InputError(f"extrapolation.MEAN_BEYOND must be one of {', '.join(map(repr, MEAN_BEYONDS))}, "
                         f"got {MEAN_BEYOND!r}")
    if FOLD_OVERLAP not in FOLD_OVERLAPS:
        raise InputError(f"extrapolation.FOLD_OVERLAP must be one of {', '.join(map(repr, FOLD_OVERLAPS))}, "
                         f"got {FOLD_OVERLAP!r}")
    if AXIS_FOLDS not in AXIS_FOLDS_OPTIONS:
        raise InputError(f"extrapolation.AXIS_FOLDS must be one of {', '.join(map(repr, AXIS_FOLDS_OPTIONS))}, "
                         f"got {AXIS_FOLDS!r}")
    splits = forward_chain(runs, folds=folds, budget_column=column)
    slice_column = column if column is not None else INFERRED_COLUMN if inferred else None
    slice_tests = [None if slice_column is None else split.test if column is not None else whole_slices(split.test, runs)
                   for split in splits]
    axes = untested_axis_folds(runs, splits, column) if AXIS_FOLDS == "untested" and splits else []
    splits = splits + [split for _, split in axes]
    slice_tests = slice_tests + [None] * len(axes)
    run_counts, slice_counts = fold_overlap(splits, slice_tests, slice_column)
    residuals, gaps = [], []
    seen = fold_reach(splits)
    for split, slices in zip(splits, slice_tests):
        posterior = fit_plain(split.train)
        gaps.append(posterior.meta.get("laplace_chain_gap_nats"))
        fold = fold_residuals(posterior, split.test, overlap=run_counts(split.test))
        if slices is not None:
            fold = fold.join(optimum_residuals(posterior, slices, slice_column, overlap=slice_counts))
        residuals.append(fold)
    mode = "learned" if any(fold.optima for fold in residuals) else LOSS_ONLY_MEAN
    if mode == "allocation own":
        scales = ScalePosterior.from_folds(residuals, prior_scales, shared=np.where(MOVES_ALLOCATION, 0.0, SHARED),
                                           basis=BASIS)
    else:
        scales = ScalePosterior.from_folds(residuals, prior_scales, shared=0.0 if mode == "none" else None)
    return replace(scales, inferred_slices=inferred, seen=tuple(float(u) for u in seen),
                   refit_chain_gaps=tuple(None if g is None else float(g) for g in gaps),
                   axis_folds=tuple(axis for axis, _ in axes))


def fold_reach(splits) -> np.ndarray:
    """(u*_N, u*_D, u*_C): the farthest distance, per axis, that a fold's held-out run lay beyond its
    fold's fitted runs (zeros without folds)."""
    seen = np.zeros(len(AXES))
    for split in splits:
        seen = np.maximum(seen, distances(log_range(split.train.N, split.train.D), split.test.N, split.test.D).max(axis=0))
    return seen


def untested_axis_folds(runs, splits, column: str | None) -> list:
    """``AXIS_FOLDS`` "untested": [(axis, split)] for each of "N" and "D" along which no fold of ``splits``
    extrapolated (u* = 0, ``fold_reach``), where ``splits.split_by_axis`` gives a usable fold."""
    reach = fold_reach(splits)
    out = []
    for k, axis in enumerate("ND"):
        if reach[k] > 0.0:
            continue
        try:
            split = split_by_axis(runs, axis)
        except InputError:
            continue
        if usable_fold(split, column):
            out.append((axis, split))
    return out


def fold_overlap(splits, slice_tests, slice_column: str | None):
    """(run_counts, slice_counts) for ``FOLD_OVERLAP``: a callable giving, per row of a fold's held-out
    runs, the number of folds that hold that run out (by ``run_id``), and a dict budget -> the number
    of folds whose held-out slices (``slice_tests``) hold that slice; all ones and None with "each"."""
    if FOLD_OVERLAP == "each":
        return (lambda test: None), None
    from collections import Counter

    runs = Counter(run for split in splits for run in split.test.frame["run_id"])
    slices = Counter()
    if slice_column is not None:
        for test in slice_tests:
            budgets = test.frame[slice_column].to_numpy(np.float64)
            slices.update(float(b) for b in np.unique(budgets[np.isfinite(budgets)]))
    return (lambda test: np.array([runs[run] for run in test.frame["run_id"]], np.float64)), dict(slices)


def whole_slices(test: Runs, runs: Runs) -> Runs:
    """``test`` with its inferred budget kept only for slices held out whole (every run of the
    slice in ``runs`` is in ``test``): a compute split may cut a slice, and part of a slice has a
    vertex biased towards its side."""
    held, given = (frame.groupby(["group", INFERRED_COLUMN]).size() for frame in (test.frame, runs.frame))
    whole = set(held[held == given.reindex(held.index)].index)
    keep = np.array([key in whole for key in zip(test.frame["group"], test.frame[INFERRED_COLUMN])], bool)
    return Runs(test.frame.assign(**{INFERRED_COLUMN: np.where(keep, test.frame[INFERRED_COLUMN], np.nan)}))


def attach_drift(posterior, scales: ScalePosterior, *, seed: int = 0):
    """The plain posterior made extrapolation-aware: beside each theta draw, a draw of the scales
    and of the drift (d_N, d_D, g_C, d_a); the fitted range and the calibration go into ``meta``."""
    if ALLOCATION_BOUND_MODE not in ALLOCATION_BOUND_MODES:
        raise InputError(f"extrapolation.ALLOCATION_BOUND_MODE must be one of {', '.join(map(repr, ALLOCATION_BOUND_MODES))}, "
                         f"got {ALLOCATION_BOUND_MODE!r}")
    shape = posterior.draw_shape
    held = MEAN_BEYOND in ("held", "mixed")
    draw = _drift_sampler(scales, seed, held)
    sds, drifts, centre = draw(int(np.prod(shape)))
    exponent = allocation_exponent(posterior) if ALLOCATION_BOUNDS is not None else None
    redrawn = clipped = 0
    if exponent is not None:
        if ALLOCATION_BOUND_MODE == "condition":
            sds, drifts, centre, redrawn = _condition_allocation(draw, (sds, drifts, centre), exponent, held)
        d_a, c_a = _bounded_allocation(drifts, centre, exponent, held)
        clipped = int(_moved(drifts, centre, d_a, c_a, held).sum())
        drifts[:, 3] = d_a
        if held:
            centre[:, 3] = c_a
    if LEVEL_BOUND not in LEVEL_BOUNDS:
        raise InputError(f"extrapolation.LEVEL_BOUND must be one of {', '.join(map(repr, LEVEL_BOUNDS))}, got {LEVEL_BOUND!r}")
    if LEVEL_ON not in LEVEL_ONS:
        raise InputError(f"extrapolation.LEVEL_ON must be one of {', '.join(map(repr, LEVEL_ONS))}, got {LEVEL_ON!r}")
    ranges = log_range(posterior.runs.N, posterior.runs.D)
    if LEVEL_ON != "loss":  # recorded where it differs from the default, so older fits read as they were
        ranges["level_on"] = LEVEL_ON
    if held:  # the distances over which the folds observed the mean (``MEAN_BEYOND``)
        ranges["seen"] = list(scales.seen)
    G = np.hstack([drifts, centre]) if held else drifts
    cut = frontier_level_cut(posterior, G, ranges) if LEVEL_BOUND == "frontier" else None
    posterior.add_draws({  # kept as arrays until something reads the fit's tree
        **{name: ((), sds[:, k].reshape(shape)) for k, name in enumerate(SCALES)},
        **{site: ((), drifts[:, k].reshape(shape)) for k, site in enumerate(DRIFT_SITES)},
        **{site: ((), centre[:, k].reshape(shape)) for k, site in enumerate(CENTRE_SITES) if held},
        **({} if cut is None else {LEVEL_CUT_SITE: (("level_distance",), cut.reshape(shape + (-1,)))}),
    })
    if cut is not None:
        ranges["level_cut_points"] = cut.shape[1]
    posterior.meta["model"] = MODEL_NAME
    posterior.meta["extrapolation"] = {
        "range": ranges,
        "priors": ", ".join(f"{name} ~ HalfCauchy({scales.prior_scales[name]:g})" for name in SCALES),
        **{f"{name} 5/50/95%": value for name, value in scales.quantiles([0.05, 0.5, 0.95]).items()},
        "folds": scales.folds, "held_out_in_folds": scales.held_out, "optima_in_folds": scales.optima,
        **({"axis folds": list(scales.axis_folds)} if scales.axis_folds else {}),
        "shared": float(np.max(scales.shared)),
        "inferred_slices": len(scales.inferred_slices),
        "inferred_slice_budgets": [float(f"{b:.4g}") for b in scales.inferred_slices],
        "allocation mean": _allocation_mean(scales),
        "mean drift (d_N, d_D, g_C, d_a)": [round(float(x), 4) for x in scales.mean_drift()],
        GAPS_KEY: [None if g is None else round(g, 1) for g in scales.refit_chain_gaps],
        "allocation exponent bounds": _bounds_note(exponent, redrawn, clipped, len(drifts)),
        "level bound": _level_note(cut),
        "mean beyond the folds' distances": (
            "linear" if not held else
            f"held beyond (u_N, u_D, u_C) = ({', '.join(f'{u:.2f}' for u in scales.seen)})"
            + (f" in {HELD_SHARE:.0%} of the draws, linear in the rest" if MEAN_BEYOND == "mixed" else "")),
    }
    rise = loss_rise(posterior)
    if rise is not None:
        posterior.meta["extrapolation"][RISE_KEY] = round(rise, 4)
    return posterior


GAPS_KEY = "refit chain gaps (nats)"
# A calibration refit whose chains' Newton end points lie more than this apart in potential: one chain's
# Gaussian sits where the posterior density is under e^-10 of the best chain's, and the learned drift
# moves with which chains missed (jittered starts, LAPLACE_START; docs/extrapolation.md, "Twenty-fourth run").
MISSED_MODE_NATS = 10.0


def missed_modes_note(meta: dict) -> str | None:
    """A sentence for a fit whose calibration refits missed their mode (``GAPS_KEY`` above
    ``MISSED_MODE_NATS``), else None."""
    gaps = [g for g in (meta.get("extrapolation") or {}).get(GAPS_KEY, []) if g is not None]
    missed = [g for g in gaps if g > MISSED_MODE_NATS]
    if not missed:
        return None
    return (f"{len(missed)} of the {len(gaps)} calibration refits ended with chains up to {max(missed):.0f} nats apart "
            f"(jittered Laplace starts short of the mode): the learned drift, and the answers beyond the fitted runs, "
            f"move with the seed; compare a fit at another --seed, or refit with --refits psis (the default) "
            f"(docs/extrapolation.md, \"Twenty-fourth run\")")


RISE_KEY = "median loss rise per 10x N and D"
RISE_STEPS = np.array([1.0, 10.0, 100.0])  # N and D both scaled by these from the compute-optimal point


def loss_rise(posterior) -> float | None:
    """The largest relative rise of the median predicted loss (no noise) from one step to the next along
    (k N*, k D*), k in ``RISE_STEPS``, from the law's median compute-optimal (N*, D*) at the largest fitted
    run's compute: negative where the loss falls as model and data grow, as any credible law's does; positive
    where the drift reads that ray ever farther from the moved optimum (a large allocation drift; with
    ``LEVEL_BOUND`` None also a positive level drift: docs/extrapolation.md, "The level bounded so the frontier
    never rises"). None where the law has no frontier as fitted."""
    from bayes_scaling.posterior import compiled_optimal_allocation

    C = float(np.exp(log_range(posterior.runs.N, posterior.runs.D)["log_C"][1]))
    theta = {k: v[:, None] for k, v in posterior.theta().items()}
    try:
        N_opt = np.asarray(compiled_optimal_allocation(posterior.law)(theta, np.array([[C]]))[0], np.float64)
    except InputError:
        return None
    n_star = float(np.nanmedian(N_opt)) if np.isfinite(N_opt).any() else np.nan
    if not np.isfinite(n_star) or n_star <= 0:
        return None
    N, D = n_star * RISE_STEPS, C / (6.0 * n_star) * RISE_STEPS
    with np.errstate(over="ignore", invalid="ignore"):
        median = np.nanmedian(posterior.predict(N, D, noise=False, max_draws=1000), axis=0)
    return float(np.max(median[1:] / median[:-1]) - 1) if np.all(np.isfinite(median)) else None


def _drift_sampler(scales: ScalePosterior, seed: int, held: bool):
    """n -> (scales (n, 3), drifts (n, 4), centres (n, 4) or None): draws of a new extrapolation's
    drift (``ScalePosterior.drift_draws``); under ``MEAN_BEYOND`` "mixed" a draw that carries its mean
    on linearly has a zero centre. Successive calls continue the same random streams."""
    rng, mixing = np.random.default_rng([seed, 7]), np.random.default_rng([seed, 8])

    def draw(n: int):
        sds, drifts, *centres = scales.drift_draws(n, rng, centres=held)
        centre = centres[0] if held else None
        if MEAN_BEYOND == "mixed":
            centre[mixing.random(n) >= HELD_SHARE] = 0.0
        return sds, drifts, centre
    return draw


def _bounded_allocation(drifts: np.ndarray, centre: np.ndarray | None, exponent: np.ndarray, held: bool):
    """(d_a, c_a) of each draw brought inside ``ALLOCATION_BOUNDS`` (``bound_allocation``, with the
    data exponent's drift where ``ALLOCATION_BOUND_SHAPE``)."""
    scale = None
    if ALLOCATION_BOUND_SHAPE:
        scale = (np.exp(drifts[:, 1]), np.exp(drifts[:, 1] - (centre[:, 1] if held else 0.0)))
    return bound_allocation(drifts[:, 3], centre[:, 3] if held else None, exponent, ALLOCATION_BOUNDS, scale)


def _crosses_bound(drifts: np.ndarray, centre: np.ndarray | None, exponent: np.ndarray, held: bool) -> np.ndarray:
    """Whether each draw lies beyond the allocation bound (the bound would move it)."""
    return _moved(drifts, centre, *_bounded_allocation(drifts, centre, exponent, held), held)


def _moved(drifts: np.ndarray, centre: np.ndarray | None, d_a: np.ndarray, c_a: np.ndarray | None, held: bool):
    """Whether the bounded (d_a, c_a) differ from each draw's own."""
    moved = d_a != drifts[:, 3]
    return moved | (c_a != centre[:, 3]) if held else moved


def _condition_allocation(draw, current, exponent: np.ndarray, held: bool):
    """``ALLOCATION_BOUND_MODE`` "condition": each draw beyond the bound redrawn whole from ``draw``
    until it is inside (rejection sampling from the drift's distribution given the bound and the
    draw's own exponent a), at most ``CONDITION_ROUNDS`` rounds; (scales, drifts, centres, how many
    draws were redrawn)."""
    sds, drifts, centre = (None if x is None else x.copy() for x in current)
    todo = np.flatnonzero(_crosses_bound(drifts, centre, exponent, held))
    redrawn = len(todo)
    for _ in range(CONDITION_ROUNDS):
        if not len(todo):
            break
        new_sds, new_drifts, new_centre = draw(len(todo))
        inside = ~_crosses_bound(new_drifts, new_centre, exponent[todo], held)
        rows = todo[inside]
        sds[rows], drifts[rows] = new_sds[inside], new_drifts[inside]
        if held:
            centre[rows] = new_centre[inside]
        todo = todo[~inside]
    return sds, drifts, centre, redrawn


def allocation_exponent(posterior) -> np.ndarray | None:
    """Each draw's allocation exponent a = d ln N_opt / d ln C of the law (no drift) over the e-fold
    of compute above the fitted runs' largest; None where the law has no frontier as fitted (a
    data-constrained law fitted to several corpus sizes)."""
    from bayes_scaling.posterior import compiled_optimal_allocation

    C = np.exp(log_range(posterior.runs.N, posterior.runs.D)["log_C"][1]) * np.array([1.0, np.e])
    theta = {k: v[:, None] for k, v in posterior.theta().items()}
    try:
        N_opt = np.asarray(compiled_optimal_allocation(posterior.law)(theta, C[None])[0], np.float64)
    except InputError:
        return None
    return np.log(N_opt[:, 1]) - np.log(N_opt[:, 0])


def bound_allocation(drift: np.ndarray, centre: np.ndarray | None, exponent: np.ndarray, bounds,
                     data_scale: tuple | None = None):
    """(d_a, c_a) with the drifted exponents clipped to ``bounds`` (lo, hi): a + d_a within u*_C and,
    where the draw holds its mean beyond u* (``centre``), a + d_a - c_a beyond it, each clipped to
    [lo, hi]; the centre is then what keeps the clipped rate beyond. A draw inside the bounds is
    unchanged. ``data_scale`` (near, far): factors on a in the lower bound (``ALLOCATION_BOUND_SHAPE``:
    e^d_D within u*, e^(d_D - c_D) beyond), so that it reads a s + d_a >= lo."""
    near_scale, far_scale = (1.0, 1.0) if data_scale is None else data_scale
    known = np.isfinite(exponent)  # a draw with no finite optimum (A or B overflowed) is left as drawn
    a = np.where(known, exponent, 0.0)
    lower = lambda scale: np.where(known, bounds[0] - a * scale, -np.inf)  # noqa: E731
    hi = np.where(known, bounds[1] - a, np.inf)
    near = np.clip(drift, lower(near_scale), hi)
    if centre is None:
        return near, None
    return near, near - np.clip(drift - centre, lower(far_scale), hi)


def _bounds_note(exponent, redrawn: int = 0, clipped: int = 0, draws: int = 0) -> str:
    if ALLOCATION_BOUNDS is None:
        return "none"
    if exponent is None:
        return f"{tuple(ALLOCATION_BOUNDS)} not applied: the law has no frontier as fitted"
    lo, hi = ALLOCATION_BOUNDS
    a = "a e^d_D" if ALLOCATION_BOUND_SHAPE else "a"
    bound = f"[{lo:g}, {hi:g}]" if np.isfinite(hi) else f"at least {lo:g}"
    share = lambda n: f"{n / max(draws, 1):.1%} of the draws"  # noqa: E731
    if ALLOCATION_BOUND_MODE == "condition":
        return (f"{a} + d_a conditioned to {bound}: {share(redrawn)} redrawn from the drift's distribution, "
                f"{share(clipped)} clipped after {CONDITION_ROUNDS} rounds")
    return f"{a} + d_a clipped to {bound} ({share(clipped)} on the bound)"


def _level_note(cut: np.ndarray | None) -> str:
    if LEVEL_BOUND is None:
        return "none"
    if cut is None:
        return "not applied: the law has no frontier as fitted"
    return (f"the drifted frontier held non-increasing to {LEVEL_GRID_MAX:g} e-folds of compute beyond the runs: "
            f"the level cut in {np.mean(cut.max(axis=1) > 0):.1%} of the draws"
            + (" (every draw whose frontier would rise)" if LEVEL_CUT_DRAWS == "every draw" else ""))


def _allocation_mean(scales: ScalePosterior) -> str:
    """What the calibration learned of the drift's mean allocation shift, for ``meta``."""
    if np.ndim(scales.shared):
        return "zero: each extrapolation's own (no fold observes an optimum)"
    if not scales.shared:
        return "zero"
    if scales.optima and scales.inferred_slices:
        return (f"learned from the N_opt of IsoFLOP slices inferred from compute (no budget column: "
                f"{len(scales.inferred_slices)} slices; {scales.optima} N_opt rows in the folds)")
    if scales.optima:
        return "learned"
    return ("learned from loss residuals only (no fold observes an optimum): N_opt beyond the runs moves "
            "with it; see its interval, or extrapolation.LOSS_ONLY_MEAN (docs/extrapolation.md)")


def drift_of(posterior):
    """(G, ranges): the drift draws (S, 4), with ``MEAN_BEYOND`` "held" their cells' centres beside
    them (S, 8), then with ``LEVEL_BOUND`` the level's cut table (S, K more; ``ranges["level_cut_points"]``
    says K), and the fitted range; None for a plain-law fit."""
    if not posterior.has_draws(DRIFT_SITES[-1]):
        return None
    sites = DRIFT_SITES + (CENTRE_SITES if posterior.has_draws(CENTRE_SITES[-1]) else ())
    G = np.stack([posterior.draws(site) for site in sites], axis=1)
    if posterior.has_draws(LEVEL_CUT_SITE):
        G = np.hstack([G, posterior.draws_table(LEVEL_CUT_SITE)])
    return G, posterior.meta["extrapolation"]["range"]


def constraint_kinks(ranges: dict, C, T=0.0) -> np.ndarray:
    """ln N of the points along 6ND + 2NT = C (budgets C, any shape; T tokens broadcasting against it)
    where a draw's drifted loss has a kink: N at the top of the fitted N, D at the top of the fitted D
    (N = C / (6 D_top + 2T)), and with held centres (``ranges["seen"]``) the same at the folds'
    farthest distances beyond them; shape C.shape + (2 or 4,). A corner optimum sits exactly at
    one of them, between the points of a grid. (With T > 0 the training compute 6ND varies along
    the constraint too; its kinks are not listed.)"""
    C = np.asarray(C, np.float64)
    T = np.asarray(T, np.float64)
    tops_n, tops_d = [ranges["log_N"][1]], [ranges["log_D"][1]]
    if "seen" in ranges:
        tops_n.append(ranges["log_N"][1] + ranges["seen"][0])
        tops_d.append(ranges["log_D"][1] + ranges["seen"][1])
    shape = np.broadcast_shapes(C.shape, T.shape)
    columns = [np.full(shape, top, np.float64) for top in tops_n]
    columns += [np.broadcast_to(np.log(C) - np.log(6.0 * np.exp(top) + 2.0 * T), shape) for top in tops_d]
    return np.stack(columns, axis=-1)


def _near_far(U: np.ndarray, ranges: dict):
    """(near, far): the distances U split at the folds' farthest ones (``ranges["seen"]``, MEAN_BEYOND
    "held"): near = min(U, u*), far = U - near; far is None where the mean carries on linearly."""
    if "seen" not in ranges:
        return U, None
    near = np.minimum(U, np.asarray(ranges["seen"]))
    return near, U - near


def _per_draw(G: np.ndarray, k: int, ndim: int) -> np.ndarray:
    return G[(slice(None), k) + (None,) * (ndim - 2)]


def allocation_shift(G, ranges, u_C) -> np.ndarray:
    """The shift in ln N of each draw's IsoFLOP profile at compute distances u_C (broadcast against
    (S, 1)): d_a u_C, or with held centres d_a min(u_C, u*_C) + (d_a - c_a) max(0, u_C - u*_C)."""
    G = _drift_columns(G, ranges)[0]
    if G.shape[1] == len(DRIFT_SITES):
        return G[:, 3:4] * u_C
    seen = ranges["seen"][2]
    near = np.minimum(u_C, seen)
    return G[:, 3:4] * near + (G[:, 3:4] - G[:, 7:8]) * (u_C - near)


def drifted_log_loss(log_loss, theta, G, ranges, N, D) -> np.ndarray:
    """log L under each draw's drift, for draws G (S, 4) = (d_N, d_D, g_C, d_a) and theta (arrays
    (S, 1, ...)) at points N, D that broadcast against them with a leading draw axis:

        log L_law(N e^((e^d_N - 1) u_N - d_a u_C), D e^((e^d_D - 1) u_D + d_a u_C)) + g_C u_C,

    the level less its ``LEVEL_BOUND`` cut where G carries the cut table (``level_drift``).

    Beyond the fitted range an e-fold of N counts as e^d_N e-folds (the law's exponent in N
    scaled by e^d_N, never flipping its sign; likewise D), and the IsoFLOP profile is shifted by d_a u_C in ln N: drifts
    of the law's own effective sizes, so the loss stays above the law's floor E. To first order in
    the drift this is log L_law + the ``directions`` that the folds' likelihood uses.

    With G (S, 8), the drifts then their cells' centres c (``MEAN_BEYOND`` "held"), each term's
    d u becomes d min(u, u*) + (d - c) max(0, u - u*), u* the folds' farthest distance on that axis
    (``ranges["seen"]``; e^d_N - 1 likewise per part). A far draw whose effective size exceeds the
    float range (e^d_N e-folds per e-fold: a shape drift deep in its prior's tail) gets an infinite
    size, where the law's term in it is zero, its limit."""
    G, cut = _drift_columns(G, ranges)
    U = distances(ranges, N, D)  # (S, ..., 3)
    near, far = _near_far(U, ranges) if G.shape[1] > len(DRIFT_SITES) else (U, None)
    g = [_per_draw(G, k, U.ndim) for k in range(4)]
    log_n = np.expm1(g[0]) * near[..., 0] - g[3] * near[..., 2]
    log_d = np.expm1(g[1]) * near[..., 1] + g[3] * near[..., 2]
    if far is not None:
        b = [g[k] - _per_draw(G, 4 + k, U.ndim) for k in range(4)]  # the rate beyond: centred on zero
        log_n = log_n + np.expm1(b[0]) * far[..., 0] - b[3] * far[..., 2]
        log_d = log_d + np.expm1(b[1]) * far[..., 1] + b[3] * far[..., 2]
    with np.errstate(over="ignore"):  # an effective size past float range is infinite: its term of the law is 0
        N_eff, D_eff = N * np.exp(log_n), D * np.exp(log_d)
    return apply_level(log_loss(theta, N_eff, D_eff), level_drift(G, ranges, U[..., 2], cut), theta,
                       ranges.get("level_on", "loss"))


def level_drift(G, ranges, u_C, cut=None) -> np.ndarray:
    """The level term of each draw at compute distances u_C ((S, ...), draws first): g_C u_C, or with held
    centres (``MEAN_BEYOND``) g_C min(u_C, u*_C) + (g_C - c_C) max(0, u_C - u*_C); with ``cut`` (S, K), the
    ``LEVEL_BOUND`` table on ``level_grid()``, less the cut at u_C (linear between grid points) and both
    held at the grid's end: the drifted frontier does not rise."""
    G = np.asarray(G)
    u_C = np.asarray(u_C, np.float64)
    if cut is not None:
        u_C = np.minimum(u_C, LEVEL_GRID_MAX)
    g = _per_draw(G, 2, u_C.ndim + 1)
    if G.shape[1] > len(DRIFT_SITES):
        near = np.minimum(u_C, ranges["seen"][2])
        level = g * near + (g - _per_draw(G, 6, u_C.ndim + 1)) * (u_C - near)
    else:
        level = g * u_C
    if cut is None:
        return level
    position = u_C / LEVEL_GRID_STEP
    i = np.clip(np.floor(np.nan_to_num(position)), 0, cut.shape[1] - 2).astype(int)  # NaN (no size): stays NaN via w
    w = position - i
    rows = np.arange(len(cut)).reshape((-1,) + (1,) * (u_C.ndim - 1))
    return level - ((1 - w) * cut[rows, i] + w * cut[rows, i + 1])


def apply_level(log_loss_values, level, theta, level_on: str = "loss") -> np.ndarray:
    """log L with the level drift applied (``LEVEL_ON``): "loss", log L + level; "reducible",
    log(E + (L - E) e^level) = log L + log1p((1 - E / L) expm1(level)), E = ``theta["E"]`` per draw
    (without an E in theta, as "loss")."""
    log_l = np.asarray(log_loss_values, np.float64)
    if level_on == "loss" or "E" not in theta:
        return log_l + level
    with np.errstate(over="ignore"):
        return log_l + np.log1p(reducible_share(theta, log_l) * np.expm1(level))


def reducible_share(theta, log_l) -> np.ndarray:
    """1 - E / L, the reducible part's share of the loss L = e^log_l (in (0, 1]; E = ``theta["E"]``)."""
    return -np.expm1(np.log(np.asarray(theta["E"], np.float64)) - np.asarray(log_l, np.float64))


def level_grid() -> np.ndarray:
    """The compute distances u_C (e-folds beyond the fitted runs' largest 6ND) of ``LEVEL_BOUND``'s table."""
    return np.arange(0.0, LEVEL_GRID_MAX + LEVEL_GRID_STEP / 2, LEVEL_GRID_STEP)


def frontier_level_cut(posterior, G: np.ndarray, ranges: dict) -> np.ndarray | None:
    """``LEVEL_BOUND`` "frontier": per draw and u_C in ``level_grid()``, how much of the level drift to take
    away so that the drifted frontier does not rise: with L(u) the drifted law's compute-optimal log-loss
    without the level and T(u) = L(u) + level(u), the cut is T(u) - min_{s <= u} T(s) >= 0 (the frontier
    held at its lowest value so far: the largest non-increasing function below T). L(u) is read at the
    law's own optimum moved by the draw's allocation shift (``allocation_shift``), exact to second order in
    the distance between it and the drifted optimum (the profile is flat at its optimum), at the cost of
    one evaluation of the law per draw and grid point. Under ``LEVEL_CUT_DRAWS`` "level rises" (the default)
    a draw whose level never rises keeps a zero cut; under "every draw" every draw is cut where T rises.
    (S, K); None where the law has no frontier as fitted."""
    from bayes_scaling.posterior import compiled_log_loss, compiled_optimal_allocation

    u = level_grid()
    C = np.exp(ranges["log_C"][1] + u)[None]
    theta = {k: v[:, None] for k, v in posterior.theta().items()}  # every draw: one compiled shape per fit size
    try:
        N_law = np.asarray(compiled_optimal_allocation(posterior.law)(theta, C)[0], np.float64)
    except InputError:
        return None
    G = np.asarray(G, np.float64)
    flat = G.copy()
    flat[:, 2] = 0.0
    if flat.shape[1] > len(DRIFT_SITES):
        flat[:, 6] = 0.0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        N = N_law * np.exp(allocation_shift(flat, ranges, u[None]))
        L = drifted_log_loss(compiled_log_loss(posterior.law), theta, flat, ranges, N, C / (6.0 * N))
        level = level_drift(G, ranges, np.broadcast_to(u, L.shape))
        on = ranges.get("level_on", "loss")
        T = apply_level(L, level, theta, on)
        lowest = np.fmin.accumulate(T, axis=1)
        if on == "reducible" and "E" in theta:  # the level that puts E + (L - E) e^level at the lowest T
            E = np.asarray(theta["E"], np.float64)
            cut = level - (np.log(np.exp(lowest) - E) - np.log(np.exp(L) - E))
        else:
            cut = T - lowest
    if LEVEL_CUT_DRAWS not in LEVEL_CUT_DRAW_CHOICES:
        raise InputError(f"extrapolation.LEVEL_CUT_DRAWS must be one of {', '.join(map(repr, LEVEL_CUT_DRAW_CHOICES))}, "
                         f"got {LEVEL_CUT_DRAWS!r}")
    rises = (np.diff(level, axis=1) > 0).any(axis=1, keepdims=True) if LEVEL_CUT_DRAWS == "level rises" else True
    return np.where(np.isfinite(cut) & rises, cut, 0.0)  # a draw with no finite frontier is left as drawn


def _drift_columns(G, ranges) -> tuple[np.ndarray, np.ndarray | None]:
    """(the drift and its centres (S, 4 or 8), the ``LEVEL_BOUND`` cut table (S, K) or None) from the
    columns of ``drift_of``'s G."""
    G = np.asarray(G)
    if "level_cut_points" not in ranges:
        return G, None
    k = G.shape[1] - int(ranges["level_cut_points"])
    return G[:, :k], G[:, k:]
