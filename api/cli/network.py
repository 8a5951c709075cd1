"""``patrolgrid network``: street networks for route planning (OSM import, derived, list)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import console, reported_errors, settings, styled
from data.osm_io import read_osm_network
from geo.routes.network import edges_from_lines
from geo.store import network as network_store
from geo.store.db import session_scope

app = typer.Typer(help="Street networks for route planning.", no_args_is_help=True)


def _default_name(path: Path) -> str:
    name = path.name
    for suffix in (".osm.pbf", ".osm.bz2", ".osm.gz", ".pbf", ".osm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _print(info: network_store.NetworkInfo, verb: str) -> None:
    if info.changed:
        console.print(styled((verb, "green"), f" network {info.name!r}: {info.edge_count} edges, "
                             f"{info.node_count} nodes, {info.length_m / 1000:.1f} km of streets"))
    else:
        console.print(f"network {info.name!r} unchanged: the same {info.edge_count} edges "
                      "are stored")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="An OpenStreetMap extract: "
                                         ".osm.pbf (or .osm, .osm.bz2).")],
    name: Annotated[str | None, typer.Option(
        "--name", help="Network name (default: the file name without .osm.pbf).")] = None,
) -> None:
    """Read the walkable streets of an OSM extract and store them as a network,
    replacing a network of the same name (in one transaction: a failure keeps the old one).
    """
    with reported_errors():
        network_name = network_store.check_name(name or _default_name(path))
        read = read_osm_network(path)
        summary = read.summary()
        with session_scope(settings().database_url) as session:
            info = network_store.replace_network(session, network_name, read.edges,
                                                 source=path.name)
    console.print(f"read {summary['highway_ways']} highway ways, {summary['walkable_ways']} "
                  f"walkable; not walkable: {summary['not_walkable_by_highway']}")
    _print(info, "stored")


@app.command("derive")
def derive(
    name: Annotated[str, typer.Option("--name", help="Network name.")] = "grids",
    level: Annotated[str, typer.Option("--level", help="Use the boundaries of the current "
                                       "grids of this level as streets.")] = "grid",
) -> None:
    """Store a network made of grid boundaries (for a city without an OSM extract)."""
    with reported_errors(), session_scope(settings().database_url) as session:
        lines = network_store.grid_boundaries(session, level=level)
        edges = edges_from_lines(lines, highway="grid_boundary")
        info = network_store.replace_network(session, network_store.check_name(name), edges,
                                             source=f"boundaries of {level} grids")
    _print(info, "derived")


@app.command("list")
def list_() -> None:
    """The stored networks."""
    with reported_errors(), session_scope(settings().database_url) as session:
        infos = network_store.list_networks(session)
    table = Table(title="street networks")
    for column in ("name", "source", "edges", "nodes", "km", "imported"):
        table.add_column(column)
    for n in infos:
        table.add_row(n.name, n.source, str(n.edge_count), str(n.node_count),
                      f"{n.length_m / 1000:.1f}", str(n.imported_at)[:19])
    console.print(table)


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="Network name.")]) -> None:
    """Remove a network."""
    with reported_errors(), session_scope(settings().database_url) as session:
        network_store.delete_network(session, name)
    console.print(f"deleted network {name!r}")
