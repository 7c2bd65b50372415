"""``bayes-scaling fit RUNS --method nuts|map --out DIR``: fit a law and save the posterior."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes_scaling.cli import _common
from bayes_scaling.errors import InputError

LIKELIHOODS = ("student_t", "normal", "contaminated")  # models.likelihood.LIKELIHOODS (not imported: the parser loads no NumPy)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit a scaling law to runs and save the posterior")
    p.add_argument("runs", help="run table (.csv, .parquet, .sqlite run store) or a bundled dataset: chinchilla, marin, porian, gadre")
    p.add_argument("--out", required=True, help="directory to save the fit in")
    add_fit_options(p)
    p.add_argument("--json", action="store_true", help="print parameters as JSON on stdout")
    p.add_argument("--group-by", metavar="COLUMN", help="fit a hierarchical model with one law per group in COLUMN")
    add_hierarchical_options(p, "with --group-by")
    p.set_defaults(func=run)


HIERARCHICAL_DEFAULTS = {"pooling": "partial", "share_exponents": False, "offset_by": "auto", "detrend_offsets": None,
                         "spread_prior": None}


def add_hierarchical_options(p: argparse.ArgumentParser, when: str) -> None:
    """The hierarchical model's options (``fit --group-by``, ``backtest --hierarchical``); ``when`` opens each help."""
    p.add_argument("--pooling", choices=["partial", "none", "complete"], default="partial",
                   help=f"{when}: partial pooling (default), none, or complete")
    p.add_argument("--share-exponents", action="store_true", help=f"{when}: alpha and beta common to all groups")
    p.add_argument("--offset-by", metavar="COLUMN", default="auto",
                   help=f"{when}: one offset on log-loss per value of COLUMN, shared by the groups; "
                        "auto (default): the budget column where the runs have one; none: no offsets")
    p.add_argument("--detrend-offsets", action=argparse.BooleanOptionalAction, default=None,
                   help=f"{when}: offsets with no level and no linear trend in log COLUMN across its "
                        "levels, so the laws keep the trend (needs a numeric COLUMN with 3+ values); "
                        "default: the library's (bayes_scaling.hierarchical.DETREND_OFFSETS)")
    p.add_argument("--spread-prior", choices=["halfnormal", "gamma"], default=None,
                   help=f"{when}: prior family of the groups' spreads tau_k (same mean): HalfNormal, "
                        "or the zero-avoiding Gamma(2); default: the library's "
                        "(bayes_scaling.hierarchical.DEFAULT_SPREAD_PRIOR)")


def hierarchical_keywords(args: argparse.Namespace) -> dict:
    """The hierarchical options as ``fit_hierarchical`` keywords (the library's own defaults where not given)."""
    return {"pooling": args.pooling, "share_exponents": args.share_exponents,
            "offset_by": None if args.offset_by == "none" else args.offset_by,
            **({} if args.detrend_offsets is None else {"detrend_offsets": args.detrend_offsets}),
            **({} if args.spread_prior is None else {"spread_prior": args.spread_prior})}


MODEL_HELP = ("with --method nuts: 'extrapolating' (default) adds the law's own error beyond the fitted "
              "runs, calibrated on leave-future-out refits (docs/extrapolation.md); 'plain': the law alone. "
              "With --group-by too: 'extrapolating' (default) adds each group's own drift, calibrated on "
              "leave-future-out refits of that group's runs, to its hierarchical law; 'plain': the "
              "hierarchical laws alone (docs/hierarchical.md). Runs with WSD branches (role 'branch'): the WSD "
              "model, 'plain' by default (bayes_scaling.wsd.DEFAULT_MODEL); 'extrapolating' adds the drift, "
              "calibrated on the cosine-equivalent runs (docs/training.md)")


