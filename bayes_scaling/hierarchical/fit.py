"""``fit_hierarchical``: the hierarchical model (``models.hierarchical``) fitted by the shared NUTS
driver (``fitting.sampler``), returned as one ``Posterior`` per group and one for the population.

The population value of each parameter has the law's prior on its natural scale; no pooling gives
every group that same prior, so it equals G separate pooled fits. A new group's law is drawn from
the population: x_new = mu + tau z, z ~ Normal(0, 1), one z per posterior draw. The centre matters
for partial pooling only: it says where the groups' reducible terms are pooled (under no or
complete pooling any centre gives the same posterior).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling._jax_setup import configure
from bayes_scaling.diagnostics import ESS_PER_CHAIN_MIN, RHAT_MAX, chain_stats, warn_if_untrustworthy
from bayes_scaling.errors import InputError
from bayes_scaling.fitting import redo, sampler
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.fitting.settings import KEYWORDS, SamplerSettings
from bayes_scaling.hierarchical.centring import auto_centring, deviation_centring, mean_centre, pivot_centre
from bayes_scaling.hierarchical.offsets import Offsets, build_offsets, level_params
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models.hierarchical import (
    DEFAULT_SPREAD_PRIOR,
    OFFSET_SCALE,
    POOLINGS,
    SPREAD_PRIORS,
    HierSpec,
    check_law,
    deviation_basis,
    hierarchical_model,
    latent_from_natural,
    natural_from_latent,
)
from bayes_scaling.models.likelihood import DEFAULT_NU, Likelihood
from bayes_scaling.posterior import Posterior
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs, as_runs

CENTRES = ("pivot", "mean")
CENTRINGS = ("auto", "none")
EXPONENTS = ("alpha", "beta")
# HalfNormal scales of the group spreads tau_k, in log units: groups' E differ by ~10%, their
# reducible terms at the pivot centre by ~50%, their exponents by ~20% (relative). Kept over narrow
# spreads (0.1 on A and B, 0.05 on the exponents) and over shared exponents by a held-out check on
# the Marin runs below 3e20 FLOPs, where wide and narrow tie within Monte Carlo noise
# (experiments/marin_pooling.py, docs/hierarchical.md). Parameters of other laws: DEFAULT_SPREAD.
DEFAULT_SPREADS = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}
DEFAULT_SPREAD = 0.2
POPULATION = "population (new group)"
# ``offset_by="auto"`` (the default) takes offsets by this column where the runs have it with two or
# more values: chosen by the pre-registered rule of experiments/marin_pooling.py (docs/hierarchical.md).
AUTO_OFFSET_COLUMN = "budget"
# Default of ``detrend_offsets``: False. experiments/marin_pooling.py's pre-registered rule (with its
# unseen-budget step) picked free offsets over detrended ones on Marin (docs/hierarchical.md).
DETREND_OFFSETS = False
# Default of ``absorb_level``: False. A sampler choice (the model is unchanged; models.hierarchical),
# not adopted by the rule declared in experiments/hierarchical_geometry.py (docs/hierarchical.md).
ABSORB_LEVEL = False
# Default of ``mean_deviations``: True, adopted by the rule declared in experiments/hierarchical_geometry.py
# (a sampler choice, the model is unchanged; models.hierarchical): over seeds 0-4 on Marin 102-138 leapfrog
# steps per draw against 257-423, 4 divergences against 9, min bulk ESS 316-585 against 99-415.
MEAN_DEVIATIONS = True
# Default of the redo policy (``fitting.redo``, as ``fit_nuts``'s): a fit with divergent transitions
# redone once at target acceptance 0.99 (``retry_divergent``), one short only of effective draws (no
# divergence, R-hat <= 1.1, min bulk ESS < 100 per chain or R-hat > 1.01) redone with twice the draws, at
# most MORE_DRAWS_DOUBLINGS times (``more_draws``). Off: not adopted by the rule declared in
# experiments/hierarchical_geometry.py --redo. On Marin over fresh seeds 20-29 it passed on reliability
# (0 divergences, min bulk ESS >= 400 and R-hat <= 1.01 on 10 of 10 seeds against 9, 1 and 5) and failed
# on cost: it redid 9 of 10 fits, median wall x2.73 (bar 1.5x), total x3.64 (bar 2.0x); docs/hierarchical.md.
REDO = False
MORE_DRAWS_DOUBLINGS = redo.MORE_DRAWS_DOUBLINGS  # (read at call time: tests may set it)
# The sampler's defaults here: 4 chains x (500 + 500) at target acceptance 0.9, redone as REDO says.
SAMPLER_DEFAULTS = SamplerSettings(draws=500, target_accept=0.9, retry_divergent=REDO, more_draws=REDO)
# NumPyro's mass-matrix shrinkage: with 20-40 sampled coordinates the first adaptation window has
# fewer draws than dimensions, and unregularised the estimate is singular.
REGULARIZE_MASS = True
ADAPT_MASS = True
# Default of ``start_mass``: the inverse mass matrix the warm-up starts from ("laplace": dense, at the
# chains' modes; "diagonal": its diagonal; "identity": NumPyro's own start; "pilot": a variational
# pilot's covariance, the chains started at its draws, ``fitting.pilot``; ``fitting.sampler.sample``).
# Alternatives measured under the rules declared in experiments/hierarchical_geometry.py --start-mass and
# --pilot (with 500 and 250 warm-up iterations, seeds 0-9): not adopted (docs/hierarchical.md).
START_MASS = "laplace"
# Default of ``warmup_tree_depth``: NUTS's largest tree depth during the warm-up (the draws keep
# ``fitting.sampler.MAX_TREE_DEPTH``, 10). Alternatives measured under the rule declared in
# experiments/hierarchical_geometry.py --warmup-depth.
WARMUP_TREE_DEPTH = sampler.MAX_TREE_DEPTH
# Default of ``stacked``: under ``mean_deviations``, one sampled site per role over all partially pooled
# parameters (``models.hierarchical``; a sampler choice, the model is unchanged). Measured under the rule
# declared in experiments/hierarchical_geometry.py --stacked.
STACKED = False
# Default of ``pool_step_size``: "min", each chain's step size after the warm-up capped at the chains'
# smallest (``fitting.sampler.sample``; "median": at their median; None: each chain keeps its own). A
# sampler choice (the model is unchanged), adopted by the rule declared in experiments/hierarchical_geometry.py
# --pooled-step-size: on Marin over seeds 0-9, 3 divergences against 61 (the divergent draws of the
# default sat in the chain whose warm-up ended with the largest step size), smallest min bulk ESS 116
# against 50, max R-hat 1.051 against 1.074, wall time x1.02.
POOL_STEP_SIZE = "min"
LATENT_SCALE = 0.1  # NUTS moves in z / 0.1: the mass-matrix shrinkage is 1e-5 I in the model's coordinates
# How a fit given ``warm_start`` starts NUTS (``warm_start_mode``): the chains at the previous fit's last
# draws, and
# * "draws": the mass matrix the previous fit's draws' covariance (``fitting.sampler.warm_start``), the step
#   size searched again from NumPyro's 1 over WARM_START_WARMUP iterations;
# * "adapted": the mass matrix and step size each chain's warm-up ended with (``fitting.sampler.adapted``),
#   the step size adapted again from there over WARM_START_WARMUPS["adapted"] iterations;
# * "fixed": the same, kept: a WARM_START_WARMUPS["fixed"]-iteration warm-up only moves the chains.
# Warm-ups shorter than ``fitting.sampler.MASS_ADAPTATION_MIN_WARMUP``: the mass matrix is not adapted. The
# step sizes are then capped as in any fit (``pool_step_size``).
# Measured by experiments/bench_hierarchical.py --warm-start (docs/hierarchical.md).
WARM_START_WARMUP = 100
WARM_START_WARMUPS = {"draws": WARM_START_WARMUP, "adapted": 50, "fixed": 25}
WARM_START_MODES = tuple(WARM_START_WARMUPS)
WARM_START_MODE = "draws"


@dataclass(frozen=True)
class HierarchicalSettings:
    """The hierarchical model's structure (see ``fit_hierarchical``)."""

    group_by: str = "group"
    pooling: str = "partial"
    share_exponents: bool = False
    share: tuple = ()
    spreads: Mapping[str, float] | None = None
    centring: Mapping[str, float] | str = "auto"
    centre: str = "pivot"
    offset_by: str | None = "auto"
    offset_scale: float = OFFSET_SCALE
    detrend_offsets: bool = DETREND_OFFSETS
    spread_prior: str = DEFAULT_SPREAD_PRIOR
    absorb_level: bool = ABSORB_LEVEL
    mean_deviations: bool = MEAN_DEVIATIONS
    start_mass: str = START_MASS
    warmup_tree_depth: int = WARMUP_TREE_DEPTH
    stacked: bool = STACKED
    pool_step_size: str | None = POOL_STEP_SIZE

    def __post_init__(self):
        object.__setattr__(self, "share", tuple(self.share))
        if self.pooling not in POOLINGS:
            raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.centre not in CENTRES:
            raise InputError(f"centre must be one of {', '.join(CENTRES)}, got {self.centre!r}")
        if isinstance(self.centring, str) and self.centring not in CENTRINGS:
            raise InputError(f"centring must be one of {', '.join(CENTRINGS)} or a mapping of parameter to lambda, "
                             f"got {self.centring!r}")
        if self.spread_prior not in SPREAD_PRIORS:
            raise InputError(f"spread_prior must be one of {', '.join(SPREAD_PRIORS)}, got {self.spread_prior!r}")
        if self.start_mass not in sampler.START_MASSES:
            raise InputError(f"start_mass must be one of {', '.join(sampler.START_MASSES)}, got {self.start_mass!r}")
        depth = self.warmup_tree_depth
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or not 1 <= depth <= sampler.MAX_TREE_DEPTH:
            raise InputError(f"warmup_tree_depth must be a whole number from 1 to {sampler.MAX_TREE_DEPTH}, got {depth!r}")
        if self.pool_step_size is not None and self.pool_step_size not in sampler.POOLED_STEP_SIZES:
            raise InputError(f"pool_step_size must be None or one of {', '.join(sampler.POOLED_STEP_SIZES)}, "
                             f"got {self.pool_step_size!r}")
        if not (np.isfinite(self.offset_scale) and self.offset_scale > 0):
            raise InputError(f"offset_scale must be a positive number, got {self.offset_scale!r}")

    def shared(self) -> set:
        return set(self.share) | (set(EXPONENTS) if self.share_exponents else set())


