"""What a patrol team's route map for a day shows: routes, grids, incidents, tracks.

For a team (code or id) and a local day:

- **routes**: every route of the team, ``scheduled`` when its weekly schedule has
  a window starting that day; for a scheduled route, planned vs actual
  (:func:`geo.store.coverage.route_actual`: the share walked by the team's
  members in those windows);
- **grids**: the grids the routes claim and the team's own grid (``claimed``),
  plus the finest current grids the routes pass through or along (``crossed``);
- **incidents**: those reported in the ``days`` before the end of the day within
  ``near_m`` metres (geodesic) of any of the team's routes, newest first, at most
  ``limit`` (duplicates and rejected reports left out), each with its distance
  to the nearest route and whether it is overdue;
- **tracks**: the members' GPS track lines of that day, simplified for drawing.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.incidents.loop import PENDING_STATUSES
from geo.store.coverage import Rules, route_actual, schedule_windows
from geo.store.map_common import feature_collection, grid_features, track_features
from geo.store.routes import list_routes

#: Most routes of one team a map draws.
MAX_ROUTES = 200

_TEAM = text("""
SELECT t.id, t.code, t.name, t.kind, t.grid_code, g.name AS grid_name
  FROM team t LEFT JOIN grid g ON g.code = t.grid_code AND g.valid_to IS NULL
 WHERE t.code = :team OR CAST(t.id AS text) = :team
 ORDER BY t.code = :team DESC
 LIMIT 1
""")

_MEMBERS = text("""
SELECT id, code, name, role, phone, active FROM worker WHERE team_id = :team ORDER BY code
""")

_CROSSED = text("""
WITH r AS (SELECT ST_Union(geom) AS geom FROM patrol_route WHERE team_id = :team)
SELECT g.code FROM grid g, r
 WHERE g.valid_to IS NULL AND r.geom IS NOT NULL AND ST_Intersects(g.geom, r.geom)
   AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_code = g.code AND c.valid_to IS NULL)
 ORDER BY g.code
""")

_ALONG = text("""
WITH r AS (SELECT ST_Union(geom) AS geom FROM patrol_route WHERE team_id = :team)
SELECT i.id, i.category_code, c.name_zh, c.name_en, i.status, i.reported_at, i.due_at,
       i.grid_code, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
       ST_Distance(i.geom::geography, r.geom::geography) AS distance_m,
       count(*) OVER () AS total
  FROM incident i JOIN category c ON c.code = i.category_code, r
 WHERE r.geom IS NOT NULL
   AND i.reported_at >= :since AND i.reported_at < :until
   AND i.status NOT IN ('duplicate', 'rejected')
   AND i.geom && ST_Expand(r.geom, :dlon, :dlat)
   AND ST_DWithin(i.geom::geography, r.geom::geography, :near_m)
 ORDER BY i.reported_at DESC, i.id DESC
 LIMIT :limit
""")


@dataclass
class Team:
    """A team as the route map shows it, with its members ``(id, code, name, role, phone)``."""

    id: int
    code: str
    name: str
    kind: str
    grid_code: str | None
    grid_name: str | None
    members: list[dict[str, Any]]


@dataclass
class TeamDay:
    """A team's routes, grids, incidents and tracks for a local day, as GeoJSON layers."""

    team: Team
    day: dt.date
    since: dt.datetime
    until: dt.datetime
    near_m: float
    routes: dict[str, Any]
    grids: dict[str, Any]
    incidents: dict[str, Any]
    incidents_total: int
    tracks: dict[str, Any]
    tracks_truncated: bool = False


def get_team(session: Session, team: str | int) -> Team:
    """A team by code (or id); NotFound naming ``team`` otherwise."""
    value = str(team).strip()
    row = session.execute(_TEAM, {"team": value}).first()
    if row is None:
        raise NotFound(f"there is no team {value!r}", field="team", value=value,
                       valid="the code or id of a team (GET /api/v1/teams)")
    members = [{"id": r.id, "code": r.code, "name": r.name, "role": r.role, "phone": r.phone}
               for r in session.execute(_MEMBERS, {"team": row.id}) if r.active]
    return Team(id=row.id, code=row.code, name=row.name, kind=row.kind,
                grid_code=row.grid_code, grid_name=row.grid_name, members=members)


def _window_text(windows: list[tuple[dt.datetime, dt.datetime]]) -> str:
    return ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in windows)


