"""Escalation of overdue incidents: one level up per step, to that level's manager, idempotent."""

from __future__ import annotations

import datetime as dt
import random
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.load import load_demo
from geo.errors import InvalidInput
from geo.incidents.escalation import LOCK_KEY, escalate_overdue
from geo.settings import Settings
from geo.store import db
from tests.geo.loop_city import (
    MONDAY_10,
    add_incident,
    build_city,
    events,
    register_incident,
    row,
)

SETTINGS = Settings()


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    return build_city(session)


def at(day_hours: float) -> dt.datetime:
    """Monday 2024-06-03 00:00 Shanghai + ``day_hours`` hours."""
    return MONDAY_10.replace(hour=0) + dt.timedelta(hours=day_hours)


def snapshot(session: Session) -> tuple[Any, ...]:
    incidents = session.execute(text("SELECT * FROM incident ORDER BY id")).all()
    n_events = session.execute(text("SELECT count(*) FROM incident_event")).scalar()
    return tuple(tuple(r) for r in incidents), n_events


def test_grid_to_community_to_street_then_top(session: Session, city: dict[str, int]) -> None:
    # E1 has a 4 h SLA: reported Monday 10:00, due 14:00.
    iid = add_incident(session, worker_id=city["WG1"], status="accepted")
    assert escalate_overdue(session, at(14), SETTINGS).escalated == []  # due, not overdue
    first = escalate_overdue(session, at(14.5), SETTINGS)
    assert [(e.incident_id, e.level, e.from_grid, e.to_grid, e.to_grid_level, e.rule)
            for e in first.escalated] == [(iid, 1, "G1", "C1", "community", "manager")]
    assert first.escalated[0].worker_code == "MC1"
    found = row(session, iid)
    assert (found["escalation_level"], found["escalated_to"], found["worker_id"],
            found["status"], found["version"], found["rule"]) == (
        1, "C1", city["MC1"], "accepted", 2, "escalation_manager")
    assert found["escalated_at"] == at(14.5)
    event = events(session, iid)[-1]
    assert (event["from_status"], event["to_status"], event["at"]) == (
        "accepted", "accepted", at(14.5))
    assert event["data"] == {"kind": "escalation", "level": 1, "from_grid": "G1",
                             "to_grid": "C1", "from_worker_id": city["WG1"],
                             "worker_id": city["MC1"], "rule": "manager", "version": 2}
    # Running again, at once or before another SLA period, changes nothing.
    before = snapshot(session)
    for hour in (14.5, 15, 18.5):
        assert escalate_overdue(session, at(hour), SETTINGS).escalated == []
    assert snapshot(session) == before
    # 18:31: the street manager's office is closed: the street's dispatcher on duty.
    second = escalate_overdue(session, at(18.52), SETTINGS)
    assert [(e.to_grid, e.level, e.rule, e.worker_code) for e in second.escalated] == [
        ("S1", 2, "dispatcher", "DS1")]
    assert (row(session, iid)["escalated_to"], row(session, iid)["rule"]) == (
        "S1", "escalation_dispatcher")
    before = snapshot(session)
    third = escalate_overdue(session, at(40), SETTINGS)
    assert third.escalated == [] and third.at_top == [iid]
    assert snapshot(session) == before
    assert len(events(session, iid)) == 2


