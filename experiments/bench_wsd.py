"""WSD trunks with cool-down branches against independent cosine runs, on this CPU, real text.

    nice -n 10 python experiments/bench_wsd.py [--sizes 2e4,5e4,1e5] [--max-minutes 25] [--learning-rate 0.01]

The same grid of (N, D) is trained twice by the harness (``python -m training`` children, niced),
on the standard library's source as bytes (context 64, batch 32, float32 compute, as
experiments/cpu_sweep.py; every run warms up for the same 10,240 tokens, so the two schedules differ
only after the warmup):

* cosine: one run per (N, D), cosine to lr/10 at D, at seeds 0, 1, 2 (the repeats measure the
  run-to-run noise: seed sets the initialisation and the batches);
* WSD: per N and seed (0 and 1), one trunk at constant learning rate that keeps a checkpoint where
  each D's cool-down starts (D - 20% of its updates), and one branch per D that resumes that
  checkpoint and cools down (1-sqrt) to lr/10 at D.

Costs are 6 N x tokens trained: a cosine sweep pays sum(D) per N; a WSD sweep pays the trunk (the
longest branch's cool-down start) plus every cool-down (the branches' ``C_own``). Runs go to
experiments/results/bench_wsd.sqlite (runs already stored "ok" are skipped, so a cut run continues);
the summary to experiments/results/bench_wsd.json, with the WSD model fitted to all runs
(``fit_offset``) and the law fitted to each seed-0 sweep (``compare_laws``: N_opt and L_opt at 100x
the largest run, a top-D backtest).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
STORE = RESULTS / "bench_wsd.sqlite"
SUMMARY = RESULTS / "bench_wsd.json"
TOKENS = (2e5, 4e5, 8e5, 1.6e6)  # D, as the CPU sweep
COSINE_SEEDS = (0, 1, 2)
WSD_SEEDS = (0, 1)
COOLDOWN_FRACTION = 0.2
COOLDOWN_SHAPE = "1-sqrt"
BASE_SPEC = {
    "corpus": "stdlib", "context": 64, "batch_size": 32, "compute_dtype": "float32", "eval_points": 4,
    "eval_tokens": 16384, "group": "bench-wsd", "progress": False, "warmup_tokens": 10240,
}
TOKENS_PER_STEP = BASE_SPEC["context"] * BASE_SPEC["batch_size"]


def _tag(n: float, d: float | None, seed: int) -> str:
    return (f"N{n:.0e}" + (f"-D{d:.1e}" if d else "") + f"-s{seed}").replace("+0", "").replace("+", "")


def cooldown_start(d: float) -> int:
    """Tokens at which D's cool-down starts: (S - K) b, S = D // b, K = round(0.2 S) (training.optim)."""
    steps = int(d) // TOKENS_PER_STEP
    return (steps - max(1, round(COOLDOWN_FRACTION * steps))) * TOKENS_PER_STEP


def plan(sizes, seeds_cos=COSINE_SEEDS, seeds_wsd=WSD_SEEDS, checkpoints: Path = Path("."), base: dict | None = None) -> list[dict]:
    """Every spec of the benchmark, in the order it is trained: seed 0 of both sweeps first (the
    comparison), then the noise repeats; within each, cheapest first; a trunk before its branches."""
    BASE_SPEC = base or globals()["BASE_SPEC"]  # noqa: N806
    specs = []
    for seed in sorted(set(seeds_cos) | set(seeds_wsd)):
        for n in sizes:
            if seed in seeds_cos:
                specs += [{**BASE_SPEC, "params": int(n), "tokens": int(d), "seed": seed, "run_id": "cos-" + _tag(n, d, seed)}
                          for d in TOKENS]
            if seed in seeds_wsd:
                trunk_dir = str(checkpoints / ("trunk-" + _tag(n, None, seed)))
                starts = [cooldown_start(d) for d in TOKENS]
                common = {**BASE_SPEC, "params": int(n), "seed": seed, "schedule": "wsd", "cooldown_shape": COOLDOWN_SHAPE}
                specs.append({**common, "tokens": max(starts), "cooldown_fraction": 0.0, "save_at_tokens": starts,
                              "checkpoint_dir": trunk_dir, "run_id": "wsd-trunk-" + _tag(n, None, seed)})
                specs += [{**common, "tokens": int(d), "cooldown_fraction": COOLDOWN_FRACTION, "branch_from": trunk_dir,
                           "branch_at_tokens": start, "run_id": "wsd-" + _tag(n, d, seed)}
                          for d, start in zip(TOKENS, starts)]
    return specs


