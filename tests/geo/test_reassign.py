"""Incidents given a new worker in one statement, each with its event (geo.store.reassign)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from geo.store.reassign import Reassignment, reassign
from tests.geo.loop_city import add_incident, build_city, events, row


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    return build_city(session)


def _nobody(session: Session, reason: str) -> int:
    iid = add_incident(session)
    session.execute(text("UPDATE incident SET unassigned_reason = :r WHERE id = :i"),
                    {"r": reason, "i": iid})
    return iid


def test_the_reason_nobody_has_an_incident_is_kept_replaced_or_cleared(
        session: Session, city: dict[str, int]) -> None:
    given, kept, replaced = (_nobody(session, "nobody on duty") for _ in range(3))
    versions = reassign(session, [
        Reassignment(given, city["WG1"], "primary", "registered", "n", {"kind": "t"}),
        Reassignment(kept, None, "none", "registered", "n", {"kind": "t"}),
        Reassignment(replaced, None, "none", "registered", "n", {"kind": "t"},
                     reason="declined by all")], actor="tester")
    assert versions == {given: 2, kept: 2, replaced: 2}
    assert row(session, given)["unassigned_reason"] is None
    assert row(session, kept)["unassigned_reason"] == "nobody on duty"
    assert row(session, replaced)["unassigned_reason"] == "declined by all"


def test_grid_and_status_change_only_when_given_and_each_gets_its_event(
        session: Session, city: dict[str, int]) -> None:
    stays = add_incident(session, worker_id=city["WG1"], status="accepted")
    moves = add_incident(session, worker_id=city["WG1"], status="accepted")
    g2 = session.scalar(text("SELECT id FROM grid WHERE code = 'G2' AND valid_to IS NULL"))
    reassign(session, [
        Reassignment(moves, city["WG2"], "primary", "accepted", "to G2",
                     {"kind": "regrid", "to_grid": "G2"}, grid_code="G2", grid_id=g2),
        Reassignment(stays, city["MC1"], "community_manager", "accepted", "handed",
                     {"kind": "handover"}, status="dispatched")], actor="tester")
    moved, stayed = row(session, moves), row(session, stays)
    assert (moved["grid_code"], moved["grid_id"], moved["status"]) == ("G2", g2, "accepted")
    assert (stayed["grid_code"], stayed["status"], stayed["worker_id"]) == (
        "G1", "dispatched", city["MC1"])
    [e] = events(session, moves)
    assert (e["actor"], e["from_status"], e["to_status"], e["note"]) == (
        "tester", "accepted", "accepted", "to G2")
    assert e["data"] == {"kind": "regrid", "to_grid": "G2", "version": 2}
    [e] = events(session, stays)
    assert (e["from_status"], e["to_status"]) == ("accepted", "dispatched")


def test_many_incidents_cost_one_statement(session: Session, city: dict[str, int]) -> None:
    ids = [add_incident(session, worker_id=city["WG1"]) for _ in range(40)]
    session.flush()
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        versions = reassign(session, [Reassignment(i, city["WG2"], "primary", "registered",
                                                   "n", {"kind": "t"}) for i in ids],
                            actor="t")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 1 and set(versions.values()) == {2}
    assert session.scalar(text("SELECT count(*) FROM incident_event WHERE incident_id = "
                               "ANY(:ids)"), {"ids": ids}) == 40
