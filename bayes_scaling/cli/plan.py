"""``bayes-scaling plan DIR --target-budget C --batch q``: the next runs to do, with gain and cost.

DIR is either

* a planner state directory (it holds ``planner.json``, written by ``bayes-scaling loop --state DIR``
  or ``Planner.create``): the planner refits on its done runs and proposes q runs that account for
  its pending ones. They are recorded as pending (so the next ``plan`` proposes others) unless
  ``--dry-run``; ``--target-budget`` replaces the saved target. Or
* a saved fit (``bayes-scaling fit RUNS --method nuts --out DIR``): its posterior draws score a log
  grid of candidates (``--n-range``, ``--d-range``, ``--max-run-cost``; by default N and D from the
  fitted runs' smallest to 10x their largest, cost at most 10x the largest run). Nothing is written.

Gain is the expected information gain (nats) about log N_opt(C*) from the run's loss; runs are
chosen greedily by gain per FLOP. A planner made by ``loop --wsd`` proposes WSD branches (its
trunk, branch point and the trunk tokens to train first are printed under the table; cost = the
cool-down plus those tokens), at most one per trunk per batch.

Pool-based planning (saved fit): ``--candidates POOL.csv`` (the runs you can do: columns N, D,
optionally cost and run_id; other columns such as U are kept out of the way) replaces the grid, and
``--target TARGET.csv`` (the runs you will train at the target scale: N, D) and/or
``--target-budget C`` say where predictions matter. With either, the utility is the target-region
one (``design.target``: expected fraction of the predictive variance removed over the target runs,
by default the IsoFLOP slice 6ND = C* around N_opt, jointly with log N_opt(C*), per cost^0.4),
under the saved fit's own model (the extrapolating default carries the drift beyond its runs);
``--utility eig`` keeps the EIG about log N_opt. ``--budget F`` caps what the proposals cost
together; with a pool and no ``--batch`` it is filled: pool runs are added while one still fits (in the
pool's cost units where its cost column is not FLOPs). A line under the table gives the total. Nothing outside
the pool or over the budget is proposed; pool runs that are the fit's own (by run_id) are left out,
and those repeating a fitted run's N and D are marked. From a grouped fit's member, a pool or target
with a ``group`` column is read for that group's rows only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bayes_scaling.cli import _common
from bayes_scaling.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="propose the next runs: by information gain per FLOP, or from a pool of yours for "
                                    "the target runs (--candidates, --target)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="a planner state directory (planner.json) or a saved fit (bayes-scaling fit --out)")
    p.add_argument("--target-budget", type=float, default=None, help="C*, the FLOPs of the big run (a saved fit needs it or --target)")
    p.add_argument("--batch", type=int, default=None,
                   help="how many runs to propose (q; default 1, or with --candidates and --budget as many as it pays for)")
    p.add_argument("--dry-run", action="store_true", help="planner state: do not record the proposals as pending")
    p.add_argument("--targets", nargs="+", default=["log_N_opt"], choices=["log_N_opt", "log_L_opt"],
                   help="saved fit: the quantities to learn about (default log_N_opt)")
    p.add_argument("--misfit", default=None, metavar="auto|KAPPA",
                   help="score under the law plus a misfit term (docs/design.md): 'auto' fits it to the residuals of "
                        "the runs so far, a number kappa fixes its sd at kappa x sigma (0: off; default: the planner's "
                        "setting, off for a saved fit; given with a planner state it becomes the planner's setting)")
    add_candidate_options(p)
    add_pool_options(p)
    p.add_argument("--budget", type=float, default=None,
                   help="saved fit: what the proposed runs may cost together, in FLOPs (or the pool's cost units); "
                        "with --candidates and no --batch, pool runs are proposed until it is spent (default: no cap)")
    p.add_argument("--utility", choices=["target", "eig"], default=None,
                   help="saved fit: target-region utility or EIG about log N_opt(C*) (default: target with "
                        "--candidates or --target, else eig)")
    p.add_argument("--shape-span", type=parse_span, default=None, metavar="FACTOR|off",
                   help="target utility: score only runs with N within FACTOR of N_opt at their compute (default: 3, "
                        "widened to the target runs' shapes; 'off': every candidate)")
    p.add_argument("--shape-region", action="store_true",
                   help="with an explicit --shape-span: widen that band to the target runs' own shapes (--target, or "
                        "the IsoFLOP slice at C*) where they reach beyond it (the default band always is)")
    p.add_argument("--json", action="store_true", help="print the proposals as JSON")
    p.set_defaults(func=run)


def add_pool_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--candidates", default=None, metavar="POOL.csv",
                   help="the runs that can be done (N, D[, cost, run_id, ...]); replaces the candidate grid")
    p.add_argument("--target", default=None, metavar="TARGET.csv",
                   help="the runs to predict well (N, D): the target region (default: the IsoFLOP slice at C*)")
    p.add_argument("--no-unit-check", action="store_true",
                   help="accept pool and target runs whose N or tokens per parameter lie outside what any real run has")


def add_candidate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="candidate parameter counts")
    p.add_argument("--d-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="candidate token counts")
    p.add_argument("--grid-points", type=int, default=20, help="log-grid points for N and for D (default 20)")
    p.add_argument("--max-run-cost", type=float, default=None, help="per-run cap on 6ND FLOPs")


def candidates_from_args(args, n_range, d_range, max_cost):
    """A candidate grid from the options, with the given defaults where an option is absent."""
    from bayes_scaling.design.candidates import grid

    return grid(n_range=tuple(args.n_range or n_range), d_range=tuple(args.d_range or d_range),
                n_points=args.grid_points, d_points=args.grid_points,
                max_cost=args.max_run_cost if args.max_run_cost is not None else max_cost)


def run(args) -> int:
    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    directory = Path(args.dir)
    args.fill = args.batch is None and args.budget is not None and args.candidates is not None  # spend --budget on the pool
    args.batch = 1 if args.batch is None else args.batch
    label = "choosing runs within --budget" if args.fill else f"choosing {args.batch} run{'s' if args.batch > 1 else ''}"
    with _common.ticker(label, quiet=args.json) as tick:
        args.ticker = tick
        if (directory / "planner.json").exists():
            proposals, target = _from_planner(args, directory)
        elif (directory / "meta.json").exists():
            proposals, target = _from_fit(args, directory)
        elif _grouped(directory):
            from bayes_scaling.grouped import member_paths

            members = [str(directory / rel) for rel in member_paths(directory) if Path(rel).name != "population"]
            raise InputError(f"{directory} is a grouped fit: plan from one group's fit, e.g. bayes-scaling plan "
                             f"{members[0] if members else directory / 'groups' / 'GROUP'} ... (its members: "
                             f"{', '.join(members[:6])}{' ...' if len(members) > 6 else ''})")
        else:
            raise InputError(f"{directory} is neither a planner state directory (planner.json) nor a saved fit "
                             "(meta.json)")
    unit = getattr(args, "cost_unit", "FLOPs")
    if args.fill and proposals:
        pass  # the total under the table says what --budget bought
    elif args.fill:
        _common.info(f"no run proposed within --budget: of {', '.join(args.pool_left)}")
    elif len(proposals) < args.batch and getattr(args, "pool_left", None):  # a pool: say which filter left how many
        spent = sum(p.cost for p in proposals)
        ran_out = (f"; then the rest of --budget ({args.budget - spent:.3g} {unit}) paid for none of the others"
                   if getattr(args, "budget", None) is not None and proposals else "")
        asked = "the 1 run" if args.batch == 1 else f"the {args.batch} runs"
        _common.info(f"{len(proposals)} of {asked} asked for: of {', '.join(args.pool_left)}{ran_out}")
    elif 0 < len(proposals) < args.batch:
        state = (directory / "planner.json").exists()
        _common.info(f"only {_common.plural(len(proposals), 'affordable candidate run')} "
                     f"{'was' if len(proposals) == 1 else 'were'} left of the {args.batch} asked for; proposing " + ("it" if len(proposals) == 1 else "them all")
                     + (" (the rest of the planner's candidates are done, pending or over its experiment budget)"
                        if state else " (widen --n-range/--d-range, --grid-points or --max-run-cost for more)"))
    if (directory / "planner.json").exists():
        from bayes_scaling.design.planner import Planner

        args.utility_used = "target" if Planner.open(directory).settings["strategy"] == "target" else "eig"
    utility = getattr(args, "utility_used", "eig")
    budget = getattr(args, "budget", None)
    if args.json:
        wsd = any(getattr(p, "trunk_id", "") for p in proposals)
        _common.print_json({"target_budget": target, "utility": utility, "budget": budget, "cost_unit": unit,
                            "total_cost": float(sum(p.cost for p in proposals)),
                            "proposals": [proposal_json(p, wsd, p.run_id in getattr(args, "repeats", ()))
                                          for p in proposals]})
    else:
        print(proposals_text(proposals, target, utility, unit=unit, budget=budget,
                             repeats=getattr(args, "repeats", ())))
    return 0


def proposal_json(proposal, wsd: bool, repeat: bool) -> dict:
    """One proposal as JSON: the WSD fields only in a WSD sweep's; ``repeats_fitted_run`` where it repeats
    the N and D of a fitted run."""
    out = dict(proposal.__dict__)
    if not wsd:
        for field in ("trunk_id", "branch_at", "extend"):
            out.pop(field, None)
    if repeat:
        out["repeats_fitted_run"] = True
    return out


def _grouped(directory: Path) -> bool:
    from bayes_scaling.grouped import is_grouped

    return is_grouped(directory)


GAIN_LABELS = {"eig": "expected information about log N_opt(C*), nats",
               "target": "expected share of the predictive variance removed, half over the target runs' losses, "
                         "half of log N_opt(C*)"}


def proposals_text(proposals, target_budget: float, utility: str = "eig", *, unit: str = "FLOPs",
                   budget: float | None = None, repeats=()) -> str:
    """The proposals as a table; its last column is what ranked them: gain per EFLOP (eig), or gain per
    EFLOP^gamma (the target utility's cost weighting, ``design.target.DEFAULT_COST_EXPONENT``; per
    cost^gamma where the pool's costs are in its own ``unit``); then the total against ``budget``. Runs in
    ``repeats`` (ids) repeat a fitted run's N and D: marked ^."""
    from bayes_scaling.design.target import DEFAULT_COST_EXPONENT

    if not proposals:
        return "no affordable candidate run left"
    gamma = 1.0 if utility == "eig" else DEFAULT_COST_EXPONENT
    flops = unit == "FLOPs"
    scale = 1e18 if flops else 1.0
    width = max(13, len(f"cost ({unit})"))
    rank = ("gain per EFLOP" if gamma == 1 else f"gain / EFLOP^{gamma:g}") if flops else f"gain / cost^{gamma:g}"
    lines = [f"Proposed runs for C* = {target_budget:.3g} FLOPs (gain: {GAIN_LABELS[utility]}; "
             f"chosen greedily by {rank}, each given the ones above, so a later run's score may be higher)",
             f"{'#':>3}  {'run_id':<22} {'N':>8} {'D':>8} {'D/N':>7} {f'cost ({unit})':>{width}} {'gain':>9} {rank:>15}"]
    for i, p in enumerate(proposals, 1):
        gain = "-" if np.isnan(p.gain) else f"{p.gain:.3g}"
        per = "-" if np.isnan(p.gain) else f"{p.gain / (p.cost / scale) ** gamma:.3g}"
        mark = " ^" if p.run_id in repeats else ""
        lines.append(f"{i:>3}  {p.run_id + mark:<22} {_common.format_si(p.N):>8} {_common.format_si(p.D):>8} "
                     f"{p.D / p.N:>7.1f} {p.cost:>{width}.3g} {gain:>9} {per:>15}")
    total = float(sum(p.cost for p in proposals))
    lines.append(f"total: {_common.plural(len(proposals), 'run')}, {total:.3g} {unit}"
                 + (f" of --budget {budget:.3g} ({total / budget:.0%})" if budget else ""))
    if any(p.run_id in repeats for p in proposals):
        lines.append("^ repeats the N and D of a fitted run: it measures the noise there, not a new point")
    for p in proposals:
        if getattr(p, "trunk_id", ""):
            extend = f"; trains it {p.extend:.4g} tokens first" if p.extend > 0 else ""
            lines.append(f"     {p.run_id}: a WSD branch of trunk {p.trunk_id} at {p.branch_at:.4g} tokens{extend}")
    if any(np.isnan(p.gain) for p in proposals):
        lines.append("(gain '-': a space-filling starting run, chosen before there are enough runs to fit)")
    return "\n".join(lines)


def _from_planner(args, directory):
    """The proposals from a planner state; a note on stderr where the refit they rest on failed its
    sampler checks (``Planner.status``'s ``refit_verdict``)."""
    from bayes_scaling.design.planner import Planner
    from bayes_scaling.design.refit import verdict_head

    refuse_fit_only_options(args, directory)
    planner = Planner.open(directory)
    args.cost_unit = planner.cost_unit
    proposals, target = _planner_proposals(args, planner)
    verdict = planner.refitter.last_warning
    if verdict:
        _common.info("note: the refit behind these proposals failed its sampler checks ("
                     + verdict_head(verdict) + "); they rest on that posterior")
    return proposals, target


# Options that shape planning from a saved fit; a planner state has its own (set when its loop began).
FIT_ONLY_OPTIONS = (("budget", None), ("max_run_cost", None), ("n_range", None), ("d_range", None), ("grid_points", 20),
                    ("candidates", None), ("target", None), ("utility", None), ("targets", ["log_N_opt"]),
                    ("no_unit_check", False))


def refuse_fit_only_options(args, directory) -> None:
    """A planner state plans by the budget, candidates and target it was made with: options that would
    change them from ``plan`` were ignored, so they are refused, named."""
    given = [f"--{name.replace('_', '-')}" for name, default in FIT_ONLY_OPTIONS if getattr(args, name, default) != default]
    if given:
        raise InputError(f"{directory} is a planner state, which plans by the experiment budget, candidates and target "
                         f"it was made with (bayes-scaling loop --state); {', '.join(given)} appl"
                         f"{'ies' if len(given) == 1 else 'y'} to planning from a saved fit only. Drop "
                         f"{'it' if len(given) == 1 else 'them'}, or start a new loop state with the options you want")


def _planner_proposals(args, planner):
    from bayes_scaling.design.planner import propose

    if args.target_budget is not None:
        if not args.target_budget > 0:
            raise InputError(f"--target-budget must be positive, got {args.target_budget}")
        planner.settings["target_budget"] = float(args.target_budget)
    if args.misfit is not None:
        planner.settings["discrepancy"] = parse_misfit(args.misfit, 0.0)
    if args.shape_span is not None:
        if planner.settings["strategy"] != "target":
            raise InputError(f"--shape-span applies to the target utility; this planner's strategy is "
                             f"{planner.settings['strategy']!r}")
        off = args.shape_span == "off"
        planner.settings["shape_span"] = None if off else float(args.shape_span)
        if off:
            planner.settings["shape_region"] = False
    if args.shape_region:
        planner.settings["shape_region"] = True
    if args.shape_span is not None or args.shape_region:
        planner.config  # checks them
    left = len(planner.remaining())
    batch = max(1, min(args.batch, left))  # more than there are candidates cannot be proposed
    _tick(args, f"scoring {left} candidate runs for a batch of {batch}")
    if not args.dry_run:
        return planner.ask(batch), planner.settings["target_budget"]
    if planner.wsd:  # a WSD sweep's batch depends on its trunks: the planner's own choice, not recorded
        return planner.preview(batch), planner.settings["target_budget"]
    s = planner.settings
    if len(planner.done) < len(planner.law.param_names) + 1:
        raise InputError(f"the planner has {len(planner.done)} finished runs; a dry run needs enough to fit "
                         f"({len(planner.law.param_names) + 1})")
    if s["strategy"] == "target":
        return planner.target_proposals(planner.remaining(), batch), s["target_budget"]
    misfit = parse_misfit(args.misfit, s.get("discrepancy", 0.0))
    return propose(planner.law, planner.draws(), planner.remaining(), target_budget=s["target_budget"], q=batch,
                   targets=s["targets"], score="eig_per_cost", estimator=s["estimator"], likelihood=s["likelihood"],
                   nu=s["nu"], done=planner.done_runs(), done_loss=[r["loss"] for r in planner.done],
                   discrepancy=misfit), s["target_budget"]


def _from_fit(args, directory):
    from bayes_scaling.design.planner import propose
    from bayes_scaling.posterior import Posterior

    pool_mode = args.candidates is not None or args.target is not None
    if args.target_budget is not None and not 0 < args.target_budget < np.inf:
        raise InputError(f"--target-budget must be positive, finite FLOPs, got {args.target_budget}")
    if args.target_budget is None and args.target is None:
        raise InputError("a saved fit needs --target-budget C* (positive FLOPs) or --target TARGET.csv")
    post = Posterior.load(directory)
    if hasattr(post.law, "with_unique_tokens"):
        raise InputError(_common.DATA_CONSTRAINED.format(what="planning from a fit"))
    if post.method == "nuts-hierarchical-population":
        raise InputError(f"{directory} is a grouped fit's population (a new group's law, fitted to every group's runs, "
                         "none of them its own): plan from one group's fit, DIR/groups/NAME")
    note_planning_model(args, post)
    _common.warn_untrusted([(None, post)])
    if post.num_draws < 2 or "sigma" not in post.idata["posterior"]:
        raise InputError(f"{directory} holds {post.num_draws} draw(s) without sigma; planning needs a posterior "
                         "(bayes-scaling fit --method nuts)")
    runs = post.runs
    if args.candidates is not None:
        from bayes_scaling.design.candidates import read_pool

        from bayes_scaling.design.candidates import cost_unit

        candidates, frame = read_pool(args.candidates, check_units=not args.no_unit_check)
        note_unread_loss(frame, "--candidates", "a pool lists runs to do; fit the finished ones")
        candidates = own_group_rows(candidates, frame, post, "--candidates")
        candidates = without_fitted_runs(candidates, runs)
        args.repeats = note_fitted_repeats(candidates, runs)
        args.cost_unit = cost_unit(candidates) if len(candidates) else "FLOPs"
        args.pool_left = [f"the pool's {_common.plural(len(candidates), 'run')}"]  # what each filter left, for the note on a short batch
        if args.max_run_cost is not None:
            candidates = candidates.affordable(args.max_run_cost)
            args.pool_left.append(f"{len(candidates)} cost at most --max-run-cost {args.max_run_cost:.3g}")
    else:
        candidates = candidates_from_args(args, (runs.N.min(), 10 * runs.N.max()), (runs.D.min(), 10 * runs.D.max()),
                                          10 * runs.C.max())
    if args.budget is not None:
        unit = getattr(args, "cost_unit", "FLOPs")
        if not 0 < args.budget < np.inf:
            raise InputError(f"--budget must be positive and finite ({unit}), got {args.budget}")
        cheapest = float(candidates.cost.min()) if len(candidates) else None
        candidates = candidates.affordable(args.budget)
        if hasattr(args, "pool_left"):
            args.pool_left.append(f"{len(candidates)} cost at most --budget {args.budget:.3g}"
                                  + (f" (the cheapest costs {cheapest:.3g} {unit})" if not len(candidates) and cheapest else ""))
    if len(candidates) == 0:
        return [], args.target_budget or (target_scale(read_target(args, post)) if args.target is not None else None)
    args.utility_used = args.utility or ("target" if pool_mode else "eig")
    if args.shape_span is not None and args.shape_span != "off" and args.utility_used != "target":
        raise InputError(f"--shape-span is a factor >= 1 for the target utility (--candidates or --utility target), "
                         f"got {args.shape_span} with the {args.utility_used} utility")
    if args.shape_region and (args.shape_span == "off" or args.utility_used != "target"):
        raise InputError("--shape-region widens the compute-optimal band of the target utility: not with "
                         "--shape-span off or the eig utility")
    if args.shape_span is None and args.utility_used == "target":
        from bayes_scaling.design.target import SHAPE_SPAN  # the default band (the pool benchmark's rule): 3, widened

        args.shape_span, args.shape_region = SHAPE_SPAN, True
    elif args.shape_span == "off":
        args.shape_span, args.shape_region = None, False
    if args.utility_used == "target":
        return _target_from_fit(args, post, candidates)
    if args.target_budget is None:
        raise InputError("--utility eig needs --target-budget C* (positive FLOPs)")
    draws = {**post.theta(), "sigma": post.draws("sigma")}
    from bayes_scaling.design.candidates import Candidates

    done = Candidates(runs.N, runs.D, runs.C, tuple(str(r) for r in runs.frame["run_id"]))
    batch = len(candidates) if args.fill else max(1, min(args.batch, len(candidates)))  # at most every candidate
    _tick(args, f"scoring {len(candidates)} candidate runs for a batch of {batch}")
    proposals = propose(post.law, draws, candidates, target_budget=args.target_budget, q=batch,
                        targets=args.targets, likelihood=post.meta.get("likelihood", "student_t"),
                        nu=post.meta.get("nu", 5.0), done=done, done_loss=runs.loss,
                        discrepancy=parse_misfit(args.misfit, 0.0), budget=args.budget)
    return proposals, args.target_budget


def note_planning_model(args, post) -> None:
    """One line on stderr: whose fit the proposals come from (a grouped fit's member by its group) and the model
    its utility reads: the target utility plans under the fit's model, drift included; the EIG utility scores
    the law's draws alone (docs/design.md, 'Which model the refits use')."""
    group = _common.member_group(None, post)
    target = args.candidates is not None or args.target is not None or args.utility == "target"
    reads = ("the fit's model, drift included" if target and post.meta.get("extrapolation") else
             "the law's draws (its drift left out: the EIG utility is defined on the law's parameters)"
             if post.meta.get("extrapolation") else "the law's draws")
    whose = f"[{group}]'s fit" if group else "the fit"
    _common.info(f"planning from {whose} (model: {post.model}); the utility reads {reads}")


def note_fitted_repeats(candidates, runs) -> set:
    """Pool runs with the N and D of a run the fit already has are kept (a repeat measures the noise, and
    the utility scores it so), with a note naming them; their keys are returned (the table marks them)."""
    fitted = np.column_stack([np.log(runs.N), np.log(runs.D)])
    repeats = [key for key, n, d in zip(candidates.keys, candidates.N, candidates.D)
               if np.any(np.all(np.abs(fitted - [np.log(n), np.log(d)]) < 1e-6, axis=1))]
    if repeats:
        _common.info(f"note: {_common.plural(len(repeats), 'pool run')} repeat{'s' if len(repeats) == 1 else ''} the N "
                     f"and D of a fitted run ({', '.join(repeats[:5])}{' ...' if len(repeats) > 5 else ''}): a repeat "
                     "measures the noise at a point the fit has, not a new one (marked ^ if proposed)")
    return set(repeats)


def without_fitted_runs(candidates, runs):
    """The pool less the runs the fit already has by run_id (done: nothing to propose), with a note."""
    fitted = {str(r) for r in runs.frame["run_id"]}
    mine = [k for k in candidates.keys if k in fitted]
    if not mine:
        return candidates
    _common.info(f"note: {_common.plural(len(mine), 'pool run')} {'is' if len(mine) == 1 else 'are'} the fit's own "
                 f"(by run_id: {', '.join(mine[:5])}{' ...' if len(mine) > 5 else ''}): left out")
    return candidates.without(mine)


def own_group_rows(table, frame, post, option: str):
    """From a grouped fit's member, a pool or target table with a ``group`` column is read for that group's
    rows only (a note says how many others were left out); one with none of them is refused. From any other
    fit the column is not read (a note says so where it holds several groups)."""
    if "group" not in frame.columns:
        return table
    groups = frame["group"].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())
    group = _common.member_group(None, post)
    if group is None:
        if groups.nunique() > 1:
            _common.info(f"note: {option}'s group column ({groups.nunique()} groups) is not read: the fit is not a "
                         "grouped fit's member, so every row is planned for this fit")
        return table
    blank = np.flatnonzero((groups == "").to_numpy())
    if len(blank):
        raise InputError(f"{option}: rows {', '.join(str(i + 1) for i in blank[:5])}{' ...' if len(blank) > 5 else ''}: "
                         f"column 'group' is empty; planning for group {group!r} reads each row's group (fill it in, "
                         "or drop the column)")
    mine = (groups == group).to_numpy()
    if not mine.any():
        raise InputError(f"{option}: no row of group {group!r}, whose fit this is (the table's groups: "
                         f"{', '.join(sorted(groups.unique(), key=str)[:8])}); give that group's rows, or drop the group column")
    if not mine.all():
        _common.info(f"note: {option}: planning for group {group!r}, so its {_common.plural(int(mine.sum()), 'row')} "
                     f"{'is' if mine.sum() == 1 else 'are'} read and the {int((~mine).sum())} of other groups left out")
    return table.take(mine)


