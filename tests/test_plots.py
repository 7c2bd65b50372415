"""Every figure has content: axes with data, bands drawn, files written as PNG and SVG."""

import numpy as np
import pytest

from bayes_scaling import plots
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.runs import load_chinchilla, load_marin


@pytest.fixture(scope="module")
def post():
    return fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=200, num_draws=200, seed=0)


@pytest.fixture(scope="module")
def figures(post):
    return plots.all_figures(post)


def data_in(ax) -> int:
    """How many data points the axes draws: line vertices, scatter offsets, band and bar patches."""
    n = sum(len(line.get_xdata()) for line in ax.lines)
    for coll in ax.collections:
        n += len(coll.get_offsets()) if len(coll.get_offsets()) > 1 else sum(len(p.vertices) for p in coll.get_paths())
    return n + len(ax.patches)


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_every_figure_is_made_and_every_axes_has_data(figures):
    assert set(figures) == set(plots.TITLES)
    for name, fig in figures.items():
        axes = visible_axes(fig)
        assert axes, name
        for ax in axes:
            assert data_in(ax) > 0, f"{name}: empty axes {ax.get_title()!r}"


def test_loss_vs_compute_shows_all_runs_and_a_band(post, figures):
    ax = figures["loss_vs_compute"].axes[0]
    offsets = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == len(post.runs)]
    assert offsets and np.allclose(np.sort(offsets[0][:, 1]), np.sort(post.runs.loss))
    bands = [c for c in ax.collections if len(c.get_offsets()) != len(post.runs)]
    assert len(bands) >= 2  # 90% and 50% fill_between
    assert ax.get_xlim()[1] >= 1e25


def test_isoflop_slices_cover_the_binned_runs(post, figures):
    bins = plots.isoflop_bins(post.runs.C)
    axes = visible_axes(figures["isoflop"])
    assert len(axes) == len(bins) >= 5
    for ax, idx in zip(axes, bins):
        scatter = [c for c in ax.collections if len(c.get_offsets()) == len(idx)]
        assert scatter and np.allclose(np.sort(scatter[0].get_offsets()[:, 0]), np.sort(post.runs.N[idx]))


def test_isoflop_bins_partition_by_compute():
    C = np.concatenate([np.full(4, 1e19), np.full(5, 1e20), np.full(2, 1e21), np.full(6, 1e22)])
    bins = plots.isoflop_bins(C, max_bins=9, min_runs=3)
    assert [len(b) for b in bins] == [4, 5, 6]  # the 2-run level is dropped, order by C
    assert all(np.ptp(np.log10(C[b])) == 0 for b in bins)
    marin = load_marin().for_fit()
    bins = plots.isoflop_bins(marin.C, max_bins=6)
    assert 1 <= len(bins) <= 6 and all(len(b) >= 3 for b in bins)


def test_allocation_draws_published_lines(figures):
    for ax in figures["allocation"].axes:
        labels = [line.get_label() for line in ax.lines]
        assert {"Hoffmann 2022", "Epoch 2024", "this fit, median"} <= set(labels)


def test_exponents_are_beta_over_alpha_plus_beta(post):
    draws = plots.exponent_draws(post)
    alpha, beta = post.draws("alpha"), post.draws("beta")
    np.testing.assert_allclose(draws["a"], beta / (alpha + beta), rtol=1e-9)
    np.testing.assert_allclose(draws["a"] + draws["b"], 1.0, rtol=1e-9)


def test_trace_rank_has_one_line_per_chain_and_parameter(post, figures):
    axes = figures["trace_rank"].axes
    assert len(axes) == 2 * 6  # E, A, B, alpha, beta, sigma: trace and rank
    assert all(len(axes[2 * i].lines) >= 2 for i in range(6))


def test_point_fit_gets_the_figures_that_apply(post, tmp_path):
    samples = {k: np.array([[v]]) for k, v in EPOCH_2024.items()}
    samples["sigma"] = np.array([[0.005]])
    point = build_posterior(Chinchilla(), post.runs, samples, None, None, method="map", meta={"likelihood": "normal"})
    figs = plots.all_figures(point)
    assert set(figs) == {"loss_vs_compute", "isoflop", "allocation", "residuals"}
    for name, fig in figs.items():
        assert all(data_in(ax) > 0 for ax in visible_axes(fig)), name


def test_save_writes_png_and_svg(figures, tmp_path):
    paths = plots.save(figures["exponents"], tmp_path / "sub" / "exponents")
    assert [p.name for p in paths] == ["exponents.png", "exponents.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 10_000
    svg = paths[1].read_text()
    assert "<svg" in svg and svg.count("<path") > 20
