"""NUTS on the Chinchilla law: calibration on data simulated from the prior, and the real data."""

import jax
import numpy as np
import pandas as pd
import pytest

from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.laws import Chinchilla
from bayes_scaling.priors import resolve_priors
from bayes_scaling.runs import load_chinchilla, validate_runs

LAW = Chinchilla()
N_GRID = np.logspace(7, 10, 6)
D_GRID = np.logspace(9, 12, 5)


def simulated_runs(seed: int):
    """Truth theta ~ prior, sigma ~ prior; log L ~ StudentT(5, log L(N, D; theta), sigma)."""
    priors = resolve_priors(LAW)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(priors))
    truth = {name: float(prior.sample(k)) for (name, prior), k in zip(priors.items(), keys)}
    N, D = (g.ravel() for g in np.meshgrid(N_GRID, D_GRID))
    rng = np.random.default_rng(seed)
    mu = np.asarray(LAW.log_loss(truth, N, D))
    log_loss = mu + truth["sigma"] * rng.standard_t(5.0, size=mu.shape)
    runs = validate_runs(pd.DataFrame({"N": N, "D": D, "loss": np.exp(log_loss)}), max_loss=np.inf)
    return truth, runs


@pytest.mark.slow
def test_ninety_percent_intervals_cover_prior_truths():
    """Simulation-based calibration, lite: 20 datasets with truths drawn from the prior; each
    parameter's 90% interval must cover its truth in at least 75% of them."""
    n_sets = 20
    covered = {name: 0 for name in (*LAW.param_names, "sigma")}
    for seed in range(n_sets):
        truth, runs = simulated_runs(seed)
        post = fit_nuts(runs, num_chains=2, num_warmup=250, num_draws=250, seed=seed)
        for name in covered:
            lo, hi = np.quantile(post.draws(name), [0.05, 0.95])
            covered[name] += lo <= truth[name] <= hi
    rates = {k: v / n_sets for k, v in covered.items()}
    assert all(rate >= 0.75 for rate in rates.values()), rates


@pytest.fixture(scope="module")
def chinchilla_posterior():
    return fit_nuts(load_chinchilla().for_fit(), num_chains=4, num_warmup=500, num_draws=500, seed=0)


@pytest.mark.slow
def test_chinchilla_posterior_agrees_with_epoch_and_has_no_divergences(chinchilla_posterior):
    post = chinchilla_posterior
    assert int(post.idata["sample_stats"]["diverging"].sum()) == 0
    med = {k: float(np.median(v)) for k, v in post.theta().items()}
    assert med["E"] == pytest.approx(1.817, rel=0.02)
    assert med["alpha"] == pytest.approx(0.348, rel=0.05)
    assert med["beta"] == pytest.approx(0.366, rel=0.05)
    # Epoch's tokens-per-parameter at Chinchilla's budget is about 20, not Hoffmann's fit: the law's own
    # frontier (no drift) from these draws. The default model's frontier there moves with its learned
    # drift (docs/extrapolation.md, "A limit to know"): its interval must stay wide enough to hold 20.
    from bayes_scaling.frontier import frontier_draws

    law_only = frontier_draws(post.law, post.theta(), [5.76e23])["tokens_per_param"][:, 0]
    assert 12 < np.median(law_only) < 30
    row = post.frontier([5.76e23]).iloc[0]
    assert row["tokens_per_param_lo"] < 20 < row["tokens_per_param_hi"]
    assert row["N_opt_lo"] < row["N_opt_median"] < row["N_opt_hi"]


@pytest.mark.slow
def test_groups_are_all_fitted_draws_have_expected_shapes(chinchilla_posterior):
    post = chinchilla_posterior
    assert post.num_draws == 2000
    assert post.idata["log_likelihood"]["log_loss"].shape == (4, 500, 240)
    assert set(post.idata.children) >= {"posterior", "sample_stats", "log_likelihood", "observed_data"}