@dataclass
class HierarchicalFit:
    """What ``fit_hierarchical`` returns.

    ``groups``: group name -> ``Posterior`` of that group's law (the ordinary type: ``frontier``,
    ``predict``, ``summary``, ``save`` all work; its runs are the group's runs and its
    ``log_likelihood`` their pointwise log-likelihoods under the joint fit).
    ``population``: the ``Posterior`` of a *new* group's law drawn from the population (its runs are
    all runs; no log-likelihood); None under no pooling, where groups share nothing.
    ``spreads``: draws of each tau_k (partial pooling). ``diagnostics``: divergences, max R-hat,
    min bulk ESS (``diagnostics.chain_stats``, ArviZ's definitions) over every sampled coordinate,
    mean leapfrog steps per draw and the sampling time.
    """

    groups: dict[str, Posterior]
    population: Posterior | None
    pooling: str
    shared: list[str]  # parameters common to all groups (all of them under complete pooling)
    group_by: str
    spreads: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    # What a later fit's ``warm_start`` reads: "init" (each chain's last draw, unconstrained),
    # "inverse_mass" (the draws' covariance in NUTS's coordinates; ``fitting.sampler.warm_start``) and
    # "draws" (the sampler's ``Draws``, whose final adapted step sizes and mass matrices
    # ``fitting.sampler.adapted`` reads on request).
    adaptation: dict = field(default_factory=dict, repr=False)

    def save(self, directory) -> Path:
        """Save as ``bayes-scaling fit --group-by`` does (``grouped.save_grouped``): each group's fit under
        DIR/groups/NAME, the population's under DIR/population and a manifest, so that ``frontier``,
        ``predict``, ``report`` and ``grouped.load_fits`` read it."""
        from bayes_scaling.grouped import save_grouped

        save_grouped(directory, self.groups, self.population, {"pooling": self.pooling, "group_by": self.group_by,
                                                               "group_column": self.group_by})
        return Path(directory)

    def frontier(self, budgets, level: float = 0.9) -> pd.DataFrame:
        """Each group's frontier table (and the population's), stacked with a ``group`` column."""
        members = {**self.groups, **({POPULATION: self.population} if self.population is not None else {})}
        tables = [post.frontier(budgets, level).assign(group=name) for name, post in members.items()]
        return pd.concat(tables, ignore_index=True)


