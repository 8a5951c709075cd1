"""geo.store.map_coverage: coverage per grid with tracks and hotspots, on a real PostGIS."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import shapely
from shapely.geometry import LineString, box, shape
from sqlalchemy.orm import Session

from geo.coverage import exact_coverage
from geo.errors import DomainError, InvalidInput, NotFound
from geo.routes.network import MetricFrame
from geo.store import coverage as store
from geo.store.map_coverage import coverage_map
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

START = dt.datetime(2026, 11, 9, tzinfo=TZ)
END = START + dt.timedelta(days=1)


def test_coverage_map_has_the_figures_the_tracks_and_the_unvisited_hotspots(
        session: Session, small_city: SmallCity) -> None:
    walk(session, small_city.workers["P-1"], 119.302, LAT0, 600.0, START.replace(hour=9))
    for lat, n in ((LAT0 + 1 / M_LAT, 5), (LAT0 + 300 / M_LAT, 3)):
        for i in range(n):
            incident(session, 119.305, lat, START - dt.timedelta(days=i + 1))
    session.commit()
    rules = store.Rules()
    got = coverage_map(session, level="grid", start=START, end=END, rules=rules)
    by_code = {f["id"]: f for f in got.grids["features"]}
    assert sorted(by_code) == ["G1", "G2"]
    g1 = by_code["G1"]["properties"]
    frame = MetricFrame(119.305, 26.085)
    line = frame.to_metric(LineString([(119.302, LAT0), (east(119.302, 600.0), LAT0)]))
    exact = exact_coverage(frame.to_metric(box(119.30, 26.08, 119.31, 26.09)), [line], 25.0)
    assert g1["coverage"] == pytest.approx(exact, abs=0.01)
    assert g1["covered_m2"] == pytest.approx(exact * g1["area_m2"], rel=0.02)
    assert by_code["G2"]["properties"]["coverage"] == 0.0
    assert (g1["rank"], by_code["G2"]["properties"]["rank"]) == (2, 1)
    assert (g1["hotspots_total"], g1["hotspots_visited"]) == (2, 1)
    assert shape(by_code["G1"]["geometry"]).equals(box(119.30, 26.08, 119.31, 26.09))
    # the same figures as the coverage API's ranking
    ranked = {i["grid"]: i for i in store.level_coverage(
        session, "grid", start=START, end=END, rules=rules)["items"]}
    assert g1["coverage"] == ranked["G1"]["coverage"]
    # hotspot cells: polygons with their grid; the one 300 m north was not visited
    cells = got.hotspots["features"]
    assert [(c["properties"]["incidents"], c["properties"]["visited"]) for c in cells] == \
        [(5, True), (3, False)]
    assert all(c["properties"]["grid"] == "G1" for c in cells)
    (missed,) = got.unvisited
    assert shape(missed["geometry"]).contains(shapely.Point(119.305, LAT0 + 300 / M_LAT))
    # the track line, simplified: a straight walk keeps its two ends only
    (track,) = got.tracks["features"]
    assert track["properties"]["worker_code"] == "P-1" and track["properties"]["points"] > 90
    coords = track["geometry"]["coordinates"]
    assert len(coords) == 2
    assert coords[0] == pytest.approx([119.302, LAT0], abs=1e-6)
    assert coords[-1] == pytest.approx([east(119.302, 600.0), LAT0], abs=1e-6)
    assert got.summary == {"grids": 2, "mean_coverage": round((g1["coverage"] + 0.0) / 2, 4),
                           "uncovered_grids": 1, "hotspots": 2, "hotspots_visited": 1,
                           "tracks": 1, "workers": 1}
    assert got.bounds == pytest.approx((119.30, 26.08, 119.32, 26.09))
    # a day without patrols: nothing covered, nothing visited, no lines
    before = coverage_map(session, level="grid", start=START - dt.timedelta(days=1),
                          end=START, rules=rules)
    assert [f["properties"]["coverage"] for f in before.grids["features"]] == [0.0, 0.0]
    assert before.tracks["features"] == [] and len(before.unvisited) == 2


def test_coverage_map_of_a_community_and_under_a_parent(session: Session,
                                                        small_city: SmallCity) -> None:
    walk(session, small_city.workers["P-1"], 119.302, LAT0, 600.0, START.replace(hour=9))
    session.commit()
    rules = store.Rules()
    community = coverage_map(session, level="community", start=START, end=END, rules=rules)
    (c1,) = community.grids["features"]
    assert c1["id"] == "C1" and 0 < c1["properties"]["coverage"] < 0.5
    under = coverage_map(session, level="grid", parent="C1", start=START, end=END, rules=rules)
    assert [f["id"] for f in under.grids["features"]] == ["G1", "G2"]


@pytest.mark.parametrize(("kwargs", "error", "field"), [
    ({"level": "planet"}, InvalidInput, "level"),
    ({"level": "street"}, NotFound, "level"),
    ({"level": "grid", "parent": "NOPE"}, NotFound, "parent"),
])
def test_bad_levels_and_parents_are_named(session: Session, small_city: SmallCity,
                                          kwargs: dict[str, Any], error: type[Exception],
                                          field: str) -> None:
    with pytest.raises(DomainError) as caught:
        coverage_map(session, start=START, end=END, rules=store.Rules(), **kwargs)
    assert isinstance(caught.value, error)
    assert caught.value.field == field and caught.value.valid


def test_demo_city_coverage_map(demo: Session) -> None:
    day = DEMO_AT.astimezone(TZ).replace(hour=0) - dt.timedelta(days=1)
    got = coverage_map(demo, level="grid", start=day, end=day + dt.timedelta(days=1),
                       rules=store.Rules())
    assert len(got.grids["features"]) == 324
    shares = [f["properties"]["coverage"] for f in got.grids["features"]]
    assert any(s > 0.2 for s in shares) and any(s == 0 for s in shares)
    visited = [f["properties"]["visited"] for f in got.hotspots["features"]]
    assert any(visited) and not all(visited)
    assert len(got.tracks["features"]) > 5
    assert sum(f["properties"]["hotspots_visited"] for f in got.grids["features"]) == \
        sum(visited)
