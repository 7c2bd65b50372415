"""``bayes-scaling frontier DIR --budget C [--budget C2 ...]``: N_opt, D_opt, L_opt with intervals."""

from __future__ import annotations

import argparse

from bayes_scaling.cli import _common
from bayes_scaling.errors import InputError
from bayes_scaling.posterior import NEW_TRUNK


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a FLOP count such as 5.76e23, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"budget must be positive, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("frontier", help="compute-optimal N, D and loss at budgets, with intervals")
    p.add_argument("fit_dir", help="a directory saved by 'bayes-scaling fit' (a grouped fit: every group's)")
    p.add_argument("--budget", type=_budget, action="append", help="compute budget in FLOPs (repeatable)")
    p.add_argument("--level", type=float, default=0.9, help="credible interval level (default 0.9)")
    p.add_argument("--unique-tokens", type=_budget, metavar="U",
                   help="data-constrained law: the corpus's unique tokens for this frontier")
    p.add_argument("--inference-tokens", type=float, default=0.0, metavar="T",
                   help="tokens the model will serve, at 2N FLOPs each: budgets become training + inference FLOPs "
                        "(6ND + 2NT) and the table the lowest loss under them (docs/decisions.md)")
    p.add_argument("--as-branch", nargs="?", const=NEW_TRUNK, metavar="TRUNK",
                   help="a WSD fit: L_opt of a WSD branch (the fit's branch shift on the cosine runs' frontier) of a "
                        "new trunk, or of the fitted trunk TRUNK; N_opt and D_opt are unchanged (the shift does not "
                        "depend on N or D)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=run)


def branch_text(trunk: str | None, post) -> str:
    """What ``--as-branch`` put the frontier on, for the table's heading."""
    if trunk is None:
        return ""
    return (f"; L_opt of a WSD branch of {post.branch_label(trunk)} (the branch shift on the cosine runs' loss; "
            "N_opt, D_opt as theirs)")


def run(args: argparse.Namespace) -> int:
    """One table per fit: a grouped fit's directory gives each group's and the population's."""
    from bayes_scaling.frontier import STANDARD_BUDGETS
    from bayes_scaling.grouped import load_fits

    if not 0 < args.level < 1:
        raise InputError(f"--level must lie in (0, 1), got {args.level}")
    fits = load_fits(args.fit_dir)
    _common.warn_untrusted(fits)
    _common.check_unique_tokens(args, fits)
    for group, post in fits:  # a name the fit has not seen is a new trunk: say so (a typo?)
        if (note := _common.unseen_trunk_note(args.as_branch, post)) is not None:
            _common.info(_common.group_prefix(group, post) + "note: " + note)
    budgets = args.budget or list(STANDARD_BUDGETS)
    answers = []
    for group, post in fits:
        if hasattr(post.law, "with_unique_tokens"):
            if args.unique_tokens is None:
                raise InputError("this fit's law is data-constrained: give the corpus size of the frontier with --unique-tokens U")
            post.law = post.law.with_unique_tokens(args.unique_tokens)
        if args.inference_tokens:
            from bayes_scaling.decisions import inference_frontier

            answers.append((group, post, inference_frontier(post, budgets, args.inference_tokens, args.level,
                                                            branch_of=args.as_branch)))
        else:
            answers.append((group, post, post.frontier(budgets, level=args.level, branch_of=args.as_branch)))
    if args.json:
        docs = [{**_common.group_json(group, post), "method": post.method, "law": post.law.name,
                 "model": post.model, **_common.reach_json(post), **_common.checks_json(post),
                 "frontier": _common.frontier_json(table, _common.Reach.of(post), not args.inference_tokens),
                 "notes": [line.strip() for line in frontier_notes(post, table, budgets, not args.inference_tokens)]
                 + [note for note in [_common.unseen_trunk_note(args.as_branch, post)] if note],
                 **({"inference_tokens": args.inference_tokens} if args.inference_tokens else {}),
                 **({"as_branch_of": args.as_branch} if args.as_branch is not None else {})}
                for group, post, table in answers]
        _common.print_json(docs[0] if fits[0][0] is None else docs)
        return 0
    for i, (group, post, table) in enumerate(answers):
        print(("" if i == 0 else "\n") + _common.group_prefix(group, post)
              + f"law: {post.law.name}; model: {post.model_label}" + (" (the law plus its drift beyond the fitted runs; docs/extrapolation.md)"
                                          if post.model == "extrapolating" else "") + branch_text(args.as_branch, post))
        if args.inference_tokens:
            print(f"inference tokens T = {args.inference_tokens:.3g}: budgets are training + inference FLOPs (6ND + 2NT)")
        # each row marked by where its optimum lies against the fitted runs; budgets that add inference FLOPs are not
        # comparable to the runs' 6ND, so those rows are judged by their optimum's 6ND
        training = not args.inference_tokens
        print(_common.frontier_text(table, reach=_common.Reach.of(post), training_budgets=training))
        for line in frontier_notes(post, table, budgets, training):
            print(line)
    return 0


def frontier_notes(post, table, budgets, training: bool) -> list[str]:
    """The notes under a frontier table (and in its JSON): answers beyond or below the fitted runs, a falling N_opt
    or one on the corner at the largest fitted N or D, runs that beat the frontier at the fit's own budgets."""
    return [*_common.beyond_notes(post, budgets if training else (), points=(table["N_opt_median"], table["D_opt_median"])),
            *_common.falling_optimum_notes(post, table), *_common.corner_optimum_notes(post, table),
            *_common.runs_beat_frontier_notes(post)]
