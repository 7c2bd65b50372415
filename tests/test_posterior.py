"""The Posterior type: frontier table, prediction, save/load."""

import numpy as np
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.posterior import Posterior
from bayes_scaling.runs import load_chinchilla


@pytest.fixture(scope="module")
def post():
    return fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=200, num_draws=200, seed=3)


def test_frontier_table_is_ordered_and_consistent(post):
    budgets = [1e19, 1e21, 1e23, 1e25]
    table = post.frontier(budgets, level=0.8)
    assert list(table["budget"]) == budgets and (table["level"] == 0.8).all()
    for q in ("N_opt", "D_opt", "L_opt", "tokens_per_param"):
        assert (table[f"{q}_lo"] <= table[f"{q}_median"]).all() and (table[f"{q}_median"] <= table[f"{q}_hi"]).all()
    assert np.all(np.diff(table["N_opt_median"]) > 0) and np.all(np.diff(table["L_opt_median"]) < 0)
    draws = post.frontier_draws(budgets)
    np.testing.assert_allclose(6 * draws["N_opt"] * draws["D_opt"], np.broadcast_to(budgets, draws["N_opt"].shape), rtol=1e-10)


def test_wider_level_gives_wider_interval(post):
    narrow, wide = post.frontier([1e23], level=0.5).iloc[0], post.frontier([1e23], level=0.95).iloc[0]
    assert wide["N_opt_hi"] - wide["N_opt_lo"] > narrow["N_opt_hi"] - narrow["N_opt_lo"]


def test_bad_budget_or_level_is_an_input_error(post):
    with pytest.raises(InputError, match="budgets must be positive"):
        post.frontier([-1.0])
    with pytest.raises(InputError, match="level"):
        post.frontier([1e20], level=1.5)


def test_predict_covers_the_observed_losses(post):
    runs = post.runs
    draws = post.predict(runs.N, runs.D, seed=1)
    assert draws.shape == (post.num_draws, len(runs))
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    coverage = np.mean((lo <= runs.loss) & (runs.loss <= hi))
    assert 0.8 <= coverage <= 0.99
    mean_curve = post.predict(runs.N, runs.D, noise=False)
    assert np.all(np.std(mean_curve, axis=0) < np.std(draws, axis=0))


def test_predict_max_draws_thins_evenly(post):
    runs = post.runs
    full = post.predict(runs.N, runs.D, noise=False)
    thin = post.predict(runs.N, runs.D, noise=False, max_draws=7)
    assert thin.shape == (7, len(runs))
    keep = np.linspace(0, post.num_draws - 1, 7).astype(int)
    np.testing.assert_allclose(thin, full[keep])
    assert post.predict(runs.N, runs.D, max_draws=10 * post.num_draws).shape == full.shape
    with pytest.raises(InputError, match="max_draws"):
        post.predict(runs.N, runs.D, max_draws=0)


def test_budget_for_loss_inverts_the_frontier(post):
    L = post.frontier([1e22])["L_opt_median"].iloc[0]
    C = post.budget_for_loss(L)
    assert np.median(C) == pytest.approx(1e22, rel=0.05)


def test_save_and_load_round_trip(post, tmp_path):
    post.save(tmp_path / "fit")
    back = Posterior.load(tmp_path / "fit")
    assert back.method == "nuts" and back.law.name == "chinchilla"
    for k, v in post.theta().items():
        np.testing.assert_array_equal(back.theta()[k], v)
    assert back.frontier([1e21]).equals(post.frontier([1e21]))
    assert len(back.runs) == len(post.runs) and back.meta["likelihood"] == "student_t"


def test_a_fit_saved_through_h5netcdf_still_loads(post, tmp_path):
    """Fits saved before the switch to netCDF-C (posterior.NETCDF_ENGINE) were written by h5netcdf: they
    load with every group and draw as written."""
    pytest.importorskip("h5netcdf")  # the test extra installs it for this check
    post.save(tmp_path / "fit")
    post.idata.to_netcdf(tmp_path / "fit" / "posterior.nc", engine="h5netcdf")
    import h5py

    with h5py.File(tmp_path / "fit" / "posterior.nc", "r") as f:  # the file is h5netcdf's own
        assert b"h5netcdf=" in f.attrs["_NCProperties"]
    back = Posterior.load(tmp_path / "fit")
    assert back.idata.identical(post.idata)
    assert back.frontier([1e21]).equals(post.frontier([1e21]))


def test_load_of_a_non_fit_directory_says_so(tmp_path):
    with pytest.raises(InputError, match="not a saved fit"):
        Posterior.load(tmp_path)


