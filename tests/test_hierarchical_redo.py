"""The hierarchical fit's redo policy (``fitting.redo``, shared with ``fit_nuts``): a divergent fit
redone at target acceptance 0.99, one short only of effective draws with twice the draws, each
saying so; off by default (``hierarchical.fit.REDO``)."""

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.diagnostics import SamplerWarning
from bayes_scaling.fitting import redo
from bayes_scaling.fitting.settings import SamplerSettings
from bayes_scaling.hierarchical import fit as hf
from bayes_scaling.hierarchical import fit_hierarchical
from bayes_scaling.hierarchical.fit import HierarchicalFit
from bayes_scaling.runs import validate_runs

ON = dict(retry_divergent=True, more_draws=True)
# The runs are never sampled (``_prepare`` and ``_sampled_fit`` are stand-ins) but are validated first.
RUNS = validate_runs(pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": [2e9, 4e9, 8e9], "loss": [3.0, 2.9, 2.8]}))


def _stand_in(monkeypatch, outcome, doublings=2):
    """``fit_hierarchical`` with stand-in samplings (no sampling): ``outcome(draws, target_accept)``
    gives (divergences, max R-hat, min bulk ESS); returns the (draws, target_accept) of each call."""
    calls = []

    def sampled(prepared, *, settings, fixed_step_at=None):
        calls.append((settings.draws, settings.target_accept))
        divergences, rhat, ess = outcome(settings.draws, settings.target_accept)
        member = SimpleNamespace(meta={"num_draws": settings.draws, "target_accept": settings.target_accept})
        return HierarchicalFit({"g0": member}, SimpleNamespace(meta={}), "partial", [], "group", {},
                               {"divergences": divergences, "max_rhat": rhat, "min_ess": ess, "mean_steps": 10.0})

    monkeypatch.setattr(hf, "_prepare", lambda *args: None)
    monkeypatch.setattr(hf, "_sampled_fit", sampled)
    monkeypatch.setattr(hf, "MORE_DRAWS_DOUBLINGS", doublings)
    return calls


def _quiet(**keywords):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerWarning)  # a clean final fit does not warn
        return fit_hierarchical(RUNS, **keywords)


def test_off_by_default_a_divergent_fit_is_kept_and_warns(monkeypatch):
    assert hf.REDO is False and not hf.SAMPLER_DEFAULTS.retry_divergent and not hf.SAMPLER_DEFAULTS.more_draws
    calls = _stand_in(monkeypatch, lambda draws, accept: (2, 1.005, 300.0))
    with pytest.warns(SamplerWarning, match="2 divergences"):
        fit = fit_hierarchical(RUNS)
    assert calls == [(500, 0.9)] and "retried" not in fit.diagnostics and "more_draws" not in fit.diagnostics


def test_off_by_default_a_fit_short_only_of_effective_draws_warns_and_says_how_to_draw_more(monkeypatch):
    """As ``fit_nuts`` warns on every failed check, bulk ESS included (issue 15: warn, do not return silently)."""
    _stand_in(monkeypatch, lambda draws, accept: (0, 1.005, 300.0))
    with pytest.warns(SamplerWarning, match=r"min bulk ESS 300 \(at least 400 wanted\).*more_draws=True"):
        fit_hierarchical(RUNS)


def test_a_divergent_fit_is_redone_once_at_smaller_steps_and_says_so(monkeypatch):
    calls = _stand_in(monkeypatch, lambda draws, accept: (0 if accept >= 0.99 else 2, 1.005, 600.0))
    fit = _quiet(retry_divergent=True)
    assert calls == [(500, 0.9), (500, redo.RETRY_TARGET_ACCEPT)]
    note = "2 divergences at target acceptance 0.9; refitted at 0.99"
    assert fit.diagnostics["retried"] == note
    assert fit.groups["g0"].meta["retried"] == note and fit.population.meta["retried"] == note
    assert fit.groups["g0"].meta["target_accept"] == 0.99  # the redone fit is the one returned


def test_a_fit_short_of_effective_draws_is_redone_with_longer_chains(monkeypatch):
    """Bulk ESS below 100 per chain (400 for 4 chains), no divergence: 500, then 1,000, then 2,000 draws."""
    calls = _stand_in(monkeypatch, lambda draws, accept: (0, 1.02 if draws < 2000 else 1.004, draws / 3))
    fit = _quiet(more_draws=True)
    assert calls == [(500, 0.9), (1000, 0.9), (2000, 0.9)]
    assert fit.diagnostics["more_draws"] == "R-hat, bulk ESS short at 500 draws per chain; redone with 1000, then 2000"
    assert fit.groups["g0"].meta["num_draws"] == 2000 and "retried" not in fit.diagnostics


def test_longer_chains_stop_at_the_doublings_and_a_failing_final_fit_warns_saying_what_was_redone(monkeypatch):
    calls = _stand_in(monkeypatch, lambda draws, accept: (0, 1.03, 50.0), doublings=1)
    with pytest.warns(SamplerWarning, match=r"fail \(R-hat, bulk ESS short at 500 draws per chain; redone with 1000\)"):
        fit_hierarchical(RUNS, more_draws=True)
    assert calls == [(500, 0.9), (1000, 0.9)]


def test_no_longer_chains_for_a_large_rhat_and_a_divergence_after_them_is_retried(monkeypatch):
    calls = _stand_in(monkeypatch, lambda draws, accept: (0, 1.5, 50.0))
    with pytest.warns(SamplerWarning):
        fit_hierarchical(RUNS, **ON)
    assert calls == [(500, 0.9)]  # separate modes are not drawn away

    calls = _stand_in(monkeypatch, lambda draws, accept: (1 if draws > 500 and accept < 0.99 else 0, 1.005,
                                                          200.0 if draws == 500 else 900.0))
    fit = _quiet(**ON, sampler_settings=SamplerSettings(draws=500, target_accept=0.9))
    assert calls == [(500, 0.9), (1000, 0.9), (1000, 0.99)]
    assert "redone with 1000" in fit.diagnostics["more_draws"] and "refitted at 0.99" in fit.diagnostics["retried"]


