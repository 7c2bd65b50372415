"""Pool-based planning: the target-region strategy in the planner and `plan FIT --candidates POOL
--target TARGET`: never outside the pool or over budget, and a replayed seed is reproducible."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from bayes_scaling.design import Planner, Simulator
from bayes_scaling.design.candidates import Candidates, read_pool
from bayes_scaling.design.settings import PlannerSettings
from bayes_scaling.errors import InputError
from bayes_scaling.laws import EPOCH_2024


def a_pool(n=40, seed=0) -> Candidates:
    """Runs scattered over 1e16 .. 1e20 FLOPs, irregular, as a real pool is."""
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7, 9, n)
    D = 10 ** rng.uniform(8.3, 10.5, n)
    return Candidates(N, D, 6 * N * D, tuple(f"pool-{i}" for i in range(n)))


def replay(directory, pool, seed, budget, batches=3, q=2, shape_span=None):
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=seed)
    planner = Planner.create(directory, pool, settings=PlannerSettings(
        target_budget=1e22, experiment_budget=budget, strategy="target", n_init=6, seed=seed, num_warmup=150,
        num_draws=150, target_runs=((2e9, 8e11), (4e9, 4e11)), shape_span=shape_span))
    asked = []
    for _ in range(batches + 3):  # the space-filling start, then target-utility batches
        proposals = planner.ask(q if planner.done else 6)
        if not proposals:
            break
        asked += proposals
        for p in proposals:
            planner.tell(p.run_id, simulator(p))
    return planner, asked


def test_pool_planning_stays_in_the_pool_and_budget_and_replays_exactly(tmp_path, capsys):
    pool = a_pool()
    budget = 0.3 * pool.cost.sum()
    planner, asked = replay(tmp_path / "a", pool, seed=4, budget=budget)
    assert len(asked) > 6 and all(np.isfinite(p.gain) for p in asked[6:])  # the utility chose those
    assert {p.run_id for p in asked} <= set(pool.keys)
    assert len({p.run_id for p in asked}) == len(asked)
    assert planner.flops_spent <= budget
    for p in asked:
        j = pool.keys.index(p.run_id)
        assert (p.N, p.D, p.cost) == (pool.N[j], pool.D[j], pool.cost[j])
    _, again = replay(tmp_path / "b", pool, seed=4, budget=budget)
    assert [p.run_id for p in again] == [p.run_id for p in asked]
    assert [p.gain for p in again] == pytest.approx([p.gain for p in asked], nan_ok=True)
    from bayes_scaling.cli import main

    assert main(["plan", str(tmp_path / "a"), "--batch", "2", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)["proposals"]
    done = {r["key"] for r in planner.done}
    assert len(dry) == 2 and {p["run_id"] for p in dry} <= set(pool.keys) - done
    saved = json.loads((tmp_path / "a" / "planner.json").read_text())["settings"]
    assert saved == PlannerSettings.from_dict(saved).to_dict() and saved["strategy"] == "target"


def test_planner_settings_are_checked_and_saved_with_asdict(tmp_path):
    s = PlannerSettings(target_budget=1e22, strategy="target", cost_exponent=0.4)
    assert asdict(s)["cost_exponent"] == 0.4 and PlannerSettings.from_dict(s.to_dict()) == s
    with pytest.raises(InputError, match="strategy"):
        PlannerSettings(target_budget=1e22, strategy="best")
    with pytest.raises(InputError, match="n_opt_weight"):
        PlannerSettings(target_budget=1e22, n_opt_weight=2.0)
    with pytest.raises(InputError, match="settings or its fields"):
        Planner.create(tmp_path, a_pool(), settings=s, seed=3)


def test_plan_from_a_saved_fit_proposes_pool_runs_within_budget(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.laws import Chinchilla
    from bayes_scaling.runs import load_chinchilla

    rng = np.random.default_rng(0)
    draws = {k: np.full(400, float(v)) for k, v in EPOCH_2024.items()}
    for k in ("A", "B", "alpha", "beta"):
        draws[k] = draws[k] * np.exp(0.05 * rng.standard_normal(400))
    draws["sigma"] = np.full(400, 0.01)
    runs = load_chinchilla().for_fit()
    build_posterior(Chinchilla(), runs, {k: v.reshape(2, 200) for k, v in draws.items()}, None, None,
                    method="nuts", meta={"likelihood": "student_t", "nu": 5.0}).save(tmp_path / "fit")
    pool = a_pool(60, seed=1)
    (tmp_path / "pool.csv").write_text("run_id,N,D,cost,U\n" + "".join(
        f"{k},{n},{d},{c},1\n" for k, n, d, c in zip(pool.keys, pool.N, pool.D, pool.cost)))
    (tmp_path / "target.csv").write_text("N,D\n2e9,8e11\n4e9,4e11\n8e9,2e11\n")
    budget = float(np.sort(pool.cost)[-5:].sum())
    assert main(["plan", str(tmp_path / "fit"), "--candidates", str(tmp_path / "pool.csv"), "--target",
                 str(tmp_path / "target.csv"), "--batch", "4", "--budget", str(budget), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    ids = [p["run_id"] for p in plan["proposals"]]
    assert 0 < len(ids) <= 4 and set(ids) <= set(pool.keys) and len(set(ids)) == len(ids)
    assert sum(p["cost"] for p in plan["proposals"]) <= budget
    assert plan["target_budget"] == pytest.approx(6 * 8e9 * 2e11)
    assert main(["plan", str(tmp_path / "fit"), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "1e22",
                 "--budget", "1"]) == 0  # nothing affordable: nothing proposed
    captured = capsys.readouterr()
    assert "no affordable candidate" in captured.out
    assert "0 cost at most --budget 1 (the cheapest costs" in captured.err  # which filter left nothing


def test_read_pool_names_the_file_and_column(tmp_path):
    (tmp_path / "p.csv").write_text("params,tokens\n1e7,1e9\n2e7,x\n-3e7,\n")
    with pytest.raises(InputError, match="row 2, column 'tokens': 'x' is not a positive number") as err:
        read_pool(tmp_path / "p.csv")
    assert "row 3, column 'params': '-3e7'" in str(err.value) and "row 3, column 'tokens': ''" in str(err.value)
    (tmp_path / "d.csv").write_text("run_id,N,D\na,1e7,1e9\nb,2e7,1e9\na,1e7,1e9\n")
    with pytest.raises(InputError, match="rows 1 and 3 are the same run \\(run_id 'a'\\)"):
        read_pool(tmp_path / "d.csv")
    (tmp_path / "u.csv").write_text("N,D\n2e9,4e10\n800,1.6e10\n")  # N of row 2 in millions
    with pytest.raises(InputError, match="row 2, column 'N'.*in millions"):
        read_pool(tmp_path / "u.csv")
    assert len(read_pool(tmp_path / "u.csv", check_units=False)[0]) == 2
    (tmp_path / "x.csv").write_text("N,D\n2e9,4e10\n3e9,4e10,7\n")  # a stray field
    with pytest.raises(InputError, match="expected a pool of runnable runs"):
        read_pool(tmp_path / "x.csv")
    (tmp_path / "q.csv").write_text("N,size\n1e7,1e9\n")
    with pytest.raises(InputError, match="no column D or tokens"):
        read_pool(tmp_path / "q.csv")
    (tmp_path / "r.csv").write_text("params,tokens\n1e7,1e9\n")
    assert read_pool(tmp_path / "r.csv")[0].cost[0] == pytest.approx(6e16)


def test_loop_with_a_pool_runs_only_pool_runs_within_budget(tmp_path):
    from bayes_scaling.cli import main
    from bayes_scaling.design.planner import Planner

    pool = a_pool(30, seed=2)
    (tmp_path / "pool.csv").write_text("run_id,N,D\n" + "".join(f"{k},{n},{d}\n" for k, n, d in zip(pool.keys, pool.N, pool.D)))
    budget = 0.2 * pool.cost.sum()
    assert main(["loop", "--simulate", "--target-budget", "1e22", "--experiment-budget", str(budget), "--candidates",
                 str(tmp_path / "pool.csv"), "--state", str(tmp_path / "state"), "--draws", "100", "--max-runs", "9",
                 "--n-init", "6", "--json"]) == 0
    planner = Planner.open(tmp_path / "state")
    assert planner.settings["strategy"] == "target" and planner.settings["model"] == "extrapolating"
    assert 6 < len(planner.done) <= 9 and {r["key"] for r in planner.done} <= set(pool.keys)
    assert planner.flops_spent <= budget
    # the status (and the stop rule) reads the interval the saved fit answers with: the drift included
    from bayes_scaling.posterior import Posterior

    status, fit = planner.status(), Posterior.load(tmp_path / "state" / "fit")
    assert fit.model == "extrapolating"
    log_n = np.log(fit.frontier_draws([1e22])["N_opt"][:, 0])
    lo, hi = np.quantile(log_n, [0.05, 0.95])
    assert status["log_N_opt"]["lo"] == pytest.approx(lo, abs=0.05) and status["log_N_opt"]["hi"] == pytest.approx(hi, abs=0.05)


def epoch_fit(directory, spread=0.05, seed=0):
    """A saved fit whose draws sit around Epoch AI's estimates (no sampling)."""
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.laws import Chinchilla
    from bayes_scaling.runs import load_chinchilla

    rng = np.random.default_rng(seed)
    draws = {k: np.full(400, float(v)) for k, v in EPOCH_2024.items()}
    for k in ("A", "B", "alpha", "beta"):
        draws[k] = draws[k] * np.exp(spread * rng.standard_normal(400))
    draws["sigma"] = np.full(400, 0.01)
    build_posterior(Chinchilla(), load_chinchilla().for_fit(), {k: v.reshape(2, 200) for k, v in draws.items()},
                    None, None, method="nuts", meta={"likelihood": "student_t", "nu": 5.0}).save(directory)


