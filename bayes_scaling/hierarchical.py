"""Hierarchical Chinchilla: one law per group (dataset, architecture, ...), tied by a population.

For groups g = 1..G and runs i in group g(i), each group's law is sampled in log coordinates

    x_g = (log E_g, log A_g - alpha_g n_c, log B_g - beta_g d_c, log alpha_g, log beta_g)

around a centre (n_c, d_c) common to all groups (``pivot_centre``: the log N and log D at which the
data measure each reducible term independently of its exponent; under no pooling each group's own).
The second and third coordinates are the log reducible terms at the centre. The shear
(log A, alpha) -> (log A - alpha n_c, alpha) has unit Jacobian, so priors stated on A stay priors on A.

    partial pooling:   x_gk = mu_k + tau_k^(1 - lambda_gk) (z_gk - lambda_gk mu_k),
                       z_gk ~ Normal(lambda_gk mu_k, tau_k^lambda_gk),
                       which is x_gk ~ Normal(mu_k, tau_k^2) for every lambda_gk in [0, 1]
                       (lambda = 0 non-centred, 1 centred; ``auto_centring`` picks it per group and
                       parameter, for the sampler only: the model does not depend on it);
                       tau_k ~ HalfNormal(s_k) or (``spread_prior="gamma"``) the zero-avoiding
                       Gamma(2, 2 / m_k) with the same mean m_k = s_k sqrt(2/pi)
    no pooling:        x_gk = mu_gk, each group with its own prior
    complete pooling:  x_gk = mu_k, one law for all groups
    share_exponents:   alpha and beta population-only (x_g,alpha = mu_alpha, ...)
    share=(names):     those parameters population-only, e.g. share=("A", "B", "alpha", "beta"):
                       groups differ only in irreducible loss E

    log L_i ~ StudentT(nu, log L(N_i, D_i; theta_g(i)) + delta_b(i), sigma)
                  (or Normal; sigma shared, except per group under no pooling)

Budget offsets (``offset_by=COLUMN``; by default a ``budget`` column where the runs have one, else
none: delta = 0): a crossed random effect. Runs that
share a value b of COLUMN (an IsoFLOP budget) share an additive offset on log-loss, common to all
groups:

    delta_b = tau_o^(1 - lambda_b) z_b,   z_b ~ Normal(0, tau_o^lambda_b),   tau_o ~ HalfNormal(s_o)

i.e. delta_b ~ Normal(0, tau_o^2) (lambda_b in [0, 1] as above, for the sampler only). It absorbs a
misfit of the law that every group shares at one budget, so that it does not bend the groups'
laws. s_o = ``OFFSET_SCALE`` = 0.01 (1% of the loss): on Marin the law's budget-level mean residuals
are 0.5-0.7%.

Detrended offsets (``detrend_offsets=True``): free offsets can also take up a level and a trend in
log C, which belong to the laws (on Marin they rise with the budget and the laws left over descend
too fast). Detrended, with u_b = log of level b's value (the column must be numeric and positive)
and Q (B x (B - 2)) an orthonormal basis of the orthogonal complement of span{1, u} in R^B
(``detrending_basis``; B >= 3 levels),

    delta = Q c,   c_k = tau_o^(1 - lambda_k) z_k,   z_k ~ Normal(0, tau_o^lambda_k)

i.e. c_k ~ Normal(0, tau_o^2) and delta ~ Normal(0, tau_o^2 Q Q^T): sum_b delta_b = 0 and
sum_b u_b delta_b = 0 in every draw, so the offsets carry only budget-to-budget wiggles and the
law keeps the whole level and linear trend in log C. lambda_k as for the free offsets, from the
standard error of the k-th component of the levels' mean residuals.

A prediction at a level seen in the fit uses that level's delta_b draws; at an unseen
level (or none given) a fresh delta ~ Normal(0, tau_o^2) per draw (``Posterior.predict``'s
``offset_at``), detrended or not (a new budget's wiggle, with the fitted levels' spread tau_o).

Priors: the population value of each parameter has the law's prior on its natural scale (the
LogNormal (loc, scale) of ``E, A, B, alpha, beta``). No pooling gives every group that same prior,
so it equals G separate pooled fits. A new group's law is drawn from the population:
x_new = mu + tau z, z ~ Normal(0, 1), one z per posterior draw.

The centre matters for partial pooling only: it says where the groups' reducible terms are pooled
(under no or complete pooling any centre gives the same posterior).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import log_likelihood

from bayes_scaling._jax_setup import configure
from bayes_scaling.diagnostics import warn_if_untrustworthy
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Chinchilla
from bayes_scaling.models import DEFAULT_NU, LIKELIHOODS
from bayes_scaling.posterior import Posterior, offset_key
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs

POOLINGS = ("partial", "none", "complete")
CENTRES = ("pivot", "mean")
CENTRINGS = ("auto", "none")
PARAMS = ("alpha", "beta", "E", "A", "B")  # sampling order: A's and B's shears need the exponents
EXPONENTS = ("alpha", "beta")
# HalfNormal scales of the group spreads tau_k, in log units: groups' E differ by ~10%, their
# reducible terms at the pivot centre by ~50%, their exponents by ~20% (relative). Kept over narrow
# spreads (0.1 on A and B, 0.05 on the exponents) and over shared exponents by a held-out check on
# the Marin runs below 3e20 FLOPs, where wide and narrow tie within Monte Carlo noise
# (experiments/marin_pooling.py, docs/hierarchical.md).
DEFAULT_SPREADS = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}
POPULATION = "population (new group)"
HALFNORMAL_MEDIAN = 0.6745  # median of HalfNormal(1)
# Prior families for the group spreads tau_k, each with the same mean s_k sqrt(2/pi) for a scale s_k:
# "halfnormal" (HalfNormal(s_k)) and "gamma" (Gamma(2, rate 2 / (s_k sqrt(2/pi))), zero-avoiding:
# its density vanishes at tau = 0, Chung et al. 2013), and the prior median of tau_k per unit s_k.
SPREAD_PRIORS = ("halfnormal", "gamma")
SPREAD_PRIOR_MEDIAN = {"halfnormal": HALFNORMAL_MEDIAN, "gamma": 1.678347 * np.sqrt(2 / np.pi) / 2}
# Default "gamma": by experiments/marin_spread_prior.py's declared rule it passes the selection rule
# of experiments/marin_pooling.py and samples the selected model on Marin with 3 divergences over six
# fits against HalfNormal's 548 (one HalfNormal fit never converged) (docs/hierarchical.md).
DEFAULT_SPREAD_PRIOR = "gamma"
# HalfNormal scale of tau_o, the spread of the per-level offsets delta_b on log-loss (``offset_by``):
# a prior median of 0.0067 (0.7% of the loss), 95% below 0.02. The Chinchilla law's mean residual per
# IsoFLOP budget on Marin is -0.020 to +0.018 nats at L ~ 2.6-3.2, i.e. -0.7% to +0.6%.
OFFSET_SCALE = 0.01
# ``offset_by="auto"`` (the default) takes offsets by this column where the runs have it with two or
# more values: chosen by the pre-registered rule of experiments/marin_pooling.py (docs/hierarchical.md).
AUTO_OFFSET_COLUMN = "budget"
# Default of ``detrend_offsets``: False. experiments/marin_pooling.py's pre-registered rule (with its
# unseen-budget step) picked free offsets over detrended ones on Marin (docs/hierarchical.md).
DETREND_OFFSETS = False


@dataclass(frozen=True)
class HierSpec:
    """Everything that defines the hierarchical model apart from the data."""

    n_groups: int
    pooling: str
    modes: dict  # parameter -> "partial" | "independent" | "shared"
    loc_scale: dict  # parameter -> (loc, scale) of the Normal prior on its log
    sigma_prior: dist.Distribution
    spreads: dict
    likelihood: str = "student_t"
    nu: float = DEFAULT_NU
    centring: dict = field(default_factory=dict)  # parameter -> lambda_g per group (absent: 0)
    n_offsets: int = 0  # levels of the offset column (0: no offsets)
    offset_scale: float = OFFSET_SCALE
    offset_lam: np.ndarray | None = None  # lambda per offset coordinate (None: non-centred)
    offset_basis: np.ndarray | None = None  # detrended: Q (levels x (levels - 2)); None: free offsets
    spread_prior: str = DEFAULT_SPREAD_PRIOR

    def lam(self, name: str) -> np.ndarray:
        return np.asarray(self.centring.get(name, np.zeros(self.n_groups)), dtype=float)

    @property
    def n_offset_coords(self) -> int:
        """Sampled offset coordinates: one per level (free) or levels - 2 (detrended)."""
        return self.n_offsets if self.offset_basis is None else int(self.offset_basis.shape[1])

    @property
    def sigma_per_group(self) -> bool:
        return self.pooling == "none"


def hierarchical_model(spec: HierSpec, group, N, D, centre, log_loss=None, offset=None):
    """The model above; ``group`` holds each run's group index in 0..G-1; ``centre`` is
    (n_c, d_c), each a scalar or (no pooling) one per group; ``offset`` each run's level index in
    0..K-1 of the offset column (with ``spec.n_offsets`` = K > 0)."""
    G = spec.n_groups
    log_n_c, log_d_c = centre
    mu, x = {}, {}
    for name in PARAMS:
        mode = spec.modes[name]
        shift = 0.0  # the shears x_A = log A - alpha n_c, x_B = log B - beta d_c
        if name in ("A", "B"):
            shift = jnp.exp(mu["alpha"]) * log_n_c if name == "A" else jnp.exp(mu["beta"]) * log_d_c
        shape = (G,) if mode == "independent" else ()
        mu[name] = numpyro.sample(f"{name}_pop_latent", dist.ImproperUniform(dist.constraints.real, (), shape))
        loc, scale = spec.loc_scale[name]
        numpyro.factor(f"{name}_pop_prior", jnp.sum(dist.Normal(loc, scale).log_prob(mu[name] + shift)))
        if mode == "partial":
            tau = numpyro.sample(f"{name}_tau", spread_distribution(spec.spread_prior, spec.spreads[name]))
            lam = jnp.asarray(spec.lam(name))
            z = numpyro.sample(f"{name}_z", dist.Normal(lam * mu[name], tau**lam))
            x[name] = mu[name] + tau ** (1.0 - lam) * (z - lam * mu[name])
        else:
            x[name] = jnp.broadcast_to(mu[name], (G,))
    theta = _natural(x, centre)
    for name, value in theta.items():
        numpyro.deterministic(name, value)
    sigma = numpyro.sample("sigma", spec.sigma_prior.expand((G,)) if spec.sigma_per_group else spec.sigma_prior)
    sigma_i = sigma[group] if spec.sigma_per_group else sigma
    loc = Chinchilla().log_loss({k: v[group] for k, v in theta.items()}, N, D)
    if spec.n_offsets:
        tau_o = numpyro.sample("offset_tau", dist.HalfNormal(spec.offset_scale))
        k = spec.n_offset_coords
        lam = jnp.zeros(k) if spec.offset_lam is None else jnp.asarray(spec.offset_lam)
        z = numpyro.sample("offset_z", dist.Normal(jnp.zeros(k), tau_o**lam))
        coef = tau_o ** (1.0 - lam) * z  # ~ Normal(0, tau_o^2) per coordinate
        delta = numpyro.deterministic("offset", coef if spec.offset_basis is None else jnp.asarray(spec.offset_basis) @ coef)
        loc = loc + delta[offset]
    noise = dist.Normal(loc, sigma_i) if spec.likelihood == "normal" else dist.StudentT(spec.nu, loc, sigma_i)
    with numpyro.plate("runs", N.shape[0]):
        numpyro.sample("log_loss", noise, obs=log_loss)


def spread_distribution(family: str, scale: float) -> dist.Distribution:
    """The prior of a group spread tau_k with scale s_k: HalfNormal(s_k), or the zero-avoiding
    Gamma(2, rate 2 / m) with the same mean m = s_k sqrt(2/pi) (density 0 at tau = 0, mode m / 2)."""
    if family == "gamma":
        return dist.Gamma(2.0, 2.0 / (scale * np.sqrt(2 / np.pi)))
    if family == "halfnormal":
        return dist.HalfNormal(scale)
    raise InputError(f"spread_prior must be one of {', '.join(SPREAD_PRIORS)}, got {family!r}")


def _natural(x, centre):
    """Natural parameters from the sampling coordinates x (any leading shape)."""
    log_n_c, log_d_c = centre
    alpha, beta = jnp.exp(x["alpha"]), jnp.exp(x["beta"])
    return {
        "E": jnp.exp(x["E"]),
        "A": jnp.exp(x["A"] + alpha * log_n_c),
        "B": jnp.exp(x["B"] + beta * log_d_c),
        "alpha": alpha,
        "beta": beta,
    }


def _information(N, D, theta) -> np.ndarray:
    """J^T J for one group's runs, J_i the gradient of log L_i in
    phi = (log E, log A, alpha, log B, beta): J_i = (E, a_i, -a_i log N_i, b_i, -b_i log D_i) / L_i
    with a_i = A N_i^-alpha, b_i = B D_i^-beta. Near theta the posterior covariance of phi is about
    sigma^2 (J^T J)^-1 (a Laplace approximation of a Normal likelihood on log L)."""
    a, b = theta["A"] * N ** -theta["alpha"], theta["B"] * D ** -theta["beta"]
    loss = theta["E"] + a + b
    J = np.stack([np.full_like(N, theta["E"]), a, -a * np.log(N), b, -b * np.log(D)], axis=1) / loss[:, None]
    return J.T @ J


def mean_centre(N, D, estimates=None, group=None) -> tuple[float, float]:
    """(mean log N, mean log D): the pooled model's centre."""
    return float(np.mean(np.log(N))), float(np.mean(np.log(D)))