def note_unread_loss(frame, option: str, why: str) -> None:
    """A loss column in a pool or target table is not read: say so."""
    if "loss" in frame.columns and frame["loss"].notna().any():
        _common.info(f"note: {option}'s loss column is not read ({why})")


def note_target_budget(target_budget: float, table) -> None:
    """--target-budget beside a --target table whose runs lie at other compute: the N_opt half of the
    utility is then about another scale than the region half; say so."""
    compute = target_compute(table)
    lo, hi = float(np.min(compute)), float(np.max(compute))
    if not lo / 2 <= target_budget <= 2 * hi:
        _common.info(f"note: --target-budget {target_budget:.3g} lies outside the target runs' compute "
                     f"({lo:.3g} to {hi:.3g} FLOPs): N_opt is scored at {target_budget:.3g}, the region at the "
                     "target runs; give one scale unless that is meant")


def _target_from_fit(args, post, candidates):
    """Greedy batch by the target-region utility under the saved fit's posterior."""
    from bayes_scaling.design.planner import Proposal
    from bayes_scaling.design.target import TargetRegion, choose, in_band, posterior_columns, target_matrix

    region, target_budget = None, args.target_budget
    if args.target is not None:
        from bayes_scaling.design.candidates import read_pool

        table = read_target(args, post)
        region = TargetRegion(table.N, table.D)
        if target_budget is not None:
            note_target_budget(target_budget, table)
        else:
            target_budget = target_scale(table)
            _common.info(f"note: C* = {target_budget:.3g} FLOPs, the largest compute of the --target runs "
                         "(--target-budget C for another)")
    Z, used = target_matrix(post, region, target_budget)
    candidates = candidates.take(in_band(post, candidates.N, candidates.D, args.shape_span,
                                         used if args.shape_region else None))
    if hasattr(args, "pool_left") and args.shape_span is not None:
        args.pool_left.append(f"{len(candidates)} lie in the compute-optimal band (--shape-span {args.shape_span:g}"
                              + (", widened to the target's shapes" if args.shape_region else "")
                              + "; --shape-span off scores every run)")
    batch = len(candidates) if args.fill else max(1, min(args.batch, len(candidates)))
    _tick(args, f"scoring {len(candidates)} candidate runs for a batch of {batch}")
    chosen, gains = choose(Z, posterior_columns(post, candidates.N, candidates.D), post.draws("sigma"), candidates.cost,
                           batch, likelihood=post.meta.get("likelihood", "student_t"), nu=post.meta.get("nu", 5.0),
                           budget=args.budget)
    proposals = [Proposal(candidates.keys[j], float(candidates.N[j]), float(candidates.D[j]), float(candidates.cost[j]),
                          float(g)) for j, g in zip(chosen, gains)]
    return proposals, target_budget


