"""geo.store.map_dispatch: an incident, its grid chain, who answers and who is near (PostGIS)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, box, shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.assign import on_duty
from geo.errors import NotFound
from geo.incidents.loop import change_status
from geo.settings import Settings
from geo.store.grids import GridRecord, write_versions
from geo.store.map_dispatch import dispatch_view
from maps.pages import render
from tests.maps.pages.conftest import (
    EAST_M,
    INCIDENT,
    MONDAY,
    SATURDAY,
    SmallCity,
    east,
    incident,
    walk,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
GEOD = Geod(ellps="WGS84")


def _metres(east_m: float) -> float:
    return float(GEOD.inv(INCIDENT[0], INCIDENT[1], east(INCIDENT[0], east_m), INCIDENT[1])[2])


@pytest.fixture
def reported(session: Session, small_city: SmallCity) -> int:
    """An incident at INCIDENT in G1, assigned to W1 by the primary rule."""
    iid = incident(session, *INCIDENT, MONDAY.replace(hour=9, minute=5))
    session.execute(text("UPDATE incident SET worker_id = :w, rule = 'primary' WHERE id = :i"),
                    {"w": small_city.workers["W1"], "i": iid})
    session.commit()
    return iid


def test_weekday_dispatch(session: Session, reported: int) -> None:
    got = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    assert (got.incident.id, got.incident.grid_code) == (reported, "G1")
    assert [(f["id"], f["properties"]["level"]) for f in got.chain["features"]] == \
        [("C1", "community"), ("G1", "grid")]
    assert got.assigned is not None and (got.assigned.code, got.assigned.rule) == ("W1", "primary")
    assert got.assigned.distance_m == pytest.approx(_metres(500.0), abs=0.1)
    assert got.now is not None and (got.now.code, got.now_rule) == ("W1", "primary")
    # on duty for C01 at Monday 10:00: P-1 and V-1 on call, W1 on shift; W2 works weekends,
    # W3 only answers C02, D-1 is a dispatcher, X-1 is inactive, P-2 has no position
    assert [(p.code, p.duty) for p in got.nearest] == \
        [("P-1", "on call"), ("W1", "primary of G1"), ("V-1", "on call")]
    for person in got.nearest:
        metres = EAST_M[person.code]
        assert metres is not None
        assert person.distance_m == pytest.approx(_metres(metres), abs=0.1)
        assert person.lon == pytest.approx(east(INCIDENT[0], metres))
    two = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY, nearest=2)
    assert [p.code for p in two.nearest] == ["P-1", "W1"]


def test_weekend_dispatch_moves_with_the_shifts(session: Session, reported: int) -> None:
    got = dispatch_view(session, reported, tz=SHANGHAI, at=SATURDAY)
    assert [p.code for p in got.nearest] == ["W2", "P-1", "V-1"]
    assert got.nearest[0].duty == "primary of G2"
    assert on_duty([{"days": [5, 6], "start": "08:00", "end": "18:00"}], SATURDAY, SHANGHAI)
    # the stored assignment stays W1; the rules now fall through to the nearest worker of
    # the community on duty (D-1 holds an always-on duty on C1, 10 m away)
    assert got.assigned is not None and got.assigned.code == "W1"
    assert got.now is not None and (got.now.code, got.now_rule) == ("D-1", "street_nearest")
    assert got.now.distance_m == pytest.approx(_metres(10.0), abs=0.1)


def test_the_worker_who_holds_it_and_the_one_the_intake_chose(
        session: Session, small_city: SmallCity, reported: int) -> None:
    session.execute(text(
        "INSERT INTO incident_event (incident_id, actor, to_status, data) VALUES (:i, 'intake', "
        "'registered', jsonb_build_object('kind', 'intake', 'worker_id', :w, 'rule', 'primary'))"),
        {"i": reported, "w": small_city.workers["W1"]})
    got = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    assert got.intake is None and got.intake_rule is None  # nobody changed it: one row
    change_status(session, reported, "dispatched", actor="d", worker_id=small_city.workers["W2"])
    got = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    assert got.assigned is not None and (got.assigned.code, got.assigned.rule) == (
        "W2", "dispatcher")
    assert got.intake is not None and (got.intake.code, got.intake_rule) == ("W1", "primary")
    page = render(session, Settings(), "dispatch", {"incident_id": reported,
                                                    "at": MONDAY.isoformat()}, lang="en")
    assert "Assigned worker" in page and "Chosen at intake" in page
    assert "dispatched by hand" in page
    assert "test one (C01)" in page and "测一" not in page  # the category in the page's language


def test_a_grid_redrawn_since_is_drawn_as_assigned_and_later_positions_are_flagged(
        session: Session, small_city: SmallCity, reported: int) -> None:
    later = MONDAY + dt.timedelta(days=30)
    write_versions(session, [GridRecord("G1", "网格一", "grid", MultiPolygon(
        [box(119.30, 26.08, 119.303, 26.09)]), parent_code="C1")], at=later)  # shrunk
    session.execute(text("UPDATE worker SET last_seen_at = :t WHERE code = 'P-1'"),
                    {"t": later})
    session.commit()
    got = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    [grid] = [f for f in got.chain["features"] if f["id"] == "G1"]
    assert grid["properties"]["version"] == 1 and grid["properties"]["redrawn_at"]
    assert shape(grid["geometry"]).covers(Point(*INCIDENT))  # not the shrunk version 2
    page = render(session, Settings(), "dispatch", {"incident_id": reported,
                                                    "at": MONDAY.isoformat()}, lang="en")
    assert "drawn as assigned, version 1" in page
    assert "after this moment" in page  # P-1's position was taken after the map's moment
    live = render(session, Settings(), "dispatch", {"incident_id": reported}, lang="en")
    assert "after this moment" not in live  # a live map: a phone's clock may run ahead
    session.execute(text("UPDATE grid SET valid_to = :t WHERE code = 'G1' AND valid_to IS NULL"),
                    {"t": later + dt.timedelta(days=1)})  # then a plan retires it
    session.commit()
    page = render(session, Settings(), "dispatch", {"incident_id": reported,
                                                    "at": MONDAY.isoformat()}, lang="en")
    assert "drawn as assigned, version 1" in page and "(retired" in page


def _seen_later(session: Session, code: str, at: dt.datetime) -> None:
    """Move the worker's last known position back to EAST_M, taken at ``at``."""
    session.execute(text("UPDATE worker SET last_seen_at = :t, last_geom = ST_SetSRID("
                         "ST_MakePoint(:x, :y), 4326) WHERE code = :c"),
                    {"t": at, "c": code, "x": east(INCIDENT[0], EAST_M[code] or 0.0),
                     "y": INCIDENT[1]})