def pivot_centre(N, D, estimates: list[dict], group) -> tuple[float, float]:
    """The log N and log D at which each group's reducible terms are measured independently of
    their exponents, averaged over groups.

    With Sigma = (J^T J)^-1 (``_information``, up to sigma^2) the shear x_A = log A - alpha n_c has
    cov(x_A, alpha) = Sigma_(log A, alpha) - n_c Sigma_(alpha, alpha), which vanishes at

        n_c = Sigma_(log A, alpha) / Sigma_(alpha, alpha),   likewise d_c = Sigma_(log B, beta) / Sigma_(beta, beta).

    ``estimates`` are point estimates of each group's law (``group`` indexes them per run); the
    centre is the mean of the groups' (n_c, d_c), one for all groups so that the partially pooled
    coordinates mean the same in every group. On Marin it sits near N = 1.3e8 and D = 5e8, far below
    the mean log N and log D (1.3e9, 8e9): at the mean the posterior draws of x_A and alpha are
    correlated about -0.96, at the pivot about -0.05.
    """
    N, D, group = np.asarray(N, float), np.asarray(D, float), np.asarray(group)
    pivots = []
    for g, theta in enumerate(estimates):
        cov = np.linalg.pinv(_information(N[group == g], D[group == g], theta))
        pivots.append((cov[1, 2] / cov[2, 2], cov[3, 4] / cov[4, 4]))
    n_c, d_c = np.mean(pivots, axis=0)
    return float(n_c), float(d_c)


