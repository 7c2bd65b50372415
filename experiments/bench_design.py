"""Benchmark: FLOPs spent until the 90% interval of log N_opt(C*) is at most a set width.

Strategies (all refit the same Bayesian model after each batch of q runs and stop at the width):

* ``planner``      expected information gain about log N_opt(C*) per FLOP (``design.Planner``)
* ``random``       uniformly random feasible candidates
* ``uncertainty``  the candidate with the largest predictive variance of its log-loss, cost ignored
* ``eig``          (replay only, ``--replay-add eig``) information gain without cost weighting
* ``isoflop``      Chinchilla's Approach-2 grid: 9 budgets 6e18 .. 3e21, 8 sizes per budget spread
                   log-evenly over N_c / 6 .. 6 N_c around N_c = sqrt(C / 120) (20 tokens per
                   parameter, the practitioner's prior guess), run budget by budget, cheapest first,
                   refit after each budget.

The three adaptive strategies share the same 8-run space-filling start and the candidate grid
(20 x 20 log grid of N in [1e7, 1e10] and D in [1e8, 1e11], cost 6ND <= 3e21, the grid's largest
budget). Simulation: truths drawn from ``world_prior`` (around Epoch AI's Chinchilla fit),
log-normal noise sigma = 0.01, target C* = 5.76e23; a strategy stops when the width reaches the
smallest tolerance or it has spent the whole IsoFLOP grid's FLOPs (then it "did not reach").
Replay: the bundled Chinchilla data (240 runs) as the pool; the IsoFLOP baseline adds the dataset's
budgets in increasing order. Each strategy spends up to 10% of the dataset's FLOPs; we record the
FLOPs until the width reaches 1.5x the full-data fit's 90% width, and the issue's criterion: is the
median of N_opt(5.76e23) after that 10% inside the full-data fit's 50% interval?

    python experiments/bench_design.py --seeds 20 --replay-seeds 5

The misfit strategies judged against their own model (``design.misfit_fit``), added to the results:

    python experiments/bench_design.py --misfit-reference      # full-data fits, misfit strategies replayed
    python experiments/bench_design.py --misfit-controls       # planner and random under the same model
    python experiments/bench_design.py --misfit-sensitivity    # u_ref at the largest affordable run

Pool-based, judged on held-out runs (experiments/design_pool.py; results/bench_design_pool.json):

    python experiments/bench_design.py --pool --seeds 10          # every source, every group
    python experiments/bench_design.py --pool --timing            # one ask against one refit
    python experiments/bench_design.py --pool --develop           # ours' variants on seeds 100-102, the rule's choice
    python experiments/bench_design.py --pool --profile OUT.json  # Chinchilla seed 0: picks, variance split
    python experiments/bench_design.py --pool --diagnose OUT.json # what ours and MSPE buy at 10%, the laws fitted to them
    python experiments/bench_design.py --pool --sources S --strategies K... --out PART.json   # split over processes
    python experiments/bench_design.py --pool --merge PART.json ... # the parts as one results file
    python experiments/bench_design.py --pool --coverage-diagnosis OUT.json --sources S --seeds K --strategies ...
                                  # the 90% intervals' anatomy on the target runs (width, parts, error, folds)
    python experiments/bench_design.py --pool --band-coverage DIAG.json OUT.json   # + coverage in / off the band
    python experiments/bench_design.py --pool --per-group porian --out FILE.json  # median R^2 per group (markdown)
    python experiments/bench_design.py --pool --table RUNS.csv [--seeds 10]   # your own pools: every strategy,
                                  # the current protocol (--scorer nuts --picker product), tables printed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bayes_scaling
from bayes_scaling.design import Planner, Replay, Simulator, grid, world_prior
from bayes_scaling.design.discrepancy import coordinates, fit_discrepancy
from bayes_scaling.design.eig import predicted_log_loss, target_draws
from bayes_scaling.design.loop import LoopSettings, run_loop
from bayes_scaling.design.misfit_fit import MisfitModel, fit_misfit
from bayes_scaling.design.planner import DEFAULT_DISCREPANCY_LENGTH, Proposal, interval
from bayes_scaling.design.refit import MaskedRefitter
from bayes_scaling.executors.inline import InlineExecutor
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.laws import get_law
from bayes_scaling.runs import load_chinchilla

bayes_scaling.configure()  # float64, host devices for parallel chains: before any JAX use

ROOT = Path(__file__).resolve().parent.parent
C_STAR = 5.76e23
ISO_BUDGETS = (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21)
ADAPTIVE = ("planner", "random", "uncertainty", "planner-misfit")
REPLAY_ADAPTIVE = ("planner", "random", "uncertainty", "eig", "planner-misfit", "eig-misfit")
# strategy -> Planner settings: the score, and the misfit term (design.discrepancy: kappa = 1, growth 10^0.5 per decade)
STRATEGIES = {
    "planner": {"strategy": "eig_per_cost", "discrepancy": 0.0},
    "random": {"strategy": "random", "discrepancy": 0.0},
    "uncertainty": {"strategy": "uncertainty", "discrepancy": 0.0},
    "eig": {"strategy": "eig", "discrepancy": 0.0},
    "planner-misfit": {"strategy": "eig_per_cost", "discrepancy": 1.0, "discrepancy_growth": 0.5},
    "eig-misfit": {"strategy": "eig", "discrepancy": 1.0, "discrepancy_growth": 0.5},
    "planner-auto": {"strategy": "eig_per_cost", "discrepancy": "auto"},
}


def isoflop_design(points_per_budget: int = 8) -> list[list[tuple[float, float]]]:
    levels = []
    for C in ISO_BUDGETS:
        Nc = np.sqrt(C / 120.0)
        levels.append([(n, C / (6.0 * n)) for n in np.geomspace(Nc / 6, Nc * 6, points_per_budget)])
    return levels


def run_adaptive(strategy, oracle, candidates, *, tolerance, cap, q, seed, level, settings, record=None):
    """Trajectory [(flops spent, runs, width, median)] after each batch, until width <= tolerance or
    cap; ``record`` (a dict) receives the last misfit term the planner used. The library's loop
    (``design.loop.run_loop``) with the oracle as an inline executor's job: ask q runs, answer them,
    tell them all, refit once, ask again."""
    with tempfile.TemporaryDirectory() as tmp:
        planner = Planner.create(tmp, candidates, target_budget=C_STAR, experiment_budget=cap, tolerance=tolerance,
                                 level=level, seed=seed, **{**settings, **STRATEGIES[strategy]})
        trajectory = []

        def trace(status):
            if status["log_N_opt"] is not None:
                trajectory.append((status["flops_spent"], status["runs_done"], status["log_N_opt"]["width"],
                                   status["log_N_opt"]["median"]))

        executor = InlineExecutor(job=lambda spec, memory_fraction=None: oracle(Proposal(**spec)))
        run_loop(planner, executor, lambda p: {"run_id": p.run_id, "N": p.N, "D": p.D, "cost": p.cost},
                 LoopSettings(workers=q, quiet=True, save_fit=False), notify=lambda line: None, on_status=trace)
        if record is not None:
            record["misfit"] = planner.status()["misfit"]
            if record.get("keep_runs"):  # the selected runs, for refits under another model
                record["runs"] = [{k: r[k] for k in ("key", "N", "D", "cost", "loss")} for r in planner.done]
        return trajectory


def run_levels(levels, oracle, *, tolerance, level, refitter, seed, cap=float("inf")):
    """The fixed design run level by level (refit after each), while the FLOPs stay within ``cap``:
    trajectory as in run_adaptive."""
    N, D, L, spent, trajectory = [], [], [], 0.0, []
    for runs in levels:
        if spent + sum(6 * n * d for n, d in runs) > cap:
            break
        for n, d in runs:
            result = oracle(Proposal(run_id=f"{n:.4g}-{d:.4g}", N=n, D=d, cost=6 * n * d))
            N.append(result["N"]), D.append(result["D"]), L.append(result["loss"])
            spent += result["C"]
        if len(N) >= 8:
            draws = refitter.fit(N, D, L, seed=seed)
            T = target_draws(refitter.law, draws, C_STAR)[:, 0]
            stats = interval(T, level)
            trajectory.append((spent, len(N), stats["width"], stats["median"]))
            if stats["width"] <= tolerance:
                break
    return trajectory


def flops_to_reach(trajectory, width) -> float:
    for flops, _, w, _ in trajectory:
        if w <= width:
            return float(flops)
    return float("inf")


def summarise(per_seed: list[dict], tolerances, names) -> dict:
    out = {}
    for w in tolerances:
        key = f"{w:g}"
        table = {}
        for name in names:
            flops = np.array([s[name]["flops_to_width"][key] for s in per_seed])
            table[name] = {"median_flops": float(np.median(flops)), "reached": int(np.isfinite(flops).sum()),
                           "seeds": len(flops)}
        for name in names:
            if name == "isoflop":
                continue
            # per-seed ratios over the seeds where the IsoFLOP grid reached the width (inf: this one did not)
            ratios = np.array([s[name]["flops_to_width"][key] / s["isoflop"]["flops_to_width"][key] for s in per_seed
                               if np.isfinite(s["isoflop"]["flops_to_width"][key])])
            table[name]["median_ratio_to_isoflop"] = float(np.median(ratios)) if len(ratios) else float("nan")
            table[name]["ratio_seeds"] = len(ratios)
            table[name]["ratio_of_medians"] = table[name]["median_flops"] / table["isoflop"]["median_flops"]
        out[key] = table
    return out


def simulation(args, settings) -> dict:
    candidates = grid(n_range=(1e7, 1e10), d_range=(1e8, 1e11), n_points=20, d_points=20, max_cost=max(ISO_BUDGETS))
    levels = isoflop_design()
    grid_total = float(sum(6 * n * d for runs in levels for n, d in runs))
    refitter = MaskedRefitter(num_chains=settings["num_chains"],
                              num_warmup=settings["num_warmup"], num_draws=settings["num_draws"])
    tol = min(args.tolerances)
    per_seed = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        record = {"seed": seed}
        for name in ("isoflop", *ADAPTIVE):
            sim = Simulator(prior=world_prior(), sigma=args.sigma, seed=1000 + seed)
            if name == "isoflop":
                traj = run_levels(levels, sim, tolerance=tol, level=args.level, refitter=refitter, seed=seed)
            else:
                traj = run_adaptive(name, sim, candidates, tolerance=tol, cap=grid_total, q=args.q, seed=seed,
                                    level=args.level, settings=settings)
            record[name] = {"trajectory": traj,
                            "flops_to_width": {f"{w:g}": flops_to_reach(traj, w) for w in args.tolerances}}
        record["truth"] = sim.truth
        record["true_log_N_opt"] = sim.true_targets(C_STAR)["log_N_opt"]
        record["seconds"] = time.perf_counter() - start
        per_seed.append(record)
        line = ", ".join(f"{n} {record[n]['flops_to_width'][f'{tol:g}']:.3g}" for n in ("isoflop", *ADAPTIVE))
        print(f"seed {seed}: FLOPs to width {tol:g}: {line} ({record['seconds']:.0f} s)", flush=True)
        _write(args, {"simulation": {"per_seed": per_seed, "grid_total_flops": grid_total}}, partial=True)
    return {"per_seed": per_seed, "grid_total_flops": grid_total, "candidates": len(candidates),
            "summary": summarise(per_seed, args.tolerances, ("isoflop", *ADAPTIVE))}


def replay(args, settings, previous: dict | None = None) -> dict:
    """Replay on the Chinchilla data. With ``previous`` (an earlier replay's results), only the
    strategies in ``args.replay_add`` are run, on the same seeds, and added to its records."""
    runs = load_chinchilla().for_fit()
    oracle = Replay(runs)
    if previous is None:
        full = fit_nuts(runs, num_chains=4, num_draws=1000, seed=0)
        T_full = target_draws(full.law, full.theta(), C_STAR)[:, 0]
        q25, q50, q75 = np.quantile(T_full, [0.25, 0.5, 0.75])
        full_fit = {"log_N_opt_median": q50, "log_N_opt_50pct": [q25, q75],
                    "width_90pct": interval(T_full, args.level)["width"]}
        tolerance = args.replay_width_factor * full_fit["width_90pct"]
        per_seed, names = [{"seed": seed} for seed in range(args.replay_seeds)], ("isoflop", *REPLAY_ADAPTIVE)
    else:
        full_fit, tolerance, per_seed = previous["full_fit"], previous["tolerance"], previous["per_seed"]
        (q25, q75), names = full_fit["log_N_opt_50pct"], tuple(args.replay_add)
    total = oracle.total_flops
    log_c = np.round(np.log10(runs.C), 1)
    levels = [[(n, d) for n, d, c in zip(runs.N, runs.D, log_c) if c == level] for level in np.unique(log_c)]
    lookup = {(round(n), round(d)): rid for n, d, rid in zip(runs.N, runs.D, runs.frame["run_id"])}

    def by_size(p):
        return oracle(Proposal(lookup[(round(p.N), round(p.D))], p.N, p.D, p.cost))

    refitter = MaskedRefitter(num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                              num_draws=settings["num_draws"])
    for record in per_seed:
        seed = record["seed"]
        for name in names:  # each spends up to 10% of the dataset's FLOPs, whatever the width
            extra = {}
            if name == "isoflop":
                traj = run_levels(levels, by_size, tolerance=-1.0, level=args.level, refitter=refitter, seed=seed,
                                  cap=args.replay_fraction * total)
            else:
                traj = run_adaptive(name, oracle, oracle.candidates(), tolerance=0.0, cap=args.replay_fraction * total,
                                    q=args.q, seed=seed, level=args.level, settings=settings,
                                    record=extra)
            median_at_tenth = traj[-1][3] if traj else float("nan")
            record[name] = {**extra,"trajectory": traj, "flops_to_width": {f"{tolerance:g}": flops_to_reach(traj, tolerance)},
                            "median_log_N_opt_at_10pct": median_at_tenth,
                            "inside_full_50pct_at_10pct": bool(q25 <= median_at_tenth <= q75)}
        _write(args, {"replay": {"per_seed": per_seed, "full_fit": full_fit, "tolerance": tolerance}}, partial=True)
        print(f"replay seed {seed}: " + ", ".join(
            f"{n} {record[n]['flops_to_width'][f'{tolerance:g}'] / total:.3f} of total, inside@10%={record[n]['inside_full_50pct_at_10pct']}"
            for n in names), flush=True)
    return {"per_seed": per_seed, "total_flops": total, "runs": len(runs), "full_fit": full_fit,
            "tolerance": tolerance, "summary": summarise(per_seed, [tolerance], strategy_names(per_seed))}


def cheapest_first(args, settings, fractions=(0.1, 0.3, 1.0)) -> dict:
    """Fits to the cheapest runs of the Chinchilla data making up each share of its FLOPs: where
    does log N_opt(C*) sit when only the small runs are known?"""
    runs = load_chinchilla().for_fit()
    refitter = MaskedRefitter(num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                              num_draws=settings["num_draws"])
    order = np.argsort(runs.C)
    share = np.cumsum(runs.C[order]) / runs.C.sum()
    out = {}
    for fraction in fractions:
        idx = order[share <= fraction + 1e-12]
        draws = refitter.fit(runs.N[idx], runs.D[idx], runs.loss[idx], seed=0)
        out[f"{fraction:g}"] = {"runs": len(idx), **interval(target_draws(refitter.law, draws, C_STAR)[:, 0], args.level)}
    return out


def scale_windows(args, settings, windows=((18, 19.5), (19.5, 20.5), (20.5, 21.2), (21.2, 23), (19, 23))) -> dict:
    """Fits to the Chinchilla runs whose log10 C lies in each window: does every compute scale
    point to the same N_opt(C*)?"""
    runs = load_chinchilla().for_fit()
    refitter = MaskedRefitter(num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                              num_draws=settings["num_draws"])
    out = {}
    for lo, hi in windows:
        idx = np.flatnonzero((np.log10(runs.C) >= lo) & (np.log10(runs.C) < hi))
        draws = refitter.fit(runs.N[idx], runs.D[idx], runs.loss[idx], seed=0)
        out[f"{lo:g}-{hi:g}"] = {"runs": len(idx), "flops_share": float(runs.C[idx].sum() / runs.C.sum()),
                                 **interval(target_draws(refitter.law, draws, C_STAR)[:, 0], args.level)}
    return out


# Strategies scored under the misfit-aware model, and which model: the fixed prior (kappa) or the
# term fitted to the residuals ("auto"), with the settings of STRATEGIES (fixed before scoring).
MISFIT_SCORED = {"planner-misfit": "kappa", "eig-misfit": "kappa", "planner-auto": "auto"}
# Controls (--misfit-controls): strategies that designed without the misfit term, their runs refitted
# under the fixed-prior misfit model: does the model, rather than the design, put the answer inside?
MISFIT_CONTROLS = {"planner": "kappa", "random": "kappa"}


def misfit_models(runs, law, draws, reference: float) -> dict[str, MisfitModel]:
    """The two misfit-aware models for a set of runs: ``kappa`` = planner-misfit's fixed prior (tau
    = 1 x sigma at the reference scale, growth 10^0.5 per decade below, length 0.5 decades), and
    ``auto`` = planner-auto's term, fitted to the runs' residuals under the plain posterior-mean law
    (``design.discrepancy.fit_discrepancy``, as the planner does at each ask)."""
    fixed = STRATEGIES["planner-misfit"]
    kappa = MisfitModel(kappa=fixed["discrepancy"], growth=fixed["discrepancy_growth"],
                        length=DEFAULT_DISCREPANCY_LENGTH, reference=reference)
    resid = np.log(runs["loss"]) - predicted_log_loss(law, draws, runs["N"], runs["D"]).mean(axis=0)
    fitted, _ = fit_discrepancy(resid, coordinates(runs["N"], runs["D"], runs["cost"]), reference=reference,
                                length=DEFAULT_DISCREPANCY_LENGTH)
    return {"kappa": kappa, "auto": MisfitModel.from_discrepancy(fitted)}


def _target_stats(law, draws, num_chains) -> dict:
    from numpyro.diagnostics import split_gelman_rubin

    T = target_draws(law, draws, C_STAR)[:, 0]
    q25, q50, q75 = np.quantile(T, [0.25, 0.5, 0.75])
    return {"median": float(q50), "50pct": [float(q25), float(q75)], "width_90pct": interval(T, 0.9)["width"],
            "rhat": float(split_gelman_rubin(T.reshape(num_chains, -1)))}


def misfit_reference(args, settings, previous: dict, add: dict | None = None) -> dict:
    """Apples to apples: the misfit-aware strategies judged against the full-data fit of their own
    model. (1) Full-data fits (4 chains x 1,000 draws) under each misfit model; (2) each strategy in
    ``MISFIT_SCORED`` replayed again on the same seeds (the planner is deterministic given the seed;
    the rerun's final plain median is checked against the recorded one), its selected runs refitted
    under its model (2 x ``draws``), and that posterior's median of log N_opt(C*) checked against
    the model's full-data 50% interval. The misfit settings are the ones in STRATEGIES, fixed before
    any of this was scored; the reference scale u_ref is the pool's largest run for every fit.
    ``add`` ({strategy: model}): only these, on the seeds of ``previous["misfit_model"]``, added to it
    (controls: strategies that did not design under the misfit model, scored under it)."""
    data = load_chinchilla().for_fit()
    reference = float(np.log10(data.C.max()))
    if add is None:
        pool = {"N": data.N, "D": data.D, "cost": data.C, "loss": data.loss}
        plain = fit_nuts(data, num_chains=4, num_draws=1000, seed=0)
        models = misfit_models(pool, plain.law, plain.theta(), reference)
        out = {"u_ref": reference, "models": {k: dict(vars(m)) for k, m in models.items()}, "full_fit": {},
               "per_seed": []}
        for name, model in models.items():
            draws = fit_misfit(data.N, data.D, data.loss, model, cost=data.C, num_chains=4, num_warmup=500,
                               num_draws=1000, seed=0)
            out["full_fit"][name] = {**_target_stats(plain.law, draws, 4), "sigma_median": float(np.median(draws["sigma"]))}
            print(f"full-data fit under the {name} misfit model: {out['full_fit'][name]}", flush=True)
        scored, seeds = MISFIT_SCORED, sorted(r["seed"] for r in previous["per_seed"])[: args.misfit_seeds]
    else:
        out = previous["misfit_model"]
        models = {k: MisfitModel(**v) for k, v in out["models"].items()}
        scored, seeds = add, [r["seed"] for r in out["per_seed"]]
    oracle = Replay(data)
    refitter = MaskedRefitter(num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                              num_draws=settings["num_draws"])
    recorded = {r["seed"]: r for r in previous["per_seed"]}
    records = {r["seed"]: r for r in out["per_seed"]}
    for seed in seeds:
        record = records.get(seed, {"seed": seed})
        for name, which in scored.items():
            extra = {"keep_runs": True}
            traj = run_adaptive(name, oracle, oracle.candidates(), tolerance=0.0, cap=args.replay_fraction * oracle.total_flops,
                                q=args.q, seed=seed, level=args.level, settings=settings, record=extra)
            runs = {k: np.array([r[k] for r in extra["runs"]]) for k in ("N", "D", "cost", "loss")}
            if which == "auto":  # refit its term to the selected runs, as its last ask did
                draws = refitter.fit(runs["N"], runs["D"], runs["loss"], seed=seed)
                model = misfit_models(runs, refitter.law, draws, reference)["auto"]
            else:
                model = models["kappa"]
            draws = fit_misfit(runs["N"], runs["D"], runs["loss"], model, cost=runs["cost"],
                               num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                               num_draws=settings["num_draws"], seed=seed)
            stats = _target_stats(refitter.law, draws, settings["num_chains"])
            lo, hi = out["full_fit"][which]["50pct"]
            record[name] = {"model": which, "misfit_model": dict(vars(model)), "runs": [r["key"] for r in extra["runs"]],
                            "flops": float(runs["cost"].sum()), "plain_median_rerun": traj[-1][3],
                            "plain_median_recorded": recorded[seed].get(name, {}).get("median_log_N_opt_at_10pct"),
                            "misfit_median": stats["median"], "misfit_50pct": stats["50pct"], "rhat": stats["rhat"],
                            "inside_own_model_50pct": bool(lo <= stats["median"] <= hi)}
        if seed not in records:
            out["per_seed"].append(record)
        _write(args, {"replay": {**previous, "misfit_model": out}}, partial=True)
        print(f"misfit replay seed {seed}: " + ", ".join(
            f"{n} plain {record[n]['plain_median_rerun']:.3f} (recorded {record[n]['plain_median_recorded']:.3f}), "
            f"own model {record[n]['misfit_median']:.3f}, inside={record[n]['inside_own_model_50pct']}"
            for n in scored), flush=True)
    return out if add else rescore_auto(out, settings)


def reference_sensitivity(mm: dict, settings, fraction: float) -> dict:
    """The kappa model with u_ref at the largest run a strategy could afford (cost <= ``fraction`` of
    the dataset's FLOPs: the scale in sight at the planner's last asks) instead of the pool's largest:
    full-data fit and every recorded kappa-scored run set refitted (no replanning)."""
    data = load_chinchilla().for_fit()
    index = {rid: i for i, rid in enumerate(data.frame["run_id"])}
    u_ref = float(np.log10(data.C[data.C <= fraction * data.C.sum()].max()))
    model = MisfitModel(**{**mm["models"]["kappa"], "reference": u_ref})
    draws = fit_misfit(data.N, data.D, data.loss, model, cost=data.C, num_chains=4, num_warmup=500, num_draws=1000, seed=0)
    out = {"u_ref": u_ref, "full_fit": _target_stats(get_law("chinchilla"), draws, 4), "strategies": {}}
    lo, hi = out["full_fit"]["50pct"]
    names = [n for n in (*MISFIT_SCORED, *MISFIT_CONTROLS) if mm["per_seed"][0].get(n, {}).get("model") == "kappa"]
    for name in names:
        meds = []
        for record in mm["per_seed"]:
            idx = np.array([index[k] for k in record[name]["runs"]])
            draws = fit_misfit(data.N[idx], data.D[idx], data.loss[idx], model, cost=data.C[idx],
                               num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                               num_draws=settings["num_draws"], seed=record["seed"])
            meds.append(_target_stats(get_law("chinchilla"), draws, settings["num_chains"])["median"])
        out["strategies"][name] = {"medians": meds, "inside": int(sum(lo <= m <= hi for m in meds))}
        print(f"u_ref {u_ref:.2f}: {name} median {np.median(meds):.3f}, inside {out['strategies'][name]['inside']}", flush=True)
    return out


def rescore_auto(mm: dict, settings) -> dict:
    """planner-auto's selected runs refitted under the *full-data* auto term (tau and gamma as fitted
    to all runs, fixed), so that run set and reference share exactly one model; adds
    ``fullterm_median`` and ``inside_fullterm_50pct`` to each seed's planner-auto record."""
    data = load_chinchilla().for_fit()
    index = {rid: i for i, rid in enumerate(data.frame["run_id"])}
    model = MisfitModel(**mm["models"]["auto"])
    lo, hi = mm["full_fit"]["auto"]["50pct"]
    for record in mm["per_seed"]:
        row = record.get("planner-auto")
        if row is None:
            continue
        idx = np.array([index[k] for k in row["runs"]])
        draws = fit_misfit(data.N[idx], data.D[idx], data.loss[idx], model, cost=data.C[idx],
                           num_chains=settings["num_chains"], num_warmup=settings["num_warmup"],
                           num_draws=settings["num_draws"], seed=record["seed"])
        stats = _target_stats(get_law("chinchilla"), draws, settings["num_chains"])
        row["fullterm_median"], row["fullterm_rhat"] = stats["median"], stats["rhat"]
        row["inside_fullterm_50pct"] = bool(lo <= stats["median"] <= hi)
        print(f"seed {record['seed']}: planner-auto under the full-data auto term {stats['median']:.3f}, "
              f"inside={row['inside_fullterm_50pct']}", flush=True)
    return mm


