"""Read queries on incidents: filtered pages (keyset paging), one incident, its events.

Filters (all optional, combined with AND):

- ``bbox``: the point lies in ``minlon,minlat,maxlon,maxlat`` (WGS-84, edges included);
- ``grid``: the incident's grid is that grid or any grid below it, current or
  retired by a plan (below the parent of its last version); a code that only
  exists in history matches its own incidents;
- ``status``: one of the statuses (comma-separated list);
- ``category``: one of the category codes (comma-separated list);
- ``from``/``to``: ``reported_at >= from`` and ``reported_at < to``;
- ``overdue``: true: ``due_at`` has passed while the status is still pending
  (registered, dispatched, accepted, in progress; the rule of
  :mod:`geo.incidents.loop`); false: the others;
- ``unassigned``: true: nobody answers for it (no grid, or no worker): the
  dispatcher's queue; false: it has a grid and a worker.

Pages are ordered newest report first (``reported_at`` then ``id``, both
descending). The ``cursor`` of the next page is opaque text; paging by cursor
stays fast and stable however deep one reads, unlike an offset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from geo.errors import EARLIEST_MOMENT, LATEST_MOMENT, InvalidInput, NotFound, check_moment
from geo.incidents.loop import PENDING_STATUSES
from geo.store.models import (
    INCIDENT_STATUSES,
    INT8_MAX,
    Category,
    Grid,
    Incident,
    IncidentEvent,
    Worker,
    latest_grids,
)

TIME_VALID = ("an ISO 8601 date or date-time such as 2025-06-01 or 2025-06-01T08:30:00+08:00 "
              "(without an offset it is local time)")
CURSOR_VALID = "the cursor of a `next` link of an earlier page, unchanged"


@dataclass
class IncidentFilter:
    """Checked filters of :func:`list_incidents` (see the module docstring)."""

    bbox: tuple[float, float, float, float] | None = None
    grid: str | None = None
    statuses: list[str] | None = None
    categories: list[str] | None = None
    reported_from: dt.datetime | None = None
    reported_to: dt.datetime | None = None
    overdue: bool | None = None
    unassigned: bool | None = None


@dataclass
class IncidentRow:
    """One incident as the read API shows it (``lon``/``lat`` in WGS-84)."""

    id: int
    source: str
    external_id: str | None
    category: str
    category_name: str | None
    description: str | None
    reporter: str | None
    lon: float
    lat: float
    input_crs: str
    status: str
    version: int
    grid_code: str | None
    worker_id: int | None
    worker_code: str | None
    worker_name: str | None
    rule: str | None
    snapped_m: float | None
    unassigned_reason: str | None
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
    attrs: dict[str, Any] = field(default_factory=dict)
    #: The version of ``grid_code`` the incident was assigned to (``incident.grid_id``).
    grid_version: int | None = None


@dataclass
class EventRow:
    """One entry of an incident's audit trail."""

    id: int
    at: dt.datetime
    actor: str | None
    from_status: str | None
    to_status: str | None
    note: str | None
    data: dict[str, Any]


@dataclass
class IncidentPage:
    """A page of incidents, how many match in all, and the cursor of the next page."""

    items: list[IncidentRow]
    total: int
    next_cursor: str | None


# --------------------------------------------------------------------------- parsing

def _list(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_statuses(value: str | None) -> list[str] | None:
    """A comma-separated list of statuses; InvalidInput naming the first unknown one."""
    items = _list(value)
    for item in items or ():
        if item not in INCIDENT_STATUSES:
            raise InvalidInput(f"status {item!r} is not an incident status", field="status",
                               value=item, valid="a comma-separated list of "
                               + ", ".join(INCIDENT_STATUSES))
    return items


def parse_categories(session: Session, value: str | None) -> list[str] | None:
    """A comma-separated list of category codes, each checked against the category table."""
    items = _list(value)
    if not items:
        return None
    known = set(session.scalars(select(Category.code).where(Category.code.in_(items))))
    for item in items:
        if item not in known:
            raise InvalidInput(f"category {item!r} is not in the category table",
                               field="category", value=item,
                               valid="a comma-separated list of codes from GET /api/v1/categories")
    return items


def parse_time(value: str | None, name: str, tz: ZoneInfo) -> dt.datetime | None:
    """An ISO 8601 date or date-time (a date is 00:00 local time; naive is local time)."""
    if value is None or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not a date or date-time", field=name,
                           value=value, valid=TIME_VALID) from None
    return check_moment(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz),
                        name, value)


