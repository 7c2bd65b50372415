"""``bayes-scaling loop --target-budget C --experiment-budget F --workers k [--simulate]``.

The closed loop: ask the planner for runs, run them on k workers, tell it each result as it comes
back (which refits the posterior), print progress (FLOPs spent, the width of the interval of
log N_opt(C*) now), and keep the workers busy until the stop rule holds: the interval is at most
``--tolerance`` wide, the experiment budget is spent, or no affordable candidate is left.

Workers. ``--simulate`` answers each run from a simulated ground truth (``design.Simulator``: the
Chinchilla law at ``--truth``, Epoch AI's estimates by default, plus log-normal noise
``--noise-sigma``), instantly. Otherwise each run is ``python -m training --params N --tokens D``,
started by an executor (``--executor``): ``process`` (default) runs k local child processes at a
time, ``inline`` one at a time, ``ray`` k Ray tasks (``--ray-address``; each asks for
``--cpus-per-run``/``--gpus-per-run``), ``slurm`` k Slurm jobs via submitit. A run whose worker
crashes without a result is started again up to ``--retries`` times, then recorded as failed.
``--memory-fraction`` caps each run's share of GPU memory, to pack several runs onto one GPU.
``--store`` appends each RunResult (failed runs too) to a run store as it arrives, besides the
state's own store (below). See docs/scale-out.md.

State. The planner's state lives in ``DIR``: every result in the run store ``DIR/runs.sqlite``, the
rest in ``DIR/planner.json``, rewritten after every result; ``--state DIR``, or by default ``.bayes-scaling/loops/<hash>`` under the current directory, the hash taken from
the options that define the experiment (budgets, tolerance, level, seed, truth, candidate grid,
planner settings; not ``--workers``, ``--max-runs``, ``--store``, the executor or ``--json``). So
rerunning the same command resumes it, restarting the runs that were pending when it stopped;
the loop prints the command that resumes it when it starts and when it stops. Ctrl-C or SIGTERM
records the runs that have already ended, cancels the running runs (they stay pending; exit status 130, or 143 for SIGTERM). ``--max-runs``
counts every result in the state, those of earlier invocations included.

Pool. ``--candidates POOL.csv`` (N, D, optionally cost and run_id) replaces the candidate grid: the
loop proposes only runs of the pool, within ``--experiment-budget``; ``--target TARGET.csv`` (N, D)
names the runs whose predictions matter. With either, the strategy defaults to ``target``: the
target-region utility (``design.target``) per cost^0.4, refitting under the extrapolating model.

WSD. ``--wsd [FRACTION]`` makes every new run a warmup-stable-decay branch (``design.branches``):
``--trunks-per-size K`` trunks (default 1) per size N of the grid, trunk i trained with ``--seed``
+ i, each at constant rate and kept at each grid D's cool-down start (in ``DIR/trunks/<trunk>``),
each run a branch that cools down over the last FRACTION (default 0.2) of its updates. The planner
prices a branch at its cool-down plus the stable tokens its trunk must still train (the first
branch of a trunk: a whole run) and scores it with the WSD offset and its
trunk's shared effect (refits: ``bayes_scaling.wsd.fit_wsd``); a trunk's extension runs just before
its branch, and its record goes to the run store as a trunk (stopped during either, the branch stays
pending and a resume runs both: the harness resumes the trunk from its checkpoint). Trunks and
branches warm up for ``warmup_tokens`` (``--train-spec``; default 5% of the smallest grid D).

Fit. When the loop ends (not when it is stopped) it saves its final fit, the refits' NUTS posterior of
every done run under their model (the plain law, the extrapolating model with a pool, the WSD model with
branches: the one its last status was computed from, drift included), to ``DIR/fit`` and says
so: ``bayes-scaling frontier DIR/fit`` and ``bayes-scaling report DIR/fit`` open it. The loop
itself is ``bayes_scaling.design.loop.run_loop``; this command parses the flags and prints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bayes_scaling.cli import _common
from bayes_scaling.cli._interrupts import listened
from bayes_scaling.cli.plan import add_candidate_options, add_pool_options, candidates_from_args, parse_span
from bayes_scaling.design.loop import LoopSettings, run_loop
from bayes_scaling.errors import InputError

# Defaults for the candidate grid: LLM scale for the simulator, CPU scale for the training harness.
SIMULATE_GRID = {"n_range": (1e7, 1e10), "d_range": (1e8, 1e11), "max_cost": 3e21}
HARNESS_GRID = {"n_range": (2e4, 5e5), "d_range": (2e5, 4e6), "max_cost": 2e12}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loop", help="closed-loop experiment design: plan, run, refit until the frontier is known",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target-budget", type=float, required=True, help="C*, the FLOPs of the big run")
    p.add_argument("--experiment-budget", type=float, required=True, help="FLOPs the small runs may spend in all")
    p.add_argument("--workers", type=int, default=1, help="runs at once (k)")
    p.add_argument("--tolerance", type=float, default=0.5, help="stop when the interval of log N_opt(C*) is this wide (nats)")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--state", default=None,
                   help="planner state directory (default: .bayes-scaling/loops/<hash of the experiment's options>)")
    p.add_argument("--simulate", action="store_true", help="answer runs from a simulated ground truth")
    p.add_argument("--truth", default=None, metavar="E,A,B,ALPHA,BETA", help="simulated truth (default Epoch AI 2024)")
    p.add_argument("--noise-sigma", type=float, default=0.01, help="simulated noise on log-loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", nargs="+", default=["log_N_opt"], choices=["log_N_opt", "log_L_opt"],
                   help="what the runs should inform (default log_N_opt; both: the joint information)")
    p.add_argument("--strategy", default=None, choices=["target", "eig_per_cost", "eig", "uncertainty", "random"],
                   help="target: the target-region utility (design.target, per cost^0.4, under --model); eig_per_cost: "
                        "EIG about log N_opt(C*) per FLOP (default; target with --candidates or --target)")
    p.add_argument("--model", default=None, choices=["plain", "extrapolating"],
                   help="the refits' model (default: extrapolating for --strategy target, else plain)")
    p.add_argument("--misfit", default=None, metavar="auto|KAPPA",
                   help="score candidates under the law plus a misfit term growing at small compute (docs/design.md): "
                        "'auto' fits its size to the residuals, a number fixes it (default off; a new planner only)")
    p.add_argument("--draws", type=int, default=300, help="NUTS warmup and draws per chain at each refit (2 chains)")
    p.add_argument("--n-init", type=int, default=8, help="space-filling runs before the first fit")
    p.add_argument("--max-runs", type=int, default=None,
                   help="stop once the state holds this many results (earlier invocations' included)")
    p.add_argument("--store", default=None, help="append each result (failed runs too) to this run store as it arrives")
    p.add_argument("--wsd", type=float, nargs="?", const=0.2, default=None, metavar="FRACTION",
                   help="new runs are WSD branches of the trunks of their size, cooling down this share of D (default "
                        "0.2); the planner prices a branch at its cool-down plus the trunk tokens still to train")
    p.add_argument("--trunks-per-size", type=int, default=None, metavar="K",
                   help="with --wsd: K trunks per grid size (default 1), trunk i trained with --seed + i, so one "
                        "trunk's effect does not shift every loss of its size")
    p.add_argument("--train-spec", default=None, help='harness: extra RunSpec fields as JSON, e.g. \'{"context": 64}\' (checked before the first '
                        'run; not params, tokens or run_id, set per run; a seed only equal to --seed)')
    add_executor_options(p)
    add_candidate_options(p)
    add_pool_options(p)
    p.add_argument("--shape-span", type=parse_span, default=None, metavar="FACTOR|off",
                   help="strategy target: score only runs with N within FACTOR of N_opt at their compute (default: 3, "
                        "widened to the target runs' shapes; 'off': every candidate)")
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    received = {}

    def on_signal(signum, frame):
        received["signal"] = signum
        raise KeyboardInterrupt

    # SIGTERM is Ctrl-C from here on (before the state is opened: nothing to lose before that). Both
    # are recorded too: drive checks the record, in case Python swallowed the KeyboardInterrupt.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in listened()}  # not one the caller ignores
    default_hook = sys.unraisablehook

    def quiet_swallowed_interrupt(unraisable):  # "Exception ignored in ...": drive stops the loop anyway
        if not (received and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            default_hook(unraisable)

    sys.unraisablehook = quiet_swallowed_interrupt
    try:
        return _run(args, received)
    except KeyboardInterrupt:
        if received.get("signal") != signal.SIGTERM:
            raise
        _common.info("SIGTERM: stopped before any run started")
        return 143
    finally:
        sys.unraisablehook = default_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args, received: dict) -> int:
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.max_runs is not None and args.max_runs < 1:
        raise InputError(f"--max-runs must be at least 1, got {args.max_runs}")
    check_trunks_per_size(args)
    store = None
    if args.store:
        from bayes_scaling.runs.store import RunStore

        store = RunStore(args.store)  # a damaged store stops here, before any run starts
    check_executor_flags(args)
    planner = open_planner(args, store)
    if args.simulate:
        executor, make_spec = _simulator(args)
    else:  # built once the state and the store have passed their checks (a Ray cluster is joined here)
        executor, make_spec = make_executor_from_args(args), spec_maker(args, planner if planner.wsd else None)
    resume = resume_command(args, planner.directory)
    _common.info(f"to resume after a stop: {resume}")
    settings = LoopSettings(workers=args.workers, max_runs=args.max_runs, quiet=args.json,
                            source="loop --simulate" if args.simulate else "loop")
    try:
        result = run_loop(planner, executor, make_spec, settings, store=store, stop_requested=lambda: bool(received),
                          notify=_common.info, busy=_common.ticker)
    except KeyboardInterrupt:  # run_loop has cancelled the running runs; they stay pending in the state
        term = received.get("signal") == signal.SIGTERM
        _common.info(f"{'SIGTERM' if term else 'interrupted'}: {len(planner.done)} runs done, {len(planner.pending)} "
                     f"pending in {planner.directory}; resume with: {resume}")
        return 143 if term else 130
    if result.fit_dir is not None:
        _common.info(f"final fit saved to {result.fit_dir} (open it with: bayes-scaling frontier {result.fit_dir}; "
                     f"bayes-scaling report {result.fit_dir})")
    else:
        need = len(planner.law.param_names) + 1
        _common.info(f"no fit saved: the state holds {_common.plural(len(planner.done), 'done run')} and a fit needs at least {need}")
    if args.json:
        _common.print_json({**result.status, "fit": str(result.fit_dir) if result.fit_dir else None})
    else:
        print(status_text(result.status, result.fit_dir))
    return 0


def check_trunks_per_size(args) -> None:
    """--trunks-per-size: a whole number >= 1, and only with --wsd."""
    k = getattr(args, "trunks_per_size", None)
    if k is None:
        return
    if k < 1:
        raise InputError(f"--trunks-per-size must be at least 1, got {k}")
    if getattr(args, "wsd", None) is None:
        raise InputError(f"--trunks-per-size {k} applies to a WSD sweep; add --wsd [FRACTION]")


def open_planner(args, store=None):
    """The planner in ``--state``: resumed if the folder holds one, else created from the flags; its
    candidates' names checked against ``store`` (``check_store_names``) before anything is written."""
    from bayes_scaling.cli.plan import parse_misfit
    from bayes_scaling.design.planner import STATE_FILE, Planner

    state_dir = Path(args.state) if args.state else default_state_dir(args)
    if (state_dir / STATE_FILE).exists():
        planner = Planner.open(state_dir)
        saved = int(planner.settings.get("trunks_per_size", 1))
        if getattr(args, "trunks_per_size", None) not in (None, saved):
            raise InputError(f"{state_dir} is a sweep with {saved} trunk(s) per size, not --trunks-per-size "
                             f"{args.trunks_per_size}; drop the flag to resume it, or give another --state")
        check_same_options(args, state_dir)
        check_train_spec(args, planner.candidates, wsd=planner.wsd)
        check_store_names(store, planner.candidates, own=planner.store, pooled=args.candidates is not None)
        _common.info(f"resuming {state_dir}: {len(planner.done)} runs done, {len(planner.pending)} pending")
        return planner
    from bayes_scaling.design.candidates import read_pool
    from bayes_scaling.design.settings import PlannerSettings

    if args.candidates is not None:
        candidates = read_pool(args.candidates, check_units=not args.no_unit_check)[0]
        if args.max_run_cost is not None:
            candidates = candidates.affordable(args.max_run_cost)
    else:
        defaults = SIMULATE_GRID if args.simulate else HARNESS_GRID
        candidates = candidates_from_args(args, defaults["n_range"], defaults["d_range"], defaults["max_cost"])
    check_train_spec(args, candidates, wsd=bool(getattr(args, "wsd", None)))  # before the harness's sizes are read from it
    if args.candidates is None and not args.simulate:
        candidates = distinct_harness_runs(candidates, args)
    strategy = resolved_strategy(args)
    target_runs = ()
    if args.target is not None:
        table = read_pool(args.target, check_units=not args.no_unit_check, target=True)[0]
        target_runs = tuple(zip(table.N.tolist(), table.D.tolist()))
    settings = PlannerSettings(
        target_budget=args.target_budget, experiment_budget=args.experiment_budget, tolerance=args.tolerance,
        level=args.level, targets=tuple(args.targets), strategy=strategy, n_init=args.n_init, num_warmup=args.draws,
        num_draws=args.draws, seed=args.seed, discrepancy=parse_misfit(args.misfit, 0.0),
        model=args.model or ("extrapolating" if strategy == "target" else "plain"), target_runs=target_runs,
        wsd_cooldown=getattr(args, "wsd", None) or 0.0, shape_span=loop_span(getattr(args, "shape_span", None)),
        trunks_per_size=getattr(args, "trunks_per_size", None) or 1)
    check_store_names(store, candidates, pooled=args.candidates is not None)
    check_wsd_pool_in_flops(args, candidates)
    check_budget_pays(args.experiment_budget, candidates)
    planner = Planner.create(state_dir, candidates, settings=settings, tokens_per_step=1 if args.simulate else tokens_per_step(args))
    (state_dir / OPTIONS_FILE).write_text(json.dumps(experiment_options(args), indent=2, sort_keys=True))
    _common.info(f"planner state in {state_dir}: {len(candidates)} candidate runs")
    return planner


