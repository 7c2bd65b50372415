"""The report: every section present, figures embedded, renders in headless Chromium; its CLI."""

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bayes_scaling.cli import main
from bayes_scaling.fitting.nuts import fit_nuts
from bayes_scaling.fitting.posterior_build import build_posterior
from bayes_scaling.laws import EPOCH_2024, Chinchilla
from bayes_scaling.report import SECTIONS, write_report
from bayes_scaling.runs import load_chinchilla

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def post():
    return fit_nuts(load_chinchilla().for_fit(), num_chains=2, num_warmup=200, num_draws=200, seed=0)


@pytest.fixture(scope="module")
def html_report(post, tmp_path_factory):
    return write_report(post, tmp_path_factory.mktemp("report") / "report.html", title="Test report")


class Outline(HTMLParser):
    """Section ids, headings, tables per section, image sources and any external references."""

    def __init__(self):
        super().__init__()
        self.sections, self.headings, self.images, self.external = [], [], [], []
        self.tables: dict[str, int] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._heading = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag in ("h1", "h2", "h3"):
            self._heading = ""
        elif tag == "table":
            self.tables[self.sections[-1]] = self.tables.get(self.sections[-1], 0) + 1
        elif tag == "tr":
            self.rows.setdefault(self.sections[-1], []).append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])
        if tag in ("link", "script", "iframe") or (attrs.get("src") or "").startswith(("http", "file", "/")):
            self.external.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[self.sections[-1]][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell += data


def outline(path: Path) -> Outline:
    parser = Outline()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_html_report_has_every_section_in_order(html_report):
    o = outline(html_report)
    assert o.sections == list(SECTIONS)
    assert o.headings[0] == "Test report" and [h for h in o.headings if h in SECTIONS.values()] == list(SECTIONS.values())
    for key in ("data", "diagnostics", "parameters", "frontier"):
        assert o.tables.get(key, 0) >= 1, key


def test_html_report_is_self_contained_with_embedded_figures(html_report):
    o = outline(html_report)
    assert o.external == []
    assert len(o.images) == 8  # the seven of plots.all_figures and the backtest's
    for src in o.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_html_report_tables_hold_the_answers(post, html_report):
    o = outline(html_report)
    frontier = o.rows["frontier"]
    assert frontier[0][0] == "budget C (FLOPs)"
    from bayes_scaling.formatting import observed_compute

    top = 6 * np.max(post.runs.N * post.runs.D)  # budgets beyond the largest fitted run are marked *,
    reach = observed_compute(post)  # beyond the calibration's farthest held-out run **
    assert reach is not None and reach > top
    assert [r[0] for r in frontier[1:]] == [f"1e+{k}" + ("**" if 10.0**k > reach else "*" if 10.0**k > top else "")
                                            for k in range(19, 26)]
    assert "* beyond the fitted runs (" in html_report.read_text()
    assert "** beyond" in html_report.read_text()
    assert all(re.fullmatch(r"\S+ \[\S+, \S+\]", cell) for r in frontier[1:] for cell in r[1:])
    params = {r[0]: r for r in o.rows["parameters"][1:]}
    assert set(params) == {"E", "A", "B", "alpha", "beta", "sigma"}
    assert float(params["E"][1]) == pytest.approx(np.median(post.draws("E")), rel=1e-3)
    diag = [r[0] for r in o.rows["diagnostics"][1:]]
    assert diag[:4] == ["max R-hat", "min bulk ESS", "min tail ESS", "divergences"]
    assert any("E-BFMI" in d for d in diag) and any("tree depth" in d for d in diag)
    trust = o.rows["backtest"]
    assert trust[0][:4] == ["group", "held-out budget", "runs", "coverage 50%"] and trust[-1][1] == "all held-out"
    assert "How far can these runs be trusted?" in html_report.read_text()


def test_html_report_lists_the_excluded_rows_and_why(html_report):
    o = outline(html_report)
    excluded = [r for r in o.rows["data"] if r and r[0].startswith("chinchilla:")]
    assert len(excluded) == 5 and all(r[-1] == "epoch2024_excluded" for r in excluded)
    text = html_report.read_text()
    assert "240 runs fitted" in text and "5 flagged rows were excluded (5 epoch2024_excluded)" in text
    assert "PSIS-LOO" in text and "inside their 90% predictive interval" in text
    assert "No residual trend against log N, log D or log C" in text


@pytest.mark.slow  # a Ray cluster, a fresh interpreter or a browser process: in `make test`
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_html_report_renders_in_headless_chromium(html_report, tmp_path):
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    url = html_report.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    assert all(f'<section id="{key}">' in dom for key in SECTIONS)
    assert dom.count("<img") == 8  # the seven of plots.all_figures and the backtest's
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400", url],
                   capture_output=True, timeout=120, check=True)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1200) and pixels.std() > 0.05  # text, tables and figures, not blank


@pytest.mark.slow
def test_markdown_report_writes_figures_beside_it(post, tmp_path):
    path = write_report(post, tmp_path / "report.md", fmt="md")
    text = path.read_text()
    assert [line[3:] for line in text.splitlines() if line.startswith("## ")] == list(SECTIONS.values())
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 8  # the seven of plots.all_figures and the backtest's
    for link in links:
        assert (tmp_path / link).is_file() and link.startswith("report_figures/")
    assert re.search(r"\| 1e\+25\*{1,2} \|", text) and "epoch2024_excluded" in text  # marked: beyond the fitted runs
    assert text.splitlines()[0] == "# bayes-scaling report: chinchilla (Hoffmann 2022 via Epoch 2024) (chinchilla law, nuts)"
    assert not re.search(r"\(0 tokens/param\)", text)  # a small ratio keeps its digits (formatting.format_ratio)


