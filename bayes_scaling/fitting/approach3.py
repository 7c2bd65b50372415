"""Chinchilla's Approach 3 point fit (Hoffmann et al. 2022, §3.3 and Appendix D.2), as Epoch AI reran it.

The law, in log space, with parameters ``(e, a, b, alpha, beta) = (log E, log A, log B, alpha, beta)``:

    log L_hat(N, D) = LSE(a - alpha log N, b - beta log D, e)

and the fit minimises the Huber loss of the log-loss residuals,

    J(theta) = sum_i w_i H_delta(r_i),   r_i = log L_hat(N_i, D_i) - log L_i,
    H_delta(r) = r^2 / 2 if |r| <= delta else delta (|r| - delta / 2),   delta = 1e-3,

(w_i = 1; a bootstrap resample gives w_i = how often row i was drawn) by L-BFGS from every point of the
paper's grid of 4,500 starts, alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
a, b in {0, 5, ..., 25}, keeping the lowest J.

Here every start runs at once: one L-BFGS per start, written as a small state machine that costs one
evaluation of (J, grad J) per iteration, ``vmap``-ed over the starts inside one ``lax.while_loop``.
(optax's L-BFGS with its zoom line search, vmapped the same way, took 178 s for 200 iterations of the
grid here: every start waits on the slowest line search.) Each start runs in coordinates centred on
the data,

    a_c = a - alpha mean(log N),   b_c = b - beta mean(log D),

a linear change of variables that leaves J, the starts and the optimum unchanged but removes most of the
a-alpha and b-beta correlation that slows L-BFGS.

Screening. The grid runs in two stages: every start gets SCREEN_EVALS = 30 evaluations, then the
REFINE = 128 starts with the lowest J continue to convergence (max |grad J| <= 1e-10, or no decrease
left above round-off; at most MAX_ITER evaluations). Good starts need 130-600 evaluations to converge
but separate early: on Chinchilla's data ~1,300 of the 4,500 starts end at the global optimum, the
rest at local optima ~10x higher, and the 128 lowest after 20 evaluations all belong to the first
group. A start stopped by the screen keeps the J it reached (an upper bound on its own optimum) and
counts as not converged. ``experiments/bench_fit.py`` checks the result against SciPy.

Bootstrap. A resample is J with integer weights, so all resamples run together, each from the
full-data optimum z*, in coordinates whitened by the full data's Hessian at z* (v = L^T z with
H = L L^T): the first step of every resample is then Newton's step for the full data's curvature, and
the median refit needs ~20 evaluations instead of ~45.

Reference. ``scipy_approach3`` runs the same grid with ``scipy.optimize.minimize(method="L-BFGS-B")``
at SciPy's default settings and finite-difference gradients, Epoch AI's code path
(github epoch-research/analyzing-chinchilla); ``scipy_bootstrap_approach3`` refits each resample with
BFGS and the exact gradient, as Epoch's bootstrap did.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling._jax_setup import configure

PARAM_ORDER = ("e", "a", "b", "alpha", "beta")
"""Order of the log-space parameter vector used by every function here."""

HUBER_DELTA = 1e-3

# L-BFGS settings (per start).
MEMORY = 10  # pairs (s, y) kept, as scipy's L-BFGS-B
MAX_ITER = 1000  # evaluations of (J, grad J) per start; a start that needs more is "not converged"
SCREEN_EVALS = 30  # grid fit: every start gets this many evaluations ...
REFINE = 128  # ... then the REFINE lowest objectives continue to convergence
CHUNK = 50  # starts iterated together: their arrays stay in cache, and a chunk waits only on its own slowest
GTOL = 1e-10  # converged when max |dJ/dtheta| <= GTOL (J is ~1e-3 at the optimum on Chinchilla's data)
ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search
MIN_STEP = 1e-12  # a line search that shrinks the step below this has hit round-off: stop there


# --- the objective ------------------------------------------------------------------------------
def huber(r, delta=HUBER_DELTA):
    """H_delta(r) = r^2/2 for |r| <= delta, delta (|r| - delta/2) beyond: quadratic near 0, linear far."""
    abs_r = jnp.abs(r)
    return jnp.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))


def predict_log_loss(params, log_N, log_D):
    """log L_hat = LSE(a - alpha log N, b - beta log D, e), for ``params = (e, a, b, alpha, beta)``."""
    e, a, b, alpha, beta = (params[..., i, None] for i in range(5))
    terms = jnp.stack(jnp.broadcast_arrays(a - alpha * log_N, b - beta * log_D, e))
    return jax.scipy.special.logsumexp(terms, axis=0)


def huber_objective(params, log_N, log_D, log_L, delta=HUBER_DELTA, weights=None):
    """J(params) = sum_i w_i H_delta(LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i).

    ``params`` is ``(e, a, b, alpha, beta)`` (leading batch axes allowed); ``weights`` defaults to 1.
    """
    h = huber(predict_log_loss(jnp.asarray(params), log_N, log_D) - log_L, delta)
    return jnp.sum(h if weights is None else weights * h, axis=-1)


def _value_and_grad(z, data):
    """(J, grad J) in centred coordinates z = (e, a_c, b_c, alpha, beta), written out by hand.

    With u_i = a_c - alpha x_i - e, v_i = b_c - beta y_i - e (x, y the centred log N, log D):
    log L_hat_i = e + log(1 + exp(u_i) + exp(v_i)) -- two exponentials and one log per run, the cost
    that bounds the whole fit. With p_i = (exp u_i, exp v_i, 1) / (1 + exp u_i + exp v_i) and
    psi_i = w_i clip(r_i, -delta, delta) = w_i H'(r_i):
    dJ/de = sum psi p_E, dJ/da_c = sum psi p_A, dJ/db_c = sum psi p_B,
    dJ/dalpha = -sum psi p_A x, dJ/dbeta = -sum psi p_B y.
    exp overflows (to inf) only where L_hat/E > 1e308; the line search rejects such points.
    """
    x, y, log_L, weights, delta = (data[k] for k in ("x", "y", "log_L", "weights", "delta"))
    e, a_c, b_c, alpha, beta = z
    exp_u = jnp.exp(a_c - alpha * x - e)
    exp_v = jnp.exp(b_c - beta * y - e)
    total = 1.0 + exp_u + exp_v
    r = e + jnp.log(total) - log_L
    psi = weights * jnp.clip(r, -delta, delta) / total
    g_a, g_b = psi * exp_u, psi * exp_v
    grad = jnp.stack([jnp.sum(psi), jnp.sum(g_a), jnp.sum(g_b), -jnp.sum(g_a * x), -jnp.sum(g_b * y)])
    return jnp.sum(weights * huber(r, delta)), grad


def _objective(v, data):
    """(J, grad J) in the optimiser's coordinates v, with z = basis v (basis = I for the grid fit)."""
    value, grad = _value_and_grad(data["basis"] @ v, data)
    return value, data["basis"].T @ grad


