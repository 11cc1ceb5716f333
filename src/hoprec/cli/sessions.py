"""``hoprec evaluate`` for session queries (``PREDICT NEXT(...) ... FOR EACH SESSION``).

No command of its own: :func:`hoprec.cli.experiment._run_evaluate` hands session queries here,
so sessions use the same command, options and output files as the customer task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hoprec.cli._common import _read_query, _status, console, out


def is_session_query(query: str) -> bool:
    from hoprec.task.pql import parse

    return parse(_read_query(query)).per_session


def run_session_evaluate(schema: Path, query: str, models: str, k: Optional[int], output: Optional[Path]):
    from hoprec.data.database import load_database
    from hoprec.data.schema import load_schema
    from hoprec.evaluate.session_protocol import evaluate_sessions
    from hoprec.evaluate.session_report import print_leaderboard, write_results
    from hoprec.models.session import SESSION_DEFAULT, get_session_model_class
    from hoprec.task.session import SessionTask

    names = [m.strip() for m in models.split(",") if m.strip()] if models else list(SESSION_DEFAULT)
    steps = 1 + sum(len(get_session_model_class(n).param_grid) + 1 for n in names)
    with _status("loading") as update:
        s = load_schema(schema)
        task = SessionTask.from_query(s, _read_query(query))  # check the query before reading data
        db = load_database(s, progress=lambda t: update(f"reading {t}"))
    for w in db.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    with _status("evaluating sessions", total=steps) as update:
        result = evaluate_sessions(task, db, names, k=k, progress=update)
    print_leaderboard(result, out)
    if output:
        jpath, mpath = write_results(result, output)
        console.print(f"wrote {jpath} and {mpath}")
    return result
