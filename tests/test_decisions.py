"""Decisions: the inference-aware optimum, the posterior IsoFLOP profile, target losses, and 'decide'."""

import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import decisions as dc
from bayes_scaling import extrapolation as ex
from bayes_scaling import frontier as frontier_mod
from bayes_scaling.cli import main
from bayes_scaling.errors import InputError
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Chinchilla
from bayes_scaling.runs.table import validate_runs

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Sardana et al.'s rounding
LAW = Chinchilla()


def _runs():
    C = np.repeat(np.logspace(18, 20, 3), 4)
    N = np.sqrt(C / 120) * np.tile(np.logspace(-0.5, 0.5, 4), 3)
    D = C / (6 * N)
    loss = np.asarray(LAW.loss({k: np.float64(v) for k, v in HOFFMANN.items()}, N, D))
    return validate_runs(pd.DataFrame({"N": N, "D": D, "loss": loss}), source_name="sim")


def _posterior(draws: int, seed: int = 0, drift: bool = False):
    """Draws scattered around Hoffmann's coefficients (one draw: exactly them)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(HOFFMANN), draws)) if draws > 1 else np.zeros((len(HOFFMANN), 1))
    scale = {"E": 0.02, "A": 0.1, "B": 0.1, "alpha": 0.02, "beta": 0.02}
    samples = {k: (v * np.exp(scale[k] * z[i]))[None, :] for i, (k, v) in enumerate(HOFFMANN.items())}
    samples["sigma"] = np.full((1, draws), 0.01)
    post = build_posterior(LAW, _runs(), samples, None, None, method="nuts", meta={"likelihood": "normal"})
    return ex.attach_drift(post, ex.ScalePosterior.from_folds([])) if drift else post


@pytest.fixture(scope="module")
def point():
    return _posterior(1)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "extrapolating"])
def spread(request):
    return _posterior(200, drift=request.param)


def _chinchilla_d(N: float) -> float:
    """Hoffmann's compute-optimal D for a model of N parameters (closed form)."""
    a, b, A, B = HOFFMANN["alpha"], HOFFMANN["beta"], HOFFMANN["A"], HOFFMANN["B"]
    G = (a * A / (b * B)) ** (1 / (a + b))
    return (N / G) ** ((a + b) / b) / N


def test_zero_inference_tokens_is_the_training_frontier(spread):
    budgets = [1e19, 1e22, 1e24]
    surface = dc.Surface.of(spread)
    ours = dc.inference_frontier_draws(surface, budgets, 0.0)
    theirs = spread.frontier_draws(budgets)
    # frontier's drifted search spans +-4 e-folds about the same centre: compare where it is inside
    inside = np.abs(np.log(theirs["N_opt"]) - surface.training_log_n(np.array([budgets]))) < 3.9
    assert inside.mean() > 0.9
    if spread.model == "plain law":  # a smooth surface: the same optimum
        np.testing.assert_allclose(ours["N_opt"], theirs["N_opt"], rtol=1e-3)
        np.testing.assert_allclose(ours["L_opt"], theirs["L_opt"], rtol=1e-8)
    else:  # the drift's kinks make corner optima, which two grids place to within their steps
        np.testing.assert_allclose(ours["L_opt"][inside], theirs["L_opt"][inside], rtol=5e-4)
        close = np.abs(np.log(ours["N_opt"][inside] / theirs["N_opt"][inside])) < 0.05
        assert close.mean() > 0.95
    outside = ~inside  # where frontier's window ends before the optimum, ours goes on to a lower loss
    assert np.all(ours["L_opt"][outside] <= theirs["L_opt"][outside] * (1 + 1e-9))
    table = dc.inference_frontier(spread, budgets, 0.0, level=0.8)
    assert (table.model == spread.model).all() and (table.level == 0.8).all()


