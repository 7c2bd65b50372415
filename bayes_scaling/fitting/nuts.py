"""Full-posterior inference with NumPyro's NUTS.

NumPyro's ``NUTS`` kernel does every step; ``_Sampler`` only drives it (see its docstring).
Settings that make it fast on the Chinchilla data: float64; a dense mass matrix (the posterior in the
law's centred coordinates is close to Gaussian but correlated) started at the Laplace approximation
at the posterior mode (``newton_laplace``) and adapted *without* NumPyro's default shrinkage
towards 1e-3 I — the posterior standard deviations here are 0.01-0.06, so that shrinkage swamps the
narrow, correlated directions and cuts the step size about fivefold (leapfrog steps per draw with
and without it: experiments/bench_cli.py); target acceptance 0.8; chains on separate host devices;
every chain started near the point estimate, jittered. The sampler's programs are cached per
(model, padded data shape, settings) with the data passed as arguments (observations padded to the
next power of two and masked), so an in-process refit of new data of similar size neither traces nor
compiles; across processes ``sampler_cache`` (the traced
programs, via ``jax.export``) and JAX's persistent compilation cache (see ``_jax_setup``) do the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from numpyro.infer import NUTS
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayes_scaling._jax_setup import configure
from bayes_scaling import extrapolation
from bayes_scaling.diagnostics import diagnose, warn_if_untrustworthy
from bayes_scaling.errors import InputError
from bayes_scaling.fitting import sampler_cache
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU, ModelSpec, pooled_model
from bayes_scaling.posterior import Posterior
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs

TARGET_ACCEPT = 0.8
RETRY_TARGET_ACCEPT = 0.99  # a fit with divergences is redone once with these smaller steps
MODELS = ("extrapolating", "plain")
NEWTON_STEPS = 8  # towards the mode, for the Laplace mass matrix
MIN_CURVATURE = 1e-4  # floor on the Hessian's |eigenvalues| (standard deviations <= 100 latent units)
# Shorter warm-ups keep the Laplace mass matrix: NumPyro's windows would replace it by the covariance
# of a handful of draws (unregularised), which can freeze a chain.
MASS_ADAPTATION_MIN_WARMUP = 150
# ``potential`` and ``start`` run for milliseconds per fit: compiled without LLVM's optimisations,
# which shortens a first call's compile.
_RUN_ONCE = {"xla_backend_optimization_level": 0}
EXTRA_FIELDS = ("diverging", "num_steps", "energy", "potential_energy", "accept_prob")
_SAMPLERS: dict[tuple, "_Sampler"] = {}
_LATENT_STARTS: dict[tuple, Callable] = {}


def fit_nuts(
    runs: Runs,
    *,
    law: Law | str = "chinchilla",
    priors: Mapping[str, dist.Distribution] | None = None,
    likelihood: str = "student_t",
    nu: float = DEFAULT_NU,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_draws: int = 1000,
    seed: int = 0,
    progress: bool = False,
    init_theta: Mapping[str, float] | str = "projection",
    model: str = "extrapolating",
    drift_priors: Mapping[str, float] | None = None,
    target_accept: float = TARGET_ACCEPT,
    retry_divergent: bool = True,
) -> Posterior:
    """Sample the posterior of the law's parameters given ``runs`` (all rows used: select first
    with ``runs.for_fit()``).

    ``model``: "extrapolating" (default) adds the law's own error beyond the fitted runs, its
    scale calibrated on leave-future-out refits of ``runs`` (``bayes_scaling.extrapolation``; the
    refits are ``fit_laplace`` with the same settings; a law bound to per-run covariates stays
    plain); "plain" is the law alone. Both agree inside the fitted runs' range. ``drift_priors``
    overrides the half-Cauchy scales of the drift (``extrapolation.PRIOR_SCALES``).

    ``target_accept``: NUTS's target acceptance (step-size adaptation). With ``retry_divergent``,
    a fit with divergent transitions is redone once at ``RETRY_TARGET_ACCEPT`` (smaller steps, about
    1.5x the time; on Porian et al.'s 15 sweeps it took the divergences from 114, in 11 of them, to
    0: experiments/results/bench_extrapolation_selection.json against bench_extrapolation.json) and
    says so in ``meta["retried"]``; a fit that still fails its checks warns (``SamplerWarning``).

    ``init_theta``: where the chains start (jittered): "projection" (default; the cheap
    variable-projection estimate of ``fitting.init``), "approach3" (Chinchilla's Approach 3 point
    fit, 4,500 L-BFGS starts; Chinchilla law only), or a dict of natural parameters.
    """
    if model not in MODELS:
        raise InputError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    settings = dict(law=law, priors=priors, likelihood=likelihood, nu=nu, num_chains=num_chains,
                    num_warmup=num_warmup, num_draws=num_draws, seed=seed)
    posterior = _fit(runs, **settings, progress=progress, init_theta=init_theta, target_accept=target_accept)
    diagnosis = diagnose(posterior)
    if retry_divergent and diagnosis.divergences and target_accept < RETRY_TARGET_ACCEPT:
        first = f"{diagnosis.divergences} divergences at target acceptance {target_accept:g}"
        posterior = _fit(runs, **settings, progress=progress, init_theta=init_theta, target_accept=RETRY_TARGET_ACCEPT)
        posterior.meta["retried"] = f"{first}; refitted at {RETRY_TARGET_ACCEPT:g}"
        diagnosis = diagnose(posterior)
    warn_if_untrustworthy(diagnosis.ok, diagnosis.verdict())
    if model == "plain" or hasattr(posterior.law, "for_runs"):
        return posterior
    capacity = padded_capacity(len(runs))  # the folds' refits reuse the fit's compiled programs

    def refit(train: Runs) -> Posterior:
        return _fit(train, **settings, init_theta="projection", laplace=True, capacity=capacity)

    scales = extrapolation.calibrate(runs, refit, prior_scales=drift_priors)
    return extrapolation.attach_drift(posterior, scales, seed=seed)


def fit_laplace(runs: Runs, **settings) -> Posterior:
    """The Laplace approximation to the plain law's posterior: draws from the Gaussian at each
    chain's mode (Newton steps, ``newton_laplace``) in the law's centred latent coordinates, mapped
    to natural parameters. Takes ``fit_nuts``'s settings (``num_warmup`` only selects the compiled
    programs it shares with ``fit_nuts``); milliseconds where NUTS takes a second, for the
    extrapolation model's calibration refits. Not a substitute for NUTS where the posterior is
    far from Gaussian (a law the runs cannot identify)."""
    settings.pop("model", None)
    return _fit(runs, **{"law": "chinchilla", **settings}, laplace=True)


def _fit(runs: Runs, *, law, priors=None, likelihood="student_t", nu=DEFAULT_NU, num_chains=4, num_warmup=500,
         num_draws=1000, seed=0, progress=False, init_theta="projection", laplace=False, capacity=None,
         target_accept=TARGET_ACCEPT) -> Posterior:
    """One fit of the plain law: NUTS, or (``laplace``) the Laplace approximation; ``capacity``
    pads the observations further, to share a larger fit's compiled programs."""
    configure()
    law = get_law(law) if isinstance(law, str) else law
    if len(runs) < len(law.param_names) + 1:
        raise InputError(f"need at least {len(law.param_names) + 1} runs to fit {law.name}, got {len(runs)}")
    if num_chains < 1 or num_draws < 1 or num_warmup < 1:
        raise InputError("num_chains, num_warmup and num_draws must be positive")
    resolved = resolve_priors(law, priors)
    spec = ModelSpec(law=law, priors=resolved, likelihood=likelihood, nu=nu)
    N, D, log_loss = runs.N, runs.D, np.log(runs.loss)
    centre = (float(np.mean(np.log(N))), float(np.mean(np.log(D))))  # models.data_centre, on the host
    theta0 = _starting_point(law, runs, init_theta)
    init_params = jittered_init(law, theta0, centre, runs, num_chains, seed)

    # Laws bound to per-run covariates (data-constrained: unique tokens) cannot be padded.
    capacity = len(runs) if hasattr(law, "for_runs") else max(capacity or 0, padded_capacity(len(runs)))
    sampler = compiled_sampler(spec, capacity, num_chains, num_warmup, num_draws, target_accept)
    args = padded_args(N, D, log_loss, centre, capacity)
    start = time.perf_counter()
    if laplace:
        samples, extra, loglik = sampler.laplace(seed, init_params, args)
    else:
        samples, extra, loglik = sampler.run(jax.random.PRNGKey(seed), init_params, args, progress)
    loglik = np.asarray(loglik)[..., : len(runs)]
    seconds = time.perf_counter() - start
    meta = {
        "likelihood": likelihood,
        "nu": nu,
        "centre": list(centre),
        "priors": describe_priors(resolved),
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_draws": num_draws,
        "seed": seed,
        "sampling_seconds": seconds,
        "target_accept": target_accept,
    }
    if not laplace:
        meta["warmup_mean_leapfrog_steps"] = sampler.last_warmup_steps
    if laplace:  # a calibration refit: no pointwise log-likelihood kept (nothing reads it)
        loglik = None
    return build_posterior(law, runs, samples, extra, loglik, method="laplace" if laplace else "nuts", meta=meta)