def add_fit_options(p: argparse.ArgumentParser, model_help: str = MODEL_HELP) -> None:
    p.add_argument("--method", choices=["nuts", "map"], default="nuts", help="NUTS posterior (default) or Approach-3 point fit")
    p.add_argument("--law", default="chinchilla", choices=["chinchilla", "kaplan", "data_constrained"],
                   help="law family (default chinchilla); data_constrained reads a unique_tokens column")
    p.add_argument("--likelihood", choices=LIKELIHOODS, default="student_t",
                   help="noise on log-loss: student_t (nu 5, the default), normal, or contaminated (a normal whose "
                        "share 0.05 of runs has 10x the scale, so runs far off the law leave sigma at the core spread)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target-accept", type=float, default=None, metavar="P",
                   help="with --method nuts: NUTS's target acceptance probability, higher for smaller steps where a "
                        "fit diverges (default: the fit's own, 0.8, or 0.9 with --group-by; a divergent fit is redone "
                        "at 0.99 by itself)")
    p.add_argument("--no-more-draws", action="store_true",
                   help="keep --draws even when a fit comes back short only of effective draws (by default it is "
                        "redone with twice the draws per chain, at most twice: docs/diagnostics.md)")
    p.add_argument("--init", choices=["projection", "approach3"], default="projection",
                   help="NUTS starting point: cheap variable projection (default) or the Approach-3 point fit")
    p.add_argument("--bootstrap", type=int, default=0, help="with --method map: bootstrap resamples for intervals")
    p.add_argument("--model", choices=["extrapolating", "plain"], default=None, help=model_help)
    p.add_argument("--refits", choices=["gaussian", "psis"], default=None,
                   help="with the extrapolating model: how its calibration refits the folds; 'psis' (the "
                        "default): importance-sampled Laplace with the drift priors doubled; 'gaussian' (the "
                        "default before): Laplace from jittered starts, whose chains can stop short of the mode, "
                        "so the learned drift moves with --seed (a note says when; docs/extrapolation.md, "
                        "'Twenty-fifth run')")
    p.add_argument("--column", action="append", metavar="FIELD=NAME", help="map a field to your column name, e.g. N=params")
    p.add_argument("--include-flagged", action="store_true", help="keep rows flagged as suspect (excluded by default)")
    p.add_argument("--no-unit-check", action="store_true",
                   help="accept parameter counts and tokens per parameter outside what any real run has")
    p.add_argument("--level", type=float, default=0.9, help="credible interval level (default 0.9)")


def fit_from_args(args: argparse.Namespace, runs_source: str):
    """Read, select, fit; prints progress to stderr. Returns (posterior, all_runs); the posterior
    records the rows it left out (``excluded``) and, for NUTS, its posterior predictive draws."""
    runs = _common.read_runs(runs_source, args.column, check_units=not args.no_unit_check)
    _common.info(f"{len(runs)} runs from {runs_source}: {runs.describe_selection(args.include_flagged)}")
    selected = runs.for_fit(args.include_flagged)
    check_enough_runs(selected, args.law if args.method == "nuts" else "chinchilla")
    note_pooled_groups(selected)
    excluded = runs.left_out(args.include_flagged)
    excluded = None if excluded.empty and args.include_flagged else excluded
    if args.method == "nuts" and branch_count(selected):
        return sampled(wsd_fit_callable(args, selected)(selected), excluded, quiet=args.json), runs
    note_branches_as_cosine_runs(selected, "Approach 3" if args.method == "map" else None)
    if args.method == "map":
        from bayes_scaling.fitting.point import fit_map

        _common.info("fitting Chinchilla Approach 3 (Huber, L-BFGS from 4,500 starts)"
                     + (f", then {args.bootstrap} bootstrap refits" if args.bootstrap else "") + "...")
        label = f"Approach 3 fit{f' and {args.bootstrap} bootstrap refits' if args.bootstrap else ''}: running"
        with _common.ticker(label, quiet=args.json) as tick:
            post = fit_map(selected, bootstrap=args.bootstrap, seed=args.seed,
                           progress=(lambda done, total: tick.update(f"bootstrap: {done}/{total} refits done"))
                           if tick.enabled else None)
        post.excluded = excluded
        return post, runs
    from bayes_scaling.fitting.nuts import fit_nuts

    law, model = args.law, args.model or "extrapolating"
    if law == "data_constrained":  # bound to each run's unique tokens (column unique_tokens; U = D if absent)
        from bayes_scaling.laws.data_constrained import DataConstrained

        law = DataConstrained.for_runs(selected)
        if args.model == "extrapolating":
            raise InputError("--model extrapolating: the data-constrained law is fitted as the plain law only (the drift "
                             "beyond the runs is calibrated for laws of N and D alone, not one bound to each run's unique "
                             "tokens); drop --model, or fit --law chinchilla for the extrapolating model")
        _common.info("the data-constrained law is fitted as the plain law: its answers beyond the runs carry no error "
                     "of the law's own (the extrapolating model needs a law of N and D alone)")
        model = "plain"
    _common.info(("leave-future-out refits to calibrate the extrapolation model, then " if model != "plain" else "")
                 + f"sampling {args.chains} chains x {args.draws} draws (NUTS, {args.warmup} warmup)...")
    post = fit_nuts(
        selected, law=law, likelihood=args.likelihood, num_chains=args.chains,
        num_draws=args.draws, num_warmup=args.warmup, seed=args.seed, progress=_common.show_progress(args),
        init_theta=args.init, more_draws=not args.no_more_draws,
        model=model, refits=args.refits, **target_accept(args),
    )
    return sampled(post, excluded, quiet=args.json), runs


