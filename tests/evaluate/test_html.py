"""The HTML report: renders from a real evaluation, links only its own figures, writes atomically."""

from __future__ import annotations

import base64
import re
import shutil

import pytest
from typer.testing import CliRunner

from hoprec.cli import app
from hoprec.data.schema import load_schema
from hoprec.evaluate import plots
from hoprec.evaluate.html import render_html, write_report
from hoprec.evaluate.protocol import evaluate
from hoprec.task.task import Task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def result(fake_shop, fake_query, fake_db):
    return evaluate(Task.from_query(load_schema(fake_shop), fake_query), fake_db, ["popular", "repeat"])


@pytest.fixture(scope="module")
def report_dir(result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    write_report(result, folder)
    return folder


def img_sources(page: str) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page)


def assert_offline(page: str) -> None:
    """Nothing the page loads comes from a network: no scripts, stylesheets or remote URLs."""
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)


def test_report_links_every_figure_relatively(result, report_dir):
    page_path = report_dir / "index.html"
    page = page_path.read_text()
    srcs = img_sources(page)
    assert sorted(srcs) == sorted(f"figures/{n}.png" for n in ("leaderboard", "curves", "popularity", "slices"))
    for src in srcs:
        assert (page_path.parent / src).read_bytes()[:8] == PNG_MAGIC
    assert_offline(page)
    # the leaderboard table carries the intervals and the paired difference to the best model
    for r in result.results:
        assert f">{r.model}<" in page
        assert f"{r.metrics['map']:.4f} <span class='ci'>[" in page
    assert "(best)" in page and "MAP@5 − best, paired 95% interval" in page
    assert sorted(p.name for p in report_dir.iterdir()) == ["figures", "index.html"]


def test_embedded_report_inlines_the_figures(result, report_dir):
    figures = [plots.Figure(p.stem, p, p.stem, "") for p in sorted((report_dir / "figures").iterdir())]
    page = render_html(result, figures, embed=True, n_boot=100)
    srcs = img_sources(page)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s, f in zip(srcs, figures):
        assert base64.b64decode(s.split(",", 1)[1]) == f.path.read_bytes()
    assert_offline(page)


def test_names_are_escaped(result):
    import copy

    odd = copy.copy(result)
    odd.schema = "<shop & co>"
    page = render_html(odd, [], n_boot=100)
    assert "&lt;shop &amp; co&gt;" in page and "<shop & co>" not in page


def test_a_failed_report_leaves_the_previous_one(result, report_dir, tmp_path, monkeypatch):
    folder = tmp_path / "rep"
    shutil.copytree(report_dir, folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(plots, "popularity_figure", broken)  # fault injection mid-way through drawing
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(result, folder)
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.slow  # two evaluations' worth of drawing: ~4 s alone, more on a busy machine
def test_cli_evaluate_report_then_report_command(fake_shop, fake_query, tmp_path):
    res = runner.invoke(app, ["evaluate", "-s", str(fake_shop), "-q", fake_query, "-m", "popular,repeat",
                              "-o", str(tmp_path / "r"), "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (tmp_path / "r" / "per_entity.npz").is_file()
    first = (tmp_path / "rep" / "index.html").read_text()
    assert len(img_sources(first)) == 4

    res = runner.invoke(app, ["report", str(tmp_path / "r"), "--bootstrap", "200"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    second = (tmp_path / "r" / "report" / "index.html").read_text()
    assert img_sources(second) == img_sources(first) and "200 resamples" in second
    # both commands read the same figures from the same evaluation
    row = re.search(r"<td><span class='best'>repeat</span></td><td>([^<]+)<span class='ci'>", first)
    assert row and row.group(1) in second


def test_cli_report_bad_input(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no results.json" in res.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text('{"query": "x"}')
    res = runner.invoke(app, ["report", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "not a hoprec results file" in res.output
