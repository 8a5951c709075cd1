"""The roster REST: workers, teams and duties."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.grids import GridRecord, write_versions
from geo.store.models import Category

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def grids(session: Session) -> None:
    write_versions(session, [
        GridRecord("S1", "街道", "street", box(119.30, 26.08, 119.32, 26.10)),
        GridRecord("G1", "网格一", "grid", box(119.30, 26.08, 119.31, 26.09), parent_code="S1"),
        GridRecord("G2", "网格二", "grid", box(119.31, 26.08, 119.32, 26.09), parent_code="S1"),
    ])
    session.add(Category(code="litter", name_zh="垃圾", name_en="litter", kind="event",
                         department="城管", sla_hours=24))
    session.commit()


def post(client: TestClient, auth: Auth, path: str, body: dict[str, Any],
         role: str = "planner", status: int = 201) -> dict[str, Any]:
    answer = client.post(f"/api/v1{path}", json=body, headers=auth(role))
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json() if answer.content else {}
    return out


def worker(client: TestClient, auth: Auth, code: str, role: str = "grid_worker",
           **extra: Any) -> dict[str, Any]:
    return post(client, auth, "/workers", {"code": code, "name": f"name {code}", "role": role,
                                           **extra})


def test_workers_create_get_patch_deactivate(client: TestClient, auth: Auth,
                                             grids: None) -> None:
    made = worker(client, auth, "W-1", phone="13800000000")
    assert made["active"] is True and made["role"] == "grid_worker" and made["team_id"] is None
    got = client.get(f"/api/v1/workers/{made['id']}", headers=auth("patrol")).json()
    assert got == made
    patched = client.patch(f"/api/v1/workers/{made['id']}",
                           json={"name": "李娜", "role": "manager"}, headers=auth("dispatcher"))
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["role"], patched.json()["phone"]) == (
        "李娜", "manager", "13800000000")
    off = client.post(f"/api/v1/workers/{made['id']}/deactivate", headers=auth("planner"))
    assert off.status_code == 200 and off.json()["active"] is False
    back = client.patch(f"/api/v1/workers/{made['id']}", json={"active": True},
                        headers=auth("admin"))
    assert back.json()["active"] is True


def test_worker_errors_name_field_value_and_valid(client: TestClient, auth: Auth,
                                                  grids: None) -> None:
    made = worker(client, auth, "W-1")
    dup = post(client, auth, "/workers", {"code": "W-1", "name": "x", "role": "patrol"},
               status=409)["detail"]
    assert (dup["field"], dup["value"]) == ("code", "W-1")
    bad = post(client, auth, "/workers", {"code": "W-2", "name": "x", "role": "boss"},
               status=422)["detail"]
    assert (bad["field"], bad["value"]) == ("role", "boss") and "grid_worker" in bad["valid"]
    team = post(client, auth, "/workers", {"code": "W-3", "name": "x", "role": "patrol",
                                           "team_id": 999}, status=422)["detail"]
    assert team["field"] == "team_id"
    blank = post(client, auth, "/workers", {"code": " ", "name": "x", "role": "patrol"},
                 status=422)["detail"]
    assert blank["field"] == "code"
    # the roster CSV's formats, so that what the API writes exports and imports again
    for path, body, field in (
            ("/workers", {"code": "bad code!", "name": "x", "role": "patrol"}, "code"),
            ("/workers", {"code": "W-4", "name": "x", "role": "patrol", "phone": "abc"}, "phone"),
            ("/teams", {"code": "T 2/x", "name": "x"}, "code"),
            ("/teams", {"code": "T-2", "name": "x", "kind": "Police Unit"}, "kind")):
        refused = post(client, auth, path, body, status=422)["detail"]
        assert refused["field"] == field and refused["valid"], refused
    # A patch with one bad field changes nothing.
    answer = client.patch(f"/api/v1/workers/{made['id']}", json={"name": "新名", "role": "boss"},
                          headers=auth("planner"))
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "role"
    assert client.get(f"/api/v1/workers/{made['id']}",
                      headers=auth("patrol")).json()["name"] == "name W-1"
    unknown_field = client.patch(f"/api/v1/workers/{made['id']}", json={"salary": 1},
                                 headers=auth("planner"))
    assert unknown_field.status_code == 422
    assert unknown_field.json()["detail"]["field"] == "salary"
    for path in ("/api/v1/workers/9999", "/api/v1/teams/9999"):
        missing = client.get(path, headers=auth("patrol"))
        assert missing.status_code == 404 and "9999" in missing.json()["detail"]["message"]
    assert client.post("/api/v1/workers/9999/deactivate",
                       headers=auth("planner")).status_code == 404


def test_workers_filter_by_role_grid_and_active_with_paging(client: TestClient, auth: Auth,
                                                            grids: None) -> None:
    ids = {c: worker(client, auth, c, role=r)["id"] for c, r in
           [("W-1", "grid_worker"), ("W-2", "patrol"), ("W-3", "grid_worker"),
            ("W-4", "grid_worker")]}
    post(client, auth, "/duties", {"worker_id": ids["W-3"], "grid_code": "G2", "kind": "primary"})
    post(client, auth, "/duties", {"worker_id": ids["W-2"], "grid_code": "G2", "kind": "backup"})
    post(client, auth, "/duties", {"worker_id": ids["W-1"], "grid_code": "G1", "kind": "primary"})
    client.post(f"/api/v1/workers/{ids['W-4']}/deactivate", headers=auth("planner"))
    h = auth("patrol")

    def listed(query: str) -> list[str]:
        body = client.get(f"/api/v1/workers?{query}", headers=h).json()
        return [w["code"] for w in body["items"]]

    assert listed("") == ["W-1", "W-2", "W-3", "W-4"]
    assert listed("role=grid_worker") == ["W-1", "W-3", "W-4"]
    assert listed("grid=G2") == ["W-2", "W-3"]
    assert listed("grid=G2&role=grid_worker") == ["W-3"]
    assert listed("active=false") == ["W-4"]
    duties = client.get("/api/v1/duties?grid=G2", headers=h).json()
    assert sorted(d["worker_id"] for d in duties) == sorted([ids["W-2"], ids["W-3"]])
    unknown = client.get("/api/v1/duties?grid=nope", headers=h)  # was an empty list
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "grid"
    page = client.get("/api/v1/workers?limit=3", headers=h).json()
    assert page["total"] == 4 and len(page["items"]) == 3
    nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert [w["code"] for w in client.get(nxt, headers=h).json()["items"]] == ["W-4"]
    for query, field in (("role=boss", "role"), ("grid=NOPE", "grid"), ("limit=0", "limit")):
        answer = client.get(f"/api/v1/workers?{query}", headers=h)
        assert answer.status_code == 422 and answer.json()["detail"]["field"] == field


def test_teams(client: TestClient, auth: Auth, grids: None) -> None:
    team = post(client, auth, "/teams", {"code": "T-1", "name": "巡逻一队", "grid_code": "S1"})
    assert (team["kind"], team["grid_code"]) == ("patrol", "S1")
    post(client, auth, "/teams", {"code": "T-0", "name": "志愿队", "kind": "volunteer"},
         role="dispatcher")
    assert post(client, auth, "/teams", {"code": "T-1", "name": "x"},
                status=409)["detail"]["field"] == "code"
    assert post(client, auth, "/teams", {"code": "T-2", "name": "x", "grid_code": "NOPE"},
                status=422)["detail"]["field"] == "grid_code"
    h = auth("patrol")
    assert [t["code"] for t in client.get("/api/v1/teams", headers=h).json()] == ["T-0", "T-1"]
    assert [t["code"] for t in client.get("/api/v1/teams?kind=volunteer",
                                          headers=h).json()] == ["T-0"]
    patched = client.patch(f"/api/v1/teams/{team['id']}", json={"name": "巡逻二队"},
                           headers=auth("planner")).json()
    assert patched["name"] == "巡逻二队" and patched["grid_code"] == "S1"
    member = worker(client, auth, "W-1", team_id=team["id"])
    assert member["team_id"] == team["id"]
    assert [w["code"] for w in client.get(f"/api/v1/workers?team_id={team['id']}",
                                          headers=h).json()["items"]] == ["W-1"]


def test_duties_create_list_delete(client: TestClient, auth: Auth, grids: None) -> None:
    wid = worker(client, auth, "W-1")["id"]
    shifts = [{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "17:30"},
              {"days": [5], "start": "22:00", "end": "06:00"}]
    duty = post(client, auth, "/duties", {"worker_id": wid, "grid_code": "G1",
                                          "kind": "primary", "shifts": shifts})
    assert duty["shifts"] == shifts and duty["categories"] is None
    backup = post(client, auth, "/duties", {"worker_id": wid, "grid_code": "G2", "kind": "backup",
                                            "categories": ["litter"]})
    assert backup["categories"] == ["litter"] and backup["shifts"] == []
    h = auth("patrol")
    assert [d["id"] for d in client.get("/api/v1/duties?grid=G1", headers=h).json()] == [
        duty["id"]]
    assert len(client.get(f"/api/v1/duties?worker_id={wid}", headers=h).json()) == 2
    assert client.delete(f"/api/v1/duties/{duty['id']}", headers=auth("planner")).status_code \
        == 204
    again = client.delete(f"/api/v1/duties/{duty['id']}", headers=auth("planner"))
    assert again.status_code == 404 and again.json()["detail"]["field"] == "duty_id"
    assert client.get("/api/v1/duties?grid=G1", headers=h).json() == []


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"grid_code": "NOPE"}, 422, "grid_code"),
    ({"kind": "main"}, 422, "kind"),
    ({"worker_id": 9999}, 422, "worker_id"),
    ({"shifts": [{"days": [7], "start": "08:00", "end": "17:00"}]}, 422, "shifts[0].days"),
    ({"shifts": [{"days": [1], "start": "08:00", "end": "25:00"}]}, 422, "shifts[0].end"),
    ({"shifts": [{"days": [1], "start": "8am", "end": "17:00"}]}, 422, "shifts[0].start"),
    ({"categories": ["litter", "aliens"]}, 422, "categories"),
    ({"categories": []}, 422, "categories"),
    ({}, 409, "grid_code"),
])
def test_bad_duties_are_refused_and_nothing_is_written(client: TestClient, auth: Auth,
                                                       grids: None, change: dict[str, Any],
                                                       status: int, field: str) -> None:
    wid = worker(client, auth, "W-1")["id"]
    post(client, auth, "/duties", {"worker_id": wid, "grid_code": "G1", "kind": "primary"})
    body = {"worker_id": wid, "grid_code": "G1", "kind": "primary", **change}
    detail = post(client, auth, "/duties", body, status=status)["detail"]
    assert detail["field"] == field and detail["valid"]
    assert len(client.get("/api/v1/duties", headers=auth("patrol")).json()) == 1


def test_writes_need_planner_or_dispatcher(client: TestClient, auth: Auth, grids: None) -> None:
    denied = client.post("/api/v1/workers", json={"code": "W-9", "name": "x", "role": "patrol"},
                         headers=auth("patrol"))
    assert denied.status_code == 403 and denied.json()["detail"]["field"] == "role"
    for role in ("planner", "dispatcher", "admin"):
        post(client, auth, "/workers", {"code": f"W-{role}", "name": role, "role": "patrol"},
             role=role)
    codes = [w["code"] for w in client.get("/api/v1/workers", headers=auth("patrol"))
             .json()["items"]]
    assert codes == ["W-admin", "W-dispatcher", "W-planner"]


def test_a_code_taken_by_a_concurrent_request_is_a_409(client: TestClient, auth: Auth,
                                                       grids: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two requests creating one code at once both pass the look-up; the loser's insert meets
    the unique index: 409 naming the code (was a 500)."""
    from geo.store import roster

    worker(client, auth, "RACE-1")
    monkeypatch.setattr(roster, "_unique_code", lambda *args, **kwargs: None)
    answer = client.post("/api/v1/workers", json={"code": "RACE-1", "name": "b",
                                                  "role": "patrol"}, headers=auth("planner"))
    assert answer.status_code == 409, answer.text
    assert (answer.json()["detail"]["field"], answer.json()["detail"]["value"]) == (
        "code", "RACE-1")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/duties", {"worker_id": True, "grid_code": "G1", "kind": "backup"}, "worker_id"),
    ("/duties", {"worker_id": "1", "grid_code": "G1", "kind": "backup"}, "worker_id"),
    ("/workers", {"code": "T1", "name": "t", "role": "patrol", "team_id": True}, "team_id"),
    ("/workers", {"code": "T1", "name": "t", "role": "patrol", "team_id": 99_999_999_999},
     "team_id"),
])
def test_ids_must_be_whole_numbers_in_range(client: TestClient, auth: Auth, grids: None,
                                           path: str, body: dict[str, Any], field: str) -> None:
    """``true`` was read as id 1 and ``"1"`` as 1; a huge id named no field."""
    worker(client, auth, "W-1")
    answer = client.post(f"/api/v1{path}", json=body, headers=auth("planner"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == field


def test_a_phone_of_32_characters_is_taken(client: TestClient, auth: Auth, grids: None) -> None:
    assert worker(client, auth, "P-32", phone="1" * 32)["phone"] == "1" * 32
    too_long = client.post("/api/v1/workers", json={"code": "P-33", "name": "p",
                                                    "role": "patrol", "phone": "1" * 33},
                           headers=auth("planner"))
    assert too_long.status_code == 422 and too_long.json()["detail"]["field"] == "phone"


def test_deactivating_a_worker_hands_their_open_incidents_over(
        client: TestClient, auth: Auth, session: Session, grids: None) -> None:
    first = worker(client, auth, "W-1")
    second = worker(client, auth, "W-2")
    for who, kind in ((first, "primary"), (second, "backup")):
        post(client, auth, "/duties", {"worker_id": who["id"], "grid_code": "G1", "kind": kind})
    made = post(client, auth, "/incidents", {"lon": 119.305, "lat": 26.085,
                                             "category": "litter", "source": "hotline"},
                role="dispatcher")
    assert made["worker"]["code"] == "W-1"
    renamed = client.patch(f"/api/v1/workers/{first['id']}", json={"name": "王芳"},
                           headers=auth("planner")).json()
    assert renamed["incidents"] == {"handed_over": 0, "to_nobody": 0, "incidents": [],
                                    "tasks_released": []}
    off = client.post(f"/api/v1/workers/{first['id']}/deactivate", headers=auth("dispatcher"))
    assert off.status_code == 200, off.text
    assert off.json()["incidents"] == {"handed_over": 1, "to_nobody": 0, "incidents": [
        {"id": made["id"], "from_worker": first["id"], "to_worker": second["id"],
         "rule": "backup", "reason": None, "from_status": "dispatched",
         "status": "dispatched"}], "tasks_released": []}
    got = client.get(f"/api/v1/incidents/{made['id']}", headers=auth("patrol")).json()
    assert got["properties"]["worker_code"] == "W-2"
    assert got["events"][-1]["data"]["kind"] == "handover"
    patched = client.patch(f"/api/v1/workers/{second['id']}", json={"active": False},
                           headers=auth("planner")).json()
    assert (patched["active"], patched["incidents"]["to_nobody"]) == (False, 1)
    got = client.get(f"/api/v1/incidents/{made['id']}", headers=auth("patrol")).json()
    assert got["properties"]["worker_id"] is None
    assert got["properties"]["status"] == "registered"  # back in the dispatcher's queue
    assert "inactive" in got["properties"]["unassigned_reason"]
    for bad in ("false", 0):
        refused = client.patch(f"/api/v1/workers/{first['id']}", json={"active": bad},
                               headers=auth("planner"))
        assert refused.status_code == 422 and "active" in refused.text
    session.execute(text("UPDATE incident SET worker_id = :w WHERE id = :i"),
                    {"w": first["id"], "i": made["id"]})  # left by an old version, say
    session.commit()
    edited = client.patch(f"/api/v1/workers/{first['id']}", json={"phone": "139-0000-9999"},
                          headers=auth("planner")).json()
    assert edited["incidents"]["handed_over"] == 0  # an edit of other fields moves nothing
