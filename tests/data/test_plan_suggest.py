"""``POST /api/v1/plans/suggest`` on the demo city and on Chicago's real beats and crimes.

A suggestion must balance the workload better than the grids drawn today: on the
demo (the communities with the most grids, by incidents, households and the mix)
and on Chicago (police beats as grids under their districts, the 2025 crime
sample as incidents), then validate and apply like any plan.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.app import create_app
from data.demo.load import load_demo
from geo.settings import Settings
from geo.store import db
from geo.store.users import create_user
from tests.data.test_incident_import import CRIMES, Cli, chicago

__all__ = ["chicago"]
URL = "/api/v1/plans/suggest"


@pytest.fixture(scope="module")
def demo(template_url: str) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    """The demo city with 6,000 incidents, a client and a planner's header (module-wide)."""
    template = make_url(template_url)
    url = template.set(database=f"patrolgrid_test_plan_{uuid.uuid4().hex[:12]}") \
        .render_as_string(hide_password=False)
    db.create_database(url, template=template.database)
    try:
        settings = Settings(database_url=url)
        with db.session_scope(url) as s:
            load_demo(s, incidents=6000, track_days=0, settings=settings)
            _, token = create_user(s, name="planner", role="planner")
        with TestClient(create_app(settings)) as client:
            yield client, {"Authorization": f"Bearer {token}"}, url
    finally:
        db.drop_database(url)


def busiest(url: str, level: str = "community") -> list[tuple[str, int]]:
    with db.session_scope(url) as s:
        rows = s.execute(text("""
            SELECT p.code, count(*) AS n FROM grid p JOIN grid g ON g.parent_code = p.code
             WHERE p.valid_to IS NULL AND g.valid_to IS NULL AND p.level = :level
             GROUP BY p.code ORDER BY n DESC, p.code LIMIT 3"""), {"level": level}).all()
    return [(r.code, int(r.n)) for r in rows]