def read_target(args, post):
    """The --target table as candidates: its loss column not read, a grouped member's own group's rows."""
    from bayes_scaling.design.candidates import read_pool

    table, frame = read_pool(args.target, check_units=not args.no_unit_check, target=True)
    note_unread_loss(frame, "--target", "the target runs say where predictions matter; `predict --runs` compares "
                                        "a table's losses with the fit's")
    return own_group_rows(table, frame, post, "--target")


def target_compute(table) -> np.ndarray:
    """A target table's compute in FLOPs: its C (or flops) column, or 6ND where it has none or its cost column
    is in other units (GPU-hours: ``cost_unit``)."""
    from bayes_scaling.design.candidates import cost_unit, flops_6nd

    return table.cost if cost_unit(table) == "FLOPs" else flops_6nd(table.N, table.D)


def target_scale(table) -> float:
    """C* from a target table: its largest compute (FLOPs)."""
    return float(f"{float(target_compute(table).max()):.12g}")


def parse_span(text: str):
    """--shape-span: 'off', or a factor >= 1."""
    if str(text).strip().lower() == "off":
        return "off"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a factor >= 1 or 'off', got {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"a factor >= 1 or 'off', got {text!r}")
    return value


def parse_misfit(value, default):
    """--misfit: None (the default), 'auto', or a number kappa >= 0."""
    if value is None:
        return default
    if value == "auto":
        return "auto"
    try:
        kappa = float(value)
    except ValueError:
        kappa = -1.0
    if not kappa >= 0:
        raise InputError(f"--misfit must be 'auto' or a number >= 0, got {value!r}")
    return kappa


def _tick(args, label: str) -> None:
    """Say on the status line (``run``'s ticker, where there is one) what the wait is for."""
    tick = getattr(args, "ticker", None)
    if tick is not None:
        tick.update(label)
