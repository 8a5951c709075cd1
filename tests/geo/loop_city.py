"""A tiny city for the closed-loop tests: one street, one community, two grids, a roster.

Street ``S1`` = community ``C1`` = the square lon 120.00-120.02, lat 30.00-30.02;
grid ``G1`` is its west half, ``G2`` its east half. Roster (Asia/Shanghai):

- ``WG1`` grid worker, primary on G1, always on duty; ``WG2`` primary on G2, always;
- ``MC1`` manager, primary on C1, Mon-Fri 08:30-17:30;
- ``MS1`` manager, primary on S1, Mon-Fri 08:30-17:30;
- ``DS1`` dispatcher, primary on S1, always on duty.

Categories: ``E1`` (SLA 4 h) and ``E2`` (SLA 24 h).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.intake import Registered, register
from geo.incidents.schema import validate_incident
from geo.index_cache import get_index
from geo.settings import Settings
from geo.store import roster
from geo.store.grids import GridRecord, write_versions
from geo.store.roster_write import CategoryRecord, upsert_categories

SH = ZoneInfo("Asia/Shanghai")
OFFICE = [{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "17:30"}]
#: 2024-06-03 is a Monday.
MONDAY_10 = dt.datetime(2024, 6, 3, 10, 0, tzinfo=SH)
_SEQ = itertools.count(1)


def build_city(session: Session) -> dict[str, int]:
    """Write the tiny city; returns worker code -> worker id."""
    write_versions(session, [GridRecord(code="S1", name="一号街道", level="street",
                                        geom=box(120.0, 30.0, 120.02, 30.02))])
    write_versions(session, [GridRecord(code="C1", name="一号社区", level="community",
                                        parent_code="S1", geom=box(120.0, 30.0, 120.02, 30.02))])
    write_versions(session, [
        GridRecord(code="G1", name="第1网格", level="grid", parent_code="C1",
                   geom=box(120.0, 30.0, 120.01, 30.02)),
        GridRecord(code="G2", name="第2网格", level="grid", parent_code="C1",
                   geom=box(120.01, 30.0, 120.02, 30.02)),
    ])
    upsert_categories(session, [
        CategoryRecord("E1", "暴露垃圾", "Exposed rubbish", "event", "环卫处", 4),
        CategoryRecord("E2", "占道经营", "Street vending", "event", "城管执法", 24),
    ])
    ids: dict[str, int] = {}
    for code, role, grid, shifts in (("WG1", "grid_worker", "G1", []),
                                     ("WG2", "grid_worker", "G2", []),
                                     ("MC1", "manager", "C1", OFFICE),
                                     ("MS1", "manager", "S1", OFFICE),
                                     ("DS1", "dispatcher", "S1", [])):
        worker = roster.create_worker(session, code=code, name=f"员工{code}", role=role)
        roster.create_duty(session, worker_id=worker.id, grid_code=grid, kind="primary",
                           shifts=shifts)
        ids[code] = worker.id
    session.flush()
    return ids


def add_incident(session: Session, *, lon: float = 120.005, lat: float = 30.01,
                 category: str = "E1", reported_at: dt.datetime = MONDAY_10,
                 grid: str | None = "G1", worker_id: int | None = None,
                 status: str = "registered", sla_hours: float | None = None,
                 **extra: Any) -> int:
    """Insert one incident row directly (as the intake would leave it); returns its id."""
    hours = sla_hours if sla_hours is not None else {"E1": 4.0, "E2": 24.0}.get(category, 4.0)
    values = {"source": "hotline", "external_id": f"T{next(_SEQ)}", "category": category,
              "lon": lon, "lat": lat, "grid": grid, "worker": worker_id,
              "rule": "primary" if worker_id else None, "status": status,
              "reported_at": reported_at, "due_at": reported_at + dt.timedelta(hours=hours)}
    values.update(extra)
    new_id = session.scalar(text("""
        INSERT INTO incident (source, external_id, category_code, geom, grid_code, worker_id,
                              rule, status, reported_at, due_at)
        VALUES (:source, :external_id, :category, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326),
                :grid, :worker, :rule, :status, :reported_at, :due_at)
        RETURNING id"""), values)
    assert new_id is not None
    return int(new_id)


def row(session: Session, incident_id: int) -> dict[str, Any]:
    """The incident's columns as a dict."""
    found = session.execute(text("SELECT * FROM incident WHERE id = :id"),
                            {"id": incident_id}).mappings().one()
    return dict(found)


def events(session: Session, incident_id: int) -> list[dict[str, Any]]:
    """The incident's events in order."""
    return [dict(r) for r in session.execute(
        text("SELECT * FROM incident_event WHERE incident_id = :id ORDER BY id"),
        {"id": incident_id}).mappings()]


def register_incident(session: Session, settings: Settings, **raw: Any) -> Registered:
    """Register one incident through the intake (``geo.incidents.intake``), as users do."""
    body = {"lon": 120.005, "lat": 30.01, "category": "E1", "source": "hotline",
            "reported_at": MONDAY_10.isoformat()} | raw
    item = validate_incident(body, tz=settings.tz, now=MONDAY_10 + dt.timedelta(days=3))
    return register(session, item, actor="test-intake", settings=settings,
                    index=get_index(session), now=MONDAY_10)
