"""Per-budget offsets in the hierarchical model (``fit_hierarchical(offset_by=...)``): recovery of
simulated offsets, prediction with seen and unseen budgets, persistence, a zero-offset check, and
detrended offsets (no level, no trend in log C: a linear misfit stays with the law, a zig-zag goes to
the offsets)."""

import json
import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.hierarchical import POPULATION, HierarchicalSettings, detrending_basis, fit_hierarchical
from bayes_scaling.hierarchical.fit import resolve_offset_by
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.posterior import Posterior, offset_key
from bayes_scaling.runs import validate_runs

LAW = Chinchilla()
FAST = dict(num_chains=2, num_warmup=300, num_draws=250, likelihood="normal", share=("A", "B", "alpha", "beta"))
BUDGETS = np.array([1e18, 3e18, 1e19, 3e19, 1e20])
TRUE_OFFSETS = np.array([0.015, -0.02, 0.01, 0.02, -0.015])  # on log-loss, one per budget


def _isoflop(offsets, n_groups=2, sigma=0.002, seed=0):
    """Each group: 7 model sizes per IsoFLOP budget, E moved by 5% per group, the budget's offset
    added to every group's log-loss there."""
    rng = np.random.default_rng(seed)
    frames = []
    for g in range(n_groups):
        truth = {**EPOCH_2024, "E": EPOCH_2024["E"] * (1 + 0.05 * g)}
        for b, delta in zip(BUDGETS, offsets):
            N = np.geomspace(np.sqrt(b / 6) / 12, np.sqrt(b / 6) * 3, 7)
            D = b / (6 * N)
            log_loss = np.asarray(LAW.log_loss(truth, N, D)) + delta + sigma * rng.standard_normal(len(N))
            frames.append(pd.DataFrame({"N": N, "D": D, "loss": np.exp(log_loss), "group": f"g{g}", "budget": b}))
    return validate_runs(pd.concat(frames, ignore_index=True))


@pytest.fixture(scope="module")
def offset_fit():
    # Independent E per group, common A, B, alpha, beta, and offsets shared by the groups. (Partial
    # pooling of E with two groups adds a funnel in tau_E that has nothing to do with the offsets.)
    return fit_hierarchical(_isoflop(TRUE_OFFSETS), offset_by="budget", detrend_offsets=False, pooling="none", **FAST)


@pytest.mark.slow
def test_recovers_simulated_budget_offsets(offset_fit):
    post = offset_fit.groups["g0"]
    assert post.meta["offset_levels"] == [offset_key(b) for b in BUDGETS]
    draws = post.idata["posterior"]["offset"].values.reshape(post.num_draws, -1)
    # The offsets' mean trades against the laws' level, so compare them around their mean.
    centred = draws - draws.mean(axis=1, keepdims=True)
    truth = TRUE_OFFSETS - TRUE_OFFSETS.mean()
    lo, hi = np.quantile(centred, [0.05, 0.95], axis=0)
    assert np.sum((lo <= truth) & (truth <= hi)) >= 4
    assert np.max(np.abs(np.median(centred, axis=0) - truth)) < 0.006
    tau = offset_fit.spreads["offset"]
    assert 0.005 < np.median(tau) < 0.04
    assert offset_fit.diagnostics["divergences"] <= 5  # at most 1% of draws
    assert np.allclose(offset_fit.groups["g1"].draws("offset_tau"), post.draws("offset_tau"))


@pytest.mark.slow
def test_predict_uses_seen_offsets_and_widens_for_unseen(offset_fit):
    post = offset_fit.groups["g1"]
    N, D = np.array([3e7]), np.array([1e19 / 6 / 3e7])
    law_only = np.exp(np.asarray(LAW.log_loss({k: v[:, None] for k, v in post.theta().items()}, N[None], D[None])))
    seen = post.predict(N, D, noise=False, offset_at=1e19)
    fitted = post.idata["posterior"]["offset"].values.reshape(post.num_draws, -1)[:, 2]
    np.testing.assert_allclose(seen[:, 0], law_only[:, 0] * np.exp(fitted), rtol=1e-10)
    unseen = post.predict(N, D, noise=False, offset_at=1e21)
    np.testing.assert_allclose(np.log(unseen / law_only).std(), np.sqrt(np.mean(post.draws("offset_tau") ** 2)),
                               rtol=0.15)
    assert np.log(unseen).std() > 2 * np.log(seen).std()
    none_given = post.predict(N, D, noise=False)
    np.testing.assert_allclose(none_given, unseen)  # no level given: an unseen one
    # one level per point, mixed seen ("1e+19" as text is the same level) and unseen
    both = post.predict(np.repeat(N, 2), np.repeat(D, 2), noise=False, offset_at=["1e+19", 5e20])
    np.testing.assert_allclose(both[:, 0], seen[:, 0])



