"""The demo city (鼓楼区, Fuzhou): real names, an exact tiling, its roster and categories."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from data.demo.categories import CATEGORIES
from data.demo.city import build_city
from data.demo.load import load_demo
from data.demo.sources import ADCODE_FILE, CHINA_DIR, DISTRICT_FILE
from data.demo.tiling import LocalFrame
from geo.assign import on_duty
from geo.crs import point_to_wgs84
from geo.settings import Settings
from geo.store import db

ROOT = Path(__file__).resolve().parents[2]
#: Overlaps, gaps and spills larger than this (m²) fail: the project's topology tolerance.
TOLERANCE_M2 = Settings().topology_tolerance_m2
ANTAI_GCJ02 = (119.298456, 26.072092)


@pytest.fixture(scope="module")
def demo_url(template_url: str) -> Iterator[str]:
    """One database with the demo loaded, shared by the read-only tests of this module."""
    url = make_url(template_url).set(database=f"patrolgrid_test_demo_{uuid.uuid4().hex[:10]}")
    rendered = url.render_as_string(hide_password=False)
    db.create_database(rendered, template=make_url(template_url).database)
    try:
        with db.session_scope(rendered) as s:
            report = load_demo(s)
        print(f"demo load: built in {report.build_seconds:.2f} s, "
              f"loaded in {report.total_seconds:.2f} s")
        yield rendered
    finally:
        db.drop_database(rendered)


@pytest.fixture
def demo(demo_url: str) -> Iterator[Session]:
    """A session on the shared demo database (rolled back: tests here only read)."""
    with db.session_scope(demo_url) as s:
        yield s
        s.rollback()


def _adcode_rows() -> list[list[str]]:
    with ADCODE_FILE.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _all(session: Session, sql: str, **params: Any) -> list[Any]:
    return list(session.execute(text(sql), params).mappings())


# --------------------------------------------------------------------------- the bundled data

def test_bundled_files_are_the_shared_ones_and_attributed(shared_data: Path) -> None:
    assert CHINA_DIR == ROOT / "data" / "china"  # the demo reads inside the project only
    assert ADCODE_FILE.read_bytes() == (shared_data / "china/adcode/350102.csv").read_bytes()
    ours = json.loads(DISTRICT_FILE.read_text(encoding="utf-8"))["features"]
    theirs = json.loads((shared_data / "china/counties_gcj02.geojson").read_text("utf-8"))
    gulou = [f for f in theirs["features"] if f["properties"]["adcode"] == "350102"]
    assert len(ours) == 1 and ours[0]["geometry"] == gulou[0]["geometry"]
    attribution = (CHINA_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for needed in ("Vonng/adcode", "CC-BY 4.0", "2016", "Amap", "GCJ-02"):
        assert needed in attribution


# --------------------------------------------------------------------------- build, no database

def test_build_is_deterministic_and_seeded() -> None:
    first, second, other = build_city(), build_city(), build_city(seed=7)
    assert [(r.code, r.name, r.parent_code, r.population, r.households, r.attrs)
            for r in first.records] == [(r.code, r.name, r.parent_code, r.population,
                                         r.households, r.attrs) for r in second.records]
    assert [shapely.to_wkb(r.geom) for r in first.records] == \
        [shapely.to_wkb(r.geom) for r in second.records]
    assert [shapely.to_wkb(r.geom) for r in first.grids] != \
        [shapely.to_wkb(r.geom) for r in other.grids]


def test_streets_cover_the_converted_district_outline() -> None:
    city = build_city()
    outline = json.loads(DISTRICT_FILE.read_text(encoding="utf-8"))["features"][0]["geometry"]
    from geo.crs import geometry_to_wgs84

    district = geometry_to_wgs84(shape(outline), "gcj02")
    frame = LocalFrame(lon0=119.29, lat0=26.09)
    moved = frame.to_local(shapely.symmetric_difference(city.district, district)).area
    perimeter = frame.to_local(district).length
    # Only the 1e-7° rounding of the outline differs: less than a 1 cm band along it.
    assert moved < 0.01 * perimeter, (moved, perimeter)
    # The outline was converted from GCJ-02: the raw GCJ-02 polygon is off by hundreds of m.
    raw = frame.to_local(shapely.symmetric_difference(city.district, shape(outline))).area
    assert raw > 100 * moved


# --------------------------------------------------------------------------- loaded

def test_real_streets_and_communities(demo: Session) -> None:
    rows = _adcode_rows()
    towns = {r[0]: r[2] for r in rows if r[3] == "town"}
    villages = {r[0]: (r[2], r[1]) for r in rows if r[3] == "village"}
    streets = {r["code"]: r for r in _all(demo, "SELECT * FROM grid WHERE valid_to IS NULL "
                                                "AND level = 'street'")}
    communities = {r["code"]: r for r in _all(demo, "SELECT * FROM grid WHERE valid_to IS NULL "
                                                    "AND level = 'community'")}
    assert len(streets) == 10 and len(communities) == 69
    assert {c: r["name"] for c, r in streets.items()} == towns
    assert "安泰街道" in towns.values()
    assert {c: (r["name"], r["parent_code"]) for c, r in communities.items()} == villages
    assert all(r["parent_code"] is None and r["depth"] == 1 for r in streets.values())
    assert _all(demo, "SELECT count(*) AS n FROM grid WHERE valid_to IS NULL "
                      "AND level NOT IN ('street', 'community', 'grid')")[0]["n"] == 0


def test_three_to_eight_grids_per_community_with_codes_and_names(demo: Session) -> None:
    grids = _all(demo, "SELECT g.code, g.name, g.parent_code, g.population, g.households, "
                       "p.name AS parent_name FROM grid g JOIN grid p ON p.code = g.parent_code "
                       "AND p.valid_to IS NULL WHERE g.valid_to IS NULL AND g.level = 'grid'")
    per = Counter(g["parent_code"] for g in grids)
    assert len(per) == 69 and min(per.values()) >= 3 and max(per.values()) <= 8
    assert 200 <= len(grids) <= 600
    for g in grids:
        assert re.fullmatch(re.escape(g["parent_code"]) + r"\d{3}", g["code"])
        assert g["name"] == f"{g['parent_name']}第{int(g['code'][-3:])}网格"
        assert g["population"] > 0 and 0 < g["households"] < g["population"]
    sums = _all(demo, """SELECT p.code, p.population, sum(c.population) AS total
                           FROM grid p JOIN grid c ON c.parent_code = p.code AND c.valid_to IS NULL
                          WHERE p.valid_to IS NULL GROUP BY p.code, p.population""")
    assert all(r["population"] == r["total"] for r in sums)


def test_every_cell_is_one_valid_polygon(demo: Session) -> None:
    bad = _all(demo, """SELECT code, ST_NumGeometries(geom) AS parts,
                                ST_IsValidReason(geom) AS why
                           FROM grid WHERE valid_to IS NULL
                            AND (NOT ST_IsValid(geom) OR ST_NumGeometries(geom) <> 1)""")
    assert bad == []


def test_children_inside_parent_and_union_equals_parent(demo: Session) -> None:
    spill = _all(demo, """SELECT c.code, ST_Area(ST_Difference(c.geom, p.geom)::geography) AS m2
                             FROM grid c JOIN grid p
                               ON p.code = c.parent_code AND p.valid_to IS NULL
                            WHERE c.valid_to IS NULL""")
    n_grids = _all(demo, "SELECT count(*) AS n FROM grid WHERE valid_to IS NULL AND level = 'grid'")
    assert len(spill) == 69 + n_grids[0]["n"]
    assert max(s["m2"] for s in spill) < TOLERANCE_M2
    covered = _all(demo, """SELECT count(*) AS n FROM grid c
                               JOIN grid p ON p.code = c.parent_code AND p.valid_to IS NULL
                              WHERE c.valid_to IS NULL AND NOT ST_CoveredBy(c.geom, p.geom)""")
    assert covered[0]["n"] == 0  # exact, not only within the tolerance
    diff = _all(demo, """SELECT p.code, ST_Area(ST_SymDifference(p.geom, u.geom)::geography) AS m2
                            FROM grid p JOIN (SELECT parent_code, ST_Union(geom) AS geom
                                                FROM grid WHERE valid_to IS NULL
                                               GROUP BY parent_code) u
                              ON u.parent_code = p.code
                           WHERE p.valid_to IS NULL""")
    assert len(diff) == 10 + 69
    assert max(d["m2"] for d in diff) < TOLERANCE_M2  # no gaps, no spill


def test_no_overlaps_between_siblings(demo: Session) -> None:
    pairs = _all(demo, """SELECT a.code AS a, b.code AS b,
                                  ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS m2
                             FROM grid a JOIN grid b
                               ON a.level = b.level AND a.code < b.code AND b.valid_to IS NULL
                              AND a.parent_code IS NOT DISTINCT FROM b.parent_code
                              AND ST_Intersects(a.geom, b.geom)
                            WHERE a.valid_to IS NULL""")
    assert len(pairs) > 300  # neighbours touch: the query does see them
    assert max(p["m2"] for p in pairs) < TOLERANCE_M2
    assert _all(demo, """SELECT count(*) AS n FROM grid a JOIN grid b
                            ON a.level = b.level AND a.code < b.code AND b.valid_to IS NULL
                           AND ST_Overlaps(a.geom, b.geom) WHERE a.valid_to IS NULL""")[0]["n"] == 0


def test_antai_point_locates_one_street_community_and_grid_with_a_worker(demo: Session) -> None:
    lon, lat = point_to_wgs84(*ANTAI_GCJ02, "gcj02")
    hits = _all(demo, """SELECT code, name, level, parent_code FROM grid
                           WHERE valid_to IS NULL
                             AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))""",
                lon=lon, lat=lat)
    by_level = defaultdict(list)
    for h in hits:
        by_level[h["level"]].append(h)
    assert {k: len(v) for k, v in by_level.items()} == {"street": 1, "community": 1, "grid": 1}
    street, community, grid = by_level["street"][0], by_level["community"][0], by_level["grid"][0]
    assert street["name"] == "安泰街道"
    assert community["parent_code"] == street["code"] and grid["parent_code"] == community["code"]
    duties = _all(demo, """SELECT d.kind, d.shifts, w.name, w.role, w.active FROM duty d
                             JOIN worker w ON w.id = d.worker_id WHERE d.grid_code = :g""",
                  g=grid["code"])
    assert sorted(d["kind"] for d in duties) == ["backup", "primary"]
    assert all(d["role"] == "grid_worker" and d["active"] for d in duties)
    monday_10 = dt.datetime(2025, 6, 2, 10, 0)
    on = [d["kind"] for d in duties if on_duty(d["shifts"], monday_10, "Asia/Shanghai")]
    assert on == ["primary"]


# --------------------------------------------------------------------------- roster

def _week() -> list[dt.datetime]:
    start = dt.datetime(2025, 6, 2)  # a Monday
    return [start + dt.timedelta(minutes=m) for m in range(0, 7 * 24 * 60, 30)]


def test_every_grid_has_a_primary_and_another_backup_and_someone_always_on_duty(
        demo: Session) -> None:
    duties = _all(demo, """SELECT g.code, d.kind, d.shifts, w.code AS worker, w.role
                              FROM grid g LEFT JOIN duty d ON d.grid_code = g.code
                              LEFT JOIN worker w ON w.id = d.worker_id
                             WHERE g.valid_to IS NULL AND g.level = 'grid'""")
    by_grid: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for d in duties:
        by_grid[d["code"]][d["kind"]].append(d)
    for code, kinds in by_grid.items():
        assert len(kinds["primary"]) == 1 and len(kinds["backup"]) == 1, code
        assert kinds["primary"][0]["worker"] != kinds["backup"][0]["worker"], code
        assert {kinds["primary"][0]["role"], kinds["backup"][0]["role"]} == {"grid_worker"}
    shift_pairs = {(json.dumps(k["primary"][0]["shifts"]), json.dumps(k["backup"][0]["shifts"]))
                   for k in by_grid.values()}
    for primary, backup in shift_pairs:
        for at in _week():
            assert on_duty(json.loads(primary), at, "Asia/Shanghai") or \
                on_duty(json.loads(backup), at, "Asia/Shanghai"), at


def test_managers_dispatchers_and_teams(demo: Session) -> None:
    managers = _all(demo, """SELECT g.code, count(w.id) AS n FROM grid g
                                LEFT JOIN duty d ON d.grid_code = g.code AND d.kind = 'primary'
                                LEFT JOIN worker w ON w.id = d.worker_id AND w.role = 'manager'
                               WHERE g.valid_to IS NULL AND g.level = 'community'
                               GROUP BY g.code""")
    assert len(managers) == 69 and all(m["n"] == 1 for m in managers)
    dispatch = _all(demo, """SELECT g.code, d.shifts FROM grid g
                                JOIN duty d ON d.grid_code = g.code AND d.kind = 'primary'
                                JOIN worker w ON w.id = d.worker_id AND w.role = 'dispatcher'
                               WHERE g.valid_to IS NULL AND g.level = 'street'""")
    per_street: dict[str, list[Any]] = defaultdict(list)
    for d in dispatch:
        per_street[d["code"]].append(d["shifts"])
    assert len(per_street) == 10
    for shifts in per_street.values():
        assert all(any(on_duty(s, at, "Asia/Shanghai") for s in shifts) for at in _week())
    teams = Counter(r["kind"] for r in _all(demo, "SELECT kind FROM team"))
    assert teams["patrol"] >= 10 and teams["volunteer"] >= 1
    members = _all(demo, """SELECT w.code, w.last_seen_at,
                                   ST_Covers(g.geom, w.last_geom) AS inside
                              FROM worker w JOIN team t ON t.id = w.team_id
                              JOIN grid g ON g.code = t.grid_code AND g.valid_to IS NULL
                             WHERE w.role IN ('patrol', 'volunteer')""")
    assert len(members) >= 10 * 4
    assert all(m["inside"] and m["last_seen_at"] is not None for m in members)


def test_workers_have_synthetic_names_and_clearly_fake_unique_phones(demo: Session) -> None:
    workers = _all(demo, "SELECT code, name, phone FROM worker")
    phones = [w["phone"] for w in workers]
    assert len(set(phones)) == len(phones)
    assert all(re.fullmatch(r"139-0000-\d{4}", p) for p in phones)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", w["name"]) for w in workers)
    assert len({w["name"] for w in workers}) > len(workers) // 2  # varied, not one name


def test_categories(demo: Session) -> None:
    rows = _all(demo, "SELECT * FROM category ORDER BY code")
    assert 20 <= len(rows) <= 40 and len(rows) == len(CATEGORIES)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"component", "event"} and min(kinds.values()) >= 5
    for r in rows:
        assert r["kind"] == {"C": "component", "E": "event"}[r["code"][0]]
        assert re.search(r"[\u4e00-\u9fff]", r["name_zh"]) and r["name_en"].isascii()
        assert r["department"] and r["sla_hours"] > 0


# --------------------------------------------------------------------------- reloading

def _snapshot(session: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    counts = {"grid": "SELECT count(*) AS n FROM grid", "team": "SELECT count(*) AS n FROM team",
              "worker": "SELECT count(*) AS n FROM worker",
              "duty": "SELECT count(*) AS n FROM duty",
              "category": "SELECT count(*) AS n FROM category"}
    for table, sql in counts.items():
        out[table] = _all(session, sql)[0]["n"]
    out["versions"] = _all(session, "SELECT max(version) AS v FROM grid")[0]["v"]
    out["geoms"] = _all(session, "SELECT md5(string_agg(ST_AsEWKB(geom)::text, ',' ORDER BY code))"
                                 " AS h FROM grid WHERE valid_to IS NULL")[0]["h"]
    return out


def test_second_load_changes_nothing(db_url: str) -> None:
    with db.session_scope(db_url) as s:
        first = load_demo(s)
    print(f"first load {first.total_seconds:.2f} s")
    with db.session_scope(db_url) as s:
        before = _snapshot(s)
    with db.session_scope(db_url) as s:
        second = load_demo(s)
    print(f"second load {second.total_seconds:.2f} s")
    with db.session_scope(db_url) as s:
        assert _snapshot(s) == before
    assert first.changed and not second.changed
    assert all(not c.created and not c.updated for c in second.grids.values())
    assert sum(len(c.unchanged) for c in second.grids.values()) == before["grid"]
    assert second.roster is not None and second.roster.duties.as_dict()["deleted"] == 0


def test_reload_with_another_seed_versions_and_retires_grids(db_url: str) -> None:
    first, second = build_city(seed=1), build_city()
    gone = {g.code for g in first.grids} - {g.code for g in second.grids}
    assert gone  # seed 1 has more grids in some community than the default seed
    with db.session_scope(db_url) as s:
        load_demo(s, seed=1)
    with db.session_scope(db_url) as s:
        report = load_demo(s)
        current = _all(s, "SELECT code FROM grid WHERE valid_to IS NULL AND level = 'grid'")
        overlaps = _all(s, """SELECT count(*) AS n FROM grid a JOIN grid b ON a.level = b.level
                                AND a.code < b.code AND b.valid_to IS NULL
                                AND ST_Overlaps(a.geom, b.geom)
                               WHERE a.valid_to IS NULL""")
        inactive = _all(s, "SELECT code FROM worker WHERE NOT active")
        on_retired = _all(s, """SELECT count(*) AS n FROM duty d WHERE NOT EXISTS (
                                  SELECT 1 FROM grid g WHERE g.code = d.grid_code
                                     AND g.valid_to IS NULL)""")
    assert on_retired[0]["n"] == 0  # the roster export imports again
    assert report.grids["grid"].updated
    assert set(report.retired_grids) == gone
    assert sorted(r["code"] for r in current) == sorted(g.code for g in second.grids)
    assert overlaps[0]["n"] == 0
    assert {r["code"] for r in inactive} == {"W" + code for code in gone}
