"""One NUTS driver for every model: the Laplace start, padded shapes, the compiled-program cache
and progress, for any NumPyro model function and its starting point.

``sample(model, init, data, description=..., settings=...)`` runs NumPyro's ``NUTS`` kernel (it
does every step; this module only drives it) on ``model(*data)``:

* the chains start at ``init`` (unconstrained site values, one row per chain; ``jitter`` makes them
  from one point) with a dense inverse mass matrix from the Laplace approximation at the posterior
  mode near each start (``newton_laplace``): from the identity, the first warm-up windows must take
  steps sized for the narrowest direction across the widest, at several times the leapfrog steps
  of the rest of the run (experiments/bench_fit.py);
* the mass matrix is then adapted in NumPyro's windows where the warm-up is long enough
  (``MASS_ADAPTATION_MIN_WARMUP``), without NumPyro's shrinkage towards 1e-3 I unless
  ``regularize_mass`` (a model with more coordinates than a first window has draws needs it);
* the programs are compiled once per (``description``, data shapes, settings) and kept in the
  process (``_SAMPLERS``) and on disk (``sampler_cache``), so a refit of new data of the same shape
  neither traces nor compiles: callers pad their rows to a few shapes (``padded_capacity``) and
  mask the padding in the model. Where they are compiled, they compile in worker threads and a run
  waits only for those it uses (``Sampler.program``: a Laplace fit needs ``potential`` and
  ``finish``, not ``advance``);
* ``settings.progress`` shows a progress bar over all chains' transitions.

``laplace=True`` draws from the Gaussian at the end of each chain's Newton steps towards the mode
instead (milliseconds; where they start and how many: ``LAPLACE_START``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from numpyro.infer import NUTS
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayes_scaling._jax_setup import CompiledPrograms, configure
from bayes_scaling.fitting import importance, sampler_cache
from bayes_scaling.fitting.settings import TARGET_ACCEPT, SamplerSettings

NEWTON_STEPS = 8  # towards the mode, for the Laplace mass matrix
MIN_CURVATURE = 1e-4  # floor on the Hessian's |eigenvalues| (standard deviations <= 100 latent units)
# Shorter warm-ups keep the Laplace mass matrix: NumPyro's windows would replace it by the covariance
# of a handful of draws (unregularised), which can freeze a chain.
MASS_ADAPTATION_MIN_WARMUP = 150
JITTER = 0.05  # sd of the per-chain jitter of a starting point, in unconstrained units
# Where a Laplace fit (``laplace=True``) looks for its mode: "jittered" starts each chain's Newton
# steps at its jittered point and takes NEWTON_STEPS of them, which on the bundled Chinchilla data
# leaves one or two of the four chains of each calibration refit 20-120 nats of potential short of the
# mode, their draws centred away from it; "mode" starts every chain at the unjittered point and takes
# up to LAPLACE_NEWTON_STEPS (each refit then reaches the mode in 8-12 calls). Judged by
# bench_extrapolation.py's eighteenth run ("laplace-mode") and not adopted: the default's calibration
# was developed on the jittered refits, and at the mode it fails the run's rule (Marin over-covers, the
# drifting simulation's drift goes unlearned where a skewed fold posterior's mode is not its mean);
# docs/extrapolation.md, "The calibration's Laplace refits".
LAPLACE_STARTS = ("mode", "jittered")
LAPLACE_START = "jittered"
LAPLACE_NEWTON_STEPS = 30
# What a Laplace fit draws: None, the Gaussian itself; "psis": the Gaussian at the mode (Newton from the
# unjittered point, as LAPLACE_START "mode") as the proposal of adaptive, Pareto-smoothed importance
# sampling of the exact posterior (``importance.importance_laplace``), resampled to equal weights; the
# weights' Pareto k-hat goes into ``Draws.importance_khat``. On 63 development folds its held-out
# predictive mean is within a median 0.0009 (at most 0.0063) of NUTS refits' and its spread 0.88-1.01x
# theirs (experiments/laplace_psis_check.py). Not the setting of a plain Laplace fit; the extrapolating
# model's calibration refits use it by default (``nuts.DEFAULT_REFITS``, since bench_extrapolation.py's
# twenty-fifth run; docs/extrapolation.md, "Faithful refits" and "Twenty-fifth run").
LAPLACE_CORRECTIONS = (None, "psis")
LAPLACE_CORRECTION = None
# ``potential`` and ``start`` run for milliseconds per fit: compiled without LLVM's optimisations,
# which shortens a first call's compile.
_RUN_ONCE = {"xla_backend_optimization_level": 0}
# XLA options of each program: potential, start, advance, finish
PROGRAM_OPTIONS = (_RUN_ONCE, _RUN_ONCE, None, None)
START_MASSES = ("laplace", "diagonal", "identity", "pilot")  # ``sample``'s starting inverse mass matrices
POOLED_STEP_SIZES = ("median", "min")  # ``sample``'s ``pool_step_size``: the chains' statistic capping each one's
MAX_TREE_DEPTH = 10  # NumPyro's default: at most 2^10 - 1 leapfrog steps per transition
EXTRA_FIELDS = ("diverging", "num_steps", "energy", "potential_energy", "accept_prob")
_SAMPLERS = CompiledPrograms(limit=32)  # kept per key; at most 32 (the least recently used dropped)


@dataclass
class Draws:
    """What ``sample`` returns: ``samples`` (site -> (chains, draws, ...), sample and deterministic
    sites in constrained values), ``extra`` (sampler statistics, None for a Laplace run),
    ``loglik`` (the observed site ``log_loss``'s pointwise log-likelihood, (chains, draws, ...)),
    mean leapfrog steps per warm-up iteration, and the sampling wall time; ``latent``: the kept
    draws in NUTS's coordinates u = z / ``latent_scale`` (site -> (chains, draws, ...); None for a
    Laplace run), what ``warm_start`` reads; ``final``: reads each chain's adapted step size and
    inverse mass matrix from the run's last state on request (``adapted``; None for a Laplace run);
    ``importance_khat``: a Laplace run's importance weights' Pareto k-hat (``LAPLACE_CORRECTION``
    "psis"; else None); ``chain_gap``: a Laplace run's spread of the potential over its chains' Newton end
    points, max - min in nats (0 where every chain reached one mode; else None)."""

    samples: dict
    extra: dict | None
    loglik: np.ndarray
    warmup_steps: float
    seconds: float
    latent: dict | None = None
    latent_scale: float = 1.0
    final: Callable[[], dict] | None = None
    importance_khat: float | None = None
    chain_gap: float | None = None


def warm_start(draws: Draws) -> tuple[dict, np.ndarray]:
    """A later run's start from a finished NUTS run of the same model (its latent sites' shapes
    unchanged): each chain's last draw (``sample``'s ``init``, in the model's unconstrained
    coordinates) and the covariance of all chains' kept draws in NUTS's coordinates, shrunk as
    NumPyro shrinks an adapted one (n / (n + 5) C + 1e-3 * 5 / (n + 5) I, n the draws): a
    ``start_mass`` matrix, in place of the warm-up's adaptation of it."""
    if draws.latent is None:
        raise ValueError("warm_start needs a NUTS run's draws (a Laplace run keeps none)")
    sites = sorted(draws.latent)
    chains, kept = np.shape(draws.latent[sites[0]])[:2]
    init = {k: np.asarray(draws.latent[k][:, -1], np.float64) * draws.latent_scale for k in sites}
    x = np.concatenate([np.asarray(draws.latent[k], np.float64).reshape(chains * kept, -1) for k in sites], axis=1)
    n = x.shape[0]
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return init, n / (n + 5.0) * cov + 1e-3 * 5.0 / (n + 5.0) * np.eye(cov.shape[0])


