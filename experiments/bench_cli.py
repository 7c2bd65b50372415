"""Latency of the ``bayes-scaling fit chinchilla`` command line, first and repeated, phase by phase.

* first CLI call: an empty cache directory (nothing traced or compiled yet on this machine);
* repeated CLI call: the same command again, served by the caches (``BAYES_SCALING_CACHE``);
* for each call its wall time and its CPU time (user + sys of the process, all threads): on a
  shared machine the wall time grows with the load, the CPU time much less, so compare CPU times;
* a phase table of the same command (the real CLI path, ``bayes_scaling.cli.main``, in a fresh
  process): import, data load, starting point, compiled programs (disk cache or trace + compile),
  Laplace start, NUTS run, extrapolation calibration (its own refits' phases named
  "calibration: ..."), posterior predictive, saving, verdict and report; wall and CPU seconds each;
* a hash of the saved posterior draws, to show that a change to the command's speed left its
  results alone;
* ``--in-process``: also ``fit_nuts`` refits in one process and NumPyro's stock ``MCMC``;
* ``--compile-breakdown``: instead, each sampler program's trace and XLA compile seconds on a first
  call, per variant of the programs' XLA options, with the rule for adopting one (see
  ``COMPILE_VARIANTS``); writes experiments/results/bench_cli_compile.json unless ``--out``.

``--baseline REF`` also runs the CLI of git revision REF (checked out in a temporary worktree, run
with the same interpreter), interleaved call by call with this tree's, so both see the same load;
the results then hold both, their ratios and whether their draws are identical.

All on the bundled Chinchilla data (240 runs), 4 chains x 1000 draws, 500 warmup, the default
(extrapolating) model. Writes experiments/results/bench_cli.json (``--out``). Usage:
    .venv/bin/python experiments/bench_cli.py [--baseline REF] [--repeats 3] [--in-process] [--out FILE]
    .venv/bin/python experiments/bench_cli.py --compile-breakdown [--repeats 3]
"""

from __future__ import annotations

import sys


# --- the phase driver: runs in a fresh process, ``python bench_cli.py --phases-of OUT.json -- CLI ARGS`` ---
# It must start its clocks before anything heavy is imported, so it imports only the standard library.
# Each phase is a function of the real CLI path, wrapped once its module is imported; time (wall and
# CPU: time.process_time, all threads) goes to the innermost running phase, so the phases add up.
# Every import statement runs as the phase "imports" (time spent importing modules, wherever it
# happens); a phase running under the extrapolation calibration is named "calibration: <phase>".
PHASE_TARGETS = [  # (module, attribute path, phase)
    ("bayes_scaling.cli", "build_parser", "command-line parser"),
    ("bayes_scaling.cli._common", "read_runs", "data load"),
    ("bayes_scaling.fitting.nuts", "_starting_point", "starting point"),
    ("bayes_scaling.fitting.nuts", "jittered_init", "starting point"),
    ("bayes_scaling.fitting.sampler", "Sampler._compiled", "compiled programs (disk cache or trace+compile)"),
    ("bayes_scaling.fitting.sampler", "newton_laplace", "Laplace start (Newton, host)"),
    ("bayes_scaling.fitting.sampler", "Sampler.run", "NUTS run"),
    ("bayes_scaling.fitting.sampler", "Sampler.laplace", "Laplace draws"),
    ("bayes_scaling.fitting.nuts", "build_posterior", "posterior assembly"),
    ("bayes_scaling.fitting.nuts", "diagnose", "diagnostics"),
    ("bayes_scaling.extrapolation", "calibrate", "extrapolation calibration (other)"),
    ("bayes_scaling.extrapolation", "attach_drift", "drift draws"),
    ("bayes_scaling.checking", "add_posterior_predictive", "posterior predictive"),
    ("bayes_scaling.posterior", "Posterior.save", "saving"),
    ("bayes_scaling.cli.fit", "print_verdict", "verdict"),
    ("bayes_scaling.posterior", "Posterior.summary", "report"),
    ("bayes_scaling.cli._common", "parameters_text", "report"),
]
CALIBRATION = "extrapolation calibration (other)"


