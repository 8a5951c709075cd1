"""Duplicate candidates (same category, 50 m, 2 h, open) and merging."""

from __future__ import annotations

import datetime as dt

import pytest
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents.duplicates import link_candidates, merge, related
from geo.incidents.loop import TransitionNotAllowed, change_status
from geo.settings import Settings
from tests.geo.loop_city import (
    MONDAY_10,
    add_incident,
    build_city,
    events,
    register_incident,
    row,
)

GEOD = Geod(ellps="WGS84")
LON, LAT = 120.005, 30.01


def offset(metres: float, azimuth: float = 0.0) -> tuple[float, float]:
    """The point ``metres`` away from (LON, LAT) towards ``azimuth`` (geodesic)."""
    lon, lat, _ = GEOD.fwd(LON, LAT, azimuth, metres)
    return lon, lat


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    return build_city(session)


def _new(session: Session, metres: float = 0.0, azimuth: float = 0.0, *,
         minutes: float = 0.0, category: str = "E1", status: str = "registered") -> int:
    lon, lat = offset(metres, azimuth)
    return add_incident(session, lon=lon, lat=lat, category=category, status=status,
                        reported_at=MONDAY_10 + dt.timedelta(minutes=minutes))


def _candidate_of(session: Session, incident_id: int) -> int | None:
    value = row(session, incident_id)["candidate_of"]
    return None if value is None else int(value)


@pytest.mark.parametrize(("metres", "azimuth", "minutes", "category", "linked"), [
    (0, 0, 0, "E1", True),
    (49, 0, 30, "E1", True),            # north
    (49, 90, -30, "E1", True),          # east: longitude degrees are shorter at 30°N
    (49, 225, 119, "E1", True),
    (51, 0, 0, "E1", False),
    (51, 90, 0, "E1", False),
    (10, 0, 121, "E1", False),          # more than 2 hours later
    (10, 0, -121, "E1", False),         # more than 2 hours earlier
    (10, 0, 0, "E2", False),            # another category
])
def test_rule(session: Session, city: dict[str, int], metres: float, azimuth: float,
              minutes: float, category: str, linked: bool) -> None:
    settings = Settings()
    first = _new(session)
    second = _new(session, metres, azimuth, minutes=minutes, category=category)
    assert link_candidates(session, [second], settings) == int(linked)
    assert _candidate_of(session, second) == (first if linked else None)
    assert _candidate_of(session, first) is None


def test_only_open_incidents_attract_and_settings_are_used(session: Session,
                                                          city: dict[str, int]) -> None:
    for final in ("closed", "rejected"):
        _new(session, status=final)
    new = _new(session, 5)
    assert link_candidates(session, [new], Settings()) == 0
    open_one = _new(session, 80, status="in_progress")
    assert link_candidates(session, [new], Settings()) == 0
    wide = Settings(duplicate_radius_m=100)
    assert link_candidates(session, [new], wide) == 1
    assert _candidate_of(session, new) == open_one
    assert link_candidates(session, [new], wide) == 0  # already linked: kept
    assert link_candidates(session, [], wide) == 0
    off = Settings(duplicate_radius_m=0)
    assert link_candidates(session, [_new(session)], off) == 0


def test_batch_links_later_to_earlier_and_to_the_first_report(session: Session,
                                                             city: dict[str, int]) -> None:
    a = _new(session, 0, minutes=0)
    b = _new(session, 20, minutes=10)
    c = _new(session, 40, minutes=20)
    far = _new(session, 500, minutes=5)
    assert link_candidates(session, [c, far, b, a], Settings()) == 2
    assert [_candidate_of(session, i) for i in (a, b, c, far)] == [None, a, a, None]


def test_existing_root_is_preferred_over_a_candidate(session: Session,
                                                     city: dict[str, int]) -> None:
    root = _new(session, 0, minutes=0)
    child = _new(session, 30, minutes=-60)  # earlier but already a candidate of root
    session.execute(text("UPDATE incident SET candidate_of = :r WHERE id = :c"),
                    {"r": root, "c": child})
    new = _new(session, 40, minutes=30)
    assert link_candidates(session, [new], Settings()) == 1
    assert _candidate_of(session, new) == root


