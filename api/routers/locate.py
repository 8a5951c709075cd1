"""``GET /api/v1/locate``: the grids covering a point and the worker responsible (any role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Reader
from api.deps import SessionDep, SettingsDep
from api.schemas.locate import LocateResult
from geo.locate import locate as locate_point
from geo.store.grid_queries import parse_at

router = APIRouter(tags=["locate"])


@router.get("/locate", response_model=LocateResult)
def locate(
    session: SessionDep, settings: SettingsDep, _: Reader,
    lon: Annotated[str, Query(description="Longitude (east-west), decimal degrees; lon first.",
                              examples=["119.29"])],
    lat: Annotated[str, Query(description="Latitude (north-south), decimal degrees.",
                              examples=["26.08"])],
    crs: Annotated[str | None, Query(description="wgs84 (default), gcj02, bd09, cgcs2000 or "
                                                 "EPSG:<n>")] = None,
    at: Annotated[str | None, Query(description="A past moment (ISO 8601): which grid held "
                                                "the point then, and who was on shift.")] = None,
    category: Annotated[str | None, Query(description="Incident category code.")] = None,
) -> LocateResult:
    """The chain of current grids covering (lon, lat), coarsest first, and the worker on duty
    for the finest one. A point on a shared edge or vertex goes to the finest-depth grid with
    the smallest code (the others are listed in ``ties``). A point outside every grid gets an
    empty chain and ``nearest`` with the distance in metres; one that would be inside a grid
    with lon and lat swapped is refused with 422.

    ``lon`` and ``lat`` are read as text so that a bad number (``nan``, ``east``) is
    reported with the field, the value and what is valid."""
    found = locate_point(session, lon, lat, crs=crs, at=parse_at(at, settings.tz),
                         tz=settings.tz, category=category)
    return LocateResult.of(found)
