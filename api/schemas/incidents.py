"""Request and answer shapes of ``/api/v1/incidents`` and ``/api/v1/categories``."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.grids import Link
from geo.incidents.intake import GridRef, Registered
from geo.store.incident_queries import EventRow, IncidentRow
from geo.store.models import Category


class IncidentCreate(BaseModel):
    """A report (documentation of the body; the intake checks it and names bad fields)."""

    lon: float | str = Field(description="Longitude (east-west), first; degrees in `crs`.",
                             examples=[119.2965])
    lat: float | str = Field(description="Latitude (north-south); degrees in `crs`.",
                             examples=[26.0745])
    crs: str | None = Field(None, description="wgs84 (default), gcj02, bd09, cgcs2000 "
                                              "(or EPSG:<n>).")
    category: str = Field(description="A category code (GET /api/v1/categories).",
                          examples=["E0101"])
    source: Literal["hotline", "app", "patrol", "camera", "sensor", "other"]
    external_id: str | int | None = Field(
        None, description="Id in the source system; (source, external_id) is unique, so a "
        "retry answers the same incident.")
    reported_at: dt.datetime | str | None = Field(
        None, description="ISO 8601; without an offset it is local time; default: now.")
    description: str | None = Field(None, max_length=10_000)
    reporter: str | None = Field(None, max_length=200)
    attrs: dict[str, Any] | None = Field(None, description="Any JSON object kept with it.")


class ChainLinkOut(BaseModel):
    """One grid of a chain."""

    code: str
    name: str
    level: str


class GridOut(BaseModel):
    """The incident's grid and its chain from the street (coarsest first) down to it."""

    code: str
    name: str | None
    level: str | None
    chain: list[ChainLinkOut]

    @classmethod
    def of(cls, ref: GridRef | None) -> GridOut | None:
        """From the intake's grid reference."""
        if ref is None:
            return None
        return cls(code=ref.code, name=ref.name, level=ref.level,
                   chain=[ChainLinkOut(code=c, name=n, level=lv) for c, n, lv in ref.chain])


class WorkerOut(BaseModel):
    """The responsible worker."""

    id: int
    code: str
    name: str


class IncidentRegistered(BaseModel):
    """The answer of ``POST /api/v1/incidents``."""

    id: int
    created: bool = Field(description="False when this was a retry: nothing new was stored.")
    status: str
    category: str
    source: str
    external_id: str | None
    lon: float = Field(description="WGS-84 longitude of the stored point.")
    lat: float = Field(description="WGS-84 latitude of the stored point.")
    crs: str = Field(description="The crs the coordinates were given in.")
    reported_at: dt.datetime
    due_at: dt.datetime | None = Field(description="reported_at + the category's SLA.")
    grid: GridOut | None = Field(description="null: outside every grid (see "
                                             "unassigned_reason).")
    snapped_m: float | None = Field(description="Set when the point was outside every grid "
                                                "and snapped to the nearest one (metres).")
    worker: WorkerOut | None
    rule: str | None = Field(description="The rule that chose the worker: primary, backup, "
                                         "community_manager, street_nearest or none on intake; "
                                         "dispatcher after a manual dispatch; "
                                         "escalation_manager, escalation_dispatcher or "
                                         "escalation_manager_off_shift after an escalation.")
    unassigned_reason: str | None = Field(description="Why there is no grid or no worker.")
    candidate_of: int | None = Field(description="An open incident this one may duplicate.")
    links: list[Link] = Field(default_factory=list)

    @classmethod
    def of(cls, r: Registered, href: str) -> IncidentRegistered:
        """From the intake's outcome."""
        worker = None if r.worker is None else WorkerOut(id=r.worker.id, code=r.worker.code,
                                                         name=r.worker.name)
        return cls(id=r.id, created=r.created, status=r.status, category=r.category,
                   source=r.source, external_id=r.external_id, lon=r.lon, lat=r.lat, crs=r.crs,
                   reported_at=r.reported_at, due_at=r.due_at, grid=GridOut.of(r.grid),
                   snapped_m=r.snapped_m, worker=worker, rule=r.rule,
                   unassigned_reason=r.unassigned_reason, candidate_of=r.candidate_of,
                   links=[Link(rel="self", href=href, type="application/geo+json")])


