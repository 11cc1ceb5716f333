"""``hoprec report``: the HTML evaluation report with figures, from a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hoprec.cli._common import _friendly, _status, app, console, out

EmbedOpt = Annotated[bool, typer.Option(
    "--embed", help="One self-contained index.html with the figures inlined (no figures/ folder).")]
BootOpt = Annotated[int, typer.Option(
    "--bootstrap", min=100, help="Bootstrap resamples for the 95% intervals.")]


def write_report_with_progress(result, output: Path, embed: bool = False, n_boot: int = 1000) -> Path:
    """Render the report (shared with ``hoprec evaluate --report``)."""
    try:
        from hoprec.evaluate.html import write_report

        with _status(f"drawing the report into {output}"):
            return write_report(result, output, embed=embed, n_boot=n_boot)
    except ImportError as e:  # matplotlib missing: say which extra installs it
        console.print("[bold red]error:[/]", str(e), highlight=False)
        raise typer.Exit(2) from None


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(
        help="Folder written by `hoprec evaluate -o` (results.json, and per_entity.npz for intervals and curves).")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Folder for index.html and figures/ (default: RESULTS_DIR/report).")] = None,
    embed: EmbedOpt = False,
    bootstrap: BootOpt = 1000,
) -> None:
    """Write an HTML report with PNG figures (leaderboard with 95% intervals, metric@K curves,
    popularity bias and coverage, slices, training curves) that opens without a network."""
    from hoprec.evaluate.report import read_results

    with _friendly():
        result = read_results(results_dir)
        page = write_report_with_progress(result, output or results_dir / "report", embed, bootstrap)
    if not (results_dir / "per_entity.npz").is_file():
        console.print("[yellow]warning:[/] no per_entity.npz beside results.json: the report has no "
                      "intervals or curves (rerun `hoprec evaluate -o DIR` to get them)", highlight=False)
    out.print(f"wrote {page}")
