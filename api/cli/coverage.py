"""``patrolgrid coverage``: area and hotspot coverage of a grid, or a level ranked."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import console, reported_errors, settings
from geo.errors import InvalidInput
from geo.store import coverage as store
from geo.store.db import session_scope
from geo.store.track_queries import parse_window


def coverage(
    grid: Annotated[str | None, typer.Option("--grid", help="A current grid code.")] = None,
    level: Annotated[str | None, typer.Option(
        "--level", help="Rank every current grid of this level (street, community, grid).")]
    = None,
    parent: Annotated[str | None, typer.Option("--parent", help="With --level: only grids "
                                                               "under this parent.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO 8601 (default: a day "
                                                             "before --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO 8601 (default: now).")] = None,
    distance: Annotated[float | None, typer.Option(
        "--distance", help="Buffer in m, above 0 and at most 500, as the API "
        "(default PATROLGRID_COVERAGE_DISTANCE_M).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON answer.")] = False,
) -> None:
    """Share of a grid's area within the buffer of the GPS tracks of a window, and the
    share of its hotspots visited; with --level, every grid of the level, least covered
    first. Exit status 2 for bad input.
    """
    cfg = settings()
    with reported_errors(), session_scope(cfg.database_url) as session:
        if (grid is None) == (level is None):
            raise InvalidInput("give exactly one of --grid and --level", field="grid",
                               value=grid, valid="--grid CODE or --level street|community|grid")
        if distance is not None and not 0 < distance <= 500:  # NaN and inf included
            raise InvalidInput(f"--distance {distance:g} is not a buffer", field="distance",
                               value=distance, valid="metres above 0 and at most 500")
        lo, hi = parse_window(start, end, tz=cfg.tz, max_days=cfg.track_max_window_days)
        rules = store.Rules.from_settings(cfg, distance_m=distance)
        if grid is not None:
            answer = store.grid_coverage(session, grid, start=lo, end=hi, rules=rules)
            items = [answer]
        else:
            assert level is not None
            answer = store.level_coverage(session, level, start=lo, end=hi, rules=rules,
                                          parent=parent)
            items = answer["items"]
    if as_json:
        console.print_json(json.dumps(answer, ensure_ascii=False))
        return
    table = Table(title=f"coverage {lo.isoformat()} – {hi.isoformat()} "
                        f"(buffer {rules.distance_m:g} m)")
    for column in ("rank", "grid", "name", "coverage", "covered m²", "area m²", "hotspots"):
        table.add_column(column, justify="left" if column in ("grid", "name") else "right")
    for item in items:
        hot = item["hotspots"]
        table.add_row(str(item.get("rank", "")), item["grid"], item["name"],
                      f"{item['coverage']:.1%}", f"{item['covered_m2']:,.0f}",
                      f"{item['area_m2']:,.0f}", f"{hot['visited']}/{hot['total']}")
    console.print(table)
