"""Two plans on the same grids applied at the same moment: one wins, the other gets Conflict.

Each apply runs in its own session and thread; the first locks the grid rows it
read (``FOR UPDATE``), the second waits, then finds the versions it was drafted
on gone and raises :class:`~geo.errors.Conflict`, writing nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from shapely.geometry import box, mapping
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict
from geo.plans import apply as apply_mod
from geo.plans import service
from geo.settings import Settings
from geo.store import db
from tests.geo import intake_city as city


def _draft(session: Session, code: str, west: float, east: float) -> int:
    """A plan giving ``code`` the box west..east (its neighbour gives up the overlap)."""
    plan = service.create_plan(session, name=f"{code} {west}-{east}", parent="C1", user_id=None)
    service.add_edit(session, plan.id, op="replace", user_id=None, payload={
        "code": code, "geometry": dict(mapping(box(west, 30.0, east, 30.02)))})
    return plan.id


def test_concurrent_applies_one_wins(session: Session, db_url: str, settings: Settings) -> None:
    city.build(session)
    first, second = _draft(session, "G11", 120.0, 120.012), _draft(session, "G12", 120.008, 120.02)
    session.commit()
    barrier = threading.Barrier(2)
    outcomes: dict[int, Any] = {}

    def run(plan_id: int) -> None:
        try:
            with db.session_scope(db_url) as s:
                barrier.wait()
                outcomes[plan_id] = apply_mod.apply_plan(s, plan_id, user_id=None, actor="t",
                                                         settings=settings)
        except Exception as exc:  # the assertion below shows what it was
            outcomes[plan_id] = exc

    threads = [threading.Thread(target=run, args=(p,)) for p in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    kinds = sorted(type(o).__name__ for o in outcomes.values())
    assert kinds == ["Conflict", "dict"], outcomes
    winner = next(p for p, o in outcomes.items() if isinstance(o, dict))
    loser = next(p for p, o in outcomes.items() if isinstance(o, Conflict))
    assert outcomes[loser].to_dict()["changed_by_plans"] == [winner]
    with db.session_scope(db_url) as s:
        rows = s.execute(text("SELECT code, max(version) FROM grid WHERE code IN ('G11', 'G12') "
                              "GROUP BY code ORDER BY code")).all()
        statuses = dict(s.execute(text("SELECT id, status FROM plan")).all())
    assert [tuple(r) for r in rows] == [("G11", 2), ("G12", 2)]
    assert statuses == {winner: "applied", loser: "draft"}