def _route_features(session: Session, team: Team, day: dt.date, tz: ZoneInfo,
                    tolerance_m: float, leg_m: float) -> list[dict[str, Any]]:
    routes, _ = list_routes(session, team_id=team.id, limit=MAX_ROUTES)
    out = []
    for route in routes:
        windows = schedule_windows(route.schedule, day, tz)
        props: dict[str, Any] = {"id": route.id, "code": route.code, "name": route.name,
                                 "grid_codes": route.grid_codes,
                                 "length_m": round(route.length_m, 1),
                                 "scheduled": bool(windows), "windows": _window_text(windows),
                                 "walked_share": None, "walked_m": None, "workers": []}
        if windows:
            actual = route_actual(session, route.id, day, tz=tz, tolerance_m=tolerance_m,
                                  leg_m=leg_m)
            props |= {"walked_share": actual["share"], "walked_m": actual["walked_m"],
                      "workers": actual["workers"]}
        out.append({"type": "Feature", "id": route.code, "geometry": route.geometry,
                    "properties": props})
    return out


def _incidents(session: Session, team: Team, *, since: dt.datetime, until: dt.datetime,
               near_m: float, limit: int, now: dt.datetime,
               lat: float) -> tuple[list[dict[str, Any]], int]:
    dlat = near_m / 110_000.0
    dlon = near_m / (110_000.0 * max(math.cos(math.radians(min(abs(lat), 89.0))), 1e-3))
    rows = session.execute(_ALONG, {"team": team.id, "since": since, "until": until,
                                    "near_m": near_m, "dlon": dlon * 1.01, "dlat": dlat * 1.01,
                                    "limit": limit}).all()
    out = [{"type": "Feature", "id": r.id,
            "geometry": {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
            "properties": {"id": r.id, "category": r.category_code, "category_zh": r.name_zh,
                           "category_en": r.name_en, "status": r.status,
                           "reported_at": r.reported_at.isoformat(), "grid_code": r.grid_code,
                           "distance_m": round(float(r.distance_m), 1),
                           "overdue": bool(r.due_at is not None and r.due_at < now
                                           and r.status in PENDING_STATUSES)}}
           for r in rows]
    return out, int(rows[0].total) if rows else 0


def team_day(session: Session, team: str | int, day: dt.date, *, tz: ZoneInfo,
             near_m: float = 100.0, days: float = 7.0, limit: int = 500,
             tolerance_m: float = 25.0, leg_m: float = Rules.leg_m, simplify_m: float = 2.0,
             now: dt.datetime | None = None) -> TeamDay:
    """The route map of ``team`` on the local ``day`` (see the module docstring).

    Parameters
    ----------
    session : Session
    team : str or int
        Team code or id.
    day : date
        Local day (in ``tz``).
    tz : ZoneInfo
        Local time zone (shifts, schedules).
    near_m : float
        Incidents this close (geodesic metres) to a route are along the way.
    days : float
        How far back before the end of the day incidents count as recent.
    limit : int
        Most incidents shown (the newest); ``incidents_total`` counts them all.
    tolerance_m : float
        Planned vs actual tolerance.
    leg_m : float
        The longest leg a cleaned track keeps (:func:`geo.store.coverage.longest_leg_m`).
    simplify_m : float
        Drawing tolerance of the tracks.
    now : datetime, optional
        For ``overdue`` (default: the clock).

    Raises
    ------
    NotFound
        No team with that code or id (``field='team'``).
    """
    found = get_team(session, team)
    start = dt.datetime.combine(day, dt.time(0), tz)
    until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)
    since = until - dt.timedelta(days=days)
    routes = _route_features(session, found, day, tz, tolerance_m, leg_m)
    claimed = {c for f in routes for c in f["properties"]["grid_codes"]}
    if found.grid_code:
        claimed.add(found.grid_code)
    crossed = [r.code for r in session.execute(_CROSSED, {"team": found.id})]
    kinds = {c: {"role": "crossed"} for c in crossed} | {c: {"role": "claimed"} for c in claimed}
    grids = grid_features(session, sorted(kinds), properties=kinds)
    lat = grids[0]["geometry"]["coordinates"][0][0][0][1] if grids else 0.0
    incidents, total = _incidents(session, found, since=since, until=until, near_m=near_m,
                                  limit=limit, now=now or dt.datetime.now(dt.UTC), lat=lat)
    lines, truncated = track_features(session, start=start, end=until,
                                      workers=[m["id"] for m in found.members],
                                      simplify_m=simplify_m)
    return TeamDay(team=found, day=day, since=since, until=until, near_m=near_m,
                   routes=feature_collection(routes), grids=feature_collection(grids),
                   incidents=feature_collection(incidents), incidents_total=total,
                   tracks=feature_collection(lines), tracks_truncated=truncated)