def test_bad_format_is_an_input_error(post, tmp_path):
    from bayes_scaling.errors import InputError

    with pytest.raises(InputError, match="html' or 'md'"):
        write_report(post, tmp_path / "r.pdf", fmt="pdf")


# --- CLI -----------------------------------------------------------------------------------------
@pytest.mark.slow  # a fresh interpreter, several processes or a whole CLI round trip: in `make test`
def test_cli_report_of_a_saved_point_fit(tmp_path, capsys):
    runs = load_chinchilla().for_fit()
    samples = {k: np.array([[v]]) for k, v in EPOCH_2024.items()}
    samples["sigma"] = np.array([[0.005]])
    point = build_posterior(Chinchilla(), runs, samples, None, None, method="map", meta={"likelihood": "normal"})
    point.save(tmp_path / "fit")
    assert main(["report", str(tmp_path / "fit"), "--out", str(tmp_path / "r.html"), "--no-backtest"]) == 0
    assert "report written to" in capsys.readouterr().out
    o = outline(tmp_path / "r.html")
    assert o.sections == [key for key in SECTIONS if key != "backtest"]
    assert len(o.images) == 4  # no exponents, pair or trace for one draw, no backtest
    text = (tmp_path / "r.html").read_text()
    assert "diagnostics do not apply" in text and "PSIS-LOO not computed" in text
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such fit directory" in capsys.readouterr().err
    # --budget puts the user's budgets in "Deciding at a budget" instead of the default three
    assert main(["report", str(tmp_path / "fit"), "--out", str(tmp_path / "r.md"), "--no-backtest",
                 "--budget", "3e22"]) == 0
    deciding = (tmp_path / "r.md").read_text().split("## Deciding at a budget")[1].split("\n## ")[0]
    assert re.search(r"\| 3e\+22\*{0,2} \|", deciding) and "1e+25" not in deciding
    with pytest.raises(SystemExit):  # argparse: "budget must be positive"
        main(["report", str(tmp_path / "fit"), "--budget", "-1"])


def test_cli_compare_ranks_saved_fits(post, tmp_path, capsys):
    post.save(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "ranked by PSIS-LOO ELPD" in out and re.search(r"^\s+1\s+[ab]\s", out, re.M)
    assert main(["compare", str(tmp_path / "a")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_report_verdict_says_how_the_fit_was_redone(post, monkeypatch):
    """A fit retried at smaller steps or redone with longer chains says so in the report's verdict."""
    from bayes_scaling.report import report_content

    monkeypatch.setitem(post.meta, "more_draws", "tail ESS short at 1000 draws per chain; redone with 2000")
    verdict = report_content(post)["verdict"]
    assert verdict.endswith("Longer chains: tail ESS short at 1000 draws per chain; redone with 2000.")
    assert "Refitted" not in verdict


def test_the_verdict_names_what_the_runs_cannot_identify():
    """A ladder of runs all at 20 tokens per parameter: the report's verdict says the design cannot pin the
    law's split between N and D (not only that the sampler failed), and the fit is not called trusted."""
    import pandas as pd

    from bayes_scaling.fitting.nuts import fit_nuts
    from bayes_scaling.report import report_content
    from bayes_scaling.runs import validate_runs

    N = np.geomspace(1e7, 1e9, 10)
    loss = 1.7 + 400 * N ** -0.34 + 410 * (20 * N) ** -0.28
    with pytest.warns(UserWarning):
        ladder = fit_nuts(validate_runs(pd.DataFrame({"N": N, "D": 20 * N, "loss": loss})), model="plain",
                          num_chains=2, num_warmup=100, num_draws=100)
    content = report_content(ladder, budgets=())
    assert "These runs cannot identify the law: every run has about the same tokens per parameter" in content["verdict"]
    assert "More warm-up or draws will not fix this" in content["verdict"] and content["trusted"] is False


def test_a_groups_report_counts_only_its_own_left_out_runs():
    """A grouped fit's member fitted one group of a bundled dataset: the rows it left out are that group's
    flagged rows, not the other groups' runs."""
    from types import SimpleNamespace

    from bayes_scaling.report import excluded_runs
    from bayes_scaling.runs import load_marin

    frame = load_marin().frame
    comma = frame[frame["group"] == "comma"]
    member = SimpleNamespace(runs=SimpleNamespace(frame=comma[~comma["flagged"]].reset_index(drop=True)), excluded=None)
    left_out = excluded_runs(member)
    assert len(left_out) == int(comma["flagged"].sum()) > 0
    assert set(left_out["run_id"]) == set(comma.loc[comma["flagged"], "run_id"].astype(str))


def test_a_fit_of_small_runs_gets_budgets_around_its_own_compute():
    """The report's frontier and decisions use the standard budgets for fits whose largest run lies between
    1e17 and 1e25 FLOPs; a fit of harness-sized runs (6ND ~ 1e12) gets decades from 100x below its largest run."""
    from types import SimpleNamespace

    from bayes_scaling.frontier import STANDARD_BUDGETS
    from bayes_scaling.report import DECISION_BUDGETS, decision_budgets, frontier_budgets

    small = SimpleNamespace(runs=SimpleNamespace(N=np.array([2e4, 1e5]), D=np.array([4e5, 2e6])))  # 6ND up to 1.2e12
    assert frontier_budgets(small) == [1e10, 1e11, 1e12, 1e13, 1e14, 1e15]
    assert decision_budgets(small) == (1e13, 1e14, 1e15) and decision_budgets(small, (5e12,)) == (5e12,)
    usual = SimpleNamespace(runs=SimpleNamespace(N=np.array([1e8, 1e9]), D=np.array([2e9, 2e10])))
    assert frontier_budgets(usual) == list(STANDARD_BUDGETS) and decision_budgets(usual) == DECISION_BUDGETS
