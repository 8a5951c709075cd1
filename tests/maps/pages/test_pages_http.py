"""The coverage, routes and dispatch pages over HTTP and the CLI: content, errors, print CSS."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import Result

from geo.chinacoords import wgs84_to_gcj02
from tests.maps.pages.conftest import INCIDENT, LAT0, MONDAY, SmallCity, incident, walk

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def busy_city(session: Session, small_city: SmallCity) -> int:
    """The small city with a Monday walk by P-1 and an incident assigned to W1; its id."""
    walk(session, small_city.workers["P-1"], 119.302, LAT0, 600.0, MONDAY.replace(hour=9))
    iid = incident(session, *INCIDENT, MONDAY.replace(hour=9, minute=5))
    session.execute(text("UPDATE incident SET worker_id = :w, rule = 'primary' WHERE id = :i"),
                    {"w": small_city.workers["W1"], "i": iid})
    session.commit()
    return iid


def test_coverage_page(client: TestClient, auth: Auth, busy_city: int) -> None:
    r = client.get("/maps/coverage", params={"date": "2026-11-09"}, headers=auth("patrol"))
    assert r.status_code == 200, r.text
    body = r.text
    assert "<title>巡防覆盖率</title>" in body and "/vendor/leaflet/dist/leaflet.js" in body
    assert '"code": "G1"' in body and '"worker_code": "P-1"' in body
    assert "覆盖最低的网格" in body and "巡防轨迹" in body and "pg-panel" in body
    # zh all through: the level named, track times local to the minute with 起/止
    assert "<th>层级</th><td>网格</td>" in body, body[body.find("层级") - 50:][:200]
    starts = re.findall(r'"start": "([^"]+)"', body)
    assert starts and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", t) for t in starts)
    assert json.dumps("起")[1:-1] in body or "起" in body
    en = client.get("/maps/coverage", params={"date": "2026-11-09", "lang": "en"},
                    headers=auth("patrol"))
    assert "<title>Patrol coverage</title>" in en.text and "Least covered grids" in en.text


def test_routes_page_prints_on_a4(client: TestClient, auth: Auth, busy_city: int) -> None:
    r = client.get("/maps/routes/T1", params={"date": "2026-11-09"}, headers=auth("patrol"))
    assert r.status_code == 200, r.text
    assert "@page { size: A4 portrait" in r.text and "@media print" in r.text
    assert '"code": "R1"' in r.text and "巡防队" in r.text and '"preferCanvas": false' in r.text
    assert "pgBounds" in r.text


def test_dispatch_page(client: TestClient, auth: Auth, busy_city: int) -> None:
    r = client.get(f"/maps/dispatch/{busy_city}", params={"at": "2026-11-09T10:00:00+08:00"},
                   headers=auth("dispatcher"))
    assert r.status_code == 200, r.text
    assert "name P-1" in r.text and "name W1" in r.text and "A角 G1" in r.text
    assert "网格一" in r.text and "社区" in r.text and "待命" in r.text
    en = client.get(f"/maps/dispatch/{busy_city}", params={"at": "2026-11-09T10:00:00+08:00",
                                                          "lang": "en"},
                    headers=auth("dispatcher"))
    assert "primary G1" in en.text and "on call (no duty)" in en.text


@pytest.mark.parametrize(("path", "params", "status", "field", "value"), [
    ("/maps/coverage", {"date": "2026-13-01"}, 422, "date", "2026-13-01"),
    ("/maps/coverage", {"date": "2026-11-09", "from": "2026-11-08"}, 422, "date", "2026-11-09"),
    ("/maps/coverage", {"level": "planet"}, 422, "level", "planet"),
    ("/maps/coverage", {"parent": "NOPE"}, 404, "parent", "NOPE"),
    ("/maps/coverage", {"from": "yesterday"}, 422, "from", "yesterday"),
    ("/maps/coverage", {"distance_m": "0"}, 422, "distance_m", "0"),
    ("/maps/coverage", {"colour": "red"}, 422, "colour", "red"),
    ("/maps/routes/NOPE", {}, 404, "team", "NOPE"),
    ("/maps/routes/T1", {"date": "9 Nov"}, 422, "date", "9 Nov"),
    ("/maps/routes/T1", {"near_m": "-5"}, 422, "near_m", "-5"),
    ("/maps/routes/T1", {"near_m": "nan"}, 422, "near_m", "nan"),  # "less than or equal to"
    ("/maps/dispatch/987654", {}, 404, "incident_id", 987654),
    ("/maps/dispatch/abc", {}, 422, "incident_id", "abc"),
    ("/maps/dispatch/{id}", {"at": "soon"}, 422, "at", "soon"),
    ("/maps/dispatch/{id}", {"nearest": "0"}, 422, "nearest", "0"),
])
def test_bad_input_names_the_field(client: TestClient, auth: Auth, busy_city: int, path: str,
                                   params: dict[str, str], status: int, field: str,
                                   value: Any) -> None:
    r = client.get(path.format(id=busy_city), params=params, headers=auth("dispatcher"))
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert (detail["field"], detail["value"]) == (field, value) and detail["valid"], detail
    if value == "nan":  # it said "less than or equal to 1000"
        assert "finite" in detail["message"], detail
    html = client.get(path.format(id=busy_city), params=params,
                      headers={**auth("dispatcher"), "Accept": "text/html"})
    assert html.status_code == status and field in html.text


def test_pages_need_a_token(client: TestClient, busy_city: int) -> None:
    for path in ("/maps/coverage", "/maps/routes/T1", f"/maps/dispatch/{busy_city}"):
        assert client.get(path).status_code == 401


@pytest.mark.parametrize(("kind", "params", "expect"), [
    ("coverage", ["-p", "date=2026-11-09", "-p", "level=community"], '"code": "C1"'),
    ("routes", ["-p", "team=T1", "-p", "date=2026-11-09"], '"code": "R1"'),
    ("dispatch", ["-p", "incident_id={id}", "-p", "at=2026-11-09T10:00"], "A角 G1"),
])
def test_maps_render_writes_a_standalone_page(cli: Callable[..., Result], busy_city: int,
                                              tmp_path: Path, kind: str, params: list[str],
                                              expect: str) -> None:
    out = tmp_path / f"{kind}.html"
    result = cli("maps", "render", kind, "--out", out,
                 *[p.format(id=busy_city) for p in params])
    assert result.exit_code == 0, result.output
    body = out.read_text("utf-8")
    assert expect in body and "/vendor/" not in body and "L.map(" in body
    assert "<script src=" not in body  # every script inlined: the file works on its own


def test_maps_render_refuses_an_unknown_team(cli: Callable[..., Result], busy_city: int,
                                             tmp_path: Path) -> None:
    out = tmp_path / "x.html"
    result = cli("maps", "render", "routes", "--out", out, "-p", "team=NOPE")
    assert result.exit_code != 0 and "team" in result.output and "NOPE" in result.output
    assert not out.exists()


def test_maps_render_refuses_the_planner_which_needs_the_api(
        cli: Callable[..., Result], busy_city: int, tmp_path: Path) -> None:
    out = tmp_path / "planner.html"
    result = cli("maps", "render", "planner", "--out", out, "-p", "parent=C1")
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "cannot be a standalone file" in text, result.output
    assert "/maps/planner?parent=CODE" in text and "hexbins" in text
    assert not out.exists()


def test_date_default_is_today(client: TestClient, auth: Auth, busy_city: int) -> None:
    r = client.get("/maps/routes/T1", headers=auth("patrol"))
    assert r.status_code == 200
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    assert today in r.text


def test_overlays_line_up_on_a_gcj02_basemap(client: TestClient, auth: Auth,
                                             busy_city: int) -> None:
    """On Amap every overlay is shifted to GCJ-02; on the default basemap it stays WGS-84."""
    def gcj(lon: float, lat: float) -> tuple[float, float]:
        x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
        return float(x[0]), float(y[0])

    cases = [
        (f"/maps/dispatch/{busy_city}", {"at": "2026-11-09T10:00"}, INCIDENT, "marker"),
        ("/maps/routes/T1", {"date": "2026-11-09"}, (119.302, LAT0), "geojson"),
        ("/maps/coverage", {"date": "2026-11-09"}, (119.31, 26.09), "geojson"),
    ]
    for path, params, (lon, lat), kind in cases:
        plain = client.get(path, params=params, headers=auth("patrol")).text
        amap = client.get(path, params={**params, "basemap": "amap"},
                          headers=auth("patrol")).text
        x, y = gcj(lon, lat)
        assert 0.003 < abs(x - lon) < 0.01 and 0.001 < abs(y - lat) < 0.01  # 300-600 m off
        if kind == "marker":  # Leaflet takes [lat, lon]
            assert f"[{lat!r}, {lon!r}]" in plain and f"[{y!r}, {x!r}]" in amap, path
            assert f"[{lat!r}, {lon!r}]" not in amap
        else:  # GeoJSON is [lon, lat]
            assert f"[{lon!r}, {lat!r}]" in plain and f"[{x!r}, {y!r}]" in amap, path
            assert f"[{lon!r}, {lat!r}]" not in amap


def test_users_text_is_escaped_everywhere_on_the_pages(client: TestClient, auth: Auth,
                                                       session: Session, busy_city: int) -> None:
    """Grid, route, team and worker names are users' text; folium writes tooltip values and
    layer names as HTML, so a name holding markup ran as script on the dispatch, coverage
    and route pages."""
    evil = "<img src=x onerror=alert(1)>"
    session.execute(text("UPDATE grid SET name = name || :e"), {"e": evil})
    session.execute(text("UPDATE patrol_route SET name = name || :e"), {"e": evil})
    session.execute(text("UPDATE team SET name = name || :e"), {"e": evil})
    session.execute(text("UPDATE worker SET name = name || :e"), {"e": evil})
    session.commit()
    for path, params in ((f"/maps/dispatch/{busy_city}", {"at": "2026-11-09T10:00:00+08:00"}),
                         ("/maps/coverage", {"date": "2026-11-09"}),
                         ("/maps/coverage", {"date": "2026-11-09", "level": "community"}),
                         ("/maps/routes/T1", {"date": "2026-11-09"})):
        r = client.get(path, params=params, headers=auth("dispatcher"))
        assert r.status_code == 200, r.text
        # folium's data is JSON in a script, its < written \u003c: the browser reads it back
        as_json = evil.replace("<", "\\u003c").replace(">", "\\u003e")
        assert evil not in r.text and as_json not in r.text, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in r.text, path


def test_a_name_that_is_template_code_stays_text(client: TestClient, auth: Auth,
                                                 session: Session, busy_city: int) -> None:
    """folium writes a Tooltip's and a Popup's text into a JavaScript template literal: a
    worker named ``${…}`` ran as code on the dispatch page (escaping HTML does not touch
    ``$``, a backtick or a backslash)."""
    code = "${document.body.id='PWN'}`\\"
    session.execute(text("UPDATE worker SET name = name || :c"), {"c": code})
    session.commit()
    r = client.get(f"/maps/dispatch/{busy_city}", params={"at": "2026-11-09T10:00:00+08:00"},
                   headers=auth("dispatcher"))
    assert r.status_code == 200, r.text
    scripts = "".join(re.findall(r"<script[^>]*>(.*?)</script>", r.text, flags=re.S))
    assert "${document" not in scripts  # as HTML text in the panel it is inert
    assert "&#36;{document.body.id=&#x27;PWN&#x27;}&#96;&#92;" in scripts