def adapted(draws: Draws) -> tuple[np.ndarray, np.ndarray]:
    """What NUTS's warm-up of a finished run ended with, per chain: the step size (chains,) and the
    inverse mass matrix (chains, n, n) in NUTS's coordinates u, read from the run's last state (the
    values its draws were taken with): ``sample``'s ``start_step_size`` and ``start_mass`` for a
    later run of the same model."""
    if draws.final is None:
        raise ValueError("adapted needs a NUTS run's draws (a Laplace run keeps none)")
    final = draws.final()
    return final["step_size"], final["inverse_mass"]


def sample(model: Callable, init: dict, data: tuple, *, description: tuple | str, settings: SamplerSettings,
           laplace: bool = False, regularize_mass: bool = False, adapt_mass: bool = True,
           latent_scale: float = 1.0, start_mass: str | np.ndarray = "laplace",
           warmup_tree_depth: int = MAX_TREE_DEPTH, start_step_size: float | np.ndarray | None = None,
           adapt_step_size: bool = True, pool_step_size: str | None = None) -> Draws:
    """NUTS (or ``laplace``) on ``model(*data)`` from ``init`` (site -> (chains, ...) unconstrained
    values). ``description``: everything the model function depends on besides the data's shapes
    (its settings, priors at full precision, ...): the key of its compiled programs.
    ``regularize_mass``: NumPyro's shrinkage of the adapted mass matrix; ``adapt_mass=False`` keeps
    the Laplace mass matrix through the warm-up (only the step size adapts). ``latent_scale`` c:
    NUTS moves in u = z / c (z the model's unconstrained coordinates), so NumPyro's shrinkage of
    the adapted mass matrix towards 1e-3 I is 1e-3 c^2 I in z: small against posterior directions
    narrower than its 0.03 (c = 1: the model's own coordinates). ``start_mass``: the inverse mass
    matrix the warm-up starts from (``START_MASSES``): "laplace" (dense, the default), "diagonal"
    (its diagonal only), "identity" (NumPyro's own start, in NUTS's coordinates u), "pilot" (the
    covariance of a variational pilot, ``fitting.pilot``, the chains then starting at draws from it
    instead of ``init``, which only places the pilot's start), or a matrix
    (n, n) or one per chain (chains, n, n) in NUTS's coordinates u (a previous run's: ``warm_start``;
    an input of the compiled ``start``, so no new compile).
    ``warmup_tree_depth``: NUTS's largest tree depth during the warm-up (NumPyro's ``max_tree_depth``
    tuple; the draws keep ``MAX_TREE_DEPTH``). ``start_step_size``: the step size the warm-up starts
    from, one value or one per chain (a previous run's: ``adapted``; an input of the compiled
    ``start``); None: NumPyro's 1. ``adapt_step_size=False`` keeps it through the warm-up (NumPyro's
    flag), so a warm-up without mass-matrix adaptation only moves the chains. ``pool_step_size``
    ("median" or "min"; None: each chain keeps its own): at the end of the warm-up each chain's step
    size is capped at the chains' median (or smallest) adapted step size, on the host between two
    ``advance`` calls (the run is then cut into chunks that end with the warm-up)."""
    if isinstance(start_mass, str):
        if start_mass not in START_MASSES:
            raise ValueError(f"start_mass must be one of {', '.join(START_MASSES)} or a matrix, got {start_mass!r}")
    else:
        start_mass = np.asarray(start_mass, np.float64)
        if start_mass.ndim not in (2, 3) or start_mass.shape[-1] != start_mass.shape[-2] \
                or not np.isfinite(start_mass).all():
            raise ValueError(f"start_mass: a matrix must be finite, (n, n) or (chains, n, n), got shape {start_mass.shape}")
    if isinstance(warmup_tree_depth, bool) or not isinstance(warmup_tree_depth, int) or warmup_tree_depth < 1:
        raise ValueError(f"warmup_tree_depth must be a positive whole number, got {warmup_tree_depth!r}")
    if pool_step_size is not None and pool_step_size not in POOLED_STEP_SIZES:
        raise ValueError(f"pool_step_size must be None or one of {', '.join(POOLED_STEP_SIZES)}, got {pool_step_size!r}")
    if start_step_size is not None:
        start_step_size = np.broadcast_to(np.asarray(start_step_size, np.float64), (settings.chains,)).copy()
        if not (np.isfinite(start_step_size).all() and (start_step_size > 0).all()):
            raise ValueError(f"start_step_size must be positive and finite, got {start_step_size}")
    configure()
    data = tuple(np.asarray(a) for a in data)
    if isinstance(start_mass, str) and start_mass == "pilot" and not laplace:
        from bayes_scaling.fitting import pilot  # imports optax, which no other start needs

        init, start_mass = pilot.pilot_start(model, init, data, description=description, chains=settings.chains,
                                             seed=settings.seed, latent_scale=latent_scale)
    sampler = compiled_sampler(model, description, data, settings.chains, settings.warmup, settings.draws,
                               settings.target_accept, regularize_mass, adapt_mass, latent_scale, warmup_tree_depth,
                               start_step_size is not None, bool(adapt_step_size), pool_step_size)
    start = time.perf_counter()
    if laplace:
        samples, extra, loglik = sampler.laplace(settings.seed, init, data)
    else:
        samples, extra, loglik = sampler.run(settings.seed, init, data, settings.progress, start_mass, start_step_size)
    return Draws(samples, extra, np.asarray(loglik), sampler.last_warmup_steps if not laplace else float("nan"),
                 time.perf_counter() - start, None if laplace else sampler.last_latent, sampler.latent_scale,
                 None if laplace else sampler.last_final, sampler.last_khat if laplace else None,
                 sampler.last_chain_gap if laplace else None)


