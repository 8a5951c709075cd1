"""``POST /api/v1/incidents/bulk``: the bulk import over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import MultiPolygon, box
from sqlalchemy import text

from geo.store.db import session_scope
from geo.store.grids import GridRecord, write_versions
from geo.store.roster_write import CategoryRecord, upsert_categories

URL = "/api/v1/incidents/bulk"
Auth = Callable[[str], dict[str, str]]

CSV = ("ref,lon,lat,category,when\n"
       "r1,119.301,26.081,E0101,2025-06-02 09:30\n"
       "r2,119.309,26.089,,2025-06-02 10:00\n"
       "r3,26.081,119.301,E0101,\n"
       "r1,119.302,26.082,E0101,\n")


@pytest.fixture
def city(db_url: str) -> str:
    with session_scope(db_url) as s:
        write_versions(s, [GridRecord("G1", "网格一", "grid",
                                      MultiPolygon([box(119.30, 26.08, 119.31, 26.09)]))])
        upsert_categories(s, [CategoryRecord("E0101", "暴露垃圾", "Exposed rubbish", "event",
                                             "环卫处", 4.0)])
    return db_url


def count(db_url: str) -> int:
    with session_scope(db_url) as s:
        return int(s.execute(text("SELECT count(*) FROM incident")).scalar_one())


def post(client: TestClient, headers: dict[str, str], body: str, name: str = "in.csv",
         **form: str) -> object:
    fields = {"external_id_field": "ref", "time_field": "when", "default_category": "E0101",
              "source": "hotline", **form}
    return client.post(URL, headers=headers, files={"file": (name, body.encode(), "text/csv")},
                       data={k: v for k, v in fields.items() if v})


def test_upload_imports_rejects_and_counts_duplicates(client: TestClient, auth: Auth,
                                                      city: str) -> None:
    response = post(client, auth("dispatcher"), CSV)
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["rows"], data["accepted"], data["duplicates"], data["rejected"]) == (4, 2, 1, 1)
    assert data["rejected_by_reason"] == {"bad lat": 1}
    [reject] = data["rejected_rows"]
    assert reject["row"] == 3 and reject["field"] == "lat" and "swapped" in reject["reason"]
    assert reject["original"]["ref"] == "r3" and not data["rejected_rows_truncated"]
    assert data["fields"]["external_id"] == "ref" and data["by_rule"] == {"none": 2}
    assert count(city) == 2
    again = post(client, auth("admin"), CSV).json()
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert count(city) == 2
    with session_scope(city) as s:
        actors = set(s.execute(text("SELECT DISTINCT actor FROM incident_event")).scalars())
    assert len(actors) == 1 and actors.pop().startswith("import:test-dispatcher")


def test_geojson_upload_and_dry_run(client: TestClient, auth: Auth, city: str) -> None:
    body = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"ref": "g1"},
         "geometry": {"type": "Point", "coordinates": [119.305, 26.085]}}]})
    dry = post(client, auth("dispatcher"), body, "points.geojson", dry_run="true", time_field="")
    assert dry.status_code == 200 and dry.json()["accepted"] == 1 and dry.json()["dry_run"]
    assert count(city) == 0
    done = post(client, auth("dispatcher"), body, "points.geojson", time_field="")
    assert done.json()["accepted"] == 1 and done.json()["format"] == "geojson"
    assert count(city) == 1


def test_refusals_name_the_field(client: TestClient, auth: Auth, city: str) -> None:
    assert client.post(URL, files={"file": ("in.csv", CSV.encode())}).status_code == 401
    assert post(client, auth("patrol"), CSV).status_code == 403
    unknown = post(client, auth("dispatcher"), CSV, default_category="NOPE")
    assert unknown.status_code == 422
    assert unknown.json()["detail"]["field"] == "default_category"
    assert "E0101" in unknown.json()["detail"]["valid"]
    missing = post(client, auth("dispatcher"), CSV, lon_field="longitude")
    assert missing.status_code == 422 and missing.json()["detail"]["value"] == "longitude"
    assert "ref, lon, lat, category, when" in missing.json()["detail"]["valid"]
    kind = post(client, auth("dispatcher"), CSV, "in.xlsx")
    assert kind.status_code == 422 and kind.json()["detail"]["field"] == "file"
    named = post(client, auth("dispatcher"), CSV, "upload.bin", format="csv")
    assert named.status_code == 200 and named.json()["accepted"] == 2
    assert count(city) == 2


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"time_feild": "when"}, "time_feild", "is not a field of this form"),
    ({"bogus": "1"}, "bogus", "is not a field of this form"),
])
def test_an_unknown_form_field_is_refused_and_nothing_written(
        client: TestClient, auth: Auth, city: str, data: dict[str, str], field: str,
        message: str) -> None:
    response = post(client, auth("dispatcher"), CSV, **data)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["field"] == field and message in detail["message"]
    assert "time_field" in detail["valid"] and "file" in detail["valid"]
    assert count(city) == 0


def test_a_form_field_repeated_with_another_value_is_refused(client: TestClient, auth: Auth,
                                                             city: str) -> None:
    files = {"file": ("in.csv", CSV.encode(), "text/csv")}
    response = client.post(URL, headers=auth("dispatcher"), files=files,
                           data={"time_field": ["when", "ref"], "default_category": "E0101"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == "time_field"
    same = client.post(URL, headers=auth("dispatcher"), files=files,
                       data={"time_field": ["when", "when"], "default_category": "E0101"})
    assert same.status_code == 200, same.text
    two = client.post(URL, headers=auth("dispatcher"), data={"default_category": "E0101"},
                      files=[("file", ("a.csv", CSV.encode(), "text/csv")),
                             ("file", ("b.csv", b"x", "text/csv"))])
    assert two.status_code == 422, two.text
    assert two.json()["detail"]["value"] == "b.csv"  # not the UploadFile's repr


def test_unpaired_surrogates_and_json_numbers_are_rejected_rows(client: TestClient, auth: Auth,
                                                                city: str) -> None:
    """A lone surrogate in a text was a 500 (the quick path let it through to COPY, the reject
    could not be written as JSON); JSON numbers where texts belong were turned into texts,
    where ``POST /incidents`` refuses them."""
    point = {"lon": 119.301, "lat": 26.081, "category": "E0101"}
    rows = [{**point, "ref": "ok"}, {**point, "ref": "d", "description": "\ud800"},
            {**point, "ref": "c", "category": "E01\ud800"}, {**point, "ref": "e\udfff"},
            {**point, "ref": 7e3}, {**point, "ref": "n", "description": 12345}]
    body = "\n".join(json.dumps(r) for r in rows)  # json.dumps writes \ud800 escapes
    response = post(client, auth("dispatcher"), body, name="in.ndjson", time_field="")
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["accepted"], data["rejected"]) == (1, 5), data
    fields = {r["row"]: r["field"] for r in data["rejected_rows"]}
    assert fields == {2: "description", 3: "category", 4: "ref", 5: "ref", 6: "description"}
    assert data["rejected_rows"][1]["value"] == "E01\\ud800"  # written, not lost
    assert count(city) == 1


@pytest.mark.parametrize("escaped", [r"\udfff", r"\ud800", r"a\ud800\u0041"])
def test_an_unpaired_surrogate_in_geojson_is_a_rejected_row(client: TestClient, auth: Auth,
                                                            city: str, escaped: str) -> None:
    """ijson's fast parser read a lone high surrogate as "?" (stored so) and one followed by
    another escape as some other character; a lone low one refused the whole file."""
    point = {"type": "Point", "coordinates": [119.301, 26.081]}
    features = [{"type": "Feature", "geometry": point,
                 "properties": {"category": "E0101", "description": "@@"}},
                {"type": "Feature", "geometry": point,
                 "properties": {"category": "E0101", "description": "fine \U0001f600"}}]
    geojson = json.dumps({"type": "FeatureCollection", "features": features}).replace(
        "@@", escaped)  # json.dumps writes the emoji as a surrogate pair, which is fine
    response = post(client, auth("dispatcher"), geojson, name="in.geojson", time_field="",
                    external_id_field="")
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["accepted"], data["rejected"]) == (1, 1), data
    [reject] = data["rejected_rows"]
    assert (reject["row"], reject["field"]) == (1, "description")
    assert "surrogate" in reject["reason"]
    with session_scope(city) as s:
        assert s.execute(text("SELECT description FROM incident")).scalars().all() == [
            "fine \U0001f600"]


@pytest.mark.parametrize(("name", "body", "path"), [
    ("in.ndjson", '{"lon": 119.301, "lat": 26.081, "category": "E0101", "category": "E0102"}',
     "category"),
    ("in.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
     '{"type": "Point", "coordinates": [119.301, 26.081]}, "properties": {"category": "E0101", '
     '"x": {"k": 1, "k": 2}}}]}', "properties.x.k"),
    ("in.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", "type": "F", '
     '"geometry": {"type": "Point", "coordinates": [119.301, 26.081]}, "properties": {}}]}',
     "type"),
])
def test_a_key_given_twice_in_a_record_is_a_rejected_row(client: TestClient, auth: Auth,
                                                        city: str, name: str, body: str,
                                                        path: str) -> None:
    """The last value was taken silently (``POST /incidents`` refuses the same body)."""
    ok = ('{"lon": 119.301, "lat": 26.081, "category": "E0101"}' if name.endswith("ndjson")
          else None)
    payload = body + "\n" + ok if ok else body
    response = post(client, auth("dispatcher"), payload, name=name, time_field="",
                    external_id_field="")
    assert response.status_code == 200, response.text
    data = response.json()
    [reject] = data["rejected_rows"]
    assert reject["row"] == 1 and f"{path} is given twice" in reject["reason"], reject
    assert data["accepted"] == (1 if ok else 0)
    assert count(city) == data["accepted"]