def test_starting_points():
    from bayes_scaling.errors import InputError
    from bayes_scaling.fitting.nuts import _starting_point

    runs = load_chinchilla().for_fit()
    projection = _starting_point(LAW, runs, "projection")
    point = _starting_point(LAW, runs, "approach3")
    assert point["E"] == pytest.approx(1.817, rel=0.01)
    assert 0.1 < projection["alpha"] < 0.8 and projection["E"] > 0
    with pytest.raises(InputError, match="init_theta must be"):
        _starting_point(LAW, runs, "nope")


@pytest.mark.slow
def test_importing_arviz_first_does_not_break_numpyro():
    """ArviZ loads NumPyro lazily; bayes_scaling must still sample when ArviZ came first."""
    import subprocess
    import sys

    code = (
        "import arviz\n"
        "from bayes_scaling.fitting.nuts import fit_nuts\n"
        "from bayes_scaling.runs import load_chinchilla\n"
        "fit_nuts(load_chinchilla().for_fit(), num_chains=1, num_warmup=20, num_draws=20)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_laplace_mass_matrix_is_the_covariance_of_a_gaussian_posterior():
    """On a Gaussian posterior the Laplace approximation is exact: from a start away from the
    mean, the Newton steps reach the mode and the inverse mass matrix is the covariance."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from bayes_scaling.fitting.nuts import laplace_inverse_mass

    cov = np.array([[0.04, 0.018, 0.0], [0.018, 0.01, -0.001], [0.0, -0.001, 0.0025]])

    def model():
        numpyro.sample("x", dist.MultivariateNormal(jnp.array([1.0, -2.0, 0.5]), jnp.asarray(cov)))

    inverse = laplace_inverse_mass(model, (), {"x": jnp.array([0.0, 0.0, 0.0])})
    np.testing.assert_allclose(np.asarray(inverse), cov, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_chains_not_matching_the_device_count():
    """3 chains run on 3 of the 4 host devices, 5 chains on one device (vmapped)."""
    runs = load_chinchilla().for_fit()
    for chains in (3, 5):
        post = fit_nuts(runs, num_chains=chains, num_warmup=60, num_draws=40, seed=1, more_draws=False)
        assert post.idata["posterior"]["E"].shape == (chains, 40)
        assert np.all(np.isfinite(post.draws("E")))


def _draws_in_subprocess(cache, extra_env=None) -> str:
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, numpy as np\n"
        "from bayes_scaling.fitting.nuts import fit_nuts\n"
        "from bayes_scaling.runs import load_chinchilla\n"
        "p = fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=100, num_draws=100, seed=7,\n"
        "             more_draws=False)\n"
        "print(hashlib.sha1(np.stack([p.draws(k) for k in ('E', 'A', 'B', 'alpha', 'beta')]).tobytes()).hexdigest())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "BAYES_SCALING_NO_COMPILE_CACHE"}
    env |= {"BAYES_SCALING_CACHE": str(cache), **(extra_env or {})}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.slow
def test_stored_sampler_gives_the_same_draws_as_a_fresh_trace(tmp_path):
    """Same seed, same draws: traced and exported (first process), read back from disk (second),
    and with every cache off. One program set is stored, the sampler's: the default's calibration
    refits weigh their importance draws with its ``potential`` (``sampler.stencil_potential``), not a
    program of their own."""
    first = _draws_in_subprocess(tmp_path)
    stored = list((tmp_path / "samplers").glob("*.bin"))
    assert len(stored) == 1
    assert len(list((tmp_path / "samplers").glob("*.exe"))) >= 2  # both compiled, and the laws' programs (stored_jit)
    assert _draws_in_subprocess(tmp_path) == first  # loaded: neither traced nor lowered
    assert _draws_in_subprocess(tmp_path / "off", {"BAYES_SCALING_NO_COMPILE_CACHE": "1"}) == first
    assert not (tmp_path / "off" / "samplers").exists()
    for path in (tmp_path / "samplers").glob("*.exe"):  # lost: JAX's own cache has them, which is not re-stored
        path.unlink()
    assert _draws_in_subprocess(tmp_path) == first
    assert not list((tmp_path / "samplers").glob("*.exe"))


def test_compiled_programs_are_stored_and_loaded(tmp_path, monkeypatch):
    """A compiled program is stored and loaded back instead of compiled again, computing the same;
    a corrupt file is compiled again; a program JAX read from its own persistent cache is not stored
    (XLA's CPU client cannot serialise a loaded executable)."""
    import jax.numpy as jnp

    from bayes_scaling.fitting import sampler_cache

    monkeypatch.setattr(sampler_cache, "directory", lambda: tmp_path)
    monkeypatch.delenv("BAYES_SCALING_NO_COMPILE_CACHE", raising=False)
    spec = jax.ShapeDtypeStruct((3, 3), np.float64)
    compiled = []

    def compile(name):
        compiled.append(name)
        return [jax.jit(sampler_cache.named(lambda x: jnp.linalg.cholesky(x) * 2, name)).lower(spec).compile()]

    x = np.array([[4.0, 2.0, 0.0], [2.0, 5.0, 1.0], [0.0, 1.0, 3.0]])
    key = sampler_cache.executables_key(f"a cholesky {tmp_path}")  # (new to JAX's cache too)
    (fresh,) = sampler_cache.load_or_compile(key, compile, [jax.devices()[:1]])
    (loaded,) = sampler_cache.load_or_compile(key, compile, [jax.devices()[:1]])
    assert len(compiled) == 1 and compiled[0] == f"program_{key}"
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(fresh(x)))
    if jax.config.jax_compilation_cache_dir is None:
        return
    (tmp_path / f"{key}.exe").write_bytes(b"not stored programs")
    (again,) = sampler_cache.load_or_compile(key, compile, [jax.devices()[:1]])
    assert len(compiled) == 2  # compiled again: JAX's own cache had it, so it is not stored over the bad file
    assert (tmp_path / f"{key}.exe").read_bytes() == b"not stored programs"
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(fresh(x)))


