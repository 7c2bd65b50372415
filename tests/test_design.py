"""Experiment design: EIG estimators against exact values, choices in constructed cases, the
planner's saved state across a restart, and the closed loop against the simulator."""

import json

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import trapezoid

from bayes_scaling.design import Planner, Simulator, grid, propose
from bayes_scaling.design.batch import greedy_batch
from bayes_scaling.design.candidates import Candidates
from bayes_scaling.design.eig import eig_gaussian, eig_nested, target_draws
from bayes_scaling.errors import InputError
from bayes_scaling.laws import EPOCH_2024, Chinchilla


def exact_mi_discrete(mu, weights, T, sigma):
    """I(T; y) for y | atom j ~ N(mu_j, sigma^2), by quadrature over y."""
    y = np.linspace(mu.min() - 10 * sigma, mu.max() + 10 * sigma, 40001)
    dens = stats.norm.pdf(y[None, :], mu[:, None], sigma)  # (atoms, y)
    p_y = weights @ dens
    total = 0.0
    for t in np.unique(T):
        w_t = weights * (T == t)
        p_y_t = w_t @ dens / w_t.sum()
        integrand = p_y_t * np.log(np.maximum(p_y_t, 1e-300) / np.maximum(p_y, 1e-300))
        total += w_t.sum() * trapezoid(integrand, y)
    return total


def test_nested_eig_matches_brute_force_on_discrete_problem():
    # 4 atoms of theta; the target T takes 2 values; 3 candidates see the atoms differently.
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    T = np.array([0.0, 0.0, 1.0, 1.0])
    mu = np.array([[0.0, 0.0, 0.0], [0.1, 0.5, 0.0], [0.4, 0.2, 0.0], [0.5, 0.7, 0.01]])  # (atoms, candidates)
    sigma = 0.15
    exact = np.array([exact_mi_discrete(mu[:, k], weights, T, sigma) for k in range(3)])
    est = eig_nested(T, mu, np.full(4, sigma), likelihood="normal", weights=weights, n_outer=40000, seed=1)
    assert exact[0] > 0.2 and exact[2] < 0.01  # informative vs not
    np.testing.assert_allclose(est, exact, atol=0.015)


def test_gaussian_eig_agrees_with_nested_mc_and_the_closed_form():
    rng = np.random.default_rng(0)
    theta = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 1.0]], size=2000)
    T = theta[:, 0]
    loadings = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.05, 0.0]])  # mu_k = b_k' theta
    mu = theta @ loadings.T
    sigma = 0.5
    gauss = eig_gaussian(T, mu, sigma**2)
    cov = np.array([[1.0, 0.3], [0.3, 1.0]])
    rho2 = (loadings @ cov[:, 0]) ** 2 / (np.einsum("ki,ij,kj->k", loadings, cov, loadings) + sigma**2)
    np.testing.assert_allclose(gauss, -0.5 * np.log1p(-rho2), atol=0.03)
    nested = eig_nested(T, mu, np.full(2000, sigma), likelihood="normal", n_outer=1000, bins=20, seed=2)
    np.testing.assert_allclose(nested, gauss, atol=0.06)
    assert list(np.argsort(nested)) == list(np.argsort(gauss))


def draws_around_epoch(n=600, seed=0, vary=("A", "B", "alpha", "beta")):
    rng = np.random.default_rng(seed)
    draws = {k: np.full(n, float(v)) for k, v in EPOCH_2024.items()}
    for k in vary:
        draws[k] = draws[k] * np.exp(0.05 * rng.standard_normal(n))
    draws["sigma"] = np.full(n, 0.01)
    return draws


def test_planner_prefers_the_informative_candidate_at_equal_cost():
    # Only A (and hence N_opt) is uncertain. At N = 1e7 the A / N^alpha term is large, so the loss
    # there measures A; at N = 1e13 that term vanishes and the loss says nothing about N_opt.
    draws = draws_around_epoch(vary=("A",))
    cands = Candidates(np.array([1e13, 1e7]), np.array([1e8, 1e14]), np.array([6e21, 6e21]), ("flat", "informative"))
    [best] = propose(Chinchilla(), draws, cands, target_budget=5.76e23, q=1)
    assert best.run_id == "informative"
    law = Chinchilla()
    T = target_draws(law, draws, 5.76e23)
    from bayes_scaling.design.eig import predicted_log_loss

    gains = eig_gaussian(T, predicted_log_loss(law, draws, cands.N, cands.D), 0.01**2 * 5 / 3)
    assert gains[1] > 0.5 and gains[0] < 1e-3


