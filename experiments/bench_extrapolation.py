"""How honest are the intervals beyond the data? The extrapolation-aware default against the plain
law and a conformal baseline, fitted on the cheaper runs and scored on the most expensive ones.

Data: every development source bundled with the package: Chinchilla (one group), Marin (three
datasets), Porian et al. 2024 (15 settings, pooled), Gadre et al. 2024 (three datasets, pooled).
Split (``splits.split_by_compute``): the top three IsoFLOP budgets of each group held out, or the
top 30% of compute where there is no budget column. Each group is fitted on its own.

Models:
* ``plain``: the law alone (``fit_nuts(model="plain")``);
* ``conformal``: the plain law's predictive median wrapped in split conformal prediction on
  |log residuals| (as in "Conformalized Scaling Laws"), calibrated on the forward-chained folds of
  the training runs (``splits.forward_chain``, each fold refitted by NUTS); with no usable fold,
  on the training residuals;
* ``extrapolating``: the library default (``fit_nuts()``), and candidates that differ from it
  in one setting (``CANDIDATES``: what the shared mean learns from loss-only folds,
  ``extrapolation.LOSS_ONLY_MEAN``, or how small folds are refitted; earlier runs: a drift prior's
  half-Cauchy scale, the shared share ``extrapolation.SHARED``).

Scores at the 90% level (``bayes_scaling.scoring``): coverage, mean interval score, mean CRPS (not
for conformal, which has no predictive distribution), and at the top held-out IsoFLOP budget of
each sweep whether the empirical N_opt (Approach 2) lies in the model's 90% N_opt interval.

THE RULE (written before the results below were produced by this script; the second run of it,
for the shared drift and the folds' N_opt rows, adds the N_opt criterion): among the
extrapolating candidates, the default is the one whose 90% coverage lies in 80-97% on the most
sources; ties go to the one whose 90% N_opt interval holds the empirical N_opt at the top held-out
budget on more sweeps, then to the one with a lower mean interval score than the plain law on
more sources, then to the lowest geometric mean (over sources) of its interval score relative to
the plain law's. The script prints whether the library default is that candidate. (The sixth
run, for Gadre, had its own adoption rule, written before its results: the comment above
``NUTS_FOLD_RUNS`` and ``adoption``; judged with ``--simulation-results``.) (The drift's form and the
candidate priors were explored on these sources while the model was built: these numbers are
development numbers, and the same targets are checked on data kept out of development.)

Also measured, side by side in this process: one default fit against one plain fit of all the
Chinchilla runs (median of repeats, warm), a default backtest of Chinchilla against one default
fit, Chinchilla's frontier N_opt by model (``chinchilla_frontier``), and the sampler diagnostics
of a default fit of every group's full data.

Run: .venv/bin/python experiments/bench_extrapolation.py [--quick | --cost-only | --frontier-only | --profile | --simulation | --diagnose-gadre | --judge | --misfit-geometry | --misfit-chinchilla | --misfit-final-diagnosis | --chinchilla-far-optima | --far-simulation | --exact-simulation | --misfit-allocation | --fold-refits | --seed-stability] [--split far] [--seed S]
Judging: --judge [--fidelity-reference FILE] (runs up to the twentieth), --judge-priors (twenty-first and
twenty-second), --judge-seeds [--seeds-stem STEM] (nineteenth, twenty-third).
Writes experiments/results/bench_extrapolation.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import bayes_scaling
from bayes_scaling import extrapolation, scoring
from bayes_scaling.fitting import nuts as nuts_module
from bayes_scaling.fitting import sampler as sampler_module
from bayes_scaling.models import likelihood as likelihood_module
from bayes_scaling.backtest import backtest
from bayes_scaling.diagnostics import diagnose
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import forward_chain, split_by_compute

LEVEL = 0.9
# The first run of this script (results/bench_extrapolation_selection.json) had the default
# tau_alloc ~ HalfCauchy(0.05) and chose the tau_alloc ~ HalfCauchy(0.02) candidate by the rule;
# the library default was changed to it. The first run with the shared drift and the folds' N_opt
# rows (results/bench_extrapolation_selection_shared.json: default SHARED 0.75, tau_alloc 0.02)
# chose its tau_alloc ~ HalfCauchy(0.05) candidate, which became the default; the old default is a
# candidate here. Candidates: (drift prior scales, SHARED or None for the default).
# Later (same session, before its results): a candidate that learns the shared mean only from folds
# that observe optima (IsoFLOP N_opt rows), because loss residuals alone identify it weakly: on
# Chinchilla the shared mean flattens the frontier's median N_opt beyond the runs (15.9B at 5.76e23
# against the plain law's 70.9B) and on Gadre moves its median (CRPS 0.102 against the plain law's
# 0.032). The rule kept the default (learning the mean from loss-only folds too).
# Third run (issue 15 follow-up, written before its results): the loss-only folds' learning of the
# allocation part of the shared mean (extrapolation.LOSS_ONLY_MEAN). Candidates: "allocation own"
# (without N_opt rows, the drift's allocation coordinates, d_a and (d_N - d_D)/sqrt 2, are each
# extrapolation's own: zero mean, learned spread; the rest shared as usual), the optima-only variant
# ("none"), and NUTS refits (2 x (300 + 500)) instead of Laplace for folds with fewer than 6 runs per
# fitted parameter (the law's 5 and the noise: under 36 runs), where Laplace's fold predictions were
# biased on Gadre (laplace_fold_bias). tau_alloc 0.02 (rejected by the first two runs) is dropped to
# keep the run under 25 minutes. A first try of this run, stopped during Porian to fix the first
# candidate's form (a cut of the learned mean's allocation part, not kept: on Chinchilla it too fell
# below the coverage band), had the same rule. Outcome: the rule kept the default ("learned").
CANDIDATES = {
    "extrapolating": ({}, None),  # the library default
    "extrapolating, loss-only folds: allocation own": ({}, "allocation own"),
    "extrapolating, shared mean from optima only": ({}, "none"),
    "extrapolating, NUTS refits of folds under 36 runs": ({}, "nuts-small-folds"),
    "extrapolating, folds' full predictive covariance": ({}, "full-covariance"),
    "extrapolating, inferred slices": ({}, "inferred-slices"),
    "extrapolating, each held-out run counted once": ({}, "overlap-once"),
    "extrapolating, full covariance, each run counted once": ({}, "full-covariance+overlap-once"),
    "extrapolating, misfit noise along D/N": ({}, "misfit-noise"),
    "extrapolating, misfit noise along D/N, in data": ({}, "misfit-noise-in-data"),
    "extrapolating, misfit noise along D/N, final fit only": ({}, "misfit-noise-final"),
    "extrapolating, drift mean held beyond the folds' distances": ({}, "held-mean"),
    "extrapolating, drift mean held or linear (mixed)": ({}, "mixed-mean"),
    "extrapolating, drift mean linear beyond the folds' distances": ({}, "linear-mean"),  # the default before the eleventh run
    "extrapolating, allocation exponent in [0, 1]": ({}, "allocation-bounds"),  # twelfth run
    "extrapolating, allocation exponent >= 0": ({}, "allocation-lower-bound"),  # thirteenth run
    "extrapolating, allocation exponent >= 0 with the data exponent's drift": ({}, "allocation-lower-bound-shape"),  # 14th
    "extrapolating, allocation bound by conditioning": ({}, "allocation-condition"),  # 15th
    "extrapolating, level bounded so the frontier never rises": ({}, "level-frontier"),  # 16th and 17th
    "extrapolating, level unbounded (the default before the seventeenth run)": ({}, "level-unbounded"),
    "extrapolating, Laplace refits at the mode": ({}, "laplace-mode"),  # 18th
    "extrapolating, Laplace refits from jittered starts": ({}, "laplace-jittered"),
    "extrapolating, NUTS refits of every fold": ({}, "nuts-folds"),  # a diagnosis (thirteenth session), no rule
    "extrapolating, importance-sampled Laplace refits": ({}, "laplace-psis"),  # 20th
    "extrapolating, PSIS refits, drift priors x1.5": ({}, "laplace-psis-priors-1.5"),  # 21st
    "extrapolating, PSIS refits, drift priors x2": ({}, "laplace-psis-priors-2"),
    "extrapolating, PSIS refits, drift priors x3": ({}, "laplace-psis-priors-3"),
    # fifteenth session: the misfit term with faithful refits (a diagnosis first: --exact-simulation)
    "extrapolating, PSIS refits, misfit noise along D/N": ({}, "laplace-psis+misfit-noise"),
    "extrapolating, PSIS refits, drift priors x2, misfit noise along D/N": ({}, "laplace-psis-priors-2+misfit-noise"),
    # twenty-sixth run (twenty-eighth session): the level drift on the reducible loss only, on the current default
    "extrapolating, level on the reducible loss": ({}, "level-reducible"),
    # twenty-seventh run (twenty-ninth session): a fold along N (or D) where the compute folds never extrapolate in it
    "extrapolating, axis folds where no compute fold extrapolates": ({}, "axis-folds"),
    # twenty-eighth run (thirty-fourth session): the level bound's cut for every draw whose frontier would rise
    "extrapolating, level cut for every draw": ({}, "level-cut-every-draw"),
}
# Fourth run (same session, written before its results; --candidates, --out
# results/bench_extrapolation_fold_covariance.json): the folds' residuals with their full predictive
# covariance (extrapolation.FOLD_COVARIANCE "full": one refit's parameter uncertainty moves all its
# held-out predictions together, which a diagonal reads as evidence of drift; Gadre's folds hold 3-7
# runs, Marin's 10) against the default, by the same rule. Outcome: the rule kept the default (Porian
# 97.4% falls out of the 80-97% band; N_opt 14/18 against 15/18).
# Fifth run (issue 15 follow-up, written before its results; --sources chinchilla --candidates
# extrapolating "extrapolating, no inferred slices" --out results/bench_extrapolation_inferred_slices.json):
# runs without a budget column get IsoFLOP slices inferred from compute (extrapolation.INFER_SLICES,
# splits.infer_slices), and the calibration folds the N_opt rows of the slices they hold out whole;
# the split rule is unchanged. In that run the library default had INFER_SLICES = True and the
# candidate "no inferred slices" was the previous default. Judged by the same rule on Chinchilla only: Marin and
# Porian have budget columns, and calibrate infers slices only where budget_column_of finds none, so
# their results are unchanged by construction (tests/test_slices.py: a table with a budget column
# calibrates the same with INFER_SLICES on and off); Gadre has no budget column, but no slice passes
# the checks in any of its groups, full or training runs (--slices-only, inferred_slices_gadre), so
# its calibration is the same too. If the rule prefers "no inferred slices", INFER_SLICES goes back to False. The loss-only candidates ("allocation own",
# "none") now also switch the inference off, so that they stay what they were on Chinchilla.
# Outcome: the rule chose "no inferred slices" (coverage 81.9% against 79.2%, out of the 80-97% band;
# interval score 0.091 against 0.092), so INFER_SLICES went back to False and the inference is the
# candidate "extrapolating, inferred slices".
# Sixth run (issue 15, Gadre; written before its results; --scores-only --candidates extrapolating
# "extrapolating, each held-out run counted once" "extrapolating, full covariance, each run counted once"
# --out results/bench_extrapolation_overlap.json, and --simulation with the same candidates). The
# diagnosis (--diagnose-gadre, results/bench_extrapolation_gadre_diagnosis.json) found Gadre's folds
# all reporting a downward level drift that its held-out runs do not show; the folds are nested, so
# the composite likelihood counts a top run up to three times (Gadre: 15 rows from 7 runs per group),
# and a fold's rows share its refit's parameter error. Candidates: extrapolation.FOLD_OVERLAP "once"
# (each row's variance times the number of folds holding it out), and that with FOLD_COVARIANCE
# "full". THE ADOPTION RULE for this run (``adoption`` below, replacing ``rank`` for this run;
# rule_choice is still printed): a candidate replaces the default only if (a) its 90% coverage lies
# in 80-97% on every source where the default's does, (b) its mean interval score is higher than the
# default's on at most one source, (c) its N_opt at the top held-out budget is inside on at least as
# many sweeps as the default's minus one and on at least 80% of the judged sweeps, and (d) on the
# drifting-law simulation (--simulation) its coverage is at least 80% and at least the plain law's
# plus 10 points; among candidates that pass, the lowest geometric mean (over sources) of its
# interval score relative to the default's wins. Gadre's own targets (coverage in 80-97%, interval
# score below the plain law's) are reported beside it, not required: no candidate is expected to meet
# them (the plain law already covers all 32 held-out runs, and the drift only adds width).
# Outcome (results/bench_extrapolation_overlap.json, load 16-19): neither adopted ("once": Chinchilla
# 72%, Porian 97.1%, N_opt 14/18; with the full covariance: Chinchilla 78%, Porian 98.1%, interval
# score above the default's on Chinchilla and Marin); Gadre 100% with IS 0.521 and 0.434 (plain
# 0.330). FOLD_OVERLAP stays "each".
# Seventh run (issue 15, Gadre; written before its results; --simulation --candidates extrapolating
# "extrapolating, misfit noise along D/N" --out results/bench_extrapolation_misfit_simulation.json,
# --scores-only --candidate-diagnostics with the same candidates --out results/bench_extrapolation_misfit.json,
# then --judge with both files). The diagnosis found the law misfitting the most under-trained runs
# (D/N = 5), which inflates sigma. Candidate: the misfit term along tokens per parameter
# (fit_nuts(misfit_noise=True), nuts.MISFIT_NOISE; models.pooled): each run's noise scale grows
# with |ln(D/N) - c|, c the fitted runs' mean ln(D/N), with slopes k_under, k_over ~ HalfNormal(0.05),
# [correction after the run: the form run was the distance of ln(D/N) beyond the fitted runs' quartile
# band, changed before the run (commit 05a2484) without updating this line; docs/extrapolation.md]
# in the fit, the calibration's refits and Posterior.predict. Rule: the sixth run's ``adoption``
# (a)-(d) against the default, plus (e) a default fit (candidate settings) of every group's full data
# of every source has 0 divergences and R-hat <= 1.01 (law parameters, sigma and the misfit slopes;
# --candidate-diagnostics). The plain law with the misfit term ("plain, misfit noise") is scored
# beside them for information; it is not a candidate for the default. Gadre's targets are reported
# (``gadre_targets_met``), not required.
# Outcome (results/bench_extrapolation_misfit.json, load ~14): not adopted (fails (a) Chinchilla 67%,
# Marin 97.01%; (b) interval score above the default's on Chinchilla and Marin; (c) N_opt 12/18;
# (e) R-hat 1.013-1.027 on four groups); Gadre 93.8%, IS 0.390 (plain 0.330). --misfit-chinchilla:
# the folds take their held-out runs' errors at extreme D/N as misfit noise, and the drift they
# learn shrinks (tau_alloc median 0.19 -> 0.055).
# Eighth run (written before its results; --simulation and --scores-only --candidate-diagnostics with
# --candidates extrapolating "extrapolating, misfit noise along D/N, in data", --out
# results/bench_extrapolation_misfit_in_data{_simulation,}.json, then --judge): the misfit term as an
# in-data term (likelihood.MISFIT_CAP "in data"): each distance beyond the band is capped at the
# fitted runs' own extreme ln(D/N), so the term never grows beyond what the fitted runs show, and a
# fold's held-out runs beyond its range of D/N are left to the drift. Same rule: ``adoption`` (a)-(e).
# Outcome (results/bench_extrapolation_misfit_in_data.json): not adopted (Chinchilla 67%, Marin 97.01%).
# Ninth run (issue 15; written before its results; --simulation and --scores-only --candidate-diagnostics
# with --candidates extrapolating "extrapolating, misfit noise along D/N, final fit only", --out
# results/bench_extrapolation_misfit_final{_simulation,}.json, then --judge; and --cost-only with the
# same --candidates --out results/bench_extrapolation_misfit_final_cost.json). The seventh run's
# diagnosis: inside the calibration folds the misfit term takes the held-out runs' errors at extreme
# D/N as noise, and the drift learned shrinks. Candidate: nuts.MISFIT_NOISE "final": the calibration's
# refits are the default's (no misfit term, the drift learned as today); only the final fit and its
# predictions carry the misfit term. THE ADOPTION RULE: ``adoption`` (a)-(e) against the default, plus
# (f) the cost target: a default fit under the candidate's setting costs at most 2x a plain fit of
# the same runs (Chinchilla, warm, timed in turn in one process: ``candidate_cost``, over_plain;
# from --candidate-diagnostics, or the --cost-only file passed as --cost-results when judging).
# Gadre's targets (coverage in 80-97%, interval score below the plain law's) are reported, not required.
# Tenth run (issue 15; written before the full results, after a prototype on three sources that is
# stated here: on the standard split the candidate gave Chinchilla 80.6% / IS 0.090 (default 81.9% /
# 0.091), Marin 87.3% / 0.185 (89.6% / 0.188), Gadre 100% / 0.548 (100% / 0.542); on the far split
# below Chinchilla 94.2% / 0.088 (94.2% / 0.094), Gadre 100% / 0.780 (100% / 0.882); Porian and the
# simulation not run). Candidate: extrapolation.MEAN_BEYOND "held": the learned mean of the drift
# is carried only over the distances the calibration folds observed (per axis, the farthest held-out
# run from its fold's range); beyond them each draw's rate is centred on the law's own, with the
# learned spread still growing. On Chinchilla (loss-only folds) the default's median N_opt stops
# growing beyond the runs (15.9B at 5.76e23, 16.1B at 1e25), because the mean learned over u_C <= 3.84
# is carried on linearly to any distance. Splits: the standard one, and --split far, which holds out
# more (FAR_SPLITS: Porian's top 6 of its 11-12 budgets, Chinchilla's and Gadre's top 50% of compute;
# Marin has 6 budgets, and with more than 3 held out no fold keeps 2 budgets, so Marin's far split is
# its standard one). THE ADOPTION RULE: the candidate replaces the default only if it passes
# ``adoption`` (a)-(d) on the standard split (--scores-only, --simulation) and (g) on the far split
# (``far_split_check``): its 90% coverage lies in 80-97% on at least as many sources as the
# default's, and the geometric mean over sources of its interval score relative to the default's is
# at most 1. The sampler and theta's draws are the default's (the option only changes what a draw's
# drift does beyond u*), so (e) and (f) are not run.
# Outcome (results/bench_extrapolation_held_mean{,_far,_simulation}.json, load 5-7): the rule passes it
# (standard: Chinchilla 80.6% / 0.090, Marin 87.3% / 0.185, Porian 96.8% / 0.729 (identical), Gadre
# 100% / 0.548, N_opt 15/18, simulation 100% (identical); far: in band on 3 sources as the default,
# interval score 0.922x the default's), but on the far split its N_opt is inside on 11 of 18 sweeps
# against the default's 14 (Porian 8/15 against 11/15, each new miss a too-small N_opt): the rule's
# (c), applied on the standard split only, would fail it there. Not adopted: MEAN_BEYOND stays "linear"
# (results file, "decision"; docs/extrapolation.md).
# Eleventh run (issue 15; written before its results, after the tenth's): the candidate
# MEAN_BEYOND "mixed": each draw holds the mean beyond u* with probability HELD_SHARE = 0.5, else
# carries it on linearly. Within u* the two are one model, so the folds cannot weigh them; the
# predictive mixes the two continuations (the tenth run: "linear" keeps far optima that "held" loses
# on Porian, "held" scores the far losses better). THE ADOPTION RULE: the tenth run's ((a)-(d) on the
# standard split, (g) on the far split) plus (h) on the far split: N_opt at the top held-out budget
# inside on at least as many sweeps as the default's minus one (``far_split_check``).
# Outcome (results/bench_extrapolation_mixed_mean{,_far,_simulation}.json, load ~9): adopted (passes
# (a)-(d), (g) and (h): standard Chinchilla 82% / IS 0.090, Marin 88% / 0.186, Porian identical, Gadre
# 100% / 0.559, N_opt 15/18, simulation identical; far split Chinchilla 94% / 0.091, Porian 83% / 1.586
# (default 81% / 1.731), Gadre 100% / 0.834, N_opt 14/18 as the default; IS 0.954x the default's).
# extrapolation.MEAN_BEYOND is now "mixed"; the old default is the candidate "... linear ...". In the
# results files of this and earlier runs, "extrapolating" is the default of the time ("linear").
# Twelfth run (issue 15, eighth session; written and committed before its results): the candidate
# extrapolation.ALLOCATION_BOUNDS = (0, 1): each draw's drifted allocation exponent a + d_a (and, where
# the draw holds its mean beyond u*, a + d_a - c_a beyond it) is clipped to [0, 1], a the law's own
# exponent per draw, so that no draw has N_opt or D_opt falling as compute grows (every law of the
# family has 0 < a < 1). Why: on all 240 Chinchilla runs the default's draws have a + d_a < 0 in 39%
# of the draws (the learned mean d_a is about -0.45 against a = 0.52), and its 90% N_opt interval at
# 1e27 FLOPs reaches down to 46M parameters (trained on 3.6e18 tokens), below its own lower end at
# 5.76e23 (1.9B): a frontier that shrinks with compute. (Seen before the rule, in one exploratory fit of
# all 240 Chinchilla runs, seed 0: the 90% N_opt interval at 5.76e23 becomes [8.6B, 88B] from
# [1.9B, 82B], at 1e27 [1.2B, 37T] from [46M, 38T]; no held-out run was scored before this rule.)
# The bound changes only the drift's draws after the calibration (theta's draws and the scales are the
# default's), so (e) and (f) are not run. THE ADOPTION RULE: the eleventh run's ((a)-(d) on the standard
# split, (g) and (h) on the far split) plus (i) Chinchilla's far optima (--chinchilla-far-optima with the
# candidate): its 90% N_opt interval holds at least as many of the held-out slices' empirical optima as the
# default's. Runs: --scores-only, --simulation, --split far, --chinchilla-far-optima, each with --candidates
# extrapolating "extrapolating, allocation exponent in [0, 1]" and --no-baselines where it applies (the plain
# law and the conformal baseline are not needed by (a)-(i) on the real sources; the simulation keeps its
# plain law for (d)), into results/bench_extrapolation_allocation_bounds{,_simulation,_far,_far_optima}.json,
# then --judge with --simulation-results, --far-results and --far-optima-results.
# Outcome (results/bench_extrapolation_allocation_bounds{,_simulation,_far,_far_optima}.json, load 7-12
# from two helpers' work): not adopted: fails (c), N_opt inside on 12 of 18 sweeps against the default's
# 15 (Porian 9/15 against 12/15); passes (a), (b), (d), (g), (h), (i) (standard: Chinchilla 82% / IS 0.090,
# Marin 88% / 0.184, Porian 97% / 0.706, Gadre 100% / 0.546; far: IS 0.957x the default's; far optima 4 of 5
# as the default). The three new misses are Porian's long-warm-up sweeps owt2-base-long-kaplan-kaplan-train,
# rw-base-long-kaplan-{kaplan-train,standard-val}, each with the empirical optimum above the bounded interval's
# upper end: there the folds learn a + d_a > 1 (the IsoFLOP vertices of those under-trained sweeps move
# faster than compute between their budgets), and the upper bound cut it.
# Thirteenth run (issue 15, eighth session; written and committed after the twelfth's results, before its
# own): the candidate extrapolation.ALLOCATION_BOUNDS = (0, inf): the lower bound alone, the one that
# answers the pathology the twelfth run was written for (N_opt falling with compute, a + d_a < 0); the
# upper bound (D_opt falling) is what cost the twelfth its N_opt sweeps. This candidate was chosen knowing
# the twelfth run's results on these sources, which is stated here. THE ADOPTION RULE: the twelfth
# run's, unchanged ((a)-(d) standard, (g) and (h) far, (i) far optima), with the same runs into
# results/bench_extrapolation_allocation_lower_bound{,_simulation,_far,_far_optima}.json.
# Outcome (those files, load 1-12 from two helpers' work): adopted (passes (a)-(d), (g), (h), (i); standard:
# Chinchilla 82% / IS 0.090, Marin 88% / 0.184, Porian 97% / 0.729, N_opt 12/15, Gadre 100% / 0.555, N_opt
# 15/18 as the default; simulation 98.8% / 0.285 (default 100% / 0.307); far: Porian 83% / 1.551 (1.589),
# Gadre 100% / 0.725 (0.831), IS 0.959x the default's, N_opt 14/18 as the default; far optima 4 of 5 as the
# default). extrapolation.ALLOCATION_BOUNDS is now (0, inf); the old default is "allocation-unbounded".
# Fourteenth run (issue 15, eighth session; written and committed before its results): with the bound on
# a + d_a, 18-19% of a Chinchilla fit's draws still had N_opt falling per decade of compute beyond 1e24,
# and the frontier's lower 5% fell from 9.1B at 5.76e23 to 1.9B at 1e27 (exploratory short fit, 2 x 200
# draws, seed 3; no held-out run scored). Why: beyond the fitted D the law's exponent beta is beta e^d_D, and
# for the Chinchilla law d ln N_opt / d ln C = (beta e^d_D + (alpha + beta) d_a) / (alpha e^d_N + beta e^d_D),
# so N_opt does not fall iff d_a >= -a e^d_D. Candidate: extrapolation.ALLOCATION_BOUND_SHAPE = True (that
# lower bound; beyond u* for a held draw with e^(d_D - c_D)); in the same exploratory fit 0.4-1.2% of the
# draws' N_opt then fell, and the lower 5% grew from 9.9B to 12.3B. THE ADOPTION RULE: the twelfth run's,
# unchanged, against the current default (the thirteenth run's), with the same runs into
# results/bench_extrapolation_allocation_shape{,_simulation,_far,_far_optima}.json.
# Outcome (those files, load 3-8 from a helper's benchmark): adopted (passes (a)-(d), (g)-(i); standard:
# Chinchilla 82% / IS 0.090, Marin 88% / 0.184, Porian 97% / 0.728, N_opt 12/15, Gadre 100% / 0.556, N_opt
# 15/18; simulation 98.8% / 0.284; far: Porian 84% / 1.550, Gadre 100% / 0.721, IS 0.998x the default's, N_opt
# 14/18; far optima 4 of 5: scores as the thirteenth run's default). extrapolation.ALLOCATION_BOUND_SHAPE is
# now True. Found after it by the pool benchmark (v7): a draw whose law has no finite optimum (A or B
# overflowed, Laplace tails) got a NaN bound and a NaN drift; such draws are now left as drawn.
# Fifteenth run (issue 15, ninth session; written and committed before its results): under the default
# (the fourteenth run's) a draw beyond the bound is clipped onto it, so the draws that cross it pile up
# there: on all 240 Chinchilla runs 45-47% of a default fit's draws have N_opt exactly flat in compute
# within u*, a point mass that no prior or posterior motivates, and the frontier's median N_opt beyond
# the runs sits on it (16.0B at 1e23, 16.3B at 5.76e23, 16.6B at 1e24). Candidate:
# extrapolation.ALLOCATION_BOUND_MODE = "condition": the drift's distribution given each draw's law
# conditioned on the bound (a draw that crosses it is redrawn whole from the calibrated drift
# distribution until it does not; theta's draws unchanged), the constrained-parameter posterior
# (Gelfand, Smith & Lee 1992) rather than a projection onto the constraint. Seen before this rule, in
# one exploratory fit of all 240 Chinchilla runs (seed 0, /tmp script, no held-out run scored): N_opt
# at 5.76e23 16.6B [10.2B, 135B] against the default's 16.3B [8.9B, 155B], at 1e25 67B [15B, 1.35T]
# against 33B [11B, 832B]; L_opt(5.76e23) 1.942 against 1.952 (the whole drift is redrawn, so its
# components correlated with d_a move too). THE ADOPTION RULE: the twelfth run's, unchanged ((a)-(d)
# standard, (g) and (h) far, (i) far optima), against the current default, with the same runs into
# results/bench_extrapolation_allocation_condition{,_simulation,_far,_far_optima}.json.
# Outcome (those files, run from an archive of 4013d17, load 2.4-5.3 from a helper's benchmark): adopted
# (passes (a)-(d), (g)-(i)); standard: Chinchilla 82% / IS 0.088 (default 0.090), Marin 90% / 0.180 (88% /
# 0.184), Porian 97% / 0.725 (0.728), N_opt 12/15, Gadre 100% / 0.550 (0.556), N_opt 15/18 as the default;
# geometric-mean IS 0.991x the default's; simulation 97.5% / 0.280 (98.8% / 0.284); far: Chinchilla 94% /
# 0.091 (0.092), Porian 84% / 1.550 (1.550), Gadre 100% / 0.718 (0.721), N_opt 14/18 as the default; far
# optima 4 of 5 as the default (mean |log error| 0.265 against 0.271). extrapolation.ALLOCATION_BOUND_MODE
# is now "condition"; the old default is ALLOCATION_BOUND_MODE = "clip".
# Sixteenth run (issues 15 and 16, twelfth session; written and committed before its results): on 10 of
# the 44 development fits (all Porian) the default's median loss rises with scale beyond the runs
# (experiments/monotonicity_check.py, results/monotonicity_check.json): a positive level drift g_C (learned
# mean +0.008 to +0.10 per e-fold) adds log-loss at a constant rate while the law's own frontier falls ever
# more slowly, so every such draw's compute-optimal loss eventually rises without end. Seen before this rule
# (one /tmp fit of all runs of rw-base-long-kaplan-standard-val, seed 0; no held-out run scored): the
# default's median L_opt at 1, 2.7, 10, 100, 1e3, 1e4, 1e6 x the top run's compute 2.935, 2.971, 3.020, 2.952,
# 2.953, 3.031, 3.327 (upper 95%: 3.59 at 10x, 11.6 at 1e6x); with the candidate 2.935, 2.916, 2.909, 2.877,
# 2.854, 2.840, 2.824 (upper 95% 2.98-2.99); the ray rise from the law's optimum 14.2% -> 2.5% (what is left
# is the allocation drift reading a fixed-shape ray away from the moved optimum). Candidate:
# extrapolation.LEVEL_BOUND = "frontier": each draw's level reduced, per compute distance, by what keeps its
# drifted frontier non-increasing (the frontier held at its lowest value so far; a projection after the
# calibration: theta's draws, the scales and the drift draws are the default's). THE ADOPTION RULE: the
# fifteenth run's ((a)-(d) standard, (g) and (h) far, (i) far optima), plus (f) the cost target (a default
# fit of all Chinchilla runs under the candidate at most 2x a plain fit, --cost-only with the candidate,
# passed as --cost-results), plus (j) monotonicity (--monotonicity-results: monotonicity_check.py
# --level-bound frontier): the candidate's median compute-optimal loss rises by more than 0.1% from one
# decade of compute to the next on none of the 44 fits. Runs into
# results/bench_extrapolation_level_bound{,_simulation,_far,_far_optima,_cost}.json and
# results/monotonicity_check_level_bound.json, then --judge.
# Outcome of the sixteenth run (results/bench_extrapolation_level_bound{,_simulation,_far,_far_optima}.json,
# results/monotonicity_check_level_bound.json, load ~2 from the two chains run side by side): passes (a)-(d),
# (g)-(i) and (j): standard Chinchilla 82% / IS 0.088, Marin 90% / 0.179, Porian 97% / 0.650 (default 0.725),
# N_opt 12/15, Gadre 100% / 0.550; simulation 97.5% / 0.280 as the default; far Porian 84.5% / 1.511 (83.7% /
# 1.550), N_opt 14/18 as the default; far optima 4 of 5 as the default; the frontier rises on 0 of 44 fits
# (the ray from the law's optimum on 9, the default 10). FAILS (f): 2.08x a plain fit
# (results/bench_extrapolation_level_bound_cost.json), the default 2.04x in the same run; after the folds'
# refits were put in threads (same draws), again 2.01x, the default 2.05x
# (results/bench_extrapolation_level_bound_cost_threads.json). Not adopted by this rule.
# Seventeenth run (twelfth session; written after the sixteenth's results, stated above, and committed before
# its own): (f) as written cannot separate a candidate from the default: the default itself measured 2.04x and
# 2.05x (and 1.76x in the same process's other measurement), and the candidate's extra cost (the cut table,
# about 0.02 s of a 0.5 s fit) is inside that noise. The candidate is the sixteenth's; its draws and every score
# of (a)-(d), (g)-(j) are the sixteenth run's (the threaded refits give the same draws: tests/test_extrapolation.py,
# test_folds_refitted_in_threads_calibrate_as_one_after_another). THE ADOPTION RULE: the sixteenth's, with (f)
# replaced by (f'): in one --cost-only run with --cost-repeats 9, the candidate's median default-fit time is at
# most 1.05x the default's (in turn, in one process; --judge --cost-relative). The default's own ratio to the
# plain fit is reported against the issue's 2x target; it is not in the rule. Run into
# results/bench_extrapolation_level_bound_cost_relative.json, then --judge with the sixteenth run's files.
# Outcome (results/bench_extrapolation_level_bound.json, "adoption"; the cost file run alone, load ~2-3):
# adopted: (f') 1.036x the default's fit (0.462 s against 0.446 s; the default 1.81x a plain fit, the candidate
# 1.87x, in this run), with the sixteenth run's (a)-(d), (g)-(j); interval score 0.973x the default's over the
# four sources on the standard split, 0.993x on the far one. extrapolation.LEVEL_BOUND is now "frontier"; the
# old default is the candidate "extrapolating, level unbounded (the default before the seventeenth run)".
# After it (twelfth session): the threaded refits were taken out (NumPyro's tracing is not thread-safe; the full
# test suite caught a hierarchical fit tracing its model in two threads). The same --cost-only on the shipped
# code (results/bench_extrapolation_level_bound_cost_shipped.json, load ~1.6): 1.071x the unbounded default
# (0.667 s against 0.623 s), above (f')'s 1.05; the cut alone (level_cut_cost, same file) 0.027 s, 3.3% of a
# default fit. Reported in docs/extrapolation.md; the adoption stands on the run as declared.
# Eighteenth run (issue 15, thirteenth session; written and committed before its results). Found while profiling
# a default fit: the calibration's Laplace refits (``fit_laplace``) started each of their four chains' Newton
# steps at its jittered point (sd 0.05 in latent units, many posterior sds on these data) and stopped after 8,
# so on all 240 Chinchilla runs one or two chains of each of the three folds ended 20-120 nats of potential short
# of the mode (fold potentials -779.5 against the mode's -811.6, -700.7 against -732.9, -520.9 against
# -642.4): their draws, a quarter to a half of each refit's, were centred away from the mode, which moves the
# folds' predictive means and variances and so the learned drift. Seen before this rule (one /tmp fit of all
# 240 Chinchilla runs, seed 0; no held-out run scored): with every chain started at the unjittered point and up
# to 30 Newton steps, every chain reaches the mode in 8-12 calls; the learned mean drift (d_N, d_D, g_C, d_a)
# -0.403, -0.183, -0.004, -0.414 -> -0.471, -0.284, -0.005, -0.423; N_opt(5.76e23) 16.6B [10.2B, 135B] ->
# 16.5B [10.5B, 170B]; a default fit's CPU time 0.77 s -> 0.63-0.65 s (median of 5, loaded machine).
# Candidate: sampler.LAPLACE_START = "mode" ("laplace-mode"; the library default "jittered" while this runs).
# THE ADOPTION RULE: the seventeenth's, unchanged: (a)-(d) standard, (g) and (h) far, (i) far optima, (j) the
# frontier rising by more than 0.1% per decade on none of the 44 fits (monotonicity_check.py --laplace-start
# mode), (f') in one --cost-only run with --cost-repeats 9 the candidate's median default-fit time at most 1.05x
# the default's. Runs into results/bench_extrapolation_laplace_mode{,_simulation,_far,_far_optima,_cost}.json and
# results/monotonicity_check_laplace_mode.json, then --judge. Adopted: LAPLACE_START becomes "mode" and the old
# default is the candidate "laplace-jittered". Not adopted: the default stays, and what failed is reported as a
# finding (a calibration whose numbers depend on refits that miss their mode).
# Outcome (those files, from an archive of 77cb6e0, the pool benchmark paused; --judge into
# results/bench_extrapolation_laplace_mode.json, "adoption"): NOT ADOPTED. Fails (a): Marin 100% (default 90%),
# (d): simulation 50.6% (default 97.5%, plain 42%), (g): 2 sources in the band on the far split against 3;
# passes (b) (Gadre's IS 0.660 against 0.550 the one source worse), (c) 15/18, (h) 14/18, (i) 4 of 5, (j) 0 of
# 44, (f') 0.915x the default's fit. Diagnosis (--fold-refits, results/bench_extrapolation_fold_refits.json):
# at the mode the refits match NUTS's predictive sd on Chinchilla (0.99x) and Marin (1.02-1.12x; jittered
# 1.25-1.57x and 1.39-3.59x), but on folds that cannot pin the law (Gadre's, the simulation's) the mode is not
# the skewed posterior's mean and the spread is too wide. LAPLACE_START stays "jittered".
# Nineteenth run (thirteenth session; written after the eighteenth's results and after a /tmp measurement,
# both stated here, and committed before its own results). Seen: on all 240 Chinchilla runs the default's
# (jittered) median N_opt(5.76e23) over fit seeds 0-5 was 16.6B, 16.5B, 16.4B, 32.1B, 22.6B, 23.3B (learned mean
# d_N -0.40, -0.46, -0.46, -0.00, -0.03, -0.16), at the mode 16.4B-16.5B (d_N -0.47 to -0.46): which refit chains
# miss the mode depends on the seed, and the calibration with them. The eighteenth run judged both settings at
# seed 0 only, one draw of a seed-dependent default. Runs: the standard split (--scores-only --no-baselines),
# the far split and the simulation under both settings at --seed 1 and --seed 2 (seed 0: the eighteenth run's
# files), into results/bench_extrapolation_laplace_mode_seed{1,2}{,_far,_simulation}.json, and --seed-stability
# (results/bench_extrapolation_seed_stability.json, the measurement above redone as a script).
# THE ADOPTION RULE, summed over seeds 0, 1, 2: "mode" is adopted if (1) its 90% coverage lies in 80-97% on at
# least as many (source, seed) pairs of the standard split as the default's, and (2) of the far split, (3) the
# simulation passes (coverage >= 80% and >= the plain law's + 10 points) on at least as many seeds as the
# default's, (4) its N_opt lies inside at the top held-out budget on at least the default's total minus 3, and
# (5) its geometric-mean interval score over the standard split's (source, seed) pairs is at most 1.0x the
# default's. Far optima, monotonicity and cost passed at seed 0 and are not re-run. Not adopted: the default
# stays and its seed dependence is reported as a defect.
# Outcome (--judge-seeds, results/bench_extrapolation_laplace_mode_seeds.json; from an archive of 642c929, the pool
# benchmark paused): NOT ADOPTED. Totals, default against mode: standard in band 8 / 6, far in band 8 / 6,
# simulation passes 3 / 0 (mode 50.6%, 54.3%, 53.1%), N_opt inside 45 / 45, interval score 1.035x. --seed-stability:
# the default's N_opt(5.76e23) median 16.4B-32.1B over seeds 0-5, at the mode 16.4B-16.5B.
# Twentieth run (fourteenth session; written before its results). Candidate "laplace-psis":
# sampler.LAPLACE_CORRECTION = "psis", the calibration's refits importance-sampled from the Gaussian at the mode
# (fitting/importance.py; on the development folds within a median 0.0025 of NUTS's held-out mean prediction,
# experiments/laplace_psis_check.py). Two questions, each with its rule:
# (A) FIDELITY: the PSIS refits stand in for NUTS refits of every fold (the thirteenth session's "nuts-folds",
#     results/bench_extrapolation_nuts_folds{,_simulation}.json, seed 0) if on each of the four sources their
#     coverage is within 5 points and their interval score within 10% of nuts-folds', and the simulation's
#     coverage within 5 points.
# (B) ADOPTION: the eighteenth run's rule, unchanged, checked in the order standard + simulation ((a)-(d)), then
#     far, far optima, monotonicity and cost; the first failing check ends the run (not adopted) and the rest are
#     not run. Expected from nuts-folds (Marin 73%): (a) fails; then the finding is that the calibration's
#     constants were chosen on refits that miss their mode, and must be re-chosen on faithful ones.
# Runs: --candidates extrapolating "extrapolating, importance-sampled Laplace refits", standard split and
# --simulation, into results/bench_extrapolation_laplace_psis{,_simulation}.json, then --judge.
# Outcome (standard split from an archive of 866f7d5, simulation of 5212886; --judge --fidelity-reference
# results/bench_extrapolation_nuts_folds.json into results/bench_extrapolation_laplace_psis.json): (A) FAITHFUL:
# coverage / interval score against nuts-folds' Chinchilla 83.3% / 0.987x (81.9%), Marin 73.1% / 1.020x (73.1%),
# Porian 96.5% / 0.998x (96.8%), Gadre 100% / 1.097x (100%), simulation 100% (100%). (B) NOT ADOPTED: fails (a)
# (Marin 73.1%), (b) (interval score worse than the default's on Chinchilla 0.091, Marin 0.224 and Porian 0.660;
# better on Gadre 0.475 against 0.550) and (c) (N_opt inside 14 of 18, Porian 11/15: under 80%); passes (d)
# (simulation 100%). The far split, far optima, monotonicity and cost were not run (the rule stops at (a)).
# Twenty-first run (fourteenth session; written after the twentieth's results, before its own). With faithful
# refits, the constants chosen on the jittered ones are chosen again; the first is the drift's prior scales,
# the one input the folds do not overrule where they are few and short (Marin's one fold per sweep reaches 0.5
# e-folds of compute, its held-out runs 2.3). Candidates: PSIS refits with every PRIOR_SCALES entry times 1
# (the twentieth run's), 1.5, 2 and 3. The reference can no longer be the default's numbers: they are one seed's
# draw of refits that miss their mode (the nineteenth run: Marin 89.6%, 83.6%, 97.8% over seeds 0-2). So the rule
# is the issue's own targets. THE RULE: a candidate qualifies if (1) its 90% coverage lies in 80-97% on at least
# 3 of the 4 sources (the default's count at seed 0; 8 of 12 over seeds 0-2), (2) the drifting simulation passes
# (coverage >= 80% and >= the plain law's + 10 points), (3) the empirical N_opt lies inside its interval on at
# least 80% of the judged sweeps (the issue's target), and (4) its geometric-mean interval score over the four
# sources is at most 1.05x the default's (seed 0). Of those that qualify, the lowest geometric-mean interval
# score is chosen; it then must pass the eighteenth run's later checks against the default ((g) and (h) far
# split, (i) far optima, (j) monotonicity, (f') cost at most 1.05x the default's fit), run only for it. If it
# passes, LAPLACE_CORRECTION becomes "psis" and PRIOR_SCALES its multiple. If none qualifies or it fails a later
# check: not adopted, and the finding is reported. Runs: --scores-only and --simulation with --candidates
# extrapolating and the four, into results/bench_extrapolation_psis_priors{,_simulation}.json, then --judge-priors.
# Outcome (from an archive of 484a591, --judge-priors into results/bench_extrapolation_psis_priors.json): chosen
# "drift priors x2" (the only one qualifying): sources in band 3 (Chinchilla 88.9%, Marin 90.3%, Porian 96.8%;
# Gadre 100%), simulation 100%, N_opt 15/18, interval score 0.989x the default's (x1.5: 2 in band, Marin 79.1%;
# x3: 2 in band, Chinchilla 90.3% but Marin 97.8%; x1 as the twentieth run). Later checks: (f') FAILS, a default
# fit under it 0.671 s against 0.562 s, 1.194x (results/bench_extrapolation_psis_priors_cost.json, from an
# archive of ed95d21); the far split, far optima and monotonicity were stopped there. NOT ADOPTED: the PSIS
# refits' 4,000 proposal draws a round (three rounds, each a 4,000-point evaluation of the potential) cost more
# than the folds' Gaussian refits save.
# Twenty-second run (fourteenth session; written after the twenty-first's results and after one /tmp timing, both
# stated here, before its own results). The proposal's draws a round cut to importance.DRAWS = 1000 (the
# calibration reads 1,000 draws of each refit; resampled to the fit's chains x draws as before): in the /tmp
# timing (7 repeats in turn, all 240 Chinchilla runs) a default fit under "drift priors x2" took 0.948x the
# default's (0.516 s against 0.544 s; at the mode without correction 0.896x). The candidates' names are the
# twenty-first run's; they now run with 1,000 draws a round. THE RULE: the twenty-first's, unchanged, over x1.5, x2
# and x3 (x1 failed (1) and (3) at 4,000 draws and is not re-run), including the later checks for the chosen one,
# run in the order cost, far split, far optima, monotonicity. Runs into
# results/bench_extrapolation_psis1000_priors{,_simulation,_cost,_far,_far_optima}.json and
# results/monotonicity_check_psis1000_priors.json, then --judge-priors with them.
# Outcome (from archives of 6a68c78 (scores) and fdee1ca (later checks); --judge-priors with
# every file into results/bench_extrapolation_psis1000_priors.json): chosen "drift priors x2" (the only one
# qualifying): Chinchilla 88.9% / 0.084, Marin 95.5% / 0.181, Porian 96.8% / 0.662, Gadre 100% / 0.561, simulation
# 100%, N_opt 15/18, interval score 1.0003x the default's (x1.5: N_opt 14/18; x3: 2 in band, 1.052x). Later
# checks: (f') 0.905x the default's fit (0.464 s against 0.513 s; the default 1.98x a plain fit, the candidate
# 1.79x), (h) far N_opt 15 against 14, (i) far optima 5 of 5 against 4 of 5, (j) the frontier rises on 0 of 44;
# (g) FAILS: 3 sources in band on the far split as the default, but its geometric-mean interval score there is
# 1.030x the default's (Chinchilla 0.122 against 0.091, Marin 0.181 against 0.179; Porian 1.428 against 1.511,
# Gadre 0.634 against 0.717). NOT ADOPTED.
# Twenty-third run (fourteenth session; written after the twenty-second's results, before its own). The
# twenty-first run's rule set aside the default's seed-0 numbers as a reference for its own checks (they are one
# draw of a seed-dependent calibration: the nineteenth run) but kept them for the later checks, where (g) then
# decided by 3%. This run judges the twenty-second's choice against the default over seeds 0, 1, 2, as the
# nineteenth run judged "mode": THE RULE: the nineteenth run's checks (1)-(5) summed over seeds 0-2, plus (6) the
# far split's geometric-mean interval score over its (source, seed) pairs at most 1.0x the default's (the
# analogue of (g)) and (7) the far split's N_opt inside, summed, at least the default's minus 3 (of (h)). Far
# optima, monotonicity and cost passed at seed 0 and are not re-run. Adopted: LAPLACE_CORRECTION becomes "psis"
# and PRIOR_SCALES twice the current ones. Runs: the standard split (--scores-only), the far split and the
# simulation with --candidates extrapolating "extrapolating, PSIS refits, drift priors x2" at --seed 1 and
# --seed 2, into results/bench_extrapolation_psis1000_priors_seed{1,2}{,_far,_simulation}.json (seed 0: the
# twenty-second run's files), then --judge-seeds --seeds-stem bench_extrapolation_psis1000_priors.
# Outcome (from an archive of c1d1400; --judge-seeds --seeds-stem bench_extrapolation_psis1000_priors into
# results/bench_extrapolation_psis1000_priors_seeds.json): NOT ADOPTED. Over seeds 0-2, default against the
# candidate: (1) standard in band 8 / 8, (2) far in band 8 / 8, (3) simulation passes 3 / 3, (4) N_opt inside 45 /
# 44, (5) standard interval score 0.993x, (7) far N_opt 43 / 43; (6) FAILS: the far split's interval score 1.045x
# the default's, from Chinchilla's far split at every seed (0.122, 0.124, 0.118 against 0.091, 0.100, 0.095; Porian
# and Gadre better at every seed). Marin's coverage under the candidate: 95.5%, 97.8%, 94.0% (default 89.6%, 83.6%,
# 97.8%). LAPLACE_CORRECTION stays None and PRIOR_SCALES as they were.
# Twenty-fourth run (sixteenth session; written after the twenty-third's results, before its own). The twenty-third
# run weighed interval scores; what a user reads, one fit's answer at one seed, entered no check. The default's
# answer moves with the seed (the nineteenth run: all 240 Chinchilla runs, median N_opt(5.76e23) 16.4B-32.1B over
# fit seeds 0-5; PSIS x2 16.4B-16.5B), measured so far on Chinchilla only. This run measures it on every group of
# every development source (--seed-stability-sources, results/bench_extrapolation_seed_stability_sources.json): a
# default fit of the group's full data at fit seeds 0-5, under the default and under "PSIS refits, drift priors
# x2", and per fit the frontier at C* = 100x the group's largest fitted 6ND (the issue's 10-100x): N_opt's median
# and 90% bounds and L_opt's median. Per group and setting, s = max - min over the seeds of ln(median N_opt), and
# s_lo, s_hi the same of the bounds. THE RULE: PSIS x2 becomes the default (LAPLACE_CORRECTION "psis",
# PRIOR_SCALES x2) if (S1) the number of groups whose median N_opt moves by more than 10% over the seeds
# (s > ln 1.1) is smaller under it than under the default, (S2) on no group does its s exceed the default's by
# more than ln 1.1, and (S3) the groups whose 90% bounds move by more than 25% (max(s_lo, s_hi) > ln 1.25) are no
# more under it than under the default. The twenty-third run's totals over seeds 0-2 stand as measured (standard in
# band 8 / 8, far 8 / 8, simulation 3 / 3, N_opt 45 / 44 and far 43 / 43, standard interval score 0.993x) and its
# failed check (6), the far split's interval score 1.045x the default's (Chinchilla's far intervals), is then
# accepted as the price of an answer that does not depend on the seed; the cost check (f') passed (0.905x). If S1-S3
# do not all hold: not adopted, and the default's seed dependence is reported per group.
# Outcome (from an archive of 8f996c6, two processes, 16:17-16:26 UTC; --judge-seed-stability into
# results/bench_extrapolation_seed_stability_sources.json): NOT ADOPTED. (S1) passes: 11 groups' median N_opt moves
# > 10% under the default, 9 under PSIS x2; (S3) passes: 14 / 13 groups' bounds move > 25%; (S2) FAILS on four of
# Porian's sweeps, where PSIS x2 moves more than the default: rw-base-short-kaplan-standard-val s 0.528 (default
# 0.177), rw-base-long-kaplan-attention-train 0.568 (0.387), rw-tuned-short-const-standard-val 0.235 (0.088),
# owt2-tuned-short-const-standard-val 0.214 (0.080). Under PSIS x2 the learned mean drift is stable on Chinchilla
# and Marin (Marin's medians within 0.6%, the default's within 34-77%: s 0.338-0.766, upper bounds 6-13x apart),
# but on those Porian sweeps it moves with the seed (rw-base-short-kaplan-standard-val: mean d_a 0.675-0.785 per
# e-fold, which at u_C = ln 100 moves ln N_opt by 0.5).
# Twenty-fifth run (eighteenth session; written after the twenty-fourth's results, before its own). The
# twenty-fourth's S2 compared absolute spreads group by group. What a user reads is one fit's answer with its
# interval, so a move of the median matters in proportion to the interval it sits in. On seeds 0-5 (known when
# this was written: ``spread_share_of_log_width``) the default's median N_opt at C* moved by 25-31% of its 90%
# interval's log width on Chinchilla and on each of Marin's three datasets, and PSIS x2's by at most 12% on any
# group; PSIS x2 moved more than the default on 13 of Porian's 15 sweeps, by up to 9 points of the width. This
# run asks whether that replicates on fit seeds no run has used: --seed-stability-sources --stability-seeds 6 7 8
# 9 10 11, both settings, every group of every source. THE RULE: PSIS x2 becomes the default (``fit_nuts`` and
# everything that fits by default calibrate on importance-sampled refits with the drift priors x2:
# ``nuts.DEFAULT_REFITS`` "psis") if on seeds 6-11 (R1) the largest share over all groups, s / (the median over
# the seeds of ln(hi / lo) of the 90% interval at C*), is smaller under PSIS x2 than under the default; (R2)
# fewer groups have a share above 10% under PSIS x2 than under the default; and (R3) the twenty-fourth run's
# S1 holds again: fewer groups whose median moves by more than 10% (s > ln 1.1). The backtest over seeds 0-5
# stands as measured (standard split, (source, seed) pairs in 80-97%: 16 under either; Chinchilla 81.9-91.7%
# against 86.1-88.9%, Marin 76.9-98.5% against 89.6-97.8%; N_opt inside 14-15 of 18 under either), and so does
# the twenty-third run's failed check (the far split's interval score 1.045x the default's, Chinchilla's far
# intervals), accepted here as the price of an answer that does not depend on the seed where the default's
# does most. If R1-R3 do not all hold: not adopted, and the choice stays open.
# Outcome (from an archive of 0d69b4f, two processes, 20:45-20:52 UTC, nothing else running; --judge-replication
# into results/bench_extrapolation_seed_replication.json): ADOPTED. (R1) the largest share is 0.121 under PSIS x2
# (porian/rw-base-long-kaplan-standard-val) against 0.335 under the default (marin/comma); (R2) groups whose share
# exceeds 10%: 1 against 4 (Chinchilla, Marin comma and dclm, porian/rw-base-short-chinchilla-standard-val); (R3)
# groups whose median moves by more than 10%: 7 (all Porian sweeps) against 10. ``nuts.DEFAULT_REFITS`` is "psis";
# the default before is the candidate "extrapolating, Laplace refits from jittered starts" (variant
# "laplace-jittered").
# Twenty-sixth run (twenty-eighth session; written before its results). Where Gadre's default intervals get their
# width and their bias (a decomposition of the standard split's fits, drift component by component, noted in
# docs/extrapolation.md): the level drift g_C, learned negative from the folds, gives at the 6.9B held-out run a
# median -0.075 in log-loss (5-95%: -0.30 to +0.07) against the exponents' +-0.06; the law's own spread 0.18. The
# level is added to the whole log-loss, so it may carry the loss below the law's floor E, and its effect does not
# shrink as the loss nears E. The candidate (``extrapolation.LEVEL_ON`` "reducible") applies it to the reducible
# part only, L = E + (L_law - E) e^(g_C u_C), in the calibration's directions too, on top of the current default
# (PSIS refits, priors x2; the drift priors' numbers unchanged, now in units of the reducible loss). THE RULE:
# ``adoption`` (a)-(d) on the standard split (--scores-only, with --simulation for (d)), plus (g') on the far
# split its geometric-mean interval score at most 1.0x the default's and N_opt inside on at least the default's
# count minus 1. If adopted, LEVEL_ON becomes "reducible"; if not, it stays an option and the numbers are
# reported. Runs: --scores-only --candidates extrapolating "extrapolating, level on the reducible loss" into
# results/bench_extrapolation_level_reducible.json, then --split far into ..._far.json, then --simulation into
# ..._simulation.json, each only if the one before leaves the rule undecided.
# Outcome (2-core AMD EPYC, load ~3; --scores-only into results/bench_extrapolation_level_reducible.json, with its
# ``adoption``): NOT ADOPTED. (a) fails: Chinchilla 75.0% and Marin 59.7% (default 88.9%, 92.5%); (b) fails: the
# interval score is above the default's on Chinchilla (0.096 against 0.083), Marin (0.309 against 0.183) and Gadre
# (0.582 against 0.560); Porian 96.5% / 0.660 against 96.8% / 0.662. Far split and simulation not run.
# Twenty-seventh run (twenty-ninth session; written before its results). The calibration's compute folds hold out
# the most expensive runs; on the standard split's training runs of Chinchilla, Gadre and 13 of Porian's 15 sweeps
# no fold's held-out run lies beyond its fold's largest N (u*_N = 0: the largest models are all among the most
# expensive runs, or the sweeps reuse one grid of sizes), so the drift learned along D and compute is carried into
# sizes no fold tested (at Gadre's 6.9B held-out runs the level learned along D gives most of the width and a
# median 13% below the observed loss). The candidate (``extrapolation.AXIS_FOLDS`` "untested", on the current
# default) adds, for each of N and D that the compute folds leave untested, one fold that holds out each group's
# runs at its largest values of that axis (the top 10%: Chinchilla 18 runs, u_N 1.37; Gadre the 411M runs, u_N
# 0.99; Porian the grid's top size, u_N 0.66-1.03), fitted on the rest, loss rows only. Marin's folds reach N
# already: its scores must be the default's. The bundled Chinchilla data (the CLI's, all 240 runs) reach N too
# (u*_N 1.69): its default fit gets no axis fold, so the cost target is unchanged there. THE RULE: as the
# twenty-sixth run's, ``adoption`` (a)-(d) on the standard split (--scores-only, with --simulation for (d)), plus
# (g') on the far split its geometric-mean interval score at most 1.0x the default's and N_opt inside on at least
# the default's count minus 1. If adopted, AXIS_FOLDS becomes "untested"; if not, it stays an option and the
# numbers are reported. Runs: --scores-only --candidates extrapolating "extrapolating, axis folds where no compute
# fold extrapolates" into results/bench_extrapolation_axis_folds.json, then --split far into ..._far.json, then
# --simulation into ..._simulation.json, each only if the one before leaves the rule undecided.
# Outcome (2-core AMD EPYC, load ~2; --scores-only into results/bench_extrapolation_axis_folds.json, with
# ``adoption_without_simulation``): NOT ADOPTED. (c) fails: N_opt inside on 14 of 18 sweeps (77.8% < 80%; the
# default 15): Porian rw-tuned-short-const-standard-val's empirical 574M fell out of [159M, 555M] (the default's
# [161M, 586M]). (a) passes (Chinchilla 88.9%, Marin 92.5%, Porian 96.8%) and (b) passes (Porian's interval score
# 0.669 against 0.662, Gadre's 0.546 against 0.560). A correction to the text above, found in the run: the
# benchmark fits Chinchilla's 240 unflagged runs (``for_fit``), whose folds reach N (u*_N 0.51), so Chinchilla got
# no axis fold and its scores are the default's draw for draw, like Marin's; the "18 runs, u_N 1.37" above were
# read off all 245 runs. With those 245 the N fold teaches a mean d_N of -2.04 (the default's folds: +0.09).
# Far split and simulation not run.
# Twenty-eighth run (thirty-fourth session; written before its results). The level bound (``LEVEL_BOUND``
# "frontier") cuts only draws whose level drift rises; a draw whose exponent or allocation drift alone makes its
# compute-optimal loss rise keeps its rise (experiments/frontier_search_edges.py, thirty-first session: 5.3% of the
# draws on Chinchilla and 25-34% on Marin's sweeps rise somewhere in 1e20-1e27 FLOPs, up to 36-55% per quarter
# decade), though more compute can always buy at least the loss of less. The candidate
# (``extrapolation.LEVEL_CUT_DRAWS`` "every draw", on the current default) applies the same cut to every draw whose
# T(u) rises; the NUTS and drift draws are unchanged, only the cut table, at the same cost (one evaluation of the
# law per draw and grid point either way). THE RULE: adopted if ``adoption`` (a)-(c) hold on the standard split
# (--scores-only --no-baselines), and (m) with frontier_search_edges.py --level-cut-draws on every development group
# (the full-data default fit, seed 0, the default search window): the share of draws whose L_opt rises between
# consecutive quarter decades of 1e20-1e27 FLOPs is lower under the candidate on Chinchilla and on each of Marin's
# three datasets and no higher on any group, and (g') on the far split its geometric-mean interval score is at
# most 1.0x the default's and its N_opt inside on at least the default's count minus 1. (d), the simulation,
# is not asked: its held-out runs lie within 2 e-folds of compute of its fits, where the cut rarely acts (noted
# here before the run). If adopted, LEVEL_CUT_DRAWS becomes "every draw"; if not, it stays an option and the numbers
# are reported. Runs: --scores-only --no-baselines --candidates extrapolating "extrapolating, level cut for every
# draw" into results/bench_extrapolation_level_cut_every_draw.json; then frontier_search_edges.py
# --level-cut-draws into results/frontier_search_edges_level_cut.json; then --split far into
# ..._every_draw_far.json, each only if the ones before leave the rule undecided.
# Outcome (2-core AMD EPYC, load 3.4-6.1 beside a helper's work; results/bench_extrapolation_level_cut_every_draw.json,
# results/frontier_search_edges_level_cut.json): NOT ADOPTED. (a)-(c) pass: the held-out runs' scores are the
# default's (Chinchilla 88.9% / 0.0834, Marin 92.5% / 0.1802, N_opt 3/3, identical; Porian 96.5% / 0.66210 against
# 0.66211, N_opt 12/15; Gadre 100% / 0.55477 against 0.55486). (m) fails on Chinchilla: 5.3% of the draws rise under
# both (lower on Marin's three datasets, 33.2/24.9/29.8% -> 28.6/23.4/26.2%, and on 7 of Porian's sweeps; equal on
# the rest; higher on none). What (m) did not ask, measured in the same run: the largest rise per quarter decade
# falls from 33-49% to 0.7-1.5% on Marin and from up to 50.7% to at most 7.1% on Porian, and Marin comma's 95% bound
# of L_opt no longer rises with the budget (3.0005, 3.0467, 3.0886 at 1e24, 1e26, 1e27 FLOPs against 2.9560,
# 2.9496, 2.9458). The far split was not run (the rule was decided).
NUTS_FOLD_RUNS = 36
FIT_SEED = 0  # the seed of every scored fit (``--seed``; the nineteenth run's seeds 1 and 2)
SOURCES = {"chinchilla": load_chinchilla, "marin": load_marin, "porian": load_porian, "gadre": load_gadre}
OUT = Path(__file__).parent / "results" / "bench_extrapolation.json"
DIAGNOSIS_HELP = {  # the diagnosis flags (each writes its own results file; ``main``'s dispatch table)
    "seed_stability_sources": "the twenty-fourth run: every group's default fit at seeds 0-5 under the default and PSIS x2, "
                              "the frontier at 100x its largest run (--sources), into results/bench_extrapolation_seed_stability_sources.json",
    "diagnose_gadre": "why the default fails on Gadre, into results/bench_extrapolation_gadre_diagnosis.json",
    "misfit_geometry": "the misfit noise's band against a zero-width one, into results/bench_extrapolation_misfit_geometry.json",
    "misfit_chinchilla": "the misfit noise on Chinchilla by tokens per parameter, into results/bench_extrapolation_misfit_chinchilla.json",
    "misfit_final_diagnosis": "the misfit noise in the final fit only against the default, per group, into "
                              "results/bench_extrapolation_misfit_final_diagnosis.json",
    "chinchilla_far_optima": "Chinchilla's far split: each model's N_opt interval at the held-out inferred IsoFLOP slices",
    "far_simulation": "drifting-law sweeps, fitted on 4 of 9 budgets: each MEAN_BEYOND when the drift goes on or stops",
    "exact_simulation": "the default against the plain law where the law is exact: IsoFLOP sweeps, over-training grids at "
                        "Gadre's design, with and without a misfit of the runs at D/N <= 5",
    "misfit_allocation": "the learned allocation drift on two Porian sweeps under PSIS refits with and without the misfit term",
    "fold_refits": "the calibration folds' predictions by NUTS and by Laplace refits from jittered starts and at the mode",
    "seed_stability": "a default fit of all Chinchilla runs at seeds 0-5 under each Laplace start and the PSIS refits: drift and N_opt",
}
FAR_SPLITS = {"chinchilla": {"fraction": 0.5}, "marin": {}, "porian": {"top_budgets": 6}, "gadre": {"fraction": 0.5}}


CURRENT_DEFAULT_VARIANTS = ("level-reducible", "axis-folds", "level-cut-every-draw")  # variants on top of the current default (its refits too)


@contextlib.contextmanager
def variant(name: str | None):
    """The extrapolating model with one setting changed (None: the default): "misfit-noise" sets
    ``nuts.MISFIT_NOISE`` (the misfit term along tokens per parameter; "misfit-noise-in-data" also
    ``likelihood.MISFIT_CAP`` "in data"; "misfit-noise-final" sets it to "final": the final fit only,
    not the calibration's refits); "allocation-bounds" sets ``extrapolation.ALLOCATION_BOUNDS`` (0, 1), "allocation-lower-bound" (0, inf) (the default since the thirteenth run), "allocation-unbounded" None, "allocation-lower-bound-shape"
    (0, inf) with ``extrapolation.ALLOCATION_BOUND_SHAPE``; "allocation-condition" sets
    ``extrapolation.ALLOCATION_BOUND_MODE`` "condition"; "level-reducible" sets ``extrapolation.LEVEL_ON`` "reducible" (on the current default, as every name in ``CURRENT_DEFAULT_VARIANTS``); "axis-folds" sets ``extrapolation.AXIS_FOLDS`` "untested"; "level-cut-every-draw" sets ``extrapolation.LEVEL_CUT_DRAWS`` "every draw"; "level-frontier" sets ``extrapolation.LEVEL_BOUND`` "frontier" (the default since the
    seventeenth run), "level-unbounded" None; "laplace-psis" sets ``sampler.LAPLACE_CORRECTION`` "psis" (the
    refits importance-sampled; "laplace-psis-priors-F" also ``extrapolation.PRIOR_SCALES`` times F); "laplace-mode" and "laplace-jittered" set ``sampler.LAPLACE_START``
    (the calibration's Laplace refits: every chain's Newton steps from one point, to the mode, or from jittered starts);
    a name ending "+misfit-noise" also sets ``nuts.MISFIT_NOISE`` (the misfit term everywhere); "overlap-once" sets
    ``extrapolation.FOLD_OVERLAP`` "once" ("full-covariance+overlap-once" also FOLD_COVARIANCE "full"); a name in
    ``extrapolation.LOSS_ONLY_MEANS`` sets ``extrapolation.LOSS_ONLY_MEAN``; "nuts-small-folds" refits folds of fewer than ``NUTS_FOLD_RUNS``
    runs by NUTS (plain law, default priors) instead of the fit's Laplace refit ("nuts-folds": every fold)."""
    mode, calibrate, covariance = extrapolation.LOSS_ONLY_MEAN, extrapolation.calibrate, extrapolation.FOLD_COVARIANCE
    infer, overlap, misfit = extrapolation.INFER_SLICES, extrapolation.FOLD_OVERLAP, nuts_module.MISFIT_NOISE
    cap, beyond = likelihood_module.MISFIT_CAP, extrapolation.MEAN_BEYOND
    bounds = extrapolation.ALLOCATION_BOUNDS
    bound_shape, bound_mode = extrapolation.ALLOCATION_BOUND_SHAPE, extrapolation.ALLOCATION_BOUND_MODE
    level_bound, laplace_start = extrapolation.LEVEL_BOUND, sampler_module.LAPLACE_START
    correction, prior_scales = sampler_module.LAPLACE_CORRECTION, extrapolation.PRIOR_SCALES
    default_refits = nuts_module.DEFAULT_REFITS
    level_on, axis_folds = extrapolation.LEVEL_ON, extrapolation.AXIS_FOLDS
    cut_draws = extrapolation.LEVEL_CUT_DRAWS
    if name is not None and name not in CURRENT_DEFAULT_VARIANTS:  # variants defined before the twenty-fifth run:
        nuts_module.DEFAULT_REFITS = None  # on the sampler's settings ("laplace-jittered" alone is the default before it)
    misfit_too = name is not None and name.endswith("+misfit-noise")  # "X+misfit-noise": X and the misfit term
    name = name.removesuffix("+misfit-noise") if misfit_too else name
    if misfit_too:
        nuts_module.MISFIT_NOISE, likelihood_module.MISFIT_CAP = True, "none"
    if name is not None and name.startswith("laplace-psis"):
        sampler_module.LAPLACE_CORRECTION = "psis"
        if name.startswith("laplace-psis-priors-"):
            factor = float(name.removeprefix("laplace-psis-priors-"))
            extrapolation.PRIOR_SCALES = {k: factor * v for k, v in prior_scales.items()}
    elif name in ("laplace-mode", "laplace-jittered"):
        sampler_module.LAPLACE_START = name.removeprefix("laplace-")
    elif name == "level-reducible":
        extrapolation.LEVEL_ON = "reducible"
    elif name == "axis-folds":
        extrapolation.AXIS_FOLDS = "untested"
    elif name == "level-cut-every-draw":
        extrapolation.LEVEL_CUT_DRAWS = "every draw"
    elif name in ("level-frontier", "level-unbounded"):
        extrapolation.LEVEL_BOUND = "frontier" if name == "level-frontier" else None
    elif name == "allocation-condition":
        extrapolation.ALLOCATION_BOUND_MODE = "condition"
    elif name in ("allocation-bounds", "allocation-lower-bound", "allocation-unbounded", "allocation-lower-bound-shape"):
        extrapolation.ALLOCATION_BOUNDS = {"allocation-bounds": (0.0, 1.0), "allocation-unbounded": None}.get(
            name, (0.0, np.inf))
        extrapolation.ALLOCATION_BOUND_SHAPE = name == "allocation-lower-bound-shape"
    elif name in ("held-mean", "mixed-mean", "linear-mean"):
        extrapolation.MEAN_BEYOND = name.removesuffix("-mean")
    elif name == "misfit-noise-final":
        nuts_module.MISFIT_NOISE, likelihood_module.MISFIT_CAP = "final", "none"
    elif name in ("misfit-noise", "misfit-noise-in-data"):
        nuts_module.MISFIT_NOISE = True
        likelihood_module.MISFIT_CAP = "in data" if name.endswith("in-data") else "none"
    elif name in ("overlap-once", "full-covariance+overlap-once"):
        extrapolation.FOLD_OVERLAP = "once"
        if name.startswith("full-covariance"):
            extrapolation.FOLD_COVARIANCE = "full"
    elif name == "full-covariance":
        extrapolation.FOLD_COVARIANCE = "full"
    elif name in ("inferred-slices", "no-inferred-slices"):
        extrapolation.INFER_SLICES = name == "inferred-slices"
    elif name in extrapolation.LOSS_ONLY_MEANS:
        extrapolation.LOSS_ONLY_MEAN, extrapolation.INFER_SLICES = name, False
    elif name in ("nuts-small-folds", "nuts-folds"):
        limit = NUTS_FOLD_RUNS if name == "nuts-small-folds" else np.inf
        def nuts_small(train: Runs, laplace):
            if len(train) < limit:
                return fit_nuts(train, model="plain", num_chains=2, num_warmup=300, num_draws=500)
            return laplace(train)

        extrapolation.calibrate = lambda runs, fit_plain, **kw: calibrate(
            runs, lambda train: nuts_small(train, fit_plain), **kw)
    try:
        yield
    finally:
        extrapolation.LOSS_ONLY_MEAN, extrapolation.calibrate, extrapolation.FOLD_COVARIANCE = mode, calibrate, covariance
        extrapolation.INFER_SLICES, extrapolation.FOLD_OVERLAP = infer, overlap
        nuts_module.MISFIT_NOISE, likelihood_module.MISFIT_CAP = misfit, cap
        extrapolation.MEAN_BEYOND, extrapolation.ALLOCATION_BOUNDS = beyond, bounds
        extrapolation.ALLOCATION_BOUND_SHAPE, extrapolation.ALLOCATION_BOUND_MODE = bound_shape, bound_mode
        extrapolation.LEVEL_BOUND, sampler_module.LAPLACE_START = level_bound, laplace_start
        sampler_module.LAPLACE_CORRECTION, extrapolation.PRIOR_SCALES = correction, prior_scales
        nuts_module.DEFAULT_REFITS = default_refits
        extrapolation.LEVEL_ON, extrapolation.AXIS_FOLDS = level_on, axis_folds
        extrapolation.LEVEL_CUT_DRAWS = cut_draws


def conformal_scores(runs: Runs, split_kw: dict | None = None, thin=None) -> dict:
    """Split-conformal 90% intervals around the plain law's predictive median, per group
    (``split_kw``: ``split_by_compute``'s split; default the standard one; ``thin``: Runs -> Runs,
    applied to each group's training runs after the split, as a backtest's ``fit`` may). The half-width
    is the ceil((n + 1) 0.9)-th smallest of the n calibration scores; with n <= 8 that exceeds n, where
    split conformal's interval is infinite, and this baseline takes the largest score instead (every
    development group has dozens of scores). The forward-chained folds hold some runs out more than
    once, so the scores are not exchangeable and the finite-sample guarantee is nominal."""
    split = split_by_compute(runs, **(split_kw or {}))
    rows = []
    for name in sorted(split.test.frame["group"].unique()):
        train = Runs(split.train.frame[split.train.frame["group"] == name].reset_index(drop=True))
        train = thin(train) if thin is not None else train
        test = Runs(split.test.frame[split.test.frame["group"] == name].reset_index(drop=True))
        residuals = []
        for fold in forward_chain(train):
            post = fit_nuts(fold.train, model="plain")
            residuals.append(np.abs(np.log(fold.test.loss) - np.log(np.median(post.predict(fold.test.N, fold.test.D), 0))))
        post = fit_nuts(train, model="plain")
        if not residuals:  # no fold to calibrate on: the training residuals (in-sample)
            residuals.append(np.abs(np.log(train.loss) - np.log(np.median(post.predict(train.N, train.D), 0))))
        scores = np.sort(np.concatenate(residuals))
        k = min(len(scores) - 1, int(np.ceil((len(scores) + 1) * LEVEL)) - 1)
        median = np.median(post.predict(test.N, test.D), 0)
        lo, hi = median * np.exp(-scores[k]), median * np.exp(scores[k])
        rows.append((test.loss, lo, hi))
    y, lo, hi = (np.concatenate(parts) for parts in zip(*rows))
    return {"n": len(y), "coverage": float(scoring.covered(y, lo, hi).mean()),
            "interval_score": float(scoring.interval_score(y, lo, hi, LEVEL).mean())}


def model_scores(runs: Runs, fit, split_kw: dict | None = None) -> dict:
    result = backtest(runs, fit=fit, levels=(LEVEL,), **(split_kw or {}))
    t = result.runs
    out = {"n": len(t), "coverage": float(t["covered_90"].mean()),
           "interval_score": float(t["interval_score_90"].mean()), "crps": float(t["crps"].mean()),
           "fit_seconds": float(sum(result.fit_seconds.values()))}
    if len(result.n_opt):
        top = result.n_opt.loc[result.n_opt.groupby("group")["budget"].idxmax()]
        judged = top[top["inside"].notna()]
        out["n_opt_top_inside"] = int(judged["inside"].astype(bool).sum())
        out["n_opt_top_judged"] = int(len(judged))
        out["n_opt_top"] = [{k: (v if isinstance(v, (str, bool)) or v is None else float(v)) for k, v in r.items()
                             if k in ("group", "budget", "empirical_n_opt", "model_n_opt", "model_lo", "model_hi", "inside")}
                            for r in top.to_dict("records")]
    return out


def cost(runs: Runs, repeats: int) -> dict:
    """Warm, in this process: plain fit, default fit, default backtest (seconds, median of repeats),
    timed in turn within each repeat so that all three see the same machine load."""
    fit_nuts(runs, model="plain"), fit_nuts(runs)  # compile
    out = timed_in_turn({"plain_fit_s": lambda: fit_nuts(runs, model="plain"), "default_fit_s": lambda: fit_nuts(runs),
                         "backtest_s": lambda: backtest(runs, levels=(LEVEL,))}, repeats)
    return {**out, "default_over_plain": out["default_fit_s"] / out["plain_fit_s"],
            "backtest_over_default_fit": out["backtest_s"] / out["default_fit_s"],
            "load_avg_1min": os.getloadavg()[0]}


def level_cut_cost(runs: Runs, repeats: int) -> dict:
    """The level bound's own cost (``extrapolation.frontier_level_cut``, ``LEVEL_BOUND``), timed alone on a
    default fit's draws, beside that fit's and a plain fit's wall time in turn (median of ``repeats``): the
    whole-fit ratio moves by several percent between runs at the same load, the cut's own time does not."""
    post = fit_nuts(runs)
    G, ranges = extrapolation.drift_of(post)
    ranges = {k: v for k, v in ranges.items() if k != "level_cut_points"}
    G = G[:, :8 if "seen" in ranges else 4]
    out = timed_in_turn({"cut_s": lambda: extrapolation.frontier_level_cut(post, G, ranges),
                         "default_fit_s": lambda: fit_nuts(runs), "plain_fit_s": lambda: fit_nuts(runs, model="plain")},
                        repeats)
    return {**out, "draws": len(G), "cut_over_default_fit": out["cut_s"] / out["default_fit_s"],
            "load_avg_1min": os.getloadavg()[0]}


def timed_in_turn(calls: dict, repeats: int) -> dict:
    """name -> median wall seconds of ``calls`` (name -> callable), each repeat calling all of them
    in turn, so that all see the same machine load."""
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def profile_default_fit(runs: Runs, repeats: int = 5, top: int = 25) -> dict:
    """Where a default fit's time goes, in process CPU time (the machine is shared): the median CPU
    seconds of a plain and a default fit (warm, in turn), and cProfile's cumulative CPU seconds of
    one default fit for the ``top`` functions."""
    import cProfile
    import pstats

    fit_nuts(runs, model="plain"), fit_nuts(runs)  # compile
    cpu = {"plain": [], "default": []}
    for _ in range(repeats):
        for name, model in (("plain", "plain"), ("default", "extrapolating")):
            start = time.process_time()
            fit_nuts(runs, model=model)
            cpu[name].append(time.process_time() - start)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    fit_nuts(runs)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = sorted(((f"{Path(f).name}:{line}({fn})", ct) for (f, line, fn), (_, _, _, ct, _) in stats.items()),
                  key=lambda r: -r[1])[:top]
    plain, default = statistics.median(cpu["plain"]), statistics.median(cpu["default"])
    return {"plain_fit_cpu_s": plain, "default_fit_cpu_s": default, "default_over_plain_cpu": default / plain,
            "profiled_cumulative_cpu_s": {name: round(t, 4) for name, t in rows}}


def drifting_simulation(candidates: dict | None = None) -> dict:
    """The slow test's simulation (tests/test_extrapolation.py, ``simulate_sweeps``: IsoFLOP sweeps
    of a law whose exponent alpha grows by 0.03 per e-fold of N beyond 1e8; three seeds, each fitted
    on its lower six budgets): 90% coverage and mean interval score of the plain law and the default
    on the held-out top three budgets; ``candidates`` (name -> (priors, setting)) beside it."""
    import sys

    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_extrapolation import simulate_sweeps

    runs = Runs(pd.concat([simulate_sweeps(s, 0.03).frame.assign(group=f"s{s}") for s in range(3)], ignore_index=True))
    out = {}
    models = [("plain", None, lambda r: fit_nuts(r, model="plain", seed=FIT_SEED)), ("extrapolating", None, None)]
    models += [(name, setting, None) for name, (_, setting) in (candidates or {}).items() if name != "extrapolating"]
    for name, setting, fit in models:
        with variant(setting):
            t = backtest(runs, fit=fit, levels=(LEVEL,), seed=FIT_SEED).runs  # fit None: the library default
        out[name] = {"n": len(t), "coverage": float(t["covered_90"].mean()),
                     "interval_score": float(t["interval_score_90"].mean())}
    return out


EXACT_GRID_NOISE = 0.01  # log-loss sd of the simulated over-training grids (Gadre's robust residual spread: 0.007-0.013)
EXACT_GRID_MISFIT = 0.06  # log-loss added to runs at D/N <= 5 in the "misfit" grids (Gadre's: +0.036 to +0.147)


def exact_simulation(candidates: dict | None = None) -> dict:
    """The cost of the default's width where the law is exact (a diagnosis, no rule; fifteenth session):
    default against plain law at 90% on (a) the slow test's IsoFLOP sweeps without drift (``simulate_sweeps``
    with drift 0; three seeds, top 3 of 9 budgets held out), (b) over-training grids at Gadre's own (N, D) design
    (the bundled c4_original group's 34 runs; losses from the sweeps' exact law with log-normal noise
    ``EXACT_GRID_NOISE``; three seeds; top 30% of compute held out, as Gadre's backtest) and (c) the same grids
    with the runs at D/N <= 5 raised by ``EXACT_GRID_MISFIT`` in log-loss, the law's misfit of under-trained
    runs that the Gadre diagnosis found. Where the law is exact, the ideal extrapolation model adds nothing.
    ``candidates`` (name -> (priors, setting)) beside the default."""
    import sys

    import pandas as pd

    from bayes_scaling.runs.validate import validate_runs

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_extrapolation import simulate_sweeps

    design = load_gadre().frame
    design = design[design["group"] == "c4_original"][["N", "D"]].to_numpy(np.float64)
    E, A, B, alpha, beta = 1.8, 400.0, 1500.0, 0.34, 0.33  # simulate_sweeps' law

    def grid(seed: int, misfit: float) -> pd.DataFrame:
        rng = np.random.default_rng([seed, 21])
        N, D = design[:, 0], design[:, 1]
        log_loss = np.log(E + A / N**alpha + B / D**beta) + EXACT_GRID_NOISE * rng.standard_normal(len(N))
        log_loss = log_loss + misfit * (D / N <= 5.0)
        return pd.DataFrame({"N": N, "D": D, "loss": np.exp(log_loss), "group": f"s{seed}"})

    sets = {
        "isoflop sweeps": Runs(pd.concat([simulate_sweeps(s, 0.0).frame.assign(group=f"s{s}") for s in range(3)],
                                         ignore_index=True)),
        "over-training grid": validate_runs(pd.concat([grid(s, 0.0) for s in range(3)], ignore_index=True),
                                            source_name="grid"),
        "over-training grid, D/N <= 5 misfit": validate_runs(
            pd.concat([grid(s, EXACT_GRID_MISFIT) for s in range(3)], ignore_index=True), source_name="grid-misfit"),
    }
    out = {}
    for label, runs in sets.items():
        out[label] = {}
        models = [("plain", None, lambda r: fit_nuts(r, model="plain", seed=FIT_SEED)), ("extrapolating", None, None)]
        models += [(name, setting, None) for name, (_, setting) in (candidates or {}).items() if name != "extrapolating"]
        for name, setting, fit in models:
            with variant(setting):
                t = backtest(runs, fit=fit, levels=(LEVEL,), seed=FIT_SEED).runs
            out[label][name] = {"n": len(t), "coverage": float(t["covered_90"].mean()),
                                "interval_score": float(t["interval_score_90"].mean()), "crps": float(t["crps"].mean()),
                                "mean_rel_width": float(t["rel_width_90"].mean()),
                                "mean_log_error": float(np.mean(np.log(t["median"] / t["loss"])))}
            print(label, name, {k: round(v, 4) for k, v in out[label][name].items()}, flush=True)
    return out


MISFIT_ALLOCATION_SWEEPS = ("owt2-base-short-kaplan-standard-val", "rw-base-short-kaplan-standard-val")


def misfit_allocation() -> dict:
    """Why PSIS refits with the misfit term narrow N_opt on Porian's short-schedule sweeps (a diagnosis, no
    rule; fifteenth session): on each sweep of ``MISFIT_ALLOCATION_SWEEPS`` (the standard split's training
    runs, seed ``FIT_SEED``), a fit by the default, by PSIS refits and by PSIS refits with the misfit term: the
    learned allocation scale (tau_alloc 5/50/95%), the mean drift, the core sigma and N_opt at 16x the fitted
    compute (median and 90% interval)."""
    runs = load_porian().for_fit()
    out = {}
    for group in MISFIT_ALLOCATION_SWEEPS:
        train = split_by_compute(Runs(runs.frame[runs.frame["group"] == group].reset_index(drop=True))).train
        out[group] = {}
        for name, setting in (("default", None), ("PSIS refits", "laplace-psis"),
                              ("PSIS refits + misfit noise", "laplace-psis+misfit-noise")):
            with variant(setting):
                post = fit_nuts(train, seed=FIT_SEED)
            extra = post.meta["extrapolation"]
            row = post.frontier([16.0 * float(np.max(train.C))], level=LEVEL).iloc[0]
            out[group][name] = {"tau_alloc_5_50_95": extra["tau_alloc 5/50/95%"],
                                "mean_drift_dN_dD_gC_da": extra["mean drift (d_N, d_D, g_C, d_a)"],
                                "sigma_median": float(np.median(post.draws("sigma"))),
                                "n_opt_16x": [float(row["N_opt_median"]), float(row["N_opt_lo"]), float(row["N_opt_hi"])]}
            print(group, name, json.dumps(out[group][name]), flush=True)
    return out


def far_simulation(candidates: dict | None = None) -> dict:
    """Which continuation of the learned mean beyond the folds' distances holds up when the truth
    keeps drifting, and when it stops? The slow test's sweeps (``simulate_sweeps``: drift 0.03 per e-fold of N past
    1e8; "continuing": without end, "stopping": none past N = 1e9, the fitted runs' top), three seeds
    each, fitted on the lower 4 of 9 budgets (top 5 held out: up to 300x the fitted compute), scored
    at 90% by the plain law and the extrapolating model with each ``MEAN_BEYOND``, and ``candidates``
    (name -> (priors, setting)) beside them. A diagnosis: no rule rides on it."""
    import sys

    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_extrapolation import simulate_sweeps

    out = {}
    for truth, cap in (("continuing", None), ("stopping", 1e9)):
        runs = Runs(pd.concat([simulate_sweeps(s, 0.03, cap=cap).frame.assign(group=f"s{s}") for s in range(3)],
                              ignore_index=True))
        out[truth] = {}
        models = [("plain", None, "plain"), ("linear", "linear-mean", None), ("held", "held-mean", None),
                  ("mixed (default)", "mixed-mean", None)]
        models += [(name, setting, None) for name, (_, setting) in (candidates or {}).items() if name != "extrapolating"]
        for name, setting, model in models:
            with variant(setting):
                t = backtest(runs, fit=None if model is None else (lambda r: fit_nuts(r, model="plain")),
                             top_budgets=5, levels=(LEVEL,)).runs
            by_budget = t.assign(log_error=np.log(t["median"] / t["loss"])).groupby("budget").agg(
                coverage=("covered_90", "mean"), mean_log_error=("log_error", "mean"), rel_width=("rel_width_90", "mean"))
            out[truth][name] = {"n": len(t), "coverage": float(t["covered_90"].mean()),
                                "interval_score": float(t["interval_score_90"].mean()), "crps": float(t["crps"].mean()),
                                "by_budget": {f"{b:.3g}": {k: float(v) for k, v in row.items()}
                                              for b, row in by_budget.iterrows()}}
            print(truth, name, {k: round(v, 4) for k, v in out[truth][name].items() if k != "by_budget"}, flush=True)
    return out


def adoption(results: dict, candidates, simulation: dict | None, diagnosed: dict | None = None,
             cost_over_plain: dict | None = None) -> dict:
    """The sixth run's adoption rule (module comment above ``NUTS_FOLD_RUNS``, written before its
    results): per candidate, whether it passes (a)-(d) against the default, and which one (if any)
    is adopted (the lowest geometric-mean interval score relative to the default's among those that pass).
    The seventh run adds (e): with ``diagnosed`` (``candidate_diagnostics``: candidate -> source ->
    rows of ``diagnostics``), a candidate passes only if every group has 0 divergences and R-hat <= 1.01.
    The ninth run adds (f): with ``cost_over_plain`` (``candidate_cost``'s over_plain: name -> a default
    fit under the candidate's setting over a plain fit, Chinchilla), a candidate passes only if <= 2."""
    base = "extrapolating"
    out = {}
    for name in candidates:
        if name == base:
            continue
        band = [s for s in results if 0.8 <= results[s][base]["coverage"] <= 0.97]
        a = all(0.8 <= results[s][name]["coverage"] <= 0.97 for s in band)
        b = sum(results[s][name]["interval_score"] > results[s][base]["interval_score"] for s in results) <= 1
        inside = sum(results[s][name].get("n_opt_top_inside", 0) for s in results)
        judged = sum(results[s][name].get("n_opt_top_judged", 0) for s in results)
        c = inside >= sum(results[s][base].get("n_opt_top_inside", 0) for s in results) - 1 and inside >= 0.8 * judged
        sim = (simulation or {}).get(name)
        d = None if sim is None else (sim["coverage"] >= 0.8 and sim["coverage"] >= simulation["plain"]["coverage"] + 0.1)
        ratio = float(np.exp(np.mean([np.log(results[s][name]["interval_score"] / results[s][base]["interval_score"])
                                      for s in results])))
        gadre = results.get("gadre", {}).get(name)
        e = True
        if diagnosed is not None:
            rows = [r for source in diagnosed.get(name, {}).values() for r in source]
            e = bool(rows) and all(r["divergences"] == 0 and r["max_rhat"] <= 1.01 for r in rows)
        f = None if cost_over_plain is None else bool(cost_over_plain.get(name, np.inf) <= 2.0)
        out[name] = {"a_coverage_band": bool(a), "b_interval_score": bool(b), "c_n_opt": bool(c),
                     "d_simulation": d, "e_diagnostics": None if diagnosed is None else e,
                     "f_cost_at_most_2x_plain": f,
                     "passes": bool(a and b and c and d and e and f is not False), "geomean_is_ratio_to_default": ratio,
                     "gadre_targets_met": None if gadre is None or "plain" not in results["gadre"] else bool(
                         0.8 <= gadre["coverage"] <= 0.97
                         and gadre["interval_score"] < results["gadre"]["plain"]["interval_score"])}
    passing = [n for n in out if out[n]["passes"]]
    return {"candidates": out, "adopted": min(passing, key=lambda n: out[n]["geomean_is_ratio_to_default"]) if passing else None}


def fidelity_check(results: dict, simulation: dict, reference: dict, reference_simulation: dict,
                   name: str, reference_name: str = "extrapolating, NUTS refits of every fold") -> dict:
    """The twentieth run's (A): whether candidate ``name`` reproduces ``reference_name``'s scores (an
    earlier run's files): per source coverage within 5 points and interval score within 10%, and the
    simulation's coverage within 5 points."""
    per_source = {}
    for source in results:
        mine, theirs = results[source][name], reference[source][reference_name]
        per_source[source] = {"coverage": mine["coverage"], "reference_coverage": theirs["coverage"],
                              "interval_score_ratio": mine["interval_score"] / theirs["interval_score"],
                              "within": bool(abs(mine["coverage"] - theirs["coverage"]) <= 0.05
                                             and abs(mine["interval_score"] / theirs["interval_score"] - 1) <= 0.10)}
    sim = {"coverage": simulation[name]["coverage"], "reference_coverage": reference_simulation[reference_name]["coverage"]}
    sim["within"] = bool(abs(sim["coverage"] - sim["reference_coverage"]) <= 0.05)
    return {"reference": reference_name, "sources": per_source, "simulation": sim,
            "faithful": bool(all(r["within"] for r in per_source.values()) and sim["within"])}


def judge_priors(results: dict, simulation: dict, candidates) -> dict:
    """The twenty-first run's rule (module comment above ``NUTS_FOLD_RUNS``): per candidate, (1) sources
    with 90% coverage in 80-97% (>= 3), (2) the drifting simulation passes, (3) N_opt inside on >= 80% of
    the judged sweeps, (4) geometric-mean interval score over the sources <= 1.05x the default's; the
    qualifying candidate with the lowest (4) is chosen."""
    base = "extrapolating"
    out = {}
    for name in candidates:
        if name == base:
            continue
        in_band = sum(0.8 <= results[s][name]["coverage"] <= 0.97 for s in results)
        sim = simulation[name]["coverage"]
        inside = sum(results[s][name].get("n_opt_top_inside", 0) for s in results)
        judged = sum(results[s][name].get("n_opt_top_judged", 0) for s in results)
        ratio = float(np.exp(np.mean([np.log(results[s][name]["interval_score"] / results[s][base]["interval_score"])
                                      for s in results])))
        checks = {"1_sources_in_band": int(in_band), "2_simulation_coverage": sim,
                  "2_simulation_passes": bool(sim >= 0.8 and sim >= simulation["plain"]["coverage"] + 0.1),
                  "3_n_opt_inside": f"{inside}/{judged}", "3_passes": bool(inside >= 0.8 * judged),
                  "4_geomean_is_ratio_to_default": ratio, "4_passes": bool(ratio <= 1.05)}
        checks["qualifies"] = bool(in_band >= 3 and checks["2_simulation_passes"] and checks["3_passes"]
                                   and checks["4_passes"])
        out[name] = checks
    qualifying = [n for n in out if out[n]["qualifies"]]
    return {"candidates": out,
            "chosen": min(qualifying, key=lambda n: out[n]["4_geomean_is_ratio_to_default"]) if qualifying else None}


def far_split_check(far: dict, candidates) -> dict:
    """The tenth run's (g), on the far split's results (source -> model -> scores): per candidate,
    sources with 90% coverage in 80-97% against the default's, the geometric mean over sources of
    its interval score relative to the default's, and whether both hold (at least as many, at most 1);
    and the eleventh run's (h): N_opt inside at the top held-out budget on at least as many sweeps as
    the default's minus one."""
    base = "extrapolating"
    in_band = lambda name: sum(0.8 <= far[s][name]["coverage"] <= 0.97 for s in far)  # noqa: E731
    out = {}
    for name in candidates:
        if name == base:
            continue
        ratio = float(np.exp(np.mean([np.log(far[s][name]["interval_score"] / far[s][base]["interval_score"]) for s in far])))
        inside = {m: sum(far[s][m].get("n_opt_top_inside", 0) for s in far) for m in (name, base)}
        out[name] = {"in_band": in_band(name), "default_in_band": in_band(base), "geomean_is_ratio_to_default": ratio,
                     "g_passes": bool(in_band(name) >= in_band(base) and ratio <= 1.0),
                     "far_n_opt_inside": inside[name], "default_far_n_opt_inside": inside[base],
                     "h_far_n_opt": bool(inside[name] >= inside[base] - 1)}
    return out


def fold_summary(res, method: str, rms_z: bool = False) -> dict:
    """A fold's held-out runs under one refit method: their mean residual, mean predictive sd and
    (``rms_z``) the root mean square of r / sqrt(v), keyed ``{method}_...``."""
    out = {f"{method}_mean_residual": float(res.r.mean()), f"{method}_mean_sd": float(np.sqrt(res.v).mean())}
    if rms_z:
        out[f"{method}_rms_z"] = float(np.sqrt(np.mean(res.r ** 2 / res.v)))
    return out


def laplace_fold_bias(runs: Runs) -> list[dict]:
    """Per group and calibration fold of the default split's training runs: the mean residual
    log y - m of the held-out runs when the fold is refitted by the Laplace approximation (as the
    calibration does) and by NUTS (as the full fit is), and their predictive sds."""
    from bayes_scaling.extrapolation import fold_residuals
    from bayes_scaling.fitting.nuts import fit_laplace

    train = split_by_compute(runs).train
    out = []
    for name in train.groups:
        group = Runs(train.frame[train.frame["group"] == name].reset_index(drop=True))
        for fold in forward_chain(group):
            row = {"group": name, "fitted": len(fold.train), "held_out": len(fold.test)}
            for method, fit in (("laplace", fit_laplace), ("nuts", lambda r: fit_nuts(r, model="plain"))):
                res = fold_residuals(fit(fold.train), fold.test)
                row.update(fold_summary(res, method))
            out.append(row)
    return out


def fold_refits() -> dict:
    """What the calibration's fold refits predict (the eighteenth run's diagnosis): per source, group
    and calibration fold of the standard split's training runs, the held-out runs' mean residual
    log y - m, mean predictive sd sqrt(v) and root mean square of r / sqrt(v), for NUTS refits of the
    plain law (as the full fit is made) and Laplace refits from jittered starts and at the mode
    (``sampler.LAPLACE_START``); and per source the medians over folds."""
    from bayes_scaling.extrapolation import fold_residuals
    from bayes_scaling.fitting.nuts import fit_laplace

    def refit(method):
        if method == "nuts":
            return lambda r: fit_nuts(r, model="plain")
        def laplace(r):
            with variant(f"laplace-{method}"):
                return fit_laplace(r)
        return laplace

    out = {}
    for source, load in SOURCES.items():
        train = split_by_compute(load().for_fit()).train
        rows = []
        for name in train.groups:
            group = Runs(train.frame[train.frame["group"] == name].reset_index(drop=True))
            for k, fold in enumerate(forward_chain(group)):
                row = {"group": name, "fold": k, "fitted": len(fold.train), "held_out": len(fold.test)}
                for method in ("nuts", "jittered", "mode"):
                    res = fold_residuals(refit(method)(fold.train), fold.test)
                    row.update(fold_summary(res, method, rms_z=True))
                rows.append(row)
                print(source, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        medians = {key: float(np.median([r[key] for r in rows])) for key in rows[0] if key.split("_")[0] in ("nuts", "jittered", "mode")}
        out[source] = {"folds": rows, "medians": medians}
    return out


SEED_RUNS = {  # --judge-seeds: the candidate judged over seeds 0-2 per stem of its results files
    "bench_extrapolation_laplace_mode": "extrapolating, Laplace refits at the mode",  # the nineteenth run
    "bench_extrapolation_psis1000_priors": "extrapolating, PSIS refits, drift priors x2",  # the twenty-third
}


def judge_over_seeds(results_dir: Path, stem: str = "bench_extrapolation_laplace_mode",
                     candidate: str | None = None) -> dict:
    """The nineteenth run's rule (the comment above ``NUTS_FOLD_RUNS``), summed over seeds 0, 1, 2:
    the candidate against the default ("extrapolating") on the standard split, the far split and the
    simulation; seed 0's files are ``stem``'s, seeds 1 and 2 ``stem_seed{s}``. The twenty-third run
    adds (6) the far split's geometric-mean interval score at most 1.0x the default's and (7) its N_opt
    inside at least the default's minus 3 (reported for every stem, part of the verdict for the
    twenty-third's)."""
    candidate = candidate or SEED_RUNS[stem]
    files = {0: stem, 1: f"{stem}_seed1", 2: f"{stem}_seed2"}
    read = lambda name: json.loads((results_dir / f"{name}.json").read_text())  # noqa: E731
    models = ("extrapolating", candidate)
    tally = {m: {"standard_in_band": 0, "far_in_band": 0, "simulation_passes": 0, "n_opt_inside": 0, "log_is": [],
                 "far_log_is": [], "far_n_opt_inside": 0} for m in models}
    per_seed = {}
    for seed, name in files.items():
        standard, far, sim = read(name)["results"], read(f"{name}_far")["results"], read(f"{name}_simulation")
        per_seed[seed] = {}
        for m in models:
            t = tally[m]
            band = lambda r: sum(0.8 <= r[src][m]["coverage"] <= 0.97 for src in r)  # noqa: E731
            passes = sim[m]["coverage"] >= 0.8 and sim[m]["coverage"] >= sim["plain"]["coverage"] + 0.1
            inside = sum(standard[src][m].get("n_opt_top_inside", 0) for src in standard)
            t["standard_in_band"] += band(standard)
            t["far_in_band"] += band(far)
            t["simulation_passes"] += int(passes)
            t["n_opt_inside"] += inside
            t["log_is"] += [np.log(standard[src][m]["interval_score"]) for src in standard]
            t["far_log_is"] += [np.log(far[src][m]["interval_score"]) for src in far]
            t["far_n_opt_inside"] += sum(far[src][m].get("n_opt_top_inside", 0) for src in far)
            per_seed[seed][m] = {"standard_coverage": {src: standard[src][m]["coverage"] for src in standard},
                                 "standard_interval_score": {src: standard[src][m]["interval_score"] for src in standard},
                                 "far_coverage": {src: far[src][m]["coverage"] for src in far},
                                 "simulation_coverage": sim[m]["coverage"], "n_opt_inside": inside}
    base, cand = tally["extrapolating"], tally[candidate]
    ratio = float(np.exp(np.mean(cand["log_is"]) - np.mean(base["log_is"])))
    checks = {"1_standard_in_band": cand["standard_in_band"] >= base["standard_in_band"],
              "2_far_in_band": cand["far_in_band"] >= base["far_in_band"],
              "3_simulation": cand["simulation_passes"] >= base["simulation_passes"],
              "4_n_opt": cand["n_opt_inside"] >= base["n_opt_inside"] - 3,
              "5_interval_score": ratio <= 1.0}
    far_ratio = float(np.exp(np.mean(cand["far_log_is"]) - np.mean(base["far_log_is"])))
    far_checks = {"6_far_interval_score": far_ratio <= 1.0,
                  "7_far_n_opt": cand["far_n_opt_inside"] >= base["far_n_opt_inside"] - 3}
    if stem != "bench_extrapolation_laplace_mode":  # the nineteenth run's verdict had (1)-(5) only
        checks.update(far_checks)
    summary = {m: {k: v for k, v in tally[m].items() if k not in ("log_is", "far_log_is")} for m in models}
    return {"candidate": candidate, "per_seed": per_seed, "totals": summary, "geomean_is_ratio": ratio,
            "far_geomean_is_ratio": far_ratio, "far_checks": far_checks, "checks": checks,
            "adopted": bool(all(checks.values()))}


SEED_STABILITY_SETTINGS = ("laplace-mode", "laplace-jittered", "laplace-psis-priors-2")


def seed_stability(seeds=range(6)) -> dict:
    """How much a default fit of all 240 Chinchilla runs moves with its seed, under each
    ``sampler.LAPLACE_START`` (the nineteenth run) and the PSIS refits with the drift priors x2 (the
    twenty-first run's choice): per seed the learned mean drift, tau_alloc's median and the frontier's
    N_opt (median, 90% interval) at 5.76e23 and 1e25 FLOPs."""
    runs = load_chinchilla().for_fit()
    out = {}
    for setting in SEED_STABILITY_SETTINGS:
        start = setting.removeprefix("laplace-")
        rows = []
        with variant(setting):
            for seed in seeds:
                post = fit_nuts(runs, seed=seed)
                e = post.meta["extrapolation"]
                table = post.frontier([5.76e23, 1e25], level=LEVEL)
                rows.append({"seed": seed, "mean_drift": e["mean drift (d_N, d_D, g_C, d_a)"],
                             "tau_alloc_median": e["tau_alloc 5/50/95%"][1],
                             **{f"n_opt_{c:.3g}": [float(table[f"N_opt_{q}"].iloc[i]) for q in ("lo", "median", "hi")]
                                for i, c in enumerate((5.76e23, 1e25))}})
        medians = [r["n_opt_5.76e+23"][1] for r in rows]
        out[start] = {"rows": rows, "n_opt_5.76e23_median_range": [min(medians), max(medians)]}
        print(start, out[start]["n_opt_5.76e23_median_range"], flush=True)
    return out


SEED_STABILITY_SOURCES = ("extrapolating", "laplace-psis-priors-2")  # the twenty-fourth run's settings; the
# first (its key in the results files) is the default before the twenty-fifth run, the jittered refits
STABILITY_REACH = 100.0  # C* = this times the group's largest fitted 6ND


def seed_stability_sources(sources=tuple(SOURCES), seeds=range(6)) -> dict:
    """The twenty-fourth run's measurement: per group of every source, a default fit of the group's full data
    at each fit seed under the default and under PSIS x2, and the frontier at C* = ``STABILITY_REACH`` x the
    largest fitted 6ND (N_opt median and 90% bounds, L_opt median); per group and setting the spread over
    the seeds, max - min of ln(median N_opt) and of the bounds' logs. Progress on stdout."""
    out = {}
    for source in sources:
        data = SOURCES[source]().for_fit()
        for name in data.groups:
            group = Runs(data.frame[data.frame["group"] == name].reset_index(drop=True))
            budget = STABILITY_REACH * float(np.max(6.0 * group.N * group.D))
            entry = {"runs": len(group), "budget": budget}
            for setting in SEED_STABILITY_SOURCES:
                rows = []
                with variant("laplace-jittered" if setting == "extrapolating" else setting):
                    for seed in seeds:
                        started = time.perf_counter()
                        post = fit_nuts(group, seed=seed)
                        table = post.frontier([budget], level=LEVEL)
                        rows.append({"seed": seed, "seconds": round(time.perf_counter() - started, 2),
                                     "n_opt": [float(table[f"N_opt_{q}"].iloc[0]) for q in ("lo", "median", "hi")],
                                     "l_opt_median": float(table["L_opt_median"].iloc[0]),
                                     "mean_drift": post.meta["extrapolation"]["mean drift (d_N, d_D, g_C, d_a)"]})
                logs = np.log(np.array([r["n_opt"] for r in rows]))
                spread = (logs.max(0) - logs.min(0)).tolist()
                entry[setting] = {"rows": rows, "s_lo": spread[0], "s": spread[1], "s_hi": spread[2]}
                print(f"{source} {name} {setting}: s {spread[1]:.3f}, bounds {spread[0]:.3f} {spread[2]:.3f}, "
                      f"{sum(r['seconds'] for r in rows):.0f} s", flush=True)
            out[f"{source}/{name}"] = entry
    return out


def judge_seed_stability(groups: dict) -> dict:
    """The twenty-fourth run's rule (the comment above ``NUTS_FOLD_RUNS``) on ``seed_stability_sources``'
    result: (S1) fewer groups whose median N_opt moves > 10% over the seeds, (S2) no group's spread above the
    default's by more than ln 1.1, (S3) no more groups whose 90% bounds move > 25%."""
    default, candidate = SEED_STABILITY_SOURCES
    moved = {k: [g for g, e in groups.items() if e[k]["s"] > np.log(1.1)] for k in (default, candidate)}
    bounds = {k: [g for g, e in groups.items() if max(e[k]["s_lo"], e[k]["s_hi"]) > np.log(1.25)]
              for k in (default, candidate)}
    worse = [g for g, e in groups.items() if e[candidate]["s"] > e[default]["s"] + np.log(1.1)]
    checks = {"S1_median_moves_over_10pct": {k: v for k, v in moved.items()},
              "S1_passes": len(moved[candidate]) < len(moved[default]),
              "S2_groups_worse_by_over_10pct": worse, "S2_passes": not worse,
              "S3_bounds_move_over_25pct": bounds, "S3_passes": len(bounds[candidate]) <= len(bounds[default])}
    checks["adopted"] = bool(checks["S1_passes"] and checks["S2_passes"] and checks["S3_passes"])
    # not part of the rule (added after it): each spread as a share of the median over seeds of the 90%
    # interval's log width at C*, ln(hi / lo)
    checks["spread_share_of_log_width"] = {
        g: {k: round(e[k]["s"] / float(np.median([np.log(r["n_opt"][2] / r["n_opt"][0]) for r in e[k]["rows"]])), 3)
            for k in (default, candidate)} for g, e in groups.items()}
    return checks


def spread_shares(groups: dict) -> dict:
    """Per group and setting of ``seed_stability_sources``' result: the median's spread s as a share of the
    median over the seeds of the 90% interval's log width at C*, ln(hi / lo)."""
    return {g: {k: float(e[k]["s"] / np.median([np.log(r["n_opt"][2] / r["n_opt"][0]) for r in e[k]["rows"]]))
                for k in SEED_STABILITY_SOURCES} for g, e in groups.items()}


def judge_replication(groups: dict) -> dict:
    """The twenty-fifth run's rule (the comment above ``NUTS_FOLD_RUNS``) on ``seed_stability_sources``' result
    at fresh seeds: (R1) a smaller largest share of the interval's log width moved by the median, (R2) fewer
    groups whose share exceeds 10%, (R3) fewer groups whose median moves by more than 10%."""
    default, candidate = SEED_STABILITY_SOURCES
    shares = spread_shares(groups)
    worst = {k: max(shares, key=lambda g: shares[g][k]) for k in (default, candidate)}
    over = {k: [g for g in shares if shares[g][k] > 0.10] for k in (default, candidate)}
    moved = {k: [g for g, e in groups.items() if e[k]["s"] > np.log(1.1)] for k in (default, candidate)}
    checks = {"seeds": sorted({r["seed"] for e in groups.values() for r in e[default]["rows"]}),
              "R1_largest_share": {k: {"group": worst[k], "share": round(shares[worst[k]][k], 4)} for k in worst},
              "R1_passes": shares[worst[candidate]][candidate] < shares[worst[default]][default],
              "R2_share_over_10pct": over, "R2_passes": len(over[candidate]) < len(over[default]),
              "R3_median_moves_over_10pct": moved, "R3_passes": len(moved[candidate]) < len(moved[default]),
              "shares": {g: {k: round(v, 4) for k, v in by.items()} for g, by in shares.items()}}
    checks["adopted"] = bool(checks["R1_passes"] and checks["R2_passes"] and checks["R3_passes"])
    return checks


def gadre_diagnosis() -> dict:
    """Why the default fails on Gadre (issue 15): per group of the default split, the plain law's
    noise scale against the spread of its residuals (robust: 1.4826 x the median absolute
    deviation), the residuals by tokens per parameter and their size against compute (Spearman's
    rank correlation of |r| with ln C over all the group's runs, with and without the most
    under-trained runs, D/N <= 5), the learned drift (scale quantiles, mean drift), every held-out
    run's observed loss against the plain and default medians and 90% intervals, and each
    calibration fold: its fitted and held-out runs, the runs at its largest N, the Laplace and NUTS
    refits' mean residual and predictive sd and their fitted alpha and E, and (the ablation) the
    Laplace refit of the fold without its runs at D/N = 5; and the held-out runs' scores when the
    plain and default fits leave out the training runs at D/N = 5."""
    from scipy.stats import spearmanr

    from bayes_scaling.extrapolation import fold_residuals
    from bayes_scaling.fitting.nuts import fit_laplace

    def one(frame):
        return Runs(frame.reset_index(drop=True))

    def residuals(post, runs):
        return np.log(runs.loss) - np.log(np.median(post.predict(runs.N, runs.D), 0))

    def band(post, runs):
        q = np.quantile(post.predict(runs.N, runs.D), [0.05, 0.5, 0.95], axis=0)
        return {"median": q[1].round(4).tolist(), "lo": q[0].round(4).tolist(), "hi": q[2].round(4).tolist(),
                "rel_error": ((runs.loss - q[1]) / q[1]).round(4).tolist(),
                "rel_width": ((q[2] - q[0]) / q[1]).round(4).tolist()}

    data = load_gadre().for_fit()
    split = split_by_compute(data)
    out = {}
    for name in data.groups:
        train, test = (one(part.frame[part.frame["group"] == name]) for part in (split.train, split.test))
        full = one(data.frame[data.frame["group"] == name])
        plain, default = fit_nuts(train, model="plain"), fit_nuts(train)
        r_train = residuals(plain, train)
        plain_full = fit_nuts(full, model="plain")
        r_full = residuals(plain_full, full)
        tpp = full.D / full.N
        trained = tpp > 5
        row = {
            "train_runs": len(train), "test_runs": len(test),
            "train_sizes_N": sorted({float(n) for n in train.N}), "test_sizes_N": sorted({float(n) for n in test.N}),
            "plain_sigma_median_5_95": [float(np.median(plain.draws("sigma"))),
                                        *np.quantile(plain.draws("sigma"), [0.05, 0.95]).tolist()],
            "train_residual_robust_sd": float(1.4826 * np.median(np.abs(r_train - np.median(r_train)))),
            "train_residual_sd": float(r_train.std()),
            "full_fit_residual_by_tokens_per_parameter": {
                f"{t:g}": [round(float(x), 4) for x in r_full[np.isclose(tpp, t, rtol=0.05)]]
                for t in sorted({round(float(x)) for x in tpp})},
            "full_fit_spearman_abs_residual_vs_log_C": float(spearmanr(np.abs(r_full), np.log(full.C)).statistic),
            "full_fit_spearman_abs_residual_vs_log_C_without_D_over_N_5":
                float(spearmanr(np.abs(r_full[trained]), np.log(full.C[trained])).statistic),
            "default_extrapolation": {k: v for k, v in default.meta["extrapolation"].items() if k != "range"},
            "test": {"N": test.N.tolist(), "D": test.D.tolist(), "loss": test.loss.round(4).tolist(),
                     "plain": band(plain, test), "default": band(default, test)},
            "folds": [],
        }
        for fold in forward_chain(train):
            top = fold.train.N.max()
            f = {"fitted": len(fold.train), "held_out": len(fold.test), "largest_N": float(top),
                 "runs_at_largest_N": int((fold.train.N == top).sum()),
                 "D_over_N_at_largest_N": sorted(float(x) for x in (fold.train.D / fold.train.N)[fold.train.N == top])}
            ablated = one(fold.train.frame[fold.train.D / fold.train.N > 7])  # the ablation: no D/N = 5 runs (the grid: 5, 10, 20, ...)
            for method, fit, rows in (("laplace", fit_laplace, fold.train), ("nuts", lambda r: fit_nuts(r, model="plain"), fold.train),
                                      ("laplace_without_D_over_N_5", fit_laplace, ablated)):
                post = fit(rows)
                res = fold_residuals(post, fold.test)
                f[method] = {"residuals": res.r.round(4).tolist(), "sd": np.sqrt(res.v).round(4).tolist(),
                             "alpha": float(np.median(post.draws("alpha"))), "E": float(np.median(post.draws("E")))}
            row["folds"].append(f)
        out[name] = row
    # The ablation for the whole split: the same held-out runs, predicted by fits of the training
    # runs without those at D/N = 5 (as if the user had flagged them): coverage, interval score, CRPS.
    scores = {}
    for model in ("plain", "extrapolating"):
        parts = []
        for name in data.groups:
            train, test = (one(part.frame[part.frame["group"] == name]) for part in (split.train, split.test))
            draws = fit_nuts(one(train.frame[train.D / train.N > 7]), model=model).predict(test.N, test.D)
            lo, hi = scoring.central_interval(draws, LEVEL)
            parts.append((scoring.covered(test.loss, lo, hi), scoring.interval_score(test.loss, lo, hi, LEVEL),
                          scoring.crps_from_draws(draws, test.loss)))
        cov, score, crps = (np.concatenate(p) for p in zip(*parts))
        scores[model] = {"n": len(cov), "coverage": float(cov.mean()), "interval_score": float(score.mean()),
                         "crps": float(crps.mean())}
    out["ablation_fits_without_D_over_N_5"] = scores
    return out


FRONTIER_BUDGETS = (1e22, 5.76e23, 1e25)


def chinchilla_frontier() -> dict:
    """Chinchilla (no budget column): the frontier's N_opt (median and 90% interval) at
    FRONTIER_BUDGETS by the plain law, the default (N_opt rows from inferred slices), and without
    inferred slices by each setting of LOSS_ONLY_MEAN (default fits of all 240 runs), the learned mean drift, and d ln N_opt / d drift per e-fold of compute at
    1-7 e-folds beyond the runs (posterior medians): which drift functionals move the allocation."""
    from bayes_scaling.frontier import drifted_optimum

    runs = load_chinchilla().for_fit()
    out = {}
    settings = (("plain", None), ("inferred slices", "inferred-slices"),
                *((f"no inferred slices, {mode}", mode) for mode in extrapolation.LOSS_ONLY_MEANS),
                ("drift mean held beyond the folds' distances", "held-mean"),
                ("drift mean held or linear (mixed)", "mixed-mean"),
                ("drift mean linear beyond the folds' distances", "linear-mean"),
                ("allocation exponent unbounded (the default before the thirteenth run)", "allocation-unbounded"))
    for name, setting in settings:
        with variant(setting):
            post = fit_nuts(runs, model="plain" if name == "plain" else "extrapolating")
        table = post.frontier(list(FRONTIER_BUDGETS))
        out[name] = {"frontier": [{"budget": float(r.budget), "N_opt_median": float(r.N_opt_median),
                                   "N_opt_lo": float(r.N_opt_lo), "N_opt_hi": float(r.N_opt_hi)}
                                  for r in table.itertuples()],
                     "mean_drift": post.meta.get("extrapolation", {}).get("mean drift (d_N, d_D, g_C, d_a)"),
                     "allocation_mean": post.meta.get("extrapolation", {}).get("allocation mean")}
    th = {k: np.full((5, 1), np.median(v)) for k, v in post.theta().items()}
    ranges = post.meta["extrapolation"]["range"]
    gradients = {}
    for u in (1.0, 2.3, 4.6, 7.0):
        C = np.array([[np.exp(ranges["log_C"][1] + u)]])
        N_law = np.asarray(post.law.optimal_allocation(th, C)[0])
        step = 0.05
        G = np.vstack([np.zeros(4), step * np.eye(4)])
        if "level_cut_points" in ranges:  # LEVEL_BOUND's cut table follows the drift's columns: none cut here
            G = np.hstack([G, np.zeros((len(G), int(ranges["level_cut_points"])))])
        moved = np.log(drifted_optimum(post.law, th, C, N_law, G, ranges)[0])
        gradients[f"{u:g}"] = ((moved[1:, 0] - moved[0, 0]) / step / u).round(4).tolist()
    out["d_ln_N_opt_per_e_fold_d_drift"] = gradients
    return out


def chinchilla_far_optima(candidates: dict | None = None) -> dict:
    """Does the loss-only default's low N_opt beyond the runs hold up? Chinchilla's far split (top 50%
    of compute held out): per model, the 90% N_opt interval at each held-out IsoFLOP slice inferred
    from compute (``splits.inferred_budgets`` on all 240 runs; slices held out whole, with an interior
    vertex) against the slice's own optimum (Approach 2, ``backtest.slice_optimum``) and the model's
    median's log error. Models: the plain law, the default, and its linear and held continuations.
    ``candidates`` (name -> (priors, setting)) beside them; the twelfth run's (i) rides on it."""
    from bayes_scaling.backtest import slice_optimum
    from bayes_scaling.splits import inferred_budgets

    runs = load_chinchilla().for_fit()
    budgets = inferred_budgets(runs)
    split = split_by_compute(runs, **FAR_SPLITS["chinchilla"])
    held = set(split.test.frame["run_id"])
    slices = []
    for b in np.unique(budgets[np.isfinite(budgets)]):
        idx = np.flatnonzero(budgets == b)
        if not set(runs.frame["run_id"].iloc[idx]) <= held:
            continue
        try:
            emp = slice_optimum(runs.N[idx], runs.loss[idx], level=LEVEL)
        except np.linalg.LinAlgError:  # a bootstrap resample with too few distinct sizes (as the calibration skips it)
            continue
        if emp.opens_downward or not emp.vertex_in_slice:
            continue
        slices.append({"budget": float(b), "runs": int(len(idx)), "empirical_n_opt": float(emp.n_opt),
                       "empirical_lo": float(emp.lo), "empirical_hi": float(emp.hi)})
    C = [r["budget"] for r in slices]
    out = {"fitted_runs": len(split.train), "fitted_max_compute": float(np.max(split.train.C)), "slices": slices, "models": {}}
    models = [("plain", "plain", None), ("default (mixed)", "extrapolating", None),
              ("linear", "extrapolating", "linear-mean"), ("held", "extrapolating", "held-mean")]
    models += [(name, "extrapolating", setting) for name, (_, setting) in (candidates or {}).items() if name != "extrapolating"]
    for name, model, setting in models:
        with variant(setting):
            post = fit_nuts(split.train, model=model)
        table = post.frontier(C, level=LEVEL)
        rows = [{"budget": c, "median": float(r.N_opt_median), "lo": float(r.N_opt_lo), "hi": float(r.N_opt_hi),
                 "inside": bool(r.N_opt_lo <= sl["empirical_n_opt"] <= r.N_opt_hi),
                 "log_error_of_median": float(np.log(r.N_opt_median / sl["empirical_n_opt"]))}
                for c, r, sl in zip(C, table.itertuples(), slices)]
        out["models"][name] = {"rows": rows, "inside": sum(r["inside"] for r in rows),
                               "mean_abs_log_error": float(np.mean([abs(r["log_error_of_median"]) for r in rows])) if rows else None}
    return out


def chinchilla_inferred_slices() -> list[dict]:
    """Chinchilla's IsoFLOP slices inferred from compute (``splits.inferred_budgets``, all 240
    runs): per slice its budget (geometric mean of 6ND), runs, N span, the empirical N_opt with its
    90% bootstrap interval (Approach 2, ``backtest.slice_optimum``) and the plain law's median N_opt
    there (NUTS fit of all runs, ``Posterior.frontier``): does the law agree with the slices?"""
    from bayes_scaling.backtest import slice_optimum
    from bayes_scaling.splits import inferred_budgets

    runs = load_chinchilla().for_fit()
    budgets = inferred_budgets(runs)
    levels = np.unique(budgets[np.isfinite(budgets)])
    law = fit_nuts(runs, model="plain").frontier(list(levels))
    out = []
    for b, law_n in zip(levels, law["N_opt_median"]):
        idx = np.flatnonzero(budgets == b)
        try:
            emp = slice_optimum(runs.N[idx], runs.loss[idx], level=LEVEL)
        except np.linalg.LinAlgError:
            emp = None
        out.append({"budget": float(b), "runs": int(len(idx)), "N_span": float(runs.N[idx].max() / runs.N[idx].min()),
                    "empirical_N_opt": None if emp is None else emp.n_opt,
                    "empirical_lo": None if emp is None else emp.lo, "empirical_hi": None if emp is None else emp.hi,
                    "plain_law_N_opt": float(law_n)})
    return out


def chinchilla_fold_optimum_rows() -> list[dict]:
    """The N_opt rows that the calibration of a default fit of all Chinchilla runs would get from
    inferred slices: per fold (Laplace refit of its lower runs, as ``calibrate``) the residuals
    ln N_emp - mean ln N_opt of the slices it holds out whole, and their variances."""
    from bayes_scaling.fitting.nuts import fit_laplace
    from bayes_scaling.splits import inferred_budgets

    runs = load_chinchilla().for_fit()
    runs = Runs(runs.frame.assign(**{extrapolation.INFERRED_COLUMN: inferred_budgets(runs)}))
    out = []
    for split in forward_chain(runs, budget_column=None):
        rows = extrapolation.optimum_residuals(fit_laplace(split.train), extrapolation.whole_slices(split.test, runs),
                                               extrapolation.INFERRED_COLUMN)
        out.append({"fitted": len(split.train), "held_out": len(split.test),
                    "residuals": rows.r.round(4).tolist(), "variances": rows.v.round(5).tolist()})
    return out


def gadre_inferred_slices() -> dict:
    """Gadre (no budget column): the number of inferred IsoFLOP slices per group, in all its runs
    and in the backtest's training runs (where the calibration would use them)."""
    from bayes_scaling.splits import inferred_budgets

    out = {}
    for part, runs in (("all", load_gadre().for_fit()), ("train", split_by_compute(load_gadre().for_fit()).train)):
        budgets = inferred_budgets(runs)
        groups = runs.frame["group"].to_numpy()
        out[part] = {g: int(len(np.unique(budgets[(groups == g) & np.isfinite(budgets)]))) for g in runs.groups}
    return out


def diagnostics(runs: Runs) -> list[dict]:
    """A default fit of every group's full data: the sampler's verdict, divergences and the largest
    R-hat (law parameters and sigma; with the misfit noise also its slopes, split R-hat)."""
    from numpyro.diagnostics import split_gelman_rubin

    from bayes_scaling.models.likelihood import MISFIT_SITES

    out = []
    for name in runs.groups:
        group = Runs(runs.frame[runs.frame["group"] == name].reset_index(drop=True))
        post = fit_nuts(group)
        d = diagnose(post)
        row = {"group": name, "ok": bool(d.ok), "divergences": int(d.divergences), "max_rhat": float(d.table["r_hat"].max()) if d.applicable else float("nan"),
               "verdict": d.verdict()}
        if post.has_draws(MISFIT_SITES[0]):
            arrays = post.group_arrays("posterior")
            row["misfit_rhat"] = {site: float(split_gelman_rubin(np.asarray(arrays[site]))) for site in MISFIT_SITES}
            row["misfit_median"] = {site: float(np.median(arrays[site])) for site in MISFIT_SITES}
            row["max_rhat"] = max(row["max_rhat"], *row["misfit_rhat"].values())
        out.append(row)
    return out


def misfit_geometry() -> dict:
    """The misfit noise's form, measured (plain law, NUTS at defaults without the divergence retry):
    the quartile band of ln(D/N) (``likelihood.MISFIT_BAND`` (0.25, 0.75), the option) against a
    zero-width band at the median ((0.5, 0.5): no run pins sigma) and no misfit term, on Chinchilla,
    each Gadre group (all runs) and the tests' simulated data (k_under = 0.04 below the band, core sd
    0.006): divergences, leapfrog steps per draw, max R-hat (with the misfit slopes), medians of
    sigma and the slopes, wall seconds (warm: the second of two fits); and on the simulation the
    prior's scale, HalfNormal(0.02) against (0.05)."""
    import sys

    from numpyro.diagnostics import split_gelman_rubin

    from bayes_scaling.models import likelihood

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_misfit_noise import simulate

    gadre = load_gadre().for_fit()
    data = {"chinchilla": load_chinchilla().for_fit(), "simulated": simulate()[0],
            **{f"gadre {g}": Runs(gadre.frame[gadre.frame["group"] == g].reset_index(drop=True)) for g in gadre.groups}}
    configs = {"plain noise": (False, (0.25, 0.75), 0.05), "quartile band (option)": (True, (0.25, 0.75), 0.05),
               "zero-width band at the median": (True, (0.5, 0.5), 0.05)}
    band, scale = likelihood.MISFIT_BAND, likelihood.MISFIT_PRIOR_SCALE
    out = {"load_avg_1min_start": os.getloadavg()[0]}
    try:
        for name, runs in data.items():
            rows = {}
            for config, (misfit, q, prior) in {**configs, **({"quartile band, HalfNormal(0.02)": (True, (0.25, 0.75), 0.02)}
                                                            if name == "simulated" else {})}.items():
                likelihood.MISFIT_BAND, likelihood.MISFIT_PRIOR_SCALE = q, prior
                fit_nuts(runs, model="plain", misfit_noise=misfit, retry_divergent=False)  # compile
                start = time.perf_counter()
                post = fit_nuts(runs, model="plain", misfit_noise=misfit, retry_divergent=False)
                seconds = time.perf_counter() - start
                d = diagnose(post)
                arrays = post.group_arrays("posterior")
                rhat = float(d.table["r_hat"].max())
                row = {"divergences": int(d.divergences), "seconds": seconds,
                       "steps_per_draw": float(post.group_arrays("sample_stats")["n_steps"].mean()),
                       "sigma_median": float(np.median(arrays["sigma"]))}
                for site in likelihood.MISFIT_SITES if misfit else ():
                    rhat = max(rhat, float(split_gelman_rubin(np.asarray(arrays[site]))))
                    row[f"{site}_median"] = float(np.median(arrays[site]))
                row["max_rhat"] = rhat
                rows[config] = row
                print(name, config, {k: round(v, 4) for k, v in row.items()}, flush=True)
            out[name] = rows
    finally:
        likelihood.MISFIT_BAND, likelihood.MISFIT_PRIOR_SCALE = band, scale
    out["load_avg_1min_end"] = os.getloadavg()[0]
    return out


def misfit_chinchilla() -> dict:
    """Why the misfit noise loses coverage on Chinchilla (seventh run): the default split, the
    default fitted with and without the misfit noise; per fit the learned drift (scale quantiles,
    mean drift), sigma, the band and slopes, and the held-out runs' coverage, mean relative 90%
    width and mean relative error of the median by tokens per parameter."""
    runs = load_chinchilla().for_fit()
    split = split_by_compute(runs)
    test = split.test
    r = test.D / test.N
    out = {"load_avg_1min_start": os.getloadavg()[0]}
    for misfit in (False, True):
        post = fit_nuts(split.train, misfit_noise=misfit)
        draws = post.predict(test.N, test.D)
        lo, hi = scoring.central_interval(draws, LEVEL)
        med = np.median(draws, 0)
        cov = scoring.covered(test.loss, lo, hi)
        row = {"coverage": float(cov.mean()), "sigma_median": float(np.median(post.draws("sigma"))),
               "extrapolation": {k: v for k, v in post.meta["extrapolation"].items() if "5/50/95" in k or "mean drift" in k}}
        if misfit:
            row["band_tokens_per_param"] = np.exp(post.meta["misfit_band_log_tokens_per_param"][:2]).tolist()
            row["slopes_median"] = {s: float(np.median(post.draws(s))) for s in ("misfit_under", "misfit_over")}
        row["by_tokens_per_param"] = []
        for a, b in ((0, 2), (2, 10), (10, 40), (40, np.inf)):
            k = (r >= a) & (r < b)
            row["by_tokens_per_param"].append({"from": a, "to": b, "runs": int(k.sum()), "coverage": float(cov[k].mean()),
                                               "rel_width": float(((hi - lo) / med)[k].mean()),
                                               "rel_error": float(((test.loss - med) / med)[k].mean())})
        out["misfit noise" if misfit else "default"] = row
    out["load_avg_1min_end"] = os.getloadavg()[0]
    return out


def misfit_final_diagnosis(sources=("chinchilla", "porian", "gadre")) -> dict:
    """Why the misfit noise in the final fit only loses coverage (ninth run; a diagnosis, no rule):
    per source and group of the default split, the default and the candidate (``nuts.MISFIT_NOISE``
    "final") fitted to the training runs: the held-out runs' 90% coverage, mean signed relative
    error of the predictive median, mean relative 90% width, the plain noise's sigma (median), the
    learned drift's scale quantiles (the same calibration in both, by construction), and, for the
    candidate, the band (tokens per parameter) and the slopes' medians; per source the same pooled."""
    out = {"load_avg_1min_start": os.getloadavg()[0]}
    for source in sources:
        runs = SOURCES[source]().for_fit()
        split = split_by_compute(runs)
        rows, pooled = {}, {"default": [], "final": []}
        for name in runs.groups:
            train, test = (Runs(part.frame[part.frame["group"] == name].reset_index(drop=True))
                           for part in (split.train, split.test))
            if not len(test):
                continue
            row = {"train_runs": len(train), "test_runs": len(test),
                   "test_tokens_per_param": [float(x) for x in np.quantile(test.D / test.N, [0, 0.5, 1])]}
            for label, mode in (("default", False), ("final", "final")):
                post = fit_nuts(train, misfit_noise=mode)
                draws = post.predict(test.N, test.D)
                lo, hi = scoring.central_interval(draws, LEVEL)
                med = np.median(draws, 0)
                cov = scoring.covered(test.loss, lo, hi)
                pooled[label].append(np.column_stack([cov, (test.loss - med) / med, (hi - lo) / med]))
                r = {"coverage": float(cov.mean()), "rel_error": float(((test.loss - med) / med).mean()),
                     "rel_width": float(((hi - lo) / med).mean()), "sigma_median": float(np.median(post.draws("sigma"))),
                     "model_label": post.model_label,
                     "drift": {k: v for k, v in post.meta["extrapolation"].items() if "5/50/95" in k}}
                if mode:
                    r["band_tokens_per_param"] = np.exp(post.meta["misfit_band_log_tokens_per_param"][:2]).tolist()
                    r["slopes_median"] = {site: float(np.median(post.draws(site))) for site in ("misfit_under", "misfit_over")}
                row[label] = r
            rows[name] = row
        out[source] = {"groups": rows, "pooled": {label: dict(zip(("coverage", "rel_error", "rel_width"),
                                                                   np.vstack(parts).mean(0).tolist()))
                                                  for label, parts in pooled.items()}}
        print(source, json.dumps(out[source]["pooled"]), flush=True)
    out["load_avg_1min_end"] = os.getloadavg()[0]
    return out


def candidate_cost(runs: Runs, candidates: dict, repeats: int = 3) -> dict:
    """Warm, in this process, in turn within each repeat: a plain fit, a default fit and a default
    fit under each candidate's setting (median wall seconds; informational, not in the rule)."""
    def call(setting, model="extrapolating"):
        with variant(setting):
            return fit_nuts(runs, model=model)

    calls = {"plain": lambda: call(None, "plain"),
             **{name: (lambda s=setting: call(s)) for name, (_, setting) in candidates.items()}}
    for f in calls.values():
        f()  # compile
    out = timed_in_turn(calls, repeats)
    return {"seconds": out, "over_plain": {name: t / out["plain"] for name, t in out.items()},
            "load_avg_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Chinchilla and Marin only, no cost or diagnostics")
    parser.add_argument("--simulation", action="store_true",
                        help="the slow test's drifting-law simulation only, into results/bench_extrapolation_simulation.json")
    parser.add_argument("--profile", action="store_true",
                        help="profile a default fit of Chinchilla (process CPU time) into the results file (--out)")
    parser.add_argument("--frontier-only", action="store_true",
                        help="measure only Chinchilla's frontier (default, and without inferred slices by LOSS_ONLY_MEAN) into --out")
    parser.add_argument("--slices-only", action="store_true",
                        help="Chinchilla's inferred IsoFLOP slices against the plain law's N_opt, into --out")
    parser.add_argument("--cost-only", action="store_true",
                        help="measure only the cost (and the folds' Laplace bias) into the results file (--out)")
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=None, metavar="NAME",
                        help="only these extrapolating candidates (the first is the library default; default: all; "
                             "with --far-simulation: none unless given)")
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES),
                        help="only these sources (the rule is then judged on them)")
    parser.add_argument("--out", type=Path, default=OUT, help="results file")
    parser.add_argument("--simulation-results", type=Path, default=None,
                        help="a --simulation results file with the same candidates: judge the adoption rule (sixth run)")
    parser.add_argument("--scores-only", action="store_true", help="no cost, frontier, profile or diagnostics")
    parser.add_argument("--split", choices=("standard", "far"), default="standard",
                        help="far: hold out more (FAR_SPLITS; tenth run's (g)); implies --scores-only")
    parser.add_argument("--far-results", type=Path, default=None,
                        help="with --judge: a --split far results file, for the tenth run's (g)")
    parser.add_argument("--candidate-diagnostics", action="store_true",
                        help="also diagnose a fit of every group's full data under each candidate (rule (e), seventh run) "
                             "and time the candidates against the plain law on Chinchilla")
    for flag, text in DIAGNOSIS_HELP.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=text)
    parser.add_argument("--judge", action="store_true",
                        help="judge the adoption rule on the results file --out and --simulation-results, into --out")
    parser.add_argument("--no-baselines", action="store_true",
                        help="score the extrapolating candidates only (no plain law, no conformal baseline; twelfth run)")
    parser.add_argument("--far-optima-results", type=Path, default=None,
                        help="with --judge: a --chinchilla-far-optima results file with the candidates, for the twelfth run's (i)")
    parser.add_argument("--cost-repeats", type=int, default=5, help="with --cost-only: repeats, each fit in turn")
    parser.add_argument("--cost-relative", action="store_true",
                        help="with --judge --cost-results: (f') the candidate's fit at most 1.05x the default's (17th run)")
    parser.add_argument("--monotonicity-results", type=Path, default=None,
                        help="with --judge: monotonicity_check.py's results under the candidate, for the sixteenth run's (j)")
    parser.add_argument("--cost-results", type=Path, default=None,
                        help="with --judge: a --cost-only results file whose candidate_cost_chinchilla gives rule (f) (ninth run)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every scored fit (default 0; nineteenth run)")
    parser.add_argument("--fidelity-reference", type=Path, default=None,
                        help="with --judge: an earlier results file (its --simulation file beside it, *_simulation.json) "
                             "whose NUTS-refit candidate the candidates must reproduce (the twentieth run's (A))")
    parser.add_argument("--seeds-stem", choices=list(SEED_RUNS), default="bench_extrapolation_laplace_mode",
                        help="with --judge-seeds: whose files (the nineteenth run's, or the twenty-third's)")
    parser.add_argument("--judge-priors", action="store_true",
                        help="the twenty-first run's rule on --out and --simulation-results, into --out; with "
                             "--far-results, --far-optima-results, --monotonicity-results and --cost-results: its later checks")
    parser.add_argument("--judge-seeds", action="store_true",
                        help="the nineteenth (or with --seeds-stem the twenty-third) run's rule over seeds 0-2, into --out")
    parser.add_argument("--stability-seeds", type=int, nargs="+", default=list(range(6)), metavar="SEED",
                        help="with --seed-stability-sources: the fit seeds (default 0-5; the twenty-fifth run: 6-11)")
    parser.add_argument("--judge-replication", type=Path, nargs="+", default=None, metavar="FILE",
                        help="the twenty-fifth run's rule on --seed-stability-sources files (merged), into --out")
    parser.add_argument("--judge-seed-stability", type=Path, nargs="+", default=None, metavar="FILE",
                        help="the twenty-fourth run's rule on --seed-stability-sources files (merged), into --out")
    args = parser.parse_args()
    global FIT_SEED
    FIT_SEED = args.seed
    candidates = {name: CANDIDATES[name] for name in (args.candidates or CANDIDATES)}
    bayes_scaling.configure()
    diagnoses = {  # flag: (diagnosis, its results file, print it)
        "misfit_geometry": (misfit_geometry, "bench_extrapolation_misfit_geometry.json", False),
        "misfit_chinchilla": (misfit_chinchilla, "bench_extrapolation_misfit_chinchilla.json", True),
        "misfit_final_diagnosis": (misfit_final_diagnosis, "bench_extrapolation_misfit_final_diagnosis.json", False),
        "diagnose_gadre": (gadre_diagnosis, "bench_extrapolation_gadre_diagnosis.json", True),
        "chinchilla_far_optima": (lambda: chinchilla_far_optima(candidates if args.candidates else None),
                                  "bench_extrapolation_chinchilla_far_optima.json", True),
        "far_simulation": (lambda: far_simulation(candidates if args.candidates else None),
                           "bench_extrapolation_far_simulation.json", False),
        "fold_refits": (fold_refits, "bench_extrapolation_fold_refits.json", False),
        "exact_simulation": (lambda: exact_simulation(candidates if args.candidates else None),
                             "bench_extrapolation_exact_simulation.json", False),
        "misfit_allocation": (misfit_allocation, "bench_extrapolation_misfit_allocation.json", False),
        "seed_stability": (seed_stability, "bench_extrapolation_seed_stability.json", False),
        "seed_stability_sources": (lambda: seed_stability_sources(tuple(args.sources), tuple(args.stability_seeds)),
                                   "bench_extrapolation_seed_stability_sources.json", False),
    }
    for flag, (diagnose, name, show) in diagnoses.items():
        if getattr(args, flag):
            path = args.out if args.out != OUT else OUT.parent / name
            path.write_text(json.dumps(diagnose(), indent=1))
            if show:
                print(path.read_text())
            return
    stability_rules = {  # flag: (the rule on merged --seed-stability-sources files, its results file)
        "judge_seed_stability": (judge_seed_stability, "bench_extrapolation_seed_stability_sources.json"),
        "judge_replication": (judge_replication, "bench_extrapolation_seed_replication.json"),
    }
    for flag, (rule, name) in stability_rules.items():
        if getattr(args, flag):
            groups = {k: v for path in getattr(args, flag) for k, v in json.loads(path.read_text()).items()}
            verdict = {"rule": rule(groups), "groups": groups}
            path = args.out if args.out != OUT else OUT.parent / name
            path.write_text(json.dumps(verdict, indent=1))
            print(json.dumps(verdict["rule"], indent=1))
            return
    if args.judge_seeds:
        verdict = judge_over_seeds(OUT.parent, args.seeds_stem)
        path = args.out if args.out != OUT else OUT.parent / f"{args.seeds_stem}_seeds.json"
        path.write_text(json.dumps(verdict, indent=1))
        print(json.dumps({k: v for k, v in verdict.items() if k != "per_seed"}, indent=1))
        return
    if args.judge_priors:
        report = json.loads(args.out.read_text())
        report["priors_rule"] = rule = judge_priors(report["results"], json.loads(args.simulation_results.read_text()),
                                                    candidates)
        chosen = rule["chosen"]
        if chosen is not None and args.far_results is not None:  # the later checks, for the chosen one only
            later = far_split_check(json.loads(args.far_results.read_text())["results"], ["extrapolating", chosen])[chosen]
            optima = json.loads(args.far_optima_results.read_text())["models"]
            later["i_far_optima_inside"] = optima[chosen]["inside"]
            later["default_far_optima_inside"] = optima["default (mixed)"]["inside"]
            rises = [g["frontier"] for g in json.loads(args.monotonicity_results.read_text())["groups"].values()]
            later["j_frontier_rises_over_0.1%"] = int(sum(r > 0.001 for r in rises))
            seconds = json.loads(args.cost_results.read_text())["candidate_cost_chinchilla"]["seconds"]
            later["f_prime_cost_over_default"] = seconds[chosen] / seconds["extrapolating"]
            later["f_default_over_plain"] = seconds["extrapolating"] / seconds["plain"]
            later["passes"] = bool(later["g_passes"] and later["h_far_n_opt"]
                                   and later["i_far_optima_inside"] >= later["default_far_optima_inside"]
                                   and later["j_frontier_rises_over_0.1%"] == 0 and later["f_prime_cost_over_default"] <= 1.05)
            rule["later_checks"] = later
            rule["adopted"] = chosen if later["passes"] else None
        args.out.write_text(json.dumps(report, indent=1))
        print("twenty-first run's rule:", json.dumps(report["priors_rule"], indent=1))
        return
    if args.judge:
        report = json.loads(args.out.read_text())
        costs = report.get("candidate_cost_chinchilla")
        if args.cost_results is not None:
            costs = json.loads(args.cost_results.read_text())["candidate_cost_chinchilla"]
            report["candidate_cost_chinchilla_judged"] = costs
        over = None if costs is None else costs["over_plain"]
        if costs is not None and args.cost_relative:  # (f'): against the default, scaled so that adoption's 2.0 reads 1.05
            over = {name: 2.0 / 1.05 * t / costs["seconds"]["extrapolating"] for name, t in costs["seconds"].items()}
        report["adoption"] = adoption(report["results"], candidates, json.loads(args.simulation_results.read_text()),
                                      report.get("candidate_diagnostics"), over)
        if costs is not None and args.cost_relative:
            for name, entry in report["adoption"]["candidates"].items():
                entry["f_prime_cost_over_default"] = costs["seconds"][name] / costs["seconds"]["extrapolating"]
                entry["f_cost_at_most_2x_plain"] = None  # replaced by (f')
        if args.far_results is not None:  # the tenth run: (a)-(d) on the standard split and (g) on the far one
            far = far_split_check(json.loads(args.far_results.read_text())["results"], candidates)
            for name, check in far.items():
                entry = report["adoption"]["candidates"][name]
                entry.update(check)
                entry["passes"] = bool(entry["passes"] and check["g_passes"] and check["h_far_n_opt"])
            passing = [n for n, e in report["adoption"]["candidates"].items() if e["passes"]]
            report["adoption"]["adopted"] = min(passing, key=lambda n: report["adoption"]["candidates"][n][
                "geomean_is_ratio_to_default"]) if passing else None
        if args.far_optima_results is not None:  # the twelfth run's (i)
            optima = json.loads(args.far_optima_results.read_text())["models"]
            for name, entry in report["adoption"]["candidates"].items():
                entry["i_far_optima_inside"] = optima[name]["inside"]
                entry["default_far_optima_inside"] = optima["default (mixed)"]["inside"]
                entry["passes"] = bool(entry["passes"] and optima[name]["inside"] >= optima["default (mixed)"]["inside"])
            passing = [n for n, e in report["adoption"]["candidates"].items() if e["passes"]]
            report["adoption"]["adopted"] = min(passing, key=lambda n: report["adoption"]["candidates"][n][
                "geomean_is_ratio_to_default"]) if passing else None
        if args.monotonicity_results is not None:  # the sixteenth run's (j)
            rises = [g["frontier"] for g in json.loads(args.monotonicity_results.read_text())["groups"].values()]
            for name, entry in report["adoption"]["candidates"].items():
                entry["j_frontier_rises_over_0.1%"] = int(sum(r > 0.001 for r in rises))
                entry["passes"] = bool(entry["passes"] and entry["j_frontier_rises_over_0.1%"] == 0)
            passing = [n for n, e in report["adoption"]["candidates"].items() if e["passes"]]
            report["adoption"]["adopted"] = min(passing, key=lambda n: report["adoption"]["candidates"][n][
                "geomean_is_ratio_to_default"]) if passing else None
        if args.fidelity_reference is not None:  # the twentieth run's (A), against a --simulation file beside it
            ref = args.fidelity_reference
            reference_simulation = ref.with_name(ref.stem + "_simulation.json")
            report["fidelity"] = {name: fidelity_check(report["results"], json.loads(args.simulation_results.read_text()),
                                                       json.loads(ref.read_text())["results"],
                                                       json.loads(reference_simulation.read_text()), name)
                                  for name in candidates if name != "extrapolating"}
            print("fidelity:", json.dumps(report["fidelity"], indent=1))
        args.out.write_text(json.dumps(report, indent=1))
        print("adoption rule:", json.dumps(report["adoption"], indent=1))
        return
    if args.simulation:
        sim = Path(OUT.parent / "bench_extrapolation_simulation.json")
        sim = args.out if args.out != OUT else sim
        sim.write_text(json.dumps(drifting_simulation(candidates), indent=1))
        print(sim.read_text())
        return
    if args.profile:
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report["profile_chinchilla"] = profile_default_fit(load_chinchilla().for_fit())
        args.out.write_text(json.dumps(report, indent=1))
        print(json.dumps(report["profile_chinchilla"], indent=1))
        return
    if args.slices_only:
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report["inferred_slices_chinchilla"] = chinchilla_inferred_slices()
        report["inferred_slices_gadre"] = gadre_inferred_slices()
        report["inferred_slice_fold_rows_chinchilla"] = chinchilla_fold_optimum_rows()
        print("Chinchilla folds' N_opt rows:", report["inferred_slice_fold_rows_chinchilla"])
        print("Gadre, inferred slices per group:", report["inferred_slices_gadre"])
        args.out.write_text(json.dumps(report, indent=1))
        for r in report["inferred_slices_chinchilla"]:
            print(f"C {r['budget']:.3g}: {r['runs']} runs, N span {r['N_span']:.1f}x, empirical N_opt "
                  f"{(r['empirical_N_opt'] or float('nan')) / 1e9:.3g}B, plain law {r['plain_law_N_opt'] / 1e9:.3g}B")
        return
    if args.frontier_only:
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report["frontier_chinchilla"] = chinchilla_frontier()
        args.out.write_text(json.dumps(report, indent=1))
        print(json.dumps(report["frontier_chinchilla"], indent=1))
        return
    if args.cost_only:
        report = json.loads(args.out.read_text()) if args.out.exists() else {}
        report["cost_chinchilla"] = cost(load_chinchilla().for_fit(), repeats=args.cost_repeats)
        if len(candidates) > 1:  # the candidates' default fits against the plain law's, side by side
            report["candidate_cost_chinchilla"] = candidate_cost(load_chinchilla().for_fit(), candidates,
                                                                 repeats=args.cost_repeats)
            print("candidate cost (Chinchilla, warm):", json.dumps(report["candidate_cost_chinchilla"]))
        report["level_cut_cost_chinchilla"] = level_cut_cost(load_chinchilla().for_fit(), repeats=args.cost_repeats)
        print("level cut (Chinchilla, warm):", json.dumps(report["level_cut_cost_chinchilla"]))
        report["laplace_fold_bias"] = {s: laplace_fold_bias(SOURCES[s]().for_fit()) for s in ("chinchilla", "gadre")}
        args.out.write_text(json.dumps(report, indent=1))
        print("cost (Chinchilla, warm):", {k: round(v, 3) for k, v in report["cost_chinchilla"].items()})
        for source, rows in report["laplace_fold_bias"].items():
            print(source, "fold mean residual laplace/nuts:",
                  "; ".join(f"{r['group']} {r['fitted']}: {r['laplace_mean_residual']:+.3f}/{r['nuts_mean_residual']:+.3f}"
                            for r in rows))
        return
    sources = {k: v for k, v in SOURCES.items() if k in args.sources and (not args.quick or k in ("chinchilla", "marin"))}
    results = {}
    for source, load in sources.items():
        runs = load().for_fit()
        split_kw = FAR_SPLITS[source] if args.split == "far" else {}
        row = {} if args.no_baselines else {"plain": model_scores(runs, lambda r: fit_nuts(r, model="plain", seed=FIT_SEED), split_kw),
                                            "conformal": conformal_scores(runs, split_kw)}
        for name, (priors, setting) in candidates.items():
            with variant(setting):
                row[name] = model_scores(runs, lambda r, p=priors: fit_nuts(r, drift_priors=p or None, seed=FIT_SEED), split_kw)
        if any(setting == "misfit-noise" for _, setting in candidates.values()):  # beside them, not a candidate
            row["plain, misfit noise"] = model_scores(runs, lambda r: fit_nuts(r, model="plain", misfit_noise=True))
        results[source] = row
        print(source, json.dumps({k: {m: round(x, 3) for m, x in v.items() if isinstance(x, float)} for k, v in row.items()}),
              flush=True)

    def rank(name):
        if args.no_baselines:  # the rule's first two keys only: they need no plain law
            return (-sum(0.8 <= results[s][name]["coverage"] <= 0.97 for s in results),
                    -sum(results[s][name].get("n_opt_top_inside", 0) for s in results))
        in_band = sum(0.8 <= results[s][name]["coverage"] <= 0.97 for s in results)
        n_opt = sum(results[s][name].get("n_opt_top_inside", 0) for s in results)
        better = sum(results[s][name]["interval_score"] < results[s]["plain"]["interval_score"] for s in results)
        ratio = np.exp(np.mean([np.log(results[s][name]["interval_score"] / results[s]["plain"]["interval_score"])
                                for s in results]))
        return (-in_band, -n_opt, -better, ratio)

    chosen = min(candidates, key=rank)
    report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 2 cores (the project's CPU machine)",
              "split": args.split if args.split == "standard" else {"far": {s: FAR_SPLITS[s] for s in results}},
              "level": LEVEL, "seed": FIT_SEED, "load_avg_1min_at_end": os.getloadavg()[0], "results": results, "rule_choice": chosen,
              "library_default_is_rule_choice": chosen == "extrapolating"}
    if args.candidate_diagnostics:
        report["candidate_diagnostics"] = {}
        for name, (_, setting) in candidates.items():
            if name == "extrapolating":
                continue
            with variant(setting):
                report["candidate_diagnostics"][name] = {s: diagnostics(load().for_fit()) for s, load in SOURCES.items()}
        report["candidate_cost_chinchilla"] = candidate_cost(load_chinchilla().for_fit(), candidates)
        print("candidate cost (Chinchilla, warm):", json.dumps(report["candidate_cost_chinchilla"]))
    if args.simulation_results is not None:
        report["adoption"] = adoption(results, candidates, json.loads(args.simulation_results.read_text()),
                                      report.get("candidate_diagnostics"))
        print("adoption rule:", json.dumps(report["adoption"], indent=1))
    if not (args.quick or args.scores_only or args.split == "far"):
        report["cost_chinchilla"] = cost(load_chinchilla().for_fit(), repeats=5)
        report["frontier_chinchilla"] = chinchilla_frontier()
        report["profile_chinchilla"] = profile_default_fit(load_chinchilla().for_fit())
        report["diagnostics"] = {source: diagnostics(load().for_fit()) for source, load in SOURCES.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))

    print(f"\n90% intervals on held-out top-compute runs ({', '.join(results)}):")
    print(f"{'model':52s}" + "".join(f"{s:>26s}" for s in results))
    for name in [*([] if args.no_baselines else ["plain", "conformal"]), *candidates, *(["plain, misfit noise"] if "plain, misfit noise" in
                                                       next(iter(results.values()), {}) else [])]:
        cells = []
        for s in results:
            r = results[s][name]
            cell = f"{r['coverage']:.0%} IS {r['interval_score']:.3f}"
            if "n_opt_top_judged" in r:
                cell += f" N {r['n_opt_top_inside']}/{r['n_opt_top_judged']}"
            cells.append(f"{cell:>26s}")
        print(f"{name:52s}" + "".join(cells))
    print(f"rule's choice: {chosen}; library default is it: {chosen == 'extrapolating'}")
    if "cost_chinchilla" in report:
        print("cost (Chinchilla, warm):", {k: round(v, 3) for k, v in report["cost_chinchilla"].items()})
        for source, rows in report["diagnostics"].items():
            bad = [r for r in rows if not r["ok"] or r["divergences"]]
            print(f"diagnostics {source}: {len(rows) - len(bad)}/{len(rows)} groups clean;",
                  "; ".join(f"{r['group']}: {r['divergences']} div, R-hat {r['max_rhat']:.3f}" for r in bad))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
