"""Bulk upserts of the roster: categories, teams, workers and their duties.

Every function runs inside the caller's transaction (nothing is committed here)
and reports what it did as created / updated / unchanged codes, so a second run
of the same input reports everything unchanged. Rows are matched by ``code``
(duties by worker, grid and kind).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.store.grids import WriteCounts
from geo.store.models import Category, Duty, Team, Worker


@dataclass(frozen=True)
class CategoryRecord:
    """One category of the incident taxonomy."""

    code: str
    name_zh: str
    name_en: str
    kind: str
    department: str
    sla_hours: float


@dataclass(frozen=True)
class TeamRecord:
    """A team; fields named in ``keep`` are left as they are on an existing team."""

    code: str
    name: str
    kind: str = "patrol"
    grid_code: str | None = None
    keep: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DutyRecord:
    """A duty: ``kind`` primary (A角) or backup (B角) on ``grid_code``, weekly ``shifts``."""

    grid_code: str
    kind: str
    shifts: tuple[Mapping[str, Any], ...] = ()
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WorkerRecord:
    """A worker; ``duties`` None leaves the duties alone, a tuple replaces them all.

    Fields named in ``keep`` (``phone``, ``team_code``, ``active``) are left as
    they are on an existing worker; a new worker gets None / no team / active.
    Likewise ``shifts`` and ``categories`` in ``keep`` are left as they are on a duty
    the worker already has (a new duty: always on duty, every category).
    """

    code: str
    name: str
    role: str
    phone: str | None = None
    team_code: str | None = None
    active: bool = True
    duties: tuple[DutyRecord, ...] | None = None
    keep: frozenset[str] = frozenset()


@dataclass
class DutyCounts(WriteCounts):
    """What a duty write did; ``deleted`` are duties no longer in the input."""

    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """Counts only, for reports."""
        return {**super().as_dict(), "deleted": len(self.deleted)}


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _record(counts: WriteCounts, code: str, old: Mapping[str, Any] | None,
            new: Mapping[str, Any]) -> bool:
    """File ``code`` under created/updated/unchanged; True when it must be written."""
    if old is None:
        counts.created.append(code)
        return True
    if all(old[k] == v for k, v in new.items()):
        counts.unchanged.append(code)
        return False
    counts.updated.append(code)
    return True


def upsert_categories(session: Session, records: Sequence[CategoryRecord]) -> WriteCounts:
    """Insert or update categories by ``code``."""
    table = _table(Category)
    codes = [r.code for r in records]
    current = {row["code"]: dict(row) for row in session.execute(
        select(table).where(table.c.code.in_(codes))).mappings()}
    counts = WriteCounts()
    for rec in records:
        values = {"name_zh": rec.name_zh, "name_en": rec.name_en, "kind": rec.kind,
                  "department": rec.department, "sla_hours": float(rec.sla_hours)}
        old = current.get(rec.code)
        if not _record(counts, rec.code, old, values):
            continue
        if old is None:
            session.execute(insert(table).values(code=rec.code, **values))
        else:
            session.execute(update(table).where(table.c.code == rec.code).values(**values))
    return counts


def upsert_teams(session: Session, records: Sequence[TeamRecord]) -> WriteCounts:
    """Insert or update teams by ``code``."""
    table = _table(Team)
    current = {row["code"]: dict(row) for row in session.execute(
        select(table).where(table.c.code.in_([r.code for r in records]))).mappings()}
    counts = WriteCounts()
    for rec in records:
        old = current.get(rec.code)
        values = {"name": rec.name, "kind": rec.kind, "grid_code": rec.grid_code}
        if old is not None:
            values = {k: v for k, v in values.items() if k not in rec.keep}
        if not _record(counts, rec.code, old, values):
            continue
        if old is None:
            session.execute(insert(table).values(code=rec.code, **values))
        else:
            session.execute(update(table).where(table.c.code == rec.code).values(**values))
    return counts


def team_ids(session: Session, codes: Iterable[str]) -> dict[str, int]:
    """The id of each existing team code."""
    table = _table(Team)
    rows = session.execute(select(table.c.code, table.c.id).where(table.c.code.in_(list(codes))))
    return {code: ident for code, ident in rows}


def upsert_workers(session: Session,
                   records: Sequence[WorkerRecord]) -> tuple[WriteCounts, DutyCounts]:
    """Insert or update workers by ``code`` and replace the duties of those that list them.

    Raises
    ------
    InvalidInput
        When a ``team_code`` names no team.
    """
    table = _table(Worker)
    teams = team_ids(session, {r.team_code for r in records if r.team_code})
    for rec in records:
        if rec.team_code and rec.team_code not in teams and "team_code" not in rec.keep:
            raise InvalidInput(f"worker {rec.code!r} names team {rec.team_code!r}, which does "
                               "not exist", field="team_code", value=rec.team_code,
                               valid="the code of an existing team")
    current = {row["code"]: dict(row) for row in session.execute(
        select(table).where(table.c.code.in_([r.code for r in records]))).mappings()}
    counts = WriteCounts()
    for rec in records:
        old = current.get(rec.code)
        values: dict[str, Any] = {"name": rec.name, "role": rec.role, "phone": rec.phone,
                                  "team_id": teams.get(rec.team_code or ""),
                                  "active": rec.active}
        if old is not None:
            keep = {"team_id" if k == "team_code" else k for k in rec.keep}
            values = {k: v for k, v in values.items() if k not in keep}
        if not _record(counts, rec.code, old, values):
            continue
        if old is None:
            session.execute(insert(table).values(code=rec.code, **values))
        else:
            session.execute(update(table).where(table.c.code == rec.code).values(**values))
    ids = {code: ident for code, ident in session.execute(
        select(table.c.code, table.c.id).where(table.c.code.in_([r.code for r in records])))}
    duties = DutyCounts()
    for rec in records:
        if rec.duties is not None:
            _replace_duties(session, ids[rec.code], rec.code, rec.duties, duties,
                            keep=rec.keep & {"shifts", "categories"})
    return counts, duties


def _replace_duties(session: Session, worker_id: int, worker_code: str,
                    duties: Sequence[DutyRecord], counts: DutyCounts, *,
                    keep: frozenset[str] = frozenset()) -> None:
    table = _table(Duty)
    current = {(row["grid_code"], row["kind"]): dict(row) for row in session.execute(
        select(table).where(table.c.worker_id == worker_id)).mappings()}
    wanted = {(d.grid_code, d.kind): d for d in duties}
    for key, row in current.items():
        if key not in wanted:
            session.execute(delete(table).where(table.c.id == row["id"]))
            counts.deleted.append(f"{worker_code}:{key[0]}:{key[1]}")
    for key, duty in wanted.items():
        label = f"{worker_code}:{key[0]}:{key[1]}"
        values = {"shifts": [dict(s) for s in duty.shifts],
                  "categories": list(duty.categories) if duty.categories is not None else None}
        old = current.get(key)
        if old is not None:
            values = {k: v for k, v in values.items() if k not in keep}
        if not _record(counts, label, old, values):
            continue
        if old is None:
            session.execute(insert(table).values(worker_id=worker_id, grid_code=key[0],
                                                 kind=key[1], **values))
        else:
            session.execute(update(table).where(table.c.id == old["id"]).values(**values))


def set_last_positions(session: Session,
                       positions: Mapping[str, tuple[float, float, dt.datetime]], *,
                       only_missing: bool = True) -> int:
    """Set workers' last known position (WGS-84 lon, lat) and time; returns rows changed.

    With ``only_missing`` a worker that already has a position keeps it, so real
    positions reported later are never overwritten by a re-run.
    """
    if not positions:
        return 0
    sql = """UPDATE worker SET last_geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
                               last_seen_at = :at
              WHERE code = :code"""
    if only_missing:
        sql += " AND last_geom IS NULL"
    changed = 0
    for code, (lon, lat, at) in sorted(positions.items()):
        result = session.execute(text(sql), {"lon": lon, "lat": lat, "at": at, "code": code})
        changed += int(getattr(result, "rowcount", 0) or 0)
    return changed


def current_grid_codes(session: Session, codes: Iterable[str]) -> set[str]:
    """The codes among ``codes`` that name a current grid."""
    wanted = sorted(set(codes))
    if not wanted:
        return set()
    rows = session.execute(text("SELECT code FROM grid WHERE valid_to IS NULL AND code IN :codes")
                           .bindparams(bindparam("codes", expanding=True)), {"codes": wanted})
    return {r[0] for r in rows}


def category_codes(session: Session) -> set[str]:
    """Every category code."""
    return set(session.execute(select(_table(Category).c.code)).scalars())
