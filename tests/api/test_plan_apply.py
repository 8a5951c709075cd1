"""Applying plans over HTTP: versions, roster, open incidents, conflicts, rollback, history.

The small city of ``tests/geo/intake_city.py`` (C1 holds G11 and G12) with the
four incidents of ``test_plans_api.reported``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from sqlalchemy import text

from geo.store import db
from tests.api.test_plans_api import (
    IN_G11_EAST,
    URL,
    edit,
    ids,
    new_plan,
    reported,
    square,
)

Auth = Callable[[str], dict[str, str]]
__all__ = ["ids", "reported"]  # fixtures used here


def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    with db.session_scope(db_url) as s:
        return list(s.execute(text(sql), params).all())


def snapshot(db_url: str) -> dict[str, Any]:
    """Everything an apply may change."""
    return {
        "grids": query(db_url, "SELECT id, code, version, valid_to, ST_AsText(geom) FROM grid "
                               "ORDER BY id"),
        "duties": query(db_url, "SELECT id, worker_id, grid_code, kind FROM duty ORDER BY id"),
        "incidents": query(db_url, "SELECT id, grid_code, grid_id, worker_id, rule, version "
                                   "FROM incident ORDER BY id"),
        "events": query(db_url, "SELECT count(*) FROM incident_event"),
        "plans": query(db_url, "SELECT id, status, applied_at FROM plan ORDER BY id"),
        "epoch": query(db_url, "SELECT epoch FROM grid_epoch"),
    }


def apply(client: TestClient, auth: Auth, plan_id: int, status: int = 200) -> dict[str, Any]:
    answer = client.post(f"{URL}/{plan_id}/apply", headers=auth("planner"))
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out if status == 200 else out["detail"]


def test_apply_writes_versions_moves_incidents_and_keeps_history(
        client: TestClient, auth: Auth, reported: list[int], db_url: str) -> None:
    closed = reported[0]
    with db.session_scope(db_url) as s:
        s.execute(text("UPDATE incident SET status = 'closed' WHERE id = :id"), {"id": closed})
        # WG11 had taken on two: the one that moves to G12 goes out again to its new worker
        s.execute(text("UPDATE incident SET status = 'accepted' WHERE id IN (:a, :b)"),
                  {"a": reported[1], "b": reported[2]})
    v1 = dict(query(db_url, "SELECT code, id FROM grid WHERE valid_to IS NULL"))
    epoch = query(db_url, "SELECT epoch FROM grid_epoch")[0][0]
    before = query(db_url, "SELECT now()")[0][0]
    plan_id = new_plan(client, auth)
    edit(client, auth, plan_id, op="replace", code="G12", geometry=square(120.008, 120.02))
    out = apply(client, auth, plan_id)
    assert out["written"] == {"created": [], "updated": ["G11", "G12"], "unchanged": []}
    assert out["versions"] == {"G11": 2, "G12": 2}
    assert out["incidents"]["moved"] == 1 and out["incidents"]["kept_grid"] == 2
    [moved] = out["incidents"]["incidents"]
    assert (moved["id"], moved["from"], moved["to"]) == (reported[2], "G11", "G12")
    rows = dict(query(db_url, "SELECT code, valid_to FROM grid WHERE version = 1 "
                              "AND code IN ('G11', 'G12')"))
    starts = dict(query(db_url, "SELECT code, valid_from FROM grid WHERE version = 2"))
    assert rows["G11"] == rows["G12"] == starts["G11"] == starts["G12"]
    assert query(db_url, "SELECT epoch FROM grid_epoch")[0][0] > epoch
    # the incident that moved: new grid version, its worker chosen again, one event
    v2 = dict(query(db_url, "SELECT code, id FROM grid WHERE valid_to IS NULL"))
    inc = {r.id: r for r in query(db_url, "SELECT id, grid_code, grid_id, worker_id, rule "
                                          "FROM incident")}
    assert (inc[reported[2]].grid_code, inc[reported[2]].grid_id) == ("G12", v2["G12"])
    [event] = query(db_url, "SELECT actor, from_status, to_status, data FROM incident_event "
                            "WHERE data->>'kind' = 'replan'")
    assert event.data["from_grid"] == "G11" and event.data["to_grid"] == "G12"
    assert event.data["plan_id"] == plan_id
    assert event.data["to_worker"] != event.data["from_worker"]
    assert (event.from_status, event.to_status, moved["status"]) == ("accepted", "dispatched",
                                                                      "dispatched")
    status = dict(query(db_url, "SELECT id, status FROM incident"))
    assert (status[reported[1]], status[reported[2]]) == ("accepted", "dispatched")
    # open incidents that stayed point at the new version; the closed one keeps the old one
    assert inc[reported[1]].grid_id == v2["G11"] and inc[reported[3]].grid_id == v2["G12"]
    assert inc[closed].grid_id == v1["G11"]
    shown = {i: client.get(f"/api/v1/incidents/{i}", headers=auth("dispatcher")).json()
             for i in (closed, reported[2])}
    assert shown[closed]["properties"]["grid_version"] == 1
    assert shown[reported[2]]["properties"]["grid_code"] == "G12"
    assert shown[reported[2]]["properties"]["grid_version"] == 2
    assert shown[reported[2]]["events"][-1]["data"]["kind"] == "replan"
    # history: the grids and locate as of before the apply
    at = before.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    old = client.get("/api/v1/grids", params={"parent": "C1", "at": at},
                     headers=auth("patrol")).json()
    old_geoms = {f["properties"]["code"]: (f["properties"]["version"], shape(f["geometry"]))
                 for f in old["features"]}
    assert old_geoms["G11"][0] == 1 and old_geoms["G11"][1].equals(box(120.0, 30.0, 120.01,
                                                                       30.02))
    lon, lat = IN_G11_EAST
    then = client.get("/api/v1/locate", params={"lon": lon, "lat": lat, "at": at},
                      headers=auth("patrol")).json()
    now = client.get("/api/v1/locate", params={"lon": lon, "lat": lat},
                     headers=auth("patrol")).json()
    assert then["chain"][-1]["code"] == "G11" and now["chain"][-1]["code"] == "G12"
    # a new incident there goes to G12 at once: the assignment index was rebuilt
    answer = client.post("/api/v1/incidents", headers=auth("dispatcher"), json={
        "lon": lon, "lat": lat, "category": "E0101", "source": "hotline"})
    assert answer.json()["grid"]["code"] == "G12"
    assert query(db_url, "SELECT grid_id FROM incident WHERE id = :id",
                 id=answer.json()["id"])[0][0] == v2["G12"]
    plan = client.get(f"{URL}/{plan_id}", headers=auth("planner")).json()
    assert plan["status"] == "applied" and plan["applied"]["versions"] == {"G11": 2, "G12": 2}
    assert apply(client, auth, plan_id, 409)["field"] == "status"


def test_merge_moves_the_roster_to_the_heir(client: TestClient, auth: Auth,
                                            reported: list[int], db_url: str) -> None:
    plan_id = new_plan(client, auth)
    edit(client, auth, plan_id, op="merge", codes=["G11", "G12"], into="G11")
    out = apply(client, auth, plan_id)
    assert out["retired"] == ["G12"] and out["roster_to_confirm"] is True
    [moved] = out["roster"]
    assert (moved["grid"], moved["to"]) == ("G12", "G11")
    assert [(d["worker"], d["kind"], d["to"]) for d in moved["duties"]] == \
        [("WG12", "primary", "G11")]
    assert query(db_url, "SELECT count(*) FROM duty WHERE grid_code = 'G12'")[0][0] == 0
    assert query(db_url, "SELECT valid_to IS NOT NULL FROM grid WHERE code = 'G12'")[0][0]
    assert query(db_url, "SELECT count(*) FROM incident WHERE grid_code = 'G12'")[0][0] == 0
    assert out["incidents"]["moved"] == 1


def test_the_second_plan_on_the_same_grids_gets_409(client: TestClient, auth: Auth,
                                                    reported: list[int], db_url: str) -> None:
    first, second, other = (new_plan(client, auth) for _ in range(3))
    edit(client, auth, first, op="replace", code="G12", geometry=square(120.008, 120.02))
    edit(client, auth, second, op="replace", code="G11", geometry=square(120.0, 120.012))
    edit(client, auth, other, op="replace", code="G21", geometry=square(120.02, 120.03),
         status=422)  # G21 is not a child of C1: plans only redraw one parent
    apply(client, auth, first)
    state = snapshot(db_url)
    detail = apply(client, auth, second, 409)
    assert detail["field"] == "grids" and sorted(detail["value"]) == ["G11", "G12"]
    assert detail["changed_by_plans"] == [first]
    assert "G11 (drafted on version 1, now 2)" in detail["message"]
    assert snapshot(db_url) == state
    stale = client.get(f"{URL}/{second}", headers=auth("planner")).json()["stale"]
    assert [s["code"] for s in stale] == ["G11", "G12"]


def test_a_plan_that_does_not_validate_is_refused(client: TestClient, auth: Auth,
                                                  reported: list[int], db_url: str) -> None:
    plan_id = new_plan(client, auth)
    assert apply(client, auth, plan_id, 422)["field"] == "edits"
    edit(client, auth, plan_id, op="replace", code="G11", geometry=square(120.0, 120.008),
         take_from_neighbours=False)
    state = snapshot(db_url)
    detail = apply(client, auth, plan_id, 422)
    assert detail["field"] == "plan"
    assert [p["kind"] for p in detail["validation"]["problems"]] == ["gap"]
    assert snapshot(db_url) == state


def test_a_failure_anywhere_leaves_everything_as_it_was(
        client: TestClient, auth: Auth, reported: list[int], db_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan_id = new_plan(client, auth)
    edit(client, auth, plan_id, op="merge", codes=["G11", "G12"], into="G11")
    state = snapshot(db_url)
    from geo.plans import apply as apply_mod

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    # the last step before the plan is marked: grids, duties and incidents are written by now
    monkeypatch.setattr(apply_mod.store, "mark_applied", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        client.post(f"{URL}/{plan_id}/apply", headers=auth("planner"))
    assert snapshot(db_url) == state
    monkeypatch.undo()
    assert apply(client, auth, plan_id)["retired"] == ["G12"]
    assert snapshot(db_url) != state


def test_an_incident_snapped_onto_a_grid_from_outside_moves_with_it(
        client: TestClient, auth: Auth, ids: dict[str, int], db_url: str) -> None:
    answer = client.post("/api/v1/incidents", headers=auth("dispatcher"), json={
        "lon": 119.9999, "lat": 30.01, "category": "E0101", "source": "hotline"})
    assert answer.status_code == 201, answer.text
    snapped = answer.json()
    assert snapped["grid"]["code"] == "G11" and snapped["snapped_m"] > 5
    plan_id = new_plan(client, auth)
    # G11 goes into G12: the snapped point lies outside the merged area's bounding box
    edit(client, auth, plan_id, op="merge", codes=["G11", "G12"], into="G12")
    preview = client.get(f"{URL}/{plan_id}/impact", headers=auth("planner")).json()["moves"]
    assert preview["pairs"] == [{"from": "G11", "to": "G12", "count": 1}]  # as the apply does
    assert preview["incident_ids"] == [snapped["id"]]
    out = apply(client, auth, plan_id)
    assert out["retired"] == ["G11"]
    assert [(m["id"], m["from"], m["to"]) for m in out["incidents"]["incidents"]] == [
        (snapped["id"], "G11", "G12")]
    [(code, current)] = query(db_url, "SELECT i.grid_code, g.valid_to IS NULL FROM incident i "
                                      "JOIN grid g ON g.id = i.grid_id WHERE i.id = :id",
                              id=snapped["id"])
    assert (code, current) == ("G12", True)
