"""Checking a patrol route given as a GeoJSON Feature (pure; the database checks are in
``geo.store.routes``).

A route Feature has a ``LineString`` or ``MultiLineString`` geometry (lon, lat; in
WGS-84 unless a ``crs`` is given) and the properties ``name`` (required), ``code``
(optional, unique), ``team`` (a team code) or ``team_id``, ``grid_codes`` (one or
more grid codes it belongs to), ``schedule`` (weekly shifts as in duties,
``geo.assign.parse_shifts``; an empty list means not scheduled) and ``attrs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString

from geo.assign import parse_shifts
from geo.crs import check_lonlat, geometry_to_wgs84, parse_crs
from geo.errors import InvalidInput, storable_json

GEOMETRY_VALID = ('a GeoJSON LineString or MultiLineString: {"type": "LineString", '
                  '"coordinates": [[lon, lat], [lon, lat], ...]} with two or more distinct '
                  'positions per line')
CODE_VALID = "1-64 characters without spaces"
PROPERTIES = ("code", "name", "team", "team_id", "grid_codes", "schedule", "attrs")
#: Keys a stored route's own answer carries (read back as written, ignored).
READ_ONLY = {"crs", "id", "length_m", "created_at", "updated_at", "team_code"}
#: Keys of a ``POST /routes/plan`` answer, so that the planned Feature can be posted as it is
#: (its ``grid`` is the route's grid when ``grid_codes`` is left out); ignored.
PLANNED = {"grid", "network", "budget_m", "closed", "start", "hotspots_visited",
           "hotspots_total", "incidents_visited", "hotspots", "lookback", "margin_m",
           "reach_m", "start_snapped_m"}


@dataclass
class RouteIn:
    """A checked route: geometry in WGS-84 as a MultiLineString, schedule normalised."""

    name: str
    geom: MultiLineString
    grid_codes: list[str]
    code: str | None = None
    team: str | None = None
    team_id: int | None = None
    schedule: list[dict[str, Any]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def _position(value: Any, where: str) -> tuple[float, float]:
    ok = (isinstance(value, list | tuple) and len(value) in (2, 3)
          and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                  for v in value))
    if not ok:
        raise InvalidInput(f"{where} is {value!r}, not a position", field=where, value=value,
                           valid="[lon, lat] (or [lon, lat, height]) of finite numbers")
    return float(value[0]), float(value[1])


def _lines(geometry: Any, where: str) -> list[list[tuple[float, float]]]:
    if not isinstance(geometry, Mapping) or geometry.get("type") not in ("LineString",
                                                                         "MultiLineString"):
        kind = geometry.get("type") if isinstance(geometry, Mapping) else geometry
        raise InvalidInput(f"{where} is a {kind!r}, not a line", field=where, value=kind,
                           valid=GEOMETRY_VALID)
    coords = geometry.get("coordinates")
    parts = [coords] if geometry["type"] == "LineString" else coords
    if not isinstance(parts, list | tuple) or not parts:
        raise InvalidInput(f"{where}.coordinates is empty or not a list", field=where,
                           value=coords, valid=GEOMETRY_VALID)
    out = []
    for i, part in enumerate(parts):
        at = f"{where}.coordinates" + ("" if geometry["type"] == "LineString" else f"[{i}]")
        if not isinstance(part, list | tuple):
            raise InvalidInput(f"{at} is not a list of positions", field=at, value=part,
                               valid=GEOMETRY_VALID)
        line = [_position(p, f"{at}[{j}]") for j, p in enumerate(part)]
        if len(set(line)) < 2:
            raise InvalidInput(f"{at} has {len(set(line))} distinct position(s)", field=at,
                               value=len(line), valid=GEOMETRY_VALID)
        out.append(line)
    return out


def route_geometry(geometry: Any, *, crs: str | None = None,
                   where: str = "geometry") -> MultiLineString:
    """A GeoJSON line geometry as a WGS-84 MultiLineString, or InvalidInput.

    Parameters
    ----------
    geometry : dict
        GeoJSON ``LineString`` or ``MultiLineString``.
    crs : str, optional
        Its coordinate system (``wgs84`` when None; see ``geo.crs.parse_crs``).
    where : str
        The field named in errors.
    """
    lines = _lines(geometry, where)
    source = parse_crs(crs)
    geom = geometry_to_wgs84(MultiLineString(lines), source)
    coords = shapely.get_coordinates(geom)
    bad = ~((np.abs(coords[:, 0]) <= 180) & (np.abs(coords[:, 1]) <= 90)
            & np.isfinite(coords).all(axis=1))
    if bad.any():
        k = int(np.argmax(bad))
        lon, lat = coords[k]
        check_lonlat(lon, lat, lon_field=f"{where}.coordinates (vertex {k}) lon",
                     lat_field=f"{where}.coordinates (vertex {k}) lat")
    if not isinstance(geom, MultiLineString):  # pragma: no cover - geometry_to_wgs84 keeps types
        geom = MultiLineString([LineString(p) for p in shapely.get_parts(geom)])
    return geom


def _text(props: Mapping[str, Any], key: str, where: str, *, required: bool,
          max_len: int) -> str | None:
    value = props.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > max_len:
        raise InvalidInput(f"{where}.{key} is {value!r}", field=f"{where}.{key}", value=value,
                           valid=f"a non-empty text of at most {max_len} characters")
    return value.strip()


def _grid_codes(value: Any, where: str) -> list[str]:
    ok = (isinstance(value, list | tuple) and value
          and all(isinstance(v, str) and v.strip() for v in value))
    if not ok:
        raise InvalidInput(f"{where} is {value!r}", field=where, value=value,
                           valid='a non-empty list of grid codes, e.g. ["350102001001001"]')
    return sorted({v.strip() for v in value})


def parse_route(feature: Any, *, crs: str | None = None, where: str = "") -> RouteIn:
    """Check a route Feature and return it as :class:`RouteIn`.

    Parameters
    ----------
    feature : dict
        A GeoJSON Feature (see the module doc for its properties).
    crs : str, optional
        Coordinate system of the geometry (WGS-84 when None).
    where : str
        Prefix of field names in errors (``"features[3]."`` for a file).

    Raises
    ------
    InvalidInput
        Naming the field, its value and what is valid.
    """
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        kind = feature.get("type") if isinstance(feature, Mapping) else type(feature).__name__
        raise InvalidInput(f"{where or 'body'} is a {kind!r}, not a GeoJSON Feature",
                           field=f"{where}type", value=kind,
                           valid='{"type": "Feature", "geometry": {...}, "properties": {...}}')
    props = feature.get("properties") or {}
    pw = f"{where}properties"
    if not isinstance(props, Mapping):
        raise InvalidInput(f"{pw} is not an object", field=pw, value=props,
                           valid="an object with name, grid_codes, team or team_id, schedule")
    storable_json(dict(props), pw)  # text PostgreSQL cannot store (NUL, lone surrogates)
    unknown = sorted(set(props) - set(PROPERTIES) - READ_ONLY - PLANNED)
    if unknown:
        raise InvalidInput(f"{pw} has unknown key(s) {', '.join(unknown)}",
                           field=f"{pw}.{unknown[0]}", value=props[unknown[0]],
                           valid="keys " + ", ".join(PROPERTIES))
    geom = route_geometry(feature.get("geometry"), crs=crs, where=f"{where}geometry")
    code = _text(props, "code", pw, required=False, max_len=64)
    if code is not None and any(c.isspace() for c in code):
        raise InvalidInput(f"{pw}.code {code!r} has spaces", field=f"{pw}.code", value=code,
                           valid=CODE_VALID)
    team_id = props.get("team_id")
    if team_id is not None and (not isinstance(team_id, int) or isinstance(team_id, bool)):
        raise InvalidInput(f"{pw}.team_id is {team_id!r}", field=f"{pw}.team_id",
                           value=team_id, valid="the integer id of a team")
    team = _text(props, "team", pw, required=False, max_len=64)
    if team is None and team_id is None:
        raise InvalidInput(f"{pw} names no team", field=f"{pw}.team", value=None,
                           valid="team (a team code) or team_id (a team id)")
    schedule = [s.as_dict() for s in parse_shifts(props.get("schedule") or [],
                                                  field_name=f"{pw}.schedule")]
    attrs = props.get("attrs") or {}
    if not isinstance(attrs, Mapping):
        raise InvalidInput(f"{pw}.attrs is not an object", field=f"{pw}.attrs", value=attrs,
                           valid="a JSON object")
    planned_grid = props.get("grid")  # a planned Feature posted as it is
    codes = props.get("grid_codes", [planned_grid] if isinstance(planned_grid, str) else None)
    return RouteIn(name=str(_text(props, "name", pw, required=True, max_len=200)), geom=geom,
                   grid_codes=_grid_codes(codes, f"{pw}.grid_codes"),
                   code=code, team=team, team_id=team_id, schedule=schedule,
                   attrs=dict(attrs))



def merge_patch(feature: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """A stored route Feature with a partial update applied (RFC 7396-like, one level).

    ``patch`` may hold ``geometry`` and ``properties``; properties set to ``null``
    are removed. Giving ``team`` or ``team_id`` replaces both.
    """
    if not isinstance(patch, Mapping) or set(patch) - {"type", "geometry", "properties"}:
        raise InvalidInput("a route patch has only geometry and properties", field="body",
                           value=sorted(patch) if isinstance(patch, Mapping) else patch,
                           valid='{"geometry": {...}, "properties": {...}} (both optional)')
    if patch.get("type", "Feature") != "Feature":  # a FeatureCollection changed nothing, 200
        raise InvalidInput(f"a route patch is a Feature, not a {patch['type']!r}", field="type",
                           value=patch["type"], valid='"Feature" (or no type)')
    props = dict(feature.get("properties") or {})
    changes = patch.get("properties") or {}
    if not isinstance(changes, Mapping):
        raise InvalidInput("properties is not an object", field="properties", value=changes,
                           valid="an object of the properties to change")
    if "team" in changes or "team_id" in changes:
        props.pop("team", None)
        props.pop("team_id", None)
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return {"type": "Feature", "geometry": patch["geometry"] if patch_moves(patch)
            else feature.get("geometry"), "properties": props}


def patch_moves(patch: Mapping[str, Any]) -> bool:
    """Whether a route patch gives a new geometry (``"geometry": null`` keeps the stored
    one, which is never converted again from the request's ``crs``)."""
    return patch.get("geometry") is not None