def test_a_map_of_a_past_moment_places_workers_where_their_tracks_were(
        session: Session, small_city: SmallCity, reported: int) -> None:
    p1 = small_city.workers["P-1"]
    # Monday: P-1 walked to 3 km east by 09:00:40; Saturday: to 5 m west by 09:00:32
    walk(session, p1, east(INCIDENT[0], 2950.0), INCIDENT[1], 50.0,
         MONDAY - dt.timedelta(hours=1))
    walk(session, p1, east(INCIDENT[0], -45.0), INCIDENT[1], 40.0,
         SATURDAY - dt.timedelta(hours=1))
    _seen_later(session, "P-1", SATURDAY + dt.timedelta(days=30))  # then seen 200 m east
    session.commit()
    monday = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    assert [p.code for p in monday.nearest] == ["W1", "V-1", "P-1"]
    p = monday.nearest[2]
    assert p.distance_m == pytest.approx(_metres(3000.0), abs=0.1)
    assert p.last_seen_at == MONDAY - dt.timedelta(hours=1) + dt.timedelta(seconds=40)
    page = render(session, Settings(), "dispatch", {"incident_id": reported,
                                                    "at": MONDAY.isoformat()}, lang="en")
    assert "after this moment" not in page  # every position shown was taken by then
    # Saturday: P-1 (on call, of C1's team) 5 m away is rule 4's nearest, not D-1 at 10 m
    saturday = dispatch_view(session, reported, tz=SHANGHAI, at=SATURDAY)
    assert saturday.now is not None and (saturday.now.code, saturday.now_rule) == (
        "P-1", "street_nearest")
    assert saturday.now.distance_m == pytest.approx(_metres(-5.0), abs=0.1)
    assert saturday.nearest[0].code == "P-1"
    # the assigned worker too: W1 walked to 20 m east on Monday before being seen elsewhere
    walk(session, small_city.workers["W1"], east(INCIDENT[0], 10.0), INCIDENT[1], 10.0,
         MONDAY - dt.timedelta(minutes=30))
    _seen_later(session, "W1", MONDAY + dt.timedelta(days=1))
    session.commit()
    monday = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    assert monday.assigned is not None and monday.assigned.code == "W1"
    assert monday.assigned.distance_m == pytest.approx(_metres(20.0), abs=0.1)
    # a live map: the last known positions
    live = dispatch_view(session, reported, tz=SHANGHAI)
    assert live.assigned is not None
    assert live.assigned.distance_m == pytest.approx(_metres(500.0), abs=0.1)
    assert {p.code: p.distance_m for p in live.nearest}.get("P-1") in (
        None, pytest.approx(_metres(200.0), abs=0.1))