def jitter(point: dict, chains: int, seed: int, scale: float | None = None) -> dict:
    """Per-chain starting points: ``point`` (site -> unconstrained value) plus N(0, scale^2) per
    chain and element (``scale`` default ``JITTER``; 0: every chain at the point), drawn in the
    point's site order from ``default_rng(seed)``. NumPy arrays: a JAX array here would compile a
    program of its own in every process."""
    scale = JITTER if scale is None else scale
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in point.items():
        v = np.asarray(v, np.float64)
        out[k] = v + scale * rng.standard_normal((chains, *v.shape))
    return out


def laplace_start() -> str:
    """``LAPLACE_START``, checked; "mode" wherever ``LAPLACE_CORRECTION`` is "psis"."""
    if LAPLACE_START not in LAPLACE_STARTS:
        raise ValueError(f"sampler.LAPLACE_START must be one of {', '.join(map(repr, LAPLACE_STARTS))}, got {LAPLACE_START!r}")
    return "mode" if laplace_correction() == "psis" else LAPLACE_START


@contextlib.contextmanager
def laplace_correction_set(correction: str | None):
    """``LAPLACE_CORRECTION`` set to ``correction`` while the block runs (one fit's calibration refits:
    ``fit_nuts(refits=...)``); restored after it, also on error."""
    global LAPLACE_CORRECTION
    if correction not in LAPLACE_CORRECTIONS:
        raise ValueError(f"Laplace correction must be one of {', '.join(map(repr, LAPLACE_CORRECTIONS))}, got {correction!r}")
    before, LAPLACE_CORRECTION = LAPLACE_CORRECTION, correction
    try:
        yield
    finally:
        LAPLACE_CORRECTION = before


def laplace_correction() -> str | None:
    """``LAPLACE_CORRECTION``, checked."""
    if LAPLACE_CORRECTION not in LAPLACE_CORRECTIONS:
        raise ValueError(f"sampler.LAPLACE_CORRECTION must be one of {', '.join(map(repr, LAPLACE_CORRECTIONS))}, "
                         f"got {LAPLACE_CORRECTION!r}")
    return LAPLACE_CORRECTION


def padded_capacity(n: int, smallest: int = 64) -> int:
    """The row count a sampler is compiled for: the next power of two >= n (at least ``smallest``),
    so tables of similar size share compiled programs (in a process and, through the caches, across
    processes); the padding costs little next to NUTS's own work."""
    return max(smallest, 1 << (n - 1).bit_length())


def pad_rows(columns, capacity: int, fill=1.0) -> list[np.ndarray]:
    """Each column (length n) padded to ``capacity`` with ``fill`` (a value or one per column)."""
    fills = fill if isinstance(fill, (list, tuple)) else [fill] * len(columns)
    out = []
    for column, value in zip(columns, fills):
        column = np.asarray(column)
        pad = capacity - len(column)
        if pad < 0:
            raise ValueError(f"{len(column)} observations exceed the capacity {capacity}")
        out.append(np.concatenate([column, np.full(pad, value, dtype=column.dtype)]))
    return out


def row_mask(n: int, capacity: int) -> np.ndarray:
    """True for the n real rows, False for the padding."""
    return np.arange(capacity) < n


def compiled_sampler(model: Callable, description, data: tuple, chains: int, warmup: int, draws: int,
                     target_accept: float = TARGET_ACCEPT, regularize_mass: bool = False,
                     adapt_mass: bool = True, latent_scale: float = 1.0,
                     warmup_tree_depth: int = MAX_TREE_DEPTH, given_step_size: bool = False,
                     adapt_step_size: bool = True, pool_step_size: str | None = None) -> Sampler:
    """The cached sampler for this model description, data shapes, run length and settings
    (``given_step_size``: ``start`` takes each chain's starting step size)."""
    shapes = tuple((np.shape(a), np.asarray(a).dtype.str) for a in data)
    key = (repr(description), shapes, chains, warmup, draws, float(target_accept), regularize_mass, adapt_mass,
           float(latent_scale), warmup_tree_depth, given_step_size, adapt_step_size, pool_step_size)
    return _SAMPLERS.get_or_build(key, lambda: Sampler(
        model, repr(description), data, chains, warmup, draws, target_accept, regularize_mass, adapt_mass,
        latent_scale, warmup_tree_depth, given_step_size, adapt_step_size, pool_step_size))


