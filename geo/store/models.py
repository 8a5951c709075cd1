"""SQLAlchemy models of the patrolgrid schema (SRID 4326 everywhere).

The Alembic migrations in ``geo/store/migrations`` are the source of truth for
the database; these classes mirror them for queries and writes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, distinct_on
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

WORKER_ROLES = ("grid_worker", "patrol", "volunteer", "dispatcher", "manager")
DUTY_KINDS = ("primary", "backup")
USER_ROLES = ("patrol", "dispatcher", "planner", "admin")
#: The largest ids of ``serial`` (int4) and ``bigserial`` (int8) columns: larger ids given by
#: users are refused before they reach the database.
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
INCIDENT_SOURCES = ("hotline", "app", "patrol", "camera", "sensor", "other")
CATEGORY_KINDS = ("component", "event")


def _geom(kind: str) -> Any:
    return Geometry(kind, srid=4326, spatial_index=False)


def _now() -> Any:
    return func.now()


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Grid(Base):
    """One version of a grid polygon; the current version has ``valid_to`` NULL."""

    __tablename__ = "grid"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(32))
    depth: Mapped[int] = mapped_column(SmallInteger, default=0)
    parent_code: Mapped[str | None] = mapped_column(String(64))
    population: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int | None] = mapped_column(Integer)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    geom: Mapped[Any] = mapped_column(_geom("MULTIPOLYGON"))
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    valid_to: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Team(Base):
    """A patrol, volunteer or police team, optionally attached to a street."""

    __tablename__ = "team"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), default="patrol")
    grid_code: Mapped[str | None] = mapped_column(String(64))

    workers: Mapped[list[Worker]] = relationship(back_populates="team")


class Worker(Base):
    """A person of the roster: grid worker, patrol member, volunteer, dispatcher or manager."""

    __tablename__ = "worker"
    __table_args__ = (
        CheckConstraint(f"role IN {WORKER_ROLES!r}", name="worker_role_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_geom: Mapped[Any | None] = mapped_column(_geom("POINT"))
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    team: Mapped[Team | None] = relationship(back_populates="workers")
    duties: Mapped[list[Duty]] = relationship(back_populates="worker", cascade="all, delete-orphan")


class Duty(Base):
    """A worker's duty on a grid: ``primary`` (A角) or ``backup`` (B角), with weekly shifts.

    ``shifts`` is a list of ``{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}``
    (Monday is 0; an ``end`` before ``start`` runs past midnight); an empty list
    means always on duty. ``categories`` NULL means every category.
    """

    __tablename__ = "duty"
    __table_args__ = (CheckConstraint(f"kind IN {DUTY_KINDS!r}", name="duty_kind_valid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    grid_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    categories: Mapped[list[str] | None] = mapped_column(ARRAY(Text))

    worker: Mapped[Worker] = relationship(back_populates="duties")


class Category(Base):
    """An incident category of the taxonomy: 部件 (component) or 事件 (event)."""

    __tablename__ = "category"
    __table_args__ = (CheckConstraint(f"kind IN {CATEGORY_KINDS!r}", name="category_kind_valid"),)

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    department: Mapped[str] = mapped_column(Text)
    sla_hours: Mapped[float] = mapped_column(Float)


class Incident(Base):
    """A reported matter, routed to a grid and a worker (behaviour in the incidents issue)."""

    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint(f"source IN {INCIDENT_SOURCES!r}", name="incident_source_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(128))
    category_code: Mapped[str] = mapped_column(ForeignKey("category.code"))
    description: Mapped[str | None] = mapped_column(Text)
    reporter: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(_geom("POINT"))
    input_crs: Mapped[str] = mapped_column(String(32), default="wgs84")
    grid_code: Mapped[str | None] = mapped_column(String(64))
    #: The grid version (``grid.id``) the incident was assigned to (set by a trigger, 0006).
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("worker.id", ondelete="SET NULL"))
    rule: Mapped[str | None] = mapped_column(Text)
    snapped_m: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    version: Mapped[int] = mapped_column(Integer, default=1)
    escalation_level: Mapped[int] = mapped_column(SmallInteger, default=0)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    candidate_of: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    unassigned_reason: Mapped[str | None] = mapped_column(Text)
    escalated_to: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    evaluation_score: Mapped[int | None] = mapped_column(SmallInteger)
    evaluation_comment: Mapped[str | None] = mapped_column(Text)
    evaluated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


INCIDENT_STATUSES = ("registered", "dispatched", "accepted", "in_progress", "disposed",
                     "verified", "closed", "rejected", "duplicate")


#: The latest version of every grid code: the current one, else the last one (a grid a plan
#: retired). Incidents keep the code they were assigned to; history reads through this.
LATEST_GRIDS_SQL = ("SELECT DISTINCT ON (code) * FROM grid "
                    "ORDER BY code, valid_to IS NULL DESC, version DESC")


def latest_grids() -> Any:
    """:data:`LATEST_GRIDS_SQL` as a SQLAlchemy subquery (``code``, ``parent_code``, …)."""
    return (select(Grid).ext(distinct_on(Grid.code))
            .order_by(Grid.code, Grid.valid_to.is_(None).desc(), Grid.version.desc())
            .subquery("latest"))


class GridEpoch(Base):
    """A one-row counter bumped (by a trigger) by every statement that changes ``grid``."""

    __tablename__ = "grid_epoch"

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class IncidentEvent(Base):
    """The audit trail of an incident: who changed what, when, from which status to which."""

    __tablename__ = "incident_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    actor: Mapped[str | None] = mapped_column(Text)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class PatrolRoute(Base):
    """A planned patrol route of a team over one or more grids (behaviour in the patrol issue)."""

    __tablename__ = "patrol_route"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    grid_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    schedule: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    geom: Mapped[Any] = mapped_column(_geom("MULTILINESTRING"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class TrackPoint(Base):
    """One GPS fix; ``track_point`` is range-partitioned by UTC month of ``t`` (migration 0004).

    ``seg_start`` is true where a new line of the track starts (after a gap or a jump).
    """

    __tablename__ = "track_point"

    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"),
                                           primary_key=True)
    t: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom: Mapped[Any] = mapped_column(_geom("POINT"))
    seg_start: Mapped[bool] = mapped_column(Boolean, default=False)


class TrackHeld(Base):
    """A fix held back by an upload until the worker's next upload decides (migration 0009).

    Never read as part of a track: it is stored (moved to ``track_point``) or
    dropped by the next upload that reaches its time.
    """

    __tablename__ = "track_held"

    worker_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"),
                                           primary_key=True)
    t: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    geom: Mapped[Any] = mapped_column(_geom("POINT"))
    held_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class AppUser(Base):
    """A user of the API with one role."""

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(f"role IN {USER_ROLES!r}", name="app_user_role_valid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[AppUser] = relationship()


PLAN_STATUSES = ("draft", "applied", "discarded")
PLAN_OPS = ("replace", "split", "merge", "move_cells", "create", "retire")


class Plan(Base):
    """A draft of boundary edits to the children of one parent grid (migration 0006)."""

    __tablename__ = "plan"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    parent_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="manual")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    applied_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    applied_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class PlanEdit(Base):
    """One edit of a plan; ``base`` maps each grid code it read to that grid's version."""

    __tablename__ = "plan_edit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    base: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