@pytest.mark.slow
def test_predictive_checks_use_each_runs_fitted_offset(offset_fit):
    """Posterior predictive checks of an offset fit predict each run with its own budget's fitted
    offset, not a fresh one: the replicates are centred on the runs and the intervals stay narrow."""
    from bayes_scaling import checking

    post = offset_fit.groups["g0"]
    levels = checking.run_offset_levels(post)
    np.testing.assert_array_equal(levels, post.runs.frame["budget"].to_numpy())
    table = checking.residuals(post)
    assert table["inside"].mean() >= 0.8
    assert np.abs(table["log_resid"]).max() < 0.012  # the offsets are up to 0.02: they are in mu
    unseen = checking.predictive_log_loss(post, post.runs.N, post.runs.D)  # every run as a new budget
    seen = checking.predictive_log_loss(post, post.runs.N, post.runs.D, offset_at=levels)
    assert np.median(np.std(seen, axis=0)) < 0.7 * np.median(np.std(unseen, axis=0))
    rep = checking.add_posterior_predictive(post).idata["posterior_predictive"]["log_loss"].values
    resid = np.median(rep.reshape(-1, rep.shape[-1]), axis=0) - np.log(post.runs.loss)
    assert np.abs(resid).max() < 0.012
    assert checking.run_offset_levels(Posterior(LAW, post.idata.copy(), post.runs, "nuts", {})) is None
    without_column = validate_runs(post.runs.frame[["N", "D", "loss", "group"]])
    with pytest.raises(InputError, match="no 'budget' column"):
        checking.run_offset_levels(Posterior(LAW, post.idata, without_column, "nuts", post.meta))


def _toy_posterior(meta_levels=("1e+19",)):
    S = 400
    rng = np.random.default_rng(0)
    draws = {k: np.full((1, S), v) for k, v in EPOCH_2024.items()}
    draws["sigma"] = np.full((1, S), 0.01)
    draws["offset"] = 0.02 + 0.001 * rng.standard_normal((1, S, len(meta_levels)))
    draws["offset_tau"] = np.full((1, S), 0.03)
    runs = validate_runs(pd.DataFrame({"N": [1e8], "D": [1e10], "loss": [3.0]}))
    return build_posterior(LAW, runs, draws, None, None, method="nuts",  # a method Posterior.load accepts
                           meta={"offset_by": "budget", "offset_levels": list(meta_levels)})


def test_offsets_survive_save_and_load(tmp_path):
    post = _toy_posterior()
    loaded = Posterior.load(post.save(tmp_path / "fit"))
    for at in (1e19, 7e19):
        np.testing.assert_allclose(loaded.predict([1e8], [1e10], offset_at=at, seed=3),
                                   post.predict([1e8], [1e10], offset_at=at, seed=3))
    base = np.exp(np.asarray(LAW.log_loss(EPOCH_2024, 1e8, 1e10)))
    assert np.median(loaded.predict([1e8], [1e10], noise=False, offset_at=1e19)) == pytest.approx(base * np.exp(0.02), rel=1e-3)


def test_a_point_s_draws_do_not_depend_on_the_other_points_predicted():
    """With ``per_point`` (``predict_summary``'s), a point's predictive draws (noise, and a new level's fresh
    offset) are its own: the same alone, beside
    another point or in another order, for the same seed; another seed draws others. A repeat of the same
    point in one call draws its own, independent ones."""
    post = _toy_posterior()
    for at in (1e19, "7e19", None):
        alone = post.predict([1e8], [1e10], offset_at=at, seed=3, per_point=True)[:, 0]
        np.testing.assert_array_equal(post.predict([3e9, 1e8], [5e10, 1e10], offset_at=at, seed=3, per_point=True)[:, 1], alone)
        assert not np.array_equal(post.predict([1e8], [1e10], offset_at=at, seed=4, per_point=True)[:, 0], alone)
    mixed = post.predict([1e8, 1e8, 1e8], [1e10, 1e10, 1e10], offset_at=[1e19, None, "1e+19"], seed=3,
                         per_point=True)
    np.testing.assert_array_equal(mixed[:, 0], post.predict([1e8], [1e10], offset_at=1e19, seed=3, per_point=True)[:, 0])
    np.testing.assert_array_equal(mixed[:, 1], post.predict([1e8], [1e10], offset_at=None, seed=3, per_point=True)[:, 0])
    assert abs(np.corrcoef(np.log(mixed[:, [0, 2]]).T)[0, 1]) < 0.3  # the repeat: its own noise