class Sampler:
    """NumPyro's NUTS kernel, driven by four programs compiled once per model and shape.

    * ``potential``: the potential energy and its gradient at a batch of points per chain, for the
      Laplace inverse mass matrix that ``newton_laplace`` computes on the host;
    * ``start``: per chain, ``NUTS.init`` at the chain's starting point with that mass matrix, the
      chains' keys split from the seed inside it;
    * ``advance``: ``chunk`` NUTS transitions (``lax.scan``) from a state, returning the new state
      and the draws; called until warm-up and sampling are done, updating the progress bar between
      calls (a host callback inside the program would keep it from being exported);
    * ``finish``: the kept draws in constrained values and their pointwise log-likelihood.

    Chains run under ``shard_map`` on separate host devices (several per device if there are more
    chains than devices). The programs come from ``sampler_cache``: traced and compiled once per
    process, and once per machine on disk (``jax.export``, then the executables themselves).
    """

    def __init__(self, model, description: str, data: tuple, chains: int, warmup: int, draws: int,
                 target_accept: float = TARGET_ACCEPT, regularize_mass: bool = False, adapt_mass: bool = True,
                 latent_scale: float = 1.0, warmup_tree_depth: int = MAX_TREE_DEPTH, given_step_size: bool = False,
                 adapt_step_size: bool = True, pool_step_size: str | None = None):
        self.model, self.description, self.latent_scale = model, description, float(latent_scale)
        self.warmup_tree_depth = warmup_tree_depth
        self.given_step_size, self.adapt_step_size = given_step_size, adapt_step_size
        self.pool_step_size = pool_step_size
        self.adapt_mass = adapt_mass and warmup >= MASS_ADAPTATION_MIN_WARMUP
        self.data_avals = tuple((np.shape(a), np.asarray(a).dtype) for a in data)
        self.target_accept, self.regularize_mass = target_accept, regularize_mass
        self.num_chains, self.num_warmup, self.num_draws = chains, warmup, draws
        self.total = warmup + draws
        # (pooled step sizes: chunks that end with the warm-up, where the step sizes are capped)
        self.chunk = _chunk_length(self.total) if pool_step_size is None else _chunk_length(self.total, warmup)
        self.calls = self.total // self.chunk
        self._programs = {}  # latent site shapes -> (potential, start, advance, finish)
        self._traced = {}  # latent site shapes -> their ``_Programs`` (the state's structure)
        self._descriptions = {}  # latent site shapes -> the programs' cache description
        self.last_warmup_steps = float("nan")
        self.last_latent = None  # the last run's kept draws in NUTS's coordinates
        self.last_final = None  # reads the last run's adapted step size and mass matrix (``adapted``)
        self.last_khat = None  # the last Laplace run's importance weights' Pareto k-hat (LAPLACE_CORRECTION)
        self.last_chain_gap = None  # the last Laplace run's potential spread over its chains' end points (nats)

    def _compiled(self, sites: tuple) -> tuple[Future, ...]:
        """The four programs for latent ``sites`` (((name, shape), ...) in sorted order), as futures:
        on a first call they compile in worker threads after this returns, so a caller waits only for
        the programs it needs (``program``): a Laplace fit needs ``potential`` and ``finish``, and
        runs while ``advance``, the largest, still compiles."""
        if sites in self._programs:
            return self._programs[sites]
        num_chains = self.num_chains
        devices = jax.devices()[: _devices_for(num_chains, jax.device_count())]
        mesh = Mesh(np.array(devices), ("chain",))
        chains, shared = NamedSharding(mesh, P("chain")), NamedSharding(mesh, P())
        self._shared = shared

        def per_chain(shape, dtype=jnp.float64):
            return jax.ShapeDtypeStruct((num_chains, *shape), dtype, sharding=chains)

        data = [jax.ShapeDtypeStruct(shape, dtype, sharding=shared) for shape, dtype in self.data_avals]
        seed_spec = jax.ShapeDtypeStruct((), jnp.int64, sharding=shared)
        init_spec = {name: per_chain(shape) for name, shape in sites}
        n = sum(int(np.prod(shape)) for _, shape in sites)
        stencil_spec = per_chain((2 * n + 1, n))
        mass_spec = per_chain((n, n))
        step_spec = (per_chain(()),) if self.given_step_size else ()
        z_spec = {name: per_chain((self.num_draws, *shape)) for name, shape in sites}
        programs = _Programs(self.model, self.num_warmup, self.chunk, mesh, chains, sites, self.target_accept,
                             self.regularize_mass, self.adapt_mass, self.latent_scale, self.warmup_tree_depth,
                             self.given_step_size, self.adapt_step_size)
        self._traced[sites] = programs
        depth = () if self.warmup_tree_depth == MAX_TREE_DEPTH else (("warmup_tree_depth", self.warmup_tree_depth),)
        if self.given_step_size or not self.adapt_step_size:  # (absent otherwise: the default's key unchanged)
            depth += (("step_size", self.given_step_size, self.adapt_step_size),)
        description = repr((
            "nuts", self.description, tuple((s, str(d)) for s, d in self.data_avals), num_chains, self.num_warmup,
            self.num_draws, self.chunk, len(devices), self.target_accept, self.regularize_mass, self.adapt_mass,
            self.latent_scale, sites, *depth,
        ))

        self._descriptions[sites] = description
        # potential runs on one device: microseconds a call, a dozen calls a fit, so dispatch is its cost
        one_device = (jax.ShapeDtypeStruct(stencil_spec.shape, stencil_spec.dtype),
                      *(jax.ShapeDtypeStruct(d.shape, d.dtype) for d in data))
        state_specs = []  # advance's input: start's output, known once start is traced or read back

        placements = [devices[:1], devices, devices, devices]

        def compile_program(index, exported, blob=None):
            """Program ``index`` loaded, or compiled (and stored) where its compiled form is not on disk."""
            def compile(name):
                call = sampler_cache.named(exported.call, name)
                if index == 0:
                    return jax.jit(call, compiler_options=PROGRAM_OPTIONS[0]).lower(*one_device).compile()
                inputs = ((seed_spec, init_spec, mass_spec, *step_spec), (state_specs,), (z_spec,))[index - 1]
                in_shardings = ((shared, chains, chains, *(chains,) * len(step_spec)) if index == 1 else (chains,)) \
                    + (shared,) * len(data)
                jitted = jax.jit(call, in_shardings=in_shardings, out_shardings=chains,
                                 compiler_options=PROGRAM_OPTIONS[index])
                return jitted.lower(*inputs, *data).compile()

            blob = blob if blob is not None else sampler_cache.exported_bytes(exported)
            return sampler_cache.compile_exported(blob, compile, placements[index], repr(PROGRAM_OPTIONS[index]))

        # Compiled once per machine: a later process loads the four without tracing or lowering them.
        # Otherwise they are traced (or read back from ``jax.export``'s form) and compiled; XLA compiles
        # outside the GIL, so on a first call the largest program, advance, compiles while the others
        # are traced (0.6 s less wall time on 2 cores; experiments/bench_cli.py).
        export_key = sampler_cache.program_key(description)
        loaded = sampler_cache.load_compiled(export_key, placements, [repr(o) for o in PROGRAM_OPTIONS])
        if loaded is not None:
            self._programs[sites] = tuple(_done(program) for program in loaded)
            return self._programs[sites]
        pool = ThreadPoolExecutor(4)
        try:
            compiling = {}

            def trace():
                start = jax.export.export(programs.seeded(programs.jitted(programs.start, 3 + len(step_spec))))(
                    seed_spec, init_spec, mass_spec, *step_spec, *data)
                state_specs[:] = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=chains) for a in start.out_avals]
                advance = jax.export.export(programs.jitted(programs.advance, 1))(state_specs, *data)
                compiling[2] = pool.submit(compile_program, 2, advance)
                compiling[1] = pool.submit(compile_program, 1, start)
                in_axes = (0,) + (None,) * len(data)
                potential = jax.export.export(jax.jit(jax.vmap(programs.potential, in_axes=in_axes)))(*one_device)
                compiling[0] = pool.submit(compile_program, 0, potential)
                finish = jax.export.export(programs.jitted(programs.finish, 1))(z_spec, *data)
                return [potential, start, advance, finish]

            exported, blobs = sampler_cache.load_or_export_bytes(export_key, trace)
            if not state_specs:  # read back from disk: nothing compiled yet
                state_specs[:] = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=chains) for a in exported[1].out_avals]
            for index, program in enumerate(exported):
                if index not in compiling:
                    compiling[index] = pool.submit(compile_program, index, program, blobs[index])
        finally:
            pool.shutdown(wait=False)  # the submitted compiles go on; the threads end with them
        self._programs[sites] = tuple(compiling[index] for index in range(len(exported)))
        return self._programs[sites]

    def program(self, sites: tuple, index: int):
        """Program ``index`` (0 potential, 1 start, 2 advance, 3 finish) of ``_compiled(sites)``,
        waiting for its compile; a compile that failed raises here, and the next call starts over."""
        try:
            return self._compiled(sites)[index].result()
        except BaseException:
            self._programs.pop(sites, None)
            raise

    def _sites(self, init: dict) -> tuple:
        """The latent sites of ``init`` and their shapes; their programs start compiling now."""
        sites = tuple((k, tuple(np.shape(init[k])[1:])) for k in sorted(init))
        self._compiled(sites)
        return sites

    def _placed(self, args) -> tuple[tuple, tuple]:
        """The data on the devices once per fit, as ``potential`` (one device) and the chains'
        programs (every device) take it: passed as host arrays, every call would copy them again."""
        return tuple(jax.device_put(a) for a in args), tuple(jax.device_put(a, self._shared) for a in args)

    def laplace(self, seed: int, init: dict, args):
        """Draws from the Laplace approximation at each chain's Newton end point, through ``finish``:
        (samples, None, loglik) as ``run`` gives, with no sampler statistics. Newton steps from
        ``init``, NEWTON_STEPS of them, or up to LAPLACE_NEWTON_STEPS with ``LAPLACE_START`` "mode"."""
        sites = self._sites(init)
        potential, finish = self.program(sites, 0), self.program(sites, 3)
        one, args = self._placed(args)
        x0 = _ravel_chains(init, sites) / self.latent_scale
        steps = LAPLACE_NEWTON_STEPS if laplace_start() == "mode" else NEWTON_STEPS
        cov, mode, at_mode = newton_laplace(lambda points: potential(points, *one), x0, steps, return_mode=True)
        self.last_chain_gap = chain_gap(at_mode)
        rng = np.random.default_rng([seed, 11])
        self.last_khat = None
        if laplace_correction() == "psis":  # every chain started at one point: one mode
            def log_density(z):
                return -stencil_potential(lambda points: potential(points, *one), z, x0.shape)

            flat, self.last_khat = importance.importance_laplace(log_density, mode[0], cov[0],
                                                                 self.num_chains * self.num_draws, rng)
            z = flat.reshape(self.num_chains, self.num_draws, -1)
        else:
            eps = rng.standard_normal((self.num_chains, self.num_draws, x0.shape[1]))
            z = mode[:, None, :] + np.einsum("cij,cdj->cdi", np.linalg.cholesky(cov), eps)
        samples, loglik = jax.block_until_ready(finish(_unravel_chains(z, sites), *args))
        return samples, None, loglik

    def run(self, seed: int, init: dict, args, progress: bool, start_mass: str | np.ndarray = "laplace",
            step_size: np.ndarray | None = None):
        """NUTS from ``init``, the chains' keys split from ``PRNGKey(seed)`` inside ``start``, the
        warm-up from the ``start_mass`` inverse mass matrix and (a sampler with ``given_step_size``)
        each chain's ``step_size`` (see ``sample``)."""
        if (step_size is not None) != self.given_step_size:
            raise ValueError("a step size is given exactly when the sampler was built for one (given_step_size)")
        sites = self._sites(init)  # each program is waited for when first needed: the rest compile meanwhile
        potential = self.program(sites, 0)
        one, args = self._placed(args)
        bar = _progress_bar(self.total * self.num_chains, progress)
        draws, stats = [], []

        def collect(chunk):  # waits for a chunk's draws; meanwhile the next chunk runs
            z, extra = jax.device_get(chunk)
            draws.append(z)
            stats.append(extra)
            bar.update(self.chunk * self.num_chains)

        try:
            init = {k: np.asarray(v, np.float64) / self.latent_scale for k, v in init.items()}
            x0 = _ravel_chains(init, sites)
            if not isinstance(start_mass, str):  # a given matrix (``warm_start``)
                size = (x0.shape[0], x0.shape[1], x0.shape[1])
                if start_mass.shape[-1] != x0.shape[1] or (start_mass.ndim == 3 and start_mass.shape[0] != x0.shape[0]):
                    raise ValueError(f"start_mass has shape {start_mass.shape}; this model's {x0.shape[0]} chains "
                                     f"need ({x0.shape[1]}, {x0.shape[1]}) or {size}")
                inverse_mass = np.broadcast_to(start_mass, size).copy()
            elif start_mass == "identity":
                inverse_mass = np.broadcast_to(np.eye(x0.shape[1]), (x0.shape[0], x0.shape[1], x0.shape[1])).copy()
            else:
                inverse_mass = newton_laplace(lambda points: potential(points, *one), x0)
                if start_mass == "diagonal":
                    inverse_mass = np.einsum("cii,ij->cij", inverse_mass, np.eye(x0.shape[1]))
            steps = () if step_size is None else (np.asarray(step_size, np.float64),)
            state = self.program(sites, 1)(np.int64(seed), init, inverse_mass, *steps, *args)
            advance, finish = self.program(sites, 2), self.program(sites, 3)
            running = None
            for call in range(self.calls):
                state, z, extra = advance(state, *args)
                if self.pool_step_size is not None and (call + 1) * self.chunk == self.num_warmup:
                    state = self._pooled_step_size(sites, state)
                if running is not None:
                    collect(running)
                running = (z, extra)
            collect(running)
        finally:
            bar.close()
        steps = np.concatenate([s["num_steps"] for s in stats], axis=1)
        self.last_warmup_steps = float(steps[:, : self.num_warmup].mean())  # leapfrog steps per warm-up iteration
        kept = slice(self.num_warmup, self.total)
        z = {k: np.concatenate([d[k] for d in draws], axis=1)[:, kept] for k in draws[0]}
        self.last_latent = z
        self.last_final = partial(self._final, sites, state)
        extra = {k: np.concatenate([s[k] for s in stats], axis=1)[:, kept] for k in stats[0]}
        samples, loglik = jax.block_until_ready(finish(z, *args))
        return samples, extra, loglik


    def _final(self, sites, leaves) -> dict:
        """The step size (chains,) and inverse mass matrix (chains, n, n) in a run's last state
        ``leaves`` (found by the state's structure, ``_state_tree``)."""
        adapt = jax.tree.unflatten(self._state_tree(sites), leaves).adapt_state
        mass = adapt.inverse_mass_matrix  # a model's kernel keys it by its sites (one dense block)
        mass = next(iter(mass.values())) if isinstance(mass, dict) else mass
        return {"step_size": np.asarray(jax.device_get(adapt.step_size), np.float64),
                "inverse_mass": np.asarray(jax.device_get(mass), np.float64)}


    def _state_tree(self, sites):
        """The NUTS state's structure for latent ``sites``: known once ``start`` is traced; programs
        read back from the disk cache were not, so ``start`` is traced abstractly (``jax.eval_shape``:
        no compile), once per process and shape."""
        programs = self._traced[sites]
        if programs.state_tree is None:
            n = sum(int(np.prod(shape)) for _, shape in sites)
            one = {name: jax.ShapeDtypeStruct(shape, jnp.float64) for name, shape in sites}
            steps = (jax.ShapeDtypeStruct((), jnp.float64),) if self.given_step_size else ()
            jax.eval_shape(programs.start, jax.ShapeDtypeStruct((2,), jnp.uint32), one,
                           jax.ShapeDtypeStruct((n, n), jnp.float64), *steps,
                           *(jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in self.data_avals))
        return programs.state_tree

    def _pooled_step_size(self, sites, leaves) -> list:
        """``leaves`` (a state after the warm-up) with each chain's step size capped at the chains'
        ``pool_step_size`` statistic."""
        tree = self._state_tree(sites)
        at = jax.tree.unflatten(tree, list(range(tree.num_leaves))).adapt_state.step_size
        leaves = list(leaves)
        own = np.asarray(jax.device_get(leaves[at]), np.float64)
        cap = np.median(own) if self.pool_step_size == "median" else own.min()
        leaves[at] = jax.device_put(np.minimum(own, cap).astype(own.dtype), leaves[at].sharding)
        return leaves


