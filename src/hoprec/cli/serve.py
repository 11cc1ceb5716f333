"""``hoprec serve``: the recommendation service (FastAPI on uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from hoprec.cli._common import _friendly, _status, app, console


@app.command()
def serve(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `hoprec train`.")],
    schema: Annotated[Optional[Path], typer.Option("--schema", "-s", help="Schema the model was trained with: builds MODEL_DIR/serving (histories, item attributes, item edges) on first start.")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (they share the event store).")] = 1,
    events: Annotated[Optional[Path], typer.Option("--events", help="SQLite event store (default: events.sqlite beside MODEL_DIR).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve recommendations over HTTP: /recommend, /recommend/session, /recommend/batch,
    /items/{id}/similar, /events, /admin/reload (needs HOPREC_API_KEY), /metrics, /health/*.

    Settings come from HOPREC_* environment variables (see hoprec.serve.settings); the options
    here set HOPREC_MODEL_DIR, HOPREC_SCHEMA_PATH and HOPREC_EVENTS_PATH for every worker.
    """
    from hoprec.compat import require

    uvicorn = require("uvicorn", "serve")
    with _friendly():
        if not (model_dir / "manifest.json").is_file():
            raise FileNotFoundError(f"{model_dir} is not a hoprec model directory (no manifest.json)")
        if schema is not None:
            from hoprec.serve.data import load_or_build

            with _status("preparing serving data (first start only)") as update:
                load_or_build(model_dir, schema, progress=lambda t: update(f"reading {t}"))
        elif not (model_dir / "serving" / "meta.json").is_file():
            console.print("[yellow]warning:[/] no serving data in the model directory and no "
                          "--schema: no histories, attribute filters, reasons or item edges")
        os.environ["HOPREC_MODEL_DIR"] = str(model_dir.resolve())
        if schema is not None:
            os.environ["HOPREC_SCHEMA_PATH"] = str(schema.resolve())
        if events is not None:
            os.environ["HOPREC_EVENTS_PATH"] = str(events.resolve())
    console.print(f"serving {model_dir} on http://{host}:{port} ({workers} worker(s))")
    uvicorn.run("hoprec.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level)


@app.command("export-events")
def export_events(
    events: Annotated[Path, typer.Argument(help="The service's SQLite event store (events.sqlite).")],
    output: Annotated[str, typer.Option("--output", "-o", help="File (.csv, .csv.gz, .parquet) or DB_URL#table.")],
    since: Annotated[int, typer.Option(help="Only events with a sequence number above this.")] = 0,
) -> None:
    """Write the events the service acknowledged (seq, user_id, item_id, kind, time, quantity), for
    the next training run: add the file to the schema as an event table with kind_column: kind."""
    with _friendly():
        if not events.is_file():
            raise FileNotFoundError(f"no event store at {events}")
        from hoprec.serve.batch import write_frame
        from hoprec.serve.events import SQLiteEventStore

        store = SQLiteEventStore(events)
        try:
            frame = store.to_frame()
        finally:
            store.close()
        frame = frame[frame["seq"] > since].reset_index(drop=True)
        where = write_frame(frame, output)
    console.print(f"wrote {len(frame):,} events to {where}")
