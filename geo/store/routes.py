"""Patrol routes in PostGIS: checks against the database, CRUD, upsert by code; incident
points for hotspots.

Every write checks the route first (:func:`check_route`): its team exists, its
grids are current grids, and no part of it is more than ``tolerance_m`` metres
outside the union of the grids it claims (geodesic metres, measured on the route
cut every ``tolerance_m / 2`` metres). A refused write changes nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.routes.validate import RouteIn

_COLUMNS = """r.id, r.code, r.name, r.team_id, t.code AS team_code, r.grid_codes, r.schedule,
              r.attrs, r.created_at, r.updated_at, ST_AsGeoJSON(r.geom, 7) AS geojson,
              ST_Length(r.geom::geography) AS length_m"""
_FROM = " FROM patrol_route r LEFT JOIN team t ON t.id = r.team_id"


@dataclass
class RouteRow:
    """A stored route as the API shows it."""

    id: int
    code: str
    name: str
    team_id: int | None
    team_code: str | None
    grid_codes: list[str]
    schedule: list[dict[str, Any]]
    attrs: dict[str, Any]
    geometry: dict[str, Any]
    length_m: float
    created_at: dt.datetime
    updated_at: dt.datetime

    def feature(self) -> dict[str, Any]:
        """The route as a GeoJSON Feature (geometry in WGS-84, lon/lat)."""
        return {"type": "Feature", "id": self.id, "geometry": self.geometry, "properties": {
            "code": self.code, "name": self.name, "team_id": self.team_id,
            "team": self.team_code, "grid_codes": self.grid_codes, "schedule": self.schedule,
            "attrs": self.attrs, "length_m": round(self.length_m, 1),
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}}


def _row(r: Any) -> RouteRow:
    return RouteRow(id=r.id, code=r.code, name=r.name, team_id=r.team_id, team_code=r.team_code,
                    grid_codes=list(r.grid_codes), schedule=list(r.schedule),
                    attrs=dict(r.attrs), geometry=json.loads(r.geojson),
                    length_m=float(r.length_m), created_at=r.created_at,
                    updated_at=r.updated_at)


# --------------------------------------------------------------------------- checks

def resolve_team(session: Session, *, team: str | None, team_id: int | None,
                 field_prefix: str = "properties.") -> int:
    """The id of the team given by code or id; InvalidInput when it does not exist."""
    if team_id is not None:
        row = session.execute(text("SELECT id, code FROM team WHERE id = :id"),
                              {"id": team_id}).first()
        if row is None:
            raise InvalidInput(f"there is no team with id {team_id}",
                               field=f"{field_prefix}team_id", value=team_id,
                               valid="the id of an existing team (GET /api/v1/teams)")
        if team is not None and team != row.code:
            raise InvalidInput(f"team {team!r} is not team {team_id} ({row.code!r})",
                               field=f"{field_prefix}team", value=team,
                               valid=f"{row.code!r}, or leave it out")
        return int(row.id)
    found = session.execute(text("SELECT id FROM team WHERE code = :c"), {"c": team}).scalar()
    if found is None:
        raise InvalidInput(f"there is no team with code {team!r}", field=f"{field_prefix}team",
                           value=team, valid="the code of an existing team (GET /api/v1/teams)")
    return int(found)


def check_within(session: Session, geom_wkb: bytes, grid_codes: Sequence[str],
                 tolerance_m: float, *, field: str = "geometry") -> None:
    """InvalidInput when part of the line is farther than ``tolerance_m`` from the grids."""
    row = session.execute(text("""
        WITH g AS (SELECT ST_Union(geom) AS geom FROM grid
                    WHERE valid_to IS NULL AND code = ANY(:codes)),
             o AS (SELECT ST_Difference(ST_GeomFromWKB(:wkb, 4326), g.geom) AS geom FROM g),
             p AS (SELECT (ST_DumpPoints(ST_Segmentize(o.geom::geography, :step)::geometry)).geom
                     AS geom FROM o WHERE NOT ST_IsEmpty(o.geom))
        SELECT ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat,
               ST_Distance(p.geom::geography, g.geom::geography) AS off_m,
               (SELECT ST_Length(o.geom::geography) FROM o) AS outside_m
          FROM p, g ORDER BY off_m DESC, lon, lat LIMIT 1"""),
                          {"codes": list(grid_codes), "wkb": geom_wkb,
                           "step": max(tolerance_m / 2.0, 1.0)}).first()
    if row is not None and float(row.off_m) > tolerance_m:
        raise InvalidInput(
            f"the route goes {row.off_m:.1f} m outside its grids {', '.join(grid_codes)} "
            f"(at lon {row.lon:.6f}, lat {row.lat:.6f}; {row.outside_m:.0f} m of it is "
            f"outside them)", field=field, value=f"{row.off_m:.1f} m outside",
            valid=f"a route within {tolerance_m:g} m of the grids it claims (grid_codes); "
                  "claim more grids or fix the line",
            extra={"farthest_point": [round(row.lon, 7), round(row.lat, 7)],
                   "outside_m": round(float(row.outside_m), 1)})


def check_grids(session: Session, codes: Sequence[str], *, field: str) -> None:
    """InvalidInput naming the codes that are not current grids."""
    found = {r[0] for r in session.execute(
        text("SELECT code FROM grid WHERE valid_to IS NULL AND code = ANY(:c)"),
        {"c": list(codes)})}
    missing = sorted(set(codes) - found)
    if missing:
        raise InvalidInput(f"{field}: no current grid with code(s) {', '.join(missing)}",
                           field=field, value=missing,
                           valid="codes of current grids (GET /api/v1/grids)")


def check_route(session: Session, route: RouteIn, tolerance_m: float, *,
                where: str = "") -> int:
    """Run the database checks of a route; returns its team id."""
    team_id = resolve_team(session, team=route.team, team_id=route.team_id,
                           field_prefix=f"{where}properties.")
    check_grids(session, route.grid_codes, field=f"{where}properties.grid_codes")
    check_within(session, shapely.to_wkb(route.geom), route.grid_codes, tolerance_m,
                 field=f"{where}geometry")
    return team_id


# --------------------------------------------------------------------------- writes

def _params(route: RouteIn, team_id: int) -> dict[str, Any]:
    return {"name": route.name, "team_id": team_id, "grids": route.grid_codes,
            "schedule": json.dumps(route.schedule), "attrs": json.dumps(route.attrs),
            "wkb": shapely.to_wkb(route.geom)}


def _code_taken(session: Session, code: str, own_id: int | None) -> None:
    other = session.execute(text("SELECT id FROM patrol_route WHERE code = :c"),
                            {"c": code}).scalar()
    if other is not None and other != own_id:
        raise Conflict(f"route code {code!r} is taken by route {other}", field="properties.code",
                       value=code, valid="a code no other route has")


def create_route(session: Session, route: RouteIn, *, tolerance_m: float) -> RouteRow:
    """Check and insert a route; its code is ``R<id>`` when none is given (``R<id>-2`` … when
    a route was given that code by hand)."""
    team_id = check_route(session, route, tolerance_m)
    if route.code is not None:
        _code_taken(session, route.code, None)
    new_id = int(session.execute(text("SELECT nextval('patrol_route_id_seq')")).scalar_one())
    session.execute(text("""
        INSERT INTO patrol_route (id, code, name, team_id, grid_codes, schedule, attrs, geom)
        VALUES (:id, :code, :name, :team_id, :grids, CAST(:schedule AS jsonb),
                CAST(:attrs AS jsonb), ST_Multi(ST_GeomFromWKB(:wkb, 4326)))"""),
                    {"id": new_id, "code": route.code or _free_code(session, f"R{new_id}"),
                     **_params(route, team_id)})
    return get_route(session, new_id)


def _free_code(session: Session, base: str) -> str:
    taken = set(session.execute(text(
        "SELECT code FROM patrol_route WHERE code = :base OR code LIKE :base || '-%'"),
        {"base": base}).scalars())
    return next(code for code in itertools.chain([base], (f"{base}-{k}" for k in
                                                            itertools.count(2)))
                if code not in taken)


def replace_route(session: Session, route_id: int, route: RouteIn, *,
                  tolerance_m: float) -> RouteRow:
    """Check ``route`` and store it in place of route ``route_id`` (keeps its code if none)."""
    old = get_route(session, route_id)
    team_id = check_route(session, route, tolerance_m)
    code = route.code or old.code
    _code_taken(session, code, route_id)
    session.execute(text("""
        UPDATE patrol_route SET code = :code, name = :name, team_id = :team_id,
               grid_codes = :grids, schedule = CAST(:schedule AS jsonb),
               attrs = CAST(:attrs AS jsonb), geom = ST_Multi(ST_GeomFromWKB(:wkb, 4326)),
               updated_at = now()
         WHERE id = :id"""), {"id": route_id, "code": code, **_params(route, team_id)})
    return get_route(session, route_id)


def delete_route(session: Session, route_id: int) -> None:
    """Remove a route (NotFound when missing)."""
    get_route(session, route_id)
    session.execute(text("DELETE FROM patrol_route WHERE id = :id"), {"id": route_id})


@dataclass
class UpsertCounts:
    """Codes created, updated and unchanged by :func:`upsert_routes`."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]

    def as_dict(self) -> dict[str, int]:
        """Counts only."""
        return {"created": len(self.created), "updated": len(self.updated),
                "unchanged": len(self.unchanged)}


