"""The command line end to end on the fake shop: outputs, leakage, and bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hoprec.cli import app
from hoprec.data.fake import QUERY, make_fake_shop

runner = CliRunner()


def run(*args: str, ok: bool = True):
    res = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def test_help_lists_every_stage():
    res = run("--help")
    for cmd in ("evaluate", "train", "predict", "schema", "demo", "datasets"):
        assert cmd in res.output


def test_evaluate_writes_json_and_markdown(fake_shop, tmp_path):
    res = run("evaluate", "-s", fake_shop, "-q", QUERY, "-m", "popular,repeat", "-o", tmp_path / "r")
    assert "repeat" in res.output and "MAP@5" in res.output
    assert (tmp_path / "r" / "results.json").is_file() and (tmp_path / "r" / "leaderboard.md").is_file()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_train_then_predict_from_model_dir(fake_shop, tmp_path, suffix):
    run("train", "-s", fake_shop, "-q", QUERY, "--model", "repeat", "-o", tmp_path / "m")
    assert (tmp_path / "m" / "manifest.json").is_file()
    out = tmp_path / f"recs{suffix}"
    run("predict", "-s", fake_shop, "-q", QUERY, "--model-dir", tmp_path / "m", "-o", out)
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(df.columns) == ["entity_id", "rank", "item_id", "score", "as_of"]
    assert df.groupby("entity_id")["rank"].max().max() == 5
    assert df.entity_id.nunique() == 60
    # same answer as training inside predict
    out2 = tmp_path / f"recs2{suffix}"
    run("predict", "-s", fake_shop, "-q", QUERY, "--model", "repeat", "-o", out2)
    df2 = pd.read_csv(out2) if suffix == ".csv" else pd.read_parquet(out2)
    pd.testing.assert_frame_equal(df, df2)


def test_predict_to_sqlite_table_and_entities_file(fake_shop, tmp_path):
    ents = tmp_path / "ents.txt"
    ents.write_text("C001\nC002\nNOBODY\n")
    url = f"sqlite:///{tmp_path / 'out.db'}"
    run("predict", "-s", fake_shop, "-q", QUERY, "--entities", ents, "-o", f"{url}#recs")
    import sqlalchemy as sa

    df = pd.read_sql_table("recs", sa.create_engine(url))
    assert set(df.entity_id) == {"C001", "C002", "NOBODY"}  # an unknown id still gets the fallback
    assert (df.groupby("entity_id").size() == 5).all()


def _shop_with_altered_future(src: Path, dst: Path, cutoff: pd.Timestamp) -> Path:
    shutil.copytree(src.parent, dst)
    orders = pd.read_csv(dst / "orders.csv", parse_dates=["ts"])
    future = orders[orders.ts >= cutoff].copy()
    future["product_id"] = future["product_id"].sample(frac=1.0, random_state=1).to_numpy()
    extra = future.assign(customer_id="C000", order_id="X")  # a burst of new future purchases
    altered = pd.concat([orders[orders.ts < cutoff], future, extra])
    altered.to_csv(dst / "orders.csv", index=False)
    return dst / "schema.yaml"


@pytest.mark.parametrize("model", ["popular", "repeat", "itemknn", "als", "bpr"])
def test_rows_at_or_after_the_cutoff_change_nothing(fake_shop, tmp_path, model):
    as_of = pd.Timestamp("2024-02-20")
    altered = _shop_with_altered_future(fake_shop, tmp_path / "alt", as_of)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run("predict", "-s", fake_shop, "-q", QUERY, "--model", model, "--as-of", str(as_of), "-o", a)
    run("predict", "-s", altered, "-q", QUERY, "--model", model, "--as-of", str(as_of), "-o", b)
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))


def test_bad_query_exits_2_and_writes_nothing(fake_shop, tmp_path):
    out = tmp_path / "x.csv"
    bad = QUERY.replace("product_id", "prodct_id")
    res = run("predict", "-s", fake_shop, "-q", bad, "-o", out, ok=False)
    assert res.exit_code == 2
    assert "did you mean product_id" in res.output
    assert not out.exists()


def test_as_of_outside_data_exits_2(fake_shop, tmp_path):
    res = run("predict", "-s", fake_shop, "-q", QUERY, "--as-of", "2031-01-01", "-o", tmp_path / "x.csv", ok=False)
    assert res.exit_code == 2 and "outside the data" in res.output


def test_failed_predict_keeps_previous_output(fake_shop, tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("previous\n")
    run("predict", "-s", fake_shop, "-q", QUERY, "--model", "nosuchmodel", "-o", out, ok=False)
    assert out.read_text() == "previous\n"


def test_schema_error_names_the_file_and_field(tmp_path):
    src = make_fake_shop(tmp_path / "shop")
    src.write_text(src.read_text().replace("primary_key: customer_id", "primary_kye: customer_id"))
    res = run("schema", "check", src, ok=False)
    assert res.exit_code == 2
    assert "tables.customers.primary_kye" in res.output and str(src) in res.output.replace("\n", "")


def test_schema_check_summarises(fake_shop):
    res = run("schema", "check", fake_shop)
    assert "orders" in res.output and "valid" in res.output


def test_console_script_entry_point(fake_shop):
    res = subprocess.run(
        [sys.executable, "-m", "hoprec.cli", "schema", "check", str(fake_shop)],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr
