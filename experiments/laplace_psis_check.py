"""Can a calibration refit be faithful to NUTS at Laplace cost? A diagnosis (thirteenth session, no rule).

The extrapolation model's calibration refits each leave-future-out fold by the Laplace approximation
(``fit_laplace``), and its learned drift moves with how that refit's predictive mean and spread at the
fold's held-out runs compare with the truth (docs/extrapolation.md, "The calibration's Laplace refits").
Per fold of the drifting simulation (seed 0; tests/test_extrapolation.py ``simulate_sweeps``), and of
Chinchilla's, Marin's, Gadre's and (fourteenth session) Porian's standard-split training runs, the held-out runs' mean residual r = log y - m and mean
predictive sd sqrt(v) (v: the draws' variance of the law's log-loss plus the Student-t noise's
variance) by:

* ``nuts``: ``fit_nuts(model="plain")`` at its defaults (the reference);
* ``jittered`` and ``mode``: ``fit_laplace`` with ``sampler.LAPLACE_START`` either way;
* ``psis``: the Gaussian at the mode (Newton from the unjittered start) as an importance-sampling
  proposal for the exact posterior, S = 4,000 draws, Pareto-smoothed weights (PSIS, Vehtari et al.
  2024; ``arviz_stats``), with the weights' Pareto k-hat (above 0.7: the weights are unreliable);
* ``psis_t5``: the same with a multivariate Student-t proposal, 5 degrees of freedom;
* ``library``: ``fit_laplace`` with ``sampler.LAPLACE_CORRECTION = "psis"`` (fourteenth session): the t(5)
  proposal adapted twice to the weighted moments, then resampled (``fitting/importance.py``), with its
  last round's k-hat.

    python experiments/laplace_psis_check.py [--out results/laplace_psis_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import constrain_fn, potential_energy

from bayes_scaling._jax_setup import configure
from bayes_scaling.fitting import importance, sampler
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.nuts import fit_laplace, fit_nuts, jittered_init, padded_args
from bayes_scaling.laws import get_law
from bayes_scaling.models import DEFAULT_NU, ModelSpec, pooled_model
from bayes_scaling.priors import resolve_priors
from bayes_scaling.runs.bundled import load_chinchilla, load_gadre, load_marin, load_porian
from bayes_scaling.runs.table import Runs
from bayes_scaling.splits import forward_chain, split_by_compute

LAW = get_law("chinchilla")
MODEL = partial(pooled_model, ModelSpec(law=LAW, priors=resolve_priors(LAW, None), likelihood="student_t", nu=DEFAULT_NU))


def psis_laplace(train: Runs, draws: int = 4000, df: float | None = None, seed: int = 0):
    """(theta, sigma, normalised weights, k-hat): the importance-weighted Laplace fit of ``train``."""
    N, D, log_loss = train.N, train.D, np.log(train.loss)
    centre = (float(np.mean(np.log(N))), float(np.mean(np.log(D))))
    data = padded_args(N, D, log_loss, centre, sampler.padded_capacity(len(train)))
    start = jittered_init(LAW, initial_theta(LAW, train), centre, train, 1, 0, scale=0.0)
    x0, unravel = ravel_pytree({k: jnp.asarray(v[0]) for k, v in start.items()})
    potential = lambda x: potential_energy(MODEL, data, {}, unravel(x))  # noqa: E731
    value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(potential)))
    cov, mode, _ = sampler.newton_laplace(lambda points: tuple(a[None] for a in value_and_grad(points[0])),
                                          np.asarray(x0)[None], sampler.LAPLACE_NEWTON_STEPS, return_mode=True)
    cov, mode = cov[0], mode[0]
    rng = np.random.default_rng(seed)
    if df:
        z, log_q = importance.student_t_draws(rng, mode, cov, df, draws)
    else:
        eps = rng.standard_normal((draws, len(mode)))
        z, log_q = mode + eps @ np.linalg.cholesky(cov).T, -0.5 * (eps ** 2).sum(1)
    log_p = -np.asarray(jax.jit(jax.vmap(potential))(jnp.asarray(z)), np.float64)
    weights, khat = importance.psis_weights(log_p, log_q)
    sites = jax.vmap(lambda x: constrain_fn(MODEL, data, {}, unravel(x), return_deterministic=True))(jnp.asarray(z))
    theta = {k: np.asarray(sites[k], np.float64) for k in LAW.param_names}
    return theta, np.asarray(sites["sigma"], np.float64), weights, float(khat)


def moments(theta: dict, sigma: np.ndarray, weights: np.ndarray, test: Runs) -> dict:
    """The held-out runs' mean residual and mean predictive sd under weighted draws."""
    mu = np.asarray(LAW.log_loss({k: jnp.asarray(v)[:, None] for k, v in theta.items()},
                                 jnp.asarray(test.N)[None], jnp.asarray(test.D)[None]), np.float64)
    finite = np.isfinite(mu).all(axis=1)
    w = np.where(finite, weights, 0.0)
    w = w / w.sum()
    mu = np.where(finite[:, None], mu, 0.0)
    m = w @ mu
    v = w @ (mu - m) ** 2 + w @ (sigma ** 2 * DEFAULT_NU / (DEFAULT_NU - 2))
    return {"mean_residual": float((np.log(test.loss) - m).mean()), "mean_sd": float(np.sqrt(v).mean())}