def test_a_past_map_keeps_the_last_known_position_without_a_fix_by_then(
        session: Session, small_city: SmallCity, reported: int) -> None:
    walk(session, small_city.workers["P-1"], east(INCIDENT[0], 2950.0), INCIDENT[1], 50.0,
         MONDAY + dt.timedelta(hours=1))  # only after the moment
    _seen_later(session, "P-1", MONDAY + dt.timedelta(days=2))
    session.commit()
    got = dispatch_view(session, reported, tz=SHANGHAI, at=MONDAY)
    [p] = [p for p in got.nearest if p.code == "P-1"]
    assert p.distance_m == pytest.approx(_metres(200.0), abs=0.1)
    assert p.last_seen_at == MONDAY + dt.timedelta(days=2)  # flagged on the page


def test_an_incident_outside_every_grid(session: Session, small_city: SmallCity) -> None:
    iid = incident(session, 119.40, INCIDENT[1], MONDAY, grid=None)
    session.commit()
    got = dispatch_view(session, iid, tz=SHANGHAI, at=MONDAY)
    assert got.chain["features"] == [] and got.assigned is None and got.now is None
    assert got.now_rule == "none" and got.now_reason
    assert got.nearest and got.nearest[0].code == "V-1"  # the farthest east is the nearest


def test_unknown_incident_is_named(session: Session, small_city: SmallCity) -> None:
    with pytest.raises(NotFound) as caught:
        dispatch_view(session, 987654, tz=SHANGHAI)
    assert (caught.value.field, caught.value.value) == ("incident_id", 987654)
    assert caught.value.valid


def test_demo_dispatch(demo: Session) -> None:
    iid = demo.execute(text("SELECT id FROM incident WHERE grid_code IS NOT NULL "
                            "AND worker_id IS NOT NULL ORDER BY id LIMIT 1")).scalar_one()
    at = dt.datetime(2026, 11, 16, 10, tzinfo=SHANGHAI)  # a Monday morning
    got = dispatch_view(demo, iid, tz=SHANGHAI, at=at)
    levels = [f["properties"]["level"] for f in got.chain["features"]]
    assert levels == ["street", "community", "grid"]
    assert got.chain["features"][-1]["id"] == got.incident.grid_code
    assert got.assigned is not None and got.assigned.id == got.incident.worker_id
    assert len(got.nearest) == 5
    distances = [p.distance_m for p in got.nearest]
    assert None not in distances and distances == sorted(d or 0.0 for d in distances)
    shifts: dict[int, list[Any]] = {}
    for r in demo.execute(text("SELECT worker_id, shifts FROM duty WHERE worker_id = ANY(:ids)"),
                          {"ids": [p.id for p in got.nearest]}):
        shifts.setdefault(r.worker_id, []).append(r.shifts)
    for person in got.nearest:
        assert person.role in ("grid_worker", "patrol", "volunteer")
        if person.duty == "on call":
            assert person.id not in shifts
        else:
            assert any(on_duty(s, at, SHANGHAI) for s in shifts[person.id])
