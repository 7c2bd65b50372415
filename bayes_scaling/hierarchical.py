"""Hierarchical Chinchilla: one law per group (dataset, architecture, ...), tied by a population.

For groups g = 1..G and runs i in group g(i), in the log coordinates NUTS samples
(the pooled Chinchilla model's centred coordinates, centre (n_c, d_c) = mean log N, mean log D of
all runs; under no pooling, of each group's own runs, so each group is sampled exactly as a pooled
fit of its runs alone would be):

    x_g = (log E_g, log A_g - alpha_g n_c, log B_g - beta_g d_c, log alpha_g, log beta_g)

    partial pooling (non-centred):  x_gk = mu_k + tau_k z_gk,   z_gk ~ Normal(0, 1),
                                     tau_k ~ HalfNormal(s_k)   (the learned spread of parameter k)
    no pooling:                      x_gk = mu_gk, each group with its own prior
    complete pooling:                x_gk = mu_k, one law for all groups
    share_exponents=True:            alpha and beta are population-only (x_g,alpha = mu_alpha, ...)
    share=(names):                   those parameters are population-only, e.g. share=("A", "B",
                                     "alpha", "beta"): groups differ only in irreducible loss E

    log L_i ~ StudentT(nu, log L(N_i, D_i; theta_g(i)), sigma)   (or Normal; sigma shared, except
                                                                   per group under no pooling)

Priors: the population value of each parameter has the law's prior on its natural scale (the
LogNormal (loc, scale) of ``E, A, B, alpha, beta``; the shear x_A = log A - alpha n_c has unit
Jacobian, so the prior on A is still a prior on A). No pooling gives every group that same prior, so
it equals G separate pooled fits. A new group's law is drawn from the population:
x_new = mu + tau z, z ~ Normal(0, 1), one z per posterior draw.
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

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Chinchilla
from bayes_scaling.models import DEFAULT_NU, LIKELIHOODS, data_centre
from bayes_scaling.posterior import Posterior
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs

POOLINGS = ("partial", "none", "complete")
PARAMS = ("alpha", "beta", "E", "A", "B")  # sampling order: A's and B's shears need the exponents
EXPONENTS = ("alpha", "beta")
# HalfNormal scales of the group spreads tau_k, in log units: groups' E differ by ~10%, their
# reducible terms at the data centre by ~50%, their exponents by ~20% (relative).
DEFAULT_SPREADS = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}
POPULATION = "population (new group)"


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

    @property
    def sigma_per_group(self) -> bool:
        return self.pooling == "none"


def hierarchical_model(spec: HierSpec, group, N, D, centre, log_loss=None):
    """The model above; ``group`` holds each run's group index in 0..G-1; ``centre`` is
    (n_c, d_c), each a scalar or (no pooling) one per group."""
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
            tau = numpyro.sample(f"{name}_tau", dist.HalfNormal(spec.spreads[name]))
            z = numpyro.sample(f"{name}_z", dist.Normal(0.0, 1.0).expand((G,)))
            x[name] = mu[name] + tau * z
        else:
            x[name] = jnp.broadcast_to(mu[name], (G,))
    theta = _natural(x, centre)
    for name, value in theta.items():
        numpyro.deterministic(name, value)
    sigma = numpyro.sample("sigma", spec.sigma_prior.expand((G,)) if spec.sigma_per_group else spec.sigma_prior)
    sigma_i = sigma[group] if spec.sigma_per_group else sigma
    loc = Chinchilla().log_loss({k: v[group] for k, v in theta.items()}, N, D)
    noise = dist.Normal(loc, sigma_i) if spec.likelihood == "normal" else dist.StudentT(spec.nu, loc, sigma_i)
    with numpyro.plate("runs", N.shape[0]):
        numpyro.sample("log_loss", noise, obs=log_loss)


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
) -> HierarchicalFit:
    """Fit the hierarchical Chinchilla model to ``runs`` grouped by the column ``group_by``.

    ``pooling``: "partial" (groups around a learned population), "none" (independent laws, one
    sigma each) or "complete" (one law). ``share_exponents``: alpha and beta common to all groups;
    ``share``: any parameters common to all groups (``share_exponents`` adds alpha and beta).
    ``priors`` override the law's LogNormal priors (population level) or sigma's; ``spreads`` the
    HalfNormal scales of the tau_k. Returns a ``HierarchicalFit`` (per-group ``Posterior``s and a
    population ``Posterior``).
    """
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if likelihood not in LIKELIHOODS:
        raise InputError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    if group_by not in runs.frame:
        raise InputError(f"no column {group_by!r} to group runs by; columns: {', '.join(runs.frame.columns)}")
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
    spec = HierSpec(len(names), pooling, modes, loc_scale, resolved["sigma"], spreads, likelihood, nu)
    N, D = jnp.asarray(runs.N), jnp.asarray(runs.D)
    log_loss = jnp.log(jnp.asarray(runs.loss))
    centre = np.asarray([float(c) for c in data_centre(N, D)])
    if pooling == "none":  # independent laws: each in coordinates centred on its own runs
        centre = np.array([[float(c) for c in data_centre(N[group == g], D[group == g])] for g in range(len(names))]).T
    args = (jnp.asarray(group), N, D, jnp.asarray(centre), log_loss)

    model = partial(hierarchical_model, spec)
    chain_method = "parallel" if jax.local_device_count() >= num_chains else "sequential"
    mcmc = MCMC(
        NUTS(model, dense_mass=True, target_accept_prob=target_accept),
        num_warmup=num_warmup, num_samples=num_draws, num_chains=num_chains,
        chain_method=chain_method, progress_bar=progress,
    )
    init = _initial_params(spec, runs, group, names, centre, num_chains, seed)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), *args, init_params=init, extra_fields=("diverging", "num_steps"))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    seconds = time.perf_counter() - start

    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    loglik = np.asarray(log_likelihood(model, flat, *args)["log_loss"]).reshape(num_chains, num_draws, -1)
    meta = {
        "likelihood": likelihood, "nu": nu, "centre": centre.tolist(), "priors": describe_priors(resolved),
        "pooling": pooling, "shared": common, "group_by": group_by, "groups": names,
        "num_chains": num_chains, "num_warmup": num_warmup, "num_draws": num_draws, "seed": seed,
        "sampling_seconds": seconds,
    }
    posts = {}
    for g, name in enumerate(names):
        rows = group == g
        draws = {k: samples[k][..., g] for k in law.param_names}
        draws["sigma"] = samples["sigma"][..., g] if spec.sigma_per_group else samples["sigma"]
        posts[name] = build_posterior(
            law, Runs(runs.frame[rows].reset_index(drop=True)), draws, extra, loglik[..., rows],
            method="nuts-hierarchical", meta={**meta, "group": name},
        )
    population = None if pooling == "none" else _population(spec, samples, centre, runs, meta, seed)
    taus = {k: samples[f"{k}_tau"].reshape(-1) for k in PARAMS if modes[k] == "partial"}
    return HierarchicalFit(posts, population, pooling, common, group_by, taus, _diagnostics(samples, extra))


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
    return build_posterior(Chinchilla(), runs, draws, None, None, method="nuts-hierarchical-population",
                           meta={**meta, "group": POPULATION})


def _initial_params(spec: HierSpec, runs: Runs, group, names, centre, num_chains: int, seed: int) -> dict:
    """Each group's cheap point estimate (``fitting.init``) mapped to the model's sites, jittered."""
    log_n_c, log_d_c = centre
    per_group = [initial_theta(Chinchilla(), Runs(runs.frame[group == g].reset_index(drop=True)))
                 for g in range(len(names))]
    th = {k: np.array([p[k] for p in per_group]) for k in PARAMS}
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
            init[f"{name}_z"] = (values - values.mean()) / tau
    init["sigma"] = np.log(np.full(len(names), 0.02) if spec.sigma_per_group else 0.02)
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(np.asarray(v) + 0.05 * rng.standard_normal((num_chains, *np.shape(v))))
            for k, v in init.items()}


def _diagnostics(samples: dict, extra: dict) -> dict:
    """Divergences, and max split R-hat / min bulk ESS over the sampled (non-deterministic) sites."""
    sites = [k for k in samples if k.endswith(("_latent", "_tau", "_z")) or k == "sigma"]
    two_chains = samples["sigma"].shape[0] >= 2
    rhat = max(float(np.max(split_gelman_rubin(samples[k]))) for k in sites) if two_chains else float("nan")
    ess = min(float(np.min(effective_sample_size(samples[k]))) for k in sites)
    steps = extra["num_steps"]
    return {"divergences": int(extra["diverging"].sum()), "max_rhat": rhat, "min_ess": ess,
            "mean_steps": float(steps.mean())}