def _progress_bar(total: int, progress: bool):
    """tqdm's bar over all chains' transitions; without ``progress`` a stand-in, so a fit that
    shows none does not import tqdm (its ``auto`` module looks for Jupyter)."""
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="NUTS (all chains)", unit="it", leave=False)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _ravel_chains(init: dict, sites) -> np.ndarray:
    """(chain, n): each chain's sites raveled in sorted order (``ravel_pytree``'s)."""
    chains = np.shape(init[sites[0][0]])[0]
    return np.concatenate([np.asarray(init[k], np.float64).reshape(chains, -1) for k, _ in sites], axis=1)


def _unravel_chains(z: np.ndarray, sites) -> dict:
    """(chain, draw, n) -> site -> (chain, draw, *shape)."""
    out, at = {}, 0
    for k, shape in sites:
        size = int(np.prod(shape))
        out[k] = z[..., at: at + size].reshape(*z.shape[:2], *shape)
        at += size
    return out


class _Programs:
    """The four traced functions behind ``Sampler`` (see its docstring), for one model."""

    def __init__(self, model, num_warmup, chunk, mesh, chains, sites, target_accept, regularize_mass, adapt_mass,
                 latent_scale=1.0, warmup_tree_depth=MAX_TREE_DEPTH, given_step_size=False, adapt_step_size=True):
        self.model, self.adapt_mass, self.scale = model, adapt_mass, latent_scale
        self.given_step_size, self.adapt_step_size = given_step_size, adapt_step_size
        self.warmup_tree_depth = warmup_tree_depth
        self.target_accept, self.regularize_mass = target_accept, regularize_mass
        self.sites = sites
        self.num_warmup, self.chunk = num_warmup, chunk
        self.mesh, self.chains = mesh, chains
        self.state_tree = None  # the HMCState structure, set when ``start`` is traced

    def kernel(self, z, key, args, inverse_mass_matrix=None, step_size=None):
        """A NUTS kernel and its initial state at ``z``. ``advance`` only needs the kernel's
        closures, which ``init`` sets; the unused state is dead code to XLA."""
        options = dict(dense_mass=True, regularize_mass_matrix=self.regularize_mass, adapt_mass_matrix=self.adapt_mass,
                       target_accept_prob=self.target_accept, inverse_mass_matrix=inverse_mass_matrix)
        if step_size is not None:
            options["step_size"] = step_size
        if not self.adapt_step_size:
            options["adapt_step_size"] = False
        if self.warmup_tree_depth != MAX_TREE_DEPTH:  # (NumPyro's (warm-up, sampling) depths)
            options["max_tree_depth"] = (self.warmup_tree_depth, MAX_TREE_DEPTH)
        if self.scale == 1.0:
            kernel = NUTS(self.model, **options)
            return kernel, kernel.init(key, self.num_warmup, init_params=z, model_args=args)
        kernel = NUTS(potential_fn=lambda u: potential_energy(self.model, args, {}, self._unscaled(u)), **options)
        return kernel, kernel.init(key, self.num_warmup, init_params=z)

    def unravel(self, x) -> dict:
        """A point raveled in sorted site order (``ravel_pytree``'s) back to site -> value, by
        slicing: ``ravel_pytree`` on the host runs eager JAX operations, each a program to compile."""
        out, at = {}, 0
        for name, shape in self.sites:
            size = int(np.prod(shape))
            out[name] = x[at: at + size].reshape(shape)
            at += size
        return out

    def _unscaled(self, u: dict) -> dict:
        return u if self.scale == 1.0 else {k: v * self.scale for k, v in u.items()}

    def potential(self, points, *args):
        """The potential energy and its gradient at each row of ``points`` (m, n), the latent
        sites raveled in sorted order (``ravel_pytree``'s)."""
        def energy(x):
            return potential_energy(self.model, args, {}, self._unscaled(self.unravel(x)))

        return jax.vmap(jax.value_and_grad(energy))(points)

    def seeded(self, mapped_start):
        """``start`` taking the seed: the chains' keys, ``split(PRNGKey(seed), chains)``, are
        computed inside the program (outside it, two eager operations would each compile a program
        in every process)."""
        def start(seed, init, inverse_mass, *args):
            keys = jax.random.split(jax.random.PRNGKey(seed), jax.tree.leaves(init)[0].shape[0])
            return mapped_start(keys, init, inverse_mass, *args)

        return jax.jit(start, out_shardings=self.chains)

    def start(self, key, init, inverse_mass, *args):
        step_size, args = (args[0], args[1:]) if self.given_step_size else (None, args)
        _, state = self.kernel(init, key, args, inverse_mass, step_size)
        leaves, self.state_tree = jax.tree.flatten(state)
        return leaves

    def advance(self, leaves, *args):
        state = jax.tree.unflatten(self.state_tree, leaves)
        kernel, _ = self.kernel(state.z, state.rng_key, args)

        def step(state, _):
            state = kernel.sample(state, args, {})
            return state, (state.z, {name: getattr(state, name) for name in EXTRA_FIELDS})

        state, (z, extra) = jax.lax.scan(step, state, length=self.chunk)
        return jax.tree.leaves(state), z, extra

    def finish(self, z, *args):
        """What ``NUTS.postprocess_fn`` gives (sample and deterministic sites), without a kernel,
        and the log-likelihood of the observed site ``log_loss`` (zeros for a model without one)."""
        constrained = jax.vmap(lambda one: constrain_fn(self.model, args, {}, self._unscaled(one),
                                                        return_deterministic=True))(z)
        loglik = log_likelihood(self.model, constrained, *args)
        return constrained, loglik.get("log_loss", jnp.zeros(jax.tree.leaves(z)[0].shape[:1]))

    def jitted(self, fn, n_batched):
        """``fn`` of one chain, mapped over the chain axis of its first ``n_batched`` arguments:
        shard_map over devices, vmap over the chains on each device."""
        def local(*xs):
            batched, shared = xs[:n_batched], xs[n_batched:]
            if jax.tree.leaves(batched)[0].shape[0] == 1:
                one = fn(*jax.tree.map(lambda x: x[0], batched), *shared)
                return jax.tree.map(lambda x: x[None], one)
            return jax.vmap(fn, in_axes=(0,) * n_batched + (None,) * len(shared))(*xs)

        def mapped(*xs):
            specs = (P("chain"),) * n_batched + (P(),) * (len(xs) - n_batched)
            return jax.shard_map(local, mesh=self.mesh, in_specs=specs, out_specs=P("chain"),
                                 check_vma=False)(*xs)

        return jax.jit(mapped, out_shardings=self.chains)


