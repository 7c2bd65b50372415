"""The hierarchical Chinchilla model: group-level recovery in simulation, borrowing strength for a
sparse group, agreement with the pooled model for one group."""

import jax
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
from jax.scipy.special import gammainc, ndtr
from numpyro import handlers

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.hierarchical import (
    POPULATION,
    SPREAD_PRIOR_MEDIAN,
    HierSpec,
    auto_centring,
    fit_hierarchical,
    hierarchical_model,
    pivot_centre,
    spread_distribution,
)
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.posterior import Posterior
from bayes_scaling.runs import validate_runs

LAW = Chinchilla()
FAST = dict(num_chains=2, num_warmup=400, num_draws=300, likelihood="normal")
MAX_DIVERGENT = 0.02  # fraction of draws (see test_partial_pooling_recovers_each_groups_law)
# Group truths: Epoch's law with each group's log-parameters moved by tau_k z_gk.
TAU = {"E": 0.08, "A": 0.3, "B": 0.3, "alpha": 0.06, "beta": 0.06}
N_GRID, D_GRID = np.logspace(7.5, 9.5, 4), np.logspace(9, 11, 4)
SPARSE = "g3"


def _group_truths(n_groups, seed):
    rng = np.random.default_rng(seed)
    return [{k: v * np.exp(TAU[k] * rng.standard_normal()) for k, v in EPOCH_2024.items()} for _ in range(n_groups)]


def _simulate(truths, sigma=0.005, seed=0, sparse_runs=None):
    """16 runs per group on an N x D grid; the last group keeps only its ``sparse_runs`` smallest."""
    rng = np.random.default_rng(seed)
    frames = []
    for g, truth in enumerate(truths):
        N, D = (a.ravel() for a in np.meshgrid(N_GRID, D_GRID))
        if sparse_runs is not None and g == len(truths) - 1:
            small = np.argsort(N * D)[:sparse_runs]
            N, D = N[small], D[small]
        loss = np.exp(np.asarray(LAW.log_loss(truth, N, D)) + sigma * rng.standard_normal(len(N)))
        frames.append(pd.DataFrame({"N": N, "D": D, "loss": loss, "group": f"g{g}"}))
    return validate_runs(pd.concat(frames, ignore_index=True))


@pytest.fixture(scope="module")
def simulation():
    truths = _group_truths(4, seed=3)
    runs = _simulate(truths, seed=4, sparse_runs=6)
    # A fit with divergences is redone once at target acceptance 0.99 (``retry_divergent``, the redo policy's
    # first half): over fit seeds 0-11 (experiments/hierarchical_fixture_seeds.py) this fixture's partial fit
    # diverged 0-3 times of 600 under jax 0.12.0.1 and 0-6 under 0.12.1, except once, 16 (14 in one chain, at
    # seed 0 under 0.12.1); the redo bounds that tail, so the tests' guard of at most 2% does not hang on which
    # rounding of the chains a jax version gives.
    partial, none = (fit_hierarchical(runs, pooling=p, retry_divergent=True, **FAST) for p in ("partial", "none"))
    return truths, runs, partial, none


@pytest.mark.slow
def test_partial_pooling_recovers_each_groups_law(simulation, tmp_path):
    truths, _, partial, _ = simulation
    # At most 2% of draws, after the fixture's one redo at smaller steps. The count is sensitive to rounding-level
    # changes of the chains' start: an NNLS solver swap in fitting.init (same optimum) moved it from 6 to 9 of 600.
    assert partial.diagnostics["divergences"] <= MAX_DIVERGENT * 2 * FAST["num_draws"]
    assert sorted(partial.groups) == ["g0", "g1", "g2", "g3"] and partial.population is not None
    covered = 0
    for g, truth in enumerate(truths[:3]):  # the fully measured groups
        post = partial.groups[f"g{g}"]
        assert isinstance(post, Posterior) and len(post.runs) == 16
        assert "offset_levels" not in post.meta  # no budget column: offset_by="auto" takes none
        for name, value in truth.items():
            lo, hi = np.quantile(post.draws(name), [0.05, 0.95])
            covered += lo <= value <= hi
        n_true = float(LAW.optimal_allocation(truth, 1e21)[0])
        row = post.frontier([1e21]).iloc[0]
        assert row["N_opt_lo"] <= n_true <= row["N_opt_hi"], g
    assert covered >= 13, covered  # of 15 intervals at 90%
    g0 = partial.groups["g0"]
    back = Posterior.load(g0.save(tmp_path / "g0"))  # a group's fit saves and reloads like any other
    np.testing.assert_allclose(back.frontier([1e21])["N_opt_median"], g0.frontier([1e21])["N_opt_median"])
    # The groups differ and the fit tells them apart: E's are ordered as the truths are.
    e_true = [t["E"] for t in truths[:3]]
    e_fit = [np.median(partial.groups[f"g{g}"].draws("E")) for g in range(3)]
    assert np.argsort(e_fit).tolist() == np.argsort(e_true).tolist()