def law_n_opt(C):
    import jax.numpy as jnp

    from bayes_scaling.laws import Chinchilla

    th = {k: jnp.asarray(float(v)) for k, v in EPOCH_2024.items()}
    return np.asarray(Chinchilla().optimal_allocation(th, jnp.asarray(C))[0])


def test_compute_optimal_band_keeps_the_shapes_near_n_opt_at_each_compute(tmp_path):
    from bayes_scaling.design.target import compute_optimal_band, in_band
    from bayes_scaling.posterior import Posterior

    epoch_fit(tmp_path / "fit", spread=0.0)
    post = Posterior.load(tmp_path / "fit")
    C = np.array([1e18, 1e19, 1e20, 1e21])
    n_opt = law_n_opt(C)
    N = np.concatenate([n_opt, 2.9 * n_opt, n_opt / 2.9, 3.2 * n_opt, n_opt / 3.2])
    D = np.tile(C, 5) / (6 * N)
    assert compute_optimal_band(post, N, D, span=3.0).tolist() == [True] * 12 + [False] * 8
    assert compute_optimal_band(post, N, D, span=1.5).tolist() == [True] * 4 + [False] * 16
    assert in_band(post, N[12:], D[12:], 1.5).tolist() == list(range(8))  # none in the band: all are scored
    assert in_band(post, N, D, None).tolist() == list(range(20))
    with pytest.raises(InputError, match="span"):
        compute_optimal_band(post, N, D, span=0.5)
    with pytest.raises(InputError, match="shape_span"):
        PlannerSettings(target_budget=1e22, strategy="target", shape_span=0.9)
    with pytest.raises(InputError, match="shape_span applies to strategy 'target'"):
        PlannerSettings(target_budget=1e22, shape_span=3.0)
    s = PlannerSettings(target_budget=1e22, strategy="target", shape_span=3)
    assert s.shape_span == 3.0 and PlannerSettings.from_dict(s.to_dict()) == s


