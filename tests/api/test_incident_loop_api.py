"""The closed loop over HTTP and the CLI: status, versions, evaluation, merge, escalation."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api import jobs
from api.app import create_app
from api.cli import app as cli_app
from geo.incidents.loop import ALLOWED, MAIN_LINE
from geo.settings import Settings, get_settings
from geo.store import db
from tests.geo.loop_city import MONDAY_10, SH, add_incident, build_city, events, row

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    ids = build_city(session)
    session.commit()
    return ids


def new_incident(session: Session, **kwargs: Any) -> int:
    iid = add_incident(session, **kwargs)
    session.commit()
    return iid


def status(client: TestClient, headers: dict[str, str], iid: int, body: dict[str, Any],
           expect: int = 200, if_match: str | None = None) -> dict[str, Any]:
    extra = {"If-Match": if_match} if if_match is not None else {}
    answer = client.post(f"/api/v1/incidents/{iid}/status", json=body,
                         headers={**headers, **extra})
    assert answer.status_code == expect, answer.text
    out: dict[str, Any] = answer.json()
    if expect == 200:
        assert answer.headers["ETag"] == f'"{out["version"]}"'
    return out


def test_main_line_over_http(client: TestClient, auth: Auth, session: Session,
                             city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"])
    dispatcher = auth("dispatcher")
    for n, target in enumerate(MAIN_LINE[1:], start=1):
        got = status(client, dispatcher, iid, {"status": target, "note": f"to {target}",
                                               "version": n})
        assert got["status"] == target and got["version"] == n + 1
        assert got["allowed"] == list(ALLOWED[target])
        last = got["last_event"]
        assert (last["from_status"], last["to_status"], last["note"]) == (
            MAIN_LINE[n - 1], target, f"to {target}")
        assert last["actor"].startswith("test-dispatcher")
    assert got["closed_at"] is not None
    assert len(events(session, iid)) == 6


def test_refusals_name_what_is_allowed(client: TestClient, auth: Auth, session: Session,
                                       city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"])
    d = auth("dispatcher")
    bad = status(client, d, iid, {"status": "closed"}, expect=409)["detail"]
    assert bad["field"] == "status" and bad["value"] == "closed"
    assert bad["from"] == "registered" and bad["allowed"] == list(ALLOWED["registered"])
    assert "dispatched" in bad["valid"] and "rejected" in bad["valid"]
    unknown = status(client, d, iid, {"status": "fixed"}, expect=422)["detail"]
    assert (unknown["field"], unknown["value"]) == ("status", "fixed")
    assert "in_progress" in unknown["valid"]
    assert status(client, d, iid, {"status": "rejected"}, expect=422)["detail"]["field"] == "note"
    # every refusal carries the current ETag (none for an unknown incident)
    refused = client.post(f"/api/v1/incidents/{iid}/status", json={"status": "rejected"},
                          headers=d)
    assert refused.status_code == 422 and refused.headers["ETag"] == '"1"'
    nobody = client.post(f"/api/v1/incidents/{iid}/status",
                         json={"status": "dispatched", "worker_id": 999_999}, headers=d)
    assert nobody.status_code in (404, 422) and nobody.headers["ETag"] == '"1"'
    unknown_id = client.post(f"/api/v1/incidents/{10**9}/status",
                             json={"status": "dispatched"}, headers=d)
    assert unknown_id.status_code == 404 and "ETag" not in unknown_id.headers
    # the endpoint's own refusals too: a malformed If-Match, a status a patrol may not set
    garbled = client.post(f"/api/v1/incidents/{iid}/status", json={"status": "dispatched"},
                          headers={**d, "If-Match": "v1"})
    assert garbled.status_code == 422 and garbled.headers["ETag"] == '"1"', garbled.text
    patrol = client.post(f"/api/v1/incidents/{iid}/status", json={"status": "closed"},
                         headers=auth("patrol"))
    assert patrol.status_code == 403 and patrol.headers["ETag"] == '"1"', patrol.text
    assert status(client, d, 10**9, {"status": "dispatched"}, expect=404)["detail"]["field"] \
        == "id"
    extra = status(client, d, iid, {"status": "dispatched", "colour": "red"}, expect=422)
    assert extra["detail"]["field"] == "colour"
    assert row(session, iid)["version"] == 1 and events(session, iid) == []


def test_versions_body_409_if_match_412(client: TestClient, auth: Auth, session: Session,
                                        city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"])
    d = auth("dispatcher")
    status(client, d, iid, {"status": "dispatched"}, if_match='"1"')
    stale = status(client, d, iid, {"status": "accepted", "version": 1}, expect=409)["detail"]
    assert stale["field"] == "version" and stale["current_version"] == 2
    gone = status(client, d, iid, {"status": "accepted"}, expect=412, if_match='"1"')
    assert gone["detail"]["current_version"] == 2
    garbled = status(client, d, iid, {"status": "accepted"}, expect=422,
                     if_match="yesterday")
    assert garbled["detail"]["field"] == "If-Match"
    clash = status(client, d, iid, {"status": "accepted", "version": 3}, expect=422,
                   if_match='"2"')
    assert clash["detail"]["field"] == "version"
    ok = status(client, d, iid, {"status": "accepted"}, if_match='W/"2"')
    assert ok["version"] == 3
    assert status(client, d, iid, {"status": "in_progress"}, if_match="*")["version"] == 4


def test_roles(client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"], status="dispatched")
    assert client.post(f"/api/v1/incidents/{iid}/status",
                       json={"status": "accepted"}).status_code == 401
    planner = status(client, auth("planner"), iid, {"status": "accepted"}, expect=403)
    assert planner["detail"]["field"] == "role"
    field = auth("patrol")
    refused = status(client, field, iid, {"status": "rejected", "note": "n"}, expect=403)
    assert refused["detail"]["field"] == "status" and "accepted" in refused["detail"]["valid"]
    bogus = status(client, field, iid, {"status": "bogus"}, expect=422)  # was a 403
    assert bogus["detail"]["value"] == "bogus" and "closed" in bogus["detail"]["valid"]
    for target in ("accepted", "in_progress", "disposed"):
        status(client, field, iid, {"status": target})
    status(client, auth("admin"), iid, {"status": "verified"})
    assert client.post(f"/api/v1/incidents/{iid}/merge", json={"into": iid},
                       headers=field).status_code == 403


def test_dispatch_to_a_named_worker(client: TestClient, auth: Auth, session: Session,
                                    city: dict[str, int]) -> None:
    iid = new_incident(session, grid=None, lon=121.5)
    d = auth("dispatcher")
    assert status(client, d, iid, {"status": "dispatched"}, expect=409)["detail"]["field"] \
        == "worker_id"
    got = status(client, d, iid, {"status": "dispatched", "worker_id": city["DS1"]})
    assert (got["worker_id"], got["rule"]) == (city["DS1"], "dispatcher")


def test_evaluation(client: TestClient, auth: Auth, session: Session,
                    city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"], status="verified")
    d = auth("dispatcher")
    url = f"/api/v1/incidents/{iid}/evaluation"
    early = client.post(url, json={"score": 5}, headers=d)
    assert early.status_code == 409 and early.json()["detail"]["valid"] == "closed"
    assert early.headers["ETag"] == '"1"'
    status(client, d, iid, {"status": "closed"})
    for bad in (0, 6, "five", 2.5):
        answer = client.post(url, json={"score": bad}, headers=d)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]["field"] == "score"
    good = client.post(url, json={"score": 5, "comment": "很快就处理了", "version": 2},
                       headers=d)
    assert good.status_code == 200, good.text
    body = good.json()
    assert (body["evaluation_score"], body["evaluation_comment"], body["version"]) == (
        5, "很快就处理了", 3)
    assert good.headers["ETag"] == '"3"'
    retry = client.post(url, json={"score": 5, "comment": "很快就处理了"}, headers=d)
    assert retry.status_code == 200 and retry.json()["version"] == 3
    other = client.post(url, json={"score": 2}, headers=d)
    assert other.status_code == 409


def test_candidates_and_merge(client: TestClient, auth: Auth, session: Session,
                              city: dict[str, int]) -> None:
    first = new_incident(session)
    second = new_incident(session, lat=30.0101, reported_at=MONDAY_10 + dt.timedelta(minutes=30))
    session.execute(text("UPDATE incident SET candidate_of = :a WHERE id = :b"),
                    {"a": first, "b": second})
    session.commit()
    reader = auth("planner")
    listed = client.get(f"/api/v1/incidents/{first}/candidates", headers=reader)
    assert listed.status_code == 200, listed.text
    [cand] = listed.json()["candidates"]
    assert (cand["id"], cand["relation"], cand["minutes_apart"]) == (second, "candidate", 30)
    assert 10 < cand["distance_m"] < 12
    assert client.get(f"/api/v1/incidents/{10**9}/candidates",
                      headers=reader).status_code == 404
    d = auth("dispatcher")
    url = f"/api/v1/incidents/{second}/merge"
    assert client.post(url, json={"into": second}, headers=d).status_code == 422
    stale = client.post(url, json={"into": first}, headers={**d, "If-Match": '"7"'})
    assert stale.status_code == 412
    merged = client.post(url, json={"into": first, "note": "same bin"}, headers=d)
    assert merged.status_code == 200, merged.text
    assert (merged.json()["status"], merged.json()["duplicate_of"]) == ("duplicate", first)
    again = client.post(url, json={"into": first}, headers=d)
    assert again.status_code == 409 and again.json()["detail"]["from"] == "duplicate"
    after = client.get(f"/api/v1/incidents/{first}/candidates", headers=reader).json()
    assert [(c["id"], c["relation"]) for c in after["candidates"]] == [(second, "merged")]


def test_escalation_endpoint(client: TestClient, auth: Auth, session: Session,
                             city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"])
    d = auth("dispatcher")
    dry = client.post("/api/v1/escalations",
                      params={"now": "2024-06-03T15:00:00+08:00", "dry_run": "true"}, headers=d)
    assert dry.status_code == 200, dry.text
    assert [e["incident_id"] for e in dry.json()["escalated"]] == [iid]
    assert row(session, iid)["escalation_level"] == 0
    real = client.post("/api/v1/escalations", params={"now": "2024-06-03T15:00:00"}, headers=d)
    step = real.json()["escalated"][0]
    assert (step["to_grid"], step["worker_code"], step["rule"]) == ("C1", "MC1", "manager")
    session.expire_all()
    assert row(session, iid)["escalated_to"] == "C1"
    assert client.post("/api/v1/escalations", params={"now": "2024-06-03T15:00:00"},
                       headers=d).json()["escalated"] == []
    bad = client.post("/api/v1/escalations", params={"now": "teatime"}, headers=d)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "now"
    assert client.post("/api/v1/escalations", headers=auth("patrol")).status_code == 403


def test_escalation_clears_the_reason_an_incident_had_nobody(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    """A declined incident (no worker, and a reason saying so) escalated to the community's
    manager has an owner again: the reason goes."""
    iid = new_incident(session, worker_id=city["WG1"], status="dispatched")
    d = auth("dispatcher")
    status(client, d, iid, {"status": "registered", "note": "not mine"})
    assert row(session, iid)["unassigned_reason"]
    client.post("/api/v1/escalations", params={"now": "2024-06-03T15:00:00+08:00"}, headers=d)
    session.expire_all()
    after = row(session, iid)
    assert after["escalated_to"] == "C1" and after["worker_id"] is not None
    assert after["unassigned_reason"] is None


# --------------------------------------------------------------------------- the server job

def _wait_for(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_server_job_escalates_once_with_two_processes(db_url: str, session: Session,
                                                      city: dict[str, int]) -> None:
    now = dt.datetime.now(SH)
    ids = [new_incident(session, worker_id=city["WG1"], reported_at=now - dt.timedelta(hours=5))
           for _ in range(5)]
    fast = Settings(database_url=db_url, escalation_interval_s=0.1)
    app_one, app_two = create_app(fast), create_app(fast)
    with TestClient(app_one), TestClient(app_two):
        def done() -> bool:
            with db.session_scope(db_url) as s:
                left = s.execute(text("SELECT count(*) FROM incident "
                                      "WHERE escalation_level = 0")).scalar()
            return left == 0

        assert _wait_for(done)
        assert _wait_for(lambda: app_one.state.escalation_runs + app_two.state.escalation_runs
                         >= 4)
        assert app_one.state.escalation_errors == app_two.state.escalation_errors == 0
        # the job's counters, as /healthz shows them (no second start-up: no `with`)
        job = TestClient(app_one).get("/healthz").json()["escalation_job"]
        assert job["interval_s"] == 0.1 and job["runs"] >= 1 and job["errors"] == 0
        assert job["last_run"] is not None and job["last_skipped"] in (True, False)
    for iid in ids:
        assert [e["data"]["kind"] for e in events(session, iid)] == ["escalation"]
        assert row(session, iid)["escalated_to"] == "C1"


def test_a_failing_job_run_shows_in_healthz_and_the_job_goes_on(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: Settings, now: dt.datetime | None = None) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(jobs, "run_escalation_once", broken)
    app = create_app(Settings(database_url=db_url, escalation_interval_s=0.05))
    with TestClient(app):
        assert _wait_for(lambda: app.state.escalation_errors >= 2)  # it carries on
        job = TestClient(app).get("/healthz").json()["escalation_job"]
    assert job["errors"] >= 2 and job["last_run"] is None
    assert job["last_error"] == "RuntimeError: the database went away" and job["last_error_at"]


def test_server_job_off_and_default_interval(settings: Settings, client: TestClient) -> None:
    assert settings.escalation_interval_s == 300
    assert client.app.state.escalation_runs == 0  # type: ignore[attr-defined]
    off = Settings(database_url=settings.database_url, escalation_interval_s=0)
    with TestClient(create_app(off)) as c:
        health = c.get("/healthz")
        assert health.status_code == 200
        assert c.app.state.last_escalation is None  # type: ignore[attr-defined]
        assert health.json()["escalation_job"] == {
            "interval_s": 0, "runs": 0, "errors": 0, "last_run": None, "last_escalated": None,
            "last_skipped": None, "last_error_at": None, "last_error": None}


# --------------------------------------------------------------------------- the CLI

@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, list(args))

    yield run
    get_settings.cache_clear()


def test_cli_escalate(cli: Callable[..., Any], session: Session, city: dict[str, int]) -> None:
    iid = new_incident(session, worker_id=city["WG1"])
    dry = cli("escalate", "--now", "2024-06-03T14:30:00+08:00", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would escalate 1" in dry.output and "MC1" in dry.output
    assert row(session, iid)["escalation_level"] == 0
    real = cli("escalate", "--now", "2024-06-03T14:30:00")
    assert real.exit_code == 0, real.output
    assert "escalated 1;" in real.output
    session.expire_all()
    assert row(session, iid)["escalated_to"] == "C1"
    assert events(session, iid)[0]["actor"] == "cli:escalate"
    again = cli("escalate", "--now", "2024-06-03T14:30:00")
    assert again.exit_code == 0 and "escalated 0;" in again.output
    bad = cli("escalate", "--now", "half past two")
    assert bad.exit_code == 2 and "--now" in bad.output


# --------------------------------------------------------------------------- end to end

def test_report_work_close_evaluate_and_merge_over_http(client: TestClient, auth: Auth,
                                                         city: dict[str, int]) -> None:
    app_user, d, field = auth("admin"), auth("dispatcher"), auth("patrol")
    report = {"lon": 120.005, "lat": 30.01, "category": "E1", "source": "app",
              "reported_at": "2024-06-03T10:00:00+08:00", "description": "垃圾桶满溢"}
    first = client.post("/api/v1/incidents", json={**report, "external_id": "APP-1"},
                        headers=app_user)
    assert first.status_code == 201, first.text
    iid = first.json()["id"]
    second = client.post("/api/v1/incidents", headers=app_user, json={
        **report, "external_id": "APP-2", "lat": 30.0102,
        "reported_at": "2024-06-03T10:40:00+08:00"})
    assert second.status_code == 201, second.text
    dup = second.json()["id"]
    assert second.json()["candidate_of"] == iid
    detail = client.get(f"/api/v1/incidents/{iid}", headers=app_user)
    etag = detail.headers["ETag"]
    assert detail.json()["properties"]["status"] == "dispatched"
    accepted = status(client, field, iid, {"status": "accepted", "note": "在路上"},
                      if_match=etag)
    assert status(client, field, iid, {"status": "in_progress"}, if_match=etag,
                  expect=412)["detail"]["current_version"] == accepted["version"]
    cands = client.get(f"/api/v1/incidents/{iid}/candidates", headers=app_user).json()
    assert [(c["id"], c["relation"]) for c in cands["candidates"]] == [(dup, "candidate")]
    merged = client.post(f"/api/v1/incidents/{dup}/merge", json={"into": iid}, headers=d)
    assert merged.status_code == 200, merged.text
    for target in ("in_progress", "disposed"):
        status(client, field, iid, {"status": target})
    for target in ("verified", "closed"):
        status(client, d, iid, {"status": target})
    evaluation = client.post(f"/api/v1/incidents/{iid}/evaluation", headers=d,
                             json={"score": 4, "comment": "满意"})
    assert evaluation.status_code == 200, evaluation.text
    trail = client.get(f"/api/v1/incidents/{iid}", headers=app_user).json()["events"]
    steps = [(e["from_status"], e["to_status"]) for e in trail]
    assert steps[:2] == [(None, "registered"), ("registered", "dispatched")]
    assert steps[2:] == [("dispatched", "accepted"), ("accepted", "accepted"),
                         ("accepted", "in_progress"), ("in_progress", "disposed"),
                         ("disposed", "verified"), ("verified", "closed"),
                         ("closed", "closed")]
    assert trail[3]["data"]["merged"] == dup
    queue = client.get("/api/v1/incidents", params={"status": "duplicate"},
                       headers=app_user).json()
    assert [f["id"] for f in queue["features"]] == [dup]