class PointGeometry(BaseModel):
    """A GeoJSON Point (lon, lat in WGS-84)."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]


class IncidentProperties(BaseModel):
    """The properties of an incident feature."""

    source: str
    external_id: str | None
    category: str
    category_name: str | None
    description: str | None
    reporter: str | None
    status: str
    version: int = Field(description="Send it back (or the ETag as If-Match) to change it.")
    grid_code: str | None
    grid_version: int | None = Field(None, description="The version of the grid the "
                                     "incident was assigned to (grids are redrawn by plans).")
    worker_id: int | None
    worker_code: str | None
    worker_name: str | None
    rule: str | None
    snapped_m: float | None
    unassigned_reason: str | None
    input_crs: str
    reported_at: dt.datetime
    received_at: dt.datetime
    due_at: dt.datetime | None
    closed_at: dt.datetime | None
    overdue: bool
    escalation_level: int
    escalated_to: str | None
    escalated_at: dt.datetime | None
    candidate_of: int | None
    duplicate_of: int | None
    evaluation_score: int | None
    evaluation_comment: str | None
    evaluated_at: dt.datetime | None
    attrs: dict[str, Any]

    @classmethod
    def of(cls, r: IncidentRow, *, contacts: bool = True) -> IncidentProperties:
        """From a stored incident; without the reporter's name and contact details unless
        ``contacts`` (see :data:`CONTACT_ROLES`)."""
        fields = {k: getattr(r, k) for k in cls.model_fields}
        if not contacts:
            fields["reporter"] = None
            fields["attrs"] = _without_contacts(fields["attrs"])
        return cls(**fields)


#: Roles that see who reported an incident and how to reach them (to call the reporter
#: back and record their evaluation); other roles get ``reporter`` null and no contact
#: fields in ``attrs``.
CONTACT_ROLES = ("dispatcher", "admin")
#: Contact fields an Open311 request keeps under ``attrs.open311``.
CONTACT_KEYS = frozenset(("email", "phone", "first_name", "last_name", "device_id",
                          "account_id"))


def _without_contacts(attrs: dict[str, Any]) -> dict[str, Any]:
    inner = attrs.get("open311")
    if not isinstance(inner, dict) or not CONTACT_KEYS & inner.keys():
        return attrs
    return {**attrs, "open311": {k: v for k, v in inner.items() if k not in CONTACT_KEYS}}


class IncidentFeature(BaseModel):
    """An incident as a GeoJSON Feature (``id`` is the incident id)."""

    type: Literal["Feature"] = "Feature"
    id: int
    geometry: PointGeometry
    properties: IncidentProperties

    @classmethod
    def of(cls, r: IncidentRow, *, contacts: bool = True) -> IncidentFeature:
        """From a stored incident (``contacts``: see :meth:`IncidentProperties.of`)."""
        return cls(id=r.id, geometry=PointGeometry(coordinates=(r.lon, r.lat)),
                   properties=IncidentProperties.of(r, contacts=contacts))


class EventOut(BaseModel):
    """One entry of the audit trail."""

    id: int
    at: dt.datetime
    actor: str | None
    from_status: str | None
    to_status: str | None
    note: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, e: EventRow) -> EventOut:
        """From a stored event."""
        return cls(id=e.id, at=e.at, actor=e.actor, from_status=e.from_status,
                   to_status=e.to_status, note=e.note, data=e.data)


class IncidentDetail(IncidentFeature):
    """One incident with its grid chain and its events (oldest first)."""

    grid_chain: list[ChainLinkOut] = Field(description="The current grid chain, coarsest "
                                                       "first (empty without a grid).")
    events: list[EventOut]


class IncidentCollection(BaseModel):
    """A GeoJSON FeatureCollection of incidents, with paging links."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[IncidentFeature]
    numberMatched: int = Field(description="How many incidents match the filters in all.")
    numberReturned: int
    links: list[Link] = Field(default_factory=list)


class CategoryOut(BaseModel):
    """A category of the taxonomy: 部件 (component) or 事件 (event)."""

    code: str
    name_zh: str
    name_en: str
    kind: str
    department: str
    sla_hours: float = Field(description="Time allowed to deal with it: due_at = reported_at "
                                         "+ sla_hours.")

    @classmethod
    def of(cls, c: Category) -> CategoryOut:
        """From a stored category."""
        return cls(code=c.code, name_zh=c.name_zh, name_en=c.name_en, kind=c.kind,
                   department=c.department, sla_hours=c.sla_hours)