def fit_hierarchical(runs: Runs, *, law: Law | str = "chinchilla", priors=None, likelihood: str = "student_t",
                     nu: float = DEFAULT_NU, settings: HierarchicalSettings | None = None,
                     sampler_settings: SamplerSettings | None = None, warm_start: HierarchicalFit | None = None,
                     warm_start_mode: str = WARM_START_MODE, **keywords) -> HierarchicalFit:
    """Fit the hierarchical model of ``law`` to ``runs`` grouped by the column ``settings.group_by``.

    ``settings`` (``HierarchicalSettings``): ``pooling`` "partial" (groups around a learned
    population), "none" (independent laws, one sigma each) or "complete" (one law);
    ``share_exponents``: alpha and beta common to all groups; ``share``: any parameters common to all
    groups. ``spreads``: the scales s_k of the tau_k (``DEFAULT_SPREADS``), whose prior is
    ``spread_prior``: "halfnormal" or "gamma" (``models.hierarchical.spread_distribution``).
    ``centre``: "pivot" (``hierarchical.centring.pivot_centre``) or "mean": where the groups' latent
    coordinates are centred, and so, under partial pooling, where their reducible terms are pooled.
    ``centring``: "auto" (``auto_centring``; under ``mean_deviations``, the deviations'
    ``deviation_centring``), "none" (every group, or deviation, non-centred) or a mapping
    parameter -> lambda; it changes how NUTS moves, not the model. ``offset_by``: a column whose
    levels each get an offset delta_b on log-loss shared by all groups; "auto" (default):
    ``"budget"`` where the runs have it with two or more values (three, detrended), else none;
    None: no offsets. ``offset_scale``: s_o of tau_o ~ HalfNormal(s_o). ``detrend_offsets``: the
    offsets carry no level and no linear trend in log of the column's value
    (``hierarchical.offsets``). The group and population Posteriors then carry the draws of delta_b
    (``offset``) and tau_o (``offset_tau``), and their ``predict(..., offset_at=levels)`` uses them.
    ``absorb_level`` and ``mean_deviations``: how NUTS moves, not the model (``models.hierarchical``);
    ``start_mass``: the inverse mass matrix NUTS's warm-up starts from (``START_MASS``);
    ``warmup_tree_depth``: NUTS's largest tree depth during the warm-up (``WARMUP_TREE_DEPTH``);
    ``stacked``: under ``mean_deviations``, one sampled site per role for all partially pooled
    parameters (``STACKED``; the same model); ``pool_step_size``: each chain's step size after the
    warm-up capped at the chains' "median" or "min" (``POOL_STEP_SIZE``; the same model).

    ``priors`` override the law's priors (population level) or sigma's. ``sampler_settings``: the
    sampler's (``SamplerSettings``; here ``SAMPLER_DEFAULTS``, 4 chains x (500 + 500) at target
    acceptance 0.9, by default). Every field of either settings class may also be given as a keyword
    argument by its old name (``pooling=``, ``num_chains=``, ``target_accept=``, ...), overriding the
    objects.

    The redo policy (``fitting.redo``, as ``fit_nuts``'s; default ``REDO``, off): with
    ``retry_divergent``, a fit with divergent transitions is redone once at target acceptance
    ``redo.RETRY_TARGET_ACCEPT`` (0.99); with ``more_draws``, a fit short only of effective draws (no
    divergence, max R-hat at most ``redo.MORE_DRAWS_RHAT``, and min bulk ESS below 100 per chain or
    max R-hat above 1.01, over every sampled coordinate) is redone with twice the draws per chain, at
    most ``MORE_DRAWS_DOUBLINGS`` times. ``diagnostics["retried"]``, ``diagnostics["more_draws"]`` and
    every member's ``meta`` say what was redone and why; a final fit that still fails warns. A redo
    samples the same start again (a warm start's too; in mode "fixed" a redo at smaller steps adapts
    the step size again from the kept one).

    ``warm_start``: a previous ``HierarchicalFit`` of the same model (the same groups, offset levels
    and settings; a few runs more or fewer), e.g. a loop's last refit: the chains start at its
    chains' last draws; ``warm_start_mode`` (``WARM_START_MODES``, default ``WARM_START_MODE``) says
    what else is carried over: "draws": NUTS's mass matrix is the previous draws' covariance
    (``fitting.sampler.warm_start``) and the step size adapts from NumPyro's 1; "adapted": each
    chain's final adapted mass matrix and step size (``fitting.sampler.adapted``), the step size
    adapting again from there; "fixed": the same, kept through the warm-up. The warm-up defaults to
    ``WARM_START_WARMUPS[mode]`` iterations, too few to adapt the mass matrix.
    A previous fit whose sampled sites differ in shape is an ``InputError``.
    """
    configure()
    runs = as_runs(runs)
    hier_fields = {f.name for f in dataclasses.fields(HierarchicalSettings)}
    unknown = set(keywords) - hier_fields - set(KEYWORDS)
    if unknown:
        raise TypeError(f"fit_hierarchical got unknown keyword(s): {', '.join(sorted(unknown))}")
    if settings is not None and not isinstance(settings, HierarchicalSettings):
        hint = " (the sampler's settings go to sampler_settings=)" if isinstance(settings, SamplerSettings) else ""
        raise InputError(f"settings must be a HierarchicalSettings, got {type(settings).__name__}{hint}")
    if sampler_settings is not None and not isinstance(sampler_settings, SamplerSettings):
        hint = " (the model's settings go to settings=)" if isinstance(sampler_settings, HierarchicalSettings) else ""
        raise InputError(f"sampler_settings must be a SamplerSettings, got {type(sampler_settings).__name__}{hint}")
    h = settings or HierarchicalSettings()
    given = {k: v for k, v in keywords.items() if k in hier_fields}
    h = dataclasses.replace(h, **given) if given else h
    if h.group_by in runs.frame and runs.frame[h.group_by].nunique() == 1:
        import warnings

        from bayes_scaling.errors import InputWarning

        warnings.warn(f"the runs hold one group ({runs.frame[h.group_by].iloc[0]!r} in column {h.group_by!r}): the "
                      "population's spread is then set by its prior alone; fit_nuts fits one law to them "
                      "(or name the column that tells the groups apart: group_by=...)", InputWarning, stacklevel=2)
    if warm_start_mode not in WARM_START_MODES:
        raise InputError(f"warm_start_mode must be one of {', '.join(WARM_START_MODES)}, got {warm_start_mode!r}")
    defaults = SAMPLER_DEFAULTS if warm_start is None else \
        SAMPLER_DEFAULTS.replace(warmup=WARM_START_WARMUPS[warm_start_mode])
    s = SamplerSettings.resolve(sampler_settings, defaults,
                                **{k: v for k, v in keywords.items() if k in KEYWORDS})
    prepared = _prepare(runs, law, priors, Likelihood(likelihood, nu), h, s, warm_start, warm_start_mode)
    fixed_at = s.target_accept if warm_start is not None and warm_start_mode == "fixed" else None
    attempt = redo.redone(partial(_sampled_fit, prepared, fixed_step_at=fixed_at), partial(_check, chains=s.chains), s,
                          doublings=MORE_DRAWS_DOUBLINGS)
    fit = attempt.result
    _note_redone(fit, attempt.notes)
    d = fit.diagnostics
    redone = "".join(f" ({attempt.notes[k]})" for k in ("retried", "more_draws") if k in attempt.notes)
    check = _check(fit, chains=s.chains)  # the redo policy's checks: divergences, R-hat, bulk ESS
    advice = hierarchical_advice(d["divergences"],
                                 next(iter(fit.groups.values())).meta.get("target_accept"))  # a redo's, where it redid
    warn_if_untrustworthy(
        check.ok,
        f"the hierarchical fit's sampler diagnostics fail{redone}: {d['divergences']} divergences, max R-hat "
        f"{d['max_rhat']:.3f}, min bulk ESS {d['min_ess']:.0f} (at least {ESS_PER_CHAIN_MIN * s.chains} wanted); "
        f"do not trust these draws: {advice}")
    return fit


