"""``hoprec evaluate``, ``demo``, ``train`` and ``predict``: the offline experiment commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from hoprec.cli._common import (
    DEFAULT_QUERY,
    AsOfOpt,
    QueryOpt,
    SchemaOpt,
    _friendly,
    _load,
    _status,
    app,
    console,
    out,
)


# ---------------------------------------------------------------------------------- evaluate
def _run_evaluate(schema: Path, query: str, models: str, k: Optional[int], output: Optional[Path],
                  report: Optional[Path] = None):
    from hoprec.cli.sessions import is_session_query, run_session_evaluate
    from hoprec.evaluate.protocol import evaluate
    from hoprec.evaluate.report import print_leaderboard, write_results
    from hoprec.models.registry import BASELINES, get_model_class

    names = [m.strip() for m in models.split(",") if m.strip()] if models else list(BASELINES)
    with _friendly():
        if is_session_query(query):  # PREDICT NEXT(...) FOR EACH SESSION: the session protocol
            if report:
                raise ValueError("--report (the HTML report) is not available for session queries; "
                                 "use --output for results.json and leaderboard.md")
            return run_session_evaluate(schema, query, models, k, output)
        steps = 1 + sum(len(get_model_class(n).param_grid) + 1 for n in names)
        with _status("loading") as update:
            _, task, db = _load(schema, query, update)
        with _status("evaluating", total=steps) as update:
            result = evaluate(task, db, names, k=k, progress=update)
        print_leaderboard(result, out)
        if output:
            jpath, mpath = write_results(result, output)
            console.print(f"wrote {jpath} and {mpath}")
        if report:
            from hoprec.cli.report import write_report_with_progress

            console.print(f"wrote {write_report_with_progress(result, report)}")
    return result


@app.command()
def evaluate(
    schema: SchemaOpt,
    query: QueryOpt,
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated model names (default: all baselines).")] = "",
    k: Annotated[Optional[int], typer.Option(help="Cut-off K (default: the query's RANK TOP).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for results.json and leaderboard.md.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the HTML report with figures (`hoprec report`) to this folder.")] = None,
) -> None:
    """Temporal evaluation: tune on validation, report test figures for every model.

    A session query (PREDICT NEXT(table.item) RANK TOP k FOR EACH SESSION) runs the session protocol instead: every prefix of every test session against its next item, with the session models (default: session_pop, transitions, sknn, vsknn, sgnn, sgnn_vsknn).
    """
    _run_evaluate(schema, query, models, k, output, report)


@app.command()
def demo(
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated model names.")] = "",
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")] = Path("results/completejourney"),
) -> None:
    """The Complete Journey leaderboard: fetch the data, run the default query, print results."""
    from hoprec.data.datasets import example_schema, export_completejourney

    with _status("exporting The Complete Journey (first run only)"):
        export_completejourney()
    _run_evaluate(example_schema("completejourney"), DEFAULT_QUERY, models, None, output)


# ---------------------------------------------------------------------------------- train / predict
def _parse_params(params: list[str]) -> dict:
    outp = {}
    for p in params:
        key, sep, value = p.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param {p!r}: expected KEY=VALUE", param_hint="--param")
        try:
            outp[key] = json.loads(value)
        except json.JSONDecodeError:
            outp[key] = value
    return outp


def _fit_at(task, db, model_name: str, params: dict, as_of):
    from hoprec.models.registry import create_model

    cutoff = task.data_end(db) if as_of is None else task.check_as_of(db, as_of)
    dataset = task.build_dataset(db.snapshot(cutoff))
    model = create_model(model_name, **params).fit(dataset)
    return model, dataset


@app.command()
def train(
    schema: SchemaOpt,
    query: QueryOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    model: Annotated[str, typer.Option("--model", help="Model name.")] = "repeat",
    param: Annotated[list[str], typer.Option("--param", "-p", help="Model setting KEY=VALUE (repeatable).")] = [],  # noqa: B006
    as_of: AsOfOpt = None,
) -> None:
    """Train one model on everything before --as-of (default: all data); write a model directory."""
    from hoprec.train.artifacts import save_model_dir

    with _friendly():
        with _status("loading") as update:
            s, task, db = _load(schema, query, update)
            update(f"training {model}")
            m, dataset = _fit_at(task, db, model, _parse_params(param), as_of)
            save_model_dir(output, m, dataset, str(task.query), s.name, s.digest())
    out.print(f"wrote {output} ({m!r}, as of {dataset.cutoff})")


@app.command()
def predict(
    schema: SchemaOpt,
    query: QueryOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="File (.csv, .csv.gz, .parquet) or DB_URL#table.")],
    model: Annotated[str, typer.Option("--model", help="Model to train now (ignored with --model-dir).")] = "repeat",
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", help="Use a model written by `hoprec train`.")] = None,
    param: Annotated[list[str], typer.Option("--param", "-p", help="Model setting KEY=VALUE.")] = [],  # noqa: B006
    as_of: AsOfOpt = None,
    entities: Annotated[Optional[Path], typer.Option("--entities", help="File of entity ids (one per line, or a CSV with an entity_id column).")] = None,
) -> None:
    """Write top-k rows (entity_id, rank, item_id, score, as_of) for every entity."""
    import pandas as pd

    from hoprec.evaluate.protocol import exclusion
    from hoprec.serve.batch import recommend_frame, remap_matrix, write_frame
    from hoprec.train.artifacts import load_model_dir

    with _friendly():
        with _status("loading") as update:
            s, task, db = _load(schema, query, update)
            if model_dir is not None:
                art = load_model_dir(model_dir)
                if art.manifest["schema_digest"] != s.digest():
                    raise ValueError(
                        f"{model_dir} was trained with a different schema (digest "
                        f"{art.manifest['schema_digest']}, this one {s.digest()}): retrain it"
                    )
                cutoff = art.as_of if as_of is None else task.check_as_of(db, as_of)
                dataset = task.build_dataset(db.snapshot(cutoff))
                m, users, items = art.model, art.users, art.items
            else:
                update(f"training {model}")
                m, dataset = _fit_at(task, db, model, _parse_params(param), as_of)
                users, items = dataset.users, dataset.items
            if entities is not None:
                ids = _read_entities(entities)
            else:
                ids = task.eligible_entities(db.snapshot(dataset.cutoff), dataset.cutoff)
            excl = exclusion(task, dataset)
            if excl is not None and users is not dataset.users:
                excl = remap_matrix(excl, dataset.users, dataset.items, users, items)
            update(f"recommending for {len(ids):,} entities")
            frame = recommend_frame(m, users, items, pd.Index(ids), task.k, dataset.cutoff, excl)
            where = write_frame(frame, output)
    out.print(f"wrote {len(frame):,} rows for {len(ids):,} entities to {where}")


def _read_entities(path: Path):
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"--entities file not found: {path}")
    text = path.read_text().splitlines()
    has_header = bool(text) and ("," in text[0] or text[0].strip() == "entity_id")
    if has_header:
        df = pd.read_csv(path)
        if "entity_id" not in df:
            raise ValueError(f"{path}: expected a column named entity_id (got {list(df.columns)})")
        vals = df["entity_id"]
    else:
        vals = pd.Series([t.strip() for t in text if t.strip()])
    return pd.Index(pd.unique(vals))
