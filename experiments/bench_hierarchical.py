"""Cost of the hierarchical fit against a pooled fit of the same runs, side by side in one run, and
of this tree's pooled fit against an older revision's.

On the bundled Marin data (239 runs in three groups, ``load_marin().for_fit()``), at defaults
(hierarchical: 4 chains x (500 + 500), target acceptance 0.9, partial pooling, budget offsets;
pooled: ``fit_nuts``'s extrapolating default, 4 chains x (500 + 1000)):

* CLI, empty compile cache: ``bayes-scaling fit marin`` and ``bayes-scaling fit marin --group-by
  group``, each in a fresh process with its own empty ``BAYES_SCALING_CACHE``;
* in-process refit: in one process, a pooled fit then a refit (another seed), and hierarchical fits
  at seeds 0..SEEDS-1 (the first traces and compiles, the rest are refits); each hierarchical
  fit's divergences, max R-hat, min bulk ESS (over every sampled coordinate) and leapfrog steps;
* interleaved (``--interleaved K``): in one process, a pooled fit then a hierarchical fit at each
  seed 0..K-1, so that each pair sees the same machine load; each fit's seconds, its mean leapfrog
  steps per draw (a cost the load does not change) and the 1-minute load average; the ratios of the
  refits (seeds >= 1). ``--interleaved-only`` runs just this part and adds it to the results file;
* ``--also '{"mean_deviations": false}'``: after the defaults' in-process fits, the same seeds with
  these ``fit_hierarchical`` options in the same cache (a first fit that compiles, then refits),
  with their ratio to the pooled refit (an option the CLI has no flag for);
* old against new (``--old DIR``, a checkout of an older revision, e.g. ``git worktree add
  /tmp/old 969a144``): the pooled CLI call (cold, then with a warm cache) and the in-process pooled
  fit and refit, old and new interleaved call by call so both see the same machine load.

Writes experiments/results/bench_hierarchical.json. Usage:
    nice -n 10 .venv/bin/python experiments/bench_hierarchical.py [--old /tmp/old] [--seeds 5] [--interleaved 4]
    nice -n 10 .venv/bin/python experiments/bench_hierarchical.py --interleaved-only --interleaved 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_hierarchical.json"

IN_PROCESS_POOLED = """
import json, time, warnings
warnings.simplefilter("ignore")
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs import load_marin
runs = load_marin().for_fit()
out = {}
for label, seed in (("first", 0), ("refit", 1)):
    t = time.perf_counter(); fit_nuts(runs, seed=seed); out[label] = time.perf_counter() - t
print(json.dumps(out))
"""

IN_PROCESS_HIERARCHICAL = """
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.runs import load_marin
runs = load_marin().for_fit()
options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
out = []
for seed in range(int(sys.argv[1])):
    t = time.perf_counter(); fit = fit_hierarchical(runs, seed=seed, **options)
    out.append({"seed": seed, "seconds": time.perf_counter() - t, **fit.diagnostics, "load": os.getloadavg()[0]})
    print(json.dumps(out[-1]), file=sys.stderr, flush=True)