def test_compute_optimal_band_widened_to_the_target_runs_shapes(tmp_path):
    from bayes_scaling.design.target import TargetRegion, compute_optimal_band, in_band
    from bayes_scaling.posterior import Posterior

    epoch_fit(tmp_path / "fit", spread=0.0)
    post = Posterior.load(tmp_path / "fit")
    C = np.array([1e18, 1e19, 1e20])
    n_opt = law_n_opt(C)
    N = np.concatenate([n_opt, 4.5 * n_opt, n_opt / 4.5, 5.5 * n_opt, n_opt / 5.5])
    D = np.tile(C, 5) / (6 * N)
    # a target at 1e23 FLOPs reaching 5x above N_opt and only 2x below it: the band widens above only
    Ct, nt = 1e23, float(law_n_opt(np.array([1e23]))[0])
    wide_above = TargetRegion(np.array([nt / 2, nt, 5 * nt]), Ct / (6 * np.array([nt / 2, nt, 5 * nt])))
    band = compute_optimal_band(post, N, D, 3.0, region=wide_above)
    assert band.tolist() == [True] * 3 + [True] * 3 + [False] * 3 + [False] * 6
    # a region inside the span (the default IsoFLOP slice's shapes) leaves the span-3 band as it is
    inside = TargetRegion.isoflop(nt, Ct, span=2.0)
    assert (compute_optimal_band(post, N, D, 3.0, region=inside) == compute_optimal_band(post, N, D, 3.0)).all()
    both = TargetRegion(np.array([nt / 6, 6 * nt]), Ct / (6 * np.array([nt / 6, 6 * nt])))
    assert in_band(post, N, D, 3.0, both).tolist() == list(range(15))