EDITED_SAMPLE = """
import json, sys
import numpy as np
from bayes_scaling import configure
configure()
import numpyro
import numpyro.distributions as dist
from bayes_scaling.fitting import sampler, sampler_cache
from bayes_scaling.fitting.settings import SamplerSettings

if sys.argv[2] == "edited":  # the package's sources changed: a new key for the traced programs
    sampler_cache._environment_digest = lambda: "the sources after an edit"
compiled = []
original = sampler_cache.compile_exported
sampler_cache.compile_exported = lambda blob, compile, devices, options: original(
    blob, lambda name: compiled.append(name) or compile(name), devices, options)

def model(loc):
    numpyro.sample("x", dist.Normal(loc, float(sys.argv[1])))

draws = sampler.sample(model, sampler.jitter({"x": np.zeros(1)}, 2, 0), (np.array([1.0]),),
                       description=("edit test",), settings=SamplerSettings(chains=2, warmup=20, draws=10, seed=5))
print(json.dumps({"compiled": len(compiled), "x": np.asarray(draws.samples["x"]).ravel().tolist()}))
"""


@pytest.mark.slow  # fresh interpreters: the same trace in a new process gives the same program bytes
def test_an_edit_outside_the_traced_programs_retraces_but_does_not_recompile(tmp_path):
    """The sampler's compiled programs are keyed by their exported bytes: in a new process with the
    package's sources changed (a new export key), the programs are traced again, come out the same,
    and are loaded from disk instead of compiled; the draws are the same."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "BAYES_SCALING_CACHE": str(tmp_path)}
    env.pop("BAYES_SCALING_NO_COMPILE_CACHE", None)
    scale = str(1.0 + (hash(str(tmp_path)) % 10**6) * 1e-9)  # a program new to JAX's own cache too

    def run(edited):
        out = subprocess.run([sys.executable, "-c", EDITED_SAMPLE, scale, edited], env=env, capture_output=True,
                             text=True, check=True)
        return json.loads(out.stdout.splitlines()[-1])

    first = run("as is")
    assert first["compiled"] == 4 and len(list((tmp_path / "samplers").glob("*.bin"))) == 1
    again = run("edited")
    assert len(list((tmp_path / "samplers").glob("*.bin"))) == 2  # traced again under the new key
    assert again["compiled"] == 0 and again["x"] == first["x"]  # ... and nothing compiled


def test_stored_jit_keeps_one_program_per_signature(tmp_path, monkeypatch):
    """``stored_jit``: one stored program per tree, shape and dtype of the arguments, loaded by a
    new wrapper (a new process) instead of compiled, computing what ``jax.jit`` computes."""
    import jax.numpy as jnp

    from bayes_scaling.fitting import sampler_cache

    monkeypatch.setattr(sampler_cache, "directory", lambda: tmp_path)
    monkeypatch.delenv("BAYES_SCALING_NO_COMPILE_CACHE", raising=False)

    def f(theta, x):
        return theta["a"] * jnp.log(x) + theta["b"]

    description = f"a test law {tmp_path}"
    stored = sampler_cache.stored_jit(f, description)
    theta = {"a": np.array([[1.5], [2.0]]), "b": 0.25}
    x = np.array([[1.0, 2.0, 3.0]])
    expected = np.asarray(jax.jit(f)(theta, x))
    np.testing.assert_array_equal(np.asarray(stored(theta, x)), expected)
    np.testing.assert_array_equal(np.asarray(stored(theta, x[:, :2])), expected[:, :2])
    assert len(list(tmp_path.glob("*.exe"))) == 2  # two shapes of x
    traced = []
    named = sampler_cache.named
    monkeypatch.setattr(sampler_cache, "named", lambda fn, name: traced.append(name) or named(fn, name))
    again = sampler_cache.stored_jit(f, description)  # as a new process would
    np.testing.assert_array_equal(np.asarray(again(theta, x)), expected)
    assert traced == []  # loaded, not traced and compiled
    again(theta, x[:, :1])
    assert len(traced) == 1


def test_sampler_cache_keys_and_unreadable_files(tmp_path, monkeypatch):
    """A changed description, source or version gives a new key; a corrupt file is traced again."""
    import jax

    from bayes_scaling.fitting import sampler_cache

    key = sampler_cache.program_key("model a")
    assert sampler_cache.program_key("model a") == key != sampler_cache.program_key("model b")
    monkeypatch.setattr(sampler_cache, "_environment_digest", lambda: "other sources or versions")
    assert sampler_cache.program_key("model a") != key

    monkeypatch.setattr(sampler_cache, "directory", lambda: tmp_path)
    (tmp_path / "k.bin").write_bytes(b"not a stored sampler")
    spec = jax.ShapeDtypeStruct((3,), np.float64)
    built = []

    def trace():
        built.append(1)
        return [jax.export.export(jax.jit(lambda x: 2 * x))(spec)]

    sampler_cache.load_or_export("k", trace)
    (again,) = sampler_cache.load_or_export("k", trace)
    assert len(built) == 1  # the corrupt file was replaced, then read back
    np.testing.assert_allclose(again.call(np.arange(3.0)), [0.0, 2.0, 4.0])


def test_prior_fingerprint_keeps_full_precision():
    import numpyro.distributions as dist

    from bayes_scaling.fitting.sampler_cache import prior_fingerprint

    assert prior_fingerprint(dist.LogNormal(0.3, 0.6)) != prior_fingerprint(dist.LogNormal(0.300001, 0.6))
    assert prior_fingerprint(dist.LogNormal(0.3, 0.6)) == prior_fingerprint(dist.LogNormal(0.3, 0.6))


def test_tables_of_similar_size_share_one_padded_sampler():
    """150 and 200 runs both compile for 256 observations (the extra ones masked out); each
    posterior's pointwise log-likelihood covers exactly its own runs and equals the Student-t
    density of the observed log-loss under the drawn parameters."""
    from scipy import stats

    from bayes_scaling.fitting import nuts

    runs = load_chinchilla().for_fit()
    assert nuts.padded_capacity(150) == nuts.padded_capacity(200) == 256 and nuts.padded_capacity(10) == 64
    before = set(nuts._SAMPLERS)
    from bayes_scaling.runs.table import Runs

    posts = [fit_nuts(Runs(runs.frame.iloc[:n].reset_index(drop=True)), num_chains=2, num_warmup=60, num_draws=40, seed=2) for n in (150, 200)]
    assert len(set(nuts._SAMPLERS) - before) <= 1
    for post, n in zip(posts, (150, 200)):
        loglik = post.idata["log_likelihood"]["log_loss"].values
        assert loglik.shape == (2, 40, n)
        theta = {k: post.draws(k)[:1] for k in ("E", "A", "B", "alpha", "beta")}
        mu = np.log(np.asarray(post.law.loss({k: v[0] for k, v in theta.items()}, post.runs.N, post.runs.D)))
        expected = stats.t.logpdf(np.log(post.runs.loss), df=post.meta["nu"], loc=mu, scale=post.draws("sigma")[0])
        np.testing.assert_allclose(loglik.reshape(-1, n)[0], expected, rtol=1e-8)


def test_sampler_settings_and_the_old_keywords_give_the_same_fit():
    """``settings=SamplerSettings(...)`` and the keyword arguments are one thing: same draws; a
    keyword given on top overrides the object; a bad setting names its field."""
    from bayes_scaling.errors import InputError
    from bayes_scaling.fitting.settings import SamplerSettings

    runs = load_chinchilla().for_fit()
    a = fit_nuts(runs, model="plain", num_chains=2, num_warmup=60, num_draws=40, seed=4, more_draws=False)
    b = fit_nuts(runs, model="plain", settings=SamplerSettings(chains=2, warmup=60, draws=40, seed=4, more_draws=False))
    c = fit_nuts(runs, model="plain", settings=SamplerSettings(chains=2, warmup=60, draws=40, seed=9, more_draws=False),
                 seed=4)
    np.testing.assert_array_equal(a.draws("E"), b.draws("E"))
    np.testing.assert_array_equal(a.draws("E"), c.draws("E"))
    assert b.meta["num_draws"] == 40 and b.meta["seed"] == 4
    for bad, field in ((dict(chains=0), "chains"), (dict(warmup=-1), "warmup"), (dict(target_accept=1.0), "target_accept")):
        with pytest.raises(InputError, match=field):
            SamplerSettings(**bad)


@pytest.mark.slow
def test_the_driver_samples_any_model_and_its_latent_scale_leaves_the_posterior_alone():
    """``fitting.sampler.sample`` on a plain NumPyro model (a correlated Gaussian with a vector
    site and a positive one): the draws' mean and covariance are the model's, in NUTS's own
    coordinates (c = 1) and in z / c (c = 0.1)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.settings import SamplerSettings

    cov = np.array([[0.04, 0.018], [0.018, 0.01]])

    def model(loc):
        numpyro.sample("x", dist.MultivariateNormal(loc, jnp.asarray(cov)))
        numpyro.sample("s", dist.LogNormal(0.0, 0.1))

    settings = SamplerSettings(chains=2, warmup=200, draws=1000, seed=3)
    init = sampler.jitter({"x": np.zeros(2), "s": 0.0}, 2, 0)
    for scale in (1.0, 0.1):
        draws = sampler.sample(model, init, (np.array([1.0, -2.0]),), description=("gaussian test",),
                               settings=settings, latent_scale=scale)
        x = draws.samples["x"].reshape(-1, 2)
        np.testing.assert_allclose(x.mean(axis=0), [1.0, -2.0], atol=0.03)
        np.testing.assert_allclose(np.cov(x.T), cov, rtol=0.2, atol=1e-3)
        assert np.log(draws.samples["s"]).std() == pytest.approx(0.1, rel=0.15)
        assert draws.extra["diverging"].sum() == 0