def target_accept(args: argparse.Namespace) -> dict:
    """``--target-accept`` as a keyword for the fit, or nothing (the fit's own default)."""
    return {} if args.target_accept is None else {"target_accept": args.target_accept}


def sampled(post, excluded, quiet: bool = False):
    """A NUTS fit as ``fit`` keeps it: what was redone and the model said on stderr, its posterior
    predictive draws added, the rows left out recorded."""
    print_redone(post.meta)
    _common.info(f"sampled in {post.meta['sampling_seconds']:.1f} s; model: {describe_model(post)}")
    from bayes_scaling.checking import add_posterior_predictive

    with _common.ticker("posterior predictive draws of every run", quiet=quiet):
        add_posterior_predictive(post)
    post.excluded = excluded
    return post


def branch_count(runs) -> int:
    """How many of ``runs`` are WSD branches (``role`` "branch": docs/training.md)."""
    from bayes_scaling.wsd import is_branch

    return int(is_branch(runs.frame).sum())


def note_branches_as_cosine_runs(runs, fitter: str | None) -> None:
    """A fit that has no WSD model (``fitter``: Approach 3, the hierarchical model) says that it takes
    the runs' WSD branches for cosine runs, and which fit models them."""
    n = branch_count(runs)
    if n and fitter:
        _common.info(f"note: {n} of these runs are WSD branches (role 'branch'); {fitter} fits them as if they were "
                     "cosine runs, without the WSD-vs-cosine offset or their trunks' shared effects. "
                     "`bayes-scaling fit` with --method nuts (no --group-by) fits the WSD model")


def wsd_fit_callable(args: argparse.Namespace, selected):
    """Runs with WSD branches: a callable fitting ``wsd.fit_wsd`` with the command's law, likelihood, model
    (``--model``; default ``wsd.DEFAULT_MODEL``) and sampler options (the law for cosine runs; a branch adds
    the estimated WSD-vs-cosine offset and its trunk's shared effect), announced on stderr."""
    from bayes_scaling.fitting.settings import SamplerSettings
    from bayes_scaling.models.likelihood import Likelihood
    from bayes_scaling.wsd import DEFAULT_MODEL, fit_wsd, is_branch

    model = args.model or DEFAULT_MODEL
    law = args.law
    if law == "data_constrained":
        from bayes_scaling.laws.data_constrained import DataConstrained

        law = DataConstrained.for_runs(selected)
    trunks = selected.frame.loc[is_branch(selected.frame), "trunk_id"].nunique()
    beyond = ("beyond the runs the law's drift is calibrated on the cosine-equivalent runs (the branches' WSD "
              "offset removed), as for cosine runs" if model == "extrapolating" else
              "its answers beyond the runs are the plain law's (--model extrapolating adds the law's drift)")
    _common.info(f"{branch_count(selected)} of these runs are WSD branches of {trunks} trunk(s): fitting the WSD model "
                 "(the law describes cosine runs; a branch adds the WSD-vs-cosine offset and its trunk's shared "
                 f"effect; docs/training.md); {beyond}. Sampling {args.chains} chains x {args.draws} draws...")
    settings = SamplerSettings(chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
                               progress=_common.show_progress(args), more_draws=not args.no_more_draws,
                               **target_accept(args))

    def fit(runs):
        init = "projection"
        if args.init == "approach3":  # from the runs this fit is given (a backtest's fold: its training runs)
            from bayes_scaling.fitting.approach3 import fit_approach3

            init = fit_approach3(runs.N, runs.D, runs.loss).theta
        return fit_wsd(runs, law=law, likelihood=Likelihood(args.likelihood), settings=settings.replace(init=init),
                       model=model).posterior

    return fit


def note_pooled_groups(runs) -> None:
    """Runs of several groups fitted without ``--group-by`` get one law between them: said, with
    the way to fit one law per group (a table of different datasets or settings, such as the
    bundled ``porian``, is rarely one law)."""
    groups = runs.groups
    if len(groups) > 1:
        shown = ", ".join(groups[:4]) + (f", ... ({len(groups)} in all)" if len(groups) > 4 else "")
        _common.info(f"note: these runs hold {len(groups)} groups ({shown}); one law is fitted to all of them. "
                     "For one law per group: --group-by group")


