"""``bayes-scaling decide FIT --budget C [--target-loss L] [--inference-tokens T] [--N N --D D]``:
the decisions a team makes with a fit (``bayes_scaling.decisions``; docs/decisions.md): at each
budget the N of lowest expected loss, P(each N is best) and the expected regret of the median
N_opt; the budget a target loss needs and P(reached); P(loss <= target) for one run."""

from __future__ import annotations

import argparse

from bayes_scaling.cli import _common
from bayes_scaling.cli.frontier import _budget
from bayes_scaling.errors import InputError
from bayes_scaling.posterior import NEW_TRUNK


def _tokens(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of tokens such as 2e12, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decide", help="the best N under uncertainty at a budget, target losses, inference-aware")
    p.add_argument("fit_dir", help="a directory saved by 'bayes-scaling fit' (a grouped fit: every group's)")
    p.add_argument("--budget", type=_budget, action="append",
                   help="compute budget in FLOPs (repeatable); with --inference-tokens, training + inference")
    p.add_argument("--target-loss", type=float, metavar="L", action=_Once,
                   help="the loss to reach: the budget it needs and P(reached) (one per call)")
    p.add_argument("--inference-tokens", type=_tokens, default=0.0, metavar="T",
                   help="tokens the model will serve over its life, at 2N FLOPs each (default 0)")
    p.add_argument("--N", type=float, metavar="PARAMS", help="with --D and --target-loss: P(loss <= L) for this run")
    p.add_argument("--D", type=float, metavar="TOKENS", help="training tokens of the run given by --N")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--as-branch", nargs="?", const=NEW_TRUNK, metavar="TRUNK",
                   help="a WSD fit: decide for a WSD branch (the fit's branch shift on every loss) of a new trunk, or "
                        "of the fitted trunk TRUNK, instead of a cosine run")
    p.add_argument("--unique-tokens", type=float, metavar="U",
                   help="data-constrained law: the corpus's unique tokens for these answers")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=run)


class _Once(argparse.Action):
    """An option that may be given once: a second value is refused, not silently kept in place of the first."""

    def __call__(self, parser, namespace, value, option=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option} given twice ({getattr(namespace, self.dest):g} and {value:g}); one per call "
                         "(run decide once per target)")
        setattr(namespace, self.dest, value)


def answer(post, args) -> dict:
    """Every answer the options ask for, as JSON-able data."""
    from bayes_scaling import decisions as dc

    surface = dc.Surface.of(post, branch_of=args.as_branch)
    T = dc.check_inference_tokens(args.inference_tokens)
    out = {"method": post.method, "law": post.law.name, "model": post.model, "draws": surface.num_draws,
           "level": args.level, "inference_tokens": T,
           **({"as_branch_of": args.as_branch, "as_branch": post.branch_label(args.as_branch)}
              if args.as_branch is not None else {})}
    if (note := _common.unseen_trunk_note(args.as_branch, post)) is not None:
        out["notes"] = [note]
    out["budgets"] = [dc.isoflop_profile(surface, C, inference_tokens=T, level=args.level,
                                         target_loss=args.target_loss).to_json() for C in args.budget or []]
    if args.target_loss is not None:
        out["target"] = dc._json(dc.budget_for_target(surface, [args.target_loss], inference_tokens=T,
                                                      level=args.level)[0])
    if args.N is not None:
        out["run"] = dc._json(dc.p_run_below(post, args.N, args.D, args.target_loss, args.level,
                                             branch_of=args.as_branch))
    mark_ranges(out, _common.Reach.of(post))
    out.update(_common.reach_json(post))
    out.update(_common.checks_json(post))
    return out


def mark_ranges(out: dict, reach) -> None:
    """Each answer's "range": where its (N, D) lies against the fitted runs (``Reach.where``; a training
    budget counts as its compute, one with inference FLOPs by its run's 6ND)."""
    training = not out["inference_tokens"]
    for b in out["budgets"]:
        for key in ("expected_loss_choice", "median_n_opt_choice"):
            c = b[key]
            c["range"] = reach.where(c["N"], c["D"], b["budget"] if training else None)
    t = out.get("target")
    if t is not None and t.get("lifetime_flops") is not None:  # a training budget counts as its compute, as above
        t["range"] = reach.where(t["N"]["median"], t["D"]["median"], t["lifetime_flops"]["median"] if training else None)
    if "run" in out:
        out["run"]["range"] = reach.where(out["run"]["N"], out["run"]["D"])


def answer_points(a: dict) -> tuple[list, list]:
    """The (N, D) of every answer in ``a`` that ``mark_ranges`` marked, for ``beyond_notes``."""
    points = [c for b in a["budgets"] for c in (b["expected_loss_choice"], b["median_n_opt_choice"])]
    t = a.get("target")
    if t is not None and "range" in t:
        points.append({"N": t["N"]["median"], "D": t["D"]["median"]})
    if "run" in a:
        points.append(a["run"])
    return [p["N"] for p in points], [p["D"] for p in points]


