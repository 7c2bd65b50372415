"""Decisions a team makes with a posterior: inference-aware sizing, the best run under uncertainty,
and what a target loss costs. Every answer is computed draw by draw and summarised with its interval.

**Lifetime compute** (Sardana et al. 2023). A model of N parameters trained on D tokens that then
serves T inference tokens costs

    C_life(N, D) = 6 N D + 2 N T        (training + inference FLOPs, ``INFERENCE_FLOPS_PER_PARAM_TOKEN``).

Per posterior draw s, with L_s the draw's loss surface (the law, plus its drift beyond the fitted
runs under the extrapolating model: ``extrapolation.drifted_log_loss``):

* lowest loss at a lifetime budget C: min over ln N of L_s(N, (C - 2 N T) / 6N), N < C / 2T
  (``lifetime_optimum``; with T = 0 this is the training frontier ``frontier.frontier_draws``);
* cheapest model for a target loss l: min C such that that minimum reaches l
  (``lifetime_budget_for_loss``): a bracketed root search on ln C (``crossing``) between the
  training budget for l (``training_budget_for_loss``), which no lifetime budget can undercut, and
  the lifetime cost of the training-optimal model for l, which reaches it.

Both searches run on grids of ln N per draw: a coarse one from 12 e-folds below to 8 above the
training optimum (capped at N = C / 2T, where inference alone uses the budget), then a fine one about
its best point, refined by the parabola through the best point and its neighbours.

**A run under uncertainty** (``isoflop_profile``). At a budget C the team picks one N (D follows
from the constraint). On a grid N_j: the expected loss E_s[L_s(N_j)] with its equal-tailed band,
the N with the lowest expected loss, P(N_j is best) = the share of draws whose grid minimum is N_j
(these sum to one), and the regret L_s(N) - min_N' L_s(N') of choosing the median N_opt or the
expected-loss choice, whose mean is the expected regret.

**Target losses.** P(reached at C) = the share of draws whose lowest loss at C is at most the target
(where L_opt falls with C, the share whose needed budget is at most C); ``p_run_below`` is
P(loss <= target) for one given run, from ``Posterior.predict`` with the observation noise, as that
run would report it. ``replace_plan`` asks Sardana et al.'s question of a planned run (N, D).

Probabilities are posterior shares of S draws; their interval (``probability``) is the Wilson
interval of that share, the Monte Carlo error of S draws taken as independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_scaling import extrapolation
from bayes_scaling import frontier as frontier_mod
from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import FLOPS_PER_PARAM_TOKEN, Law

INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0
# The search along the constraint, in ln N: a coarse grid (lo, hi e-folds about the training optimum
# of the law moved by the allocation drift, points: step 0.125), then a fine one (+-half-width,
# points: step 0.025) about the coarse grid's best point. Shape drifts can move a draw's optimum
# several e-folds from that centre, hence the width; the drift's kinks at the top of the fitted N and
# D can make corner optima, which the coarse step resolves to about its own size.
COARSE = (-12.0, 8.0, 161)
FINE = (0.25, 21)
# Root searches on ln C (``crossing``): stop when the bracket is this narrow (the 24 halvings of a
# decade that bisection took gave 1.4e-7), after at most this many steps.
CROSSING_TOLERANCE = 1e-7
CROSSING_STEPS = 100
ILLINOIS_STEPS = 50  # then bisection: where L_opt jumps (its optimum changing basin) Illinois can stall
SCAN_DECADES = np.arange(6.0, 41.0, 1.0)  # log10 C where a drifting draw's first crossing is looked for


# --- inputs ----------------------------------------------------------------------------------
def check_inference_tokens(T) -> float:
    """T >= 0 finite (tokens served over the model's lifetime)."""
    try:
        value = float(T)
    except (TypeError, ValueError):
        raise InputError(f"inference_tokens must be a number of tokens >= 0, got {T!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"inference_tokens must be a finite number of tokens >= 0, got {T!r}")
    return value


def check_target_loss(surface: Surface, target) -> np.ndarray:
    """Targets (K,) above the irreducible loss of at least one draw (E's posterior support)."""
    t = np.atleast_1d(np.asarray(target, dtype=np.float64))
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise InputError(f"target_loss must be positive finite losses, got {target!r}")
    floor = surface.floor()
    if floor is not None and np.any(t <= floor.min()):
        raise InputError(f"target_loss {t[t <= floor.min()][0]:g} lies at or below every draw's irreducible loss E "
                         f"(E's posterior support starts at {floor.min():.4g}): no run reaches it; give a target above it")
    return t


# --- the posterior's loss surface --------------------------------------------------------------
@dataclass(frozen=True)
class Surface:
    """A posterior's loss surface draw by draw: the law, theta (S,) and the drift (G (S, 4), the
    fitted range) of the extrapolating model, or None for the plain law; ``model`` names which.
    ``shift`` (S,), where given, is added to every draw's log-loss: a WSD branch's shift delta + u
    (``of(..., branch_of=)``), which moves no optimum but every loss, floor and budget for a loss."""

    law: Law
    theta: dict
    drift: tuple | None
    model: str
    shift: np.ndarray | None = None

    @classmethod
    def of(cls, posterior, max_draws: int | None = None, branch_of: str | None = None, seed: int = 0) -> Surface:
        """``posterior``'s draws (``max_draws`` evenly spaced ones, if given); ``branch_of`` (a WSD fit):
        the surface of a WSD branch of that trunk (a fresh trunk effect for a trunk the fit has not seen;
        ``Posterior.branch_shift_draws``) instead of cosine runs."""
        S = posterior.num_draws
        keep = slice(None) if max_draws is None or S <= max_draws else np.linspace(0, S - 1, max_draws).astype(int)
        drift = extrapolation.drift_of(posterior)
        if drift is not None:
            drift = (drift[0][keep], drift[1])
        shift = None if branch_of is None else posterior.branch_shift(branch_of, seed)[keep]
        return cls(posterior.law, {k: np.asarray(v[keep]) for k, v in posterior.theta().items()}, drift,
                   posterior.model, shift)

    @property
    def num_draws(self) -> int:
        return len(next(iter(self.theta.values())))

    def take(self, rows) -> Surface:
        """The surface of draws ``rows`` only."""
        drift = None if self.drift is None else (self.drift[0][rows], self.drift[1])
        shift = None if self.shift is None else self.shift[rows]
        return Surface(self.law, {k: v[rows] for k, v in self.theta.items()}, drift, self.model, shift)

    def floor(self) -> np.ndarray | None:
        """Draws of the irreducible loss E (times e^shift), where the law has one."""
        E = self.theta.get("E")
        return E if E is None or self.shift is None else E * np.exp(self.shift)

    def _shift(self, ndim: int):
        return 0.0 if self.shift is None else self.shift.reshape((-1,) + (1,) * (ndim - 1))

    def _theta(self, ndim: int) -> dict:
        return {k: v.reshape((-1,) + (1,) * (ndim - 1)) for k, v in self.theta.items()}

    def log_loss(self, N, D) -> np.ndarray:
        """log L_s(N, D): N and D broadcast against a leading draw axis (S or 1, ...)."""
        from bayes_scaling.posterior import compiled_log_loss

        N, D = np.asarray(N, np.float64), np.asarray(D, np.float64)
        ndim = max(N.ndim, D.ndim, 1)
        th = self._theta(ndim)
        if self.drift is None:
            return np.asarray(compiled_log_loss(self.law)(th, N, D)) + self._shift(ndim)
        return extrapolation.drifted_log_loss(compiled_log_loss(self.law), th, *self.drift, N, D) + self._shift(ndim)

    def training_log_n(self, C) -> np.ndarray:
        """ln N of each draw's training optimum at budgets C (S or 1, K), to centre a search: the
        law's optimum moved by the allocation drift (as ``frontier.drifted_optimum`` centres it)."""
        C = np.asarray(C, np.float64)
        N_law, _ = self.law.optimal_allocation(self._theta(C.ndim), C)
        log_n = np.log(np.asarray(N_law))
        if self.drift is None:
            return log_n
        G, ranges = self.drift
        return log_n + extrapolation.allocation_shift(G, ranges, np.maximum(np.log(C) - ranges["log_C"][1], 0.0))



# --- the lifetime (inference-aware) optimum ----------------------------------------------------
def tokens_for_budget(N, C, T: float) -> np.ndarray:
    """D on the lifetime constraint 6ND + 2NT = C (<= 0 where inference alone spends C)."""
    return (C - INFERENCE_FLOPS_PER_PARAM_TOKEN * N * T) / (FLOPS_PER_PARAM_TOKEN * N)


def _log_loss_on(surface: Surface, log_n: np.ndarray, C: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log L_s along 6ND + 2NT = C at ln N values (S, K, P); inf where D <= 0."""
    N = np.exp(log_n)
    D = tokens_for_budget(N, C[..., None], T[..., None] if T.ndim else T)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(D > 0, surface.log_loss(N, np.where(D > 0, D, 1.0)), np.inf)


def lifetime_optimum(surface: Surface, C, T) -> dict[str, np.ndarray]:
    """Per draw and lifetime budget C ((K,) or (S, K)): the N, D that minimise L_s under
    6ND + 2NT = C, and that loss; T a number of tokens or one per budget. Returns N, D, L (S, K).
    A coarse grid (``COARSE``, with the drift's kinks along the constraint:
    ``extrapolation.constraint_kinks``) finds the basin, a fine one around its best point (``FINE``)
    the optimum, refined by the parabola through its best point and neighbours where that is lower
    (``frontier.refined_minimum``: a corner optimum on a kink stays exactly there)."""
    S = surface.num_draws
    C = np.broadcast_to(np.asarray(C, np.float64), (S, np.shape(C)[-1]))
    T = np.asarray(T, np.float64)
    with np.errstate(divide="ignore"):
        cap = np.log(C / (INFERENCE_FLOPS_PER_PARAM_TOKEN * T))  # D = 0 there; T = 0: no cap
    centre = surface.training_log_n(C)
    top = np.minimum(centre + COARSE[1], cap)
    log_n = top[..., None] + np.linspace(COARSE[0] - COARSE[1], 0.0, COARSE[2])  # (S, K, P)
    kinks = f_kinks = None
    if surface.drift is not None:  # evaluated with the coarse grid, in one call
        kinks = extrapolation.constraint_kinks(surface.drift[1], C, T)
        kinks = np.where(np.isfinite(centre)[..., None] & (kinks < cap[..., None]), kinks, np.nan)
        log_n = np.concatenate([log_n, kinks], axis=-1)
    f = _log_loss_on(surface, log_n, C, T)
    if kinks is not None:
        f_kinks = f[..., COARSE[2]:]
    coarse = np.take_along_axis(log_n, np.argmin(np.where(np.isnan(f), np.inf, f), axis=-1)[..., None], axis=-1)
    log_n = coarse + np.linspace(-FINE[0], FINE[0], FINE[1])
    f = _log_loss_on(surface, log_n, C, T)

    def objective(x):  # (S, K): the shape of the loss below, so no program of another shape compiles
        N = np.exp(x)
        D = tokens_for_budget(N, C, T)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.where(D > 0, surface.log_loss(N, np.where(D > 0, D, 1.0)), np.inf)

    N = np.exp(frontier_mod.refined_minimum(objective, log_n, f, kinks, f_kinks)[0])
    D = tokens_for_budget(N, C, T)
    if np.any(D <= 0):  # the vertex overshot the cap: take the best grid point there instead
        fallback = np.exp(np.take_along_axis(log_n, np.argmin(f, axis=-1)[..., None], axis=-1)[..., 0])
        N = np.where(D > 0, N, fallback)
        D = tokens_for_budget(N, C, T)
    with np.errstate(over="ignore"):
        return {"N": N, "D": D, "L": np.exp(surface.log_loss(N, D))}


def training_budget_for_loss(surface: Surface, target, reach_at=None) -> np.ndarray:
    """Per draw, the least training compute whose optimum reaches ``target`` ((K,) or (S, K)):
    (S, K), inf where no budget up to 1e40 FLOPs does. The plain law: ``Law.budget_for_loss``.
    Under a drift L_opt(C) need not fall throughout (a draw's drifts can turn it up beyond the
    runs), so the first crossing is found by a scan of ``SCAN_DECADES`` (from a decade below the
    fitted runs' compute or the plain law's budget, whichever is less) and a root search on ln C
    (``crossing``) within the scan step where the target is first reached; ``reach_at`` (broadcasting to (S, K)),
    a budget known to reach the target (a plan's own compute), joins the scan."""
    S = surface.num_draws
    target = np.broadcast_to(np.asarray(target, np.float64), (S, np.shape(target)[-1]))
    law_target = target * np.exp(-surface._shift(2))  # the law's own loss that a shifted surface's target asks for
    if surface.drift is None:
        return np.broadcast_to(np.asarray(surface.law.budget_for_loss(surface._theta(2), law_target)), target.shape).copy()
    step = np.log(10.0) * (SCAN_DECADES[1] - SCAN_DECADES[0])
    # Below the fitted runs' compute the drift is zero, so a draw's scan starts a decade below the
    # lesser of that and the plain law's own budget for the target (the law's L_opt is above it there)
    law_budget = np.asarray(surface.law.budget_for_loss(surface._theta(2), law_target))
    start = np.floor(np.log10(np.minimum(law_budget, np.exp(surface.drift[1]["log_C"][1])))) - 1
    hi, found = np.full(target.shape, np.nan), np.zeros(target.shape, bool)
    for decade in SCAN_DECADES:
        active = ~found & (decade >= start)
        rows = open_rows(active)  # the draws still looking
        if rows.size == 0:
            continue
        L = lifetime_optimum(surface.take(rows), np.full((rows.size, target.shape[1]), 10.0**decade), 0.0)["L"]
        new = active[rows] & (L <= target[rows])
        hi[rows], found[rows] = np.where(new, decade * np.log(10.0), hi[rows]), found[rows] | new
        if found.all():
            break
    lo = hi - step
    if reach_at is not None:  # a known reaching budget below the first scanned one: bracket it
        known = np.log(np.broadcast_to(np.asarray(reach_at, np.float64), target.shape))
        use = np.isfinite(known) & ~(found & (hi <= known))
        hi = np.where(use, known, hi)
        lo = np.where(use, np.log(10.0) * np.floor(known / np.log(10.0) - 1e-12), lo)
        found = found | use
    hi, lo = np.where(found, hi, np.log(1e20)), np.where(found, lo, np.log(1e19))  # placeholders, masked below

    def excess(x, rows):
        return np.log(lifetime_optimum(surface.take(rows), np.exp(x), 0.0)["L"] / target[rows])

    return np.where(found, np.exp(crossing(excess, lo, hi, found)), np.inf)


def open_rows(open_: np.ndarray) -> np.ndarray:
    """The draws (rows of ``open_``, (S, K)) with an open element, in one of two shapes: all S, or
    for few of them (at most an eighth) a fixed size padded by repeating them, so the compiled
    log-loss programs see two shapes (one compile each) however the draws thin out."""
    S = open_.shape[0]
    rows = np.flatnonzero(open_.any(axis=1))
    tail = 1 << max(S // 8 - 1, 63).bit_length()
    if rows.size == 0:
        return rows
    return np.resize(rows, tail) if rows.size <= tail < S else np.arange(S)


def crossing(excess, lo, hi, solve) -> np.ndarray:
    """Per element (S, K) where ``solve``: a point x in [lo, hi] at most ``CROSSING_TOLERANCE`` above
    a zero of ``excess(x, rows)`` (log L_opt(e^x) less the log target, for the draws ``rows``: > 0
    where x's budget falls short), bracketed by excess(lo) > 0 >= excess(hi). The Illinois method
    (regula falsi, halving the value kept at an end that stayed twice: superlinear where L_opt is
    smooth, about 7 steps from a decade to 1e-7 where bisection took 24) for ``ILLINOIS_STEPS``,
    then bisection. The end returned always reaches the target. Where ``lo`` already reaches it,
    ``lo``; where ``hi`` does not (or not ``solve``), ``hi``. Each step evaluates only the draws still
    open (``open_rows``)."""
    a, b = np.array(lo, np.float64), np.array(hi, np.float64)
    rows = open_rows(solve)
    fa, fb = np.full(a.shape, np.inf), np.full(b.shape, -np.inf)
    if rows.size:
        fa[rows], fb[rows] = excess(a[rows], rows), excess(b[rows], rows)
    reached_at_lo = solve & ~(fa > 0)  # as a comparison "above the target" reads nan: reached
    falls_short = solve & (fb > 0) & ~reached_at_lo
    open_ = solve & ~reached_at_lo & ~falls_short & (b - a > CROSSING_TOLERANCE)
    side = np.zeros(a.shape, np.int8)  # which end moved last: -1 lo, +1 hi
    for step in range(CROSSING_STEPS):
        rows = open_rows(open_)
        if rows.size == 0:
            break
        A, B, FA, FB, S, act = a[rows], b[rows], fa[rows], fb[rows], side[rows], open_[rows]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            secant = B - FB * (B - A) / (FB - FA)
        mid = 0.5 * (A + B)
        x = mid if step >= ILLINOIS_STEPS else np.where(np.isfinite(secant) & (secant > A) & (secant < B), secant, mid)
        fx = excess(x, rows)
        short = act & (fx > 0)
        reach = act & ~(fx > 0)
        FB = np.where(short & (S == -1), 0.5 * FB, FB)  # Illinois: the end kept twice has its value halved
        FA = np.where(reach & (S == 1), 0.5 * FA, FA)
        a[rows], fa[rows] = np.where(short, x, A), np.where(short, fx, FA)
        b[rows], fb[rows] = np.where(reach, x, B), np.where(reach, fx, FB)
        side[rows] = np.where(short, -1, np.where(reach, 1, S))
        open_[rows] = act & (b[rows] - a[rows] > CROSSING_TOLERANCE)
    return np.where(reached_at_lo, a, b)


def lifetime_budget_for_loss(surface: Surface, target, T, reach_at=None) -> dict[str, np.ndarray]:
    """Per draw and target loss ((K,) or (S, K)), T a number of tokens or one per target (K,):
    the cheapest lifetime compute that reaches it,
    its N and D, and the same for the training-optimal model of that loss ("chinchilla_*": its
    lifetime cost counts its inference too), with the FLOPs saved. Draws that cannot reach a target
    give inf/nan there. ``reach_at``: see ``training_budget_for_loss``. Arrays (S, K)."""
    S = surface.num_draws
    target = np.broadcast_to(np.asarray(target, np.float64), (S, np.shape(target)[-1]))
    C_train = training_budget_for_loss(surface, target, reach_at)
    reachable = np.isfinite(C_train)
    C_train = np.where(reachable, C_train, 1e20)
    ref = lifetime_optimum(surface, C_train, 0.0)  # the training-optimal model of the target
    ref_life = C_train + INFERENCE_FLOPS_PER_PARAM_TOKEN * ref["N"] * T
    lo, hi = np.log(C_train), np.log(ref_life)
    T = np.asarray(T, np.float64)

    def excess(x, rows):
        return np.log(lifetime_optimum(surface.take(rows), np.exp(x), T)["L"] / target[rows])

    C = np.exp(crossing(excess, lo, hi, reachable & (hi > lo)))
    best = lifetime_optimum(surface, C, T)
    nan = np.where(reachable, 1.0, np.nan)
    out = {"lifetime_flops": C, "N": best["N"], "D": best["D"], "L": best["L"],
           "training_flops": FLOPS_PER_PARAM_TOKEN * best["N"] * best["D"],
           "inference_flops": INFERENCE_FLOPS_PER_PARAM_TOKEN * best["N"] * T,
           "chinchilla_N": ref["N"], "chinchilla_D": ref["D"], "chinchilla_lifetime_flops": ref_life,
           "saved_flops": ref_life - C, "saved_fraction": 1.0 - C / ref_life}
    out = {k: v * nan for k, v in out.items()}
    out["lifetime_flops"] = np.where(reachable, C, np.inf)  # as Law.budget_for_loss says "unreachable"
    out["tokens_per_param"] = out["D"] / out["N"]
    return out


def as_surface(source) -> Surface:
    """A ``Surface`` as given, or ``Surface.of`` a ``Posterior`` (so every function here takes either)."""
    if isinstance(source, Surface):
        return source
    from bayes_scaling.posterior import Posterior

    if isinstance(source, Posterior):
        return Surface.of(source)
    raise InputError(f"expected a Posterior (a fit) or a decisions.Surface, got {type(source).__name__}")


def one_point(N, D) -> tuple[float, float]:
    """A single run (N, D) as two positive finite floats; ``InputError`` otherwise."""
    try:
        N, D = float(N), float(D)
    except (TypeError, ValueError):
        raise InputError(f"N and D must be one number each (one run), got N={N!r}, D={D!r}") from None
    if not (np.isfinite(N) and np.isfinite(D) and N > 0 and D > 0):
        raise InputError(f"N and D must be positive finite numbers (parameters and tokens), got N={N!r}, D={D!r}")
    return N, D


def replace_plan(surface: Surface, N: float, D: float, T: float) -> dict[str, np.ndarray]:
    """Sardana et al.'s question for a planned run (N, D) that will serve T tokens: per draw, the
    cheapest model over its lifetime that reaches the plan's loss L_s(N, D), and the FLOPs it saves
    against the plan itself (``lifetime_budget_for_loss``'s keys, with ``plan_*`` for the plan's
    loss and lifetime cost and the savings measured against it). Arrays (S,)."""
    surface, (N, D), T = as_surface(surface), one_point(N, D), check_inference_tokens(T)
    target = np.exp(surface.log_loss(np.array([[N]]), np.array([[D]])))  # (S, 1)
    plan_train = FLOPS_PER_PARAM_TOKEN * N * D  # reaches the target: it is the plan
    out = {k: v[:, 0] for k, v in lifetime_budget_for_loss(surface, target, T, reach_at=plan_train).items()}
    plan_life = FLOPS_PER_PARAM_TOKEN * N * D + INFERENCE_FLOPS_PER_PARAM_TOKEN * N * T
    out.update(plan_loss=target[:, 0], plan_lifetime_flops=np.full(len(target), plan_life),
               saved_flops=plan_life - out["lifetime_flops"], saved_fraction=1.0 - out["lifetime_flops"] / plan_life)
    return out


def inference_frontier_draws(surface: Surface, budgets, T: float) -> dict[str, np.ndarray]:
    """Draws (S, K) of the lifetime optimum at lifetime budgets C, under ``frontier``'s names
    (N_opt, D_opt, L_opt, tokens_per_param), so ``frontier.summarise`` reads them."""
    surface = as_surface(surface)
    C = frontier_mod.check_budgets(budgets)
    best = lifetime_optimum(surface, C[None, :], check_inference_tokens(T))
    return {"N_opt": best["N"], "D_opt": best["D"], "L_opt": best["L"], "tokens_per_param": best["D"] / best["N"]}


def inference_frontier(posterior, budgets, inference_tokens: float, level: float = 0.9,
                       branch_of: str | None = None) -> pd.DataFrame:
    """``Posterior.frontier``'s table for a model that will serve ``inference_tokens`` tokens: per
    lifetime budget C (training + inference FLOPs), the N, D and loss of the lowest loss, with
    their ``level`` intervals; columns ``inference_tokens`` and ``model`` say under what.
    ``branch_of``: a WSD fit's branch of that trunk (``Surface.of``)."""
    surface = Surface.of(posterior, branch_of=branch_of)
    table = frontier_mod.summarise(inference_frontier_draws(surface, budgets, inference_tokens), budgets, level)
    return table.assign(inference_tokens=check_inference_tokens(inference_tokens), model=posterior.model)


# --- summaries ---------------------------------------------------------------------------------
def interval(draws: np.ndarray, level: float, axis: int = 0) -> dict[str, np.ndarray]:
    """Median and equal-tailed ``level`` interval of draws (NaN draws, unreachable, left out)."""
    level = frontier_mod.check_level(level)
    lo, med, hi = np.nanquantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=axis)
    return {"median": med, "lo": lo, "hi": hi, "level": level}


def probability(hits: np.ndarray, level: float, axis: int = 0) -> dict[str, np.ndarray]:
    """The share p = k / S of draws that are True, with the Wilson score ``level`` interval of that
    share, the Monte Carlo error of S independent draws (z the normal quantile at (1 + level) / 2):

        (k + z^2/2) / (S + z^2)  -/+  z / (S + z^2) * sqrt(k (S - k) / S + z^2 / 4)."""
    from statistics import NormalDist

    level = frontier_mod.check_level(level)
    hits = np.asarray(hits, bool)
    S, k = hits.shape[axis], hits.sum(axis=axis)
    z = NormalDist().inv_cdf((1 + level) / 2)
    centre = (k + z**2 / 2) / (S + z**2)
    half = z / (S + z**2) * np.sqrt(k * (S - k) / S + z**2 / 4)
    return {"p": k / S, "lo": np.maximum(centre - half, 0.0), "hi": np.minimum(centre + half, 1.0), "level": level}


def _json(value):
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    value = np.asarray(value)
    if value.ndim:
        return [_json(v) for v in value]
    return value.item() if value.dtype.kind not in "fc" or np.isfinite(value) else None


# --- one budget: the posterior IsoFLOP profile -------------------------------------------------
@dataclass(frozen=True)
class ProfileSettings:
    """The N grid of ``isoflop_profile``: ``points`` values of ln N spanning each draw's optimum
    (its 0.1% to 99.9% quantiles over the draws) ``pad`` e-folds either side, within the sizes whose
    tokens per parameter any real run has (``frontier.plausible_log_n``): a posterior too wide to
    place N_opt (few runs, far beyond them) would otherwise put runs of 1e-7 tokens per parameter
    on the grid, and the expected loss's minimum there."""

    points: int = 161
    pad: float = 0.5


@dataclass(frozen=True)
class Profile:
    """The posterior IsoFLOP profile at one budget (``isoflop_profile``); arrays over the N grid."""

    budget: float
    inference_tokens: float
    level: float
    model: str
    num_draws: int
    N: np.ndarray
    D: np.ndarray
    expected_loss: np.ndarray
    band: dict  # median, lo, hi of L_s(N_j) over draws
    p_best: np.ndarray
    best: dict  # the expected-loss choice: N, D, expected_loss, loss interval, regret, P(loss <= target)
    median_choice: dict  # the median N_opt: the same keys
    n_opt: dict  # median and interval of the per-draw optimum N
    target_loss: float | None = None
    p_reached: dict | None = None  # P(the draw's own optimum reaches target_loss)

    def p_best_set(self) -> tuple[float, float]:
        """The narrowest N range of the grid holding at least ``level`` of P(best)."""
        c = np.concatenate([[0.0], np.cumsum(self.p_best)])
        best = (0, len(self.N) - 1)
        for i in range(len(self.N)):
            j = np.searchsorted(c, c[i] + self.level - 1e-12)
            if j <= len(self.N) and j - 1 - i < best[1] - best[0]:
                best = (i, j - 1)
        return float(self.N[best[0]]), float(self.N[best[1]])

    def notes(self) -> list[str]:
        """Where the expected loss cannot choose a run: its mean at the chosen N lies above that N's
        ``level`` interval, or the chosen N outside the range holding ``level`` of P(best), so a few draws
        of very high loss set it (a posterior too wide at this budget)."""
        best = self.best
        lo, hi = self.p_best_set()
        if best["expected_loss"] > best["loss"]["hi"]:
            why = (f"its mean at the chosen N, {best['expected_loss']:.4g}, lies above that N's {self.level:.0%} "
                   f"interval, [{best['loss']['lo']:.4g}, {best['loss']['hi']:.4g}]")
        elif not lo * (1 - 1e-9) <= best["N"] <= hi * (1 + 1e-9):
            why = f"the N it chooses lies outside the range holding {self.level:.0%} of P(best)"
        else:
            return []
        return [f"at {self.budget:.3g} FLOPs the expected loss is set by a few draws of high loss ({why}): the "
                "posterior is too wide here to choose a run by expected loss; read the P(best) range and the median "
                "N_opt, or add runs nearer this budget"]

    def to_json(self) -> dict:
        lo, hi = self.p_best_set()
        return _json({"budget": self.budget, "inference_tokens": self.inference_tokens, "level": self.level,
                      "model": self.model, "draws": self.num_draws, "expected_loss_choice": self.best,
                      "median_n_opt_choice": self.median_choice, "n_opt": self.n_opt,
                      "p_best_set": {"N_lo": lo, "N_hi": hi, "mass_at_least": self.level},
                      "target_loss": self.target_loss, "p_reached": self.p_reached, "notes": self.notes(),
                      "profile": {"N": self.N, "D": self.D, "expected_loss": self.expected_loss,
                                  "median": self.band["median"], "lo": self.band["lo"], "hi": self.band["hi"],
                                  "p_best": self.p_best}})


def isoflop_profile(surface: Surface, budget: float, *, inference_tokens: float = 0.0, level: float = 0.9,
                    target_loss: float | None = None, settings: ProfileSettings = ProfileSettings()) -> Profile:
    """The decision at one (lifetime) budget C: the expected loss and its ``level`` band along
    6ND + 2NT = C, the N of lowest expected loss, P(each grid N is best), and the loss, interval,
    expected regret (and P(loss <= ``target_loss``)) of choosing that N or the median N_opt."""
    surface, T = as_surface(surface), check_inference_tokens(inference_tokens)
    if np.ndim(budget) != 0:
        raise InputError(f"isoflop_profile takes one budget (FLOPs), got {budget!r}: call it once per budget")
    C = float(frontier_mod.check_budgets([budget])[0])
    level = frontier_mod.check_level(level)
    if target_loss is not None:
        target_loss = float(check_target_loss(surface, [target_loss])[0])
    opt = {k: v[:, 0] for k, v in lifetime_optimum(surface, np.array([C]), T).items()}  # (S,)
    log_opt = np.log(opt["N"])
    lo, hi = np.quantile(log_opt, [0.001, 0.999])
    band_lo, band_hi = (float(b) for b in frontier_mod.plausible_log_n(C))
    lo, hi = max(lo - settings.pad, band_lo), min(hi + settings.pad, band_hi)
    if not lo < hi:  # every draw's optimum outside what real runs have: the band itself
        lo, hi = band_lo, band_hi
    log_n = np.linspace(lo, hi, settings.points)
    if T > 0:  # keep D > 0: inference alone spends C at N = C / 2T
        log_n = log_n[log_n < np.log(C / (INFERENCE_FLOPS_PER_PARAM_TOKEN * T)) - 1e-6]
        if len(log_n) < 3:
            raise InputError(f"budget {C:g}: inference of {T:g} tokens spends it on any model the posterior favours; "
                             "give a larger budget or fewer inference tokens")
    N = np.exp(log_n)
    D = tokens_for_budget(N, C, T)
    L = np.exp(surface.log_loss(N[None, :], D[None, :]))  # (S, P)
    expected = L.mean(axis=0)
    winner = np.argmin(L, axis=1)
    p_best = np.bincount(winner, minlength=len(N)) / len(L)

    def choice(n: float) -> dict:
        d = float(tokens_for_budget(n, C, T))
        loss = np.exp(surface.log_loss(np.array([n]), np.array([d])))  # (S,)
        regret = np.maximum(loss - opt["L"], 0.0)
        out = {"N": n, "D": d, "tokens_per_param": d / n, "expected_loss": float(loss.mean()),
               "loss": interval(loss, level), "expected_regret": float(regret.mean()), "regret": interval(regret, level)}
        if target_loss is not None:
            out["p_loss_below_target"] = probability(loss <= target_loss, level)
        return out

    best_log_n = float(frontier_mod.parabola_minimum(log_n, np.log(expected)))
    p_reached = probability(opt["L"] <= target_loss, level) if target_loss is not None else None
    return Profile(budget=C, inference_tokens=T, level=level, model=surface.model, num_draws=len(L), N=N, D=D,
                   expected_loss=expected, band=interval(L, level), p_best=p_best, best=choice(np.exp(best_log_n)),
                   median_choice=choice(float(np.median(opt["N"]))), n_opt=interval(opt["N"], level),
                   target_loss=target_loss, p_reached=p_reached)


# --- target losses ---------------------------------------------------------------------------------
def budget_for_target(surface: Surface, target_loss, *, inference_tokens: float = 0.0,
                      level: float = 0.9) -> list[dict]:
    """Per target loss: the (lifetime) compute that reaches it, with the optimum's N, D, tokens per
    parameter, training and inference FLOPs, and the training-optimal model's lifetime cost and
    the saving against it; each a median and ``level`` interval over the draws that reach it, and
    ``p_reachable``, the share of draws that can reach it at all."""
    surface, T = as_surface(surface), check_inference_tokens(inference_tokens)
    targets = check_target_loss(surface, target_loss)
    draws = lifetime_budget_for_loss(surface, targets[None, :], T)
    keys = ("lifetime_flops", "N", "D", "tokens_per_param", "training_flops", "inference_flops",
            "chinchilla_N", "chinchilla_lifetime_flops", "saved_flops", "saved_fraction")
    rows = []
    for k, t in enumerate(targets):
        reach = np.isfinite(draws["lifetime_flops"][:, k])
        row = {"target_loss": float(t), "inference_tokens": T, "model": surface.model, "level": level,
               "p_reachable": probability(reach, level)}
        for key in keys:
            row[key] = interval(draws[key][reach, k], level) if reach.any() else None
        rows.append(row)
    return rows


def p_reached(surface: Surface, target_loss: float, budgets, *, inference_tokens: float = 0.0,
              level: float = 0.9) -> list[dict]:
    """Per (lifetime) budget C: P(the lowest loss at C is at most ``target_loss``) over the draws,
    i.e. P(the budget the target needs is at most C), with its Monte Carlo interval."""
    surface, T = as_surface(surface), check_inference_tokens(inference_tokens)
    target = float(check_target_loss(surface, [target_loss])[0])
    C = frontier_mod.check_budgets(budgets)
    L = lifetime_optimum(surface, C[None, :], T)["L"]
    return [{"budget": float(c), "target_loss": target, "inference_tokens": T, "model": surface.model,
             **probability(L[:, k] <= target, level)} for k, c in enumerate(C)]


def p_run_below(posterior, N: float, D: float, target_loss: float, level: float = 0.9, seed: int = 0,
                branch_of: str | None = None) -> dict:
    """P(loss <= ``target_loss``) for the run (N, D): the share of ``Posterior.predict``'s draws
    (the fit's model, observation noise included) at or below it, with the predicted loss;
    ``branch_of``: the run is a WSD branch of that trunk (``Surface.of``)."""
    N, D = one_point(N, D)
    target = float(check_target_loss(Surface.of(posterior, branch_of=branch_of, seed=seed), [target_loss])[0])
    at = None if branch_of is None else [str(branch_of)]
    draws = posterior.predict([N], [D], seed=seed, offset_at=at)[:, 0]
    return {"N": float(N), "D": float(D), "target_loss": target, "model": posterior.model,
            "loss": interval(draws, level), **probability(draws <= target, level)}


