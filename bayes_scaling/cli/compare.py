"""``bayes-scaling compare DIR1 DIR2 ...``: rank saved fits of the same runs by PSIS-LOO ELPD."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes_scaling.cli import _common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="rank saved fits (laws, likelihoods, priors) of the same runs by ELPD")
    p.add_argument("fit_dirs", nargs="+", metavar="DIR", help="directories saved by 'bayes-scaling fit'")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=run)


def fit_names(dirs: list[str]) -> list[str]:
    """Each fit's directory name, or its full path where two names clash."""
    names = [Path(d).name or str(d) for d in dirs]
    return [n if names.count(n) == 1 else str(d) for n, d in zip(names, dirs)]


def run(args: argparse.Namespace) -> int:
    from bayes_scaling.checking import compare
    from bayes_scaling.errors import InputError
    from bayes_scaling.posterior import Posterior

    from bayes_scaling.grouped import is_grouped, member_paths
    from bayes_scaling.posterior import META_FILE

    if len(args.fit_dirs) < 2:
        raise InputError("compare needs at least two saved fits")
    for d in args.fit_dirs:
        if is_grouped(d) and not (Path(d) / META_FILE).exists():
            members = member_paths(d)
            example = f" (e.g. {Path(d) / members[0]})" if members else ""
            raise InputError(f"{d} is a grouped fit ('fit --group-by'): compare compares fits of the same runs one at a "
                             f"time; give its groups' fits{example}, each beside another fit of that group's runs")
    if len({str(Path(d).resolve()) for d in args.fit_dirs}) < len(args.fit_dirs):
        raise InputError("compare: the same fit is given twice; give fits of the same runs that differ (law, "
                         "likelihood, priors)")
    posts = {name: Posterior.load(d) for name, d in zip(fit_names(args.fit_dirs), args.fit_dirs)}
    _common.warn_untrusted([(name, post) for name, post in posts.items()])  # a ranking of unconverged fits says so
    table = compare(posts)
    high = int(table["n_high_k"].max()) if len(table) else 0
    if high:
        _common.info(f"note: up to {high} run(s) per fit have Pareto k above the threshold: PSIS-LOO is unreliable "
                     "there, and so is the ranking where it turns on them ('bayes-scaling report' lists them)")
    if args.json:
        _common.print_json([
            {"fit": name, "law": posts[name].law.name, "model": posts[name].model, "method": posts[name].method,
             "likelihood": posts[name].meta.get("likelihood"), **_common.checks_json(posts[name]),
             **{col: (int(v) if col in ("rank", "n_high_k") else float(v)) for col, v in row.items()}}
            for name, row in table.iterrows()
        ])
        return 0
    print(compare_text(table, posts))
    return 0


def compare_text(table, posts) -> str:
    m = max([13, *(len(str(post.model)) for post in posts.values())])  # the model column fits its longest name
    lines = ["Fits ranked by PSIS-LOO ELPD (log-loss scale; higher is better)",
             f"{'rank':>4}  {'fit':<24} {'law':<14} {'model':<{m}} {'likelihood':<10} {'elpd':>9} {'se':>6} "
             f"{'elpd_diff':>9} {'dse':>6} {'weight':>6} {'high k':>6}"]
    for name, row in table.iterrows():
        post = posts[name]
        lines.append(
            f"{int(row['rank']):>4}  {name:<24} {post.law.name:<14} {str(post.model):<{m}} {post.meta.get('likelihood', '-'):<10} "
            f"{row['elpd']:>9.1f} {row['se']:>6.1f} {row['elpd_diff']:>9.1f} {row['dse']:>6.1f} "
            f"{row['weight']:>6.2f} {int(row['n_high_k']):>6}"
        )
    lines.append("A difference smaller than about 4, or than twice its dse, does not separate two fits.")
    if len({post.model for post in posts.values()}) > 1:
        lines.append("ELPD scores the fitted runs, where the extrapolating model is the plain law: it cannot tell the two "
                     "models apart; how each predicts beyond the runs is what 'bayes-scaling backtest' measures.")
    return "\n".join(lines)