@pytest.mark.slow
def test_group_fits_carry_the_samplers_diagnostics(simulation):
    """Each group's Posterior keeps the sampler's statistics (divergences, energy, steps), so
    ``diagnose`` checks it like a pooled fit; the population's (derived draws) says where to look."""
    from bayes_scaling.diagnostics import diagnose

    _, _, partial, _ = simulation
    diag = diagnose(partial.groups["g0"])
    assert diag.applicable and diag.bfmi.size == FAST["num_chains"]
    assert diag.divergences == partial.diagnostics["divergences"]
    assert set(diag.table.index) >= {"E", "A", "B", "alpha", "beta", "sigma"}
    assert "do not apply" not in diag.verdict()
    population = diagnose(partial.population)
    assert not population.applicable and "groups' fits" in population.verdict()

@pytest.mark.slow
def test_a_sparse_group_borrows_strength_from_the_population(simulation):
    truths, _, partial, none = simulation
    N, D = np.array([3e9, 1e9]), np.array([1e11, 3e11])  # far beyond its 6 small runs
    truth = np.asarray(LAW.loss(truths[-1], N, D))
    widths = {}
    for label, fit in (("partial", partial), ("none", none)):
        pred = fit.groups[SPARSE].predict(N, D, noise=True)
        lo, hi = np.quantile(pred, [0.05, 0.95], axis=0)
        widths[label] = hi - lo
        if label == "partial":
            assert np.all((lo <= truth) & (truth <= hi))
    assert np.all(widths["partial"] < 0.5 * widths["none"]), widths
    assert none.population is None  # no pooling: nothing learned about a new group
    table = partial.frontier([1e21])
    assert set(table["group"]) == {"g0", "g1", "g2", "g3", POPULATION}


@pytest.mark.slow
def test_one_group_agrees_with_the_pooled_model():
    truth = _group_truths(1, seed=5)[0]
    runs = _simulate([truth], seed=6)
    pooled = fit_nuts(runs, model="plain", **FAST)  # the law alone, as each group's law in the hierarchy
    hier = fit_hierarchical(runs, pooling="partial", **FAST).groups["g0"]
    for name in ("E", "alpha", "beta"):
        assert np.median(hier.draws(name)) == pytest.approx(np.median(pooled.draws(name)), rel=0.03), name
    a, b = pooled.frontier([1e21]).iloc[0], hier.frontier([1e21]).iloc[0]
    assert b["N_opt_median"] == pytest.approx(a["N_opt_median"], rel=0.1)
    width = lambda r: np.log(r["N_opt_hi"] / r["N_opt_lo"])  # noqa: E731
    assert width(b) == pytest.approx(width(a), rel=0.3)


def test_bad_options_are_refused():
    runs = _simulate(_group_truths(1, seed=0))
    with pytest.raises(InputError, match="pooling"):
        fit_hierarchical(runs, pooling="some")
    with pytest.raises(InputError, match="no column"):
        fit_hierarchical(runs, group_by="dataset")
    with pytest.raises(InputError, match="cannot share"):
        fit_hierarchical(runs, share=("gamma",))
    with pytest.raises(InputError, match="spreads for unknown"):
        fit_hierarchical(runs, spreads={"sigma": 0.1})
    with pytest.raises(InputError, match="centre must be"):
        fit_hierarchical(runs, centre="median")
    with pytest.raises(InputError, match="centring must be"):
        fit_hierarchical(runs, centring="half")
    with pytest.raises(InputError, match="target_accept"):
        fit_hierarchical(runs, target_accept=1.5)
    with pytest.raises(InputError, match="spread_prior must be one of halfnormal, gamma"):
        fit_hierarchical(runs, spread_prior="cauchy")
    with pytest.raises(InputError, match="start_mass must be one of laplace, diagonal, identity"):
        fit_hierarchical(runs, start_mass="dense")
    for depth in (0, 11, 2.5, True):
        with pytest.raises(InputError, match="warmup_tree_depth must be a whole number from 1 to 10"):
            fit_hierarchical(runs, warmup_tree_depth=depth)


def test_the_gamma_spread_prior_has_the_halfnormals_mean_and_no_mass_at_zero():
    """Gamma(2, 2 / m) with m = s sqrt(2/pi), HalfNormal(s)'s mean; SPREAD_PRIOR_MEDIAN is each
    family's median per unit scale (auto_centring caps its tau estimate there)."""
    s = 0.5
    gamma, half = spread_distribution("gamma", s), spread_distribution("halfnormal", s)
    assert float(gamma.mean) == pytest.approx(float(half.mean), rel=1e-12)
    median_g, median_h = SPREAD_PRIOR_MEDIAN["gamma"] * s, SPREAD_PRIOR_MEDIAN["halfnormal"] * s
    assert float(gammainc(2.0, gamma.rate * median_g)) == pytest.approx(0.5, abs=1e-5)
    assert float(2 * ndtr(median_h / s) - 1) == pytest.approx(0.5, abs=1e-4)
    # the Gamma's density vanishes at 0 (HalfNormal's is largest there)
    assert float(gamma.log_prob(1e-6)) < float(gamma.log_prob(0.1 * s)) - 10
    assert float(half.log_prob(1e-6)) > float(half.log_prob(0.1 * s))
    with pytest.raises(InputError, match="spread_prior must be one of"):
        spread_distribution("cauchy", s)


