"""`patrolgrid incidents import/export` on the real Chicago beats and crimes, on PostGIS.

The beats are imported as grids under the police districts (level ``district``,
codes zero-padded like the beats' ``DISTRICT``), so an incident's grid chain
gives its district. The crimes have a recorded beat and district; exact
point-in-polygon (with the documented boundary rule) must agree for at least
89 % (beat) and 97 % (district) of the rows with coordinates.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import text
from typer.testing import Result

from geo.store.db import session_scope
from geo.store.roster_write import CategoryRecord, upsert_categories

Cli = Callable[..., Result]
CRIMES = ("--lon-field", "longitude", "--lat-field", "latitude", "--external-id-field", "id",
          "--time-field", "date", "--default-category", "CRIME", "--timezone",
          "America/Chicago", "--quiet")


def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    with session_scope(db_url) as s:
        return list(s.execute(text(sql), params).all())


@pytest.fixture
def chicago(shared_data: Path, cli: Cli, db_url: str, tmp_path: Path) -> Path:
    """Districts and beats as grids, and the category CRIME; the folder of the data."""
    folder = shared_data / "chicago"
    districts = gpd.read_file(folder / "police_districts.geojson")
    districts["DIST_NUM"] = districts["DIST_NUM"].str.zfill(2)
    gpkg = tmp_path / "districts.gpkg"
    districts.to_file(gpkg, layer="districts", engine="pyogrio")
    for args in ((gpkg, "--code-field", "DIST_NUM", "--name-field", "DIST_LABEL",
                  "--level", "district", "--commit"),
                 (folder / "police_beats.geojson", "--code-field", "BEAT_NUM",
                  "--parent-field", "DISTRICT", "--commit")):
        result = cli("grids", "import", *args)
        assert result.exit_code == 0, result.output
    with session_scope(db_url) as s:
        upsert_categories(s, [CategoryRecord(code="CRIME", name_zh="刑事案件", name_en="Crime",
                                             kind="event", department="CPD", sla_hours=24.0)])
    return folder


def crimes(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "crimes_2025_sample.csv", dtype=str, keep_default_na=False)


def assigned(db_url: str, source: str = "other") -> pd.DataFrame:
    """external_id -> grid, its district (the grid itself when it is a district), snapping."""
    rows = query(db_url, """
        SELECT i.external_id, i.grid_code, i.snapped_m, i.unassigned_reason,
               CASE WHEN g.level = 'district' THEN g.code ELSE g.parent_code END AS district
          FROM incident i LEFT JOIN grid g ON g.code = i.grid_code AND g.valid_to IS NULL
         WHERE i.source = :source""", source=source)
    return pd.DataFrame(rows, columns=["id", "grid", "snapped_m", "reason", "district_code"])


def test_chicago_crimes_match_recorded_beats_and_districts(cli: Cli, chicago: Path,
                                                           db_url: str, tmp_path: Path) -> None:
    source = crimes(chicago)
    no_coords = source[(source["latitude"] == "") | (source["longitude"] == "")]
    assert len(no_coords) == 18
    report = tmp_path / "rejects.csv"
    result = cli("incidents", "import", chicago / "crimes_2025_sample.csv", *CRIMES,
                 "--report", report)
    assert result.exit_code == 0, result.output
    assert "accepted (new incidents)" in result.output and "982" in result.output
    # every row without coordinates is in the report, with its row number and reason
    with report.open(encoding="utf-8") as f:
        rejects = list(csv.DictReader(f))
    assert len(rejects) == 18
    assert sorted(r["id"] for r in rejects) == sorted(no_coords["id"])
    for r in rejects:
        row = int(r["row"])  # the row-th record after the header
        assert source.iloc[row - 1]["id"] == r["id"]
        assert r["reason"].startswith("no coordinates") and r["field"] == "longitude"
        assert r["case_number"] == source.iloc[row - 1]["case_number"]  # original values
    stored = assigned(db_url)
    assert len(stored) == 982 and stored["id"].is_unique
    merged = stored.merge(source, on="id")
    beat_ok = (merged["grid"] == merged["beat"]).mean()
    district_ok = (merged["district_code"].fillna("-1").astype(int)
                   == merged["district"].astype(int)).mean()
    assert beat_ok >= 0.89, beat_ok
    assert district_ok >= 0.97, district_ok
    # the misses are boundary points: nearly all lie within 1 m of the recorded beat
    misses = merged[merged["grid"] != merged["beat"]]
    near = query(db_url, """
        SELECT count(*) FILTER (WHERE ST_DWithin(i.geom::geography, b.geom::geography, 1.0))
          FROM incident i
          JOIN unnest(CAST(:ids AS text[]), CAST(:beats AS text[])) AS m(id, beat)
            ON m.id = i.external_id
          JOIN grid b ON b.code = m.beat AND b.valid_to IS NULL""",
                 ids=list(misses["id"]), beats=list(misses["beat"]))[0][0]
    assert near >= 0.9 * len(misses), (near, len(misses))
    # the description and the local time (Chicago) came along; the category is the default
    first = source.iloc[0]
    row = query(db_url, "SELECT description, reported_at AT TIME ZONE 'America/Chicago', "
                        "category_code FROM incident WHERE external_id = :e", e=first["id"])[0]
    assert row[0] == first["description"] and row[2] == "CRIME"
    assert row[1].isoformat() == first["date"][:19]


def test_reimport_counts_duplicates_and_creates_nothing(cli: Cli, chicago: Path,
                                                        db_url: str) -> None:
    path = chicago / "crimes_2025_sample.csv"
    assert cli("incidents", "import", path, *CRIMES).exit_code == 0
    before = query(db_url, "SELECT count(*), (SELECT count(*) FROM incident_event) "
                           "FROM incident")[0]
    again = cli("incidents", "import", path, *CRIMES)
    assert again.exit_code == 0, again.output
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in again.output.splitlines() if line.count("│") == 3}
    assert lines["accepted (new incidents)"] == "0"
    assert lines["duplicates (known external id)"] == "982"
    assert lines["rejected"] == "18"
    assert query(db_url, "SELECT count(*), (SELECT count(*) FROM incident_event) "
                         "FROM incident")[0] == before


def test_geojson_and_ndjson_of_the_same_rows_land_on_the_same_grids(
        cli: Cli, chicago: Path, db_url: str, tmp_path: Path) -> None:
    source = crimes(chicago)
    features = []
    with (tmp_path / "crimes.ndjson").open("w", encoding="utf-8") as nd:
        for _, r in source.iterrows():
            has = r["latitude"] != "" and r["longitude"] != ""
            geometry = {"type": "Point", "coordinates": [float(r["longitude"]),
                                                         float(r["latitude"])]} if has else None
            props = {"id": int(r["id"]), "date": r["date"], "beat": r["beat"]}
            features.append({"type": "Feature", "geometry": geometry, "properties": props})
            nd.write(json.dumps({"x": float(r["longitude"]) if has else None,
                                 "y": float(r["latitude"]) if has else None, **props}) + "\n")
    (tmp_path / "crimes.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": features}), encoding="utf-8")
    common = ("--external-id-field", "id", "--time-field", "date", "--default-category",
              "CRIME", "--quiet")
    assert cli("incidents", "import", chicago / "crimes_2025_sample.csv", *CRIMES).exit_code == 0
    for name, source_name in (("crimes.geojson", "hotline"), ("crimes.ndjson", "app")):
        result = cli("incidents", "import", tmp_path / name, *common, "--source", source_name,
                     "--report", tmp_path / f"{name}.rejects.csv")
        assert result.exit_code == 0, result.output
        with (tmp_path / f"{name}.rejects.csv").open(encoding="utf-8") as f:
            rejects = list(csv.DictReader(f))
        assert len(rejects) == 18 and all(r["reason"].startswith("no coordinates")
                                          for r in rejects)
        assert json.loads(rejects[0]["original"])  # JSON sources keep the record as JSON
        assert assigned(db_url, source_name).sort_values("id").reset_index(drop=True) \
            .equals(assigned(db_url).sort_values("id").reset_index(drop=True)), name


def test_export_csv_and_geojson_and_import_back(cli: Cli, chicago: Path, db_url: str,
                                                tmp_path: Path) -> None:
    assert cli("incidents", "import", chicago / "crimes_2025_sample.csv", *CRIMES).exit_code == 0
    out = tmp_path / "out.csv"
    result = cli("incidents", "export", out)
    assert result.exit_code == 0 and "982" in result.output
    exported = pd.read_csv(out, dtype=str, keep_default_na=False)
    for column in ("id", "external_id", "lon", "lat", "grid_code", "worker_id", "status",
                   "rule", "snapped_m", "reported_at"):
        assert column in exported.columns
    stored = query(db_url, "SELECT id, grid_code, ST_X(geom), status FROM incident ORDER BY id")
    assert [int(i) for i in exported["id"]] == [r[0] for r in stored]
    assert list(exported["grid_code"]) == [r[1] or "" for r in stored]
    assert [float(x) for x in exported["lon"]] == [r[2] for r in stored]
    back = cli("incidents", "import", out, "--quiet")  # fields found by name, source per row
    assert back.exit_code == 0 and "982" in back.output
    assert query(db_url, "SELECT count(*) FROM incident")[0][0] == 982
    geo = tmp_path / "out.geojson"
    assert cli("incidents", "export", geo, "--status", "registered").exit_code == 0
    frame = gpd.read_file(geo)
    assert len(frame) == 982 and set(frame.geom_type) == {"Point"}
    assert frame["grid_code"].notna().sum() == 981  # one point is outside every beat
    bad = cli("incidents", "export", tmp_path / "out.xlsx")
    assert bad.exit_code == 2 and ".geojson" in bad.output
