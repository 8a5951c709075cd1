"""``/api/v1/grids``: read the versioned grids as GeoJSON (any role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Reader
from api.deps import SessionDep, SettingsDep
from api.schemas.grids import GridCollection, GridFeature, Link
from geo.store import grid_queries

router = APIRouter(prefix="/grids", tags=["grids"])


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = "application/geo+json"


AtQuery = Annotated[str | None, Query(
    description="A moment of history (ISO 8601 date or date-time; without an offset it is "
                "local time): the versions in force then. Omit for the current grids.",
    examples=["2024-05-01"])]


@router.get("", response_model=GridCollection, response_class=GeoJSONResponse)
def list_grids(
    request: Request, session: SessionDep, settings: SettingsDep, _: Reader,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS-84)",
                                      examples=["119.28,26.07,119.31,26.10"])] = None,
    level: Annotated[str | None, Query(description="street, community, grid, ...")] = None,
    parent: Annotated[str | None, Query(description="Only children of this code.")] = None,
    at: AtQuery = None,
    limit: Annotated[int | None, Query(description="Page size (default from settings).")] = None,
    offset: int = 0,
) -> GridCollection:
    """Grids as a GeoJSON FeatureCollection ordered by depth then code, with a ``next`` link
    in ``links`` while more pages remain."""
    size = limit if limit is not None else settings.page_limit
    grid_queries.check_page(size, offset, settings.max_page_limit)
    page = grid_queries.list_grids(
        session, bbox=grid_queries.parse_bbox(bbox), level=level, parent=parent,
        at=grid_queries.parse_at(at, settings.tz), limit=size, offset=offset)
    links = [Link(rel="self", href=str(request.url))]
    if offset + size < page.total:
        links.append(Link(rel="next", href=str(
            request.url.include_query_params(limit=size, offset=offset + size))))
    if offset > 0:
        links.append(Link(rel="prev", href=str(
            request.url.include_query_params(limit=size, offset=max(offset - size, 0)))))
    return GridCollection(features=[GridFeature.of(r) for r in page.items],
                          numberMatched=page.total, numberReturned=len(page.items), links=links)


@router.get("/{code}", response_model=GridFeature, response_class=GeoJSONResponse)
def get_grid(code: str, session: SessionDep, settings: SettingsDep, _: Reader,
             at: AtQuery = None) -> GridFeature:
    """One grid (the current version, or the one in force ``at``) as a GeoJSON Feature."""
    return GridFeature.of(grid_queries.get_grid(session, code,
                                                at=grid_queries.parse_at(at, settings.tz)))


@router.get("/{code}/children", response_model=GridCollection, response_class=GeoJSONResponse)
def grid_children(code: str, session: SessionDep, settings: SettingsDep, _: Reader,
                  at: AtQuery = None) -> GridCollection:
    """The grids whose parent is ``code``, ordered by code."""
    rows = grid_queries.children(session, code, at=grid_queries.parse_at(at, settings.tz))
    return GridCollection(features=[GridFeature.of(r) for r in rows],
                          numberMatched=len(rows), numberReturned=len(rows))


@router.get("/{code}/history", response_model=GridCollection, response_class=GeoJSONResponse)
def grid_history(code: str, session: SessionDep, _: Reader) -> GridCollection:
    """Every version of grid ``code``, oldest first (``valid_to`` null on the current one)."""
    rows = grid_queries.history(session, code)
    return GridCollection(features=[GridFeature.of(r) for r in rows],
                          numberMatched=len(rows), numberReturned=len(rows))
