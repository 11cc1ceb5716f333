"""``hoprec schema check|infer`` and ``hoprec datasets fetch``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hoprec.cli._common import _friendly, _status, console, datasets_app, out, schema_app


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


@datasets_app.command("generate")
def datasets_generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the shop into.")],
    scale: Annotated[float, typer.Option(help="1 = about 1.5M lines (2,500 customers, 20,000 "
                                         "products); 10 = 15M; 100 = 150M.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Same scale and seed: identical files.")] = 0,
) -> None:
    """Generate a realistic shop (customers, product tree, baskets over a year) as Parquet + schema."""
    from hoprec.data.generate import QUERY, generate_shop, shop_sizes

    with _friendly():
        sizes = shop_sizes(scale)
        console.print(f"{sizes.customers:,} customers, {sizes.products:,} products, "
                      f"about {sizes.lines_expected:,} lines", highlight=False)
        with _status("generating", total=-(-sizes.customers // 2_000)) as update:
            path = generate_shop(output, scale=scale, seed=seed,
                                 progress=lambda d, t, n: update(f"{d:,}/{t:,} customers, {n:,} lines"))
    out.print(f"schema: {path}\nquery:  {QUERY}", highlight=False)
