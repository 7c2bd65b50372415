"""The WSD model: per-trunk random effects and the WSD-vs-cosine offset, recovered in simulation."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.errors import InputError
from bayes_scaling.fitting.settings import SamplerSettings
from bayes_scaling.laws import get_law
from bayes_scaling.models.likelihood import Likelihood
from bayes_scaling.wsd import fit_wsd

THETA = {"E": 1.8, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.30}
SIZES = (1e7, 3e7, 1e8, 3e8)
TOKENS = (2e8, 5e8, 1.2e9, 3e9)
EFFECTS = (0.03, -0.03, 0.015, -0.015)  # u_t, one trunk per size
OFFSET = 0.01  # delta
SIGMA = 0.003


def simulated_runs(seed: int = 0) -> pd.DataFrame:
    """Cosine runs and branches on a grid; each size's branches share one trunk effect."""
    rng = np.random.default_rng(seed)
    law = get_law("chinchilla")
    rows = []
    for (i, n), u in zip(enumerate(SIZES), EFFECTS):
        for d in TOKENS:
            mu = float(np.log(law.loss({k: np.float64(v) for k, v in THETA.items()}, np.float64(n), np.float64(d))))
            rows.append({"run_id": f"cos-{i}-{d:g}", "N": n, "D": d, "role": "run", "trunk_id": "",
                         "loss": np.exp(mu + SIGMA * rng.standard_normal())})
            rows.append({"run_id": f"wsd-{i}-{d:g}", "N": n, "D": d, "role": "branch", "trunk_id": f"trunk{i}",
                         "loss": np.exp(mu + OFFSET + u + SIGMA * rng.standard_normal())})
    return pd.DataFrame(rows)


def test_per_trunk_effects_and_the_offset_are_recovered_in_simulation():
    fit = fit_wsd(simulated_runs(), likelihood=Likelihood("normal"),
                  settings=SamplerSettings(chains=2, warmup=300, draws=300, seed=1))
    effects = fit.trunk_effects().set_index("trunk_id")
    truth = pd.Series(EFFECTS, index=[f"trunk{i}" for i in range(len(SIZES))])
    assert list(effects["branches"]) == [4, 4, 4, 4]
    assert np.all(np.abs(effects["mean"] - truth) < 0.008)  # each trunk's shared deviation, to < 1% of the loss
    assert np.all((effects["q05"] < truth) & (truth < effects["q95"]))
    # delta is estimated (not fixed at 0); with 4 trunks it is known to about tau / sqrt(4), well inside its prior
    assert abs(fit.offset.mean() - OFFSET) < 0.008 and fit.offset.std() < 0.025
    assert 0.01 < np.median(fit.trunk_spread) < 0.06
    E = fit.posterior.idata["posterior"]["E"].values
    assert abs(np.median(E) - THETA["E"]) < 0.15  # the law stays the cosine runs' law


def test_the_trunk_effects_have_the_same_distribution_at_every_centring():
    """Partial centring changes NUTS's coordinates, not the model: u_t ~ Normal(0, tau^2) given tau for
    lambda 0, 0.5 and 1 (prior draws of the model, tau held at 0.03)."""
    import jax
    from numpyro import handlers
    from numpyro.infer import Predictive

    from bayes_scaling.laws import get_law
    from bayes_scaling.priors import resolve_priors
    from bayes_scaling.wsd import WSDModel, wsd_model

    law = get_law("chinchilla")
    spec = WSDModel(law=law, priors=resolve_priors(law, None))
    ones = np.ones(2)
    held = {"trunk_tau": 0.03, "wsd_offset": 0.02, **{f"{k}_latent": 0.0 for k in law.param_names}}  # improper
    for lam in (0.0, 0.5, 1.0):
        model = handlers.condition(wsd_model, held)
        draws = Predictive(model, num_samples=20000)(
            jax.random.PRNGKey(0), spec, 1e8 * ones, 1e9 * ones, np.zeros(2), None, ones.astype(bool), ones,
            np.zeros(2, np.int32), np.full(4, lam))["trunk_effect"]
        assert abs(float(draws.mean())) < 0.001 and abs(float(draws.std()) - 0.03) < 0.001, lam


def test_trunk_centring_centres_trunks_their_branches_pin_down_and_leaves_noisy_ones_non_centred():
    from bayes_scaling.laws import get_law
    from bayes_scaling.runs import as_runs
    from bayes_scaling.wsd import _design, trunk_centring

    law = get_law("chinchilla")
    exact = as_runs(simulated_runs())
    branch, index, trunks = _design(exact)
    lam = trunk_centring(exact, law, THETA, branch, index, len(trunks), 8, 0.05)
    assert np.all(lam[:4] > 0.95) and np.all(lam[4:] == 0)  # 4 branches at noise 0.003 against a spread of 0.026
    rng = np.random.default_rng(0)
    noisy = as_runs(simulated_runs().assign(loss=lambda f: f["loss"] * np.exp(0.1 * rng.standard_normal(len(f)))))
    assert np.all(trunk_centring(noisy, law, THETA, branch, index, len(trunks), 4, 0.05) < 0.5)


def test_trunk_slots_grow_in_powers_of_two():
    from bayes_scaling.wsd import trunk_capacity

    assert [trunk_capacity(n) for n in (0, 1, 4, 5, 8, 9)] == [4, 4, 4, 8, 8, 16]


def test_trunks_and_branches_without_a_trunk_are_refused():
    runs = simulated_runs()
    from bayes_scaling.runs.table import Runs, load_runs

    with_trunk = runs.assign(role=["trunk"] + list(runs["role"][1:]))
    with pytest.raises(InputError, match="'role'"):  # validated Runs are fitted as given: a trunk row is refused
        fit_wsd(Runs(load_runs(with_trunk).frame))
    with pytest.raises(InputError, match="'trunk_id'"):
        fit_wsd(runs.assign(trunk_id=""))
    with pytest.raises(InputError, match="model must be one of extrapolating, plain, got 'drifting'"):
        fit_wsd(runs, model="drifting")


def _trunk(**spec_changes):
    from bayes_scaling.design.branches import Trunk

    spec = {"params": 100000, "tokens": 800_000, "seed": 0, "schedule": "wsd", "cooldown_fraction": 0.0,
            "warmup_tokens": 10_000, "checkpoint_dir": "trunks/t", "save_at_tokens": [400_000, 800_000],
            "context": 2, "batch_size": 1, "run_id": "t", **spec_changes}
    return Trunk.from_record({"run_id": "t", "role": "trunk", "N": 1e5, "D": 8e5, "spec": spec})