def auto_centring(N, D, log_loss, estimates: list[dict], group, centre, spreads: Mapping[str, float],
                  spread_prior: str = DEFAULT_SPREAD_PRIOR) -> dict:
    """Per group and parameter, how far to centre its parameterisation: lambda_gk in [0, 1].

    For x_g ~ Normal(mu, tau^2) observed through data with standard error s_g, the sampler's best
    coordinates are the partially centred z_g = lambda_g mu + tau^(lambda_g - 1) (x_g - mu) with
    lambda_g = tau^2 / (tau^2 + s_g^2) (Papaspiliopoulos, Roberts & Skold 2007; Gorinova, Moore &
    Hoffman 2020): centred (lambda = 1) where the group's data pin x_g down, non-centred (0) where
    the population does. Here s_gk is the Laplace standard error of x_gk from the group's point
    estimate (``_information``, sigma from its residuals), and tau_k^2 the DerSimonian-Laird
    estimate of the between-group variance of the point estimates (``_between_group_variance``),
    at most the square of the prior median of tau_k
    (0.674 s_k for HalfNormal(s_k), 0.670 s_k for the Gamma, ``spreads``): a sparse group's wild
    point estimate must not make the others centred where tau may be small, which is a funnel. Only the sampler's efficiency
    depends on these values, not the posterior. Returns {parameter: lambda per group} for the
    parameters in ``spreads``.
    """
    N, D, log_loss, group = (np.asarray(v, float) for v in (N, D, log_loss, group))
    n_c, d_c = (float(c) for c in centre)
    xs, ses = [], []
    for g, estimate in enumerate(estimates):
        theta = {k: float(np.squeeze(v)) for k, v in estimate.items()}
        rows = group == g
        resid = log_loss[rows] - np.log(theta["E"] + theta["A"] * N[rows] ** -theta["alpha"]
                                        + theta["B"] * D[rows] ** -theta["beta"])
        sigma = np.sqrt(np.mean(resid**2))
        cov = sigma**2 * np.linalg.pinv(_information(N[rows], D[rows], theta))
        # x = (log E, log A - alpha n_c, log B - beta d_c, log alpha, log beta) = M phi (to first order)
        M = np.array([[1, 0, 0, 0, 0], [0, 1, -n_c, 0, 0], [0, 0, 0, 1, -d_c],
                      [0, 0, 1 / theta["alpha"], 0, 0], [0, 0, 0, 0, 1 / theta["beta"]]])
        ses.append(np.sqrt(np.diag(M @ cov @ M.T)))
        xs.append([np.log(theta["E"]), np.log(theta["A"]) - theta["alpha"] * n_c,
                   np.log(theta["B"]) - theta["beta"] * d_c, np.log(theta["alpha"]), np.log(theta["beta"])])
    xs, ses = np.array(xs), np.array(ses)
    order = ("E", "A", "B", "alpha", "beta")
    tau2 = _between_group_variance(xs, ses)
    medians = SPREAD_PRIOR_MEDIAN[spread_prior] * np.array([spreads.get(k, 0.0) for k in order])
    tau2 = np.minimum(tau2, medians**2)
    lam = tau2 / (tau2 + ses**2)
    return {k: lam[:, order.index(k)] for k in spreads}


