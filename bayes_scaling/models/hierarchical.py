"""The hierarchical model: one law per group (dataset, architecture, ...), tied by a population.

Any ``Law`` whose ``sample`` draws each parameter p through a latent site ``{p}_latent`` with its
prior as the factor ``{p}_prior`` (``laws.base.sample_log_positive``; every bundled law) can be
made hierarchical. Each group g has the law's own latent coordinates x_g (for Chinchilla
x = (log E, log A - alpha n_c, log B - beta d_c, log alpha, log beta): the log reducible terms at
a centre (n_c, d_c), a unit-Jacobian shear) at a centre common to all groups (under no pooling
each group's own):

    partial pooling:   x_gk ~ Normal(mu_k, tau_k^2),  tau_k ~ HalfNormal(s_k) or the zero-avoiding
                       Gamma(2, 2 / m_k) with the same mean m_k = s_k sqrt(2/pi)
                       (``spread_distribution``); sampled through NumPyro's
                       ``LocScaleReparam(centered=lambda_gk)``: z_gk ~ Normal(lambda mu_k, tau_k^lambda),
                       x_gk = mu_k + tau_k^(1 - lambda)(z_gk - lambda mu_k), the same model for any
                       lambda in [0, 1] (0 non-centred, 1 centred; a data argument, chosen per group and
                       parameter by ``hierarchical.centring.auto_centring``)
    no pooling:        x_gk = mu_gk, each group with its own prior
    complete pooling:  x_gk = mu_k, one law for all groups
    shared parameters: x_gk = mu_k (population-only), e.g. the exponents

    log L_i ~ likelihood(log L(N_i, D_i; theta_g(i)) + delta_b(i), sigma)
              (``models.likelihood``; sigma shared, except per group under no pooling)

The population values mu carry the law's prior on its natural parameters (each group its own under
no pooling), stated through the law's own ``sample``. Budget offsets (``n_offsets`` = B > 0): a
crossed random effect delta = Q c on log-loss, c_k ~ Normal(0, tau_o^2) (``LocScaleReparam`` with
a per-coordinate lambda), tau_o ~ HalfNormal(s_o); Q is the identity (free offsets) or an
orthonormal basis of the complement of span{1, log C} (detrended, B - 2 coordinates).

**The free offsets' level, absorbed** (``level_params``, a sampler choice, not a model change).
Free offsets are delta = l 1 + R c, with l ~ Normal(0, tau_o^2 / B) their common level and R
(B x (B - 1)) an orthonormal basis of the complement of 1, c_k ~ Normal(0, tau_o^2): a rotation of
delta_b ~ Normal(0, tau_o^2), so the same distribution. For a law whose log-loss rises by exactly d
when the latent coordinates of ``level_params`` (Chinchilla: E, A, B) all rise by d, the likelihood
cannot tell l from that shift of every group's coordinates: a ridge along which NUTS takes many small
steps. NUTS then samples the shifted coordinates m_k = mu_k + l and y_gk = x_gk + l (k in
``level_params``; a translation, unit Jacobian) that the likelihood sees, with
log L_i ~ likelihood(log L(N_i, D_i; theta(y_g(i))) + (R c)_b(i), sigma), and l non-centred
(l = tau_o z / sqrt(B)); it reaches l only through the population prior at mu = m - l and its own.
The sites ``{p}_pop_latent`` (mu), ``offset`` (delta) and the natural parameters stay those of
the model above.

**The groups' mean and deviations** (``mean_deviations``, a sampler choice, not a model change).
With few groups whose data pin their x_gk, the posterior of mu_k given the groups is about
Normal(mean_g x_gk, tau_k^2 / G): a funnel, its width in mu_k proportional to tau_k, which the
groups' data leave wide (measured on Marin: the spread of mu_k - mean_g x_gk grows 7-13x from the
lowest to the highest fifth of tau_k's draws; experiments/hierarchical_geometry.py). No dense mass
matrix fits both ends. NUTS then samples, per partially pooled parameter k, the groups' mean
xbar_k (flat), eta_k ~ Normal(0, 1) and deviations d_k ~ Normal(0, tau_k^2) (G - 1 of them,
``LocScaleReparam(centered=lambda_jk)``), with

    x_gk = xbar_k + (C d_k)_g,    mu_k = xbar_k + tau_k eta_k / sqrt(G)

(C, G x (G - 1): an orthonormal basis of the complement of 1). Since sum_g (x_gk - mu_k)^2 =
|d_k|^2 + tau_k^2 eta_k^2 and the map (mu, x) -> (xbar, eta, d) has Jacobian tau_k, the joint density
of (mu, x, tau) is unchanged: the law's prior on mu_k is evaluated at the mu_k above and the
Normal(mu_k, tau_k^2) of the groups becomes eta_k's Normal(0, 1) and the d_k's Normal(0, tau_k^2)
(``tests/test_hierarchical.py`` checks the log joints differ by the Jacobian only). mu_k given the
groups is then eta_k, whose scale does not depend on tau_k.

**Stacked sites** (``stacked``, with ``mean_deviations``; a sampler choice, not a model change). The
partially pooled parameters' xbar_k, tau_k, eta_k and d_k are sampled as four sites over all K of
them at once (``partial_mean`` (K,), ``partial_tau`` (K,), ``partial_pop_eta`` (K,),
``partial_deviation`` (K, G - 1)) instead of four per parameter: the same densities, evaluated as K-vectors,
so the potential's gradient is fewer, larger operations (measured: experiments/bench_hierarchical.py
--step-cost). The per-parameter values stay as deterministic sites (``{p}_tau``, ``{p}_mean``,
``{p}_pop_eta``, ``{p}_pop_latent``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer.reparam import LocScaleReparam

from bayes_scaling.errors import InputError
from bayes_scaling.laws.base import Law
from bayes_scaling.models.likelihood import Likelihood

POOLINGS = ("partial", "none", "complete")
SPREAD_PRIORS = ("halfnormal", "gamma")
DEFAULT_SPREAD_PRIOR = "gamma"
OFFSET_SCALE = 0.01


@dataclass(frozen=True)
class HierSpec:
    """Everything that defines the hierarchical model apart from the data (the per-group centring
    and the centre are data arguments: they change how NUTS moves, not the model)."""

    law: Law
    priors: dict = field(hash=False)  # the law's priors on natural parameters, and sigma's
    n_groups: int = 1
    pooling: str = "partial"
    modes: dict = field(default_factory=dict, hash=False)  # parameter -> "partial" | "independent" | "shared"
    spreads: dict = field(default_factory=dict, hash=False)  # parameter -> scale s_k of tau_k
    likelihood: Likelihood = Likelihood()
    n_offsets: int = 0  # levels B of the offset column (0: no offsets)
    n_offset_coords: int = 0  # sampled offset coordinates: B (free) or B - 2 (detrended)
    offset_scale: float = OFFSET_SCALE
    spread_prior: str = DEFAULT_SPREAD_PRIOR
    level_params: tuple = ()  # free offsets: parameters whose coordinates carry the offsets' level (above)
    mean_deviations: bool = False  # partially pooled groups sampled as their mean and deviations (above)
    stacked: bool = False  # under mean_deviations, one site per role over all partially pooled parameters (above)

    @property
    def sigma_per_group(self) -> bool:
        return self.pooling == "none"

    def description(self) -> tuple:
        """What the traced model depends on besides the data shapes (a sampler cache key)."""
        from bayes_scaling.fitting import sampler_cache

        return ("hierarchical", self.law.name, sampler_cache.law_source_digest(self.law),
                sorted((k, sampler_cache.prior_fingerprint(v)) for k, v in self.priors.items()),
                self.n_groups, self.pooling, sorted(self.modes.items()), sorted(self.spreads.items()), *self.likelihood.key(),
                self.n_offsets, self.n_offset_coords, float(self.offset_scale), self.spread_prior,
                tuple(self.level_params), self.mean_deviations, *(("stacked",) if self.stacked else ()))


def hierarchical_model(spec: HierSpec, group, N, D, centre, centring, offset, offset_centring, offset_basis,
                       log_loss=None, mask=None, deviation_centring=None):
    """The model above. ``group``: each run's group index in 0..G-1; ``centre`` (2, G): each group's
    (n_c, d_c); ``centring`` (P, G): lambda per parameter (``law.param_names`` order) and group;
    ``offset``: each run's level index; ``offset_centring`` (k,) and ``offset_basis`` (B, k): the
    offsets' lambda and Q (unused without offsets); ``mask``: False for padding rows;
    ``deviation_centring`` (P, G - 1): the deviations' lambda under ``spec.mean_deviations``
    (default 0, non-centred)."""
    law, G = spec.law, spec.n_groups
    centre = jnp.asarray(centre)
    tau_o, level = None, 0.0
    if spec.level_params:  # (otherwise tau_o is drawn with the offsets below, in the sites' original order)
        tau_o = numpyro.sample("offset_tau", dist.HalfNormal(spec.offset_scale))
        with handlers.reparam(config={"offset_level": LocScaleReparam(centered=0.0)}):
            level = numpyro.sample("offset_level", dist.Normal(0.0, tau_o / np.sqrt(spec.n_offsets)))
    shift = {p: level if p in spec.level_params else 0.0 for p in law.param_names}
    by_mean = spec.mean_deviations and G >= 2
    mu, seen_mu, seen = {}, {}, {}  # the population values, as the likelihood sees them (mu + l), the groups'
    if by_mean and spec.stacked:
        names = [p for p in law.param_names if spec.modes[p] == "partial"]
        rows = np.array([law.param_names.index(p) for p in names], int)
        stacked = _stacked_means_and_deviations(spec, names, jnp.stack([jnp.asarray(shift[p], float) for p in names]),
                                                None if deviation_centring is None else deviation_centring[rows])
        for j, p in enumerate(names):
            mu[p], seen[p] = stacked[0][j], stacked[1][j]
    for i, p in enumerate(law.param_names):
        if p in seen:
            continue
        if by_mean and spec.modes[p] == "partial":
            mu[p], seen[p] = _mean_and_deviations(spec, p, shift[p], None if deviation_centring is None
                                                  else deviation_centring[i])
            continue
        shape = (G,) if spec.modes[p] == "independent" else ()
        site = f"{p}_pop_shifted" if p in spec.level_params else f"{p}_pop_latent"
        seen_mu[p] = numpyro.sample(site, dist.ImproperUniform(dist.constraints.real, (), shape))
        mu[p] = numpyro.deterministic(f"{p}_pop_latent", seen_mu[p] - level) if p in spec.level_params else seen_mu[p]
    population_prior(spec, mu, centre)
    for i, p in enumerate(law.param_names):
        if p in seen:
            continue
        if spec.modes[p] != "partial":
            seen[p] = jnp.broadcast_to(seen_mu[p], (G,))
            continue
        tau = numpyro.sample(f"{p}_tau", spread_distribution(spec.spread_prior, spec.spreads[p]))
        with handlers.reparam(config={f"{p}_group": LocScaleReparam(centered=centring[i])}):
            seen[p] = numpyro.sample(f"{p}_group", dist.Normal(seen_mu[p], tau).expand((G,)).to_event(1))
    theta = natural_from_latent(law, spec.priors, {p: seen[p] - shift[p] for p in law.param_names}, centre)
    for p, value in theta.items():
        numpyro.deterministic(p, value)
    theta_seen = natural_from_latent(law, spec.priors, seen, centre) if spec.level_params else theta
    sigma = numpyro.sample("sigma", spec.priors["sigma"].expand((G,)).to_event(1) if spec.sigma_per_group
                           else spec.priors["sigma"])
    sigma_i = sigma[group] if spec.sigma_per_group else sigma
    loc = law.log_loss({k: v[group] for k, v in theta_seen.items()}, N, D)
    if spec.n_offsets:
        if tau_o is None:
            tau_o = numpyro.sample("offset_tau", dist.HalfNormal(spec.offset_scale))
        with handlers.reparam(config={"offset_coef": LocScaleReparam(centered=offset_centring)}):
            coef = numpyro.sample("offset_coef", dist.Normal(0.0, tau_o).expand((spec.n_offset_coords,)).to_event(1))
        wiggle = jnp.asarray(offset_basis) @ coef
        numpyro.deterministic("offset", level + wiggle)
        loc = loc + wiggle[offset]  # the level is in theta_seen
    with numpyro.plate("runs", N.shape[0]), handlers.mask(mask=True if mask is None else mask):
        numpyro.sample("log_loss", spec.likelihood.distribution(loc, sigma_i), obs=log_loss)


def deviation_basis(n_groups: int) -> np.ndarray:
    """C (G x (G - 1)): an orthonormal basis of the complement of the vector of ones (the groups'
    deviations from their mean, ``mean_deviations``)."""
    q, _ = np.linalg.qr(np.ones((n_groups, 1)), mode="complete")
    return q[:, 1:]


def _mean_and_deviations(spec: HierSpec, p: str, shift, centring):
    """Parameter p's population value mu and the groups' coordinates (as the likelihood sees them,
    x + l) under ``mean_deviations``: sites ``{p}_mean`` (xbar + l), ``{p}_tau``, ``{p}_pop_eta``
    and ``{p}_deviation`` (``LocScaleReparam`` with ``centring``, (G - 1,); None: non-centred)."""
    G = spec.n_groups
    seen_mean = numpyro.sample(f"{p}_mean", dist.ImproperUniform(dist.constraints.real, (), ()))
    tau = numpyro.sample(f"{p}_tau", spread_distribution(spec.spread_prior, spec.spreads[p]))
    eta = numpyro.sample(f"{p}_pop_eta", dist.Normal(0.0, 1.0))
    mu = numpyro.deterministic(f"{p}_pop_latent", seen_mean - shift + tau * eta / np.sqrt(G))
    lam = jnp.zeros(G - 1) if centring is None else centring
    with handlers.reparam(config={f"{p}_deviation": LocScaleReparam(centered=lam)}):
        d = numpyro.sample(f"{p}_deviation", dist.Normal(0.0, tau).expand((G - 1,)).to_event(1))
    return mu, seen_mean + jnp.asarray(deviation_basis(G)) @ d


def _stacked_means_and_deviations(spec: HierSpec, names: list, shift, centring):
    """``_mean_and_deviations`` for all of ``names`` at once (``stacked``): sites ``partial_mean``
    (xbar + l), ``partial_tau``, ``partial_pop_eta`` (K,) and ``partial_deviation`` (K, G - 1;
    ``LocScaleReparam`` with ``centring``, None: non-centred); returns mu (K,) and the groups'
    coordinates as the likelihood sees them (K, G); per-parameter deterministic sites as the
    unstacked sampler's."""
    G, K = spec.n_groups, len(names)
    seen_mean = numpyro.sample("partial_mean", dist.ImproperUniform(dist.constraints.real, (), (K,)))
    scales = np.array([spec.spreads[p] for p in names], float)
    tau = numpyro.sample("partial_tau", spread_distribution(spec.spread_prior, scales).to_event(1))
    eta = numpyro.sample("partial_pop_eta", dist.Normal(0.0, 1.0).expand((K,)).to_event(1))
    mu = seen_mean - shift + tau * eta / np.sqrt(G)
    lam = jnp.zeros((K, G - 1)) if centring is None else centring
    with handlers.reparam(config={"partial_deviation": LocScaleReparam(centered=lam)}):
        d = numpyro.sample("partial_deviation", dist.Normal(0.0, jnp.broadcast_to(tau[:, None], (K, G - 1))).to_event(2))
    for j, p in enumerate(names):
        for site, value in ((f"{p}_mean", seen_mean), (f"{p}_tau", tau), (f"{p}_pop_eta", eta), (f"{p}_pop_latent", mu)):
            numpyro.deterministic(site, value[j])
    return mu, seen_mean[:, None] + d @ jnp.asarray(deviation_basis(G)).T