def strategy_names(per_seed) -> tuple[str, ...]:
    return tuple(k for k, v in per_seed[0].items() if isinstance(v, dict) and "trajectory" in v)


def timing(settings) -> dict:
    """Wall and CPU seconds of one refit and of one ask over 1,000 candidates (30 runs done)."""
    sim = Simulator(prior=world_prior(), seed=7)
    candidates = grid(n_range=(1e7, 1e10), n_points=40, d_range=(1e8, 1e11), d_points=25)
    with tempfile.TemporaryDirectory() as tmp:
        planner = Planner.create(tmp, candidates, target_budget=C_STAR, strategy="random", n_init=30, seed=0,
                                 **settings)
        for p in planner.ask(30):
            planner.tell(p.run_id, sim(p))
        planner.settings["strategy"] = "eig_per_cost"
        planner.draws()
        planner.ask(1)  # first ask: eager-op compilation
        asks, fits = [], []
        for q in (1, 1, 4, 4, 1):
            wall, cpu = time.perf_counter(), time.process_time()
            proposals = planner.ask(q)
            asks.append((time.perf_counter() - wall, time.process_time() - cpu, len(planner.remaining()) + len(proposals)))
            for p in proposals:
                planner.tell(p.run_id, sim(p))
            wall, cpu = time.perf_counter(), time.process_time()
            planner.draws()
            fits.append((time.perf_counter() - wall, time.process_time() - cpu))
        misfit_asks = {}
        for mode in (1.0, "auto"):  # the same ask with the misfit term, fixed prior and fitted
            planner.settings["discrepancy"] = mode
            wall = time.perf_counter()
            proposals = planner.ask(4)
            misfit_asks[str(mode)] = time.perf_counter() - wall
            for p in proposals:
                planner.tell(p.run_id, sim(p))
    return {"misfit_ask_wall_s": misfit_asks,"candidates": len(candidates), "ask_wall_s": [a[0] for a in asks], "ask_cpu_s": [a[1] for a in asks],
            "ask_candidates": [a[2] for a in asks], "refit_wall_s": [f[0] for f in fits],
            "refit_cpu_s": [f[1] for f in fits], "median_ask_wall_s": float(np.median([a[0] for a in asks])),
            "median_refit_wall_s": float(np.median([f[0] for f in fits]))}