@dataclass
class HierarchicalFit:
    """What ``fit_hierarchical`` returns.

    ``groups``: group name -> ``Posterior`` of that group's Chinchilla law (the ordinary type:
    ``frontier``, ``predict``, ``summary``, ``save`` all work; its runs are the group's runs and its
    ``log_likelihood`` their pointwise log-likelihoods under the joint fit).
    ``population``: the ``Posterior`` of a *new* group's law drawn from the population (its runs are
    all runs; no log-likelihood); None under no pooling, where groups share nothing.
    ``spreads``: draws of each tau_k (partial pooling). ``diagnostics``: divergences, max split
    R-hat and min bulk ESS over all sampled sites.
    """

    groups: dict[str, Posterior]
    population: Posterior | None
    pooling: str
    shared: list[str]  # parameters common to all groups (all of them under complete pooling)
    group_by: str
    spreads: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    def frontier(self, budgets, level: float = 0.9) -> pd.DataFrame:
        """Each group's frontier table (and the population's), stacked with a ``group`` column."""
        members = {**self.groups, **({POPULATION: self.population} if self.population is not None else {})}
        tables = [post.frontier(budgets, level).assign(group=name) for name, post in members.items()]
        return pd.concat(tables, ignore_index=True)


def fit_hierarchical(
    runs: Runs,
    *,
    group_by: str = "group",
    pooling: str = "partial",
    share_exponents: bool = False,
    share: Iterable[str] = (),
    priors: Mapping[str, dist.Distribution] | None = None,
    spreads: Mapping[str, float] | None = None,
    likelihood: str = "student_t",
    nu: float = DEFAULT_NU,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_draws: int = 500,
    target_accept: float = 0.9,
    seed: int = 0,
    progress: bool = False,
    centring: Mapping[str, float] | str = "auto",
    centre: str = "pivot",
    offset_by: str | None = "auto",
    offset_scale: float = OFFSET_SCALE,
    detrend_offsets: bool = DETREND_OFFSETS,
    spread_prior: str = DEFAULT_SPREAD_PRIOR,
) -> HierarchicalFit:
    """Fit the hierarchical Chinchilla model to ``runs`` grouped by the column ``group_by``.

    ``pooling``: "partial" (groups around a learned population), "none" (independent laws, one
    sigma each) or "complete" (one law). ``share_exponents``: alpha and beta common to all groups;
    ``share``: any parameters common to all groups (``share_exponents`` adds alpha and beta).
    ``priors`` override the law's LogNormal priors (population level) or sigma's; ``spreads`` the
    scales s_k of the tau_k, whose prior is ``spread_prior``: "halfnormal" (HalfNormal(s_k)) or
    "gamma" (zero-avoiding Gamma(2) with HalfNormal(s_k)'s mean, ``spread_distribution``).
    Returns a ``HierarchicalFit`` (per-group ``Posterior``s and a population ``Posterior``).

    ``centre``: "pivot" (``pivot_centre``) or "mean" (mean log N, log D of the runs, the first
    version's): where the shears x_A, x_B are taken, and so, under partial pooling, where the
    groups' reducible terms are pooled. ``centring``: "auto" (``auto_centring``), "none" (every
    group non-centred, lambda = 0) or a mapping parameter -> lambda; it changes how NUTS moves, not
    the model. ``centre="mean", centring="none"`` is the sampler before issue 6's fix, kept to
    measure against.

    ``offset_by``: a column (e.g. ``"budget"``, the IsoFLOP budget) whose levels each get an
    offset delta_b on log-loss shared by all groups; "auto" (default): ``"budget"`` where the runs
    have that column with two or more values, else none; None: no offsets. Offsets are
    delta_b ~ Normal(0, tau_o^2), tau_o ~ HalfNormal(``offset_scale``); see the module docstring. The group and population
    Posteriors then carry the draws of delta_b (``offset``) and tau_o (``offset_tau``), and their
    ``predict(..., offset_at=levels)`` uses them.

    ``detrend_offsets``: constrain the offsets to carry no level and no linear trend in log of the
    column's value across the fitted levels (delta = Q c, Q the basis of ``detrending_basis``), so
    the laws keep the trend; needs a numeric, positive column with three or more levels ("auto"
    then takes the budget column only where it has three or more values).
    """
    configure()
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if centre not in CENTRES:
        raise InputError(f"centre must be one of {', '.join(CENTRES)}, got {centre!r}")
    if isinstance(centring, str) and centring not in CENTRINGS:
        raise InputError(f"centring must be one of {', '.join(CENTRINGS)} or a mapping of parameter to lambda, got {centring!r}")
    if likelihood not in LIKELIHOODS:
        raise InputError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    if spread_prior not in SPREAD_PRIORS:
        raise InputError(f"spread_prior must be one of {', '.join(SPREAD_PRIORS)}, got {spread_prior!r}")
    if not 0.0 < target_accept < 1.0:
        raise InputError(f"target_accept (--target-accept) must lie strictly between 0 and 1, got {target_accept!r}")
    if group_by not in runs.frame:
        raise InputError(f"no column {group_by!r} to group runs by; columns: {', '.join(runs.frame.columns)}")
    if offset_by == "auto":
        column = runs.frame.get(AUTO_OFFSET_COLUMN)
        offset_by = (AUTO_OFFSET_COLUMN if column is not None and column.nunique() >= (3 if detrend_offsets else 2)
                     else None)
    if offset_by is not None and offset_by not in runs.frame:
        raise InputError(f"no column {offset_by!r} to take offsets by; columns: {', '.join(runs.frame.columns)}")
    if not (np.isfinite(offset_scale) and offset_scale > 0):
        raise InputError(f"offset_scale must be a positive number, got {offset_scale!r}")
    law = Chinchilla()
    resolved = resolve_priors(law, priors)
    loc_scale = {}
    for name in PARAMS:
        prior = resolved[name]
        if not isinstance(prior, dist.LogNormal):
            raise InputError(f"the hierarchical model needs a LogNormal prior on {name}, got {type(prior).__name__}")
        loc_scale[name] = (float(prior.loc), float(prior.scale))
    unknown = set(spreads or {}) - set(PARAMS)
    if unknown:
        raise InputError(f"spreads for unknown parameters {sorted(unknown)}; known: {', '.join(PARAMS)}")
    spreads = {**DEFAULT_SPREADS, **(spreads or {})}
    shared = set(share) | (set(EXPONENTS) if share_exponents else set())
    if shared - set(PARAMS):
        raise InputError(f"cannot share unknown parameters {sorted(shared - set(PARAMS))}; known: {', '.join(PARAMS)}")
    modes = _modes(pooling, shared)
    common = [k for k in PARAMS if modes[k] == "shared"]

    labels = runs.frame[group_by].astype(str).to_numpy()
    names = sorted(set(labels))
    group = np.searchsorted(names, labels)
    # Each group's cheap point estimate (``fitting.init``): where chains start, and what places the
    # coordinates' centre and chooses each group's centring.
    estimates = [initial_theta(law, Runs(runs.frame[group == g].reset_index(drop=True))) for g in range(len(names))]
    where = {"pivot": pivot_centre, "mean": mean_centre}[centre]
    if pooling == "none":  # independent laws: each in coordinates centred on its own runs
        centre_xy = np.array([where(runs.N[group == g], runs.D[group == g], [estimates[g]],
                                    np.zeros(np.sum(group == g), int)) for g in range(len(names))]).T
    else:
        centre_xy = np.asarray(where(runs.N, runs.D, estimates, group))
    partial_names = [k for k in PARAMS if modes[k] == "partial"]
    if not partial_names or centring == "none":
        lams = {}
    elif centring == "auto":
        lams = auto_centring(runs.N, runs.D, np.log(runs.loss), estimates, group, centre_xy,
                             {k: spreads[k] for k in partial_names}, spread_prior)
    else:
        lams = {k: np.full(len(names), float(v)) for k, v in dict(centring).items()}
    levels, offset_index, offset_lam, basis = [], None, None, None
    if offset_by is not None:
        levels, offset_index = _offset_levels(runs.frame[offset_by])
        if detrend_offsets:
            basis = detrending_basis(_level_logs(levels, offset_by))
        if centring != "none":
            se2 = _offset_se2(runs, estimates, group, offset_index, len(levels))
            if basis is not None:  # variance of each coordinate c_k = Q_k^T (levels' mean residuals)
                se2 = (basis**2).T @ se2
            t2 = (HALFNORMAL_MEDIAN * offset_scale) ** 2
            offset_lam = t2 / (t2 + se2)
    spec = HierSpec(len(names), pooling, modes, loc_scale, resolved["sigma"], spreads, likelihood, nu, lams,
                    len(levels), float(offset_scale), offset_lam, basis, spread_prior)
    N, D = jnp.asarray(runs.N), jnp.asarray(runs.D)
    log_loss = jnp.log(jnp.asarray(runs.loss))
    args = (jnp.asarray(group), N, D, jnp.asarray(centre_xy), log_loss,
            None if offset_index is None else jnp.asarray(offset_index))

    model = partial(hierarchical_model, spec)
    init = _initial_params(spec, estimates, centre_xy)
    start = time.perf_counter()
    samples, extra = _sample(model, args, init, num_chains=num_chains, num_warmup=num_warmup,
                         num_draws=num_draws, target_accept=target_accept, seed=seed, progress=progress)
    seconds = time.perf_counter() - start

    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    loglik = np.asarray(log_likelihood(model, flat, *args)["log_loss"]).reshape(num_chains, num_draws, -1)
    meta = {
        "likelihood": likelihood, "nu": nu, "centre": centre_xy.tolist(), "priors": describe_priors(resolved),
        "pooling": pooling, "spread_prior": spread_prior, "shared": common, "group_by": group_by,
        "groups": names,
        "num_chains": num_chains, "num_warmup": num_warmup, "num_draws": num_draws, "seed": seed,
        "sampling_seconds": seconds,
        **({"offset_by": offset_by, "offset_levels": levels, "offset_scale": float(offset_scale),
            "offset_detrended": bool(detrend_offsets)} if levels else {}),
    }
    posts = {}
    for g, name in enumerate(names):
        rows = group == g
        draws = {k: samples[k][..., g] for k in law.param_names}
        draws["sigma"] = samples["sigma"][..., g] if spec.sigma_per_group else samples["sigma"]
        draws.update(_offset_draws(samples))
        posts[name] = build_posterior(
            law, Runs(runs.frame[rows].reset_index(drop=True)), draws, extra, loglik[..., rows],
            method="nuts-hierarchical", meta={**meta, "group": name},
        )
    population = None if pooling == "none" else _population(spec, samples, centre_xy, runs, meta, seed)
    taus = {k: samples[f"{k}_tau"].reshape(-1) for k in PARAMS if modes[k] == "partial"}
    if levels:
        taus["offset"] = samples["offset_tau"].reshape(-1)
    fit = HierarchicalFit(posts, population, pooling, common, group_by, taus, _diagnostics(samples, extra))
    d = fit.diagnostics
    warn_if_untrustworthy(
        d["divergences"] == 0 and not d["max_rhat"] > 1.01,
        f"the hierarchical fit's sampler diagnostics fail: {d['divergences']} divergences, max R-hat "
        f"{d['max_rhat']:.3f}, min bulk ESS {d['min_ess']:.0f}; do not trust these draws: raise target_accept "
        "(--target-accept 0.95), lengthen the warm-up, or simplify the pooling")
    return fit


