"""Full-posterior inference of the pooled model (``models.pooled``) with NumPyro's NUTS.

The sampling itself is ``fitting.sampler`` (the driver every model shares: Laplace start, padding,
compiled-program cache, progress). Settings that make it fast on the Chinchilla data: float64; a
dense mass matrix (the posterior in the law's centred coordinates is close to Gaussian but
correlated) started at the Laplace approximation at the posterior mode and adapted *without*
NumPyro's default shrinkage towards 1e-3 I — the posterior standard deviations here are
0.01-0.06, so that shrinkage swamps the narrow, correlated directions and cuts the step size about
fivefold (leapfrog steps per draw with and without it: experiments/bench_cli.py); target acceptance
0.8; chains on separate host devices; every chain started near the point estimate, jittered. The
observations are padded to the next power of two and masked, so an in-process refit of new data of
similar size neither traces nor compiles; across processes ``sampler_cache`` and JAX's persistent
compilation cache (see ``_jax_setup``) do the same.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayes_scaling import extrapolation
from bayes_scaling._jax_setup import configure
from bayes_scaling.diagnostics import diagnose, warn_design_limits, warn_if_untrustworthy
from bayes_scaling.errors import InputError
from bayes_scaling.fitting import redo, sampler, sampler_cache
from bayes_scaling.fitting.init import initial_theta
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.fitting.sampler import (  # noqa: F401 -- re-exported: callers import them from here
    _SAMPLERS,
    MASS_ADAPTATION_MIN_WARMUP,
    NEWTON_STEPS,
    laplace_inverse_mass,
    newton_laplace,
    padded_capacity,
)
from bayes_scaling.fitting.settings import TARGET_ACCEPT, SamplerSettings
from bayes_scaling.laws import Law, get_law
from bayes_scaling.models import DEFAULT_NU, Likelihood, ModelSpec, pooled_model
from bayes_scaling.models import likelihood as likelihood_module
from bayes_scaling.models.likelihood import MISFIT_SITES, misfit_band
from bayes_scaling.posterior import Posterior
from bayes_scaling.priors import describe_priors, resolve_priors
from bayes_scaling.runs.table import Runs, as_runs, fit_input

# The redo policy (``fitting.redo``): the pooled fit's own copies of its constants, read at call
# time (tests and experiments set them here).
RETRY_TARGET_ACCEPT = redo.RETRY_TARGET_ACCEPT  # a fit with divergences is redone once with these smaller steps
# A fit short only of effective draws is redone with twice the draws per chain, at most this many
# times (4x the draws at the defaults), while its R-hat is at most MORE_DRAWS_RHAT.
MORE_DRAWS_DOUBLINGS = redo.MORE_DRAWS_DOUBLINGS
MORE_DRAWS_RHAT = redo.MORE_DRAWS_RHAT  # (read from fitting.redo: set it there)
# Longer chains that find a divergence are redone once more at RETRY_TARGET_ACCEPT (with
# retry_divergent): on by experiments/bench_small_fits.py --retry-after's declared rule (verdicts
# passed 60 of 62 fits against 57; results/bench_small_fits_retry_after.json).
RETRY_AFTER_MORE_DRAWS = redo.RETRY_AFTER_MORE_DRAWS
MODELS = ("extrapolating", "plain")
# How the extrapolating model's calibration refits the folds (``fit_nuts(refits=...)``): "gaussian", the
# Gaussian at each chain's Newton end point (from jittered starts: ``sampler.LAPLACE_START``; chains that
# stop short of the mode make the learned drift move with the seed, docs/extrapolation.md "Twenty-fourth
# run"), or "psis", importance-sampled from the Gaussian at the mode (``sampler.LAPLACE_CORRECTION``),
# with the drift's prior scales PSIS_PRIOR_FACTOR times ``extrapolation.PRIOR_SCALES`` (the factor the
# twenty-first and twenty-second runs chose on such refits).
REFITS = ("gaussian", "psis")
PSIS_PRIOR_FACTOR = 2.0
# The refits when a fit does not say (``refits=None``): "psis" since bench_extrapolation.py's twenty-fifth
# run (eighteenth session; results/bench_extrapolation_seed_replication.json): at fit seeds 6-11 on all 22
# development groups the median N_opt at 100x the largest run moved by at most 12% of its 90% interval's log
# width under it, against up to 34% under "gaussian" (Marin comma), which was the default before. None: as
# ``sampler.LAPLACE_CORRECTION`` says, with the drift priors as given (how the experiments' variants set
# the refits).
DEFAULT_REFITS = "psis"
# Whether fits have the misfit term along tokens per parameter (``ModelSpec.misfit_noise``) unless
# ``misfit_noise`` says: False (off), True or "everywhere" (the fit and the calibration's refits), or
# "final" (the final fit and its predictions only; the calibration's refits are the default's). An
# option, off until experiments/bench_extrapolation.py's rule adopts it.
MISFIT_NOISE: bool | str = False
MISFIT_MODES = {False: "off", True: "everywhere", "off": "off", "everywhere": "everywhere", "final": "final"}
# meta["misfit_noise_where"] by mode
MISFIT_WHERE = {"fit": "fit (no calibration refits)", "everywhere": "fit and calibration refits",
                "final": "final fit only"}


def misfit_mode(value) -> str:
    """``misfit_noise`` (None: ``MISFIT_NOISE``) as "off", "everywhere" or "final"."""
    value = MISFIT_NOISE if value is None else value
    if isinstance(value, (bool, np.bool_)):
        return MISFIT_MODES[bool(value)]
    if isinstance(value, str) and value in MISFIT_MODES:
        return MISFIT_MODES[value]
    raise InputError(f"misfit_noise must be False, True, 'everywhere' or 'final', got {value!r}")
_LATENT_STARTS: dict[tuple, object] = {}


def fit_nuts(
    runs: Runs,
    *,
    law: Law | str = "chinchilla",
    priors: Mapping[str, dist.Distribution] | None = None,
    likelihood: str = "student_t",
    nu: float = DEFAULT_NU,
    model: str = "extrapolating",
    drift_priors: Mapping[str, float] | None = None,
    settings: SamplerSettings | None = None,
    num_chains: int | None = None,
    num_warmup: int | None = None,
    num_draws: int | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    init_theta: Mapping[str, float] | str | None = None,
    target_accept: float | None = None,
    retry_divergent: bool | None = None,
    more_draws: bool | None = None,
    misfit_noise: bool | str | None = None,
    refits: str | None = None,
) -> Posterior:
    """Sample the posterior of the law's parameters given ``runs`` (all rows used: select first
    with ``runs.for_fit()``).

    ``settings``: the sampler's (``SamplerSettings``: chains, warm-up, draws, seed, target
    acceptance, progress, divergence retry, starting point; defaults 4 x (500 + 1000), seed 0, 0.8).
    The keyword arguments ``num_chains``, ``num_warmup``, ``num_draws``, ``seed``, ``progress``,
    ``init_theta``, ``target_accept`` and ``retry_divergent`` are the same settings by their older
    names; given, they override ``settings``.

    ``model``: "extrapolating" (default) adds the law's own error beyond the fitted runs, its
    scale calibrated on leave-future-out refits of ``runs`` (``bayes_scaling.extrapolation``; the
    refits are ``fit_laplace`` with the same settings; a law bound to per-run covariates stays
    plain); "plain" is the law alone. Both agree inside the fitted runs' range. ``drift_priors``
    overrides the half-Cauchy scales of the drift (``extrapolation.PRIOR_SCALES``).

    ``target_accept``: NUTS's target acceptance (step-size adaptation). With ``retry_divergent``,
    a fit with divergent transitions is redone once at ``RETRY_TARGET_ACCEPT`` (smaller steps, about
    1.5x the time; on Porian et al.'s 15 sweeps it took the divergences from 114, in 11 of them, to
    0: experiments/results/bench_extrapolation_selection.json against bench_extrapolation.json) and
    says so in ``meta["retried"]``. With ``more_draws`` (``settings.more_draws``, default on), a fit
    whose only failed checks are the effective sample sizes and R-hat (no divergence, R-hat at most
    ``MORE_DRAWS_RHAT`` = 1.1: short of draws, not stuck in separate modes) is redone with twice the draws
    per chain, at most ``MORE_DRAWS_DOUBLINGS`` times, until the checks pass (``meta["more_draws"]``
    says why; the ESS thresholds are per chain, so longer chains, not more of them; measured on
    25-run subsets of the Chinchilla data by ``experiments/bench_small_fits.py``); where the longer
    chains find a divergence, they are redone once at ``RETRY_TARGET_ACCEPT`` (with
    ``retry_divergent``; ``RETRY_AFTER_MORE_DRAWS``). A fit that still fails its checks warns
    (``SamplerWarning``).

    ``init_theta`` (``settings.init``): where the chains start (jittered): "projection" (default;
    the cheap variable-projection estimate of ``fitting.init``), "approach3" (Chinchilla's Approach 3
    point fit, 4,500 L-BFGS starts; Chinchilla law only), or a dict of natural parameters.

    ``misfit_noise`` (default ``MISFIT_NOISE``): each run's noise scale grows with the distance of
    its ln(D/N) beyond the fitted runs' quartiles (``models.pooled``). True or "everywhere": in the
    fit, in the calibration's refits and in ``Posterior.predict``; "final": in the fit and
    ``Posterior.predict`` only, the calibration's refits being the default's (the drift is learned
    from the plain law's fold errors; docs/extrapolation.md). Recorded in ``meta["misfit_noise"]``
    (True, or "final" for an extrapolating fit with the term in the final fit only) and
    ``meta["misfit_noise_where"]``.

    ``refits`` (``REFITS``; None: ``DEFAULT_REFITS``, "psis"): how the calibration refits its folds, "psis"
    (importance-sampled Laplace, with the drift priors doubled unless ``drift_priors`` says otherwise) or
    "gaussian" (jittered Laplace, the default before the twenty-fifth run: its refits can miss their mode,
    which makes the answer beyond the runs move with the seed; docs/extrapolation.md). Recorded in
    ``meta["extrapolation"]["refits"]``.
    """
    runs, excluded = fit_input(runs)
    if model not in MODELS:
        raise InputError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    refits = refits_mode(refits)
    s = SamplerSettings.resolve(settings, num_chains=num_chains, num_warmup=num_warmup, num_draws=num_draws,
                                seed=seed, progress=progress, init_theta=init_theta, target_accept=target_accept,
                                retry_divergent=retry_divergent, more_draws=more_draws)
    mode = misfit_mode(misfit_noise)
    limits = warn_design_limits(runs.N, runs.D)
    fit = partial(_fit, runs, law=law, priors=priors, likelihood=likelihood, nu=nu, misfit_noise=mode != "off")
    drift = partial(_drift_scales, runs, law=law, priors=priors, likelihood=likelihood, nu=nu,
                    misfit_noise=mode == "everywhere", drift_priors=drift_priors, refits=refits)
    extrapolating = model != "plain" and not hasattr(get_law(law) if isinstance(law, str) else law, "for_runs")
    early = _early_calibration(drift, s) if extrapolating else None
    attempt = redo.redone(fit, _check, s, doublings=MORE_DRAWS_DOUBLINGS, retry_after=RETRY_AFTER_MORE_DRAWS,
                          retry_target=RETRY_TARGET_ACCEPT)
    posterior, diagnosis = attempt.result, attempt.check.detail
    posterior.meta.update(attempt.notes)
    if excluded is not None:
        posterior.excluded = excluded  # saved beside the fit, as `bayes-scaling fit` saves them
    if limits:
        posterior.meta["design_limits"] = limits
    warn_if_untrustworthy(diagnosis.ok, diagnosis.verdict())
    if not extrapolating:
        return posterior  # no refits: "final" is "everywhere"
    if mode != "off":
        posterior.meta["misfit_noise"] = "final" if mode == "final" else True
        posterior.meta["misfit_noise_where"] = MISFIT_WHERE[mode]
    settings = s.replace(draws=posterior.meta["num_draws"])  # as add_drift reads them back
    calibration = early if early is not None and settings == s else drift(settings)
    return _attach(posterior, calibration, settings.seed)


def _early_calibration(drift, settings: SamplerSettings):
    """``drift(settings)`` run before the fit it calibrates, or None where it raised. Its Laplace
    refits share the fit's compiled programs and need only two of them, so on a first call they run
    while NUTS's ``advance`` is still compiling (docs/benchmarks.md). Its result is the one the
    calibration after the fit would give (its own seeds, the same runs and settings); where the fit
    ends with other settings (more draws) it is calibrated again. An error here is left for the
    calibration after the fit to raise, so the fit's own errors come first, as before."""
    try:
        return drift(settings)
    except Exception:
        return None


def refits_mode(value: str | None) -> str | None:
    """``refits`` checked: one of ``REFITS``, or None (the library's setting)."""
    if value is not None and value not in REFITS:
        raise InputError(f"refits must be one of {', '.join(REFITS)}, got {value!r}")
    return value


def _check(posterior: Posterior) -> redo.Check:
    """The fit's ``diagnose`` verdict as the redo policy reads it (``fitting.redo``)."""
    return redo.Check.from_diagnosis(diagnose(posterior))


def _drift_scales(runs: Runs, settings: SamplerSettings, *, law, priors, likelihood: str, nu: float,
                  misfit_noise: bool = False, drift_priors=None, refits: str | None = None) -> tuple:
    """The drift's scales calibrated on leave-future-out Laplace refits of ``runs`` (the plain law
    with these priors, likelihood and sampler settings; they reuse the fit's compiled programs;
    ``refits``: ``REFITS``), and the refits' kind: what ``_attach`` takes."""
    capacity = padded_capacity(len(runs))
    refit_settings = settings.replace(init="projection", progress=False)

    done = []

    def refit(train: Runs) -> Posterior:
        if settings.progress:  # the refits can take a while on big tables: say where the fit is
            done.append(len(train))
            print(f"calibrating the drift beyond the runs: leave-future-out refit {len(done)} ({len(train)} runs)...",
                  file=sys.stderr, flush=True)
        return _fit(train, law=law, priors=priors, likelihood=likelihood, nu=nu, settings=refit_settings,
                    laplace=True, capacity=capacity, misfit_noise=misfit_noise)

    refits = DEFAULT_REFITS if refits is None else refits
    if refits == "psis" and drift_priors is None:
        drift_priors = {name: PSIS_PRIOR_FACTOR * scale for name, scale in extrapolation.PRIOR_SCALES.items()}
    correction = sampler.laplace_correction() if refits is None else ("psis" if refits == "psis" else None)
    with sampler.laplace_correction_set(correction):
        scales = extrapolation.calibrate(runs, refit, prior_scales=drift_priors)
    return scales, "psis" if correction == "psis" else "gaussian"


def _attach(posterior: Posterior, calibration: tuple, seed: int) -> Posterior:
    """``posterior`` with the drift of ``calibration`` (``_drift_scales``'s) attached to its draws."""
    scales, kind = calibration
    posterior = extrapolation.attach_drift(posterior, scales, seed=seed)
    posterior.meta["extrapolation"]["refits"] = kind
    return posterior


def add_drift(posterior: Posterior, *, drift_priors: Mapping[str, float] | None = None,
              seed: int | None = None, refits: str | None = None, runs: Runs | None = None) -> Posterior:
    """An existing plain-law fit made extrapolation-aware, as ``fit_nuts`` makes its own: the drift
    calibrated on leave-future-out refits of the fit's own runs (``fit_laplace`` of the plain law,
    the law's default priors, the fit's likelihood) and attached to its draws
    (``extrapolation.attach_drift``). For fits that did not come from ``fit_nuts``: each group of a
    hierarchical fit (``bayes-scaling fit --group-by``; its theta draws stay the hierarchical
    model's, the drift is the group's own). A fit already extrapolating, or whose law is bound to
    per-run covariates, is returned as it is. ``seed``: the calibration's and the drift's (default:
    the fit's own); ``refits``: as ``fit_nuts``'s; ``runs``: the runs the folds refit (default: the
    fit's own; a WSD fit passes its cosine-equivalent runs, ``wsd.cosine_equivalent``)."""
    refits = refits_mode(refits)
    if posterior.meta.get("model") == extrapolation.MODEL_NAME or hasattr(posterior.law, "for_runs"):
        return posterior
    likelihood, meta = Likelihood.from_meta(posterior.meta), posterior.meta
    recorded = {field: meta[key] for key, field in (("num_chains", "chains"), ("num_draws", "draws"),
                                                    ("num_warmup", "warmup"), ("seed", "seed")) if key in meta}
    settings = SamplerSettings(**recorded)  # the fit's own, as fit_nuts refits with its own
    if seed is not None:
        settings = settings.replace(seed=seed)
    calibration = _drift_scales(posterior.runs if runs is None else runs, settings, law=posterior.law, priors=None, likelihood=likelihood.kind,
                                nu=likelihood.nu, drift_priors=drift_priors, refits=refits)
    return _attach(posterior, calibration, settings.seed)


def fit_laplace(runs: Runs, *, law: Law | str = "chinchilla", priors=None, likelihood: str = "student_t",
                nu: float = DEFAULT_NU, settings: SamplerSettings | None = None, model: str | None = None,
                misfit_noise: bool | str | None = None, **keywords) -> Posterior:
    """The Laplace approximation to the plain law's posterior: draws from the Gaussian at the end
    of each chain's Newton steps towards the mode (``newton_laplace``; from jittered starts, or with
    ``sampler.LAPLACE_START`` "mode" from one point to the mode) in the law's centred latent
    coordinates, mapped to natural parameters. Takes ``fit_nuts``'s settings (``settings.warmup`` only selects the
    compiled programs it shares with ``fit_nuts``; ``model`` is ignored); milliseconds where NUTS
    takes a second, for the extrapolation model's calibration refits. Not a substitute for NUTS
    where the posterior is far from Gaussian (a law the runs cannot identify). ``misfit_noise``: any
    mode but "off" gives the plain law's fit the misfit term (it has no calibration refits)."""
    s = SamplerSettings.resolve(settings, **keywords)
    return _fit(as_runs(runs), law=law, priors=priors, likelihood=likelihood, nu=nu, settings=s, laplace=True,
                misfit_noise=misfit_mode(misfit_noise) != "off")


def pooled_description(spec: ModelSpec) -> tuple:
    """What the pooled model's traced programs depend on besides the data shapes."""
    plain = ("pooled", spec.law.name, sampler_cache.law_source_digest(spec.law),
             sorted((k, sampler_cache.prior_fingerprint(v)) for k, v in spec.priors.items()),
             *spec.noise_model.key())
    misfit = ("misfit_noise", likelihood_module.MISFIT_PRIOR_SCALE, likelihood_module.MISFIT_BAND)  # band: data
    return (*plain, misfit) if spec.misfit_noise else plain


def _fit(runs: Runs, *, law, priors=None, likelihood="student_t", nu=DEFAULT_NU, settings: SamplerSettings,
         laplace=False, capacity=None, misfit_noise: bool = False) -> Posterior:
    """One fit of the plain law: NUTS, or (``laplace``) the Laplace approximation; ``capacity``
    pads the observations further, to share a larger fit's compiled programs; ``misfit_noise``:
    the per-run noise along tokens per parameter (``models.pooled``)."""
    configure()
    law = get_law(law) if isinstance(law, str) else law
    if len(runs) < len(law.param_names) + 1:
        raise InputError(f"need at least {len(law.param_names) + 1} runs to fit {law.name}, got {len(runs)}")
    resolved = resolve_priors(law, priors)
    spec = ModelSpec(law=law, priors=resolved, likelihood=likelihood, nu=nu, misfit_noise=misfit_noise)
    N, D, log_loss = runs.N, runs.D, np.log(runs.loss)
    centre = (float(np.mean(np.log(N))), float(np.mean(np.log(D))))  # models.data_centre, on the host
    theta0 = _starting_point(law, runs, settings.init)
    # A Laplace fit with sampler.LAPLACE_START "mode" starts every chain at the point (the default: jittered).
    scale = 0.0 if laplace and sampler.laplace_start() == "mode" else None
    init_params = jittered_init(law, theta0, centre, runs, settings.chains, settings.seed, scale=scale)
    if misfit_noise:  # unconstrained log k, started at half the prior's scale
        init_params.update(sampler.jitter({site: np.log(likelihood_module.MISFIT_PRIOR_SCALE / 2) for site in MISFIT_SITES},
                                          settings.chains, settings.seed + 1, scale=scale))

    # Laws bound to per-run covariates (data-constrained: unique tokens) cannot be padded.
    capacity = len(runs) if hasattr(law, "for_runs") else max(capacity or 0, padded_capacity(len(runs)))
    data = padded_args(N, D, log_loss, centre, capacity)
    band = misfit_band(N, D) if misfit_noise else None
    if misfit_noise:
        data = (*data, np.asarray(band, np.float64))
    draws = sampler.sample(partial(pooled_model, spec), init_params, data,
                           description=pooled_description(spec), settings=settings, laplace=laplace)
    meta = {
        **Likelihood(likelihood, nu).to_meta(),
        "centre": list(centre),
        "priors": describe_priors(resolved),
        "num_chains": settings.chains,
        "num_warmup": settings.warmup,
        "num_draws": settings.draws,
        "seed": settings.seed,
        "sampling_seconds": draws.seconds,
        **({"laplace_start": sampler.laplace_start(), "laplace_correction": sampler.laplace_correction()} if laplace else {}),
        **({"importance_khat": draws.importance_khat} if draws.importance_khat is not None else {}),
        **({"laplace_chain_gap_nats": draws.chain_gap} if draws.chain_gap is not None else {}),
        "target_accept": settings.target_accept,
    }
    if misfit_noise:
        meta["misfit_noise"] = True
        meta["misfit_noise_where"] = MISFIT_WHERE["fit"]  # fit_nuts says so where it calibrates
        meta["misfit_band_log_tokens_per_param"] = band
        meta["misfit_prior"] = f"{', '.join(MISFIT_SITES)} ~ HalfNormal({likelihood_module.MISFIT_PRIOR_SCALE:g})"
        meta["misfit_band_quantiles"] = list(likelihood_module.MISFIT_BAND)
        meta["misfit_cap"] = likelihood_module.MISFIT_CAP
    if laplace:  # a calibration refit: no pointwise log-likelihood kept (nothing reads it)
        loglik = None
    else:
        meta["warmup_mean_leapfrog_steps"] = draws.warmup_steps
        loglik = draws.loglik[..., : len(runs)]
    return build_posterior(law, runs, draws.samples, draws.extra, loglik, method="laplace" if laplace else "nuts",
                           meta=meta)


def padded_args(N, D, log_loss, centre, capacity: int) -> tuple:
    """The pooled model's data arguments (N, D, centre, log_loss, mask) padded to ``capacity``:
    the placeholders (N = D = 1, log-loss 0) have mask False and add nothing to the likelihood."""
    n = len(N)
    N, D, log_loss = sampler.pad_rows([np.asarray(x, np.float64) for x in (N, D, log_loss)], capacity,
                                      [1.0, 1.0, 0.0])
    return N, D, np.asarray(centre, np.float64), log_loss, sampler.row_mask(n, capacity)


def _starting_point(law: Law, runs: Runs, init_theta) -> dict:
    if isinstance(init_theta, Mapping):
        return dict(init_theta)
    if init_theta == "projection":
        return initial_theta(law, runs)
    if init_theta == "approach3" and law.name == "chinchilla":
        from bayes_scaling.fitting.approach3 import fit_approach3

        return fit_approach3(runs.N, runs.D, runs.loss).theta
    raise InputError(f"init_theta must be 'projection', 'approach3' (chinchilla only) or a dict, got {init_theta!r}")


def jittered_init(law: Law, theta0, centre, runs: Runs, num_chains: int, seed: int,
                  scale: float | None = None) -> dict:
    """Unconstrained starting points: the point estimate plus N(0, scale^2) jitter per chain
    (``scale`` default ``sampler.JITTER``, 0.05)."""
    theta0 = {k: np.float64(v) for k, v in theta0.items() if k in law.param_names}
    capacity = len(runs) if hasattr(law, "for_runs") else padded_capacity(len(runs))  # as ``_fit``'s data
    N, D, centre, log_loss, mask = padded_args(runs.N, runs.D, np.log(runs.loss), centre, capacity)
    latent = _latent_start(law)(theta0, centre, N, D, log_loss, mask)
    return sampler.jitter({k: float(v) for k, v in latent.items()}, num_chains, seed, scale)


def _latent_start(law: Law):
    """One compiled program (not a dozen eager ops, each compiled on its own in every process) for
    the latent point of theta and the log of its residual standard deviation as sigma, the rows
    padded as the sampler's (``padded_args``: folds of different sizes share it); kept per law
    family and name (``get_law`` gives a new instance per call), like the samplers."""
    key = (type(law), law.name)
    if key not in _LATENT_STARTS:
        def start(theta, centre, N, D, log_loss, mask):
            latent = law.latent_from_natural(theta, (centre[0], centre[1]))
            resid = log_loss - law.log_loss(theta, N, D)
            n = mask.sum()
            mean = jnp.where(mask, resid, 0.0).sum() / n
            sd = jnp.sqrt(jnp.where(mask, (resid - mean) ** 2, 0.0).sum() / n)
            return {**latent, "sigma": jnp.log(jnp.clip(sd, 1e-3, 0.5))}

        from bayes_scaling.posterior import law_description

        _LATENT_STARTS[key] = sampler_cache.stored_jit(start, law_description(law, "nuts latent start"))
    return _LATENT_STARTS[key]