def check_wsd_pool_in_flops(args, candidates) -> None:
    """A WSD sweep prices its branches in FLOPs (cool-down + trunk tokens still to train): a pool priced in
    other units (GPU-hours) cannot set its budget; refused."""
    from bayes_scaling.design.candidates import cost_unit

    if getattr(args, "wsd", None) is not None and args.candidates is not None and cost_unit(candidates) != "FLOPs":
        raise InputError(f"--wsd prices each branch in FLOPs (its cool-down and the trunk tokens still to train), but "
                         f"{args.candidates}'s cost column is in other units: give the pool without it (or in FLOPs) "
                         "and --experiment-budget in FLOPs")


def check_budget_pays(experiment_budget: float, candidates) -> None:
    """Refuse, before a state is made, an experiment budget below every candidate run's cost."""
    from bayes_scaling.design.candidates import cost_unit

    if len(candidates) and experiment_budget < float(candidates.cost.min()):
        raise InputError(f"--experiment-budget {experiment_budget:.3g} pays for no candidate run: the cheapest costs "
                         f"{float(candidates.cost.min()):.3g} {cost_unit(candidates)}")


# The options that define an experiment: the same values resume the same default state directory.
STATE_OPTIONS = ("target_budget", "experiment_budget", "tolerance", "level", "simulate", "truth", "noise_sigma", "seed",
                 "targets", "strategy", "misfit", "draws", "n_init", "n_range", "d_range", "grid_points",
                 "max_run_cost", "train_spec", "candidates", "target", "model", "wsd", "shape_span",
                 "trunks_per_size")  # see NEW_STATE_OPTIONS
