"""The task REST endpoints on PostGIS: publish, near, claim races over HTTP, cancel, coverage."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, mapping, shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.db import session_scope
from geo.store.users import create_user
from tests.geo.test_tasks import lonlat, make_city, walk
from tests.users import field_user

Auth = Callable[[str], dict[str, str]]
CST = dt.timezone(dt.timedelta(hours=8))


def window(start_h: float, end_h: float) -> dict[str, str]:
    now = dt.datetime.now(CST)
    return {"window_start": (now + dt.timedelta(hours=start_h)).isoformat(),
            "window_end": (now + dt.timedelta(hours=end_h)).isoformat()}


@pytest.fixture
def city(session: Session) -> dict[str, Any]:
    return make_city(session)


def _nested(depth: int) -> list[Any]:
    """A list nested ``depth`` deep."""
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out


def publish(client: TestClient, auth: Auth, body: dict[str, Any], status: int = 201,
            role: str = "dispatcher") -> dict[str, Any]:
    answer = client.post("/api/v1/tasks", json=body, headers=auth(role))
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out


def test_publish_checks_roles_and_fields_and_writes_nothing_when_refused(
        client: TestClient, auth: Auth, session: Session, city: dict[str, Any]) -> None:
    body = {"title": "夜巡主街", "route": "R-1", **window(0, 2)}
    made = client.post("/api/v1/tasks", json=body, headers=auth("dispatcher"))
    assert made.status_code == 201, made.text
    feature = made.json()
    assert made.headers["content-type"].startswith("application/geo+json")
    assert made.headers["Location"].endswith(f"/api/v1/tasks/{feature['id']}")
    props = feature["properties"]
    assert props["status"] == "open" and props["kind"] == "route" and props["version"] == 1
    assert props["route_code"] == "R-1" and props["length_m"] == pytest.approx(1000, rel=1e-3)
    assert feature["geometry"]["type"] == "MultiLineString"
    assert props["published_by"].startswith("test-dispatcher")
    for role in ("patrol", "planner"):
        assert client.post("/api/v1/tasks", json=body, headers=auth(role)).status_code == 403
    assert client.post("/api/v1/tasks", json=body).status_code == 401
    bad: list[tuple[dict[str, Any], str]] = [
        ({"route": "R-404"}, "route"),
        ({"grid": "G1"}, "route"),  # route and grid
        (window(-3, -1), "window_end"),
        (window(0, 30), "window_end"),
        ({"window_start": "yesterday"}, "window_start"),
        ({"window_start": "9999-12-31T20:00:00-08:00",
          "window_end": "9999-12-31T22:00:00-08:00"}, "window_start"),  # beyond PostgreSQL
        ({"window_start": "2300-01-01T08:00:00", "window_end": "2300-01-01T09:00:00"},
         "window_start"),
        ({"title": ""}, "title"),
        ({"colour": "red"}, "colour"),
        ({"route": True}, "route"),  # was read as route 1
        ({"attrs": {"a": _nested(70)}}, "attrs.a" + "[0]" * 64),  # was a 500
    ]
    for change, field in bad:
        answer = client.post("/api/v1/tasks", json=body | change, headers=auth("dispatcher"))
        assert answer.status_code == 422, (change, answer.text)
        detail = answer.json()["detail"]
        assert detail["field"] == field, (change, detail)
        assert "value" in detail
    area = {"title": "area", "area": {"type": "Polygon", "coordinates": [[[119.3, 26.08]]]},
            **window(0, 1)}
    answer = client.post("/api/v1/tasks", json=area, headers=auth("dispatcher"))
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "area"
    nan = json.dumps(body)[:-1] + ', "attrs": {"x": NaN}}'  # was refused by the database
    answer = client.post("/api/v1/tasks", content=nan, headers={
        **auth("dispatcher"), "Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "attrs.x"
    for name, value in (("version", 99_999_999_999), ("version", True)):
        cancel = client.post(f"/api/v1/tasks/{feature['id']}/cancel", json={name: value},
                             headers=auth("dispatcher"))
        assert cancel.status_code == 422 and cancel.json()["detail"]["field"] == name
    claim = client.post(f"/api/v1/tasks/{feature['id']}/claim", json={"worker_id": True},
                        headers=auth("dispatcher"))
    assert claim.status_code == 422 and claim.json()["detail"]["field"] == "worker_id"
    session.rollback()
    assert session.execute(text("SELECT count(*) FROM patrol_task")).scalar() == 1
    # an area with heights is the same area (it was a 422 from the database, naming nothing)
    ring = [[119.30, 26.08, 5], [119.301, 26.08, 5], [119.301, 26.081, 5], [119.30, 26.08, 5]]
    high = publish(client, auth, {"title": "3-D", "area": {"type": "Polygon",
                                                           "coordinates": [ring]},
                                  **window(0, 1)})
    assert high["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert not shape(high["geometry"]).has_z


def test_open_tasks_near_me_nearest_first(client: TestClient, auth: Auth,
                                          city: dict[str, Any]) -> None:
    lon, lat = lonlat([0, 300], [600, 900])
    near_area = publish(client, auth, {"title": "square", **window(0, 2),
                                       "area": mapping(box(lon[0], lat[0], lon[1], lat[1]))})
    on_route = publish(client, auth, {"title": "route", "route": city["route_id"],
                                      **window(0, 2)})
    in_grid = publish(client, auth, {"title": "grid", "grid": "G1", **window(1, 3)})
    here = lonlat([150], [700])
    got = client.get("/api/v1/tasks", params={"near": f"{here[0][0]},{here[1][0]}",
                                               "radius_m": 800}, headers=auth("patrol"))
    assert got.status_code == 200, got.text
    page = got.json()
    # inside the square; 400 m north of the grid's edge; 700 m from the route
    assert [f["id"] for f in page["features"]] == [near_area["id"], in_grid["id"], on_route["id"]]
    dists = [f["properties"]["distance_m"] for f in page["features"]]
    assert dists[0] == 0.0 and dists[1] == pytest.approx(400, abs=10)
    assert dists[2] == pytest.approx(700, abs=3)
    closer = client.get("/api/v1/tasks", params={"near": f"{here[0][0]},{here[1][0]}",
                                                  "radius_m": 500}, headers=auth("patrol"))
    assert [f["id"] for f in closer.json()["features"]] == [near_area["id"], in_grid["id"]]
    wide = client.get("/api/v1/tasks", params={"near": f"{here[0][0]},{here[1][0]}",
                                                "radius_m": 20_000, "limit": 2},
                      headers=auth("patrol")).json()
    assert wide["numberMatched"] == 3 and any(link["rel"] == "next" for link in wide["links"])
    assert [f["id"] for f in client.get("/api/v1/tasks", headers=auth("planner")).json()[
        "features"]] == [near_area["id"], on_route["id"], in_grid["id"]]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"near": "26.08"}, "near"), ({"near": "26.08,119.30"}, "near (lat)"),
        ({"status": "taken"}, "status"), ({"radius_m": 1e9}, "radius_m"),
        ({"radius_m": -5}, "radius_m")]
    for params, field in cases:
        answer = client.get("/api/v1/tasks", params=params, headers=auth("patrol"))
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]["field"] == field


def test_claim_races_over_http_have_one_winner(client: TestClient, auth: Auth, db_url: str,
                                               city: dict[str, Any]) -> None:
    task = publish(client, auth, {"title": "grab me", "grid": "G1", **window(0, 2)})
    codes = ["P1", "P2", "V1", "V2", "V3", "V4"]
    headers = {c: field_user(db_url, city["workers"][c]) for c in codes}
    barrier = threading.Barrier(len(codes))
    answers: dict[str, Any] = {}

    def claim(code: str) -> None:
        barrier.wait()
        answers[code] = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=headers[code])

    threads = [threading.Thread(target=claim, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [200] + [409] * (len(codes) - 1), [a.text for a in answers.values()]
    winner = next(c for c, a in answers.items() if a.status_code == 200)
    won = answers[winner].json()["properties"]
    assert won["status"] == "claimed" and won["claimed_by"]["code"] == winner
    for code, answer in answers.items():
        if code != winner:
            detail = answer.json()["detail"]
            assert detail["claimed_at"] == won["claimed_at"]
            assert won["claimed_at"] in detail["message"] and detail["field"] == "task_id"
    mine = client.get("/api/v1/tasks", params={"mine": "true", "status": "any"},
                      headers=headers[winner]).json()
    assert [f["id"] for f in mine["features"]] == [task["id"]]
    # without a status, "mine" lists what the worker claimed (open tasks have no claimant)
    claimed = client.get("/api/v1/tasks", params={"mine": "true"}, headers=headers[winner])
    assert [f["id"] for f in claimed.json()["features"]] == [task["id"]], claimed.text
    assert client.get("/api/v1/tasks", headers=headers[winner]).json()["numberMatched"] == 0
    both = client.get("/api/v1/tasks", params={"mine": "true", "worker_id": 1},
                      headers=headers[winner])  # worker_id was ignored
    assert both.status_code == 422 and both.json()["detail"]["field"] == "worker_id"
    loser = next(c for c in codes if c != winner)
    assert client.get("/api/v1/tasks", params={"mine": "true", "status": "any"},
                      headers=headers[loser]).json()["numberMatched"] == 0


def test_who_may_claim(client: TestClient, auth: Auth, db_url: str,
                       city: dict[str, Any]) -> None:
    w = city["workers"]
    tasks = [publish(client, auth, {"title": f"t{i}", "grid": "G1", **window(2 * i, 2 * i + 1)})
             for i in range(3)]
    url = f"/api/v1/tasks/{tasks[0]['id']}/claim"
    unlinked = client.post(url, headers=auth("patrol"))
    assert unlinked.status_code == 403
    assert "patrolgrid tasks link" in unlinked.json()["detail"]["valid"]
    p1 = field_user(db_url, w["P1"])
    other = client.post(url, json={"worker_id": w["P2"]}, headers=p1)
    assert other.status_code == 403 and other.json()["detail"]["field"] == "worker_id"
    assert client.post(url, headers=auth("planner")).status_code == 403
    nobody = client.post(url, headers=auth("dispatcher"))
    assert nobody.status_code == 422 and nobody.json()["detail"]["field"] == "worker_id"
    clerk = client.post(url, json={"worker_id": w["GW"]}, headers=auth("dispatcher"))
    assert clerk.status_code == 422 and "grid_worker" in clerk.json()["detail"]["message"]
    for_v1 = client.post(url, json={"worker_id": w["V1"]}, headers=auth("dispatcher"))
    assert for_v1.status_code == 200 and for_v1.json()["properties"]["claimed_by"]["code"] == "V1"
    own = client.post(f"/api/v1/tasks/{tasks[1]['id']}/claim", json={"worker_id": w["P1"]},
                      headers=p1)
    assert own.status_code == 200
    assert client.post("/api/v1/tasks/999999/claim", headers=p1).status_code == 404


def test_cancel_and_coverage(client: TestClient, auth: Auth, db_url: str,
                             city: dict[str, Any]) -> None:
    task = publish(client, auth, {"title": "walk", "route": "R-1", **window(-1, 1)})
    v1 = field_user(db_url, city["workers"]["V1"], role="patrol")
    unclaimed = client.get(f"/api/v1/tasks/{task['id']}", headers=v1).json()
    assert unclaimed["properties"]["coverage"] is None
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers=v1).status_code == 200
    lon, lat = walk(0, 700, 0.0)
    t0 = dt.datetime.now(CST) - dt.timedelta(minutes=50)
    points = [{"lon": float(x), "lat": float(y),
               "t": (t0 + dt.timedelta(seconds=5 * i)).isoformat()}
              for i, (x, y) in enumerate(zip(lon, lat, strict=True))]
    sent = client.post("/api/v1/tracks", json={"worker_id": city["workers"]["V1"],
                                               "points": points}, headers=v1)
    assert sent.status_code == 201, sent.text
    got = client.get(f"/api/v1/tasks/{task['id']}", headers=auth("planner")).json()
    cov = got["properties"]["coverage"]
    expected = 700 + 25.0  # the last fix is at x = 700 m, the tolerance reaches 25 m on
    assert cov["kind"] == "route" and cov["points"] == len(points)
    assert cov["covered_m"] == pytest.approx(expected, abs=0.3)
    assert cov["share"] == pytest.approx(expected / 1000, abs=1e-3)
    assert cov["missed"]["type"] == "MultiLineString" and cov["tolerance_m"] == 25.0
    assert cov["missed_m"] == pytest.approx(1000 - expected, abs=0.3)
    assert math.isclose(got["properties"]["length_m"], 1000, rel_tol=1e-3)
    assert client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=v1).status_code == 403
    stale = client.post(f"/api/v1/tasks/{task['id']}/cancel", json={"version": 1},
                        headers=auth("dispatcher"))
    assert stale.status_code == 409 and stale.json()["detail"]["field"] == "version"
    gone = client.post(f"/api/v1/tasks/{task['id']}/cancel",
                       json={"reason": "typhoon", "version": 2}, headers=auth("dispatcher"))
    assert gone.status_code == 200, gone.text
    assert gone.json()["properties"]["status"] == "cancelled"
    again = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=v1)
    assert again.status_code == 409 and again.json()["detail"]["status"] == "cancelled"
    after = client.get(f"/api/v1/tasks/{task['id']}", headers=v1).json()["properties"]
    assert after["cancel_reason"] == "typhoon" and after["coverage"]["points"] == len(points)
    assert client.get("/api/v1/tasks/424242", headers=v1).status_code == 404


def test_the_cli_links_active_workers_and_checks_the_radius(
        cli: Any, client: TestClient, auth: Auth, city: dict[str, Any], db_url: str) -> None:
    with session_scope(db_url) as s:
        _, token = create_user(s, name="li.wei", role="patrol")
        gw, p1, p2 = (s.execute(text("SELECT code FROM worker WHERE id = :i"),
                                {"i": city["workers"][k]}).scalar_one()
                      for k in ("GW", "P1", "P2"))
        s.execute(text("UPDATE worker SET active = false WHERE code = :c"), {"c": p2})
    refused = cli("tasks", "link", "--user", "li.wei", "--worker", p2)
    out = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "inactive" in out, out
    # a grid worker is linked to upload their tracks, but may not claim
    linked = cli("tasks", "link", "--user", "li.wei", "--worker", gw)
    assert linked.exit_code == 0 and "uploads tracks" in linked.output, linked.output
    clerk = {"Authorization": f"Bearer {token}"}
    task = publish(client, auth, {"title": "t", "grid": "G1", **window(1, 2)})
    claim = client.post(f"/api/v1/tasks/{task['id']}/claim", headers=clerk)
    assert claim.status_code == 422 and "grid_worker" in claim.json()["detail"]["message"]
    assert cli("tasks", "link", "--user", "li.wei", "--worker", p1).exit_code == 0
    # a code made of digits was read as an id: the user was linked to another worker
    gw_id, p1_id = city["workers"]["GW"], city["workers"]["P1"]
    with session_scope(db_url) as s:
        s.execute(text("UPDATE worker SET code = :c WHERE id = :i"),
                  {"c": f"{p1_id:04d}", "i": gw_id})  # digits that read as P1's id
    by_code = cli("tasks", "link", "--user", "li.wei", "--worker", f"{p1_id:04d}")
    assert by_code.exit_code == 0 and f"(id {gw_id})" in by_code.output, by_code.output
    by_id = cli("tasks", "link", "--user", "li.wei", "--worker", str(p1_id))  # no such code
    assert by_id.exit_code == 0 and f"(id {p1_id})" in by_id.output, by_id.output
    with session_scope(db_url) as s:
        s.execute(text("UPDATE worker SET code = :c WHERE id = :i"), {"c": str(p1_id),
                                                                       "i": gw_id})
    code_first = cli("tasks", "link", "--user", "li.wei", "--worker", str(p1_id))
    assert code_first.exit_code == 0 and f"(id {gw_id})" in code_first.output
    for bad in ("-5", "nan", "1e12"):
        result = cli("tasks", "list", "--near", "119.305,26.085", "--radius-m", bad)
        assert result.exit_code == 2 and "radius_m" in result.output, (bad, result.output)
    assert cli("tasks", "list", "--near", "119.305,26.085", "--radius-m", "500").exit_code == 0
    # windows in local time with the end's date when it differs (it was UTC, "– 22:00 +0000")
    tomorrow = (dt.datetime.now(CST) + dt.timedelta(days=1)).date()
    start = dt.datetime.combine(tomorrow, dt.time(22, 0), CST)
    night = publish(client, auth, {"title": "night", "grid": "G1",
                                   "window_start": start.isoformat(),
                                   "window_end": (start + dt.timedelta(hours=8)).isoformat()})
    listed = cli("tasks", "list")
    assert night["id"] and f"{tomorrow:%Y-%m-%d} 22:00" in listed.output and \
        f"{tomorrow + dt.timedelta(days=1):%Y-%m-%d} 06:00" in listed.output, listed.output
    both = cli("tasks", "link", "--user", "li.wei", "--worker", p1, "--unlink")
    assert both.exit_code == 2 and "not both" in both.output
