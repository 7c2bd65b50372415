"""Fit the Bayesian Chinchilla law to the CPU sweep our own harness produced (experiments/cpu_sweep.py).

Reads experiments/results/cpu_sweep.csv (exported from the run store), fits NUTS (4 chains x 4000
draws), and writes the parameter table, the compute-optimal frontier at budgets around and beyond
the sweep, the sampler's verdict and two figures to docs/cpu_sweep.md and docs/figures/cpu_sweep_*.
Usage: .venv/bin/python experiments/fit_cpu_sweep.py
"""

from __future__ import annotations

import argparse

from pathlib import Path

import numpy as np

from bayes_scaling.diagnostics import diagnose
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.plots import allocation, loss_vs_compute, save
from bayes_scaling.runs import load_runs

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "experiments" / "results" / "cpu_sweep.csv"
DOC = ROOT / "docs" / "cpu_sweep.md"
FIGURES = ROOT / "docs" / "figures"


def markdown_table(frame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()  # --help: this text, not a run
    runs = load_runs(SWEEP, source_name="cpu_sweep")
    selected = runs.for_fit()
    # Longer than the default (500 warm-up, 1,000 draws): with models this small E is weakly
    # identified, the posterior is a long ridge, and the default run's R-hat / ESS checks fail.
    post = fit_nuts(selected, num_chains=4, num_warmup=2000, num_draws=4000, seed=0)
    verdict = diagnose(post).verdict()

    summary = post.summary(0.9)
    params = summary.assign(
        median=[f"{v:.4g}" for v in summary["median"]],
        interval=[f"[{lo:.4g}, {hi:.4g}]" for lo, hi in zip(summary["lo"], summary["hi"])],
    )[["parameter", "median", "interval"]]
    budgets = [float(f"{b:.3g}") for b in np.geomspace(runs.C.min(), runs.C.max() * 100, 5)]
    table = post.frontier(budgets, level=0.9)
    frontier = table.assign(
        budget=[f"{b:.3g}" for b in table["budget"]],
        N_opt=[f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in zip(table.N_opt_median, table.N_opt_lo, table.N_opt_hi)],
        D_opt=[f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in zip(table.D_opt_median, table.D_opt_lo, table.D_opt_hi)],
        L_opt=[f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(table.L_opt_median, table.L_opt_lo, table.L_opt_hi)],
        tokens_per_param=[f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in
                          zip(table.tokens_per_param_median, table.tokens_per_param_lo, table.tokens_per_param_hi)],
    )[["budget", "N_opt", "D_opt", "L_opt", "tokens_per_param"]]

    FIGURES.mkdir(parents=True, exist_ok=True)
    save(loss_vs_compute(post), FIGURES / "cpu_sweep_loss_vs_compute", formats=("png",))
    save(allocation(post), FIGURES / "cpu_sweep_allocation", formats=("png",))

    ok = runs.frame
    lines = [
        "# A scaling law from our own runs (CPU sweep)",
        "",
        "Produced by `experiments/cpu_sweep.py` (the Flax harness, byte-level tokens on the Python",
        "standard library's source, on this project's 2-core CPU machine) and fitted by",
        "`experiments/fit_cpu_sweep.py` (NUTS, 4 chains x 4000 draws after 2000 warm-up, Student-t likelihood).",
        "",
        f"Runs: {runs.describe_selection()}; N from {ok.N.min():.3g} to {ok.N.max():.3g} parameters, "
        f"D from {ok.D.min():.3g} to {ok.D.max():.3g} tokens, C from {ok.C.min():.3g} to {ok.C.max():.3g} FLOPs.",
        "Loss: validation loss in nats per byte-token.",
        "",
        f"Sampler: {verdict}",
        "",
        "Why longer than the CLI's default (500 warm-up, 1,000 draws): with models this small, E is weakly",
        "identified and the posterior is a long curved ridge. At the default length the verdict failed for",
        "some seeds (R-hat up to 1.07, bulk ESS down to 43, on seeds 0-3 with either starting mass matrix),",
        "which is what the diagnostics are for; 2,000 warm-up iterations pass every check.",
        "",
        "## Parameters (median, 90% interval)",
        "",
        markdown_table(params),
        "",
        "## Compute-optimal frontier (median [90% interval], C = 6ND)",
        "",
        markdown_table(frontier),
        "",
        f"Model: {post.model} (the default; docs/extrapolation.md). Budgets beyond the sweep's largest run,",
        "and allocations beyond its largest N or D (the small budgets' long-token ends), are extrapolations:",
        "there the default adds the law's own drift, calibrated on "
        f"{post.meta.get('extrapolation', {}).get('folds', 0)} leave-future-out folds of these 20 runs,",
        "so the intervals widen fast; they assume the same architecture family, data and recipe.",
        "",
        "![loss against compute](figures/cpu_sweep_loss_vs_compute.png)",
        "",
        "![compute-optimal allocation](figures/cpu_sweep_allocation.png)",
        "",
    ]
    DOC.write_text("\n".join(lines))
    print(DOC.read_text())


if __name__ == "__main__":
    main()