def _write(args, payload, partial=False):
    """Merge into the results file, so simulation and replay may run as separate processes."""
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    part = "simulation" if "simulation" in payload else "replay"
    old.setdefault("settings", {})[part] = {**vars(args), "partial": partial}
    old["machine"] = f"{platform.platform()}, {os.cpu_count()} CPU cores (shared)"
    old.update(payload)
    path.write_text(json.dumps(old, indent=1, default=float))


SECTION = "## Experiment design (bench_design.py)"


def docs_section(results: dict) -> str:
    """The benchmarks.md section, from the results file."""
    sim, rep = results.get("simulation"), results.get("replay")
    out = [SECTION, "",
           f"`experiments/bench_design.py`; raw numbers in `experiments/results/bench_design.json`. Machine: "
           f"{results.get('machine', '?')}, with other jobs running (wall times are inflated and vary).", "",
           "Question: how many FLOPs of small runs until the 90% interval of log N_opt(C*), C* = 5.76e23, is at "
           "most a set width? Every strategy refits the same Bayesian model (NUTS, 2 chains x 300 draws after 300 "
           "warmup, Student-t likelihood, default priors) after each batch of 4 runs; the adaptive ones share an "
           "8-run space-filling start. Strategies: **planner** = expected information gain about log N_opt(C*) "
           "per FLOP (Gaussian estimator, greedy batches; the default); **planner-misfit** = the same utility "
           "under the law plus a misfit term (docs/design.md: a Gaussian-process discrepancy over (log N, log D), "
           "sd = the fitted sigma at the largest candidate scale, growing 10^0.5-fold per decade of compute below "
           "it, correlation length half a decade); **random** feasible runs; **uncertainty** = largest "
           "predictive variance of the log-loss, cost ignored; **eig** / **eig-misfit** (replay only) = "
           "information gain with cost ignored (within the same budget), without / with the misfit term; "
           "**planner-auto** (replay only) = the planner with the misfit term's size and growth fitted to the done "
           "runs' residuals by marginal likelihood; "
           "**isoflop** = Chinchilla-style grid, 9 budgets "
           "6e18..3e21 x 8 sizes from N_c/6 to 6 N_c, N_c = sqrt(C/120), run cheapest budget first, refit per budget.", ""]
    if sim:
        seeds = len(sim["per_seed"])
        out += [f"### Simulation ({seeds} seeds{' - partial run' if results.get('settings', {}).get('simulation', {}).get('partial') else ''})", "",
                "Truths drawn from `world_prior()` (around Epoch AI's Chinchilla fit), log-normal noise sigma = 0.01 on "
                f"the loss; candidates: {sim.get('candidates', 397)} runs of a 20 x 20 log grid N in [1e7, 1e10], D in "
                "[1e8, 1e11] with 6ND <= 3e21. A strategy that has spent the whole IsoFLOP grid "
                f"({sim['grid_total_flops']:.3g} FLOPs) without reaching the width counts as not reaching it. "
                "Ratio = the strategy's FLOPs / the IsoFLOP grid's FLOPs on the same truth, median over the seeds "
                "where the grid reached the width.", ""]
        for width, table in sim["summary"].items():
            out += [f"Width {width} (nats, 90% interval of log N_opt):", "",
                    "| strategy | reached | median FLOPs to width | median ratio to IsoFLOP | ratio of medians |",
                    "|---|---|---|---|---|"]
            for name, row in table.items():
                ratio = "1" if name == "isoflop" else f"{row['median_ratio_to_isoflop']:.3g}"
                of_medians = "1" if name == "isoflop" else f"{row['ratio_of_medians']:.3g}"
                out.append(f"| {name} | {row['reached']}/{row['seeds']} | {row['median_flops']:.3g} | {ratio} | {of_medians} |")
            out.append("")
        covered = {name: sum(abs(s[name]["trajectory"][-1][3] - s["true_log_N_opt"]) <= s[name]["trajectory"][-1][2] / 2
                             for s in sim["per_seed"]) for name in ("isoflop", *ADAPTIVE)}
        out += ["Calibration check at each strategy's last refit: the true log N_opt(C*) lies within median +- "
                "width/2 for " + ", ".join(f"{name} {k}/{seeds}" for name, k in covered.items()) + " seeds.", ""]
        for name in ("planner", "planner-misfit"):
            if name not in sim["summary"][min(sim["summary"], key=float)]:
                continue
            tight = sim["summary"][min(sim["summary"], key=float)][name]["median_ratio_to_isoflop"]
            loose = sim["summary"][max(sim["summary"], key=float)][name]["median_ratio_to_isoflop"]
            out += [f"Target (<= 20% of the IsoFLOP grid's FLOPs, median over seeds), **{name}**: "
                    f"{'met' if max(tight, loose) <= 0.2 else 'not met'} ({loose:.3g} and {tight:.3g} at the two widths).", ""]
        out += ["Caveat: the simulated law is exactly right down to the smallest runs, so cheap runs extrapolate "
                "perfectly; the planner exploits that, and the misfit term, which assumes the small runs are off "
                "the law, pays for a caution the simulation does not need (see the replay below).", ""]
    if rep:
        full = rep["full_fit"]
        out += [f"### Replay on the Chinchilla data ({len(rep['per_seed'])} seeds)", "",
                f"Pool: the {rep['runs']} bundled Chinchilla runs ({rep['total_flops']:.3g} FLOPs in all); each strategy "
                "spends up to 10% of that. Full-data fit (4 chains x 1,000 draws): median log N_opt(5.76e23) = "
                f"{full['log_N_opt_median']:.3f} (N_opt {np.exp(full['log_N_opt_median']):.3g}), 50% interval "
                f"[{full['log_N_opt_50pct'][0]:.3f}, {full['log_N_opt_50pct'][1]:.3f}], 90% width {full['width_90pct']:.3f}; "
                f"width to reach: 1.5x that = {rep['tolerance']:.3f}.", "",
                "Per seed, the posterior median of log N_opt(C*) at the end (after up to 10% of the FLOPs) is "
                "checked against the full-data 50% interval (the issue's target); the table gives the median and "
                "the range over seeds of those posterior medians and how many seeds land inside.", "",
                "| strategy | runs (median) | reached width within 10% | median share of dataset FLOPs to width | "
                "posterior median log N_opt after 10%: median over seeds [min, max] | seeds inside full-data 50% interval |",
                "|---|---|---|---|---|---|"]
        table = next(iter(rep["summary"].values()))
        met = []
        for name, row in table.items():
            meds = [s[name]["median_log_N_opt_at_10pct"] for s in rep["per_seed"]]
            inside = sum(s[name]["inside_full_50pct_at_10pct"] for s in rep["per_seed"])
            n_runs = np.median([s[name]["trajectory"][-1][1] for s in rep["per_seed"]])
            out.append(f"| {name} | {n_runs:.0f} | {row['reached']}/{row['seeds']} | "
                       f"{row['median_flops'] / rep['total_flops']:.3g} | {np.median(meds):.3f} [{min(meds):.3f}, "
                       f"{max(meds):.3f}] | {inside}/{len(meds)} |")
            if inside >= len(meds) / 2:
                met.append(name)
        out += ["", "Replay target (posterior median inside the full-data 50% interval, on at least half the seeds), "
                "against the plain law's full-data fit: "
                + (f"met by {', '.join(met)}." if met else "not met by any strategy."), ""]
        (q25, q75), centre = rep["full_fit"]["log_N_opt_50pct"], {}
        for name in table:
            centre[name] = float(np.median([s[name]["median_log_N_opt_at_10pct"] for s in rep["per_seed"]]))
        above = [f"{n} ({v:.2f})" for n, v in centre.items() if v > q75]
        below = [f"{n} ({v:.2f})" for n, v in centre.items() if v < q25]
        out += ["Median over seeds above the interval: " + (", ".join(above) or "none") + "; below it: "
                + (", ".join(below) or "none") + ".", ""]
        fitted = [s["planner-auto"].get("misfit") for s in rep["per_seed"] if "planner-auto" in s]
        if fitted:
            taus = [m["scale"] if m else 0.0 for m in fitted]
            growths = [m["growth"] if m else 0.0 for m in fitted]
            out += [f"planner-auto's misfit term fitted at its last ask: sd tau at the largest scale median "
                    f"{np.median(taus):.2g} (range {min(taus):.2g}..{max(taus):.2g}, log-loss units), growth "
                    + ", ".join(f"{g:g} on {growths.count(g)}" for g in sorted(set(growths))) + " seeds. "
                    "Its effect on the result: planner-auto against planner in the table.", ""]
        if rep.get("misfit_model"):
            out += misfit_section(rep["misfit_model"], full)
        subsets = rep.get("cheapest_first")
        if subsets:
            out += ["Why the target is hard: fits to the cheapest runs "
                    "(one NUTS fit each, 2 x 300 draws) give median log N_opt(C*) " + ", ".join(
                        f"{v['median']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}] from the cheapest {float(k):.0%} of the "
                        f"FLOPs ({v['runs']} runs)" for k, v in subsets.items()) + ". The small runs imply a larger "
                    "N_opt than the large ones: the law does not hold exactly across the range, so any design that "
                    "saves FLOPs by leaving out the largest runs inherits that bias, and the narrow intervals the "
                    "planner reaches cheaply are not a guarantee of agreement with the big runs.", ""]
        windows = rep.get("scale_windows")
        if windows:
            out += ["Nor do the scales agree with each other: fits to the runs in one window of log10 C give "
                    + ", ".join(f"{v['median']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}] for log10 C in [{k.replace('-', ', ')}) "
                                f"({v['runs']} runs, {v['flops_share']:.1%} of the FLOPs)" for k, v in windows.items())
                    + ". The full-data median (a compromise between the small runs, which pull N_opt up, and the "
                    "larger ones, which pull it down) is thus reproduced by a 10% subset only if the subset mixes "
                    "the scales in about the proportions of the whole dataset; the 50% interval it has to hit is "
                    "much narrower than the spread between scales.", ""]
        timing = rep.get("timing")
        if timing:
            out += [f"Speed: one `ask` over {timing['candidates']} candidates with a fitted posterior (30 runs): median "
                    f"{timing['median_ask_wall_s']:.2f} s wall (target <= 5 s); one refit (2 x 300 draws, no "
                    f"recompilation): median {timing['median_refit_wall_s']:.2f} s wall, "
                    f"{np.median(timing['refit_cpu_s']):.2f} s CPU."
                    + ("" if "misfit_ask_wall_s" not in timing else " One ask of 4 with the misfit term: "
                       + ", ".join(f"{v:.2f} s ({'fixed prior' if k != 'auto' else 'fitted'})"
                                   for k, v in timing["misfit_ask_wall_s"].items()) + "."), ""]
    return "\n".join(out)