# --- a compact L-BFGS, one (J, grad J) evaluation per iteration ----------------------------------
def _two_loop(g, S, Y, rho, newest, stored):
    """H g by the L-BFGS two-loop recursion over the ``stored`` newest pairs of the ring buffer."""
    m = S.shape[0]

    def backward(j, carry):
        q, alphas = carry
        i = (newest - j) % m
        alpha = jnp.where(j < stored, rho[i] * (S[i] @ q), 0.0)
        return q - alpha * Y[i], alphas.at[i].set(alpha)

    q, alphas = jax.lax.fori_loop(0, m, backward, (g, jnp.zeros(m)))
    i = newest % m
    gamma = jnp.where(stored > 0, (S[i] @ Y[i]) / (Y[i] @ Y[i]), 1.0)

    def forward(j, r):
        i = (newest - (m - 1 - j)) % m
        beta = rho[i] * (Y[i] @ r)
        return jnp.where(m - 1 - j < stored, r + (alphas[i] - beta) * S[i], r)

    return jax.lax.fori_loop(0, m, forward, gamma * q)


def _lbfgs_init(z0, data):
    f, g = _objective(z0, data)
    n = z0.shape[0]
    converged = jnp.max(jnp.abs(g)) <= GTOL
    return dict(
        z=z0, f=f, g=g, d=-g, t=jnp.minimum(1.0, 1.0 / jnp.max(jnp.abs(g))),
        S=jnp.zeros((MEMORY, n)), Y=jnp.zeros((MEMORY, n)), rho=jnp.zeros(MEMORY),
        newest=jnp.array(-1), stored=jnp.array(0), evals=jnp.array(1),
        done=~jnp.isfinite(f) | converged, converged=converged,
    )


