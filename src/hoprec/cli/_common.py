"""What every command shares: the typer app, consoles, common options, error and progress helpers.

Errors a user can fix (schema, query, data) print one clear message and exit with status 2;
nothing is written unless the command completes.
"""

from __future__ import annotations

import contextlib
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