DEFAULT_STATE_ROOT = Path(".bayes-scaling") / "loops"


OPTIONS_FILE = "loop_options.json"  # the experiment's options as the loop that made the state had them
PATH_OPTIONS = ("candidates", "target")


def experiment_options(args) -> dict:
    """The options in ``STATE_OPTIONS`` as JSON values, table paths made absolute (so a resume from
    another directory compares equal)."""
    options = {name: getattr(args, name, None) for name in STATE_OPTIONS}
    options["strategy"] = resolved_strategy(args)
    options["train_spec"] = canonical_train_spec(options["train_spec"])
    for name in PATH_OPTIONS:  # a table by its contents: a copy elsewhere is the same, an edit in place is not
        if options.get(name) is not None:
            path = Path(options[name]).resolve()
            options[name] = {"path": str(path), "sha256": _digest(path)}
    return json.loads(json.dumps(options, default=str))


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _differs(name: str, saved, now) -> bool:
    if name in PATH_OPTIONS and isinstance(saved, dict) and isinstance(now, dict):
        return saved.get("sha256") != now.get("sha256")
    if name == "train_spec":  # states saved before it was made canonical hold the text as given
        return canonical_train_spec(saved) != canonical_train_spec(now)
    return saved != now


def _shown(name: str, value) -> str:
    if isinstance(value, dict) and "path" in value:
        return value["path"]
    return "unset" if value is None else str(value)