def encode_cursor(row: IncidentRow) -> str:
    """The opaque cursor that continues after ``row``."""
    raw = json.dumps([row.reported_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str | None) -> tuple[dt.datetime, int] | None:
    """The position a cursor stands for; InvalidInput when it is not one of ours."""
    if value is None or value == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        at, incident_id = json.loads(raw)
        moment = dt.datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(incident_id, int) \
                or isinstance(incident_id, bool) or not 0 <= incident_id <= INT8_MAX:
            raise ValueError
        if not EARLIEST_MOMENT - dt.timedelta(days=1) <= moment \
                < LATEST_MOMENT + dt.timedelta(days=1):
            raise ValueError  # a stored time (a 1970 one at its own offset may be 1969 UTC)
        return moment, incident_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"cursor {value!r} is not a paging cursor", field="cursor",
                           value=value, valid=CURSOR_VALID) from None


# --------------------------------------------------------------------------- queries

_ASSIGNED = aliased(Grid, name="assigned_grid")


def _overdue(now: Any) -> ColumnElement[bool]:
    return and_(Incident.status.in_(PENDING_STATUSES), Incident.due_at.is_not(None),
                Incident.due_at < now)


def _columns(now: Any) -> list[Any]:
    return [Incident, func.ST_X(Incident.geom).label("lon"), func.ST_Y(Incident.geom).label("lat"),
            Worker.code.label("worker_code"), Worker.name.label("worker_name"),
            Category.name_zh.label("category_name"), _ASSIGNED.version.label("grid_version"),
            func.coalesce(_overdue(now), literal(False)).label("overdue")]


def _select(now: Any) -> Any:
    return (select(*_columns(now))
            .outerjoin(Worker, Worker.id == Incident.worker_id)
            .outerjoin(Category, Category.code == Incident.category_code)
            .outerjoin(_ASSIGNED, _ASSIGNED.id == Incident.grid_id))


def _row(r: Any) -> IncidentRow:
    i: Incident = r.Incident
    return IncidentRow(
        id=i.id, source=i.source, external_id=i.external_id, category=i.category_code,
        category_name=r.category_name, description=i.description, reporter=i.reporter,
        lon=float(r.lon), lat=float(r.lat), input_crs=i.input_crs, status=i.status,
        version=i.version, grid_code=i.grid_code, worker_id=i.worker_id,
        worker_code=r.worker_code, worker_name=r.worker_name, rule=i.rule,
        snapped_m=i.snapped_m, unassigned_reason=i.unassigned_reason,
        reported_at=i.reported_at, received_at=i.received_at, due_at=i.due_at,
        closed_at=i.closed_at, overdue=bool(r.overdue), escalation_level=i.escalation_level,
        escalated_to=i.escalated_to, escalated_at=i.escalated_at,
        candidate_of=i.candidate_of, duplicate_of=i.duplicate_of,
        evaluation_score=i.evaluation_score, evaluation_comment=i.evaluation_comment,
        evaluated_at=i.evaluated_at, attrs=i.attrs or {}, grid_version=r.grid_version)


def _grid_tree(session: Session, code: str) -> Any:
    """A subquery of ``code`` and the codes of every grid below it, by the latest version
    of each code (a grid retired by a plan stays below its last parent)."""
    if session.scalar(select(Grid.id).where(Grid.code == code).limit(1)) is None:
        raise NotFound(f"there is no grid with code {code!r}", field="grid", value=code,
                       valid="the code of a grid (GET /api/v1/grids)")
    latest = latest_grids()
    tree = select(literal(code).label("code")).cte("tree", recursive=True)
    tree = tree.union(select(latest.c.code).join(tree, latest.c.parent_code == tree.c.code))
    return select(tree.c.code)


