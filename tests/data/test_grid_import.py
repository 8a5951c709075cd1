"""`patrolgrid grids import/export` on the real Chicago and Chinese boundaries, on PostGIS."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from sqlalchemy import text
from typer.testing import Result

from geo.crs import gcj02_to_wgs84
from geo.store.db import session_scope

Cli = Callable[..., Result]
BEATS = ("--code-field", "BEAT_NUM")
#: Areas are measured by PostGIS independently of geo.topology: edges straight in lon/lat
#: (as PostGIS geometries are), densified to 0.0001°, then in UTM zone 16N (Chicago).
OVERLAP_M2 = ("SELECT max(ST_Area(ST_Transform(ST_Segmentize(ST_CollectionExtract("
              "ST_Intersection(a.geom, b.geom), 3), 0.0001), 32616))) FROM grid a JOIN grid b ")


@pytest.fixture
def chicago(shared_data: Path) -> Path:
    return shared_data / "chicago"


def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    with session_scope(db_url) as s:
        return list(s.execute(text(sql), params).all())


def current_count(db_url: str) -> int:
    return int(query(db_url, "SELECT count(*) FROM grid WHERE valid_to IS NULL")[0][0])


def run_report(cli: Cli, tmp_path: Path, *args: Any, code: int = 0) -> dict[str, Any]:
    out = tmp_path / f"report{len(list(tmp_path.glob('report*')))}.json"
    result = cli("grids", "import", *args, "--report", out)
    assert result.exit_code == code, result.output
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def padded_districts(chicago: Path, tmp_path: Path) -> Path:
    """The districts with codes padded like the beats' DISTRICT ('1' -> '01'), as GeoPackage."""
    frame = gpd.read_file(chicago / "police_districts.geojson")
    frame["DIST_NUM"] = frame["DIST_NUM"].str.zfill(2)
    path = tmp_path / "districts.gpkg"
    frame.to_file(path, layer="districts", engine="pyogrio")
    return path


def test_dry_run_reports_and_writes_nothing(cli: Cli, chicago: Path, tmp_path: Path,
                                            db_url: str) -> None:
    report = run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS)
    for key in ("invalid_geometries", "overlaps", "gaps", "outside_parent"):
        assert report[key] == []
    assert report["counts"]["features"] == 277
    assert report["counts"]["codes"] == 275  # beat 3100 comes in three features
    assert report["plan"]["created"] == 275 and report["written"] is None
    assert not report["committed"]
    assert int(query(db_url, "SELECT count(*) FROM grid")[0][0]) == 0


def test_commit_merges_split_codes_and_reimport_is_unchanged(cli: Cli, chicago: Path,
                                                             tmp_path: Path, db_url: str) -> None:
    source = gpd.read_file(chicago / "police_beats.geojson")
    report = run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS, "--commit")
    assert report["committed"] and report["written"]["created"] == 275
    assert current_count(db_url) == 275
    parts, area = query(db_url, "SELECT ST_NumGeometries(geom), ST_Area(geom) FROM grid "
                                "WHERE code = '3100'")[0]
    pieces = source[source["BEAT_NUM"] == "3100"].geometry
    assert parts == len(pieces) == 3
    assert area == pytest.approx(shapely.area(pieces.array).sum(), rel=1e-9)
    codes = {r[0] for r in query(db_url, "SELECT code FROM grid")}
    assert codes == set(source["BEAT_NUM"])  # strings, leading zeros kept ('0111')
    again = run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS, "--commit")
    assert again["written"]["unchanged"] == 275
    assert int(query(db_url, "SELECT count(*) FROM grid")[0][0]) == 275