def test_cost_weighting_and_pending_runs_change_the_choice():
    draws = draws_around_epoch(vary=("A",))
    law = Chinchilla()
    T = target_draws(law, draws, 5.76e23)
    from bayes_scaling.design.eig import predicted_log_loss

    N, D = np.array([1e7, 1e7, 2e7]), np.array([1e9, 1e9, 1e9])
    mu = predicted_log_loss(law, draws, N, D)
    cost = np.array([6e16, 6e16, 1.2e17])
    # Two copies of the same run: once one is pending, the other is worth less.
    alone, _ = greedy_batch(T, mu, draws["sigma"], cost, 1)
    gain_fresh = greedy_batch(T, mu[:, [1]], draws["sigma"], cost[[1]], 1)[1][0]
    gain_after = greedy_batch(T, mu[:, [1]], draws["sigma"], cost[[1]], 1, mu_pending=mu[:, [0]])[1][0]
    assert gain_after < 0.7 * gain_fresh
    # Per FLOP the cheaper run wins; without cost weighting the batch still avoids duplicating.
    assert alone[0] in (0, 1)
    batch, gains = greedy_batch(T, mu, draws["sigma"], cost, 2, score="eig")
    assert gains[1] < gains[0]
    # The nested estimator with importance-reweighted fantasies agrees on the ordering.
    _, g_nested = greedy_batch(T, mu[:, [1]], draws["sigma"], cost[[1]], 1, mu_pending=mu[:, [0]], estimator="nested")
    g_fresh_nested = greedy_batch(T, mu[:, [1]], draws["sigma"], cost[[1]], 1, estimator="nested")[1][0]
    assert g_nested[0] < g_fresh_nested


def test_candidates_grid_respects_cap_and_exclusions():
    c = grid(n_range=(1e6, 1e8), d_range=(1e7, 1e9), n_points=3, d_points=3, max_cost=1e16)
    assert np.all(c.cost <= 1e16) and np.allclose(c.cost, 6 * c.N * c.D)
    smaller = c.without([c.keys[0]])
    assert len(smaller) == len(c) - 1 and c.keys[0] not in smaller.keys
    assert len(grid(N=[1e6], d_range=(1e7, 1e7), d_points=1, cost=lambda n, d: 1.0 * n * d)) == 1
    with pytest.raises(InputError):
        grid(n_range=(1e6, 1e8), d_range=(1e7, 1e9), max_cost=1.0)


def test_ask_tell_survives_a_restart(tmp_path):
    cands = grid(n_range=(1e7, 1e9), d_range=(1e8, 1e10), n_points=6, d_points=6)
    kwargs = dict(target_budget=5.76e23, strategy="random", n_init=6, seed=3)
    a = Planner.create(tmp_path / "a", cands, **kwargs)
    b = Planner.create(tmp_path / "b", cands, **kwargs)
    for planner in (a, b):
        for p in planner.ask(6):
            planner.tell(p.run_id, exact_loss(p))
        planner.ask(2)  # two runs left pending
    b_state = json.loads((tmp_path / "b" / "planner.json").read_text())
    del b  # "crash": only the file remains
    b = Planner.open(tmp_path / "b")
    assert b.state == b_state and list(b.pending) == list(a.pending)
    for planner in (a, b):
        for run_id in list(planner.pending):
            planner.tell(run_id, {"status": "failed", "loss": None, "error": "out of memory"})
    assert [p.run_id for p in a.ask(3)] == [p.run_id for p in b.ask(3)]  # same RNG stream
    assert a.flops_spent == b.flops_spent > 0 and len(b.failed) == 2
    with pytest.raises(InputError, match="not a pending run"):
        b.tell("no-such-run", 3.0)


