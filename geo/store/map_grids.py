"""Grid polygons and per-grid incident figures for the heatmap, hexbins and grids pages.

Outlines are simplified for drawing (``ST_SimplifyPreserveTopology`` with a
tolerance in degrees of about 2 m, 6 decimals). The figures of a grid count the
incidents of the grid and of every grid below it, reported in the window (and
of the categories) asked for; a grid retired by a plan counts below the parent
of its last version, so its history stays in its community and street (not in
the grid that took its area: incidents keep the grid they were assigned to):

- ``reported``: all of them; ``open``: those whose status is not final now;
- ``overdue``: still pending (registered, dispatched, accepted, in progress)
  after their ``due_at``;
- ``closed``; ``resolution_rate``: closed / (reported − duplicates), None when
  nothing counts;
- ``avg_close_h``: mean hours from report to close of the closed ones.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.loop import FINAL_STATUSES, PENDING_STATUSES
from geo.store.models import LATEST_GRIDS_SQL

#: Simplification tolerance of drawn outlines, degrees (about 2 m).
OUTLINE_TOLERANCE_DEG = 0.00002

_SCOPE = """
WITH RECURSIVE scope(code) AS (
    SELECT code FROM grid
     WHERE valid_to IS NULL AND (CAST(:under AS text) IS NULL OR code = :under)
  UNION
    SELECT g.code FROM grid g JOIN scope s ON g.parent_code = s.code WHERE g.valid_to IS NULL
)"""

# the queries below prefix the constant _SCOPE: no value is ever formatted into SQL
_OUTLINES = text(_SCOPE + """
SELECT g.code, g.name, g.level, g.parent_code,
       ST_AsGeoJSON(ST_SimplifyPreserveTopology(g.geom, :tol), 6) AS geojson
  FROM grid g
 WHERE g.valid_to IS NULL AND g.level = :level
   AND (CAST(:under AS text) IS NULL OR g.code IN (SELECT code FROM scope))
 ORDER BY g.code""")  # noqa: S608

_EXTENT = text(_SCOPE + """
SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1
  FROM (SELECT ST_Extent(geom) AS e FROM grid
         WHERE valid_to IS NULL AND code IN (SELECT code FROM scope)) AS box""")  # noqa: S608

# The tree goes down the latest version of every code, current or retired: the incidents
# of a grid retired by a plan stay in the figures of the community and street it was in.
_FIGURES = text("""
WITH RECURSIVE latest AS (""" + LATEST_GRIDS_SQL + """
), tree(root, code) AS (
    SELECT code, code FROM grid WHERE valid_to IS NULL AND code = ANY(:roots)
  UNION
    SELECT t.root, l.code FROM latest l JOIN tree t ON l.parent_code = t.code
)
SELECT t.root AS code,
       count(i.id) AS reported,
       count(i.id) FILTER (WHERE NOT (i.status = ANY(:final))) AS open,
       count(i.id) FILTER (WHERE i.status = ANY(:pending) AND i.due_at < :now) AS overdue,
       count(i.id) FILTER (WHERE i.status = 'closed') AS closed,
       count(i.id) FILTER (WHERE i.status = 'duplicate') AS duplicates,
       avg(EXTRACT(EPOCH FROM i.closed_at - i.reported_at) / 3600.0)
           FILTER (WHERE i.status = 'closed' AND i.closed_at IS NOT NULL) AS avg_close_h
  FROM tree t
  JOIN incident i ON i.grid_code = t.code
 WHERE i.reported_at >= :since AND i.reported_at < :until
   AND (CAST(:categories AS text[]) IS NULL OR i.category_code = ANY(:categories))
 GROUP BY t.root""")  # noqa: S608 (a constant, no value formatted in)

_RESPONSIBLE = text("""
SELECT d.grid_code, d.kind, w.code, w.name, w.phone
  FROM duty d JOIN worker w ON w.id = d.worker_id
 WHERE w.active AND d.grid_code = ANY(:codes)
 ORDER BY d.grid_code, d.kind DESC, w.name, w.code""")


def grid_outlines(session: Session, *, level: str, under: str | None = None
                  ) -> list[dict[str, Any]]:
    """The current grids of ``level`` (below ``under`` when given) as GeoJSON Features.

    Properties: ``code``, ``name``, ``level``, ``parent_code``; WGS-84, simplified.
    """
    rows = session.execute(_OUTLINES, {"level": level, "under": under,
                                       "tol": OUTLINE_TOLERANCE_DEG})
    return [{"type": "Feature", "id": r.code, "geometry": json.loads(r.geojson),
             "properties": {"code": r.code, "name": r.name, "level": r.level,
                            "parent_code": r.parent_code}} for r in rows]


def grids_extent(session: Session, *, under: str | None = None
                 ) -> tuple[float, float, float, float] | None:
    """(lon_min, lat_min, lon_max, lat_max) of the current grids (below ``under``), or None."""
    r = session.execute(_EXTENT, {"under": under}).one()
    return None if r.x0 is None else (float(r.x0), float(r.y0), float(r.x1), float(r.y1))


@dataclass
class GridFigures:
    """The incident figures of one grid (see the module docstring)."""

    code: str
    reported: int = 0
    open: int = 0
    overdue: int = 0
    closed: int = 0
    duplicates: int = 0
    avg_close_h: float | None = None
    responsible: list[dict[str, Any]] = field(default_factory=list)

    @property
    def resolution_rate(self) -> float | None:
        """Closed over reported minus duplicates (None when that is 0)."""
        base = self.reported - self.duplicates
        return self.closed / base if base > 0 else None


def grid_figures(session: Session, codes: Sequence[str], *, since: dt.datetime,
                 until: dt.datetime, categories: Sequence[str] | None = None,
                 now: dt.datetime | None = None) -> dict[str, GridFigures]:
    """Figures and responsible workers of every grid in ``codes`` (zeros when no incident)."""
    at = now or dt.datetime.now(dt.UTC)
    out = {code: GridFigures(code) for code in codes}
    params = {"roots": list(codes), "final": list(FINAL_STATUSES),
              "pending": list(PENDING_STATUSES), "now": at, "since": since, "until": until,
              "categories": list(categories) if categories else None}
    for r in session.execute(_FIGURES, params):
        fig = out[r.code]
        fig.reported, fig.open, fig.overdue = int(r.reported), int(r.open), int(r.overdue)
        fig.closed, fig.duplicates = int(r.closed), int(r.duplicates)
        fig.avg_close_h = float(r.avg_close_h) if r.avg_close_h is not None else None
    for r in session.execute(_RESPONSIBLE, {"codes": list(codes)}):
        out[r.grid_code].responsible.append(
            {"kind": r.kind, "code": r.code, "name": r.name, "phone": r.phone})
    return out