def test_bad_topology_is_refused_and_nothing_is_written(cli: Cli, chicago: Path,
                                                        tmp_path: Path, db_url: str) -> None:
    path = chicago / "police_beats_simplified_bad_topology.geojson"
    report = run_report(cli, tmp_path, path, *BEATS, "--commit", code=1)
    assert int(query(db_url, "SELECT count(*) FROM grid")[0][0]) == 0
    assert report["blocked"] and not report["committed"]
    assert [p["kind"] for p in report["problems"]] == ["overlap"]
    assert len(report["overlaps"]) > 300 and len(report["gaps"]) > 100
    assert all(o["area_m2"] > 1.0 and o["a"] < o["b"] for o in report["overlaps"])
    # PostGIS agrees on which pairs overlap by more than 1 m² (edges are straight in lon/lat,
    # as for every geometry in PostGIS: densified, then measured in UTM zone 16N)
    frame = gpd.read_file(path).dissolve("BEAT_NUM").reset_index()
    with session_scope(db_url) as s:
        s.execute(text("CREATE TEMP TABLE src (code text, geom geometry)"))
        s.execute(text("INSERT INTO src VALUES (:c, ST_GeomFromWKB(:g, 4326))"),
                  [{"c": c, "g": shapely.to_wkb(g)}
                   for c, g in zip(frame["BEAT_NUM"], frame.geometry, strict=True)])
        rows = s.execute(text(
            "SELECT a.code, b.code, ST_Area(ST_Transform(ST_Segmentize(ST_CollectionExtract("
            "ST_Intersection(a.geom, b.geom), 3), 0.0001), 32616)) FROM src a JOIN src b "
            "ON a.code < b.code AND ST_Intersects(a.geom, b.geom)")).all()
    area = {(a, b): x for a, b, x in rows}
    found = {(o["a"], o["b"]) for o in report["overlaps"]}
    assert {pair for pair, x in area.items() if x > 2.0} <= found
    assert all(area[pair] > 0.5 for pair in found), sorted(
        (area[pair], pair) for pair in found)[:5]
    for o in report["overlaps"]:
        assert o["area_m2"] == pytest.approx(area[(o["a"], o["b"])], rel=0.01, abs=0.5)
    # the terminal shows the same report as a table
    result = cli("grids", "import", path, *BEATS)
    assert result.exit_code == 0 and "overlapping pairs" in result.output
    assert str(len(report["overlaps"])) in result.output


def test_tolerance_option_filters_by_area(cli: Cli, chicago: Path, tmp_path: Path) -> None:
    path = chicago / "police_beats_simplified_bad_topology.geojson"
    default = run_report(cli, tmp_path, path, *BEATS)
    big = run_report(cli, tmp_path, path, *BEATS, "--tolerance-m2", 1000)
    assert big["tolerance_m2"] == 1000
    expected = {(o["a"], o["b"]) for o in default["overlaps"] if o["area_m2"] > 1000}
    assert {(o["a"], o["b"]) for o in big["overlaps"]} == expected
    assert 0 < len(expected) < len(default["overlaps"])


def test_resolve_overlaps_commits_a_clean_layer(cli: Cli, chicago: Path, tmp_path: Path,
                                                db_url: str) -> None:
    path = chicago / "police_beats_simplified_bad_topology.geojson"
    report = run_report(cli, tmp_path, path, *BEATS, "--resolve-overlaps", "--commit")
    assert report["committed"] and report["written"]["created"] == 275
    assert len(report["resolved"]) == len(report["overlaps"]) > 300
    assert all(r["given_to"] == min(r["a"], r["b"]) for r in report["resolved"])
    assert report["area_moved_m2"] == pytest.approx(
        sum(r["area_m2"] for r in report["resolved"]), abs=0.1)
    worst = query(db_url, OVERLAP_M2 + "ON a.code < b.code AND ST_Intersects(a.geom, b.geom)")[0][0]
    assert worst < 1.0
    assert query(db_url, "SELECT bool_and(ST_IsValid(geom)) FROM grid")[0][0] is True


def test_parents_must_exist_and_coverage_is_checked(cli: Cli, chicago: Path, tmp_path: Path,
                                                    db_url: str) -> None:
    beats = (chicago / "police_beats.geojson", *BEATS, "--parent-field", "DISTRICT")
    districts = ("--code-field", "DIST_NUM", "--name-field", "DIST_LABEL", "--level", "district")
    # the districts file numbers districts '1'..'25', the beats name them '01'..'25'
    as_is = run_report(cli, tmp_path, chicago / "police_districts.geojson", *districts,
                       "--commit")
    assert as_is["written"]["created"] == 23  # district 31 comes in three features
    refused = run_report(cli, tmp_path, *beats, "--commit", code=1)
    [problem] = refused["problems"]
    assert problem["kind"] == "unknown_parent"
    assert problem["codes"] == [f"0{i}" for i in range(1, 10)]
    assert "leading zeros" in problem["message"]
    assert current_count(db_url) == 23


