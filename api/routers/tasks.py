"""``/api/v1/tasks``: grab-order patrol tasks (抢单式巡防).

A dispatcher publishes a task (a route, a grid or an area, and a time window);
patrol members and volunteers list the open tasks near them and claim one; the
first claim wins, later claims get 409 naming the winner's claim time. A
``patrol`` user claims as the worker their user is linked to
(``patrolgrid tasks link --user NAME --worker CODE``); a dispatcher (or admin)
may claim for a worker they name. Coordinates are (lon, lat).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import Dispatcher, Reader, acting_for, own_worker, require_role
from api.deps import Id, SessionDep, SettingsDep
from api.schemas.grids import Link
from api.schemas.tasks import (
    AREA_EXAMPLE,
    TASK_EXAMPLE,
    CancelBody,
    ClaimBody,
    TaskCollection,
    TaskCreate,
)
from geo.crs import check_lonlat, point_to_wgs84
from geo.errors import InvalidInput
from geo.store import tasks as task_store
from geo.store.grid_queries import check_page
from geo.store.models import INT4_MAX
from geo.store.users import Principal
from geo.tasks import check_radius, new_task, parse_near, parse_statuses

router = APIRouter(tags=["tasks"])

Claimer = Annotated[Principal, Depends(require_role("patrol", "dispatcher"))]
CreateBody = Annotated[TaskCreate, Body(openapi_examples={
    "route": {"summary": "Walk a route in a window", "value": TASK_EXAMPLE},
    "area": {"summary": "Sweep an area in a window", "value": AREA_EXAMPLE}})]


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = "application/geo+json"


@router.post("/tasks", status_code=201, response_class=GeoJSONResponse)
def create_task(body: CreateBody, request: Request, response: Response, session: SessionDep,
                settings: SettingsDep, principal: Dispatcher) -> dict[str, Any]:
    """Publish a task (dispatcher): ``route`` (id or code), ``grid`` (code) or ``area``
    (GeoJSON polygon) and ``window_start`` < ``window_end`` (ISO 8601, the end in the
    future, at most ``task_max_window_h`` hours). A route's line is copied into the task."""
    task = new_task(title=body.title, window_start=body.window_start,
                    window_end=body.window_end, route=body.route, grid=body.grid,
                    area=body.area, crs=body.crs, description=body.description,
                    attrs=body.attrs, tz=settings.tz, now=_now(),
                    max_hours=settings.task_max_window_h, max_km2=settings.task_max_area_km2)
    row = task_store.create_task(session, task, published_by=principal.user_id,
                                 max_km2=settings.task_max_area_km2)
    response.headers["Location"] = str(request.url_for("get_task", task_id=row.id))
    return row.feature()


@router.get("/tasks", response_model=TaskCollection, response_class=GeoJSONResponse)
def list_tasks(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Reader,
    near: Annotated[str | None, Query(description="lon,lat: tasks within radius_m of this "
                                                  "point, nearest first.")] = None,
    radius_m: Annotated[float | None, Query(gt=0, description="Radius (m) around `near`; "
                                            "default task_near_radius_m.")] = None,
    status: Annotated[str | None, Query(description="Comma-separated statuses (open, claimed, "
                                        "done, cancelled, expired) or `any`; default open, "
                                        "with `mine` or `worker_id` claimed,done.")]
    = None,
    mine: Annotated[bool, Query(description="Only tasks claimed by the caller's worker.")]
    = False,
    worker_id: Annotated[int | None, Query(ge=1, le=INT4_MAX,
                                           description="Only tasks this worker claimed.")]
    = None,
    crs: Annotated[str | None, Query(description="CRS of `near` (wgs84 by default).")] = None,
    limit: int | None = None, offset: int = 0,
) -> TaskCollection:
    """Tasks (open ones by default; with ``mine`` or ``worker_id`` those claimed or done by
    the worker): with ``near``, those within ``radius_m`` nearest first
    (``distance_m`` to the route or area; 0 inside an area); otherwise by window start."""
    size = limit if limit is not None else settings.page_limit
    check_page(size, offset, settings.max_page_limit)
    # an open task has no claimant: by a claimant, the default is what they claimed
    statuses = parse_statuses(status, default=("claimed", "done") if mine or worker_id
                              else ("open",))
    point = parse_near(near)
    if point is not None and crs is not None:
        lon, lat = point_to_wgs84(point[0], point[1], crs)
        point = check_lonlat(lon, lat, lon_field="near (lon)", lat_field="near (lat)")
    radius = check_radius(radius_m if radius_m is not None else settings.task_near_radius_m,
                          settings.task_max_radius_m)
    if mine and worker_id is not None:  # worker_id was silently ignored
        raise InvalidInput(f"worker_id {worker_id} and mine=true both name a worker",
                           field="worker_id", value=worker_id,
                           valid="one of them: mine=true for your own worker, or worker_id")
    if mine:
        worker_id = own_worker(session, principal)
    rows, total = task_store.list_tasks(session, statuses=statuses, near=point,
                                        radius_m=radius, worker_id=worker_id, limit=size,
                                        offset=offset)
    links = [Link(rel="self", href=str(request.url))]
    if offset + size < total:
        links.append(Link(rel="next", href=str(
            request.url.include_query_params(limit=size, offset=offset + size))))
    return TaskCollection(features=[r.feature() for r in rows], numberMatched=total,
                          numberReturned=len(rows), links=links)


@router.get("/tasks/{task_id}", response_class=GeoJSONResponse)
def get_task(task_id: Id, session: SessionDep, settings: SettingsDep,
             _: Reader) -> dict[str, Any]:
    """One task with ``properties.coverage``: the claimant's track during the window (up
    to now) — for a route the share of it walked within ``task_coverage_m`` and the
    missed pieces (GeoJSON), for an area the share within ``task_coverage_m``; null while
    nobody has claimed it."""
    row = task_store.get_task(session, task_id)
    feature = row.feature()
    feature["properties"]["coverage"] = task_store.coverage_of(
        session, row, tolerance_m=settings.task_coverage_m)
    return feature


@router.post("/tasks/{task_id}/claim", response_class=GeoJSONResponse)
def claim_task(task_id: Id, session: SessionDep, principal: Claimer,
               body: Annotated[ClaimBody | None, Body()] = None) -> dict[str, Any]:
    """Claim an open task; the first claim wins (409 for the others, naming the winner's
    ``claimed_at``). A worker cannot hold two claimed tasks whose windows overlap."""
    asked = body.worker_id if body is not None else None
    worker_id = acting_for(session, principal, asked, "claims", optional=True)
    if worker_id is None:
        worker_id = task_store.linked_worker(session, principal.user_id)
        if worker_id is None:
            raise InvalidInput("worker_id is missing: name the worker you claim for",
                               field="worker_id", value=None,
                               valid="the id of an active patrol member or volunteer")
    return task_store.claim_task(session, task_id, worker_id=worker_id,
                                 user_id=principal.user_id).feature()


@router.post("/tasks/{task_id}/cancel", response_class=GeoJSONResponse)
def cancel_task(task_id: Id, session: SessionDep, principal: Dispatcher,
                body: Annotated[CancelBody | None, Body()] = None) -> dict[str, Any]:
    """Cancel an open or claimed task whose window is not over (dispatcher); ``version``
    in the body, when given, must be the task's current version (409 otherwise)."""
    body = body or CancelBody()
    return task_store.cancel_task(session, task_id, user_id=principal.user_id,
                                  reason=body.reason, version=body.version).feature()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