def padded_capacity(n: int, smallest: int = 64) -> int:
    """The observation count the sampler is compiled for: the next power of two >= n (at least
    ``smallest``), so tables of similar size share compiled programs (in a process and, through
    the caches, across processes); the padding costs little next to NUTS's own work."""
    return max(smallest, 1 << (n - 1).bit_length())


def padded_args(N, D, log_loss, centre, capacity: int) -> tuple:
    """The sampler's data arguments (N, D, centre, log_loss, mask) padded to ``capacity``: the
    placeholders (N = D = 1, log-loss 0) have mask False and add nothing to the likelihood."""
    n = len(N)
    pad = capacity - n
    if pad < 0:
        raise ValueError(f"{n} observations exceed the capacity {capacity}")
    return (np.concatenate([np.asarray(N, np.float64), np.ones(pad)]),
            np.concatenate([np.asarray(D, np.float64), np.ones(pad)]),
            np.asarray(centre, np.float64),
            np.concatenate([np.asarray(log_loss, np.float64), np.zeros(pad)]),
            np.arange(capacity) < n)


class _Sampler:
    """NumPyro's NUTS kernel, driven by four programs compiled once per model and shape.

    * ``potential``: the potential energy and its gradient at a batch of points per chain, for the
      Laplace inverse mass matrix that ``newton_laplace`` computes on the host;
    * ``start``: per chain, ``NUTS.init`` at the chain's starting point with that mass matrix;
    * ``advance``: ``chunk`` NUTS transitions (``lax.scan``) from a state, returning the new state
      and the draws; called until warm-up and sampling are done, updating the progress bar between
      calls (a host callback inside the program would keep it from being exported);
    * ``finish``: the kept draws in natural parameters and their pointwise log-likelihood.

    Chains run under ``shard_map`` on separate host devices (several per device if there are more
    chains than devices). The programs come from ``sampler_cache`` (``jax.export``): traced once per
    process in ``_SAMPLERS``, and once per machine on disk. ``run(key, init, (N, D, centre,
    log_loss, mask), progress)``: observations with mask False are padding (see ``design.refit``),
    so data of any size up to the shape reuse the compiled code.
    """

    def __init__(self, spec: ModelSpec, n_obs: int, num_chains: int, num_warmup: int, num_draws: int,
                 target_accept: float = TARGET_ACCEPT):
        self.spec, self.n_obs, self.target_accept = spec, n_obs, target_accept
        self.num_chains, self.num_warmup, self.num_draws = num_chains, num_warmup, num_draws
        self.total = num_warmup + num_draws
        self.chunk = _chunk_length(self.total)
        self.calls = self.total // self.chunk
        self._programs = {}  # latent site names -> (potential, start, advance, finish)
        self.last_warmup_steps = float("nan")

    def _compiled(self, site_names: tuple[str, ...]):
        if site_names in self._programs:
            return self._programs[site_names]
        spec, n_obs, num_chains = self.spec, self.n_obs, self.num_chains
        devices = jax.devices()[: _devices_for(num_chains, jax.device_count())]
        mesh = Mesh(np.array(devices), ("chain",))
        chains, shared = NamedSharding(mesh, P("chain")), NamedSharding(mesh, P())

        def per_chain(shape, dtype=jnp.float64):
            return jax.ShapeDtypeStruct((num_chains, *shape), dtype, sharding=chains)

        data = [jax.ShapeDtypeStruct(shape, dtype, sharding=shared) for shape, dtype in (
            ((n_obs,), jnp.float64), ((n_obs,), jnp.float64), ((2,), jnp.float64),
            ((n_obs,), jnp.float64), ((n_obs,), jnp.bool_))]
        key_spec = per_chain((2,), jnp.uint32)
        init_spec = {name: per_chain(()) for name in site_names}
        n = len(site_names)
        stencil_spec = per_chain((2 * n + 1, n))
        mass_spec = per_chain((n, n))
        z_spec = {name: per_chain((self.num_draws,)) for name in site_names}
        programs = _Programs(spec, self.num_warmup, self.chunk, mesh, chains, site_names, self.target_accept)
        description = repr((
            "nuts", spec.law.name, sampler_cache.law_source_digest(spec.law),
            sorted((k, sampler_cache.prior_fingerprint(v)) for k, v in spec.priors.items()),
            spec.likelihood, float(spec.nu), n_obs, num_chains, self.num_warmup, self.num_draws,
            self.chunk, len(devices), self.target_accept, site_names,
        ))

        # potential runs on one device: microseconds a call, a dozen calls a fit, so dispatch is its cost
        one_device = (jax.ShapeDtypeStruct(stencil_spec.shape, stencil_spec.dtype),
                      *(jax.ShapeDtypeStruct(d.shape, d.dtype) for d in data))
        state_specs = []  # advance's input: start's output, known once start is traced or read back

        def compile_program(index, exported):
            if index == 0:
                return jax.jit(exported.call, compiler_options=_RUN_ONCE).lower(*one_device).compile()
            inputs = ((key_spec, init_spec, mass_spec), (state_specs,), (z_spec,))[index - 1]
            in_shardings = (chains,) * len(inputs) + (shared,) * len(data)
            jitted = jax.jit(exported.call, in_shardings=in_shardings, out_shardings=chains,
                             compiler_options=(_RUN_ONCE, None, None)[index - 1])
            return jitted.lower(*inputs, *data).compile()

        # XLA compiles outside the GIL: on a first call the largest program, advance, compiles while
        # the others are traced (0.6 s less wall time on 2 cores; experiments/bench_cli.py).
        with ThreadPoolExecutor(4) as pool:
            compiling = {}

            def trace():
                start = jax.export.export(programs.jitted(programs.start, 3))(key_spec, init_spec, mass_spec, *data)
                state_specs[:] = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=chains) for a in start.out_avals]
                advance = jax.export.export(programs.jitted(programs.advance, 1))(state_specs, *data)
                compiling[2] = pool.submit(compile_program, 2, advance)
                compiling[1] = pool.submit(compile_program, 1, start)
                in_axes = (0,) + (None,) * len(data)
                potential = jax.export.export(jax.jit(jax.vmap(programs.potential, in_axes=in_axes)))(*one_device)
                compiling[0] = pool.submit(compile_program, 0, potential)
                finish = jax.export.export(programs.jitted(programs.finish, 1))(z_spec, *data)
                return [potential, start, advance, finish]

            exported = sampler_cache.load_or_export(sampler_cache.program_key(description), trace)
            if not state_specs:  # read back from disk: nothing compiled yet
                state_specs[:] = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=chains) for a in exported[1].out_avals]
            for index, program in enumerate(exported):
                if index not in compiling:
                    compiling[index] = pool.submit(compile_program, index, program)
            self._programs[site_names] = tuple(compiling[index].result() for index in range(len(exported)))
        return self._programs[site_names]

    def laplace(self, seed: int, init_params, args):
        """Draws from the Laplace approximation at each chain's mode, through ``finish``:
        (samples, None, loglik) as ``run`` gives, with no sampler statistics."""
        potential, _, _, finish = self._compiled(tuple(sorted(init_params)))
        names = sorted(init_params)
        x0 = np.stack([np.asarray(init_params[k], np.float64) for k in names], axis=1)  # (chain, site)
        cov, mode = newton_laplace(lambda points: potential(points, *args), x0, return_mode=True)
        eps = np.random.default_rng([seed, 11]).standard_normal((self.num_chains, self.num_draws, len(names)))
        z = mode[:, None, :] + np.einsum("cij,cdj->cdi", np.linalg.cholesky(cov), eps)
        samples, loglik = jax.block_until_ready(finish({k: z[..., i] for i, k in enumerate(names)}, *args))
        return samples, None, loglik

    def run(self, key, init_params, args, progress: bool):
        from tqdm.auto import tqdm

        potential, start, advance, finish = self._compiled(tuple(sorted(init_params)))
        keys = jax.random.split(key, self.num_chains)
        bar = tqdm(total=self.total * self.num_chains, desc="NUTS (all chains)", unit="it",
                   disable=not progress, leave=False)
        draws, stats = [], []

        def collect(chunk):  # waits for a chunk's draws; meanwhile the next chunk runs
            z, extra = jax.device_get(chunk)
            draws.append(z)
            stats.append(extra)
            bar.update(self.chunk * self.num_chains)

        try:
            init = {k: np.asarray(v, np.float64) for k, v in init_params.items()}
            x0 = np.stack([init[k] for k in sorted(init)], axis=1)  # (chain, site): ravel_pytree's order
            inverse_mass = newton_laplace(lambda points: potential(points, *args), x0)
            state = start(keys, init, inverse_mass, *args)
            running = None
            for _ in range(self.calls):
                state, z, extra = advance(state, *args)
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
        extra = {k: np.concatenate([s[k] for s in stats], axis=1)[:, kept] for k in stats[0]}
        samples, loglik = jax.block_until_ready(finish(z, *args))
        return samples, extra, loglik


