"""Wall time of the ``bayes-scaling fit`` command line, cold and repeated, and of in-process refits.

* first CLI call: a fresh JAX compilation cache (nothing compiled yet on this machine);
* repeated CLI call: the same command again, served by JAX's persistent compilation cache;
* in-process refit: ``fit_nuts`` called again in one process (the compiled sampler is reused);
* the same model through NumPyro's stock ``MCMC`` with its default (regularised) dense mass
  adaptation, to show what the unregularised adaptation and the cached driver buy.

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

import numpy as np

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
    steps = float(post.idata["sample_stats"]["n_steps"].mean())
    return first, refits, min(float(ess[v]) for v in ess.data_vars), steps, stock_numpyro(runs)


def stock_numpyro(runs) -> dict:
    """NumPyro's MCMC + NUTS(dense_mass=True) at its defaults on the same model, same start."""
    from functools import partial

    import arviz as az
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    from bayes_scaling.fitting.init import initial_theta
    from bayes_scaling.fitting.nuts import jittered_init
    from bayes_scaling.laws import Chinchilla
    from bayes_scaling.models import ModelSpec, data_centre, pooled_model
    from bayes_scaling.priors import resolve_priors

    law = Chinchilla()
    spec = ModelSpec(law=law, priors=resolve_priors(law))
    N, D = jnp.asarray(runs.N), jnp.asarray(runs.D)
    centre = tuple(float(c) for c in data_centre(N, D))
    args = (N, D, jnp.asarray(centre), jnp.log(jnp.asarray(runs.loss)))
    mcmc = MCMC(NUTS(partial(pooled_model, spec), dense_mass=True), num_warmup=500, num_samples=1000,
                num_chains=4, chain_method="parallel", progress_bar=False)
    times = []
    for seed in range(2):  # the first call compiles
        init = jittered_init(law, initial_theta(law, runs), centre, runs, 4, seed)
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed), *args, init_params=init, extra_fields=("num_steps",))
        times.append(time.perf_counter() - start)
    samples = mcmc.get_samples(group_by_chain=True)
    ess = min(float(az.ess(np.asarray(samples[k]))) for k in ("E", "A", "B", "alpha", "beta", "sigma"))
    return {"second_call_s": times[1], "mean_leapfrog_steps": float(mcmc.get_extra_fields()["num_steps"].mean()),
            "min_bulk_ess": ess}


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
    first, refits, min_ess, steps, stock = in_process_seconds()
    result = {
        "machine": f"{os.cpu_count()} cores, {cpu_name()}",
        "date": time.strftime("%Y-%m-%d"),
        "cli_first_call_s": cold,
        "cli_repeated_call_s": warm,
        "in_process_first_fit_s": first,
        "in_process_refit_s": refits,
        "min_bulk_ess_last_refit": min_ess,
        "mean_leapfrog_steps_last_refit": steps,
        "stock_numpyro_mcmc_default_dense": stock,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