def run_phases(out_path: str, cli_args: list[str]) -> None:
    """Run ``bayes_scaling.cli.main(cli_args)`` with the phases of ``PHASE_TARGETS`` timed; write
    per-phase wall and CPU seconds, the process's user + sys and JAX's cache events to ``out_path``."""
    import builtins
    import importlib
    import json
    import resource
    import sys
    import time

    startup = resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu = {}, {}
    stack = [["CLI (other)", time.perf_counter(), time.process_time()]]

    def switch(now_wall, now_cpu):  # charge the time since the last switch to the innermost phase
        name, w, c = stack[-1]
        wall[name] = wall.get(name, 0.0) + now_wall - w
        cpu[name] = cpu.get(name, 0.0) + now_cpu - c

    def enter(name):
        now = time.perf_counter(), time.process_time()
        switch(*now)
        if name not in ("imports", CALIBRATION) and any(frame[0] == CALIBRATION for frame in stack):
            name = f"calibration: {name}"
        stack.append([name, *now])

    def leave():
        now = time.perf_counter(), time.process_time()
        switch(*now)
        stack.pop()
        stack[-1][1:] = now

    def timed(fn, name):
        def wrapper(*args, **kwargs):
            enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                leave()
        wrapper.__wrapped__ = fn
        return wrapper

    pending = list(PHASE_TARGETS)
    events = {}  # JAX's compilation-cache events: programs compiled through the cache, hits, misses

    def count_event(event, **_):
        if event.startswith("/jax/compilation_cache/"):
            events[event.rsplit("/", 1)[1]] = events.get(event.rsplit("/", 1)[1], 0) + 1

    def patch_loaded():
        if not events.get("listening") and "jax.monitoring" in sys.modules:
            sys.modules["jax.monitoring"].register_event_listener(count_event)
            events["listening"] = 1
        for item in list(pending):
            module_name, path, name = item
            module = sys.modules.get(module_name)
            if module is None:
                continue
            owner, *rest = path.split(".")
            holder = module
            if rest:
                holder = getattr(module, owner, None)
                owner = rest[0]
            if holder is None or not hasattr(holder, owner):
                continue  # not defined yet (module still executing) or absent in this tree
            setattr(holder, owner, timed(getattr(holder, owner), name))
            pending.remove(item)

    original_import, original_import_module = builtins.__import__, importlib.import_module

    def importing(fn):
        def wrapper(*args, **kwargs):
            if stack[-1][0] == "imports":
                return fn(*args, **kwargs)
            enter("imports")
            try:
                return fn(*args, **kwargs)
            finally:
                leave()
                if pending or not events.get("listening"):
                    patch_loaded()
        return wrapper

    builtins.__import__ = importing(original_import)
    importlib.import_module = importing(original_import_module)
    from bayes_scaling.cli import main

    code = main(cli_args)
    switch(time.perf_counter(), time.process_time())
    builtins.__import__, importlib.import_module = original_import, original_import_module
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "exit_code": code,
        "interpreter_start_cpu_s": startup.ru_utime + startup.ru_stime,
        "wall_s": wall,
        "cpu_s": cpu,
        "total_wall_s": sum(wall.values()),
        "total_cpu_user_sys_s": usage.ru_utime + usage.ru_stime,
        "unpatched": [f"{m}.{p}" for m, p, _ in pending],
        "jax_compilation_cache_events": {k: v for k, v in events.items() if k != "listening"},
    }
    with open(out_path, "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(code)


if __name__ == "__main__" and sys.argv[1:2] == ["--phases-of"]:  # before any other import
    run_phases(sys.argv[2], sys.argv[4:])

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_cli.json"
FIT_ARGS = ["fit", "chinchilla"]


def environment(cache: str, source: Path) -> dict:
    env = {**os.environ, "BAYES_SCALING_CACHE": cache, "PYTHONPATH": str(source)}
    env.pop("BAYES_SCALING_NO_COMPILE_CACHE", None)
    return env


def cli_call(cache: str, out: str, source: Path = ROOT) -> dict:
    """One ``bayes-scaling fit chinchilla`` in a fresh process, importing the package from
    ``source``: its wall time and its CPU time (user + sys, from the child's resource usage)."""
    cmd = [sys.executable, "-m", "bayes_scaling", *FIT_ARGS, "--out", out]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=environment(cache, source), check=True, capture_output=True, cwd=source)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def phase_call(cache: str, out: str, source: Path = ROOT) -> dict:
    """The same command through ``run_phases`` (this file, in a fresh process): per-phase seconds."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--phases-of", result.name, "--",
               *FIT_ARGS, "--out", out]
        subprocess.run(cmd, env=environment(cache, source), check=True, capture_output=True, cwd=source)
        return json.loads(Path(result.name).read_text())


def draws_digest(fit_dir: str) -> dict:
    """SHA-256 of the saved draws (sorted by name, float64 bytes): ``nuts`` of the law's sampled
    sites, ``drift`` of the extrapolation model's (``tau_*``, ``drift_*``), so a change elsewhere in
    the model shows apart from the sampler's."""
    import xarray as xr

    from bayes_scaling.posterior import NETCDF_ENGINE

    digests = {"nuts": hashlib.sha256(), "drift": hashlib.sha256()}
    with xr.open_datatree(Path(fit_dir) / "posterior.nc", engine=NETCDF_ENGINE) as tree:
        post = tree["posterior"].to_dataset()
        for name in sorted(post.data_vars):
            part = "drift" if name.startswith(("tau_", "drift_")) else "nuts"
            digests[part].update(name.encode() + b"\0" + np.ascontiguousarray(post[name].values, np.float64).tobytes())
    return {part: h.hexdigest() for part, h in digests.items()}


