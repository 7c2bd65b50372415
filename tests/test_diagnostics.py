"""Sampler diagnostics (diagnose) and model checking (posterior predictive, PSIS-LOO, compare)."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

from bayes_scaling import checking
from bayes_scaling.diagnostics import diagnose
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.runs import load_chinchilla
from bayes_scaling.runs.table import Runs

NAMES = ("E", "A", "B", "alpha", "beta")


@pytest.fixture(scope="module")
def runs():
    return load_chinchilla().for_fit()


@pytest.fixture(scope="module")
def post(runs):
    # The same sampler settings as the other test modules, so the compiled sampler is shared; kept
    # at 2 x 200 draws (not redone with longer chains), the shapes these tests check.
    return fit_nuts(runs, num_chains=2, num_warmup=200, num_draws=200, seed=0, more_draws=False)


def synthetic(runs, *, chains=4, draws=500, shift=0.0, diverging=0, energy_walk=False, saturated=0,
              centre=EPOCH_2024, observed=None, seed=0):
    """A Posterior of independent Gaussian draws close to ``centre`` with chosen sampler
    pathologies, and its exact normal log-likelihood of ``observed`` losses (default: the runs')."""
    rng = np.random.default_rng(seed)
    z = {k: rng.standard_normal((chains, draws)) for k in (*NAMES, "sigma")}
    samples = {k: centre[k] * (1 + 1e-3 * z[k]) for k in ("E", "A", "B")}
    samples.update({k: centre[k] + 1e-4 * z[k] for k in ("alpha", "beta")})
    samples["sigma"] = 0.005 * (1 + 0.05 * z["sigma"])
    samples["E"][0] += shift
    energy = rng.standard_normal((chains, draws))
    if energy_walk:
        energy = np.cumsum(0.1 * energy, axis=1)
    div = np.zeros((chains, draws), bool)
    div[0, :diverging] = True
    steps = np.full((chains, draws), 15)
    steps[1, :saturated] = 1023
    extra = {"diverging": div, "num_steps": steps, "energy": energy, "potential_energy": -energy,
             "accept_prob": np.full((chains, draws), 0.85)}
    theta = {k: v[..., None] for k, v in samples.items()}
    mu = np.asarray(Chinchilla().log_loss(theta, runs.N, runs.D))
    y = np.log(runs.loss if observed is None else observed)
    loglik = stats.norm.logpdf(y, loc=mu, scale=theta["sigma"])
    return build_posterior(Chinchilla(), runs, samples, extra, loglik, method="nuts",
                           meta={"likelihood": "normal"})


# --- diagnose on constructed draws: each check fires exactly when it should ------------------------
def test_well_mixed_draws_pass_every_check(runs):
    d = diagnose(synthetic(runs))
    assert d.applicable and d.ok and d.problems == []
    assert d.table["r_hat"].max() < 1.01 and d.table["ess_bulk"].min() > 400
    assert d.verdict().startswith("Sampler diagnostics: all checks passed")
    assert (d.checks()["status"] == "ok").all()


@pytest.mark.parametrize(
    ("kwargs", "check", "phrase"),
    [
        ({"shift": 0.1}, "r_hat", "R-hat above 1.01 for E"),
        ({"diverging": 12}, "divergences", "12 divergent transitions"),
        ({"energy_walk": True}, "bfmi", "E-BFMI below 0.3"),
        ({"chains": 2, "draws": 60}, "ess_bulk", "Bulk ESS below 200"),
    ],
)
def test_each_pathology_is_flagged_with_advice(runs, kwargs, check, phrase):
    d = diagnose(synthetic(runs, **kwargs))
    assert not d.ok
    flagged = {p.check: p for p in d.problems}
    assert check in flagged, d.verdict()
    assert phrase in flagged[check].message
    assert len(flagged[check].advice) > 40  # says what to do
    assert "do not trust the intervals" in d.verdict() and phrase in d.verdict()
    assert d.checks().set_index("check")["status"].eq("FAIL").any()


def test_tree_depth_saturation_is_an_efficiency_warning_not_a_failure(runs):
    """Transitions cut at the maximum tree depth leave the draws valid (R-hat and ESS, checked, say
    how well the chain mixed): the verdict warns and advises, but does not say "do not trust"."""
    d = diagnose(synthetic(runs, saturated=7))
    assert d.ok
    (problem,) = d.problems
    assert problem.check == "tree_depth" and problem.efficiency
    assert "7 transitions stopped at the maximum tree depth 10" in problem.message
    verdict = d.verdict()
    assert verdict.startswith("Sampler diagnostics: the validity checks passed") and "1 efficiency warning" in verdict
    assert "do not trust" not in verdict and "longer warmup" in verdict
    status = d.checks().set_index("check")["status"]
    assert status["draws at max tree depth 10"] == "WARN" and (status.drop("draws at max tree depth 10") == "ok").all()
    # with a validity failure too, the verdict says not to trust and counts only the failures
    both = diagnose(synthetic(runs, saturated=7, diverging=12))
    assert not both.ok and both.verdict().startswith("Sampler diagnostics: 1 problem; do not trust")
    assert "7 transitions stopped" in both.verdict()


def test_a_parameter_held_fixed_is_not_diagnosed(runs):
    post = synthetic(runs)
    post.idata["posterior"]["E"].values[:] = 1.69  # e.g. a law with E fixed
    d = diagnose(post)
    assert "E" not in d.table.index and set(d.table.index) == {"A", "B", "alpha", "beta", "sigma"}
    assert d.ok


def test_point_fit_says_diagnostics_do_not_apply(runs):
    samples = {k: np.array([[v]]) for k, v in EPOCH_2024.items()}
    samples["sigma"] = np.array([[0.005]])
    point = build_posterior(Chinchilla(), runs, samples, None, None, method="map", meta={"likelihood": "normal"})
    d = diagnose(point)
    assert not d.applicable and not d.ok and d.problems == []
    assert "do not apply" in d.verdict() and "1 draw" in d.verdict()
    assert d.checks().empty


# --- real fits -----------------------------------------------------------------------------------
def test_real_fit_has_clean_sampler_statistics(post):
    d = diagnose(post)
    assert d.applicable and d.num_chains == 2 and d.num_draws == 200
    assert d.divergences == 0 and d.saturated == 0 and np.all(d.bfmi > 0.3)
    assert d.table["r_hat"].max() < 1.05 and d.table["ess_bulk"].min() > 100
    assert "2 chains x 200 draws" in d.verdict()


@pytest.mark.slow
def test_one_short_chain_is_flagged(runs):
    bad = fit_nuts(runs, num_chains=1, num_warmup=20, num_draws=20, seed=1)
    d = diagnose(bad)
    assert d.applicable and not d.ok
    assert {"ess_bulk", "ess_tail"} <= {p.check for p in d.problems}
    assert d.table["ess_bulk"].max() < 100
    assert "do not trust the intervals" in d.verdict()


# --- model checking ------------------------------------------------------------------------------
def test_posterior_predictive_group_and_coverage(post):
    checking.add_posterior_predictive(post, seed=0)
    pp = post.idata["posterior_predictive"]["log_loss"]
    assert pp.dims == ("chain", "draw", "run") and pp.shape == (2, 200, len(post.runs))
    table = checking.residuals(post, 0.9)
    assert list(table.columns[:5]) == ["run_id", "N", "D", "C", "loss"]
    assert (table["pred_lo"] < table["pred_median"]).all() and (table["pred_median"] < table["pred_hi"]).all()
    assert 0.8 <= table["inside"].mean() <= 0.98
    assert abs(np.median(table["log_resid"])) < 0.005


@pytest.mark.slow
def test_misspecified_model_loses_on_elpd(runs, post):
    """A deliberately misspecified model: the data exponent beta pinned near 0.05 by its prior, so
    L barely depends on D. NUTS samples it cleanly, but it explains the runs far worse: PSIS-LOO
    ranks it last by much more than the standard error of the difference, its noise scale absorbs
    the misfit (so coverage alone would not show it), and its residuals drift with D."""
    pinned = fit_nuts(runs, priors={"beta": dist.LogNormal(jnp.log(0.05), 0.02)},
                      num_chains=2, num_warmup=200, num_draws=200, seed=0)
    table = checking.compare({"fitted": post, "beta_pinned": pinned})
    assert list(table.index) == ["fitted", "beta_pinned"] and list(table["rank"]) == [1, 2]
    assert table.loc["fitted", "elpd_diff"] == 0
    assert table.loc["beta_pinned", "elpd_diff"] < -4 * table.loc["beta_pinned", "dse"] < 0
    assert table.loc["fitted", "weight"] > 0.5
    assert np.median(pinned.draws("sigma")) > 1.5 * np.median(post.draws("sigma"))
    trends = checking.residual_trends(pinned).set_index("against")
    assert trends.loc["D", "trend"] and trends.loc["D", "spearman_rho"] < -0.2  # misfit along D
    assert not checking.residual_trends(post)["trend"].any()


def test_loo_flags_an_outlier_with_pareto_k(runs, post):
    """Under a normal likelihood, a run 10 sigma away from what every draw predicts dominates the
    importance weights of its own LOO estimate: its Pareto k is high and it is flagged."""
    result = checking.loo(post)
    assert result.flagged.empty and np.all(result.pareto_k <= result.good_k) and result.elpd > 0
    observed = runs.loss.copy()
    observed[7] *= 1.05  # log-loss residual 0.049, about 10 sigma
    result = checking.loo(synthetic(runs, chains=2, draws=300, centre=post_medians(post), observed=observed))
    assert result.flagged["run_id"].iloc[0] == runs.frame["run_id"][7]
    assert result.pareto_k[7] == result.pareto_k.max() > result.good_k
    assert "Pareto k >" in result.text() and runs.frame["run_id"][7] in result.text()


def post_medians(post) -> dict:
    return {k: float(np.median(v)) for k, v in post.theta().items()}


def test_compare_and_loo_refuse_what_they_cannot_do(runs, post):
    with pytest.raises(InputError, match="at least two"):
        checking.compare({"only": post})
    other = synthetic(load_chinchilla(), chains=2, draws=100)  # all 245 rows: different data
    with pytest.raises(InputError, match="different runs"):
        checking.compare({"a": post, "b": other})
    samples = {k: np.array([[v]]) for k, v in EPOCH_2024.items()}
    point = build_posterior(Chinchilla(), runs, samples, None, None, method="map", meta={})
    with pytest.raises(InputError, match="PSIS-LOO does not apply"):
        checking.loo(point)


def test_compare_matches_the_same_runs_given_in_another_order(runs, post):
    """Two fits of the same runs whose tables list them in different orders are compared run by run: the
    same ELPD and pointwise differences as in the same order; a changed loss is still different runs."""
    order = np.random.default_rng(0).permutation(len(runs))
    shuffled = Runs(runs.frame.iloc[order].reset_index(drop=True))
    a = synthetic(runs, chains=2, draws=200, seed=3)
    b = synthetic(shuffled, chains=2, draws=200, seed=4)
    back = checking.run_order(runs, shuffled)
    np.testing.assert_array_equal(shuffled.frame["loss"].to_numpy()[back], runs.frame["loss"].to_numpy())
    table = checking.compare({"a": a, "b": b})
    same = checking.compare({"a": a, "b": synthetic(runs, chains=2, draws=200, seed=4)})  # b's draws, a's order
    np.testing.assert_allclose(table["elpd"].to_numpy(), same["elpd"].to_numpy())
    np.testing.assert_allclose(table["dse"].to_numpy(), same["dse"].to_numpy())
    changed = shuffled.frame.copy()
    changed.loc[0, "loss"] *= 1.01
    with pytest.raises(InputError, match="different runs"):
        checking.compare({"a": a, "c": synthetic(Runs(changed), chains=2, draws=200)})


@pytest.mark.parametrize("chains", [1, 2, 4])
def test_rhat_and_ess_agree_with_arviz(chains):
    """Our NumPyro-based R-hat equals ArviZ's (rank-normalised, split; with ties and an odd draw
    count) and the bulk and tail ESS lie within 2% of ArviZ's."""
    import arviz_stats

    from bayes_scaling.diagnostics import _chain_stats

    rng = np.random.default_rng(chains)
    x = np.cumsum(rng.normal(size=(chains, 1001)), axis=1) * 0.05 + rng.normal(size=(chains, 1001))
    x[0, :5] = x[0, 5]  # ties share their mean rank
    ours = _chain_stats(x)
    if chains > 1:  # ArviZ needs two chains; ours compares one chain's halves
        assert ours["r_hat"] == pytest.approx(float(arviz_stats.rhat(x)), rel=1e-9)
    assert ours["ess_bulk"] == pytest.approx(float(arviz_stats.ess(x, method="bulk")), rel=0.02)
    tail = float(arviz_stats.ess(x, method="tail", prob=(0.05, 0.95)))
    assert ours["ess_tail"] == pytest.approx(tail, rel=0.02)


def test_one_chain_rhat_compares_its_halves():
    """A chain whose halves sit at different levels gets a large R-hat; a stationary one does not."""
    from bayes_scaling.diagnostics import _chain_stats

    rng = np.random.default_rng(0)
    steady = rng.normal(size=(1, 2000))
    shifted = steady + np.r_[np.zeros(1000), np.ones(1000)]
    assert _chain_stats(steady)["r_hat"] < 1.01
    assert _chain_stats(shifted)["r_hat"] > 1.2


def test_fit_nuts_retries_divergent_fits_and_warns_when_the_verdict_fails():
    """Porian's tuned short-warm-up attention sweep diverges at the defaults (17 of 4,000 draws):
    without the retry the fit says so instead of returning silently; with it (the default) the fit
    is redone at target acceptance 0.99 and comes back clean, saying it was retried. A clean fit
    neither retries nor warns."""
    import warnings

    from bayes_scaling.diagnostics import SamplerWarning, diagnose
    from bayes_scaling.fitting.nuts import RETRY_TARGET_ACCEPT, fit_nuts
    from bayes_scaling.runs.bundled import load_chinchilla, load_porian
    from bayes_scaling.runs.table import Runs

    porian = load_porian().for_fit()
    sweep = Runs(porian.frame[porian.frame["group"] == "rw-tuned-short-const-attention-train"].reset_index(drop=True))
    with pytest.warns(SamplerWarning, match="divergen"):
        fit_nuts(sweep, model="plain", retry_divergent=False)
    retried = fit_nuts(sweep, model="plain")
    assert "refitted at 0.99" in retried.meta["retried"] and retried.meta["target_accept"] == RETRY_TARGET_ACCEPT
    assert diagnose(retried).divergences == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerWarning)
        clean = fit_nuts(load_chinchilla().for_fit(), model="plain")
    assert "retried" not in clean.meta and clean.meta["target_accept"] == 0.8


