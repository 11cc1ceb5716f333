"""``hoprec graph build``: the out-of-core, memory-mapped interaction graph (issue 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hoprec.cli._common import _friendly, _status, app, out

graph_app = typer.Typer(help="Graphs on disk: memory-mapped, shared by worker processes.",
                        no_args_is_help=True)
app.add_typer(graph_app, name="graph")


@graph_app.command("build")
def graph_build(
    schema: Annotated[Path, typer.Option("--schema", "-s", help="Schema YAML file.")],
    table: Annotated[str, typer.Option(help="Event table (a file source).")],
    entity: Annotated[str, typer.Option(help="Its foreign key to the customers (e.g. customer_id).")],
    item: Annotated[str, typer.Option(help="Its foreign key to the products (e.g. product_id).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Graph folder to write.")],
    cutoff: Annotated[Optional[str], typer.Option(help="Only rows strictly before this time.")] = None,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory limit; it spills to disk past it.")] = "2GB",
) -> None:
    """Aggregate an event table with DuckDB into a memory-mapped customer/product CSR graph.

    The folder is what `torchrun -m hoprec.train.distributed --graph DIR` trains on.
    """
    from hoprec.data.schema import load_schema
    from hoprec.graph.ooc import build_interaction_graph

    with _friendly():
        s = load_schema(schema)
        with _status("building the graph", total=4) as update:
            g = build_interaction_graph(s, table, output, entity, item, cutoff=cutoff,
                                        memory_limit=memory_limit, progress=update)
    out.print(g.summary(), highlight=False, markup=False)
    out.print(f"wrote {output}", highlight=False)
