"""geo.store.map_routes: a team's routes, grids, incidents and tracks for a day (real PostGIS)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import shapely
from pyproj import Geod
from shapely.geometry import LineString, Point, shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.settings import Settings
from geo.store.map_routes import team_day
from maps.pages import render
from tests.maps.pages.conftest import (
    DEMO_AT,
    LAT0,
    M_LAT,
    TZ,
    SmallCity,
    east,
    incident,
    walk,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2026, 11, 9)
AT = dt.datetime(2026, 11, 9, 9, 5, tzinfo=TZ)
GEOD = Geod(ellps="WGS84")


def _to_line(lon: float, lat: float) -> float:
    """Geodesic metres from a point to the route line R1 (its nearest vertex or foot)."""
    end = east(119.302, 1000.0)
    foot = min(max(lon, 119.302), end)
    return float(GEOD.inv(lon, lat, foot, LAT0)[2])


def test_team_day_draws_routes_grids_incidents_and_tracks(session: Session,
                                                          small_city: SmallCity) -> None:
    workers = small_city.workers
    walk(session, workers["P-1"], 119.302, LAT0, 600.0, AT)
    walk(session, workers["P-2"], 119.302, LAT0, 1000.0, AT + dt.timedelta(days=1))
    made = {
        "A": incident(session, 119.306, LAT0 + 50 / M_LAT, AT.replace(hour=8)),
        "far": incident(session, 119.306, LAT0 + 150 / M_LAT, AT.replace(hour=8)),
        "old": incident(session, 119.306, LAT0 + 50 / M_LAT, AT - dt.timedelta(days=10)),
        "dup": incident(session, 119.306, LAT0 + 50 / M_LAT, AT, status="duplicate"),
        "E": incident(session, 119.304, LAT0 - 50 / M_LAT, AT - dt.timedelta(days=3),
                      due_at=AT - dt.timedelta(days=2)),
        "F": incident(session, east(119.302, 1030.0), LAT0, AT.replace(hour=20), grid="G2"),
        "next day": incident(session, 119.306, LAT0, AT + dt.timedelta(hours=16)),
    }
    session.commit()
    got = team_day(session, "T1", MONDAY, tz=SHANGHAI, now=AT)
    assert (got.team.code, got.team.grid_code, got.team.grid_name) == ("T1", "C1", "社区")
    assert [m["code"] for m in got.team.members] == ["P-1", "P-2"]
    (route,) = got.routes["features"]
    props = route["properties"]
    assert (props["code"], props["scheduled"], props["windows"]) == ("R1", True, "09:00-12:00")
    assert props["length_m"] == pytest.approx(1000, rel=0.01)
    assert props["walked_share"] == pytest.approx(625 / props["length_m"], abs=0.01)
    assert props["workers"] == ["P-1"]
    roles = {f["id"]: f["properties"]["role"] for f in got.grids["features"]}
    assert roles == {"C1": "claimed", "G1": "crossed", "G2": "crossed"}
    # incidents within 100 m of the route, reported in the 7 days before the day's end
    ids = [f["id"] for f in got.incidents["features"]]
    assert ids == [made["F"], made["A"], made["E"]] and got.incidents_total == 3
    for feature in got.incidents["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert feature["properties"]["distance_m"] == pytest.approx(_to_line(lon, lat), abs=0.5)
    overdue = {f["id"]: f["properties"]["overdue"] for f in got.incidents["features"]}
    assert overdue == {made["F"]: False, made["A"]: False, made["E"]: True}
    assert got.incidents["features"][0]["properties"]["category_zh"] == "测一"
    (track,) = got.tracks["features"]
    assert track["properties"]["worker_code"] == "P-1"
    assert shape(track["geometry"]).hausdorff_distance(
        LineString([(119.302, LAT0), (east(119.302, 600.0), LAT0)])) < 1e-6
    # a wider reach takes the far one too; a limit keeps the newest, counting them all
    wide = team_day(session, "T1", MONDAY, tz=SHANGHAI, near_m=200.0, now=AT)
    assert made["far"] in [f["id"] for f in wide.incidents["features"]]
    few = team_day(session, str(small_city.team_id), MONDAY, tz=SHANGHAI, limit=2, now=AT)
    assert [f["id"] for f in few.incidents["features"]] == [made["F"], made["A"]]
    assert few.incidents_total == 3


def test_unscheduled_day_and_unknown_team(session: Session, small_city: SmallCity) -> None:
    tuesday = team_day(session, "T1", MONDAY + dt.timedelta(days=1), tz=SHANGHAI)
    props = tuesday.routes["features"][0]["properties"]
    assert (props["scheduled"], props["walked_share"], props["windows"]) == (False, None, "")
    with pytest.raises(NotFound) as caught:
        team_day(session, "NOPE", MONDAY, tz=SHANGHAI)
    assert (caught.value.field, caught.value.value) == ("team", "NOPE")
    assert caught.value.valid


def test_a_team_without_routes_still_has_its_grid(session: Session,
                                                  small_city: SmallCity) -> None:
    session.execute(text("INSERT INTO team (code, name, kind, grid_code) "
                         "VALUES ('T2', '志愿队', 'volunteer', 'G2')"))
    session.commit()
    got = team_day(session, "T2", MONDAY, tz=SHANGHAI)
    assert got.routes["features"] == [] and got.incidents["features"] == []
    assert [f["id"] for f in got.grids["features"]] == ["G2"]
    page = render(session, Settings(), "routes", {"team": "T2", "date": MONDAY.isoformat()},
                  lang="en")
    assert "This team has no routes" in page and "No incident along the routes" in page


def test_demo_patrol_team_day(demo: Session) -> None:
    team = demo.execute(text("SELECT t.code FROM team t JOIN patrol_route r ON r.team_id = t.id "
                             "ORDER BY t.code LIMIT 1")).scalar_one()
    day = (DEMO_AT.astimezone(SHANGHAI) - dt.timedelta(days=1)).date()
    got = team_day(demo, team, day, tz=SHANGHAI, days=90.0, now=DEMO_AT)
    (route,) = got.routes["features"]
    assert route["properties"]["scheduled"] and route["properties"]["walked_share"] is not None
    assert len(got.tracks["features"]) > 0
    assert len(got.grids["features"]) > 3 and got.incidents["features"]
    line = shapely.geometry.shape(route["geometry"])
    for feature in got.incidents["features"][:20]:
        point = Point(feature["geometry"]["coordinates"])
        # within 100 m of the route (a degree is over 100 km here)
        assert line.distance(point) < 100 / 100_000
