"""Incidents with known figures on the intake test city (``tests/geo/intake_city.py``).

Window ``2024-06-01`` – ``2024-07-01`` (Asia/Shanghai). In it:

=====  ========================================================  ===========================
grid   incidents                                                 figures
=====  ========================================================  ===========================
G11    3 E0101 registered (Mon 06-03 10:00, due 4 h later),       reported 5, open 3, overdue 3,
       2 E0101 closed after 2 h and 4 h (Mon 10:00)               closed 2, rate 2/5, avg 3 h
G12    C0101 closed after 10 h, C0101 duplicate, E0101 rejected   reported 3, closed 1, dup 1,
       (Wed 06-12 14:00)                                          rate 1/2, avg 10 h
G21    E0101 disposed (Mon 06-03 22:00)                           reported 1, open 1, rate 0
none   E0101 registered, no grid (120.035, 30.01)                 (in no grid's figures)
=====  ========================================================  ===========================

Outside the window: one E0101 in G11 on 2024-05-01.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.geo import intake_city
from tests.geo.loop_city import add_incident

SH = intake_city.SH
SINCE, UNTIL = "2024-06-01", "2024-07-01"
MON_10 = dt.datetime(2024, 6, 3, 10, 0, tzinfo=SH)
WED_14 = dt.datetime(2024, 6, 12, 14, 0, tzinfo=SH)
MON_22 = dt.datetime(2024, 6, 3, 22, 0, tzinfo=SH)
G11, G12, G21, NOWHERE = (120.005, 30.01), (120.015, 30.01), (120.025, 30.01), (120.035, 30.01)
IN_WINDOW = 10


def build(session: Session) -> dict[str, int]:
    """The city, its roster and the incidents above; returns worker code -> id."""
    workers = intake_city.build(session)

    def add(at: tuple[float, float], grid: str | None, status: str, when: dt.datetime,
            category: str = "E0101", closed_after_h: float | None = None) -> None:
        new_id = add_incident(session, lon=at[0], lat=at[1], category=category, grid=grid,
                              status=status, reported_at=when, sla_hours=4)
        if closed_after_h is not None:
            session.execute(text("UPDATE incident SET closed_at = reported_at + "
                                 "make_interval(secs => :s) WHERE id = :id"),
                            {"s": closed_after_h * 3600, "id": new_id})

    for _ in range(3):
        add(G11, "G11", "registered", MON_10)
    add(G11, "G11", "closed", MON_10, closed_after_h=2)
    add(G11, "G11", "closed", MON_10, closed_after_h=4)
    add(G12, "G12", "closed", WED_14, "C0101", closed_after_h=10)
    add(G12, "G12", "duplicate", WED_14, "C0101")
    add(G12, "G12", "rejected", WED_14)
    add(G21, "G21", "disposed", MON_22)
    add(NOWHERE, None, "registered", MON_10)
    add(G11, "G11", "registered", dt.datetime(2024, 5, 1, 9, 0, tzinfo=SH))
    session.flush()
    return workers
