"""The rules of the bulk import on a small synthetic city: fields, rejects, duplicates, CRS.

Two grids side by side (G1 west, G2 east) in one community, near (30° E, 50° N)
so that a (lat, lon) pair given the wrong way round is still a valid (lon, lat)
pair and only the intake's swapped check can catch it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from api.cli import app
from data.incident_import import ImportOptions, import_file
from geo.crs import wgs84_to_gcj02
from geo.errors import InvalidInput
from geo.settings import Settings, get_settings
from geo.store.db import session_scope
from geo.store.grids import GridRecord, write_versions
from geo.store.roster_write import CategoryRecord, upsert_categories

W, S, E, N = 30.0, 50.0, 30.02, 50.01
MID = (W + E) / 2


def square(*bounds: float) -> MultiPolygon:
    return MultiPolygon([box(*bounds)])


@pytest.fixture
def city(db_url: str) -> str:
    return build_city(db_url)


def build_city(db_url: str) -> str:
    """Write the city of the module docstring into ``db_url``; returns ``db_url``."""
    with session_scope(db_url) as s:
        write_versions(s, [
            GridRecord("C1", "社区一", "community", square(W, S, E, N)),
            GridRecord("G1", "网格一", "grid", square(W, S, MID, N), parent_code="C1"),
            GridRecord("G2", "网格二", "grid", square(MID, S, E, N), parent_code="C1"),
        ])
        upsert_categories(s, [
            CategoryRecord("E0101", "暴露垃圾", "Exposed rubbish", "event", "环卫处", 4.0),
            CategoryRecord("C0104", "路灯", "Street lamp", "component", "照明处", 48.0)])
    return db_url


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(db_url: str, path: Path, report: Path | None = None,
        **options: Any) -> Any:
    with session_scope(db_url) as s:
        return import_file(s, path, ImportOptions(**options),
                           settings=Settings(database_url=db_url), actor="test", report=report)


def incidents(session: Session) -> dict[str, Any]:
    rows = session.execute(text(
        "SELECT external_id, grid_code, category_code, source, input_crs, snapped_m, "
        "unassigned_reason, ST_X(geom) AS lon, ST_Y(geom) AS lat, reported_at "
        "FROM incident")).mappings().all()
    return {r["external_id"]: r for r in rows}


def test_fields_found_by_name_default_category_and_reasons(city: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv",
                     ["External_ID", "Longitude", "LAT", "category", "reported_at", "note"], [
                         ["a1", W + 0.001, S + 0.005, "E0101", "2025-06-02T09:30:00", "x"],
                         ["a2", E - 0.001, S + 0.005, "", "2025-06-02 09:30", ""],
                         ["a3", E + 0.0002, S + 0.005, "C0104", "", ""],  # 14 m east of G2
                         ["a4", E + 0.01, S + 0.005, "C0104", "", ""],  # 700 m: unassigned
                         ["a5", "abc", S, "E0101", "", ""],
                         ["a6", W, S, "X9999", "", ""],
                         ["a7", W, S, "E0101", "2999-01-01T00:00:00", ""],
                         ["a8", "", S, "E0101", "", ""],
                     ])
    report = tmp_path / "rejects.csv"
    summary = run(city, path, report, default_category="C0104")
    assert summary.fields["lon"] == "Longitude" and summary.fields["lat"] == "LAT"
    assert summary.fields["external_id"] == "External_ID"
    assert (summary.rows, summary.accepted, summary.rejected) == (8, 4, 4)
    assert (summary.unassigned, summary.snapped) == (1, 1)
    assert dict(summary.rejected_by_reason) == {"bad Longitude": 1, "unknown category": 1,
                                                "bad reported_at": 1, "no coordinates": 1}
    with session_scope(city) as s:
        got = incidents(s)
    assert got["a1"]["grid_code"] == "G1" and got["a2"]["grid_code"] == "G2"
    assert got["a2"]["category_code"] == "C0104"  # the default category
    assert got["a1"]["source"] == "other"
    assert got["a3"]["grid_code"] == "G2" and 10 < got["a3"]["snapped_m"] < 20
    assert got["a4"]["grid_code"] is None and "snap tolerance" in got["a4"]["unassigned_reason"]
    # times without an offset are local time of the configured zone (Asia/Shanghai)
    assert got["a1"]["reported_at"] == dt.datetime(2025, 6, 2, 1, 30, tzinfo=dt.UTC)
    with report.open(encoding="utf-8") as f:
        rejects = {r["External_ID"]: r for r in csv.DictReader(f)}
    assert set(rejects) == {"a5", "a6", "a7", "a8"}
    assert rejects["a5"]["row"] == "5" and rejects["a5"]["field"] == "Longitude"
    assert rejects["a5"]["value"] == "abc" and "finite" in rejects["a5"]["valid"]
    assert rejects["a6"]["field"] == "category" and "E0101" in rejects["a6"]["valid"]
    assert rejects["a7"]["field"] == "reported_at" and "future" in rejects["a7"]["reason"]
    assert rejects["a8"]["reason"] == "no coordinates: Longitude, LAT empty"


def test_no_category_without_default_is_a_reject(city: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", ["lon", "lat"], [[W + 0.001, S + 0.001]])
    summary = run(city, path)
    assert summary.rejected == 1 and dict(summary.rejected_by_reason) == {"no category": 1}
    assert "E0101" in str(summary.rejects[0].valid)


def test_repeated_external_ids_are_duplicates_in_and_across_batches(city: str,
                                                                    tmp_path: Path) -> None:
    rows = [[f"id{i % 3}", W + 0.001, S + 0.001 * (i + 1), "E0101"] for i in range(7)]
    path = write_csv(tmp_path / "c.csv", ["external_id", "lon", "lat", "category"], rows)
    summary = run(city, path, batch_size=2)
    assert (summary.accepted, summary.duplicates) == (3, 4)
    again = run(city, path, batch_size=5)
    assert (again.accepted, again.duplicates) == (0, 7)
    with session_scope(city) as s:
        assert s.execute(text("SELECT count(*) FROM incident")).scalar_one() == 3
        # the first row of each id wins: id0 is row 1's point
        lat = s.execute(text("SELECT ST_Y(geom) FROM incident WHERE external_id = 'id0'"))
        assert lat.scalar_one() == pytest.approx(S + 0.001)


def test_swapped_pairs_are_rejected_by_validation_and_by_the_intake(city: str,
                                                                    tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ["external_id", "lon", "lat", "category"], [
        ["ok", W + 0.001, S + 0.001, "E0101"],
        ["swapped", S + 0.001, W + 0.001, "E0101"],  # (50, 30): a valid pair, in no grid
        ["far", 119.3, 26.08, "E0101"],  # valid and outside every grid: kept, unassigned
    ])
    summary = run(city, path)
    assert (summary.accepted, summary.rejected, summary.unassigned) == (2, 1, 1)
    [reject] = summary.rejects
    assert reject.row == 2 and reject.field == "lon" and "swapped" in reject.reason


def test_crs_option_and_field(city: str, tmp_path: Path) -> None:
    glon, glat = wgs84_to_gcj02([W + 0.001], [S + 0.001])
    # outside China GCJ-02 is WGS-84 itself: the conversion must leave the point alone
    path = write_csv(tmp_path / "e.csv", ["external_id", "lon", "lat", "category", "crs"], [
        ["g", float(glon[0]), float(glat[0]), "E0101", "gcj02"],
        ["w", W + 0.002, S + 0.002, "E0101", ""]])
    summary = run(city, path)
    assert summary.accepted == 2 and summary.fields["crs"] == "crs"
    with session_scope(city) as s:
        got = incidents(s)
    assert got["g"]["input_crs"] == "gcj02" and got["w"]["input_crs"] == "wgs84"
    assert got["g"]["lon"] == pytest.approx(W + 0.001, abs=1e-9)
    bad = write_csv(tmp_path / "f.csv", ["lon", "lat", "category"], [[W, S, "E0101"]])
    with pytest.raises(InvalidInput) as exc:
        run(city, bad, crs="mars2000")
    assert exc.value.field == "crs"


def _feature(key: str, point: tuple[float, float] | None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"category": "E0101", "external_id": key, **props},
            "geometry": None if point is None else {"type": "Point", "coordinates": point}}


def test_each_json_record_takes_its_geometry_else_its_own_lon_lat(city: str,
                                                                    tmp_path: Path) -> None:
    """The first record decided for all: a first one without geometry made every later
    Point be ignored (and a Point-only record rejected), a first one with a geometry made a
    later geometry-less record with lon/lat rejected."""
    west, east = (30.002, 50.002), (30.018, 50.008)
    for order in ("props first", "geometry first"):
        features = [_feature("p", None, lon=west[0], lat=west[1]),
                    _feature("both", east, lon=west[0], lat=west[1]),  # the geometry wins
                    _feature("g", east),
                    _feature("none", None)]
        if order == "geometry first":
            features = features[1:3] + features[:1] + features[3:]
        path = tmp_path / "mixed.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        summary = run(city, path)
        assert (summary.accepted, summary.rejected) == (3, 1), (order, summary.rejects)
        [reject] = summary.rejects
        assert reject.reason == \
            "no coordinates: neither a Point geometry nor lon/lat fields", order
        with session_scope(city) as s:
            got = incidents(s)
            s.execute(text("DELETE FROM incident"))
        assert {k: (round(r["lon"], 9), round(r["lat"], 9)) for k, r in got.items()} == \
            {"p": west, "both": east, "g": east}, order
    lines = tmp_path / "mixed.ndjson"
    lines.write_text(json.dumps({"category": "E0101", "external_id": "a", "lon": west[0],
                                 "lat": west[1]}) + "\n" + json.dumps(
        {"category": "E0101", "external_id": "b", "Longitude": east[0], "Y": east[1]}) + "\n")
    assert run(city, lines).accepted == 2  # each record's own names
    with session_scope(city) as s:
        assert incidents(s)["b"]["grid_code"] == "G2"


def test_whole_input_problems_are_refused_naming_the_field(city: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "g.csv", ["x_coord", "y_coord", "kind"], [[W, S, "E0101"]])
    with pytest.raises(InvalidInput) as exc:
        run(city, path)
    assert exc.value.field == "lon_field" and "x_coord, y_coord, kind" in str(exc.value.valid)
    with pytest.raises(InvalidInput) as exc:
        run(city, path, lon_field="x_coord", lat_field="y_coord", category_field="type")
    assert exc.value.field == "category_field" and exc.value.value == "type"
    with pytest.raises(InvalidInput) as exc:
        run(city, path, lon_field="x_coord", lat_field="y_coord", default_category="NOPE")
    assert exc.value.field == "default_category" and "E0101" in str(exc.value.valid)
    with pytest.raises(InvalidInput) as exc:
        run(city, path, lon_field="x_coord", lat_field="y_coord", timezone="Mars/Olympus")
    assert exc.value.field == "timezone"
    ok = run(city, path, lon_field="x_coord", lat_field="y_coord", category_field="kind")
    assert ok.accepted == 1


@pytest.fixture
def cli(city: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("DATABASE_URL", city)
    monkeypatch.delenv("PATROLGRID_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, [str(a) for a in args])
    get_settings.cache_clear()


def test_a_failed_import_leaves_the_database_unchanged(cli: Callable[..., Result], city: str,
                                                       tmp_path: Path) -> None:
    features = [{"type": "Feature", "properties": {"external_id": f"f{i}", "category": "E0101"},
                 "geometry": {"type": "Point", "coordinates": [W + 0.001, S + 0.0001 * i]}}
                for i in range(1, 9)]
    path = tmp_path / "broken.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features})[:-30])
    result = cli("incidents", "import", path, "--batch-size", 2, "--quiet")
    assert result.exit_code == 2 and "after row 7" in result.output  # 3 batches were sent
    dry = cli("incidents", "import", tmp_path / "ok.csv", "--quiet")
    assert dry.exit_code == 2  # no such file: typer refuses it
    ok = write_csv(tmp_path / "ok.csv", ["lon", "lat", "category"], [[W + 0.001, S, "E0101"]])
    dry = cli("incidents", "import", ok, "--dry-run", "--quiet")
    assert dry.exit_code == 0 and "dry run: nothing written" in dry.output
    with session_scope(city) as s:
        assert s.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0
        assert s.execute(text("SELECT count(*) FROM incident_event")).scalar_one() == 0
    done = cli("incidents", "import", ok)
    assert done.exit_code == 0 and "imported" in done.output
    with session_scope(city) as s:
        assert s.execute(text("SELECT count(*) FROM incident")).scalar_one() == 1


def test_a_csv_unreadable_midway_leaves_the_database_unchanged(cli: Callable[..., Result],
                                                               city: str,
                                                               tmp_path: Path) -> None:
    """A broken byte far into a CSV file (in a later chunk of records) refuses the file before
    a row is written, naming its line (the codec's error named a position in its block of
    decoded text, after batches were written and then rolled back)."""
    rows = [[W + 0.001, S + 0.000001 * i, "E0101", f"x{i}", "d" * 40] for i in range(3000)]
    path = write_csv(tmp_path / "midway.csv", ["lon", "lat", "category", "external_id",
                                               "description"], rows)
    with path.open("ab") as f:
        f.write(b"30.001,50.0,E0101,bad,\xff\xfe\n")
    result = cli("incidents", "import", path, "--batch-size", 100, "--quiet")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "cannot read 'midway.csv': the bytes ff at line 3002" in out, out
    assert "UTF-8 or GB18030" in out
    with session_scope(city) as s:
        assert s.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0
        assert s.execute(text("SELECT count(*) FROM incident_event")).scalar_one() == 0