def _lbfgs_step(state, data, max_evals):
    """One trial point z + t d. Sufficient decrease: accept, store (s, y), new direction. Otherwise
    shrink t by safeguarded quadratic interpolation and try again next iteration. A start is done when
    max |grad| <= GTOL, or when no decrease is left above round-off (the Armijo test passes with
    J(z + t d) >= J(z), or the step has shrunk below MIN_STEP)."""
    z, f, g, d, t = state["z"], state["f"], state["g"], state["d"], state["t"]
    z_new = z + t * d
    f_new, g_new = _objective(z_new, data)
    slope = g @ d
    sufficient = jnp.isfinite(f_new) & (f_new <= f + ARMIJO * t * slope)
    accept = sufficient & (f_new < f)
    at_round_off = sufficient & (f_new >= f)  # the decrease asked for is below J's resolution

    # accepted: update memory (only with positive curvature) and the search direction
    s, y = z_new - z, g_new - g
    sy = s @ y
    store = accept & (sy > 1e-300)
    newest = jnp.where(store, (state["newest"] + 1) % MEMORY, state["newest"])
    S = jnp.where(store, state["S"].at[newest].set(s), state["S"])
    Y = jnp.where(store, state["Y"].at[newest].set(y), state["Y"])
    rho = jnp.where(store, state["rho"].at[newest].set(1.0 / sy), state["rho"])
    stored = jnp.where(store, jnp.minimum(state["stored"] + 1, MEMORY), state["stored"])
    d_new = -_two_loop(g_new, S, Y, rho, newest, stored)
    descent = d_new @ g_new < 0
    d_new = jnp.where(descent, d_new, -g_new)
    t_new = jnp.where(descent, 1.0, jnp.minimum(1.0, 1.0 / jnp.max(jnp.abs(g_new))))
    stored = jnp.where(accept & ~descent, 0, stored)  # a non-descent direction resets the memory

    # rejected: minimiser of the quadratic through f, slope and f_new, kept within [t/10, t/2]
    t_quad = -slope * t * t / (2.0 * (f_new - f - slope * t))
    t_back = jnp.where(jnp.isfinite(f_new), jnp.clip(t_quad, 0.1 * t, 0.5 * t), 0.1 * t)

    converged = (accept & (jnp.max(jnp.abs(g_new)) <= GTOL)) | at_round_off | (~accept & (t_back < MIN_STEP))
    new = dict(
        z=jnp.where(accept, z_new, z), f=jnp.where(accept, f_new, f), g=jnp.where(accept, g_new, g),
        d=jnp.where(accept, d_new, d), t=jnp.where(accept, t_new, t_back),
        S=S, Y=Y, rho=rho, newest=newest, stored=stored, evals=state["evals"] + 1,
        done=converged, converged=converged,
    )
    frozen = state["done"] | (state["evals"] >= max_evals)
    return jax.tree.map(lambda old, upd: jnp.where(frozen, old, upd), state, new)


def _data_axes(data, weight_axis):
    """vmap axes of ``data``: all shared, except per-start weights (a bootstrap) on ``weight_axis``."""
    return {k: weight_axis if k == "weights" else None for k in data}


def _run(state, data, weight_axis, max_evals):
    """Iterate a batch of starts (leading axis of ``state``) until each is done or has used
    ``max_evals`` evaluations. The batch moves in lock step: cost = batch size x slowest start."""
    step = jax.vmap(_lbfgs_step, in_axes=(0, _data_axes(data, weight_axis), None))

    def cond(s):
        return jnp.any(~s["done"] & (s["evals"] < max_evals))

    return jax.lax.while_loop(cond, lambda s: step(s, data, max_evals), state)


def _run_chunked(state, data, weight_axis, max_evals, chunk):
    """``_run`` over consecutive chunks of ``chunk`` starts, one after another (``lax.map``): a chunk's
    arrays (chunk x runs) stay in cache, and each chunk stops as soon as its own starts are done."""
    n_chunks = state["f"].shape[0] // chunk
    split = jax.tree.map(lambda a: a.reshape((n_chunks, chunk) + a.shape[1:]), state)
    if weight_axis is None:
        out = jax.lax.map(lambda c: _run(c, data, None, max_evals), split)
    else:
        chunk_weights = data["weights"].reshape(n_chunks, chunk, -1)
        out = jax.lax.map(lambda c: _run(c[0], data | {"weights": c[1]}, 0, max_evals), (split, chunk_weights))
    return jax.tree.map(lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:]), out)