def test_a_branch_costs_its_cooldown_plus_the_stable_tokens_still_to_train():
    from bayes_scaling.design.branches import branch_candidates

    b = branch_candidates([_trunk()], [3e5, 5e5, 1e6, 2e6], cooldown_fraction=0.2).candidates
    cost = dict(zip(b.keys, b.cost / (6 * 1e5)))  # in tokens
    assert cost == {"branch:t@D5e+05": 1e5,  # branched at its kept 400k checkpoint: the cool-down only
                    "branch:t@D1e+06": 2e5,  # at 800k, where it stopped
                    "branch:t@D2e+06": 4e5 + 8e5}  # the trunk trains 800k more first
    # D = 3e5 would branch at 240k: passed without a checkpoint, so it is no candidate


def test_the_planner_prefers_a_cheap_branch_over_a_new_run_that_carries_the_same_information():
    from bayes_scaling.design.branches import branch_candidates, with_branches
    from bayes_scaling.design.candidates import grid
    from bayes_scaling.design.planner import propose

    rng = np.random.default_rng(0)
    draws = {k: v * np.exp(0.05 * rng.standard_normal(400)) for k, v in THETA.items()}
    draws["sigma"] = np.full(400, 0.01)
    new = grid(N=[1e5], d_range=(1e6, 1e6), d_points=1)
    both = with_branches(new, branch_candidates([_trunk()], [1e6]))
    assert both.N[0] == both.N[1] and both.D[0] == both.D[1] and both.cost[1] == both.cost[0] / 5
    (pick,) = propose(get_law("chinchilla"), draws, both, target_budget=1e18, q=1)
    assert pick.run_id == "branch:t@D1e+06"


def test_branch_specs_extend_the_trunk_and_make_a_valid_branch():
    from bayes_scaling.design.branches import branch_specs
    from training.spec import RunSpec

    extension, branch = branch_specs(_trunk(), 2e6)
    assert extension["tokens"] == 1_600_000 and extension["save_at_tokens"] == [400_000, 800_000, 1_600_000]
    spec = RunSpec.from_dict(branch)
    assert (spec.role, spec.branch_at_tokens, spec.tokens, spec.branch_from) == ("branch", 1_600_000, 2_000_000, "trunks/t")
    assert branch_specs(_trunk(), 1e6)[0] is None  # already trained to 800k: branch at once
    with pytest.raises(InputError, match="without keeping a checkpoint"):
        branch_specs(_trunk(), 3e5)


# --- the planner's WSD sweep (design.branches.sweep_branches, Planner with wsd_cooldown) ---------------------


