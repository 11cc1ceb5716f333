"""The command line: every stage reachable, nothing else lives here.

Errors a user can fix (schema, query, data) print one clear message and exit with status 2;
nothing is written unless the command completes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    help="hoprec: recommendations learned from a shop's whole relational database.\n\n"
    "Describe the data once (a schema file), ask a predictive query, evaluate, train, predict.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="Draft and check schema files.", no_args_is_help=True)
datasets_app = typer.Typer(help="Put built-in datasets on disk.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(datasets_app, name="datasets")

console = Console(stderr=True)
out = Console()
if not out.is_terminal:  # piped or captured: wide enough for the leaderboard
    out = Console(width=200)

DEFAULT_QUERY = (
    "PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12 "
    "FOR EACH households.household_id"
)

SchemaOpt = Annotated[Path, typer.Option("--schema", "-s", help="Schema YAML file.")]
QueryOpt = Annotated[str, typer.Option("--query", "-q", help="Predictive query (PQL) or @FILE.")]
AsOfOpt = Annotated[
    Optional[str],
    typer.Option("--as-of", help="Pretend the data ends here: rows at or after it are ignored."),
]


def _user_errors() -> tuple[type[BaseException], ...]:
    from hoprec.data.schema import SchemaError
    from hoprec.task.pql import PQLError
    from hoprec.task.task import TaskError

    return (SchemaError, PQLError, TaskError, FileNotFoundError, ValueError, KeyError)


@contextlib.contextmanager
def _friendly() -> Iterator[None]:
    try:
        yield
    except _user_errors() as e:
        console.print("[bold red]error:[/]", str(e).strip("'\""), highlight=False)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _status(message: str, total: int | None = None) -> Iterator[Callable[[str], None]]:
    """A progress bar (``total`` steps) or spinner with elapsed time.

    Yields ``update(msg)``: each call shows ``msg`` and, with a total, advances one step.  When
    stderr is not a terminal (CI, pipes), each step is printed as a timestamped line instead.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns += [BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False,
                  disable=not console.is_terminal) as progress:
        tid = progress.add_task(message, total=total)
        if not console.is_terminal:
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")

        def update(msg: str) -> None:
            if not console.is_terminal:
                console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {msg}")
            progress.update(tid, description=msg, advance=1 if total else None)

        yield update
        if total:
            progress.update(tid, completed=total, description="done")


def _read_query(query: str) -> str:
    if query.startswith("@"):
        return Path(query[1:]).read_text().strip()
    return query


def _load(schema: Path, query: str, update=None):
    from hoprec.data.database import load_database
    from hoprec.data.schema import load_schema
    from hoprec.task.task import Task

    s = load_schema(schema)
    task = Task.from_query(s, _read_query(query))  # check the query before reading any data
    db = load_database(s, progress=(lambda t: update(f"reading {t}")) if update else None)
    for w in db.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    return s, task, db


# ---------------------------------------------------------------------------------- schema
@schema_app.command("check")
def schema_check(file: Annotated[Path, typer.Argument(help="Schema YAML file.")]) -> None:
    """Validate a schema against its data and summarise every table."""
    from rich.table import Table

    from hoprec.data.database import load_database
    from hoprec.data.schema import load_schema

    with _friendly():
        s = load_schema(file)
        with _status("reading tables") as update:
            db = load_database(s, progress=lambda t: update(f"reading {t}"))
    t = Table(title=f"schema {s.name} ({file})", title_justify="left")
    for col in ("table", "rows", "primary key", "time column", "from", "to", "foreign keys"):
        t.add_column(col)
    for name, df in db.tables.items():
        spec = s.tables[name]
        tc = db.time_columns.get(name)
        lo = str(df[tc].min()) if tc and len(df) else ""
        hi = str(df[tc].max()) if tc and len(df) else ""
        fks = ", ".join(f"{c}->{x}" for c, x in spec.foreign_keys.items())
        t.add_row(name, f"{len(df):,}", spec.primary_key or "", tc or "", lo, hi, fks)
    out.print(t)
    for w in db.warnings:
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    out.print(f"[green]ok:[/] {file} is valid ({len(db.warnings)} warning(s))")


@schema_app.command("infer")
def schema_infer(
    folder: Annotated[Path, typer.Argument(help="Folder of CSV/Parquet files.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here, not stdout.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Schema name (default: folder name).")] = None,
) -> None:
    """Draft a schema from a folder of files, saying what was guessed, for you to check."""
    from hoprec.data.infer import infer_schema
    from hoprec.evaluate.report import atomic_write_text

    with _friendly():
        text, notes = infer_schema(folder, name=name, relative_to=output.parent if output else None)
    for n in notes:
        console.print(f"[cyan]guess:[/] {n}", highlight=False)
    if output:
        atomic_write_text(output, text)
        console.print(f"wrote {output}: check it, then run `hoprec schema check {output}`")
    else:
        out.print(text, highlight=False, markup=False)


# ---------------------------------------------------------------------------------- datasets
@datasets_app.command("fetch")
def datasets_fetch(
    name: Annotated[str, typer.Argument(help="completejourney")] = "completejourney",
    force: Annotated[bool, typer.Option(help="Rewrite files that exist.")] = False,
) -> None:
    """Write a built-in dataset's tables as Parquet under $HOPREC_DATA_HOME."""
    from hoprec.data.datasets import export_completejourney

    if name != "completejourney":
        console.print(f"[red]error:[/] unknown dataset {name!r}; available: completejourney")
        raise typer.Exit(2)
    with _status("exporting The Complete Journey"):
        path = export_completejourney(force=force)
    out.print(f"{name}: {path}")


# ---------------------------------------------------------------------------------- evaluate
def _run_evaluate(schema: Path, query: str, models: str, k: Optional[int], output: Optional[Path]):
    from hoprec.evaluate.protocol import evaluate
    from hoprec.evaluate.report import print_leaderboard, write_results
    from hoprec.models.registry import BASELINES, get_model_class

    names = [m.strip() for m in models.split(",") if m.strip()] if models else list(BASELINES)
    with _friendly():
        steps = 1 + sum(len(get_model_class(n).param_grid) + 1 for n in names)
        with _status("loading") as update:
            _, task, db = _load(schema, query, update)
        with _status("evaluating", total=steps) as update:
            result = evaluate(task, db, names, k=k, progress=update)
        print_leaderboard(result, out)
        if output:
            jpath, mpath = write_results(result, output)
            console.print(f"wrote {jpath} and {mpath}")
    return result


@app.command()
def evaluate(
    schema: SchemaOpt,
    query: QueryOpt,
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated model names (default: all baselines).")] = "",
    k: Annotated[Optional[int], typer.Option(help="Cut-off K (default: the query's RANK TOP).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for results.json and leaderboard.md.")] = None,
) -> None:
    """Temporal evaluation: tune on validation, report test figures for every model."""
    _run_evaluate(schema, query, models, k, output)


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


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
