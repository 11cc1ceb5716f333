"""The command line: every stage reachable, nothing else lives here.

One module per group of commands; importing this package registers them all on :data:`app`.
"""

from __future__ import annotations

from hoprec.cli import data, experiment, report, scale, serve  # noqa: F401 - registers the commands
from hoprec.cli._common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    app()