def misfit_section(mm: dict, plain: dict) -> list[str]:
    """Docs lines for ``misfit_reference``'s results: each misfit strategy against its own model."""
    ref, auto = mm["full_fit"], mm["models"]["auto"]
    seeds = mm["per_seed"]
    out = ["#### The misfit strategies judged against their own model's full-data fit", "",
           "The replay table above scores every strategy by the *plain law's* posterior: the planner refits "
           "the law alone after each batch (`Planner.draws`, `design.refit`), and the misfit term enters only "
           "its utility. So planner-misfit's final median comes from a different model than the one it "
           "designed under. Here the misfit-aware model is fitted as a model (`design.misfit_fit`: the law "
           "plus the Gaussian-process discrepancy, marginalised to a multivariate normal on the log-losses) "
           "to all 240 runs and, per seed, to the runs each misfit strategy selected (the strategies replayed "
           "again on the same seeds; the rerun's plain-fit median equals the recorded one on "
           f"{_same_plain(seeds)} strategy-seeds), and each is judged against its own model's full-data fit. "
           "Models, with the settings the strategies used, fixed before anything was scored: **kappa** "
           "(planner-misfit, eig-misfit): tau = 1 x sigma at the reference scale, growing 10^0.5-fold per "
           "decade of compute below it, correlation length 0.5 decades, observation noise variance "
           "5/3 sigma^2 (the Student-t's, as in the utility); **auto** (planner-auto): tau and gamma fitted by "
           "marginal likelihood to the residuals of the plain posterior-mean law, as the planner does at each "
           f"ask (on all runs: tau = {auto['tau0']:.2g}, gamma = {auto['growth']:g}; per seed: refitted to the "
           "selected runs), then fixed. The reference scale u_ref is the pool's largest run "
           f"(log10 C = {mm['u_ref']:.2f}) in every fit. Full-data fits 4 chains x 1,000 draws; per-seed fits "
           "2 x 300.", "",
           "| model | full-data median log N_opt(5.76e23) | 50% interval | 90% width | R-hat |", "|---|---|---|---|---|",
           f"| plain law (the table above) | {plain['log_N_opt_median']:.3f} | [{plain['log_N_opt_50pct'][0]:.3f}, "
           f"{plain['log_N_opt_50pct'][1]:.3f}] | {plain['width_90pct']:.3f} | |"]
    for name, r in ref.items():
        out.append(f"| {name} | {r['median']:.3f} | [{r['50pct'][0]:.3f}, {r['50pct'][1]:.3f}] | {r['width_90pct']:.3f} "
                   f"| {r['rhat']:.3f} |")
    out += ["", f"Per strategy ({len(seeds)} seeds, up to 10% of the dataset's FLOPs):", "",
            "| strategy | model | runs (median) | plain-fit median log N_opt: median over seeds | median log N_opt "
            "under that model: median over seeds [min, max] | seeds inside that model's full-data 50% interval | max R-hat |",
            "|---|---|---|---|---|---|---|"]
    met, not_met, controls = [], [], []
    for name in [n for n in (*MISFIT_SCORED, *MISFIT_CONTROLS) if any(n in s for s in seeds)]:
        rows = [s[name] for s in seeds if name in s]
        meds = [r["misfit_median"] for r in rows]
        inside = sum(r["inside_own_model_50pct"] for r in rows)
        label = f"{name} (control)" if name in MISFIT_CONTROLS else name
        out.append(f"| {label} | {rows[0]['model']} | {np.median([len(r['runs']) for r in rows]):.0f} | "
                   f"{np.median([r['plain_median_rerun'] for r in rows]):.3f} | {np.median(meds):.3f} "
                   f"[{min(meds):.3f}, {max(meds):.3f}] | {inside}/{len(rows)} | {max(r['rhat'] for r in rows):.3f} |")
        if name in MISFIT_CONTROLS:
            controls.append(f"{name} {np.median(meds):.2f} ({inside}/{len(rows)} inside)")
        else:
            (met if inside >= len(rows) / 2 else not_met).append(f"{name} ({inside}/{len(rows)})")
    if controls:
        out += ["", "Controls: strategies that designed without the misfit term (the plain planner, random runs), "
                "replayed again and their selected runs refitted under the kappa model: " + ", ".join(controls)
                + ". Their reruns reproduce the recorded plain-fit median on "
                + _same_plain(seeds, tuple(MISFIT_CONTROLS)) + " strategy-seeds: NUTS's start changed between the "
                "recorded replay and this rerun (commit d214a04: the Laplace mass matrix's Newton steps moved "
                "to the host), so the plain fits differ slightly (random's picks do not depend on the fits: its runs are the "
                "recorded ones); the runs refitted are the rerun's."]
    auto_rows = [s["planner-auto"] for s in seeds if "planner-auto" in s]
    if auto_rows:
        taus = [r["misfit_model"]["tau0"] for r in auto_rows]
        growths = [r["misfit_model"]["growth"] for r in auto_rows]
        out += ["", f"planner-auto's term refitted to its selected runs: tau median {np.median(taus):.2g} "
                f"(range {min(taus):.2g}..{max(taus):.2g}), gamma " + ", ".join(
                    f"{g:g} on {growths.count(g)}" for g in sorted(set(growths))) + " seeds (all runs: tau "
                f"{auto['tau0']:.2g}, gamma {auto['growth']:g})."]
        full_term = [r for r in auto_rows if "fullterm_median" in r]
        if full_term:
            meds = [r["fullterm_median"] for r in full_term]
            inside = sum(r["inside_fullterm_50pct"] for r in full_term)
            out[-1] += (f" Refitted instead under the full-data term (exactly the reference's model): median over "
                        f"seeds {np.median(meds):.3f} [{min(meds):.3f}, {max(meds):.3f}], {inside}/{len(full_term)} "
                        f"seeds inside its 50% interval (max R-hat {max(r['fullterm_rhat'] for r in full_term):.3f}).")
    sens = mm.get("u_ref_sensitivity")
    if sens:
        r = sens["full_fit"]
        out += ["", f"Sensitivity to the reference scale (a check, not the headline; the setting above was fixed "
                f"first): at its last asks the planner's u_ref was the largest run it could still afford, log10 C = "
                f"{sens['u_ref']:.2f}, not the pool's largest. With that u_ref the kappa model's full-data fit gives "
                f"{r['median']:.3f}, 50% interval [{r['50pct'][0]:.3f}, {r['50pct'][1]:.3f}], and the same run sets "
                "refitted give " + ", ".join(
                    f"{n} {np.median(v['medians']):.3f} ({v['inside']}/{len(v['medians'])} inside)"
                    for n, v in sens["strategies"].items()) + ". The misfit strategies' medians sit at the "
                "upper edge of the kappa model's 50% interval under either u_ref, so how many seeds count as "
                "inside turns on where that edge falls: the count under the kappa model is fragile."]
    out += ["", "Replay target against the same model's full-data fit (on at least half the seeds): "
            + (f"met by {', '.join(met)}" if met else "met by none") + (f"; not met by {', '.join(not_met)}" if not_met else "")
            + ". Against the plain law's full-data fit it stays not met (table above). Two caveats. The "
            "misfit models' full-data 50% intervals are " + " and ".join(
                f"{(r['50pct'][1] - r['50pct'][0]) / (plain['log_N_opt_50pct'][1] - plain['log_N_opt_50pct'][0]):.1f}"
                for r in ref.values()) + " times as wide as the plain law's (the discrepancy "
            "absorbs much of what the small runs say), so the target is easier to hit under them. And the "
            "references themselves disagree: the full-data answer moves from the plain law's "
            f"{plain['log_N_opt_median']:.2f} to " + " and ".join(f"{r['median']:.2f} ({n})" for n, r in ref.items())
            + " with the model, further than any 50% interval is wide; which model is right is not settled by "
            "this benchmark. What the table does show is whether a planner agrees, with 10% of the FLOPs, with "
            "what its own model says given all the data.", ""]
    return out