def _offset_levels(column: pd.Series) -> tuple[list[str], np.ndarray]:
    """The offset column's levels (``offset_key`` of each value, sorted numerically where the
    values are numbers) and each run's index among them."""
    if column.isna().any():
        raise InputError(f"offset column {column.name!r} has missing values in rows "
                         f"{', '.join(map(str, np.flatnonzero(column.isna().to_numpy())[:5]))}")
    keys = [offset_key(v) for v in column]
    unique = sorted(set(keys), key=lambda k: (0, float(k), k) if _is_number(k) else (1, 0.0, k))
    return unique, np.array([unique.index(k) for k in keys])


def _is_number(key: str) -> bool:
    try:
        float(key)
    except ValueError:
        return False
    return True


def detrending_basis(u) -> np.ndarray:
    """Q (B x (B - 2)): an orthonormal basis of the orthogonal complement of span{1, u} in R^B, so
    that delta = Q c has sum(delta) = 0 and sum(u * delta) = 0 for every c. Needs B >= 3 distinct u."""
    u = np.asarray(u, dtype=float)
    if u.ndim != 1 or len(u) < 3:
        raise InputError(f"detrended offsets need at least 3 levels (a level and a trend leave none free "
                         f"with fewer), got {len(np.atleast_1d(u))}")
    X = np.column_stack([np.ones(len(u)), u - u.mean()])
    if np.linalg.matrix_rank(X) < 2:
        raise InputError("detrended offsets need levels with distinct values")
    q, _ = np.linalg.qr(X, mode="complete")
    return q[:, 2:]


