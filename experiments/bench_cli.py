"""Wall time of the ``bayes-scaling fit`` command line, cold and repeated, and of in-process refits.

* first CLI call: a fresh JAX compilation cache (nothing compiled yet on this machine);
* repeated CLI call: the same command again, served by JAX's persistent compilation cache;
* in-process refit: ``fit_nuts`` called again in one process (the compiled sampler is reused).

All on the bundled Chinchilla data (240 runs), 4 chains x 1000 draws, 500 warmup. Writes
experiments/results/bench_cli.json. Usage: .venv/bin/python experiments/bench_cli.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "bench_cli.json"
REPEATS = 3


def cli_seconds(cache: str, out: str) -> float:
    env = {**os.environ, "BAYES_SCALING_CACHE": cache}
    cmd = [sys.executable, "-m", "bayes_scaling", "fit", "chinchilla", "--out", out]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def in_process_seconds() -> tuple[float, list[float]]:
    import arviz as az

    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import load_chinchilla

    runs = load_chinchilla().for_fit()
    start = time.perf_counter()
    fit_nuts(runs, seed=0)
    first = time.perf_counter() - start
    refits = []
    for seed in range(1, REPEATS + 1):
        start = time.perf_counter()
        post = fit_nuts(runs, seed=seed)
        refits.append(time.perf_counter() - start)
    ess = az.ess(post.idata, var_names=["E", "A", "B", "alpha", "beta", "sigma"])
    return first, refits, min(float(ess[v]) for v in ess.data_vars)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = f"{tmp}/cache", f"{tmp}/fit"
        cold = cli_seconds(cache, out)
        warm = [cli_seconds(cache, out) for _ in range(REPEATS)]
    first, refits, min_ess = in_process_seconds()
    result = {
        "machine": f"{os.cpu_count()} cores, {cpu_name()}",
        "date": time.strftime("%Y-%m-%d"),
        "cli_first_call_s": cold,
        "cli_repeated_call_s": warm,
        "in_process_first_fit_s": first,
        "in_process_refit_s": refits,
        "min_bulk_ess_last_refit": min_ess,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