class _Programs:
    """The four traced functions behind ``_Sampler`` (see its docstring), for one model."""

    def __init__(self, spec, num_warmup, chunk, mesh, chains, site_names, target_accept):
        self.model = partial(pooled_model, spec)
        self.target_accept = target_accept
        self.site_names = site_names
        self.num_warmup, self.chunk = num_warmup, chunk
        self.mesh, self.chains = mesh, chains
        self.state_tree = None  # the HMCState structure, set when ``start`` is traced

    def kernel(self, z, key, args, inverse_mass_matrix=None):
        """A NUTS kernel and its initial state at ``z``. ``advance`` only needs the kernel's
        closures, which ``init`` sets; the unused state is dead code to XLA."""
        kernel = NUTS(self.model, dense_mass=True, regularize_mass_matrix=False,
                      adapt_mass_matrix=self.num_warmup >= MASS_ADAPTATION_MIN_WARMUP,
                      target_accept_prob=self.target_accept, inverse_mass_matrix=inverse_mass_matrix)
        return kernel, kernel.init(key, self.num_warmup, init_params=z, model_args=args)

    def potential(self, points, *args):
        """The potential energy and its gradient at each row of ``points`` (m, sites), the latent
        sites raveled in sorted order (``ravel_pytree``'s)."""
        names = sorted(self.site_names)

        def energy(x):
            return potential_energy(self.model, args, {}, dict(zip(names, x)))

        return jax.vmap(jax.value_and_grad(energy))(points)

    def start(self, key, init, inverse_mass, *args):
        _, state = self.kernel(init, key, args, inverse_mass)
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
        """What ``NUTS.postprocess_fn`` gives (sample and deterministic sites), without a kernel."""
        constrained = jax.vmap(lambda one: constrain_fn(self.model, args, {}, one, return_deterministic=True))(z)
        return constrained, log_likelihood(self.model, constrained, *args)["log_loss"]

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
    compiling (experiments/bench_cli.py). Non-finite results fall back to the identity.
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
    return (inverse, x) if return_mode else inverse


