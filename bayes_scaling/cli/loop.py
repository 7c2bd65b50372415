"""``bayes-scaling loop --target-budget C --experiment-budget F --workers k [--simulate]``.

The closed loop: ask the planner for runs, run them on k workers, tell it each result as it comes
back (which refits the posterior), print progress (FLOPs spent, the width of the interval of
log N_opt(C*) now), and keep the workers busy until the stop rule holds: the interval is at most
``--tolerance`` wide, the experiment budget is spent, or no affordable candidate is left.

Workers. ``--simulate`` answers each run from a simulated ground truth (``design.Simulator``: the
Chinchilla law at ``--truth``, Epoch AI's estimates by default, plus log-normal noise
``--noise-sigma``), instantly. Otherwise each run is ``python -m training --params N --tokens D``
in a child process (a local pool of k at a time), which keeps the harness's bf16 JAX settings out
of this float64 process; ``--store`` also appends each RunResult to a run store.

State. ``--state DIR`` keeps the planner's state (``DIR/planner.json``, rewritten after every result);
rerunning the same command resumes it, restarting the runs that were pending when it stopped.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from bayes_scaling.cli import _common
from bayes_scaling.cli.plan import add_candidate_options, candidates_from_args
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
    p.add_argument("--state", default=None, help="planner state directory (default: a temporary one)")
    p.add_argument("--simulate", action="store_true", help="answer runs from a simulated ground truth")
    p.add_argument("--truth", default=None, metavar="E,A,B,ALPHA,BETA", help="simulated truth (default Epoch AI 2024)")
    p.add_argument("--noise-sigma", type=float, default=0.01, help="simulated noise on log-loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", nargs="+", default=["log_N_opt"], choices=["log_N_opt", "log_L_opt"],
                   help="what the runs should inform (default log_N_opt; both: the joint information)")
    p.add_argument("--strategy", default="eig_per_cost", choices=["eig_per_cost", "eig", "uncertainty", "random"])
    p.add_argument("--draws", type=int, default=300, help="NUTS warmup and draws per chain at each refit (2 chains)")
    p.add_argument("--n-init", type=int, default=8, help="space-filling runs before the first fit")
    p.add_argument("--max-runs", type=int, default=None, help="stop after this many results")
    p.add_argument("--store", default=None, help="harness: also append each RunResult to this run store")
    p.add_argument("--train-spec", default=None, help='harness: extra RunSpec fields as JSON, e.g. \'{"context": 64}\'')
    add_candidate_options(p)
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from bayes_scaling.design.planner import STATE_FILE, Planner

    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    state_dir = Path(args.state) if args.state else Path(tempfile.mkdtemp(prefix="bayes-scaling-loop-"))
    if (state_dir / STATE_FILE).exists():
        planner = Planner.open(state_dir)
        _common.info(f"resuming {state_dir}: {len(planner.done)} runs done, {len(planner.pending)} pending")
    else:
        defaults = SIMULATE_GRID if args.simulate else HARNESS_GRID
        candidates = candidates_from_args(args, defaults["n_range"], defaults["d_range"], defaults["max_cost"])
        planner = Planner.create(state_dir, candidates, target_budget=args.target_budget,
                                 experiment_budget=args.experiment_budget, tolerance=args.tolerance, level=args.level,
                                 targets=args.targets, strategy=args.strategy, n_init=args.n_init, num_warmup=args.draws,
                                 num_draws=args.draws, seed=args.seed)
        _common.info(f"planner state in {state_dir}: {len(candidates)} candidate runs")
    worker = _simulator(args) if args.simulate else _harness(args)
    status = drive(planner, worker, workers=args.workers, simulate=args.simulate, max_runs=args.max_runs)
    if args.json:
        _common.print_json(status)
    else:
        print(status_text(status))
    return 0


def drive(planner, worker, *, workers: int, simulate: bool, max_runs: int | None = None) -> dict:
    """Keep ``workers`` runs going; tell each result, print progress; return the final status."""
    pool = _Immediate() if simulate else ThreadPoolExecutor(max_workers=workers)
    running: dict[Future, str] = {}
    for run_id, pending in list(planner.pending.items()):  # restart what was pending when we stopped
        running[pool.submit(worker, _proposal(run_id, pending))] = run_id
    told, stopping, status = 0, False, planner.status()
    try:
        while True:
            free = workers - len(running)
            if not stopping and free > 0 and (max_runs is None or told + len(running) < max_runs):
                for p in planner.ask(min(free, max_runs - told - len(running)) if max_runs else free):
                    running[pool.submit(worker, p)] = p.run_id
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                run_id = running.pop(future)
                try:
                    result = future.result()
                except InputError as err:  # the harness rejected the spec: count it failed, go on
                    result = {"status": "failed", "error": str(err), "loss": None}
                planner.tell(run_id, result)
                told += 1
                status = planner.status()
                _common.info(progress_line(told, run_id, result, status))
                stopping = stopping or status["stop"] or (max_runs is not None and told >= max_runs)
    finally:
        pool.shutdown(wait=True)
    return status


def progress_line(i: int, run_id: str, result: dict, status: dict) -> str:
    loss = result.get("loss")
    loss_text = f"loss {loss:.4f}" if loss is not None else f"FAILED ({result.get('error', '')[:60]})"
    width = status["log_N_opt"]["width"] if status["log_N_opt"] else float("nan")
    return (f"[{i:>3}] {run_id:<24} {loss_text} | FLOPs {status['flops_spent']:.3g} / {status['experiment_budget']:.3g}"
            f" | {status['level']:.0%} width of log N_opt(C*) {width:.3f} (stop at {status['tolerance']:.3g})")


def status_text(status: dict) -> str:
    lines = [f"runs: {status['runs_done']} done, {status['runs_failed']} failed; "
             f"FLOPs spent {status['flops_spent']:.3g} of {status['experiment_budget']:.3g}",
             f"stop: {status['reason'] or 'not met'}"]
    import math

    for name, label in (("log_N_opt", "N_opt"), ("log_L_opt", "L_opt")):
        interval = status[name]
        if interval:
            lo, med, hi = (math.exp(interval[k]) for k in ("lo", "median", "hi"))
            fmt = _common.format_si if label == "N_opt" else (lambda v: f"{v:.4f}")
            lines.append(f"{label}({status['target_budget']:.3g}) = {fmt(med)} [{fmt(lo)}, {fmt(hi)}] "
                         f"({status['level']:.0%}; width of log {interval['width']:.3f})")
    return "\n".join(lines)


class _Immediate:
    """An executor that runs each job at submission (the simulator: deterministic order)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001  (handed to the caller through the future)
            future.set_exception(err)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _proposal(run_id: str, pending: dict):
    from bayes_scaling.design.planner import Proposal

    return Proposal(run_id, pending["N"], pending["D"], pending["cost"], pending.get("gain", float("nan")))


