"""Can the sampler's draws be trusted? Convergence and HMC diagnostics, each turned into advice.

``diagnose(posterior)`` computes, on the law's parameters and sigma (R-hat and ESS as ArviZ defines
them, see ``chain_stats``):

* R-hat: rank-normalised split R-hat (Vehtari et al. 2021): sqrt(V_hat / W), the ratio of the
  pooled to the within-chain variance of rank-normalised, split chains. Trusted when <= 1.01.
  With one chain, the chain is split in two first, so R-hat still compares its halves.
* Bulk and tail ESS: effective sample sizes of the rank-normalised draws and of the 5% and 95%
  quantile indicators. Trusted when >= 100 per chain (400 for 4 chains): below that the interval
  ends in the frontier table carry Monte Carlo error of the order of the interval itself.
* Divergences: transitions where the leapfrog integrator's energy error blew up; any divergence
  means part of the posterior was not explored and the draws may be biased.
* E-BFMI per chain: sum_t (E_t - E_{t-1})^2 / sum_t (E_t - mean E)^2 over the Hamiltonian energy
  E; below 0.3 the momentum resampling cannot move the chain across energy levels (heavy tails).
* Tree-depth saturation: transitions that stopped at the maximum tree depth (NumPyro default 10,
  i.e. 2^10 - 1 leapfrog steps); NUTS was cut short there, so the chain moves slowly. An
  efficiency warning, not a validity failure (Stan's guidance): the draws remain valid, and slow
  mixing shows in R-hat and ESS, which are checked. Every other check is about validity.

A point fit (one draw) or a bootstrap (independent refits, no sampler) has nothing to diagnose;
``diagnose`` then says so instead of inventing numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
BFMI_MIN = 0.3
DEFAULT_MAX_TREE_DEPTH = 10  # NumPyro's NUTS default
TAIL_PROB = (0.05, 0.95)


CHECK_NAMES = {"r_hat": "R-hat", "ess_bulk": "bulk ESS", "ess_tail": "tail ESS", "divergences": "divergences",
               "bfmi": "E-BFMI", "tree_depth": "tree depth"}  # ``Problem.check`` -> how messages name it


class SamplerWarning(UserWarning):
    """A fit returned draws whose diagnostics fail (divergences, R-hat, ESS, E-BFMI): the message
    is the verdict, with what to do next. The CLI prints the verdict itself instead."""


class DesignWarning(SamplerWarning):
    """The runs themselves cannot identify part of the law (``design_limits``), whatever the sampler does."""


MIN_DISTINCT_SIZES = 3  # E + A N^-alpha needs three distinct N to pin A and alpha apart from E (likewise D)
ONE_RATIO_SPAN = 2.0  # tokens per parameter spanning less than this factor: one ratio


def design_limits(N, D) -> list[str]:
    """What fitted runs at (N, D) cannot identify, however long the chains: with fewer than
    ``MIN_DISTINCT_SIZES`` distinct N (or D) the law's term in N (or D) is not pinned apart from E; with
    every run at about one compute 6ND (one IsoFLOP slice), the terms in N and D move against each other
    and are not told apart; with every run at about one tokens-per-parameter ratio r = D/N (spanning less than ``ONE_RATIO_SPAN``x),
    N and D move together, so the law's split between them, and with it N_opt at any budget, is set by
    the priors (the loss along that ratio is still predicted). Empty where neither holds."""
    N, D = np.asarray(N, np.float64), np.asarray(D, np.float64)
    limits = []
    for name, x in (("model sizes N", N), ("token counts D", D)):
        k = len(np.unique(x))
        if k < MIN_DISTINCT_SIZES:
            limits.append(f"only {k} distinct {name}: the law's term in {name[-1]} (its coefficient and exponent) is not "
                          f"pinned apart from E by fewer than {MIN_DISTINCT_SIZES}")
    C = 6.0 * N * D
    if len(C) > 1 and C.max() / C.min() < ONE_RATIO_SPAN:
        limits.append(f"every run has about the same compute (6ND {C.min():.3g}-{C.max():.3g} FLOPs, one IsoFLOP "
                      "slice): D falls as N grows, so the law's terms in N and D are not told apart, and how the loss "
                      "and N_opt move with compute rests on the priors")
    r = D / N
    if len(r) > 1 and r.max() / r.min() < ONE_RATIO_SPAN:
        limits.append(f"every run has about the same tokens per parameter (D/N {r.min():.3g}-{r.max():.3g}): N and D "
                      "grew together, so the law's split between them, and with it N_opt and D_opt at any budget, rests "
                      "on the priors (the loss along that ratio is still predicted)")
    return limits


DESIGN_ADVICE = ("more warm-up or draws will not fix this: add runs that vary N and D apart (an IsoFLOP slice, or "
                 "shorter and longer runs at a few sizes)")


def warn_design_limits(N, D) -> list[str]:
    """``design_limits``, each also warned (``DesignWarning``) with what would fix it."""
    limits = design_limits(N, D)
    if limits:
        import warnings

        warnings.warn("these runs cannot identify the law: " + "; ".join(limits) + "; " + DESIGN_ADVICE,
                      DesignWarning, stacklevel=3)
    return limits


def warn_if_untrustworthy(verdict_ok: bool, verdict: str) -> None:
    """Warn (``SamplerWarning``) where a fit's validity checks failed, instead of returning silently."""
    if not verdict_ok:
        import warnings

        warnings.warn(verdict, SamplerWarning, stacklevel=3)