def test_outside_parent_and_parent_gaps(cli: Cli, chicago: Path, tmp_path: Path,
                                        db_url: str) -> None:
    districts = run_report(cli, tmp_path, padded_districts(chicago, tmp_path),
                           "--code-field", "DIST_NUM", "--name-field", "DIST_LABEL",
                           "--level", "district", "--commit")
    assert districts["written"]["created"] == 23
    report = run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS,
                        "--parent-field", "DISTRICT", "--commit")
    assert report["committed"] and report["written"]["created"] == 275
    assert {r[0] for r in query(db_url, "SELECT DISTINCT depth FROM grid WHERE level = 'grid'")} \
        == {3}
    # outside_parent agrees with PostGIS measuring the parts outside on the spheroid
    rows = query(db_url, "SELECT c.code, c.parent_code, ST_Area(ST_Transform(ST_Segmentize("
                         "ST_CollectionExtract(ST_Difference(c.geom, p.geom), 3), 0.0001), "
                         "32616)) FROM grid c "
                         "JOIN grid p ON p.code = c.parent_code")
    outside = {code: x for code, _, x in rows}
    found = {s["code"] for s in report["outside_parent"]}
    assert found and {c for c, x in outside.items() if x > 2.0} <= found
    assert all(outside[c] > 0.5 for c in found)
    # each parent gap lies inside its parent and outside every beat
    assert report["gaps"] and all(g["parent"] for g in report["gaps"])
    for gap in report["gaps"]:
        point = f"POINT({gap['point'][0]} {gap['point'][1]})"
        inside, hits = query(
            db_url, "SELECT bool_or(code = :p AND ST_Covers(geom, ST_GeomFromText(:pt, 4326))), "
            "count(*) FILTER (WHERE parent_code = :p AND ST_Intersects(geom, "
            "ST_GeomFromText(:pt, 4326))) FROM grid", p=gap["parent"], pt=point)[0]
        assert inside and hits == 0


def test_export_import_round_trip(cli: Cli, chicago: Path, tmp_path: Path, db_url: str) -> None:
    run_report(cli, tmp_path, padded_districts(chicago, tmp_path), "--code-field", "DIST_NUM",
               "--name-field", "DIST_LABEL", "--level", "district", "--commit")
    run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS,
               "--parent-field", "DISTRICT", "--commit")
    back = ("--code-field", "code", "--name-field", "name", "--parent-field", "parent",
            "--level-field", "level")
    # texts that parse as JSON: GDAL wrote them as JSON through json-c, which clamped 1e20
    # to 2**64-1 and wrote 2**63, which it then could not read back
    with session_scope(db_url) as s:
        s.execute(text("UPDATE grid SET name = '{\"x\": 1}', attrs = CAST(:a AS jsonb) "
                       "WHERE code = '1713' AND valid_to IS NULL"),
                  {"a": '{"id": 1e20, "big": 9223372036854775808, "f": 1.5e300}'})
        s.commit()
    for name in ("all.geojson", "all.gpkg"):
        result = cli("grids", "export", tmp_path / name)
        assert result.exit_code == 0, result.output
        report = run_report(cli, tmp_path, tmp_path / name, *back, "--commit")
        assert report["written"]["unchanged"] == 298, name
        assert report["written"]["created"] == report["written"]["updated"] == 0
    result = cli("grids", "export", tmp_path / "districts.geojson", "--level", "district")
    assert result.exit_code == 0, result.output
    exported = gpd.read_file(tmp_path / "districts.geojson")
    source = gpd.read_file(chicago / "police_districts.geojson")
    assert sorted(exported["code"]) == sorted(set(source["DIST_NUM"].str.zfill(2)))
    assert set(exported["version"]) == {1} and exported["valid_from"].notna().all()
    assert int(query(db_url, "SELECT count(*) FROM grid")[0][0]) == 298
    result = cli("grids", "export", tmp_path / "x.geojson", "--level", "street")
    assert result.exit_code == 2 and "district" in result.output


def test_changed_geometry_creates_a_new_version(cli: Cli, chicago: Path, tmp_path: Path,
                                                db_url: str) -> None:
    run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS, "--commit")
    frame = gpd.read_file(chicago / "police_beats.geojson")
    row = frame.index[frame["BEAT_NUM"] == "1713"][0]
    old = frame.geometry[row]
    frame.loc[row, "geometry"] = shapely.buffer(old, -0.0003)
    changed = tmp_path / "changed.geojson"
    frame.to_file(changed, engine="pyogrio")
    report = run_report(cli, tmp_path, changed, *BEATS, "--commit")
    assert report["written"]["codes"]["updated"] == ["1713"]
    assert report["written"]["unchanged"] == 274
    versions = query(db_url, "SELECT version, valid_to IS NULL FROM grid WHERE code = '1713' "
                             "ORDER BY version")
    assert versions == [(1, False), (2, True)]
    assert current_count(db_url) == 275
    # shrinking 1713 opened a gap in the union where it used to be
    assert any(old.covers(shapely.Point(g["point"])) for g in report["gaps"])


