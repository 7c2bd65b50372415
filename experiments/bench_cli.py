"""Wall time of the ``bayes-scaling fit`` command line, cold and repeated, and of in-process refits.

* first CLI call: an empty cache directory (nothing traced or compiled yet on this machine);
* repeated CLI call: the same command again, served by the caches (``BAYES_SCALING_CACHE``);
* in-process refit: ``fit_nuts`` called again in one process (the compiled sampler is reused);
* the same model through NumPyro's stock ``MCMC`` with its default (regularised) dense mass
  adaptation, to show what the unregularised adaptation and the cached driver buy.

``--baseline REF`` also times the CLI of git revision REF (checked out in a temporary worktree,
run with the same interpreter), interleaved call by call with this tree's, so both see the same
machine load; the results then hold both and their ratio.

All on the bundled Chinchilla data (240 runs), 4 chains x 1000 draws, 500 warmup. Writes
experiments/results/bench_cli.json. Usage: .venv/bin/python experiments/bench_cli.py [--baseline REF]
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_cli.json"
REPEATS = 3


def cli_seconds(cache: str, out: str, source: Path = ROOT) -> float:
    """One ``bayes-scaling fit chinchilla`` in a fresh process, importing the package from ``source``."""
    env = {**os.environ, "BAYES_SCALING_CACHE": cache, "PYTHONPATH": str(source)}
    env.pop("BAYES_SCALING_NO_COMPILE_CACHE", None)
    cmd = [sys.executable, "-m", "bayes_scaling", "fit", "chinchilla", "--out", out]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=source)
    return time.perf_counter() - start


def cli_timings(trees: dict[str, Path]) -> dict:
    """First and repeated CLI calls for each source tree, interleaved: ``REPEATS`` first calls, each
    with its own empty cache, then ``REPEATS`` repeated calls on the last of them."""
    out = {name: {"cli_first_call_s": [], "cli_repeated_call_s": []} for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(REPEATS):
            for name, source in trees.items():
                out[name]["cli_first_call_s"].append(cli_seconds(f"{tmp}/{name}-cache{i}", f"{tmp}/{name}-fit", source))
        for _ in range(REPEATS):
            for name, source in trees.items():
                cache = f"{tmp}/{name}-cache{REPEATS - 1}"
                out[name]["cli_repeated_call_s"].append(cli_seconds(cache, f"{tmp}/{name}-fit", source))
        out["ours"]["first_call_phases_s"] = phase_seconds(f"{tmp}/phases-cache", f"{tmp}/ours-fit")
        out["ours"]["repeated_call_phases_s"] = phase_seconds(f"{tmp}/phases-cache", f"{tmp}/ours-fit")
    return out


PHASES = """
import json, sys, time
t0 = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = time.perf_counter() - t0 - sum(marks.values())
from bayes_scaling.cli import fit as cli_fit
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs import load_chinchilla
mark("imports (JAX, NumPyro, pandas, xarray)")
runs = load_chinchilla().for_fit()
post = fit_nuts(runs)
mark("fit_nuts (load or trace the sampler, sample)")
sampling = post.meta["sampling_seconds"]
from bayes_scaling.checking import add_posterior_predictive
add_posterior_predictive(post)
post.save(sys.argv[1])
mark("posterior predictive and save")
from bayes_scaling.diagnostics import diagnose
diagnose(post).verdict()
mark("diagnose")
print(json.dumps({**marks, "of which fit_nuts's sampler.run (programs loaded, compiled, run)": sampling}))
"""


def phase_seconds(cache: str, out: str) -> dict:
    """Where a ``fit`` call's time goes: the CLI's steps timed one by one in a fresh process
    (an empty cache: a first call's; a used one: a repeated call's)."""
    env = {**os.environ, "BAYES_SCALING_CACHE": cache, "PYTHONPATH": str(ROOT)}
    env.pop("BAYES_SCALING_NO_COMPILE_CACHE", None)
    result = subprocess.run([sys.executable, "-c", PHASES, out], env=env, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def baseline_tree(ref: str, where: str) -> Path:
    path = Path(where) / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                   check=True, capture_output=True)
    return path


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REF", help="also time the CLI of this git revision, interleaved")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"ours": ROOT}
        if args.baseline:
            trees["baseline"] = baseline_tree(args.baseline, tmp)
        load_before = os.getloadavg()[0]
        try:
            cli = cli_timings(trees)
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees["baseline"])],
                               capture_output=True)
    first, refits, min_ess, steps, stock = in_process_seconds()
    result = {
        "machine": f"{os.cpu_count()} cores, {cpu_name()}",
        "date": time.strftime("%Y-%m-%d"),
        "load_avg_1min_before_and_after_cli": [load_before, os.getloadavg()[0]],
        **cli["ours"],
        "in_process_first_fit_s": first,
        "in_process_refit_s": refits,
        "min_bulk_ess_last_refit": min_ess,
        "mean_leapfrog_steps_last_refit": steps,
        "stock_numpyro_mcmc_default_dense": stock,
    }
    if args.baseline:
        base = cli["baseline"]
        result["baseline"] = {"ref": args.baseline, **base}
        result["ratio_ours_to_baseline"] = {
            "first_call_median": float(np.median(cli["ours"]["cli_first_call_s"]) /
                                       np.median(base["cli_first_call_s"])),
            "repeated_call_median": float(np.median(cli["ours"]["cli_repeated_call_s"]) /
                                          np.median(base["cli_repeated_call_s"])),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
