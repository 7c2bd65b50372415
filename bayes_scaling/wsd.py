"""Fits that mix cosine runs and warmup-stable-decay branches: a per-trunk random effect and an
estimated WSD-vs-cosine offset, on top of any ``Law``.

Branches b of one trunk t(b) share the trunk's whole stable phase (initialisation, batches, the
constant-rate trajectory), so their errors are correlated; cosine runs are independent. For runs
i = 1..n, w_i = 1 for a branch and 0 for a cosine run:

    theta ~ the law's priors (sampled in its centred coordinates), sigma ~ the noise prior
    delta ~ Normal(0, offset_scale)                    WSD-vs-cosine offset on log-loss (estimated)
    tau ~ HalfNormal(trunk_scale)                      spread of the trunks' shared deviations
    u_t ~ Normal(0, tau^2)                             per-trunk effect
    log L_i ~ likelihood(log L(N_i, D_i; theta) + w_i (delta + u_t(i)), sigma)

so Cov(log L_b, log L_b') = tau^2 for two branches of one trunk (plus sigma^2 on the diagonal), and
the law itself describes cosine runs: its predictions are cosine-equivalent losses. A branch's
prediction is exp(log L + delta (+ u_t for a known trunk)). The likelihood is the pooled model's
(``models.likelihood``: Student-t or normal on log-loss).

The trunk effects are sampled partially centred (Papaspiliopoulos, Roberts & Skold 2007), as the
hierarchical fit's groups are: with b_t = delta + u_t the trunk's total offset,

    z_t ~ Normal(lambda_t delta, tau^(2 lambda_t)),   b_t = delta + tau^(1 - lambda_t) (z_t - lambda_t delta),

which is the same distribution of b_t for every lambda_t in [0, 1]: lambda_t = 1 samples b_t itself
(centred: best where the trunk's branches pin b_t down, since non-centred z_t = (b_t - delta) / tau is
then a curved ridge in (delta, tau, z_t)), lambda_t = 0 the standardised z_t (non-centred: best where
the population does). ``trunk_centring`` sets lambda_t = tau0^2 / (tau0^2 + s_t^2) from the branches'
residuals at the chains' starting point: s_t the standard error of the trunk's mean residual, tau0^2
the between-trunk variance (DerSimonian-Laird), at most the square of tau's prior median.

The trunk effects are sampled in ``trunk_capacity`` slots (the next power of two, at least 4): the
slots beyond the trunks are prior draws no row uses, so the compiled sampler is reused as trunks
are added (a planner's refits).

Beyond the fitted runs the law is taken as exact ("WSD model (plain law)") unless ``model="extrapolating"``
(``add_wsd_drift``: the extrapolation model's drift, calibrated on the runs with the branches' offset removed;
an option, not the default, by the rule in experiments/wsd_extrapolation_check.py).

Rows come from a run table or ``RunStore.to_frame()``: ``role`` "branch" rows (with ``trunk_id``)
are branches, "run" rows (or a table without ``role``) cosine runs; "trunk" rows are left out of a
table or DataFrame (``Runs.for_fit``, with an ``InputWarning``) and refused in ``Runs`` given as they
are (a trunk's constant-rate loss is not a finished run). Sampling is the shared NUTS driver
(``fitting.sampler.sample``), rows padded to ``padded_capacity`` and masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro import handlers

from bayes_scaling._jax_setup import configure
from bayes_scaling.diagnostics import diagnose, warn_if_untrustworthy
from bayes_scaling.errors import InputError
from bayes_scaling.fitting import redo, sampler_cache
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.fitting.sampler import jitter, pad_rows, padded_capacity, row_mask, sample
from bayes_scaling.fitting.settings import SamplerSettings
from bayes_scaling.hierarchical.centring import between_group_variance
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models.likelihood import Likelihood
from bayes_scaling.posterior import Posterior
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs, as_runs

# prior sd of delta: 5% of the loss. Hagele et al. 2024 find |delta| of a percent or less on runs of thousands
# of updates; on this CPU's runs of 100-800 updates bench_wsd measures delta = -0.052 (one prior sd), and
# experiments/wsd_gap.py finds it shrinking to about -0.007 (log) at 3,125 updates (docs/training.md).
OFFSET_SCALE = 0.05
TRUNK_SCALE = 0.05  # prior scale of tau (half-normal)
# The reliability policy every pooled fit has (``fitting.redo``, as ``SamplerSettings.retry_divergent``
# and ``more_draws`` say): a fit with divergences redone once at target acceptance 0.99, one short only
# of effective draws redone with twice the draws. On since the twenty-fourth session, together with the
# partially centred trunk effects (``trunk_centring``), by the rule declared in
# experiments/wsd_sampling_check.py (``CENTRING_RULE``): on fresh fit seeds 7-18 of the WSD test's simulation
# at the defaults the verdict passed on 12 of 12 (the non-centred model without REDO: 8) at 0.36x the old
# default's median wall time per fit (warm). Alone, REDO had cost 2.13x on the non-centred model (``REDO_RULE``).
REDO = True
# NumPyro's regularisation of the adapted mass matrix (``fitting.sampler.sample(regularize_mass=...)``):
# n/(n + 5) Sigma + 1e-3 5/(n + 5) I over a window of n draws, with NUTS moving in z / LATENT_SCALE, so the
# shrinkage is 1e-3 LATENT_SCALE^2 = 1e-5 I in the model's coordinates (the hierarchical fit's remedy). From 9
# trunks the model has 24 coordinates (16 trunk slots), as many as the first slow adaptation window's 25 draws:
# unregularised, the dense estimate was singular and 1-4 of 4 chains ended the warm-up with a zero mass matrix and
# a step size near 1e-227, every transition divergent (an 11-trunk loop: 0 of 12 fits passed without the redo,
# 12 of 12 with it at 5.5 s). Adopted by the rule declared in experiments/wsd_sampling_check.py
# (``CONFIRM_RULE``, fresh seeds): with the redo 12/12 on both simulations, no stuck chain without it, wall time
# 1.04x on the WSD test's simulation and 0.34x on the loop's.
REGULARIZE_MASS = True
LATENT_SCALE = 0.1
MODEL_NAME = "WSD model (plain law)"  # meta["model"]: what every answer of a plain WSD fit names (cosine-run answers)
MODELS = ("extrapolating", "plain")
# What ``cosine_equivalent`` removes from a branch's loss before the drift's calibration refits: "trunk", its
# fitted delta + u_t; "offset", delta alone (the trunks' scatter, and any misfit of the law they absorb, left in
# the folds' data). By the rule in experiments/wsd_extrapolation_check.py (``CALIBRATION_RULE``), neither made the
# extrapolating model the default, and the option keeps the one with the lower interval score on the drifting
# simulation: "offset" (0.685 against 1.021 for "trunk" and 1.199 for the plain WSD model; coverage 67.5%).
CALIBRATION_SHIFTS = ("trunk", "offset")
CALIBRATION_SHIFT = "offset"
# The model ``fit_wsd`` fits unless told: "plain". The rules declared in experiments/wsd_extrapolation_check.py
# (``ADOPTION_RULE``, ``CALIBRATION_RULE``) did not make "extrapolating" the default: on a simulated 11-trunk loop
# whose law drifts it covered 52.5% / 67.5% of the top 30% of compute, short of 80% (docs/training.md).
DEFAULT_MODEL = "plain"
MORE_DRAWS_DOUBLINGS = redo.MORE_DRAWS_DOUBLINGS  # (read at call time: tests may set it)


@dataclass(frozen=True)
class WSDModel:
    """Everything that defines the model apart from the data: the law, its priors, the likelihood,
    and the prior scales of the offset (``offset_scale``) and of the trunk spread (``trunk_scale``)."""

    law: Law
    priors: dict = field(hash=False)
    likelihood: Likelihood = Likelihood()
    offset_scale: float = OFFSET_SCALE
    trunk_scale: float = TRUNK_SCALE

    def __post_init__(self):
        for name in ("offset_scale", "trunk_scale"):
            if not getattr(self, name) > 0:
                raise InputError(f"WSD model {name} must be positive, got {getattr(self, name)!r}")

    def description(self) -> tuple:
        """What the model depends on besides the data: the key of its compiled sampler."""
        return ("wsd", self.law.name, sampler_cache.law_source_digest(self.law),
                tuple(sorted((k, sampler_cache.prior_fingerprint(v)) for k, v in self.priors.items())),
                *self.likelihood.key(), float(self.offset_scale), float(self.trunk_scale))


def wsd_model(spec: WSDModel, N, D, centre, log_loss, mask, is_branch, trunk_index, centring):
    """The NumPyro model of the module docstring. ``trunk_index`` is each row's trunk (0 for cosine
    rows, where ``is_branch`` = 0 switches the trunk term off); ``centring`` holds lambda_t per trunk
    slot (``trunk_centring``; its length is the number of slots)."""
    theta = spec.law.sample(spec.priors, (centre[0], centre[1]))
    sigma = numpyro.sample("sigma", spec.priors["sigma"])
    delta = numpyro.sample("wsd_offset", dist.Normal(0.0, spec.offset_scale))
    tau = numpyro.sample("trunk_tau", dist.HalfNormal(spec.trunk_scale))
    z = numpyro.sample("trunk_z", dist.Normal(centring * delta, tau**centring).to_event(1))
    u = numpyro.deterministic("trunk_effect", tau ** (1.0 - centring) * (z - centring * delta))
    mu = spec.law.log_loss(theta, N, D) + is_branch * (delta + u[trunk_index])
    with numpyro.plate("runs", N.shape[0]), handlers.mask(mask=mask):
        numpyro.sample("log_loss", spec.likelihood.distribution(mu, sigma), obs=log_loss)


@dataclass
class WSDFit:
    """A fitted WSD model: ``posterior`` (the law's draws, cosine-equivalent, plus sigma, the offset
    and the trunk sites), the trunks in index order, and the runs."""

    posterior: Posterior
    trunks: list[str]
    runs: Runs

    def _draws(self, name: str) -> np.ndarray:
        values = self.posterior.idata["posterior"][name].values
        return values.reshape(-1, *values.shape[2:])

    @property
    def offset(self) -> np.ndarray:
        """Draws of delta, the WSD-vs-cosine offset on log-loss (flattened over chains)."""
        return self._draws("wsd_offset")

    @property
    def trunk_spread(self) -> np.ndarray:
        """Draws of tau."""
        return self._draws("trunk_tau")

    def trunk_effects(self) -> pd.DataFrame:
        """Per trunk: posterior mean, sd and 90% interval of u_t, and its number of branches."""
        u = self._draws("trunk_effect")[:, :len(self.trunks)]  # the slots beyond the trunks are unused
        branches = self.runs.frame[is_branch(self.runs.frame)]["trunk_id"].value_counts()
        lo, hi = np.quantile(u, [0.05, 0.95], axis=0)
        return pd.DataFrame({"trunk_id": self.trunks, "mean": u.mean(axis=0), "sd": u.std(axis=0), "q05": lo,
                             "q95": hi, "branches": [int(branches.get(t, 0)) for t in self.trunks]})


def is_branch(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of a run table are WSD branches (``role`` "branch"; a table without ``role`` has none)."""
    if "role" not in frame:
        return np.zeros(len(frame), bool)
    return (frame["role"].fillna("run") == "branch").to_numpy()