def test_plan_with_a_shape_span_proposes_only_compute_optimal_shapes(tmp_path, capsys):
    from bayes_scaling.cli import main

    epoch_fit(tmp_path / "fit")
    pool = a_pool(80, seed=3)
    (tmp_path / "pool.csv").write_text("run_id,N,D\n" + "".join(f"{k},{n},{d}\n" for k, n, d in zip(pool.keys, pool.N, pool.D)))
    ratio = np.abs(np.log(pool.N / law_n_opt(6 * pool.N * pool.D)))
    assert np.sum(ratio <= np.log(2.0)) >= 4 and np.sum(ratio > np.log(2.5)) >= 20  # the band is a real restriction
    picked = {}
    for span in ("off", 2.0, None):
        args = ["plan", str(tmp_path / "fit"), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "1e22",
                "--batch", "4", "--json"] + ([] if span is None else ["--shape-span", str(span)])
        assert main(args) == 0
        picked[span] = [pool.keys.index(p["run_id"]) for p in json.loads(capsys.readouterr().out)["proposals"]]
    assert len(picked[2.0]) == 4 and all(ratio[j] <= np.log(2.5) for j in picked[2.0])  # draws spread N_opt by ~5%
    assert any(ratio[j] > np.log(2.5) for j in picked["off"])  # without the band the utility goes elsewhere
    # the default: span 3, widened to the IsoFLOP region's shapes (span 3 too: the same band here)
    assert len(picked[None]) == 4 and all(ratio[j] <= np.log(3.05) for j in picked[None])
    assert main(["plan", str(tmp_path / "fit"), "--target-budget", "1e22", "--utility", "eig", "--shape-span", "2"]) == 2
    assert "--shape-span is a factor >= 1 for the target utility" in capsys.readouterr().err


@pytest.mark.slow
def test_planner_with_a_shape_span_asks_only_for_runs_in_the_band(tmp_path, capsys):
    from bayes_scaling.design.target import compute_optimal_band
    from bayes_scaling.design.candidates import Candidates as Cands

    pool = a_pool(60, seed=5)
    planner, asked = replay(tmp_path / "a", pool, seed=1, budget=0.3 * pool.cost.sum(), batches=1, q=2, shape_span=2.0)
    assert planner.settings["shape_span"] == 2.0
    left = Cands(pool.N, pool.D, pool.cost, pool.keys).without(r["key"] for r in planner.done)
    band = compute_optimal_band(planner.posterior(), left.N, left.D, 2.0)
    assert 2 <= band.sum() < len(left)  # the band is a real restriction here
    proposals = planner.ask(2)
    assert len(proposals) == 2 and all(band[left.keys.index(p.run_id)] for p in proposals)
    from bayes_scaling.cli import main

    left = left.without(p.run_id for p in proposals)
    narrow = compute_optimal_band(planner.posterior(), left.N, left.D, 1.5)
    assert main(["plan", str(tmp_path / "a"), "--batch", "2", "--dry-run", "--json", "--shape-span", "1.5"]) == 0
    dry = json.loads(capsys.readouterr().out)["proposals"]
    assert dry and all(narrow[left.keys.index(p["run_id"])] for p in dry)  # --shape-span sets the state's span


def test_the_start_stays_among_the_cheapest_runs_when_few_lie_in_the_cheapest_quarter(tmp_path):
    """A pool whose cheapest quarter (of the log-cost range) holds 4 runs, a start of 8 asked 4 at a
    time: the second batch is the next-cheapest runs, not the pool's far corners (before, its first
    pick was the pool's most expensive run)."""
    pool = a_pool(40, seed=6)
    log_cost = np.log(pool.cost)
    assert np.sum(log_cost <= log_cost.min() + 0.25 * np.ptp(log_cost)) == 4
    planner = Planner.create(tmp_path, pool, settings=PlannerSettings(
        target_budget=1e22, experiment_budget=pool.cost.sum(), strategy="target", n_init=8, seed=0))
    start = []
    while len(start) < 8:
        asked = planner.ask(4)
        assert len(asked) == 4
        start += asked
        for p in asked:
            planner.tell(p.run_id, 3.0)
    assert max(p.cost for p in start) == np.sort(pool.cost)[7]  # the 8 cheapest