def test_the_likelihood_is_carried_with_the_fit(post):
    """One likelihood object: the fit's (from its meta), its noise draws, and its variance factor
    (what design code's Gaussian approximations use)."""
    from bayes_scaling.models import Likelihood, noise_variance

    assert post.likelihood == Likelihood("student_t", post.meta["nu"])
    eps = post.noise_draws((200_000,), np.random.default_rng(0))
    assert np.var(eps) == pytest.approx(post.likelihood.variance_factor(), rel=0.1)
    assert Likelihood("normal").variance_factor() == 1.0 and Likelihood("student_t", 5.0).variance_factor() == 5 / 3
    assert noise_variance(np.array([0.01, 0.03]), Likelihood("normal")) == pytest.approx(5e-4)
    with pytest.raises(InputError, match="likelihood must be one of"):
        Likelihood("laplace")


def test_a_fit_builds_its_tree_only_when_read():
    """A refit read through theta/predict/diagnose never builds its DataTree; once built, the tree
    is the one copy (a change made through ``idata`` is what theta then reads)."""
    from bayes_scaling.diagnostics import diagnose
    from bayes_scaling.fitting.nuts import fit_laplace

    runs = load_chinchilla().for_fit()
    refit = fit_laplace(runs, num_chains=2, num_draws=50, model="plain")
    theta, sigma = refit.theta(), refit.draws("sigma")
    predicted = refit.predict([1e9], [2e10], max_draws=10)
    assert refit.num_draws == 100 and refit.has_draws("sigma") and not refit.has_draws("drift_alloc")
    assert not diagnose(refit).applicable  # no sampler statistics: nothing to diagnose
    assert "_pending" in vars(refit)  # nothing above built the tree
    tree = refit.idata["posterior"]
    assert "_pending" not in vars(refit)
    for name, values in theta.items():
        np.testing.assert_array_equal(tree[name].values.reshape(-1), values)
    np.testing.assert_array_equal(refit.predict([1e9], [2e10], max_draws=10), predicted)
    np.testing.assert_array_equal(refit.draws("sigma"), sigma)
    refit.idata["posterior"] = tree.to_dataset().assign(sigma=tree["sigma"] * 2)
    np.testing.assert_array_equal(refit.draws("sigma"), 2 * sigma)


def test_a_lazy_fit_diagnoses_and_round_trips_like_a_built_one(post, tmp_path):
    from bayes_scaling.diagnostics import diagnose

    fresh = fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=200, num_draws=200, seed=3, model="plain")
    lazy = diagnose(fresh)  # the same draws as ``post`` (the extrapolating model adds the drift's)
    assert "_pending" in vars(fresh)
    built = diagnose(Posterior.load(post.save(tmp_path / "fit")))
    assert lazy.table.equals(built.table) and lazy.divergences == built.divergences
    np.testing.assert_array_equal(lazy.bfmi, built.bfmi)


def test_the_log_loss_program_is_shared_by_instances_of_one_law():
    from bayes_scaling.laws import DataConstrained, get_law
    from bayes_scaling.posterior import compiled_log_loss

    assert compiled_log_loss(get_law("chinchilla")) is compiled_log_loss(get_law("chinchilla"))
    assert compiled_log_loss(get_law("chinchilla")) is not compiled_log_loss(get_law("kaplan"))
    a, b = DataConstrained(unique_tokens=[1e9, 2e9]), DataConstrained(unique_tokens=[1e9, 3e9])
    assert compiled_log_loss(a) is compiled_log_loss(DataConstrained(unique_tokens=[1e9, 2e9]))
    assert compiled_log_loss(a) is not compiled_log_loss(b)


def test_a_default_fit_keeps_its_drift_as_arrays_and_saves_it(tmp_path):
    """``attach_drift`` adds the drift to the pending arrays (building no tree); the built tree, the
    saved fit and the arrays give the same drift and the same predictions beyond the runs."""
    from bayes_scaling import extrapolation

    post = fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=200, num_draws=200, seed=3)
    assert "_pending" in vars(post) and post.has_draws(extrapolation.DRIFT_SITES[-1])
    G, ranges = extrapolation.drift_of(post)
    beyond = post.predict([1e12], [3e13], max_draws=50)
    assert "_pending" in vars(post)  # reading the drift and predicting built nothing
    loaded = Posterior.load(post.save(tmp_path / "fit"))
    G_loaded, ranges_loaded = extrapolation.drift_of(loaded)
    np.testing.assert_array_equal(G_loaded, G)
    assert ranges_loaded == ranges
    np.testing.assert_array_equal(loaded.predict([1e12], [3e13], max_draws=50), beyond)
    tree = post.idata["posterior"]  # now built, with the cut table's own dimension
    assert tree[extrapolation.LEVEL_CUT_SITE].dims == ("chain", "draw", "level_distance")
    np.testing.assert_array_equal(extrapolation.drift_of(post)[0], G)
