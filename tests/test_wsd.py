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
