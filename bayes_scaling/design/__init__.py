"""Adaptive experiment design: which (N, D) runs to do next, by information about the frontier per FLOP.

* ``candidates``: the feasible runs and their costs.
* ``eig``: expected information gain about log N_opt(C*) / log L_opt(C*) from one run's loss.
* ``batch``: greedy batches with fantasised outcomes for pending runs.
* ``discrepancy``: an opt-in misfit term (the law is not exact at small scale) for the utility.
* ``planner``: the ask/tell ``Planner`` with its state on disk (results in its own run store).
* ``loop``: the closed loop ``run_loop`` (planner + executor), ending in a saved fit.
* ``oracles``: a simulator and a replay oracle for evaluation.
* ``refit``: the planner's refits, ``fit_nuts`` (plain law or extrapolating), each a ``Posterior``.
* ``target``: the target-region utility (expected reduction of predictive error over the runs the
  team will train, jointly with log N_opt(C*), per cost^0.4).
* ``settings``: ``PlannerSettings``, the planner's frozen settings (saved with ``asdict``).
* ``mspe``: an MSPE-style selector (Li et al. 2026), a baseline for the pool benchmark.

The method and its maths: ``docs/design.md``.
"""

from bayes_scaling.design.batch import greedy_batch
from bayes_scaling.design.candidates import Candidates, flops_6nd, grid, pool
from bayes_scaling.design.discrepancy import Discrepancy, fit_discrepancy
from bayes_scaling.design.eig import (
    eig_gaussian,
    eig_nested,
    predicted_log_loss,
    target_draws,
)
from bayes_scaling.design.oracles import Replay, Simulator, world_prior
from bayes_scaling.design.planner import Planner, Proposal, propose
from bayes_scaling.design.settings import PlannerSettings
from bayes_scaling.design.target import TargetRegion, UtilitySettings

__all__ = [
    "Candidates", "Discrepancy", "Planner", "PlannerSettings", "Proposal", "TargetRegion", "UtilitySettings", "Replay", "Simulator", "eig_gaussian", "eig_nested",
    "fit_discrepancy", "flops_6nd", "greedy_batch", "grid", "pool", "predicted_log_loss", "propose", "target_draws", "world_prior",
]