@pytest.mark.slow
def test_spread_prior_reaches_the_model_and_the_saved_fit():
    """``spread_prior="gamma"`` puts Gamma priors on every learned spread tau_k (not on the
    offsets' tau_o) and is recorded in each group's meta."""
    runs = _simulate(_group_truths(2, seed=3), seed=4)
    fit = fit_hierarchical(runs, spread_prior="gamma", num_chains=1, num_warmup=20, num_draws=20,
                           share=("alpha", "beta"), offset_by=None)
    assert fit.groups["g0"].meta["spread_prior"] == "gamma" and set(fit.spreads) == {"E", "A", "B"}
    modes = {"E": "partial", "A": "partial", "B": "partial", "alpha": "shared", "beta": "shared"}
    spec = HierSpec(LAW, {**LAW.default_priors(), "sigma": dist.HalfNormal(0.05)}, 2, "partial", modes,
                    {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}, n_offsets=3, n_offset_coords=3,
                    spread_prior="gamma")
    N = D = np.array([1e8, 1e9, 1e10])
    def flat(site):  # the improper population sites cannot be drawn from: put them at 0
        fn = site.get("fn")
        return np.zeros(fn.shape()) if isinstance(fn, dist.ImproperUniform) else None

    model = handlers.substitute(handlers.seed(hierarchical_model, jax.random.PRNGKey(0)), substitute_fn=flat)
    trace = handlers.trace(model).get_trace(
        spec, np.array([0, 1, 1]), N, D, np.full((2, 2), [[18.0], [20.0]]), np.zeros((5, 2)),
        np.array([0, 1, 2]), np.zeros(3), np.eye(3))
    for name in ("E", "A", "B"):
        assert isinstance(trace[f"{name}_tau"]["fn"], dist.Gamma), name
    assert isinstance(trace["offset_tau"]["fn"], dist.HalfNormal)


@pytest.mark.slow
def test_the_pivot_centre_decorrelates_each_groups_term_from_its_exponent(simulation):
    """At the pivot centre the draws of x_A = log A - alpha n_c and of alpha are nearly
    uncorrelated (at the mean log N they need not be): ``pivot_centre``'s promise."""
    _, _, partial, _ = simulation
    n_c, d_c = partial.groups["g0"].meta["centre"]
    for g in ("g0", "g1", "g2"):
        post = partial.groups[g]
        alpha, beta = post.draws("alpha"), post.draws("beta")
        x_a, x_b = np.log(post.draws("A")) - alpha * n_c, np.log(post.draws("B")) - beta * d_c
        assert abs(np.corrcoef(x_a, alpha)[0, 1]) < 0.5, g
        assert abs(np.corrcoef(x_b, beta)[0, 1]) < 0.5, g


def test_auto_centring_centres_what_the_data_pin_down():
    """Groups whose E differ far more than each group's data leave E uncertain get E centred
    (lambda near 1); exponents the groups share get non-centred ones (lambda near 0)."""
    rng = np.random.default_rng(7)
    truths = [{**EPOCH_2024, "E": EPOCH_2024["E"] * np.exp(0.3 * rng.standard_normal())} for _ in range(4)]
    runs = _simulate(truths, sigma=0.003, seed=8)
    group = np.searchsorted(sorted(set(runs.frame["group"])), runs.frame["group"])
    estimates = [{k: float(v) for k, v in t.items()} for t in truths]  # as if estimated exactly
    centre = pivot_centre(LAW, runs.N, runs.D, estimates, group)
    lam = auto_centring(LAW, runs.N, runs.D, np.log(runs.loss), estimates, group, centre,
                        {"E": 0.5, "alpha": 0.05, "beta": 0.05})
    assert np.all(lam["E"] > 0.8), lam
    assert np.all(lam["alpha"] < 0.2) and np.all(lam["beta"] < 0.2), lam