REPEATED_SAMPLE = """
import json, sys
import numpy as np
from bayes_scaling import configure
configure()
import jax
import numpyro
import numpyro.distributions as dist
from bayes_scaling.fitting import sampler
from bayes_scaling.fitting.settings import SamplerSettings

def model(loc):
    numpyro.sample("x", dist.Normal(loc, 1.0))

jax.config.update("jax_log_compiles", True)
draws = sampler.sample(model, sampler.jitter({"x": np.zeros(1)}, 2, 0), (np.array([1.0]),),
                       description=("start-up test",), settings=SamplerSettings(chains=2, warmup=20, draws=10, seed=5))
print(json.dumps(np.asarray(draws.samples["x"]).ravel().tolist()))
"""


@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_a_repeated_sample_in_a_new_process_loads_only_the_samplers_programs(tmp_path):
    """Issue 15's repeated CLI call: in a new process with the caches filled, ``sampler.sample``
    loads its four compiled programs and lowers nothing of its own (no eager JAX operation: the
    chains' keys are split inside ``start``, the starting points are NumPy arrays), only the 2 x 2
    Cholesky that sets XLA's LAPACK kernels (``sampler_cache._prepare_host_kernels``), and draws
    what the first process drew."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "BAYES_SCALING_CACHE": str(tmp_path)}
    env.pop("BAYES_SCALING_NO_COMPILE_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", REPEATED_SAMPLE], env=env, capture_output=True, text=True,
                           check=True) for _ in range(2)]
    compiled = re.findall(r"Compiling (\S+)", runs[1].stderr)
    assert compiled == ["jit(cholesky)"], compiled
    assert runs[0].stdout.splitlines()[-1] == runs[1].stdout.splitlines()[-1]


def test_release_compiled_forgets_the_programs_and_a_later_fit_is_the_same():
    import bayes_scaling
    from bayes_scaling.fitting import sampler

    runs = load_chinchilla().for_fit()
    tiny = dict(model="plain", num_chains=2, num_warmup=60, num_draws=40, seed=4, more_draws=False)
    before = fit_nuts(runs, **tiny).draws("E")
    assert sampler._SAMPLERS
    bayes_scaling.release_compiled()
    assert not sampler._SAMPLERS
    np.testing.assert_array_equal(fit_nuts(runs, **tiny).draws("E"), before)


def test_a_laplace_fit_centres_every_chain_on_the_mode(monkeypatch):
    """With ``LAPLACE_START = "mode"`` every chain's Newton steps start at one point and reach the
    mode: the chains' draws agree (their means within a fraction of a posterior sd), where jittered
    starts and 8 steps left chains of these refits short of it (bench_extrapolation.py, eighteenth run)."""
    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_laplace
    from bayes_scaling.splits import forward_chain

    monkeypatch.setattr(sampler, "LAPLACE_START", "mode")
    fold = forward_chain(load_chinchilla().for_fit())[0].train  # a calibration refit's runs
    post = fit_laplace(fold)
    assert post.meta["laplace_start"] == "mode"
    chains, draws = post.draw_shape
    for name, values in post.theta().items():
        per_chain = np.log(values).reshape(chains, draws)
        spread = per_chain.mean(axis=1).max() - per_chain.mean(axis=1).min()
        assert spread < 0.3 * per_chain.std(), (name, spread, per_chain.std())


def test_an_unknown_laplace_start_is_refused(monkeypatch):
    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_laplace

    monkeypatch.setattr(sampler, "LAPLACE_START", "somewhere")
    with pytest.raises(ValueError, match="LAPLACE_START"):
        fit_laplace(load_chinchilla().for_fit())


def test_newton_end_points_report_their_potentials_and_the_chains_gap():
    """``newton_laplace(return_mode=True)`` gives each chain's end point and the potential there; on a
    quadratic every chain reaches the one mode (gap 0), and with no Newton step the gap is the starts'."""
    from bayes_scaling.fitting import sampler

    A = np.diag([1.0, 4.0])

    def value_and_grad(points):  # (chain, 2n + 1, n) -> potential 0.5 x'Ax and its gradient
        return 0.5 * np.einsum("cki,ij,ckj->ck", points, A, points), points @ A

    x0 = np.array([[1.0, 1.0], [3.0, -2.0]])
    _, x, at_end = sampler.newton_laplace(value_and_grad, x0, 5, return_mode=True)
    np.testing.assert_allclose(x, 0.0, atol=1e-8)
    assert sampler.chain_gap(at_end) == pytest.approx(0.0, abs=1e-12)
    _, x, at_start = sampler.newton_laplace(value_and_grad, x0, 0, return_mode=True)
    np.testing.assert_allclose(at_start, [2.5, 12.5])
    assert sampler.chain_gap(at_start) == pytest.approx(10.0)
    assert np.isnan(sampler.chain_gap(np.array([np.nan, np.inf])))


