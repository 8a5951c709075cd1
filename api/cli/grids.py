"""``patrolgrid grids``: import grid boundaries with validation, export them."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from api.cli.common import (
    WAIT_DEFAULT_S,
    WaitOpt,
    check_writable,
    console,
    err_console,
    reported_errors,
    settings,
    styled,
    when_free,
)
from data.grid_import import CheckOptions, ImportReport, export_grids, import_grids
from data.grid_io import ReadOptions
from geo.errors import ImportRefused
from geo.settings import TOLERANCE_MAX_M2, Settings
from geo.store.db import session_scope

app = typer.Typer(help="Grid polygons: import with validation, export.", no_args_is_help=True)

#: Rows shown per finding in the terminal (the JSON report has them all).
SHOWN = 15


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False, readable=True,
        help="GeoJSON, GeoPackage, Shapefile (.shp or .zip) or CSV with a WKT column.")],
    code_field: Annotated[str, typer.Option("--code-field", help="Field holding the grid code.")],
    name_field: Annotated[str | None, typer.Option(
        "--name-field", help="Field holding the name (default: the code).")] = None,
    parent_field: Annotated[str | None, typer.Option(
        "--parent-field", help="Field holding the parent grid's code.")] = None,
    level: Annotated[str | None, typer.Option(
        "--level", help="Level of every grid in the file (default grid; not with "
                        "--level-field).")] = None,
    level_field: Annotated[str | None, typer.Option(
        "--level-field", help="Field holding each grid's level.")] = None,
    crs: Annotated[str | None, typer.Option(
        "--crs", help="wgs84, gcj02, bd09, cgcs2000 or EPSG:n; overrides the file's CRS.")]
    = None,
    wkt_field: Annotated[str | None, typer.Option(
        "--wkt-field", help="CSV column with the WKT (default: wkt, WKT, geometry or geom).")]
    = None,
    population_field: Annotated[str | None, typer.Option(
        "--population-field", help="Field with the population (default: 'population').")]
    = None,
    households_field: Annotated[str | None, typer.Option(
        "--households-field", help="Field with the households (default: 'households').")]
    = None,
    layer: Annotated[str | None, typer.Option("--layer", help="Layer of a multi-layer file.")]
    = None,
    make_valid: Annotated[bool, typer.Option(
        "--make-valid", help="Repair invalid polygons (shapely.make_valid).")] = False,
    resolve_overlaps: Annotated[bool, typer.Option(
        "--resolve-overlaps", help="Give each overlap to the polygon whose code sorts first "
        "(existing grids not in the file always keep theirs).")] = False,
    tolerance_m2: Annotated[float | None, typer.Option(
        "--tolerance-m2", min=0, max=TOLERANCE_MAX_M2, help="Ignore overlaps, gaps and spills "
        "up to this area, at most a hectare (default: PATROLGRID_TOPOLOGY_TOLERANCE_M2, 1 m²).")
    ] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", dir_okay=False, help="Also write the report as JSON to this file.")] = None,
    commit: Annotated[bool, typer.Option(
        "--commit", help="Write the grids (otherwise a dry run that writes nothing).")] = False,
    wait: WaitOpt = WAIT_DEFAULT_S,
) -> None:
    """Validate a boundary file and, with --commit, write its grids as new versions.

    While a bulk import or another grid change holds the grids, a commit tries again for
    up to ``--wait`` seconds.

    Exit status: 0 on success (a dry run too, whatever it found), 1 when --commit is
    refused because of blocking problems, 2 for unusable input.
    """
    cfg = settings()
    read = ReadOptions(code_field=code_field, name_field=name_field, parent_field=parent_field,
                       level=level, level_field=level_field, crs=crs, wkt_field=wkt_field,
                       population_field=population_field, households_field=households_field,
                       layer=layer)
    check = CheckOptions(make_valid=make_valid, resolve_overlaps=resolve_overlaps,
                         tolerance_m2=cfg.topology_tolerance_m2 if tolerance_m2 is None
                         else tolerance_m2)
    refused: ImportRefused | None = None
    with reported_errors():
        check_writable(report, "--report")
        try:
            result = when_free(lambda: _import(path, read, check, commit, cfg), wait_s=wait)
        except ImportRefused as exc:
            refused = exc
    if refused is not None:
        _write_report(report, refused.extra)
        print_report(refused.extra)
        err_console.print(styled(("refused:", "red"), f" {refused.message}"))
        raise typer.Exit(code=1)
    data = result.to_dict()
    _write_report(report, data)
    print_report(data)
    if result.committed:
        console.print(styled(("committed", "green")))
    else:
        console.print("dry run: nothing written"
                      + (" (a commit would be refused)" if result.blocked else
                         "; add --commit to write"))


def _write_report(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        console.print(f"report written to {path}")


def print_report(data: dict[str, Any]) -> None:
    """Print a report (``ImportReport.to_dict()``) as rich tables."""
    counts = data["counts"]
    summary = Table(title=f"grid import: {data['source']} ({data['crs']})")
    summary.add_column("check")
    summary.add_column("count", justify="right")
    summary.add_column("blocks a commit")
    summary.add_row("features / distinct codes", f"{counts['features']} / {counts['codes']}", "")
    repaired = counts["repaired"]
    summary.add_row("invalid geometries", str(counts["invalid_geometries"]),
                    _blocks(counts["invalid_geometries"] - repaired,
                            f"no: {repaired} repaired" if repaired else ""))
    summary.add_row("overlapping pairs", str(counts["overlaps"]),
                    _blocks(counts["overlaps"] - counts["resolved"],
                            f"no: resolved, {data['area_moved_m2']} m² moved"
                            if counts["resolved"] else ""))
    summary.add_row("gaps", str(counts["gaps"]), "no")
    summary.add_row("outside parent", str(counts["outside_parent"]), "no")
    summary.add_row("blocking problems", str(len(data["problems"])),
                    styled(("yes", "red")) if data["problems"] else "")
    for key in ("plan", "written"):
        if data[key] is not None:
            word = "would write" if key == "plan" else "written"
            summary.add_row(word, f"{data[key]['created']} new, {data[key]['updated']} new "
                            f"version(s), {data[key]['unchanged']} unchanged", "")
    moved = data.get("incidents")
    if moved is not None:
        word = "open incidents moved" if data["committed"] else "open incidents would move"
        summary.add_row(word, f"{moved['moved']} to another grid, {moved['kept_grid']} kept "
                        "theirs", "")
    console.print(summary)
    _list(data["problems"], "blocking problems", ("message",))
    _list(data["invalid_geometries"], "invalid geometries", ("code", "reason"))
    _list(data["overlaps"], "overlaps", ("a", "b", "area_m2", "existing", "point"))
    _list(data["resolved"], "resolved overlaps", ("a", "b", "area_m2", "given_to"))
    _list(data["gaps"], "gaps", ("parent", "area_m2", "point"))
    _list(data["outside_parent"], "outside parent", ("code", "parent", "area_m2", "point"))


def _import(path: Path, read: ReadOptions, check: CheckOptions, commit: bool,
            cfg: Settings) -> ImportReport:
    with session_scope(cfg.database_url) as session:
        return import_grids(session, path, read, check, commit=commit,
                            actor=f"grids:{getpass.getuser()}", settings=cfg)


def _blocks(left: int, note: str) -> Text | str:
    return styled(("yes", "red")) if left > 0 else note


def _list(rows: list[dict[str, Any]], title: str, columns: tuple[str, ...]) -> None:
    if not rows:
        return
    table = Table(title=f"{title} ({len(rows)})")
    for column in columns:
        table.add_column(column, justify="right" if column == "area_m2" else "left")
    for row in rows[:SHOWN]:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    if len(rows) > SHOWN:
        table.caption = f"… and {len(rows) - SHOWN} more (see --report)"
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(dir_okay=False,
                                         help="A .geojson or .gpkg file to write.")],
    level: Annotated[str | None, typer.Option("--level", help="Only grids of this level.")]
    = None,
) -> None:
    """Write the current grids to a GeoJSON or GeoPackage file (replacing it)."""
    with reported_errors():
        check_writable(path, "PATH")
        with session_scope(settings().database_url) as session:
            count = export_grids(session, path, level=level)
    console.print(f"exported {count} grid(s) to {path}")
