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

Long schedules on a GPU (issue 18; ``experiments/gpu_wsd_session.sh`` runs it in one device call):

    python experiments/bench_wsd.py --long --workers 8 --max-minutes 7.5 --kill-minutes 8 --no-fit

``--long`` trains the same recipe (stdlib bytes, context 64, batch 32: 2,048 tokens per update,
float32, 10,240 warmup tokens, 20% 1-sqrt cool-downs to lr/10) at peak 1e-2 (both schedules'
tuned peak, wsd_lr_sweep) over D = 6.4M / 12.8M / 25.6M / 51.2M tokens = 3,125 / 6,250 / 12,500 /
25,000 updates: the lengths at which experiments/wsd_gap.py found the gap closed at N = 2e4 (-0.011
nats at 3,125 updates, -0.001 at 12,500, within 2 sd from 3,125 on). Batch and context stay those
of wsd_gap and the CPU grid, so the run lengths are the same updates and tokens as there. Sizes
2e4, 5e4, 1e5 (the CPU grid's), cosine at seeds 0-2, WSD trunks (to 40.96M tokens) at seeds 0-1.
Store and summary: experiments/results/bench_wsd_gpu.sqlite / .json. Each D costs 3,125 x 2^k
updates: 47k updates per size and seed for the cosine sweep, 29k for a trunk and its branches, 600k
in all.

``--workers K`` trains K ``python -m training`` children at once (tiny models are launch-overhead
bound on a GPU; each child may take 0.9/K of the GPU's memory, allocated as needed, not XLA's
default 75% up front). Jobs start in priority order, the first whose trunk (if a branch) has
finished: 1. seed 0 of both sweeps at every size (the comparison), 2. cosine seeds 1 and 2 (the
seed sd), 3. the WSD seed-1 trunks and branches; within each, trunks first, then the longest
first. Every finished run is appended to the store at once (a cut invocation keeps what
finished; rerunning continues). ``--max-minutes``: no run starts after it; ``--kill-minutes``: the
runs still going are killed then (lost), and once a few runs have finished no run starts that its
predicted length (from the finished runs' updates/s and start-up) would carry past it.
``--summary-only`` trains nothing: it summarises the store and fits (arviz needed), e.g. here
after the device run: ``python experiments/bench_wsd.py --long --summary-only``.
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
LONG_TOKENS = (6.4e6, 1.28e7, 2.56e7, 5.12e7)  # 3,125 / 6,250 / 12,500 / 25,000 updates (--long)
LONG_PEAK = 1e-2  # wsd_lr_sweep: both schedules' tuned peak at N = 2e4; wsd_gap's long runs
TINY_TOKENS = (40960, 81920, 163840)  # --tiny: 20 / 40 / 80 updates (3 D: the backtest refits on 2), a smoke test
STORE_GPU = RESULTS / "bench_wsd_gpu.sqlite"
SUMMARY_GPU = RESULTS / "bench_wsd_gpu.json"
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


def plan(sizes, seeds_cos=COSINE_SEEDS, seeds_wsd=WSD_SEEDS, checkpoints: Path = Path("."), base: dict | None = None,
         tokens=TOKENS) -> list[dict]:
    """Every spec of the benchmark, in the order it is trained: seed 0 of both sweeps first (the
    comparison), then the noise repeats; within each, cheapest first; a trunk before its branches."""
    BASE_SPEC = base or globals()["BASE_SPEC"]  # noqa: N806
    TOKENS = tokens  # noqa: N806
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


def updates(spec: dict) -> int:
    """Optimizer updates a spec trains: a branch only its cool-down (it resumes the trunk)."""
    return (int(spec["tokens"]) - int(spec.get("branch_at_tokens", 0))) // (spec["context"] * spec["batch_size"])


def priority(spec: dict) -> tuple:
    """Sort key of ``--long``: 1. seed 0 of both sweeps (the comparison, the FLOPs, the laws), 2. cosine
    seeds 1 and 2 (the seed sd that the agreement target is measured in), 3. WSD seed 1 (a second
    trunk per size), then any other seed; within each, trunks first, then the longest first."""
    cosine, seed = spec["run_id"].startswith("cos-"), spec["seed"]
    tier = 0 if seed == 0 else {(True, 1): 1, (True, 2): 2, (False, 1): 3}.get((cosine, seed), 3 + seed)
    return tier, "save_at_tokens" not in spec, -updates(spec)


class Pool:
    """Up to ``workers`` ``python -m training`` children at once, started in the given order as each
    becomes ready (a branch once its trunk has finished "ok"), each finished run appended to the store
    at once. ``max_s``: no start after it; ``kill_s``: the runs still going are killed then."""

    def __init__(self, store, store_path: str, *, workers: int, nice: int, memory_fraction: float | None,
                 max_s: float, kill_s: float | None, t0: float):
        from bayes_scaling.executors.child import child_environment

        self.store, self.store_path, self.workers, self.nice = store, store_path, workers, nice
        self.env = child_environment(memory_fraction)
        self.max_s, self.kill_s, self.t0 = max_s, kill_s, t0
        self.running: dict = {}  # run_id -> (proc, spec, tmpdir, start)
        self.finished: list[dict] = []  # this invocation's ok runs: updates, seconds, tokens/s
        self.ok: set[str] = set()
        self.failed: set[str] = set()
        self.killed: list[str] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def predicted_s(self, spec: dict) -> float | None:
        """Seconds the spec should take from its start, from the finished runs (at least 2): the
        median updates/s while training (the result's tokens/s) and the median start-up and
        evaluation time around it (the child's seconds less its updates at its own rate), x1.1."""
        if len(self.finished) < 2:
            return None
        rate = statistics.median(r["updates_per_s"] for r in self.finished)
        overhead = statistics.median(r["seconds"] - r["updates"] / r["updates_per_s"] for r in self.finished)
        return 1.1 * (max(overhead, 0.0) + updates(spec) / rate)

    def start(self, spec: dict) -> None:
        from bayes_scaling.executors.child import launch

        tmp = tempfile.TemporaryDirectory(prefix="bench-wsd-")
        proc = launch(spec, Path(tmp.name), self.env, nice=self.nice)
        self.running[spec["run_id"]] = (proc, spec, tmp, time.perf_counter())

    def reap(self) -> None:
        from bayes_scaling.executors.child import result_of, stderr_tail

        for run_id, (proc, spec, tmp, start) in list(self.running.items()):
            if proc.poll() is None:
                continue
            del self.running[run_id]
            seconds = time.perf_counter() - start
            try:
                result = result_of(Path(tmp.name), proc.returncode, stderr_tail(Path(tmp.name)))
            except (RuntimeError, ValueError) as err:  # ChildDied, SpecRejected (an InputError)
                result = {"run_id": run_id, "status": "failed", "error": str(err).splitlines()[0]}
            tmp.cleanup()
            result["params"], result["tokens"] = spec["params"], spec["tokens"]
            if result.get("N"):  # a refused spec or a dead child has no result to store
                self.store.append(result, source="bench_wsd")
                with sqlite3.connect(self.store_path) as db:  # on disk in the main file now: a cut run keeps it
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if result["status"] == "ok":
                self.ok.add(run_id)
                if result.get("tokens_per_s"):
                    self.finished.append({"updates": updates(spec), "seconds": seconds,
                                          "updates_per_s": result["tokens_per_s"] / (spec["context"] * spec["batch_size"])})
            else:
                self.failed.add(run_id)
            print(f"{run_id}: {result['status']} N={result.get('N')} D={result.get('D')} loss={result.get('loss')} "
                  f"own C={result.get('C_own', 0):.3g} wall={result.get('wall_time', 0):.1f}s child={seconds:.1f}s "
                  f"tokens/s={result.get('tokens_per_s') or 0:.0f} [{self.elapsed() / 60:.2f} min, {len(self.running)} running] "
                  f"{result.get('error', '')}", flush=True)

    def kill_all(self) -> None:
        for run_id, (proc, _spec, tmp, _start) in list(self.running.items()):
            proc.kill()
            proc.wait()
            tmp.cleanup()
            self.killed.append(run_id)
            print(f"{run_id}: killed at the --kill-minutes deadline [{self.elapsed() / 60:.2f} min]", flush=True)
        self.running.clear()

    def run(self, jobs: list[dict], trunk_of: dict[str, str]) -> None:
        """Train ``jobs`` (in priority order); ``trunk_of`` maps a branch's run_id to its trunk's."""
        pending = list(jobs)
        while pending or self.running:
            self.reap()
            if self.kill_s is not None and self.elapsed() >= self.kill_s:
                self.kill_all()
                break
            for spec in [s for s in pending if trunk_of.get(s["run_id"]) in self.failed]:
                pending.remove(spec)
                print(f"{spec['run_id']}: skipped, its trunk {trunk_of[spec['run_id']]} failed", flush=True)
            while pending and len(self.running) < self.workers and self.elapsed() < self.max_s:
                ready = [s for s in pending if trunk_of.get(s["run_id"], "") in self.ok | {""}
                         and s["run_id"] not in self.running]
                fits = [s for s in ready if self.kill_s is None or (self.predicted_s(s) or 0.0) <= self.kill_s - self.elapsed()]
                if not fits:
                    break
                pending.remove(fits[0])
                self.start(fits[0])
            if not self.running:  # nothing started and nothing to wait for: no change can come
                break
            time.sleep(0.2)
        if pending:
            print(f"{len(pending)} runs not started (deadline); rerun to continue", flush=True)


def jobs_to_run(specs: list[dict], done: set[str]) -> tuple[list[dict], dict[str, str]]:
    """The specs still to train, and each branch's trunk run_id: a trunk stored "ok" is retrained
    only if a branch of it is still to run and its checkpoints are gone (another machine's /tmp)."""
    trunk_ids = {s["checkpoint_dir"]: s["run_id"] for s in specs if "save_at_tokens" in s}
    trunk_of = {s["run_id"]: trunk_ids[s["branch_from"]] for s in specs if "branch_from" in s}
    needed = {trunk_of[s["run_id"]] for s in specs if s["run_id"] in trunk_of and s["run_id"] not in done}
    todo = [s for s in specs if s["run_id"] not in done  # in the given (priority) order
            or (s["run_id"] in needed and not Path(s["checkpoint_dir"]).is_dir())]
    ok_trunks = {t for t in trunk_ids.values() if t in done} - {s["run_id"] for s in todo}
    return todo, {b: ("" if t in ok_trunks else t) for b, t in trunk_of.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=None, help="target N, comma-separated (default 2e4,5e4,1e5; --tiny 1e4,2e4,4e4)")
    parser.add_argument("--long", action="store_true", help="the long grid: D 6.4M-51.2M (3,125-25,000 updates), peak 1e-2, "
                        "priority order, store and summary bench_wsd_gpu.*")
    parser.add_argument("--tiny", action="store_true", help="a smoke test of the pipeline: D of 20, 40, 80 updates, sizes 1e4,2e4,4e4")
    parser.add_argument("--tokens", default=None, help="D values, comma-separated (overrides the grid's)")
    parser.add_argument("--store", default=None, help="default experiments/results/bench_wsd.sqlite (--long: bench_wsd_gpu.sqlite)")
    parser.add_argument("--checkpoints", default=str(Path(tempfile.gettempdir()) / "bench_wsd_trunks"))
    parser.add_argument("--max-minutes", type=float, default=25.0, help="start no new run after this")
    parser.add_argument("--kill-minutes", type=float, default=None, help="kill the runs still going at this time")
    parser.add_argument("--workers", type=int, default=1, help="training children at once")
    parser.add_argument("--memory-fraction", type=float, default=None, help="GPU memory per child (default 0.9/workers when workers > 1)")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the children (0 on a machine of one's own)")
    parser.add_argument("--no-fit", action="store_true", help="skip the fits at the end (a machine without arviz)")
    parser.add_argument("--summary-only", action="store_true", help="train nothing: summarise the store (and fit)")
    parser.add_argument("--learning-rate", type=float, default=None, help="peak rate of every run (0: the harness's rule; --long: 1e-2)")
    parser.add_argument("--cosine-seeds", default="0,1,2")
    parser.add_argument("--wsd-seeds", default="0,1")
    parser.add_argument("--summary", default=None, help="default experiments/results/bench_wsd.json (--long: bench_wsd_gpu.json)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    from bayes_scaling.runs.store import RunStore

    store_path = args.store or str(STORE_GPU if args.long else STORE)
    summary_path = args.summary or str(SUMMARY_GPU if args.long else SUMMARY)
    tokens = (tuple(float(t) for t in args.tokens.split(",")) if args.tokens
              else TINY_TOKENS if args.tiny else LONG_TOKENS if args.long else TOKENS)
    sizes = [float(s) for s in (args.sizes or ("1e4,2e4,4e4" if args.tiny else "2e4,5e4,1e5")).split(",")]
    learning_rate = args.learning_rate if args.learning_rate is not None else (LONG_PEAK if args.long else 0.0)
    store = RunStore(store_path)
    done = set(store.to_frame(status="ok", trunks=True)["run_id"]) if len(store) else set()
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    base = {**BASE_SPEC, "learning_rate": learning_rate}
    seeds_cos, seeds_wsd = ([int(x) for x in text.split(",") if x] for text in (args.cosine_seeds, args.wsd_seeds))
    specs = plan(sizes, seeds_cos, seeds_wsd, checkpoints=Path(args.checkpoints), base=base, tokens=tokens)
    if args.long or args.workers > 1:
        specs.sort(key=priority)
    pool = None
    if not args.summary_only:
        todo, trunk_of = jobs_to_run(specs, done)
        fraction = args.memory_fraction or (0.9 / args.workers if args.workers > 1 else None)
        pool = Pool(store, store_path, workers=args.workers, nice=args.nice, memory_fraction=fraction,
                    max_s=60 * args.max_minutes, kill_s=None if args.kill_minutes is None else 60 * args.kill_minutes, t0=t0)
        print(f"{len(todo)} runs to train ({sum(updates(s) for s in todo):,} updates), {args.workers} at once", flush=True)
        pool.run(todo, trunk_of)
    train_s = time.perf_counter() - t0
    frame = store.to_frame(status=None, trunks=True)
    summary = summarise(frame) if len(frame) else {"cells": [], "n_cells_compared": 0, "note": "no run stored"}
    devices = sorted(set(frame["device"].dropna())) if "device" in frame else []
    summary["machine"] = {"devices_of_runs": devices, "cpu_count": os.cpu_count(),
                          "load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0]}
    if not any(d.startswith("gpu") for d in devices):
        summary["machine"]["cpu"] = "2-core AMD EPYC (shared, loaded)" if os.cpu_count() == 2 else "?"
    summary["settings"] = {"sizes": sizes, "tokens": tokens, "cosine_seeds": seeds_cos, "wsd_seeds": seeds_wsd,
                           "cooldown_fraction": COOLDOWN_FRACTION, "cooldown_shape": COOLDOWN_SHAPE, "base_spec": base,
                           "long": args.long, "workers": args.workers}
    if pool is not None:
        trained = [s for s in specs if s["run_id"] in pool.ok]
        summary["this_invocation"] = {
            "runs_ok": len(pool.ok), "runs_failed": sorted(pool.failed), "runs_killed": pool.killed,
            "updates_ok": sum(updates(s) for s in trained), "train_seconds": train_s,
            "updates_per_s_all_children": sum(updates(s) for s in trained) / train_s if train_s else None,
            "updates_per_s_per_child_median": statistics.median(r["updates_per_s"] for r in pool.finished) if pool.finished else None,
            "child_seconds_median": statistics.median(r["seconds"] for r in pool.finished) if pool.finished else None}
    if args.summary_only and Path(summary_path).exists():  # keep what the training invocation measured
        before = json.loads(Path(summary_path).read_text())
        for key in ("this_invocation", "machine", "settings"):
            if key in before:
                summary["training_" + key] = before.get("training_" + key, before[key])
    if not args.no_fit and summary.get("n_cells_compared"):
        import bayes_scaling

        bayes_scaling.configure()  # the fits run JAX in float64 on host devices (after the children)
        try:  # a cut grid may leave too few runs for a fit: say so in the summary, keep the rest
            summary["wsd_model_fit"] = fit_offset(frame)
            summary["offset_residuals"] = offset_residuals(summary["cells"], summary["wsd_model_fit"]["offset_q05_q50_q95"][1])
        except Exception as err:  # noqa: BLE001
            summary["wsd_model_fit"] = {"error": f"{type(err).__name__}: {err}"}
        try:
            summary["laws_by_sweep"] = compare_laws(frame)
        except Exception as err:  # noqa: BLE001
            summary["laws_by_sweep"] = {"error": f"{type(err).__name__}: {err}"}
    summary["wall_minutes_this_invocation"] = (time.perf_counter() - t0) / 60
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    Path(summary_path).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "cells"}, indent=1))
    with sqlite3.connect(store_path) as db:  # fold the WAL into the main file before committing it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