@pytest.mark.slow
def test_the_sampler_needs_fewer_steps_than_the_non_centred_one(simulation):
    """The current sampler (pivot centre, per-group centring) against the first one (mean-log centre,
    every group non-centred) on the same simulated runs and model (measured with the default
    spreads and HalfNormal spread priors, the default before the Gamma prior: 112 against 492
    leapfrog steps per draw, R-hat 1.012 against 1.021, min bulk ESS 123 against 75; 0 and 1
    divergences. After fitting.init's NNLS swap, same optimum: 62 against 525
    steps, R-hat 1.012 against 1.026, min ESS 99 against 152, 9 and 0 divergences; so the ESS is
    compared per leapfrog step, the sampler's cost). Since ``mean_deviations`` became the default the
    current sampler samples the groups' mean and deviations: 74 steps per draw here)."""
    _, runs, after, _ = simulation
    before = fit_hierarchical(runs, pooling="partial", centre="mean", centring="none", mean_deviations=False, **FAST)
    a, b = after.diagnostics, before.diagnostics
    assert a["divergences"] <= MAX_DIVERGENT * 2 * FAST["num_draws"], a
    # 1.03: R-hat is now diagnostics.chain_stats's (rank-normalised, folded, as ArviZ's), which reads
    # higher than the plain split R-hat this test was written against
    assert a["max_rhat"] <= 1.03, a
    assert a["mean_steps"] < 0.5 * b["mean_steps"], (a, b)
    assert a["min_ess"] / a["mean_steps"] > 2 * b["min_ess"] / b["mean_steps"], (a, b)


def test_any_law_maps_between_latent_and_natural_and_traces_the_model():
    """The model takes any law with ``{p}_latent`` sites: the natural map inverts the law's own
    ``latent_from_natural`` (Kaplan here), and each partial parameter's group site is NumPyro's
    ``LocScaleReparam``: z ~ Normal(lambda mu, tau^lambda) per group."""
    from bayes_scaling.laws import get_law
    from bayes_scaling.models.hierarchical import check_law, latent_from_natural, natural_from_latent

    kaplan = get_law("kaplan")
    check_law(kaplan)
    theta = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
    centre = (20.0, 22.0)
    back = natural_from_latent(kaplan, kaplan.default_priors(), latent_from_natural(kaplan, theta, centre), centre)
    for k, v in theta.items():
        assert float(back[k]) == pytest.approx(v, rel=1e-10), k
    modes = {p: "partial" for p in kaplan.param_names}
    spec = HierSpec(kaplan, {**kaplan.default_priors(), "sigma": dist.HalfNormal(0.05)}, 2, "partial", modes,
                    {p: 0.2 for p in modes})
    lam = np.array([[0.0, 1.0], [0.3, 0.3], [1.0, 0.0], [0.5, 0.5]])
    def flat(site):  # the improper population sites cannot be drawn from: put them at 0.1
        fn = site.get("fn")
        return np.full(fn.shape(), 0.1) if isinstance(fn, dist.ImproperUniform) else None

    model = handlers.substitute(handlers.seed(hierarchical_model, jax.random.PRNGKey(0)), substitute_fn=flat)
    trace = handlers.trace(model).get_trace(
        spec, np.array([0, 1]), np.array([1e8, 1e9]), np.array([1e9, 1e10]), np.full((2, 2), [[18.0], [20.0]]), lam,
        np.zeros(2, int), np.zeros(1), np.zeros((1, 1)))
    site = trace["N_c_group_decentered"]["fn"].base_dist
    tau, mu = trace["N_c_tau"]["value"], trace["N_c_pop_latent"]["value"]
    np.testing.assert_allclose(site.loc, lam[0] * mu, rtol=1e-12)
    np.testing.assert_allclose(site.scale, tau ** lam[0], rtol=1e-12)
    assert trace["N_c"]["value"].shape == (2,)


def test_a_law_without_latent_sites_is_refused():
    from bayes_scaling.laws import Chinchilla
    from bayes_scaling.models.hierarchical import check_law

    class Opaque(Chinchilla):
        name = "opaque"

        def sample(self, priors, centre):
            import numpyro

            return {k: numpyro.sample(k, priors[k]) for k in self.param_names}

    with pytest.raises(InputError, match="hierarchical model needs"):
        check_law(Opaque())


def test_settings_objects_and_old_keywords_agree():
    from bayes_scaling.fitting.settings import SamplerSettings
    from bayes_scaling.hierarchical import HierarchicalSettings

    with pytest.raises(InputError, match="pooling"):
        HierarchicalSettings(pooling="some")
    with pytest.raises(InputError, match="chains"):
        SamplerSettings(chains=0)
    runs = _simulate(_group_truths(1, seed=0))
    with pytest.raises(TypeError, match="unknown keyword"):
        fit_hierarchical(runs, num_chain=2)
    with pytest.raises(InputError, match="sampler's settings go to sampler_settings="):
        fit_hierarchical(runs, settings=SamplerSettings(chains=2))
    with pytest.raises(InputError, match="model's settings go to settings="):
        fit_hierarchical(runs, sampler_settings=HierarchicalSettings())
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.wsd import fit_wsd

    for fit in (fit_nuts, fit_wsd):  # the pooled and WSD fits check their one settings object too
        with pytest.raises(InputError, match="must be a SamplerSettings, got HierarchicalSettings"):
            fit(runs, settings=HierarchicalSettings())