def cli_timings(trees: dict[str, Path], repeats: int) -> dict:
    """For each source tree, interleaved call by call: ``repeats`` first calls (each with its own
    empty cache) and ``repeats`` repeated calls on the last cache, timed whole; then the same, one
    first and ``repeats`` repeated, through the phase driver (its own cache)."""
    out = {name: {"first_call": [], "repeated_call": [], "first_call_phases": [], "repeated_call_phases": []}
           for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for name, source in trees.items():
                out[name]["first_call"].append(cli_call(f"{tmp}/{name}-cache{i}", f"{tmp}/{name}-fit", source))
        for _ in range(repeats):
            for name, source in trees.items():
                out[name]["repeated_call"].append(
                    cli_call(f"{tmp}/{name}-cache{repeats - 1}", f"{tmp}/{name}-fit", source))
        for name, source in trees.items():
            out[name]["draws_sha256"] = draws_digest(f"{tmp}/{name}-fit")
            out[name]["first_call_phases"].append(phase_call(f"{tmp}/{name}-phases", f"{tmp}/{name}-pfit", source))
        for _ in range(repeats):
            for name, source in trees.items():
                out[name]["repeated_call_phases"].append(
                    phase_call(f"{tmp}/{name}-phases", f"{tmp}/{name}-pfit", source))
    return out


def median_phases(calls: list[dict]) -> dict:
    """Per phase, the median over calls of its wall and CPU seconds (0 where a call lacks it)."""
    names = list(dict.fromkeys(name for call in calls for name in call["cpu_s"]))
    return {name: {"wall_s": float(np.median([c["wall_s"].get(name, 0.0) for c in calls])),
                   "cpu_s": float(np.median([c["cpu_s"].get(name, 0.0) for c in calls]))} for name in names}


def summarize(timing: dict) -> dict:
    """Medians, ranges and per-phase medians of one tree's calls."""
    out = {}
    for kind in ("first_call", "repeated_call"):
        calls = timing[kind]
        for what in ("wall_s", "cpu_s"):
            values = [c[what] for c in calls]
            out[f"{kind}_{what}"] = values
            out[f"{kind}_{what}_median"] = float(np.median(values))
        out[f"{kind}_phases"] = median_phases(timing[f"{kind}_phases"])
        out[f"{kind}_jax_compilation_cache_events"] = [c.get("jax_compilation_cache_events", {})
                                                       for c in timing[f"{kind}_phases"]]
    out["draws_sha256"] = timing["draws_sha256"]
    return out


def phase_table(ours: dict, base: dict | None) -> str:
    """Markdown: per phase, median wall and CPU seconds of a first and a repeated call (and the
    baseline's repeated-call CPU and our ratio to it)."""
    first, repeated = ours["first_call_phases"], ours["repeated_call_phases"]
    names = list(dict.fromkeys([*repeated, *first]))
    head = "| phase | first wall (s) | first CPU (s) | repeated wall (s) | repeated CPU (s) |"
    rule = "|---|---:|---:|---:|---:|"
    if base:
        head += " baseline repeated CPU (s) | ratio |"
        rule += "---:|---:|"
    rows = [head, rule]
    order = sorted(names, key=lambda n: -repeated.get(n, {"cpu_s": 0.0})["cpu_s"])
    for name in [*order, "total"]:
        if name == "total":
            cells = [sum(t[n][w] for n in t) for t in (first, repeated) for w in ("wall_s", "cpu_s")]
        else:
            cells = [t.get(name, {}).get(w, 0.0) for t in (first, repeated) for w in ("wall_s", "cpu_s")]
        row = f"| {name} | " + " | ".join(f"{v:.2f}" for v in cells) + " |"
        if base:
            b = base["repeated_call_phases"]
            bv = sum(b[n]["cpu_s"] for n in b) if name == "total" else b.get(name, {}).get("cpu_s", 0.0)
            ratio = f"{cells[3] / bv:.2f}" if bv > 0.005 else "-"
            row += f" {bv:.2f} | {ratio} |"
        rows.append(row)
    return "\n".join(rows)


def snapshot(where: str) -> Path:
    """A copy of this tree's package, taken now: the sampler's disk cache is keyed by the source of
    every package module, so an edit made elsewhere in a shared working tree while this runs would
    turn the repeated calls into first calls (a trace of every sampler program)."""
    path = Path(where) / "ours"
    shutil.copytree(ROOT / "bayes_scaling", path / "bayes_scaling", ignore=shutil.ignore_patterns("__pycache__"))
    return path


def baseline_tree(ref: str, where: str, name: str = "baseline") -> Path:
    """Git revision ``ref`` checked out in a temporary worktree."""
    path = Path(where) / name
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                   check=True, capture_output=True)
    return path