def _same(old: RouteRow, route: RouteIn, team_id: int) -> bool:
    geom = shapely.geometry.shape(old.geometry)
    return (old.name == route.name and old.team_id == team_id
            and sorted(old.grid_codes) == route.grid_codes and old.schedule == route.schedule
            and old.attrs == route.attrs
            and bool(shapely.equals_exact(geom, route.geom, tolerance=1e-7)))


def _located(exc: InvalidInput, prefix: str) -> InvalidInput:
    """The same error with the feature named at the start of its message."""
    if not prefix or exc.message.startswith(prefix.rstrip(".")):
        return exc
    return InvalidInput(f"{prefix.rstrip('.')}: {exc.message}", field=exc.field,
                        value=exc.value, valid=exc.valid, extra=exc.extra)


def upsert_routes(session: Session, routes: Sequence[RouteIn], *, tolerance_m: float,
                  where: Sequence[str] | None = None) -> UpsertCounts:
    """Check every route, then write them matched by code (all or nothing).

    Every route needs a code. ``where`` gives each route's error prefix
    (``"features[3]."``). The first problem raises InvalidInput before any write.
    """
    prefixes = list(where) if where is not None else [f"features[{i}]." for i in
                                                       range(len(routes))]
    seen: dict[str, int] = {}
    teams = []
    for i, (route, prefix) in enumerate(zip(routes, prefixes, strict=True)):
        if route.code is None:
            raise InvalidInput(f"{prefix}properties.code is missing",
                               field=f"{prefix}properties.code", value=None,
                               valid="a unique route code (imports match routes by code)")
        if route.code in seen:
            raise InvalidInput(f"route code {route.code!r} is used twice (features "
                               f"{seen[route.code]} and {i})", field=f"{prefix}properties.code",
                               value=route.code, valid="a different code per route")
        seen[route.code] = i
        try:
            teams.append(check_route(session, route, tolerance_m, where=prefix))
        except InvalidInput as exc:
            raise _located(exc, prefix) from exc
    counts = UpsertCounts(created=[], updated=[], unchanged=[])
    for route, team_id in zip(routes, teams, strict=True):
        assert route.code is not None
        old_id = session.execute(text("SELECT id FROM patrol_route WHERE code = :c"),
                                 {"c": route.code}).scalar()
        if old_id is None:
            create_route(session, route, tolerance_m=tolerance_m)
            counts.created.append(route.code)
        elif _same(get_route(session, int(old_id)), route, team_id):
            counts.unchanged.append(route.code)
        else:
            replace_route(session, int(old_id), route, tolerance_m=tolerance_m)
            counts.updated.append(route.code)
    return counts


