"""``import bayes_scaling`` changes no JAX setting; ``configure()`` (called by the CLI and by every
function that computes with JAX) applies what a fit needs and leaves a user's own settings alone.

Each case runs in a fresh interpreter: JAX's settings are process-wide and the test process itself
is configured (conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bayes_scaling import _jax_setup

REPORT = """
import json, os, sys
import jax
from jax._src import xla_bridge
started = xla_bridge.backends_are_initialized()
print(json.dumps({"x64": bool(jax.config.jax_enable_x64), "xla_flags": os.environ.get("XLA_FLAGS"),
                  "cache": jax.config.jax_compilation_cache_dir, "started": started,
                  "cache_max": jax.config.jax_compilation_cache_max_size,
                  "devices": jax.device_count() if started else None, **globals().get("extra", {})}))
"""


def run(code: str, tmp_path, **env) -> dict:
    """Run ``code`` then REPORT in a fresh interpreter whose environment carries no JAX setting
    of the test process; return REPORT's dict (``extra`` joins it)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("XLA_FLAGS", "JAX_ENABLE_X64", "JAX_COMPILATION_CACHE_DIR")}
    clean.update(BAYES_SCALING_CACHE=str(tmp_path / "cache"), PYTHONWARNINGS="default", **env)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + REPORT],
                            capture_output=True, text=True, env=clean, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["stderr"] = result.stderr
    return report


@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_import_changes_no_jax_setting(tmp_path):
    """Importing the package and every module in it leaves JAX as it was: 32-bit, XLA_FLAGS unset
    (or the user's, unchanged), no compilation cache, backend not started."""
    code = """
    import importlib, pkgutil
    import bayes_scaling
    for info in pkgutil.walk_packages(bayes_scaling.__path__, "bayes_scaling."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    """
    report = run(code, tmp_path)
    assert report["x64"] is False and report["xla_flags"] is None
    assert report["cache"] is None and report["started"] is False
    mine = "--xla_cpu_enable_fast_math=false"
    report = run("import bayes_scaling.fitting.nuts, bayes_scaling.cli", tmp_path, XLA_FLAGS=mine)
    assert report["xla_flags"] == mine and report["x64"] is False


def test_configure_sets_float64_devices_and_cache_once(tmp_path):
    report = run("""
    import bayes_scaling
    bayes_scaling.configure()
    bayes_scaling.configure()  # idempotent
    """, tmp_path)
    assert report["x64"] is True
    assert report["xla_flags"] == f"--xla_force_host_platform_device_count={_jax_setup.DEFAULT_HOST_DEVICES}"
    assert report["cache"] == str(tmp_path / "cache" / "jax")
    assert report["cache_max"] == _jax_setup.DEFAULT_CACHE_MAX_MB * 2**20  # JAX evicts beyond it
    assert report["started"] is False  # configure itself runs nothing in JAX
    bounded = run("import bayes_scaling; bayes_scaling.configure()", tmp_path, BAYES_SCALING_CACHE_MAX_MB="64")
    assert bounded["cache_max"] == 64 * 2**20


@pytest.mark.slow
def test_a_fit_entry_point_configures_by_itself(tmp_path):
    """No explicit configure(): the Approach 3 fit sets float64 and the device count before it
    starts JAX, and its result is float64 (the grid fit is checked to 1e-9 against SciPy)."""
    report = run("""
    import numpy as np
    from bayes_scaling.fitting.approach3 import fit_approach3, paper_grid
    from bayes_scaling.runs import load_chinchilla
    runs = load_chinchilla().for_fit()
    result = fit_approach3(runs.N, runs.D, runs.loss, grid=paper_grid()[:2])
    extra = {"dtype": str(np.asarray(result.params).dtype)}
    """, tmp_path)
    assert report["x64"] is True and report["dtype"] == "float64"
    assert report["devices"] == _jax_setup.DEFAULT_HOST_DEVICES


@pytest.mark.parametrize("entry", [
    "from bayes_scaling.prior_sets import prior_set; prior_set('epoch')",
    "from bayes_scaling.design.oracles import world_prior; world_prior()",
    "from bayes_scaling.frontier import frontier_draws; from bayes_scaling.laws import get_law\n"
    "frontier_draws(get_law('chinchilla'), {k: np.ones(3) * v for k, v in "
    "dict(E=1.8, A=400.0, B=400.0, alpha=0.3, beta=0.3).items()}, [1e21])",
], ids=["prior_set", "world_prior", "frontier_draws"])
@pytest.mark.slow
def test_functions_that_start_jax_configure_first(tmp_path, entry):
    """Building priors from literature centres (jnp.log) or computing a frontier starts JAX:
    each configures first, so a fit that follows still gets the host devices."""
    report = run(f"import numpy as np\n{entry}\n", tmp_path)
    assert report["x64"] is True and report["devices"] == _jax_setup.DEFAULT_HOST_DEVICES


