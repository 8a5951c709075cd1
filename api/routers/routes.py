"""``/api/v1/routes``: patrol routes (GeoJSON CRUD), route planning, street networks.

Reads need any role; writes and planning need ``planner`` or ``dispatcher``
(``admin`` passes). Coordinates are (lon, lat), WGS-84 unless ``crs`` says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import Reader, require_role
from api.deps import Id, IdFilter, SessionDep, SettingsDep
from api.schemas.grids import Link
from api.schemas.routes import ROUTE_EXAMPLE, PlanRequest, RouteCollection
from geo.crs import check_lonlat, parse_crs, point_to_wgs84
from geo.routes.plan import plan_route
from geo.routes.validate import merge_patch, parse_route, patch_moves
from geo.store import network as network_store
from geo.store import routes as route_store
from geo.store.grid_queries import check_page
from geo.store.users import Principal

router = APIRouter(tags=["routes"])

RouteEditor = Annotated[Principal, Depends(require_role("planner", "dispatcher"))]
CrsQuery = Annotated[str | None, Query(description="CRS of the geometry: wgs84 (default), "
                                                   "gcj02, bd09, cgcs2000 or EPSG:<n>.")]
FeatureBody = Annotated[dict[str, Any], Body(openapi_examples={
    "route": {"summary": "A route of a patrol team", "value": ROUTE_EXAMPLE}})]


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = "application/geo+json"


@router.get("/routes", response_model=RouteCollection, response_class=GeoJSONResponse)
def list_routes(
    request: Request, session: SessionDep, settings: SettingsDep, _: Reader,
    team_id: IdFilter = None,
    team: Annotated[str | None, Query(description="A team code.")] = None,
    grid: Annotated[str | None, Query(description="Routes that claim this grid.")] = None,
    code: Annotated[str | None, Query(description="The route with this code.")] = None,
    limit: int | None = None, offset: int = 0,
) -> RouteCollection:
    """Routes ordered by code as a FeatureCollection, with a ``next`` link while more remain."""
    size = limit if limit is not None else settings.page_limit
    check_page(size, offset, settings.max_page_limit)
    rows, total = route_store.list_routes(session, team_id=team_id, team=team, grid=grid,
                                          code=code, limit=size, offset=offset)
    links = [Link(rel="self", href=str(request.url))]
    if offset + size < total:
        links.append(Link(rel="next", href=str(
            request.url.include_query_params(limit=size, offset=offset + size))))
    return RouteCollection(features=[r.feature() for r in rows], numberMatched=total,
                           numberReturned=len(rows), links=links)


@router.post("/routes", status_code=201, response_class=GeoJSONResponse)
def create_route(body: FeatureBody, request: Request, response: Response, session: SessionDep,
                 settings: SettingsDep, _: RouteEditor, crs: CrsQuery = None) -> dict[str, Any]:
    """Add a route given as a GeoJSON Feature (LineString or MultiLineString).

    Properties: ``name``; ``team`` (code) or ``team_id``; ``grid_codes`` (the grids it
    belongs to: the line must stay within ``route_tolerance_m`` of them); ``schedule``
    (weekly shifts like duties: ``[{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}]``,
    Monday = 0); optional ``code`` (unique; ``R<id>`` when omitted) and ``attrs``.
    """
    row = route_store.create_route(session, parse_route(body, crs=crs),
                                   tolerance_m=settings.route_tolerance_m)
    response.headers["Location"] = str(request.url_for("get_route", route_id=row.id))
    return row.feature()


@router.post("/routes/plan", response_class=GeoJSONResponse)
def plan(body: PlanRequest, session: SessionDep, settings: SettingsDep,
         _: RouteEditor) -> dict[str, Any]:
    """Plan a closed walking loop on the street network through as many incident
    hotspots (top H3 cells by incident count in the look-back) as ``length_m`` allows.

    The answer is a GeoJSON Feature: a LineString whose first and last vertices are
    the start, with ``length_m``, ``hotspots_visited``, and every hotspot with
    ``visited``. Nothing is stored: POST the feature to ``/routes`` as it is, with a
    ``name`` and a ``team`` added to its properties, to keep it; plan with ``margin_m``
    <= ``route_tolerance_m`` so that it stays within its grid.
    """
    parse_crs(body.crs)  # named even without a start to convert
    start = None
    if body.start is not None:
        lon, lat = point_to_wgs84(body.start.lon, body.start.lat, body.crs)
        start = check_lonlat(lon, lat, lon_field="start.lon", lat_field="start.lat")
    planned = plan_route(session, settings, length_m=body.length_m, grid=body.grid,
                         team=body.team, start=start, network=body.network,
                         margin_m=body.margin_m)
    return planned.feature()


@router.get("/routes/{route_id}", response_class=GeoJSONResponse)
def get_route(route_id: Id, session: SessionDep, _: Reader) -> dict[str, Any]:
    """One route as a GeoJSON Feature."""
    return route_store.get_route(session, route_id).feature()


@router.put("/routes/{route_id}", response_class=GeoJSONResponse)
def replace_route(route_id: Id, body: FeatureBody, session: SessionDep, settings: SettingsDep,
                  _: RouteEditor, crs: CrsQuery = None) -> dict[str, Any]:
    """Replace a route with the Feature given (checked like a new one; keeps its code when
    the Feature has none)."""
    route_store.get_route(session, route_id)
    return route_store.replace_route(session, route_id, parse_route(body, crs=crs),
                                     tolerance_m=settings.route_tolerance_m).feature()


@router.patch("/routes/{route_id}", response_class=GeoJSONResponse)
def patch_route(route_id: Id, body: Annotated[dict[str, Any], Body()], session: SessionDep,
                settings: SettingsDep, _: RouteEditor, crs: CrsQuery = None) -> dict[str, Any]:
    """Change part of a route: ``{"properties": {...}}`` and/or ``{"geometry": {...}}``
    (a property set to null is removed); the result is checked like a new route."""
    old = route_store.get_route(session, route_id)
    merged = merge_patch(old.feature(), body)
    route = parse_route(merged, crs=crs if patch_moves(body) else None)
    return route_store.replace_route(session, route_id, route,
                                     tolerance_m=settings.route_tolerance_m).feature()


@router.delete("/routes/{route_id}", status_code=204)
def delete_route(route_id: Id, session: SessionDep, _: RouteEditor) -> Response:
    """Remove a route."""
    route_store.delete_route(session, route_id)
    return Response(status_code=204)


@router.get("/networks")
def list_networks(session: SessionDep, _: Reader) -> list[dict[str, Any]]:
    """The stored street networks (name, source, edges, nodes, length, bbox)."""
    return [n.as_dict() for n in network_store.list_networks(session)]
