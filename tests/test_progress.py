"""Waits over ~2 s say so on a terminal and nothing elsewhere (issue 19, item 5); plan says when
fewer runs than asked for are left; demo takes the --include-flagged it suggests."""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np

from bayes_scaling.cli import _common, build_parser, main


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ticker_shows_elapsed_time_on_a_terminal_only_and_clears_its_line():
    stream = Terminal()
    with _common.ticker("bootstrap: 4000 refits", after=0.05, stream=stream) as tick:
        time.sleep(0.3)
        tick.update("bootstrap: nearly done")
        time.sleep(0.6)
    text = stream.getvalue()
    assert "\rbootstrap: 4000 refits (0 s)" in text and "bootstrap: nearly done" in text
    assert text.endswith("\r\x1b[K")  # the status line is gone when the wait ends
    for quiet, sink in ((True, Terminal()), (False, io.StringIO())):  # --json, or not a terminal
        with _common.ticker("waiting", after=0.0, stream=sink, quiet=quiet):
            time.sleep(0.2)
        assert sink.getvalue() == ""
    fast = Terminal()
    with _common.ticker("quick", after=2.0, stream=fast):
        pass
    assert fast.getvalue() == ""  # a short wait shows nothing


def test_plan_says_when_fewer_candidates_are_left_than_asked(tmp_path):
    from bayes_scaling.fitting.posterior_build import build_posterior
    from bayes_scaling.laws import EPOCH_2024, Chinchilla
    from bayes_scaling.runs import load_chinchilla

    rng = np.random.default_rng(0)
    samples = {k: v * np.exp(0.01 * rng.standard_normal((2, 20))) for k, v in EPOCH_2024.items()}
    samples["sigma"] = np.full((2, 20), 0.02)
    build_posterior(Chinchilla(), load_chinchilla().for_fit(), samples, None, None, method="nuts", meta={}).save(tmp_path / "fit")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", str(tmp_path / "fit"), "--target-budget", "1e22", "--batch", "100000", "--grid-points", "2",
                     "--json"])
    assert code == 0, err.getvalue()
    import json

    proposals = json.loads(out.getvalue())["proposals"]
    assert 0 < len(proposals) <= 4
    assert f"only {len(proposals)} affordable candidate runs were left of the 100000 asked for" in err.getvalue()


def test_demo_accepts_the_include_flagged_it_suggests():
    args = build_parser().parse_args(["demo", "--include-flagged"])
    assert args.include_flagged


def test_progress_bars_only_on_a_terminal_without_json(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr("sys.stderr", Terminal())
    assert _common.show_progress(SimpleNamespace(json=False)) and _common.show_progress()
    assert not _common.show_progress(SimpleNamespace(json=True))
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not _common.show_progress(SimpleNamespace(json=False))


def test_a_note_printed_during_a_wait_starts_on_a_clean_line(monkeypatch):
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    with _common.ticker("waiting for 2 running runs", after=0.0):
        time.sleep(0.2)
        _common.info("run N1e7 crashed; retrying")
    text = stream.getvalue()
    assert "\r\x1b[Krun N1e7 crashed; retrying\n" in text


def test_bootstrap_progress_reports_slices_and_changes_no_refit():
    from bayes_scaling.fitting.approach3 import bootstrap_approach3
    from bayes_scaling.runs import load_chinchilla

    runs = load_chinchilla().for_fit()
    plain = bootstrap_approach3(runs.N, runs.D, runs.loss, n_resamples=130, seed=5)
    seen = []
    sliced = bootstrap_approach3(runs.N, runs.D, runs.loss, n_resamples=130, seed=5,
                                 progress=lambda done, total: seen.append((done, total)))
    assert seen == [(50, 130), (100, 130), (130, 130)]
    for name in plain:
        np.testing.assert_array_equal(plain[name], sliced[name])  # the same refits, bitwise
