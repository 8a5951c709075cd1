"""Grab-order patrol tasks: checks, coverage against analytic answers, and the store on PostGIS
(near queries, settling, first-claim-wins under concurrent claims, cancel, coverage)."""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Any

import numpy as np
import pytest
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, MultiLineString, Polygon, box, mapping
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents.handover import hand_over
from geo.routes.network import MetricFrame
from geo.routes.validate import parse_route
from geo.settings import Settings
from geo.store import tasks as store
from geo.store.db import session_scope
from geo.store.grids import GridRecord, write_versions
from geo.store.roster import create_team, create_worker
from geo.store.routes import create_route
from geo.store.tracks import save_track
from geo.tasks import new_task, parse_near, parse_statuses, task_coverage
from geo.tracks.clean import Limits
from geo.tracks.points import to_us, track_input
from tests.in_flight import assign_uncommitted

LON0, LAT0 = 119.300, 26.080
FRAME = MetricFrame(LON0, LAT0)
X0, Y0 = (float(v[0]) for v in FRAME.xy([LON0], [LAT0]))
TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2025, 6, 1, 9, 0, tzinfo=TZ)
R = 25.0


def lonlat(x: Any, y: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Metres east/north of (LON0, LAT0) in the test frame -> lon, lat."""
    lon, lat = FRAME.inverse.transform(X0 + np.asarray(x, float), Y0 + np.asarray(y, float))
    return np.asarray(lon, float), np.asarray(lat, float)


def line(*xy: tuple[float, float]) -> LineString:
    """A lon/lat line through points given in metres."""
    lon, lat = lonlat([p[0] for p in xy], [p[1] for p in xy])
    return LineString(np.column_stack([lon, lat]))


def walk(x0: float, x1: float, y: float, step: float = 7.0) -> tuple[NDArray[np.float64], ...]:
    """Fixes every ``step`` m along y = const, lon/lat."""
    xs = np.arange(x0, x1 + 1e-9, step)
    return lonlat(xs, np.full(len(xs), y))


def starts(n: int, *at: int) -> NDArray[np.bool_]:
    flags = np.zeros(n, dtype=bool)
    flags[[0, *at]] = True
    return flags


# --------------------------------------------------------------------------- pure: coverage

def test_route_coverage_is_the_walked_share_within_tolerance() -> None:
    route = MultiLineString([line((0, 0), (1000, 0))])
    lon, lat = walk(0, 602, 10.0)  # 10 m beside the route, the first 602 m
    cov = task_coverage(route, lon, lat, starts(len(lon)), tolerance_m=R)
    # walked: x in [0, 602 + sqrt(25² - 10²)] (the buffer's end cap reaches that far)
    expected = 602 + math.sqrt(R**2 - 10**2)
    assert cov.kind == "route" and cov.points == len(lon)
    assert cov.total == pytest.approx(1000, abs=0.05)
    assert cov.covered == pytest.approx(expected, abs=0.01 * R)
    assert cov.share == pytest.approx(expected / 1000, abs=1e-3)
    out = cov.as_dict()
    missed = shapely.geometry.shape(out["missed"])
    assert len(shapely.get_parts(missed)) == 1
    assert FRAME.to_metric(missed).length == pytest.approx(1000 - expected, abs=0.01 * R)
    assert isinstance(missed, MultiLineString)
    assert missed.geoms[0].coords[-1] == pytest.approx(route.geoms[0].coords[-1], abs=1e-7)


def test_a_gap_between_segments_is_not_walked() -> None:
    route = MultiLineString([line((0, 0), (1000, 0))])
    lon1, lat1 = walk(0, 203, 0.0)
    lon2, lat2 = walk(800, 1000, 0.0)
    lon, lat = np.r_[lon1, lon2], np.r_[lat1, lat2]
    split = task_coverage(route, lon, lat, starts(len(lon), len(lon1)), tolerance_m=R)
    assert split.covered == pytest.approx(203 + R + R + 200, abs=0.01 * R)
    assert len(shapely.get_parts(split.missed)) == 1
    joined = task_coverage(route, lon, lat, starts(len(lon)), tolerance_m=R)
    assert joined.share == pytest.approx(1.0)  # the chord 203 -> 800 would count as walked
    assert joined.as_dict()["missed"] is None


def test_a_track_farther_than_the_tolerance_walks_nothing() -> None:
    route = MultiLineString([line((0, 0), (500, 0)), line((0, 100), (500, 100))])
    lon, lat = walk(0, 500, 50.0 + 0.5)  # 50.5 m from the first line, 49.5 m from the second
    far = task_coverage(route, lon, lat, starts(len(lon)), tolerance_m=49.0)
    assert far.covered == 0.0 and far.share == 0.0
    near = task_coverage(route, lon, lat, starts(len(lon)), tolerance_m=50.0)
    assert near.share == pytest.approx(0.5, abs=1e-3)
    empty = task_coverage(route, np.empty(0), np.empty(0), np.empty(0, bool), tolerance_m=R)
    assert empty.share == 0 and empty.points == 0 and empty.missed is not None
    assert FRAME.to_metric(empty.missed).length == pytest.approx(1000, abs=0.1)


def test_area_coverage_is_the_buffered_share() -> None:
    lon, lat = lonlat([0, 200, 200, 0, 0], [0, 0, 200, 200, 0])
    area = Polygon(np.column_stack([lon, lat]))
    ys = np.arange(-60.0, 260.0, 7.0)
    tlon, tlat = lonlat(np.full(len(ys), 100.0), ys)  # a street through the middle, north
    cov = task_coverage(area, tlon, tlat, starts(len(ys)), tolerance_m=R)
    assert cov.kind == "area" and cov.total == pytest.approx(40_000, rel=1e-3)
    assert cov.covered == pytest.approx(2 * R * 200, rel=2e-3)
    assert cov.share == pytest.approx(0.25, rel=2e-3)
    assert "missed" not in cov.as_dict()
    one_lon, one_lat = lonlat([100.0], [100.0])  # a lone fix: a disc
    disc = task_coverage(area, one_lon, one_lat, starts(1), tolerance_m=R)
    assert disc.covered == pytest.approx(math.pi * R**2, rel=5e-3)


# --------------------------------------------------------------------------- pure: checks

def _ring(first: list[Any]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[first, [119.295, 26.10], [119.295, 26.105],
                                                [119.29, 26.105], first]]}


def test_new_task_checks_its_fields() -> None:
    base: dict[str, Any] = {"title": " Night walk ", "window_start": "2025-06-01T10:00:00",
                            "window_end": "2025-06-01T12:00:00+08:00", "tz": TZ, "now": NOW,
                            "max_hours": 24.0, "max_km2": 10.0}
    task = new_task(route="R1", **base)
    assert task.title == "Night walk" and task.window_start == dt.datetime(2025, 6, 1, 10,
                                                                           tzinfo=TZ)
    problems: list[tuple[dict[str, Any], str]] = [
        ({}, "route"),
        ({"route": "R1", "grid": "G1"}, "route"),
        ({"route": "R1", "window_end": "2025-06-01T09:30:00+08:00"}, "window_end"),
        ({"route": "R1", "window_start": "2025-06-01T13:00:00+08:00"}, "window_end"),
        ({"route": "R1", "window_end": "2025-06-02T12:00:01+08:00"}, "window_end"),
        ({"route": "R1", "window_start": "tomorrow"}, "window_start"),
        ({"route": "R1", "title": "  "}, "title"),
        ({"area": {"type": "Point", "coordinates": [119.3, 26.08]}}, "area"),
        ({"area": mapping(Polygon([(119.30, 26.08), (119.31, 26.09), (119.31, 26.08),
                                   (119.30, 26.09)]))}, "area"),          # a bow tie
        ({"area": mapping(box(119.0, 26.0, 119.2, 26.2))}, "area"),        # ~450 km²
        ({"area": mapping(box(26.08, 119.30, 26.09, 119.31))}, "area.coordinates lat"),
        # a text or JSON true among the positions (shapely reads "NaN" as NaN and then
        # failed with a GEOS error, a 500; true read as 1.0)
        ({"area": _ring(["NaN", 26.10])}, "area.coordinates"),
        ({"area": _ring([True, 26.10])}, "area.coordinates"),
        ({"area": _ring(["119.29", 26.10])}, "area.coordinates"),
    ]
    for change, field in problems:
        with pytest.raises(InvalidInput) as err:
            new_task(**(base | change))
        assert err.value.field == field, (change, err.value.to_dict())
        assert err.value.valid
    area = new_task(area=mapping(box(119.30, 26.08, 119.31, 26.09)), **base).area
    assert area is not None and area.equals(box(119.30, 26.08, 119.31, 26.09))


def test_near_and_status_parsing() -> None:
    assert parse_near("119.3, 26.08") == (119.3, 26.08)
    assert parse_near(None) is None
    for bad in ("119.3", "a,b", "26.08,119.3,1", "200,10"):
        with pytest.raises(InvalidInput) as err:
            parse_near(bad)
        assert str(err.value.field).startswith("near")
    assert parse_statuses(None) == ["open"]
    assert parse_statuses("open,claimed") == ["open", "claimed"]
    assert len(parse_statuses("any")) == 5
    with pytest.raises(InvalidInput) as err:
        parse_statuses("open,taken")
    assert err.value.field == "status" and "claimed" in (err.value.valid or "")


# --------------------------------------------------------------------------- store

def make_city(session: Session) -> dict[str, Any]:
    """A grid, a patrol team with a route along y = 0 (1 km), patrol members and volunteers."""
    lon, lat = lonlat([-100, 1100, 1100, -100], [-300, -300, 300, 300])
    write_versions(session, [GridRecord("G1", "网格一", "grid",
                                        box(lon.min(), lat.min(), lon.max(), lat.max()))])
    team = create_team(session, code="T1", name="一队", grid_code="G1")
    route = create_route(session, parse_route({
        "type": "Feature", "geometry": mapping(line((0, 0), (1000, 0))),
        "properties": {"code": "R-1", "name": "主街", "team": "T1", "grid_codes": ["G1"]}}),
        tolerance_m=20.0)
    workers = {code: create_worker(session, code=code, name=code, role=role,
                                   team_id=team.id).id
               for code, role in [("P1", "patrol"), ("P2", "patrol"), ("V1", "volunteer"),
                                  ("V2", "volunteer"), ("V3", "volunteer"), ("V4", "volunteer"),
                                  ("GW", "grid_worker")]}
    session.commit()
    return {"route_id": route.id, "workers": workers}


def publish(session: Session, *, hours: tuple[float, float] = (0.0, 2.0), now: dt.datetime = NOW,
            **where: Any) -> store.TaskRow:
    start, end = (now + dt.timedelta(hours=h) for h in hours)
    task = new_task(title="patrol", window_start=start, window_end=end, tz=TZ, now=now,
                    max_hours=24, max_km2=10, **where)
    return store.create_task(session, task, published_by=None, now=now)


def test_tasks_near_a_point_nearest_first_and_settled_when_over(session: Session) -> None:
    city = make_city(session)
    far_lon, far_lat = lonlat([0, 300, 300, 0, 0], [2000, 2000, 2300, 2300, 2000])
    far = publish(session, area=mapping(Polygon(np.column_stack([far_lon, far_lat]))))
    on_route = publish(session, route=city["route_id"])
    grid = publish(session, grid="G1", hours=(-1.0, 0.5))
    short = publish(session, route="R-1", hours=(-1.0, 0.25))
    assert on_route.kind == "route" and on_route.route_code == "R-1"
    assert on_route.size == pytest.approx(1000, rel=1e-3)
    assert grid.kind == "area" and grid.grid_code == "G1"
    hx, hy = lonlat([500], [150])
    here = (float(hx[0]), float(hy[0]))
    rows, total = store.list_tasks(session, statuses=["open"], near=here, radius_m=1000, now=NOW)
    # the two route tasks are equally near: the one starting first comes first
    assert [r.id for r in rows] == [grid.id, short.id, on_route.id] and total == 3
    assert rows[0].distance_m == pytest.approx(0.0)
    assert rows[1].distance_m == pytest.approx(150, abs=0.5) == rows[2].distance_m
    rows, total = store.list_tasks(session, statuses=["open"], near=here, radius_m=3000, now=NOW)
    assert rows[-1].id == far.id
    assert rows[-1].distance_m == pytest.approx(math.hypot(200, 1850), abs=2)
    later = NOW + dt.timedelta(minutes=20)
    rows, _ = store.list_tasks(session, statuses=["expired"], now=later)
    assert [r.id for r in rows] == [short.id]  # computed before it is settled
    assert store.settle(session, now=later) == 1
    stored = session.execute(text("SELECT status, closed_at FROM patrol_task WHERE id = :i"),
                             {"i": short.id}).one()
    assert stored.status == "expired" and stored.closed_at == short.window_end
    with pytest.raises(InvalidInput) as err:
        publish(session, route="R-404")
    assert err.value.field == "route"
    with pytest.raises(InvalidInput) as err:
        publish(session, grid="NOPE")
    assert err.value.field == "grid"


def test_concurrent_claims_have_exactly_one_winner(db_url: str, session: Session) -> None:
    city = make_city(session)
    task = publish(session, route="R-1", now=dt.datetime.now(TZ))
    session.commit()
    claimers = ["P1", "P2", "V1", "V2", "V3", "V4"]
    barrier = threading.Barrier(len(claimers))
    results: dict[str, Any] = {}

    def claim(code: str) -> None:
        try:
            with session_scope(db_url) as s:
                barrier.wait()
                row = store.claim_task(s, task.id, worker_id=city["workers"][code], user_id=None)
                results[code] = row
        except Conflict as exc:
            results[code] = exc

    threads = [threading.Thread(target=claim, args=(c,)) for c in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [c for c, r in results.items() if isinstance(r, store.TaskRow)]
    assert len(winners) == 1 and len(results) == len(claimers)
    won = results[winners[0]]
    for code, res in results.items():
        if code != winners[0]:
            assert isinstance(res, Conflict)
            assert res.extra["claimed_at"] == won.claimed_at.isoformat()
            assert won.claimed_at.isoformat() in res.message
            assert res.extra["claimed_by"]["code"] == winners[0]
    session.rollback()
    row = session.execute(text("SELECT status, claimed_by, version FROM patrol_task")).one()
    assert row.status == "claimed" and row.claimed_by == city["workers"][winners[0]]
    assert row.version == 2


def test_a_claim_does_not_wait_for_a_transaction_that_assigned_the_worker_an_incident(
        db_url: str, session: Session) -> None:
    city = make_city(session)
    task = publish(session, route="R-1", now=dt.datetime.now(TZ))
    session.commit()
    worker = city["workers"]["P1"]
    with session_scope(db_url) as importing:  # a bulk import holds this until it commits
        assign_uncommitted(importing, worker, 119.3, 26.08)
        with session_scope(db_url) as claiming:
            claiming.execute(text("SET lock_timeout = '2s'"))  # it waited for the import
            row = store.claim_task(claiming, task.id, worker_id=worker, user_id=None)
            claiming.commit()
        assert row.claimed_by == worker


def test_claim_rules_and_cancel(session: Session) -> None:
    city = make_city(session)
    w = city["workers"]
    first = publish(session, route="R-1", hours=(0, 2))
    overlapping = publish(session, grid="G1", hours=(1, 3))
    after = publish(session, grid="G1", hours=(2, 4))
    claimed = store.claim_task(session, first.id, worker_id=w["P1"], user_id=None, now=NOW)
    assert claimed.status == "claimed" and claimed.worker_code == "P1" and claimed.version == 2
    with pytest.raises(Conflict) as err:
        store.claim_task(session, overlapping.id, worker_id=w["P1"], user_id=None, now=NOW)
    assert err.value.field == "worker_id" and err.value.extra["overlapping_task"] == first.id
    assert store.claim_task(session, after.id, worker_id=w["P1"], user_id=None,
                            now=NOW).status == "claimed"
    for who in ("GW", 999_999):
        with pytest.raises(InvalidInput) as bad:
            store.claim_task(session, overlapping.id, worker_id=w.get(str(who), who),
                             user_id=None, now=NOW)
        assert bad.value.field == "worker_id"
    with pytest.raises(NotFound):
        store.claim_task(session, 999_999, worker_id=w["P2"], user_id=None, now=NOW)
    with pytest.raises(Conflict) as err:
        store.cancel_task(session, overlapping.id, user_id=None, version=7, now=NOW)
    assert err.value.field == "version" and err.value.extra["version"] == 1
    gone = store.cancel_task(session, overlapping.id, user_id=None, reason="rain", version=1,
                             now=NOW)
    assert gone.status == "cancelled" and gone.cancel_reason == "rain" and gone.version == 2
    with pytest.raises(Conflict) as err:
        store.claim_task(session, overlapping.id, worker_id=w["P2"], user_id=None, now=NOW)
    assert "cancelled" in err.value.message
    with pytest.raises(Conflict):
        store.cancel_task(session, overlapping.id, user_id=None, now=NOW)
    late = NOW + dt.timedelta(hours=2, minutes=1)
    shown = store.get_task(session, first.id, now=late)  # unsettled: GET derives the status
    assert shown.status == "done"
    with pytest.raises(Conflict) as err, session.begin_nested():  # rolled back, as the API
        store.cancel_task(session, first.id, user_id=None, version=shown.version, now=late)
    # "done and cannot be cancelled", at the version GET showed (it named a version GET never
    # shows: its own settling's, rolled back with the refusal); claims likewise
    assert "done and cannot be cancelled" in err.value.message
    assert (err.value.extra["status"], err.value.extra["version"]) == ("done", shown.version)
    with pytest.raises(Conflict) as err, session.begin_nested():
        store.claim_task(session, first.id, worker_id=w["P2"], user_id=None, now=late)
    assert (err.value.extra["status"], err.value.extra["version"]) == ("done", shown.version)
    store.settle(session, now=late)  # stored: the same status, at the same version
    assert store.get_task(session, first.id, now=late) == shown


def test_a_worker_made_inactive_lets_go_of_the_tasks_still_to_walk(session: Session) -> None:
    """The task stayed claimed by the inactive worker, and another's claim got 409."""
    city = make_city(session)
    w = city["workers"]
    now_on = publish(session, grid="G1", hours=(0, 2))
    later = publish(session, grid="G1", hours=(3, 4))
    done = publish(session, grid="G1", hours=(1, 3), now=NOW - dt.timedelta(hours=4))
    for task, when in ((done, NOW - dt.timedelta(hours=3.5)), (now_on, NOW), (later, NOW)):
        store.claim_task(session, task.id, worker_id=w["P1"], user_id=None, now=when)
    session.execute(text("UPDATE worker SET active = false WHERE id = :w"), {"w": w["P1"]})
    out = hand_over(session, [w["P1"], w["P2"]], at=NOW, settings=Settings(), actor="t",
                    source="test")
    assert out["tasks_released"] == sorted([now_on.id, later.id])
    freed = store.get_task(session, now_on.id, now=NOW)
    assert (freed.status, freed.claimed_by, freed.version) == ("open", None, 3)
    assert store.claim_task(session, now_on.id, worker_id=w["P2"], user_id=None,
                            now=NOW).worker_code == "P2"
    assert store.get_task(session, done.id, now=NOW).claimed_by == w["P1"]  # walked: kept


def test_coverage_comes_from_the_claimants_track_in_the_window(session: Session) -> None:
    city = make_city(session)
    now = dt.datetime.now(TZ).replace(microsecond=0)
    task = publish(session, route="R-1", hours=(-1.0, 1.0), now=now)
    store.claim_task(session, task.id, worker_id=city["workers"]["V1"], user_id=None, now=now)
    lon, lat = walk(0, 500, 5.0)  # half the route, 1.4 m/s, 40 min ago onwards
    t0 = now - dt.timedelta(minutes=40)
    times = [to_us(t0 + dt.timedelta(seconds=5 * i)) for i in range(len(lon))]
    save_track(session, worker_id=city["workers"]["V1"],
               track=track_input(lon, lat, times), limits=Limits())
    olon, olat = walk(500, 1000, 0.0)  # someone else walked the other half
    save_track(session, worker_id=city["workers"]["V2"],
               track=track_input(olon, olat, times[:len(olon)]), limits=Limits())
    before = [to_us(now - dt.timedelta(hours=2) + dt.timedelta(seconds=5 * i))
              for i in range(len(olon))]  # the claimant walked the rest before the window
    save_track(session, worker_id=city["workers"]["V1"],
               track=track_input(olon, olat, before), limits=Limits())
    row = store.get_task(session, task.id)
    cov = store.coverage_of(session, row, tolerance_m=R)
    assert cov is not None and cov["worker_id"] == city["workers"]["V1"]
    assert cov["points"] == len(lon)
    expected = 497 + math.sqrt(R**2 - 5**2)  # the last fix is at x = 71 * 7 m
    assert cov["covered_m"] == pytest.approx(expected, abs=0.3)
    assert cov["share"] == pytest.approx(expected / 1000, abs=1e-3)
    assert cov["missed_m"] == pytest.approx(1000 - expected, abs=0.3)
    open_task = publish(session, grid="G1", now=now)
    assert store.coverage_of(session, open_task, tolerance_m=R) is None


def test_link_user_to_a_worker(session: Session) -> None:
    from geo.store.users import create_user

    city = make_city(session)
    alice, _ = create_user(session, name="alice", role="patrol")
    create_user(session, name="bob", role="patrol")
    out = store.link_user(session, user="alice", worker_id=city["workers"]["V1"])
    assert out["worker_code"] == "V1"
    assert store.linked_worker(session, alice.id) == city["workers"]["V1"]
    with pytest.raises(Conflict) as err:
        store.link_user(session, user="bob", worker_id=city["workers"]["V1"])
    assert "alice" in err.value.message
    with pytest.raises(NotFound):
        store.link_user(session, user="carol", worker_id=city["workers"]["V1"])
    store.link_user(session, user="alice", worker_id=None)
    assert store.linked_worker(session, alice.id) is None