def _level_logs(levels: list[str], column: str) -> np.ndarray:
    """u_b = log of each level's value (levels are ``offset_key``s); the column must be numeric, > 0."""
    if not all(_is_number(k) for k in levels):
        raise InputError(f"detrended offsets need a numeric offset column; {column!r} has non-numeric values "
                         f"({', '.join(k for k in levels if not _is_number(k))[:80]})")
    values = np.array([float(k) for k in levels])
    if np.any(values <= 0) or not np.all(np.isfinite(values)):
        raise InputError(f"detrended offsets take the log of column {column!r}; its values must be positive and finite")
    return np.log(values)


def _offset_se2(runs: Runs, estimates, group, index, n_levels: int) -> np.ndarray:
    """s_b^2 = sigma^2 / n_b per level: the squared standard error of a level's mean residual from the
    groups' point estimates (sigma their residuals' RMS, n_b the level's runs). The offsets' centring
    is lambda = t^2 / (t^2 + s^2) per coordinate, as in ``auto_centring`` (t the prior median of
    tau_o): many runs per level, centred."""
    resid = np.empty(len(runs))
    for g, estimate in enumerate(estimates):
        rows = group == g
        theta = {k: float(np.squeeze(v)) for k, v in estimate.items()}
        resid[rows] = np.log(runs.loss[rows]) - np.asarray(Chinchilla().log_loss(theta, runs.N[rows], runs.D[rows]))
    sigma = np.sqrt(np.mean(resid**2))
    return sigma**2 / np.maximum(np.bincount(index, minlength=n_levels), 1)