def laplace_inverse_mass(model, args, init, newton_steps: int = NEWTON_STEPS) -> np.ndarray:
    """``newton_laplace`` for one point ``init`` (a dict of latent sites) of a NumPyro model."""
    x0, unravel = ravel_pytree(init)
    value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(lambda x: potential_energy(model, args, {}, unravel(x)))))
    def batch(points):  # one chain
        return tuple(a[None] for a in value_and_grad(points[0]))

    return newton_laplace(batch, np.asarray(x0)[None], newton_steps)[0]


def chain_gap(potentials: np.ndarray) -> float:
    """max - min of the chains' finite potentials at their Newton end points (nats; NaN with none). A
    chain whose end point lies g nats above the best chain's sits where the posterior density is e^-g of
    it: its Gaussian's draws describe a place the posterior hardly reaches."""
    finite = np.asarray(potentials, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.max() - finite.min()) if finite.size else float("nan")


def stencil_potential(value_and_grad, z: np.ndarray, stencil: tuple[int, int]) -> np.ndarray:
    """The potential at each row of ``z`` (m, n), evaluated by ``potential``, the program compiled
    for Newton's stencils (chain, 2n + 1, n): ``z`` in blocks of chain x (2n + 1) rows, the last one
    padded with its own first row. The importance weights of the calibration's Laplace refits read
    it (``laplace``): a program of their own, (1,000, n) points, cost a first CLI call about 2 s of
    CPU to compile (experiments/bench_cli.py, results/bench_cli_s27_stencil.json)."""
    chains, n = stencil
    block = chains * (2 * n + 1)
    z = np.asarray(z, np.float64)
    pad = -len(z) % block
    padded = np.concatenate([z, np.broadcast_to(z[:1], (pad, n))]) if pad else z
    energy = [np.asarray(value_and_grad(part.reshape(chains, 2 * n + 1, n))[0], np.float64).ravel()
              for part in padded.reshape(-1, block, n)]
    return np.concatenate(energy)[: len(z)]