def check_same_options(args, state_dir: Path) -> None:
    """A resumed state goes on with the options that made it ("the same command resumes"); given
    others (a new pool, budget, target), the loop would silently plan by the old ones, so it stops
    and names them. States saved before the options were recorded are resumed as they are."""
    path = state_dir / OPTIONS_FILE
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    now = experiment_options(args)
    changed = [name for name in STATE_OPTIONS  # trunks per size: the state's own, checked by open_planner
               if name != "trunks_per_size" and name in saved and _differs(name, saved.get(name), now.get(name))]
    if changed:
        def described(n):
            if n in PATH_OPTIONS and isinstance(saved[n], dict) and isinstance(now.get(n), dict):
                return f"--{n} {_shown(n, now[n])}: its contents differ from {_shown(n, saved[n])}'s when the state was made"
            return f"--{n.replace('_', '-')} {_shown(n, saved[n])} (this call: {_shown(n, now.get(n))})"

        listed = "; ".join(described(n) for n in changed)
        raise InputError(f"{state_dir} was started with other options: {listed}. A state goes on with the options "
                         "that made it: resume with those, or give a new --state for a new experiment")


def check_store_names(store, candidates, own=None, pooled: bool = False) -> None:
    """The loop stores each result under its candidate's run_id; a run of the user's under that name
    with other N or D would be hidden behind the loop's (the store keeps versions, and lists the
    newest). Refused before any run starts, naming them. A run the state itself recorded (``own``:
    the planner's run store) passes with the N and D it was recorded with: the harness trains the
    shape nearest the grid's N and whole updates of D, so the loop's own results differ from the
    grid a little. No ``store`` (None): nothing to check. ``pooled``: the candidates came from
    ``--candidates``."""
    frame = None if store is None else store.to_frame(status=None)
    if frame is None or frame.empty:
        return
    held = {str(r.run_id): (float(r.N), float(r.D)) for r in frame.itertuples()}
    mine = {} if own is None else {str(r.run_id): (float(r.N), float(r.D)) for r in own.to_frame(status=None).itertuples()}
    clashes = []
    for key, N, D in zip(candidates.keys, candidates.N, candidates.D):
        if key not in held or np.allclose(held[key], (N, D), rtol=1e-6):
            continue
        if key in mine and np.allclose(held[key], mine[key], rtol=1e-6):
            continue  # this state's own result, as the harness trained it
        clashes.append(f"{key} (store: N {held[key][0]:.4g}, D {held[key][1]:.4g}; loop: N {N:.4g}, D {D:.4g})")
    if clashes:
        advice = "give the pool (--candidates) other run_ids, or another --store" if pooled else "give another --store"
        raise InputError(f"--store {store.path} already holds runs under the names of this loop's candidates, with "
                         f"other N and D: {', '.join(clashes[:5])}{f' and {len(clashes) - 5} more' if len(clashes) > 5 else ''}; "
                         f"the loop's results would replace them there as newer versions: {advice}")


