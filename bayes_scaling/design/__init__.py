"""Adaptive experiment design: which (N, D) runs to do next, by information about the frontier per FLOP.

* ``candidates``: the feasible runs and their costs.
* ``eig``: expected information gain about log N_opt(C*) / log L_opt(C*) from one run's loss.
* ``batch``: greedy batches with fantasised outcomes for pending runs.
* ``discrepancy``: an opt-in misfit term (the law is not exact at small scale) for the utility.
* ``planner``: the ask/tell ``Planner`` with its state on disk (results in its own run store).
* ``loop``: the closed loop ``run_loop`` (planner + executor), ending in a saved fit.
* ``oracles``: a simulator and a replay oracle for evaluation.
* ``refit``: the planner's refits, ``fit_nuts`` of the plain law, each a ``Posterior``.

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

__all__ = [
    "Candidates", "Discrepancy", "Planner", "Proposal", "Replay", "Simulator", "eig_gaussian", "eig_nested",
    "fit_discrepancy", "flops_6nd", "greedy_batch", "grid", "pool", "predicted_log_loss", "propose", "target_draws", "world_prior",
]
