"""The report on a real evaluation: UCI Online Retail from ``$HOPREC_SHARED_DATA`` (fails, never
skips, when the data is absent)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from hoprec.cli import app
from hoprec.data.datasets import example_schema, shared_data
from hoprec.evaluate import plots
from hoprec.evaluate.report import read_results

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
OR_QUERY = "PREDICT LIST_DISTINCT(invoice_lines.StockCode, 0, 30, days) RANK TOP 12 FOR EACH customers.CustomerID"


def test_online_retail_report(tmp_path):
    try:
        root = shared_data()
    except FileNotFoundError as e:
        pytest.fail(str(e))
    if not (root / "online_retail" / "online_retail.csv.gz").is_file():
        pytest.fail(f"online_retail.csv.gz not found under {root}: set HOPREC_SHARED_DATA")
    res = CliRunner().invoke(app, [
        "evaluate", "-s", str(example_schema("online_retail")), "-q", OR_QUERY, "-m", "popular,repeat",
        "-o", str(tmp_path / "r"), "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "index.html").read_text()
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert len(srcs) == 4 and all((tmp_path / "rep" / s).is_file() for s in srcs)
    result = read_results(tmp_path / "r")
    n = result.split_stats["test"]["scored_entities"]
    for mean, lo, hi, count in plots.intervals(result, "map"):
        assert count == n > 1000
        assert lo < mean < hi and hi - lo < 0.05  # about +-0.012 on 1,376 customers
    # 253 customers first seen in the window are scored apart, and the slice figure shows them
    cold = result.results[0].arrays["slice/cold entities (labels, no history)/map"]
    assert len(cold) == result.split_stats["test"]["cold_entities"] > 100
    deciles = result.arrays["data/truth_popularity_deciles"]
    assert deciles[-1] > deciles[0]  # people buy popular items more often than rare ones