def test_fit_nuts_redoes_a_fit_short_of_effective_draws_with_longer_chains(monkeypatch):
    """50 draws per chain cannot give the 100 effective draws per chain the verdict asks for: with
    ``more_draws`` (the default) the fit is redone with 100, then 200 draws per chain, and says so;
    without it the fit warns and keeps its 50."""
    from bayes_scaling.diagnostics import SamplerWarning
    from bayes_scaling.fitting import nuts
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs.bundled import load_chinchilla

    monkeypatch.setattr(nuts, "MORE_DRAWS_DOUBLINGS", 2)  # the library's default (conftest turns it off)
    runs = load_chinchilla().for_fit()
    # 300 warm-up iterations: with 100 the chains can still disagree (R-hat over MORE_DRAWS_RHAT, stuck
    # rather than short of draws, and not redone) on some machines' numerics
    short = dict(model="plain", num_chains=2, num_warmup=300, num_draws=50, seed=3)
    with pytest.warns(SamplerWarning, match="ESS"):
        kept = fit_nuts(runs, more_draws=False, **short)
    assert kept.meta["num_draws"] == 50 and "more_draws" not in kept.meta
    redone = fit_nuts(runs, **short)
    assert redone.meta["num_draws"] in (100, 200) and "short at 50 draws per chain; redone with 100" in redone.meta["more_draws"]
    assert redone.num_draws == 2 * redone.meta["num_draws"]


