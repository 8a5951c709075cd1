"""``/api/v1/incidents``: report an incident (any role) and read them (any role)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from api.auth import Reader, Reporter
from api.deps import BigId, SessionDep, SettingsDep
from api.routers.grids import GeoJSONResponse
from api.schemas.grids import Link
from api.schemas.incidents import (
    CONTACT_ROLES,
    ChainLinkOut,
    EventOut,
    IncidentCollection,
    IncidentCreate,
    IncidentDetail,
    IncidentFeature,
    IncidentProperties,
    IncidentRegistered,
    PointGeometry,
)
from geo.errors import InvalidInput
from geo.incidents.intake import register
from geo.incidents.replay import check_replay
from geo.incidents.schema import KEY_MAX, validate_incident
from geo.index_cache import index_for_intake
from geo.store import grid_queries, incident_queries
from geo.store.incident_queries import IncidentFilter

router = APIRouter(tags=["incidents"])

_BODY_SCHEMA = IncidentCreate.model_json_schema()
_EXAMPLE = {"lon": 119.2965, "lat": 26.0745, "category": "E0101", "source": "hotline",
            "external_id": "HL-2025-000123", "description": "路边暴露垃圾"}


@router.post(
    "/incidents", response_model=IncidentRegistered, status_code=201,
    responses={200: {"model": IncidentRegistered,
                     "description": "A retry (same source and external_id, or same "
                                    "Idempotency-Key): the incident already stored."}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": _BODY_SCHEMA, "example": _EXAMPLE}}}},
)
def create_incident(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep,
    principal: Reporter, body: Annotated[dict[str, Any], Body()],
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", description="Any unique text (at most 128 characters): a "
        "retry with the same key answers the same incident and stores nothing.")] = None,
) -> IncidentRegistered:
    """Report an incident at (lon, lat). It lands on the finest current grid covering the
    point (snapped to the nearest grid within the snap tolerance, otherwise kept without a
    grid with the reason) and on the worker the fallback chain chooses at ``reported_at``:
    primary on duty, backup on duty, the community's manager on duty, the nearest on-duty
    worker of the street, or nobody (with the reason). With a worker it is dispatched at
    once. 201 with the incident; 200 with the same incident for a retry (same ``source``
    and ``external_id``, or the same ``Idempotency-Key``). 422 names the bad field, its
    value and what is valid (non-numbers, out-of-range or swapped lon/lat, unknown crs,
    source or category)."""
    raw = dict(body)
    if idempotency_key is not None:
        if len(idempotency_key) > KEY_MAX or not idempotency_key.strip():
            raise InvalidInput("the Idempotency-Key header must be 1 to 128 characters",
                               field="Idempotency-Key", value=idempotency_key[:80],
                               valid="a unique text of 1 to 128 characters")
        given = raw.get("idempotency_key")
        if isinstance(given, str):  # read as the body's texts are: trimmed, blank = not given
            given = given.strip() or None
        if given is not None and given != idempotency_key.strip():
            raise InvalidInput("idempotency_key in the body and the Idempotency-Key header "
                               "differ", field="idempotency_key", value=given,
                               valid=f"the header's value {idempotency_key!r}, or leave it out")
        raw["idempotency_key"] = idempotency_key
    item = validate_incident(raw, tz=settings.tz)
    result = register(session, item, actor=principal.name, settings=settings,
                      index=index_for_intake(session))
    check_replay(item, result)
    href = str(request.url_for("get_incident", incident_id=result.id))
    response.headers["Location"] = href
    if not result.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return IncidentRegistered.of(result, href)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{name} {value!r} is not true or false", field=name, value=value,
                       valid="true or false")


@router.get("/incidents", response_model=IncidentCollection, response_class=GeoJSONResponse)
def list_incidents(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Reader,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS-84)",
                                      examples=["119.28,26.07,119.31,26.10"])] = None,
    grid: Annotated[str | None, Query(description="A grid code: its incidents and those of "
                                                  "every grid below it.")] = None,
    status: Annotated[str | None, Query(description="Statuses, comma-separated.")] = None,
    category: Annotated[str | None, Query(description="Category codes, comma-separated.")]
    = None,
    from_: Annotated[str | None, Query(alias="from", description="reported_at >= this "
                                       "(ISO 8601; without an offset: local time).")] = None,
    to: Annotated[str | None, Query(description="reported_at < this.")] = None,
    overdue: Annotated[str | None, Query(description="true: past due_at and not yet "
                                                     "disposed; false: the others.")] = None,
    unassigned: Annotated[str | None, Query(description="true: no grid or no worker (the "
                                                        "dispatcher's queue).")] = None,
    limit: Annotated[int | None, Query(description="Page size (default from settings).")]
    = None,
    cursor: Annotated[str | None, Query(description="From the `next` link of the previous "
                                                    "page.")] = None,
) -> IncidentCollection:
    """Incidents as a GeoJSON FeatureCollection, newest report first, with a ``next`` link
    in ``links`` while more pages remain. Coordinates are (lon, lat) WGS-84."""
    size = limit if limit is not None else settings.page_limit
    grid_queries.check_page(size, 0, settings.max_page_limit)
    filters = IncidentFilter(
        bbox=grid_queries.parse_bbox(bbox), grid=grid or None,
        statuses=incident_queries.parse_statuses(status),
        categories=incident_queries.parse_categories(session, category),
        reported_from=incident_queries.parse_time(from_, "from", settings.tz),
        reported_to=incident_queries.parse_time(to, "to", settings.tz),
        overdue=_flag(overdue, "overdue"), unassigned=_flag(unassigned, "unassigned"))
    if filters.reported_from is not None and filters.reported_to is not None \
            and filters.reported_to <= filters.reported_from:
        raise InvalidInput(f"to {to!r} is not after from {from_!r}", field="to", value=to,
                           valid=f"a time after from ({from_})")
    page = incident_queries.list_incidents(session, filters, limit=size, cursor=cursor)
    links = [Link(rel="self", href=str(request.url))]
    if page.next_cursor is not None:
        links.append(Link(rel="next", href=str(
            request.url.include_query_params(limit=size, cursor=page.next_cursor))))
    contacts = principal.role in CONTACT_ROLES
    return IncidentCollection(features=[IncidentFeature.of(r, contacts=contacts)
                                        for r in page.items],
                              numberMatched=page.total, numberReturned=len(page.items),
                              links=links)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail,
            response_class=GeoJSONResponse)
def get_incident(incident_id: BigId, response: Response, session: SessionDep,
                 principal: Reader) -> IncidentDetail:
    """One incident as a GeoJSON Feature with its grid chain and its events (who, when,
    from, to, note), oldest first. The ``ETag`` is its version (for ``If-Match``)."""
    row = incident_queries.get_incident(session, incident_id)
    response.headers["ETag"] = f'"{row.version}"'
    return IncidentDetail(
        id=row.id, geometry=PointGeometry(coordinates=(row.lon, row.lat)),
        properties=IncidentProperties.of(row, contacts=principal.role in CONTACT_ROLES),
        grid_chain=[ChainLinkOut(code=c, name=n, level=lv)
                    for c, n, lv in incident_queries.grid_chain(session, row.grid_code)],
        events=[EventOut.of(e) for e in incident_queries.events(session, row.id)])