def test_csv_with_wkt_and_float_codes(cli: Cli, chicago: Path, tmp_path: Path,
                                      db_url: str) -> None:
    frame = gpd.read_file(chicago / "police_beats.geojson").iloc[:20]
    frame = frame[frame["BEAT_NUM"] != "3100"]
    table = pd.DataFrame({"beat": frame["BEAT_NUM"].astype(float),
                          "label": "Beat " + frame["BEAT_NUM"],
                          "population": range(1000, 1000 + len(frame)),  # found by its name
                          "hh": [str(n) for n in range(len(frame))],
                          "WKT": shapely.to_wkt(frame.geometry.array, rounding_precision=-1)})
    path = tmp_path / "beats.csv"
    table.to_csv(path, index=False)
    assert "1713.0" in path.read_text()
    report = run_report(cli, tmp_path, path, "--code-field", "beat", "--name-field", "label",
                        "--households-field", "hh", "--commit")
    assert report["written"]["created"] == len(frame)
    people = {c: (p, h) for c, p, h in query(db_url, "SELECT code, population, households "
                                                     "FROM grid")}
    assert people["1713"] == (1000, 0)
    stored = {c: (n, shapely.from_wkb(bytes(g))) for c, n, g in
              query(db_url, "SELECT code, name, ST_AsBinary(geom) FROM grid")}
    for code, geom in zip(frame["BEAT_NUM"], frame.geometry, strict=True):
        expected = code.lstrip("0")  # the float column lost the leading zeros, not the '.0'
        assert stored[expected][0] == f"Beat {code}"
        assert shapely.equals_exact(shapely.normalize(stored[expected][1]),
                                    shapely.normalize(shapely.MultiPolygon([geom])), 1e-12)
    missing = cli("grids", "import", path, "--code-field", "BEAT_NUM")
    assert missing.exit_code == 2
    assert "BEAT_NUM" in missing.output and "beat, label, population, hh" in missing.output
    table.loc[3, "hh"] = "many"
    table.to_csv(path, index=False)
    bad = cli("grids", "import", path, "--code-field", "beat", "--households-field", "hh")
    assert bad.exit_code == 2 and "'many'" in bad.output and "whole number" in bad.output


def test_shapefile_and_geopackage_from_geopandas(cli: Cli, chicago: Path, tmp_path: Path,
                                                 db_url: str) -> None:
    frame = gpd.read_file(chicago / "police_beats.geojson")
    frame = frame[frame["DISTRICT"] == "17"].copy()
    frame["NUM"] = frame["BEAT_NUM"].astype(float)  # a Real column in the .dbf
    shp = tmp_path / "beats17.shp"
    frame.to_file(shp, engine="pyogrio")
    report = run_report(cli, tmp_path, shp, "--code-field", "NUM", "--commit")
    assert report["written"]["created"] == len(frame)
    assert {r[0] for r in query(db_url, "SELECT code FROM grid")} == set(frame["BEAT_NUM"])
    gpkg = tmp_path / "beats17.gpkg"
    frame.to_crs("EPSG:3435").to_file(gpkg, layer="beats", engine="pyogrio")  # feet, Illinois
    again = run_report(cli, tmp_path, gpkg, "--code-field", "BEAT_NUM", "--commit")
    assert again["crs"] == "EPSG:3435"
    assert again["written"]["created"] == 0
    stored = {c: shapely.from_wkb(bytes(g)) for c, g in query(
        db_url, "SELECT code, ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL")}
    for code, geom in zip(frame["BEAT_NUM"], frame.geometry, strict=True):
        assert shapely.hausdorff_distance(stored[code], geom) < 1e-7  # about 1 cm