def _design(runs: Runs) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(is_branch, trunk_index, trunk ids) of the rows; ``InputError`` naming the row for a trunk
    row or a branch without its trunk."""
    frame = runs.frame
    if "role" in frame:
        bad = frame[~frame["role"].fillna("run").isin(["run", "branch"])]
        if len(bad):
            raise InputError(f"run {bad['run_id'].iloc[0]!r}: field 'role' is {bad['role'].iloc[0]!r}; a WSD fit takes "
                             "cosine runs ('run') and branches ('branch'), not trunks (a trunk's loss is taken at a "
                             "constant learning rate)")
    branch = is_branch(frame)
    ids = frame["trunk_id"].fillna("").astype(str).to_numpy() if "trunk_id" in frame else np.full(len(frame), "")
    missing = branch & (ids == "")
    if missing.any():
        raise InputError(f"run {frame['run_id'].to_numpy()[missing][0]!r}: field 'trunk_id' is empty; a branch must "
                         "name its trunk")
    trunks = sorted(set(ids[branch]))
    index = np.array([trunks.index(t) if b else 0 for t, b in zip(ids, branch)], np.int32)
    return branch.astype(np.float64), index, trunks


def trunk_capacity(n_trunks: int) -> int:
    """Slots for the trunk effects: the next power of two >= ``n_trunks``, at least 4."""
    return max(4, 1 << max(n_trunks - 1, 0).bit_length())


def trunk_centring(runs: Runs, law: Law, theta: dict, branch: np.ndarray, trunk_index: np.ndarray,
                   n_trunks: int, slots: int, trunk_scale: float) -> np.ndarray:
    """lambda_t per trunk slot (module docstring): tau0^2 / (tau0^2 + s_t^2), 0 for the unused slots.

    With r_i = log L_i - log L(N_i, D_i; theta) at the starting point ``theta``, m_t the mean of
    trunk t's n_t branch residuals and sigma^2 the pooled variance of the residuals about their
    group's mean (the cosine runs one group, each trunk another), s_t^2 = sigma^2 / n_t and
    tau0^2 = min(DerSimonian-Laird of the m_t with standard errors s_t (``hierarchical.centring.
    between_group_variance``; var_t(m_t) - s^2 where every trunk has as many branches), (0.674 trunk_scale)^2):
    capped at tau's prior median, as ``auto_centring`` caps its groups' (a trunk spread the data cannot tell
    from 0 is sampled non-centred, where the funnel is). A poor start inflates sigma: non-centred again.
    ``branch``: 1 for a branch row, 0 for a cosine run; ``trunk_index``: each branch's trunk."""
    lam = np.zeros(slots)
    r = np.log(runs.loss) - np.asarray(law.log_loss({k: np.float64(v) for k, v in theta.items()}, runs.N, runs.D))
    groups = np.where(branch > 0, trunk_index, -1)
    counts = np.array([(groups == t).sum() for t in range(n_trunks)])
    means = np.array([r[groups == t].mean() for t in range(n_trunks)])
    deviations = np.concatenate([r[groups == g] - r[groups == g].mean() for g in np.unique(groups)])
    dof = len(r) - len(np.unique(groups))
    if n_trunks < 2 or dof < 1 or not np.all(np.isfinite(r)):
        return lam
    se2 = (deviations @ deviations / dof) / counts
    tau2 = min(float(between_group_variance(means[:, None], np.sqrt(se2)[:, None])[0]), (0.6745 * trunk_scale) ** 2)
    lam[:n_trunks] = tau2 / (tau2 + se2)
    return lam