def in_process_seconds(repeats: int) -> tuple:
    """``fit_nuts`` in this process: a first fit, then ``repeats`` refits (the compiled sampler reused)."""
    import arviz as az

    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import load_chinchilla

    runs = load_chinchilla().for_fit()
    start = time.perf_counter()
    fit_nuts(runs, seed=0)
    first = time.perf_counter() - start
    refits = []
    for seed in range(1, repeats + 1):
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


# --- per-program compile breakdown (``--compile-breakdown``) ---
# The sampler's four programs (potential, start, advance, finish) are traced (``jax.export``: jaxpr
# trace + lowering to StableHLO) and compiled by XLA on a first call. In the CLI they compile in
# threads; here, in a fresh process with an empty cache, the compiles run one after another (the
# thread pool replaced by a serial one) so each program's seconds, wall and CPU (all threads), are
# its own. The fit is ``fit_nuts(model="plain")`` at the CLI's defaults (4 x (500 + 1000), seed 0).
# Variants change the XLA options of programs (``sampler.PROGRAM_OPTIONS``); their draws are hashed.
PROGRAM_NAMES = ("potential", "start", "advance", "finish")
# order in which ``Sampler._compiled`` exports and compiles them (serial pool): what each event is
EXPORT_ORDER = ("start", "advance", "potential", "finish")
COMPILE_ORDER = ("advance", "start", "potential", "finish")
COMPILE_VARIANTS = {
    "current": {},
    "advance_O1": {"advance": {"xla_backend_optimization_level": 1}},
    "advance_finish_O1": {"advance": {"xla_backend_optimization_level": 1},
                          "finish": {"xla_backend_optimization_level": 1}},
    # twentieth session, added before their results: LLVM's expensive passes left out (XLA's
    # ``xla_llvm_disable_expensive_passes``), judged by the same rule
    "advance_cheap_llvm": {"advance": {"xla_llvm_disable_expensive_passes": True}},
    "advance_finish_cheap_llvm": {"advance": {"xla_llvm_disable_expensive_passes": True},
                                  "finish": {"xla_llvm_disable_expensive_passes": True}},
}
# Rule, written before the results: a variant replaces the current options only if its draws hash
# is identical to "current"'s, its median total compile CPU (all four programs) is at least 10%
# lower over the interleaved repeats, and its sampling is not slower (median over calls of the
# median ``sampling_seconds`` of 3 in-process refits, seeds 1-3, at most 5% above "current"'s: a
# repeated CLI call runs the same compiled programs); otherwise it stays a measured, rejected option.
ADOPT_MIN_CPU_SAVING = 0.10
ADOPT_MAX_SAMPLING_SLOWDOWN = 0.05