def test_predict_runs_uses_each_rows_level_and_says_so(tmp_path, capsys):
    """``predict --runs``: a row at a fitted level gets that level's offset (+0.02 here), a row at a new
    level a fresh one (wider); a table without the offset column is predicted at new levels, with a note."""
    from bayes_scaling.cli import main

    fit = _toy_posterior().save(tmp_path / "fit")
    table = pd.DataFrame({"N": [1e8, 1e8], "D": [1e10, 1.1e10], "loss": [3.0, 3.0], "budget": [1e19, 7e19]})
    table.to_csv(tmp_path / "runs.csv", index=False)
    capsys.readouterr()
    assert main(["predict", str(fit), "--runs", str(tmp_path / "runs.csv"), "--json"]) == 0
    seen, new = json.loads(capsys.readouterr().out)["predictions"]
    assert seen["predicted_as"] == "fitted level 1e+19" and new["predicted_as"] == "new level 7e+19"
    base = float(np.exp(np.asarray(LAW.log_loss(EPOCH_2024, 1e8, 1e10))))
    assert seen["median"] == pytest.approx(base * np.exp(0.02), rel=3e-3)
    assert new["hi"] - new["lo"] > 1.5 * (seen["hi"] - seen["lo"])  # tau 0.03 on top of sigma 0.01
    assert main(["predict", str(fit), "--runs", str(tmp_path / "runs.csv")]) == 0
    assert "rows predicted as: fitted level (1), new level (1)" in capsys.readouterr().out
    table.drop(columns="budget").to_csv(tmp_path / "plain.csv", index=False)
    assert main(["predict", str(fit), "--runs", str(tmp_path / "plain.csv")]) == 0
    assert "the table has no 'budget' column: each row is predicted at a new level" in capsys.readouterr().err


