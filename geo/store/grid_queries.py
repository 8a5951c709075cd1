"""Read queries on versioned grids: lists, one grid, children, history, point cover, nearest.

A grid version is *current* when ``valid_to`` is NULL; the version in force at a
moment ``at`` is the one with ``valid_from <= at < coalesce(valid_to, infinity)``.
All SQL is SQLAlchemy Core with bound parameters.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from geoalchemy2 import Geography
from sqlalchemy import ColumnElement, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound, check_moment
from geo.store.grids import LEVEL_DEPTH
from geo.store.models import INT8_MAX, Grid

BBOX_VALID = ("four numbers minlon,minlat,maxlon,maxlat in WGS-84 with minlon < maxlon, "
              "minlat < maxlat, lon in [-180, 180] and lat in [-90, 90]")
#: How many grids the KNN index hands to the exact (geodesic) ranking of ``nearest``.
NEAREST_CANDIDATES = 32


@dataclass
class GridRow:
    """One grid version as the read API shows it (``geometry`` is GeoJSON, or None)."""

    code: str
    version: int
    name: str
    level: str
    depth: int
    parent_code: str | None
    population: int | None
    households: int | None
    attrs: dict[str, Any]
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    geometry: dict[str, Any] | None = None


@dataclass
class Page:
    """A page of grids and how many match in all."""

    items: list[GridRow] = field(default_factory=list)
    total: int = 0


# --------------------------------------------------------------------------- input checks

def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """``"minlon,minlat,maxlon,maxlat"`` as four floats, or None when not given.

    Raises
    ------
    InvalidInput
        When it is not four finite numbers in range with min < max.
    """
    if value is None or value == "":
        return None
    parts = value.split(",")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise InvalidInput(f"bbox {value!r} is not four comma-separated numbers",
                           field="bbox", value=value, valid=BBOX_VALID)
    minx, miny, maxx, maxy = nums
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise InvalidInput(f"bbox {value!r} has a longitude outside [-180, 180]",
                           field="bbox", value=value, valid=BBOX_VALID)
    if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        hint = (" (the numbers look like lat,lon: give lon first)"
                if -90 <= minx <= 90 and -90 <= maxx <= 90 else "")
        raise InvalidInput(f"bbox {value!r} has a latitude outside [-90, 90]{hint}",
                           field="bbox", value=value, valid=BBOX_VALID)
    if not (minx < maxx and miny < maxy):
        raise InvalidInput(f"bbox {value!r} does not have minlon < maxlon and minlat < maxlat",
                           field="bbox", value=value, valid=BBOX_VALID)
    return minx, miny, maxx, maxy


def parse_at(value: str | dt.datetime | None, tz: ZoneInfo,
             field: str = "at") -> dt.datetime | None:
    """A moment from ISO 8601 text: a date alone is 00:00 local time; naive times are local;
    from 1970 to 2200 (:func:`~geo.errors.check_moment`)."""
    if value is None or value == "":
        return None
    valid = ("an ISO 8601 date or date-time such as 2024-05-01 or 2024-05-01T08:30:00+08:00 "
             "(without an offset it is local time)")
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"{field} {value!r} is not a date or date-time", field=field,
                               value=value, valid=valid) from exc
    return check_moment(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz),
                        field, value)


def check_page(limit: int, offset: int, max_limit: int) -> None:
    """Raise InvalidInput unless ``1 <= limit <= max_limit`` and ``0 <= offset <= INT8_MAX``."""
    if not 1 <= limit <= max_limit:
        raise InvalidInput(f"limit {limit} is out of range", field="limit", value=limit,
                           valid=f"an integer from 1 to {max_limit}")
    if not 0 <= offset <= INT8_MAX:
        raise InvalidInput(f"offset {offset} is out of range", field="offset", value=offset,
                           valid=f"an integer from 0 to {INT8_MAX}")


def check_point(lon: float, lat: float) -> None:
    """Raise InvalidInput unless (lon, lat) are finite and in range (WGS-84 degrees)."""
    for name, what, value, bound in (("lon", "longitude", lon, 180.0),
                                     ("lat", "latitude", lat, 90.0)):
        if not (isinstance(value, int | float) and math.isfinite(value)
                and -bound <= value <= bound):
            raise InvalidInput(f"{name} {value!r} is not a {what}", field=name, value=value,
                               valid=f"a finite number in [-{bound:g}, {bound:g}]")


# --------------------------------------------------------------------------- helpers

_COLUMNS = (Grid.code, Grid.version, Grid.name, Grid.level, Grid.depth, Grid.parent_code,
            Grid.population, Grid.households, Grid.attrs, Grid.valid_from, Grid.valid_to)


def _in_force(at: dt.datetime | None) -> ColumnElement[bool]:
    if at is None:
        return Grid.valid_to.is_(None)
    return and_(Grid.valid_from <= at, or_(Grid.valid_to.is_(None), Grid.valid_to > at))


def _row(r: Any, geometry: bool) -> GridRow:
    return GridRow(
        code=r.code, version=r.version, name=r.name, level=r.level, depth=r.depth,
        parent_code=r.parent_code, population=r.population, households=r.households,
        attrs=r.attrs or {}, valid_from=r.valid_from, valid_to=r.valid_to,
        geometry=json.loads(r.geojson) if geometry and r.geojson else None,
    )


def _select(geometry: bool) -> Any:
    cols: list[Any] = list(_COLUMNS)
    if geometry:
        cols.append(func.ST_AsGeoJSON(Grid.geom).label("geojson"))
    return select(*cols)


def _point(lon: float, lat: float) -> Any:
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)


def _when(at: dt.datetime | None) -> str:
    return "now" if at is None else f"at {at.isoformat()}"


# --------------------------------------------------------------------------- queries

def retired_at(session: Session, code: str) -> dt.datetime | None:
    """When grid ``code`` was retired (its last version's end); None while it is current."""
    ends = session.execute(select(func.count(), func.count(Grid.valid_to), func.max(Grid.valid_to))
                           .where(Grid.code == code)).one()
    return ends[2] if ends[0] and ends[0] == ends[1] else None


def known_levels(session: Session) -> list[str]:
    """Every level name of the well-known list and of the stored grids, sorted."""
    stored = session.scalars(select(Grid.level).distinct()).all()
    return sorted(set(LEVEL_DEPTH) | set(stored))


def list_grids(session: Session, *, bbox: tuple[float, float, float, float] | None = None,
               level: str | None = None, parent: str | None = None,
               at: dt.datetime | None = None, limit: int = 100, offset: int = 0,
               geometry: bool = True) -> Page:
    """A page of the grids in force (now, or at ``at``), ordered by depth then code.

    Parameters
    ----------
    session : Session
    bbox : tuple, optional
        (minlon, minlat, maxlon, maxlat); grids intersecting it.
    level : str, optional
        Only grids of this level; an unknown level is an InvalidInput.
    parent : str, optional
        Only children of this grid code; a code with no version in force is NotFound.
    at : datetime, optional
        The moment of history; None means the current versions.
    limit, offset : int
        The page.
    geometry : bool
        Whether to return the GeoJSON geometries.

    Returns
    -------
    Page
    """
    conds = [_in_force(at)]
    if level is not None:
        levels = known_levels(session)
        if level not in levels:
            raise InvalidInput(f"level {level!r} is not a level of any grid", field="level",
                               value=level, valid=", ".join(levels))
        conds.append(Grid.level == level)
    if parent is not None:
        if session.scalar(select(Grid.id).where(Grid.code == parent, _in_force(at))) is None:
            raise NotFound(f"no grid {parent!r} is in force {_when(at)}", field="parent",
                           value=parent, valid="the code of a grid (GET /api/v1/grids)")
        conds.append(Grid.parent_code == parent)
    if bbox is not None:
        conds.append(func.ST_Intersects(Grid.geom, func.ST_MakeEnvelope(*bbox, 4326)))
    total = int(session.scalar(select(func.count()).select_from(Grid).where(*conds)) or 0)
    rows = session.execute(_select(geometry).where(*conds)
                           .order_by(Grid.depth, Grid.code).limit(limit).offset(offset))
    return Page(items=[_row(r, geometry) for r in rows], total=total)


def get_grid(session: Session, code: str, *, at: dt.datetime | None = None,
             geometry: bool = True) -> GridRow:
    """The version of grid ``code`` in force now (or at ``at``); NotFound otherwise."""
    row = session.execute(_select(geometry).where(Grid.code == code, _in_force(at))).first()
    if row is not None:
        return _row(row, geometry)
    versions = session.execute(select(Grid.version, Grid.valid_from, Grid.valid_to)
                               .where(Grid.code == code).order_by(Grid.version)).all()
    if not versions:
        raise NotFound(f"there is no grid with code {code!r}", field="code", value=code,
                       valid="the code of a grid (list them with GET /api/v1/grids)")
    periods = [{"version": v.version, "valid_from": v.valid_from.isoformat(),
                "valid_to": v.valid_to.isoformat() if v.valid_to else None} for v in versions]
    raise NotFound(f"grid {code!r} has no version in force {_when(at)}", field="at",
                   value=at.isoformat() if at else None,
                   valid="a moment inside one of the grid's versions", extra={"versions": periods})


def children(session: Session, code: str, *, at: dt.datetime | None = None,
             geometry: bool = True) -> list[GridRow]:
    """The grids whose parent is ``code`` (in force now or at ``at``), ordered by code."""
    get_grid(session, code, at=at, geometry=False)
    rows = session.execute(_select(geometry).where(Grid.parent_code == code, _in_force(at))
                           .order_by(Grid.code))
    return [_row(r, geometry) for r in rows]


def history(session: Session, code: str, *, geometry: bool = True) -> list[GridRow]:
    """Every version of grid ``code``, oldest first; NotFound when the code never existed."""
    rows = [_row(r, geometry) for r in session.execute(
        _select(geometry).where(Grid.code == code).order_by(Grid.version))]
    if not rows:
        raise NotFound(f"there is no grid with code {code!r}", field="code", value=code,
                       valid="the code of a grid (list them with GET /api/v1/grids)")
    return rows


def covering(session: Session, lon: float, lat: float, *,
             at: dt.datetime | None = None) -> list[GridRow]:
    """Every grid in force whose polygon covers the WGS-84 point (boundary points included).

    Uses ``ST_Covers`` on the GiST-indexed geometry, so a point on a shared edge or
    vertex is returned for every grid that meets there; ``geo.assign.choose_chain``
    decides between them. Ordered by depth then code.
    """
    check_point(lon, lat)
    rows = session.execute(_select(False)
                           .where(_in_force(at), func.ST_Covers(Grid.geom, _point(lon, lat)))
                           .order_by(Grid.depth, Grid.code))
    return [_row(r, False) for r in rows]


def nearest(session: Session, lon: float, lat: float, *,
            at: dt.datetime | None = None) -> tuple[GridRow, float] | None:
    """The grid in force nearest to the WGS-84 point and the geodesic distance in metres.

    The KNN operator ``<->`` on the GiST index picks ``NEAREST_CANDIDATES`` grids by
    planar distance in degrees, which is not the geodesic order (far from the grids, near
    a pole or across the antimeridian it can miss the nearest); the nearest of them
    bounds the answer, so every grid whose box comes within that distance is then ranked
    by ``ST_Distance`` on ``geography`` (metres on the WGS-84 spheroid), ties (to the
    millimetre) going to the deeper grid, then the smaller code. None when there are no
    grids at all.
    """
    check_point(lon, lat)
    pt = _point(lon, lat)
    knn = (select(Grid.id).where(_in_force(at)).order_by(Grid.geom.op("<->")(pt))
           .limit(NEAREST_CANDIDATES).subquery())
    dist = func.ST_Distance(cast(Grid.geom, Geography), cast(pt, Geography)).label("distance")
    rows = session.execute(select(*_COLUMNS, dist).where(Grid.id.in_(select(knn.c.id)))).all()
    if not rows:
        return None
    bound = min(float(r.distance) for r in rows)
    within = select(*_COLUMNS, dist).where(_in_force(at))
    box = _box_around(lon, lat, bound)
    if box is not None:
        within = within.where(Grid.geom.op("&&")(func.ST_MakeEnvelope(*box, 4326)))
    rows = session.execute(within).all()
    best = min(rows, key=lambda r: (round(float(r.distance), 3), -r.depth, r.code))
    return _row(best, False), float(best.distance)


def _box_around(lon: float, lat: float, metres: float) -> tuple[float, ...] | None:
    """A lon/lat box holding every point within ``metres`` (geodesic) of the point, a
    little larger; None when that is not one box (a pole or the antimeridian is near)."""
    dlat = metres * 1.01 / 110_574 + 1e-9  # the shortest degree of latitude, at the equator
    top = max(abs(lat - dlat), abs(lat + dlat))
    if top >= 89.9:
        return None
    dlon = metres * 1.01 / (111_320 * math.cos(math.radians(top))) + 1e-9
    if lon - dlon < -180 or lon + dlon > 180:
        return None
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
