"""``bayes-scaling backtest RUNS``: fit each group's cheaper runs, predict its held-out expensive
ones, and say how often the intervals covered what the runs got (``bayes_scaling.backtest``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes_scaling.cli import _common
from bayes_scaling.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    from bayes_scaling.cli.fit import add_fit_options, add_hierarchical_options

    p = sub.add_parser("backtest", help="leave-future-out backtest: fit the cheaper runs, score predictions of the rest")
    p.add_argument("runs", help="run table (.csv, .parquet, .sqlite run store) or a bundled dataset: "
                                "chinchilla, marin, porian, gadre")
    p.add_argument("--group-by", metavar="COLUMN", help="backtest each group in COLUMN separately (one fit per group, unless --hierarchical)")
    holdout = p.add_mutually_exclusive_group()
    holdout.add_argument("--holdout-top-budgets", type=int, metavar="K",
                         help="hold out each group's top K IsoFLOP budgets (default 3 where there is a budget column)")
    holdout.add_argument("--holdout-fraction", type=float, metavar="F",
                         help="hold out each group's top fraction F of compute (default 0.3 without a budget column)")
    p.add_argument("--budget-column", default="auto", metavar="COLUMN",
                   help="the IsoFLOP budget column (default: 'budget' where present; 'none': split on compute)")
    add_fit_options(p, model_help="with --method nuts: 'extrapolating' (default) adds the law's own error beyond the "
                                  "fitted runs (docs/extrapolation.md); 'plain': the law alone. With --group-by too: each "
                                  "group is fitted on its own, by this model (with --hierarchical: one joint fit, each "
                                  "group's drift added as fit --group-by adds it)")
    p.add_argument("--hierarchical", action="store_true",
                   help="with --group-by: fit the hierarchical model (as 'fit --group-by' does) once to every group's "
                        "training runs together, instead of each group alone; --model extrapolating (its default, each "
                        "group's drift) or plain; the options below set it as they set 'fit --group-by'")
    add_hierarchical_options(p, "with --hierarchical")
    p.add_argument("--json", action="store_true", help="print every held-out run and the summaries as JSON on stdout")
    p.add_argument("--out", metavar="DIR", help="write backtest_runs.csv, backtest.json and the figure (PNG, SVG) here")
    p.set_defaults(func=run)


def read_grouped_runs(source: str, columns, group_by: str | None, check_units: bool = True):
    """``read_runs``, with ``--group-by`` applied to a bundled dataset too (its column becomes the group)."""
    from bayes_scaling.runs import DATASETS, Runs

    bundled = source in DATASETS
    runs = _common.read_runs(source, columns, None if bundled else group_by, check_units=check_units)
    if bundled and group_by and group_by != "group":
        if group_by in runs.frame.columns:
            runs = Runs(runs.frame.assign(group=runs.frame[group_by].astype(str)))
        else:
            _common.info(f"{source}: no column {group_by!r}; grouping by its 'group' column "
                         f"(groups {', '.join(runs.groups)})")
    return runs


def hierarchical_fit_from_args(args: argparse.Namespace, selected):
    """``--hierarchical``: the joint fitter (``backtest.hierarchical_fit``) with the command's sampler and
    hierarchical options; None without it (the hierarchical options refused there); ``InputError`` where the
    options cannot make one."""
    from bayes_scaling.backtest import hierarchical_fit
    from bayes_scaling.cli.fit import (GROUPED_DEFAULT_MODEL, HIERARCHICAL_DEFAULTS, branch_count,
                                      check_grouped_options, hierarchical_keywords, target_accept)

    if not args.hierarchical:
        given = [name for name, default in HIERARCHICAL_DEFAULTS.items() if getattr(args, name) != default]
        if given:
            flag = given[0].replace("_", "-")
            if given[0] == "detrend_offsets":  # a BooleanOptionalAction: name the flag as given
                flag = flag if args.detrend_offsets else f"no-{flag}"
            raise InputError(f"--{flag} sets the hierarchical model: add --hierarchical (with --group-by), or drop it")
        return None
    check_grouped_options(args)
    if args.method != "nuts":
        raise InputError("--hierarchical fits the hierarchical model with NUTS; drop --method map")
    if len(selected.groups) < 2:
        raise InputError(f"--hierarchical pools groups, and these runs have {len(selected.groups)} "
                         f"({', '.join(map(str, selected.groups))}); name the group column with --group-by COLUMN")
    if branch_count(selected):
        raise InputError("--hierarchical: the hierarchical model has no WSD terms, and these runs have WSD branches "
                         "(role 'branch'); leave out --hierarchical to backtest the WSD model per group")
    return hierarchical_fit(model=args.model or GROUPED_DEFAULT_MODEL, refits=args.refits, seed=args.seed,
                            progress=_common.show_progress(args), law=args.law, likelihood=args.likelihood,
                            num_chains=args.chains, num_draws=args.draws, num_warmup=args.warmup,
                            more_draws=not args.no_more_draws, **hierarchical_keywords(args), **target_accept(args))


def run(args: argparse.Namespace) -> int:
    from bayes_scaling.backtest import backtest, fit_with
    from bayes_scaling.cli.fit import branch_count, note_branches_as_cosine_runs, target_accept, wsd_fit_callable
    from bayes_scaling.splits import budget_column_of

    if not 0 < args.level < 1:
        raise InputError(f"--level must lie in (0, 1), got {args.level}")
    if args.holdout_fraction is not None and not 0 < args.holdout_fraction < 1:
        raise InputError(f"--holdout-fraction must lie in (0, 1), got {args.holdout_fraction}")
    if args.holdout_top_budgets is not None and args.holdout_top_budgets < 1:
        raise InputError(f"--holdout-top-budgets must be a positive count, got {args.holdout_top_budgets}")
    if args.out is not None:  # checked before the refits, not after them
        _common.check_output_path(args.out, directory=True)
    runs = read_grouped_runs(args.runs, args.column, args.group_by, check_units=not args.no_unit_check)
    if args.holdout_top_budgets is not None and budget_column_of(runs, args.budget_column) is None:
        raise InputError(f"--holdout-top-budgets needs an IsoFLOP budget column and {args.runs} has none (columns: "
                         f"{', '.join(map(str, runs.frame.columns))}); name it with --budget-column COLUMN, "
                         "or hold out a share of compute with --holdout-fraction F")
    _common.info(f"{len(runs)} runs from {args.runs}: {runs.describe_selection(args.include_flagged)}")
    settings = {"seed": args.seed}
    if args.method == "nuts":
        settings.update(likelihood=args.likelihood, num_chains=args.chains, num_draws=args.draws,
                        num_warmup=args.warmup, init_theta=args.init, model=args.model or "extrapolating",
                        more_draws=not args.no_more_draws, refits=args.refits, **target_accept(args))
    selected = runs.for_fit(args.include_flagged)
    fit, fit_groups = None, hierarchical_fit_from_args(args, selected)  # None without --hierarchical
    if fit_groups is None and args.method == "nuts" and branch_count(selected):  # the WSD model, as `fit` fits it
        fit = wsd_fit_callable(args, selected)
    elif fit_groups is None:
        fit = fit_with(args.method, law=args.law, bootstrap=args.bootstrap, progress=_common.show_progress(args),
                       **settings)
        note_branches_as_cosine_runs(selected, "Approach 3")
    result = backtest(selected, fit=fit, fit_groups=fit_groups, top_budgets=args.holdout_top_budgets,
                      fraction=args.holdout_fraction, budget_column=args.budget_column, level=args.level,
                      seed=args.seed, progress=True)
    if args.out:
        paths = result.save(Path(args.out))
        _common.info("wrote " + ", ".join(str(p) for v in paths.values() for p in (v if isinstance(v, list) else [v])))
    if args.json:
        _common.print_json(result.to_json())
    else:
        print(result.text())
    return 0
