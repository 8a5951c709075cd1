"""The closed loop: the state machine, versions, events, the evaluation."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import deque
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents.loop import (
    ALLOWED,
    FINAL_STATUSES,
    MAIN_LINE,
    StaleVersion,
    TransitionNotAllowed,
    change_status,
    change_status_many,
    evaluate,
)
from geo.settings import Settings
from geo.store import db
from geo.store.models import INCIDENT_STATUSES
from tests.geo.loop_city import SH, add_incident, build_city, events, register_incident, row


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    ids = build_city(session)
    session.commit()
    return ids


def _set_status(session: Session, incident_id: int, status: str) -> None:
    session.execute(text("UPDATE incident SET status = :s WHERE id = :id"),
                    {"s": status, "id": incident_id})


# --------------------------------------------------------------------------- the table

def test_allowed_table_shape() -> None:
    assert set(ALLOWED) == set(INCIDENT_STATUSES)
    for status, targets in ALLOWED.items():
        assert status not in targets
        assert set(targets) <= set(INCIDENT_STATUSES)
    assert all(ALLOWED[s] == () for s in FINAL_STATUSES)
    for a, b in itertools.pairwise(MAIN_LINE):
        assert b in ALLOWED[a]
    # Every status is reachable from registered, and every open status can still end.
    seen, todo = {"registered"}, deque(["registered"])
    while todo:
        for nxt in ALLOWED[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(INCIDENT_STATUSES)
    for status in set(INCIDENT_STATUSES) - set(FINAL_STATUSES):
        reach, todo = {status}, deque([status])
        while todo:
            for nxt in ALLOWED[todo.popleft()]:
                if nxt not in reach:
                    reach.add(nxt)
                    todo.append(nxt)
        assert reach & set(FINAL_STATUSES), status


# --------------------------------------------------------------------------- the main line

def test_main_line_writes_one_event_per_change_and_bumps_the_version(
        session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    for n, status in enumerate(MAIN_LINE[1:], start=2):
        got = change_status(session, iid, status, note=f"step {status}", actor="alice",
                            expected_version=n - 1)
        assert (got.status, got.version) == (status, n)
    session.commit()
    found = row(session, iid)
    assert found["status"] == "closed" and found["closed_at"] is not None
    trail = events(session, iid)
    steps = [(e["from_status"], e["to_status"]) for e in trail]
    assert steps == list(itertools.pairwise(MAIN_LINE))
    assert all(e["actor"] == "alice" and e["at"] is not None for e in trail)
    assert [e["note"] for e in trail] == [f"step {s}" for s in MAIN_LINE[1:]]
    assert [e["data"]["version"] for e in trail] == list(range(2, 8))


def test_every_transition_not_in_the_table_is_refused_and_changes_nothing(
        session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    refused = 0
    for source in INCIDENT_STATUSES:
        for target in INCIDENT_STATUSES:
            if target in ALLOWED[source]:
                continue
            _set_status(session, iid, source)
            before = row(session, iid)
            with pytest.raises(TransitionNotAllowed) as caught:
                change_status(session, iid, target, note="x", actor="bob")
            detail = caught.value.to_dict()
            assert detail["field"] == "status" and detail["value"] == target
            assert detail["from"] == source and detail["allowed"] == list(ALLOWED[source])
            for allowed in ALLOWED[source]:
                assert allowed in detail["valid"]
            assert row(session, iid) == before
            refused += 1
    assert refused == 81 - sum(len(t) for t in ALLOWED.values())
    assert events(session, iid) == []


def test_stale_version_is_refused_with_the_current_one(session: Session,
                                                       city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    change_status(session, iid, "dispatched", actor="d", expected_version=1)
    with pytest.raises(StaleVersion) as caught:
        change_status(session, iid, "accepted", actor="w", expected_version=1)
    assert caught.value.to_dict()["current_version"] == 2
    assert isinstance(caught.value, Conflict)
    assert row(session, iid)["status"] == "dispatched"
    assert change_status(session, iid, "accepted", actor="w", expected_version=2).version == 3


def test_dispatch_needs_a_worker_and_may_name_one(session: Session,
                                                  city: dict[str, int]) -> None:
    iid = add_incident(session, grid=None, worker_id=None)
    with pytest.raises(Conflict) as caught:
        change_status(session, iid, "dispatched", actor="d")
    assert caught.value.field == "worker_id"
    with pytest.raises(InvalidInput) as bad:
        change_status(session, iid, "dispatched", actor="d", worker_id=999_999)
    assert bad.value.field == "worker_id" and bad.value.value == 999_999
    with pytest.raises(InvalidInput) as wrong:
        change_status(session, iid, "rejected", note="n", actor="d", worker_id=city["WG2"])
    assert "dispatched" in str(wrong.value.valid)
    session.execute(text("UPDATE worker SET active = false WHERE id = :w"), {"w": city["WG1"]})
    with pytest.raises(InvalidInput):
        change_status(session, iid, "dispatched", actor="d", worker_id=city["WG1"])
    got = change_status(session, iid, "dispatched", actor="d", worker_id=city["WG2"])
    assert (got.worker_id, got.rule, got.status) == (city["WG2"], "dispatcher", "dispatched")
    data = events(session, iid)[-1]["data"]
    assert data["worker_id"] == city["WG2"] and data["from_worker_id"] is None


def test_reject_needs_a_note_and_closes(session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    for note in (None, "   "):
        with pytest.raises(InvalidInput) as caught:
            change_status(session, iid, "rejected", note=note, actor="d")
        assert caught.value.field == "note"
    got = change_status(session, iid, "rejected", note="not a municipal matter", actor="d")
    assert got.status == "rejected" and got.closed_at is not None


def test_duplicate_only_by_merging_and_bad_values(session: Session,
                                                  city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    with pytest.raises(InvalidInput) as dup:
        change_status(session, iid, "duplicate", actor="d")
    assert "merge" in str(dup.value.valid)
    with pytest.raises(InvalidInput) as unknown:
        change_status(session, iid, "done", actor="d")
    assert unknown.value.to_dict() | {} == {
        "message": unknown.value.message, "field": "status", "value": "done",
        "valid": ", ".join(INCIDENT_STATUSES)}
    with pytest.raises(InvalidInput) as long_note:
        change_status(session, iid, "dispatched", note="x" * 2001, actor="d")
    assert long_note.value.field == "note"
    with pytest.raises(NotFound):
        change_status(session, iid + 1000, "dispatched", actor="d")
    assert row(session, iid)["version"] == 1


def test_rework_loop(session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    for status in ("dispatched", "accepted", "in_progress", "disposed", "in_progress",
                   "disposed", "verified", "closed"):
        change_status(session, iid, status, actor="x")
    assert [e["to_status"] for e in events(session, iid)].count("in_progress") == 2


def test_history_time_can_be_given(session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    when = dt.datetime(2024, 6, 3, 11, 0, tzinfo=SH)
    change_status(session, iid, "dispatched", actor="import", at=when)
    assert events(session, iid)[0]["at"] == when
    with pytest.raises(InvalidInput) as naive:
        change_status(session, iid, "accepted", actor="x", at=dt.datetime(2024, 6, 3, 12))
    assert naive.value.field == "at"


# --------------------------------------------------------------------------- concurrency

def test_concurrent_changes_of_one_version_let_exactly_one_through(
        db_url: str, session: Session, city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"], status="dispatched")
    session.commit()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            with db.session_scope(db_url) as s:
                change_status(s, iid, "accepted", actor=f"w{n}", expected_version=1)
            result = "ok"
        except StaleVersion:
            result = "stale"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["stale"] * 7
    session.expire_all()
    assert row(session, iid)["version"] == 2
    assert len(events(session, iid)) == 1


# --------------------------------------------------------------------------- evaluation

def test_evaluation_only_on_closed_once_and_retry_safe(session: Session,
                                                       city: dict[str, int]) -> None:
    iid = add_incident(session, worker_id=city["WG1"])
    with pytest.raises(Conflict) as early:
        evaluate(session, iid, score=5, actor="hotline")
    assert early.value.field == "status" and early.value.valid == "closed"
    for bad in (0, 6, "5", True, 4.5, None):
        with pytest.raises(InvalidInput) as caught:
            evaluate(session, iid, score=bad, actor="hotline")  # type: ignore[arg-type]
        assert caught.value.field == "score"
    _set_status(session, iid, "closed")
    got = evaluate(session, iid, score=4, comment=" quick ", actor="hotline",
                   expected_version=1)
    assert (got.evaluation_score, got.evaluation_comment, got.version) == (4, "quick", 2)
    assert got.evaluated_at is not None
    again = evaluate(session, iid, score=4, comment="quick", actor="hotline")
    assert again.version == 2 and len(events(session, iid)) == 1
    with pytest.raises(Conflict) as twice:
        evaluate(session, iid, score=1, actor="hotline")
    assert twice.value.to_dict()["evaluation_score"] == 4
    event = events(session, iid)[0]
    assert event["data"]["score"] == 4 and event["to_status"] == "closed"


# --------------------------------------------------------------------------- set-based

def test_change_status_many_moves_only_allowed_ones(session: Session,
                                                    city: dict[str, int]) -> None:
    when = dt.datetime(2024, 6, 3, 12, 0, tzinfo=SH)
    ids = [add_incident(session, worker_id=city["WG1"], status=s)
           for s in ("registered", "dispatched", "dispatched", "closed")]
    moved = change_status_many(session, [(i, when) for i in ids], "accepted", actor="import")
    assert moved == 2
    rows: list[dict[str, Any]] = [row(session, i) for i in ids]
    assert [r["status"] for r in rows] == ["registered", "accepted", "accepted", "closed"]
    assert [r["version"] for r in rows] == [1, 2, 2, 1]
    trail = events(session, ids[1])
    assert [(e["from_status"], e["to_status"], e["at"]) for e in trail] == [
        ("dispatched", "accepted", when)]
    closed = change_status_many(session, [(ids[1], when)], "in_progress", actor="i")
    assert closed == 1
    with pytest.raises(InvalidInput):
        change_status_many(session, [(ids[0], when)], "duplicate", actor="i")


# --------------------------------------------------------------------------- after the intake

def test_intake_then_the_whole_loop(session: Session, city: dict[str, int],
                                    settings: Settings) -> None:
    got = register_incident(session, settings, external_id="H-1")
    assert got.created and got.worker is not None and got.worker.code == "WG1"
    assert got.status == "dispatched"  # auto-dispatched by the intake
    first = row(session, got.id)
    for status in MAIN_LINE[2:]:
        change_status(session, got.id, status, actor="w", expected_version=None)
    done = evaluate(session, got.id, score=5, actor="hotline")
    assert done.version == first["version"] + len(MAIN_LINE[2:]) + 1
    kinds = [(e["from_status"], e["to_status"]) for e in events(session, got.id)]
    assert kinds[-6:] == [("dispatched", "accepted"), ("accepted", "in_progress"),
                          ("in_progress", "disposed"), ("disposed", "verified"),
                          ("verified", "closed"), ("closed", "closed")]
    assert kinds[0] == (None, "registered")
