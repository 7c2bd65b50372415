"""The planner's refits: ``fit_nuts`` of the plain law on the done runs, returning a ``Posterior``.

``fit_nuts`` pads the observations to the next power of two (at least 64) and masks the padding
(``fitting.nuts.padded_args``), and its compiled sampler depends only on the model and that padded
shape, so after one compilation every refit with up to 64 runs (then 128, ...) is a plain call, and
planners in one process share it.

Model. By default the refits use the plain law (``fit_nuts(model="plain")``); ``model=
"extrapolating"`` (``fit_nuts``'s default model, the law's drift beyond the fitted runs calibrated
on leave-future-out Laplace refits) is what the target-region utility (``design.target``) designs
under. The plain law stays the EIG planner's default: the design's utility and stop rule (``design.eig``, ``design.batch``) are
defined on the law's parameters and sigma, which the drift would not change; its calibration
(leave-future-out refits) would multiply each tell's cost for runs that are few and small; and the
loop's saved fit then answers exactly what the loop printed. ``docs/design.md`` says how to refit
the loop's runs under the extrapolating model. A divergent refit is not redone at a higher target
acceptance (``retry_divergent=False``), nor one short of effective draws with longer chains
(``more_draws=False``): the loop refits after every result, and the next result's refit comes
soon; the divergences are in ``last_divergences`` and the saved fit's diagnostics.
"""

from __future__ import annotations

import warnings

import numpy as np

from bayes_scaling.diagnostics import SamplerWarning
from bayes_scaling.errors import InputError, InputWarning
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU
from bayes_scaling.posterior import Posterior
from bayes_scaling.runs.table import Runs, validate_runs


def verdict_kept(fit):
    """``fit()`` with the sampler's verdict kept instead of warned: (its result, the ``SamplerWarning``'s
    text, "" when the checks passed). Any other warning is shown as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplerWarning)
        result = fit()
    for w in caught:
        if not issubclass(w.category, SamplerWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result, next((str(w.message) for w in caught if issubclass(w.category, SamplerWarning)), "")


def verdict_head(verdict: str) -> str:
    """A sampler verdict's first two sentences: how many problems, then the chains' one-line summary."""
    return ". ".join(verdict.split(". ")[:2])


class MaskedRefitter:
    """Refits of the plain law with fixed sampler settings: ``posterior(runs, seed)`` gives the
    ``Posterior``; ``fit(N, D, loss, seed)`` its natural-parameter and sigma draws.

    A fit whose sampler checks fail does not warn (a loop refits after every result): its verdict
    is kept in ``last_warning`` ("" when the checks passed), and the diagnostics travel with the
    Posterior (``diagnose``, the report)."""

    def __init__(self, law: Law | str = "chinchilla", *, likelihood: str = "student_t", nu: float = DEFAULT_NU,
                 priors=None, num_chains: int = 2, num_warmup: int = 300, num_draws: int = 300,
                 model: str = "plain", refits: str | None = None):
        self.law = get_law(law) if isinstance(law, str) else law
        self.refits = refits  # the extrapolating model's calibration refits (``fit_nuts(refits=...)``)
        self.likelihood, self.nu, self.priors = likelihood, nu, priors
        self.num_chains, self.num_warmup, self.num_draws = num_chains, num_warmup, num_draws
        self.model = model
        self.last_seconds = 0.0
        self.last_divergences = 0
        self.last_warning = ""

    def posterior(self, runs: Runs, seed: int = 0) -> Posterior:
        """The NUTS posterior (``model``: plain law or extrapolating) given ``runs`` (every row used)."""
        from bayes_scaling.fitting.nuts import fit_nuts

        if len(runs) < len(self.law.param_names) + 1:
            raise InputError(f"need at least {len(self.law.param_names) + 1} runs to fit, got {len(runs)}")
        posterior, self.last_warning = verdict_kept(lambda: fit_nuts(
            runs, law=self.law, priors=self.priors, likelihood=self.likelihood, nu=self.nu, num_chains=self.num_chains,
            num_warmup=self.num_warmup, num_draws=self.num_draws, seed=seed, model=self.model, retry_divergent=False,
            more_draws=False, refits=self.refits))
        self.last_seconds = float(posterior.meta.get("sampling_seconds", 0.0))
        stats = posterior.idata["sample_stats"] if "sample_stats" in posterior.idata.children else None
        self.last_divergences = int(np.sum(stats["diverging"].values)) if stats is not None and "diverging" in stats else 0
        return posterior

    def fit(self, N, D, loss, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws given n runs as arrays: ``{E, A, B, alpha, beta, sigma} -> (chains * draws,)``."""
        posterior = self.posterior(as_runs(N, D, loss), seed)
        return draws_of(posterior)


def draws_of(posterior: Posterior) -> dict[str, np.ndarray]:
    """The natural parameters and sigma of a posterior, flattened: what the design code reads."""
    return {**posterior.theta(), "sigma": posterior.draws("sigma")}


def as_runs(N, D, loss, run_ids=None, C=None, source: str = "planner") -> Runs:
    """A validated run table of arrays (ids ``r0, r1, ...`` unless given; C = 6 N D unless given)."""
    import pandas as pd

    N, D, loss = (np.asarray(x, np.float64) for x in (N, D, loss))
    frame = pd.DataFrame({"run_id": list(run_ids) if run_ids is not None else [f"r{i}" for i in range(len(N))],
                          "N": N, "D": D, "loss": loss})
    if C is not None:
        frame["C"] = np.asarray(C, np.float64)
    with warnings.catch_warnings():  # C given here is the run's cost (a WSD branch's: cool-down + trunk), not 6ND by design
        warnings.simplefilter("ignore", InputWarning)
        return validate_runs(frame, source_name=source)
