"""The planner's WSD sweep against its cosine loop, on a simulated truth with a WSD offset and trunk effects.

    nice -n 10 python experiments/wsd_planner_sim.py [--seeds 0,1] [--max-runs 20]

Truth: Epoch AI's Chinchilla fit (``laws.EPOCH_2024``) plus Normal(0, 0.01) noise on log-loss; a
WSD branch adds delta = -0.05 (about bench_wsd.json's fitted offset, -0.052) and its trunk's effect
u_t ~ Normal(0, 0.01), drawn once per trunk. For each seed the same experiment is planned twice by
``design.loop.run_loop`` (inline executor, EIG per FLOP about log N_opt at C* = 5.76e23, n_init 6,
2 chains x 150 draws per refit) three times: cosine runs (the default planner) for ``--max-runs``
results, then a WSD sweep (``wsd_cooldown=0.2``: branches priced at cool-down + the trunk tokens
still to train, scored with the offset and trunk effects, refits ``fit_wsd``) for the same number
of results ("wsd_same_runs") and one with the cosine loop's FLOPs as its experiment budget and up to
3x the results ("wsd_same_flops"), and that again with the trunk spread's prior scale at the
truth's 0.01 instead of 0.05 ("wsd_tight_same_flops", ``Planner.create(trunk_scale=0.01)``), and
with the cosine loop's FLOPs and 2 or 3 trunks per size ("wsd2_same_flops", "wsd3_same_flops":
the planner's ``trunks_per_size=k``, ``branches.sweep_branches``: each trunk its own effect u_t, so
a size's losses are not all shifted by one draw; recorded with a Planner subclass that passed k to
``sweep_branches`` before the setting existed). Summary (runs done, FLOPs spent, trunks opened, the
90% interval of N_opt(C*) and whether it holds the truth) to experiments/results/wsd_planner_sim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = RESULTS / "wsd_planner_sim.json"
TARGET = 5.76e23
BUDGET = 2e21
GRID = {"n_range": (1e7, 1e10), "d_range": (1e8, 1e11), "n_points": 10, "d_points": 10, "max_cost": 3e21}
OFFSET, TRUNK_SD, NOISE = -0.05, 0.01, 0.01


def truth_job(seed: int):
    """The executor's job: log L = the truth's + noise (+ delta + u_t for a branch of trunk t)."""
    from bayes_scaling.laws import EPOCH_2024, get_law

    law = get_law("chinchilla")
    theta = {k: np.float64(v) for k, v in EPOCH_2024.items()}
    rng = np.random.default_rng(seed)

    def job(spec, memory_fraction=None):
        N, D = float(spec["N"]), float(spec["D"])
        log_loss = float(np.log(law.loss(theta, np.float64(N), np.float64(D)))) + NOISE * rng.standard_normal()
        if spec["trunk"]:
            u = TRUNK_SD * np.random.default_rng([seed, zlib.crc32(spec["trunk"].encode())]).standard_normal()
            log_loss += OFFSET + u
        return {"run_id": spec["run_id"], "status": "ok", "loss": float(np.exp(log_loss)), "N": N, "D": D,
                "C": 6 * N * D}

    return job


MODES = ("cosine", "wsd_same_runs", "wsd_same_flops", "wsd_tight_same_flops", "wsd2_same_flops", "wsd3_same_flops")


def one(mode: str, seed: int, max_runs: int, folder: Path, budget: float = BUDGET) -> dict:
    from bayes_scaling.wsd import TRUNK_SCALE

    from bayes_scaling.design.candidates import grid
    from bayes_scaling.design.loop import LoopSettings, run_loop
    from bayes_scaling.design.planner import Planner
    from bayes_scaling.executors.inline import InlineExecutor
    from bayes_scaling.laws import EPOCH_2024, get_law

    k = int(mode[3]) if mode[:3] == "wsd" and mode[3].isdigit() else 1
    planner = Planner.create(folder / f"{mode}-s{seed}", grid(**GRID), target_budget=TARGET, experiment_budget=budget,
                             n_init=6, num_chains=2, num_warmup=150, num_draws=150, seed=seed,
                             wsd_cooldown=0.2 if mode.startswith("wsd") else 0.0, trunks_per_size=k, overwrite=True,
                             trunk_scale=TRUNK_SD if "tight" in mode else TRUNK_SCALE)
    t0 = time.perf_counter()
    result = run_loop(planner, InlineExecutor(job=truth_job(seed)),
                      lambda p: {"run_id": p.run_id, "N": p.N, "D": p.D, "trunk": p.trunk_id},
                      LoopSettings(max_runs=max_runs, save_fit=False, quiet=True), notify=lambda line: None)
    law = get_law("chinchilla")
    import jax.numpy as jnp

    n_true, _ = law.optimal_allocation({k: jnp.asarray(v) for k, v in EPOCH_2024.items()}, jnp.asarray(TARGET))
    s = result.status
    if s["log_N_opt"] is None:  # no refit before the planner's n_init runs (Planner.status)
        raise SystemExit(f"--max-runs {max_runs}: the planner stopped before its first refit; give more runs")
    lo, med, hi = (float(np.exp(s["log_N_opt"][k])) for k in ("lo", "median", "hi"))
    return {"mode": mode, "seed": seed, "trunks_per_size": k, "runs": s["runs_done"], "flops_spent": s["flops_spent"],
            "trunks_opened": len(planner.state.get("wsd", {}).get("trunks", {})),
            "N_opt_median": med, "N_opt_lo": lo, "N_opt_hi": hi, "log_N_opt_width": s["log_N_opt"]["width"],
            "N_opt_true": float(n_true), "truth_inside": bool(lo <= float(n_true) <= hi), "stop": s["reason"],
            "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--max-runs", type=int, default=20)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--out", default=str(SUMMARY))
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if "cosine" not in modes or set(modes) - set(MODES):
        p.error(f"--modes: a subset of {MODES} that holds cosine (the others take its FLOPs)")
    import bayes_scaling

    bayes_scaling.configure()
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="wsd-planner-sim-") as tmp:
        for seed in (int(x) for x in args.seeds.split(",")):
            cosine = one("cosine", seed, args.max_runs, Path(tmp))
            print(json.dumps(cosine), flush=True)
            rows.append(cosine)
            for mode in modes[1:] if modes[0] == "cosine" else [m for m in modes if m != "cosine"]:
                same_runs = mode == "wsd_same_runs"
                rows.append(one(mode, seed, args.max_runs if same_runs else 3 * args.max_runs, Path(tmp),
                                budget=BUDGET if same_runs else cosine["flops_spent"]))
                print(json.dumps(rows[-1]), flush=True)
    summary = {"rows": rows, "settings": {"target_budget": TARGET, "experiment_budget": BUDGET, "grid": GRID,
                                          "offset": OFFSET, "trunk_sd": TRUNK_SD, "noise": NOISE,
                                          "max_runs": args.max_runs, "modes": modes},
               "machine": {"cpu": "2-core AMD EPYC (shared, loaded)", "cpu_count": os.cpu_count(),
                           "load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0]},
               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        summary[f"mean_{mode}"] = {k: float(np.mean([r[k] for r in mine])) for k in ("runs", "flops_spent", "log_N_opt_width")}
        summary[f"mean_{mode}"]["truth_inside"] = sum(r["truth_inside"] for r in mine)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
