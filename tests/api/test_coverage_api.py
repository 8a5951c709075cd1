"""GET /api/v1/coverage and /api/v1/routes/{id}/actual on a real PostGIS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import LineString, MultiPolygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import Result

from geo.coverage import exact_coverage
from geo.routes.network import MetricFrame
from geo.store.grids import GridRecord, write_versions
from geo.store.roster import create_worker

Auth = Callable[[str], dict[str, str]]
TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 11, 9, 9, 5, tzinfo=TZ)  # a Monday, 09:05 local
DAY = {"from": "2026-11-09T00:00:00+08:00", "to": "2026-11-10T00:00:00+08:00"}
LAT0 = 26.085
M_LAT = 111_195.0
M_LON = M_LAT * float(np.cos(np.radians(LAT0)))


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    """A community with two grids, a patrol team of two, a category; worker ids."""
    write_versions(session, [
        GridRecord("C1", "社区", "community", MultiPolygon([box(119.30, 26.08, 119.32, 26.09)])),
        GridRecord("G1", "网格一", "grid", MultiPolygon([box(119.30, 26.08, 119.31, 26.09)]),
                   parent_code="C1"),
        GridRecord("G2", "网格二", "grid", MultiPolygon([box(119.31, 26.08, 119.32, 26.09)]),
                   parent_code="C1"),
    ])
    session.execute(text("""INSERT INTO team (code, name, kind, grid_code)
                            VALUES ('T1', '巡防队', 'patrol', 'G1');
                            INSERT INTO category (code, name_zh, name_en, kind, department,
                                                  sla_hours)
                            VALUES ('C01', '测', 't', 'event', 'd', 8)"""))
    team = session.execute(text("SELECT id FROM team WHERE code = 'T1'")).scalar_one()
    ids = {code: create_worker(session, code=code, name=code, role="patrol", team_id=team).id
           for code in ("P-1", "P-2")}
    session.commit()
    return ids


def walk(lon0: float, lat0: float, east_m: float, north_m: float, *, start: dt.datetime = T0,
         speed: float = 1.25) -> list[dict[str, Any]]:
    """Fixes every 5 s along a straight leg from (lon0, lat0)."""
    n = int(np.hypot(east_m, north_m) / (speed * 5)) + 1
    f = np.linspace(0, 1, n)
    return [{"lon": lon0 + k * east_m / M_LON, "lat": lat0 + k * north_m / M_LAT,
             "t": (start + dt.timedelta(seconds=5 * i)).isoformat()} for i, k in enumerate(f)]


def post_track(client: TestClient, auth: Auth, worker: int, points: list[dict[str, Any]]) -> None:
    answer = client.post("/api/v1/tracks", headers=auth("dispatcher"),
                         json={"worker_id": worker, "points": points})
    assert answer.status_code == 201, answer.text


def test_grid_coverage_matches_the_exact_answer_and_counts_hotspots(
        client: TestClient, auth: Auth, city: dict[str, int], session: Session) -> None:
    # P-1 walks east through G1 into G2, then north; P-2 a short leg in G1's corner
    legs = walk(119.302, 26.084, 1500.0, 0.0)
    post_track(client, auth, city["P-1"], legs)
    t1 = dt.datetime.fromisoformat(legs[-1]["t"]) + dt.timedelta(seconds=5)
    north = walk(119.302 + 1500 / M_LON, 26.084, 0.0, 500.0, start=t1)
    post_track(client, auth, city["P-1"], north)
    post_track(client, auth, city["P-2"], walk(119.3005, 26.0805, 200.0, 200.0))
    # hotspots in G1: 5 incidents on P-1's line, 3 incidents 300 m north of it
    for lon, lat, n in ((119.305, 26.0841, 5), (119.305, 26.0841 + 300 / M_LAT, 3)):
        for i in range(n):
            session.execute(text("""INSERT INTO incident (source, category_code, geom, reported_at)
                                    VALUES ('app', 'C01', ST_SetSRID(ST_MakePoint(:x, :y), 4326),
                                            :t)"""),
                            {"x": lon, "y": lat, "t": T0 - dt.timedelta(days=i + 1)})
    session.commit()
    reader = auth("dispatcher")
    answer = client.get("/api/v1/coverage", params={"grid": "G1", **DAY}, headers=reader)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    g1 = box(119.30, 26.08, 119.31, 26.09)
    frame = MetricFrame(119.305, 26.085)
    lines = [frame.to_metric(LineString([(p["lon"], p["lat"]) for p in pts]))
             for pts in (legs + north, walk(119.3005, 26.0805, 200.0, 200.0))]
    exact = exact_coverage(frame.to_metric(g1), lines, 25.0)
    assert body["grid"] == "G1" and body["buffer_m"] == 25.0
    assert body["coverage"] == pytest.approx(exact, abs=0.01)
    assert body["area_m2"] == pytest.approx(frame.to_metric(g1).area, rel=0.01)
    assert body["workers"] == 2 and body["tracks"] >= 2
    hot = body["hotspots"]
    assert (hot["total"], hot["visited"], hot["coverage"]) == (2, 1, 0.5)
    assert [c["incidents"] for c in hot["cells"]] == [5, 3]
    assert [c["visited"] for c in hot["cells"]] == [True, False]
    wider = client.get("/api/v1/coverage", params={"grid": "G1", "distance_m": 60, **DAY},
                       headers=reader).json()
    assert wider["coverage"] > body["coverage"] and wider["buffer_m"] == 60
    assert wider["coverage"] == pytest.approx(
        exact_coverage(frame.to_metric(g1), lines, 60.0), abs=0.01)
    earlier = client.get("/api/v1/coverage", headers=reader, params={
        "grid": "G1", "from": "2026-11-08", "to": "2026-11-09"}).json()
    assert earlier["coverage"] == 0.0 and earlier["points"] == 0

    ranked = client.get("/api/v1/coverage", params={"level": "grid", **DAY}, headers=reader)
    assert ranked.status_code == 200, ranked.text
    items = ranked.json()["items"]
    assert [i["coverage"] for i in items] == sorted(i["coverage"] for i in items)
    assert items[0]["coverage"] < items[1]["coverage"]
    assert [i["rank"] for i in items] == [1, 2]
    by_code = {i["grid"]: i for i in items}
    assert by_code["G1"]["coverage"] == pytest.approx(body["coverage"], abs=0.002)
    assert "cells" not in by_code["G1"]["hotspots"]
    best = client.get("/api/v1/coverage", params={"level": "grid", "order": "best", **DAY},
                      headers=reader).json()["items"]
    assert [i["grid"] for i in best] == [i["grid"] for i in reversed(items)]
    community = client.get("/api/v1/coverage", params={"level": "community", **DAY},
                           headers=reader).json()["items"]
    assert community[0]["covered_m2"] == pytest.approx(
        sum(i["covered_m2"] for i in items), rel=0.01)
    only = client.get("/api/v1/coverage", params={"level": "grid", "parent": "C1", **DAY},
                      headers=reader).json()
    assert only["count"] == 2


def test_a_leg_across_a_small_grid_with_no_fix_near_it_counts(
        client: TestClient, auth: Auth, city: dict[str, int], session: Session) -> None:
    # a grid 100 m wide, and two fixes 100 m west and 100 m east of it, 110 s apart
    small = box(119.33, 26.08, 119.33 + 100 / M_LON, 26.081)
    write_versions(session, [GridRecord("G9", "小网格", "grid", MultiPolygon([small]))])
    session.commit()
    west, east = 119.33 - 100 / M_LON, 119.33 + 200 / M_LON
    post_track(client, auth, city["P-1"], [
        {"lon": west, "lat": 26.0805, "t": T0.isoformat()},
        {"lon": east, "lat": 26.0805, "t": (T0 + dt.timedelta(seconds=110)).isoformat()}])
    reader = auth("patrol")
    one = client.get("/api/v1/coverage", params={"grid": "G9", **DAY}, headers=reader).json()
    frame = MetricFrame(119.33, 26.0805)
    exact = exact_coverage(frame.to_metric(small),
                           [frame.to_metric(LineString([(west, 26.0805), (east, 26.0805)]))],
                           25.0)
    assert one["coverage"] == pytest.approx(exact, abs=0.01) and exact > 0.4
    assert (one["tracks"], one["workers"]) == (1, 1)
    ranked = client.get("/api/v1/coverage", params={"level": "grid", **DAY},
                        headers=reader).json()
    [item] = [i for i in ranked["items"] if i["grid"] == "G9"]
    assert item["coverage"] == pytest.approx(one["coverage"], abs=1e-6)


@pytest.mark.parametrize(("params", "status", "field"), [
    ({}, 422, "grid"),
    ({"grid": "G1", "level": "grid"}, 422, "grid"),
    ({"grid": "NOPE"}, 404, "grid"),
    ({"level": "planet"}, 422, "level"),
    ({"level": "district"}, 422, "level"),  # a level coverage does not rank: an empty list
    ({"level": "building"}, 422, "level"),
    ({"level": "grid", "parent": "NOPE"}, 404, "parent"),
    ({"grid": "G1", "from": "yesterday"}, 422, "from"),
    ({"grid": "G1", "from": "2026-11-09", "to": "2026-11-08"}, 422, "to"),
    ({"grid": "G1", "from": "2026-01-01", "to": "2026-11-08"}, 422, "from"),
    ({"grid": "G1", "from": "2199-01-01"}, 422, "from"),  # to is now: from is at fault
])
def test_bad_requests_name_the_field(client: TestClient, auth: Auth, city: dict[str, int],
                                     params: dict[str, str], status: int, field: str) -> None:
    answer = client.get("/api/v1/coverage", params=params, headers=auth("dispatcher"))
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field and detail["valid"]


@pytest.mark.parametrize("distance", ["inf", "nan", "600", "0"])
def test_the_cli_takes_the_apis_buffers_only(cli: Callable[..., Result], city: dict[str, int],
                                             distance: str) -> None:
    result = cli("coverage", "--grid", "G1", "--distance", distance)  # inf was a traceback
    assert result.exit_code == 2 and "distance" in result.output, result.output
    assert "Traceback" not in result.output


def test_worker_given_as_other_digits_is_a_code_not_a_500(
        client: TestClient, auth: Auth, city: dict[str, int]) -> None:
    for value in ("²", "9" * 40):  # str.isdigit() is true for both; int() failed or overflowed
        answer = client.get("/api/v1/tracks", params={"worker": value, "from": "2026-11-01",
                                                      "to": "2026-11-02"},
                            headers=auth("dispatcher"))
        assert answer.status_code == 404 and answer.json()["detail"]["field"] == "worker"


def test_coverage_needs_a_token(client: TestClient, city: dict[str, int]) -> None:
    assert client.get("/api/v1/coverage", params={"grid": "G1"}).status_code == 401


def test_planned_vs_actual_reports_the_missed_segment(
        client: TestClient, auth: Auth, city: dict[str, int], session: Session) -> None:
    route_line = [[119.302, 26.084], [119.302 + 1000 / M_LON, 26.084]]
    feature = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": route_line},
               "properties": {"name": "早巡", "team": "T1", "grid_codes": ["G1", "G2"],
                              "schedule": [{"days": [0, 2], "start": "09:00",
                                            "end": "12:00"}]}}
    made = client.post("/api/v1/routes", json=feature, headers=auth("planner"))
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    # P-1 walks the first 600 m during the window, 5 m off the line; P-2 walks the rest
    # but at 13:00, after the window; someone outside the team walks it all
    post_track(client, auth, city["P-1"], walk(119.302, 26.084 + 5 / M_LAT, 600.0, 0.0))
    post_track(client, auth, city["P-2"], walk(119.302 + 600 / M_LON, 26.084, 400.0, 0.0,
                                               start=T0.replace(hour=13)))
    stranger = create_worker(session, code="X-1", name="X", role="patrol").id
    session.commit()
    post_track(client, auth, stranger, walk(119.302, 26.084, 1000.0, 0.0))
    answer = client.get(f"/api/v1/routes/{rid}/actual", params={"date": "2026-11-09"},
                        headers=auth("dispatcher"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    length = body["length_m"]
    assert length == pytest.approx(1000, rel=0.01)
    assert body["share"] == pytest.approx((600 + 25) / length, abs=0.01)
    assert body["workers"] == ["P-1"]
    assert body["windows"] == [{"from": "2026-11-09T09:00:00+08:00",
                                "to": "2026-11-09T12:00:00+08:00"}]
    (missed,) = body["missed"]["features"]
    assert missed["properties"]["length_m"] == pytest.approx(375, abs=3)
    start = shapely.geometry.shape(missed["geometry"]).coords[0]
    assert start[0] == pytest.approx(119.302 + 625 / M_LON, abs=2 / M_LON)
    wide = client.get(f"/api/v1/routes/{rid}/actual", headers=auth("dispatcher"),
                      params={"date": "2026-11-09", "tolerance_m": 2}).json()
    assert wide["share"] < 0.05  # P-1 walked 5 m off the line
    for params, field in (({"date": "2026-11-10"}, "date"), ({"date": "9 Nov"}, "date")):
        bad = client.get(f"/api/v1/routes/{rid}/actual", params=params, headers=auth("dispatcher"))
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == field, bad.text
    gone = client.get("/api/v1/routes/999999/actual", params={"date": "2026-11-09"},
                      headers=auth("dispatcher"))
    assert gone.status_code == 404
