"""The WSD model: per-trunk random effects and the WSD-vs-cosine offset, recovered in simulation."""

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


def test_trunks_and_branches_without_a_trunk_are_refused():
    runs = simulated_runs()
    with pytest.raises(InputError, match="'role'"):
        fit_wsd(runs.assign(role=["trunk"] + list(runs["role"][1:])))
    with pytest.raises(InputError, match="'trunk_id'"):
        fit_wsd(runs.assign(trunk_id=""))


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