# --- centred coordinates --------------------------------------------------------------------------
def _to_centred(params, centre):
    c_n, c_d = centre
    e, a, b, alpha, beta = (params[..., i] for i in range(5))
    return jnp.stack([e, a - alpha * c_n, b - beta * c_d, alpha, beta], axis=-1)


def _from_centred(z, centre):
    c_n, c_d = centre
    e, a_c, b_c, alpha, beta = (z[..., i] for i in range(5))
    return jnp.stack([e, a_c + alpha * c_n, b_c + beta * c_d, alpha, beta], axis=-1)


def _pad_rows(a, multiple):
    """Repeat the last row so the leading axis is a multiple of ``multiple`` (static shapes)."""
    extra = -a.shape[0] % multiple
    return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)]) if extra else a


def _centred_data(log_N, log_D, log_L, weights, delta):
    centre = (jnp.mean(log_N), jnp.mean(log_D))
    data = dict(x=log_N - centre[0], y=log_D - centre[1], log_L=log_L, weights=weights, delta=delta, basis=jnp.eye(5))
    return centre, data


@jax.jit
def _grid_fit(starts, log_N, log_D, log_L, delta):
    """Every start screened for SCREEN_EVALS evaluations, the REFINE best carried on to convergence.

    Returns per start: params (e, a, b, alpha, beta), J, converged, evaluations used.
    """
    n_starts = starts.shape[0]
    chunk = min(CHUNK, n_starts)
    centre, data = _centred_data(log_N, log_D, log_L, jnp.ones_like(log_L), delta)
    z0 = _pad_rows(_to_centred(starts, centre), chunk)
    state = jax.vmap(_lbfgs_init, in_axes=(0, None))(z0, data)
    state = _run_chunked(state, data, None, SCREEN_EVALS, chunk)
    state = jax.tree.map(lambda a: a[:n_starts], state)
    best = jnp.argsort(jnp.where(jnp.isfinite(state["f"]), state["f"], jnp.inf))[: min(REFINE, n_starts)]
    refined = _run(jax.tree.map(lambda a: a[best], state), data, None, MAX_ITER)
    state = jax.tree.map(lambda a, b: a.at[best].set(b), state, refined)
    params = _from_centred(state["z"], centre)
    objective = huber_objective(params, log_N, log_D, log_L, delta)  # original coordinates
    return params, jnp.where(jnp.isfinite(objective), objective, jnp.inf), state["converged"], state["evals"]


@jax.jit
def _bootstrap_fit(start, weights, log_N, log_D, log_L, delta):
    """One L-BFGS per row of ``weights`` (a resample's multiplicities), all from ``start``."""
    n_resamples = weights.shape[0]
    chunk = min(CHUNK, n_resamples)
    weights = _pad_rows(weights, chunk)
    centre, data = _centred_data(log_N, log_D, log_L, weights, delta)
    z0 = _to_centred(start, centre)
    # Whiten with the full data's Hessian H = L L^T at the start: in v = L^T z every resample's first
    # step is Newton's step of the full data, and L-BFGS works on a near-identity Hessian.
    full_data = data | {"weights": jnp.ones_like(log_L)}
    hessian = jax.hessian(lambda z: _value_and_grad(z, full_data)[0])(z0)
    basis = jnp.linalg.inv(jnp.linalg.cholesky(hessian)).T
    data["basis"] = jnp.where(jnp.all(jnp.isfinite(basis)), basis, jnp.eye(5))  # not positive definite: none
    v0 = jnp.broadcast_to(jnp.linalg.solve(data["basis"], z0), (weights.shape[0], 5))
    state = jax.vmap(_lbfgs_init, in_axes=(0, _data_axes(data, 0)))(v0, data)
    state = _run_chunked(state, data, 0, MAX_ITER, chunk)
    params = _from_centred(state["z"] @ data["basis"].T, centre)[:n_resamples]
    objective = huber_objective(params, log_N, log_D, log_L, delta, weights[:n_resamples])
    return params, objective, state["converged"][:n_resamples], state["evals"][:n_resamples]


# --- public API -----------------------------------------------------------------------------------
def paper_grid() -> np.ndarray:
    """Hoffmann et al.'s 4,500 starts as rows (e, a, b, alpha, beta):
    alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}."""
    exps = np.arange(0.0, 2.5, 0.5)
    e_vals = np.arange(-1.0, 1.5, 0.5)
    coefs = np.arange(0.0, 30.0, 5.0)
    return np.array([(e, a, b, al, be) for al, be, e, a, b in itertools.product(exps, exps, e_vals, coefs, coefs)])


