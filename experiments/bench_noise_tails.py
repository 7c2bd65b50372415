"""Do heavier noise tails make the intervals honest on Gadre-like data? (issue 15)

The default model observes log-loss with Student-t noise of fixed nu = DEFAULT_NU (5). On Gadre
(results/bench_extrapolation_gadre_diagnosis.json) the law misfits the most under-trained runs
(D/N = 5), which inflates the fitted noise scale (0.017-0.022 against a robust residual spread of
0.007-0.013), so even the plain law's 90% intervals are 11-13% wide and cover all 32 held-out runs.
Heavier tails (smaller nu) may let those runs be outliers, fit the scale to the core spread, and
tighten the intervals. Candidates: the default model (``fit_nuts()``, everything else at its
defaults) with fixed nu = 3 and nu = 4, and the plain law (``fit_nuts(model="plain")``) at each nu
(the targets compare the default against the plain law at the default's nu, 5). A learned nu is
not measured: the Posterior reads one nu per fit (``Likelihood.from_meta``), so per-draw nu would
need changes to posterior.py and fitting/, outside this experiment.

Same splits and scores as experiments/bench_extrapolation.py (``model_scores`` is imported from
it): the top three IsoFLOP budgets of each group held out, or the top 30% of compute; coverage of
the 90% intervals, mean interval score, CRPS, and the empirical N_opt at the top held-out budget
against the model's 90% interval. The nu = 5 rows must reproduce bench_extrapolation.json's
default and plain rows (checked and printed by ``--judge``).

THE RULE (written before any result of this script): a candidate nu replaces DEFAULT_NU only if,
against the default (nu = 5), (a) its 90% coverage lies in 80-97% on every source where the
default's does, (b) its mean interval score is higher than the default's on at most one source,
(c) its N_opt at the top held-out budget is inside on at least as many sweeps as the default's minus
one and on at least 80% of the judged sweeps, (d) on the drifting-law simulation its coverage is at
least 80% and at least the plain law's (at nu = 5) plus 10 points -- (a)-(d) are
bench_extrapolation.adoption, the rule its sixth run wrote for FOLD_OVERLAP -- and (e) a default fit
of every group of every source's full data at that nu has 0 divergences and max R-hat <= 1.01.
Among candidates that pass, the lowest geometric mean (over sources) of its interval score
relative to the default's wins. Gadre's own targets (coverage in 80-97% and interval score below
the plain law's at nu = 5) are reported beside it, not required.

Also measured (``--part gadre-scale``): per Gadre group, the plain law's fitted sigma at each nu on
the training runs against the residuals' robust spread (1.4826 x MAD), with sigma's robust
equivalent (sigma x the t(nu) quartile / the normal's: the robust spread a t(nu) noise of scale
sigma would show), and the same without the D/N = 5 runs.

The contaminated normal (``--part contaminated``, twenty-seventh session; ``models.likelihood``,
``fit_nuts(likelihood="contaminated")``: eps ~ 0.95 N(0, 1) + 0.05 N(0, 10^2)), a scale mixture that
can put a run wholly in the wide component where a t(3) absorbs it only partly: the default model and
the plain law under it, beside the default and the plain law at nu = 5 in the same run, on every
source and the drifting simulation, judged by the same rule (a)-(d) (``adoption``); (e) only for a
candidate that passes (a)-(d). A first look on the same splits (a throw-away script, whose numbers
these rows reproduce) preceded the run; the rule is the one above, written before it.

Run (each part writes results/bench_noise_tails_<part>.json; --judge combines them into
results/bench_noise_tails.json):
  .venv/bin/python experiments/bench_noise_tails.py --part scores [--sources ...]
  .venv/bin/python experiments/bench_noise_tails.py --part simulation
  .venv/bin/python experiments/bench_noise_tails.py --part diagnostics
  .venv/bin/python experiments/bench_noise_tails.py --part gadre-scale
  .venv/bin/python experiments/bench_noise_tails.py --judge
  .venv/bin/python experiments/bench_noise_tails.py --part contaminated   (its own file and verdict)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bayes_scaling  # noqa: E402
from bayes_scaling.backtest import backtest  # noqa: E402
from bayes_scaling.fitting.nuts import fit_nuts  # noqa: E402
from bayes_scaling.models.likelihood import DEFAULT_NU  # noqa: E402
from bayes_scaling.runs.bundled import load_gadre  # noqa: E402
from bayes_scaling.runs.table import Runs  # noqa: E402
from bayes_scaling.splits import split_by_compute  # noqa: E402
from bench_extrapolation import LEVEL, SOURCES, adoption, model_scores  # noqa: E402

NUS = (5.0, 4.0, 3.0)  # the first is the library default (DEFAULT_NU)
RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "bench_noise_tails.json"
REFERENCE = RESULTS / "bench_extrapolation.json"


def name(model: str, nu: float) -> str:
    """Row name: the default model at DEFAULT_NU is "extrapolating" (as in bench_extrapolation)."""
    base = "extrapolating" if model == "extrapolating" else "plain"
    return base if nu == DEFAULT_NU else f"{base}, nu = {nu:g}"


def fitter(model: str, nu: float, likelihood: str = "student_t"):
    return lambda runs: fit_nuts(runs, model=model, nu=nu, likelihood=likelihood)


def machine() -> dict:
    return {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 2 cores (the project's CPU machine)",
            "load_avg_1min_at_end": os.getloadavg()[0]}


def scores(sources) -> dict:
    out = {}
    for source in sources:
        runs = SOURCES[source]().for_fit()
        row = {}
        for nu in NUS:
            for model in ("plain", "extrapolating"):
                start = time.perf_counter()
                row[name(model, nu)] = model_scores(runs, fitter(model, nu))
                row[name(model, nu)]["wall_s"] = time.perf_counter() - start
        out[source] = row
        print(source, json.dumps({k: {m: round(x, 4) for m, x in v.items() if isinstance(x, float)} for k, v in row.items()}),
              flush=True)
    return out


def simulation() -> dict:
    """bench_extrapolation.drifting_simulation with nu: IsoFLOP sweeps of a law whose alpha grows
    0.03 per e-fold of N beyond 1e8 (three seeds, tests/test_extrapolation.simulate_sweeps), fitted
    on the lower six budgets; coverage and interval score on the top three."""
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_extrapolation import simulate_sweeps

    runs = Runs(pd.concat([simulate_sweeps(s, 0.03).frame.assign(group=f"s{s}") for s in range(3)], ignore_index=True))
    out = {}
    for nu in NUS:
        for model in ("plain", "extrapolating"):
            t = backtest(runs, fit=fitter(model, nu), levels=(LEVEL,)).runs
            out[name(model, nu)] = {"n": len(t), "coverage": float(t["covered_90"].mean()),
                                    "interval_score": float(t["interval_score_90"].mean())}
            print(name(model, nu), out[name(model, nu)], flush=True)
    return out


def diagnostics() -> dict:
    """bench_extrapolation.diagnostics at each candidate nu (the default's are in bench_extrapolation.json)."""
    from bayes_scaling.diagnostics import diagnose

    out = {}
    for nu in NUS[1:]:
        per = {}
        for source, load in SOURCES.items():
            runs = load().for_fit()
            rows = []
            for group in runs.groups:
                d = diagnose(fit_nuts(Runs(runs.frame[runs.frame["group"] == group].reset_index(drop=True)), nu=nu))
                rows.append({"group": group, "ok": bool(d.ok), "divergences": int(d.divergences),
                             "max_rhat": float(d.table["r_hat"].max()) if d.applicable else float("nan")})
            per[source] = rows
            print(f"nu {nu:g} {source}:", [(r["group"], r["divergences"], round(r["max_rhat"], 4)) for r in rows], flush=True)
        out[name("extrapolating", nu)] = per
    return out


def gadre_scale() -> dict:
    from scipy import stats

    data = load_gadre().for_fit()
    train = split_by_compute(data).train
    out = {}
    for group in data.groups:
        g = Runs(train.frame[train.frame["group"] == group].reset_index(drop=True))
        core = Runs(g.frame[g.D / g.N > 7].reset_index(drop=True))
        row = {}
        for nu in NUS:
            post = fit_nuts(g, model="plain", nu=nu)
            r = np.log(g.loss) - np.log(np.median(post.predict(g.N, g.D), 0))
            rc = r[g.D / g.N > 7]
            sigma = float(np.median(post.draws("sigma")))
            row[f"nu {nu:g}"] = {
                "sigma_median": sigma,
                "sigma_robust_equivalent": sigma * stats.t(nu).ppf(0.75) / stats.norm.ppf(0.75),
                "residual_robust_sd": float(1.4826 * np.median(np.abs(r - np.median(r)))),
                "residual_robust_sd_without_D_over_N_5": float(1.4826 * np.median(np.abs(rc - np.median(rc)))),
                "residuals_D_over_N_5": r[~(g.D / g.N > 7)].round(4).tolist(),
                "sigma_median_fit_without_D_over_N_5": float(np.median(fit_nuts(core, model="plain", nu=nu).draws("sigma"))),
            }
        out[group] = row
        print(group, json.dumps({k: {m: round(x, 4) for m, x in v.items() if isinstance(x, float)} for k, v in row.items()}),
              flush=True)
    return out


def contaminated() -> dict:
    """The default model and the plain law under the contaminated normal beside both at nu = 5, every
    source and the drifting simulation, judged by ``adoption`` (a)-(d); Gadre's fitted core sigma."""
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_extrapolation import simulate_sweeps

    rows = {"plain": ("plain", "student_t"), "extrapolating": ("extrapolating", "student_t"),
            "plain, contaminated": ("plain", "contaminated"), "extrapolating, contaminated": ("extrapolating", "contaminated")}
    results = {}
    for source in SOURCES:
        runs = SOURCES[source]().for_fit()
        results[source] = {}
        for row, (model, likelihood) in rows.items():
            start = time.perf_counter()
            results[source][row] = model_scores(runs, fitter(model, DEFAULT_NU, likelihood))
            results[source][row]["wall_s"] = time.perf_counter() - start
            print(source, row, cell(results[source][row]), flush=True)
    sims = Runs(pd.concat([simulate_sweeps(s, 0.03).frame.assign(group=f"s{s}") for s in range(3)], ignore_index=True))
    simulation = {}
    for row, (model, likelihood) in rows.items():
        t = backtest(sims, fit=fitter(model, DEFAULT_NU, likelihood), levels=(LEVEL,)).runs
        simulation[row] = {"n": len(t), "coverage": float(t["covered_90"].mean()),
                           "interval_score": float(t["interval_score_90"].mean())}
        print("simulation", row, simulation[row], flush=True)
    data = load_gadre().for_fit()
    train = split_by_compute(data).train
    sigma = {}
    for group in data.groups:
        g = Runs(train.frame[train.frame["group"] == group].reset_index(drop=True))
        sigma[group] = {likelihood: float(np.median(fit_nuts(g, model="plain", likelihood=likelihood).draws("sigma")))
                        for likelihood in ("student_t", "contaminated")}
    print("Gadre training runs, plain law's median sigma:", sigma, flush=True)
    rule = adoption(results, ["extrapolating, contaminated"], simulation)
    print("adoption:", json.dumps(rule, indent=1), flush=True)
    return {"results": results, "simulation": simulation, "gadre_sigma_plain": sigma, "adoption": rule}


def cell(r: dict) -> str:
    n_opt = f" N {r['n_opt_top_inside']}/{r['n_opt_top_judged']}" if "n_opt_top_judged" in r else ""
    return f"{r['coverage']:.1%} IS {r['interval_score']:.3f}" + n_opt


def judge() -> dict:
    parts = {p: json.loads((RESULTS / f"bench_noise_tails_{p}.json").read_text())
             for p in ("scores", "simulation", "diagnostics", "gadre-scale")}
    results = {}
    for key, value in parts["scores"].items():
        if key.startswith("results"):
            results.update(value)
    reference = json.loads(REFERENCE.read_text())["results"]
    keys = ("n", "coverage", "interval_score", "crps", "n_opt_top_inside", "n_opt_top_judged")
    # equal counts, and scores equal to rounding (the default's means differ from the reference's
    # in the 15th digit: the summation order of bench_extrapolation.json's run; they are bit-equal
    # to results/bench_extrapolation_overlap.json's)
    reproduced = {s: {m: max(abs(results[s][m].get(k, 0) - reference[s][m].get(k, 0)) / max(abs(reference[s][m].get(k, 0)), 1e-300)
                             for k in keys) for m in ("plain", "extrapolating")} for s in results}
    print("nu = 5 rows against bench_extrapolation.json, largest relative difference:", reproduced)
    candidates = [name("extrapolating", nu) for nu in NUS]
    rule = adoption(results, candidates, parts["simulation"])
    for cand, row in rule["candidates"].items():
        groups = [r for rows in parts["diagnostics"][cand].values() for r in rows]
        row["e_diagnostics"] = all(r["divergences"] == 0 and r["max_rhat"] <= 1.01 for r in groups)
        row["passes"] = bool(row["passes"] and row["e_diagnostics"])
    passing = [n for n in rule["candidates"] if rule["candidates"][n]["passes"]]
    rule["adopted"] = min(passing, key=lambda n: rule["candidates"][n]["geomean_is_ratio_to_default"]) if passing else None
    report = {**{k: v for k, v in parts["scores"].items() if not k.startswith("results")},
              "results": results, "nu5_rows_max_relative_difference_to_bench_extrapolation": reproduced,
              "simulation": parts["simulation"], "diagnostics": parts["diagnostics"],
              "gadre_scale": parts["gadre-scale"], "adoption": rule}
    OUT.write_text(json.dumps(report, indent=1))
    print(f"{'model':28s}" + "".join(f"{s:>28s}" for s in results) + f"{'simulation':>22s}")
    for nu in NUS:
        for model in ("plain", "extrapolating"):
            n = name(model, nu)
            sim = parts["simulation"][n]
            print(f"{n:28s}" + "".join(f"{cell(results[s][n]):>28s}" for s in results)
                  + f"{sim['coverage']:>12.1%} IS {sim['interval_score']:.3f}")
    print("adoption:", json.dumps(rule, indent=1))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("scores", "simulation", "diagnostics", "gadre-scale", "contaminated"))
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--judge", action="store_true", help="combine the parts and apply the rule")
    args = parser.parse_args()
    if args.judge:
        judge()
        return
    bayes_scaling.configure()
    path = RESULTS / f"bench_noise_tails_{args.part}.json"
    if args.part == "scores":
        key = "results " + "+".join(args.sources)
        measured = scores(args.sources)
        report = json.loads(path.read_text()) if path.exists() else {}  # read now: parts may run side by side
        report[key] = measured
        report[f"machine, {key}"] = machine()
    else:
        report = {"simulation": simulation, "diagnostics": diagnostics, "gadre-scale": gadre_scale,
                  "contaminated": contaminated}[args.part]()
        report["_machine"] = machine()
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
