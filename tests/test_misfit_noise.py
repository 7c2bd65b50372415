"""The misfit term along tokens per parameter (``ModelSpec.misfit_noise``, docs/extrapolation.md):
k = 0 is the plain model, it is learned where the law misfits runs far from the typical D/N, and
predictions at such a D/N get their own, wider noise."""

import numpy as np
import pandas as pd
import numpyro.distributions as dist
import pytest
from numpyro.infer.util import constrain_fn, log_density

from bayes_scaling.backtest import fit_like
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.nuts import fit_laplace, fit_nuts, jittered_init, pooled_description
from bayes_scaling.laws import get_law
from bayes_scaling.models import ModelSpec, pooled_model
from bayes_scaling.models import likelihood
from bayes_scaling.models.likelihood import MISFIT_PRIOR_SCALE, MISFIT_SITES, misfit_band, misfit_scale
from bayes_scaling.priors import resolve_priors
from bayes_scaling.runs.table import Runs

TRUE = {"E": 1.8, "A": 400.0, "B": 1200.0, "alpha": 0.33, "beta": 0.3}
CORE_SD, K_UNDER = 0.006, 0.04


def simulate(seed: int = 0) -> tuple[Runs, list]:
    """Runs on a grid of N and D/N whose log-loss noise is CORE_SD inside the band of the grid's
    ln(D/N) (its quartiles) and grows by K_UNDER per e-fold below it (the most under-trained runs
    misfit); returns the runs and the band."""
    rng = np.random.default_rng(seed)
    law = get_law("chinchilla")
    N = np.repeat(np.geomspace(2e7, 5e8, 6), 7)
    r = np.tile(np.geomspace(2.0, 160.0, 7), 6)
    D = N * r
    band = misfit_band(N, D)
    sd = misfit_scale(CORE_SD, K_UNDER, 0.0, np.log(r), band)
    mu = np.asarray(law.log_loss({k: np.float64(v) for k, v in TRUE.items()}, N, D))
    loss = np.exp(mu + sd * rng.standard_normal(len(N)))
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(N))], "group": "sim", "N": N, "D": D, "C": 6 * N * D, "loss": loss})
    return Runs(frame), band


@pytest.fixture(scope="module")
def simulated():
    runs, band = simulate()
    kw = {"model": "plain", "num_chains": 2, "num_warmup": 300, "num_draws": 500, "seed": 1}
    return runs, band, fit_nuts(runs, misfit_noise=True, **kw), fit_nuts(runs, misfit_noise=False, **kw)


def _spec(misfit: bool) -> ModelSpec:
    law = get_law("chinchilla")
    return ModelSpec(law=law, priors=resolve_priors(law, None), misfit_noise=misfit)


def test_k_zero_is_the_plain_model():
    runs, _ = simulate()
    N, D, y = runs.N, runs.D, np.log(runs.loss)
    centre = (float(np.mean(np.log(N))), float(np.mean(np.log(D))))
    plain_spec, misfit_spec = _spec(False), _spec(True)
    start = jittered_init(plain_spec.law, initial_theta(plain_spec.law, runs), centre, runs, 1, 0)
    params = constrain_fn(pooled_model, (plain_spec, N, D, centre, y), {}, {k: v[0] for k, v in start.items()})

    def densities(spec, values):  # (the observations' log density, the whole model's)
        args = (spec, N, D, centre, y, None, misfit_band(N, D) if spec.misfit_noise else None)
        total, trace = log_density(pooled_model, args, {}, values)
        site = trace["log_loss"]
        return float(np.sum(site["fn"].log_prob(site["value"]))), float(total)

    plain_obs, plain_total = densities(plain_spec, params)
    # k = 0 sits on the edge of HalfNormal's support (no prior density there): compare the
    # observations' density, and at a tiny k the whole model's less the k priors
    zero_obs, _ = densities(misfit_spec, {**params, **{site: 0.0 for site in MISFIT_SITES}})
    np.testing.assert_allclose(zero_obs, plain_obs, rtol=1e-13)
    tiny = {site: 1e-12 for site in MISFIT_SITES}
    _, tiny_total = densities(misfit_spec, {**params, **tiny})
    prior_k = 2 * float(dist.HalfNormal(MISFIT_PRIOR_SCALE).log_prob(1e-12))
    np.testing.assert_allclose(tiny_total - prior_k, plain_total, rtol=1e-12)
    # ... and at k > 0 the likelihood differs (the term is live)
    live_obs, _ = densities(misfit_spec, {**params, "misfit_under": 0.05, "misfit_over": 0.0})
    assert abs(live_obs - plain_obs) > 1e-3