def loop_span(value):
    """--shape-span as PlannerSettings takes it: unset -> "default" (3, widened to the target region, for the
    target strategy), "off" -> None, a factor as given."""
    return "default" if value is None else None if value == "off" else value


NEW_STATE_OPTIONS = ("candidates", "target", "model", "wsd", "shape_span", "trunks_per_size")  # left out of the hash when unset: older loops resume


def resolved_strategy(args) -> str:
    """--strategy, or its default: target with a pool or a target table, else eig_per_cost."""
    return args.strategy or ("target" if getattr(args, "candidates", None) or getattr(args, "target", None)
                             else "eig_per_cost")


def default_state_dir(args) -> Path:
    """``.bayes-scaling/loops/<hash>``: the hash of the options in ``STATE_OPTIONS``, ``--train-spec``
    as canonical JSON (a state made before that, under the hash of the text as given, is still found)."""
    options = {name: getattr(args, name, None) for name in STATE_OPTIONS}
    options["strategy"] = resolved_strategy(args)
    if options.get("trunks_per_size") == 1:  # the default: the same state as without the flag
        options["trunks_per_size"] = None
    options = {k: v for k, v in options.items() if not (k in NEW_STATE_OPTIONS and v is None)}

    def hashed(opts) -> Path:
        key = json.dumps(opts, sort_keys=True, default=str)
        return DEFAULT_STATE_ROOT / hashlib.sha256(key.encode()).hexdigest()[:12]

    from bayes_scaling.design.planner import STATE_FILE

    legacy = hashed(options)
    canonical = hashed({**options, "train_spec": canonical_train_spec(options.get("train_spec"))})
    return legacy if canonical != legacy and (legacy / STATE_FILE).exists() else canonical


def resume_command(args, state_dir: Path) -> str:
    """The command line that resumes this loop: the one given, with ``--state DIR`` where it had none."""
    argv = list(getattr(args, "argv", None) or ["loop"])
    if args.state is None:
        argv += ["--state", str(state_dir)]
    return shlex.join(["bayes-scaling", *argv])


