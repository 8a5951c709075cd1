"""A plan apply racing intake, other applies and the closed loop (real transactions).

Each test holds one transaction open on its own session, starts the other side
in a thread, checks that it waits, then commits: the orderings that used to
leave incidents on retired grids, erase a new grid or overwrite a rejection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from shapely.geometry import LineString, mapping
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict
from geo.incidents.intake import register
from geo.incidents.loop import change_status
from geo.incidents.schema import validate_incident
from geo.index_cache import index_for_intake
from geo.plans import apply as apply_mod
from geo.plans import service
from geo.settings import Settings
from geo.store import db, grid_lock
from tests.geo import intake_city as city


def _plan(session: Session, parent: str, op: str, **payload: Any) -> int:
    plan = service.create_plan(session, name=f"{op} {payload}", parent=parent, user_id=None)
    service.add_edit(session, plan.id, op=op, user_id=None, payload=payload)
    return plan.id


def _merge_g12(session: Session) -> int:
    return _plan(session, "C1", "merge", codes=["G11", "G12"], into="G11")


def _report(session: Session, settings: Settings, point: tuple[float, float],
            key: str) -> int:
    item = validate_incident({"lon": point[0], "lat": point[1], "category": "E0101",
                              "source": "app", "external_id": key,
                              "reported_at": city.MONDAY_10.isoformat()}, tz=settings.tz)
    return register(session, item, actor="t", settings=settings,
                    index=index_for_intake(session)).id


class _Side(threading.Thread):
    """``work(session)`` in a session of its own, committed; its result or error kept."""

    def __init__(self, db_url: str, work: Callable[[Session], Any]) -> None:
        super().__init__(daemon=True)
        self.db_url, self.work = db_url, work
        self.result: Any = None

    def run(self) -> None:
        try:
            with db.session_scope(self.db_url) as s:
                self.result = self.work(s)
        except Exception as exc:  # the test asserts on it
            self.result = exc

    def waits(self) -> bool:
        self.start()
        self.join(timeout=0.5)
        return self.is_alive()

    def finish(self) -> Any:
        self.join(timeout=30)
        assert not self.is_alive()
        return self.result


def _apply(settings: Settings, plan_id: int) -> Callable[[Session], Any]:
    return lambda s: apply_mod.apply_plan(s, plan_id, user_id=None, actor="t",
                                          settings=settings)


def _incident(db_url: str, incident_id: int) -> Any:
    with db.session_scope(db_url) as s:
        return s.execute(text(
            "SELECT i.status, i.grid_code, i.worker_id, i.version, g.valid_to IS NULL AS current"
            " FROM incident i LEFT JOIN grid g ON g.id = i.grid_id WHERE i.id = :id"),
            {"id": incident_id}).one()


@pytest.fixture
def plan_id(session: Session) -> int:
    city.build(session)
    plan = _merge_g12(session)
    session.commit()
    return plan


def test_a_report_during_an_apply_waits_and_lands_on_the_new_grid(
        session: Session, db_url: str, settings: Settings, plan_id: int) -> None:
    _apply(settings, plan_id)(session)  # G12 retired, not committed yet
    intake = _Side(db_url, lambda s: _report(s, settings, city.IN_G12, "during"))
    assert intake.waits()
    session.commit()
    row = _incident(db_url, intake.finish())
    assert (row.grid_code, row.current) == ("G11", True)


def test_a_report_in_flight_when_an_apply_starts_is_placed_again(
        session: Session, db_url: str, settings: Settings, plan_id: int) -> None:
    incident_id = _report(session, settings, city.IN_G12, "before")  # on G12, not committed
    apply = _Side(db_url, _apply(settings, plan_id))
    assert apply.waits()
    session.commit()
    result = apply.finish()
    assert [m["id"] for m in result["incidents"]["incidents"]] == [incident_id]
    row = _incident(db_url, incident_id)
    assert (row.grid_code, row.current) == ("G11", True)


def test_two_plans_taking_the_same_new_code_one_conflicts(
        session: Session, db_url: str, settings: Settings) -> None:
    city.build(session)
    first = _plan(session, "C1", "split", code="G11", new_code="GX",
                  line=mapping(LineString([(120.005, 29.99), (120.005, 30.03)])))
    second = _plan(session, "C2", "split", code="G21", new_code="GX",
                   line=mapping(LineString([(120.025, 29.99), (120.025, 30.03)])))
    session.commit()
    _apply(settings, first)(session)
    other = _Side(db_url, _apply(settings, second))
    assert other.waits()
    session.commit()
    outcome = other.finish()
    assert isinstance(outcome, Conflict), outcome
    assert [s["code"] for s in outcome.to_dict()["stale"]] == ["GX"]
    with db.session_scope(db_url) as s:
        rows = s.execute(text("SELECT parent_code, valid_to IS NULL FROM grid "
                              "WHERE code = 'GX'")).all()
    assert [tuple(r) for r in rows] == [("C1", True)]


def test_a_rejection_committed_during_an_apply_is_kept(
        session: Session, db_url: str, settings: Settings, plan_id: int) -> None:
    incident_id = _report(session, settings, city.IN_G12, "x")
    session.commit()
    change_status(session, incident_id, "rejected", note="not ours", actor="d")
    apply = _Side(db_url, _apply(settings, plan_id))
    assert apply.waits()  # on the incident's row lock
    session.commit()
    assert apply.finish()["incidents"]["moved"] == 0
    row = _incident(db_url, incident_id)
    assert (row.status, row.grid_code) == ("rejected", "G12")
    with db.session_scope(db_url) as s:
        kinds = s.scalars(text("SELECT coalesce(data->>'kind', to_status) FROM incident_event "
                               "WHERE incident_id = :id ORDER BY id"), {"id": incident_id}).all()
    assert kinds[-1] == "rejected"


def test_an_escalated_incident_keeps_its_manager_and_events_carry_the_version(
        session: Session, db_url: str, settings: Settings, plan_id: int) -> None:
    incident_id = _report(session, settings, city.IN_G12, "esc")
    manager = session.scalar(text("SELECT id FROM worker WHERE code = 'MC1'"))
    session.execute(text("UPDATE incident SET escalation_level = 1, escalated_to = 'C1', "
                         "worker_id = :m, version = version + 1 WHERE id = :id"),
                    {"m": manager, "id": incident_id})
    session.commit()
    _apply(settings, plan_id)(session)
    session.commit()
    row = _incident(db_url, incident_id)
    assert (row.grid_code, row.worker_id) == ("G11", manager)
    data = session.scalar(text("SELECT data FROM incident_event WHERE incident_id = :id "
                               "ORDER BY id DESC LIMIT 1"), {"id": incident_id})
    assert data["kind"] == "replan" and data["version"] == row.version
    assert data["to_worker"] == manager


def test_an_apply_gives_up_while_a_long_import_holds_the_grids(
        session: Session, db_url: str, settings: Settings, plan_id: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid_lock, "WAIT_S", 0.2)
    index_for_intake(session)  # as a bulk import does, for its whole transaction
    outcome = _Side(db_url, _apply(settings, plan_id))
    outcome.start()
    result = outcome.finish()
    assert isinstance(result, Conflict) and result.to_dict()["field"] == "grids"
    session.rollback()
    with db.session_scope(db_url) as s:
        assert s.scalar(text("SELECT status FROM plan WHERE id = :id"), {"id": plan_id}) == "draft"
        assert s.scalar(text("SELECT count(*) FROM grid WHERE code = 'G12' "
                             "AND valid_to IS NULL")) == 1
