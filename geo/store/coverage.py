"""Patrol coverage against PostGIS: grids, track points near them, hotspots, planned vs actual.

Rules (the arithmetic is in :mod:`geo.coverage`):

- **Area coverage** of a grid over ``[from, to)``: the share of its area within
  ``distance_m`` of any track line of any worker in the window, on a raster of
  ``cell_m`` cells in the local UTM zone; ``area_m2`` is the geodesic area from
  PostGIS and ``covered_m2 = coverage * area_m2``. A track line joins consecutive
  fixes of a worker up to a stored segment start (a gap or a jump).
- **Hotspots** of a grid: the ``hotspot_top`` H3 cells (``hotspot_resolution``)
  with the most incidents inside it reported in the ``hotspot_lookback_days``
  before ``to`` (the same rule as route planning); a hotspot is visited when a
  track passed within ``hotspot_reach_m`` of its cell during the window.
- **Planned vs actual**: on a local day, the route's scheduled windows (local
  time; an empty schedule is the whole day), the tracks of its team's members in
  those windows; the share of the route's length within ``tolerance_m`` of them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.coverage import (
    Samples,
    area_coverage,
    hotspot_visits,
    route_walked,
    sample_lines,
    track_lines,
)
from geo.errors import InvalidInput, NotFound, check_day
from geo.routes.hotspots import Hotspot, top_cells
from geo.routes.network import MetricFrame
from geo.store.grids import LEVEL_DEPTH
from geo.store.routes import get_route
from geo.store.track_queries import load_points


@dataclass(frozen=True)
class Rules:
    """The knobs of a coverage computation (from settings, maybe overridden per request)."""

    distance_m: float = 25.0
    cell_m: float = 2.0
    hotspot_resolution: int = 10
    hotspot_top: int = 20
    hotspot_lookback_days: float = 90.0
    hotspot_reach_m: float = 25.0
    #: The longest leg a cleaned track keeps (speed limit x gap + jitter): a leg crossing
    #: an area has a fix at most this far from it.
    leg_m: float = 370.0

    @classmethod
    def from_settings(cls, settings: Any, *, distance_m: float | None = None) -> Rules:
        """The rules of ``settings`` with an optional distance override."""
        return cls(distance_m=float(distance_m if distance_m is not None
                                    else settings.coverage_distance_m),
                   cell_m=float(settings.coverage_cell_m),
                   hotspot_resolution=int(settings.hotspot_resolution),
                   hotspot_top=int(settings.hotspot_top),
                   hotspot_lookback_days=float(settings.hotspot_lookback_days),
                   hotspot_reach_m=float(settings.hotspot_reach_m),
                   leg_m=longest_leg_m(settings))


def longest_leg_m(settings: Any) -> float:
    """The longest leg the track cleaning keeps under ``settings``: the speed limit over the
    longest pause that is not a gap, plus the GPS jitter it allows."""
    return float(settings.track_max_speed_mps * settings.track_max_gap_s
                 + settings.track_jitter_m)


@dataclass
class Area:
    """A current grid (of any level) as coverage needs it."""

    code: str
    name: str
    level: str
    parent_code: str | None
    area_m2: float
    wkb: bytes


@dataclass
class NearPoints:
    """Track points (lon/lat) in line order with line starts, and their workers."""

    worker_id: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    starts: NDArray[np.bool_]

    @property
    def lines(self) -> int:
        """How many track lines."""
        return int(self.starts.sum())


_AREAS = """
SELECT code, name, level, parent_code, ST_Area(geom::geography) AS area_m2,
       ST_AsBinary(geom) AS wkb
  FROM grid
 WHERE valid_to IS NULL
   AND (CAST(:code AS text) IS NULL OR code = :code)
   AND (CAST(:level AS text) IS NULL OR level = :level)
   AND (CAST(:parent AS text) IS NULL OR parent_code = :parent)
 ORDER BY code
"""

_NEAR = text("""
WITH box AS (SELECT ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, 4326) AS geom),
reach AS (SELECT ST_MakeEnvelope(:rxmin, :rymin, :rxmax, :rymax, 4326) AS geom),
who AS (
  SELECT DISTINCT p.worker_id FROM track_point p, reach
   WHERE p.t >= :start AND p.t < :end AND p.geom && reach.geom
     AND (CAST(:workers AS integer[]) IS NULL OR p.worker_id = ANY(CAST(:workers AS integer[])))
),
win AS (
  SELECT p.worker_id, p.t, p.geom, p.seg_start,
         lag(p.geom) OVER w AS prev, lead(p.geom) OVER w AS next,
         lead(p.seg_start) OVER w AS next_start
    FROM track_point p
   WHERE p.worker_id IN (SELECT worker_id FROM who) AND p.t >= :start AND p.t < :end
  WINDOW w AS (PARTITION BY p.worker_id ORDER BY p.t)
),
kept AS (
  SELECT win.worker_id, win.t, win.geom, win.seg_start,
         (win.geom && box.geom
          OR (NOT win.seg_start AND win.prev IS NOT NULL
              AND ST_MakeLine(win.prev, win.geom) && box.geom)
          OR (win.next IS NOT NULL AND NOT win.next_start
              AND ST_MakeLine(win.geom, win.next) && box.geom)) AS near
    FROM win, box
),
marked AS (
  SELECT worker_id, t, geom, near,
         seg_start OR NOT coalesce(lag(near) OVER (PARTITION BY worker_id ORDER BY t), false)
           AS brk
    FROM kept
)
SELECT worker_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, brk
  FROM marked WHERE near ORDER BY worker_id, t
