"""geo.topology on synthetic squares (exact areas in a metric CRS) and on real Chicago beats."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from geo import topology as t

UTM = "EPSG:32650"  # metres: areas below are exact
X0, Y0 = 500_000.0, 2_900_000.0


def square(col: float, row: float, size: float = 100.0) -> Polygon:
    """A square of ``size`` metres whose lower-left corner is (col, row) * 100 m."""
    return box(X0 + col * 100, Y0 + row * 100, X0 + col * 100 + size, Y0 + row * 100 + size)


def meter_for(items: Sequence[t.Item]) -> t.AreaMeter:
    return t.AreaMeter.for_geometries([g for _, g in items], UTM)


def test_overlap_area_is_exact() -> None:
    items = [("a", square(0, 0)), ("b", square(0.6, 0)), ("c", square(0, 1))]  # c touches a
    found = t.find_overlaps(items, meter_for(items), 1.0)
    assert [(o.a, o.b) for o in found] == [("a", "b")]
    assert found[0].area_m2 == pytest.approx(40 * 100, abs=1e-6)
    b_area = square(0.6, 0).intersection(square(0, 1)).area
    assert b_area == 0  # b and c touch at a corner region of zero area
    x, y = found[0].point
    assert square(0, 0).intersection(square(0.6, 0)).covers(shapely.Point(x, y))


def test_overlap_tolerance_is_strict_and_pairs_are_ordered() -> None:
    # 0.5 m x 100 m = 50 m² of overlap; listed with a < b whatever the input order
    items = [("z", square(0.995, 0)), ("m", square(0, 0))]
    meter = meter_for(items)
    assert t.find_overlaps(items, meter, 50.0) == []
    found = t.find_overlaps(items, meter, 49.0)
    assert [(o.a, o.b) for o in found] == [("m", "z")]
    assert found[0].area_m2 == pytest.approx(50.0, abs=1e-6)


def test_gap_is_the_exact_hole_of_the_union() -> None:
    ring = [(f"g{c}{r}", square(c, r)) for c in range(3) for r in range(3) if (c, r) != (1, 1)]
    meter = meter_for(ring)
    gaps = t.union_gaps(ring, meter, 1.0)
    assert len(gaps) == 1 and gaps[0].parent is None
    assert gaps[0].area_m2 == pytest.approx(100 * 100, abs=1e-6)
    assert square(1, 1).covers(shapely.Point(gaps[0].point))
    assert t.union_gaps(ring, meter, 100 * 100) == []
    full = [*ring, ("g11", square(1, 1))]
    assert t.union_gaps(full, meter, 0.0) == []


def test_gaps_bounded_only_by_fixed_polygons_are_not_reported() -> None:
    fixed = [(f"old{c}{r}", square(c, r)) for c in range(3) for r in range(3) if (c, r) != (1, 1)]
    mine = [("new", square(5, 5))]
    assert t.union_gaps(mine, meter_for(fixed + mine), 1.0, fixed=fixed) == []
    closing = [("new", square(3, 0))]
    assert t.union_gaps(closing, meter_for(fixed + closing), 1.0, fixed=fixed) == []
    inner = [("new", square(1.5, 1.5, 10))]  # inside the old hole: the hole now touches it
    gaps = t.union_gaps(inner, meter_for(fixed + inner), 1.0, fixed=fixed)
    assert [round(g.area_m2, 6) for g in gaps] == [100 * 100 - 10 * 10]


def test_resolve_gives_each_overlap_to_the_smaller_code() -> None:
    items = [("c", square(0.5, 0.5)), ("a", square(0, 0)), ("b", square(0.5, 0))]
    meter = meter_for(items)
    resolved, transfers = t.resolve_overlaps(items, meter, 1.0)
    out = dict(resolved)
    assert [c for c, _ in resolved] == ["c", "a", "b"]  # input order kept
    assert out["a"].equals(square(0, 0))
    assert out["b"].equals(square(0.5, 0).difference(square(0, 0)))
    assert out["c"].equals(square(0.5, 0.5).difference(square(0, 0).union(square(0.5, 0))))
    assert all(tr.given_to == min(tr.a, tr.b) for tr in transfers)
    assert {(tr.a, tr.b) for tr in transfers} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert t.find_overlaps(resolved, meter, 1e-6) == []
    union_before = shapely.union_all([g for _, g in items]).area
    assert shapely.union_all(list(out.values())).area == pytest.approx(union_before)


def test_resolve_is_order_independent() -> None:
    items = [(f"k{i}", square(i * 0.7, (i % 3) * 0.4)) for i in range(5)]
    meter = meter_for(items)
    reference, ref_transfers = t.resolve_overlaps(items, meter, 1.0)
    ref = dict(reference)
    for perm in itertools.permutations(items):
        out, transfers = t.resolve_overlaps(list(perm), meter, 1.0)
        assert sorted(transfers, key=lambda x: (x.a, x.b)) == \
            sorted(ref_transfers, key=lambda x: (x.a, x.b))
        for code, geom in out:
            assert shapely.equals_exact(shapely.normalize(geom), shapely.normalize(ref[code]), 0)


def test_fixed_polygons_always_keep_their_overlap() -> None:
    fixed = [("0001", square(0, 0))]
    items = [("9999", square(0.5, 0))]
    meter = meter_for(fixed + items)
    found = t.find_overlaps(items, meter, 1.0, fixed=fixed)
    assert [(o.a, o.b, o.existing) for o in found] == [("9999", "0001", True)]
    resolved, transfers = t.resolve_overlaps(items, meter, 1.0, fixed=fixed)
    assert transfers[0].given_to == "0001"
    assert dict(resolved)["9999"].equals(box(X0 + 100, Y0, X0 + 150, Y0 + 100))


def test_make_valid_repairs_a_bow_tie() -> None:
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    items: list[t.Item] = [("tie", bow_tie), ("ok", square(3, 3)),
                           ("line", LineString([(X0, Y0), (X0 + 1, Y0)]))]
    invalid = t.invalid_geometries(items)
    assert [(i.code, i.reason.split("[")[0]) for i in invalid] == [
        ("tie", "Self-intersection"), ("line", "not polygonal: contains LineString")]
    meter = meter_for(items)
    repaired, repairs = t.repair(items, meter)
    fixed = dict(repaired)["tie"]
    assert isinstance(fixed, MultiPolygon) and fixed.is_valid and len(fixed.geoms) == 2
    assert fixed.area == pytest.approx(2 * 50 * 100 / 2)  # two triangles of 50 x 100 / 2
    assert [(r.code, r.area_m2) for r in repairs] == [("tie", pytest.approx(fixed.area))]
    assert dict(repaired)["ok"] is items[1][1]
    assert [i.code for i in t.invalid_geometries(repaired)] == ["line"]


def test_parent_coverage_finds_gaps_and_spills() -> None:
    parent = box(X0, Y0, X0 + 200, Y0 + 100)
    children = [("c1", "P", square(0, 0)), ("c2", "P", square(1, 0.1)),
                ("orphan", "Q", square(9, 9))]
    meter = t.AreaMeter.for_geometries([parent], UTM)
    gaps, spills = t.parent_coverage(children, {"P": parent}, meter, 1.0)
    assert [(g.parent, round(g.area_m2, 6)) for g in gaps] == [("P", 100 * 10)]
    assert [(s.code, s.parent, round(s.area_m2, 6)) for s in spills] == [("c2", "P", 100 * 10)]


def test_lon_lat_areas_match_geodesic_areas() -> None:
    # a 0.01° square in Fuzhou: projected area equals the geodesic area of the same ring
    cell = box(119.30, 26.08, 119.31, 26.09)
    meter = t.AreaMeter.for_geometries([cell])
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.segmentize(cell, 1e-4))[0])
    assert meter.area(cell) == pytest.approx(geodesic, rel=1e-5)
    # areas add up: a polygon is its parts, even with long edges that are cut
    half = box(119.30, 26.08, 119.305, 26.09)
    assert meter.area(cell) == pytest.approx(meter.area(half) + meter.area(cell - half), rel=1e-9)


def test_chicago_bad_topology_has_no_overlap_after_resolving(shared_data: Path) -> None:
    frame = gpd.read_file(shared_data / "chicago" / "police_beats_simplified_bad_topology.geojson")
    merged = frame.dissolve("BEAT_NUM").reset_index()
    items = list(zip(merged["BEAT_NUM"], merged.geometry, strict=True))
    random.Random(7).shuffle(items)
    meter = t.AreaMeter.for_geometries(merged.geometry)
    found = t.find_overlaps(items, meter, 1.0)
    assert len(found) > 300  # "356 overlapping pairs" says the data's README
    resolved, transfers = t.resolve_overlaps(items, meter, 1.0)
    assert len(transfers) == len(found)
    assert t.find_overlaps(resolved, meter, 1.0) == []
    assert t.invalid_geometries(resolved) == []
    before = meter.area(shapely.union_all([g for _, g in items]))
    after = meter.area(shapely.union_all([g for _, g in resolved]))
    assert after == pytest.approx(before, rel=1e-6)
    moved = sum(meter.areas([g for _, g in items])) - sum(meter.areas([g for _, g in resolved]))
    assert moved <= sum(tr.area_m2 for tr in transfers) + 1.0


rects = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 10),
                           st.integers(1, 10)), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(rects)
def test_resolving_random_rectangles_leaves_no_overlap(spec: list[tuple[int, ...]]) -> None:
    items: list[t.Item] = [(f"r{i:02d}", box(X0 + x * 10, Y0 + y * 10, X0 + (x + w) * 10,
                                             Y0 + (y + h) * 10))
                           for i, (x, y, w, h) in enumerate(spec)]
    meter = meter_for(items)
    resolved, _ = t.resolve_overlaps(items, meter, 1.0)
    assert t.find_overlaps([(c, g) for c, g in resolved if not g.is_empty], meter, 1.0) == []
    union = shapely.union_all([g for _, g in items]).area
    assert shapely.union_all([g for _, g in resolved]).area == pytest.approx(union)


# A grid of the demo city redrawn by a plan (350102006003002 v2): GEOS 3.14's segmentize
# returns it empty at 0.0005 degrees and broken at 0.00025 (libgeos/geos#1294), so it
# measured 0 m² and an import overlapping it by 74,000 m² reported no overlap.
REDRAWN = Polygon([
    (119.2905739, 26.0768763), (119.2900044, 26.0773297), (119.28869, 26.0783761),
    (119.2891964, 26.0790067), (119.29077293374553, 26.080969652478867),
    (119.29077991585683, 26.08091955379419), (119.29080284391958, 26.080824382454285),
    (119.29083496767694, 26.08073190897585), (119.29184116767695, 26.078236708975847),
    (119.29188475518497, 26.078142919770677), (119.2919377965498, 26.078054134076563),
    (119.29198478852564, 26.077991279295063), (119.2927686, 26.0786107)])


@pytest.mark.parametrize("step", [0.0005, 0.00025, 0.0001])
def test_a_polygon_segmentize_loses_is_measured(step: float) -> None:
    dense = t.densify(REDRAWN, step)
    assert dense.area == pytest.approx(REDRAWN.area, rel=1e-9)
    edges = np.diff(np.asarray(dense.exterior.coords), axis=0)
    assert np.hypot(edges[:, 0], edges[:, 1]).max() <= step * (1 + 1e-9)
    assert t.AreaMeter.for_geometries([REDRAWN]).area(REDRAWN) == pytest.approx(73_949,
                                                                                rel=1e-3)


def test_an_overlap_with_that_polygon_is_found() -> None:
    items = [("NEW", REDRAWN)]
    meter = t.AreaMeter.for_geometries([REDRAWN])
    [found] = t.find_overlaps(items, meter, 1.0, fixed=[("OLD", REDRAWN)])
    assert (found.a, found.b) == ("NEW", "OLD")
    assert found.area_m2 == pytest.approx(73_949, rel=1e-3)