def natural_params(params) -> dict[str, float]:
    """(e, a, b, alpha, beta) -> {"E", "A", "B", "alpha", "beta"}."""
    e, a, b, alpha, beta = (float(v) for v in params)
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": alpha, "beta": beta}


@dataclass(frozen=True)
class Approach3Result:
    """The best of a multi-start Huber fit.

    theta: natural parameters E, A, B, alpha, beta at the lowest objective.
    params: the same as the log-space vector (e, a, b, alpha, beta).
    objective: J at theta. objectives, final_params: J and (e, a, b, alpha, beta) per start.
    n_converged: starts that met the optimiser's stopping rule (rather than its iteration cap).
    evaluations: total evaluations of J (with its gradient where analytic) over all starts.
    """

    theta: dict[str, float]
    params: np.ndarray
    objective: float
    objectives: np.ndarray
    final_params: np.ndarray
    n_converged: int
    evaluations: int


def _log_data(N, D, loss):
    arrays = [np.asarray(v, dtype=np.float64) for v in (N, D, loss)]
    if not (arrays[0].shape == arrays[1].shape == arrays[2].shape) or arrays[0].ndim != 1:
        raise ValueError("N, D and loss must be 1-D arrays of the same length")
    if not all(np.all(np.isfinite(v) & (v > 0)) for v in arrays):
        raise ValueError("N, D and loss must be finite and positive")
    return tuple(np.log(v) for v in arrays)


def _result(params, objectives, converged, evals) -> Approach3Result:
    params, objectives = np.asarray(params), np.asarray(objectives)
    best = int(np.argmin(objectives))
    return Approach3Result(
        theta=natural_params(params[best]), params=params[best], objective=float(objectives[best]),
        objectives=objectives, final_params=params, n_converged=int(np.sum(converged)),
        evaluations=int(np.sum(evals)),
    )


def fit_approach3(N, D, loss, *, delta: float = HUBER_DELTA, grid=None) -> Approach3Result:
    """Approach 3: minimise J (module docstring) by L-BFGS from each row of ``grid`` (default
    ``paper_grid()``, rows (e, a, b, alpha, beta)), all starts at once in JAX; keep the best."""
    configure()
    log_N, log_D, log_L = _log_data(N, D, loss)
    starts = paper_grid() if grid is None else np.asarray(grid, dtype=np.float64).reshape(-1, 5)
    return _result(*_grid_fit(jnp.asarray(starts), log_N, log_D, log_L, delta))