@dataclass(frozen=True)
class _Prepared:
    """What every sampling of one hierarchical fit shares (``fit_hierarchical``; a redo samples it
    again with other settings): the model, its data and the chains' start."""

    law: Law
    runs: Runs
    h: HierarchicalSettings
    noise: Likelihood
    spec: HierSpec
    data: tuple
    init: dict
    start_mass: object
    step_size: object
    groups: list
    group: np.ndarray
    centre: np.ndarray
    partial_names: list
    offsets: Offsets | None
    offset_by: str | None
    warm_start_mode: str | None  # None: a cold start


def _prepare(runs: Runs, law, priors, noise: Likelihood, h: HierarchicalSettings, s: SamplerSettings,
             warm_start, warm_start_mode: str) -> _Prepared:
    """The model of ``fit_hierarchical``, its data arguments (padded) and the chains' start."""
    law = get_law(law) if isinstance(law, str) else law
    check_law(law)
    names_p = law.param_names
    if h.group_by not in runs.frame:
        raise InputError(f"no column {h.group_by!r} to group runs by; columns: {', '.join(runs.frame.columns)}")
    offset_by = resolve_offset_by(runs.frame, h)
    resolved = resolve_priors(law, priors)
    unknown = set(h.spreads or {}) - set(names_p)
    if unknown:
        raise InputError(f"spreads for unknown parameters {sorted(unknown)}; known: {', '.join(names_p)}")
    spreads = {p: DEFAULT_SPREADS.get(p, DEFAULT_SPREAD) for p in names_p} | dict(h.spreads or {})
    shared = h.shared()
    if shared - set(names_p):
        raise InputError(f"cannot share unknown parameters {sorted(shared - set(names_p))}; known: {', '.join(names_p)}")
    modes = _modes(names_p, h.pooling, shared)

    labels = runs.frame[h.group_by].astype(str).to_numpy()
    groups = sorted(set(labels))
    group = np.searchsorted(groups, labels)
    G, n = len(groups), len(runs)
    # Each group's cheap point estimate (``fitting.init``): where chains start, and what places the
    # coordinates' centre and chooses each group's centring.
    estimates = [initial_theta(law, Runs(runs.frame[group == g].reset_index(drop=True))) for g in range(G)]
    centre = _centres(law, h, runs, estimates, group, G, per_group=h.pooling == "none" and not shared)
    common = centre[:, 0]
    partial_names = [p for p in names_p if modes[p] == "partial"]
    lams = {}  # (the groups' own lambdas; unused where they are sampled as their mean and deviations)
    by_mean = h.mean_deviations and G >= 2
    if partial_names and h.centring == "auto" and not by_mean:
        lams = auto_centring(law, runs.N, runs.D, np.log(runs.loss), estimates, group, common,
                             {p: spreads[p] for p in partial_names}, h.spread_prior)
    elif partial_names and not isinstance(h.centring, str) and not by_mean:
        lams = {p: np.full(G, float(v)) for p, v in dict(h.centring).items()}
    centring = np.array([np.clip(lams.get(p, np.zeros(G)), 0.0, 1.0) for p in names_p])
    deviations = _deviation_centring(law, h, runs, estimates, group, common, spreads, partial_names, G)
    offsets, carriers = None, ()
    if offset_by is not None:
        if h.absorb_level and not h.detrend_offsets:
            carriers = level_params(law, resolved, latent_from_natural(law, _scalars(estimates[0]), common),
                                    common, runs.N, runs.D)
        offsets = build_offsets(law, runs.frame[offset_by], runs, estimates, group, detrend=h.detrend_offsets,
                                scale=float(h.offset_scale), centred=h.centring != "none", level_apart=bool(carriers))
    spec = HierSpec(law, resolved, G, h.pooling, modes, spreads, noise,
                    n_offsets=0 if offsets is None else len(offsets.levels),
                    n_offset_coords=0 if offsets is None else offsets.basis.shape[1],
                    offset_scale=float(h.offset_scale), spread_prior=h.spread_prior,
                    level_params=carriers if offsets is not None and offsets.level_apart else (),
                    mean_deviations=bool(h.mean_deviations), stacked=bool(h.stacked))
    capacity = sampler.padded_capacity(n)
    group_p, N, D, log_loss, level = sampler.pad_rows(
        [group, runs.N, runs.D, np.log(runs.loss), np.zeros(n, int) if offsets is None else offsets.index],
        capacity, [0, 1.0, 1.0, 0.0, 0])
    data = (group_p, N, D, centre, centring, level,
            np.zeros(1) if offsets is None else offsets.centring,
            np.zeros((1, 1)) if offsets is None else offsets.basis, log_loss, sampler.row_mask(n, capacity),
            deviations)
    init = sampler.jitter(_initial_point(spec, estimates, common, centring, offsets, deviations), s.chains, s.seed)
    start_mass, step_size = h.start_mass, None
    if warm_start is not None:
        init, start_mass, step_size = _warm_init(warm_start, init, warm_start_mode)
    return _Prepared(law, runs, h, noise, spec, data, init, start_mass, step_size, groups, group, centre,
                     partial_names, offsets, offset_by, None if warm_start is None else warm_start_mode)