def exact_loss(p):
    """The same answer for the same run in both planners: the noise-free Epoch law."""
    return float(np.exp(Simulator(truth=EPOCH_2024).mean_log_loss(p.N, p.D)))


@pytest.mark.slow
def test_loop_runs_end_to_end_against_the_simulator(tmp_path, capsys):
    from bayes_scaling.cli import main

    args = ["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e19", "--workers", "2",
            "--state", str(tmp_path), "--draws", "150", "--grid-points", "8", "--json", "--max-runs"]
    assert main([*args, "10"]) == 0
    captured = capsys.readouterr()
    status = json.loads(captured.out)
    assert status["runs_done"] == 10 and 0 < status["flops_spent"] <= 1e19
    assert status["fit"] == str(tmp_path / "fit") and f"final fit saved to {tmp_path / 'fit'}" in captured.err
    assert status["log_N_opt"]["lo"] < status["log_N_opt"]["median"] < status["log_N_opt"]["hi"]
    # Resuming adds to the same state (--max-runs counts all its results); `plan` on the state dir
    # proposes runs not yet done.
    assert main([*args, "12"]) == 0
    capsys.readouterr()
    assert main(["plan", str(tmp_path), "--batch", "2", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    planner = Planner.open(tmp_path)
    assert len(planner.done) == 12 and not planner.pending
    done = {r["key"] for r in planner.done}
    assert len(plan["proposals"]) == 2 and not done & {p["run_id"] for p in plan["proposals"]}
    assert all(p["gain"] >= 0 for p in plan["proposals"])


def test_plan_scores_candidates_from_a_saved_fit(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.runs import load_chinchilla

    draws = draws_around_epoch(n=400)
    samples = {k: v.reshape(2, 200) for k, v in draws.items()}
    runs = load_chinchilla().for_fit()
    build_posterior(Chinchilla(), runs, samples, None, None, method="nuts",
                    meta={"likelihood": "student_t", "nu": 5.0}).save(tmp_path / "fit")
    assert main(["plan", str(tmp_path / "fit"), "--target-budget", "5.76e23", "--batch", "3",
                 "--grid-points", "10", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["proposals"]) == 3 and len({p["run_id"] for p in plan["proposals"]}) == 3
    assert all(p["gain"] > 0 and p["cost"] <= 10 * runs.C.max() for p in plan["proposals"])
    assert main(["plan", str(tmp_path / "fit"), "--target-budget", "5.76e23", "--batch", "2", "--grid-points", "10",
                 "--misfit", "auto", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["proposals"]) == 2
    assert main(["plan", str(tmp_path / "fit"), "--target-budget", "5.76e23", "--misfit", "lots"]) == 2
    assert main(["plan", str(tmp_path / "fit"), "--batch", "2"]) == 2  # no target budget: a clear error
    assert "target-budget" in capsys.readouterr().err


def test_misfit_term_reduces_to_plain_noise_and_penalises_crowded_runs():
    from bayes_scaling.design.discrepancy import Discrepancy, coordinates
    from bayes_scaling.design.eig import predicted_log_loss

    law = Chinchilla()
    draws = draws_around_epoch(vary=("A", "B", "alpha", "beta"))
    T = target_draws(law, draws, 5.76e23)
    done_N, done_D = np.array([1e8, 1.2e8, 1e8, 1.2e8]), np.array([2e9, 2e9, 2.4e9, 2.4e9])
    cand_N, cand_D = np.array([1.1e8, 1e9]), np.array([2.2e9, 2e10])  # next to the done runs / far from them
    cost = 6 * cand_N * cand_D
    mu, mu_done = predicted_log_loss(law, draws, cand_N, cand_D), predicted_log_loss(law, draws, done_N, done_D)
    where, where_done = coordinates(cand_N, cand_D, cost), coordinates(done_N, done_D, 6 * done_N * done_D)
    plain = greedy_batch(T, mu, draws["sigma"], cost, 2, score="eig")[1]
    off = greedy_batch(T, mu, draws["sigma"], cost, 2, score="eig", discrepancy=Discrepancy(0.0), where=where,
                       mu_done=mu_done, where_done=where_done)[1]
    np.testing.assert_allclose(off, plain)  # tau = 0: the plain utility
    misfit = Discrepancy(0.05, length=0.5, growth=0.5, reference=float(np.log10(cost.max())))
    [best], _ = greedy_batch(T, mu, draws["sigma"], cost, 1, discrepancy=misfit, where=where, mu_done=mu_done,
                             where_done=where_done)
    assert greedy_batch(T, mu, draws["sigma"], cost, 1)[0] == [0]  # plain: the cheap run per FLOP
    assert best == 1  # misfit shared with the done runs: the cheap neighbour adds little, go large
    with pytest.raises(InputError, match="Gaussian"):
        greedy_batch(T, mu, draws["sigma"], cost, 1, estimator="nested", discrepancy=misfit, where=where)


def test_misfit_fit_finds_structure_only_where_there_is_some():
    from bayes_scaling.design.discrepancy import Discrepancy, fit_discrepancy

    rng = np.random.default_rng(4)
    where = np.column_stack([rng.uniform(7, 10, 80), rng.uniform(8, 11, 80)])
    where = np.column_stack([where, np.log10(6) + where.sum(axis=1)])
    shape = Discrepancy(1.0, length=0.5).kernel(where, where)
    white = 0.005 * rng.standard_normal(80)
    structured = np.linalg.cholesky(0.02**2 * shape + 1e-12 * np.eye(80)) @ rng.standard_normal(80) + white
    found, s = fit_discrepancy(structured, where, reference=21.0, growths=(0.0,))
    assert 0.01 < found.scale < 0.04 and 0.002 < s < 0.01
    none, s_white = fit_discrepancy(white, where, reference=21.0)
    assert none.scale < 0.002 and abs(s_white - 0.005) < 0.002


@pytest.mark.slow
def test_planner_with_a_misfit_term_records_it(tmp_path):
    cands = grid(n_range=(1e7, 1e9), d_range=(1e8, 1e10), n_points=6, d_points=6)
    planner = Planner.create(tmp_path, cands, target_budget=5.76e23, n_init=8, seed=1, num_warmup=100,
                             num_draws=100, discrepancy=1.0)
    while len(planner.done) < 8:  # the space-filling start
        for p in planner.ask(8 - len(planner.done)):
            planner.tell(p.run_id, exact_loss(p) * np.exp(0.01 * np.sin(len(planner.done))))
    [p] = planner.ask(1)
    misfit = Planner.open(tmp_path).status()["misfit"]  # saved with the state
    assert p.gain >= 0 and misfit["growth"] == 0.5 and misfit["scale"] > 0
    with pytest.raises(InputError, match="discrepancy"):
        Planner.create(tmp_path / "bad", cands, target_budget=5.76e23, discrepancy="lots")


def test_loop_misfit_flag_sets_the_new_planner_and_refuses_a_bad_value(tmp_path, capsys):
    from bayes_scaling.cli import main

    args = ["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e19", "--draws", "150",
            "--grid-points", "8", "--json", "--max-runs", "1"]
    assert main([*args, "--state", str(tmp_path / "bad"), "--misfit", "lots"]) == 2
    assert "--misfit must be 'auto' or a number >= 0" in capsys.readouterr().err
    assert main([*args, "--state", str(tmp_path / "ok"), "--misfit", "0.7"]) == 0
    assert Planner.open(tmp_path / "ok").settings["discrepancy"] == 0.7


def test_a_loop_that_ends_with_too_few_runs_to_fit_says_no_fit_was_saved(tmp_path, capsys):
    from bayes_scaling.cli import main

    assert main(["loop", "--simulate", "--target-budget", "5.76e23", "--experiment-budget", "1e19", "--state",
                 str(tmp_path), "--grid-points", "8", "--max-runs", "2"]) == 0
    err = capsys.readouterr().err
    assert "no fit saved: the state holds 2 done runs and a fit needs at least 6" in err
    assert not (tmp_path / "fit").exists()