def suggest(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = client.post(URL, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()
    return out


def check_partition(out: dict[str, Any], parent: str, k: int) -> None:
    plan = out["plan"]
    assert (plan["kind"], plan["status"], plan["parent"]) == ("suggested", "draft", parent)
    assert plan["validation"]["ok"] is True, plan["validation"]["problems"][:3]
    feats = plan["result"]["features"]
    assert len(feats) == k
    # contiguous: each grid is one polygon (pieces of H3 cells joined edge to edge)
    single = sum(shape(f["geometry"]).geom_type == "Polygon" or
                 len(shape(f["geometry"]).geoms) == 1 for f in feats)
    assert single == k
    balance = out["impact"]["balance"]
    assert balance["grids_after"] == k
    assert balance["incidents_before"] == balance["incidents_after"]


def test_suggestions_beat_the_demo_grids(demo: tuple[TestClient, dict[str, str], str]) -> None:
    client, headers, url = demo
    figures = []
    for parent, k in busiest(url):
        for workload in ("incidents", "households", "mix"):
            out = suggest(client, headers, parent=parent, k=k, workload=workload)
            check_partition(out, parent, k)
            balance = out["impact"]["balance"]
            figures.append((parent, workload, balance["cv_before"], balance["cv_after"]))
            assert balance["cv_after"] < balance["cv_before"], figures[-1]
    # by incidents, at least a halving of the spread on every community tried
    assert all(after <= before / 2 for _, w, before, after in figures if w == "incidents"), \
        figures


def test_a_suggestion_applies_like_any_plan(demo: tuple[TestClient, dict[str, str], str]
                                           ) -> None:
    client, headers, url = demo
    parent, k = busiest(url)[0]
    out = suggest(client, headers, parent=parent, k=k - 1, workload="mix", weight=0.7)
    check_partition(out, parent, k - 1)
    assert [e["op"] for e in out["plan"]["edits"]].count("retire") == 1
    applied = client.post(f"/api/v1/plans/{out['plan']['id']}/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    result = applied.json()
    assert len(result["retired"]) == 1 and result["roster"][0]["to"] is not None
    with db.session_scope(url) as s:
        now = s.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL "
                             "AND parent_code = :p"), {"p": parent}).scalar()
        stranded = s.execute(text("SELECT count(*) FROM incident WHERE grid_code = :g "
                                  "AND status NOT IN ('closed', 'rejected', 'duplicate')"),
                             {"g": result["retired"][0]}).scalar()
    assert (now, stranded) == (k - 1, 0)


def test_bad_suggestions_are_named(demo: tuple[TestClient, dict[str, str], str]) -> None:
    client, headers, _ = demo
    answer = client.post(URL, json={"parent": "NOPE", "k": 3}, headers=headers)
    assert answer.status_code == 404 and answer.json()["detail"]["field"] == "parent"
    answer = client.post(URL, json={"parent": "350102009007", "k": 0}, headers=headers)
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "k"
    answer = client.post(URL, json={"parent": "350102009007", "k": 3, "workload": "noise"},
                         headers=headers)
    assert answer.status_code == 422
    assert (answer.json()["detail"]["field"], answer.json()["detail"]["value"]) == \
        ("workload", "noise")


def test_chicago_beats_rebalanced_by_crimes(cli: Cli, chicago: Path, settings: Settings,
                                            db_url: str, auth: Callable[[str], dict[str, str]]
                                            ) -> None:
    result = cli("incidents", "import", chicago / "crimes_2025_sample.csv", *CRIMES)
    assert result.exit_code == 0, result.output
    with db.session_scope(db_url) as s:
        newest = s.execute(text("SELECT max(reported_at) FROM incident")).scalar()
    days = (dt.datetime.now(dt.UTC) - newest).days + 400  # the whole 2025 sample
    with TestClient(create_app(settings)) as client:
        for district, k in most_crimes(db_url):
            for compactness in (0.05, 0.0):
                out = suggest(client, auth("planner"), parent=district, k=k,
                              lookback_days=days, compactness=compactness)
                check_partition(out, district, k)
                balance = out["impact"]["balance"]
                assert balance["incidents_before"] >= 50
                assert balance["cv_after"] < balance["cv_before"], (district, balance)


def most_crimes(url: str) -> list[tuple[str, int]]:
    """The two districts with the most crimes, and how many beats each has."""
    with db.session_scope(url) as s:
        rows = s.execute(text("""
            SELECT g.parent_code AS code, count(DISTINCT g.code) AS beats FROM incident i
              JOIN grid g ON g.code = i.grid_code AND g.valid_to IS NULL
             GROUP BY g.parent_code ORDER BY count(*) DESC, g.parent_code LIMIT 2""")).all()
    return [(r.code, int(r.beats)) for r in rows]


def test_the_cli_suggests_shows_and_applies(cli: Cli, chicago: Path, db_url: str) -> None:
    result = cli("incidents", "import", chicago / "crimes_2025_sample.csv", *CRIMES)
    assert result.exit_code == 0, result.output
    district, beats = most_crimes(db_url)[0]
    result = cli("plans", "suggest", district, "--k", beats, "--lookback-days", 3000, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    plan_id = out["plan"]["id"]
    assert out["impact"]["balance"]["cv_after"] < out["impact"]["balance"]["cv_before"]
    result = cli("plans", "show", plan_id)
    assert result.exit_code == 0 and "no problems" in result.output, result.output
    result = cli("plans", "impact", plan_id, "--lookback-days", 3000)
    assert result.exit_code == 0 and "cv of incidents" in result.output, result.output
    result = cli("plans", "apply", plan_id)
    assert result.exit_code == 0 and "applied" in result.output, result.output
    result = cli("plans", "apply", plan_id)
    assert result.exit_code == 2 and "already applied" in result.output
    result = cli("plans", "suggest", district, "--k", 3, "--workload", "crime")
    assert result.exit_code == 2 and "workload" in result.output
