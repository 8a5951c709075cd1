"""Coverage metrics: the raster answer against the exact shapely one, hotspots, routes,
and real GeoLife tracks over grids made in Beijing (real PostGIS)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon, box
from sqlalchemy.orm import Session

from data.track_io import read_tracks
from geo.coverage import (
    Window,
    area_coverage,
    exact_coverage,
    hotspot_visits,
    polygon_mask,
    route_walked,
    sample_lines,
    track_lines,
)
from geo.routes.network import MetricFrame
from geo.store import coverage as store
from geo.store.grids import GridRecord, write_versions
from geo.store.roster import create_worker
from geo.store.track_queries import load_points
from geo.store.tracks import save_track
from geo.tracks.clean import Limits

#: Raster vs exact: largest accepted difference, percentage points (2 m cells, 25 m).
TOLERANCE_PP = 1.0

SHAPES = {
    "pentagon with a hole": Polygon([(0, 0), (400, 0), (420, 300), (150, 380), (-20, 250)])
    .difference(box(150, 150, 220, 220)),
    "two parts": MultiPolygon([box(0, 0, 200, 150), box(260, 40, 420, 300)]),
    "thin strip": box(0, 100, 500, 130),
}


def _walks(seed: int, n_workers: int = 5, n: int = 500) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    xs, ys, starts = [], [], []
    for _ in range(n_workers):
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3, n))
        x = rng.uniform(-50, 450) + np.cumsum(np.cos(heading) * 6.0)
        y = rng.uniform(-50, 400) + np.cumsum(np.sin(heading) * 6.0)
        s = np.zeros(n, dtype=bool)
        s[0] = True
        s[rng.integers(1, n, 3)] = True  # gaps: no line across them
        xs.append(x)
        ys.append(y)
        starts.append(s)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(starts)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("distance", [10.0, 25.0, 60.0])
def test_raster_matches_the_exact_buffer_union(name: str, distance: float) -> None:
    poly = SHAPES[name]
    x, y, starts = _walks(seed=len(name) + int(distance))
    exact = exact_coverage(poly, track_lines(x, y, starts), distance)
    samples = sample_lines(x, y, starts, 2.0, cell_m=2.0)
    (ours,) = area_coverage([poly], samples, distance_m=distance, cell_m=2.0)
    assert 0.05 < exact < 0.999  # a case where the answer is not trivial
    assert abs(ours.share - exact) * 100 < TOLERANCE_PP, (ours.share, exact)
    assert ours.cells * 4.0 == pytest.approx(poly.area, rel=0.02)


def test_gaps_are_not_bridged_and_lone_fixes_count() -> None:
    poly = box(0, 0, 300, 100)
    x = np.array([10.0, 290.0, 150.0])
    y = np.array([50.0, 50.0, 50.0])
    joined = sample_lines(x[:2], y[:2], [True, False], 2.0, cell_m=2.0)
    split = sample_lines(x, y, [True, True, True], 2.0, cell_m=2.0)
    (a,) = area_coverage([poly], joined, distance_m=25, cell_m=2.0)
    (b,) = area_coverage([poly], split, distance_m=25, cell_m=2.0)
    # worst case of the raster: the buffer's edges run exactly through cell centres, so
    # the error is up to half a cell along the 2 x 280 m of edge
    bound = 1.0 * 2 * 280 / poly.area
    assert a.share == pytest.approx(exact_coverage(poly, [LineString([(10, 50), (290, 50)])],
                                                   25), abs=bound)
    disks = [shapely.Point(p).buffer(25, quad_segs=64) for p in zip(x, y, strict=True)]
    assert b.share == pytest.approx(shapely.union_all(disks).intersection(poly).area
                                    / poly.area, abs=0.01)
    (none,) = area_coverage([poly], sample_lines([], [], [], 2.0), distance_m=25, cell_m=2.0)
    assert none.share == 0.0 and none.cells > 0


def test_polygon_mask_fills_holes_and_parts_even_odd() -> None:
    window = Window.around((0, 0, 100, 100), 0.0, 1.0)
    ring = box(0, 0, 100, 100).difference(box(40, 40, 60, 60))
    mask = polygon_mask(ring, window)
    assert mask.sum() == 100 * 100 - 20 * 20
    assert not mask[50, 50] and mask[10, 10]


def test_hotspot_visits_use_the_reach() -> None:
    cell = box(0, 0, 60, 60)
    near = sample_lines([-20, -20], [0, 100], [True, False], 1.0)
    far = sample_lines([-30, -30], [0, 100], [True, False], 1.0)
    assert hotspot_visits([cell], near, 25.0) == [True]
    assert hotspot_visits([cell], far, 25.0) == [False]
    assert hotspot_visits([cell], far, 31.0) == [True]


def test_route_walked_reports_the_missed_piece() -> None:
    route = LineString([(0, 0), (1000, 0)])
    track = LineString([(0, 5), (600, 5)])
    walked = route_walked(route, [track], 25.0)
    assert walked.share == pytest.approx(625 / 1000, abs=0.002)
    assert len(walked.missed) == 1
    assert walked.missed[0].length == pytest.approx(375, abs=1)
    assert route_walked(route, [], 25.0).share == 0.0


def test_schedule_windows_cross_midnight_and_empty_is_all_day() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    monday = dt.date(2026, 11, 9)
    night = [{"days": [0], "start": "22:00", "end": "02:00"}]
    ((a, b),) = store.schedule_windows(night, monday, tz)
    assert (a.hour, b - a) == (22, dt.timedelta(hours=4))
    assert store.schedule_windows(night, monday + dt.timedelta(days=1), tz) == []
    ((c, d),) = store.schedule_windows([], monday, tz)
    assert d - c == dt.timedelta(days=1) and c.tzinfo == tz


# --------------------------------------------------------------------------- GeoLife on PostGIS

def _beijing_grids(lon0: float, lat0: float) -> list[GridRecord]:
    """A 3 x 3 block of ~450 m grids centred on a point, under one community."""
    step = 0.005
    grids = []
    for i in range(3):
        for j in range(3):
            x, y = lon0 + (i - 1.5) * step, lat0 + (j - 1.5) * step
            grids.append(GridRecord(f"BJ{i}{j}", f"北京{i}{j}", "grid",
                                    MultiPolygon([box(x, y, x + step, y + step)]),
                                    parent_code="BJC"))
    community = MultiPolygon([box(lon0 - 1.5 * step, lat0 - 1.5 * step, lon0 + 1.5 * step,
                                  lat0 + 1.5 * step)])
    return [GridRecord("BJC", "北京社区", "community", community), *grids]


def test_geolife_tracks_cover_beijing_grids_like_the_exact_answer(
        session: Session, shared_data: Path) -> None:
    folder = shared_data / "gps" / "geolife" / "001" / "Trajectory"
    paths = sorted(folder.glob("*.plt"))
    track, _ = read_tracks(paths)
    worker = create_worker(session, code="GL-001", name="GeoLife 001", role="patrol").id
    saved = save_track(session, worker_id=worker, track=track, limits=Limits())
    assert saved.cleaning.kept > 1000
    t0, t1 = saved.start, saved.end
    assert t0 is not None and t1 is not None
    lon0, lat0 = float(np.median(track.lon)), float(np.median(track.lat))
    write_versions(session, _beijing_grids(lon0, lat0))
    session.flush()
    start, end = t0 - dt.timedelta(minutes=1), t1 + dt.timedelta(minutes=1)
    rules = store.Rules()
    pts = load_points(session, start=start, end=end)
    answers = store.level_coverage(session, "grid", start=start, end=end, rules=rules)
    assert answers["count"] == 9 and 0 < answers["points"] <= saved.cleaning.kept
    by_code = {i["grid"]: i for i in answers["items"]}
    covered = 0
    for area in store.areas(session, level="grid"):
        geom = shapely.from_wkb(area.wkb)
        frame = MetricFrame(*geom.centroid.coords[0])
        x, y = frame.xy(pts.lon, pts.lat)
        exact = exact_coverage(frame.to_metric(geom), track_lines(x, y, pts.seg_start), 25.0)
        one = store.grid_coverage(session, area.code, start=start, end=end, rules=rules)
        assert abs(one["coverage"] - exact) * 100 < TOLERANCE_PP, (area.code, one, exact)
        assert by_code[area.code]["coverage"] == pytest.approx(one["coverage"], abs=0.002)
        assert one["covered_m2"] == pytest.approx(one["coverage"] * one["area_m2"],
                                                  abs=one["area_m2"] * 1e-4)
        covered += exact > 0.01
    assert covered >= 3  # the walk really crosses several grids
    ranks = [i["coverage"] for i in answers["items"]]
    assert ranks == sorted(ranks)
    community = store.level_coverage(session, "community", start=start, end=end, rules=rules)
    (item,) = community["items"]
    grids_m2 = sum(i["covered_m2"] for i in answers["items"])
    assert item["covered_m2"] == pytest.approx(grids_m2, rel=0.01)
    before = store.grid_coverage(session, "BJ11", start=start - dt.timedelta(days=2),
                                 end=start, rules=rules)
    assert before["coverage"] == 0.0 and before["points"] == 0
