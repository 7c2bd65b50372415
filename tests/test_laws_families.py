"""Law families beyond Chinchilla: frontiers, the data-constrained covariate, recovery of their own
synthetic truths, and the named prior sets."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.laws import (
    EPOCH_2024, KAPLAN_2020, LAWS, Chinchilla, ChinchillaFixedE, DataConstrained, Kaplan, get_law,
)
from bayes_scaling.laws.base import numerical_budget_for_loss
from bayes_scaling.laws.data_constrained import effective_data
from bayes_scaling.posterior import Posterior
from bayes_scaling.prior_sets import prior_set
from bayes_scaling.runs import validate_runs

BUDGETS = np.array([1e18, 1e21, 1e24])
FAST = dict(num_chains=2, num_warmup=300, num_draws=300, likelihood="normal")


def _runs(law, truth, N, D, sigma, seed, **extra):
    rng = np.random.default_rng(seed)
    loss = np.exp(np.asarray(law.log_loss(truth, N, D)) + sigma * rng.standard_normal(len(N)))
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(N))], "N": N, "D": D, "loss": loss, **extra})
    return validate_runs(frame, max_loss=np.inf)


def _covers(post, name, value, level=0.9):
    lo, hi = np.quantile(post.draws(name), [(1 - level) / 2, (1 + level) / 2])
    return lo <= value <= hi


def test_registry_builds_every_family():
    assert set(LAWS) == {"chinchilla", "chinchilla_fixed_e", "data_constrained", "kaplan"}
    for name, cls in LAWS.items():
        law = get_law(name)
        assert type(law) is cls and law.name == name
        assert set(law.default_priors()) == set(law.param_names)


# --- Kaplan ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("theta", [KAPLAN_2020, {"N_c": 2e11, "D_c": 4e9, "alpha_N": 0.3, "alpha_D": 0.12}])
def test_kaplan_closed_form_frontier_matches_minimisation_and_inverts(theta):
    law = Kaplan()
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    N_opt, D_opt = map(np.asarray, law.optimal_allocation(th, BUDGETS))
    np.testing.assert_allclose(6 * N_opt * D_opt, BUDGETS, rtol=1e-12)
    for C, n in zip(BUDGETS, N_opt):
        f = lambda u: float(law.log_loss(th, np.exp(u), C / (6 * np.exp(u))))  # noqa: E731
        res = minimize_scalar(f, bounds=(np.log(1e3), np.log(C / 6e3)), method="bounded", options={"xatol": 1e-10})
        assert np.exp(res.x) == pytest.approx(n, rel=1e-4)
    L = law.optimal_loss(th, BUDGETS)
    np.testing.assert_allclose(np.asarray(law.budget_for_loss(th, L)), BUDGETS, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(numerical_budget_for_loss(law, th, L)), BUDGETS, rtol=1e-6)


@pytest.mark.slow
def test_kaplan_recovers_its_synthetic_truth():
    law = Kaplan()
    truth = {"N_c": 3e13, "D_c": 5e13, "alpha_N": 0.09, "alpha_D": 0.12}
    N, D = (g.ravel() for g in np.meshgrid(np.logspace(7, 10, 6), np.logspace(9, 12, 5)))
    post = fit_nuts(_runs(law, truth, N, D, 0.01, seed=0), law=law, **FAST)
    assert int(post.idata["sample_stats"]["diverging"].sum()) == 0
    for name, value in truth.items():
        assert _covers(post, name, value), name
    n_true = float(law.optimal_allocation({k: jnp.asarray(v) for k, v in truth.items()}, 1e22)[0])
    row = post.frontier([1e22]).iloc[0]
    assert row["N_opt_lo"] <= n_true <= row["N_opt_hi"]
    assert row["N_opt_hi"] / row["N_opt_lo"] < 1.5  # informative, not just the prior


# --- data-constrained -----------------------------------------------------------------------------
def test_effective_data_counts_repeats_at_a_discount():
    U, R_star = 1e9, 15.4
    D = jnp.array([1e8, 1e9, 2e9, 1e10, 1e13])
    Dp = np.asarray(effective_data(D, U, R_star))
    np.testing.assert_allclose(Dp[:2], [1e8, 1e9])  # no repetition: D' = D
    assert 1e9 < Dp[2] < 2e9 and np.all(np.diff(Dp) > 0)  # a second epoch is worth less than fresh data
    assert Dp[-1] == pytest.approx(U * (1 + R_star), rel=1e-6)  # saturation at U (1 + R*)
    th = {**{k: jnp.asarray(v) for k, v in EPOCH_2024.items()}, "R_star": jnp.asarray(R_star)}
    N = jnp.full(D.shape, 1e9)
    unlimited = DataConstrained().log_loss(th, N, D)  # U = None: Chinchilla
    np.testing.assert_allclose(np.asarray(unlimited), np.asarray(Chinchilla().log_loss(th, N, D)))


def test_data_constrained_frontier_needs_one_corpus_and_shifts_to_parameters():
    th = {**{k: jnp.asarray(v) for k, v in EPOCH_2024.items()}, "R_star": jnp.asarray(15.4)}
    C = jnp.array([1e21, 1e24])
    n_free, _ = Chinchilla().optimal_allocation(th, C)
    n_big, _ = DataConstrained(unique_tokens=1e16).optimal_allocation(th, C)
    np.testing.assert_allclose(np.asarray(n_big), np.asarray(n_free), rtol=1e-5)
    n_small, d_small = DataConstrained(unique_tokens=1e10).optimal_allocation(th, C)
    assert float(n_small[1]) > 2 * float(n_free[1])  # scarce data: spend the budget on parameters
    assert float(d_small[1]) > 1e10  # ... and still repeat the corpus a few times
    with pytest.raises(InputError, match="one corpus"):
        DataConstrained(unique_tokens=[1e9, 2e9]).optimal_allocation(th, C)


def test_data_constrained_reads_unique_tokens_from_the_run_table():
    N, D = np.array([1e8, 2e8, 3e8]), np.array([1e9, 5e9, 1e10])
    plain = validate_runs(pd.DataFrame({"N": N, "D": D, "loss": [3.0, 2.9, 2.8]}))
    np.testing.assert_allclose(np.asarray(DataConstrained.for_runs(plain).unique_tokens), D)  # default U = D
    given = validate_runs(pd.DataFrame({"N": N, "D": D, "loss": [3.0, 2.9, 2.8], "unique_tokens": ["1e9", "", "2e9"]}))
    np.testing.assert_allclose(np.asarray(DataConstrained.for_runs(given).unique_tokens), [1e9, 5e9, 2e9])
    a, b = DataConstrained.for_runs(plain), DataConstrained.for_runs(given)
    assert a.name != b.name and a.name.startswith("data_constrained")  # separate compiled samplers
    bad = validate_runs(pd.DataFrame({"N": N, "D": D, "loss": [3.0, 2.9, 2.8], "unique_tokens": [1e9, -1.0, 2e9]}))
    with pytest.raises(InputError, match="row 1"):
        DataConstrained.for_runs(bad)


@pytest.mark.slow
def test_data_constrained_recovers_its_synthetic_truth():
    truth = {**EPOCH_2024, "R_star": 15.4}
    N, D, U = (g.ravel() for g in np.meshgrid(np.logspace(7.5, 9.5, 4), np.logspace(9, 11.5, 6), [3e8, 3e9, 1e12]))
    runs = _runs(DataConstrained(unique_tokens=U), truth, N, D, 0.005, seed=1, unique_tokens=U)
    post = fit_nuts(runs, law=DataConstrained.for_runs(runs), **FAST)
    assert int(post.idata["sample_stats"]["diverging"].sum()) == 0
    for name, value in truth.items():
        assert _covers(post, name, value), name
    lo, hi = np.quantile(post.draws("R_star"), [0.05, 0.95])
    assert hi / lo < 1.5  # R* is measured by the repeated runs, not left at its prior (ratio ~48)


# --- Chinchilla with E given ----------------------------------------------------------------------
@pytest.mark.slow
def test_fixed_e_recovers_the_rest_and_keeps_each_e_apart(tmp_path):
    law = Chinchilla()
    N, D = (g.ravel() for g in np.meshgrid(np.logspace(7, 10, 5), np.logspace(9, 12, 5)))
    runs = _runs(law, EPOCH_2024, N, D, 0.005, seed=2)
    right = fit_nuts(runs, law=ChinchillaFixedE(E=EPOCH_2024["E"]), **FAST)
    np.testing.assert_array_equal(right.draws("E"), EPOCH_2024["E"])
    for name in ("A", "B", "alpha", "beta"):
        assert _covers(right, name, EPOCH_2024[name]), name
    # Same data and shapes, another E: a separate sampler (E is in the priors), so other draws.
    wrong = fit_nuts(runs, law="chinchilla_fixed_e", priors={"E": dist.Delta(1.5)}, **FAST)
    np.testing.assert_array_equal(wrong.draws("E"), 1.5)
    assert np.median(wrong.draws("alpha")) < np.median(right.draws("alpha")) - 0.02
    # A saved fit reloads with its own E, not the registry default.
    back = Posterior.load(right.save(tmp_path / "fit"))
    np.testing.assert_allclose(back.frontier([1e22])["N_opt_median"], right.frontier([1e22])["N_opt_median"])
    with pytest.raises(InputError, match="Delta"):
        fit_nuts(runs, law="chinchilla_fixed_e", priors={"E": dist.LogNormal(0.5, 0.1)}, **FAST)


# --- prior sets -----------------------------------------------------------------------------------
def test_prior_sets_are_centred_on_the_published_fits():
    weak = prior_set("weak")
    assert set(weak) == set(Chinchilla.param_names)
    for name, centre in (("hoffmann", 1.69337), ("epoch", 1.817)):
        priors = prior_set(name)
        assert float(jnp.exp(priors["E"].loc)) == pytest.approx(centre)
        assert float(priors["A"].scale) > 0.5  # widened, not the papers' own error bars
    assert "E" not in prior_set("epoch", ChinchillaFixedE(E=1.8))  # a fixed E stays fixed
    assert "R_star" not in prior_set("epoch", "data_constrained")  # R* keeps its default
    with pytest.raises(InputError, match="Chinchilla's parameters"):
        prior_set("epoch", "kaplan")
    with pytest.raises(InputError, match="unknown prior set"):
        prior_set("strong")