def print_redone(notes) -> None:
    """What the redo policy redid and why (``fitting.redo``: a fit's ``meta``, or a grouped fit's
    diagnostics)."""
    if "retried" in notes:
        _common.info(f"{notes['retried']} (smaller steps, to follow the posterior's curvature)")
    if "more_draws" in notes:
        _common.info(f"{notes['more_draws']} (longer chains, for enough effective draws)")


def describe_model(post) -> str:
    """One line naming the model that answers and, for the extrapolating one, its drift scales."""
    extra = post.meta.get("extrapolation")
    drift = ""
    if extra:
        scales = ", ".join(f"{name} {extra[f'{name} 5/50/95%'][1]:.3g}" for name in ("tau_shape", "tau_level", "tau_alloc"))
        axes = extra.get("axis folds", [])
        by_axis = f" ({len(axes)} of them by {' and '.join(axes)})" if axes else ""
        drift = (f"drift beyond the fitted runs calibrated on {extra['folds']} leave-future-out folds{by_axis}, "
                 f"{extra['held_out_in_folds']} held-out runs in all (a run may be held out by several folds); "
                 f"posterior medians {scales}")
    if post.has_draws("wsd_offset"):
        import numpy as np

        q = np.quantile(post.draws("wsd_offset"), [0.05, 0.5, 0.95])
        return (f"{post.model_label} (the {'drifted' if extra else 'plain'} law for cosine runs; branches shifted by "
                f"the WSD-vs-cosine offset, median {q[1]:+.4f} [{q[0]:+.4f}, {q[2]:+.4f}] in log-loss, and their "
                f"trunk's effect{'; ' + drift if drift else ''})")
    return f"{post.model} ({drift})" if drift else post.model


def check_enough_runs(runs, law_name: str) -> None:
    """Stop before any sampling message when there are too few runs for the law's parameters."""
    from bayes_scaling.laws import get_law

    need = len(get_law(law_name).param_names) + 1
    if len(runs) < need:
        raise InputError(f"need at least {need} runs to fit {law_name}, got {len(runs)}")


def print_verdict(post, prefix: str = "") -> None:
    """The sampler's verdict, then what the runs' design cannot identify (``diagnostics.design_limits``)."""
    from bayes_scaling.diagnostics import diagnose

    _common.info(prefix + diagnose(post).verdict())
    _common.print_design_limits(post, prefix)
    _common.print_calibration_note(post, prefix)


def run(args: argparse.Namespace) -> int:
    from bayes_scaling.posterior import check_fit_directory

    try:  # say so before sampling, not when saving
        check_fit_directory(args.out)
    except InputError as err:
        raise InputError(f"--out {err}") from None
    if args.group_by:
        return run_hierarchical(args)
    post, _ = fit_from_args(args, args.runs)
    with _common.ticker(f"saving the fit to {args.out}", quiet=args.json):
        out = post.save(Path(args.out))
    print_verdict(post)
    summary = post.summary(args.level)
    if args.json:
        _common.print_json({"method": post.method, "law": post.law.name, "model": post.model, "n_runs": len(post.runs),
                            "parameters": _common.parameters_json(summary), "saved_to": str(out)})
    else:
        print(_common.parameters_text(summary))
        print(f"saved to {out}")
    return 0


# The model a grouped fit answers with unless --model says: each group's hierarchical law plus its own drift,
# as the pooled default (thirty-fourth session; docs/extrapolation.md, "Where it answers": on Marin the plain
# hierarchical laws cover 60-72% of the held-out top budgets at 90%, with the drift 98-100%; Gadre 100% under both).
GROUPED_DEFAULT_MODEL = "extrapolating"


def check_grouped_options(args: argparse.Namespace) -> None:
    """What the hierarchical model cannot take, refused before any work: a law bound to unique tokens, and
    ``--init approach3`` (the hierarchical sampler starts from each group's projection estimate, so the option
    would be ignored)."""
    from bayes_scaling.laws import get_law
    from bayes_scaling.models.hierarchical import check_law

    check_law(get_law(args.law))
    if args.init != "projection":
        raise InputError(f"--init {args.init}: the hierarchical model starts from each group's projection estimate; "
                         "drop --init (it sets a pooled fit's start)")