def test_a_reopened_planner_goes_on_as_if_it_had_never_stopped(tmp_path):
    """Stopped while runs are pending (asynchronous workers) and reopened, the planner refits the same
    runs with the same seed as before stopping, so its next proposals and their gains, and every later
    one, are those of a planner that never stopped; ``plan --dry-run`` on its state agrees with it."""
    from bayes_scaling.cli import main

    pool = a_pool(40, seed=6)
    settings = PlannerSettings(target_budget=1e22, experiment_budget=0.5 * pool.cost.sum(), strategy="target",
                               n_init=6, seed=2, num_warmup=100, num_draws=100)
    exact = Simulator(truth=EPOCH_2024)

    def tell(planner, proposals):
        for p in proposals:
            planner.tell(p.run_id, float(np.exp(exact.mean_log_loss(p.N, p.D))))
        return [(p.run_id, p.gain) for p in proposals]

    steady = Planner.create(tmp_path / "steady", pool, settings=settings)
    stopped = Planner.create(tmp_path / "stopped", pool, settings=settings)
    while len(steady.done) < settings.n_init:  # the space-filling start
        assert tell(steady, steady.ask(6)) == tell(stopped, stopped.ask(6))
    first, pending = steady.ask(2), stopped.ask(2)  # a refit of the 6 done runs, saved with the runs pending
    assert [(p.run_id, p.gain) for p in first] == [(p.run_id, p.gain) for p in pending]
    reopened = Planner.open(tmp_path / "stopped")
    preview = reopened.preview(2)
    assert main(["plan", str(tmp_path / "stopped"), "--batch", "2", "--dry-run", "--json"]) == 0
    ours = [(p.run_id, p.gain) for p in steady.ask(2)]  # a second worker asks before any result is in
    assert [(p.run_id, p.gain) for p in preview] == ours
    assert [(p.run_id, p.gain) for p in reopened.ask(2)] == ours
    tell(steady, first), tell(reopened, pending)
    assert tell(steady, steady.ask(2)) == tell(reopened, reopened.ask(2))
    assert reopened.state["fits"] == steady.state["fits"]


@pytest.mark.slow
def test_loop_with_a_shape_span_keeps_it_in_the_state_and_runs_pool_runs(tmp_path, capsys):
    from bayes_scaling.cli import main

    pool = a_pool(30, seed=2)
    (tmp_path / "pool.csv").write_text("run_id,N,D\n" + "".join(f"{k},{n},{d}\n" for k, n, d in zip(pool.keys, pool.N, pool.D)))
    assert main(["loop", "--simulate", "--target-budget", "1e22", "--experiment-budget", str(0.2 * pool.cost.sum()),
                 "--candidates", str(tmp_path / "pool.csv"), "--state", str(tmp_path / "state"), "--draws", "100",
                 "--max-runs", "8", "--n-init", "6", "--shape-span", "3", "--json"]) == 0
    planner = Planner.open(tmp_path / "state")
    assert planner.settings["shape_span"] == 3.0 and planner.settings["strategy"] == "target"
    assert 6 < len(planner.done) <= 8 and {r["key"] for r in planner.done} <= set(pool.keys)
    assert main(["loop", "--simulate", "--target-budget", "1e22", "--experiment-budget", "1e20", "--strategy", "eig",
                 "--state", str(tmp_path / "other"), "--shape-span", "3"]) == 2
    assert "shape_span applies to strategy 'target'" in capsys.readouterr().err