def _conditions(session: Session, f: IncidentFilter, now: Any) -> list[Any]:
    conds: list[Any] = []
    if f.bbox is not None:
        conds.append(func.ST_Intersects(Incident.geom, func.ST_MakeEnvelope(*f.bbox, 4326)))
    if f.grid is not None:
        conds.append(Incident.grid_code.in_(_grid_tree(session, f.grid)))
    if f.statuses:
        conds.append(Incident.status.in_(f.statuses))
    if f.categories:
        conds.append(Incident.category_code.in_(f.categories))
    if f.reported_from is not None:
        conds.append(Incident.reported_at >= f.reported_from)
    if f.reported_to is not None:
        conds.append(Incident.reported_at < f.reported_to)
    if f.overdue is not None:
        conds.append(_overdue(now) if f.overdue else not_(_overdue(now)))
    if f.unassigned is not None:
        nobody = or_(Incident.grid_code.is_(None), Incident.worker_id.is_(None))
        conds.append(nobody if f.unassigned else not_(nobody))
    return conds


def filter_conditions(session: Session, filters: IncidentFilter,
                      now: dt.datetime | None = None) -> list[Any]:
    """The SQL conditions of ``filters`` on ``Incident`` (for other readers, e.g. the maps)."""
    return _conditions(session, filters, now if now is not None else func.now())


def list_incidents(session: Session, filters: IncidentFilter, *, limit: int,
                   cursor: str | None = None, now: dt.datetime | None = None) -> IncidentPage:
    """A page of incidents matching ``filters``, newest report first.

    Parameters
    ----------
    session : Session
    filters : IncidentFilter
        Checked filters (see the module docstring).
    limit : int
        Page size.
    cursor : str, optional
        The ``next_cursor`` of the previous page.
    now : datetime, optional
        The moment ``overdue`` is judged at (default: the database's clock).

    Returns
    -------
    IncidentPage
    """
    when: Any = now if now is not None else func.now()
    after = decode_cursor(cursor)
    conds = _conditions(session, filters, when)
    total = int(session.scalar(select(func.count()).select_from(Incident).where(*conds)) or 0)
    if after is not None:
        conds.append(tuple_(Incident.reported_at, Incident.id) < tuple_(
            literal(after[0]), literal(after[1])))
    rows = session.execute(_select(when).where(*conds)
                           .order_by(Incident.reported_at.desc(), Incident.id.desc())
                           .limit(limit + 1)).all()
    items = [_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return IncidentPage(items=items, total=total,
                        next_cursor=encode_cursor(items[-1]) if more and items else None)


def get_incident(session: Session, incident_id: int, *,
                 now: dt.datetime | None = None) -> IncidentRow:
    """One incident; NotFound when there is none with this id."""
    when: Any = now if now is not None else func.now()
    r = session.execute(_select(when).where(Incident.id == incident_id)).first()
    if r is None:
        raise NotFound(f"there is no incident with id {incident_id}", field="id",
                       value=incident_id, valid="the id of an incident (GET /api/v1/incidents)")
    return _row(r)


def events(session: Session, incident_id: int) -> list[EventRow]:
    """The incident's events in the order they were written (each under the incident's row
    lock, so the order of the changes; ``at`` is the time each transaction began)."""
    rows = session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                           .order_by(IncidentEvent.id))
    return [EventRow(id=e.id, at=e.at, actor=e.actor, from_status=e.from_status,
                     to_status=e.to_status, note=e.note, data=e.data or {}) for e in rows]


def grid_chain(session: Session, code: str | None) -> list[tuple[str, str, str]]:
    """``(code, name, level)`` of a grid and its ancestors, coarsest first: the current
    version of each code, or its last one when a plan retired it."""
    chain: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    latest = latest_grids()
    while code is not None and code not in seen:
        seen.add(code)
        r = session.execute(select(latest.c.code, latest.c.name, latest.c.level,
                                   latest.c.parent_code).where(latest.c.code == code)).first()
        if r is None:
            break
        chain.append((r.code, r.name, r.level))
        code = r.parent_code
    return chain[::-1]