# --------------------------------------------------------------------------- reads

def get_route(session: Session, route_id: int) -> RouteRow:
    """One route (NotFound when there is none with that id)."""
    row = session.execute(text("SELECT " + _COLUMNS + _FROM + " WHERE r.id = :id"),
                          {"id": route_id}).first()
    if row is None:
        raise NotFound(f"there is no route with id {route_id}", field="route_id",
                       value=route_id, valid="the id of an existing route (GET /api/v1/routes)")
    return _row(row)


def list_routes(session: Session, *, team_id: int | None = None, team: str | None = None,
                grid: str | None = None, code: str | None = None, limit: int = 100,
                offset: int = 0) -> tuple[list[RouteRow], int]:
    """Routes ordered by code, filtered by team (id or code), a claimed grid, or code.

    A team or grid that does not exist is a NotFound naming the filter (a typo is not an
    empty list); a team or grid without routes gives an empty list.
    """
    _check_filters(session, team_id=team_id, team=team, grid=grid)
    where = """ WHERE (CAST(:team_id AS integer) IS NULL OR r.team_id = :team_id)
                  AND (CAST(:team AS text) IS NULL OR t.code = :team)
                  AND (CAST(:grid AS text) IS NULL OR r.grid_codes @> ARRAY[CAST(:grid AS text)])
                  AND (CAST(:code AS text) IS NULL OR r.code = :code)"""
    params: dict[str, Any] = {"team_id": team_id, "team": team, "grid": grid, "code": code}
    total = int(session.execute(text("SELECT count(*)" + _FROM + where), params).scalar_one())
    rows = session.execute(text("SELECT " + _COLUMNS + _FROM + where
                                + " ORDER BY r.code, r.id LIMIT :limit OFFSET :offset"),
                           {**params, "limit": limit, "offset": offset})
    return [_row(r) for r in rows], total