def _same_plain(seeds, names=tuple(MISFIT_SCORED)) -> str:
    pairs = [(s[k]["plain_median_rerun"], s[k]["plain_median_recorded"]) for s in seeds for k in names if k in s]
    same = sum(b is not None and abs(a - b) < 1e-6 for a, b in pairs)
    return f"{same} of {len(pairs)}"


def write_docs(results: dict, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace (or append) only this benchmark's section of docs/benchmarks.md."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = docs_section(results).rstrip() + "\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--pool"]:  # the pool-based benchmark (experiments/design_pool.py)
        import design_pool

        design_pool.main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--replay-seeds", type=int, default=5)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[1.0, 0.8],
                        help="widths of the 90%% interval of log N_opt(C*) (nats); the run stops at the smallest")
    parser.add_argument("--replay-width-factor", type=float, default=1.5,
                        help="replay tolerance = factor x the full-data fit's 90%% width")
    parser.add_argument("--replay-fraction", type=float, default=0.1,
                        help="replay: share of the dataset's FLOPs each strategy may spend")
    parser.add_argument("--sigma", type=float, default=0.01, help="simulated noise on log-loss")
    parser.add_argument("--q", type=int, default=4, help="runs per batch (refit after each batch)")
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--draws", type=int, default=300, help="NUTS warmup and draws per chain (2 chains)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_design.json"))
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--replay-add", nargs="+", default=None, choices=sorted(STRATEGIES),
                        help="run these strategies on the seeds of the replay already in --out and add them")
    parser.add_argument("--replay-subsets", action="store_true",
                        help="fit the cheapest runs making up 10%%, 30%%, 100%% of the dataset's FLOPs; add to --out")
    parser.add_argument("--misfit-reference", action="store_true",
                        help="full-data fits under the misfit-aware models, and the misfit strategies' runs refitted "
                             "under their own model and scored against them; add to --out")
    parser.add_argument("--misfit-rescore", action="store_true",
                        help="refit planner-auto's recorded runs (from --misfit-reference) under the full-data auto term")
    parser.add_argument("--misfit-controls", action="store_true",
                        help="add planner and random, their runs refitted under the fixed-prior misfit model")
    parser.add_argument("--misfit-sensitivity", action="store_true",
                        help="the kappa model with u_ref at the largest affordable run: refit the recorded run sets")
    parser.add_argument("--misfit-seeds", type=int, default=10, help="seeds for --misfit-reference")
    parser.add_argument("--docs-only", action="store_true", help="rewrite the docs section from --out and exit")
    parser.add_argument("--timing-only", action="store_true", help="measure ask / refit speed, add to --out's replay")
    args = parser.parse_args(argv)
    if args.docs_only:  # recompute the summaries from the per-seed records, then write the section
        results = json.loads(Path(args.out).read_text())
        if "simulation" in results:
            results["simulation"]["summary"] = summarise(results["simulation"]["per_seed"], args.tolerances,
                                                         ("isoflop", *ADAPTIVE))
        if "replay" in results and "tolerance" in results["replay"]:
            per_seed = results["replay"]["per_seed"]
            results["replay"]["summary"] = summarise(per_seed, [results["replay"]["tolerance"]], strategy_names(per_seed))
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
        write_docs(results)
        return
    if args.timing_only:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        _write(args, {"replay": {**results["replay"], "timing": timing(settings)}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    if args.misfit_rescore:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        mm = rescore_auto(results["replay"]["misfit_model"], settings)
        _write(args, {"replay": {**results["replay"], "misfit_model": mm}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    if args.misfit_sensitivity:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        mm = results["replay"]["misfit_model"]
        mm["u_ref_sensitivity"] = reference_sensitivity(mm, settings, args.replay_fraction)
        _write(args, {"replay": {**results["replay"], "misfit_model": mm}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    if args.misfit_controls:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        mm = misfit_reference(args, settings, results["replay"], add=MISFIT_CONTROLS)
        _write(args, {"replay": {**results["replay"], "misfit_model": mm}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    if args.misfit_reference:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        _write(args, {"replay": {**results["replay"], "misfit_model": misfit_reference(args, settings, results["replay"])}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    if args.replay_subsets:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        _write(args, {"replay": {**results["replay"], "cheapest_first": cheapest_first(args, settings),
                                 "scale_windows": scale_windows(args, settings)}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    if args.replay_add:
        results = json.loads(Path(args.out).read_text())
        settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
        replayed = replay(args, settings, previous=results["replay"])
        _write(args, {"replay": {**results["replay"], **replayed}})
        write_docs(json.loads(Path(args.out).read_text()))
        return
    settings = {"num_chains": 2, "num_warmup": args.draws, "num_draws": args.draws}
    start = time.perf_counter()
    result = {"simulation": simulation(args, settings)} if args.seeds > 0 else {}
    if not args.no_replay and args.replay_seeds > 0:
        result["replay"] = replay(args, settings)
        result["replay"]["timing"] = timing(settings)
    for part in result.values():
        part["seconds"] = time.perf_counter() - start
    _write(args, result)
    write_docs(json.loads(Path(args.out).read_text()))
    print(json.dumps({k: v["summary"] for k, v in result.items() if isinstance(v, dict)}, indent=1, default=float))


if __name__ == "__main__":
    main()