def _sampled_fit(p: _Prepared, *, settings: SamplerSettings, fixed_step_at: float | None = None) -> HierarchicalFit:
    """One sampling of the prepared model with ``settings``, as a ``HierarchicalFit``. A warm start in
    mode "fixed" keeps the previous step sizes at target acceptance ``fixed_step_at``; a redo at
    another (``fitting.redo``'s smaller steps) adapts them again from there, as mode "adapted"."""
    s, h, spec, law, runs = settings, p.h, p.spec, p.law, p.runs
    adapt_step_size = fixed_step_at is None or s.target_accept != fixed_step_at
    draws = sampler.sample(partial(hierarchical_model, spec), p.init, p.data,
                           description=spec.description(), settings=s, regularize_mass=REGULARIZE_MASS, adapt_mass=ADAPT_MASS,
                           latent_scale=LATENT_SCALE, start_mass=p.start_mass, warmup_tree_depth=int(h.warmup_tree_depth),
                           start_step_size=p.step_size, adapt_step_size=adapt_step_size,
                           pool_step_size=h.pool_step_size)
    samples, extra, loglik = draws.samples, draws.extra, draws.loglik[..., :len(runs)]
    names_p, common, centre, offsets = law.param_names, p.centre[:, 0], p.centre, p.offsets
    meta = {
        **p.noise.to_meta(), "law": law.name,
        "centre": common.tolist() if np.allclose(centre, common[:, None]) else centre.tolist(),
        "priors": describe_priors(spec.priors), "pooling": h.pooling, "spread_prior": h.spread_prior,
        "shared": [q for q in names_p if spec.modes[q] == "shared"], "group_by": h.group_by, "groups": p.groups,
        "num_chains": s.chains, "num_warmup": s.warmup, "num_draws": s.draws, "seed": s.seed,
        "target_accept": s.target_accept, "sampling_seconds": draws.seconds,
        **({"offset_by": p.offset_by, "offset_levels": offsets.levels, "offset_scale": float(h.offset_scale),
            "offset_detrended": bool(h.detrend_offsets)} if offsets is not None else {}),
    }
    meta.pop("law")  # Posterior.save writes the law itself
    posts = {}
    for g, name in enumerate(p.groups):
        rows = p.group == g
        member = {q: samples[q][..., g] for q in names_p}
        member["sigma"] = samples["sigma"][..., g] if spec.sigma_per_group else samples["sigma"]
        member.update(_offset_draws(samples))
        posts[name] = build_posterior(law, Runs(runs.frame[rows].reset_index(drop=True)), member, extra,
                                      loglik[..., rows], method="nuts-hierarchical", meta={**meta, "group": name})
    population = None if h.pooling == "none" else _population(spec, samples, common, runs, meta, s.seed)
    taus = {q: samples[f"{q}_tau"].reshape(-1) for q in p.partial_names}
    if offsets is not None:
        taus["offset"] = samples["offset_tau"].reshape(-1)
    fit = HierarchicalFit(posts, population, h.pooling, meta["shared"], h.group_by, taus,
                          {**sampler_diagnostics(samples, extra), "sampling_seconds": draws.seconds,
                           "warm_started": p.warm_start_mode is not None, "warm_start_mode": p.warm_start_mode})
    fit.adaptation = {**dict(zip(("init", "inverse_mass"), sampler.warm_start(draws))), "draws": draws}
    return fit


