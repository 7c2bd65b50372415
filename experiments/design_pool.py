"""Pool-based design benchmark (``bench_design.py --pool``): which runs to buy from a pool of
runnable ones so that predictions at the held-out top of the compute range are right.

Per group of every development source (Chinchilla; Marin's three datasets; Porian et al.'s 15
settings; Gadre et al.'s three datasets), ``splits.split_by_compute`` with its defaults (the same
split as the backtest: the top 3 IsoFLOP budgets where the table has a budget column, else the
top 30% of compute) holds out the target region; the rest is the pool. Every strategy starts
from the same ``n_init`` cheapest pool runs, then buys runs one batch (``q``) at a time while
the pool's cost allows, up to 10% of the pool's total cost; the runs bought by 1%, 5% and 10%
of that cost (prefixes of one trajectory, as Li et al. score theirs) are then fitted by the
common fitter and scored on the target region.

Paced protocol (``--pace``, v14, fourteenth session): every strategy buys only runs that fit before the
next checkpoint, so each checkpoint's prefix spends close to its budget. Why: in v13 ``ours`` bought a large
run right after the common start, and on Gadre its 5% checkpoint had spent only 2.4-2.7% of the pool's cost
(docs/design.md, v13). v14 runs Chinchilla and Gadre (all seven strategies, seeds 0-9, ``--scorer nuts
--picker product`` as v13) into results/bench_design_pool_v14_paced.json. THE READING, declared before the
results: pacing becomes the protocol of the next full run (and a checkpoint option for the product's pool
planner is next) if, at 5%, ``ours``' median R^2 rises over v13's on both sources and at 10% it falls by at
most 0.05 on either; the issue's targets are then read on these two sources against the paced strategies.
Outcome (from an archive of db8af0e; docs/design.md, v14): NOT KEPT. At 5% ``ours`` rose on both
(Chinchilla 0.650 -> 0.869, Gadre 0.110 -> 0.406) but at 10% fell on Gadre (0.878 -> 0.628); paced, MSPE is
best on Chinchilla at both checkpoints (0.886, 0.961), random and V-optimal on Gadre (0.834, 0.859).

The start: the cheapest pool runs, at most 12 (2.5 x the law's 5 parameters), within 2% of the
pool's cost (Li et al.'s start), and at least the 6 runs a fit needs; a checkpoint below the start's cost is scored on the start.

Strategies:
* ``ours``      ``design.target``'s utility (region = the target runs, and log N_opt at the top
                target budget; lambda 0.5, variance kind) under the extrapolation-aware posterior
                of the common fitter, per cost^0.4;
* ``random``, ``cheapest``, ``invcost`` (random with probability ~ 1 / cost);
* ``dopt``      EIG about the law's parameters (log E, log A, log B, alpha, beta) per cost^0.4,
                from the plain law's Laplace posterior (information about theta: D-optimality);
* ``vopt``      the expected reduction of predictive variance over the target runs per cost^0.4,
                same plain Laplace posterior (lambda = 0);
* ``mspe``      ``design.mspe``: written from Li et al. 2026's description (multi-start modes,
                V-optimal within modes, inter-mode disagreement, cost^0.4);
* ``all``       the whole pool (100% of its cost).

Common fitter (scores every strategy's runs, and is the posterior ``ours`` designs under): the
plain law's Laplace approximation (``fit_laplace``, 2 x 200 draws) made extrapolation-aware by
``extrapolation.calibrate`` on Laplace refits and ``attach_drift``: the default model's
construction with Laplace in place of NUTS, so that the benchmark fits in 2 shared cores.

Scorer (``--scorer``, from v10): ``laplace`` (the common fitter above scores every checkpoint, v1-v9) or
``nuts`` (the product's default fit, ``fit_nuts`` with its defaults: NUTS 4 x (500 + 1000), the
extrapolating model, what a user fitting the same runs gets); the picks are the same either way (``ours``
designs under the picker below). Identical checkpoints (the same rows and seed: the common start at
1% for most strategies) are fitted once. Every checkpoint record keeps its pool rows (``rows``) and, with
``nuts``, whether the fit's verdict warned.

Picker (``--picker``, from v11): ``common`` (``ours`` designs under the common fitter, v1-v10) or
``product`` (under the refit the product's pool planner asks under: ``refit.MaskedRefitter(model=
"extrapolating")``, NUTS 2 x (300 + 300), as ``loop --candidates``) or ``product-psis`` (that refit with its
calibration on PSIS refits, v15); the other strategies' picks are unchanged either way.

Metrics on the target runs: R^2 of the posterior median loss (Li et al.'s definition: 1 -
SS_res / SS_tot on the loss, clipped to [-1, 1]; per source over the pooled target runs of its
groups, as their multi-group tasks), the mean 90% interval score and coverage of the predictive
draws (noise included), and where the table has IsoFLOP budgets the model's N_opt at the top
held-out budget against the empirical (Approach 2) vertex of that slice.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bayes_scaling import extrapolation, scoring
from bayes_scaling.backtest import slice_optimum
from bayes_scaling.design import mspe
from bayes_scaling.design.discrepancy import Discrepancy, coordinates
from bayes_scaling.design.eig import _as_2d, noise_variance
from bayes_scaling.design.batch import greedy_batch
from bayes_scaling.design.target import (
    SHAPE_SPAN,
    TargetRegion,
    UtilitySettings,
    choose,
    finite_draws,
    fit_misfit,
    in_band,
    misfit_covariance,
    posterior_columns,
    target_matrix,
)
from bayes_scaling.diagnostics import SamplerWarning
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_laplace, fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import budget_column_of, split_by_compute

SOURCES = {"chinchilla": load_chinchilla, "marin": load_marin, "porian": load_porian, "gadre": load_gadre}
STRATEGIES = ("ours", "random", "cheapest", "invcost", "dopt", "vopt", "mspe")
# Variants of ``ours`` (which draws the utility's covariances come from, and the misfit term):
#   model       the extrapolating posterior's own predictions (law + drift beyond the fitted runs)
#   law         the law alone (theta's draws; the drift, which no single run's value conditions, left out)
#   law_misfit  law + a misfit GP over (log10 N, log10 D) fitted to the done runs' residuals (type-II ML)
#   law_kappa   law + the project's fixed misfit prior (tau = median sigma, growth 10^0.5 per decade
#               below the largest done run, length 0.5 decades: bench_design's planner-misfit)
OURS_VARIANTS = {"model": ("model", None), "law": ("law", None), "law_misfit": ("law", "fitted"),
                 "law_kappa": ("law", "kappa"), "model_misfit": ("model", "fitted"), "model_kappa": ("model", "kappa")}
OURS_VARIANTS["shape"] = ("model", None)  # model, scored over the compute-optimal band only (SHAPE_VARIANTS)
# ``shape``: the diagnosis (``--diagnose``, results/bench_design_pool_diagnosis.json) found that on
# Chinchilla and Marin ``ours`` buys runs far from the compute-optimal shape (under-trained on
# Chinchilla, over-trained on Marin), which pin the law's exponents in a way that biases the target,
# while MSPE buys near-optimal shapes. ``shape`` scores only the candidates whose N lies within
# SHAPE_SPAN (3, the default IsoFLOP target region's span: not tuned) of the current posterior's
# median N_opt at the candidate's own compute (``target.compute_optimal_band``); the utility, lambda
# and the cost weighting (cost^0.4, MSPE's exponent, as every selector here) are unchanged.
SHAPE_VARIANTS = {"shape": SHAPE_SPAN, "shape2": 2.0, "shape5": 5.0}
# shape2 / shape5: exploratory sensitivity of the span (after the rule's result; development seeds only,
# ``--develop --variants shape shape2 shape5``), not candidates for adoption.
OURS_VARIANTS.update({v: ("model", None) for v in SHAPE_VARIANTS})
# Adoption rule for ``shape``, written before any of its results: on the benchmark's seeds (Chinchilla,
# Marin and Gadre 0-9; Porian's first 5 settings, seeds 0-2), with ``ours`` (the "model" variant, the
# current default) rerun beside it under the same model version, ``shape`` becomes the default (the
# pool benchmark's ``ours`` and the planner's target strategy) only if (a) its mean, over the four
# sources and the 5% and 10% checkpoints, of the median pooled R^2 exceeds ``ours``' by more than
# DEV_MARGIN, and (b) its 90% coverage at 10% lies in 80-97% on at least as many sources as ``ours``'.
# Otherwise it stays an option (``shape_span``), measured and documented.
# ``shape_region`` (issue 16, after the diagnosis of ours_shape's coverage: ``--coverage-diagnosis``,
# results/bench_design_pool_coverage_diagnosis.json). The benchmark already scores every strategy with the
# extrapolation-aware common fitter, and ours_shape's calibrations always had their 3 folds; what differs:
# on Porian its 90% intervals cover 82% of the target runs inside the span-3 band but 45% of those outside it
# (27% of Porian's target runs lie outside; biased there: with the mean error removed coverage is 98%), and on
# Chinchilla its intervals are the narrowest of the selectors (median width 0.029 in log-loss against 0.060
# for MSPE), the drift learned from folds of near-optimal runs only being small. The target region is the
# runs the team will train; the band is meant to hold runs shaped like them, and the held-out slices reach
# beyond N_opt x/ 3. ``shape_region``: the band widened to the target runs' own shapes (``region=`` of
# ``target.compute_optimal_band``: [min, max] of ln(N_t / N_opt(C_t)) over the target runs where that reaches
# beyond +-ln 3; for the default IsoFLOP region it is the span-3 band itself), so that the runs bought, and the
# folds that calibrate the drift, include the off-optimal shapes the target has. Nothing tuned.
SHAPE_VARIANTS["shape_region"] = SHAPE_SPAN
OURS_VARIANTS["shape_region"] = ("model", None)
REGION_BAND_VARIANTS = ("shape_region",)
# Adoption rule for ``shape_region``, written before any of its results (the same rule as for ``shape``): on
# the benchmark's seeds (Chinchilla, Marin and Gadre 0-9; Porian's first 5 settings, seeds 0-2 and any further
# seeds run for every strategy), with ``ours`` (the "model" variant, the current default) on the same seeds
# under the same model version, ``shape_region`` becomes the default (the pool benchmark's ``ours``, and the
# planner's target strategy: shape_span 3 widened to the user's target runs) only if (a) its mean, over the
# four sources and the 5% and 10% checkpoints, of the median pooled R^2 exceeds ``ours``' by more than
# DEV_MARGIN, and (b) its 90% coverage at 10% lies in 80-97% on at least as many sources as ``ours``'.
# Otherwise it stays an option, measured and documented.
# ``region_law`` (v11, issue 16): ``shape_region`` with the utility's covariances read from the law alone
# (``part="law"``). Why: the drift beyond the fitted runs is calibrated from leave-future-out folds, and a
# refit does not condition it on one more run's value, so the linear-Bayes step c^2 / v_x of the ``model``
# part credits a run near the target's compute with "seeing" a drift that the next posterior will not have
# learnt (docs/design.md, ``part``). v11 shows the symptom on Gadre: ``ours`` buys the pool's largest-compute
# runs at its smallest sizes (79M at 80-160 tokens per parameter, beside the target's 79M at 320-640) where
# D-optimal buys its largest size (412M), and reaches R^2 -1. The ``law`` variant was measured before, under
# the common Laplace picker and scorer (development seeds: worse on Chinchilla and Gadre), not under the
# product's posterior, whose drift differs. Nothing else changes (band, lambda, cost^0.4, start, scorer).
SHAPE_VARIANTS["region_law"] = SHAPE_SPAN
OURS_VARIANTS["region_law"] = ("law", None)
REGION_BAND_VARIANTS = ("shape_region", "region_law")
# Adoption rule for ``region_law``, written before any of its results: on the benchmark's seeds (0-9; every
# group of the four sources, or for Porian the seeds every setting finished), under ``--picker product
# --scorer nuts`` and beside v11's ``ours`` (``shape_region``) under the same settings, ``region_law`` becomes
# the default (the pool benchmark's ``ours``; the planner's target strategy reads ``part="law"``) only if (a) its
# mean, over the four sources and the 5% and 10% checkpoints, of the median pooled R^2 exceeds ``ours``' by
# more than DEV_MARGIN, and (b) its 90% coverage at 10% lies in 80-97% on at least as many sources as
# ``ours``'. Otherwise it stays measured and documented, and nothing in the package changes.
RULE_VARIANTS = ("ours_shape", "ours_shape_region", "ours_region_law")  # the variants the adoption rules apply to
RULE_BASELINE = "model"  # the ``ours`` the rules compare with; with another ``ours`` (v5 on) they are not applied
RULE_BASELINES = {"ours_region_law": ("shape_region", "product")}  # (ours_variant, picker) its rule compares with
DECLARED_VARIANTS = ("model", "law", "law_misfit", "law_kappa")  # the development rule's set; the model_*
# variants (the misfit term on the model's own draws) were added after it had run: exploratory only
# Development (``--develop``), declared before its results were complete: seeds 100-102 (not the
# benchmark's 0-9) on Chinchilla, Marin and Gadre, every variant as ``ours_<variant>``. Rule: the
# variant with the highest mean, over those sources and the 5% and 10% checkpoints, of the median
# over seeds of the pooled target R^2 replaces "model" (the utility as measured last session) only if
# it beats it by more than DEV_MARGIN (R^2 swings by more than that between seeds); else "model" stays.
DEV_SEEDS = (100, 101, 102)
DEV_SOURCES = ("chinchilla", "marin", "gadre")
DEV_MARGIN = 0.05
# Scorer rule (v10), declared in this file before any result scored by NUTS: the fitter check
# (``--fitter-check``, v9 records) found the common fitter's 90% intervals far narrower than the product's
# NUTS fit of the same runs where a checkpoint holds few runs (ours at 5%: Chinchilla 50% against 90%,
# Gadre 39% against 64%), and a development check on other seeds (100-101, random's runs at 5%) the same for
# R^2 (Chinchilla 0.61 / 0.82 Laplace against 0.91 / 0.89 NUTS). The targets are about what the team
# gets, so from v10 the verdict is judged on checkpoints scored by the product's default fit (``nuts``),
# whoever that favours; the Laplace-scored tables (v9) stay as the record of the common fitter. Picks
# unchanged. Where time does not allow every Porian setting at 10 seeds, its table counts the seeds every
# setting finished, and the docs say so.
SCORERS = ("laplace", "nuts")
# Picker rule (v11), declared in this file before any result with it: ``ours`` is meant to be what the product
# does. ``loop --candidates`` (and ``Planner`` with the target strategy) asks under a refit by
# ``refit.MaskedRefitter(model="extrapolating")``: NUTS, 2 chains x (300 + 300), the drift calibrated on
# Laplace folds, not under the benchmark's Laplace common fitter, whose few-run posteriors the fitter check and
# the importance-resampling check (tenth session: Pareto k-hat 0.5-1.3) found far from the product's. From
# v11 ``ours`` designs under that refit (``--picker product``), whoever that favours; the other strategies'
# picks are not the product's and stay as they were (their v10 records are reused where the scorer and the
# model version are unchanged: the merge checks every group's all-pool fit is identical). Nothing else
# changes (utility, band, lambda, cost^0.4, start, scorer). v1-v10 are ``--picker common``.
# Picker reading (v15; seventeenth session, declared here before any result with it): ``product-psis`` is the
# product planner's refit with its calibration on PSIS refits (``MaskedRefitter(model="extrapolating",
# refits="psis")``, ``fit_nuts(refits="psis")``: importance-sampled refits, drift priors x2). Under the default's
# jittered Gaussian refits the learned drift moves with the seed (docs/extrapolation.md, twenty-fourth run), and
# the planner refits after every pick, so its target variances, and with them its picks, carry that noise.
# Run: ``ours`` only, Chinchilla and Gadre, seeds 0-9, ``--scorer nuts``, from an archive, against v13's
# ``ours`` (results/bench_design_pool_v13.json). THE READING: product-psis goes on to the Marin and Porian runs
# (and, if it holds there, becomes the planner's refit) if on both sources at both 5% and 10% of the pool's
# cost its median R^2 is at least v13's minus 0.02, on at least one of those four pairs it is above v13's by
# more than 0.02, and Chinchilla's 90% coverage at 10% stays in 80-97%; otherwise it is not kept. Scoring,
# utility, band, start and the other strategies are unchanged.
# Outcome (from an archive of 4c52604; results/bench_design_pool_v15_psis.json, 630 s): NOT KEPT. Median R^2 against
# v13's: Chinchilla 5% 0.722 (0.650), 10% 0.904 (0.887), coverage at 10% 89.2%; Gadre 5% 0.449 (0.110), 10%
# 0.837 (0.878): Gadre at 10% falls by 0.041. The same run under ``--picker product`` at the current code
# (results/bench_design_pool_v15_product.json, run beside it) gave Chinchilla 0.852 and 0.896, Gadre 0.365 and
# 0.876: v13's numbers are not what the current code gives (the extrapolating model changed after v13), and
# side by side PSIS refits are worse at 5% on Chinchilla and at 10% on Gadre, better at 5% on Gadre.
# v17 (eighteenth session; a re-measurement with no choice in it, so no rule): the library's default became PSIS
# refits with the drift priors x2 (``nuts.DEFAULT_REFITS``; bench_extrapolation.py's twenty-fifth run), so both
# ``--picker product`` (the planner's refit) and ``--scorer nuts`` (the fit that scores every strategy and the
# all-pool fit) now run under it: every strategy is re-run with v16's settings, Chinchilla, Gadre and Marin at
# seeds 0-9 first, Porian as time allows; v16 stays the record of the default before.
PICKERS = ("common", "product", "product-psis")
LEVEL = 0.9
MIN_START = 6  # the law's 5 parameters + 1: fewer cannot be fitted


@dataclass(frozen=True)
class PoolSettings:
    fractions: tuple = (0.01, 0.05, 0.1)
    n_init: int = 12  # at most 2.5 x the law's 5 parameters, rounded up (Li et al.'s start size)
    init_fraction: float = 0.02  # ... of the cheapest runs that fit in 2% of the pool's cost (theirs)
    q: int = 1
    chains: int = 2
    draws: int = 200
    cost_exponent: float = 0.4
    strategies: tuple = STRATEGIES
    ours_variant: str = "shape_region"  # OURS_VARIANTS: "model" until the shape_region rule adopted this (v4 results)
    scorer: str = "laplace"  # SCORERS: what fits each checkpoint's runs to score them (v10 on: "nuts")
    picker: str = "common"  # PICKERS: the posterior ``ours`` designs under (v11 on: "product", the planner's refit)
    pace: bool = False  # every strategy buys only runs that fit before the next checkpoint (v14: ``trajectory``)


def common_fit(runs: Runs, seed: int, settings: PoolSettings):
    """The plain law's Laplace posterior, made extrapolation-aware (calibrated on Laplace refits)."""
    def laplace(train):
        return fit_laplace(train, num_chains=settings.chains, num_draws=settings.draws, seed=seed)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = laplace(runs)
        return extrapolation.attach_drift(post, extrapolation.calibrate(runs, laplace), seed=seed)