def status_text(status: dict, fit_dir=None) -> str:
    lines = [f"runs: {status['runs_done']} done, {status['runs_failed']} failed; "
             f"{status.get('cost_unit', 'FLOPs')} spent {status['flops_spent']:.3g} of {status['experiment_budget']:.3g}",
             f"stop: {status['reason'] or 'not met'}"
             + (f" (the loop ended at --{status['ended_by'].replace('_', '-')}; rerun with a larger --max-runs to go on)"
                if status.get("ended_by") else "")]
    import math

    for name, label in (("log_N_opt", "N_opt"), ("log_L_opt", "L_opt")):
        interval = status[name]
        if interval:
            lo, med, hi = (math.exp(interval[k]) for k in ("lo", "median", "hi"))
            fmt = _common.format_si if label == "N_opt" else (lambda v: f"{v:.4f}")
            lines.append(f"{label}({status['target_budget']:.3g}) = {fmt(med)} [{fmt(lo)}, {fmt(hi)}] "
                         f"({status['level']:.0%}; width of log {interval['width']:.3f})")
    target = status.get("target_runs")
    if target:
        which = "the --target runs" if target["given"] else "the IsoFLOP slice at C*"
        lines.append(f"target region ({which}, {_common.plural(target['runs'], 'run')}): mean {status['level']:.0%} "
                     f"width of the predicted log-loss {target['mean_width']:.3f}")
    verdict = status.get("refit_verdict")
    if verdict and verdict != "passed":
        from bayes_scaling.design.refit import verdict_head

        lines.append(f"the refit behind these intervals failed its sampler checks ({verdict_head(verdict)}); for numbers "
                     f"to act on, fit the runs at full length: bayes-scaling fit {fit_dir or 'STATE/fit'}/runs.csv")
    return "\n".join(lines)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    from bayes_scaling.executors import EXECUTORS

    g = p.add_argument_group("executor (where the harness's runs happen; docs/scale-out.md)")
    g.add_argument("--executor", default=None, choices=EXECUTORS,
                   help="process: local child processes (default); inline: one at a time; ray: Ray tasks; slurm: submitit")
    g.add_argument("--retries", type=int, default=1, help="start a run again this many times if its worker crashes (default 1)")
    g.add_argument("--cpus-per-run", type=float, default=None, help="ray/slurm: CPU cores each run asks for (default 1)")
    g.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="ray/slurm: GPUs each run asks for (Ray takes fractions, e.g. 0.25: four runs per GPU)")
    g.add_argument("--memory-fraction", type=float, default=None,
                   help="share of GPU memory each run's JAX may take, allocated as needed (packs runs onto one GPU; "
                        "not with --simulate)")
    g.add_argument("--ray-address", default=None, help='ray: cluster to join ("auto", "ray://head:10001"); default a local instance')
    g.add_argument("--slurm-folder", default=None, help="slurm: submitit's job folder, on a file system the nodes share")
    g.add_argument("--slurm-partition", default=None, help="slurm: partition")
    g.add_argument("--slurm-time", type=int, default=None, help="slurm: time limit per run in minutes (default 60)")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="slurm: any other #SBATCH --KEY=VALUE, e.g. account=abc or mem=32G (repeatable)")


# Executor flags that only some executors read: given with another, they would do nothing.
EXECUTOR_ONLY = {"cpus_per_run": ("ray", "slurm"), "gpus_per_run": ("ray", "slurm"), "ray_address": ("ray",),
                 "slurm_folder": ("slurm",), "slurm_partition": ("slurm",), "slurm_time": ("slurm",),
                 "slurm_option": ("slurm",)}


def check_executor_flags(args) -> None:
    """Refuse a flag that the chosen executor would ignore (with ``--simulate``: any that sets up
    training), and values out of range, naming the flag. Before the state is opened."""
    name = args.executor or ("inline" if args.simulate else "process")
    if args.simulate and name != "inline":
        raise InputError(f"--simulate answers runs in this process: --executor {name} does not apply")
    if name == "slurm" and not args.slurm_folder:
        raise InputError("--executor slurm needs --slurm-folder (a folder the compute nodes can read)")
    if args.simulate:
        for flag in ("memory_fraction", "train_spec", *EXECUTOR_ONLY):
            if getattr(args, flag, None) not in (None, [], 0.0):
                raise InputError(f"--{flag.replace('_', '-')} does nothing with --simulate (nothing is trained): drop it")
    for flag, executors in EXECUTOR_ONLY.items():
        if getattr(args, flag, None) not in (None, [], 0.0) and name not in executors:
            hint = " (local runs see this machine's GPUs; pack them with --memory-fraction)" if flag == "gpus_per_run" else ""
            raise InputError(f"--{flag.replace('_', '-')} applies to --executor {' or '.join(executors)}, not {name}{hint}")
    if args.cpus_per_run is not None and args.cpus_per_run <= 0:
        raise InputError(f"--cpus-per-run must be positive, got {args.cpus_per_run:g}")
    if args.gpus_per_run < 0:
        raise InputError(f"--gpus-per-run must be at least 0, got {args.gpus_per_run:g}")
    if args.memory_fraction is not None and not 0.0 < args.memory_fraction <= 1.0:
        raise InputError(f"--memory-fraction must be in (0, 1] (a share of the GPU's memory), got {args.memory_fraction:g}")
    if args.retries < 0:
        raise InputError(f"--retries must be at least 0, got {args.retries}")
    if args.slurm_time is not None and args.slurm_time < 1:
        raise InputError(f"--slurm-time must be at least 1 minute, got {args.slurm_time}")