def _draws(n: int = 400, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    draws = {k: v * np.exp(0.05 * rng.standard_normal(n)) for k, v in THETA.items()}
    draws["sigma"] = np.full(n, 0.01)
    return draws


def test_a_sweep_prices_each_trunk_from_how_far_it_has_trained_and_skips_busy_trunks():
    from bayes_scaling.design.branches import sweep_branches, trunk_id_for
    from bayes_scaling.design.candidates import grid

    g = grid(N=[1e5, 2e5], d_range=(1e6, 4e6), d_points=3)
    fresh = sweep_branches(g, {}, cooldown_fraction=0.2)
    assert np.allclose(fresh.candidates.cost, 6 * g.N * g.D)  # a trunk not opened: its first branch costs a whole run
    t = trunk_id_for(1e5)
    opened = sweep_branches(g, {t: 1.6e6}, cooldown_fraction=0.2)
    cost = dict(zip(opened.candidates.keys, opened.candidates.cost / (6 * 1e5)))
    assert cost[f"branch:{t}@D1e+06"] == 2e5  # its checkpoint at 800k is kept: the cool-down only
    assert cost[f"branch:{t}@D4e+06"] == 8e5 + 1.6e6  # cool-down + the stable tokens from 1.6M to 3.2M
    busy = sweep_branches(g, {t: 1.6e6}, cooldown_fraction=0.2, busy={t}, exclude={f"branch:{trunk_id_for(2e5)}@D1e+06"})
    assert set(busy.trunk_ids) == {trunk_id_for(2e5)} and len(busy.candidates) == 2


def test_several_trunks_per_size_offer_each_point_on_each_trunk_and_train_with_their_own_seeds():
    from bayes_scaling.design.branches import sweep_branches, sweep_specs, trunk_id_for, trunk_index
    from bayes_scaling.design.candidates import grid

    g = grid(N=[1e5, 2e5], d_range=(1e6, 4e6), d_points=3)
    t0, t1 = trunk_id_for(1e5), trunk_id_for(1e5, 1)
    assert (t0, t1) == ("wsd-N1e+05", "wsd-N1e+05-t1") and (trunk_index(t0), trunk_index(t1)) == (0, 1)
    assert trunk_index("my-trunk-t3") == 0  # not a sweep's id
    two = sweep_branches(g, {t1: 1.6e6}, cooldown_fraction=0.2, trunks_per_size=2)
    assert len(two.candidates) == 12 and len(set(two.candidates.keys)) == 12
    cost = dict(zip(two.candidates.keys, two.candidates.cost / (6 * 1e5)))
    assert cost[f"branch:{t0}@D1e+06"] == 1e6 and cost[f"branch:{t1}@D1e+06"] == 2e5  # each trunk priced on its own
    assert set(sweep_branches(g, {}, cooldown_fraction=0.2).trunk_ids) == {t0, trunk_id_for(2e5)}  # the default: one
    base = {"params": 1e5, "seed": 3, "warmup_tokens": 1000, "context": 10, "batch_size": 10}
    specs = sweep_specs(base, t1, 1e6, 8e5, 8e5, [1e6], cooldown_fraction=0.2, checkpoint_dir="trunks/t1", run_id="b")
    assert [s["seed"] for s in specs] == [4, 4]  # the trunk's extension and its branch
    assert [s["seed"] for s in sweep_specs(base, t0, 1e6, 8e5, 8e5, [1e6], cooldown_fraction=0.2,
                                           checkpoint_dir="trunks/t0", run_id="b")] == [3, 3]
    with pytest.raises(InputError, match="trunks_per_size"):
        sweep_branches(g, {}, trunks_per_size=0)


def test_branch_shifts_share_the_trunk_term_and_leave_cosine_runs_alone():
    from bayes_scaling.design.branches import branch_shifts

    shift = branch_shifts(["a", "", "a", "b"], 300, seed=1)
    assert np.all(shift[:, 1] == 0) and np.array_equal(shift[:, 0], shift[:, 2])
    assert 0.02 < shift[:, 0].std() < 0.1 and not np.allclose(shift[:, 0], shift[:, 3])
    fitted = branch_shifts(["a", "b"], 3, offset=np.zeros(3), spread=np.zeros(3), effects={"a": np.ones(3)})
    assert np.array_equal(fitted, [[1, 0]] * 3)  # a fitted trunk's draws; an unfitted one at tau = 0
    narrow = branch_shifts(["a"], 2000, seed=1, offset=np.zeros(2000), trunk_scale=0.001)
    assert 0 < narrow.std() < 0.002  # the prior scale of tau (the planner's trunk_scale)


def test_a_branch_is_not_scored_as_an_independent_run():
    """At one (N, D) and one cost, the new cosine run carries more information than a branch, whose
    loss also holds the offset and its trunk's effect: the planner takes the run."""
    from bayes_scaling.design.branches import branch_shifts
    from bayes_scaling.design.candidates import Candidates
    from bayes_scaling.design.planner import propose

    draws = _draws()
    two = Candidates(np.array([1e8, 1e8]), np.array([2e9, 2e9]), np.array([1.2e18, 1.2e18]), ("run", "branch"))
    shift = branch_shifts(["", "t"], 400, seed=0)
    law = get_law("chinchilla")
    (pick,) = propose(law, draws, two, target_budget=1e22, q=1, shift=shift)
    assert pick.run_id == "run"
    gain = {k: propose(law, draws, two.take([i]), target_budget=1e22, q=1, shift=shift[:, [i]])[0].gain
            for i, k in enumerate(two.keys)}
    assert gain["branch"] < 0.9 * gain["run"]


def _wsd_planner(path, budget=float("inf"), **fields):
    from bayes_scaling.design.candidates import grid
    from bayes_scaling.design.planner import Planner

    cands = grid(N=[1e7, 3e7, 1e8], d_range=(2e8, 3.2e9), d_points=5)
    settings = dict(target_budget=1e21, experiment_budget=budget, wsd_cooldown=0.2, n_init=50, num_chains=1,
                    num_warmup=40, num_draws=40)
    return Planner.create(path, cands, **{**settings, **fields})


def _loss(N, D):
    law = get_law("chinchilla")
    return float(law.loss({k: np.float64(v) for k, v in THETA.items()}, np.float64(N), np.float64(D)))


def test_the_wsd_planner_opens_trunks_branches_them_and_stays_within_budget(tmp_path):
    from bayes_scaling.design.planner import Planner

    planner = _wsd_planner(tmp_path, budget=2e19)
    first = planner.ask(4)
    assert [p.trunk_id for p in first] and len({p.trunk_id for p in first}) == len(first)  # one run per trunk
    assert all(p.extend == p.branch_at for p in first)  # every trunk opens: it trains up to the branch point
    for p in first:
        planner.tell(p.run_id, _loss(p.N, p.D))
    assert planner.done[0]["role"] == "branch" and planner.done[0]["trunk_id"] == first[0].trunk_id
    trunks = planner.state["wsd"]["trunks"]
    again = Planner.open(tmp_path)  # the trunks' progress and the branches' trunk links survive a restart
    assert again.state["wsd"]["trunks"] == trunks and again.done[0]["trunk_id"] == first[0].trunk_id
    later = again.remaining()
    opened = {p.trunk_id for p in first}
    for key, n, d, cost in zip(later.keys, later.N, later.D, later.cost):
        trunk = key.split(":")[1].split("@")[0]
        assert cost <= 6 * n * d * (1 + 1e-12) and (trunk not in opened or cost < 6 * n * d)
    while (batch := again.ask(3)):
        assert again.flops_spent + again.flops_pending <= 2e19
        for p in batch:
            again.tell(p.run_id, _loss(p.N, p.D))
    assert again.flops_spent <= 2e19 and len(again.done) > len(first)


def test_a_failed_branch_prices_its_trunk_from_before_its_extension(tmp_path):
    planner = _wsd_planner(tmp_path, trunk_scale=0.01)
    assert planner.state["wsd"]["trunk_scale"] == 0.01
    (p,) = planner.ask(1)
    planner.tell(p.run_id, {"status": "failed", "error": "killed"})
    assert planner.state["wsd"]["trunks"][p.trunk_id] == 0.0
    assert planner.failed[0]["cost"] == p.cost


@pytest.mark.slow  # a fit_wsd compilation: ~25 s
def test_the_wsd_planner_refits_with_the_trunk_effects_and_scores_branches_with_them(tmp_path):
    planner = _wsd_planner(tmp_path, n_init=6)
    for _ in range(6):
        (p,) = planner.ask(1)
        planner.tell(p.run_id, _loss(p.N, p.D) * np.exp(0.02 if p.trunk_id.endswith("1e+07") else 0.0))
    assert any(abs(r["cost"] / (6 * r["N"] * r["D"]) - 1) > 0.05 for r in planner.done)  # branches priced apart from 6ND
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (p,) = planner.ask(1)  # refits: fit_wsd, as a branch is done
    from bayes_scaling.errors import ComputeColumnWarning

    assert not [w for w in caught if issubclass(w.category, ComputeColumnWarning)]  # the planner's own costs: no note
    assert planner.posterior().method == "nuts-wsd" and set(planner._wsd_fit.trunks) <= {
        r["trunk_id"] for r in planner.done}
    assert len(planner._wsd_fit.trunk_effects()) == len(planner._wsd_fit.trunks)  # padded slots left out
    assert p.trunk_id and np.isfinite(p.gain)
    assert planner.posterior().model_label == "WSD model (plain law)"


@pytest.mark.slow  # a fit_wsd and the calibration's Laplace refits (~40 s)
def test_a_wsd_planner_under_the_extrapolating_model_refits_with_the_drift(tmp_path):
    planner = _wsd_planner(tmp_path, n_init=6, model="extrapolating")
    for _ in range(6):
        (p,) = planner.ask(1)
        planner.tell(p.run_id, _loss(p.N, p.D))
    post = planner.posterior()
    assert post.method == "nuts-wsd" and post.model_label == "extrapolating (WSD model)"
    assert "extrapolation" in post.meta and post.has_draws("wsd_offset")


def test_the_loop_trains_a_trunk_extension_before_its_branch_and_stores_the_trunk(tmp_path):
    from bayes_scaling.design.branches import trunk_id_for
    from bayes_scaling.design.loop import LoopSettings, run_loop
    from bayes_scaling.executors.inline import InlineExecutor

    planner = _wsd_planner(tmp_path)
    seen = []

    def job(spec, memory_fraction=None):
        seen.append((spec["run_id"], spec["role"]))
        if spec["role"] == "trunk" and spec["N"] == 3e7:
            return {"run_id": spec["run_id"], "status": "failed", "loss": None, "error": "out of memory"}
        return {"run_id": spec["run_id"], "status": "ok", "loss": _loss(spec["N"], spec["D"]), "N": spec["N"],
                "D": spec["D"], "C": 6 * spec["N"] * spec["D"], "role": spec["role"], "trunk_id": spec.get("trunk", "")}

    def make_spec(p):
        branch = {"run_id": p.run_id, "N": p.N, "D": p.D, "role": "branch", "trunk": p.trunk_id}
        trunk = {"run_id": p.trunk_id, "N": p.N, "D": p.branch_at, "role": "trunk"}
        return [trunk, branch] if p.extend > 0 else branch

    run_loop(planner, InlineExecutor(job=job), make_spec, LoopSettings(max_runs=3, save_fit=False), notify=lambda line: None)
    assert [role for _, role in seen[:2]] == ["trunk", "branch"]
    stored = planner.store.to_frame(status=None, trunks=True, history=True)  # a trunk extended twice: two versions
    trunk_rows = stored[stored["role"] == "trunk"]
    assert set(trunk_rows["run_id"]) <= {trunk_id_for(n) for n in (1e7, 3e7, 1e8)}  # under the trunks' ids
    assert len(trunk_rows) == sum(r == "trunk" for _, r in seen)
    failed = [r for r in planner.failed if "out of memory" in r["error"]]  # a failed extension fails its branch
    assert len(planner.done) + len(planner.failed) == 3 and len(failed) == int((trunk_rows["status"] != "ok").sum())


def _chain_result(spec, memory_fraction=None):
    """A fake harness's result for the chains of ``_chain_spec``."""
    return {"run_id": spec["run_id"], "status": "ok", "loss": _loss(spec["N"], spec["D"]), "N": spec["N"], "D": spec["D"],
            "C": 6 * spec["N"] * spec["D"], "role": spec["role"], "trunk_id": spec.get("trunk", "")}


def _chain_spec(p):
    """[the trunk's extension, the branch] when the trunk must train on first, as ``sweep_specs`` makes them."""
    branch = {"run_id": p.run_id, "N": p.N, "D": p.D, "role": "branch", "trunk": p.trunk_id}
    trunk = {"run_id": p.trunk_id, "N": p.N, "D": p.branch_at, "role": "trunk"}
    return [trunk, branch] if p.extend > 0 else branch


def _stopped_executor(where, monkeypatch):
    """An executor, a ``stop_requested`` and the training children started, to stop the loop (as Ctrl-C
    does) at ``where``."""
    import subprocess
    import sys

    from bayes_scaling.executors import child
    from bayes_scaling.executors.inline import InlineExecutor
    from bayes_scaling.executors.process import ProcessExecutor

    class StopWhileWaiting(InlineExecutor):
        """Ctrl-C while the loop waits on a run of ``role``: it has ended with a result that the loop has
        not collected yet (``ended``: ``Executor.ended`` hands it back), or it is still running."""

        def __init__(self, role, ended):
            super().__init__(job=_chain_result)
            self.role, self.has_ended = role, ended

        def wait(self, timeout=None):
            if any(run.spec["role"] == self.role for run, _ in self._running.values()):
                raise KeyboardInterrupt
            return super().wait(timeout)

        def ended(self):
            return super().ended() if self.has_ended else []

    if where == "extension, inline":  # the inline executor's job is in the child's wait when Ctrl-C comes
        def job(spec, memory_fraction=None):
            if spec["role"] == "trunk":
                raise KeyboardInterrupt
            return _chain_result(spec)

        return InlineExecutor(job=job), None, []
    if where == "extension, child process":  # a training child still running: the executor kills it
        children = []

        def launch(spec, folder, env, nice=0):
            children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
            return children[-1]

        monkeypatch.setattr(child, "launch", launch)
        return ProcessExecutor(), lambda: bool(children), children
    if where == "extension ended, not collected":
        return StopWhileWaiting("trunk", ended=True), None, []
    return StopWhileWaiting("branch", ended=False), None, []  # the extension done and stored, the branch running


@pytest.mark.parametrize("where", ["extension, inline", "extension, child process", "extension ended, not collected",
                                   "branch"])
def test_a_loop_stopped_during_a_trunk_extension_keeps_its_branch_pending_and_a_resume_completes_both(tmp_path, where,
                                                                                                     monkeypatch):
    """Ctrl-C while a WSD branch's chain runs treats it as the loop treats any running run: the proposal
    (the branch) stays pending, with its trunk, branch point and extension, and is not counted; a
    resume trains the extension again (the harness resumes the trunk from its newest checkpoint;
    one that had reached the branch point trains nothing) and then the branch, and counts its cost
    once. An extension's record is stored only with the branch it was trained for still to run:
    when it ended before the stop but was not collected it is not stored (``run_loop.keep_ended``),
    so the resume stores it once; when the branch was running, the resume stores it a second time
    (a second version of the trunk's record, the same tokens)."""
    from bayes_scaling.design.loop import LoopSettings, run_loop
    from bayes_scaling.design.planner import Planner
    from bayes_scaling.executors.inline import InlineExecutor

    def trunk_records(planner, history=True):
        frame = planner.store.to_frame(status=None, trunks=True, history=history)
        return frame[frame["role"] == "trunk"] if "role" in frame else frame  # an empty store: no role column

    executor, stop_requested, children = _stopped_executor(where, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_loop(_wsd_planner(tmp_path), executor, _chain_spec, LoopSettings(max_runs=1, save_fit=False),
                 stop_requested=stop_requested, notify=lambda line: None)
    assert all(c.poll() is not None for c in children)  # the extension's training child was killed
    stopped = Planner.open(tmp_path)
    (run_id, asked), = stopped.pending.items()
    assert asked["trunk_id"] and asked["extend"] == asked["branch_at"] > 0  # a new trunk: trained from 0 first
    assert not stopped.done and not stopped.failed and stopped.flops_spent == 0
    assert len(trunk_records(stopped)) == (1 if where == "branch" else 0)

    started = []
    resumed = run_loop(stopped, InlineExecutor(job=lambda spec, memory_fraction=None: started.append(spec)
                                               or _chain_result(spec)),
                       _chain_spec, LoopSettings(max_runs=1, save_fit=False), notify=lambda line: None)
    assert resumed.told == 1
    assert [(s["role"], s["D"]) for s in started] == [("trunk", asked["branch_at"]), ("branch", asked["D"])]
    final = Planner.open(tmp_path)
    assert not final.pending and [r["run_id"] for r in final.done] == [run_id] and not final.failed
    assert final.done[0]["trunk_id"] == asked["trunk_id"] and final.flops_spent == pytest.approx(asked["cost"])
    assert final.state["wsd"]["trunks"][asked["trunk_id"]] == asked["branch_at"]
    latest = trunk_records(final, history=False)
    assert list(latest["run_id"]) == [asked["trunk_id"]] and list(latest["D"]) == [asked["branch_at"]]
    assert list(latest["status"]) == ["ok"]
    assert len(trunk_records(final)) == (2 if where == "branch" else 1)


def test_loop_wsd_flag_makes_branches_and_the_harness_specs_extend_the_trunk_first(tmp_path):
    from types import SimpleNamespace

    from bayes_scaling.cli import loop, main
    from bayes_scaling.design.planner import Planner
    from training.spec import RunSpec

    args = ["loop", "--simulate", "--wsd", "--target-budget", "1e22", "--experiment-budget", "1e20", "--grid-points", "5",
            "--json", "--max-runs", "2", "--state", str(tmp_path / "sim")]
    assert main(args) == 0
    planner = Planner.open(tmp_path / "sim")
    assert planner.settings["wsd_cooldown"] == 0.2 and all(r["role"] == "branch" for r in planner.done)

    harness = Planner.create(tmp_path / "h", planner.candidates.take(planner.candidates.N == planner.candidates.N.min()),
                             target_budget=1e22, wsd_cooldown=0.2, tokens_per_step=128)
    (p,) = harness.ask(1)
    spec_args = SimpleNamespace(train_spec='{"context": 64, "batch_size": 2}', seed=3)
    extension, branch = (RunSpec.from_dict(s) for s in loop.spec_maker(spec_args, harness)(p))
    assert (extension.role, branch.role) == ("trunk", "branch") and extension.tokens == branch.branch_at_tokens == p.branch_at
    assert branch.branch_from == extension.checkpoint_dir and branch.warmup_tokens == extension.warmup_tokens > 0
    assert branch.tokens == int(p.D) and branch.cooldown_fraction == 0.2 and branch.seed == extension.seed == 3
    assert set(extension.save_at_tokens) <= {int(t) for t in range(0, int(p.branch_at) + 1, 128)}


def test_plan_on_a_wsd_planner_names_each_branch_trunk_and_a_dry_run_records_nothing(tmp_path, capsys):
    from bayes_scaling.cli import main

    planner = _wsd_planner(tmp_path)
    before = (tmp_path / "planner.json").read_text()
    assert main(["plan", str(tmp_path), "--batch", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("a WSD branch of trunk wsd-N") == 2 and "tokens first" in out
    assert (tmp_path / "planner.json").read_text() == before and not planner.pending
    assert main(["plan", str(tmp_path), "--batch", "2", "--json"]) == 0
    assert len(type(planner).open(tmp_path).pending) == 2
    (tmp_path / "trunks" / "wsd-N1e+07").mkdir(parents=True)
    _wsd_planner(tmp_path, overwrite=True)  # a new sweep in the folder: the old trunks' checkpoints go
    assert not (tmp_path / "trunks").exists()


def test_the_planner_with_two_trunks_per_size_proposes_both_and_saves_the_setting(tmp_path):
    import json

    from bayes_scaling.design.branches import trunk_id_for
    from bayes_scaling.design.candidates import grid
    from bayes_scaling.design.planner import Planner
    from bayes_scaling.design.settings import PlannerSettings

    one_size = grid(N=[1e7], d_range=(2e8, 3.2e9), d_points=5)
    planner = Planner.create(tmp_path, one_size, target_budget=1e21, wsd_cooldown=0.2, trunks_per_size=2, n_init=50)
    t0, t1 = trunk_id_for(1e7), trunk_id_for(1e7, 1)
    assert {k.split(":")[1].split("@")[0] for k in planner.remaining().keys} == {t0, t1}
    assert {p.trunk_id for p in planner.ask(3)} == {t0, t1}  # one job per trunk: the third waits
    again = Planner.open(tmp_path)
    assert again.settings["trunks_per_size"] == 2 and again.config.trunks_per_size == 2
    state = json.loads((tmp_path / "planner.json").read_text())
    del state["settings"]["trunks_per_size"]  # a state saved before the setting existed
    (tmp_path / "planner.json").write_text(json.dumps(state))
    old = Planner.open(tmp_path)
    assert old.config.trunks_per_size == 1 and set(old.wsd_branches().trunk_ids) <= {t0}
    for bad in (0, -1, 1.5, float("nan"), "2", True):
        with pytest.raises(InputError, match="trunks_per_size must be a whole number >= 1"):
            PlannerSettings(target_budget=1e21, wsd_cooldown=0.2, trunks_per_size=bad)
    with pytest.raises(InputError, match="applies to a WSD sweep"):
        PlannerSettings(target_budget=1e21, trunks_per_size=2)
    assert PlannerSettings(target_budget=1e21, wsd_cooldown=0.2, trunks_per_size=2.0).trunks_per_size == 2


def test_loop_wsd_trunks_per_size_opens_several_trunks_per_size_and_refuses_bad_values(tmp_path, capsys):
    from types import SimpleNamespace

    from bayes_scaling.cli import loop, main
    from bayes_scaling.design.branches import trunk_id_for
    from bayes_scaling.design.planner import Planner

    args = ["loop", "--simulate", "--wsd", "--target-budget", "1e22", "--experiment-budget", "1e20", "--grid-points", "4",
            "--n-range", "1e8", "1e8", "--workers", "2", "--json", "--max-runs", "2"]
    assert main([*args, "--trunks-per-size", "2", "--state", str(tmp_path / "two")]) == 0
    planner = Planner.open(tmp_path / "two")
    assert planner.settings["trunks_per_size"] == 2
    assert {r["trunk_id"] for r in planner.done} == {trunk_id_for(1e8), trunk_id_for(1e8, 1)}
    capsys.readouterr()
    assert main([*args, "--trunks-per-size", "3", "--state", str(tmp_path / "two")]) == 2  # not what the state holds
    assert "2 trunk(s) per size, not --trunks-per-size 3" in capsys.readouterr().err
    assert main([*args, "--trunks-per-size", "0", "--state", str(tmp_path / "zero")]) == 2
    assert "--trunks-per-size must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "zero").exists()
    no_wsd = [a for a in args if a != "--wsd"]
    assert main([*no_wsd, "--trunks-per-size", "2", "--state", str(tmp_path / "cos")]) == 2
    assert "applies to a WSD sweep; add --wsd" in capsys.readouterr().err
    parser = SimpleNamespace(**{name: None for name in loop.STATE_OPTIONS})
    plain = loop.default_state_dir(parser)
    parser.trunks_per_size = 1  # the default: the state of a loop without the flag
    assert loop.default_state_dir(parser) == plain
    parser.trunks_per_size = 2
    assert loop.default_state_dir(parser) != plain


@pytest.mark.slow  # four harness runs (two trunk extensions, two branches): ~1-2 min on 2 loaded cores
def test_loop_wsd_on_the_harness_extends_the_trunk_and_branches_it(tmp_path):
    from bayes_scaling.cli import main
    from bayes_scaling.design.planner import Planner
    from bayes_scaling.runs.store import RunStore

    state = tmp_path / "state"
    spec = '{"context": 32, "batch_size": 8, "eval_points": 1, "eval_tokens": 1024, "compute_dtype": "float32"}'
    assert main(["loop", "--wsd", "--target-budget", "1e15", "--experiment-budget", "1e13", "--state", str(state),
                 "--max-runs", "2", "--n-init", "3", "--grid-points", "2", "--n-range", "2e4", "2e4", "--d-range",
                 "2e4", "4e4", "--executor", "inline", "--train-spec", spec, "--json"]) == 0
    planner = Planner.open(state)
    assert len(planner.done) == 2 and all(r["role"] == "branch" for r in planner.done)
    stored = RunStore(state / "runs.sqlite").to_frame(status=None, trunks=True, history=True)
    trunks, branches = stored[stored["role"] == "trunk"], stored[stored["role"] == "branch"]
    assert set(trunks["run_id"]) == {"wsd-N2e+04"} and (trunks["status"] == "ok").all()
    assert set(branches["trunk_id"]) == {"wsd-N2e+04"} and (state / "trunks" / "wsd-N2e+04").is_dir()
    # what the planner paid is what was trained: the trunk once (to its furthest branch point) and
    # each branch's own cool-down, at 6 x the grid's N per token
    trained = trunks["D"].max() + (branches["D"] - branches["branch_tokens"]).sum()
    assert planner.flops_spent == pytest.approx(6 * 2e4 * trained, rel=1e-9)
    assert planner.flops_spent < 6 * 2e4 * branches["D"].sum()  # less than two separate runs


def test_a_wsd_fit_whose_checks_fail_warns_with_the_verdict():
    """As ``fit_nuts`` does: 2 chains of 30 draws after 30 warm-up steps cannot pass R-hat."""
    from bayes_scaling.diagnostics import SamplerWarning

    with pytest.warns(SamplerWarning, match="do not trust the intervals yet"):
        fit_wsd(simulated_runs(), likelihood=Likelihood("normal"),
                settings=SamplerSettings(chains=2, warmup=30, draws=30, seed=1, retry_divergent=False,
                                         more_draws=False))


def test_with_redo_a_wsd_fit_short_of_draws_is_redone(monkeypatch):
    """``wsd.REDO`` (on by default) applies the pooled fits' policy: too few draws are redone longer,
    and the fit's meta says so."""
    import bayes_scaling.wsd as wsd_module
    from bayes_scaling.fitting import redo

    assert wsd_module.REDO is True
    monkeypatch.setattr(wsd_module, "MORE_DRAWS_DOUBLINGS", 1)
    # the wiring under test, not the policy's thresholds: any failed fit counts as short of draws (2 x 40
    # draws cannot pass the ESS checks, and a chance divergence must not make the test depend on the seed)
    monkeypatch.setattr(redo.Check, "short_of_draws", lambda self: not self.ok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_wsd(simulated_runs(), likelihood=Likelihood("normal"),
                      settings=SamplerSettings(chains=2, warmup=300, draws=40, seed=1, retry_divergent=False))
    assert fit.posterior.meta["num_draws"] == 80 and "redone with 80" in fit.posterior.meta["more_draws"]


def test_a_wsd_fits_shift_is_its_trunks_for_a_known_trunk_a_fresh_one_for_a_new_trunk_and_none_for_cosine_runs():
    from types import SimpleNamespace

    from bayes_scaling.posterior import Posterior

    rng = np.random.default_rng(0)
    delta, tau, effects = rng.normal(size=50), np.abs(rng.normal(size=50)), rng.normal(size=(50, 4))
    stand_in = SimpleNamespace(meta={"trunks": ["a", "b"]}, draws=lambda name: {"wsd_offset": delta, "trunk_tau": tau}[name],
                               _posterior_group=lambda: {"trunk_effect": SimpleNamespace(values=effects[None])})
    shift = Posterior.branch_shift_draws(stand_in, [None, "", "b", "new"], (50, 4), seed=3)
    assert np.all(shift[:, :2] == 0)
    np.testing.assert_allclose(shift[:, 2], delta + effects[:, 1])
    fresh = (shift[:, 3] - delta) / tau
    assert not np.allclose(fresh, effects[:, 0]) and abs(fresh.std() - 1) < 0.3


def test_a_new_trunks_fresh_effect_for_a_point_does_not_depend_on_the_other_points():
    from types import SimpleNamespace

    from bayes_scaling.posterior import Posterior, point_keys

    rng = np.random.default_rng(0)
    delta, tau, effects = rng.normal(size=50), np.abs(rng.normal(size=50)), rng.normal(size=(50, 2))
    stand_in = SimpleNamespace(meta={"trunks": ["a", "b"]}, draws=lambda name: {"wsd_offset": delta, "trunk_tau": tau}[name],
                               _posterior_group=lambda: {"trunk_effect": SimpleNamespace(values=effects[None])})

    def shift(N, D, at):  # "new": a new trunk's level label (``Posterior.level_labels``)
        return Posterior.branch_shift_draws(stand_in, at, (50, len(N)), seed=3, keys=point_keys(N, D, ["new"] * len(N)))

    alone = shift([1e8], [1e9], ["new"])[:, 0]
    np.testing.assert_array_equal(shift([3e8, 1e8], [4e9, 1e9], ["new", "new"])[:, 1], alone)
    both = shift([1e8, 1e8], [1e9, 1e9], ["new", "new"])  # a repeated point: its own, independent draw
    np.testing.assert_array_equal(both[:, 0], alone)
    assert not np.allclose(both[:, 1], alone)


def test_cosine_equivalent_runs_remove_each_branchs_fitted_shift_or_the_offset_alone():
    from types import SimpleNamespace

    from bayes_scaling.posterior import Posterior
    from bayes_scaling.runs.table import validate_runs
    from bayes_scaling.wsd import cosine_equivalent

    runs = validate_runs(simulated_runs().iloc[:4])  # cos-0, wsd-0 (trunk0) at two token counts
    delta, effects = np.full(50, 0.01), np.tile([0.03, -0.02], (50, 1))
    stand_in = SimpleNamespace(
        runs=runs, num_draws=50, meta={"trunks": ["trunk0", "trunk1"]},
        draws=lambda name: {"wsd_offset": delta, "trunk_tau": np.full(50, 0.02)}[name],
        _posterior_group=lambda: {"trunk_effect": SimpleNamespace(values=effects[None])})
    stand_in.branch_shift_draws = lambda *a, **k: Posterior.branch_shift_draws(stand_in, *a, **k)
    branch = (runs.frame["role"] == "branch").to_numpy()
    trunk, offset = cosine_equivalent(stand_in, "trunk"), cosine_equivalent(stand_in, "offset")
    np.testing.assert_allclose(np.log(runs.loss / trunk.loss), np.where(branch, 0.04, 0.0), atol=1e-12)
    np.testing.assert_allclose(np.log(runs.loss / offset.loss), np.where(branch, 0.01, 0.0), atol=1e-12)
    with pytest.raises(InputError, match="shift must be one of"):
        cosine_equivalent(stand_in, "all")


@pytest.mark.slow  # one WSD fit of 66 runs (a new compiled shape, ~40 s)
def test_a_fit_of_eleven_trunks_leaves_no_chain_stuck():
    """From 9 trunks the model has 24 coordinates, as many as the first slow adaptation window's draws:
    unregularised, 2 of 4 chains here ended the warm-up with a zero mass matrix and never moved."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from wsd_extrapolation_check import simulated_wsd_runs

    fit = fit_wsd(simulated_wsd_runs(0, 0.0), settings=SamplerSettings(draws=300, retry_divergent=False, more_draws=False))
    diverging = np.asarray(fit.posterior.idata["sample_stats"]["diverging"])
    assert diverging.shape == (4, 300) and diverging.sum(axis=1).max() < 30


@pytest.mark.slow  # four WSD fits through the CLI (~1.5 min)
def test_fit_predict_and_backtest_of_runs_with_branches_use_the_wsd_model_and_its_shifts(tmp_path, capsys):
    import json

    from bayes_scaling.checking import residuals
    from bayes_scaling.cli import main
    from bayes_scaling.posterior import Posterior
    from bayes_scaling.wsd import DEFAULT_MODEL, MODEL_NAME

    table = tmp_path / "runs.csv"
    simulated_runs().to_csv(table, index=False)
    small = ["--chains", "2", "--draws", "200", "--warmup", "200"]
    assert main(["fit", str(table), "--out", str(tmp_path / "fit"), "--model", "plain", *small]) == 0
    assert "16 of these runs are WSD branches of 4 trunk(s)" in capsys.readouterr().err
    post = Posterior.load(tmp_path / "fit")
    assert post.model == MODEL_NAME and post.method == "nuts-wsd"
    inside = residuals(post).set_index("run_id")["inside"]
    assert inside[[r for r in inside.index if r.startswith("wsd-")]].mean() > 0.8  # branches predicted as branches
    assert main(["frontier", str(tmp_path / "fit"), "--budget", "1e20"]) == 0
    assert f"the {MODEL_NAME} assumes itself exact" in capsys.readouterr().out
    # predict --runs reads each row's role and trunk: a branch as a branch of its trunk, a new trunk's fresh
    extra = pd.DataFrame([{"run_id": "new", "N": 1e8, "D": 1.2e9, "role": "branch", "trunk_id": "other", "loss": 3.0}])
    pd.concat([simulated_runs(), extra]).to_csv(tmp_path / "with_new.csv", index=False)
    assert main(["predict", str(tmp_path / "fit"), "--runs", str(tmp_path / "with_new.csv"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    kinds = pd.Series([r["predicted_as"].split(" trunk")[0] for r in rows]).value_counts().to_dict()
    assert kinds == {"branch of fitted": 16, "cosine run": 16, "branch of new": 1}
    fitted = [r for r in rows if r["predicted_as"].startswith("branch of fitted")]
    assert np.mean([r["inside"] for r in fitted]) > 0.8
    new, same_point = rows[-1], next(r for r in fitted if r["N"] == 1e8 and r["D"] == 1.2e9)
    assert new["hi"] - new["lo"] > same_point["hi"] - same_point["lo"]  # a fresh trunk effect widens it
    # predict --N --D --at TRUNK: the same point as a branch of a fitted trunk, or of a new one
    trunk = simulated_runs().query("role == 'branch' and N == 1e8")["trunk_id"].iloc[0]
    for at, row in ((trunk, same_point), ("other", new)):
        assert main(["predict", str(tmp_path / "fit"), "--N", "1e8", "--D", "1.2e9", "--at", at, "--json"]) == 0
        (one,) = json.loads(capsys.readouterr().out)["predictions"]
        assert one["predicted_as"] == row["predicted_as"] and one["median"] == pytest.approx(row["median"], rel=1e-2)
    # the extrapolating WSD model: the drift beyond the runs, branches still shifted
    assert main(["fit", str(table), "--out", str(tmp_path / "ex"), "--model", "extrapolating", *small]) == 0
    assert "the law's drift is calibrated on the cosine-equivalent runs" in capsys.readouterr().err
    drifted = Posterior.load(tmp_path / "ex")
    assert drifted.model_label == "extrapolating (WSD model)" and drifted.meta["extrapolation"]["folds"] >= 1
    inside = residuals(drifted).set_index("run_id")["inside"]
    assert inside[[r for r in inside.index if r.startswith("wsd-")]].mean() > 0.8
    assert main(["frontier", str(tmp_path / "ex"), "--budget", "1e20"]) == 0
    assert "model: extrapolating (WSD model) (the law plus its drift" in capsys.readouterr().out
    far = (1e11, 2e12)  # beyond the runs: wider than the plain WSD fit's
    width = [np.ptp(np.quantile(p.predict([far[0]], [far[1]])[:, 0], [0.05, 0.95])) for p in (post, drifted)]
    assert width[1] > width[0]
    assert main(["backtest", str(table), "--json", *small]) == 0
    out = capsys.readouterr()
    label = MODEL_NAME if DEFAULT_MODEL == "plain" else "extrapolating (WSD model)"
    assert label in out.out and "fitting the WSD model" in out.err


def _toy_wsd_posterior(S: int = 2000):
    """A WSD fit's posterior with the law fixed at THETA: delta -0.02, trunks t0 (+0.01) and t1, tau 0.03."""
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.runs.table import validate_runs

    draws = {k: np.full((1, S), v) for k, v in THETA.items()}
    draws.update(sigma=np.full((1, S), 0.003), wsd_offset=np.full((1, S), -0.02), trunk_tau=np.full((1, S), 0.03),
                 trunk_effect=np.tile([0.01, -0.01], (1, S, 1)))
    runs = validate_runs(simulated_runs().iloc[:2])
    return build_posterior(get_law("chinchilla"), runs, draws, None, None, method="nuts-wsd",
                           meta={"trunks": ["t0", "t1"]})


def test_a_wsd_frontier_as_a_branch_shifts_the_loss_and_keeps_the_allocation(tmp_path, capsys):
    """``frontier(branch_of=...)`` / ``frontier --as-branch``: L_opt e^(delta + u_t) for a fitted trunk, a fresh
    u for a new one (wider), N_opt and D_opt the cosine runs'; a fit without branches refuses."""
    import json

    from bayes_scaling.cli import main

    post = _toy_wsd_posterior()
    budgets = [1e20, 1e22]
    cosine, fitted, new = (post.frontier(budgets, branch_of=b) for b in (None, "t0", "someone else's"))
    np.testing.assert_allclose(fitted["L_opt_median"], cosine["L_opt_median"] * np.exp(-0.01), rtol=1e-9)
    np.testing.assert_allclose(new["L_opt_median"], cosine["L_opt_median"] * np.exp(-0.02), rtol=3e-3)
    assert np.all(new["L_opt_hi"] - new["L_opt_lo"] > 0.08 * cosine["L_opt_median"])  # 2 x 1.645 x 0.03
    for q in ("N_opt_median", "D_opt_hi"):
        np.testing.assert_array_equal(fitted[q], cosine[q])
    fit = post.save(tmp_path / "fit")
    capsys.readouterr()
    assert main(["frontier", str(fit), "--budget", "1e22", "--as-branch", "t0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_branch_of"] == "t0"
    assert doc["frontier"][0]["L_opt"]["median"] == pytest.approx(float(fitted["L_opt_median"].iloc[1]), rel=1e-9)
    assert main(["frontier", str(fit), "--budget", "1e22", "--as-branch"]) == 0
    assert "L_opt of a WSD branch of a new trunk" in capsys.readouterr().out
    assert main(["frontier", str(fit), "--budget", "1e22", "--as-branch", "t9x"]) == 0  # a typo of a trunk id
    captured = capsys.readouterr()
    assert "'t9x' is not a fitted trunk (fitted: t0" in captured.err and "a new trunk" in captured.out
    assert main(["frontier", str(fit), "--budget", "1e22", "--as-branch", "t9x", "--json"]) == 0
    assert any("'t9x' is not a fitted trunk" in n for n in json.loads(capsys.readouterr().out)["notes"])
    del post.idata["posterior"]["wsd_offset"]
    with pytest.raises(InputError, match="only a WSD fit"):
        post.frontier(budgets, branch_of="t0")


def test_decisions_for_a_wsd_branch_shift_every_loss_and_budget_and_keep_the_choice(tmp_path, capsys):
    """``decide --as-branch``: a branch of trunk t0 (shift delta + u = -0.01) needs the budget at which the
    cosine runs reach the target x e^0.01; the best N is the cosine runs', the expected loss x e^-0.01; the
    inference-aware frontier and ``frontier`` agree on the branch's L_opt."""
    import json

    from bayes_scaling import decisions as dc
    from bayes_scaling.cli import main

    post = _toy_wsd_posterior(S=400)
    cosine, branch = dc.Surface.of(post), dc.Surface.of(post, branch_of="t0")
    target = 2.6
    need = dc.budget_for_target(branch, [target])[0]["lifetime_flops"]["median"]
    assert need == pytest.approx(dc.budget_for_target(cosine, [target * np.exp(0.01)])[0]["lifetime_flops"]["median"],
                                 rel=1e-6)
    profiles = [dc.isoflop_profile(s, 1e21) for s in (cosine, branch)]
    np.testing.assert_allclose(profiles[1].expected_loss, profiles[0].expected_loss * np.exp(-0.01), rtol=1e-9)
    np.testing.assert_array_equal(profiles[1].p_best, profiles[0].p_best)
    life = dc.inference_frontier(post, [1e22], 1e12, branch_of="t0")["L_opt_median"].iloc[0]
    assert life == pytest.approx(dc.inference_frontier(post, [1e22], 1e12)["L_opt_median"].iloc[0] * np.exp(-0.01))
    fit = post.save(tmp_path / "fit")
    capsys.readouterr()
    assert main(["decide", str(fit), "--target-loss", str(target), "--as-branch", "t0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_branch_of"] == "t0" and doc["target"]["lifetime_flops"]["median"] == pytest.approx(need, rel=1e-9)
    assert main(["decide", str(fit), "--budget", "1e21", "--target-loss", "2.6", "--N", "1e9", "--D", "2e10",
                 "--as-branch"]) == 0
    assert "every loss a WSD branch's, of a new trunk" in capsys.readouterr().out
    assert main(["decide", str(fit), "--target-loss", str(target), "--as-branch", "t9x", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["notes"] == ["'t9x' is not a fitted trunk (fitted: t0, t1): answered for a new "
                                                 "trunk's branch"]
    assert "note: 't9x' is not a fitted trunk" in captured.err
    frontier = post.frontier([1e22], branch_of="new")["L_opt_median"].iloc[0]
    assert main(["frontier", str(fit), "--budget", "1e22", "--as-branch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frontier"][0]["L_opt"]["median"] == pytest.approx(frontier, rel=1e-9)
    del post.idata["posterior"]["wsd_offset"]
    with pytest.raises(InputError, match="only a WSD fit"):
        dc.Surface.of(post, branch_of="t0")


def test_the_report_frontier_of_a_wsd_fit_has_a_new_trunks_branch_column():
    from bayes_scaling.posterior import NEW_TRUNK
    from bayes_scaling.report import frontier_budgets, frontier_notes, frontier_table

    post = _toy_wsd_posterior(S=400)
    table = frontier_table(post)
    branch = post.frontier(frontier_budgets(post)[:1], level=0.9, branch_of=NEW_TRUNK).iloc[0]
    assert table["L_opt, WSD branch of a new trunk"].iloc[0] == (
        f"{branch['L_opt_median']:.4f} [{branch['L_opt_lo']:.4f}, {branch['L_opt_hi']:.4f}]")
    assert any(line.startswith("L_opt, WSD branch of a new trunk") for line in frontier_notes(post))
    del post.idata["posterior"]["wsd_offset"]
    assert "L_opt, WSD branch of a new trunk" not in frontier_table(post)
