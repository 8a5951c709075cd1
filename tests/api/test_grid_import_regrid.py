"""A grid import places the open incidents of the grids it writes again, as a plan apply does.

It used to leave them on the closed versions, with the old grid and worker: a point the
new polygons give to G12 stayed with G11's worker, while ``locate`` and every new report
there went to G12.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from shapely.geometry import box, mapping
from sqlalchemy import text

from geo.store import db
from tests.api.test_plan_apply import query, snapshot
from tests.api.test_plans_api import IN_G11_EAST, ids, reported

Auth = Callable[[str], dict[str, str]]
__all__ = ["ids", "reported"]  # fixtures used here
IN_C2_ONLY = (120.035, 30.01)  # C2 has no grid there yet


def _file(tmp: Any) -> Any:
    features = [{"type": "Feature", "geometry": mapping(geom),
                 "properties": {"code": code, "name": code, "parent": parent, "level": "grid"}}
                for code, parent, geom in (
                    ("G11", "C1", box(120.00, 30.00, 120.008, 30.02)),
                    ("G12", "C1", box(120.008, 30.00, 120.02, 30.02)),
                    ("G22", "C2", box(120.03, 30.00, 120.04, 30.02)))]
    path = tmp / "redrawn.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _import(client: TestClient, auth: Auth, path: Any, commit: bool) -> dict[str, Any]:
    with path.open("rb") as fh:
        answer = client.post("/api/v1/grids/import", headers=auth("planner"),
                             files={"file": (path.name, fh, "application/geo+json")},
                             data={"code_field": "code", "name_field": "name",
                                   "parent_field": "parent", "level_field": "level",
                                   "commit": str(commit).lower()})
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def test_a_grid_import_moves_the_open_incidents_the_new_polygons_give_elsewhere(
        client: TestClient, auth: Auth, reported: list[int], db_url: str, tmp_path: Any) -> None:
    made = client.post("/api/v1/incidents", headers=auth("dispatcher"), json={
        "lon": IN_C2_ONLY[0], "lat": IN_C2_ONLY[1], "category": "C0101", "source": "hotline"})
    assert made.json()["grid"]["code"] == "C2"
    in_c2 = made.json()["id"]
    closed = reported[0]
    client.post(f"/api/v1/incidents/{closed}/status", headers=auth("dispatcher"),
                json={"status": "rejected", "note": "not ours"})
    with db.session_scope(db_url) as s:  # taken on by WG11: goes out again to its new worker
        s.execute(text("UPDATE incident SET status = 'in_progress' WHERE id = :i"),
                  {"i": reported[2]})
    path = _file(tmp_path)
    before = snapshot(db_url)
    dry = _import(client, auth, path, commit=False)
    assert dry["incidents"]["moved"] == 2 and snapshot(db_url) == before  # said, not done
    done = _import(client, auth, path, commit=True)
    assert done["written"]["updated"] == 2 and done["written"]["created"] == 1
    moves = {m["id"]: (m["from"], m["to"]) for m in done["incidents"]["incidents"]}
    assert moves == {reported[2]: ("G11", "G12"), in_c2: ("C2", "G22")}
    now = dict(query(db_url, "SELECT code, id FROM grid WHERE valid_to IS NULL"))
    rows = {r.id: r for r in query(db_url, "SELECT i.id, i.grid_code, i.grid_id, w.code AS w "
                                           "FROM incident i LEFT JOIN worker w "
                                           "ON w.id = i.worker_id")}
    assert (rows[reported[2]].grid_code, rows[reported[2]].grid_id) == ("G12", now["G12"])
    assert rows[in_c2].grid_code == "G22"
    # the open ones that stayed point at their grid's new version; the rejected one does not
    assert rows[reported[1]].grid_id == now["G11"] and rows[reported[3]].grid_id == now["G12"]
    assert rows[closed].grid_id != now["G11"]
    [event] = query(db_url, "SELECT actor, data, from_status, to_status FROM incident_event "
                            "WHERE incident_id = :i AND data->>'kind' = 'regrid'", i=reported[2])
    assert event.actor.startswith("grids:") and event.data["to_grid"] == "G12"
    assert (event.from_status, event.to_status) == ("in_progress", "dispatched")
    assert rows[reported[2]].w not in (None, "WG11")  # whoever the chain chose now
    lon, lat = IN_G11_EAST
    located = client.get("/api/v1/locate", params={"lon": lon, "lat": lat},
                         headers=auth("patrol")).json()
    assert located["chain"][-1]["code"] == rows[reported[2]].grid_code
    again = _import(client, auth, path, commit=True)  # nothing changes: nothing moves
    assert again["incidents"] == {"moved": 0, "kept_grid": 0, "incidents": []}


def test_a_grid_that_grows_back_takes_the_incidents_its_community_held(
        client: TestClient, auth: Auth, reported: list[int], db_url: str, tmp_path: Any) -> None:
    inside = reported[1]  # at (120.003, 30.005) in G11
    whole = box(120.00, 30.00, 120.01, 30.02)
    holed = whole.difference(box(120.0025, 30.0045, 120.0035, 30.0055))

    def g11(geom: Any) -> Any:
        path = tmp_path / "g11.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "geometry": mapping(geom),
            "properties": {"code": "G11", "name": "G11", "parent": "C1", "level": "grid"}}]}))
        return path

    out = _import(client, auth, g11(holed), commit=True)
    assert out["incidents"]["incidents"] == [
        {**out["incidents"]["incidents"][0], "id": inside, "from": "G11", "to": "C1"}]
    back = _import(client, auth, g11(whole), commit=True)  # G11 updated; C1 is its parent
    assert [(m["id"], m["from"], m["to"]) for m in back["incidents"]["incidents"]] == [
        (inside, "C1", "G11")]  # it stayed on C1, while locate said G11
    assert query(db_url, "SELECT grid_code FROM incident WHERE id = :i", i=inside)[0][0] == "G11"