def _check(fit: HierarchicalFit, chains: int) -> redo.Check:
    """The whole-model diagnostics as the redo policy reads them (``fitting.redo``): divergences,
    max R-hat above ``diagnostics.RHAT_MAX`` (1.01) and min bulk ESS below ``ESS_PER_CHAIN_MIN`` (100)
    per chain fail."""
    d = fit.diagnostics
    failed = [name for name, bad in (("divergences", d["divergences"] > 0), ("r_hat", not d["max_rhat"] <= RHAT_MAX),
                                     ("ess_bulk", not d["min_ess"] >= ESS_PER_CHAIN_MIN * chains)) if bad]
    return redo.Check(tuple(failed), int(d["divergences"]), float(d["max_rhat"]), d)


def hierarchical_advice(divergences: int, target_accept) -> str:
    """What to do about a hierarchical fit whose checks fail: more draws where only its effective draws
    fall short or it did not diverge; where it diverged, a higher target_accept unless it is at the
    automatic redo's 0.99 already (then smaller steps will not help: the model must change)."""
    if not divergences:
        return ("draw more and lengthen the warm-up (more_draws=True redoes a fit short of effective draws, as "
                "`fit --group-by` does)")
    if target_accept is not None and float(target_accept) >= 0.99:
        return (f"the divergences remain at target_accept {float(target_accept):g}: simplify the model (--pooling "
                "complete or none, --offset-by none), tighten the priors, or add runs to the small groups")
    return ("raise target_accept (--target-accept 0.95; retry_divergent=True redoes a divergent fit at 0.99, as "
            "`fit --group-by` does), lengthen the warm-up, or simplify the pooling")


