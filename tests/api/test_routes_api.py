"""``/api/v1/routes``: GeoJSON CRUD with validation, planning over HTTP, the routes CLI."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, box
from sqlalchemy import text
from typer.testing import CliRunner, Result

from api.cli import app as cli_app
from data.osm_io import OsmNetwork, read_osm_network
from geo.crs import gcj02_to_wgs84
from geo.settings import get_settings
from geo.store import db
from geo.store.grids import GridRecord, write_versions
from geo.store.network import replace_network

Auth = Callable[[str], dict[str, str]]
GEOD = Geod(ellps="WGS84")
G1, G2 = box(119.29, 26.07, 119.30, 26.08), box(119.30, 26.07, 119.31, 26.08)
LINE = [[119.292, 26.072], [119.298, 26.078], [119.305, 26.075]]
SHIFTS = [{"days": [0, 1, 2, 3, 4], "start": "19:00", "end": "23:00"}]


def _feature(coords: Any = None, **props: Any) -> dict[str, Any]:
    base = {"name": "夜巡一号线", "team": "T1", "grid_codes": ["G1", "G2"], "schedule": SHIFTS}
    base.update(props)
    return {"type": "Feature", "properties": {k: v for k, v in base.items() if v is not None},
            "geometry": {"type": "LineString", "coordinates": coords or LINE}}


@pytest.fixture
def setup(db_url: str) -> str:
    with db.session_scope(db_url) as s:
        write_versions(s, [GridRecord(code="G1", name="一", level="grid",
                                      geom=MultiPolygon([G1])),
                           GridRecord(code="G2", name="二", level="grid",
                                      geom=MultiPolygon([G2]))])
        s.execute(text("""INSERT INTO team (code, name, kind)
                          VALUES ('T1', '巡防一队', 'patrol'), ('T2', '巡防二队', 'patrol')"""))
    return db_url


def _count(db_url: str) -> int:
    with db.session_scope(db_url) as s:
        return int(s.execute(text("SELECT count(*) FROM patrol_route")).scalar_one())


# --------------------------------------------------------------------------- CRUD

def test_create_read_list_update_delete(client: TestClient, auth: Auth, setup: str) -> None:
    editor = auth("planner")
    made = client.post("/api/v1/routes", json=_feature(), headers=editor)
    assert made.status_code == 201, made.text
    body = made.json()
    rid = body["id"]
    assert made.headers["location"].endswith(f"/api/v1/routes/{rid}")
    props = body["properties"]
    assert props["code"] == f"R{rid}" and props["team"] == "T1" and props["schedule"] == SHIFTS
    assert props["grid_codes"] == ["G1", "G2"]
    assert body["geometry"]["type"] == "MultiLineString"
    assert body["geometry"]["coordinates"] == [LINE]
    lon, lat = np.array(LINE).T
    assert props["length_m"] == pytest.approx(GEOD.line_length(lon, lat), rel=1e-3)
    reader = auth("patrol")
    assert client.get(f"/api/v1/routes/{rid}", headers=reader).json() == body

    second = _feature(code="R-T2", team="T2", grid_codes=["G2"],
                      coords=[[119.302, 26.072], [119.308, 26.078]])
    assert client.post("/api/v1/routes", json=second, headers=editor).status_code == 201
    page = client.get("/api/v1/routes?limit=1", headers=reader).json()
    assert page["numberMatched"] == 2 and len(page["features"]) == 1
    assert any(link["rel"] == "next" for link in page["links"])
    by_team = client.get("/api/v1/routes?team=T2", headers=reader).json()
    assert [f["properties"]["code"] for f in by_team["features"]] == ["R-T2"]
    by_grid = client.get("/api/v1/routes?grid=G1", headers=reader).json()
    assert [f["id"] for f in by_grid["features"]] == [rid]
    for query, field in (("team=NOPE", "team"), ("team_id=99999", "team_id"),
                         ("grid=NOPE", "grid")):
        missing = client.get(f"/api/v1/routes?{query}", headers=reader)
        assert missing.status_code == 404, query
        assert missing.json()["detail"]["field"] == field

    renamed = client.patch(f"/api/v1/routes/{rid}", headers=editor,
                           json={"properties": {"name": "夜巡改", "team_id": None, "team": "T2"}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["properties"]["name"] == "夜巡改"
    assert renamed.json()["properties"]["team"] == "T2"
    assert renamed.json()["geometry"] == body["geometry"]
    # with a crs but no new geometry, the stored line is not converted again (it moved
    # about 590 m as if it were GCJ-02); an empty geometry object is refused
    again = client.patch(f"/api/v1/routes/{rid}?crs=gcj02", headers=editor,
                         json={"geometry": None, "properties": {"name": "夜巡再改"}})
    assert again.status_code == 200, again.text
    assert again.json()["geometry"] == body["geometry"]
    empty = client.patch(f"/api/v1/routes/{rid}?crs=gcj02", headers=editor,
                         json={"geometry": {}, "properties": {"name": "x"}})
    assert empty.status_code == 422, empty.text
    moved = [[119.301, 26.071], [119.309, 26.079]]
    replaced = client.put(f"/api/v1/routes/{rid}", headers=editor,
                          json=_feature(coords=moved, grid_codes=["G2"]))
    assert replaced.status_code == 200
    assert replaced.json()["properties"]["code"] == f"R{rid}"  # kept
    assert replaced.json()["geometry"]["coordinates"] == [moved]

    assert client.delete(f"/api/v1/routes/{rid}", headers=editor).status_code == 204
    gone = client.get(f"/api/v1/routes/{rid}", headers=reader)
    assert gone.status_code == 404 and gone.json()["detail"]["field"] == "route_id"
    assert _count(setup) == 1


def test_roles(client: TestClient, auth: Auth, setup: str) -> None:
    assert client.get("/api/v1/routes").status_code == 401
    assert client.post("/api/v1/routes", json=_feature(), headers=auth("patrol")).status_code \
        == 403
    assert client.post("/api/v1/routes", json=_feature(),
                       headers=auth("dispatcher")).status_code == 201
    assert client.post("/api/v1/routes/plan", json={"grid": "G1", "length_m": 1000},
                       headers=auth("patrol")).status_code == 403


@pytest.mark.parametrize(("body", "field", "hint"), [
    ({"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                       "coordinates": [119.295, 26.075]}},
     "geometry", "LineString"),
    (_feature(coords=[[119.292, 26.072], [119.292, 26.072]]), "geometry.coordinates",
     "distinct"),
    (_feature(coords=[[119.292, 26.072], [119.298, "north"]]), "geometry.coordinates[1]",
     "finite"),
    (_feature(coords=[[26.072, 119.292], [26.078, 119.298]]), "lat", "swapped"),
    (_feature(team="NOPE"), "properties.team", "existing team"),
    (_feature(team=None), "properties.team", "team_id"),
    (_feature(grid_codes=["G1", "G9"]), "properties.grid_codes", "current grids"),
    (_feature(grid_codes=[]), "properties.grid_codes", "non-empty"),
    (_feature(schedule=[{"days": [0], "start": "25:00", "end": "23:00"}]),
     "properties.schedule[0].start", "HH:MM"),
    (_feature(name=" "), "properties.name", "non-empty"),
    (_feature(colour="red"), "properties.colour", "keys"),
    ({"type": "FeatureCollection", "features": []}, "type", "Feature"),
])
def test_bad_routes_are_refused_naming_the_field(client: TestClient, auth: Auth, setup: str,
                                                 body: dict[str, Any], field: str,
                                                 hint: str) -> None:
    answer = client.post("/api/v1/routes", json=body, headers=auth("planner"))
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert field in detail["field"], detail
    assert hint.lower() in (detail["message"] + str(detail.get("valid"))).lower(), detail
    assert _count(setup) == 0


def test_outside_its_grids_beyond_the_tolerance_is_refused(client: TestClient, auth: Auth,
                                                           setup: str) -> None:
    editor = auth("planner")
    # G1 only: the line runs ~500 m into G2
    far = client.post("/api/v1/routes", json=_feature(grid_codes=["G1"]), headers=editor)
    assert far.status_code == 422
    detail = far.json()["detail"]
    assert detail["field"] == "geometry" and "20 m" in detail["valid"]
    off_lon, off_lat = detail["farthest_point"]
    assert not G1.buffer(1e-4).contains(LineString([(off_lon, off_lat)] * 2).centroid)
    # 10 m east of G1 (tolerance 20 m) is fine; 40 m is not
    deg_10m = 10 / (111_320 * np.cos(np.radians(26.075)))
    near = [[119.292, 26.072], [119.30 + deg_10m, 26.075]]
    assert client.post("/api/v1/routes", json=_feature(coords=near, grid_codes=["G1"]),
                       headers=editor).status_code == 201
    off = [[119.292, 26.072], [119.30 + 4 * deg_10m, 26.075]]
    refused = client.post("/api/v1/routes", json=_feature(coords=off, grid_codes=["G1"]),
                          headers=editor)
    assert refused.status_code == 422
    assert 35 < float(refused.json()["detail"]["value"].split()[0]) < 45
    assert _count(setup) == 1


def test_code_clash_and_bad_patch_change_nothing(client: TestClient, auth: Auth,
                                                 setup: str) -> None:
    editor = auth("planner")
    first = client.post("/api/v1/routes", json=_feature(code="A"), headers=editor).json()
    clash = client.post("/api/v1/routes", json=_feature(code="A"), headers=editor)
    assert clash.status_code == 409 and clash.json()["detail"]["value"] == "A"
    bad = client.patch(f"/api/v1/routes/{first['id']}", headers=editor,
                       json={"properties": {"grid_codes": ["G1"]}})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "geometry"
    collection = client.patch(f"/api/v1/routes/{first['id']}", headers=editor,
                              json={"type": "FeatureCollection", "features": []})
    assert collection.status_code == 422  # "features" was refused; alone the type gave a 200
    alone = client.patch(f"/api/v1/routes/{first['id']}", headers=editor,
                         json={"type": "FeatureCollection"})
    assert alone.status_code == 422 and alone.json()["detail"]["field"] == "type"
    assert client.get(f"/api/v1/routes/{first['id']}", headers=editor).json() == first
    assert _count(setup) == 1


def test_a_code_given_by_hand_does_not_block_the_default_codes(client: TestClient, auth: Auth,
                                                              setup: str) -> None:
    editor = auth("planner")
    first = client.post("/api/v1/routes", json=_feature(), headers=editor).json()
    ahead = f"R{first['id'] + 2}"  # the default code of the route after next
    client.post("/api/v1/routes", json=_feature(code=ahead), headers=editor)
    third = client.post("/api/v1/routes", json=_feature(), headers=editor)
    assert third.status_code == 201, third.text  # was a 409 "stored by a concurrent request"
    assert third.json()["id"] == first["id"] + 2
    assert third.json()["properties"]["code"] == f"{ahead}-2"


def test_gcj02_geometry_is_stored_in_wgs84(client: TestClient, auth: Auth, setup: str) -> None:
    gcj = [[119.297, 26.074], [119.309, 26.075]]
    made = client.post("/api/v1/routes?crs=gcj02", json=_feature(coords=gcj),
                       headers=auth("planner"))
    assert made.status_code == 201, made.text
    stored = np.array(made.json()["geometry"]["coordinates"][0])
    lon, lat = gcj02_to_wgs84(np.array(gcj)[:, 0], np.array(gcj)[:, 1])
    assert np.allclose(stored, np.column_stack([lon, lat]), atol=2e-7)
    _, _, shift = GEOD.inv(stored[0, 0], stored[0, 1], gcj[0][0], gcj[0][1])
    assert 100 < shift < 900  # GCJ-02 offsets are hundreds of metres in Fuzhou


# --------------------------------------------------------------------------- planning

@pytest.fixture(scope="module")
def monaco(shared_data: Path) -> OsmNetwork:
    return read_osm_network(shared_data / "osm" / "monaco.osm.pbf")


def test_plan_over_http_then_keep_the_plan(client: TestClient, auth: Auth, db_url: str,
                                           monaco: OsmNetwork) -> None:
    now = dt.datetime.now(dt.UTC)
    with db.session_scope(db_url) as s:
        replace_network(s, "monaco", monaco.edges, source="monaco.osm.pbf")
        write_versions(s, [GridRecord(code="MC", name="Monaco", level="grid",
                                      geom=MultiPolygon([box(7.409, 43.725, 7.440, 43.752)]))])
        s.execute(text("""INSERT INTO category (code, name_zh, name_en, kind, department,
                                                sla_hours)
                          VALUES ('C01', '测', 't', 'event', 'd', 8);
                          INSERT INTO team (code, name, kind, grid_code)
                          VALUES ('MCP', 'Monaco patrol', 'patrol', 'MC')"""))
        for lon, lat, n in ((7.4276, 43.7396, 5), (7.4240, 43.7350, 3), (7.4200, 43.7310, 2)):
            for i in range(n):
                s.execute(text("""INSERT INTO incident (source, category_code, geom, reported_at)
                                  VALUES ('app', 'C01', ST_SetSRID(ST_MakePoint(:x, :y), 4326),
                                          :t)"""), {"x": lon, "y": lat,
                                                    "t": now - dt.timedelta(days=i + 1)})
    editor = auth("planner")
    answer = client.post("/api/v1/routes/plan", headers=editor,
                         json={"team": "MCP", "length_m": 5000, "margin_m": 0})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    props = plan["properties"]
    assert props["closed"] and props["length_m"] <= 5000 and props["hotspots_total"] == 3
    assert answer.headers["content-type"].startswith("application/geo+json")
    keep = {"type": "Feature", "geometry": plan["geometry"],
            "properties": {"name": "planned", "team": "MCP", "grid_codes": ["MC"]}}
    kept = client.post("/api/v1/routes", json=keep, headers=editor)
    assert kept.status_code == 201, kept.text
    assert kept.json()["properties"]["length_m"] == pytest.approx(props["length_m"], rel=1e-3)
    # the plan's answer as it is, with a name and a team: its grid becomes grid_codes
    as_is = {**plan, "properties": {**props, "name": "as planned", "team": "MCP"}}
    posted = client.post("/api/v1/routes", json=as_is, headers=editor)
    assert posted.status_code == 201, posted.text
    assert posted.json()["properties"]["grid_codes"] == ["MC"]
    for body, field in (({"grid": "MC", "length_m": 5000, "crs": "foo"}, "crs"),
                        ({"grid": "MC", "length_m": 5000, "speed": 3}, "speed"),
                        ({"grid": "MC", "length_m": "far"}, "length_m"),
                        ({"grid": "MC", "length_m": 5000, "start": {"lon": 43.73, "lat": 7.42,
                                                                    "alt": 1}}, "start.alt"),
                        ({"grid": "MC", "length_m": 5000, "start": {"lon": 7.42, "lat": 143.0}},
                         "start.lat"),
                        ({"grid": "MC", "length_m": 5000, "start": {"lon": math.nan,
                                                                    "lat": 43.73}}, "start.lon"),
                        ({"grid": "MC", "length_m": 5000, "margin_m": math.nan}, "margin_m"),
                        ({"grid": "MC", "length_m": 5000, "margin_m": math.inf}, "margin_m"),
                        ({"grid": "MC", "length_m": 5000, "margin_m": 1e7}, "margin_m")):
        bad = client.post("/api/v1/routes/plan", content=json.dumps(body),  # NaN as JS writes
                          headers={**editor, "Content-Type": "application/json"})
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == field, bad.text
    budget = client.post("/api/v1/routes/plan", json={"grid": "MC", "length_m": True},
                         headers=editor)  # was read as a 1 m budget
    assert budget.status_code == 422 and budget.json()["detail"]["value"] is True
    swapped = client.post("/api/v1/routes/plan", headers=editor, json={
        "grid": "MC", "length_m": 5000, "start": {"lon": 43.7396, "lat": 7.4276}})
    assert swapped.status_code == 422 and "look swapped" in swapped.json()["detail"]["message"]
    networks = client.get("/api/v1/networks", headers=auth("patrol")).json()
    assert [n["name"] for n in networks] == ["monaco"]


# --------------------------------------------------------------------------- CLI import

@pytest.fixture
def cli(setup: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("DATABASE_URL", setup)
    monkeypatch.delenv("PATROLGRID_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(a) for a in args])
    get_settings.cache_clear()


def _collection(*features: dict[str, Any]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def test_cli_import_is_all_or_nothing_and_idempotent(cli: Callable[..., Result], setup: str,
                                                     tmp_path: Path) -> None:
    good = [_feature(code="A"), _feature(code="B", team="T2", grid_codes=["G2"],
                                         coords=[[119.302, 26.072], [119.308, 26.078]])]
    bad = tmp_path / "bad.geojson"
    bad.write_text(_collection(*good, _feature(code="C", grid_codes=["G1"])), encoding="utf-8")
    refused = cli("routes", "import", bad)
    assert refused.exit_code == 2 and "features[2]" in refused.output
    assert _count(setup) == 0
    path = tmp_path / "routes.geojson"
    path.write_text(_collection(*good), encoding="utf-8")
    assert cli("routes", "import", path, "--dry-run").exit_code == 0
    assert _count(setup) == 0
    first = cli("routes", "import", path)
    assert first.exit_code == 0 and "2 new" in first.output, first.output
    again = cli("routes", "import", path)
    assert "2 unchanged" in again.output
    out = tmp_path / "export.geojson"
    assert cli("routes", "export", out).exit_code == 0
    assert "2 unchanged" in cli("routes", "import", out).output
    listed = cli("routes", "list", "--team", "T2")
    assert "B" in listed.output and "1 patrol route" in listed.output


def test_cli_import_names_text_postgresql_cannot_store(cli: Callable[..., Result],
                                                       setup: str, tmp_path: Path) -> None:
    path = tmp_path / "nul.geojson"
    path.write_text(_collection(_feature(code="A", name="夜\u0000巡")), encoding="utf-8")
    refused = cli("routes", "import", path)
    out = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "name" in out and "Traceback" not in out, out
    assert _count(setup) == 0


def test_cli_imports_a_geopackage_with_text_fields(cli: Callable[..., Result], setup: str,
                                                   tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"code": ["P1"], "name": ["白天巡"], "team": ["T1"], "grid_codes": ["G1, G2"],
         "schedule": ["mon-fri 08:00-12:00; sat 09:00-11:00"]},
        geometry=[LineString(LINE)], crs="EPSG:4326")
    path = tmp_path / "routes.gpkg"
    frame.to_file(path, driver="GPKG")
    result = cli("routes", "import", path)
    assert result.exit_code == 0, result.output
    with db.session_scope(setup) as s:
        row = s.execute(text("SELECT grid_codes, schedule FROM patrol_route")).one()
    assert row.grid_codes == ["G1", "G2"]
    assert row.schedule == [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "12:00"},
                            {"days": [5], "start": "09:00", "end": "11:00"}]
    # two layers: the first alone was imported, silently
    frame.assign(code=["P2"]).to_file(path, driver="GPKG", layer="two")
    for args, words in (((), "has 2 layers: say which one"), (("--layer", "nope"), "no layer")):
        refused = cli("routes", "import", path, *args)
        out = " ".join(refused.output.split())
        assert refused.exit_code == 2 and words in out and "two" in out, out


def test_cli_import_names_nan_and_unreadable_nesting(cli: Callable[..., Result], setup: str,
                                                    tmp_path: Path) -> None:
    """NaN in attrs was a traceback from the database; a file nested too deep a traceback
    from the parser."""
    path = tmp_path / "nan.geojson"
    path.write_text(_collection(_feature(code="A")).replace(
        '"properties": {', '"properties": {"attrs": {"x": NaN}, ', 1), encoding="utf-8")
    refused = cli("routes", "import", path)
    out = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "attrs.x" in out and "Traceback" not in out, out
    deep = tmp_path / "deep.geojson"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    refused = cli("routes", "import", deep)
    assert refused.exit_code == 2 and "Traceback" not in refused.output, refused.output
    assert _count(setup) == 0