""")

_HOTSPOT_POINTS = text("""
SELECT g.code, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
  FROM grid g JOIN incident i ON ST_Covers(g.geom, i.geom)
 WHERE g.valid_to IS NULL AND g.code = ANY(:codes)
   AND i.reported_at >= :since AND i.reported_at < :until
   AND i.status NOT IN ('duplicate', 'rejected')
 ORDER BY g.code, i.id
""")


def areas(session: Session, *, code: str | None = None, level: str | None = None,
          parent: str | None = None) -> list[Area]:
    """Current grids by code, or every one of a level (optionally under a parent)."""
    if level is not None and level not in LEVEL_DEPTH:
        raise InvalidInput(f"unknown level {level!r}", field="level", value=level,
                           valid=", ".join(LEVEL_DEPTH))
    rows = session.execute(text(_AREAS), {"code": code, "level": level,
                                          "parent": parent}).all()
    if code is not None and not rows:
        raise NotFound(f"there is no current grid {code!r}", field="grid", value=code,
                       valid="the code of a current grid (GET /api/v1/grids)")
    return [Area(code=r.code, name=r.name, level=r.level, parent_code=r.parent_code,
                 area_m2=float(r.area_m2), wkb=bytes(r.wkb)) for r in rows]


def grown_box(bounds: Sequence[float], margin_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box grown by at least ``margin_m`` metres on every side."""
    xmin, ymin, xmax, ymax = bounds
    lat = max(abs(ymin), abs(ymax))
    dlat = margin_m / 110_000.0
    dlon = margin_m / (110_000.0 * max(math.cos(math.radians(min(lat, 89.0))), 1e-3))
    return xmin - dlon, ymin - dlat, xmax + dlon, ymax + dlat


def points_near(session: Session, *, start: dt.datetime, end: dt.datetime,
                box: Sequence[float], leg_m: float,
                workers: Sequence[int] | None = None) -> NearPoints:
    """Track points in ``[start, end)`` in a lon/lat box, with the legs that cross it.

    A point outside the box is kept when a leg to or from it crosses the box, so
    lines run on to their true ends; a line starts anew where it leaves and
    re-enters. The workers read are those with a fix within ``leg_m`` (the longest
    leg a track keeps, :attr:`Rules.leg_m`) of the box: a leg crossing the box with
    both fixes outside it counts too.
    """
    reach = grown_box(box, leg_m)
    rows = session.execute(_NEAR, {"xmin": box[0], "ymin": box[1], "xmax": box[2],
                                   "ymax": box[3], "rxmin": reach[0], "rymin": reach[1],
                                   "rxmax": reach[2], "rymax": reach[3],
                                   "start": start, "end": end,
                                   "workers": list(workers) if workers is not None else None}
                           ).all()
    if not rows:
        return NearPoints(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool))
    w, lon, lat, brk = (np.asarray(c) for c in zip(*rows, strict=True))
    return NearPoints(w.astype(np.int64), lon.astype(float), lat.astype(float), brk.astype(bool))


def hotspots_of(session: Session, codes: Sequence[str], *, until: dt.datetime,
                rules: Rules) -> tuple[dict[str, list[Hotspot]], dt.datetime]:
    """The hotspots of each grid over the look-back before ``until``, and its start."""
    since = until - dt.timedelta(days=rules.hotspot_lookback_days)
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for code, lon, lat in session.execute(_HOTSPOT_POINTS, {"codes": list(codes),
                                                            "since": since, "until": until}):
        found[code].append((lon, lat))
    out = {}
    for code in codes:
        pts = np.asarray(found.get(code, []), dtype=float).reshape(-1, 2)
        out[code] = top_cells(pts[:, 0], pts[:, 1], resolution=rules.hotspot_resolution,
                              top=rules.hotspot_top)
    return out, since


def _samples(frame: MetricFrame, pts: NearPoints, step_m: float) -> Samples:
    x, y = frame.xy(pts.lon, pts.lat)
    return sample_lines(x, y, pts.starts, step_m, cell_m=step_m)


