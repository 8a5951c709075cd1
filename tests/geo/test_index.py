"""The assignment index answers exactly what PostGIS ``ST_Covers`` + ``choose_chain`` answer."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.load import load_demo
from geo.errors import InvalidInput, NotFound
from geo.index import AssignmentIndex, IndexedGrid
from geo.store import db, grid_queries
from geo.store.grids import GridRecord, write_versions
from tests.geo.index_fixtures import (
    boundary_probes,
    chicago_records,
    mismatches,
    postgis_finest,
    postgis_finest_many,
    scratch_db,
    segments,
    write_and_commit,
)


@pytest.fixture(scope="module")
def demo_url(template_url: str) -> Iterator[str]:
    """The demo city (10 streets, 69 communities, 324 grids), committed."""
    with scratch_db(template_url, "patrolgrid_test_index_demo") as url:
        with db.session_scope(url) as s:
            load_demo(s)
        yield url


@pytest.fixture(scope="module")
def chicago_url(template_url: str, shared_data: Path) -> Iterator[str]:
    """Chicago police districts with their beats beneath them, committed."""
    with scratch_db(template_url, "patrolgrid_test_index_chicago") as url:
        write_and_commit(url, chicago_records(shared_data))
        yield url


@pytest.fixture(scope="module")
def demo_index(demo_url: str) -> AssignmentIndex:
    with db.session_scope(demo_url) as s:
        return AssignmentIndex.load(s)


@pytest.fixture(scope="module")
def chicago_index(chicago_url: str) -> AssignmentIndex:
    with db.session_scope(chicago_url) as s:
        return AssignmentIndex.load(s)


@pytest.fixture(scope="module")
def demo_segments(demo_url: str) -> np.ndarray:
    with db.session_scope(demo_url) as s:
        return segments(s)


@pytest.fixture(scope="module")
def chicago_segments(chicago_url: str) -> np.ndarray:
    with db.session_scope(chicago_url) as s:
        return segments(s)


def _extent(segs: np.ndarray, pad: float) -> tuple[float, float, float, float]:
    xs, ys = segs[:, [0, 2]], segs[:, [1, 3]]
    return xs.min() - pad, ys.min() - pad, xs.max() + pad, ys.max() + pad


# ----------------------------------------------------------------------- bulk exactness

@pytest.mark.parametrize("city", ["demo", "chicago"])
def test_random_points_agree_with_postgis(city: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{city}_url")
    index: AssignmentIndex = request.getfixturevalue(f"{city}_index")
    minx, miny, maxx, maxy = _extent(request.getfixturevalue(f"{city}_segments"), 0.003)
    rng = np.random.default_rng(7)
    xs, ys = rng.uniform(minx, maxx, 30_000), rng.uniform(miny, maxy, 30_000)
    with db.session_scope(url) as s:
        want = postgis_finest_many(s, xs, ys)
    got = list(index.locate_many(xs, ys))
    assert got == want, mismatches(got, want, xs, ys)
    assert sum(w is None for w in want) > 100  # some points are outside every grid
    assert len({w for w in want if w}) > 0.8 * len(index)  # and most grids are hit


@pytest.mark.parametrize("city", ["demo", "chicago"])
def test_boundary_points_agree_with_postgis(city: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{city}_url")
    index: AssignmentIndex = request.getfixturevalue(f"{city}_index")
    segs = request.getfixturevalue(f"{city}_segments")
    xs, ys = boundary_probes(segs, np.random.default_rng(11), 6_000)
    with db.session_scope(url) as s:
        want = postgis_finest_many(s, xs, ys)
    got = list(index.locate_many(xs, ys))
    assert got == want, mismatches(got, want, xs, ys)


def test_every_demo_vertex_agrees_with_postgis(demo_url: str, demo_index: AssignmentIndex,
                                               demo_segments: np.ndarray) -> None:
    xs, ys = demo_segments[:, 0].copy(), demo_segments[:, 1].copy()
    with db.session_scope(demo_url) as s:
        want = postgis_finest_many(s, xs, ys)
    got = list(demo_index.locate_many(xs, ys))
    assert got == want, mismatches(got, want, xs, ys)
    assert all(w is not None for w in want)  # a vertex is covered by its own grid


def test_chicago_crime_points_agree_with_postgis(chicago_url: str, chicago_index: AssignmentIndex,
                                                 shared_data: Path) -> None:
    """Real incidents geocoded onto street centre lines, many within 0.1 m of a beat edge."""
    with (shared_data / "chicago" / "crimes_2025_sample.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["longitude"] and r["latitude"]]
    xs = np.array([float(r["longitude"]) for r in rows])
    ys = np.array([float(r["latitude"]) for r in rows])
    with db.session_scope(chicago_url) as s:
        want = postgis_finest_many(s, xs, ys)
    got = list(chicago_index.locate_many(xs, ys))
    assert len(rows) == 982
    assert got == want, mismatches(got, want, xs, ys)
    recorded = sum(g == r["beat"] for g, r in zip(got, rows, strict=True))
    assert recorded >= 0.89 * len(rows)


# ----------------------------------------------------------------------- property tests

def _probe(draw: Any, segs: np.ndarray) -> tuple[float, float]:
    kind = draw(st.sampled_from(["random", "vertex", "edge", "nudged"]))
    if kind == "random":
        minx, miny, maxx, maxy = _extent(segs, 0.001)
        return draw(st.floats(minx, maxx)), draw(st.floats(miny, maxy))
    x1, y1, x2, y2 = (float(v) for v in segs[draw(st.integers(0, len(segs) - 1))])
    if kind == "vertex":
        return x1, y1
    t = draw(st.floats(0.0, 1.0))
    x, y = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
    if kind == "nudged":
        for _ in range(draw(st.integers(-3, 3)) % 4):
            x = math.nextafter(x, draw(st.sampled_from([-math.inf, math.inf])))
        for _ in range(draw(st.integers(0, 3))):
            y = math.nextafter(y, draw(st.sampled_from([-math.inf, math.inf])))
    return x, y


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_property_demo(data: st.DataObject, demo_url: str, demo_index: AssignmentIndex,
                       demo_segments: np.ndarray) -> None:
    x, y = _probe(data.draw, demo_segments)
    with db.session_scope(demo_url) as s:
        assert demo_index.locate(x, y) == postgis_finest(s, x, y), (x, y)


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_property_chicago(data: st.DataObject, chicago_url: str,
                          chicago_index: AssignmentIndex, chicago_segments: np.ndarray) -> None:
    x, y = _probe(data.draw, chicago_segments)
    with db.session_scope(chicago_url) as s:
        assert chicago_index.locate(x, y) == postgis_finest(s, x, y), (x, y)


# ----------------------------------------------------------------------- awkward shapes

def _awkward() -> list[GridRecord]:
    ring = Polygon([(0, 0), (0.01, 0), (0.01, 0.01), (0, 0.01)],
                   [[(0.002, 0.002), (0.004, 0.002), (0.004, 0.004), (0.002, 0.004)]])
    bowtie = Polygon([(0.02, 0), (0.03, 0.01), (0.03, 0), (0.02, 0.01)])  # self-crossing
    slanted = Polygon([(0.005, 0.0), (0.0100003, 0.0033331), (0.005, 0.01)])
    return [
        GridRecord(code="S", name="street", level="street", geom=box(-0.001, -0.001, 0.04, 0.02)),
        GridRecord(code="C", name="community", level="community", parent_code="S",
                   geom=box(0, 0, 0.02, 0.012)),
        GridRecord(code="G-ring", name="ring", level="grid", parent_code="C", geom=ring),
        GridRecord(code="G-hole", name="fills the hole", level="grid", parent_code="C",
                   geom=box(0.002, 0.002, 0.004, 0.004)),
        GridRecord(code="G-two", name="two parts", level="grid", parent_code="C",
                   geom=MultiPolygon([box(0.011, 0, 0.013, 0.002), box(0.014, 0, 0.016, 0.002)])),
        GridRecord(code="G-a", name="overlap a", level="grid", parent_code="C",
                   geom=box(0.011, 0.003, 0.015, 0.006)),
        GridRecord(code="G-b", name="overlap b", level="grid", parent_code="C",
                   geom=box(0.013, 0.004, 0.017, 0.008)),
        GridRecord(code="G-bowtie", name="invalid", level="grid", parent_code="S", geom=bowtie),
        GridRecord(code="G-slant", name="slanted", level="compound", parent_code="G-ring",
                   geom=slanted),
    ]


def test_awkward_shapes_agree_with_postgis(session: Session) -> None:
    write_versions(session, _awkward())
    index = AssignmentIndex.load(session)
    assert index.stats.invalid == ["G-bowtie"]
    grid = np.linspace(-0.002, 0.041, 216)
    xs, ys = (a.ravel() for a in np.meshgrid(grid, np.linspace(-0.002, 0.021, 116)))
    bx, by = boundary_probes(segments(session), np.random.default_rng(3), 3_000)
    xs, ys = np.r_[xs, bx], np.r_[ys, by]
    want = postgis_finest_many(session, xs, ys)
    got = list(index.locate_many(xs, ys))
    assert got == want, mismatches(got, want, xs, ys)
    for code in ("G-ring", "G-hole", "G-two", "G-a", "G-b", "G-bowtie", "G-slant", "C", "S",
                 None):
        assert code in want  # every case is exercised
    assert index.locate(0.012, 0.0045) == "G-a"  # overlap at one depth: smaller code
    assert index.locate(0.0125, 0.001) == "G-two" and index.locate(0.0135, 0.001) == "C"


def test_scalar_and_vector_lookups_agree(demo_index: AssignmentIndex,
                                         demo_segments: np.ndarray) -> None:
    xs, ys = boundary_probes(demo_segments, np.random.default_rng(5), 300)
    many = demo_index.locate_many(xs, ys)
    assert [demo_index.locate(float(x), float(y)) for x, y in zip(xs, ys, strict=True)] \
        == list(many)


def test_non_finite_and_far_points_are_outside(demo_index: AssignmentIndex) -> None:
    for x, y in ((math.nan, 26.1), (119.3, math.inf), (0.0, 0.0), (-180.0, 90.0)):
        assert demo_index.locate(x, y) is None
    assert list(demo_index.locate_many([math.nan, 0.0], [26.1, 0.0])) == [None, None]
    with pytest.raises(InvalidInput) as err:
        demo_index.locate_many([1.0, 2.0], [1.0])
    assert err.value.field == "lat"


def test_an_empty_index_finds_nothing() -> None:
    index = AssignmentIndex.build([])
    assert index.locate(119.3, 26.1) is None
    assert index.nearest(119.3, 26.1, 1000.0) is None


def test_duplicate_codes_are_refused() -> None:
    grids = [IndexedGrid(code="A", depth=3, parent_code=None, geom=box(0, 0, 1, 1))] * 2
    with pytest.raises(InvalidInput) as err:
        AssignmentIndex.build(grids)
    assert err.value.field == "code" and err.value.value == "A"


def test_most_points_need_no_exact_test(demo_index: AssignmentIndex,
                                        demo_segments: np.ndarray) -> None:
    """The raster answers almost everything by lookup: the exact tests stay the exception."""
    assert demo_index.stats.cell_m < 5.0
    minx, miny, maxx, maxy = _extent(demo_segments, 0.0)
    rng = np.random.default_rng(9)
    f = demo_index._raster.frame
    xs, ys = rng.uniform(minx, maxx, 100_000), rng.uniform(miny, maxy, 100_000)
    cells = demo_index._raster.cells[f.rows(ys) * f.n_cols + f.cols(xs)]
    assert (cells <= -2).mean() < 0.05


# ----------------------------------------------------------------------- chain and nearest

def test_chain_follows_parents(demo_url: str, demo_index: AssignmentIndex) -> None:
    with db.session_scope(demo_url) as s:
        row = s.execute(text("""SELECT g.code, c.code AS community, st.code AS street,
                                       st.name AS street_name
                                  FROM grid g JOIN grid c ON c.code = g.parent_code
                                  JOIN grid st ON st.code = c.parent_code
                                 WHERE g.level = 'grid' AND g.valid_to IS NULL
                                   AND c.valid_to IS NULL AND st.valid_to IS NULL
                                 ORDER BY g.code LIMIT 1""")).one()
    chain = demo_index.chain(row.code)
    assert [c[0] for c in chain] == [row.street, row.community, row.code]
    assert [c[2] for c in chain] == ["street", "community", "grid"]
    assert chain[0][1] == row.street_name
    with pytest.raises(NotFound) as err:
        demo_index.chain("no-such-grid")
    assert err.value.field == "grid"


def test_nearest_matches_postgis_geography(demo_url: str, demo_index: AssignmentIndex,
                                           demo_segments: np.ndarray) -> None:
    """Points just outside the city snap to the grid PostGIS calls nearest, to the cm."""
    rng = np.random.default_rng(13)
    pick = rng.integers(0, len(demo_segments), 4_000)
    x1, y1, x2, y2 = demo_segments[pick].T
    t = rng.uniform(0.05, 0.95, len(pick))
    nx, ny = -(y2 - y1), (x2 - x1) * math.cos(math.radians(26.1))
    norm = np.hypot(nx, ny)
    off = rng.uniform(0.5, 60, len(pick)) / 111_000.0
    xs = x1 + t * (x2 - x1) + nx / norm * off / math.cos(math.radians(26.1))
    ys = y1 + t * (y2 - y1) + ny / norm * off
    outside = np.array([c is None for c in demo_index.locate_many(xs, ys)])
    xs, ys = xs[outside][:150], ys[outside][:150]
    assert len(xs) > 100
    codes, dist = demo_index.nearest_many(xs, ys, 30.0)
    with db.session_scope(demo_url) as s:
        for x, y, code, d in zip(xs, ys, codes, dist, strict=True):
            found = grid_queries.nearest(s, float(x), float(y))
            assert found is not None
            ref, ref_d = found
            if ref_d <= 29.99:
                assert code == ref.code and abs(d - ref_d) < 0.01, (x, y, code, d, ref.code, ref_d)
            elif ref_d > 30.01:
                assert code is None and math.isnan(d)
    assert demo_index.nearest(float(xs[0]), float(ys[0]), 0.0) is None


def test_nearest_of_a_covered_point_is_its_grid(demo_index: AssignmentIndex) -> None:
    code = demo_index.grids[0].code
    inside = shapely.point_on_surface(demo_index.grids[0].geom)
    assert demo_index.nearest(inside.x, inside.y, 30.0) == (code, 0.0)


def test_slanted_edge_points_follow_postgis_not_geos(session: Session) -> None:
    """On a long slanted edge PostGIS's plain-double side test and GEOS's robust one part
    ways for a few points in ten thousand; the index must side with PostGIS."""
    tri = Polygon([(119.2403606, 26.0642536), (119.3178966, 26.1257174), (119.25, 26.12)])
    write_versions(session, [GridRecord(code="T", name="triangle", level="grid", geom=tri)])
    index = AssignmentIndex.load(session)
    t = np.random.default_rng(0).uniform(0, 1, 100_000)
    xs = 119.2403606 + t * (119.3178966 - 119.2403606)
    ys = 26.0642536 + t * (26.1257174 - 26.0642536)
    want = postgis_finest_many(session, xs, ys)
    got = list(index.locate_many(xs, ys))
    assert got == want, mismatches(got, want, xs, ys)
    geos = np.asarray(shapely.covers(tri, shapely.points(xs, ys))).tolist()
    assert sum(g != (w is not None) for g, w in zip(geos, want, strict=True)) > 0