print(json.dumps(out))
"""


INTERLEAVED = """
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.runs import load_marin
runs = load_marin().for_fit()
out = []
for seed in range(int(sys.argv[1])):
    row = {"seed": seed}
    t = time.perf_counter(); post = fit_nuts(runs, seed=seed); row["pooled_s"] = time.perf_counter() - t
    row["pooled_steps"] = float(np.asarray(post.idata["sample_stats"]["n_steps"]).mean())
    row["load_pooled"] = os.getloadavg()[0]
    t = time.perf_counter(); fit = fit_hierarchical(runs, seed=seed); row["hierarchical_s"] = time.perf_counter() - t
    row["hierarchical_steps"] = fit.diagnostics["mean_steps"]
    row["load_hierarchical"] = os.getloadavg()[0]
    out.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def interleaved(pairs: int, cache: str) -> dict:
    """Pooled and hierarchical fits alternated in one process (see the module docstring)."""
    rows = python_json(INTERLEAVED, cache, ROOT, str(pairs))
    refits = rows[1:]
    ratios = [r["hierarchical_s"] / r["pooled_s"] for r in refits]
    steps = [r["hierarchical_steps"] / r["pooled_steps"] for r in refits]
    return {"fits": rows, "ratio_refit": ratios, "ratio_refit_median": float(sorted(ratios)[len(ratios) // 2]),
            "steps_ratio": steps}


def _env(source: Path, cache: str) -> dict:
    env = {**os.environ, "BAYES_SCALING_CACHE": cache, "PYTHONPATH": str(source)}
    env.pop("BAYES_SCALING_NO_COMPILE_CACHE", None)
    return env


def cli_seconds(args: list[str], cache: str, source: Path = ROOT) -> float:
    """One ``bayes-scaling ARGS --out TMP`` in a fresh process importing the package from ``source``."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "bayes_scaling", *args, "--out", str(Path(out) / "fit")],
                                env=_env(source, cache), capture_output=True, text=True, cwd=tempfile.gettempdir())
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{args} from {source} failed: {result.stderr[-2000:]}")
    return seconds


def python_json(code: str, cache: str, source: Path = ROOT, *argv: str):
    result = subprocess.run([sys.executable, "-c", code, *argv], env=_env(source, cache), capture_output=True,
                            text=True, cwd=tempfile.gettempdir())
    if result.returncode != 0:
        raise RuntimeError(f"in-process run from {source} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, default=None, help="checkout of an older revision to compare against")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--interleaved", type=int, default=0, help="pooled/hierarchical pairs at seeds 0..K-1")
    parser.add_argument("--interleaved-only", action="store_true", help="run only the interleaved part")
    parser.add_argument("--also", type=json.loads, default=None, help="fit_hierarchical options (JSON) to add")
    args = parser.parse_args()
    if args.interleaved_only:
        results = json.loads(RESULTS.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            results["interleaved_in_process"] = interleaved(max(args.interleaved, 2), tmp)
        print("interleaved:", results["interleaved_in_process"]["ratio_refit"], flush=True)
        RESULTS.write_text(json.dumps(results, indent=2))
        print(f"wrote {RESULTS}")
        return 0
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared, loaded)",
               "load_at_start": os.getloadavg()[0],
               "data": "load_marin().for_fit(): 239 runs, groups comma/dclm/nemotron", "seeds": args.seeds}
    with tempfile.TemporaryDirectory() as tmp:
        caches = {name: str(Path(tmp) / name) for name in ("pooled", "hier", "inproc", "old", "new")}
        # 1. CLI from an empty cache, side by side
        results["cli_empty_cache_s"] = {
            "pooled": cli_seconds(["fit", "marin"], caches["pooled"]),
            "hierarchical": cli_seconds(["fit", "marin", "--group-by", "group"], caches["hier"]),
        }
        c = results["cli_empty_cache_s"]
        c["ratio"] = c["hierarchical"] / c["pooled"]
        c["load_after"] = os.getloadavg()[0]
        print("CLI, empty cache:", c, flush=True)
        # 2. in-process: pooled fit + refit, then the hierarchical fits (same cache, warmed by neither)
        pooled = python_json(IN_PROCESS_POOLED, caches["inproc"])
        hier = python_json(IN_PROCESS_HIERARCHICAL, caches["inproc"], ROOT, str(args.seeds))
        refits = [h["seconds"] for h in hier[1:]]
        results["in_process_s"] = {"pooled_first": pooled["first"], "pooled_refit": pooled["refit"],
                                   "hierarchical_first": hier[0]["seconds"],
                                   "hierarchical_refit_mean": sum(refits) / max(len(refits), 1),
                                   "ratio_refit": (sum(refits) / max(len(refits), 1)) / pooled["refit"]}
        results["hierarchical_fits"] = hier
        results["targets"] = {
            "cli_ratio_at_most_3": c["ratio"] <= 3, "refit_ratio_at_most_3": results["in_process_s"]["ratio_refit"] <= 3,
            "zero_divergences_all_seeds": all(h["divergences"] == 0 for h in hier),
            "min_bulk_ess_at_least_400": all(h["min_ess"] >= 400 for h in hier),
        }
        print("in-process:", results["in_process_s"], flush=True)
        if args.also is not None:
            other = python_json(IN_PROCESS_HIERARCHICAL, caches["inproc"], ROOT, str(args.seeds), json.dumps(args.also))
            again = [h["seconds"] for h in other[1:]]
            results["also"] = {"options": args.also, "fits": other, "first_s": other[0]["seconds"],
                               "refit_mean_s": sum(again) / max(len(again), 1),
                               "ratio_refit": (sum(again) / max(len(again), 1)) / pooled["refit"]}
            print("also:", {k: v for k, v in results["also"].items() if k != "fits"}, flush=True)
        if args.interleaved:
            results["interleaved_in_process"] = interleaved(args.interleaved, caches["inproc"])
        # 3. old against new, interleaved
        if args.old is not None:
            rows = {"old": {"cli_cold": [], "cli_warm": [], "fit_first": [], "fit_refit": []},
                    "new": {"cli_cold": [], "cli_warm": [], "fit_first": [], "fit_refit": []}}
            for label, source in (("old", args.old), ("new", ROOT)):
                rows[label]["cli_cold"].append(cli_seconds(["fit", "marin"], caches[label], source))
            for _ in range(2):
                for label, source in (("old", args.old), ("new", ROOT)):
                    rows[label]["cli_warm"].append(cli_seconds(["fit", "marin"], caches[label], source))
                    fit = python_json(IN_PROCESS_POOLED, caches[label], source)
                    rows[label]["fit_first"].append(fit["first"])
                    rows[label]["fit_refit"].append(fit["refit"])
            mean = {label: {k: sum(v) / len(v) for k, v in r.items()} for label, r in rows.items()}
            results["old_vs_new_pooled"] = {"old": str(args.old), "runs": rows, "mean": mean,
                                            "ratio_new_over_old": {k: mean["new"][k] / mean["old"][k] for k in mean["new"]}}
            print("old vs new:", results["old_vs_new_pooled"]["ratio_new_over_old"], flush=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