def population_prior(spec: HierSpec, mu: dict, centre) -> None:
    """The law's prior on the population values ``mu`` (latent coordinates): the factors of
    ``law.sample`` at mu, once for the parameters common to the groups (at the groups' mean
    centre) and once per group for the independent ones (at each group's centre)."""
    law, G = spec.law, spec.n_groups
    independent = {p for p in law.param_names if spec.modes[p] == "independent"}
    common = set(law.param_names) - independent
    if common:
        scalar = {p: jnp.mean(mu[p]) if p in independent else mu[p] for p in law.param_names}
        _prior_factors(law, spec.priors, scalar, jnp.mean(centre, axis=1), common)
    if independent:
        per_group = {p: jnp.broadcast_to(mu[p], (G,)) for p in law.param_names}
        _prior_factors(law, spec.priors, per_group, centre, independent)


def _prior_factors(law: Law, priors, latent: dict, centre, keep: set) -> None:
    names = {f"{p}_prior" for p in keep}
    data = {f"{p}_latent": v for p, v in latent.items()}
    with handlers.block(hide_fn=lambda site: site["name"] not in names), handlers.substitute(data=data):
        law.sample(priors, (centre[0], centre[1]))


def natural_from_latent(law: Law, priors, latent: dict, centre) -> dict:
    """The law's natural parameters at latent coordinates ``latent`` (parameter -> array, any
    shape that broadcasts with the centre's entries): ``law.sample``'s map, with its sites hidden."""
    data = {f"{p}_latent": v for p, v in latent.items()}
    with handlers.block(), handlers.substitute(data=data):
        theta = law.sample(priors, (centre[0], centre[1]))
    return {p: theta[p] for p in law.param_names}


