"""POST /api/v1/grids/import: multipart upload, dry run, commit, refusal, roles, limits."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from geo.settings import Settings
from geo.store.db import session_scope

URL = "/api/v1/grids/import"
Auth = Callable[[str], dict[str, str]]


def grid_rows(db_url: str) -> int:
    with session_scope(db_url) as s:
        return int(s.execute(text("SELECT count(*) FROM grid")).scalar_one())


def upload(client: TestClient, path: Path, headers: dict[str, str], **form: Any) -> Any:
    with path.open("rb") as fh:
        return client.post(URL, headers=headers, files={"file": (path.name, fh)},
                           data={"code_field": "BEAT_NUM", **form})


def test_dry_run_then_commit(client: TestClient, auth: Auth, shared_data: Path,
                             db_url: str) -> None:
    beats = shared_data / "chicago" / "police_beats.geojson"
    dry = upload(client, beats, auth("planner"))
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["source"] == "police_beats.geojson" and not body["committed"]
    assert body["counts"]["features"] == 277 and body["counts"]["codes"] == 275
    assert body["plan"]["created"] == 275 and body["written"] is None
    for key in ("invalid_geometries", "overlaps", "gaps", "outside_parent", "problems"):
        assert body[key] == []
    assert grid_rows(db_url) == 0
    done = upload(client, beats, auth("planner"), commit="true")
    assert done.status_code == 200, done.text
    assert done.json()["committed"] and done.json()["written"]["created"] == 275
    assert grid_rows(db_url) == 275
    again = upload(client, beats, auth("admin"), commit="true")
    assert again.json()["written"]["unchanged"] == 275 and grid_rows(db_url) == 275


def test_refused_commit_answers_422_with_the_report(client: TestClient, auth: Auth,
                                                    shared_data: Path, db_url: str) -> None:
    bad = shared_data / "chicago" / "police_beats_simplified_bad_topology.geojson"
    answer = upload(client, bad, auth("planner"), commit="true")
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "refused" in detail["message"]
    assert len(detail["overlaps"]) > 300 and detail["gaps"]
    assert {"a", "b", "area_m2"} <= detail["overlaps"][0].keys()
    assert detail["blocked"] and not detail["committed"]
    assert grid_rows(db_url) == 0
    resolved = upload(client, bad, auth("planner"), commit="true", resolve_overlaps="true",
                      tolerance_m2="1")
    assert resolved.status_code == 200, resolved.text
    assert len(resolved.json()["resolved"]) == len(detail["overlaps"])
    assert grid_rows(db_url) == 275


def test_roles_and_tokens(client: TestClient, auth: Auth, shared_data: Path,
                          db_url: str) -> None:
    beats = shared_data / "chicago" / "police_beats.geojson"
    assert upload(client, beats, {}).status_code == 401
    forbidden = upload(client, beats, auth("dispatcher"), commit="true")
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"]["field"] == "role"
    assert grid_rows(db_url) == 0


def test_bad_uploads_name_what_is_wrong(client: TestClient, auth: Auth, tmp_path: Path,
                                        shared_data: Path, db_url: str) -> None:
    notes = tmp_path / "boundaries.txt"
    notes.write_text("not a boundary file")
    answer = upload(client, notes, auth("planner"))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail["field"] == "file" and detail["value"] == "boundaries.txt"
    assert ".geojson" in detail["valid"] and ".csv" in detail["valid"]
    # an archive without a Shapefile is named as sent (was the server's temp path)
    empty_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no shapes here")
    answer = upload(client, empty_zip, auth("planner"))
    detail = answer.json()["detail"]
    assert answer.status_code == 422 and (detail["field"], detail["value"]) == ("file",
                                                                               "bad.zip")
    assert "no .shp" in detail["message"] and "/tmp" not in detail["message"]
    beats = shared_data / "chicago" / "police_beats.geojson"
    wrong_field = upload(client, beats, auth("planner"), code_field="beat")
    assert wrong_field.status_code == 422
    assert wrong_field.json()["detail"]["value"] == "beat"
    assert "BEAT_NUM" in wrong_field.json()["detail"]["valid"]
    bad_crs = upload(client, beats, auth("planner"), crs="mars")
    assert bad_crs.status_code == 422 and bad_crs.json()["detail"]["field"] == "crs"
    for tolerance in ("inf", "1e9"):  # inf hid every overlap and committed them
        hidden = upload(client, beats, auth("planner"), commit="true", tolerance_m2=tolerance)
        assert hidden.status_code == 422, hidden.text
        assert hidden.json()["detail"]["field"] == "tolerance_m2"
    nul = upload(client, beats, auth("planner"), code_field="BEAT_NUM", level="gr\x00id")
    assert nul.status_code == 422 and nul.json()["detail"]["field"] == "level", nul.text
    assert grid_rows(db_url) == 0


def test_upload_size_limit(db_url: str, auth: Auth, shared_data: Path) -> None:
    beats = shared_data / "chicago" / "police_beats.geojson"
    assert beats.stat().st_size > 1024 * 1024
    with TestClient(create_app(Settings(database_url=db_url, max_upload_mb=1))) as small:
        answer = upload(small, beats, auth("planner"), commit="true")
    assert answer.status_code == 413
    assert answer.json()["detail"]["field"] == "file"
    assert grid_rows(db_url) == 0


def test_a_misspelt_option_is_refused_not_ignored(client: TestClient, auth: Auth,
                                                  shared_data: Path, db_url: str) -> None:
    beats = shared_data / "chicago" / "police_beats.geojson"
    answer = upload(client, beats, auth("planner"), comit="true")
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "comit"
    assert "commit" in answer.json()["detail"]["valid"] and grid_rows(db_url) == 0