def _measure(areas_: Sequence[Area], pts: NearPoints, frame: MetricFrame, rules: Rules,
             hotspots: dict[str, list[Hotspot]]) -> list[dict[str, Any]]:
    samples = _samples(frame, pts, rules.cell_m)
    polys = [frame.to_metric(shapely.from_wkb(a.wkb)) for a in areas_]
    covers = area_coverage(polys, samples, distance_m=rules.distance_m, cell_m=rules.cell_m)
    out = []
    for area, cover in zip(areas_, covers, strict=True):
        spots = hotspots.get(area.code, [])
        visits = hotspot_visits([frame.to_metric(h.polygon()) for h in spots], samples,
                                rules.hotspot_reach_m)
        visited = sum(visits)
        out.append({
            "grid": area.code, "name": area.name, "level": area.level,
            "parent_code": area.parent_code,
            "coverage": round(cover.share, 4), "area_m2": round(area.area_m2, 1),
            "covered_m2": round(cover.share * area.area_m2, 1), "cell_m": round(cover.cell_m, 3),
            "hotspots": {
                "total": len(spots), "visited": visited,
                "coverage": round(visited / len(spots), 4) if spots else None,
                "cells": [h.as_dict() | {"visited": v} for h, v in zip(spots, visits,
                                                                       strict=True)]},
        })
    return out


def _frame_of(bounds: Sequence[float]) -> MetricFrame:
    return MetricFrame((bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0)


def grid_coverage(session: Session, code: str, *, start: dt.datetime, end: dt.datetime,
                  rules: Rules) -> dict[str, Any]:
    """Area and hotspot coverage of one current grid over ``[start, end)``.

    Returns
    -------
    dict
        ``grid, name, level, coverage, area_m2, covered_m2, buffer_m, cell_m, tracks
        (lines), workers, points, hotspots {total, visited, coverage, reach_m,
        lookback, cells}``.
    """
    (area,) = areas(session, code=code)
    bounds = shapely.from_wkb(area.wkb).bounds
    pts = points_near(session, start=start, end=end,
                      box=grown_box(bounds, rules.distance_m + rules.cell_m), leg_m=rules.leg_m)
    spots, since = hotspots_of(session, [code], until=end, rules=rules)
    (row,) = _measure([area], pts, _frame_of(bounds), rules, spots)
    row["hotspots"] |= {"reach_m": rules.hotspot_reach_m,
                        "lookback": {"from": since.isoformat(), "to": end.isoformat()}}
    return {**row, "from": start.isoformat(), "to": end.isoformat(),
            "buffer_m": rules.distance_m, "tracks": pts.lines,
            "workers": len(np.unique(pts.worker_id)), "points": len(pts.lon)}


#: The levels :func:`level_coverage` ranks (as the coverage map page offers).
RANKED_LEVELS = ("street", "community", "grid")


def level_coverage(session: Session, level: str, *, start: dt.datetime, end: dt.datetime,
                   rules: Rules, parent: str | None = None, worst_first: bool = True,
                   cells: bool = False) -> dict[str, Any]:
    """Coverage of every current grid of a level (under ``parent``), ranked.

    The window's points are read once (binary COPY) and sampled once; each grid
    is then measured in its own raster window. ``rank`` 1 is the least covered
    grid with ``worst_first`` (ties: hotspot coverage, then code). With ``cells``
    each item keeps its hotspot cells (``hotspots.cells``, as for one grid).
    """
    if level not in RANKED_LEVELS:  # "district" or "building" answered an empty ranking
        raise InvalidInput(f"level {level!r} is not a level coverage ranks", field="level",
                           value=level, valid=", ".join(RANKED_LEVELS))
    found = areas(session, level=level, parent=parent)
    if parent is not None and not found:
        raise NotFound(f"no current grid of level {level!r} has the parent {parent!r}",
                       field="parent", value=parent,
                       valid=f"the code of a current grid with children at level {level!r}")
    items: list[dict[str, Any]] = []
    points = 0
    if found:
        geoms = shapely.from_wkb([a.wkb for a in found])
        bounds = [float(v) for v in shapely.total_bounds(geoms)]
        raw = load_points(session, start=start, end=end)
        box = grown_box(bounds, rules.distance_m + rules.leg_m)
        inside = ((raw.lon >= box[0]) & (raw.lon <= box[2]) & (raw.lat >= box[1])
                  & (raw.lat <= box[3]))
        starts = raw.seg_start.copy()
        starts[1:] |= ~inside[:-1]  # a line restarts after points left out
        pts = NearPoints(raw.worker_id[inside], raw.lon[inside], raw.lat[inside],
                         starts[inside])
        points = len(pts.lon)
        spots, _ = hotspots_of(session, [a.code for a in found], until=end, rules=rules)
        items = _measure(found, pts, _frame_of(bounds), rules, spots)
    sign = 1 if worst_first else -1

    def key(item: dict[str, Any]) -> tuple[float, float, str]:
        hot = item["hotspots"]["coverage"]
        return (sign * item["coverage"], sign * (hot if hot is not None else 1.0), item["grid"])

    items.sort(key=key)
    for rank, item in enumerate(items, start=1):
        item["rank"] = rank
        if not cells:
            item["hotspots"] = {k: v for k, v in item["hotspots"].items() if k != "cells"}
    return {"level": level, "parent": parent, "from": start.isoformat(), "to": end.isoformat(),
            "buffer_m": rules.distance_m, "hotspot_reach_m": rules.hotspot_reach_m,
            "order": "worst_first" if worst_first else "best_first", "points": points,
            "count": len(items), "items": items}


# --------------------------------------------------------------------------- planned vs actual

def schedule_windows(schedule: Sequence[dict[str, Any]], day: dt.date,
                     tz: ZoneInfo) -> list[tuple[dt.datetime, dt.datetime]]:
    """The windows of a weekly schedule starting on ``day`` (local); [] when none.

    An empty schedule is the whole day; ``end <= start`` runs past midnight.
    """
    midnight = dt.datetime.combine(day, dt.time(0), tz)
    if not schedule:
        return [(midnight, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz))]
    out = []
    for window in schedule:
        if day.weekday() not in list(window.get("days", range(7))):
            continue
        start = dt.datetime.combine(day, dt.time.fromisoformat(str(window["start"])), tz)
        end = dt.datetime.combine(day, dt.time.fromisoformat(str(window["end"])), tz)
        if end <= start:
            end += dt.timedelta(days=1)
        out.append((start, end))
    return sorted(out)