def _check_filters(session: Session, *, team_id: int | None, team: str | None,
                   grid: str | None) -> None:
    found = session.execute(text("""
        SELECT CAST(:team_id AS integer) IS NULL
                   OR EXISTS (SELECT 1 FROM team WHERE id = :team_id) AS team_id,
               CAST(:team AS text) IS NULL
                   OR EXISTS (SELECT 1 FROM team WHERE code = :team) AS team,
               CAST(:grid AS text) IS NULL
                   OR EXISTS (SELECT 1 FROM grid WHERE code = :grid) AS grid"""),
        {"team_id": team_id, "team": team, "grid": grid}).one()
    if not found.team_id:
        raise NotFound(f"there is no team with id {team_id}", field="team_id", value=team_id,
                       valid="the id of a team (GET /api/v1/teams)")
    if not found.team:
        raise NotFound(f"there is no team {team!r}", field="team", value=team,
                       valid="the code of a team (GET /api/v1/teams)")
    if not found.grid:
        raise NotFound(f"there is no grid with code {grid!r}", field="grid", value=grid,
                       valid="the code of a grid, current or retired (GET /api/v1/grids)")


# --------------------------------------------------------------------------- incidents

def incident_points(session: Session, area_wkb: bytes, *, since: dt.datetime,
                    until: dt.datetime) -> tuple[np.ndarray, np.ndarray]:
    """Positions (lon, lat) of the incidents reported in [since, until) inside the area.

    Incidents marked ``duplicate`` or ``rejected`` do not count.
    """
    rows = session.execute(text("""
        SELECT ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat FROM incident i
         WHERE i.reported_at >= :since AND i.reported_at < :until
           AND i.status NOT IN ('duplicate', 'rejected')
           AND ST_Covers(ST_GeomFromWKB(:area, 4326), i.geom)
         ORDER BY i.id"""), {"since": since, "until": until, "area": area_wkb}).all()
    lon = np.array([r.lon for r in rows], dtype=float)
    lat = np.array([r.lat for r in rows], dtype=float)
    return lon, lat


def area_of(session: Session, *, grid: str | None = None,
            team: str | int | None = None) -> tuple[str, bytes]:
    """The current grid a plan is for (given directly, or a team's grid): code and WKB."""
    if (grid is None) == (team is None):
        raise InvalidInput("give exactly one of grid and team", field="grid", value=grid,
                           valid="a current grid code, or a team (code or id) with a grid")
    if team is not None:
        row = session.execute(text("""SELECT id, code, grid_code FROM team
                                       WHERE code = CAST(:t AS text) OR CAST(id AS text) = :t
                                       ORDER BY code = CAST(:t AS text) DESC LIMIT 1"""),
                              {"t": str(team)}).first()  # a code matching wins over an id
        if row is None:
            raise InvalidInput(f"there is no team {team!r}", field="team", value=team,
                               valid="the code or id of an existing team")
        if row.grid_code is None:
            raise InvalidInput(f"team {row.code!r} has no grid to plan in", field="team",
                               value=team, valid="a team with a grid_code, or plan for a grid")
        grid = str(row.grid_code)
    found = session.execute(text("""SELECT ST_AsBinary(geom) FROM grid
                                     WHERE code = :c AND valid_to IS NULL"""),
                            {"c": grid}).scalar()
    if found is None:
        raise InvalidInput(f"there is no current grid {grid!r}", field="grid", value=grid,
                           valid="the code of a current grid (GET /api/v1/grids)")
    return str(grid), bytes(found)

