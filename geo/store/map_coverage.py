"""What the coverage map shows: coverage per grid of a level, the tracks, the hotspots.

The figures are those of ``GET /api/v1/coverage?level=…`` (:func:`geo.store.coverage.
level_coverage`: share of each grid's area within the buffer of any track line in
``[from, to)``, hotspots and whether a patrol passed them); this module adds the
geometries a map needs: the grid polygons, the hotspot cells (H3 hexagons, each
with its grid and whether it was visited) and the track lines of the window near
the grids, simplified for drawing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import shapely
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.routes.hotspots import cell_polygon
from geo.store.coverage import Rules, grown_box, level_coverage
from geo.store.map_common import PRECISION, feature_collection, grid_features, track_features


@dataclass
class CoverageMap:
    """Coverage of the grids of a level over a window, as GeoJSON layers.

    ``grids`` features carry ``code, name, level, parent_code, area_m2, coverage,
    covered_m2, rank, hotspots_total, hotspots_visited``; ``hotspots`` features
    (H3 cell polygons) ``cell, grid, incidents, visited``; ``tracks`` the lines.
    """

    level: str
    parent: str | None
    start: dt.datetime
    end: dt.datetime
    buffer_m: float
    reach_m: float
    grids: dict[str, Any]
    hotspots: dict[str, Any]
    tracks: dict[str, Any]
    points: int
    tracks_truncated: bool = False
    bounds: tuple[float, float, float, float] | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def unvisited(self) -> list[dict[str, Any]]:
        """The hotspot features no patrol passed, most incidents first."""
        cells = [f for f in self.hotspots["features"] if not f["properties"]["visited"]]
        return sorted(cells, key=lambda f: (-f["properties"]["incidents"],
                                            f["properties"]["cell"]))


def _hotspot_feature(grid: str, cell: dict[str, Any]) -> dict[str, Any]:
    poly = shapely.set_precision(cell_polygon(cell["cell"]), PRECISION)
    return {"type": "Feature", "geometry": shapely.geometry.mapping(poly),
            "properties": {"cell": cell["cell"], "grid": grid, "incidents": cell["incidents"],
                           "visited": bool(cell["visited"])}}


def coverage_map(session: Session, *, level: str, start: dt.datetime, end: dt.datetime,
                 rules: Rules, parent: str | None = None,
                 simplify_m: float = 2.0) -> CoverageMap:
    """Coverage of every current grid of ``level`` (under ``parent``) in ``[start, end)``.

    Raises
    ------
    InvalidInput
        An unknown level (``field='level'``).
    NotFound
        ``parent`` has no current children at ``level`` (``field='parent'``), or
        there are no current grids of the level at all (``field='level'``).
    """
    ranked = level_coverage(session, level, start=start, end=end, rules=rules, parent=parent,
                            cells=True)
    items = ranked["items"]
    if not items:
        raise NotFound(f"there are no current grids of level {level!r}", field="level",
                       value=level, valid="a level that has current grids (import them first)")
    props = {}
    cells = []
    for item in items:
        hot = item["hotspots"]
        props[item["grid"]] = {"coverage": item["coverage"], "covered_m2": item["covered_m2"],
                               "rank": item["rank"], "hotspots_total": hot["total"],
                               "hotspots_visited": hot["visited"]}
        cells += [_hotspot_feature(item["grid"], c) for c in hot["cells"]]
    grids = grid_features(session, [i["grid"] for i in items], properties=props)
    geoms = [shapely.geometry.shape(f["geometry"]) for f in grids]
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(geoms))
    lines, truncated = track_features(
        session, start=start, end=end, simplify_m=simplify_m,
        box=grown_box((xmin, ymin, xmax, ymax), rules.distance_m))
    visited = sum(f["properties"]["visited"] for f in cells)
    shares = [i["coverage"] for i in items]
    summary = {"grids": len(items), "mean_coverage": round(sum(shares) / len(shares), 4),
               "uncovered_grids": sum(s == 0 for s in shares), "hotspots": len(cells),
               "hotspots_visited": visited, "tracks": len(lines),
               "workers": len({f["properties"]["worker_id"] for f in lines})}
    return CoverageMap(level=level, parent=parent, start=start, end=end,
                       buffer_m=rules.distance_m, reach_m=rules.hotspot_reach_m,
                       grids=feature_collection(grids), hotspots=feature_collection(cells),
                       tracks=feature_collection(lines), points=int(ranked["points"]),
                       tracks_truncated=truncated, bounds=(xmin, ymin, xmax, ymax),
                       summary=summary)