@pytest.mark.slow
def test_a_loaded_fit_configures_before_it_predicts(tmp_path):
    """A saved fit opened in a fresh process: its predictions and frontier run under float64."""
    from bayes_scaling.fitting.point import fit_map
    from bayes_scaling.runs import load_chinchilla

    fit_map(load_chinchilla().for_fit()).save(tmp_path / "fit")
    for call in ("post.predict([1e9], [2e10])", "post.budget_for_loss([2.0])"):
        report = run(f"""
        from bayes_scaling.posterior import Posterior
        post = Posterior.load({str(tmp_path / "fit")!r})
        {call}
        """, tmp_path)
        assert report["x64"] is True and report["devices"] == _jax_setup.DEFAULT_HOST_DEVICES, call


def test_the_users_device_count_and_cache_dir_are_kept(tmp_path):
    mine = "--xla_force_host_platform_device_count=2"
    report = run("""
    import bayes_scaling, jax
    bayes_scaling.configure()
    jax.numpy.ones(1)
    """, tmp_path, XLA_FLAGS=mine, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "users-cache"))
    assert report["xla_flags"] == mine and report["devices"] == 2
    assert report["cache"] == str(tmp_path / "users-cache")
    assert report["x64"] is True


@pytest.mark.slow
def test_jax_started_first_keeps_its_devices_and_gets_x64_with_a_warning(tmp_path):
    """A Flax-like process that used JAX before the library: configure cannot change the device
    count (the chains share one device, ``_devices_for``), sets no compilation cache, and switches
    float64 on with a warning; a NUTS fit still runs, its two chains together on the one device."""
    report = run("""
    import jax, jax.numpy as jnp
    jnp.ones(3).sum()
    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.runs import load_chinchilla
    post = fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=30, num_draws=20,
                    retry_divergent=False, more_draws=False)  # the fit runs; its verdict is not the point
    extra = {"chains": int(post.idata["posterior"].sizes["chain"]),
             "dtype": str(post.theta()["alpha"].dtype)}
    """, tmp_path)
    assert report["devices"] == 1 and report["xla_flags"] is None and report["cache"] is None
    assert report["x64"] is True and report["chains"] == 2 and report["dtype"] == "float64"
    assert "switched on jax_enable_x64 in a process already using JAX" in report["stderr"]


@pytest.mark.slow
def test_float64_switched_off_explicitly_is_an_error(tmp_path):
    """JAX_ENABLE_X64=0 (an explicit opt-out) or switching it off after configure(): a fit refuses
    to run in float32 with one clear message; from the CLI, exit status 2 and that message."""
    code = """
    import bayes_scaling, jax
    {before}
    try:
        bayes_scaling.configure()
        extra = {{"error": None}}
    except bayes_scaling._jax_setup.JaxSettingsError as err:
        extra = {{"error": str(err)}}
    """
    report = run(code.format(before=""), tmp_path, JAX_ENABLE_X64="0")
    assert "fits need float64" in report["error"] and "JAX_ENABLE_X64=0" in report["error"]
    assert report["x64"] is False
    report = run(code.format(before="bayes_scaling.configure(); jax.config.update('jax_enable_x64', False)"),
                 tmp_path)
    assert "switched off after configure()" in report["error"]

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run([sys.executable, "-m", "bayes_scaling", "runs", "list", "--store",
                             str(tmp_path / "store.sqlite")], capture_output=True, text=True,
                            env={**env, "JAX_ENABLE_X64": "0"}, timeout=300)
    assert result.returncode == 2
    assert "error: bayes-scaling fits need float64" in result.stderr


@pytest.mark.slow
def test_cli_configures_before_the_command(tmp_path):
    report = run("""
    import os
    from bayes_scaling.cli import main
    extra = {"status": main(["runs", "list", "--store", os.environ["BAYES_SCALING_CACHE"] + "/s.sqlite"])}
    """, tmp_path)
    assert report["x64"] is True
    assert report["xla_flags"] == f"--xla_force_host_platform_device_count={_jax_setup.DEFAULT_HOST_DEVICES}"


@pytest.mark.slow
def test_numpyro_survives_arviz_imported_after_the_package(tmp_path):
    """ArviZ loads NumPyro lazily; ``import bayes_scaling`` loads it first, so NumPyro's submodules
    bind whichever of the two comes first (test_nuts covers ArviZ first, with a fit)."""
    report = run("""
    import bayes_scaling, arviz
    from bayes_scaling.fitting.nuts import fit_nuts
    import numpyro.distributions
    extra = {"bound": hasattr(numpyro.distributions, "distribution")}
    """, tmp_path)
    assert report["bound"] is True


def test_an_empty_or_relative_xdg_cache_home_is_ignored(monkeypatch):
    from pathlib import Path

    from bayes_scaling._jax_setup import cache_dir

    monkeypatch.delenv("BAYES_SCALING_CACHE", raising=False)
    for value in ("", "relative/dir"):
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert cache_dir() == Path(os.path.expanduser("~/.cache")) / "bayes-scaling" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert cache_dir() == Path("/somewhere/bayes-scaling/jax")