def parse_day(value: str | dt.date) -> dt.date:
    """A date from ``YYYY-MM-DD``; InvalidInput naming ``date`` otherwise."""
    if isinstance(value, dt.date):
        return check_day(value, "date")
    try:
        return check_day(dt.date.fromisoformat(value.strip()), "date")
    except ValueError:
        raise InvalidInput(f"date {value!r} is not a date", field="date", value=value,
                           valid="a local date as YYYY-MM-DD") from None


def route_actual(session: Session, route_id: int, day: dt.date, *, tz: ZoneInfo,
                 tolerance_m: float, leg_m: float) -> dict[str, Any]:
    """Planned vs actual for a route on a local day: share walked and missed pieces
    (``leg_m``: the longest leg a cleaned track keeps, :func:`longest_leg_m`)."""
    route = get_route(session, route_id)
    windows = schedule_windows(route.schedule, day, tz)
    if not windows:
        days = sorted({d for w in route.schedule for d in w.get("days", [])})
        raise InvalidInput(f"route {route.code!r} is not scheduled on {day.isoformat()} "
                           f"({day.strftime('%A')})", field="date", value=day.isoformat(),
                           valid=f"a date on a scheduled weekday (Monday=0): {days}")
    members = [int(r[0]) for r in session.execute(
        text("SELECT id FROM worker WHERE team_id = :t ORDER BY id"), {"t": route.team_id})]
    line = shapely.geometry.shape(route.geometry)
    frame = _frame_of(line.bounds)
    box = grown_box(line.bounds, tolerance_m + 50.0)
    lines: list[Any] = []
    walkers: set[int] = set()
    points = 0
    for start, end in windows:
        if not members:
            break
        pts = points_near(session, start=start, end=end, box=box, leg_m=leg_m,
                          workers=members)
        x, y = frame.xy(pts.lon, pts.lat)
        lines += track_lines(x, y, pts.starts)
        walkers |= set(pts.worker_id.tolist())
        points += len(pts.lon)
    walked = route_walked(frame.to_metric(line), lines, tolerance_m)
    codes = [r[0] for r in session.execute(
        text("SELECT code FROM worker WHERE id = ANY(:ids) ORDER BY code"),
        {"ids": sorted(walkers)})]
    missed = [{"type": "Feature", "geometry": json.loads(shapely.to_geojson(
                  shapely.set_precision(frame.to_lonlat(piece), 1e-7))),
               "properties": {"length_m": round(piece.length, 1)}} for piece in walked.missed]
    return {"route": {"id": route.id, "code": route.code, "team_id": route.team_id,
                      "team": route.team_code},
            "date": day.isoformat(), "tolerance_m": tolerance_m,
            "windows": [{"from": a.isoformat(), "to": b.isoformat()} for a, b in windows],
            "length_m": round(walked.length_m, 1), "walked_m": round(walked.walked_m, 1),
            "missed_m": round(walked.length_m - walked.walked_m, 1),
            "share": round(walked.share, 4), "workers": codes, "points": points,
            "missed": {"type": "FeatureCollection", "features": missed}}