def of_posterior(post, test: Runs) -> dict:
    sigma = post.draws("sigma")
    return moments(post.theta(), sigma, np.full(len(sigma), 1 / len(sigma)), test)


def cases() -> list[tuple[str, Runs]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_extrapolation import simulate_sweeps

    out = [("simulation/s0", split_by_compute(simulate_sweeps(0, 0.03)).train),
           ("chinchilla", split_by_compute(load_chinchilla().for_fit()).train)]
    for source, load in (("marin", load_marin), ("gadre", load_gadre), ("porian", load_porian)):
        train = split_by_compute(load().for_fit()).train
        out += [(f"{source}/{g}", Runs(train.frame[train.frame["group"] == g].reset_index(drop=True))) for g in train.groups]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "laplace_psis_check.json"))
    args = parser.parse_args()
    configure()
    start = time.perf_counter()
    rows = []
    for name, train in cases():
        for k, fold in enumerate(forward_chain(train)):
            row = {"case": name, "fold": k, "fitted": len(fold.train), "held_out": len(fold.test),
                   "nuts": of_posterior(fit_nuts(fold.train, model="plain"), fold.test)}
            for start_at in sampler.LAPLACE_STARTS:
                previous, sampler.LAPLACE_START = sampler.LAPLACE_START, start_at
                try:
                    row[start_at] = of_posterior(fit_laplace(fold.train), fold.test)
                finally:
                    sampler.LAPLACE_START = previous
            previous, sampler.LAPLACE_CORRECTION = sampler.LAPLACE_CORRECTION, "psis"
            try:
                fitted = fit_laplace(fold.train)
            finally:
                sampler.LAPLACE_CORRECTION = previous
            row["library"] = {**of_posterior(fitted, fold.test), "khat": fitted.meta["importance_khat"]}
            for label, df in (("psis", None), ("psis_t5", 5.0)):
                theta, sigma, weights, khat = psis_laplace(fold.train, df=df)
                row[label] = {**moments(theta, sigma, weights, fold.test), "khat": khat}
            rows.append(row)
            print(name, k, {m: {q: round(x, 4) for q, x in row[m].items()} for m in ("nuts", "jittered", "mode", "psis", "psis_t5", "library")},
                  flush=True)
    methods = ("jittered", "mode", "psis", "psis_t5", "library")
    summary = {m: {"median_abs_residual_gap_to_nuts": float(np.median([abs(r[m]["mean_residual"] - r["nuts"]["mean_residual"]) for r in rows])),
                   "median_sd_ratio_to_nuts": float(np.median([r[m]["mean_sd"] / r["nuts"]["mean_sd"] for r in rows])),
                   "sd_ratio_range": [float(f(r[m]["mean_sd"] / r["nuts"]["mean_sd"] for r in rows)) for f in (min, max)]}
               for m in methods}
    for m in ("psis", "psis_t5", "library"):
        summary[m]["khat_range"] = [float(f(r[m]["khat"] for r in rows)) for f in (min, max)]
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)", "seconds": time.perf_counter() - start,
           "summary": summary, "folds": rows}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