def test_the_scale_treats_both_tails_alike():
    log_r = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    s = misfit_scale(0.01, 0.03, 0.03, log_r, (-1.0, 1.0))
    np.testing.assert_allclose(s, s[::-1])
    np.testing.assert_allclose(s[2:5], 0.01)  # inside the band: the core spread
    np.testing.assert_allclose(s[0], np.hypot(0.01, 0.06))
    one_sided = misfit_scale(0.01, 0.03, 0.0, log_r, (-1.0, 1.0))
    np.testing.assert_allclose(one_sided[2:], 0.01)
    assert misfit_band([1.0, 1.0, 1.0, 1.0], [1.0, np.e, np.e**2, np.e**3])[:2] == pytest.approx([0.75, 2.25])


def test_the_in_data_cap_stops_the_growth_at_the_fitted_runs_extremes(monkeypatch):
    monkeypatch.setattr(likelihood, "MISFIT_CAP", "in data")
    band = misfit_band([1.0] * 4, [1.0, np.e, np.e**2, np.e**3])  # ln r 0..3, quartiles 0.75, 2.25
    assert band == pytest.approx([0.75, 2.25, 0.75, 0.75])
    s = misfit_scale(0.01, 0.02, 0.02, np.array([-5.0, 0.0, 1.5, 3.0, 9.0]), band)
    np.testing.assert_allclose(s, [np.hypot(0.01, 0.015)] * 2 + [0.01] + [np.hypot(0.01, 0.015)] * 2)
    monkeypatch.setattr(likelihood, "MISFIT_CAP", "none")
    assert misfit_scale(0.01, 0.02, 0.02, np.array([9.0]), misfit_band([1.0] * 4, [1.0, np.e, np.e**2, np.e**3]))[0] \
        == pytest.approx(np.hypot(0.01, 0.02 * 6.75))
    monkeypatch.setattr(likelihood, "MISFIT_CAP", "sometimes")
    with pytest.raises(ValueError, match="MISFIT_CAP"):
        misfit_band([1.0], [2.0])


def test_compiled_programs_are_keyed_by_the_option():
    assert pooled_description(_spec(True)) != pooled_description(_spec(False))
    assert pooled_description(_spec(False)) == pooled_description(_spec(False))


@pytest.mark.slow
def test_inflated_noise_at_extreme_tokens_per_parameter_is_learned(simulated):
    runs, band, misfit, plain = simulated
    k_under, k_over = (np.median(misfit.draws(site)) for site in MISFIT_SITES)
    sigma, sigma_plain = np.median(misfit.draws("sigma")), np.median(plain.draws("sigma"))
    assert 0.5 * K_UNDER < k_under < 2 * K_UNDER and k_under > 3 * k_over
    assert 0.5 * CORE_SD < sigma < 1.6 * CORE_SD  # the core spread, where the plain sigma is inflated
    assert sigma_plain > 1.5 * sigma
    assert misfit.meta["misfit_noise"] and misfit.meta["misfit_band_log_tokens_per_param"] == pytest.approx(band)
    assert misfit.meta["misfit_cap"] == "none"
    assert "misfit_under" in set(misfit.summary()["parameter"])
    assert misfit.model_label == "plain law, misfit noise along D/N" and plain.model_label == "plain law"