def _offset_draws(samples: dict) -> dict:
    """The offsets' draws for a Posterior: delta_b (chains, draws, K) and tau_o (absent: none)."""
    if "offset" not in samples:
        return {}
    return {"offset": samples["offset"], "offset_tau": samples["offset_tau"]}


def _between_group_variance(xs: np.ndarray, ses: np.ndarray) -> np.ndarray:
    """DerSimonian-Laird: estimates x_gk with standard errors s_gk, weights w_g = 1/s_gk^2,
    Q = sum_g w_g (x_gk - xbar_k)^2 around the weighted mean, and
    tau_k^2 = max(0, (Q - (G - 1)) / (sum w - sum w^2 / sum w)): groups with poor data count little."""
    if len(xs) < 2:
        return np.zeros(xs.shape[1])
    w = 1.0 / ses**2
    mean = np.sum(w * xs, axis=0) / np.sum(w, axis=0)
    q = np.sum(w * (xs - mean) ** 2, axis=0)
    scale = np.sum(w, axis=0) - np.sum(w**2, axis=0) / np.sum(w, axis=0)
    return np.maximum((q - (len(xs) - 1)) / scale, 0.0)


def _modes(pooling: str, shared: set) -> dict:
    if pooling == "complete":
        return {k: "shared" for k in PARAMS}
    base = "partial" if pooling == "partial" else "independent"
    return {k: "shared" if k in shared else base for k in PARAMS}