def test_link_is_one_statement_for_a_large_batch(session: Session,
                                                 city: dict[str, int]) -> None:
    ids = [_new(session, (i % 50) * 200.0, 90, minutes=i % 3) for i in range(300)]
    linked = link_candidates(session, ids, Settings())
    # 50 spots 200 m apart: the first report of each spot stays, the others link to it.
    assert linked == 250
    roots = session.execute(text("SELECT count(DISTINCT candidate_of) FROM incident "
                                 "WHERE candidate_of IS NOT NULL")).scalar()
    assert roots == 50


# --------------------------------------------------------------------------- merge

def test_merge(session: Session, city: dict[str, int]) -> None:
    into = _new(session)
    dup = _new(session, 10, minutes=5)
    other = _new(session, 20, minutes=6)
    link_candidates(session, [dup, other], Settings())
    assert _candidate_of(session, other) == into
    session.execute(text("UPDATE incident SET candidate_of = :d WHERE id = :o"),
                    {"d": dup, "o": other})
    got = merge(session, dup, into, actor="dispatcher1", note="same overflowing bin",
                expected_version=1)
    assert (got.status, got.duplicate_of, got.version) == ("duplicate", into, 2)
    assert got.closed_at is not None
    assert _candidate_of(session, other) == into  # moved to the surviving incident
    dup_events, into_events = events(session, dup), events(session, into)
    assert [(e["from_status"], e["to_status"]) for e in dup_events] == [
        ("registered", "duplicate")]
    assert dup_events[0]["data"]["merged_into"] == into
    assert into_events[0]["data"]["merged"] == dup
    assert into_events[0]["data"]["moved_candidates"] == [other]
    assert row(session, into)["status"] == "registered"
    rel = {r.id: r for r in related(session, into)}
    assert rel[dup].relation == "merged" and rel[other].relation == "candidate"
    assert 9 < rel[dup].distance_m < 11 and rel[dup].minutes_apart == pytest.approx(5)
    back = related(session, other)
    assert [(r.id, r.relation) for r in back] == [(into, "candidate_of")]


def test_merge_refusals(session: Session, city: dict[str, int]) -> None:
    a, b, c = _new(session), _new(session, 5), _new(session, 8)
    with pytest.raises(InvalidInput) as itself:
        merge(session, a, a, actor="d")
    assert itself.value.field == "into"
    with pytest.raises(NotFound):
        merge(session, a, 10**9, actor="d")
    merge(session, b, a, actor="d")
    with pytest.raises(Conflict) as into_dup:
        merge(session, c, b, actor="d")
    assert into_dup.value.field == "into" and str(a) in str(into_dup.value.valid)
    with pytest.raises(TransitionNotAllowed):
        merge(session, b, c, actor="d")  # already a duplicate
    session.execute(text("UPDATE incident SET status = 'in_progress' WHERE id = :c"), {"c": c})
    with pytest.raises(TransitionNotAllowed):
        merge(session, c, a, actor="d")
    change_status(session, a, "rejected", note="no", actor="d")
    d = _new(session, 3)
    with pytest.raises(Conflict) as rejected:
        merge(session, d, a, actor="d")
    assert rejected.value.to_dict()["into_status"] == "rejected"
    with pytest.raises(NotFound):
        related(session, 10**9)


def test_intake_links_candidates(session: Session, city: dict[str, int]) -> None:
    settings = Settings()
    first = register_incident(session, settings, external_id="A")
    near = offset(30, 45)
    second = register_incident(session, settings, external_id="B", lon=near[0], lat=near[1],
                               reported_at=(MONDAY_10 + dt.timedelta(minutes=90)).isoformat())
    other = register_incident(session, settings, external_id="C", lon=near[0], lat=near[1],
                              category="E2")
    assert first.candidate_of is None and other.candidate_of is None
    assert second.candidate_of == first.id and second.created
    assert _candidate_of(session, second.id) == first.id
    retry = register_incident(session, settings, external_id="B", lon=near[0], lat=near[1])
    assert (retry.id, retry.created, retry.candidate_of) == (second.id, False, first.id)
