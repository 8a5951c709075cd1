"""Queries behind the Open311 GeoReport v2 endpoints (mapping in :mod:`geo.open311`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound
from geo.store.models import Category, Grid, Incident, IncidentEvent

#: Without start_date and end_date, GeoReport asks for the requests of the last 90 days.
DEFAULT_WINDOW = dt.timedelta(days=90)


@dataclass(frozen=True)
class RequestQuery:
    """The filters of ``GET requests.json`` (already parsed)."""

    ids: Sequence[int] | None = None
    service_codes: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    limit: int = 1000


def categories(session: Session) -> list[dict[str, Any]]:
    """Every category, ordered by code."""
    rows = session.execute(
        select(Category.code, Category.name_zh, Category.name_en, Category.kind,
               Category.department, Category.sla_hours).order_by(Category.code)).mappings()
    return [dict(r) for r in rows]


def check_service_codes(session: Session, codes: Sequence[str],
                        field: str = "service_code") -> None:
    """Raise InvalidInput naming the first code that is not a category."""
    known = set(session.scalars(select(Category.code).where(Category.code.in_(list(codes)))))
    for code in codes:
        if code not in known:
            raise InvalidInput(f"service_code {code!r} is not a service", field=field,
                               value=code, valid="a service_code of GET "
                               "/open311/v2/services.json")


def category(session: Session, code: str) -> dict[str, Any]:
    """One category; NotFound naming the code otherwise."""
    row = session.execute(select(Category.code).where(Category.code == code)).first()
    if row is None:
        raise NotFound(f"service_code {code!r} is not a service", field="service_code",
                       value=code, valid="a service_code of GET /open311/v2/services.json")
    return {"code": row.code}


def _select() -> Any:
    last = (select(IncidentEvent.at.label("updated_at"), IncidentEvent.note.label("last_note"))
            .where(IncidentEvent.incident_id == Incident.id)
            .order_by(IncidentEvent.id.desc()).limit(1)
            .lateral("last_event"))
    return (
        select(Incident.id, Incident.status, Incident.category_code, Incident.description,
               Incident.reported_at, Incident.received_at, Incident.due_at,
               Incident.duplicate_of, Incident.attrs,
               func.ST_X(Incident.geom).label("lon"), func.ST_Y(Incident.geom).label("lat"),
               Category.name_en.label("service_name"), Category.department,
               Category.sla_hours, Grid.name.label("grid_name"),
               last.c.updated_at, last.c.last_note)
        .join(Category, Category.code == Incident.category_code)
        .outerjoin(Grid, and_(Grid.code == Incident.grid_code, Grid.valid_to.is_(None)))
        .outerjoin(last, true())
    )


def requests(session: Session, query: RequestQuery, *,
             now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The incidents matching ``query``, newest report first, at most ``query.limit``.

    With ids, the other filters are ignored (as the spec says). Without ids and
    without dates, only reports of the last :data:`DEFAULT_WINDOW` are returned.
    """
    stmt = _select()
    if query.ids is not None:
        stmt = stmt.where(Incident.id.in_(list(query.ids)))
    else:
        start, end = query.start, query.end
        if start is None and end is None:
            start = (now or dt.datetime.now(dt.UTC)) - DEFAULT_WINDOW
        if start is not None and end is not None and end < start:
            raise InvalidInput("end_date is before start_date", field="end_date",
                               value=end.isoformat(), valid=f"a date-time after "
                               f"start_date ({start.isoformat()})")
        if start is not None:
            stmt = stmt.where(Incident.reported_at >= start)
        if end is not None:
            stmt = stmt.where(Incident.reported_at <= end)
        if query.service_codes is not None:
            stmt = stmt.where(Incident.category_code.in_(list(query.service_codes)))
        if query.statuses is not None:
            stmt = stmt.where(Incident.status.in_(list(query.statuses)))
    stmt = stmt.order_by(Incident.reported_at.desc(), Incident.id.desc()).limit(query.limit)
    return [dict(r) for r in session.execute(stmt).mappings()]


def request(session: Session, incident_id: int) -> dict[str, Any]:
    """One incident as a request row; NotFound naming the id otherwise."""
    row = session.execute(_select().where(Incident.id == incident_id)).mappings().first()
    if row is None:
        raise NotFound(f"there is no service request {incident_id}",
                       field="service_request_id", value=incident_id,
                       valid="the service_request_id of a request (GET "
                       "/open311/v2/requests.json)")
    return dict(row)