def run(args: argparse.Namespace) -> int:
    from bayes_scaling.grouped import load_fits

    if not 0 < args.level < 1:
        raise InputError(f"--level must lie in (0, 1), got {args.level}")
    if not args.budget and args.target_loss is None:
        raise InputError("give a budget to decide at (--budget C) or a loss to reach (--target-loss L)")
    if (args.N is None) != (args.D is None) or (args.N is not None and args.target_loss is None):
        raise InputError("--N and --D go together, with --target-loss: P(loss <= L) for that run")
    if args.N is not None and not (args.N > 0 and args.D > 0):
        raise InputError(f"--N and --D must be positive, got {args.N:g} and {args.D:g}")
    fits = load_fits(args.fit_dir)
    _common.warn_untrusted(fits)
    _common.check_unique_tokens(args, fits)
    for _, post in fits:
        if hasattr(post.law, "with_unique_tokens"):  # answered for one corpus size, as frontier does
            if args.unique_tokens is None or not args.unique_tokens > 0:
                raise InputError("this fit's law is data-constrained: its loss depends on the corpus's unique tokens; "
                                 "give their count with --unique-tokens U")
            post.law = post.law.with_unique_tokens(args.unique_tokens)
    answers = [{**_common.group_json(group, post), **answer(post, args)} for group, post in fits]
    for (group, post), a in zip(fits, answers):
        for note in a.get("notes", []):
            _common.info(_common.group_prefix(group, post) + "note: " + note)
        beaten = [line.strip() for line in _common.runs_beat_frontier_notes(post)]  # as frontier and the report say
        if beaten:
            a["notes"] = a.get("notes", []) + beaten
    if args.json:
        _common.print_json(answers[0] if fits[0][0] is None else answers)
        return 0
    blocks = []
    for (_, post), a in zip(fits, answers):
        budgets = [] if a["inference_tokens"] else [b["budget"] for b in a["budgets"]]
        blocks.append("\n".join([text(a), *_common.beyond_notes(post, budgets, points=answer_points(a)),
                                 *_common.runs_beat_frontier_notes(post)]))
    print("\n\n".join(blocks))
    return 0


MARKS = {"within": "", "below": " <", "beyond": " *", "far beyond": " **"}  # the notes under the answer say what each means


def _cell(d: dict, fmt) -> str:
    return f"{fmt(d['median'])} [{fmt(d['lo'])}, {fmt(d['hi'])}]"


def _p(d: dict) -> str:
    return f"{d['p']:.1%} [{d['lo']:.1%}, {d['hi']:.1%}]"


def text(a: dict) -> str:
    si, loss, format_ratio = _common.format_si, (lambda v: f"{v:.4f}"), _common.format_ratio
    flops = lambda v: f"{v:.3g}"  # noqa: E731
    T = a["inference_tokens"]
    lines = [("" if "group" not in a else f"[{a['group']}] ")
             + f"model: {a['model']} ({a['draws']} draws)"
             + (f"; every loss a WSD branch's, of {a['as_branch']}" if "as_branch" in a else "")
             + f"; median [{a['level']:.0%} interval]; losses at a budget are the law's (no run-to-run noise); "
             + (f"inference tokens T = {T:.3g} (budgets are training + inference FLOPs, 6ND + 2NT)" if T
                else "budgets are training FLOPs (6ND)")]
    for b in a["budgets"]:
        lines.append(f"budget {b['budget']:.3g} FLOPs:")
        for label, c in (("lowest expected loss", b["expected_loss_choice"]), ("median N_opt", b["median_n_opt_choice"])):
            lines.append(f"  {label + ':':<22}N = {si(c['N'])}, D = {si(c['D'])}{MARKS[c['range']]} "
                         f"({format_ratio(c['tokens_per_param'])} tokens/param): "
                         f"loss {_cell(c['loss'], loss)}, mean {c['expected_loss']:.4f}; expected regret "
                         f"{c['expected_regret']:.2g} (regret {_cell(c['regret'], lambda v: f'{v:.2g}')})"
                         + (f"; P(law's loss <= {b['target_loss']:g}) {_p(c['p_loss_below_target'])}"
                            if b["target_loss"] is not None else ""))
        s = b["p_best_set"]
        lines.append(f"  each draw's own N_opt: {_cell(b['n_opt'], si)}; {b['level']:.0%} of P(best) lies on "
                     f"N in [{si(s['N_lo'])}, {si(s['N_hi'])}]")
        if b["p_reached"] is not None:
            lines.append(f"  P(the target {b['target_loss']:g} is reached at this budget, by each draw's optimum): "
                         f"{_p(b['p_reached'])}")
        lines.extend(f"  note: {note}" for note in b.get("notes", []))
    t = a.get("target")
    if t is not None:
        what = "lifetime FLOPs (training + inference)" if T else "training FLOPs"
        lines.append(f"target loss {t['target_loss']:g}: reachable in {_p(t['p_reachable'])} of draws")
        if t["lifetime_flops"] is not None:
            over = "" if t["p_reachable"]["p"] >= 1 else f" (over the {t['p_reachable']['p']:.1%} of draws that reach it)"
            lines.append(f"  {what} needed{over}: {_cell(t['lifetime_flops'], flops)}; N = {_cell(t['N'], si)}, "
                         f"D = {_cell(t['D'], si)}{MARKS[t['range']]}, tokens/param {_cell(t['tokens_per_param'], format_ratio)}")
            if T:
                lines.append(f"  against the training-optimal model of that loss (N = {_cell(t['chinchilla_N'], si)}, "
                             f"lifetime {_cell(t['chinchilla_lifetime_flops'], flops)}): saves "
                             f"{_cell(t['saved_flops'], flops)} FLOPs, {_cell(t['saved_fraction'], lambda v: f'{v:.1%}')}")
    r = a.get("run")
    if r is not None:
        lines.append(f"run N = {si(r['N'])}, D = {si(r['D'])}{MARKS[r['range']]}: predicted loss {_cell(r['loss'], loss)} (observation "
                     f"noise included); P(loss <= {r['target_loss']:g}) {_p(r)}")
    return "\n".join(lines)