def _chunk_length(total: int) -> int:
    """Transitions per ``advance`` call, a divisor of the run: about a twentieth of it where one
    fits (else the whole run in one call)."""
    for calls in (20, *range(10, 41)):
        if total % calls == 0:
            return total // calls
    return total


def _devices_for(num_chains: int, available: int) -> int:
    """The most devices that share the chains evenly."""
    return max(d for d in range(1, min(num_chains, available) + 1) if num_chains % d == 0)


def compiled_sampler(spec: ModelSpec, n_obs: int, num_chains, num_warmup, num_draws,
                     target_accept: float = TARGET_ACCEPT) -> _Sampler:
    """The cached sampler for this model, observation count (or padded capacity), run length and
    target acceptance."""
    key = (spec.law.name, tuple(sorted((k, sampler_cache.prior_fingerprint(v)) for k, v in spec.priors.items())),
           spec.likelihood, spec.nu, n_obs, num_chains, num_warmup, num_draws, target_accept)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = _Sampler(spec, n_obs, num_chains, num_warmup, num_draws, target_accept)
    return _SAMPLERS[key]


def _starting_point(law: Law, runs: Runs, init_theta) -> dict:
    if isinstance(init_theta, Mapping):
        return dict(init_theta)
    if init_theta == "projection":
        return initial_theta(law, runs)
    if init_theta == "approach3" and law.name == "chinchilla":
        from bayes_scaling.fitting.approach3 import fit_approach3

        return fit_approach3(runs.N, runs.D, runs.loss).theta
    raise InputError(f"init_theta must be 'projection', 'approach3' (chinchilla only) or a dict, got {init_theta!r}")


def jittered_init(law: Law, theta0, centre, runs: Runs, num_chains: int, seed: int) -> dict:
    """Unconstrained starting points: the point estimate plus N(0, 0.05^2) jitter per chain."""
    theta0 = {k: np.float64(v) for k, v in theta0.items() if k in law.param_names}
    latent = _latent_start(law)(theta0, np.asarray(centre, np.float64), runs.N, runs.D, np.log(runs.loss))
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(float(v) + 0.05 * rng.standard_normal(num_chains)) for k, v in latent.items()}


def _latent_start(law: Law):
    """One compiled program (not a dozen eager ops, each compiled on its own in every process) for
    the latent point of theta and the log of its residual standard deviation as sigma; kept per law
    family and name (``get_law`` gives a new instance per call), like the samplers."""
    key = (type(law), law.name)
    if key not in _LATENT_STARTS:
        def start(theta, centre, N, D, log_loss):
            latent = law.latent_from_natural(theta, (centre[0], centre[1]))
            resid = log_loss - law.log_loss(theta, N, D)
            return {**latent, "sigma": jnp.log(jnp.clip(jnp.std(resid), 1e-3, 0.5))}

        _LATENT_STARTS[key] = jax.jit(start)
    return _LATENT_STARTS[key]