def _note_redone(fit: HierarchicalFit, notes: dict) -> None:
    """What the redo policy redid and why (``notes``: "retried", "more_draws"), in the fit's
    diagnostics and in every member's ``meta`` (as a pooled fit's)."""
    fit.diagnostics.update(notes)
    for post in [*fit.groups.values(), *([fit.population] if fit.population is not None else [])]:
        post.meta.update(notes)


def _warm_init(previous: HierarchicalFit, init: dict, mode: str) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """The chains' start, inverse mass matrix and (modes "adapted", "fixed") step sizes from
    ``previous`` (``warm_start``), checked against this fit's sampled sites ``init`` (site -> (chains, ...))."""
    if not isinstance(previous, HierarchicalFit) or not previous.adaptation:
        raise InputError("warm_start must be a HierarchicalFit returned by fit_hierarchical")
    shapes = {k: np.shape(v) for k, v in init.items()}
    before = {k: np.shape(v) for k, v in previous.adaptation["init"].items()}
    if shapes != before:
        changed = sorted(k for k in shapes.keys() | before.keys() if shapes.get(k) != before.get(k))
        raise InputError(f"warm_start: the previous fit's sampled sites differ from this fit's ({', '.join(changed)}: "
                         f"{[before.get(k) for k in changed]} -> {[shapes.get(k) for k in changed]}, chains first); "
                         "fit without warm_start")
    if mode == "draws":
        return dict(previous.adaptation["init"]), previous.adaptation["inverse_mass"], None
    step_size, inverse_mass = sampler.adapted(previous.adaptation["draws"])
    return dict(previous.adaptation["init"]), inverse_mass, step_size


def resolve_offset_by(frame: pd.DataFrame, h: HierarchicalSettings) -> str | None:
    """The column the offsets are taken by: ``h.offset_by``, where "auto" means ``AUTO_OFFSET_COLUMN``
    if the runs have it with two or more values (three with ``detrend_offsets``), else no offsets."""
    offset_by = h.offset_by
    if offset_by == "auto":
        column = frame.get(AUTO_OFFSET_COLUMN)
        offset_by = (AUTO_OFFSET_COLUMN if column is not None and column.nunique() >= (3 if h.detrend_offsets else 2)
                     else None)
    if offset_by is not None and offset_by not in frame:
        raise InputError(f"no column {offset_by!r} to take offsets by; columns: {', '.join(frame.columns)}")
    return offset_by


def _modes(names, pooling: str, shared: set) -> dict:
    if pooling == "complete":
        return {p: "shared" for p in names}
    base = "partial" if pooling == "partial" else "independent"
    return {p: "shared" if p in shared else base for p in names}


def _centres(law, h: HierarchicalSettings, runs, estimates, group, G: int, per_group: bool) -> np.ndarray:
    """(2, G): each group's centre; one for all (repeated) unless ``per_group`` (no pooling with
    nothing shared: independent laws, each in coordinates centred on its own runs)."""
    where = pivot_centre if h.centre == "pivot" else mean_centre
    if per_group:
        return np.array([where(law, runs.N[group == g], runs.D[group == g], [estimates[g]],
                               np.zeros(np.sum(group == g), int)) for g in range(G)]).T
    return np.repeat(np.asarray(where(law, runs.N, runs.D, estimates, group), float)[:, None], G, axis=1)


def _deviation_centring(law, h: HierarchicalSettings, runs, estimates, group, centre, spreads, partial_names,
                        G: int) -> np.ndarray:
    """(P, G - 1): the lambda of each group deviation d_jk under ``mean_deviations``
    (``deviation_centring`` under centring "auto"; 0 under "none", the given value under a
    mapping); zeros (P, 1) where unused."""
    if not (h.mean_deviations and partial_names and G >= 2):
        return np.zeros((len(law.param_names), 1))
    if h.centring == "auto":
        lams = deviation_centring(law, runs.N, runs.D, np.log(runs.loss), estimates, group, centre,
                                  {p: spreads[p] for p in partial_names}, h.spread_prior, deviation_basis(G))
    elif isinstance(h.centring, str):
        lams = {}
    else:
        lams = {p: np.full(G - 1, float(v)) for p, v in dict(h.centring).items()}
    return np.array([np.clip(lams.get(p, np.zeros(G - 1)), 0.0, 1.0) for p in law.param_names])