def test_street_manager_on_shift_is_preferred(session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"], reported_at=at(1), sla_hours=2)
    escalate_overdue(session, at(3.5), SETTINGS)         # 03:30: MC1 off shift
    assert row(session, iid)["worker_id"] == city["MC1"]
    assert events(session, iid)[-1]["data"]["rule"] == "manager_off_shift"
    report = escalate_overdue(session, at(9), SETTINGS)  # 09:00: MS1 in the office
    assert [(e.rule, e.worker_code) for e in report.escalated] == [("manager", "MS1")]


def test_only_pending_and_assigned_incidents_move(session: Session,
                                                  city: dict[str, int]) -> None:
    pending = {s: add_incident(session, worker_id=city["WG1"], status=s)
               for s in ("registered", "dispatched", "accepted", "in_progress")}
    done = [add_incident(session, worker_id=city["WG1"], status=s)
            for s in ("disposed", "verified", "closed", "rejected", "duplicate")]
    lost = add_incident(session, grid=None, lon=121.0)
    not_yet = add_incident(session, worker_id=city["WG1"], category="E2")
    report = escalate_overdue(session, at(15), SETTINGS)
    assert sorted(e.incident_id for e in report.escalated) == sorted(pending.values())
    assert report.unassigned == [lost] and report.at_top == []
    for iid in [*done, lost, not_yet]:
        assert row(session, iid)["escalation_level"] == 0
        assert events(session, iid) == []


def test_category_limits_and_nobody(session: Session, city: dict[str, int]) -> None:
    session.execute(text("UPDATE duty SET categories = ARRAY['E2'] WHERE grid_code = 'C1'"))
    iid = add_incident(session, worker_id=city["WG1"])
    before_rule = row(session, iid)["rule"]
    report = escalate_overdue(session, at(15), SETTINGS)
    [step] = report.escalated
    assert (step.rule, step.worker_id, step.to_grid) == ("none", city["WG1"], "C1")
    assert step.reason is not None and "E1" in step.reason
    found = row(session, iid)
    assert (found["escalated_to"], found["worker_id"], found["rule"]) == (
        "C1", city["WG1"], before_rule)
    assert "E1" in events(session, iid)[-1]["note"]
    other = add_incident(session, worker_id=city["WG1"], category="E2",
                         reported_at=at(10) - dt.timedelta(hours=20))
    report = escalate_overdue(session, at(15), SETTINGS)
    assert [(e.incident_id, e.worker_code) for e in report.escalated] == [(other, "MC1")]


def test_dry_run_writes_nothing(session: Session, city: dict[str, int]) -> None:
    add_incident(session, worker_id=city["WG1"])
    before = snapshot(session)
    report = escalate_overdue(session, at(15), SETTINGS, dry_run=True)
    assert len(report.escalated) == 1 and report.dry_run
    assert snapshot(session) == before
    with pytest.raises(InvalidInput) as naive:
        escalate_overdue(session, dt.datetime(2024, 6, 3, 14), SETTINGS)
    assert naive.value.field == "now"


def test_many_random_incidents_twice_changes_nothing_more(session: Session,
                                                          city: dict[str, int]) -> None:
    rnd = random.Random(3)
    statuses = ("registered", "dispatched", "accepted", "in_progress", "disposed", "closed")
    for _ in range(300):
        add_incident(session, lon=rnd.uniform(120.0, 120.02), lat=rnd.uniform(30.0, 30.02),
                     grid=rnd.choice(["G1", "G2", None]), worker_id=city["WG2"],
                     category=rnd.choice(["E1", "E2"]), status=rnd.choice(statuses),
                     reported_at=at(rnd.uniform(-72, 24)))
    now = at(24)
    first = escalate_overdue(session, now, SETTINGS)
    assert len(first.escalated) > 50
    before = snapshot(session)
    second = escalate_overdue(session, now, SETTINGS)
    assert second.escalated == [] and snapshot(session) == before
    assert second.unassigned == first.unassigned
    levels = session.execute(text("SELECT escalation_level, count(*) FROM incident "
                                  "GROUP BY 1")).all()
    assert max(level for level, _ in levels) == 1  # one level per run


def test_runs_are_serialised_by_the_advisory_lock(db_url: str, session: Session,
                                                  city: dict[str, int]) -> None:
    add_incident(session, worker_id=city["WG1"])
    session.commit()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with db.session_scope(db_url) as s:
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with db.session_scope(db_url) as s:
            report = escalate_overdue(s, at(15), SETTINGS, wait=False)
        assert report.skipped and report.escalated == []
    finally:
        release.set()
        thread.join()
    with db.session_scope(db_url) as s:
        assert len(escalate_overdue(s, at(15), SETTINGS, wait=False).escalated) == 1


def test_concurrent_runs_escalate_each_incident_once(db_url: str, session: Session,
                                                     city: dict[str, int]) -> None:
    ids = [add_incident(session, worker_id=city["WG1"]) for _ in range(40)]
    session.commit()
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def run() -> None:
        barrier.wait()
        with db.session_scope(db_url) as s:
            counts.append(len(escalate_overdue(s, at(15), SETTINGS).escalated))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == [0, 0, 0, 40]
    session.expire_all()
    assert all(len(events(session, i)) == 1 for i in ids)


def test_retired_grid_still_escalates_to_its_parent(session: Session,
                                                    city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    session.execute(text("UPDATE grid SET valid_to = valid_from + interval '1 s' "
                         "WHERE code = 'G1'"))
    [step] = escalate_overdue(session, at(15), SETTINGS).escalated
    assert (step.incident_id, step.to_grid) == (iid, "C1")


# --------------------------------------------------------------------------- the demo city

def test_demo_city_grid_to_community_manager_to_street_manager(session: Session) -> None:
    load_demo(session)
    grids = session.execute(text("""
        SELECT g.code, c.code AS community, c.parent_code AS street,
               ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
          FROM grid g JOIN grid c ON c.code = g.parent_code AND c.valid_to IS NULL
         WHERE g.valid_to IS NULL AND g.level = 'grid' ORDER BY g.code""")).mappings().all()
    workers: dict[str, int] = dict(session.execute(text("SELECT code, id FROM worker")).all())
    monday_10 = dt.datetime(2025, 6, 2, 10, 0, tzinfo=MONDAY_10.tzinfo)  # a Monday
    picked = grids[:: max(1, len(grids) // 12)]
    ids = {add_incident(session, lon=g["lon"], lat=g["lat"], grid=g["code"], category="C0101",
                        worker_id=workers["W" + g["code"]], reported_at=monday_10,
                        sla_hours=4): g for g in picked}
    first = escalate_overdue(session, monday_10 + dt.timedelta(hours=4.5), SETTINGS)
    assert {e.incident_id: (e.to_grid, e.worker_code, e.rule) for e in first.escalated} == {
        iid: (g["community"], "M" + g["community"], "manager") for iid, g in ids.items()}
    # Tuesday 09:00: the next step is due (14:30 + 4 h) and the street office is open.
    second = escalate_overdue(session, monday_10 + dt.timedelta(hours=23), SETTINGS)
    assert {e.incident_id: (e.to_grid, e.to_grid_level, e.worker_code, e.rule)
            for e in second.escalated} == {
        iid: (g["street"], "street", "M" + g["street"], "manager") for iid, g in ids.items()}
    for iid, g in ids.items():
        found = row(session, iid)
        assert (found["escalation_level"], found["worker_id"]) == (2, workers["M" + g["street"]])
        assert [e["data"]["to_grid"] for e in events(session, iid)] == [g["community"],
                                                                         g["street"]]


def test_registered_through_the_intake(session: Session, city: dict[str, int]) -> None:
    got = register_incident(session, SETTINGS, external_id="late-1")
    assert got.due_at == at(14) and got.worker is not None and got.worker.code == "WG1"
    [step] = escalate_overdue(session, at(15), SETTINGS).escalated
    assert (step.incident_id, step.from_worker_id, step.worker_code) == (
        got.id, got.worker.id, "MC1")
    assert row(session, got.id)["status"] == got.status


def test_a_run_without_now_judges_by_the_clock_after_its_lock(session: Session,
                                                              db_url: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})  # a run going on
    out: dict[str, Any] = {}

    def run() -> None:
        with db.session_scope(db_url) as s:
            out["now"] = escalate_overdue(s, None, SETTINGS).now

    waiting = threading.Thread(target=run, daemon=True)
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive()
    released = dt.datetime.now(dt.UTC)
    session.commit()
    waiting.join(timeout=30)
    assert out["now"] >= released


def test_events_are_listed_in_the_order_they_were_written(session: Session,
                                                          city: dict[str, int]) -> None:
    from geo.store.incident_queries import events as listed

    iid = add_incident(session)
    for to, when in (("dispatched", at(11)), ("accepted", at(10.5))):  # a later one began first
        session.execute(text("INSERT INTO incident_event (incident_id, at, from_status, "
                             "to_status) VALUES (:i, :at, 'x', :to)"),
                        {"i": iid, "at": when, "to": to})
    assert [e.to_status for e in listed(session, iid)] == ["dispatched", "accepted"]