def run_hierarchical(args: argparse.Namespace) -> int:
    """``--group-by``: one Posterior per group under DIR/groups/NAME, the population's under
    DIR/population (a new group's law), each readable by ``frontier``, and DIR itself a grouped fit
    (``bayes_scaling.grouped``) that ``frontier``, ``predict`` and ``report`` read whole."""
    from bayes_scaling.grouped import save_grouped
    from bayes_scaling.hierarchical import fit_hierarchical
    from bayes_scaling.runs import DATASETS

    if args.method != "nuts":
        raise InputError("--group-by fits the hierarchical model with NUTS; drop --method map")
    check_grouped_options(args)
    bundled = args.runs in DATASETS
    runs = _common.read_runs(args.runs, args.column, None if bundled else args.group_by,
                             check_units=not args.no_unit_check)
    if bundled and args.group_by not in runs.frame.columns:
        _common.info(f"{args.runs}: grouping by its 'group' column (groups {', '.join(runs.groups)})")
    group_by = args.group_by if bundled and args.group_by in runs.frame.columns else "group"
    _common.info(f"{len(runs)} runs from {args.runs}: {runs.describe_selection(args.include_flagged)}")
    selected = runs.for_fit(args.include_flagged)
    note_branches_as_cosine_runs(selected, "the hierarchical model")
    _common.info(f"sampling the hierarchical model ({args.pooling} pooling): {args.chains} chains x {args.draws} draws...")
    fit = fit_hierarchical(
        selected, group_by=group_by, law=args.law, likelihood=args.likelihood, num_chains=args.chains,
        num_draws=args.draws, num_warmup=args.warmup, seed=args.seed, progress=_common.show_progress(args),
        **hierarchical_keywords(args), **target_accept(args),
        # the redo policy on, as for a pooled fit (the library's default, hierarchical.REDO, stays off by its
        # cost rule): at this length it left every fit of seeds 30-39 clean (docs/hierarchical.md)
        retry_divergent=True, more_draws=not args.no_more_draws,
    )
    print_redone(fit.diagnostics)
    groups = fit.groups
    if (args.model or GROUPED_DEFAULT_MODEL) == "extrapolating":  # each group's own drift (GROUPED_DEFAULT_MODEL)
        from bayes_scaling.fitting.nuts import add_drift

        _common.info("calibrating each group's drift beyond its runs on leave-future-out refits...")
        groups = {name: add_drift(post, refits=args.refits) for name, post in groups.items()}
    left_out = runs.left_out(args.include_flagged)
    if not args.include_flagged or len(left_out):  # each group keeps its own rows left out (excluded_runs.csv)
        column = group_by if group_by in runs.frame.columns else "group"
        flagged = left_out
        for name, post in groups.items():
            post.excluded = flagged[flagged[column].astype(str) == str(name)].reset_index(drop=True)
        if fit.population is not None:
            fit.population.excluded = flagged.reset_index(drop=True)
    out = Path(args.out)
    members = save_grouped(out, groups, fit.population, {"pooling": fit.pooling, "group_by": group_by,
                                                         "group_column": args.group_by})
    names = {id(post): name for name, post in groups.items()}
    result = {"pooling": fit.pooling, "diagnostics": fit.diagnostics, "members": {}}
    for name, post in members.items():
        summary = post.summary(args.level)
        result["members"][name] = {"group": names.get(id(post)), "role": "group" if id(post) in names else "population",
                                   "saved_to": str(out / name), "model": post.model,
                                   "parameters": _common.parameters_json(summary), **_common.checks_json(post)}
        if not args.json:
            runs_text = (_common.plural(len(post.runs), "run") if id(post) in names
                         else f"a new group's law, from the groups' {_common.plural(len(post.runs), 'run')}")
            label = names.get(id(post)) or post.meta.get("group") or name
            print(f"[{label}] ({runs_text}; model: {describe_model(post)}) saved to {out / name}")
            print(_common.parameters_text(summary))
    if not args.json:
        print(f"grouped fit saved to {out}: frontier, predict and report read all its groups from it")
    d = fit.diagnostics
    seconds = next(iter(fit.groups.values())).meta.get("sampling_seconds")
    _common.info((f"sampled in {seconds:.1f} s; " if seconds is not None else "")
                 + f"sampler, whole model: {d['divergences']} divergences, max R-hat {d['max_rhat']:.3f} and min bulk "
                 f"ESS {d['min_ess']:.0f} over its sampled sites, {d['mean_steps']:.0f} leapfrog steps per draw")
    for name, post in groups.items():
        print_verdict(post, f"[{name}] ")
    if args.json:
        _common.print_json(result)
    return 0