def test_gcj02_boundaries_are_converted(cli: Cli, shared_data: Path, tmp_path: Path,
                                        db_url: str) -> None:
    path = shared_data / "china" / "counties_gcj02.geojson"
    report = run_report(cli, tmp_path, path, "--code-field", "adcode", "--name-field", "name",
                        "--level", "county", "--crs", "gcj02", "--commit")
    assert report["crs"] == "gcj02" and report["written"]["created"] == 37
    source = gpd.read_file(path)
    first = source.iloc[0]
    x, y = shapely.get_coordinates(first.geometry)[0]
    lon, lat = gcj02_to_wgs84([x], [y])
    stored = query(db_url, "SELECT ST_AsBinary(geom), name FROM grid WHERE code = :c",
                   c=first["adcode"])[0]
    assert stored[1] == first["name"]
    coords = shapely.get_coordinates(shapely.from_wkb(bytes(stored[0])))
    nearest = coords[((coords - [lon[0], lat[0]]) ** 2).sum(axis=1).argmin()]
    assert nearest == pytest.approx([lon[0], lat[0]], abs=1e-9)
    _, _, moved = Geod(ellps="WGS84").inv(x, y, nearest[0], nearest[1])
    assert 100 < moved < 800  # GCJ-02 is off by a few hundred metres


def test_make_valid_and_conflicting_names(cli: Cli, tmp_path: Path, db_url: str) -> None:
    bow_tie = {"type": "Polygon", "coordinates": [[[119.30, 26.08], [119.31, 26.09],
                                                   [119.31, 26.08], [119.30, 26.09],
                                                   [119.30, 26.08]]]}
    ok = {"type": "Polygon", "coordinates": [[[119.32, 26.08], [119.33, 26.08], [119.33, 26.09],
                                              [119.32, 26.09], [119.32, 26.08]]]}
    path = tmp_path / "tie.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "T1", "name": "tie"}, "geometry": bow_tie},
        {"type": "Feature", "properties": {"id": "T2", "name": "ok"}, "geometry": ok}]}))
    refused = run_report(cli, tmp_path, path, "--code-field", "id", "--commit", code=1)
    assert [(i["code"], i["reason"].split("[")[0]) for i in refused["invalid_geometries"]] == \
        [("T1", "Self-intersection")]
    assert current_count(db_url) == 0
    fixed = run_report(cli, tmp_path, path, "--code-field", "id", "--make-valid", "--commit")
    assert [r["code"] for r in fixed["repaired"]] == ["T1"]
    parts, valid = query(db_url, "SELECT ST_NumGeometries(geom), ST_IsValid(geom) FROM grid "
                                 "WHERE code = 'T1'")[0]
    assert parts == 2 and valid
    clash = tmp_path / "clash.geojson"
    clash.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "C", "name": "east"}, "geometry": ok},
        {"type": "Feature", "properties": {"id": "C", "name": "west"}, "geometry": bow_tie}]}))
    result = cli("grids", "import", clash, "--code-field", "id", "--name-field", "name")
    assert result.exit_code == 2
    assert "'C'" in result.output and "east" in result.output and "west" in result.output
    notes = tmp_path / "grids.txt"
    notes.write_text("not a boundary file")
    unknown = cli("grids", "import", notes, "--code-field", "id")
    assert unknown.exit_code == 2 and ".geojson" in unknown.output and ".gpkg" in unknown.output


def test_overlap_with_existing_grids_of_the_same_level(cli: Cli, chicago: Path, tmp_path: Path,
                                                       db_url: str) -> None:
    run_report(cli, tmp_path, chicago / "police_beats.geojson", *BEATS, "--commit")
    frame = gpd.read_file(chicago / "police_beats.geojson")
    minx, miny, _, maxy = frame.total_bounds
    strip = shapely.box(minx - 0.01, miny, minx + 0.01, maxy)  # the city's west edge and beyond
    newcomer = gpd.GeoDataFrame({"code": ["9999"]}, geometry=[strip], crs="EPSG:4326")
    path = tmp_path / "new.geojson"
    newcomer.to_file(path, engine="pyogrio")
    refused = run_report(cli, tmp_path, path, "--code-field", "code", "--commit", code=1)
    assert refused["overlaps"] and all(o["existing"] and o["a"] == "9999"
                                       for o in refused["overlaps"])
    touched = {c for c, g in zip(frame["BEAT_NUM"], frame.geometry, strict=True)
               if shapely.area(shapely.intersection(g, strip)) > 1e-9}
    assert {o["b"] for o in refused["overlaps"]} <= touched
    other_level = run_report(cli, tmp_path, path, "--code-field", "code", "--level", "zone")
    assert other_level["overlaps"] == []
    clipped = run_report(cli, tmp_path, path, "--code-field", "code", "--resolve-overlaps",
                         "--commit")
    assert all(r["given_to"] == r["b"] for r in clipped["resolved"])
    worst = query(db_url, OVERLAP_M2 + "ON a.code = '9999' "
                          "AND b.code <> '9999' AND ST_Intersects(a.geom, b.geom)")[0][0]
    assert worst < 1.0
    assert current_count(db_url) == 276