def latent_from_natural(law: Law, theta: dict, centre) -> dict:
    """parameter -> its latent coordinate (``law.latent_from_natural`` without the site suffix)."""
    latent = law.latent_from_natural(theta, (centre[0], centre[1]))
    return {p: np.asarray(latent[f"{p}_latent"], np.float64) for p in law.param_names}


def check_law(law: Law) -> None:
    """Refuse a law the hierarchical model cannot take: one bound to each run's unique tokens (the
    data-constrained law: its centring and offsets are written for laws of N and D alone), or one whose
    ``sample`` does not draw every parameter p through a site ``{p}_latent`` with a prior factor ``{p}_prior``."""
    import jax

    if hasattr(law, "with_unique_tokens"):
        raise InputError(f"law {law.name}: the hierarchical model takes laws of N and D alone (chinchilla, kaplan); "
                         "the data-constrained law is fitted per table without groups (drop --group-by / fit_nuts), "
                         "or give each group its own fit")

    trace = handlers.trace(handlers.seed(handlers.substitute(
        law.sample, substitute_fn=lambda site: jnp.zeros(()) if site["type"] == "sample" and not site["is_observed"]
        else None), jax.random.PRNGKey(0))).get_trace(law.default_priors(), (0.0, 0.0))
    missing = [p for p in law.param_names if f"{p}_latent" not in trace or f"{p}_prior" not in trace]
    if missing:
        raise InputError(f"law {law.name}: the hierarchical model needs each parameter sampled through a site "
                         f"'<name>_latent' with a factor '<name>_prior' (laws.base.sample_log_positive); "
                         f"{', '.join(missing)} are not")


def spread_distribution(family: str, scale: float) -> dist.Distribution:
    """The prior of a group spread tau_k with scale s_k: HalfNormal(s_k), or the zero-avoiding
    Gamma(2, rate 2 / m) with the same mean m = s_k sqrt(2/pi) (density 0 at tau = 0, mode m / 2)."""
    if family == "gamma":
        return dist.Gamma(2.0, 2.0 / (scale * np.sqrt(2 / np.pi)))
    if family == "halfnormal":
        return dist.HalfNormal(scale)
    raise InputError(f"spread_prior must be one of {', '.join(SPREAD_PRIORS)}, got {family!r}")