@pytest.mark.parametrize("lam", [1.0, 0.0])
def test_mean_deviations_is_the_same_model(lam):
    """``mean_deviations``: sampling each partially pooled parameter as the groups' mean xbar, eta
    and the deviations d (x = xbar + C d, mu = xbar + tau eta / sqrt(G)) has the log joint of the
    per-group model up to the Jacobians: log tau_k of (mu, x) -> (xbar, eta, d), and with both
    sides non-centred (lambda = 0) the decentring's (G - 1) log tau_k against G log tau_k. Stacked
    sites (``stacked``) give the unstacked log joint and per-parameter values."""
    from numpyro.infer.util import log_density

    from bayes_scaling.models.hierarchical import deviation_basis

    G, P = 3, len(LAW.param_names)
    modes = {p: "partial" for p in LAW.param_names}
    spreads = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}
    priors = {**LAW.default_priors(), "sigma": dist.HalfNormal(0.05)}
    groups = HierSpec(LAW, priors, G, "partial", modes, spreads)
    by_mean = HierSpec(LAW, priors, G, "partial", modes, spreads, mean_deviations=True)
    stacked = HierSpec(LAW, priors, G, "partial", modes, spreads, mean_deviations=True, stacked=True)
    C = deviation_basis(G)
    np.testing.assert_allclose(C.T @ C, np.eye(G - 1), atol=1e-12)
    np.testing.assert_allclose(C.T @ np.ones(G), 0.0, atol=1e-12)
    rng = np.random.default_rng(1)
    group = np.repeat(np.arange(G), 3)
    N, D = np.geomspace(1e8, 3e9, 9), np.geomspace(2e9, 6e10, 9)
    log_loss = np.log(np.asarray(LAW.log_loss(EPOCH_2024, N, D))) + 0.01 * rng.standard_normal(9)
    centre = np.full((2, G), [[np.log(3e8)], [np.log(8e9)]])
    base = latent_of(EPOCH_2024, centre[:, 0])
    args = (group, N, D, centre, np.full((P, G), lam), np.zeros(9, int), np.zeros(1), np.zeros((1, 1)), log_loss)
    differences = []
    for draw in range(3):
        tau = {p: float(np.exp(rng.normal(-2.5, 0.8))) for p in LAW.param_names}
        mu = {p: base[p] + 0.3 * rng.standard_normal() for p in LAW.param_names}
        x = {p: mu[p] + tau[p] * rng.standard_normal(G) for p in LAW.param_names}
        point_groups = {"sigma": 0.02, **{f"{p}_tau": tau[p] for p in x}, **{f"{p}_pop_latent": mu[p] for p in x},
                        **{f"{p}_group_decentered": x[p] if lam == 1.0 else (x[p] - mu[p]) / tau[p] for p in x}}
        point_mean = {"sigma": 0.02, **{f"{p}_tau": tau[p] for p in x}, **{f"{p}_mean": x[p].mean() for p in x},
                      **{f"{p}_pop_eta": (mu[p] - x[p].mean()) * np.sqrt(G) / tau[p] for p in x},
                      **{f"{p}_deviation_decentered": C.T @ x[p] / tau[p] ** (1 - lam) for p in x}}
        lp_groups, trace_groups = log_density(hierarchical_model, (groups, *args), {}, point_groups)
        lp_mean, trace = log_density(hierarchical_model, (by_mean, *args, None, np.full((P, G - 1), lam)), {},
                                     point_mean)
        # stacked sites (``stacked``): the same sites' values in one vector per role, the same log joint
        point_stacked = {"sigma": 0.02, **{f"partial_{role}": np.stack([point_mean[f"{p}_{role}"] for p in x])
                                           for role in ("tau", "mean", "pop_eta", "deviation_decentered")}}
        lp_stacked, trace_stacked = log_density(
            hierarchical_model, (stacked, *args, None, np.full((P, G - 1), lam)), {}, point_stacked)
        assert float(lp_stacked) == pytest.approx(float(lp_mean), rel=1e-12, abs=1e-9)
        for p in x:
            for site in (p, f"{p}_pop_latent", f"{p}_tau", f"{p}_mean", f"{p}_pop_eta"):
                np.testing.assert_allclose(np.asarray(trace_stacked[site]["value"]),
                                           np.asarray(trace[site]["value"] if site in trace else point_mean[site]),
                                           rtol=1e-12)
        for p in x:
            np.testing.assert_allclose(np.asarray(trace[f"{p}_pop_latent"]["value"]), mu[p], atol=1e-12)
            np.testing.assert_allclose(np.asarray(trace[p]["value"]), np.asarray(trace_groups[p]["value"]),
                                       rtol=1e-12)
        jacobian = sum(np.log(t) for t in tau.values()) * (1.0 if lam == 1.0 else 0.0)
        differences.append(float(lp_mean - lp_groups) - jacobian)
    np.testing.assert_allclose(differences, 0.0, atol=1e-8)


def latent_of(theta, centre):
    from bayes_scaling.models.hierarchical import latent_from_natural

    return {p: float(v) for p, v in latent_from_natural(LAW, theta, centre).items()}