def test_a_laplace_fit_records_its_chains_gap(monkeypatch):
    """Every chain started at the mode's Newton path ends at one potential (gap ~0); the jittered
    starts' gap is recorded as a finite number of nats (it is what ``extrapolation.missed_modes_note`` reads)."""
    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_laplace
    from bayes_scaling.splits import forward_chain

    fold = forward_chain(load_chinchilla().for_fit())[0].train
    jittered = fit_laplace(fold, seed=3)
    assert np.isfinite(jittered.meta["laplace_chain_gap_nats"]) and jittered.meta["laplace_chain_gap_nats"] >= 0
    monkeypatch.setattr(sampler, "LAPLACE_START", "mode")
    assert fit_laplace(fold, seed=3).meta["laplace_chain_gap_nats"] < 1e-6


def test_each_run_waits_only_for_the_programs_it_needs(monkeypatch):
    """A Laplace fit takes ``potential`` and ``finish`` only, so on a first call it runs while
    ``advance`` still compiles; NUTS takes them in the order it uses them (potential for the start's
    mass matrix, start, then advance and finish)."""
    from bayes_scaling.fitting import sampler
    from bayes_scaling.fitting.nuts import fit_laplace

    asked = []
    original = sampler.Sampler.program
    monkeypatch.setattr(sampler.Sampler, "program",
                        lambda self, sites, index: asked.append(index) or original(self, sites, index))
    runs = load_chinchilla().for_fit()
    fit_laplace(runs, num_chains=2, num_warmup=60, num_draws=40, seed=1)
    assert asked == [0, 3]
    asked.clear()
    fit_nuts(runs, model="plain", num_chains=2, num_warmup=60, num_draws=40, seed=1, more_draws=False,
             retry_divergent=False)
    assert asked == [0, 1, 2, 3]