def compile_of(out_path: str, variant: str) -> None:
    """In a fresh process (empty cache): the fit, each program's export and compile seconds."""
    import threading
    from concurrent.futures import Future

    os.environ["BAYES_SCALING_CACHE"] = tempfile.mkdtemp()
    import jax
    from jax._src import stages

    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import load_chinchilla

    options = list(sampler.PROGRAM_OPTIONS)
    for name, opts in COMPILE_VARIANTS[variant].items():
        options[PROGRAM_NAMES.index(name)] = opts
    sampler.PROGRAM_OPTIONS = tuple(options)

    class Serial:  # ``ThreadPoolExecutor``'s use in ``_compiled``, run at submit time
        def __init__(self, workers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            future = Future()
            future.set_result(fn(*args))
            return future

        def shutdown(self, wait=True):
            pass

    sampler.ThreadPoolExecutor = Serial
    events, durations = [], {}
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **_: durations.__setitem__(e.rsplit("/", 1)[1], durations.get(e.rsplit("/", 1)[1], 0.0) + d)
        if "/jax/core/compile/" in e else None)

    def clocked(kind, fn):
        def wrapper(*args, **kwargs):
            before, wall, cpu = dict(durations), time.perf_counter(), time.process_time()
            result = fn(*args, **kwargs)
            phases = {k: v - before.get(k, 0.0) for k, v in durations.items() if v - before.get(k, 0.0) > 0}
            events.append({"kind": kind, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                           "thread": threading.get_ident(), "jax_durations_s": phases})
            return result
        return wrapper

    original_export = jax.export.export
    sampler.jax.export.export = lambda fn, **kw: clocked("export", original_export(fn, **kw))
    original_compile = stages.Lowered.compile
    # only the sampler's four programs: other programs (``stored_jit``'s starting point) compile too
    inside = []
    original_compiled = sampler.Sampler._compiled

    def sampler_compiled(self, sites):
        inside.append(True)
        try:
            return original_compiled(self, sites)
        finally:
            inside.pop()

    sampler.Sampler._compiled = sampler_compiled
    stages.Lowered.compile = lambda self, *a, **k: (clocked("compile", original_compile) if inside
                                                    else original_compile)(self, *a, **k)
    runs = load_chinchilla().for_fit()
    start = time.perf_counter()
    post = fit_nuts(runs, model="plain", seed=0)
    fit_s = time.perf_counter() - start
    refit_s = [fit_nuts(runs, model="plain", seed=seed).meta["sampling_seconds"] for seed in (1, 2, 3)]
    exports = [e for e in events if e["kind"] == "export"]
    compiles = [e for e in events if e["kind"] == "compile"]
    programs = {name: {} for name in PROGRAM_NAMES}
    for name, e in zip(EXPORT_ORDER, exports):
        programs[name]["trace_lower"] = e
    for name, e in zip(COMPILE_ORDER, compiles):
        programs[name]["xla_compile"] = e
    digest = hashlib.sha256()
    for name in sorted(post.idata.posterior.data_vars):
        digest.update(name.encode() + b"\0" + np.ascontiguousarray(post.idata.posterior[name].values,
                                                                   np.float64).tobytes())
    Path(out_path).write_text(json.dumps({
        "variant": variant, "options": COMPILE_VARIANTS[variant], "fit_wall_s": fit_s,
        "refit_sampling_s": refit_s,
        "load_avg_1min_after": os.getloadavg()[0], "programs": programs, "events": len(events),
        "draws_sha256": digest.hexdigest()}))