def test_predict_at_a_level_puts_every_point_there_and_refuses_what_has_no_level(tmp_path, capsys):
    """``predict --N --D --at LEVEL``: a fitted level's offset (+0.02 here), a new level's fresh one (wider);
    --at with --runs, or on a fit without levels, is refused with the reason."""
    from bayes_scaling.cli import main

    post = _toy_posterior()
    fit = post.save(tmp_path / "fit")
    answers = {}
    for at in ("1e19", "7e19"):
        capsys.readouterr()
        assert main(["predict", str(fit), "--N", "1e8", "--D", "1e10", "--at", at, "--json"]) == 0
        answers[at] = json.loads(capsys.readouterr().out)["predictions"][0]
    base = float(np.exp(np.asarray(LAW.log_loss(EPOCH_2024, 1e8, 1e10))))
    assert answers["1e19"]["median"] == pytest.approx(base * np.exp(0.02), rel=3e-3)
    assert answers["1e19"]["predicted_as"] == "fitted level 1e19" and answers["7e19"]["predicted_as"] == "new level 7e19"
    assert answers["7e19"]["hi"] - answers["7e19"]["lo"] > 1.5 * (answers["1e19"]["hi"] - answers["1e19"]["lo"])
    capsys.readouterr()  # without --at: a new level, named in the JSON and in a note
    assert main(["predict", str(fit), "--N", "1e8", "--D", "1e10", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["predictions"][0]["predicted_as"].startswith("new level of")
    assert "the points are predicted at a new level" in captured.err
    pd.DataFrame({"N": [1e8], "D": [1e10], "loss": [3.0]}).to_csv(tmp_path / "runs.csv", index=False)
    assert main(["predict", str(fit), "--runs", str(tmp_path / "runs.csv"), "--at", "1e19"]) == 2
    assert "with --runs each row's level is read from its own columns" in capsys.readouterr().err
    del post.meta["offset_by"], post.idata["posterior"]["offset"]
    post.save(tmp_path / "plain")
    assert main(["predict", str(tmp_path / "plain"), "--N", "1e8", "--D", "1e10", "--at", "1e19"]) == 2
    assert "this fit has no levels" in capsys.readouterr().err


def test_posterior_without_offsets_ignores_offset_at():
    post = _toy_posterior()
    del post.idata["posterior"]["offset"]
    np.testing.assert_allclose(post.predict([1e8], [1e10], offset_at=1e19, seed=2), post.predict([1e8], [1e10], seed=2))


@pytest.mark.slow
def test_one_group_without_budget_effect_keeps_offsets_small():
    runs = _isoflop(np.zeros(len(BUDGETS)), n_groups=1, seed=5)
    short = {**FAST, "num_warmup": 200, "num_draws": 150}
    with_offsets = fit_hierarchical(runs, pooling="complete", **short)  # "auto": the budget column
    plain = fit_hierarchical(runs, pooling="complete", offset_by=None, **short)
    assert with_offsets.groups["g0"].meta["offset_by"] == "budget" and "offset_by" not in plain.groups["g0"].meta
    post = with_offsets.groups["g0"]
    offsets = post.idata["posterior"]["offset"].values.reshape(post.num_draws, -1)
    assert np.max(np.abs(np.median(offsets, axis=0))) < 0.004
    assert np.median(with_offsets.spreads["offset"]) < 0.01
    e_with, e_plain = np.median(post.draws("E")), np.median(plain.groups["g0"].draws("E"))
    assert e_with == pytest.approx(e_plain, rel=0.02) and e_with == pytest.approx(EPOCH_2024["E"], rel=0.05)
    # the population (a new group) carries the same offsets
    assert np.allclose(with_offsets.population.draws("offset_tau"), post.draws("offset_tau"))
    assert POPULATION not in with_offsets.groups


def test_bad_offset_options_are_refused():
    runs = _isoflop(TRUE_OFFSETS)
    with pytest.raises(InputError, match="no column 'flops'"):
        fit_hierarchical(runs, offset_by="flops", **FAST)
    with pytest.raises(InputError, match="offset_scale"):
        fit_hierarchical(runs, offset_by="budget", offset_scale=0.0, **FAST)
    frame = runs.frame.copy()
    frame.loc[3, "budget"] = np.nan
    with pytest.raises(InputError, match="has no value for runs"):
        fit_hierarchical(type(runs)(frame), offset_by="budget", **FAST)


# --- detrended offsets (detrend_offsets=True): no level and no linear trend in log C ----------------

U = np.log(BUDGETS)


def _detrended(values):
    """``values`` less their least-squares level and linear trend in log C."""
    X = np.column_stack([np.ones_like(U), U])
    return values - X @ np.linalg.lstsq(X, values, rcond=None)[0]


def test_detrending_basis_is_orthogonal_to_level_and_trend():
    Q = detrending_basis(U)
    assert Q.shape == (len(U), len(U) - 2)
    np.testing.assert_allclose(Q.T @ Q, np.eye(len(U) - 2), atol=1e-12)
    np.testing.assert_allclose(Q.T @ np.ones(len(U)), 0.0, atol=1e-12)
    np.testing.assert_allclose(Q.T @ U, 0.0, atol=1e-10)
    # Q Q^T projects onto the complement: it removes the level and trend and nothing else
    zig = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    np.testing.assert_allclose(Q @ (Q.T @ zig), _detrended(zig), atol=1e-12)


def test_detrending_needs_three_numeric_levels():
    with pytest.raises(InputError, match="at least 3 levels"):
        detrending_basis(np.log([1e18, 1e19]))
    runs = _isoflop(TRUE_OFFSETS)
    two = type(runs)(runs.frame[runs.frame["budget"] <= 3e18].reset_index(drop=True))
    with pytest.raises(InputError, match="at least 3 levels"):
        fit_hierarchical(two, offset_by="budget", detrend_offsets=True, **FAST)
    # "auto" takes no offsets where detrending has too few levels, rather than failing
    # (fit_hierarchical resolves offset_by with resolve_offset_by, before any sampling)
    assert resolve_offset_by(two.frame, HierarchicalSettings(detrend_offsets=True)) is None
    assert resolve_offset_by(two.frame, HierarchicalSettings()) == "budget"  # free offsets: two levels do
    frame = runs.frame.assign(sweep=[f"s{int(np.log10(b))}" for b in runs.frame["budget"]])
    with pytest.raises(InputError, match="numeric offset column; 'sweep'"):
        fit_hierarchical(type(runs)(frame), offset_by="sweep", detrend_offsets=True, **FAST)


TREND = 0.008 * (U - U.mean())  # a pure linear-in-log-C misfit: +-0.018 across the budgets
ZIGZAG = 0.02 * _detrended(np.array([1.0, -1.0, 1.0, -1.0, 1.0])) / np.max(np.abs(_detrended(np.array([1.0, -1, 1, -1, 1]))))


@pytest.fixture(scope="module")
def trend_fit():
    return fit_hierarchical(_isoflop(TREND), offset_by="budget", detrend_offsets=True, pooling="none", **FAST)


@pytest.fixture(scope="module")
def zigzag_fit():
    return fit_hierarchical(_isoflop(ZIGZAG), offset_by="budget", detrend_offsets=True, pooling="none", **FAST)


def _offsets(fit):
    post = fit.groups["g0"]
    return post.idata["posterior"]["offset"].values.reshape(post.num_draws, -1)


@pytest.mark.slow
def test_detrended_offsets_have_no_level_and_no_trend(trend_fit, zigzag_fit):
    for fit in (trend_fit, zigzag_fit):
        assert fit.groups["g0"].meta["offset_detrended"] is True
        delta = _offsets(fit)
        assert np.max(np.abs(delta.mean(axis=1))) < 1e-8  # zero mean over the levels, every draw
        assert np.max(np.abs(delta @ (U - U.mean()))) < 1e-8  # zero slope in log C, every draw


@pytest.mark.slow
def test_linear_misfit_is_left_to_the_law(trend_fit):
    delta = np.median(_offsets(trend_fit), axis=0)
    assert np.max(np.abs(delta)) < 0.005  # the +-0.018 trend is not in the offsets
    # ... it is in the laws: with the (near-zero) offsets, predictions follow the runs
    for name, post in trend_fit.groups.items():
        runs = post.runs.frame
        pred = np.median(post.predict(runs["N"], runs["D"], noise=False, offset_at=runs["budget"].to_numpy()), axis=0)
        assert np.sqrt(np.mean(np.log(pred / runs["loss"]) ** 2)) < 0.006, name
    assert trend_fit.diagnostics["divergences"] <= 5


@pytest.mark.slow
def test_zigzag_misfit_is_absorbed_by_the_offsets(zigzag_fit):
    delta = _offsets(zigzag_fit)
    lo, hi = np.quantile(delta, [0.05, 0.95], axis=0)
    assert np.sum((lo <= ZIGZAG) & (ZIGZAG <= hi)) >= 4
    assert np.max(np.abs(np.median(delta, axis=0) - ZIGZAG)) < 0.005
    assert zigzag_fit.diagnostics["divergences"] <= 5
    # an unseen budget gets a fresh Normal(0, tau_o^2) wiggle per draw
    post = zigzag_fit.groups["g1"]
    fresh = post.offset_draws([5e20], (post.num_draws, 1))[:, 0]
    np.testing.assert_allclose(fresh.std(), np.sqrt(np.mean(post.draws("offset_tau") ** 2)), rtol=0.15)


def test_cli_takes_detrend_offsets():
    import argparse

    from bayes_scaling.cli import fit as cli_fit

    parser = argparse.ArgumentParser()
    cli_fit.register(parser.add_subparsers())
    base = ["fit", "marin", "--out", "x", "--group-by", "group"]
    assert parser.parse_args(base).detrend_offsets is None  # the library's default
    assert parser.parse_args([*base, "--detrend-offsets"]).detrend_offsets is True
    assert parser.parse_args([*base, "--no-detrend-offsets"]).detrend_offsets is False


def test_level_params_are_the_terms_that_scale_the_loss():
    """Chinchilla's E, A and B carry a common level of log-loss (every term scales by e^d); Kaplan's
    law has no such set, and a point-mass E (E given) cannot carry it."""
    from bayes_scaling.hierarchical.offsets import level_params
    import numpyro.distributions as dist

    from bayes_scaling.laws import KAPLAN_2020, Kaplan
    from bayes_scaling.models.hierarchical import latent_from_natural

    N, D = np.array([1e8, 1e9, 3e9]), np.array([2e9, 2e10, 5e10])
    centre = (np.log(1e9), np.log(2e10))
    fixed_e = {**LAW.default_priors(), "E": dist.Delta(EPOCH_2024["E"])}
    for law, priors, theta, expected in ((LAW, LAW.default_priors(), EPOCH_2024, ("E", "A", "B")),
                                         (Kaplan(), Kaplan().default_priors(), KAPLAN_2020, ()),
                                         (LAW, fixed_e, EPOCH_2024, ())):
        latent = {p: float(v) for p, v in latent_from_natural(law, theta, centre).items()}
        assert level_params(law, priors, latent, centre, N, D) == expected, law.name


def test_absorbed_level_is_the_same_model():
    """``absorb_level``: the log joint of the model sampled as (shifted coordinates, level, rest of
    the offsets) equals the free-offset model's at the matching point, up to the Jacobian
    log(tau_o) of the non-centred level (l = tau_o z / sqrt(B)) and the rotation's sqrt(B):
    log p_abs = log p_free + log tau_o, at any point."""
    import numpyro.distributions as dist
    from numpyro.infer.util import log_density

    from bayes_scaling.hierarchical import HierSpec, hierarchical_model
    from bayes_scaling.hierarchical.offsets import complement_basis

    modes = {"E": "partial", "A": "partial", "B": "partial", "alpha": "shared", "beta": "shared"}
    spreads = {"E": 0.1, "A": 0.5, "B": 0.5, "alpha": 0.2, "beta": 0.2}
    priors = {**LAW.default_priors(), "sigma": dist.HalfNormal(0.05)}
    B, G = 4, 2
    free = HierSpec(LAW, priors, G, "partial", modes, spreads, n_offsets=B, n_offset_coords=B)
    absorbed = HierSpec(LAW, priors, G, "partial", modes, spreads, n_offsets=B, n_offset_coords=B - 1,
                        level_params=("E", "A", "B"))
    R = complement_basis(np.ones((B, 1)))
    rng = np.random.default_rng(0)
    group, level = np.array([0, 0, 1, 1, 0, 1, 0, 1]), np.array([0, 1, 2, 3, 3, 2, 1, 0])
    N, D = np.geomspace(1e8, 3e9, 8), np.geomspace(2e9, 6e10, 8)
    log_loss = np.log(np.asarray(LAW.log_loss(EPOCH_2024, N, D))) + 0.01 * rng.standard_normal(8)
    centre, centring = np.full((2, G), [[np.log(3e8)], [np.log(8e9)]]), np.ones((5, G))  # centred groups
    differences = []
    for tau_o in (0.004, 0.03):
        delta = tau_o * rng.standard_normal(B)
        mu = {"E": 0.5, "A": 1.0, "B": 1.5, "alpha": np.log(0.3), "beta": np.log(0.3)}
        x = {p: mu[p] + 0.1 * rng.standard_normal(G) for p in ("E", "A", "B")}
        common = {"alpha_pop_latent": mu["alpha"], "beta_pop_latent": mu["beta"], "sigma": 0.02, "offset_tau": tau_o,
                  **{f"{p}_tau": 0.2 for p in x}}
        point_free = {**common, **{f"{p}_pop_latent": mu[p] for p in x}, **{f"{p}_group_decentered": x[p] for p in x},
                      "offset_coef_decentered": delta}
        l = delta.mean()
        point_abs = {**common, **{f"{p}_pop_shifted": mu[p] + l for p in x},
                     **{f"{p}_group_decentered": x[p] + l for p in x},
                     "offset_coef_decentered": R.T @ delta, "offset_level_decentered": l * np.sqrt(B) / tau_o}
        args = (group, N, D, centre, centring, level, np.ones(B - 1), R, log_loss)
        lp_abs, trace = log_density(hierarchical_model, (absorbed, *args), {}, point_abs)
        lp_free, _ = log_density(hierarchical_model, (free, group, N, D, centre, centring, level, np.ones(B),
                                                      np.eye(B), log_loss), {}, point_free)
        np.testing.assert_allclose(np.asarray(trace["offset"]["value"]), delta, atol=1e-12)
        np.testing.assert_allclose(np.asarray(trace["E_pop_latent"]["value"]), mu["E"], atol=1e-12)
        differences.append(float(lp_abs - lp_free) - np.log(tau_o))
    np.testing.assert_allclose(differences, 0.0, atol=1e-8)
