"""A small city for the intake tests (Asia/Shanghai; 2024-06-03 is a Monday).

Street ``S1`` is lon 120.00-120.04, lat 30.00-30.02::

    C1 (community)             C2 (community)
    G11 120.00-01 | G12 01-02 | G21 02-03 | (no grid) 03-04

``CHI`` is a lone grid near Chicago (to catch swapped pairs that look valid).

Roster:

- ``WG11`` primary on G11 Mon-Fri 08:00-18:00; ``WB11`` backup on G11 daily 18:00-08:00;
- ``WG12`` primary on G12, always, but only for category ``C0101``;
- ``MC1`` manager, primary on C1 Mon-Sat 08:30-17:30;
- ``DS1`` dispatcher, primary on S1, always (no known position);
- team ``T-S1`` (patrol) on S1: ``P-NEAR`` at (120.0155, 30.0100), ``P-FAR`` at
  (120.0380, 30.0100), both on call; ``P-OFF`` inactive at (120.0150, 30.0101).

Categories: ``E0101`` (SLA 4 h), ``C0101`` (SLA 24 h).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import box
from sqlalchemy.orm import Session

from geo.store import roster
from geo.store.grids import GridRecord, write_versions
from geo.store.roster_write import CategoryRecord, set_last_positions, upsert_categories

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = dt.datetime(2024, 6, 3, 10, 0, tzinfo=SH)
MONDAY_22 = dt.datetime(2024, 6, 3, 22, 0, tzinfo=SH)
SUNDAY_10 = dt.datetime(2024, 6, 9, 10, 0, tzinfo=SH)
OFFICE = [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}]
NIGHTS = [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "18:00", "end": "08:00"}]
MANAGER = [{"days": [0, 1, 2, 3, 4, 5], "start": "08:30", "end": "17:30"}]
#: Points inside each grid (lon, lat).
IN_G11 = (120.005, 30.01)
IN_G12 = (120.015, 30.01)
IN_G21 = (120.025, 30.01)
IN_C2_ONLY = (120.035, 30.01)


def records() -> list[GridRecord]:
    """The grids of the module docstring."""
    return [
        GridRecord("S1", "一号街道", "street", box(120.00, 30.00, 120.04, 30.02)),
        GridRecord("C1", "甲社区", "community", box(120.00, 30.00, 120.02, 30.02),
                   parent_code="S1"),
        GridRecord("C2", "乙社区", "community", box(120.02, 30.00, 120.04, 30.02),
                   parent_code="S1"),
        GridRecord("G11", "网格11", "grid", box(120.00, 30.00, 120.01, 30.02), parent_code="C1"),
        GridRecord("G12", "网格12", "grid", box(120.01, 30.00, 120.02, 30.02), parent_code="C1"),
        GridRecord("G21", "网格21", "grid", box(120.02, 30.00, 120.03, 30.02), parent_code="C2"),
        GridRecord("CHI", "Chicago beat", "grid", box(-87.70, 41.85, -87.60, 41.95)),
    ]


def build(session: Session) -> dict[str, int]:
    """Write the city, its categories and roster; returns worker code -> id."""
    write_versions(session, records())
    upsert_categories(session, [
        CategoryRecord("E0101", "暴露垃圾", "Exposed rubbish", "event", "环卫处", 4),
        CategoryRecord("C0101", "上水井盖", "Water manhole cover", "component", "自来水公司", 24),
    ])
    team = roster.create_team(session, code="T-S1", name="一号巡防队", kind="patrol",
                              grid_code="S1")
    ids: dict[str, int] = {}
    duties: list[tuple[str, str, str, str, list[dict[str, Any]], list[str] | None]] = [
        ("WG11", "grid_worker", "G11", "primary", OFFICE, None),
        ("WB11", "grid_worker", "G11", "backup", NIGHTS, None),
        ("WG12", "grid_worker", "G12", "primary", [], ["C0101"]),
        ("MC1", "manager", "C1", "primary", MANAGER, None),
        ("DS1", "dispatcher", "S1", "primary", [], None),
    ]
    for code, role, grid, kind, shifts, cats in duties:
        worker = roster.create_worker(session, code=code, name=f"员工{code}", role=role)
        roster.create_duty(session, worker_id=worker.id, grid_code=grid, kind=kind,
                           shifts=shifts, categories=cats)
        ids[code] = worker.id
    for code, active in (("P-NEAR", True), ("P-FAR", True), ("P-OFF", False)):
        worker = roster.create_worker(session, code=code, name=f"队员{code}", role="patrol",
                                      team_id=team.id, active=active)
        ids[code] = worker.id
    seen = MONDAY_10 - dt.timedelta(hours=1)
    set_last_positions(session, {"P-NEAR": (120.0155, 30.0100, seen),
                                 "P-FAR": (120.0380, 30.0100, seen),
                                 "P-OFF": (120.0150, 30.0101, seen)})
    session.flush()
    return ids