def test_a_failed_compile_raises_where_its_program_is_needed_and_is_tried_again():
    """``Sampler.program`` re-raises a compile's error and forgets the futures, so the next call
    compiles afresh instead of raising the old error forever."""
    from concurrent.futures import Future

    from bayes_scaling.fitting import sampler

    failed = Future()
    failed.set_exception(RuntimeError("XLA ran out of memory"))
    sites = (("E", ()),)
    s = sampler.Sampler.__new__(sampler.Sampler)
    s._programs = {sites: (sampler._done("potential"), failed, failed, sampler._done("finish"))}
    assert s.program(sites, 0) == "potential"
    with pytest.raises(RuntimeError, match="out of memory"):
        s.program(sites, 2)
    assert sites not in s._programs


def test_the_fitting_entry_points_take_a_data_frame_and_check_it_like_a_file():
    """A DataFrame goes through ``load_runs``'s checks (row and field named) instead of failing deep in
    the fit (it used to raise a pandas length error from the starting point); a valid one fits as its
    ``Runs`` does."""
    from bayes_scaling.errors import InputError
    from bayes_scaling.fitting.point import fit_map
    from bayes_scaling.hierarchical import fit_hierarchical
    from bayes_scaling.runs import as_runs
    from bayes_scaling.wsd import fit_wsd

    frame = load_chinchilla().for_fit().frame[["N", "D", "loss"]].iloc[::4].reset_index(drop=True)
    runs = as_runs(frame)
    assert as_runs(runs) is runs
    bad = frame.assign(loss=frame["loss"].where(frame.index != 3, -1.0))
    for fit in (fit_nuts, fit_map, fit_hierarchical, fit_wsd):
        with pytest.raises(InputError, match=r"row .*4|loss"):
            fit(bad)
    a = fit_nuts(frame, model="plain", num_chains=1, num_warmup=30, num_draws=20, seed=2, more_draws=False)
    b = fit_nuts(runs, model="plain", num_chains=1, num_warmup=30, num_draws=20, seed=2, more_draws=False)
    np.testing.assert_array_equal(a.draws("E"), b.draws("E"))
    flagged = frame.assign(flagged=frame.index == 0, flag_reason=np.where(frame.index == 0, "diverged", ""))
    assert len(as_runs(flagged)) == len(frame) - 1  # a table's flagged rows are left out, as `fit` does
