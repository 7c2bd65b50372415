"""The observation model on log-loss, defined once: every model, the Posterior and the design code
read it from here.

    log L_i = mu_i + sigma eps_i,   eps_i ~ StudentT(nu)   (kind="student_t", default nu = 5)
                                    eps_i ~ Normal(0, 1)   (kind="normal")
                                    eps_i ~ (1 - p) Normal(0, 1) + p Normal(0, k^2)
                                                           (kind="contaminated": Tukey's contaminated
                                                            normal, p = CONTAMINATION_SHARE,
                                                            k = CONTAMINATION_SCALE)

The contaminated normal is a two-scale mixture: a run is the law plus the core noise sigma, or, with
probability p, a run the law misfits, with k times the scale. Where a few runs sit far off the law
(Gadre's D/N = 5 runs, docs/extrapolation.md), Student-t tails absorb them only partly and inflate
sigma; the mixture lets sigma fit the core spread.

``distribution`` is the NumPyro distribution of log L_i given mu_i and sigma (what the models
observe), ``standard_draws`` draws eps for predictive and posterior-predictive draws on the host,
and ``variance_factor`` is Var(eps) = nu / (nu - 2) (1 for the normal; no finite variance for
nu <= 2, where a large stand-in is returned), which the design code's Gaussian approximations of
the noise use (``noise_variance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_scaling.errors import InputError

LIKELIHOODS = ("student_t", "normal", "contaminated")
DEFAULT_NU = 5.0
CONTAMINATION_SHARE = 0.05  # p: the prior share of runs the law misfits (one in twenty)
CONTAMINATION_SCALE = 10.0  # k: their noise scale, in core scales
INFINITE_VARIANCE_FACTOR = 1e3  # Var(eps) stand-in where Student-t(nu <= 2) has none


@dataclass(frozen=True)
class Likelihood:
    """The noise family of log-loss around the law: ``kind`` "student_t" (with ``nu`` degrees of
    freedom), "normal", or "contaminated" (share ``share`` of runs at ``scale`` times sigma; ``nu``
    unused)."""

    kind: str = "student_t"
    nu: float = DEFAULT_NU
    share: float = CONTAMINATION_SHARE
    scale: float = CONTAMINATION_SCALE

    def __post_init__(self):
        if self.kind not in LIKELIHOODS:
            raise InputError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.kind!r}")
        if not self.nu > 0:
            raise InputError(f"Student-t degrees of freedom nu must be positive, got {self.nu}")
        if not (0 < self.share < 1 and self.scale > 1):
            raise InputError(f"the contaminated normal needs 0 < share < 1 and scale > 1, got {self.share}, {self.scale}")

    def distribution(self, mu, sigma):
        """NumPyro's distribution of log L given the law's log-loss ``mu`` and the scale ``sigma``."""
        import numpyro.distributions as dist

        if self.kind == "normal":
            return dist.Normal(mu, sigma)
        if self.kind == "contaminated":
            import jax.numpy as jnp

            mu, sigma = jnp.broadcast_arrays(jnp.asarray(mu), jnp.asarray(sigma))
            mixing = dist.Categorical(probs=jnp.array([1.0 - self.share, self.share]))
            return dist.MixtureSameFamily(mixing, dist.Normal(mu[..., None], sigma[..., None] * jnp.array([1.0, self.scale])))
        return dist.StudentT(self.nu, mu, sigma)

    def standard_draws(self, shape, rng: np.random.Generator) -> np.ndarray:
        """Draws of the standardised noise eps (log L = mu + sigma eps)."""
        if self.kind == "normal":
            return rng.standard_normal(shape)
        if self.kind == "contaminated":
            eps = rng.standard_normal(shape)
            return np.where(rng.random(shape) < self.share, self.scale * eps, eps)
        return rng.standard_t(float(self.nu), size=shape)

    def standard_logpdf(self, eps) -> np.ndarray:
        """log density of the standardised noise at ``eps`` (host, SciPy): log p(y | mu, sigma) =
        standard_logpdf((y - mu) / sigma) - log sigma."""
        from scipy import stats

        if self.kind == "contaminated":
            eps = np.asarray(eps, np.float64)
            return np.logaddexp(np.log1p(-self.share) + stats.norm.logpdf(eps),
                                np.log(self.share) + stats.norm.logpdf(eps / self.scale) - np.log(self.scale))
        return (stats.norm() if self.kind == "normal" else stats.t(float(self.nu))).logpdf(eps)

    def variance_factor(self) -> float:
        """Var(eps): the noise variance per unit sigma^2."""
        if self.kind == "normal":
            return 1.0
        if self.kind == "contaminated":
            return 1.0 - self.share + self.share * self.scale**2
        return self.nu / (self.nu - 2.0) if self.nu > 2 else INFINITE_VARIANCE_FACTOR

    @classmethod
    def from_meta(cls, meta: dict) -> Likelihood:
        """The likelihood a saved fit records (``meta["likelihood"]``, ``meta["nu"]``); a fit
        saved without them used the default Student-t."""
        share, scale = meta.get("contamination", (CONTAMINATION_SHARE, CONTAMINATION_SCALE))
        return cls(str(meta.get("likelihood", "student_t")), float(meta.get("nu", DEFAULT_NU)), float(share), float(scale))

    def key(self) -> tuple:
        """What a compiled model depends on: (kind, nu), and the contaminated normal's p and k (a
        program compiled for one mixture must not be loaded for another)."""
        base = (self.kind, float(self.nu))
        return (*base, float(self.share), float(self.scale)) if self.kind == "contaminated" else base

    def label(self) -> str:
        """How outputs name it: "student_t (nu = 5)", "normal", "contaminated (p = 0.05, k = 10)"."""
        if self.kind == "student_t":
            return f"student_t (nu = {self.nu:g})"
        if self.kind == "contaminated":
            return f"contaminated (p = {self.share:g}, k = {self.scale:g})"
        return self.kind

    def to_meta(self) -> dict:
        meta = {"likelihood": self.kind, "nu": float(self.nu)}
        if self.kind == "contaminated":
            meta["contamination"] = [float(self.share), float(self.scale)]
        return meta


def noise_variance(sigma, likelihood: Likelihood, weights=None) -> float:
    """r = E[sigma^2] Var(eps): the variance of the observation noise on log-loss over posterior
    draws of sigma (optionally weighted), for Gaussian approximations of the likelihood."""
    sigma2 = np.asarray(sigma, np.float64) ** 2
    mean = float(np.mean(sigma2)) if weights is None else float(np.sum(np.asarray(weights) * sigma2))
    return mean * likelihood.variance_factor()


# --- the misfit term along tokens per parameter (``ModelSpec.misfit_noise``; docs/extrapolation.md) ----
# The law misfits runs far from the fitted runs' typical tokens per parameter r = D/N (under-trained
# runs' warm-up and schedule effects, over-trained runs' data repetition): a per-run scale
#     s_i^2 = sigma^2 + (k_under max(0, lo - ln r_i))^2 + (k_over max(0, ln r_i - hi))^2,
# [lo, hi] = the quartiles of the fitted runs' ln r (the band where half of them lie, and the law is
# fitted best), k_under, k_over ~ HalfNormal(MISFIT_PRIOR_SCALE) (0: the plain noise).
MISFIT_SITES = ("misfit_under", "misfit_over")
MISFIT_PRIOR_SCALE = 0.05  # extra log-loss sd per e-fold of D/N beyond the band (docs/extrapolation.md: why)
MISFIT_BAND = (0.25, 0.75)  # the band's quantiles of the fitted runs' ln(D/N)
# "in data": each distance is capped at the fitted runs' own extreme (min and max ln r), so the misfit
# term never grows beyond what the fitted runs show (beyond them the drift speaks); "none": linear
# growth without end. An option, judged by bench_extrapolation.py's eighth run.
MISFIT_CAP = "none"
MISFIT_CAPS = ("none", "in data")
NO_CAP = 1e6  # a distance cap that never binds (finite: the scale is computed with plain operators)


def misfit_band(N, D) -> list[float]:
    """[lo, hi, cap_under, cap_over]: the ``MISFIT_BAND`` quantiles of the runs' ln(D/N) and the
    largest distances below and above the band that the misfit term counts (``MISFIT_CAP``)."""
    if MISFIT_CAP not in MISFIT_CAPS:
        raise ValueError(f"likelihood.MISFIT_CAP must be one of {', '.join(map(repr, MISFIT_CAPS))}, got {MISFIT_CAP!r}")
    log_r = np.log(np.asarray(D, np.float64)) - np.log(np.asarray(N, np.float64))
    lo, hi = (float(q) for q in np.quantile(log_r, MISFIT_BAND))
    if MISFIT_CAP == "none":
        return [lo, hi, NO_CAP, NO_CAP]
    return [lo, hi, lo - float(log_r.min()), float(log_r.max()) - hi]


def misfit_scale(sigma, k_under, k_over, log_r, band):
    """The per-run noise scale s_i (above) for draws of sigma, k_under, k_over and points' ln(D/N)
    ``log_r``, all broadcasting; ``band``: (lo, hi) or (lo, hi, cap_under, cap_over), the caps
    bounding each distance (``misfit_band``). Plain operators only: it serves NumPy (predictions)
    and JAX (the model) alike."""
    below, above = band[0] - log_r, log_r - band[1]
    under, over = (abs(below) + below) / 2, (abs(above) + above) / 2
    if len(band) > 2:  # min(distance, cap)
        under = (under + band[2] - abs(under - band[2])) / 2
        over = (over + band[3] - abs(over - band[3])) / 2
    return (sigma**2 + (k_under * under) ** 2 + (k_over * over) ** 2) ** 0.5
