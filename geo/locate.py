"""Point location: which grids cover a point, and who is responsible for it.

This joins the store queries (``geo.store.grid_queries``, ``geo.store.roster``)
with the pure rules of ``geo.assign``; see that module for the boundary rule.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

from pyproj import CRS
from sqlalchemy.orm import Session

from geo import crs as crs_mod
from geo.assign import Choice, GridCandidate, choose_chain, choose_responsible, ties_of
from geo.errors import InvalidInput
from geo.store import grid_queries, roster
from geo.store.grid_queries import GridRow


@dataclass
class Location:
    """The answer of ``locate``.

    ``chain`` runs from the coarsest grid to the finest; ``ties`` are the other
    grids of the finest depth that also cover the point (it is on their shared
    boundary); ``nearest`` is set only when no grid covers the point.
    """

    lon: float
    lat: float
    crs: str
    wgs84: tuple[float, float]
    at: dt.datetime | None
    chain: list[GridCandidate] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    responsible: Choice | None = None
    nearest: tuple[GridRow, float] | None = None


def _candidate(row: GridRow) -> GridCandidate:
    return GridCandidate(code=row.code, name=row.name, level=row.level, depth=row.depth,
                         parent_code=row.parent_code)


def _refuse_if_swapped(session: Session, lon: float, lat: float, crs: str,
                       at: dt.datetime | None) -> None:
    if lon == lat or not -90 <= lon <= 90:
        return
    slon, slat = crs_mod.point_to_wgs84(lat, lon, crs)
    inside = grid_queries.covering(session, slon, slat, at=at)
    if inside:
        grid = choose_chain([_candidate(r) for r in inside])[-1]
        raise InvalidInput(
            f"lon={lon} lat={lat} is outside every grid, but lon={lat} lat={lon} is inside "
            f"grid {grid.code!r} ({grid.name}): lon and lat look swapped; send lon first",
            field="lon", value=lon, valid="lon (east-west, -180..180) and lat (north-south, "
            "-90..90) in that order", extra={"fields": ["lon", "lat"], "lat": lat,
                                             "swapped_grid": grid.code})


@lru_cache(maxsize=64)
def _is_projected(name: str) -> bool:
    return name.startswith("EPSG:") and bool(CRS.from_user_input(name).is_projected)


def _xy(value: float | str, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field,
                           value=str(value), valid="a finite coordinate in the given crs")
    return number


def locate(session: Session, lon: float | str, lat: float | str, *, crs: str | None = None,
           at: dt.datetime | None = None, now: dt.datetime | None = None,
           tz: ZoneInfo | str = "Asia/Shanghai", category: str | None = None) -> Location:
    """Locate a point: the chain of covering grids and the responsible worker.

    Parameters
    ----------
    session : Session
    lon, lat : float or numeric str
        The point, longitude first, in ``crs`` (checked by ``geo.crs.check_lonlat``).
    crs : str, optional
        ``wgs84`` (default), ``gcj02``, ``bd09``, ``cgcs2000`` or ``EPSG:<n>``.
    at : datetime, optional
        Look at the grid versions in force then (history); shifts are also read
        at that moment. None means now.
    now : datetime, optional
        The present moment (for tests); defaults to the clock.
    tz : ZoneInfo or str
        Time zone of the shifts.
    category : str, optional
        Incident category; duties limited to categories serve only those.

    Returns
    -------
    Location

    Raises
    ------
    InvalidInput
        Bad coordinates or CRS, an unknown category, or a pair that lies outside
        every grid but inside one when lon and lat are swapped.
    """
    name = crs_mod.parse_crs(crs)
    projected = _is_projected(name)
    if projected:  # easting and northing in metres: range-checked by the conversion
        x, y = _xy(lon, "lon"), _xy(lat, "lat")
    else:
        x, y = crs_mod.check_lonlat(lon, lat)
    roster.check_category(session, category)
    wlon, wlat = crs_mod.point_to_wgs84(x, y, name)
    if projected:
        wlon, wlat = crs_mod.check_lonlat(wlon, wlat, lon_field="lon", lat_field="lat")
    found = Location(lon=x, lat=y, crs=name, wgs84=(wlon, wlat), at=at)
    candidates = [_candidate(r) for r in grid_queries.covering(session, wlon, wlat, at=at)]
    if not candidates:
        if not projected:
            _refuse_if_swapped(session, x, y, name, at)
        found.nearest = grid_queries.nearest(session, wlon, wlat, at=at)
        return found
    found.chain = choose_chain(candidates)
    found.ties = ties_of(found.chain, candidates)
    when = at or now or dt.datetime.now(dt.UTC)
    grid = found.chain[-1].code
    duties = roster.duties_for_grid(session, grid)
    retired = None if duties else grid_queries.retired_at(session, grid)
    if retired is not None:  # the roster keeps today's duties only: the grid's went to heirs
        found.responsible = Choice(None, "none", (
            f"grid {grid} was retired on {retired.isoformat()}; the roster keeps only the "
            "current duties (they moved with its area), so who held it then is not known"))
        return found
    found.responsible = choose_responsible(duties, when, tz, category)
    return found
