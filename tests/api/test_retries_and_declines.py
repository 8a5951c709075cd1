"""A reused key with another report, a worker declining, who sees the reporter, merge
versions and the ETag of refusals, over HTTP on the small city of ``test_open311``
(fixture ``small_city``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.loop import DECLINED

Auth = Callable[[str], dict[str, str]]
IN_G1 = {"lon": 120.005, "lat": 30.01, "category": "E1", "source": "hotline"}


def _post(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    return client.post("/api/v1/incidents", json={**IN_G1, **fields}, headers=headers)


def _count(session: Session) -> int:
    session.rollback()
    return int(session.execute(text("SELECT count(*) FROM incident")).scalar_one())


def test_a_key_reused_for_another_report_is_a_conflict(client: TestClient, auth: Auth,
                                                       session: Session,
                                                       small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    first = _post(client, d, external_id="HL-1")
    assert first.status_code == 201
    same = _post(client, d, external_id="HL-1")
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    for change, said in (({"category": "E2"}, "category"),
                         ({"lon": 120.015}, "m from the stored one"),
                         ({"reported_at": "2020-01-01T00:00:00+08:00"}, "reported_at")):
        other = _post(client, d, external_id="HL-1", **change)
        assert other.status_code == 409, other.text
        detail = other.json()["detail"]
        assert detail["field"] == "external_id" and detail["value"] == "HL-1"
        assert detail["incident_id"] == first.json()["id"] and said in detail["message"]
    keyed = {**d, "Idempotency-Key": "k-1"}
    assert _post(client, keyed).status_code == 201
    clash = _post(client, keyed, category="E2")
    assert clash.status_code == 409 and clash.json()["detail"]["field"] == "Idempotency-Key"
    assert _count(session) == 2
    # the same key with another external id is another report, not a retry
    ided = {**d, "Idempotency-Key": "k-2"}
    kept = _post(client, ided, external_id="HL-2")
    assert kept.status_code == 201
    other = _post(client, ided, external_id="HL-3")
    assert other.status_code == 409, other.text
    assert "external_id 'HL-3'" in other.json()["detail"]["message"]
    # a key of one incident with the external id of another: refused, naming both
    mixed = _post(client, {**d, "Idempotency-Key": "k-1"}, external_id="HL-1")
    assert mixed.status_code == 409, mixed.text
    detail = mixed.json()["detail"]
    assert detail["field"] == "Idempotency-Key" and detail["incident_id"] != first.json()["id"]
    assert detail["external_id_incident"] == first.json()["id"]
    assert _count(session) == 3


def test_a_key_first_sent_on_a_retry_stays_with_that_incident(
        client: TestClient, auth: Auth, session: Session, small_city: dict[str, int]) -> None:
    """A retry found by its external id with a key the incident did not have: the key was
    left free, a different report then took it, and the exact retry turned into a 409."""
    d = auth("dispatcher")
    first = _post(client, d, external_id="HL-9")
    keyed = {**d, "Idempotency-Key": "late-key"}
    retry = _post(client, keyed, external_id="HL-9")
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    other = _post(client, keyed, category="E2")  # another report with the same key
    assert other.status_code == 409, other.text
    assert other.json()["detail"]["incident_id"] == first.json()["id"]
    again = _post(client, keyed, external_id="HL-9")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert _count(session) == 1


def test_an_open311_key_reused_for_another_report(client: TestClient, auth: Auth,
                                                  small_city: dict[str, int]) -> None:
    key = auth("patrol")["Authorization"].removeprefix("Bearer ")
    form = {"api_key": key, "service_code": "E1", "lat": "30.01", "long": "120.005"}
    headers = {"Idempotency-Key": "o-1"}
    assert client.post("/open311/v2/requests.json", data=form, headers=headers
                       ).status_code == 201
    assert client.post("/open311/v2/requests.json", data=form, headers=headers
                       ).status_code == 200
    other = client.post("/open311/v2/requests.json", data={**form, "service_code": "E2"},
                        headers=headers)
    assert other.status_code == 409 and other.json()[0]["code"] == 409


def test_a_declined_incident_waits_without_a_worker(client: TestClient, auth: Auth,
                                                    small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    iid = _post(client, d).json()["id"]
    back = client.post(f"/api/v1/incidents/{iid}/status",
                       json={"status": "registered", "note": "not my grid"}, headers=d)
    assert back.status_code == 200, back.text
    state = back.json()
    assert state["worker_id"] is None and state["rule"] == "none"
    assert state["last_event"]["data"]["from_worker_id"] == small_city["G1"]
    queue = client.get("/api/v1/incidents?unassigned=true&status=registered", headers=d).json()
    [feature] = queue["features"]
    assert feature["id"] == iid and feature["properties"]["unassigned_reason"] == DECLINED
    again = client.post(f"/api/v1/incidents/{iid}/status", json={"status": "dispatched"},
                        headers=d)
    assert again.status_code == 409 and again.json()["detail"]["field"] == "worker_id"
    other = client.post(f"/api/v1/incidents/{iid}/status",
                        json={"status": "dispatched", "worker_id": small_city["G2"]}, headers=d)
    assert other.status_code == 200
    assert (other.json()["worker_id"], other.json()["rule"]) == (small_city["G2"], "dispatcher")
    assert client.get("/api/v1/incidents?unassigned=true", headers=d).json()[
        "numberMatched"] == 0


def test_an_incident_outside_every_grid_keeps_saying_so(client: TestClient, auth: Auth,
                                                        small_city: dict[str, int]) -> None:
    """A dispatch by hand cleared its "outside every grid" reason, and a decline then put
    "declined" in its place: the reason it has no grid was lost."""
    d = auth("dispatcher")
    posted = _post(client, d, lon=121.5, lat=31.2).json()  # far from every grid
    assert posted["grid"] is None and posted["unassigned_reason"]
    outside = posted["unassigned_reason"]
    sent = client.post(f"/api/v1/incidents/{posted['id']}/status", headers=d,
                       json={"status": "dispatched", "worker_id": small_city["G1"]})
    assert sent.status_code == 200, sent.text
    got = client.get(f"/api/v1/incidents/{posted['id']}", headers=d).json()["properties"]
    assert got["unassigned_reason"] == outside
    back = client.post(f"/api/v1/incidents/{posted['id']}/status", headers=d,
                       json={"status": "registered", "note": "not mine"})
    assert back.status_code == 200, back.text
    got = client.get(f"/api/v1/incidents/{posted['id']}", headers=d).json()["properties"]
    assert got["unassigned_reason"] == f"{outside}; {DECLINED}"


def test_only_dispatchers_see_the_reporter(client: TestClient, auth: Auth,
                                           small_city: dict[str, int]) -> None:
    key = auth("patrol")["Authorization"].removeprefix("Bearer ")
    posted = client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "E1", "lat": "30.01", "long": "120.005",
        "first_name": "Zhang", "email": "zs@example.com", "phone": "138", "address_string": "门口"})
    iid = int(posted.json()[0]["service_request_id"])
    for role, shown in (("dispatcher", True), ("admin", True), ("patrol", False),
                        ("planner", False)):
        one = client.get(f"/api/v1/incidents/{iid}", headers=auth(role)).json()["properties"]
        many = client.get("/api/v1/incidents", headers=auth(role)).json()
        [listed] = [f["properties"] for f in many["features"] if f["id"] == iid]
        for props in (one, listed):
            assert (props["reporter"] == "Zhang <zs@example.com>") is shown, (role, props)
            assert ("email" in props["attrs"]["open311"]) is shown
            assert props["attrs"]["open311"]["address_string"] == "门口"


def test_refusals_carry_the_current_etag(client: TestClient, auth: Auth,
                                         small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    iid = _post(client, d).json()["id"]
    etag = client.get(f"/api/v1/incidents/{iid}", headers=d).headers["ETag"]
    wrong = int(etag.strip('"')) + 5
    stale = client.post(f"/api/v1/incidents/{iid}/status",
                        json={"status": "accepted", "version": wrong}, headers=d)
    assert stale.status_code == 409 and stale.headers["ETag"] == etag
    header = client.post(f"/api/v1/incidents/{iid}/status", json={"status": "accepted"},
                         headers={**d, "If-Match": f'"{wrong}"'})
    assert header.status_code == 412 and header.headers["ETag"] == etag
    refused = client.post(f"/api/v1/incidents/{iid}/status", json={"status": "closed"},
                          headers=d)
    assert refused.status_code == 409 and refused.headers["ETag"] == etag


def test_merge_bumps_the_survivor_and_names_into(client: TestClient, auth: Auth,
                                                 small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    first = _post(client, d).json()["id"]
    second = _post(client, d).json()["id"]
    before = client.get(f"/api/v1/incidents/{first}", headers=d).headers["ETag"]
    missing = client.post(f"/api/v1/incidents/{second}/merge", json={"into": 10**12},
                          headers=d)
    assert missing.status_code == 404 and missing.json()["detail"]["field"] == "into"
    merged = client.post(f"/api/v1/incidents/{second}/merge", json={"into": first}, headers=d)
    assert merged.status_code == 200, merged.text
    after = client.get(f"/api/v1/incidents/{first}", headers=d)
    assert int(after.headers["ETag"].strip('"')) == int(before.strip('"')) + 1
    assert after.json()["events"][-1]["data"]["version"] == int(after.headers["ETag"].strip('"'))