def scoring_fit(runs: Runs, seed: int, settings: PoolSettings) -> tuple:
    """The fit a checkpoint is scored with (``settings.scorer``) and whether its verdict warned:
    the common fitter, or the product's default ``fit_nuts`` (its warnings recorded, not shown)."""
    if settings.scorer == "laplace":
        return common_fit(runs, seed, settings), False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = fit_nuts(runs, seed=seed)
    return post, any(issubclass(w.category, SamplerWarning) for w in caught)


_PRODUCT_REFITTER = None


def product_refit(runs: Runs, seed: int, refits: str | None = None):
    """The posterior the product's pool planner asks under (``loop --candidates``): the extrapolating
    model refitted by ``refit.MaskedRefitter`` at its defaults (its sampler verdict kept, not shown);
    ``refits``: its calibration's refits (``fit_nuts(refits=...)``; the v15 picker "product-psis")."""
    global _PRODUCT_REFITTER
    if _PRODUCT_REFITTER is None or _PRODUCT_REFITTER.refits != refits:
        from bayes_scaling.design.refit import MaskedRefitter

        _PRODUCT_REFITTER = MaskedRefitter(model="extrapolating", refits=refits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _PRODUCT_REFITTER.posterior(runs, seed=seed)


def plain_fit(runs: Runs, seed: int, settings: PoolSettings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_laplace(runs, num_chains=settings.chains, num_draws=settings.draws, seed=seed)


def target_budget(target: Runs) -> float:
    """C*: the top held-out IsoFLOP budget, else the largest held-out compute."""
    column = budget_column_of(target)
    return float(target.frame[column].max()) if column else float(target.C.max())


def pick(strategy, pool: Runs, chosen, avail, target: Runs, rng, seed, settings) -> list[int]:
    """The next ``q`` pool rows (indices into ``pool``) among ``avail``."""
    cost = pool.C[avail]
    q = min(settings.q, len(avail))
    if strategy == "random":
        return list(rng.choice(avail, size=q, replace=False))
    if strategy == "invcost":
        return list(rng.choice(avail, size=q, replace=False, p=(1 / cost) / np.sum(1 / cost)))
    if strategy == "cheapest":
        return list(avail[np.argsort(cost)[:q]])
    sel = Runs(pool.frame.iloc[chosen].reset_index(drop=True))
    if strategy == "mspe":
        out, left = [], list(avail)
        modes = mspe.fit_modes(sel.N, sel.D, sel.loss, target.N, target.D, seed=seed)
        for _ in range(q):
            j = mspe.choose(modes, pool.N[left], pool.D[left], pool.C[left], float(pool.C.sum()), target.N, target.D)
            out.append(left.pop(j))
        return out
    scale = cost / cost.max()
    if strategy == "ours" or strategy.startswith("ours_"):
        return list(avail[pick_ours(strategy[5:] or settings.ours_variant, pool, sel, avail, target, scale, q, seed,
                                    settings)])
    post = plain_fit(sel, seed, settings)
    mu = posterior_columns(post, pool.N[avail], pool.D[avail])
    if strategy == "vopt":
        Z, _ = target_matrix(post, TargetRegion.from_runs(target), target_budget(target))
        idx, _ = choose(Z, mu, post.draws("sigma"), scale, q,
                        settings=UtilitySettings(cost_exponent=settings.cost_exponent, n_opt_weight=0.0))
        return list(avail[idx])
    if strategy == "dopt":
        th = post.theta()
        T = np.column_stack([np.log(th["E"]), np.log(th["A"]), np.log(th["B"]), th["alpha"], th["beta"]])
        T, mu, sigma = finite_draws(T, _as_2d(mu), post.draws("sigma"))
        idx, _ = greedy_batch(T, mu, sigma, scale, q, cost_exponent=settings.cost_exponent)
        return list(avail[idx])
    raise InputError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")


def pick_ours(variant, pool: Runs, sel: Runs, avail, target: Runs, scale, q, seed, settings) -> list[int]:
    """``design.target``'s utility under the common fitter's posterior, region = the target runs and
    log N_opt at the top target budget (lambda 0.5, variance kind, cost^0.4), in one of
    ``OURS_VARIANTS``; indices into ``avail``."""
    if variant not in OURS_VARIANTS:
        raise InputError(f"ours variant must be one of {tuple(OURS_VARIANTS)}, got {variant!r}")
    part, term = OURS_VARIANTS[variant]
    post = (common_fit(sel, seed, settings) if settings.picker == "common" else
            product_refit(sel, seed, refits="psis" if settings.picker == "product-psis" else None))
    band = in_band(post, pool.N[avail], pool.D[avail], SHAPE_VARIANTS.get(variant),
                   TargetRegion.from_runs(target) if variant in REGION_BAND_VARIANTS else None)
    avail, scale = avail[band], scale[band]
    likelihood = post.meta.get("likelihood", "student_t")
    Z, _ = target_matrix(post, TargetRegion.from_runs(target), target_budget(target), part=part)
    mu = posterior_columns(post, pool.N[avail], pool.D[avail], part=part)
    misfit = None
    if term is not None:
        where_done = coordinates(sel.N, sel.D, sel.C)
        residuals = np.log(sel.loss) - np.median(posterior_columns(post, sel.N, sel.D, part="law"), axis=0)
        discrepancy = (fit_misfit(residuals, where_done) if term == "fitted" else
                       Discrepancy(float(np.median(post.draws("sigma"))), 0.5, 0.5, float(where_done[:, 2].max())))
        misfit = misfit_covariance(discrepancy, coordinates(target.N, target.D, target.C),
                                   coordinates(pool.N[avail], pool.D[avail], pool.C[avail]), where_done,
                                   noise_variance(post.draws("sigma"), likelihood))
    idx, _ = choose(Z, mu, post.draws("sigma"), scale, q, likelihood=likelihood, misfit=misfit,
                    settings=UtilitySettings(cost_exponent=settings.cost_exponent))
    return [int(band[i]) for i in idx]


def trajectory(strategy, pool: Runs, target: Runs, seed: int, settings: PoolSettings) -> list[int]:
    """Pool rows in the order bought, up to max(fractions) of the pool's cost. ``settings.pace``: a
    run is bought only if it fits before the next checkpoint (fraction x the pool's cost) not yet
    reached; when none does, the next checkpoint after it (a team that may stop at any checkpoint
    spends each one's budget before the next; unpaced, an expensive run bought early can leave a
    checkpoint's prefix far under its budget)."""
    budget = max(settings.fractions) * float(pool.C.sum())
    limits = sorted(f * float(pool.C.sum()) for f in settings.fractions) if settings.pace else [budget]
    chosen = start_runs(pool, settings)
    spent = float(pool.C[chosen].sum())
    rng = np.random.default_rng([seed, STRATEGIES.index(strategy) if strategy in STRATEGIES else len(STRATEGIES)])
    while True:
        taken = np.zeros(len(pool), bool)
        taken[chosen] = True
        for limit in (m for m in limits if m > spent):
            avail = np.flatnonzero(~taken & (pool.C <= limit - spent))
            if len(avail):
                break
        else:
            return chosen
        new = pick(strategy, pool, chosen, avail, target, rng, seed, settings)
        chosen += [int(i) for i in new]
        spent += float(pool.C[new].sum())


def start_runs(pool: Runs, settings: PoolSettings) -> list[int]:
    """The common start: the cheapest pool runs, at most ``n_init``, while their cost stays within
    ``init_fraction`` of the pool's, and at least the 6 a fit of the law needs."""
    order = np.argsort(pool.C, kind="stable")[:settings.n_init]
    within = np.cumsum(pool.C[order]) <= settings.init_fraction * float(pool.C.sum())
    return [int(i) for i in order[:max(MIN_START, int(within.sum()))]]


def prefix(chosen, cost, limit, n_start) -> list[int]:
    """The runs bought while the cumulative cost stayed within ``limit`` (the start always)."""
    total = np.cumsum(cost[chosen])
    return chosen[:max(n_start, int(np.searchsorted(total, limit, side="right")))]


def scores(post, target: Runs, seed: int) -> dict:
    """Predictions at the target runs (for R^2 over pooled groups) and the interval metrics."""
    median = np.median(post.predict(target.N, target.D, noise=False), axis=0)
    draws = post.predict(target.N, target.D, seed=seed)
    lo, hi = scoring.central_interval(draws, LEVEL)
    out = {"pred": median.tolist(), "loss": target.loss.tolist(),
           "interval_score": float(np.mean(scoring.interval_score(target.loss, lo, hi, LEVEL))),
           "covered": int(np.sum(scoring.covered(target.loss, lo, hi))), "n": len(target)}
    column = budget_column_of(target)
    if column:
        b = target.frame[column].to_numpy(np.float64)
        top = b == b.max()
        try:
            emp = slice_optimum(target.N[top], target.loss[top], level=LEVEL, seed=seed)
        except InputError:
            emp = None
        if emp is not None and not emp.opens_downward:
            C = float(np.exp(np.mean(np.log(target.C[top]))))
            row = post.frontier([C], LEVEL).iloc[0]
            out["n_opt"] = {"empirical": emp.n_opt, "median": float(row["N_opt_median"]),
                            "inside": bool(row["N_opt_lo"] <= emp.n_opt <= row["N_opt_hi"]),
                            "log_error": float(np.log(row["N_opt_median"] / emp.n_opt))}
    return out


def r_squared(y, pred) -> float:
    """Li et al.'s R^2: 1 - SS_res / SS_tot on the loss, clipped to [-1, 1]."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    ss_tot = np.sum((y - y.mean()) ** 2)
    if not ss_tot > 1e-30:
        return 1.0 if np.sum((y - pred) ** 2) < 1e-30 else -1.0
    return float(np.clip(1 - np.sum((y - pred) ** 2) / ss_tot, -1.0, 1.0))


def run_group(name: str, runs: Runs, seeds, settings: PoolSettings, log=print) -> dict:
    split = split_by_compute(runs)
    pool, target = split.train, split.test
    total = float(pool.C.sum())
    fitted = {}  # (rows, seed) -> the checkpoint's scores: identical checkpoints are fitted once

    def scored(rows, seed) -> dict:
        key = (tuple(int(i) for i in rows), seed)
        if key not in fitted:
            post, warned = scoring_fit(Runs(pool.frame.iloc[list(rows)].reset_index(drop=True)), seed, settings)
            fitted[key] = {**scores(post, target, seed), **({"warned": warned} if settings.scorer != "laplace" else {})}
        return dict(fitted[key])

    out = {"group": name, "pool": len(pool), "target": len(target), "split": split.by, "C_star": target_budget(target),
           "all": scored(range(len(pool)), 0), "seeds": {}}
    for seed in seeds:
        per = {}
        for strategy in settings.strategies:
            start = time.perf_counter()
            chosen = trajectory(strategy, pool, target, seed, settings)
            n_start = len(start_runs(pool, settings))
            per[strategy] = {"seconds": time.perf_counter() - start}
            for f in settings.fractions:
                rows = prefix(chosen, pool.C, f * total, n_start)
                per[strategy][str(f)] = {**scored(rows, seed), "runs": len(rows),
                                         "cost_fraction": float(pool.C[rows].sum() / total),
                                         "rows": [int(i) for i in rows]}
            log(f"  {name} seed {seed} {strategy}: {len(chosen)} runs, "
                + ", ".join(f"{f:.0%} R2 {r_squared(per[strategy][str(f)]['loss'], per[strategy][str(f)]['pred']):.3f}"
                            for f in settings.fractions) + f" ({per[strategy]['seconds']:.1f} s)")
        out["seeds"][str(seed)] = per
    return out


def groups_of(source: str, limit: int | None = None, skip: int = 0, only=None):
    """``source``'s groups sorted by name, as ("source/group", runs): the ``limit`` groups after the
    first ``skip`` (all when ``limit`` is None), and of those only the names in ``only`` (group names
    with or without the "source/" prefix; None: every one)."""
    runs = SOURCES[source]()
    frame = runs.frame
    names = select_groups(sorted(frame["group"].unique()), limit, skip)
    if only is not None:
        wanted = {w.split("/", 1)[1] if w.startswith(f"{source}/") else w for w in only}
        names = [g for g in names if g in wanted]
    for g in names:
        yield f"{source}/{g}", Runs(frame[frame["group"] == g].reset_index(drop=True))


def select_groups(names: list, limit: int | None = None, skip: int = 0) -> list:
    """names[skip : skip + limit] (to the end when ``limit`` is None)."""
    if skip < 0 or (limit is not None and limit < 1):
        raise InputError(f"--skip-groups must be >= 0 and --groups-per-source >= 1, got {skip} and {limit}")
    return list(names[skip:skip + limit] if limit else names[skip:])


def check_group_names(sources, only) -> None:
    """A clear error where a name in ``only`` is no group of ``sources``."""
    known = {name for source in sources for name, _ in groups_of(source)}
    short = {name.split("/", 1)[1] for name in known}
    unknown = [w for w in only if w not in known and w not in short]
    if unknown:
        raise InputError(f"--groups: no group {unknown} in {list(sources)}; one of {sorted(known)}")


def summarise(groups: list[dict], settings: PoolSettings) -> dict:
    """Per source, strategy and fraction: median over seeds of the pooled R^2, interval score,
    coverage, N_opt log error and how often the empirical N_opt is inside the 90% interval."""
    by_source: dict[str, list[dict]] = {}
    for g in groups:
        by_source.setdefault(g["group"].split("/")[0], []).append(g)
    out = {}
    for source, gs in by_source.items():
        seeds = sorted((s for s in set.intersection(*[set(g["seeds"]) for g in gs])
                        if all(k in g["seeds"][s] for g in gs for k in settings.strategies)), key=int)  # every strategy ran
        if not seeds:  # no seed has every strategy in every group yet (a run in progress)
            continue
        table = {}
        for strategy in (*settings.strategies, "all"):
            for f in ([None] if strategy == "all" else settings.fractions):
                per_seed = []
                for seed in seeds:
                    parts = [g["all"] if strategy == "all" else g["seeds"][seed][strategy][str(f)] for g in gs]
                    y = np.concatenate([p["loss"] for p in parts])
                    pred = np.concatenate([p["pred"] for p in parts])
                    nopt = [p["n_opt"] for p in parts if "n_opt" in p]
                    per_seed.append({"r2": r_squared(y, pred),
                                     "interval_score": float(np.average([p["interval_score"] for p in parts],
                                                                        weights=[p["n"] for p in parts])),
                                     "coverage": sum(p["covered"] for p in parts) / sum(p["n"] for p in parts),
                                     "n_opt_abs_log_error": float(np.median([abs(n["log_error"]) for n in nopt])) if nopt else None,
                                     "n_opt_inside": float(np.mean([n["inside"] for n in nopt])) if nopt else None})
                key = strategy if f is None else f"{strategy}@{f}"
                # nanmedian: a seed whose fit put a draw's prediction at inf - inf has no interval score
                table[key] = {m: (float(np.nanmedian([p[m] for p in per_seed])) if per_seed[0][m] is not None else None)
                              for m in per_seed[0]}
                table[key]["seeds_without_interval_score"] = int(np.sum(~np.isfinite([p["interval_score"]
                                                                                     for p in per_seed])))
                table[key]["r2_seeds"] = [p["r2"] for p in per_seed]
        out[source] = {"groups": len(gs), "seeds": len(seeds), "table": table}
    return out


def conclude(results: dict, settings: PoolSettings) -> None:
    """Summary, the issue's verdict and, with ``ours_shape`` run, its verdict and adoption rule (the
    rule only where ``ours`` is the ``model`` variant, the baseline the rules were declared against)."""
    results["summary"] = summarise(results["groups"], settings)
    results["verdict"] = verdict(results["summary"], settings)
    variants = [k for k in RULE_VARIANTS if k in settings.strategies]
    if variants and "ours" in settings.strategies:
        for k in variants:
            suffix = k[len("ours"):]
            results[f"verdict{suffix}"] = verdict(results["summary"], settings, ours=k,
                                                  exclude=("ours", *(v for v in variants if v != k)))
            if (settings.ours_variant, settings.picker) == RULE_BASELINES.get(k, (RULE_BASELINE, "common")):
                results[f"{suffix[1:]}_rule"] = shape_rule(results["summary"], k)


def shape_rule(summary: dict, variant: str = "ours_shape") -> dict:
    """The adoption rule for ``variant`` (``ours_shape`` or ``ours_shape_region``: see SHAPE_VARIANTS and
    REGION_BAND_VARIANTS) against ``ours``, from a summary with both."""
    def mean_r2(k):
        return float(np.mean([summary[src]["table"][f"{k}@{f}"]["r2"] for src in summary for f in (0.05, 0.1)]))

    def in_band_count(k):
        return int(sum(0.8 <= summary[src]["table"][f"{k}@0.1"]["coverage"] <= 0.97 for src in summary))

    r2 = {k: mean_r2(k) for k in ("ours", variant)}
    cover = {k: in_band_count(k) for k in ("ours", variant)}
    a = r2[variant] > r2["ours"] + DEV_MARGIN
    b = cover[variant] >= cover["ours"]
    return {"variant": variant, "mean_median_r2": r2, "coverage_80_97_sources": cover, "margin": DEV_MARGIN,
            "sources": list(summary),
            "a_r2": bool(a), "b_coverage": bool(b), "adopt": bool(a and b)}


def verdict(summary: dict, settings: PoolSettings, ours: str = "ours", exclude: tuple = ()) -> dict:
    """The issue's targets: at 5% and 10%, ``ours`` has the best median R^2 on >= 3 sources and at
    least the all-pool fit's on >= 2; its 90% coverage lies in 80-97% (``exclude``: strategies not
    counted among the others, e.g. another variant of ours)."""
    out = {}
    others = [k for k in settings.strategies
              if k != ours and k not in exclude and not (ours == "ours" and k.startswith("ours_"))]
    if ours not in settings.strategies or not others:  # a run split by strategy: at --merge
        return out
    for f in (0.05, 0.1):
        if f not in settings.fractions:
            continue
        best, beats_all, cover = [], [], {}
        for source, s in summary.items():
            t = s["table"]
            best.append(source) if t[f"{ours}@{f}"]["r2"] > max(t[f"{k}@{f}"]["r2"] for k in others) else None  # strictly: a tie is no win
            beats_all.append(source) if t[f"{ours}@{f}"]["r2"] >= t["all"]["r2"] else None
            cover[source] = t[f"{ours}@{f}"]["coverage"]
        out[str(f)] = {"ours_best_on": best, "ours_at_least_all_pool_on": beats_all, "ours_coverage": cover,
                       "met": len(best) >= 3 and len(beats_all) >= 2 and all(0.8 <= c <= 0.97 for c in cover.values())}
    return out


def settings_dict(settings: PoolSettings) -> dict:
    return asdict(settings)


def timing(repeats: int = 3) -> dict:
    """One ask (1,000 candidates, q = 1 and q = 4: target matrix, candidate draws, greedy batch)
    against one refit, on all Chinchilla runs, interleaved, median of ``repeats`` (warm)."""
    from bayes_scaling.design.candidates import grid
    from bayes_scaling.design.refit import MaskedRefitter

    runs = load_chinchilla()
    cands = grid(n_range=(1e7, 1e10), d_range=(1e8, 1e12), n_points=40, d_points=25).take(np.arange(1000))
    refitter = MaskedRefitter(num_chains=2, num_warmup=300, num_draws=300)
    times = {"refit_plain": [], "refit_default": [], "ask_q1": [], "ask_q4": [], "ask_q1_shape": []}

    def timed(key, fn):
        t = time.perf_counter()
        value = fn()
        times[key].append(time.perf_counter() - t)
        return value

    def ask(post, q, span=None):
        Z, _ = target_matrix(post, None, 5.76e23)
        keep = in_band(post, cands.N, cands.D, span)
        mu = posterior_columns(post, cands.N[keep], cands.D[keep])
        return choose(Z, mu, post.draws("sigma"), cands.cost[keep], q)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(repeats + 1):  # the first round compiles
            timed("refit_plain", lambda: refitter.posterior(runs, seed=i))
            post = timed("refit_default", lambda: fit_nuts(runs, num_chains=2, num_warmup=300, num_draws=300, seed=i))
            timed("ask_q1", lambda: ask(post, 1))
            timed("ask_q4", lambda: ask(post, 4))
            timed("ask_q1_shape", lambda: ask(post, 1, SHAPE_SPAN))
    med = {k: float(np.median(v[1:])) for k, v in times.items()}
    import os

    return {"candidates": len(cands), "draws": int(post.num_draws), "runs": len(runs), "repeats": repeats,
            "load_average": os.getloadavg(),
            "ask_q1_over_default_refit_per_round": float(np.median(np.array(times["ask_q1"][1:]) /
                                                                   np.array(times["refit_default"][1:]))),
            "median_seconds": med, "ask_q1_over_default_refit": med["ask_q1"] / med["refit_default"],
            "ask_q1_over_plain_refit": med["ask_q1"] / med["refit_plain"], "all_seconds": times}


def main(argv=None) -> None:
    import argparse
    import json
    import os
    import platform
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--sources", nargs="+", default=None, choices=list(SOURCES),
                        help="bundled sources (default: all four; not with --table)")
    parser.add_argument("--table", nargs="+", default=None, metavar="RUNS",
                        help="your own run tables instead of the bundled sources (CSV, Parquet or run store, read as "
                             "`fit` reads them: N, D or C, loss, optional group): each file is a source named by its "
                             "stem and its groups are its `group` column; the target region is the backtest split "
                             "(the top 3 IsoFLOP budgets where a budget column exists, else the top 30%% of compute), "
                             "the rest the pool, each run costing C (6ND unless the table gives C); --scorer and "
                             "--picker then default to the current protocol (nuts, product) and --out to "
                             "bench_design_pool_<stems>.json in the working folder; the tables are printed at the end")
    parser.add_argument("--groups-per-source", type=int, default=None, help="the first G groups of each source "
                        "(after --skip-groups)")
    parser.add_argument("--skip-groups", type=int, default=0, metavar="K",
                        help="leave out the first K groups of each source (sorted by name)")
    parser.add_argument("--groups", nargs="+", default=None, metavar="NAME",
                        help="only these groups (names as in the results, with or without 'source/')")
    parser.add_argument("--q", type=int, default=1, help="runs bought per refit")
    parser.add_argument("--scorer", default=None, choices=list(SCORERS),
                        help="what fits each checkpoint to score it: the common fitter (laplace, v1-v9; the default "
                             "without --table) or the product's default fit_nuts (nuts, v10 on; the scorer rule in this file)")
    parser.add_argument("--picker", default=None, choices=list(PICKERS),
                        help="the posterior ours designs under: the common Laplace fitter (common, v1-v10) or the "
                             "product planner's NUTS refit (product, v11 on; the picker rule in this file), or that refit "
                             "calibrated on PSIS refits (product-psis, v15's reading in this file); default common "
                             "without --table")
    parser.add_argument("--timing", action="store_true", help="only measure one ask against one refit")
    parser.add_argument("--ours-variant", default=PoolSettings.ours_variant, choices=list(OURS_VARIANTS),
                        help="which variant of the target utility 'ours' is (default shape_region, adopted by its rule; "
                             "the results up to v4 ran 'model')")
    parser.add_argument("--pace", action="store_true",
                        help="every strategy buys only runs that fit before the next checkpoint (v14)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=[*STRATEGIES, *(f"ours_{v}" for v in OURS_VARIANTS)])
    parser.add_argument("--merge", nargs="+", default=None,
                        help="results files of runs split by source, group, seed or strategy (same settings; an entry "
                             "in several files must be identical in each): into --out")
    parser.add_argument("--merge-replace", action="store_true",
                        help="with --merge: a later file's entries replace an earlier's (a strategy rerun), unchecked")
    parser.add_argument("--develop", action="store_true",
                        help="every variant of ours on the development seeds and sources; writes --dev-out")
    parser.add_argument("--profile", default=None, metavar="OUT.json",
                        help="diagnosis on Chinchilla seed 0 (picks of ours' variants and MSPE, the variance split)")
    parser.add_argument("--diagnose", default=None, metavar="OUT.json",
                        help="which runs ours and MSPE buy at 10%% (Chinchilla, Marin; seeds 0-2) and the laws fitted to them")
    parser.add_argument("--diagnose-seeds", nargs="+", type=int, default=[0, 1, 2], help="with --diagnose: the seeds")
    parser.add_argument("--coverage-diagnosis", default=None, metavar="OUT.json",
                        help="the anatomy of the 90%% intervals on the target runs (width, its parts, signed error, "
                             "folds, compute span) for --strategies (default ours_shape mspe random) on --sources, "
                             "--seeds from --first-seed")
    parser.add_argument("--band-coverage", nargs=2, default=None, metavar=("DIAG.json", "OUT.json"),
                        help="a --coverage-diagnosis file with the coverage inside / outside the span-3 band of the "
                             "all-pool fit added (refits of its stored rows)")
    parser.add_argument("--variants", nargs="+", default=list(DECLARED_VARIANTS), choices=list(OURS_VARIANTS),
                        help="with --develop: the variants to compare with model")
    parser.add_argument("--dev-out", default=str(Path(__file__).parent / "results" / "bench_design_pool_dev.json"))
    parser.add_argument("--timing-repeats", type=int, default=3, help="with --timing: warm rounds (median)")
    parser.add_argument("--timing-from", default=None, metavar="FILE.json", help="copy FILE's timing into --out")
    parser.add_argument("--docs-only", action="store_true", help="rewrite docs/design.md's section from --out")
    parser.add_argument("--continuations", default=None, metavar="OUT.json",
                        help="the all-pool fits of --sources under each extrapolation.MEAN_BEYOND (what a change of "
                             "the default continuation does to the benchmark's reference row)")
    parser.add_argument("--compare", nargs=2, default=None, metavar=("OLD.json", "OUT.json"),
                        help="--out's results against an older version's (the same benchmark under other code): "
                             "the summary's metrics side by side and which records are unchanged, into OUT.json")
    parser.add_argument("--fitter-check", default=None, metavar="OUT.json",
                        help="ours' bought runs scored by the benchmark's Laplace fitter and by the product's NUTS "
                             "default fit, per --sources (default chinchilla marin gadre) and --seeds, into OUT.json")
    parser.add_argument("--per-group", default=None, metavar="SOURCE",
                        help="print a markdown table of --out's groups of SOURCE (median R^2 per group; nothing written)")
    parser.add_argument("--out", default=None,
                        help="results file (default experiments/results/bench_design_pool.json; with --table "
                             "bench_design_pool_<stems>.json in the working folder)")
    args = parser.parse_args(argv)
    resolve_table_arguments(args, parser)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    if args.table:
        check_same_tables(results, args.table, out)
    if args.per_group:
        print(per_group_table(results, args.per_group))
        return
    if args.fitter_check:
        sources = tuple(args.sources) if args.sources != list(SOURCES) else ("chinchilla", "marin", "gadre")
        check = fitter_check(sources, range(args.first_seed, args.first_seed + args.seeds))
        check["load_avg_1min_at_end"] = os.getloadavg()[0]
        Path(args.fitter_check).write_text(json.dumps(check, indent=1, default=float))
        print(json.dumps({s: {f: {k: {m: v[m] for m in ("coverage", "median_r2", "mean_interval_score", "median_runs")}
                                  for k, v in by.items()} for f, by in d.items()} for s, d in check["sources"].items()},
                         indent=1))
        return
    results["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared, loaded)"

    def write():
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=float))
        os.replace(tmp, out)

    docs = Path(__file__).resolve().parent.parent / "docs" / "design.md"
    if args.docs_only:  # the summary and verdict recomputed from the per-group records
        saved = results.get("settings", {})
        settings = PoolSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k != "seeds"})
        conclude(results, settings)
        write()
        write_docs(results, docs, out.name)
        return
    if args.compare:
        diff = compare_versions(results, json.loads(Path(args.compare[0]).read_text()))
        Path(args.compare[1]).write_text(json.dumps(diff, indent=1, default=float))
        print(json.dumps(diff["records"], indent=1))
        return
    if args.continuations:
        check = all_pool_by_continuation(tuple(args.sources), groups=args.groups_per_source)
        Path(args.continuations).write_text(json.dumps(check, indent=1))
        print(json.dumps(check["all_pool"], indent=1))
        return
    if args.timing_from:  # a timing measured into another results file (--timing --out OTHER.json)
        results["timing"] = {**json.loads(Path(args.timing_from).read_text())["timing"], "from": args.timing_from}
        write()
        return
    if args.timing:
        results["timing"] = timing(args.timing_repeats)
        write()
        print(json.dumps(results["timing"]["median_seconds"]), results["timing"]["ask_q1_over_default_refit"])
        return
    if args.develop:
        develop(Path(args.dev_out), args.q, variants=tuple(args.variants))
        return
    if args.diagnose:
        diag = diagnose(sources=tuple(args.sources) if args.sources != list(SOURCES) else ("chinchilla", "marin"),
                        strategies=tuple(args.strategies) if args.strategies != list(STRATEGIES) else ("ours", "mspe"),
                        seeds=tuple(args.diagnose_seeds))
        Path(args.diagnose).write_text(json.dumps(diag, indent=1))
        return
    if args.band_coverage:
        diag = band_coverage(json.loads(Path(args.band_coverage[0]).read_text()))
        Path(args.band_coverage[1]).write_text(json.dumps(diag, indent=1))
        print(json.dumps(diag["band_coverage"], indent=1))
        return
    if args.coverage_diagnosis:
        diag = coverage_diagnosis(sources=tuple(args.sources), seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
                                  strategies=tuple(args.strategies) if args.strategies != list(STRATEGIES)
                                  else ("ours_shape", "mspe", "random"),
                                  groups_per_source={s: args.groups_per_source for s in args.sources} if args.groups_per_source else None)
        Path(args.coverage_diagnosis).write_text(json.dumps(diag, indent=1))
        return
    if args.profile:
        prof = profile()
        Path(args.profile).write_text(json.dumps(prof, indent=1))
        print(json.dumps({k: prof[k] for k in ("target_variance", "first_pick")}, indent=1))
        for k, picks in prof["picks"].items():
            print(k, [f"{p['N']:.2g}/{p['tokens_per_param']:.2g}" for p in picks])
        return
    if args.merge:  # runs split by source into parallel processes: one results file again
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        versions = sorted({r.get("extrapolation_sha256") for r in parts})
        if args.merge_replace and not same_all_pool_fits(parts):
            raise InputError("--merge-replace: the files' all-pool fits differ (another scorer or model version?)")
        if len(versions) > 1 and not same_all_pool_fits(parts):
            raise InputError("the files to merge were run under different versions of the model (extrapolation.py) "
                             "whose all-pool fits differ")
        saved = merge_settings(parts, args.merge_replace)
        strategies = tuple(dict.fromkeys(k for r in parts for k in r["settings"]["strategies"]))
        strategies = tuple(k for k in STRATEGIES if k in strategies) + tuple(k for k in strategies if k not in STRATEGIES)
        settings = PoolSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()},
                                strategies=strategies)
        results.update(settings={**saved, "strategies": list(settings.strategies),
                                 "seeds": sorted({s for r in parts for s in r["settings"]["seeds"]})},
                       groups=merge_groups(parts, args.merge_replace), seconds=sum(r["seconds"] for r in parts),
                       extrapolation_sha256=versions[0] if len(versions) == 1 else versions,
                       merged_from=list(args.merge))
        if len(versions) > 1:
            results["versions_note"] = ("parts run under different versions of extrapolation.py whose all-pool fits "
                                        "(the common fitter on each group's whole pool, seed 0) are identical in "
                                        "every group: the default model's numerics did not change")
        conclude(results, settings)
        for key in ("shape_rule", "shape_region_rule", "region_law_rule"):
            if key in results:
                print(json.dumps(results[key], indent=1))
        write()
        print(json.dumps(results["verdict"], indent=1))
        return
    settings = PoolSettings(q=args.q, ours_variant=args.ours_variant, strategies=tuple(args.strategies),
                            scorer=args.scorer, picker=args.picker, pace=args.pace)
    if results.get("settings") and results["settings"].get("pace", False) != args.pace:
        raise InputError(f"{out} was run with pace {results['settings'].get('pace', False)}, not --pace {args.pace}: "
                         "use another --out")
    if results.get("settings") and results["settings"].get("scorer", "laplace") != args.scorer:
        raise InputError(f"{out} was scored by {results['settings'].get('scorer', 'laplace')}, not --scorer {args.scorer}: "
                         "use another --out")
    if results.get("settings") and results["settings"].get("picker", "common") != args.picker:
        raise InputError(f"{out}'s ours was picked under --picker {results['settings'].get('picker', 'common')}, not "
                         f"{args.picker}: use another --out")
    results["extrapolation_sha256"] = model_version()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    before = results.get("settings", {}).get("seeds", [])
    results["settings"] = {**settings_dict(settings), "seeds": sorted(set(before) | set(seeds))}
    groups = {g["group"]: g for g in results.get("groups", [])}
    if args.groups:
        check_group_names(args.sources, args.groups)
    start = time.perf_counter()
    for source in args.sources:
        for name, runs in groups_of(source, args.groups_per_source, args.skip_groups, args.groups):
            old = groups.get(name)
            todo = [s for s in seeds if old is None or str(s) not in old["seeds"]]
            if not todo:
                continue
            new = run_group(name, runs, todo, settings)
            if old is not None:
                new["seeds"] = {**old["seeds"], **new["seeds"]}
            groups[name] = new
            results["groups"] = list(groups.values())
            conclude(results, settings)
            results["seconds"] = results.get("seconds", 0.0) + time.perf_counter() - start
            start = time.perf_counter()
            write()
    if args.table:
        print(docs_section(results, out.name, location=str(out), targets=False))
    else:
        print(json.dumps(results.get("verdict"), indent=1))


def register_table(path: str) -> str:
    """Make a user's run table a source of this benchmark (``SOURCES``), named by its file's stem."""
    from functools import partial
    from pathlib import Path

    from bayes_scaling.runs.table import load_runs

    name = Path(path).stem
    if name in SOURCES:
        raise InputError(f"--table {path}: its name {name!r} is already a source ({list(SOURCES)}); rename the file")
    load_runs(path)  # a bad table stops here, naming its row and field
    SOURCES[name] = partial(load_runs, path)
    return name


def check_same_tables(results: dict, paths: list, out) -> None:
    """A results file resumed with --table holds records of the tables as they were: the same names with
    other contents are refused; the tables' digests are recorded (``results["tables"]``)."""
    import hashlib
    from pathlib import Path

    digests = {Path(p).stem: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
    changed = [n for n, d in digests.items() if results.get("tables", {}).get(n, d) != d]
    if changed:
        raise InputError(f"{out} holds records of other contents of --table {', '.join(changed)}: give another --out "
                         "(or remove it) to start again")
    results["tables"] = {**results.get("tables", {}), **digests}


def resolve_table_arguments(args, parser) -> None:
    """Defaults that depend on --table: the sources, scorer, picker and results file."""
    from pathlib import Path

    if args.table and args.sources:
        parser.error("--table replaces the bundled sources: give --table or --sources, not both")
    if args.table:
        args.sources = [register_table(path) for path in args.table]
        if len(set(args.sources)) < len(args.sources):
            parser.error(f"--table: two files with the same name {args.sources}")
    args.sources = args.sources or list(SOURCES)
    args.scorer = args.scorer or ("nuts" if args.table else "laplace")
    args.picker = args.picker or ("product" if args.table else "common")
    if args.out is None:
        args.out = (str(Path.cwd() / f"bench_design_pool_{'_'.join(args.sources)}.json") if args.table
                    else str(Path(__file__).parent / "results" / "bench_design_pool.json"))


def all_pool_by_continuation(sources=tuple(SOURCES), continuations=extrapolation.MEAN_BEYONDS, groups: int | None = None,
                             settings: PoolSettings = PoolSettings(), log=print) -> dict:
    """Per continuation beyond the folds' distances (``extrapolation.MEAN_BEYOND``) and source, the
    all-pool row of the tables (the common fitter on each group's whole pool, seed 0): R^2 of the
    median over the source's pooled target runs and their 90% coverage (the first ``groups`` groups of
    each source). The module default is restored afterwards."""
    default = extrapolation.MEAN_BEYOND
    out = {"default": default, "extrapolation_sha256": model_version(), "groups_per_source": groups, "all_pool": {}}
    try:
        for continuation in continuations:
            extrapolation.MEAN_BEYOND = continuation
            for source in sources:
                parts = []
                for _, runs in groups_of(source, groups):
                    split = split_by_compute(runs)
                    parts.append(scores(common_fit(split.train, 0, settings), split.test, 0))
                y = np.concatenate([p["loss"] for p in parts])
                pred = np.concatenate([p["pred"] for p in parts])
                row = {"r2": r_squared(y, pred), "coverage": sum(p["covered"] for p in parts) / len(y)}
                out["all_pool"][f"{continuation}/{source}"] = row
                log(f"{continuation} {source}: {row}")
    finally:
        extrapolation.MEAN_BEYOND = default
    return out


def same_all_pool_fits(parts: list[dict]) -> bool:
    """Whether every group's all-pool record (predictions and interval metrics of the common fitter
    on the whole pool) is identical in every part that has the group: parts run under different
    versions of extrapolation.py with the same default numerics may then be merged."""
    seen: dict[str, dict] = {}
    for r in parts:
        for g in r["groups"]:
            if seen.setdefault(g["group"], g["all"]) != g["all"]:
                return False
    return True


def merge_groups(parts: list[dict], replace: bool = False) -> list[dict]:
    """Groups of several results files as one list: a group in several files (strategies or seeds split
    over processes, or a merged file merged again) gets each seed's strategies from all of them. An
    entry in several files (a group's own record, the all-pool fit included, or one seed's strategy)
    must be identical in each, its ``seconds`` aside; with ``replace`` the later file's wins instead."""
    merged: dict[str, dict] = {}
    for r in parts:
        for g in r["groups"]:
            if g["group"] not in merged:
                merged[g["group"]] = {**g, "seeds": {k: dict(v) for k, v in g["seeds"].items()}}
                continue
            if not replace:
                require_same(f"{g['group']} (its record)", without(merged[g["group"]], "seeds"), without(g, "seeds"))
            for seed, per in g["seeds"].items():
                have = merged[g["group"]]["seeds"].setdefault(seed, {})
                for strategy, record in per.items():
                    if strategy in have and not replace:
                        require_same(f"{g['group']} seed {seed} {strategy}", without(have[strategy], "seconds"),
                                     without(record, "seconds"))
                    else:
                        have[strategy] = record
    return list(merged.values())


def without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


MERGE_RTOL = 1e-9  # float noise: one all-pool fit run in two processes differed by 1e-12 (relative) in v5's parts


def require_same(what: str, a, b) -> None:
    """A clear error where two files to merge disagree on an entry they share (numbers within
    ``MERGE_RTOL``, relative, everything else exactly)."""
    if not same_within(a, b):
        raise InputError(f"--merge: {what} differs between the files (rerun under other code or settings?); "
                         "--merge-replace lets the later file's win")


def same_within(a, b, rtol: float = MERGE_RTOL) -> bool:
    """Whether two JSON values are equal, numbers up to ``rtol`` (relative) and NaN equal to NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_within(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_within(x, y, rtol) for x, y in zip(a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return bool(np.isclose(a, b, rtol=rtol, atol=0.0, equal_nan=True))
    return a == b


COMPARED_METRICS = ("r2", "coverage", "interval_score", "n_opt_abs_log_error")


def compare_versions(new: dict, old: dict, fractions=(0.05, 0.1)) -> dict:
    """``new`` against ``old`` (two results files of the same benchmark under other code): per source the
    summary's metrics as [old, new] at ``fractions`` and for the all-pool fit, and per strategy how many
    (group, seed, fraction) records both have whose runs bought (count and cost fraction) and whose scores
    (predictions and interval metrics) agree within MERGE_RTOL."""
    tables = {}
    for source, s in new["summary"].items():
        if source not in old.get("summary", {}):
            continue
        o, n = old["summary"][source]["table"], s["table"]
        keys = [k for k in n if k in o and (k == "all" or any(k.endswith(f"@{f}") for f in fractions))]
        tables[source] = {k: {m: [o[k][m], n[k][m]] for m in COMPARED_METRICS} for k in keys}
    return {"tables": tables, "records": same_records(new, old),
            "all_pool_identical": {g["group"]: same_within(g["all"], a["all"]) for g, a in shared_groups(new, old)},
            "per_group": {g["group"]: {"old": group_metrics(a), "new": group_metrics(g)} for g, a in shared_groups(new, old)}}


def per_group_table(results: dict, source: str, fractions=(0.05, 0.1), ours: str = "ours",
                    exclude=("ours_shape",)) -> str:
    """A markdown table of ``source``'s groups: pool and target sizes; per fraction the median over seeds
    of ``ours``' R^2 on the group's target runs and the best other strategy's (``exclude`` not counted);
    the all-pool fit's R^2; ``ours``' 90% coverage at the last fraction (``group_metrics``)."""
    head = ["group", "pool / target runs"]
    for f in fractions:
        head += [f"{ours} R^2 {f:.0%}", f"best other {f:.0%}"]
    head += ["all-pool R^2", f"{ours} coverage {fractions[-1]:.0%}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in (g for g in results["groups"] if g["group"].split("/")[0] == source):
        row = [group["group"].split("/", 1)[1], f"{group['pool']} / {group['target']}"]
        for f in fractions:
            m = group_metrics(group, f)
            others = {k: v["r2"] for k, v in m.items() if k not in ("all", ours, *exclude) and np.isfinite(v["r2"])}
            best = max(others, key=others.get)
            row += [f"{m[ours]['r2']:.3f}", f"{others[best]:.3f} ({best})"]
        row += [f"{m['all']['r2']:.3f}", f"{m[ours]['coverage']:.0%}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def group_metrics(group: dict, fraction: float = 0.1) -> dict:
    """One group's records at ``fraction`` per strategy: the median over seeds of its own R^2 and its 90%
    coverage pooled over seeds (the all-pool fit's as "all"; a seed whose prediction is not finite left out of the median)."""
    out = {"all": {"r2": r_squared(group["all"]["loss"], group["all"]["pred"]),
                   "coverage": group["all"]["covered"] / group["all"]["n"]}}
    strategies = dict.fromkeys(k for per in group["seeds"].values() for k in per)
    for k in strategies:
        records = [per[k][str(fraction)] for per in group["seeds"].values() if k in per]
        out[k] = {"r2": float(np.nanmedian([r_squared(r["loss"], r["pred"]) for r in records])),
                  "coverage": sum(r["covered"] for r in records) / sum(r["n"] for r in records)}
    return out


def shared_groups(new: dict, old: dict):
    """(new group record, old group record) for the groups both files hold."""
    old_groups = {g["group"]: g for g in old["groups"]}
    return [(g, old_groups[g["group"]]) for g in new["groups"] if g["group"] in old_groups]


def same_records(new: dict, old: dict) -> dict:
    """Per strategy: records in both files, those with the same runs bought, and those with the same scores."""
    out: dict[str, dict] = {}
    for g, a in shared_groups(new, old):
        for seed, per in g["seeds"].items():
            for strategy, record in per.items():
                before = a["seeds"].get(seed, {}).get(strategy)
                if before is None:
                    continue
                count = out.setdefault(strategy, {"records": 0, "same_runs": 0, "same_scores": 0})
                for f, r in record.items():
                    if f == "seconds":
                        continue
                    count["records"] += 1
                    count["same_runs"] += same_within([r["runs"], r["cost_fraction"]],
                                                      [before[f]["runs"], before[f]["cost_fraction"]])
                    count["same_scores"] += same_within(without(r, "seconds"), without(before[f], "seconds"))
    return out


def merge_settings(parts: list[dict], replace: bool = False) -> dict:
    """The settings the parts share (seeds and strategies aside, which the merge unites): the last file
    with ``ours`` sets them; unless ``replace``, every part must have the same."""
    ours = [r for r in parts if "ours" in r["settings"]["strategies"]] or parts
    saved = without(without(ours[-1]["settings"], "seeds"), "strategies")
    if not replace:
        for r in parts:
            require_same("the settings", saved, without(without(r["settings"], "seeds"), "strategies"))
    return saved


def profile(source: str = "chinchilla", seed: int = 0, strategies=("ours_model", "ours_law", "mspe"),
            settings: PoolSettings = PoolSettings()) -> dict:
    """Diagnosis on one group and seed: what each strategy buys (N, D, tokens per parameter, cost)
    and, at the common start, how the target draws' variance splits between the law and the drift
    (Var of the model's Z against the law-only Z) and how the default utility's first pick splits
    between the region term and the N_opt term."""
    from bayes_scaling.design.target import make_gain

    name, runs = next(groups_of(source))
    split = split_by_compute(runs)
    pool, target = split.train, split.test
    start = start_runs(pool, settings)
    sel = Runs(pool.frame.iloc[start].reset_index(drop=True))
    post = common_fit(sel, seed, settings)
    region = TargetRegion.from_runs(target)
    Z = {part: finite_draws(target_matrix(post, region, target_budget(target), part=part)[0])[0]
         for part in ("model", "law")}
    var = {part: {"region_mean_var": float(np.mean(np.var(z[:, :-1], axis=0))), "log_n_opt_var": float(np.var(z[:, -1]))}
           for part, z in Z.items()}
    avail = np.setdiff1d(np.arange(len(pool)), start)
    mu = posterior_columns(post, pool.N[avail], pool.D[avail])
    Zm, mu, sigma = finite_draws(Z["model"], mu, post.draws("sigma"))
    Zc, mc = Zm - Zm.mean(0), mu - mu.mean(0)
    S_TT, c = Zc.T @ Zc / len(Zc), Zc.T @ mc / len(Zc)
    v = np.var(mu, axis=0) + noise_variance(sigma, post.meta.get("likelihood", "student_t"))
    terms = {}
    for weight, key in ((0.0, "region"), (1.0, "n_opt")):
        terms[key] = make_gain(S_TT, UtilitySettings(n_opt_weight=weight))(S_TT, c, v)
    value = (0.5 * terms["region"] + 0.5 * terms["n_opt"]) / (pool.C[avail] / pool.C[avail].max()) ** settings.cost_exponent
    j = int(np.argmax(value))
    out = {"group": name, "seed": seed, "pool_runs": len(pool), "start_runs": len(start),
           "target_variance": var, "first_pick": {"N": float(pool.N[avail][j]), "D": float(pool.D[avail][j]),
                                                   "region_term": float(0.5 * terms["region"][j]),
                                                   "n_opt_term": float(0.5 * terms["n_opt"][j])},
           "picks": {}}
    total = float(pool.C.sum())
    for strategy in strategies:
        chosen = trajectory(strategy, pool, target, seed, settings)[len(start):]
        out["picks"][strategy] = [{"N": float(pool.N[i]), "D": float(pool.D[i]), "tokens_per_param": float(pool.D[i] / pool.N[i]),
                                   "cost_fraction": float(pool.C[i] / total)} for i in chosen]
    return out


def model_version() -> str:
    """sha256 of bayes_scaling/extrapolation.py as this process imported it (the common fitter's
    model changes between sessions; a benchmark's strategies are compared under one version)."""
    import hashlib

    return hashlib.sha256(Path(extrapolation.__file__).read_bytes()).hexdigest()[:16]


def dev_choice(summary: dict) -> dict:
    """The development rule (see DEV_SEEDS): mean over sources and the 5% / 10% checkpoints of
    the median pooled R^2 per variant, and the variant it picks."""
    variants = [v for v in OURS_VARIANTS if f"ours_{v}@0.1" in next(iter(summary.values()))["table"]]
    score = {v: float(np.mean([summary[src]["table"][f"ours_{v}@{f}"]["r2"] for src in summary for f in (0.05, 0.1)]))
             for v in variants}
    best = max(score, key=score.get)
    return {"mean_median_r2": score, "best": best,
            "chosen": best if score[best] > score["model"] + DEV_MARGIN else "model", "margin": DEV_MARGIN}


def develop(out: Path, q: int = 1, log=print, variants=DECLARED_VARIANTS) -> dict:
    """Variants of ``ours`` on DEV_SOURCES x DEV_SEEDS; summary and the rule's choice to ``out``
    (the choice among ``variants``, "model" included)."""
    import json

    settings = PoolSettings(q=q, strategies=tuple(f"ours_{v}" for v in dict.fromkeys(("model", *variants))))
    start = time.perf_counter()
    groups = [run_group(name, runs, DEV_SEEDS, settings, log) for src in DEV_SOURCES for name, runs in groups_of(src)]
    summary = summarise(groups, settings)
    results = {"settings": {**settings_dict(settings), "seeds": list(DEV_SEEDS)}, "extrapolation_sha256": model_version(),
               "seconds": time.perf_counter() - start, "summary": summary, "choice": dev_choice(summary),
               "groups": groups}
    out.write_text(json.dumps(results, indent=1, default=float))
    log(json.dumps(results["choice"], indent=1))
    return results


DOCS_BEGIN, DOCS_END = "<!-- pool-benchmark:begin -->", "<!-- pool-benchmark:end -->"


def docs_section(results: dict, name: str = "bench_design_pool.json", location: str | None = None,
                 targets: bool = True) -> str:
    """Markdown tables of the summary (median over seeds), the verdict and the timing (``location``: where
    the results file is, default experiments/results/``name``; ``targets``: issue 16's verdict lines, which
    are about the four development sources)."""
    s = results.get("settings", {})
    lines = [f"Machine: {results.get('machine', '?')}. Seeds per source: the seeds every group of the source "
             f"finished (below); strategies and settings: `experiments/design_pool.py` "
             f"(`bench_design.py --pool`), results `{location or f'experiments/results/{name}'}`; `ours` is the "
             f"`{s.get('ours_variant', 'model')}` variant; checkpoints scored by "
             + ("the product's default fit (`fit_nuts`, NUTS 4 x (500 + 1000), the extrapolating model)"
                if s.get("scorer") == "nuts" else "the common fitter (Laplace, 2 x 200 draws, extrapolation-aware)")
             + "; `ours` designs under "
             + ({"product": "the product planner's refit (`MaskedRefitter(model=\"extrapolating\")`, NUTS 2 x (300 + 300))",
                 "product-psis": "the product planner's refit calibrated on PSIS refits (`MaskedRefitter(model="
                                 "\"extrapolating\", refits=\"psis\")`, NUTS 2 x (300 + 300))"}
                .get(s.get("picker"), "the common fitter"))
             + ".", ""]
    for source, summary in results.get("summary", {}).items():
        t = summary["table"]
        lines += [f"**{source}** ({summary['groups']} group{'s' if summary['groups'] > 1 else ''}, "
                  f"{summary['seeds']} seeds): median over seeds of R^2 on the target runs (pooled over groups), "
                  "90% interval score (lower is better), 90% coverage, median |log(N_opt / empirical)| at the top "
                  "held-out budget", "",
                  "| strategy | R^2 1% | R^2 5% | R^2 10% | int. score 10% | coverage 10% | N_opt log err. 10% |",
                  "|---|---|---|---|---|---|---|"]
        for strategy in (*s.get("strategies", STRATEGIES), "all"):
            if strategy == "all":
                a = t["all"]
                cells = ["-", "-", f"{a['r2']:.3f} (100%)", f"{a['interval_score']:.3f}", f"{a['coverage']:.0%}",
                         "-" if a["n_opt_abs_log_error"] is None else f"{a['n_opt_abs_log_error']:.2f}"]
            else:
                r = [t[f"{strategy}@{f}"] for f in s.get("fractions", (0.01, 0.05, 0.1))]
                last = r[-1]
                cells = [f"{x['r2']:.3f}" for x in r] + [
                    f"{last['interval_score']:.3f}", f"{last['coverage']:.0%}",
                    "-" if last["n_opt_abs_log_error"] is None else f"{last['n_opt_abs_log_error']:.2f}"]
            lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
        lines.append("")
    variants = [k for k in RULE_VARIANTS if f"verdict{k[len('ours'):]}" in results]
    for name in ("ours", *variants):
        key = f"verdict{name[len('ours'):]}"
        others = [k for k in ("ours", *variants) if k != name]
        for f, v in (results.get(key, {}) if targets else {}).items():
            lines.append(f"Target at {float(f):.0%} of the pool's cost: {name} best on "
                         f"{', '.join(v['ours_best_on']) or 'no source'}; at least the all-pool fit on "
                         f"{', '.join(v['ours_at_least_all_pool_on']) or 'no source'}; 90% coverage of {name} "
                         + ", ".join(f"{k} {c:.1%}" for k, c in v["ours_coverage"].items())
                         + f": **{'met' if v['met'] else 'not met'}**"
                         + (f" ({', '.join(others)} not counted among the others)." if others else "."))
    for name in variants:
        r = results.get(f"{name[len('ours_'):]}_rule")
        if r is None:
            continue
        m, c = r["mean_median_r2"], r["coverage_80_97_sources"]
        lines.append(f"Adoption rule for {name} (declared in `design_pool.py` before its results): mean median R^2 "
                     f"over the sources and the 5%/10% checkpoints {m[name]:.3f} against ours {m['ours']:.3f} "
                     f"(needs > +{r['margin']}: {'yes' if r['a_r2'] else 'no'}); sources with 90% coverage at 10% in "
                     f"80-97%: {c[name]} against {c['ours']} ({'yes' if r['b_coverage'] else 'no'}): "
                     f"**{'adopted as the default' if r['adopt'] else 'not adopted (an option)'}**.")
    if "timing" in results:
        tm = results["timing"]
        m = tm["median_seconds"]
        lines += ["", f"Ask against refit (all {tm['runs']} Chinchilla runs, {tm['candidates']} candidates, "
                  f"{tm['draws']} draws, median of {tm['repeats']} warm repeats, interleaved): ask q=1 "
                  f"{m['ask_q1']:.2f} s, q=4 {m['ask_q4']:.2f} s; refit under the default model {m['refit_default']:.2f} s, "
                  f"plain refit {m['refit_plain']:.2f} s: ask / default refit = {tm['ask_q1_over_default_refit']:.2f}, "
                  f"ask / plain refit = {tm['ask_q1_over_plain_refit']:.2f}"
                  + (f", median over rounds of ask / default refit {tm['ask_q1_over_default_refit_per_round']:.2f}"
                     if "ask_q1_over_default_refit_per_round" in tm else "")
                  + (f"; with the compute-optimal band (shape_span 3) ask q=1 {m['ask_q1_shape']:.2f} s" if "ask_q1_shape" in m else "")
                  + (f" (load average {tm['load_average'][0]:.1f})" if "load_average" in tm else "") + "."]
    return "\n".join(lines)


def write_docs(results: dict, path, name: str = "bench_design_pool.json") -> None:
    """Replace the text between the markers in ``path`` with ``docs_section(results)``."""
    from pathlib import Path

    text = Path(path).read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise InputError(f"{path} lacks the markers {DOCS_BEGIN} ... {DOCS_END}")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    Path(path).write_text(head + DOCS_BEGIN + "\n" + docs_section(results, name) + "\n" + DOCS_END + tail)


def interval_anatomy(sel: Runs, target: Runs, seed: int, settings: PoolSettings) -> dict:
    """Why an interval on the target runs covers or not, for the runs ``sel``: the common fitter's
    90% predictive interval (width in log-loss, signed error of its median, coverage, and coverage
    with the mean signed error removed: what bias costs), its parts (the model without noise, the
    plain law alone without and with noise: what the drift and the noise add), the calibration's
    folds and scales, and where the runs lie in compute against the target's."""
    post = common_fit(sel, seed, settings)
    plain = plain_fit(sel, seed, settings)
    y = np.log(target.loss)

    def interval(draws):
        lo, hi = np.quantile(np.log(draws), [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
        return lo, hi

    full = post.predict(target.N, target.D, seed=seed)
    med = np.log(np.median(post.predict(target.N, target.D, noise=False), axis=0))
    err = med - y
    lo, hi = interval(full)
    parts = {"model": interval(post.predict(target.N, target.D, noise=False)),
             "law": interval(plain.predict(target.N, target.D, noise=False)),
             "law_noise": interval(plain.predict(target.N, target.D, seed=seed))}
    ext = post.meta["extrapolation"]
    column = budget_column_of(sel)
    logc = np.log10(sel.C)
    return {"runs": len(sel), "log10_C_selected": [float(logc.min()), float(logc.max())],
            "compute_span_decades": float(logc.max() - logc.min()),
            "runs_in_top_decade": int(np.sum(logc >= logc.max() - 1)),
            "budgets_selected": int(len(np.unique(sel.frame[column]))) if column else None,
            "extrapolation_decades": [float(np.log10(target.C.min()) - logc.max()),
                                      float(np.log10(target.C.max()) - logc.max())],
            "folds": int(ext["folds"]), "held_out_in_folds": int(ext["held_out_in_folds"]),
            "optima_in_folds": int(ext["optima_in_folds"]),
            "tau_median": {k: float(ext[f"{k} 5/50/95%"][1]) for k in extrapolation.SCALES},
            "mean_drift": ext["mean drift (d_N, d_D, g_C, d_a)"],
            "sigma_median": float(np.median(post.draws("sigma"))),
            "width_log": float(np.median(hi - lo)),
            "width_log_parts": {k: float(np.median(b - a)) for k, (a, b) in parts.items()},
            "mean_signed_log_error": float(np.mean(err)), "rms_log_error": float(np.sqrt(np.mean(err ** 2))),
            "coverage": float(np.mean((y >= lo) & (y <= hi))),
            "coverage_bias_removed": float(np.mean((y + np.mean(err) >= lo) & (y + np.mean(err) <= hi))),
            "coverage_law_noise": float(np.mean((y >= parts["law_noise"][0]) & (y <= parts["law_noise"][1]))),
            "abs_error_over_half_width": float(np.median(np.abs(np.log(np.median(full, axis=0)) - y) / ((hi - lo) / 2)))}


def coverage_diagnosis(sources=("chinchilla", "porian"), seeds=(0, 1, 2), strategies=("ours_shape", "mspe", "random"),
                       fractions=(0.05, 0.1), groups_per_source: dict | None = None, settings: PoolSettings = PoolSettings(),
                       log=print) -> dict:
    """``interval_anatomy`` per group, seed, strategy and fraction (and of the all-pool fit), with the
    pool rows bought (so a rerun can be checked against a benchmark's recorded coverage)."""
    out = {"settings": settings_dict(settings), "fractions": list(fractions), "extrapolation_sha256": model_version(),
           "groups": []}
    for source in sources:
        for name, runs in groups_of(source, (groups_per_source or {}).get(source)):
            split = split_by_compute(runs)
            pool, target = split.train, split.test
            total = float(pool.C.sum())
            n_start = len(start_runs(pool, settings))
            g = {"group": name, "target_runs": len(target), "all": interval_anatomy(pool, target, 0, settings),
                 "seeds": {}}
            log(f"{name} all: {json.dumps({k: g['all'][k] for k in ('runs', 'folds', 'width_log', 'mean_signed_log_error', 'coverage', 'coverage_bias_removed')})}")
            for seed in seeds:
                per = {}
                for strategy in strategies:
                    chosen = trajectory(strategy, pool, target, seed, settings)
                    per[strategy] = {}
                    for f in fractions:
                        rows = prefix(chosen, pool.C, f * total, n_start)
                        sel = Runs(pool.frame.iloc[rows].reset_index(drop=True))
                        a = interval_anatomy(sel, target, seed, settings)
                        per[strategy][str(f)] = {**a, "rows": [int(i) for i in rows]}
                        log(f"  {name} s{seed} {strategy} {f:.0%}: runs {a['runs']} span {a['compute_span_decades']:.2f} "
                            f"ext {a['extrapolation_decades'][1]:.2f} folds {a['folds']}/{a['held_out_in_folds']} "
                            f"width {a['width_log']:.4f} parts {({k: round(v, 4) for k, v in a['width_log_parts'].items()})} "
                            f"err {a['mean_signed_log_error']:+.4f} cov {a['coverage']:.2f} unbiased {a['coverage_bias_removed']:.2f} "
                            f"law+noise {a['coverage_law_noise']:.2f} sigma {a['sigma_median']:.4f}")
                g["seeds"][str(seed)] = per
            out["groups"].append(g)
    return out


def band_coverage(diag: dict, settings: PoolSettings = PoolSettings(), span: float = SHAPE_SPAN) -> dict:
    """Adds to a ``coverage_diagnosis`` result, per record, the 90% coverage of the target runs inside
    and outside the compute-optimal band (span ``span``) of the group's all-pool fit (plain Laplace, seed
    0), from the pool rows it stored (the common fitter refitted to them), and per source and strategy
    the pooled counts (``diag["band_coverage"]``); per group the target's noise (``noise``: the sd of
    the pool's and the target's log-loss residuals about the plain law fitted to every run, and its
    median sigma)."""
    from bayes_scaling.design.target import compute_optimal_band

    totals: dict = {}
    for g in diag["groups"]:
        source, group = g["group"].split("/", 1)
        runs = next(r for name, r in groups_of(source) if name == g["group"])
        split = split_by_compute(runs)
        pool, target = split.train, split.test
        band = compute_optimal_band(plain_fit(pool, 0, settings), target.N, target.D, span)
        g["target_in_band"] = int(band.sum())
        every = plain_fit(runs, 0, settings)  # the target's noise: residuals about a law fitted to every run
        resid = {k: np.log(r.loss) - np.log(np.median(every.predict(r.N, r.D, noise=False), axis=0))
                 for k, r in (("pool", pool), ("target", target))}
        g["noise"] = {"sigma_median_all_runs": float(np.median(every.draws("sigma"))),
                      **{f"residual_sd_{k}": float(np.std(v)) for k, v in resid.items()},
                      "residual_mean_target": float(np.mean(resid["target"]))}
        for seed, per in g["seeds"].items():
            for strategy, by_fraction in per.items():
                for f, rec in by_fraction.items():
                    sel = Runs(pool.frame.iloc[rec["rows"]].reset_index(drop=True))
                    draws = common_fit(sel, int(seed), settings).predict(target.N, target.D, seed=int(seed))
                    lo, hi = scoring.central_interval(draws, LEVEL)
                    cov = scoring.covered(target.loss, lo, hi)
                    rec["covered_in_band"], rec["covered_off_band"] = int(cov[band].sum()), int(cov[~band].sum())
                    t = totals.setdefault(source, {}).setdefault(strategy, {}).setdefault(f, [0, 0, 0, 0])
                    t[0] += int(cov[band].sum()); t[1] += int(band.sum())
                    t[2] += int(cov[~band].sum()); t[3] += int((~band).sum())
    diag["band_coverage"] = {src: {k: {f: {"in_band": c[0] / max(c[1], 1), "n_in_band": c[1],
                                           "off_band": c[2] / max(c[3], 1) if c[3] else None, "n_off_band": c[3]}
                                       for f, c in by_f.items()} for k, by_f in by_k.items()}
                             for src, by_k in totals.items()}
    diag["band_span"] = span
    return diag


def fitter_check(sources=("chinchilla", "marin", "gadre"), seeds=range(10), strategy: str = "ours",
                 fractions=(0.05, 0.1), settings: PoolSettings = PoolSettings(), log=print) -> dict:
    """Is the benchmark's coverage the product's? The runs ``strategy`` bought (the benchmark's own
    trajectories) scored by the benchmark's common fitter (``common_fit``: Laplace, 2 x 200 draws, made
    extrapolation-aware) and by the product's default fit (``fit_nuts``: NUTS, 4 x (500 + 1000), the
    extrapolating model): per source and fraction the target runs covered by each 90% interval (pooled
    over groups and seeds), the median R^2 and mean interval score."""
    out = {"settings": settings_dict(settings), "strategy": strategy, "seeds": list(seeds), "sources": {}}
    for source in sources:
        rows = {f: {"laplace": [], "nuts": []} for f in fractions}
        for name, runs in groups_of(source):
            split = split_by_compute(runs)
            pool, target = split.train, split.test
            n_start = len(start_runs(pool, settings))
            for seed in seeds:
                chosen = trajectory(strategy, pool, target, seed, settings)
                for f in fractions:
                    sel = Runs(pool.frame.iloc[prefix(chosen, pool.C, f * float(pool.C.sum()), n_start)].reset_index(drop=True))
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fits = {"laplace": common_fit(sel, seed, settings), "nuts": fit_nuts(sel, seed=seed)}
                    for fitter, post in fits.items():
                        r = scores(post, target, seed)
                        rows[f][fitter].append({"group": name, "seed": seed, "runs": len(sel), "covered": r["covered"],
                                                "n": r["n"], "interval_score": r["interval_score"],
                                                "r2": r_squared(r["loss"], r["pred"])})
                log(f"{name} seed {seed}: " + ", ".join(f"{f:.0%} {k} {rows[f][k][-1]['covered']}/{rows[f][k][-1]['n']}"
                                                       for f in fractions for k in ("laplace", "nuts")))
        out["sources"][source] = {
            str(f): {k: {"coverage": sum(r["covered"] for r in v) / sum(r["n"] for r in v),
                         "median_r2": float(np.median([r["r2"] for r in v])),
                         "mean_interval_score": float(np.mean([r["interval_score"] for r in v])),
                         "median_runs": float(np.median([r["runs"] for r in v])), "records": v}
                     for k, v in by.items()} for f, by in rows.items()}
    return out


def diagnose(sources=("chinchilla", "marin"), seeds=(0, 1, 2), strategies=("ours", "mspe"), fraction: float = 0.1,
             settings: PoolSettings = PoolSettings(), log=print) -> dict:
    """Why one selector's runs predict the target better than another's: per group, seed and
    strategy, the runs bought (after the common start) up to ``fraction`` of the pool's cost (N, D,
    tokens per parameter, cost share, log10 compute, distance in decades of (N, D) to the nearest
    target run), the law fitted to them (plain Laplace, posterior median) against the all-pool fit's,
    and the R^2 / mean signed error on the target runs of the common fitter."""
    out = {"settings": settings_dict(settings), "fraction": fraction, "groups": []}
    for source in sources:
        for name, runs in groups_of(source):
            split = split_by_compute(runs)
            pool, target = split.train, split.test
            total = float(pool.C.sum())
            zt = np.column_stack([np.log10(target.N), np.log10(target.D)])
            n_start = len(start_runs(pool, settings))

            def law(sel, seed):
                th = plain_fit(sel, seed, settings).theta()
                return {k: float(np.median(th[k])) for k in ("E", "A", "B", "alpha", "beta")}

            def fit_summary(sel, seed):
                post = common_fit(sel, seed, settings)
                pred = np.median(post.predict(target.N, target.D, noise=False), axis=0)
                return {"r2": r_squared(target.loss, pred), "mean_log_error": float(np.mean(np.log(pred / target.loss))),
                        "law": law(sel, seed)}

            g = {"group": name, "all_pool": fit_summary(pool, 0),
                 "target": {"log10_C": [float(np.log10(target.C.min())), float(np.log10(target.C.max()))],
                            "tokens_per_param_median": float(np.median(target.D / target.N))}, "seeds": {}}
            for seed in seeds:
                per = {}
                for strategy in strategies:
                    chosen = trajectory(strategy, pool, target, seed, settings)
                    rows = prefix(chosen, pool.C, fraction * total, n_start)
                    bought = rows[n_start:]
                    z = np.column_stack([np.log10(pool.N[bought]), np.log10(pool.D[bought])])
                    dist = np.min(np.linalg.norm(z[:, None] - zt[None], axis=2), axis=1) if len(bought) else np.array([])
                    sel = Runs(pool.frame.iloc[rows].reset_index(drop=True))
                    per[strategy] = {
                        "picks": [{"N": float(pool.N[i]), "D": float(pool.D[i]), "tokens_per_param": float(pool.D[i] / pool.N[i]),
                                   "cost_fraction": float(pool.C[i] / total), "log10_C": float(np.log10(pool.C[i])),
                                   "dist_to_target_decades": float(d)} for i, d in zip(bought, dist)],
                        "runs": len(rows), "cost_fraction": float(pool.C[rows].sum() / total),
                        "median_tokens_per_param": float(np.median(pool.D[bought] / pool.N[bought])) if bought else None,
                        "median_dist_to_target": float(np.median(dist)) if bought else None,
                        "max_log10_C": float(np.log10(pool.C[rows].max())), **fit_summary(sel, seed)}
                    p = per[strategy]
                    log(f"{name} seed {seed} {strategy}: {len(bought)} bought, R2 {p['r2']:.3f}, mean log err "
                        f"{p['mean_log_error']:+.4f}, D/N median {p['median_tokens_per_param']}, dist {p['median_dist_to_target']}, "
                        f"max log10C {p['max_log10_C']:.2f}, law {({k: round(v, 3) for k, v in p['law'].items()})}")
                g["seeds"][str(seed)] = per
            log(f"{name} all-pool: R2 {g['all_pool']['r2']:.3f}, law {({k: round(v, 3) for k, v in g['all_pool']['law'].items()})}")
            out["groups"].append(g)
    return out
