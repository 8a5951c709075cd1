"""``patrolgrid routes``: import, list and export patrol routes; plan a loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import check_writable, console, reported_errors, settings, styled
from data.roster_shifts import format_shifts
from data.route_io import read_route_file
from geo.errors import InvalidInput
from geo.routes.plan import plan_route
from geo.store import routes as route_store
from geo.store.db import session_scope

app = typer.Typer(help="Patrol routes: import, list, export, plan.", no_args_is_help=True)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="GeoJSON or GeoPackage of "
                                         "route lines (properties: code, name, team or "
                                         "team_id, grid_codes, schedule, attrs).")],
    crs: Annotated[str | None, typer.Option(
        "--crs", help="wgs84, gcj02, bd09, cgcs2000 or EPSG:n; overrides the file's CRS.")]
    = None,
    layer: Annotated[str | None, typer.Option("--layer", help="GeoPackage layer.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check everything, write nothing.")] = False,
) -> None:
    """Check every route of a file, then write them all, matched by code (one transaction:
    any problem writes nothing). Exit status 2 names the feature, field, value and what
    is valid.
    """
    cfg = settings()
    with reported_errors(), session_scope(cfg.database_url) as session:
        routes = read_route_file(path, crs=crs, layer=layer)
        counts = route_store.upsert_routes(session, routes, tolerance_m=cfg.route_tolerance_m)
        if dry_run:
            session.rollback()
    console.print(f"{len(routes)} route(s) in {path.name}: {len(counts.created)} new, "
                  f"{len(counts.updated)} changed, {len(counts.unchanged)} unchanged")
    console.print("dry run: nothing written" if dry_run else styled(("imported", "green")))


@app.command("list")
def list_(
    team: Annotated[str | None, typer.Option("--team", help="A team code.")] = None,
    grid: Annotated[str | None, typer.Option("--grid", help="Routes that claim a grid.")]
    = None,
) -> None:
    """The routes, by code."""
    with reported_errors(), session_scope(settings().database_url) as session:
        rows, total = route_store.list_routes(session, team=team, grid=grid, limit=10_000)
    table = Table(title=f"{total} patrol route(s)")
    for column in ("id", "code", "name", "team", "grids", "km", "schedule"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r.id), r.code, r.name, r.team_code or "", ", ".join(r.grid_codes),
                      f"{r.length_m / 1000:.2f}", format_shifts(r.schedule))
    console.print(table)


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="GeoJSON file to write.")],
) -> None:
    """Write every route as a GeoJSON FeatureCollection that imports back unchanged."""
    with reported_errors():
        check_writable(path, "PATH")
        if path.suffix.lower() not in (".geojson", ".json"):
            raise InvalidInput(f"cannot export routes to {path.name!r}: they are written as "
                               "GeoJSON", field="PATH", value=str(path),
                               valid="a file ending in .geojson or .json")
        with session_scope(settings().database_url) as session:
            rows, _ = route_store.list_routes(session, limit=1_000_000)
    features = []
    for r in rows:
        feature = r.feature()
        keep = ("code", "name", "team", "grid_codes", "schedule", "attrs")
        feature["properties"] = {k: feature["properties"][k] for k in keep}
        features.append(feature)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False, indent=1), encoding="utf-8")
    console.print(f"wrote {len(features)} route(s) to {path}")


@app.command("plan")
def plan(
    length_m: Annotated[float, typer.Option("--length-m", help="Length budget (m).")],
    grid: Annotated[str | None, typer.Option("--grid", help="A grid code.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="A team code (its grid).")] = None,
    network: Annotated[str | None, typer.Option("--network", help="Network name.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the GeoJSON Feature here.")]
    = None,
) -> None:
    """Plan a closed loop through the grid's incident hotspots (like POST /routes/plan)."""
    cfg = settings()
    with reported_errors():
        check_writable(out, "--out")
        with session_scope(cfg.database_url) as session:
            planned = plan_route(session, cfg, length_m=length_m, grid=grid, team=team,
                                 network=network)
    feature = planned.feature()
    props = feature["properties"]
    console.print(f"loop of {props['length_m']:.0f} m (budget {length_m:g}) on network "
                  f"{props['network']!r}: {props['hotspots_visited']} of "
                  f"{props['hotspots_total']} hotspots, {props['incidents_visited']} incidents")
    if out is not None:
        out.write_text(json.dumps(feature, ensure_ascii=False), encoding="utf-8")
        console.print(f"written to {out}")
