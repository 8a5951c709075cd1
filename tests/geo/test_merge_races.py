"""Merges racing each other and intake (real transactions, one session per thread)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.bulk import BulkIntake
from geo.incidents.duplicates import merge, related
from geo.incidents.loop import change_status
from geo.incidents.schema import validate_incident
from geo.index_cache import get_index
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


def _in_thread(db_url: str, work: Any, barrier: threading.Barrier | None = None
               ) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            with db.session_scope(db_url) as s:
                if barrier is not None:
                    barrier.wait()
                out["result"] = work(s)
        except Exception as exc:  # asserted on by the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _waits_for_commit(session: Session, db_url: str, work: Any) -> dict[str, Any]:
    """Run ``work`` in another transaction: it must wait for ``session``'s locks, and
    finish once ``session`` commits. Its outcome."""
    thread, out = _in_thread(db_url, work)
    thread.join(timeout=0.5)
    assert thread.is_alive()  # it waits for the uncommitted change
    session.commit()
    thread.join(timeout=30)
    return out


def _candidate(session: Session, anchor: int) -> int:
    new = add_incident(session)
    session.execute(text("UPDATE incident SET candidate_of = :a WHERE id = :n"),
                    {"a": anchor, "n": new})
    return new


def test_two_duplicates_merged_into_one_incident_at_once_never_deadlock(
        session: Session, db_url: str) -> None:
    build_city(session)
    trials = []
    for _ in range(12):
        a = add_incident(session)
        d, c = _candidate(session, a), _candidate(session, a)
        trials.append((a, d, c))  # a < d < c: merging a into c moves d's link
    session.commit()
    for a, d, c in trials:
        barrier = threading.Barrier(2)
        runs = [_in_thread(db_url, lambda s, x=x, c=c: merge(s, x, c, actor="d").status,
                           barrier)
                for x in (a, d)]
        for thread, _ in runs:
            thread.join(timeout=30)
        assert [out for _, out in runs] == [{"result": "duplicate"}] * 2
        session.expire_all()
        assert (row(session, a)["duplicate_of"], row(session, d)["duplicate_of"]) == (c, c)


def test_a_merge_cycle_at_once_never_deadlocks(session: Session, db_url: str) -> None:
    build_city(session)
    trials = [(add_incident(session), add_incident(session), add_incident(session))
              for _ in range(8)]
    session.commit()
    for a, b, c in trials:
        barrier = threading.Barrier(3)
        runs = [_in_thread(db_url, lambda s, x=x, y=y: merge(s, x, y, actor="d").status,
                           barrier) for x, y in ((a, c), (b, a), (c, b))]
        for thread, _ in runs:
            thread.join(timeout=30)
        outcomes = [out for _, out in runs]
        assert all("result" in o or type(o["error"]).__name__ in ("Conflict",
                                                                  "TransitionNotAllowed")
                   for o in outcomes), outcomes
        assert sum("result" in o for o in outcomes) >= 1


def test_a_report_linked_while_its_target_is_merged_follows_the_merge(
        session: Session, db_url: str) -> None:
    build_city(session)
    settings = Settings()
    anchor = register_incident(session, settings, external_id="A").id
    survivor = register_incident(session, settings, external_id="B").id
    session.commit()
    merge(session, anchor, survivor, actor="d")  # not committed: the anchor is locked
    assert _waits_for_commit(session, db_url, lambda s: register_incident(
        s, settings, external_id="N").candidate_of) == {"result": survivor}


def test_the_survivor_of_a_merge_is_no_longer_a_candidate_of_the_merged(
        session: Session) -> None:
    build_city(session)
    anchor = add_incident(session)
    survivor = _candidate(session, anchor)
    merge(session, anchor, survivor, actor="d")
    assert row(session, survivor)["candidate_of"] is None
    assert [(r.id, r.relation) for r in related(session, survivor)] == [(anchor, "merged")]


def test_rejecting_an_incident_drops_the_links_to_it(session: Session) -> None:
    build_city(session)
    anchor = add_incident(session, status="registered")
    linked = [_candidate(session, anchor), _candidate(session, anchor)]
    other = _candidate(session, add_incident(session))
    change_status(session, anchor, "rejected", note="prank call", actor="d")
    assert [row(session, i)["candidate_of"] for i in linked] == [None, None]
    assert row(session, other)["candidate_of"] is not None
    assert events(session, anchor)[-1]["data"]["unlinked_candidates"] == linked
    assert related(session, linked[0]) == []


def test_a_report_linked_while_its_target_is_rejected_is_not_linked(
        session: Session, db_url: str) -> None:
    build_city(session)
    settings = Settings()
    anchor = register_incident(session, settings, external_id="A").id
    session.commit()
    change_status(session, anchor, "rejected", note="prank call", actor="d")  # still locked
    assert _waits_for_commit(session, db_url, lambda s: register_incident(
        s, settings, external_id="N").candidate_of) == {"result": None}


def _bulk_one(settings: Settings, external_id: str) -> Any:
    def work(s: Session) -> Any:
        bulk = BulkIntake(s, actor="bulk", settings=settings, index=get_index(s), now=MONDAY_10,
                          on_reject=lambda item, exc: pytest.fail(str(exc)))
        assert bulk.preload()
        item = validate_incident({"lon": 120.005, "lat": 30.01, "category": "E1",
                                  "source": "hotline", "external_id": external_id,
                                  "reported_at": MONDAY_10.isoformat()},
                                 tz=settings.tz, now=MONDAY_10 + dt.timedelta(days=3))
        prepared = bulk.prepare([item])
        assert prepared is not None
        counts = bulk.write(prepared)
        return counts.candidates, row(s, counts.ids[0])["candidate_of"]
    return work


@pytest.mark.parametrize("change", ["merge", "reject"])
def test_a_bulk_import_linked_while_its_target_changes_follows_it(
        session: Session, db_url: str, change: str) -> None:
    build_city(session)
    settings = Settings()
    anchor = register_incident(session, settings, external_id="A").id
    survivor = register_incident(session, settings, external_id="B").id
    session.commit()
    if change == "merge":
        merge(session, anchor, survivor, actor="d")  # not committed: the anchor is locked
    else:
        change_status(session, anchor, "rejected", note="prank call", actor="d")
    expected = (1, survivor) if change == "merge" else (0, None)
    assert _waits_for_commit(session, db_url, _bulk_one(settings, "N")) == {"result": expected}