@pytest.mark.parametrize("retry_after", [True, False])
def test_longer_chains_that_diverge_are_retried_at_smaller_steps(monkeypatch, retry_after):
    """``fit_nuts``'s order of redoes (stand-in fits and verdicts, no sampling): a fit short only of
    effective draws is redone with twice the draws; when those longer chains find a divergence,
    ``RETRY_AFTER_MORE_DRAWS`` redoes them once more at target acceptance 0.99 with the same
    length, keeping what was redone in ``meta``; without it the divergent longer fit is kept."""
    import pandas as pd

    from bayes_scaling.diagnostics import Diagnosis, Problem, SamplerWarning
    from bayes_scaling.fitting import nuts

    calls = []

    class Fit:
        def __init__(self, settings):
            self.meta = {"num_draws": settings.draws, "target_accept": settings.target_accept}

    def fake_fit(runs, *, settings, **_):
        calls.append((settings.draws, settings.target_accept))
        return Fit(settings)

    def fake_diagnose(post):
        draws, accept = post.meta["num_draws"], post.meta["target_accept"]
        diverged = draws > 50 and accept < nuts.RETRY_TARGET_ACCEPT  # the longer chains find a divergence
        short = draws == 50
        problems = ([Problem("ess_bulk", "few effective draws.", "draw more.")] if short else []) + (
            [Problem("divergences", "1 divergent transition.", "smaller steps.")] if diverged else [])
        return Diagnosis(method="nuts", applicable=True, num_chains=2, num_draws=draws, divergences=int(diverged),
                         table=pd.DataFrame({"r_hat": [1.005], "ess_bulk": [300.0], "ess_tail": [300.0]}),
                         problems=problems)

    monkeypatch.setattr(nuts, "_fit", fake_fit)
    monkeypatch.setattr(nuts, "diagnose", fake_diagnose)
    monkeypatch.setattr(nuts, "MORE_DRAWS_DOUBLINGS", 2)
    monkeypatch.setattr(nuts, "RETRY_AFTER_MORE_DRAWS", retry_after)
    from bayes_scaling.runs import validate_runs

    runs = validate_runs(pd.DataFrame({"N": np.geomspace(1e7, 1e9, 6), "D": np.geomspace(1e9, 1e11, 6)[[2, 0, 4, 1, 5, 3]],
                                       "loss": np.linspace(3.0, 2.5, 6)}))  # read by the design check only
    if retry_after:
        post = nuts.fit_nuts(runs, model="plain", num_chains=2, num_warmup=10, num_draws=50)
        assert calls == [(50, 0.8), (100, 0.8), (100, nuts.RETRY_TARGET_ACCEPT)]
        assert post.meta["num_draws"] == 100 and post.meta["target_accept"] == nuts.RETRY_TARGET_ACCEPT
        assert "redone with 100" in post.meta["more_draws"] and "refitted at 0.99" in post.meta["retried"]
    else:
        with pytest.warns(SamplerWarning):
            post = nuts.fit_nuts(runs, model="plain", num_chains=2, num_warmup=10, num_draws=50)
        assert calls == [(50, 0.8), (100, 0.8)] and "retried" not in post.meta and post.meta["target_accept"] == 0.8