def test_zero_inference_tokens_needs_the_training_budget(spread):
    """T = 0: the lifetime budget is the least training budget whose optimum reaches the target
    (the plain law: its closed form), and nothing is saved."""
    surface = dc.Surface.of(spread)
    target = np.array([[2.1, 2.3]])
    out = dc.lifetime_budget_for_loss(surface, target, 0.0)
    C = out["lifetime_flops"]
    reach = np.isfinite(C)
    assert reach.mean() > 0.9 and np.isnan(out["saved_flops"][~reach]).all()
    if spread.model == "plain law":
        np.testing.assert_allclose(C, spread.budget_for_loss([2.1, 2.3]), rtol=1e-6)
    at = dc.lifetime_optimum(surface, np.where(reach, C, 1e20), 0.0)["L"]
    below = dc.lifetime_optimum(surface, np.where(reach, C, 1e20) * (1 - 1e-4), 0.0)["L"]
    assert np.all((at <= target * (1 + 1e-9))[reach]) and np.all((below > target)[reach])
    np.testing.assert_allclose(out["saved_flops"][reach], 0.0, atol=1e-6 * C[reach].max())


def test_lifetime_optimum_matches_a_dense_search(point):
    """One draw of Hoffmann's law: a 13B Chinchilla-optimal plan serving 2T tokens, against the
    minimum of 6ND + 2NT over a dense grid of N with D solved from the loss in closed form."""
    N0, T = 13e9, 2e12
    D0 = _chinchilla_d(N0)
    out = dc.replace_plan(dc.Surface.of(point), N0, D0, T)
    E, A, B, a, b = (HOFFMANN[k] for k in ("E", "A", "B", "alpha", "beta"))
    target = E + A * N0**-a + B * D0**-b
    N = np.logspace(9, np.log10(N0), 200001)
    gap = target - E - A * N**-a
    cost = np.where(gap > 0, 6 * N * (B / np.where(gap > 0, gap, 1)) ** (1 / b) + 2 * N * T, np.inf)
    k = np.argmin(cost)
    assert out["N"][0] == pytest.approx(N[k], rel=2e-3)
    assert out["lifetime_flops"][0] == pytest.approx(cost[k], rel=1e-6)
    assert out["saved_fraction"][0] == pytest.approx(1 - cost[k] / (6 * N0 * D0 + 2 * N0 * T), abs=1e-5)
    assert out["chinchilla_N"][0] == pytest.approx(N0, rel=2e-3)  # the plan is the training optimum of its loss


def test_inference_shrinks_the_model_and_lengthens_training(point):
    surface = dc.Surface.of(point)
    rows = [dc.budget_for_target(surface, [2.05], inference_tokens=T)[0] for T in (0.0, 1e11, 1e12, 1e13)]
    N = [r["N"]["median"] for r in rows]
    ratio = [r["tokens_per_param"]["median"] for r in rows]
    assert np.all(np.diff(N) < 0) and np.all(np.diff(ratio) > 0)
    assert all(r["saved_fraction"]["median"] >= -1e-9 for r in rows) and rows[-1]["saved_fraction"]["median"] > 0.1


def test_one_draw_choice_is_the_point_optimum(point):
    C = 1e22
    profile = dc.isoflop_profile(dc.Surface.of(point), C)
    N_opt, _ = LAW.optimal_allocation({k: np.float64(v) for k, v in HOFFMANN.items()}, C)
    assert profile.best["N"] == pytest.approx(float(N_opt), rel=2e-3)
    assert profile.median_choice["N"] == pytest.approx(float(N_opt), rel=2e-3)
    assert profile.best["expected_regret"] == pytest.approx(0.0, abs=1e-7)
    assert profile.p_best.sum() == pytest.approx(1.0) and profile.p_best.max() == 1.0


def test_profile_probabilities_and_choice(spread):
    surface = dc.Surface.of(spread)
    profile = dc.isoflop_profile(surface, 1e23, level=0.8, target_loss=2.0)
    assert profile.p_best.sum() == pytest.approx(1.0, abs=1e-12)
    assert profile.best["expected_loss"] <= profile.expected_loss.min() + 1e-9  # the refined grid minimum
    assert profile.best["expected_regret"] <= profile.median_choice["expected_regret"] + 1e-9 or \
        profile.best["expected_loss"] <= profile.median_choice["expected_loss"] + 1e-9
    lo, hi = profile.p_best_set()
    assert lo <= profile.n_opt["median"] <= hi
    for p in (profile.p_reached, profile.best["p_loss_below_target"]):
        assert 0 <= p["lo"] <= p["p"] <= p["hi"] <= 1 and p["level"] == 0.8
    doc = profile.to_json()
    json.dumps(doc)
    assert doc["model"] == spread.model and len(doc["profile"]["p_best"]) == len(profile.N)