def newton_laplace(value_and_grad, x0: np.ndarray, newton_steps: int = NEWTON_STEPS, return_mode: bool = False):
    """The inverse Hessian of the potential at its mode near each row of ``x0`` (chain, n): NUTS's
    starting mass matrices, computed on the host around one compiled program, ``value_and_grad``,
    which maps points (chain, 2n + 1, n) to the potential (chain, 2n + 1) and its gradient.

    From NumPyro's default, the identity, the first warm-up windows must take steps sized for the
    narrowest direction (posterior standard deviations 0.01-0.06 on the Chinchilla data) across
    the widest, so they cost several times the leapfrog steps of the rest of the run (warm-up
    steps per iteration: experiments/bench_fit.py). The mode is found by Newton steps on |eigenvalues|
    (saddle-free); where the full step does not lower the potential, a backtracking line search over
    t = 1, 1/2, ..., 2^-(2n) in one call; it stops once the predicted decrease -g.d of every chain
    is below 1e-9. The
    Hessian is central differences of the gradient, h = 1e-5 max(1, |x|). Kept out of the
    sampler's compiled ``start``, where it cost a first call about a second of tracing and
    compiling (experiments/bench_cli.py). Non-finite results fall back to the identity. With
    ``return_mode``: (inverse Hessians, end points (chain, n), the potential at each end point).
    """
    x = np.array(x0, np.float64)
    chains, n = x.shape
    steps = 0.5 ** np.arange(2 * n + 1)

    def hessian_and_grad(x):
        h = 1e-5 * np.maximum(1.0, np.abs(x))  # (chain, n)
        shifts = np.eye(n)[None] * h[:, None, :]  # (chain, n, n)
        points = np.concatenate([x[:, None] + shifts, x[:, None] - shifts, x[:, None]], axis=1)
        f, g = (np.asarray(a, np.float64) for a in value_and_grad(points))
        hessian = (g[:, :n] - g[:, n: 2 * n]) / (2 * h[:, :, None])
        return 0.5 * (hessian + hessian.transpose(0, 2, 1)), g[:, -1], f[:, -1]

    def curvature(hessian):
        w, v = np.linalg.eigh(np.where(np.isfinite(hessian), hessian, 0.0))
        return np.maximum(np.abs(w), MIN_CURVATURE), v

    with np.errstate(invalid="ignore", over="ignore"):
        hessian, grad, f0 = hessian_and_grad(x)
        for _ in range(newton_steps):
            w, v = curvature(hessian)
            direction = -np.einsum("cij,cj->ci", v, np.einsum("cji,cj->ci", v, grad) / w)
            if not np.any(np.abs(np.einsum("ci,ci->c", grad, direction)) > 1e-9):  # every chain at its mode
                break
            t = np.ones(chains)
            trial = hessian_and_grad(x + direction)  # the full step, with what the next step needs
            failed = ~(trial[2] <= f0)  # NaN fails
            if failed.any():  # backtrack where the full step failed; t = 0 where nothing is lower
                f, _ = value_and_grad(x[:, None] + steps[None, :, None] * direction[:, None])
                lower = np.asarray(f) <= f0[:, None]
                t = np.where(failed, np.where(lower.any(axis=1), steps[np.argmax(lower, axis=1)], 0.0), 1.0)
                x_next = np.where(t[:, None] > 0, x + t[:, None] * direction, x)
                trial = hessian_and_grad(x_next)
            x = np.where(t[:, None] > 0, x + t[:, None] * direction, x)
            hessian, grad, f0 = trial
        w, v = curvature(hessian)
        inverse = np.einsum("cij,cj,ckj->cik", v, 1.0 / w, v)
    finite = np.isfinite(hessian).all(axis=(1, 2)) & np.isfinite(inverse).all(axis=(1, 2))
    inverse = np.where(finite[:, None, None], inverse, np.eye(n)[None])
    return (inverse, x, f0) if return_mode else inverse


def _chunk_length(total: int, warmup: int | None = None) -> int:
    """Transitions per ``advance`` call, a divisor of the run (and of the ``warmup`` where given, so
    that a call ends with the warm-up): about a twentieth of it where one fits (else the whole run in
    one call, or the largest common divisor of the warm-up and the run)."""
    for calls in (20, *range(10, 41)):
        if total % calls == 0 and (warmup is None or warmup % (total // calls) == 0):
            return total // calls
    return total if warmup is None else math.gcd(total, warmup)


def _devices_for(num_chains: int, available: int) -> int:
    """The most devices that share the chains evenly."""
    return max(d for d in range(1, min(num_chains, available) + 1) if num_chains % d == 0)


def _done(program) -> Future:
    """A program already at hand (loaded from disk) as ``Sampler._compiled`` hands programs out."""
    future = Future()
    future.set_result(program)
    return future
