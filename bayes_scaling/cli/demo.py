"""``bayes-scaling demo``: the whole answer on the bundled Chinchilla data.

Fits the Bayesian Chinchilla law with NUTS to Epoch AI's 240 runs, prints the parameters beside
Hoffmann's and Epoch's, the compute-optimal frontier at standard budgets with 90% intervals, the
sampler's verdict, and writes the fit and an HTML report under ``--out`` (default ``out/demo``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bayes_scaling.cli import _common

CHINCHILLA_BUDGET = 5.76e23  # Chinchilla / Gopher training compute


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="fit the bundled Chinchilla data and write a report")
    p.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--include-flagged", action="store_true", help="keep the 5 runs Epoch AI excluded (flagged)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayes_scaling.cli.fit import describe_model
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.frontier import STANDARD_BUDGETS
    from bayes_scaling.laws import EPOCH_2024, HOFFMANN_2022
    from bayes_scaling.runs import load_chinchilla

    out = Path(args.out)
    runs = load_chinchilla()
    _common.info(f"Chinchilla runs (Hoffmann et al. 2022, digitised by Epoch AI 2024): {runs.describe_selection(args.include_flagged)}")
    _common.info("sampling the posterior: NUTS, 4 chains x 1000 draws...")
    post = fit_nuts(runs.for_fit(args.include_flagged), num_chains=4, num_draws=1000, seed=args.seed,
                    progress=_common.show_progress())
    _common.info(f"sampled in {post.meta['sampling_seconds']:.1f} s; model: {describe_model(post)}")
    from bayes_scaling.checking import add_posterior_predictive

    add_posterior_predictive(post)
    post.excluded = None if args.include_flagged else runs.left_out()
    post.save(out / "fit")

    summary = post.summary(0.9)
    print(_common.parameters_text(summary))
    print(f"  reference: Hoffmann 2022 {_fmt(HOFFMANN_2022)}")
    print(f"             Epoch 2024    {_fmt(EPOCH_2024)}")
    print()
    budgets = sorted({*STANDARD_BUDGETS, CHINCHILLA_BUDGET})
    table = post.frontier(budgets, level=0.9)
    print(_common.frontier_text(table, reach=_common.Reach.of(post)))
    for line in [*_common.beyond_notes(post, budgets, points=(table["N_opt_median"], table["D_opt_median"])),
                 *_common.falling_optimum_notes(post, table), *_common.corner_optimum_notes(post, table)]:
        print(line)
    print()
    try:
        from bayes_scaling.diagnostics import diagnose

        print(diagnose(post).verdict())
    except ImportError:
        pass
    from bayes_scaling.extrapolation import missed_modes_note

    note = missed_modes_note(post.meta)
    if note:
        print("note: " + note)
    try:
        from bayes_scaling.report import write_report
    except ImportError:
        print(f"fit saved to {out / 'fit'}")
        return 0
    report = write_report(post, out / "report.html", title="bayes-scaling demo: Chinchilla (Epoch AI's 240 runs)")
    print(f"fit saved to {out / 'fit'}; report written to {report}")
    return 0


def _fmt(theta: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in theta.items())