def test_p_reached_agrees_with_the_budget_it_needs():
    """Where L_opt falls with C (the plain law; a drift's level term may turn it back up far out),
    P(reached at C) is the share of draws whose needed budget is at most C."""
    surface = dc.Surface.of(_posterior(200, seed=1))
    need = dc.lifetime_budget_for_loss(surface, np.array([[2.05]]), 1e12)["lifetime_flops"][:, 0]
    budgets = np.quantile(need, [0.2, 0.5, 0.8])
    got = [row["p"] for row in dc.p_reached(surface, 2.05, budgets, inference_tokens=1e12)]
    expected = [(need <= c * (1 + 1e-6)).mean() for c in budgets]
    np.testing.assert_allclose(got, expected, atol=2 / len(need))


def test_p_run_below_uses_the_predictive(point):
    N, D = 1e9, 2e10
    loss = float(point.predict([N], [D], noise=False)[0, 0])
    assert dc.p_run_below(point, N, D, loss * 1.1)["p"] == 1.0
    assert dc.p_run_below(point, N, D, loss * 0.9)["p"] == 0.0


def test_bad_inputs_name_the_field(point):
    surface = dc.Surface.of(point)
    with pytest.raises(InputError, match="inference_tokens"):
        dc.isoflop_profile(surface, 1e22, inference_tokens=-1.0)
    with pytest.raises(InputError, match="inference_tokens"):
        dc.inference_frontier(point, [1e22], float("nan"))
    with pytest.raises(InputError, match="target_loss .*irreducible loss E"):
        dc.budget_for_target(surface, [1.5])
    with pytest.raises(InputError, match="target_loss"):
        dc.p_reached(surface, -2.0, [1e22])
    with pytest.raises(InputError, match="budgets"):
        dc.isoflop_profile(surface, -1e22)
    with pytest.raises(InputError, match="level"):
        dc.isoflop_profile(surface, 1e22, level=1.5)


def test_probability_interval():
    p = dc.probability(np.array([True] * 30 + [False] * 70), 0.9)
    assert p["p"] == 0.3 and p["lo"] < 0.3 < p["hi"]
    assert dc.probability(np.zeros(50, bool), 0.9)["lo"] == 0.0