def compile_breakdown(repeats: int, out: Path) -> None:
    """``repeats`` fresh processes per variant, interleaved; per program the median seconds."""
    calls = {v: [] for v in COMPILE_VARIANTS}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for variant in COMPILE_VARIANTS:
                path = f"{tmp}/{variant}-{i}.json"
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--compile-of", path, variant],
                               check=True, capture_output=True, cwd=ROOT)
                calls[variant].append(json.loads(Path(path).read_text()))
    summary = {}
    for variant, runs in calls.items():
        table = {}
        for name in PROGRAM_NAMES:
            table[name] = {f"{step}_{what}_median": float(np.median([r["programs"][name][step][what] for r in runs]))
                           for step in ("trace_lower", "xla_compile") for what in ("wall_s", "cpu_s")}
        total = [sum(r["programs"][n]["xla_compile"]["cpu_s"] for n in PROGRAM_NAMES) for r in runs]
        summary[variant] = {"per_program": table, "xla_compile_cpu_s_total": total,
                            "xla_compile_cpu_s_total_median": float(np.median(total)),
                            "trace_lower_cpu_s_total_median": float(np.median(
                                [sum(r["programs"][n]["trace_lower"]["cpu_s"] for n in PROGRAM_NAMES) for r in runs])),
                            "refit_sampling_s_median": float(np.median([np.median(r["refit_sampling_s"])
                                                                        for r in runs])),
                            "draws_sha256": sorted({r["draws_sha256"] for r in runs})}
    base = summary["current"]
    for variant, s in summary.items():
        s["same_draws_as_current"] = s["draws_sha256"] == base["draws_sha256"] and len(s["draws_sha256"]) == 1
        s["compile_cpu_saving_vs_current"] = 1 - s["xla_compile_cpu_s_total_median"] / base[
            "xla_compile_cpu_s_total_median"]
        s["sampling_slowdown_vs_current"] = s["refit_sampling_s_median"] / base["refit_sampling_s_median"] - 1
        s["adopt_by_rule"] = (variant != "current" and s["same_draws_as_current"]
                              and s["compile_cpu_saving_vs_current"] >= ADOPT_MIN_CPU_SAVING
                              and s["sampling_slowdown_vs_current"] <= ADOPT_MAX_SAMPLING_SLOWDOWN)
    result = {"machine": f"{os.cpu_count()} cores, {cpu_name()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "what": "fit_nuts(model='plain', seed=0) on the bundled Chinchilla data, fresh process, empty cache; "
                      "the four sampler programs exported and compiled one after another",
              "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
              "repeats": repeats, "adopt_rule": f"identical draws, >= {ADOPT_MIN_CPU_SAVING:.0%} less compile CPU and sampling at most "
                            f"{ADOPT_MAX_SAMPLING_SLOWDOWN:.0%} slower",
              "variants": summary, "calls": calls}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for variant, s in summary.items():
        cells = ", ".join(f"{n} {s['per_program'][n]['trace_lower_cpu_s_median']:.2f}+"
                          f"{s['per_program'][n]['xla_compile_cpu_s_median']:.2f}" for n in PROGRAM_NAMES)
        print(f"{variant}: CPU s trace+lower + compile per program: {cells}; compile total "
              f"{s['xla_compile_cpu_s_total_median']:.2f} (saving {s['compile_cpu_saving_vs_current']:+.1%}), "
              f"sampling {s['refit_sampling_s_median']:.3f} s ({s['sampling_slowdown_vs_current']:+.1%}), "
              f"same draws {s['same_draws_as_current']}, adopt {s['adopt_by_rule']}")
    print(f"results: {out}")


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
    parser.add_argument("--ours", metavar="REF",
                        help="time git revision REF as ours (default: a copy of the working tree's package, taken now)")
    parser.add_argument("--repeats", type=int, default=3, help="calls of each kind (default 3)")
    parser.add_argument("--in-process", action="store_true",
                        help="also time fit_nuts refits in one process and NumPyro's stock MCMC")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--compile-breakdown", action="store_true",
                        help="instead: each sampler program's trace and XLA compile seconds, per XLA-option variant")
    args = parser.parse_args(argv)
    if args.compile_breakdown:
        out = args.out if args.out != RESULTS else RESULTS.with_name("bench_cli_compile.json")
        compile_breakdown(args.repeats, out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"ours": baseline_tree(args.ours, tmp, "ours") if args.ours else snapshot(tmp)}
        if args.baseline:
            trees["baseline"] = baseline_tree(args.baseline, tmp)
        load_before = os.getloadavg()
        try:
            timings = cli_timings(trees, args.repeats)
        finally:
            for name in ("baseline", "ours") if args.ours else ("baseline",):
                if name in trees:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees[name])],
                                   capture_output=True)
    ours = summarize(timings["ours"])
    result = {
        "machine": f"{os.cpu_count()} cores, {cpu_name()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bayes-scaling " + " ".join(FIT_ARGS) + " --out DIR",
        "load_avg_1_5_15min_before_and_after": [list(load_before), list(os.getloadavg())],
        "ours": args.ours or "working tree",
        "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        **ours,
    }
    base = None
    if args.baseline:
        base = summarize(timings["baseline"])
        result["baseline"] = {"ref": args.baseline, **base}
        result["ratio_ours_to_baseline"] = {
            f"{kind}_{what}_median": ours[f"{kind}_{what}_median"] / base[f"{kind}_{what}_median"]
            for kind in ("first_call", "repeated_call") for what in ("wall_s", "cpu_s")}
        result["same_draws_as_baseline"] = {part: ours["draws_sha256"][part] == base["draws_sha256"][part]
                                            for part in ("nuts", "drift")}
    if args.in_process:
        first, refits, min_ess, steps, stock = in_process_seconds(args.repeats)
        result.update({"in_process_first_fit_s": first, "in_process_refit_s": refits,
                       "min_bulk_ess_last_refit": min_ess, "mean_leapfrog_steps_last_refit": steps,
                       "stock_numpyro_mcmc_default_dense": stock})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for kind in ("first_call", "repeated_call"):
        line = (f"{kind.replace('_', ' ')}: wall {ours[f'{kind}_wall_s_median']:.2f} s, "
                f"CPU {ours[f'{kind}_cpu_s_median']:.2f} s (medians of {args.repeats})")
        if base:
            line += (f"; baseline wall {base[f'{kind}_wall_s_median']:.2f} s, CPU {base[f'{kind}_cpu_s_median']:.2f} s"
                     f" (CPU ratio {result['ratio_ours_to_baseline'][f'{kind}_cpu_s_median']:.2f})")
        print(line)
    for name, tree in (("ours", ours), ("baseline", base)):
        if tree:
            events = tree["repeated_call_jax_compilation_cache_events"][-1]
            print(f"{name}, a repeated call: {events.get('compile_requests_use_cache', 0)} programs compiled through "
                  f"JAX's persistent cache, {events.get('cache_hits', 0)} hits, {events.get('cache_misses', 0)} misses")
    if base:
        print(f"same draws as the baseline: {result['same_draws_as_baseline']}")
    print(phase_table(ours, base))
    print(f"results: {args.out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compile-of"]:
        compile_of(sys.argv[2], sys.argv[3])
    else:
        main()
