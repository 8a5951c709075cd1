"""Open incidents of a worker made inactive go to whoever the rules choose now."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.roster_io import COLUMNS, apply_rows
from geo.errors import Conflict, InvalidInput
from geo.incidents.escalation import escalate_overdue
from geo.incidents.handover import change_worker, hand_over
from geo.incidents.loop import change_status
from geo.settings import Settings
from geo.store import db, roster
from geo.store.grid_lock import hold_shared, lock_exclusive, try_shared
from geo.store.tracks import lock_worker
from tests.geo.loop_city import MONDAY_10, add_incident, build_city, events, row

SETTINGS = Settings()


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    return build_city(session)


def _off(session: Session, worker_id: int) -> None:
    roster.update_worker(session, worker_id, {"active": False})


def test_open_incidents_go_down_the_fallback_chain_and_closed_ones_stay(
        session: Session, city: dict[str, int]) -> None:
    open_one = add_incident(session, worker_id=city["WG1"])
    accepted = add_incident(session, worker_id=city["WG1"], status="accepted")
    closed = add_incident(session, worker_id=city["WG1"], status="closed")
    others = add_incident(session, lon=120.015, grid="G2", worker_id=city["WG2"])
    _off(session, city["WG1"])
    out = hand_over(session, [city["WG1"]], at=MONDAY_10, settings=SETTINGS, actor="tester",
                    source="deactivation")
    assert (out["handed_over"], out["to_nobody"]) == (2, 0)
    assert [d["id"] for d in out["incidents"]] == [open_one, accepted]
    # an accepted incident goes out again: the new worker has not taken it on
    for iid, before, status in ((open_one, "registered", "registered"),
                                (accepted, "accepted", "dispatched")):
        found = row(session, iid)
        # no backup on G1: the community's manager, on shift on Monday at 10:00
        assert (found["worker_id"], found["rule"], found["status"]) == (
            city["MC1"], "community_manager", status)
        assert found["version"] == 2
        [event] = events(session, iid)
        assert event["actor"] == "tester"
        assert (event["from_status"], event["to_status"]) == (before, status)
        assert event["data"] == {"kind": "handover", "source": "deactivation",
                                 "from_worker": city["WG1"], "to_worker": city["MC1"],
                                 "rule": "community_manager", "reason": None, "version": 2}
        assert "WG1" in event["note"]
    assert row(session, closed)["worker_id"] == city["WG1"]
    assert row(session, others)["worker_id"] == city["WG2"]
    again = hand_over(session, [city["WG1"]], at=MONDAY_10, settings=SETTINGS, actor="tester",
                      source="deactivation")
    assert again["handed_over"] == 0


def test_an_active_worker_keeps_their_incidents(session: Session,
                                                city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    out = hand_over(session, [city["WG1"]], at=MONDAY_10, settings=SETTINGS, actor="t",
                    source="edit")
    assert out["handed_over"] == 0 and row(session, iid)["worker_id"] == city["WG1"]


def test_escalated_incidents_stay_at_their_level_or_go_to_nobody(
        session: Session, city: dict[str, int]) -> None:
    night = MONDAY_10.replace(hour=22)
    escalated = add_incident(session, worker_id=city["MS1"])
    session.execute(text("UPDATE incident SET escalated_to = 'S1', escalation_level = 2 "
                         "WHERE id = :id"), {"id": escalated})
    _off(session, city["MS1"])
    out = hand_over(session, [city["MS1"]], at=night, settings=SETTINGS, actor="t",
                    source="deactivation")
    assert out["handed_over"] == 1
    # the street's dispatcher (always on duty) takes it, not the grid's worker
    found = row(session, escalated)
    assert (found["worker_id"], found["rule"]) == (city["DS1"], "escalation_dispatcher")
    _off(session, city["DS1"])
    out = hand_over(session, [city["DS1"]], at=night, settings=SETTINGS, actor="t",
                    source="deactivation")
    assert (out["handed_over"], out["to_nobody"]) == (1, 1)
    found = row(session, escalated)
    assert found["worker_id"] is None and found["rule"] == "none"
    assert "S1" in found["unassigned_reason"]


def test_an_incident_without_a_grid_goes_to_nobody_saying_why(
        session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, lon=121.0, grid=None, worker_id=city["WG1"])
    _off(session, city["WG1"])
    out = hand_over(session, [city["WG1"]], at=MONDAY_10, settings=SETTINGS, actor="t",
                    source="deactivation")
    assert out["to_nobody"] == 1
    found = row(session, iid)
    assert found["worker_id"] is None and "no grid" in found["unassigned_reason"]


def test_escalation_with_nobody_above_does_not_leave_an_inactive_worker(
        session: Session, city: dict[str, int]) -> None:
    session.execute(text("UPDATE duty SET categories = ARRAY['E2'] WHERE grid_code = 'C1'"))
    iid = add_incident(session, worker_id=city["WG1"])
    session.execute(text("UPDATE worker SET active = false WHERE id = :w"), {"w": city["WG1"]})
    [step] = escalate_overdue(session, MONDAY_10 + dt.timedelta(hours=5), SETTINGS).escalated
    assert (step.rule, step.worker_id) == ("none", None)
    assert step.reason is not None and "WG1 is inactive" in step.reason
    found = row(session, iid)
    assert found["worker_id"] is None and "WG1 is inactive" in found["unassigned_reason"]
    assert found["rule"] == "none"  # not the rule that chose the worker it no longer has


def _roster_rows(active: str) -> list[tuple[int, dict[str, str]]]:
    cells = {"worker_code": "WG1", "name": "员工WG1", "role": "grid_worker", "active": active,
             "grid_code": "G1", "duty": "primary"}
    return [(2, {c: cells.get(c, "") for c in COLUMNS})]


def test_a_roster_import_making_a_worker_inactive_hands_over_and_a_dry_run_does_not(
        session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    dry = apply_rows(session, list(COLUMNS), _roster_rows("false"), dry_run=True,
                     settings=SETTINGS, actor="importer")
    assert dry.as_dict()["incidents"]["handed_over"] == 1
    assert row(session, iid)["worker_id"] == city["WG1"] and events(session, iid) == []
    assert session.execute(text("SELECT active FROM worker WHERE id = :w"),
                           {"w": city["WG1"]}).scalar() is True
    done = apply_rows(session, list(COLUMNS), _roster_rows("false"), settings=SETTINGS,
                      actor="importer", source="team.csv")
    assert done.incidents["incidents"][0]["id"] == iid
    assert row(session, iid)["worker_id"] != city["WG1"]
    [event] = events(session, iid)
    assert (event["actor"], event["data"]["source"]) == ("importer", "roster import team.csv")


def test_a_deactivation_waits_for_an_intake_in_flight_and_hands_its_incident_over(
        db_url: str, session: Session, city: dict[str, int]) -> None:
    session.commit()
    chosen, release = threading.Event(), threading.Event()

    def intake() -> None:  # chose WG1 before the deactivation and commits after it began
        with db.session_scope(db_url) as s:
            hold_shared(s)
            add_incident(s, worker_id=city["WG1"])
            chosen.set()
            release.wait(10)
            s.commit()

    thread = threading.Thread(target=intake)
    thread.start()
    try:
        assert chosen.wait(10)
        # a bulk import would hold it longer: 409, retry
        with db.session_scope(db_url) as s, pytest.raises(Conflict):
            change_worker(s, city["WG1"], {"active": False}, settings=SETTINGS, actor="t",
                          source="deactivation", wait_s=0.2)
        timer = threading.Timer(0.5, release.set)
        timer.start()
        started = time.monotonic()
        with db.session_scope(db_url) as s:
            _, moved = change_worker(s, city["WG1"], {"active": False}, settings=SETTINGS,
                                     actor="t", source="deactivation")
            s.commit()
        assert time.monotonic() - started >= 0.3  # it waited for the intake's commit
    finally:
        release.set()
        thread.join()
    assert moved["handed_over"] == 1
    session.rollback()
    held = session.execute(text("SELECT count(*) FROM incident WHERE worker_id = :w"),
                           {"w": city["WG1"]}).scalar()
    assert held == 0


def test_an_explicit_dispatch_waits_for_a_deactivation_and_then_refuses_the_worker(
        db_url: str, session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, grid="G1", worker_id=None)
    session.commit()
    started, release = threading.Event(), threading.Event()

    def deactivation() -> None:
        with db.session_scope(db_url) as s:
            change_worker(s, city["WG2"], {"active": False}, settings=SETTINGS, actor="t",
                          source="deactivation")
            started.set()
            release.wait(10)
            s.commit()

    thread = threading.Thread(target=deactivation)
    thread.start()
    try:
        assert started.wait(10)
        threading.Timer(0.3, release.set).start()
        with db.session_scope(db_url) as s, pytest.raises(InvalidInput) as refused:
            change_status(s, iid, "dispatched", actor="dispatcher", worker_id=city["WG2"])
        assert refused.value.field == "worker_id"
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize(("status", "after"), [("dispatched", "registered"),
                                               ("accepted", "registered"),
                                               ("in_progress", "registered"),
                                               ("disposed", "disposed"),
                                               ("verified", "verified")])
def test_work_taken_on_goes_back_to_the_queue_when_nobody_takes_it(
        session: Session, city: dict[str, int], status: str, after: str) -> None:
    iid = add_incident(session, lon=121.0, grid=None, worker_id=city["WG1"], status=status)
    _off(session, city["WG1"])
    [moved] = hand_over(session, [city["WG1"]], at=MONDAY_10, settings=SETTINGS, actor="t",
                        source="deactivation")["incidents"]
    assert (moved["from_status"], moved["status"], moved["to_worker"]) == (status, after, None)
    assert row(session, iid)["status"] == after
    if after == "registered":  # a dispatcher can give it to someone again
        change_status(session, iid, "dispatched", actor="dispatcher", worker_id=city["WG2"])
        assert row(session, iid)["worker_id"] == city["WG2"]


def test_a_roster_import_hands_over_only_for_workers_it_makes_inactive(
        session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])  # left by an older version, say
    session.execute(text("UPDATE worker SET active = false WHERE id = :w"), {"w": city["WG1"]})
    report = apply_rows(session, list(COLUMNS), _roster_rows("false"), settings=SETTINGS)
    assert report.incidents["handed_over"] == 0 and row(session, iid)["worker_id"] == city["WG1"]


def test_an_escalation_job_skips_while_a_grid_change_holds_the_lock_and_a_load_can_escalate(
        db_url: str, session: Session, city: dict[str, int]) -> None:
    add_incident(session, worker_id=city["WG1"])
    session.commit()
    with db.session_scope(db_url) as loading:  # a demo load: grids written, then escalation
        lock_exclusive(loading)
        with db.session_scope(db_url) as job:
            assert escalate_overdue(job, MONDAY_10 + dt.timedelta(hours=5), SETTINGS,
                                    wait=False).skipped  # not blocked, no deadlock
        report = escalate_overdue(loading, MONDAY_10 + dt.timedelta(hours=5), SETTINGS)
        assert len(report.escalated) == 1


def test_a_deactivation_waiting_for_an_upload_does_not_hold_up_intakes(
        db_url: str, session: Session, city: dict[str, int]) -> None:
    session.commit()
    uploading, release, done = threading.Event(), threading.Event(), threading.Event()

    def upload() -> None:  # a track upload holds the worker's row for its whole transaction
        with db.session_scope(db_url) as s:
            lock_worker(s, city["WG1"])
            uploading.set()
            release.wait(10)

    def deactivation() -> None:
        with db.session_scope(db_url) as s:
            change_worker(s, city["WG1"], {"active": False}, settings=SETTINGS, actor="t",
                          source="deactivation")
            s.commit()
        done.set()

    threads = [threading.Thread(target=upload), threading.Thread(target=deactivation)]
    threads[0].start()
    try:
        assert uploading.wait(10)
        threads[1].start()
        time.sleep(0.3)
        with db.session_scope(db_url) as intake:
            assert try_shared(intake)  # the deactivation waits on the row, not on the lock
        assert not done.is_set()
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert done.is_set()