def _squares(path: Path, rows: list[tuple[str, str | None, str, float]]) -> Path:
    """One 0.01-degree square per (code, parent, level, west edge)."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": code, "parent": parent, "level": level},
         "geometry": shapely.geometry.mapping(shapely.box(x, 26.08, x + 0.01, 26.09))}
        for code, parent, level, x in rows]}))
    return path


def test_a_parent_cycle_is_refused_within_the_file_and_with_current_grids(
        cli: Cli, tmp_path: Path, db_url: str) -> None:
    args = ("--code-field", "code", "--parent-field", "parent", "--level-field", "level",
            "--commit")
    two = _squares(tmp_path / "cycle.geojson", [("CY2", "CY1", "grid", 119.30),
                                                ("CY1", "CY2", "grid", 119.31)])
    refused = run_report(cli, tmp_path, two, *args, code=1)
    cycles = [p for p in refused["problems"] if p["kind"] == "parent_cycle"]
    assert [p["codes"] for p in cycles] == [["CY1", "CY2"]]
    assert "CY1 → CY2 → CY1" in cycles[0]["message"] and current_count(db_url) == 0
    # community A holds grid B; a file making A a child of B closes a loop through the database
    ab = _squares(tmp_path / "ab.geojson", [("A", None, "community", 119.30),
                                            ("B", "A", "grid", 119.30)])
    assert run_report(cli, tmp_path, ab, *args)["committed"]
    loop = _squares(tmp_path / "loop.geojson", [("A", "B", "community", 119.30)])
    refused = run_report(cli, tmp_path, loop, *args, code=1)
    assert [p["codes"] for p in refused["problems"] if p["kind"] == "parent_cycle"] == [
        ["A", "B"]]
    assert query(db_url, "SELECT parent_code FROM grid WHERE code = 'A' "
                         "AND valid_to IS NULL")[0][0] is None


def test_a_population_beyond_the_column_is_named(cli: Cli, tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "big.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "P1", "population": 10**12},
         "geometry": shapely.geometry.mapping(shapely.box(119.30, 26.08, 119.31, 26.09))}]}))
    result = cli("grids", "import", path, "--code-field", "code", "--commit")
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "feature 1: population is '1000000000000'" in out, out
    assert "Traceback" not in out and current_count(db_url) == 0


def test_a_child_must_stay_finer_than_its_parent(cli: Cli, tmp_path: Path,
                                                 db_url: str) -> None:
    """A community under a grid, or a parent moved deeper than its current children, made
    locate and the intake take the parent for the finest grid; both are refused."""
    args = ("--code-field", "code", "--parent-field", "parent", "--level-field", "level",
            "--commit")
    upside = _squares(tmp_path / "upside.geojson", [("G1", None, "grid", 119.30),
                                                    ("C2", "G1", "community", 119.30)])
    refused = cli("grids", "import", upside, *args)
    assert refused.exit_code == 2 and "not finer than its parent" in refused.output, \
        refused.output
    assert current_count(db_url) == 0
    zone = _squares(tmp_path / "zone.geojson", [("Z1", None, "片区", 119.30),
                                                ("Z2", "Z1", "楼栋", 119.30),
                                                ("C1", None, "community", 119.32)])
    assert cli("grids", "import", zone, *args).exit_code == 0
    assert query(db_url, "SELECT code, depth FROM grid ORDER BY code") == [
        ("C1", 2), ("Z1", 0), ("Z2", 1)]
    moved = _squares(tmp_path / "moved.geojson", [("Z1", "C1", "片区", 119.32)])
    refused = cli("grids", "import", moved, *args)
    out = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "not coarser than its current child 'Z2'" in out, out
    both = _squares(tmp_path / "both.geojson", [("Z1", "C1", "片区", 119.32),
                                                ("Z2", "Z1", "楼栋", 119.32)])
    assert cli("grids", "import", both, *args).exit_code == 0
    assert query(db_url, "SELECT code, depth FROM grid WHERE valid_to IS NULL "
                         "ORDER BY code") == [("C1", 2), ("Z1", 3), ("Z2", 4)]


def test_a_zipped_shapefile_in_a_folder_is_read(cli: Cli, chicago: Path, tmp_path: Path,
                                                db_url: str) -> None:
    """Zipping a folder (the usual way) keeps it in the archive: the Shapefile is found."""
    frame = gpd.read_file(chicago / "police_beats.geojson")
    frame = frame[frame["DISTRICT"] == "17"].copy()
    folder = tmp_path / "beats17"
    folder.mkdir()
    frame.to_file(folder / "beats17.shp", engine="pyogrio")
    archive = tmp_path / "beats17.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for part in folder.iterdir():
            out.write(part, f"beats17/{part.name}")
    report = run_report(cli, tmp_path, archive, "--code-field", "BEAT_NUM", "--commit")
    assert report["written"]["created"] == len(frame)


@pytest.mark.parametrize(("name", "content", "words"), [
    ("empty.geojson", '{"type": "FeatureCollection", "features": []}', "holds no features"),
    ("nul.csv", 'code,name,wkt\nX6,a\x00b,"POLYGON ((105 31, 105.01 31, 105.01 31.01, '
                '105 31.01, 105 31))"\n', "feature 1: name contains a NUL"),
    ("nul.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", '
                    '"properties": {"code": "N\\u00001", "name": "a"}, "geometry": '
                    '{"type": "Point", "coordinates": [105, 31]}}]}', "line 1 holds a NUL"),
    ("lone.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", '
                     '"properties": {"code": "N1", "name": "a\\ud800b"}, "geometry": '
                     '{"type": "Point", "coordinates": [105, 31]}}]}', "line 1 holds a NUL"),
    # attrs PostgreSQL cannot store: a 500 or a psycopg traceback
    *((f"attrs{k}.csv", 'code,name,attrs,wkt\nA3,a,"' + attrs.replace('"', '""')
       + '","POLYGON ((26 10, 27 10, 27 11, 26 11, 26 10))"\n', words)
      for k, (attrs, words) in enumerate([
          ('{"a": "x\\ud800y"}', "features[0].attrs.a"), ('{"a": NaN}', "not a finite"),
          ('{"a": 1e999}', "not a finite"), ('{"a": "x\\u0000y"}', "features[0].attrs.a"),
          ('{"a": 1, "a": 2}', "twice"), ('{"a": ' * 70 + "1" + "}" * 70, "nests deeper"),
          ('{"a": ' + "9" * 5000 + "}", "not a JSON object")])),  # a ValueError traceback
])
def test_text_postgresql_cannot_store_is_refused_not_cut(cli: Cli, tmp_path: Path,
                                                         db_url: str, name: str, content: str,
                                                         words: str) -> None:
    """A NUL in a CSV cell was a traceback; in GeoJSON GDAL cut the text at it (code 'N')
    and replaced a lone surrogate, silently. (And an empty collection was refused for a
    missing code field, listing no fields.)"""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = cli("grids", "import", path, "--code-field", "code", "--name-field", "name",
                 "--commit")
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in out, out
    assert words in out, out
    assert current_count(db_url) == 0


@pytest.mark.parametrize("ring", [
    "[[10, 10], [10.01, 10], [10.01, 10.01], [10, 10.01]]",  # not closed
    "[[10, 10], [10.01, 10], [10.01, 10.01], [10, NaN]]",
])
def test_a_ring_geos_cannot_build_names_its_feature(cli: Cli, tmp_path: Path, db_url: str,
                                                    ring: str) -> None:
    """GEOS refused it while the file was read: a traceback (a 500 over HTTP)."""
    good = "[[10, 10], [10.01, 10], [10.01, 10.01], [10, 10]]"
    features = ", ".join(f'{{"type": "Feature", "properties": {{"code": "{c}"}}, "geometry": '
                         f'{{"type": "Polygon", "coordinates": [{r}]}}}}'
                         for c, r in (("OK", good), ("BAD", ring)))
    path = tmp_path / "rings.geojson"
    path.write_text(f'{{"type": "FeatureCollection", "features": [{features}]}}')
    result = cli("grids", "import", path, "--code-field", "code", "--commit")
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in out, out
    assert "feature 2" in out and "closed" in out, out
    assert current_count(db_url) == 0


def test_a_file_without_the_figures_keeps_the_current_ones(cli: Cli, tmp_path: Path,
                                                            db_url: str) -> None:
    """A file without population, households or attrs columns wrote every grid it touched
    again with them empty (the dry run said: 1 new version, for the same boundary)."""
    def write(name: str, ring: list[list[float]], **props: Any) -> Path:
        feature = {"type": "Feature", "properties": {"code": "G1", **props},
                   "geometry": {"type": "Polygon", "coordinates": [ring]}}
        path = tmp_path / name
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        return path

    ring = [[10, 10], [10.01, 10], [10.01, 10.01], [10, 10.01], [10, 10]]
    full = write("full.geojson", ring, population=1177, households=408, attrs={"k": 1})
    assert cli("grids", "import", full, "--code-field", "code", "--commit").exit_code == 0
    bare = write("bare.geojson", ring)
    report = run_report(cli, tmp_path, bare, "--code-field", "code", "--commit")
    assert report["written"]["codes"]["unchanged"] == ["G1"], report["written"]
    moved = write("moved.geojson", [[10, 10], [10.02, 10], [10.02, 10.01], [10, 10.01],
                                    [10, 10]])
    assert cli("grids", "import", moved, "--code-field", "code", "--commit").exit_code == 0
    [row] = query(db_url, "SELECT version, population, households, attrs FROM grid "
                          "WHERE code = 'G1' AND valid_to IS NULL")
    assert tuple(row) == (2, 1177, 408, {"k": 1})


def test_a_polygon_across_the_antimeridian_is_refused(cli: Cli, tmp_path: Path,
                                                      db_url: str) -> None:
    """It was stored as a band 359.8 degrees wide: locate at (0, 0.05) answered it."""
    ring = [[179.9, 0], [-179.9, 0], [-179.9, 0.1], [179.9, 0.1], [179.9, 0]]
    path = tmp_path / "wide.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "QAM"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    report = run_report(cli, tmp_path, path, "--code-field", "code", "--commit", code=1)
    [bad] = report["invalid_geometries"]
    assert bad["code"] == "QAM" and "antimeridian" in bad["reason"]
    assert current_count(db_url) == 0


@pytest.mark.parametrize(("content", "args", "words"), [
    (b"code,wkt\n", (), "holds no features"),  # a "0 new" dry run; GeoJSON is refused so
    (b"code,code,wkt\nA,B,\"POLYGON ((10 10, 11 10, 11 11, 10 10))\"\n", (),
     "names the field 'code' twice"),  # pandas renamed the twin code.1
    (b"code,wkt\nA,\"POLYGON ((10 10, 11 10, 11 11, 10 10))\"\n", ("--layer", "x"),
     "has no layers"),  # ignored
    (b"code,wkt\nA,\"POLYGON ((10 10, 11 10, 11 11, 10 10))\"\nB\xff,x\n", (),
     "at line 3"),  # "cannot decode", no line or byte
])
def test_csv_grid_files_refused_by_name(cli: Cli, tmp_path: Path, db_url: str,
                                        content: bytes, args: tuple[str, ...],
                                        words: str) -> None:
    path = tmp_path / "grids.csv"
    path.write_bytes(content)
    result = cli("grids", "import", path, "--code-field", "code", "--commit", *args)
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and words in out, out
    assert current_count(db_url) == 0


def test_level_and_level_field_together_are_refused(cli: Cli, tmp_path: Path,
                                                    db_url: str) -> None:
    """``--level`` was silently dropped when ``--level-field`` was given too."""
    path = tmp_path / "g.csv"
    path.write_text('code,level,wkt\nL1,street,"POLYGON ((26 10, 27 10, 27 11, 26 11, 26 10))"\n')
    both = cli("grids", "import", path, "--code-field", "code", "--level", "street",
               "--level-field", "level", "--commit")
    out = " ".join(both.output.split())
    assert both.exit_code == 2 and "both given" in out, out
    empty = cli("grids", "import", path, "--code-field", "code", "--level", "", "--commit")
    assert empty.exit_code == 2 and "empty" in empty.output
    assert current_count(db_url) == 0
    alone = cli("grids", "import", path, "--code-field", "code", "--level-field", "level",
                "--commit")
    assert alone.exit_code == 0, alone.output
    assert query(db_url, "SELECT level FROM grid") == [("street",)]