def resample_counts(n_runs: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples as multiplicities: row r counts how often each run was drawn when n_runs
    runs are drawn with replacement (numpy's default generator seeded with ``seed``)."""
    draws = np.random.default_rng(seed).integers(0, n_runs, size=(n_resamples, n_runs))
    counts = np.zeros((n_resamples, n_runs))
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1.0)
    return counts


def bootstrap_approach3(N, D, loss, *, n_resamples: int = 4000, seed: int = 0, delta: float = HUBER_DELTA,
                        start=None, progress=None) -> dict[str, np.ndarray]:
    """Epoch AI's bootstrap: resample the runs with replacement, refit Approach 3 on each resample.

    A resample is the weighted objective J_w with w_i = multiplicity of run i, so all resamples share
    one set of arrays and run together. Each refit starts from ``start`` ((e, a, b, alpha, beta);
    default: the full-data grid optimum): a resample moves the optimum a little, and the full 4,500-start
    grid lands on the same optimum as this single start (``experiments/bench_fit.py`` checks it on a
    sample of resamples). Returns arrays over resamples: E, A, B, alpha, beta, objective, converged.

    ``progress(done, total)``, if given, is called as slices of the resamples finish: the refits then
    run in about 20 calls of one program (slices of whole CHUNKs, the last padded to the same shape),
    each resample's refit the same as in one call.
    """
    configure()
    log_N, log_D, log_L = _log_data(N, D, loss)
    if start is None:
        start = fit_approach3(N, D, loss, delta=delta).params
    weights = resample_counts(len(log_L), n_resamples, seed)
    start = jnp.asarray(start, dtype=jnp.float64)
    if progress is None:
        params, objective, converged, _ = _bootstrap_fit(start, jnp.asarray(weights), log_N, log_D, log_L, delta)
    else:
        size = CHUNK * max(1, -(-n_resamples // (20 * CHUNK)))  # whole chunks, about 20 slices
        parts = []
        for lo in range(0, n_resamples, size):
            piece = jnp.asarray(weights[lo:lo + size])
            out = _bootstrap_fit(start, _pad_rows(piece, size), log_N, log_D, log_L, delta)
            parts.append([np.asarray(a)[: piece.shape[0]] for a in out[:3]])
            progress(min(lo + size, n_resamples), n_resamples)
        params, objective, converged = (np.concatenate(p) for p in zip(*parts))
    params = np.asarray(params)
    return {
        "E": np.exp(params[:, 0]), "A": np.exp(params[:, 1]), "B": np.exp(params[:, 2]),
        "alpha": params[:, 3], "beta": params[:, 4],
        "objective": np.asarray(objective), "converged": np.asarray(converged),
    }


# --- the SciPy reference (Epoch AI's code path) ----------------------------------------------------
def _numpy_value_and_grad(params, log_N, log_D, log_L, weights, delta):
    """(J, grad J) in NumPy, original coordinates (e, a, b, alpha, beta); log-sum-exp computed stably."""
    e, a, b, alpha, beta = params
    t_a, t_b = a - alpha * log_N, b - beta * log_D
    m = np.maximum(np.maximum(t_a, t_b), e)
    p_a, p_b, p_e = np.exp(t_a - m), np.exp(t_b - m), np.exp(e - m)
    total = p_a + p_b + p_e
    r = m + np.log(total) - log_L
    abs_r = np.abs(r)
    value = np.sum(weights * np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta)))
    psi = weights * np.clip(r, -delta, delta) / total
    grad = np.array([np.sum(psi * p_e), np.sum(psi * p_a), np.sum(psi * p_b),
                     -np.sum(psi * p_a * log_N), -np.sum(psi * p_b * log_D)])
    return value, grad


def _numpy_objective(params, log_N, log_D, log_L, weights, delta):
    """J alone (what L-BFGS-B differentiates numerically in Epoch's code path)."""
    e, a, b, alpha, beta = params
    r = np.logaddexp(np.logaddexp(a - alpha * log_N, b - beta * log_D), e) - log_L
    abs_r = np.abs(r)
    return np.sum(weights * np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta)))


def scipy_approach3(N, D, loss, *, delta: float = HUBER_DELTA, grid=None) -> Approach3Result:
    """The reference grid fit: ``scipy.optimize.minimize(J, start, method="L-BFGS-B")`` from every grid
    start, one after another, at SciPy's default settings (gradient by finite differences, ftol 2.2e-9,
    gtol 1e-5, memory 10) as in Epoch AI's notebook; the lowest J among successful fits wins."""
    from scipy.optimize import minimize

    log_N, log_D, log_L = _log_data(N, D, loss)
    starts = paper_grid() if grid is None else np.asarray(grid, dtype=np.float64).reshape(-1, 5)
    args = (log_N, log_D, log_L, np.ones_like(log_L), delta)
    fits = [minimize(_numpy_objective, x0, args=args, method="L-BFGS-B") for x0 in starts]
    objectives = np.array([fit.fun if fit.success else np.inf for fit in fits])
    return _result(
        np.array([fit.x for fit in fits]), objectives, [fit.success for fit in fits], [fit.nfev for fit in fits]
    )


def scipy_bootstrap_approach3(N, D, loss, *, n_resamples: int = 4000, seed: int = 0, delta: float = HUBER_DELTA,
                              start=None) -> dict[str, np.ndarray]:
    """The SciPy loop for ``bootstrap_approach3`` (same resamples, same start): one
    ``scipy.optimize.minimize(J_w, start, jac=grad J_w, method="BFGS")`` per resample, SciPy defaults,
    as Epoch AI's bootstrap ran it (BFGS with an exact gradient)."""
    from scipy.optimize import minimize

    log_N, log_D, log_L = _log_data(N, D, loss)
    if start is None:
        start = scipy_approach3(N, D, loss, delta=delta).params
    fits = [
        minimize(_numpy_value_and_grad, start, args=(log_N, log_D, log_L, w, delta), jac=True, method="BFGS")
        for w in resample_counts(len(log_L), n_resamples, seed)
    ]
    params = np.array([fit.x for fit in fits])
    return {
        "E": np.exp(params[:, 0]), "A": np.exp(params[:, 1]), "B": np.exp(params[:, 2]),
        "alpha": params[:, 3], "beta": params[:, 4],
        "objective": np.array([fit.fun for fit in fits]), "converged": np.array([fit.success for fit in fits]),
    }