def summarise(frame) -> dict:
    """Branch vs cosine final losses per (N, D), the seeds' spread, and the two sweeps' FLOPs."""
    ok = frame[frame["status"] == "ok"]
    cos = ok[ok["run_id"].str.startswith("cos-")]
    wsd = ok[ok["run_id"].str.startswith("wsd-") & (ok["role"] == "branch")]
    trunks = ok[ok["role"] == "trunk"]
    rows = []
    for (n, d), group in cos.groupby(["params", "tokens"]):
        losses = dict(zip(group["seed"], group["loss"]))
        branch = wsd[(wsd["params"] == n) & (wsd["tokens"] == d)]
        b_losses = dict(zip(branch["seed"], branch["loss"]))
        row = {"N_target": int(n), "N": int(group["N"].iloc[0]), "D": int(group["D"].iloc[0]),
               "cosine_loss_by_seed": {int(k): float(v) for k, v in losses.items()},
               "branch_loss_by_seed": {int(k): float(v) for k, v in b_losses.items()}}
        if len(losses) >= 2:
            row["cosine_seed_sd"] = statistics.stdev(losses.values())
        same = [s for s in b_losses if s in losses]
        if same:
            row["branch_minus_cosine_same_seed"] = {int(s): float(b_losses[s] - losses[s]) for s in same}
            row["branch_minus_cosine_mean"] = statistics.mean(b_losses[s] - losses[s] for s in same)
        rows.append(row)
    paired = [r for r in rows if "cosine_seed_sd" in r and "branch_minus_cosine_mean" in r]
    summary = {"cells": rows, "n_cells_compared": len(paired)}
    if paired:
        abs_diff = [abs(d) for r in paired for d in r["branch_minus_cosine_same_seed"].values()]
        sds = [r["cosine_seed_sd"] for r in paired]
        summary.update(
            mean_abs_branch_minus_cosine=statistics.mean(abs_diff),
            mean_branch_minus_cosine=statistics.mean(d for r in paired for d in r["branch_minus_cosine_same_seed"].values()),
            mean_cosine_seed_sd=statistics.mean(sds),
            mean_abs_diff_in_seed_sds=statistics.mean(abs(r["branch_minus_cosine_mean"]) / r["cosine_seed_sd"] for r in paired),
            target_within_two_sds=statistics.mean(abs_diff) <= 2 * statistics.mean(sds),
        )
    seed0_cos, seed0_wsd = cos[cos["seed"] == 0], ok[ok["run_id"].str.startswith("wsd-") & (ok["seed"] == 0)]
    sizes_both = sorted(set(seed0_cos["params"]) & set(trunks[trunks["seed"] == 0]["params"]))
    cos_flops = float(seed0_cos[seed0_cos["params"].isin(sizes_both)]["C_own"].sum())
    wsd_flops = float(seed0_wsd[seed0_wsd["params"].isin(sizes_both)]["C_own"].sum())
    summary.update(sizes_with_both_sweeps=[int(s) for s in sizes_both], cosine_sweep_flops_6nd=cos_flops,
                   wsd_sweep_flops_6nd=wsd_flops, wsd_over_cosine_flops=wsd_flops / cos_flops if cos_flops else None,
                   cosine_sweep_wall_s=float(seed0_cos[seed0_cos["params"].isin(sizes_both)]["wall_time"].sum()),
                   wsd_sweep_wall_s=float(seed0_wsd[seed0_wsd["params"].isin(sizes_both)]["wall_time"].sum()))
    return summary