def test_plan_shape_region_widens_the_band_to_the_target_tables_shapes(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.design.target import TargetRegion, compute_optimal_band
    from bayes_scaling.posterior import Posterior

    epoch_fit(tmp_path / "fit")
    pool = a_pool(80, seed=3)
    (tmp_path / "pool.csv").write_text("run_id,N,D\n" + "".join(f"{k},{n},{d}\n" for k, n, d in zip(pool.keys, pool.N, pool.D)))
    nt = float(law_n_opt(np.array([1e22]))[0])
    target_N = np.array([nt / 2, nt, 8 * nt])  # the team's runs reach 8x above N_opt
    (tmp_path / "target.csv").write_text("N,D\n" + "".join(f"{n},{1e22 / (6 * n)}\n" for n in target_N))
    post = Posterior.load(tmp_path / "fit")
    wide = compute_optimal_band(post, pool.N, pool.D, 2.0, TargetRegion(target_N, 1e22 / (6 * target_N)))
    narrow = compute_optimal_band(post, pool.N, pool.D, 2.0)
    assert wide.sum() > narrow.sum() + 4 and not np.any(narrow & ~wide)  # a real widening, above N_opt only
    assert main(["plan", str(tmp_path / "fit"), "--candidates", str(tmp_path / "pool.csv"), "--target",
                 str(tmp_path / "target.csv"), "--batch", "4", "--json", "--shape-span", "2", "--shape-region"]) == 0
    picked = [pool.keys.index(p["run_id"]) for p in json.loads(capsys.readouterr().out)["proposals"]]
    assert len(picked) == 4 and all(wide[j] for j in picked)
    assert main(["plan", str(tmp_path / "fit"), "--candidates", str(tmp_path / "pool.csv"), "--target-budget", "1e22",
                 "--shape-span", "off", "--shape-region"]) == 2
    assert "--shape-region widens the compute-optimal band of the target utility" in capsys.readouterr().err
    with pytest.raises(InputError, match="shape_region widens the compute-optimal band: it needs shape_span"):
        PlannerSettings(target_budget=1e22, strategy="target", shape_span=None, shape_region=True)
    s = PlannerSettings(target_budget=1e22, strategy="target", shape_span=3, shape_region=True)
    assert PlannerSettings.from_dict(s.to_dict()) == s
    # the default (adopted by the pool benchmark's rule): span 3 widened to the region for the target strategy only
    d = PlannerSettings(target_budget=1e22, strategy="target")
    assert (d.shape_span, d.shape_region) == (3.0, True) and PlannerSettings.from_dict(d.to_dict()) == d
    e = PlannerSettings(target_budget=1e22)
    assert (e.shape_span, e.shape_region) == (None, False)
    assert (PlannerSettings(target_budget=1e22, strategy="target", shape_span=2).shape_region is False)
    old = PlannerSettings.from_dict({"target_budget": 1e22, "strategy": "target"})  # saved before the default
    assert (old.shape_span, old.shape_region) == (None, False)


@pytest.mark.slow
def test_target_planner_by_default_asks_within_the_band_widened_to_its_target_runs(tmp_path):
    from bayes_scaling.design.candidates import Candidates as Cands
    from bayes_scaling.design.target import TargetRegion, compute_optimal_band

    pool = a_pool(60, seed=5)
    planner, _ = replay(tmp_path / "a", pool, seed=1, budget=0.3 * pool.cost.sum(), batches=1, q=2, shape_span="default")
    assert (planner.settings["shape_span"], planner.settings["shape_region"]) == (3.0, True)
    left = Cands(pool.N, pool.D, pool.cost, pool.keys).without(r["key"] for r in planner.done)
    region = TargetRegion(*np.array(planner.settings["target_runs"]).T)
    band = compute_optimal_band(planner.posterior(), left.N, left.D, 3.0, region)
    assert 2 <= band.sum() < len(left)  # the widened band is still a real restriction here
    proposals = planner.ask(2)
    assert len(proposals) == 2 and all(band[left.keys.index(p.run_id)] for p in proposals)


def test_a_batch_is_chosen_within_the_budget_not_cut_after():
    """The best run first, then the best of what the rest of the budget pays for: a cut after the
    greedy batch would drop the second pick (too dear) and leave the budget unspent."""
    from bayes_scaling.design.batch import best_affordable, greedy_batch

    rng = np.random.default_rng(0)
    S = 400
    T = rng.normal(size=(S, 1))
    mu = np.column_stack([T[:, 0] + 0.3 * rng.normal(size=S) for _ in range(4)])  # four runs, each informative
    cost = np.array([1.0, 5.0, 2.0, 2.0])
    sigma = np.full(S, 0.5)
    free, _ = greedy_batch(T, mu, sigma, cost, 3, score="eig")
    assert cost[free].sum() > 5  # without a budget the batch holds the dear run
    chosen, gains = greedy_batch(T, mu, sigma, cost, 3, score="eig", budget=5.0)
    assert cost[chosen].sum() <= 5 and len(chosen) == 3 and len(gains) == 3
    assert best_affordable(np.array([3.0, 2.0, 1.0]), [0], cost[:3], budget=1.5) is None  # nothing left it pays for


def test_plan_state_refuses_the_saved_fit_options_it_would_ignore(tmp_path, capsys):
    from bayes_scaling.cli import main

    Planner.create(tmp_path / "state", a_pool(12), settings=PlannerSettings(target_budget=1e22, experiment_budget=1e19))
    for option in (["--budget", "1e18"], ["--max-run-cost", "1e15"], ["--n-range", "1e7", "1e8"], ["--grid-points", "5"]):
        assert main(["plan", str(tmp_path / "state"), "--dry-run", *option]) == 2
        assert f"{option[0]} applies to planning from a saved fit only" in capsys.readouterr().err


def test_a_resumed_loop_refuses_other_options_and_a_store_with_the_pools_names(tmp_path, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.runs.store import RunStore

    pool = a_pool(12, seed=3)
    rows = "run_id,N,D\n" + "".join(f"{k},{n},{d}\n" for k, n, d in zip(pool.keys, pool.N, pool.D))
    (tmp_path / "pool.csv").write_text(rows)
    (tmp_path / "one.csv").write_text("run_id,N,D\n" + rows.splitlines()[1] + "\n")
    args = ["loop", "--simulate", "--target-budget", "1e22", "--candidates", str(tmp_path / "pool.csv"), "--draws", "100",
            "--max-runs", "2", "--n-init", "6", "--json", "--state", str(tmp_path / "state")]
    assert main([*args, "--experiment-budget", "1e20"]) == 0
    capsys.readouterr()
    assert main([*args, "--experiment-budget", "1e18"]) == 2
    err = capsys.readouterr().err
    assert "was started with other options: --experiment-budget 1e+20 (this call: 1e+18)" in err
    assert main([*args, "--experiment-budget", "1e20", "--max-runs", "3"]) == 0  # the same experiment goes on
    capsys.readouterr()
    store = RunStore(tmp_path / "mine.sqlite")
    store.append({"run_id": pool.keys[0], "N": 3e9, "D": 6e10, "loss": 2.45}, source="mine")
    assert main([*args[:-1], str(tmp_path / "new"), "--experiment-budget", "1e20", "--store", str(tmp_path / "mine.sqlite")]) == 2
    assert f"already holds runs under the names of this loop's candidates, with other N and D: {pool.keys[0]}" in \
        capsys.readouterr().err
    assert not (tmp_path / "new").exists() and store.get(pool.keys[0])["loss"] == 2.45


def test_a_pool_priced_in_its_own_units_is_charged_its_price_and_fitted_in_flops(tmp_path):
    """A pool whose cost column is GPU-hours: the experiment budget counts each told run at that price
    (not at the 6ND a result reports), the refits' run table keeps each run's compute, and a state reopened
    from its run store counts the same."""
    from bayes_scaling.design.candidates import cost_unit

    flops = a_pool(20, seed=3)
    gpu_hours = Candidates(flops.N, flops.D, flops.cost / 3.6e18, flops.keys)  # ~1 PFLOP/s per GPU
    assert cost_unit(gpu_hours) == "cost units" and cost_unit(flops) == "FLOPs"
    simulator = Simulator(truth=EPOCH_2024, sigma=0.01, seed=0)
    planner = Planner.create(tmp_path / "state", gpu_hours, settings=PlannerSettings(
        target_budget=1e22, experiment_budget=float(gpu_hours.cost.sum()), strategy="target", n_init=6, seed=0))
    asked = planner.ask(7)
    for p in asked[:6]:
        planner.tell(p.run_id, simulator(p))  # the simulator reports C = 6ND
    planner.tell(asked[6].run_id, simulator(asked[6])["loss"])  # a bare loss: no C reported
    price = sum(p.cost for p in asked)
    assert planner.cost_unit == "cost units"
    assert planner.flops_spent == pytest.approx(price)
    assert planner.runs().C == pytest.approx(6 * planner.runs().N * planner.runs().D)
    assert Planner.open(tmp_path / "state").flops_spent == pytest.approx(price)