def fit_wsd(runs: Runs | pd.DataFrame, *, law: Law | str = "chinchilla", priors=None, likelihood: Likelihood = Likelihood(),
            offset_scale: float = OFFSET_SCALE, trunk_scale: float = TRUNK_SCALE,
            settings: SamplerSettings | None = None, model: str | None = None) -> WSDFit:
    """Sample the WSD model (module docstring) given cosine runs and branches; ``settings``: the
    shared sampler settings (chains, warm-up, draws, seed; ``init`` "projection" or natural values).
    With ``REDO`` (on) a fit that fails its checks is first redone by ``fitting.redo``'s policy, as far as
    ``settings.retry_divergent`` and ``settings.more_draws`` allow (``meta`` says what was redone); one that
    still fails warns (``SamplerWarning``, with the verdict), as ``fit_nuts`` does. ``model``: "plain"
    (the law assumed exact beyond the runs) or "extrapolating" (``add_wsd_drift``: the law's drift beyond
    the runs, calibrated as ``fit_nuts``'s default model is); default ``DEFAULT_MODEL``."""
    model = DEFAULT_MODEL if model is None else model
    if model not in MODELS:
        raise InputError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    configure()  # float64 and host devices, before the starting point is computed
    runs = as_runs(runs)
    settings = SamplerSettings.resolve(settings)
    law = get_law(law) if isinstance(law, str) else law
    if len(runs) < len(law.param_names) + 1:
        raise InputError(f"need at least {len(law.param_names) + 1} runs to fit {law.name}, got {len(runs)}")
    spec = WSDModel(law=law, priors=resolve_priors(law, priors), likelihood=likelihood, offset_scale=offset_scale,
                    trunk_scale=trunk_scale)
    is_branch, trunk_index, trunks = _design(runs)
    n, capacity = len(runs), padded_capacity(len(runs))
    N, D, log_loss, w = pad_rows([runs.N, runs.D, np.log(runs.loss), is_branch], capacity, fill=[1.0, 1.0, 0.0, 0.0])
    (index,) = pad_rows([trunk_index], capacity, fill=0)
    centre = np.array([np.mean(np.log(runs.N)), np.mean(np.log(runs.D))])
    slots = trunk_capacity(len(trunks))
    theta0 = dict(settings.init) if not isinstance(settings.init, str) else initial_theta(law, runs.for_fit(True))
    centring = trunk_centring(runs, law, theta0, is_branch, trunk_index, len(trunks), slots, trunk_scale)
    data = (N, D, centre, log_loss, row_mask(n, capacity), w, index, centring)

    start = {k: float(v) for k, v in law.latent_from_natural({k: np.float64(theta0[k]) for k in law.param_names},
                                                             (centre[0], centre[1])).items()}
    start.update(sigma=np.log(0.02), wsd_offset=0.0, trunk_tau=np.log(0.5 * trunk_scale))
    start["trunk_z"] = np.zeros(slots)

    def one(settings: SamplerSettings) -> Posterior:
        draws = sample(partial(wsd_model, spec), jitter(start, settings.chains, settings.seed), data,
                       description=spec.description(), settings=settings, regularize_mass=REGULARIZE_MASS,
                       latent_scale=LATENT_SCALE)
        meta = {"model": MODEL_NAME, "likelihood": likelihood.kind, "nu": likelihood.nu, "centre": list(map(float, centre)),
                "priors": describe_priors(spec.priors), "offset_scale": offset_scale, "trunk_scale": trunk_scale,
                "trunks": trunks, "trunk_centring": centring[:len(trunks)].tolist(), "num_chains": settings.chains, "num_warmup": settings.warmup,
                "num_draws": settings.draws, "seed": settings.seed, "sampling_seconds": draws.seconds}
        return build_posterior(law, runs, draws.samples, draws.extra, draws.loglik[..., :n], method="nuts-wsd", meta=meta)

    policy = settings if REDO else settings.replace(retry_divergent=False, more_draws=False)
    attempt = redo.redone(one, lambda posterior: redo.Check.from_diagnosis(diagnose(posterior)), policy,
                          doublings=MORE_DRAWS_DOUBLINGS)
    posterior, diagnosis = attempt.result, attempt.check.detail
    posterior.meta.update(attempt.notes)
    warn_if_untrustworthy(diagnosis.ok, diagnosis.verdict())
    if model == "extrapolating":
        posterior = add_wsd_drift(posterior)
    return WSDFit(posterior=posterior, trunks=trunks, runs=runs)