def test_decide_cli(spread, tmp_path, capsys):
    spread.save(tmp_path / "fit")
    code = main(["decide", str(tmp_path / "fit"), "--budget", "1e22", "--target-loss", "2.1",
                 "--inference-tokens", "1e12", "--N", "1e9", "--D", "1e11", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["model"] == spread.model and doc["inference_tokens"] == 1e12
    assert doc["budgets"][0]["expected_loss_choice"]["loss"]["level"] == 0.9
    assert doc["target"]["lifetime_flops"]["median"] > 0 and 0 <= doc["run"]["p"] <= 1
    assert main(["decide", str(tmp_path / "fit"), "--budget", "1e22"]) == 0
    assert "lowest expected loss" in capsys.readouterr().out
    assert main(["decide", str(tmp_path / "fit"), "--budget", "1e22", "--inference-tokens", "-5"]) == 2
    assert "inference_tokens" in capsys.readouterr().err
    assert main(["frontier", str(tmp_path / "fit"), "--budget", "1e22", "--inference-tokens", "1e12", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inference_tokens"] == 1e12


def test_decide_and_the_inference_frontier_mark_answers_beyond_the_fitted_runs(spread, tmp_path, capsys):
    """Budgets with inference FLOPs are not the runs' compute, so their rows are placed by their optimum;
    decide marks every answer and explains the marks below it, and its JSON says where each lies."""
    spread.save(tmp_path / "fit")
    top = float(np.max(6 * spread.runs.N * spread.runs.D))
    capsys.readouterr()
    assert main(["frontier", str(tmp_path / "fit"), "--budget", str(100 * top), "--inference-tokens", "1e12"]) == 0
    out = capsys.readouterr().out
    assert f"{100 * top:.3g}*" in out and "* beyond the fitted runs (" in out
    assert main(["decide", str(tmp_path / "fit"), "--budget", str(100 * top), "--target-loss", "2.1",
                 "--N", "1e9", "--D", "1e11"]) == 0
    out = capsys.readouterr().out
    assert " * (" in out or " ** (" in out
    assert "* beyond the fitted runs (" in out
    assert main(["decide", str(tmp_path / "fit"), "--budget", str(100 * top), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["budgets"][0]["expected_loss_choice"]["range"] in ("beyond", "far beyond")
    assert doc["fitted_ranges"]["C"][1] == pytest.approx(top)


def test_inference_sizing_figure(spread):
    from bayes_scaling import plots

    fig = plots.inference_sizing(spread, 2.2, tokens=[1e10, 1e12, 1e14], max_draws=50)
    assert len(fig.axes) == 2 and spread.model in fig._suptitle.get_text()
    with pytest.raises(InputError, match="target_loss"):
        plots.inference_sizing(spread, 0.5)


def test_a_plan_always_reaches_its_own_loss(spread):
    """The plan's loss is reached by the plan, so every draw finds a model of it, no dearer over
    its lifetime and no larger than the training-optimal model of that loss."""
    out = dc.replace_plan(dc.Surface.of(spread), 13e9, 5e11, 2e12)
    assert np.isfinite(out["lifetime_flops"]).all()
    assert np.all(out["lifetime_flops"] <= out["plan_lifetime_flops"] * (1 + 1e-6))
    assert np.all(out["N"] <= out["chinchilla_N"] * (1 + 1e-3))


def test_report_section_shows_the_profile_at_the_budgets(spread):
    from bayes_scaling.report import decisions_table

    table = decisions_table(spread, budgets=(1e21, 1e23))
    cells = list(table["budget C (FLOPs)"])  # the runs reach 1e20 FLOPs: both beyond them, marked
    assert [c.rstrip("*") for c in cells] == ["1e+21", "1e+23"] and all(c.endswith("*") for c in cells)
    assert all("[" in cell for cell in table["its loss"]) and all("[" in cell for cell in table["median N_opt"])


def test_crossing_finds_each_elements_zero_to_its_tolerance():
    """``crossing`` (Illinois, then bisection) on known functions of x, one per element: smooth and
    convex, linear, a step down (L_opt jumping where its optimum changes basin), a bracket whose low
    end already reaches, one whose high end does not, and an element not asked for. Every answer
    reaches (excess <= 0) and lies within the tolerance above the zero."""
    roots = np.array([[0.3, 1.7, 1.1, 0.0, 0.0, 0.0]])
    kinds = ["smooth", "linear", "step", "lo reaches", "hi short", "not asked"]

    def value(x):
        out = np.empty_like(x)
        out[:, 0] = np.expm1(0.8 * (roots[0, 0] - x[:, 0])) + 0.1 * (roots[0, 0] - x[:, 0]) ** 2
        out[:, 1] = 0.05 * (roots[0, 1] - x[:, 1])
        out[:, 2] = np.where(x[:, 2] < roots[0, 2], 0.2, -0.3)
        out[:, 3] = -1.0 - x[:, 3]
        out[:, 4] = 1.0
        out[:, 5] = np.nan
        return out

    calls = []

    def excess(x, rows):
        calls.append(len(rows))
        return value(np.broadcast_to(x, (len(rows), 6)).copy())

    lo, hi = np.full((1, 6), -0.5), np.full((1, 6), 2.0)
    solve = np.array([[True] * 5 + [False]])
    x = dc.crossing(excess, lo, hi, solve)
    assert value(x)[0, :3].max() <= 0, dict(zip(kinds, x[0]))
    np.testing.assert_array_less(x[0, :3] - roots[0, :3], dc.CROSSING_TOLERANCE * 1.0001)
    assert np.all(x[0, :3] >= roots[0, :3] - 1e-12)
    assert x[0, 3] == -0.5 and x[0, 4] == 2.0 and x[0, 5] == 2.0
    assert len(calls) <= 2 + dc.CROSSING_STEPS  # and it stopped (the step needs bisection's 24 + Illinois')


def test_crossing_is_faster_than_bisection_where_the_function_is_smooth():
    """From a bracket of 2.5 e-folds to 1e-7, bisection takes 25 steps; Illinois about 9."""
    steps = []

    def excess(x, rows):
        steps.append(1)
        return np.expm1(0.8 * (0.3 - x)) + 0.1 * (0.3 - x) ** 2

    x = dc.crossing(excess, np.full((1, 1), -0.5), np.full((1, 1), 2.0), np.ones((1, 1), bool))
    assert abs(x[0, 0] - 0.3) <= dc.CROSSING_TOLERANCE and len(steps) - 2 <= 12