def make_executor_from_args(args, *, job=None):
    """The executor the flags ask for (``job`` replaces the training child: the simulator)."""
    from bayes_scaling.executors import Resources, make_executor

    name = args.executor or ("inline" if job is not None else "process")
    check_executor_flags(args)
    cpus = 1.0 if args.cpus_per_run is None else args.cpus_per_run
    resources = Resources(cpus=cpus, gpus=args.gpus_per_run, memory_fraction=args.memory_fraction)
    if job is not None:
        from bayes_scaling.executors.inline import InlineExecutor

        return InlineExecutor(job=job, retries=args.retries, resources=resources, notify=_common.info)
    options = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--slurm-option expects KEY=VALUE, got {item!r}")
        options[key.lstrip("-")] = value
    return make_executor(name, workers=args.workers, retries=args.retries, resources=resources, notify=_common.info,
                         ray_address=args.ray_address, folder=args.slurm_folder, partition=args.slurm_partition,
                         time_min=60 if args.slurm_time is None else args.slurm_time,
                         sbatch_options=options)


def _simulator(args):
    """An inline executor whose job answers from the simulated truth, and its spec maker."""
    from bayes_scaling.design.oracles import Simulator
    from bayes_scaling.laws import EPOCH_2024

    truth = dict(EPOCH_2024)
    if args.truth:
        values = [float(v) for v in args.truth.split(",")]
        if len(values) != 5:
            raise InputError(f"--truth expects E,A,B,ALPHA,BETA, got {args.truth!r}")
        truth = dict(zip(("E", "A", "B", "alpha", "beta"), values))
    simulator = Simulator(truth=truth, sigma=args.noise_sigma, seed=args.seed)

    def job(spec: dict, memory_fraction=None) -> dict:
        return simulator(SimpleNamespace(run_id=spec["run_id"], N=spec["params"], D=spec["tokens"]))

    return make_executor_from_args(args, job=job), lambda p: {"run_id": p.run_id, "params": p.N, "tokens": p.D}


def train_spec_fields(args) -> dict:
    """The ``--train-spec`` JSON object ({} when not given)."""
    if not args.train_spec:
        return {}
    try:
        extra = json.loads(args.train_spec)
    except json.JSONDecodeError as err:
        raise InputError(f"--train-spec: expected a JSON object ({err})") from None
    if not isinstance(extra, dict):
        raise InputError(f"--train-spec: expected a JSON object, got {args.train_spec!r}")
    return extra


# RunSpec fields the loop sets for every run: given in --train-spec they would be replaced.
LOOP_FIELDS = {"params": "the candidate's N", "tokens": "the candidate's D", "run_id": "the candidate's name"}
WSD_FIELDS = ("schedule", "cooldown_fraction", "checkpoint_dir", "save_at_tokens", "branch_from", "branch_at_tokens")


def canonical_train_spec(text):
    """``--train-spec`` as canonical JSON (keys sorted), so that spacing or key order do not make
    another experiment; the text as given when it is not a JSON object (refused later), None unset."""
    if not text:
        return text
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except json.JSONDecodeError:
        return text


def check_train_spec(args, candidates, *, wsd: bool = False) -> None:
    """``--train-spec`` checked once, before the state is made and any run starts (a typo would fail
    every run): no field the loop sets itself (params, tokens, run_id; with --wsd the schedule and
    checkpoint fields), a seed only equal to ``--seed``, and the spec of the first candidate a valid
    RunSpec. With --simulate nothing is trained (``check_executor_flags`` refuses --train-spec there)."""
    extra = train_spec_fields(args)
    if not extra or args.simulate:  # check_executor_flags refuses it with --simulate
        return
    from bayes_scaling.design.planner import Proposal
    from training.spec import RunSpec, SpecError

    owned = {**LOOP_FIELDS, **({name: "--wsd" for name in WSD_FIELDS} if wsd else {})}
    for name, setter in owned.items():
        if name in extra:
            raise InputError(f"--train-spec field {name!r}: the loop sets it for each run ({setter}); drop it from "
                             "--train-spec")
    if "seed" in extra and extra["seed"] != args.seed:
        raise InputError(f"--train-spec seed {extra['seed']!r} and --seed {args.seed} disagree: give the seed once, "
                         "as --seed (it seeds the runs and the planner)")
    if len(candidates.keys) == 0:
        return
    spec = spec_maker(args)(Proposal(candidates.keys[0], float(candidates.N[0]), float(candidates.D[0]),
                                     float(candidates.cost[0])))
    try:
        RunSpec.from_dict(spec)
    except (SpecError, TypeError) as err:
        raise InputError(f"--train-spec: {err}") from None