def test_the_threshold_is_100_effective_draws_per_chain():
    fit = SimpleNamespace(diagnostics={"divergences": 0, "max_rhat": 1.005, "min_ess": 350.0})
    assert hf._check(fit, chains=4).failed == ("ess_bulk",) and hf._check(fit, chains=4).short_of_draws()
    assert hf._check(fit, chains=2).ok


def _simulated_runs():
    """Two groups of 16 runs on one N x D grid, both on Epoch's law, with 0.5% noise."""
    from bayes_scaling.laws import EPOCH_2024, Chinchilla
    from bayes_scaling.runs import validate_runs

    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7.5, 9.5, 4), np.logspace(9, 11, 4)))
    noise = np.random.default_rng(8).normal(0.0, 0.005, 2 * len(N))
    loss = np.exp(np.tile(np.asarray(Chinchilla().log_loss(EPOCH_2024, N, D)), 2) + noise)
    return validate_runs(pd.DataFrame({"N": np.tile(N, 2), "D": np.tile(D, 2), "loss": loss,
                                       "group": np.repeat(["g0", "g1"], len(N))}))


def test_a_real_fit_short_of_draws_comes_back_with_the_longer_chains(monkeypatch):
    """Real sampling (one law for both groups: quick), a stand-in verdict (the first fit's bulk ESS
    short, as 2 chains x 30 draws are): the fit is redone with 60 draws per chain, and the fit
    returned (its draws, its meta, its warm-start state) is the longer one."""
    monkeypatch.setattr(hf, "MORE_DRAWS_DOUBLINGS", 1)
    monkeypatch.setattr(hf, "_check", lambda fit, chains: redo.Check(("ess_bulk",), 0, 1.005)
                        if fit.groups["g0"].meta["num_draws"] == 30 else redo.Check((), 0, 1.005))
    tiny = dict(pooling="complete", num_chains=2, num_warmup=100, num_draws=30, likelihood="normal", seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        fit = fit_hierarchical(_simulated_runs(), more_draws=True, **tiny)
    post = fit.groups["g0"]
    assert post.meta["num_draws"] == 60 and post.num_draws == 2 * 60
    assert fit.diagnostics["more_draws"] == "bulk ESS short at 30 draws per chain; redone with 60"
    assert post.meta["more_draws"] == fit.diagnostics["more_draws"]
    assert np.shape(fit.adaptation["draws"].samples["sigma"])[:2] == (2, 60)


def test_a_fixed_warm_start_retried_at_smaller_steps_adapts_its_step_size(monkeypatch):
    """Warm start "fixed" keeps the previous step sizes; its retry at 0.99 starts from the same place
    and adapts them (a kept step size has no target acceptance to honour), the first did not."""
    from bayes_scaling.fitting import sampler

    runs = _simulated_runs()
    tiny = dict(pooling="complete", num_chains=2, num_warmup=100, num_draws=30, likelihood="normal", seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        previous = fit_hierarchical(runs, **tiny)
    seen, original = [], sampler.sample

    def recording(*args, **kwargs):
        seen.append((kwargs["settings"].target_accept, kwargs["adapt_step_size"],
                     {k: np.asarray(v) for k, v in args[1].items()}))
        return original(*args, **kwargs)

    monkeypatch.setattr(hf.sampler, "sample", recording)
    first = hf._check
    monkeypatch.setattr(hf, "_check", lambda fit, chains: redo.Check(("divergences",), 1, 1.0)
                        if fit.groups["g0"].meta["target_accept"] < 0.99 else first(fit, chains))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        fit = fit_hierarchical(runs, warm_start=previous, warm_start_mode="fixed", retry_divergent=True,
                               pooling="complete", num_chains=2, num_draws=30, likelihood="normal", seed=2)
    assert [(accept, adapt) for accept, adapt, _ in seen] == [(0.9, False), (0.99, True)]
    for k in seen[0][2]:
        np.testing.assert_array_equal(seen[0][2][k], seen[1][2][k])  # the same warm start
    assert fit.groups["g0"].meta["target_accept"] == 0.99 and "refitted at 0.99" in fit.groups["g0"].meta["retried"]
    assert fit.diagnostics["warm_start_mode"] == "fixed"


def test_the_cli_passes_no_more_draws_and_prints_what_was_redone(monkeypatch, capsys, tmp_path):
    from bayes_scaling import hierarchical
    from bayes_scaling.cli import main
    from bayes_scaling.cli.fit import print_redone
    from bayes_scaling.errors import InputError

    given = []

    def stop(*args, **kwargs):
        given.append(kwargs)
        raise InputError("stand-in: no sampling")  # only what the CLI asks for

    monkeypatch.setattr(hierarchical, "fit_hierarchical", stop)
    for extra in ([], ["--no-more-draws"]):
        assert main(["fit", "marin", "--group-by", "group", "--out", str(tmp_path / "out"), *extra]) != 0
    assert given[0]["more_draws"] is True and given[1]["more_draws"] is False  # the CLI redoes, as a pooled fit
    assert given[0]["retry_divergent"] is True and given[1]["retry_divergent"] is True
    print_redone({"retried": "2 divergences at target acceptance 0.9; refitted at 0.99",
                  "more_draws": "bulk ESS short at 500 draws per chain; redone with 1000"})
    err = capsys.readouterr().err
    assert "refitted at 0.99 (smaller steps" in err and "redone with 1000 (longer chains" in err