def fit_offset(frame) -> dict:
    """``bayes_scaling.wsd.fit_wsd`` (Chinchilla law, Student-t) on every cosine run and branch: the
    WSD-vs-cosine offset delta on log-loss, the trunks' spread tau and each trunk's effect."""
    from bayes_scaling.fitting.settings import SamplerSettings
    from bayes_scaling.wsd import fit_wsd

    ok = frame[(frame["status"] == "ok") & (frame["role"] != "trunk")]
    fit = fit_wsd(ok[["run_id", "N", "D", "loss", "role", "trunk_id"]].reset_index(drop=True),
                  settings=SamplerSettings(chains=4, warmup=500, draws=500, seed=0))
    q = lambda x: [float(v) for v in np.quantile(x, [0.05, 0.5, 0.95])]  # noqa: E731
    return {"runs": int(len(ok)), "offset_q05_q50_q95": q(fit.offset), "offset_as_loss_ratio_median": float(np.exp(np.median(fit.offset))),
            "trunk_spread_q05_q50_q95": q(fit.trunk_spread), "trunk_effects": fit.trunk_effects().to_dict(orient="records"),
            "sampling_seconds": fit.posterior.meta["sampling_seconds"]}


def offset_residuals(cells: list[dict], offset_median: float) -> dict:
    """Does one offset describe every cell? Per (N, D): the gap on log-loss (mean log branch loss -
    mean log cosine loss over the seeds) less the fitted offset's median; their sd across the cells
    against the sd that seed noise alone gives such a gap (the cell's log seed sd s times
    sqrt(1/branches + 1/cosine runs), root mean square over the cells). A ratio near 1: the offset
    captures the gap up to noise; well above 1: the gap depends on (N, D) beyond one offset."""
    rows = []
    for c in cells:
        cos, br = np.log(list(c["cosine_loss_by_seed"].values())), np.log(list(c["branch_loss_by_seed"].values()))
        if len(cos) < 2 or len(br) < 1:
            continue
        s = float(np.std(cos, ddof=1))
        rows.append({"N": c["N"], "D": c["D"], "log_gap": float(br.mean() - cos.mean()),
                     "residual": float(br.mean() - cos.mean() - offset_median),
                     "noise_sd": s * float(np.sqrt(1 / len(br) + 1 / len(cos)))})
    if len(rows) < 2:
        return {"cells": rows}
    res = [r["residual"] for r in rows]
    noise = float(np.sqrt(np.mean([r["noise_sd"] ** 2 for r in rows])))
    return {"cells": rows, "mean_residual": float(np.mean(res)), "residual_sd": float(np.std(res, ddof=1)),
            "noise_sd_rms": noise, "residual_sd_over_noise": float(np.std(res, ddof=1)) / noise if noise else None}