def distinct_harness_runs(candidates, args):
    """The grid without candidates that the harness would train as the same run: it builds the shape whose
    parameter count is nearest each N (``training.sizing.shape_for_params``; coarse at small N, so nearby
    grid sizes share a shape) and trains D rounded down to whole updates (batch_size x context tokens). Of
    the grid sizes that give one shape, the one nearest its count (in log) is kept; likewise for D. Where the
    vocabulary is not known before the corpus is read (a BPE tokenizer without vocab_size), N is left alone."""
    import numpy as np

    from training.sizing import shape_for_params
    from training.spec import RunSpec, SpecError

    extra = train_spec_fields(args)
    step = tokens_per_step(args)

    def keep_nearest(values, realized):
        best = {}
        for v, r in zip(values, realized):
            if r not in best or abs(np.log(v / r)) < abs(np.log(best[r] / r)):
                best[r] = v
        return set(best.values())

    vocab = int(extra.get("vocab_size", 0)) or (256 if extra.get("tokenizer", RunSpec.tokenizer) == "byte" else 0)
    Ns, Ds = np.unique(candidates.N), np.unique(candidates.D)
    keep_n = set(Ns)
    if vocab and not extra.get("n_layers"):
        convention = extra.get("param_convention", RunSpec.param_convention)
        try:
            realized = [shape_for_params(int(round(n)), vocab_size=vocab, context=int(extra.get("context", RunSpec.context)),
                                         aspect_ratio=float(extra.get("aspect_ratio", RunSpec.aspect_ratio)),
                                         convention=convention).n_params(convention) for n in Ns]
        except SpecError as err:
            raise InputError(f"the candidate grid's sizes: {err}") from None
        keep_n = keep_nearest(Ns, realized)
    keep_d = keep_nearest(Ds, [max(1, int(d) // step) * step for d in Ds])
    mask = np.isin(candidates.N, list(keep_n)) & np.isin(candidates.D, list(keep_d))
    if not mask.all():
        _common.info(f"{int((~mask).sum())} of the grid's {len(mask)} candidate runs would train the same model shape "
                     "and token count as another: left out (the harness rounds N to a shape and D to whole updates)")
    return candidates.take(np.flatnonzero(mask))


def tokens_per_step(args) -> int:
    """The harness's tokens per update for the loop's runs: batch_size x context (``--train-spec``
    or the RunSpec defaults)."""
    from training.spec import RunSpec

    extra = train_spec_fields(args)
    return int(extra.get("batch_size", RunSpec.batch_size)) * int(extra.get("context", RunSpec.context))


def run_folder(run_id: str) -> str:
    """A run id as a folder name: characters other than letters, digits and ``._+-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", run_id) or "run"


def spec_maker(args, planner=None):
    """``make_spec(proposal)``: the RunSpec fields a proposal is trained with (``--train-spec``
    added; its ``checkpoint_dir`` is the parent of one folder per run, ``run_folder(run id)``). With a WSD sweep's ``planner``: a branch's specs, after its trunk's extension when the
    trunk must train on first (``design.branches.sweep_specs``), its checkpoints in ``STATE/trunks``."""
    extra = train_spec_fields(args)

    def make_spec(proposal) -> dict | list[dict]:
        base = {**extra, "params": int(round(proposal.N)), "seed": args.seed, "progress": False}
        if planner is None or not proposal.trunk_id:
            if extra.get("checkpoint_dir"):  # one folder per run, so a retry resumes its own run's checkpoint
                base["checkpoint_dir"] = str(Path(str(extra["checkpoint_dir"])) / run_folder(proposal.run_id))
            return {**base, "tokens": int(round(proposal.D)), "run_id": proposal.run_id}
        from bayes_scaling.design.branches import sweep_specs
        from bayes_scaling.design.planner import TRUNKS_DIR

        grid = planner.candidates
        step = tokens_per_step(args)
        base.setdefault("warmup_tokens", max(step, int(0.05 * grid.D.min()) // step * step))
        return sweep_specs(base, proposal.trunk_id, proposal.D, proposal.branch_at, proposal.extend,
                           grid.D[grid.N == proposal.N], cooldown_fraction=planner.settings["wsd_cooldown"],
                           checkpoint_dir=str(planner.directory / TRUNKS_DIR / proposal.trunk_id), run_id=proposal.run_id)

    return make_spec
