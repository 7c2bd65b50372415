"""Greedy batches of q runs, accounting for runs that are pending (started, result not back yet).

Greedy selection with fantasised outcomes: pick the best candidate, pretend its result is known,
re-score the rest, repeat q times. Pending runs are pretended known from the start, so a new batch
does not duplicate what the workers are already measuring.

* Gaussian estimator (default). Under the joint-Gaussian approximation of (T, mu(x_1), ..., mu(x_K))
  across draws, observing y_O = mu_O + noise (O: pending and already chosen) leaves the covariance
      S_{.|O} = S_.. - S_.O (S_OO + r I)^-1 S_O.
  This does not depend on the observed values, so conditioning on fantasised outcomes (kriging
  believer: the predictive means) is exact within the approximation, and no draw is discarded.
  The gain of candidate x is then -1/2 log(1 - c_{x|O}' S_{TT|O}^-1 c_{x|O} / (v_{x|O} + r)).
* Nested Monte Carlo estimator. The draws are importance-reweighted by the likelihood of the
  fantasised outcome, the posterior predictive mean ybar_o = sum_s w_s mu_s(x_o):
      w_s <- w_s p(ybar_o | theta_s)  for each o in O,
  and the nested estimate is taken under the new weights.

Scores: ``eig_per_cost`` (gain / FLOPs: the planner), ``eig`` (gain alone), ``uncertainty``
(predictive variance of the log-loss, v_{x|O} + r, ignoring cost: classic uncertainty sampling).
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.design.discrepancy import Discrepancy, innovations
from bayes_scaling.design.eig import (
    _as_2d,
    _weights,
    eig_nested,
    gaussian_gain,
    noise_variance,
)
from bayes_scaling.errors import InputError

SCORES = ("eig_per_cost", "eig", "uncertainty")
ESTIMATORS = ("gaussian", "nested")


def greedy_batch(T, mu, sigma, cost, q: int, *, mu_pending=None, score: str = "eig_per_cost",
                 estimator: str = "gaussian", likelihood: str = "student_t", nu: float = 5.0,
                 weights=None, seed: int = 0, nested_options: dict | None = None,
                 discrepancy: Discrepancy | None = None, where=None, where_pending=None, mu_done=None,
                 where_done=None, gain=None, cost_exponent: float = 1.0, budget: float | None = None):
    """Indices of q candidates (columns of ``mu``) chosen greedily, and each one's EIG (nats)
    at the moment it was chosen. ``mu_pending``: (S, P) predicted log-losses of pending runs.

    ``discrepancy`` (Gaussian estimator only): score under the model with a misfit term shared by
    nearby runs (``design.discrepancy``); it needs the coordinates (log10 N, log10 D, log10 C) of
    the candidates and pending runs (``where``, ``where_pending``) and the done runs' predicted
    log-losses (S, n) and coordinates (``mu_done``, ``where_done``).

    ``gain`` (Gaussian estimator): a function (S_TT, c, v) -> gain per candidate used instead of
    the EIG (``design.target``'s region utility); ``cost_exponent`` gamma: ``eig_per_cost``
    divides by cost^gamma (1: per FLOP). ``budget``: the most the batch may cost together; each
    step picks among the candidates the rest of it still pays for, and the batch ends early when
    none is left (None: no cap).
    """
    if score not in SCORES or estimator not in ESTIMATORS:
        raise InputError(f"score must be one of {SCORES} and estimator one of {ESTIMATORS}")
    T, mu = _as_2d(T), _as_2d(mu)
    S, K = mu.shape
    q = min(int(q), K)
    cost = np.asarray(cost, np.float64)
    pending = np.zeros((S, 0)) if mu_pending is None else _as_2d(mu_pending)
    w = _weights(weights, S)
    r = noise_variance(sigma, likelihood, nu, w)
    if estimator == "gaussian":
        if discrepancy is not None and discrepancy.scale > 0:
            if where is None or (where_pending is None and pending.shape[1]):
                raise InputError("a discrepancy needs the runs' coordinates (where, where_pending)")
            done = np.zeros((S, 0)) if mu_done is None else _as_2d(mu_done)
            coords = np.vstack([np.reshape(where_pending if pending.shape[1] else np.zeros((0, 3)), (-1, 3)), where])
            columns, noise = innovations(np.column_stack([pending, mu]), coords, r, discrepancy, done,
                                         where_done if done.shape[1] else None)
        else:
            columns, noise = np.column_stack([pending, mu]), None
        step = _GaussianConditioner(T, columns, pending.shape[1], w, r, noise, gain)
    else:
        if (discrepancy is not None and discrepancy.scale > 0) or gain is not None:
            raise InputError("the discrepancy term and a custom gain are implemented for the Gaussian estimator only")
        step = _ReweightingConditioner(T, mu, pending, w, sigma, likelihood, nu, seed, nested_options or {})
    chosen, gains = [], []
    for _ in range(q):
        value_gain, variance = step.scores()
        value = {"eig_per_cost": value_gain / cost**cost_exponent, "eig": value_gain, "uncertainty": variance}[score]
        j = best_affordable(value, chosen, cost, budget)
        if j is None:
            break
        chosen.append(j)
        gains.append(float(value_gain[j]))
        step.observe(j)
    return chosen, np.asarray(gains)


def best_affordable(value: np.ndarray, chosen: list[int], cost: np.ndarray, budget: float | None) -> int | None:
    """The index of the highest ``value`` not yet chosen whose cost the rest of ``budget`` pays
    for (None: no cap), or None when no candidate is left."""
    value = np.array(value, np.float64)
    value[chosen] = -np.inf
    if budget is not None:
        value[cost > (budget - float(np.sum(cost[chosen]))) * (1 + 1e-12)] = -np.inf  # a run that spends it exactly fits
    if len(chosen) >= len(value) or not np.any(value > -np.inf):
        return None
    return int(np.argmax(value))


class _GaussianConditioner:
    """Covariances of (T, y) from the draws, conditioned on noisy observations of chosen columns.

    ``columns`` (S, P + K): the pending runs' then the candidates' predictions (or innovations, with
    a discrepancy); ``noise``: their (P + K, P + K) noise covariance, or None for r I. The first P
    columns are observed from the start.
    """

    def __init__(self, T, columns, n_pending, w, r, noise=None, gain=None):
        root = np.sqrt(w)[:, None]
        self.T = root * (T - w @ T)
        self.X = root * (columns - w @ columns)
        self.P, self.r, self.noise, self.gain = n_pending, r, noise, gain or gaussian_gain
        self.observed = list(range(n_pending))
        self.S_TT = self.T.T @ self.T
        self.c = self.T.T @ self.X[:, n_pending:]
        self.v = np.sum(self.X[:, n_pending:] ** 2, axis=0) + self._noise(np.arange(n_pending, self.X.shape[1]), None)

    def _noise(self, rows, cols):
        """Noise covariance block (rows x cols); cols None: the diagonal of rows."""
        if cols is None:
            return self.r * np.ones(len(rows)) if self.noise is None else np.diag(self.noise)[rows]
        if self.noise is None:
            return self.r * (np.asarray(rows)[:, None] == np.asarray(cols)[None, :])
        return self.noise[np.ix_(rows, cols)]

    def scores(self):
        """(gain, predictive variance of y) per candidate, given the observed columns."""
        if not self.observed:
            return self.gain(self.S_TT, self.c, self.v), self.v
        O, M = np.asarray(self.observed), np.arange(self.P, self.X.shape[1])
        X_O = self.X[:, O]
        S_OO = X_O.T @ X_O + self._noise(O, O)
        S_OT, S_OM = X_O.T @ self.T, X_O.T @ self.X[:, self.P:] + self._noise(O, M)
        B_T, B_M = np.linalg.solve(S_OO, S_OT), np.linalg.solve(S_OO, S_OM)
        S_TT = self.S_TT - S_OT.T @ B_T
        c = self.c - S_OT.T @ B_M
        v = np.maximum(self.v - np.sum(S_OM * B_M, axis=0), 1e-300)
        return self.gain(S_TT, c, v), v

    def observe(self, j):
        self.observed.append(self.P + j)


class _ReweightingConditioner:
    """Importance weights conditioned on fantasised outcomes (the predictive means)."""

    def __init__(self, T, mu, pending, w, sigma, likelihood, nu, seed, options):
        self.T, self.mu, self.sigma = T, mu, np.broadcast_to(np.asarray(sigma, np.float64), (len(w),))
        self.likelihood, self.nu, self.seed, self.options = likelihood, nu, seed, options
        from bayes_scaling.models.likelihood import Likelihood

        self.noise = Likelihood(likelihood, nu)
        self.log_w = np.log(np.maximum(w, 1e-300))
        for p in range(pending.shape[1]):
            self._fantasise(pending[:, p])

    def _w(self):
        w = np.exp(self.log_w - self.log_w.max())
        return w / w.sum()

    def _fantasise(self, mu_col):
        ybar = self._w() @ mu_col
        self.log_w = self.log_w + self.noise.standard_logpdf((ybar - mu_col) / self.sigma) - np.log(self.sigma)

    def scores(self):
        w = self._w()
        gain = eig_nested(self.T, self.mu, self.sigma, likelihood=self.likelihood, nu=self.nu, weights=w,
                          seed=self.seed, **self.options)
        variance = w @ (self.mu - w @ self.mu) ** 2
        return gain, variance

    def observe(self, j):
        self._fantasise(self.mu[:, j])
