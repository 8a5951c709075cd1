"""Plans after they are applied, plans overtaken by others, and edits that used to crash.

The small city of ``tests/geo/intake_city.py``: community C1 holds G11 (west half)
and G12 (east half).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from geo.store.map_grids import grid_figures
from tests.api.test_plan_apply import apply
from tests.api.test_plans_api import URL, edit, ids, new_plan, square

Auth = Callable[[str], dict[str, str]]
__all__ = ["ids"]  # fixture used here
SPLIT = {"type": "LineString", "coordinates": [[120.004, 29.99], [120.004, 30.03]]}


def read(client: TestClient, auth: Auth, plan_id: int, status: int = 200) -> dict[str, Any]:
    answer = client.get(f"{URL}/{plan_id}", headers=auth("planner"))
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out if status == 200 else out["detail"]


def test_an_applied_plan_reads_as_it_was_applied(client: TestClient, auth: Auth,
                                                 ids: dict[str, int]) -> None:
    first = new_plan(client, auth)
    edit(client, auth, first, op="split", code="G11", line=SPLIT, new_code="G13")
    before = read(client, auth, first)["result"]
    apply(client, auth, first)
    later = new_plan(client, auth)
    edit(client, auth, later, op="merge", codes=["G11", "G13"], into="G11")
    apply(client, auth, later)  # G13 is retired now: the first plan's edit no longer applies
    plan = read(client, auth, first)
    assert plan["status"] == "applied" and plan["applied"]["plan_id"] == first
    assert plan["result"] == before and plan["stale"] == []
    again = apply(client, auth, first, status=409)
    assert again["field"] == "status" and "already applied" in again["message"]


def test_a_draft_overtaken_by_another_plan_names_what_changed(client: TestClient, auth: Auth,
                                                              ids: dict[str, int]) -> None:
    retire = new_plan(client, auth)
    edit(client, auth, retire, op="retire", code="G12", successor="G11")
    merge = new_plan(client, auth)
    edit(client, auth, merge, op="merge", codes=["G11", "G12"], into="G11")
    apply(client, auth, merge)
    for detail in (read(client, auth, retire, status=409), apply(client, auth, retire, 409)):
        assert detail["field"] == "grids" and detail["changed_by_plans"] == [merge]
        stale = {s["code"]: s for s in detail["stale"]}
        assert stale["G12"]["now"] == 0 and stale["G12"]["why"] == "retired"


def test_changed_by_plans_leaves_out_the_plan_the_draft_was_drafted_on(
        client: TestClient, auth: Auth, ids: dict[str, int]) -> None:
    first = new_plan(client, auth)
    edit(client, auth, first, op="split", code="G11", line=SPLIT, new_code="G13")
    apply(client, auth, first)  # G11 and G13 are now versions the first plan made
    draft = new_plan(client, auth)
    edit(client, auth, draft, op="merge", codes=["G11", "G13"], into="G11")
    later = new_plan(client, auth)
    edit(client, auth, later, op="retire", code="G13", successor="G11")
    apply(client, auth, later)
    detail = apply(client, auth, draft, 409)
    assert detail["changed_by_plans"] == [later]
    assert f"changed by plan {later}" in detail["message"]


def test_an_invalid_polygon_is_reported_not_a_crash(client: TestClient, auth: Auth,
                                                    ids: dict[str, int]) -> None:
    plan_id = new_plan(client, auth)
    bowtie = {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.01, 30.02],
                                                  [120.01, 30.0], [120.0, 30.02],
                                                  [120.0, 30.0]]]}
    for body in ({"op": "replace", "code": "G11", "geometry": bowtie},
                 {"op": "create", "code": "G19", "name": "新", "geometry": bowtie}):
        plan = edit(client, auth, plan_id, **body)
        kinds = {p["kind"] for p in plan["validation"]["problems"]}
        assert "invalid_geometry" in kinds and not plan["validation"]["ok"]
    # the plan stays usable: edits taking area from neighbours, splits, merges and the impact
    # work around the invalid grid, which stays as drawn and blocking until it is redrawn
    plan = edit(client, auth, plan_id, op="create", code="G18", name="新",
                geometry=square(120.015, 120.018))
    assert "invalid_geometry" in {p["kind"] for p in plan["validation"]["problems"]}
    edit(client, auth, plan_id, op="split", code="G11", new_code="G17",
         line={"type": "LineString", "coordinates": [[120.002, 29.99], [120.002, 30.03]]})
    edit(client, auth, plan_id, op="merge", codes=["G12", "G18"], into="G12")
    impact = client.get(f"{URL}/{plan_id}/impact", headers=auth("planner"))
    assert impact.status_code == 200, impact.text
    point = edit(client, auth, plan_id, 422, op="split", code="G12", new_code="G16",
                 line={"type": "LineString", "coordinates": [[120.015, 30.0]]})
    assert point["field"] == "split.line"
    nan = client.post(f"{URL}/{plan_id}/edits", headers={**auth("planner"),
                      "Content-Type": "application/json"}, content='{"op": "create", "code": '
                      '"G15", "name": "x", "geometry": {"type": "Polygon", "coordinates": '
                      '[[[120.0, 30.0], [120.001, NaN], [120.001, 30.001], [120.0, 30.0]]]}}')
    assert nan.status_code == 422 and nan.json()["detail"]["field"] == "create.geometry", nan.text


def test_create_level_and_merge_name_are_checked(client: TestClient, auth: Auth,
                                                 ids: dict[str, int]) -> None:
    plan_id = new_plan(client, auth)
    bad = edit(client, auth, plan_id, 422, op="create", code="G19", name="新",
               geometry=square(120.0, 120.001), level="street")
    assert bad["field"] == "create.level" and bad["value"] == "street"
    bad = edit(client, auth, plan_id, 422, op="merge", codes=["G11", "G12"], into="G11",
               name={"a": 1})
    assert bad["field"] == "merge.name"
    empty = edit(client, auth, plan_id, 422, op="replace", code="G11",
                 geometry={"type": "Polygon", "coordinates": []})
    assert "empty" in empty["message"]


def test_a_grid_in_separate_pieces_is_a_warning(client: TestClient, auth: Auth,
                                                ids: dict[str, int]) -> None:
    plan_id = new_plan(client, auth)
    merged = edit(client, auth, plan_id, op="merge", codes=["G11", "G12"], into="G11")
    assert not [p for p in merged["validation"]["problems"] if p["kind"] == "not_contiguous"]
    two = {"type": "MultiPolygon", "coordinates": [
        [[[120.001, 30.001], [120.002, 30.001], [120.002, 30.002], [120.001, 30.002],
          [120.001, 30.001]]],
        [[[120.006, 30.010], [120.008, 30.010], [120.008, 30.012], [120.006, 30.012],
          [120.006, 30.010]]]]}
    plan = edit(client, auth, plan_id, op="create", code="G19", name="新", geometry=two)
    [warning] = [p for p in plan["validation"]["problems"] if p["kind"] == "not_contiguous"]
    assert warning["codes"] == ["G19"] and not warning["blocking"]
    assert 10_000 < warning["area_m2"] < 12_000 and warning["point"][0] < 120.0025
    assert plan["validation"]["ok"]


def test_a_retired_grid_keeps_its_incidents_in_its_community(
        client: TestClient, auth: Auth, ids: dict[str, int], session: Session) -> None:
    answer = client.post("/api/v1/incidents", headers=auth("dispatcher"), json={
        "lon": 120.015, "lat": 30.01, "category": "C0101", "source": "hotline"})
    assert answer.status_code == 201 and answer.json()["grid"]["code"] == "G12", answer.text
    incident = answer.json()["id"]
    rejected = client.post(f"/api/v1/incidents/{incident}/status", headers=auth("dispatcher"),
                           json={"status": "rejected", "note": "not ours"})
    assert rejected.status_code == 200, rejected.text
    merge = new_plan(client, auth)
    edit(client, auth, merge, op="merge", codes=["G11", "G12"], into="G11")
    apply(client, auth, merge)  # G12 is retired; the final incident keeps it
    listed = client.get("/api/v1/incidents?grid=C1", headers=auth("dispatcher")).json()
    assert [f["id"] for f in listed["features"]] == [incident]
    detail = client.get(f"/api/v1/incidents/{incident}", headers=auth("dispatcher")).json()
    assert [c["code"] for c in detail["grid_chain"]] == ["S1", "C1", "G12"]
    session.expire_all()
    window = {"since": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
              "until": dt.datetime(2200, 1, 1, tzinfo=dt.UTC)}
    figures = grid_figures(session, ["S1", "C1", "G11"], **window)
    assert [figures[c].reported for c in ("S1", "C1", "G11")] == [1, 1, 0]
    page = client.get(f"/maps/dispatch/{incident}", headers=auth("dispatcher")).text
    assert "网格12 (已撤销" in page or json.dumps("网格12 (已撤销")[1:-1] in page


def test_ids_and_seeds_out_of_range_are_named(client: TestClient, auth: Auth,
                                              ids: dict[str, int], cli: Any) -> None:
    for command in ("show", "impact", "apply"):
        result = cli("plans", command, "99999999999")
        out = " ".join(result.output.split())
        assert result.exit_code == 2 and "there is no plan 99999999999" in out, result.output
    answer = client.post(f"{URL}/suggest", headers=auth("planner"),
                         json={"parent": "C1", "k": 2, "seed": -1})
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "seed", answer.text
    for k in (True, "2", 2.5):  # JSON true was k = 1
        answer = client.post(f"{URL}/suggest", headers=auth("planner"),
                             json={"parent": "C1", "k": k})
        assert answer.status_code == 422 and answer.json()["detail"]["field"] == "k", k
    result = cli("plans", "suggest", "C1", "--k", "2", "--seed", "-1")
    assert result.exit_code == 2 and "seed" in result.output.lower(), result.output