def compare_laws(frame, horizon: float = 100.0) -> dict:
    """The Chinchilla law fitted (NUTS, plain model) to each seed-0 sweep: N_opt and L_opt at
    ``horizon`` x the largest run's 6ND with 90% intervals, whether the two sweeps' intervals overlap,
    and a backtest: refit without the largest D and score the held-out runs of the same sweep (mean
    |log predicted / observed loss|, prediction = posterior median)."""
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs.table import load_runs

    ok = frame[(frame["status"] == "ok") & (frame["seed"] == 0)]
    sweeps = {"cosine": ok[ok["run_id"].str.startswith("cos-")], "wsd": ok[ok["run_id"].str.startswith("wsd-") & (ok["role"] == "branch")]}
    budget = horizon * float(max(s["C"].max() for s in sweeps.values()))
    out = {"budget": budget}
    for name, sweep in sweeps.items():
        sweep = sweep[["run_id", "N", "D", "loss"]].reset_index(drop=True)
        post = fit_nuts(load_runs(sweep), model="plain", num_chains=4, num_warmup=500, num_draws=500)
        row = post.frontier([budget]).iloc[0]
        top = sweep["D"] == sweep["D"].max()
        held = fit_nuts(load_runs(sweep[~top].reset_index(drop=True)), model="plain", num_chains=4, num_warmup=500, num_draws=500)
        pred = held.predict_summary(sweep[top]["N"].to_numpy(), sweep[top]["D"].to_numpy())["median"].to_numpy()
        out[name] = {"runs": int(len(sweep)), **{k: float(row[k]) for k in ("N_opt_median", "N_opt_lo", "N_opt_hi", "L_opt_median", "L_opt_lo", "L_opt_hi")},
                     "backtest_mean_abs_log_error": float(np.mean(np.abs(np.log(pred / sweep[top]["loss"].to_numpy())))),
                     "backtest_held_out": int(top.sum())}
    c, w = out["cosine"], out["wsd"]
    out["N_opt_intervals_overlap"] = bool(w["N_opt_lo"] <= c["N_opt_hi"] and c["N_opt_lo"] <= w["N_opt_hi"])
    out["L_opt_intervals_overlap"] = bool(w["L_opt_lo"] <= c["L_opt_hi"] and c["L_opt_lo"] <= w["L_opt_hi"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2e4,5e4,1e5", help="target N, comma-separated")
    parser.add_argument("--store", default=str(STORE))
    parser.add_argument("--checkpoints", default=str(Path(tempfile.gettempdir()) / "bench_wsd_trunks"))
    parser.add_argument("--max-minutes", type=float, default=25.0, help="start no new run after this")
    parser.add_argument("--no-fit", action="store_true", help="skip the WSD model fit at the end")
    parser.add_argument("--learning-rate", type=float, default=0.0, help="peak rate of every run (0: the harness's rule)")
    parser.add_argument("--cosine-seeds", default="0,1,2")
    parser.add_argument("--wsd-seeds", default="0,1")
    parser.add_argument("--summary", default=str(SUMMARY))
    args = parser.parse_args(argv)

    import bayes_scaling

    bayes_scaling.configure()  # the WSD fit at the end runs JAX in float64 on host devices
    from bayes_scaling.executors.child import train_in_subprocess
    from bayes_scaling.runs.store import RunStore

    store = RunStore(args.store)
    done = set(store.to_frame(status="ok", trunks=True)["run_id"]) if len(store) else set()
    sizes = [float(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    base = {**BASE_SPEC, "learning_rate": args.learning_rate}
    seeds_cos, seeds_wsd = ([int(x) for x in text.split(",") if x] for text in (args.cosine_seeds, args.wsd_seeds))
    for spec in plan(sizes, seeds_cos, seeds_wsd, checkpoints=Path(args.checkpoints), base=base):
        if spec["run_id"] in done:
            continue
        minutes = (time.perf_counter() - t0) / 60
        if minutes > args.max_minutes:
            print(f"stopping after {minutes:.1f} min; rerun to continue", flush=True)
            break
        result = train_in_subprocess(spec, quiet=True, nice=10)
        result["params"], result["tokens"] = spec["params"], spec["tokens"]
        if result.get("N"):  # a refused spec has no result to store
            store.append(result, source="bench_wsd")
        print(f"{spec['run_id']}: {result['status']} N={result.get('N')} D={result.get('D')} loss={result.get('loss')} "
              f"own C={result.get('C_own', 0):.3g} wall={result.get('wall_time', 0):.1f}s "
              f"[{(time.perf_counter() - t0) / 60:.1f} min] {result.get('error', '')}", flush=True)
    frame = store.to_frame(status=None, trunks=True)
    summary = summarise(frame)
    summary["machine"] = {"cpu": "2-core AMD EPYC (shared, loaded)", "cpu_count": os.cpu_count(),
                          "load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0]}
    summary["settings"] = {"sizes": sizes, "tokens": TOKENS, "cosine_seeds": seeds_cos, "wsd_seeds": seeds_wsd,
                           "cooldown_fraction": COOLDOWN_FRACTION, "cooldown_shape": COOLDOWN_SHAPE, "base_spec": base}
    if not args.no_fit and summary.get("n_cells_compared"):
        summary["wsd_model_fit"] = fit_offset(frame)
        summary["offset_residuals"] = offset_residuals(summary["cells"], summary["wsd_model_fit"]["offset_q05_q50_q95"][1])
        summary["laws_by_sweep"] = compare_laws(frame)
    summary["wall_minutes_this_invocation"] = (time.perf_counter() - t0) / 60
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    Path(args.summary).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "cells"}, indent=1))
    with sqlite3.connect(args.store) as db:  # fold the WAL into the main file before committing it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