@pytest.mark.slow
def test_predict_widens_for_an_extreme_tokens_per_parameter_run(simulated):
    _, band, misfit, plain = simulated
    N = np.array([1e8, 1e8])
    D = N * np.exp([np.mean(band[:2]), band[0] - 3.0])  # inside the fit's band of D/N, and 3 e-folds below it
    scale = np.median(misfit.noise_scale(N, D), axis=0)
    assert scale[1] > 3 * scale[0]
    np.testing.assert_allclose(np.median(plain.noise_scale(N, D), axis=0), np.median(plain.draws("sigma")))

    def log_width(post):
        noisy, mean = np.log(post.predict(N, D, seed=2)), np.log(post.predict(N, D, noise=False))
        lo, hi = np.quantile(noisy - mean, [0.05, 0.95], axis=0)
        return hi - lo

    width = log_width(misfit)
    assert width[1] > 2.5 * width[0]
    assert width[0] < log_width(plain)[0]  # at the core the misfit fit is the sharper one
    summary = misfit.predict_summary(N, D)
    assert (summary["model"] == "plain law, misfit noise along D/N").all()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayes_scaling.diagnostics.SamplerWarning")  # short chains
def test_calibration_refits_carry_the_option(simulated, monkeypatch):
    runs, _, _, _ = simulated
    refit = fit_laplace(runs, misfit_noise=True, num_chains=2, num_draws=200)
    assert refit.meta["misfit_noise"] and all(refit.has_draws(site) for site in MISFIT_SITES)
    post = fit_nuts(runs, misfit_noise=True, num_chains=2, num_warmup=200, num_draws=200, seed=2)
    assert post.model == "extrapolating" and post.meta["misfit_noise"]
    assert post.model_label == "extrapolating, misfit noise along D/N"
    assert all(post.has_draws(site) for site in MISFIT_SITES) and post.has_draws("drift_alloc")
    seen = {}  # a backtest of the saved fit refits with the option
    monkeypatch.setattr("bayes_scaling.fitting.nuts.fit_nuts", lambda runs, **kw: seen.update(kw))
    fit_like(post)(runs)
    assert seen["misfit_noise"] is True and seen["model"] == "extrapolating"


@pytest.mark.filterwarnings("ignore::bayes_scaling.diagnostics.SamplerWarning")  # short chains
def test_final_fit_only_leaves_the_calibration_refits_plain(monkeypatch):
    """misfit_noise="final": the final fit and its predictions carry the term, the calibration's
    refits do not (the drift is learned as the default learns it), and every output says which."""
    from bayes_scaling.fitting import nuts

    runs, _ = simulate()
    calls = []
    real = nuts._fit
    monkeypatch.setattr(nuts, "_fit", lambda *a, **kw: calls.append((kw.get("laplace", False), kw["misfit_noise"]))
                        or real(*a, **kw))
    post = fit_nuts(runs, misfit_noise="final", num_chains=2, num_warmup=150, num_draws=150, seed=2)
    final = [m for laplace, m in calls if not laplace]
    refits = [m for laplace, m in calls if laplace]
    assert final and all(final) and refits and not any(refits)
    assert post.meta["misfit_noise"] == "final" and post.meta["misfit_noise_where"] == "final fit only"
    assert post.model_label == "extrapolating, misfit noise along D/N (final fit only)"
    assert all(post.has_draws(site) for site in MISFIT_SITES) and post.has_draws("drift_alloc")
    assert (post.predict_summary(runs.N[:3], runs.D[:3])["model"] == post.model_label).all()
    seen = {}  # a backtest of the saved fit refits in the same mode
    monkeypatch.setattr("bayes_scaling.fitting.nuts.fit_nuts", lambda runs, **kw: seen.update(kw))
    fit_like(post)(runs)
    assert seen["misfit_noise"] == "final"


def test_misfit_mode_names_bad_input():
    from bayes_scaling.errors import InputError
    from bayes_scaling.fitting.nuts import misfit_mode

    assert [misfit_mode(v) for v in (False, True, "everywhere", "final")] == ["off", "everywhere", "everywhere", "final"]
    with pytest.raises(InputError, match="misfit_noise"):
        misfit_mode("sometimes")