def _simulator(args):
    from bayes_scaling.design.oracles import Simulator
    from bayes_scaling.laws import EPOCH_2024

    truth = dict(EPOCH_2024)
    if args.truth:
        values = [float(v) for v in args.truth.split(",")]
        if len(values) != 5:
            raise InputError(f"--truth expects E,A,B,ALPHA,BETA, got {args.truth!r}")
        truth = dict(zip(("E", "A", "B", "alpha", "beta"), values))
    return Simulator(truth=truth, sigma=args.noise_sigma, seed=args.seed)


def _harness(args):
    extra = {}
    if args.train_spec:
        try:
            extra = json.loads(args.train_spec)
        except json.JSONDecodeError as err:
            raise InputError(f"--train-spec: expected a JSON object ({err})") from None
    store = None
    if args.store:
        from bayes_scaling.runs.store import RunStore

        store = RunStore(args.store)

    def work(proposal) -> dict:
        spec = {**extra, "params": int(round(proposal.N)), "tokens": int(round(proposal.D)), "seed": args.seed,
                "run_id": proposal.run_id, "progress": False}
        result = train_child(spec)
        if store is not None:
            store.append(result, source="loop")
        return result

    return work


def train_child(spec: dict) -> dict:
    """One run of ``python -m training`` in a child process (``bayes-scaling train``'s runner); its
    RunResult as a dict. A child that dies without a result is reported as a failed run."""
    from bayes_scaling.cli.train import train_in_subprocess

    try:
        return train_in_subprocess(spec, quiet=True)
    except RuntimeError as err:
        return {"status": "failed", "loss": None, "error": str(err).splitlines()[0]}