def _population(spec: HierSpec, samples, centre, runs: Runs, meta, seed) -> Posterior:
    """A new group's law: x_new = mu + tau z per draw (mu alone for shared parameters)."""
    rng = np.random.default_rng(seed + 1)
    x = {}
    for name in PARAMS:
        mu = samples[f"{name}_pop_latent"]
        tau = samples.get(f"{name}_tau")
        x[name] = mu if tau is None else mu + tau * rng.standard_normal(mu.shape)
    draws = {k: np.asarray(v) for k, v in _natural(x, centre).items()}
    draws["sigma"] = samples["sigma"]
    draws.update(_offset_draws(samples))
    return build_posterior(Chinchilla(), runs, draws, None, None, method="nuts-hierarchical-population",
                           meta={**meta, "group": POPULATION})


def _initial_params(spec: HierSpec, estimates: list[dict], centre) -> dict:
    """The groups' point estimates mapped to the model's sites, in NumPyro's unconstrained
    coordinates (log for tau and sigma)."""
    log_n_c, log_d_c = centre
    th = {k: np.array([p[k] for p in estimates]) for k in PARAMS}
    x = {"E": np.log(th["E"]), "alpha": np.log(th["alpha"]), "beta": np.log(th["beta"]),
         "A": np.log(th["A"]) - th["alpha"] * log_n_c, "B": np.log(th["B"]) - th["beta"] * log_d_c}
    init = {}
    for name, values in x.items():
        mode = spec.modes[name]
        if mode == "independent":
            init[f"{name}_pop_latent"] = values
            continue
        init[f"{name}_pop_latent"] = values.mean()
        if mode == "partial":
            tau = max(values.std(), 0.5 * spec.spreads[name])
            init[f"{name}_tau"] = np.log(tau)  # unconstrained (log) scale
            lam = spec.lam(name)
            init[f"{name}_z"] = lam * values.mean() + (values - values.mean()) / tau ** (1.0 - lam)
    init["sigma"] = np.log(np.full(spec.n_groups, 0.02) if spec.sigma_per_group else 0.02)
    if spec.n_offsets:  # delta_b = 0 (z_b = 0 in any centring), tau_o at half its prior scale
        init["offset_tau"] = np.log(0.5 * spec.offset_scale)
        init["offset_z"] = np.zeros(spec.n_offset_coords)
    return {k: jnp.asarray(v, dtype=float) for k, v in init.items()}


def _sample(model, args, init, *, num_chains, num_warmup, num_draws, target_accept, seed, progress):
    """NumPyro's NUTS (dense mass matrix, NumPyro's default regularisation: with 20-30 sampled
    coordinates its first adaptation window has fewer draws than dimensions, and unregularised the
    estimate is singular), chains started at ``init`` jittered by 0.05 in every coordinate."""
    rng = np.random.default_rng(seed)
    jittered = {k: jnp.asarray(np.asarray(v) + 0.05 * rng.standard_normal((num_chains, *np.shape(v))))
                for k, v in init.items()}
    if num_chains == 1:  # NumPyro takes one chain's start without the chain axis
        jittered = {k: v[0] for k, v in jittered.items()}
    mcmc = MCMC(
        NUTS(model, dense_mass=True, target_accept_prob=target_accept),
        num_warmup=num_warmup, num_samples=num_draws, num_chains=num_chains,
        chain_method=_chain_method(num_chains), progress_bar=progress,
    )
    mcmc.run(jax.random.PRNGKey(seed), *args, init_params=jittered, extra_fields=("diverging", "num_steps", "energy"))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return samples, extra


def _chain_method(num_chains: int) -> str:
    return "parallel" if jax.local_device_count() >= num_chains else "sequential"


def _diagnostics(samples: dict, extra: dict) -> dict:
    """Divergences, and max split R-hat / min bulk ESS over the sampled (non-deterministic) sites."""
    sites = [k for k in samples if k.endswith(("_latent", "_tau", "_z")) or k == "sigma"]
    two_chains = samples["sigma"].shape[0] >= 2
    rhat = max(float(np.max(split_gelman_rubin(samples[k]))) for k in sites) if two_chains else float("nan")
    ess = min(float(np.min(effective_sample_size(samples[k]))) for k in sites)
    steps = extra["num_steps"]
    return {"divergences": int(extra["diverging"].sum()), "max_rhat": rhat, "min_ess": ess,
            "mean_steps": float(steps.mean())}