def test_runs_that_cannot_identify_the_law_are_named():
    """One tokens-per-parameter ratio (N and D grew together) or fewer than three distinct N or D: the
    design, not the sampler, limits what can be learned, and ``fit_nuts`` says so (``DesignWarning``)."""
    import warnings

    from bayes_scaling.diagnostics import DesignWarning, design_limits

    N = np.geomspace(1e7, 1e9, 8)
    (limit,) = design_limits(N, 20 * N)
    assert "same tokens per parameter (D/N 20-20)" in limit and "N_opt" in limit
    assert design_limits(N, np.geomspace(1e9, 1e11, 8)[[3, 0, 6, 1, 7, 2, 5, 4]]) == []  # D/N and 6ND both vary
    (slice_,) = design_limits(N, 1e19 / (6 * N))  # one IsoFLOP slice at 1e19 FLOPs
    assert "same compute (6ND 1e+19-1e+19 FLOPs, one IsoFLOP slice)" in slice_
    two = design_limits(np.repeat([1e8, 1e9], 4), np.tile(np.geomspace(1e9, 1e11, 4), 2))
    assert len(two) == 1 and two[0].startswith("only 2 distinct model sizes N")
    from bayes_scaling.runs import validate_runs
    import pandas as pd

    runs = validate_runs(pd.DataFrame({"N": N, "D": 20 * N, "loss": 1.7 + 400 * N ** -0.34 + 410 * (20 * N) ** -0.28}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = fit_nuts(runs, model="plain", num_chains=2, num_warmup=100, num_draws=100)
    assert any(issubclass(w.category, DesignWarning) and "more warm-up or draws will not fix this" in str(w.message)
               for w in caught)
    assert post.meta["design_limits"] == [limit]


def test_divergences_left_at_the_redos_target_accept_get_other_advice(runs):
    """A fit that still diverges at target_accept 0.99 (the automatic redo's) is not told to raise it."""
    from bayes_scaling.hierarchical.fit import hierarchical_advice

    post = synthetic(runs, diverging=12)
    assert "Raise target_accept" in {p.check: p for p in diagnose(post).problems}["divergences"].advice
    post.meta["target_accept"] = 0.99
    advice = {p.check: p for p in diagnose(post).problems}["divergences"].advice
    assert "remain at target_accept 0.99" in advice and "Raise target_accept" not in advice
    assert "raise target_accept" in hierarchical_advice(3, 0.9)
    assert "remain at target_accept 0.99" in hierarchical_advice(3, 0.99)
    assert hierarchical_advice(0, 0.99).startswith("draw more")