def cosine_equivalent(posterior: Posterior, shift: str | None = None) -> Runs:
    """A WSD fit's runs with each branch's loss divided by exp of its fitted shift: cosine-equivalent losses,
    the plain law's own data. ``shift`` (default ``CALIBRATION_SHIFT``): "trunk", the posterior mean of
    delta + u_t (``Posterior.branch_shift_draws``); "offset", that of delta alone."""
    shift = CALIBRATION_SHIFT if shift is None else shift
    if shift not in CALIBRATION_SHIFTS:
        raise InputError(f"shift must be one of {', '.join(CALIBRATION_SHIFTS)}, got {shift!r}")
    frame = posterior.runs.frame
    branch = is_branch(frame)
    if shift == "offset":
        mean = np.where(branch, float(np.mean(posterior.draws("wsd_offset"))), 0.0)
    else:
        trunk = frame["trunk_id"].fillna("").astype(str).to_numpy() if "trunk_id" in frame else np.full(len(frame), "")
        mean = posterior.branch_shift_draws(np.where(branch, trunk, None), (posterior.num_draws, len(frame))).mean(axis=0)
    return Runs(frame.assign(loss=frame["loss"].to_numpy(np.float64) * np.exp(-mean)))


def add_wsd_drift(posterior: Posterior) -> Posterior:
    """A WSD fit made extrapolation-aware: the drift (``extrapolation``: the law's exponents, allocation and
    level drifting beyond the fitted runs) calibrated on leave-future-out Laplace refits of the plain law to
    the fit's cosine-equivalent runs (``cosine_equivalent``: each branch's fitted WSD offset removed, and with
    ``CALIBRATION_SHIFT`` "trunk" its trunk's effect too), then attached to the WSD fit's theta draws
    (``fitting.nuts.add_drift``). A branch is predicted as the drifted law plus its shift. The shifts are
    estimated from all the runs, the held-out runs of a fold included: a nuisance the branch-cosine pairs
    pin down, not the law's extrapolation, which each fold learns from its lower runs only."""
    from bayes_scaling.fitting.nuts import add_drift

    return add_drift(posterior, runs=cosine_equivalent(posterior))


def fit_like_wsd(posterior: Posterior, progress: bool = False):
    """A fit callable (runs -> Posterior) with the law, likelihood, prior scales, sampler settings and model of
    a saved WSD fit, for backtesting the runs it was fitted to (``backtest.fit_like``)."""
    meta = posterior.meta
    settings = SamplerSettings(chains=int(meta["num_chains"]), warmup=int(meta["num_warmup"]),
                               draws=int(meta["num_draws"]), seed=int(meta["seed"]), progress=progress)

    model = "extrapolating" if posterior.model == "extrapolating" else "plain"

    def fit(runs: Runs) -> Posterior:
        return fit_wsd(runs, law=posterior.law, likelihood=Likelihood.from_meta(meta), settings=settings,
                       offset_scale=float(meta.get("offset_scale", OFFSET_SCALE)),
                       trunk_scale=float(meta.get("trunk_scale", TRUNK_SCALE)), model=model).posterior

    return fit
