"""Named prior sets, and how far the compute-optimal frontier moves between them.

* ``weak``: the law's default priors (``Law.default_priors``), weakly informative.
* ``hoffmann``: LogNormal priors centred on Hoffmann et al. (2022)'s Approach 3 estimates.
* ``epoch``: LogNormal priors centred on Epoch AI (2024)'s refit of the same data.

The literature sets put ``LogNormal(log value, s)`` on each Chinchilla parameter with widened spreads
``LITERATURE_SPREADS``: s = 0.1 on E and on the exponents (about +-20% at 95%), s = 1 on A and B (a
factor of 7 at 95%). That is 4 to 15 times Epoch's bootstrap standard errors and wide enough to hold
both papers' values, but still a strong statement: these sets suit data in Chinchilla's units
(nats/token, a similar tokenizer and data mix) and pull fits on other data towards Chinchilla.
They apply to every law with Chinchilla's parameters (``chinchilla``, ``chinchilla_fixed_e``, whose E
stays fixed, and ``data_constrained``, whose R* keeps its default).

``prior_sensitivity`` refits under each set and tabulates N_opt(C) and its shift from ``weak``.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax.numpy as jnp
import numpyro.distributions as dist
import pandas as pd

from bayes_scaling._jax_setup import configure
from bayes_scaling.errors import InputError
from bayes_scaling.laws import EPOCH_2024, HOFFMANN_2022, ChinchillaFixedE, Law, get_law
from bayes_scaling.runs.table import Runs

PRIOR_SETS = ("weak", "hoffmann", "epoch")
LITERATURE_CENTRES = {"hoffmann": HOFFMANN_2022, "epoch": EPOCH_2024}
LITERATURE_SPREADS = {"E": 0.1, "A": 1.0, "B": 1.0, "alpha": 0.1, "beta": 0.1}


def prior_set(name: str, law: Law | str = "chinchilla") -> dict[str, dist.Distribution]:
    """The priors of set ``name`` for ``law``, ready for ``fit_nuts(priors=...)``."""
    configure()
    law = get_law(law) if isinstance(law, str) else law
    if name == "weak":
        return law.default_priors()
    if name not in LITERATURE_CENTRES:
        raise InputError(f"unknown prior set {name!r}; known: {', '.join(PRIOR_SETS)}")
    if not set(LITERATURE_SPREADS) <= set(law.param_names):
        raise InputError(f"prior set {name!r} is for laws with Chinchilla's parameters, not {law.name}")
    centres = LITERATURE_CENTRES[name]
    fixed = ("E",) if isinstance(law, ChinchillaFixedE) else ()
    return {
        k: dist.LogNormal(jnp.log(centres[k]), s) for k, s in LITERATURE_SPREADS.items() if k not in fixed
    }


def prior_sensitivity(
    runs: Runs,
    budgets: Iterable[float],
    *,
    law: Law | str = "chinchilla",
    sets: Iterable[str] = PRIOR_SETS,
    level: float = 0.9,
    **fit_kwargs,
) -> pd.DataFrame:
    """Fit ``runs`` under each prior set (NUTS; ``fit_kwargs`` go to ``fit_nuts``) and tabulate,
    per set and budget C: N_opt median and ``level`` interval, tokens per parameter, L_opt, and
    ``N_opt_shift`` = median N_opt under the set / median N_opt under the first set (``weak``)."""
    from bayes_scaling.fitting.nuts import fit_nuts

    law = get_law(law) if isinstance(law, str) else law
    tables = []
    for name in sets:
        post = fit_nuts(runs, law=law, priors=prior_set(name, law), **fit_kwargs)
        table = post.frontier(list(budgets), level)
        tables.append(table.assign(prior_set=name, divergences=int(post.idata["sample_stats"]["diverging"].sum())))
    out = pd.concat(tables, ignore_index=True)
    reference = out.groupby("budget")["N_opt_median"].transform(lambda s: s.iloc[0])
    out["N_opt_shift"] = out["N_opt_median"] / reference
    columns = ["prior_set", "budget", "N_opt_median", "N_opt_lo", "N_opt_hi", "N_opt_shift",
               "tokens_per_param_median", "L_opt_median", "divergences"]
    return out[columns].sort_values("budget", kind="stable").reset_index(drop=True)  # sets keep their order