@dataclass(frozen=True)
class Problem:
    """One failed check: what was seen and what to do about it."""

    check: str
    message: str
    advice: str
    efficiency: bool = False  # an efficiency warning (the draws stay valid), not a validity failure

    def __str__(self) -> str:
        return f"{self.message} {self.advice}"


@dataclass
class Diagnosis:
    """The result of ``diagnose``. ``table`` has one row per parameter (r_hat, ess_bulk, ess_tail)."""

    method: str
    applicable: bool
    num_chains: int
    num_draws: int
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    divergences: int = 0
    bfmi: np.ndarray = field(default_factory=lambda: np.zeros(0))
    saturated: int = 0
    max_tree_depth: int = DEFAULT_MAX_TREE_DEPTH
    min_ess: float = 0.0
    target_accept: float | None = None  # the fit's, where it recorded one
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The draws can be trusted: every validity check passes (efficiency warnings allowed)."""
        return self.applicable and not any(not p.efficiency for p in self.problems)

    @property
    def total_draws(self) -> int:
        return self.num_chains * self.num_draws

    def warnings(self) -> list[str]:
        """Each problem as one line: what went wrong, then what to do."""
        return [str(p) for p in self.problems]

    def checks(self) -> pd.DataFrame:
        """The summary table a report shows: check, value, threshold, status."""
        if not self.applicable:
            return pd.DataFrame(columns=["check", "value", "threshold", "status"])
        status = {p.check: "WARN" if p.efficiency else "FAIL" for p in self.problems}
        rows = [
            ("max R-hat", f"{self.table['r_hat'].max():.4f}", f"<= {RHAT_MAX}", "r_hat"),
            ("min bulk ESS", f"{self.table['ess_bulk'].min():.0f}", f">= {self.min_ess:.0f}", "ess_bulk"),
            ("min tail ESS", f"{self.table['ess_tail'].min():.0f}", f">= {self.min_ess:.0f}", "ess_tail"),
            ("divergences", f"{self.divergences} of {self.total_draws}", "0", "divergences"),
            ("min E-BFMI", _fmt_bfmi(self.bfmi), f">= {BFMI_MIN}", "bfmi"),
            (f"draws at max tree depth {self.max_tree_depth}", f"{self.saturated} of {self.total_draws}", "0",
             "tree_depth"),
        ]
        return pd.DataFrame(
            [{"check": c, "value": v, "threshold": t, "status": status.get(key, "ok")}
             for c, v, t, key in rows]
        )

    def verdict(self) -> str:
        """One paragraph: can the posterior be trusted, and if not, what to do."""
        if not self.applicable and self.method.endswith("population"):
            return (
                f"Sampler diagnostics do not apply here: these {self.total_draws} draws ({self.method}) are "
                "derived from another fit's MCMC draws (a new group's law from the hierarchical fit's "
                "population) and carry no sampler statistics of their own. Check the groups' fits: "
                "their diagnostics are the sampler's."
            )
        if not self.applicable:
            return (
                f"Sampler diagnostics do not apply: this is a {self.method} fit with "
                f"{self.total_draws} draw{'s' if self.total_draws != 1 else ''} and no MCMC sampler, so there "
                "is no R-hat, ESS, divergence, E-BFMI or tree-depth check to run. "
                + ("A point fit's intervals have zero width; they state no uncertainty. "
                   if self.total_draws == 1 else
                   "Bootstrap draws are independent refits; their spread is the interval. ")
                + "Fit with --method nuts for a posterior whose convergence can be checked."
            )
        head = (
            f"{self.num_chains} chain{'s' if self.num_chains != 1 else ''} x {self.num_draws} draws ({self.method}): "
            f"max R-hat {self.table['r_hat'].max():.3f}, min bulk ESS {self.table['ess_bulk'].min():.0f}, "
            f"min tail ESS {self.table['ess_tail'].min():.0f}, {self.divergences} divergences, "
            f"min E-BFMI {_fmt_bfmi(self.bfmi)}, {self.saturated} draws at max tree depth {self.max_tree_depth}."
        )
        if not self.problems:
            return (
                f"Sampler diagnostics: all checks passed. {head} The chains agree, explored the posterior "
                "without divergences, and hold enough effective draws for the reported intervals."
            )
        advice = " What to do: " + " ".join(dict.fromkeys(p.advice for p in self.problems))  # unique, in order
        messages = " ".join(p.message for p in self.problems)
        if self.ok:  # efficiency warnings only
            n = len(self.problems)
            return (
                f"Sampler diagnostics: the validity checks passed (R-hat, ESS, divergences, E-BFMI); "
                f"{n} efficiency warning{'s' if n != 1 else ''}. {head} {messages}{advice}"
            )
        n = sum(not p.efficiency for p in self.problems)
        return (f"Sampler diagnostics: {n} problem{'s' if n != 1 else ''}; do not trust the intervals yet. "
                f"{head} {messages}{advice}")


def _fmt_bfmi(bfmi: np.ndarray) -> str:
    return f"{np.min(bfmi):.2f}" if np.size(bfmi) else "n/a"


def diagnose(posterior, *, max_tree_depth: int | None = None) -> Diagnosis:
    """Run every check on ``posterior`` (a ``Posterior``) and collect the problems."""
    post = posterior.group_arrays("posterior")  # arrays: a fit's tree is not built for this
    chains, draws = (int(k) for k in np.shape(next(iter(post.values())))[:2])
    stats = posterior.group_arrays("sample_stats") or {}
    has_sampler = "energy" in stats or "diverging" in stats  # fits saved without energy: no E-BFMI
    if chains * draws < 4 or not has_sampler:
        return Diagnosis(method=posterior.method, applicable=False, num_chains=chains, num_draws=draws)

    max_depth = int(max_tree_depth or posterior.meta.get("max_tree_depth", DEFAULT_MAX_TREE_DEPTH))
    names = [*posterior.law.param_names, *(["sigma"] if "sigma" in post else [])]
    values = {name: post[name].reshape(chains, draws) for name in names}
    table = pd.DataFrame(  # a parameter held fixed (constant draws) has nothing to diagnose
        [{"parameter": name, **chain_stats(x)} for name, x in values.items() if np.ptp(x) > 0]
    )
    if table.empty:  # every parameter fixed: nothing was sampled
        return Diagnosis(method=posterior.method, applicable=False, num_chains=chains, num_draws=draws)
    table = table.set_index("parameter")
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    bfmi = _bfmi(stats["energy"]) if "energy" in stats else np.zeros(0)
    saturated = _saturated(stats, max_depth)
    min_ess = float(ESS_PER_CHAIN_MIN * chains)

    diag = Diagnosis(
        method=posterior.method, applicable=True, num_chains=chains, num_draws=draws, table=table,
        divergences=divergences, bfmi=bfmi, saturated=saturated, max_tree_depth=max_depth, min_ess=min_ess,
        target_accept=_float_or_none(posterior.meta.get("target_accept")),
    )
    diag.problems = _problems(diag)
    return diag


def chain_stats(x: np.ndarray) -> dict[str, float]:
    """R-hat, bulk and tail ESS of one scalar's (chain, draw) array, as Vehtari et al. (2021) and
    ArviZ define them (the one definition in the package: ``diagnose`` and the hierarchical fit's
    whole-model check both use it), computed with NumPyro's ``split_gelman_rubin`` and ``effective_sample_size``
    (already loaded with the sampler; importing ArviZ's statistics costs a CLI call 0.4 s):

    * each chain is split into halves h (a middle draw dropped), so one chain still compares two;
    * R-hat = max(R-hat of z(h), R-hat of z(|h - median h|)), z the rank-normal scores
      Phi^-1((rank - 3/8) / (S + 1/4)) over all S draws (ties share their mean rank);
    * bulk ESS = ESS of z(h); tail ESS = the smaller ESS of the indicators 1[h <= q_p], q_p the p-quantile
      of all draws, p in TAIL_PROB.

    R-hat equals ArviZ's; NumPyro's ESS omits Stan's one-term tail correction, within 2% of ArviZ's
    (tests/test_diagnostics.py checks both)."""
    from numpyro.diagnostics import effective_sample_size, gelman_rubin

    x = np.asarray(x, np.float64)
    halves = _split_chains(x)  # one chain too: its halves are compared
    with np.errstate(invalid="ignore", divide="ignore"):
        r_hat = max(float(gelman_rubin(_rank_normal(halves))),
                    float(gelman_rubin(_rank_normal(np.abs(halves - np.median(halves))))))
        ess_tail = min(float(effective_sample_size((halves <= np.quantile(x, p)).astype(np.float64)))
                       for p in TAIL_PROB)
        return {"r_hat": r_hat, "ess_bulk": float(effective_sample_size(_rank_normal(halves))),
                "ess_tail": ess_tail}


_chain_stats = chain_stats  # the older private name


def _split_chains(x: np.ndarray) -> np.ndarray:
    """(chain, draw) -> (2 chain, draw // 2): first and last halves (a middle draw is dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])


def _rank_normal(x: np.ndarray) -> np.ndarray:
    """Rank-normal scores over all draws: Phi^-1((r - 3/8) / (S + 1/4)), r the average rank."""
    from scipy.special import ndtri

    flat = x.ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[first[1:], flat.size]
    mean_rank = (first + 1 + ends) / 2.0  # ranks first+1 .. end shared by a run of ties
    ranks = np.empty(flat.size)
    ranks[order] = np.repeat(mean_rank, ends - first)
    return ndtri((ranks - 0.375) / (flat.size + 0.25)).reshape(x.shape)


def _bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain: mean squared energy jump over the energy variance."""
    energy = np.asarray(energy, np.float64)
    return np.sum(np.diff(energy, axis=1) ** 2, axis=1) / np.sum(
        (energy - energy.mean(axis=1, keepdims=True)) ** 2, axis=1
    )


def _saturated(stats, max_depth: int) -> int:
    """Transitions that hit the maximum tree depth (2^depth - 1 leapfrog steps)."""
    if "n_steps" in stats:
        return int((np.asarray(stats["n_steps"]) >= 2**max_depth - 1).sum())
    if "tree_depth" in stats:
        return int((np.asarray(stats["tree_depth"]) >= max_depth).sum())
    return 0


HIGH_TARGET_ACCEPT = 0.99  # the automatic redo's: divergences left there are not a step-size problem


def _float_or_none(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _problems(d: Diagnosis) -> list[Problem]:
    out = []
    t = d.table
    rhat = t["r_hat"]
    if rhat.isna().any() or (rhat > RHAT_MAX).any():
        bad = rhat[rhat.isna() | (rhat > RHAT_MAX)]
        out.append(Problem(
            "r_hat",
            f"R-hat above {RHAT_MAX} for {', '.join(f'{k} ({v:.3f})' for k, v in bad.items())}: the chains "
            "(or the halves of a chain) disagree, so they have not converged to one distribution.",
            "Run more warmup and more draws (e.g. --warmup 1000 --draws 2000) with at least 4 chains; if it "
            "persists, the posterior may be multimodal or poorly identified: tighten the priors or add runs "
            "that span more of N and D.",
        ))
    for kind, label in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        low = t[kind][~(t[kind] >= d.min_ess)]
        if len(low):
            out.append(Problem(
                kind,
                f"{label.capitalize()} ESS below {d.min_ess:.0f} ({ESS_PER_CHAIN_MIN} per chain) for "
                f"{', '.join(f'{k} ({v:.0f})' for k, v in low.items())}: the "
                + ("medians" if kind == "ess_bulk" else "interval ends (5% and 95% quantiles)")
                + " carry large Monte Carlo error.",
                "Draw more (raise --draws, use 4 chains); a low ESS per draw also hints at strong posterior "
                "correlation, which a dense mass matrix or centred parameters reduce.",
            ))
    if d.divergences:
        out.append(Problem(
            "divergences",
            f"{d.divergences} divergent transition{'s' if d.divergences != 1 else ''} "
            + ("of the whole grouped model (one sampler for every group, so each group's verdict counts them) "
               if d.method.startswith("nuts-hierarchical") else "")
            + f"({d.divergences / d.total_draws:.1%} of draws): the sampler could not follow the posterior's "
            "curvature somewhere and the draws may be biased.",
            (f"They remain at target_accept {d.target_accept:g}, so smaller steps will not remove them: the priors "
             "or the model allow a region the data cannot pin down (e.g. E near 0 with huge A; for a grouped fit, "
             "free spreads or offsets with few runs per group): tighten the priors, simplify the model (--pooling, "
             "--offset-by none), or add runs."
             if d.target_accept is not None and d.target_accept >= HIGH_TARGET_ACCEPT else
             "Raise target_accept (e.g. fit --target-accept 0.95, fit_nuts(target_accept=0.95)) to take smaller "
             "steps; if divergences remain, the priors allow a region the data cannot pin down (e.g. E near 0 with "
             "huge A): tighten them."),
        ))
    low_bfmi = np.flatnonzero(d.bfmi < BFMI_MIN)
    if low_bfmi.size:
        out.append(Problem(
            "bfmi",
            f"E-BFMI below {BFMI_MIN} in chain{'s' if low_bfmi.size != 1 else ''} "
            f"{', '.join(str(i) for i in low_bfmi)} (min {np.min(d.bfmi):.2f}): momentum resampling "
            "cannot move the chain between energy levels; heavy posterior tails are poorly explored.",
            "Reparameterise (sample log-scale or centred coordinates) or use more informative priors on "
            "the parameters with long tails, then run longer warmup.",
        ))
    if d.saturated:
        out.append(Problem(
            "tree_depth",
            f"{d.saturated} transition{'s' if d.saturated != 1 else ''} stopped at the maximum tree depth "
            f"{d.max_tree_depth} ({2 ** d.max_tree_depth - 1} leapfrog steps): NUTS trajectories were cut "
            "short, so the chain moves slowly.",
            "This is an efficiency problem, not a validity one (R-hat and ESS above measure the mixing): "
            "longer warmup helps the step size and mass matrix adapt; a raised max_tree_depth hides it at a "
            "cost in time.",
            efficiency=True,
        ))
    return out