def test_deviation_spread_and_centring():
    """The deviations' spread is the posterior mode under the spread prior: near the deviations' own
    scale where they are large against their errors, above 0 under the zero-avoiding Gamma prior
    where they vanish (DerSimonian-Laird would say 0), and their lambda is then between 0 and 1."""
    from bayes_scaling.hierarchical.centring import deviation_spread

    d, se2 = np.array([0.3, -0.25]), np.full(2, 1e-6)
    assert deviation_spread(d, se2, "halfnormal", 1.0) == pytest.approx(np.sqrt(np.mean(d**2)), rel=0.05)
    tau = deviation_spread(np.zeros(2), np.full(2, 0.01**2), "gamma", 0.2)  # about the errors' scale
    assert 0.2 < tau**2 / (tau**2 + 0.01**2) < 0.8
    assert deviation_spread(np.zeros(2), np.full(2, 0.01**2), "halfnormal", 0.2) < 1e-3


@pytest.mark.slow
def test_mean_deviations_fit_agrees_with_the_default():
    """``mean_deviations=True`` samples the same model: each group's medians agree with the default
    sampler's within Monte Carlo error, and the population's law is there."""
    truths = _group_truths(3, seed=7)
    runs = _simulate(truths, seed=8)
    default = fit_hierarchical(runs, **FAST)
    by_mean = fit_hierarchical(runs, mean_deviations=True, **FAST)
    assert by_mean.population is not None and set(by_mean.spreads) == set(default.spreads)
    assert by_mean.diagnostics["divergences"] <= MAX_DIVERGENT * 2 * FAST["num_draws"]
    for g in ("g0", "g1", "g2"):
        a, b = default.groups[g], by_mean.groups[g]
        for name in ("E", "alpha", "beta"):
            assert np.median(b.draws(name)) == pytest.approx(np.median(a.draws(name)), rel=0.03), (g, name)
        assert b.frontier([1e21]).iloc[0]["N_opt_median"] == pytest.approx(
            a.frontier([1e21]).iloc[0]["N_opt_median"], rel=0.1)


@pytest.mark.slow
def test_start_mass_reaches_the_sampler_and_samples_the_same_model(monkeypatch):
    """``start_mass``: the warm-up starts from the Laplace matrix's diagonal or the identity (in
    NUTS's coordinates) instead of the dense Laplace matrix; the model is the same, so each group's
    medians agree with the default's within Monte Carlo error."""
    from bayes_scaling.fitting import sampler

    truths = _group_truths(3, seed=7)
    runs = _simulate(truths, seed=8)
    started = []
    original = sampler.Sampler.program

    def program(self, sites, index):  # records the inverse mass matrix handed to ``start`` (program 1)
        found = original(self, sites, index)
        return found if index != 1 else \
            lambda seed, init, mass, *a: (started.append(np.asarray(mass)), found(seed, init, mass, *a))[1]

    monkeypatch.setattr(sampler.Sampler, "program", program)
    fits = {name: fit_hierarchical(runs, start_mass=name, **FAST) for name in ("laplace", "diagonal", "identity")}
    dense, diagonal, identity = started
    assert np.count_nonzero(dense[0] - np.diag(np.diag(dense[0]))) > 0
    np.testing.assert_allclose(diagonal, np.einsum("cii,ij->cij", dense, np.eye(dense.shape[-1])))
    np.testing.assert_array_equal(identity, np.broadcast_to(np.eye(dense.shape[-1]), dense.shape))
    for name in ("diagonal", "identity"):
        assert fits[name].diagnostics["divergences"] <= MAX_DIVERGENT * 2 * FAST["num_draws"]
        for g in ("g0", "g1", "g2"):
            a, b = fits["laplace"].groups[g], fits[name].groups[g]
            for p in ("E", "alpha", "beta"):
                assert np.median(b.draws(p)) == pytest.approx(np.median(a.draws(p)), rel=0.03), (name, g, p)


def test_warmup_tree_depth_caps_the_warmups_trees_only():
    """``warmup_tree_depth`` d: every warm-up transition takes at most 2^d - 1 leapfrog steps (d = 1:
    exactly one), the draws keep NumPyro's depth 10 (more steps where the posterior needs them), and
    the draws still follow the target; the default (10) is NumPyro's own."""
    import jax.numpy as jnp
    import numpyro

    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.settings import SamplerSettings

    cov = np.array([[1.0, 0.995], [0.995, 1.0]])

    def model(loc):
        numpyro.sample("x", dist.MultivariateNormal(loc, jnp.asarray(cov)))

    settings = SamplerSettings(chains=2, warmup=200, draws=1000, seed=4)
    init = sampler.jitter({"x": np.zeros(2)}, 2, 0)
    capped, default = (sampler.sample(model, init, (np.array([1.0, -2.0]),), description=("depth test",),
                                      settings=settings, start_mass="identity", warmup_tree_depth=d) for d in (1, 10))
    assert capped.warmup_steps == 1.0
    assert default.warmup_steps > 1.5
    assert capped.extra["num_steps"].max() > 1
    x = capped.samples["x"].reshape(-1, 2)
    np.testing.assert_allclose(x.mean(axis=0), [1.0, -2.0], atol=0.1)
    assert sampler.MAX_TREE_DEPTH == 10
    with pytest.raises(ValueError, match="warmup_tree_depth must be a positive whole number"):
        sampler.sample(model, init, (np.array([1.0, -2.0]),), description=("depth test",), settings=settings,
                       warmup_tree_depth=0)