def _initial_point(spec: HierSpec, estimates: list[dict], centre, centring: np.ndarray, offsets: Offsets | None,
                   deviations: np.ndarray | None = None):
    """The groups' point estimates mapped to the model's sites, in NumPyro's unconstrained
    coordinates (log for tau and sigma; the decentred z of ``LocScaleReparam`` for the groups, or
    under ``mean_deviations`` their mean, eta = 0 and the decentred deviations)."""
    law, G = spec.law, spec.n_groups
    latent = [latent_from_natural(law, _scalars(e), centre) for e in estimates]
    point = {}
    for i, p in enumerate(law.param_names):
        values = np.array([float(x[p]) for x in latent])
        mode = spec.modes[p]
        site = f"{p}_pop_shifted" if p in spec.level_params else f"{p}_pop_latent"  # the level starts at 0
        if mode == "independent":
            point[site] = values
            continue
        mu = values.mean()
        if mode == "partial" and spec.mean_deviations and G >= 2:
            tau = max(values.std(), 0.5 * spec.spreads[p])
            point[f"{p}_mean"], point[f"{p}_tau"], point[f"{p}_pop_eta"] = mu, np.log(tau), np.zeros(())
            point[f"{p}_deviation_decentered"] = deviation_basis(G).T @ values / tau ** (1.0 - deviations[i])
            continue
        point[site] = mu
        if mode == "partial":
            tau = max(values.std(), 0.5 * spec.spreads[p])
            lam = centring[i]
            point[f"{p}_tau"] = np.log(tau)
            point[f"{p}_group_decentered"] = lam * mu + (values - mu) / tau ** (1.0 - lam)
    if spec.stacked and spec.mean_deviations and G >= 2:  # the per-parameter starts, stacked
        names = [p for p in law.param_names if spec.modes[p] == "partial"]
        for role in ("mean", "tau", "pop_eta", "deviation_decentered"):
            if names:
                point[f"partial_{role}"] = np.stack([point.pop(f"{p}_{role}") for p in names])
    point["sigma"] = np.log(np.full(G, 0.02) if spec.sigma_per_group else 0.02)
    if offsets is not None:  # delta_b = 0 (z_b = 0 in any centring), tau_o at half its prior scale
        point["offset_tau"] = np.log(0.5 * spec.offset_scale)
        point["offset_coef_decentered"] = np.zeros(spec.n_offset_coords)
        if spec.level_params:
            point["offset_level_decentered"] = np.zeros(())
    return point


def _scalars(estimate: dict) -> dict:
    return {k: float(np.squeeze(v)) for k, v in estimate.items()}


def _offset_draws(samples: dict) -> dict:
    """The offsets' draws for a Posterior: delta_b (chains, draws, K) and tau_o (absent: none)."""
    if "offset" not in samples:
        return {}
    return {"offset": samples["offset"], "offset_tau": samples["offset_tau"]}


def _population(spec: HierSpec, samples, centre, runs: Runs, meta, seed) -> Posterior:
    """A new group's law: x_new = mu + tau z per draw (mu alone for shared parameters)."""
    rng = np.random.default_rng(seed + 1)
    x = {}
    for p in spec.law.param_names:
        mu = samples[f"{p}_pop_latent"]
        tau = samples.get(f"{p}_tau")
        x[p] = mu if tau is None else mu + tau * rng.standard_normal(mu.shape)
    draws = {k: np.asarray(v) for k, v in natural_from_latent(spec.law, spec.priors, x, centre).items()}
    draws["sigma"] = samples["sigma"]
    draws.update(_offset_draws(samples))
    return build_posterior(spec.law, runs, draws, None, None, method="nuts-hierarchical-population",
                           meta={**meta, "group": POPULATION})


SAMPLED_SUFFIXES = ("_pop_latent", "_pop_shifted", "_tau", "_decentered", "_mean", "_pop_eta")


def sampler_diagnostics(samples: dict, extra: dict) -> dict:
    """Divergences, max R-hat and min bulk ESS (``diagnostics.chain_stats``) over every element of
    the sampled sites, and the mean leapfrog steps per draw."""
    sites = [k for k in samples if k.endswith(SAMPLED_SUFFIXES) or k == "sigma"]
    stats = []
    for k in sites:
        values = np.asarray(samples[k])
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        stats.extend(chain_stats(flat[..., j]) for j in range(flat.shape[-1]) if np.ptp(flat[..., j]) > 0)
    return {"divergences": int(extra["diverging"].sum()),
            "max_rhat": max((st["r_hat"] for st in stats), default=float("nan")),
            "min_ess": min((st["ess_bulk"] for st in stats), default=float("nan")),
            "mean_steps": float(extra["num_steps"].mean())}