def test_a_run_can_start_from_another_runs_adapted_step_size_and_mass():
    """``sampler.adapted`` reads each chain's final step size and inverse mass matrix from a run's
    last state (the warm-up's: sampling leaves them); a later run given them (``start_step_size``,
    ``start_mass``) with ``adapt_step_size=False`` and a warm-up too short to adapt the mass matrix
    ends with exactly them, and samples the target; with step-size adaptation it moves on from them."""
    import jax.numpy as jnp
    import numpyro

    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.settings import SamplerSettings

    cov = np.array([[1.0, 0.9], [0.9, 2.0]])

    def model(loc):
        numpyro.sample("x", dist.MultivariateNormal(loc, jnp.asarray(cov)))

    data = (np.array([1.0, -2.0]),)
    init = sampler.jitter({"x": np.zeros(2)}, 2, 0)
    first = sampler.sample(model, init, data, description=("adapted test",),
                           settings=SamplerSettings(chains=2, warmup=300, draws=300, seed=1))
    step, mass = sampler.adapted(first)
    assert step.shape == (2,) and mass.shape == (2, 2, 2) and np.all(step > 0) and not np.allclose(step, 1.0)
    np.testing.assert_allclose(mass, np.broadcast_to(np.cov(first.samples["x"].reshape(-1, 2).T), mass.shape),
                               rtol=0.5)  # the adapted metric is the target's covariance, roughly
    short = SamplerSettings(chains=2, warmup=25, draws=2000, seed=2)
    start = {"x": first.latent["x"][:, -1]}
    kept, moved = (sampler.sample(model, start, data, description=("adapted test",), settings=short,
                                  start_mass=mass, start_step_size=step, adapt_step_size=adapt) for adapt in (False, True))
    step_kept, mass_kept = sampler.adapted(kept)
    np.testing.assert_array_equal(step_kept, step)
    np.testing.assert_allclose(mass_kept, mass)
    assert not np.allclose(sampler.adapted(moved)[0], step)
    x = kept.samples["x"].reshape(-1, 2)
    np.testing.assert_allclose(x.mean(axis=0), data[0], atol=0.15)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.3)
    with pytest.raises(ValueError, match="start_step_size must be positive"):
        sampler.sample(model, start, data, description=("adapted test",), settings=short, start_step_size=-1.0)
    # ``pool_step_size``: the same warm-up, then each chain's step size capped at the chains' median / smallest
    settings = SamplerSettings(chains=4, warmup=300, draws=300, seed=3)
    own, median, smallest = (sampler.adapted(sampler.sample(model, sampler.jitter({"x": np.zeros(2)}, 4, 0), data,
                                                            description=("adapted test",), settings=settings,
                                                            pool_step_size=pool))[0]
                             for pool in (None, "median", "min"))
    assert np.ptp(own) > 0
    np.testing.assert_allclose(median, np.minimum(own, np.median(own)))
    np.testing.assert_allclose(smallest, np.full(4, own.min()))
    with pytest.raises(ValueError, match="pool_step_size must be None or one of"):
        sampler.sample(model, start, data, description=("adapted test",), settings=short, pool_step_size="max")


def test_the_stacked_start_is_the_per_parameter_start_stacked():
    """``stacked``: the chains start where the per-parameter sampler's do, each role's values stacked
    in ``law.param_names`` order; sites of parameters that are not partially pooled stay their own."""
    from bayes_scaling.hierarchical.fit import _initial_point

    priors = {**LAW.default_priors(), "sigma": dist.HalfNormal(0.05)}
    modes = {p: "partial" for p in LAW.param_names} | {"beta": "shared"}
    spreads = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}
    truths = _group_truths(3, seed=2)
    centre = np.array([np.log(3e8), np.log(8e9)])
    deviations = np.full((len(LAW.param_names), 2), 0.5)
    points = [_initial_point(HierSpec(LAW, priors, 3, "partial", modes, spreads, mean_deviations=True, stacked=flag),
                             truths, centre, np.zeros((5, 3)), None, deviations) for flag in (False, True)]
    names = ["E", "A", "B", "alpha"]
    for role in ("mean", "tau", "pop_eta", "deviation_decentered"):
        np.testing.assert_array_equal(points[1][f"partial_{role}"], np.stack([points[0][f"{p}_{role}"] for p in names]))
        assert not any(f"{p}_{role}" in points[1] for p in names)
    assert points[1]["beta_pop_latent"] == points[0]["beta_pop_latent"]


@pytest.mark.slow
def test_warm_start_reuses_the_previous_fits_draws_and_metric(monkeypatch):
    """``warm_start``: a refit with two runs more starts its chains at the previous fit's last draws
    with the previous draws' covariance as NUTS's inverse mass matrix and a short warm-up, and
    samples the same posterior as a cold refit; mode "fixed" starts from the previous fit's adapted
    step sizes and mass matrices instead and keeps them; a previous fit of other groups is refused."""
    from bayes_scaling.fitting import sampler
    from bayes_scaling.hierarchical.fit import WARM_START_WARMUP, WARM_START_WARMUPS

    truths = _group_truths(3, seed=7)
    runs = _simulate(truths, seed=8)
    fewer = validate_runs(runs.frame.drop(index=[1, 20]).reset_index(drop=True))
    settings = {k: v for k, v in FAST.items() if k != "num_warmup"}
    previous = fit_hierarchical(fewer, **FAST)
    assert previous.diagnostics["warm_started"] is False
    started = []
    original = sampler.Sampler.program

    def program(self, sites, index):  # records the start and inverse mass matrix handed to ``start`` (program 1)
        found = original(self, sites, index)
        return found if index != 1 else \
            lambda seed, init, mass, *a: (started.append((init, np.asarray(mass), a)), found(seed, init, mass, *a))[1]

    monkeypatch.setattr(sampler.Sampler, "program", program)
    warm = fit_hierarchical(runs, warm_start=previous, seed=1, **settings)
    cold = fit_hierarchical(runs, seed=1, **FAST)
    fixed = fit_hierarchical(runs, warm_start=previous, warm_start_mode="fixed", seed=1, **settings)
    init, mass, _ = started[0]
    np.testing.assert_allclose(mass, np.broadcast_to(previous.adaptation["inverse_mass"], mass.shape))
    for k, v in previous.adaptation["init"].items():  # in NUTS's coordinates z / LATENT_SCALE
        np.testing.assert_allclose(np.asarray(init[k]) * 0.1, v)
    assert warm.diagnostics["warm_started"] and warm.groups["g0"].meta["num_warmup"] == WARM_START_WARMUP
    assert warm.diagnostics["divergences"] <= MAX_DIVERGENT * 2 * FAST["num_draws"]
    step, adapted_mass = sampler.adapted(previous.adaptation["draws"])
    _, mass, given = started[2]
    np.testing.assert_allclose(mass, adapted_mass)
    np.testing.assert_allclose(np.asarray(given[0]), step)
    np.testing.assert_allclose(sampler.adapted(fixed.adaptation["draws"])[0], step)  # kept through the warm-up
    assert fixed.diagnostics["warm_start_mode"] == "fixed"
    assert fixed.groups["g0"].meta["num_warmup"] == WARM_START_WARMUPS["fixed"]
    assert fixed.diagnostics["divergences"] <= MAX_DIVERGENT * 2 * FAST["num_draws"]
    for g in ("g0", "g1", "g2"):
        for p in ("E", "alpha", "beta"):
            a = cold.groups[g].draws(p)
            for other in (warm, fixed):
                assert np.median(other.groups[g].draws(p)) == pytest.approx(np.median(a), rel=0.03), (g, p)
    with pytest.raises(InputError, match="warm_start_mode must be one of"):
        fit_hierarchical(runs, warm_start=previous, warm_start_mode="hot", **settings)
    two_groups = validate_runs(runs.frame[runs.frame["group"] != "g2"].reset_index(drop=True))
    with pytest.raises(InputError, match="warm_start: the previous fit's sampled sites differ"):
        fit_hierarchical(two_groups, warm_start=previous, **settings)
    with pytest.raises(InputError, match="warm_start must be a HierarchicalFit"):
        fit_hierarchical(runs, warm_start=warm.groups["g0"], **settings)


@pytest.mark.slow
def test_a_hierarchical_fit_saves_as_the_cli_s_grouped_fit(simulation, tmp_path):
    from bayes_scaling.grouped import load_fits

    _, _, partial, _ = simulation
    partial.save(tmp_path / "fit")
    loaded = load_fits(tmp_path / "fit")
    assert [group for group, _ in loaded][:4] == ["g0", "g1", "g2", "g3"] and len(loaded) == 5
    np.testing.assert_array_equal(loaded[0][1].draws("E"), partial.groups["g0"].draws("E"))


def test_one_group_is_said_to_leave_the_spread_to_its_prior():
    from bayes_scaling.errors import InputWarning

    runs = _simulate(_group_truths(1, seed=3), seed=4, sparse_runs=6)
    with pytest.warns(InputWarning, match="the runs hold one group"):
        with pytest.raises(InputError):  # stop before sampling: the warning comes first
            fit_hierarchical(runs, pooling="partial", num_draws=-1)
