"""The planner page in headless Chromium: draw an edit, see the preview, apply, see the result.

On the demo city in a database of the module's own (the test writes): a grid of
a community is split by a line drawn with the mouse through Leaflet.draw, the page shows the plan's
impact (CV before and after) and no validation problem, Apply writes the new
versions and the page redraws them from ``GET /api/v1/grids``. A second draw
(a small polygon replacing a grid, leaving the rest of it uncovered) shows the
gap drawn in red with its message, and Apply stays disabled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page
from sqlalchemy import text
from sqlalchemy.engine import make_url

from data.demo.load import load_demo
from geo.settings import Settings
from geo.store import db
from tests.browser.conftest import LiveServer, check_map_page, serve
from tests.conftest import _url_for

PARENT = "350102009007"  # 兰庭社区, 8 grids


@pytest.fixture(scope="module")
def server(template_url: str) -> Iterator[LiveServer]:
    """The demo city (3,000 incidents) in a database of this module's own: the tests write,
    and the shared demo database cannot be cloned while other servers hold it open."""
    url = _url_for(f"patrolgrid_test_planner_{uuid.uuid4().hex[:12]}")
    db.create_database(url, template=make_url(template_url).database)
    try:
        with db.session_scope(url) as s:
            load_demo(s, incidents=3000, track_days=0, settings=Settings(database_url=url))
        with serve(url) as live:
            yield live
    finally:
        db.dispose_engine(url)
        db.drop_database(url)


def first_grid(server: LiveServer) -> tuple[str, float, float, float, float]:
    """The first grid of PARENT: code, a point inside it, and its bbox's west and east."""
    with db.session_scope(server.settings.database_url) as s:
        row = s.execute(text("""
            SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat, ST_XMin(geom) AS w, ST_XMax(geom) AS e
              FROM (SELECT code, geom, ST_PointOnSurface(geom) AS p FROM grid
                     WHERE valid_to IS NULL AND parent_code = :p ORDER BY code LIMIT 1) g"""),
                        {"p": PARENT}).one()
    return row.code, row.lon, row.lat, row.w, row.e


def screen_xy(page: Page, lon: float, lat: float) -> tuple[float, float]:
    """Page coordinates of a WGS-84 point on the map (the basemap is 'none': no shift)."""
    point: dict[str, float] = page.evaluate(
        """([lat, lon]) => { const m = window.planner.map;
             const p = m.latLngToContainerPoint([lat, lon]);
             const r = m.getContainer().getBoundingClientRect();
             return {x: p.x + r.left, y: p.y + r.top}; }""", [lat, lon])
    return point["x"], point["y"]


def click(page: Page, lon: float, lat: float) -> None:
    x, y = screen_xy(page, lon, lat)
    page.mouse.click(x, y)
    page.wait_for_timeout(150)


def open_planner(page: Page, server: LiveServer) -> dict[str, Any]:
    info = check_map_page(page, server.url("/maps/planner", parent=PARENT),
                          screenshot="planner", expect_layers=10)
    page.evaluate("() => { const m = window.planner.map; m.setView(m.getCenter(), "
                  "m.getZoom()); document.getElementById('pg-panel').style.opacity = '0.9'; }")
    return info


def test_draw_preview_apply(page: Page, server: LiveServer) -> None:
    open_planner(page, server)
    code, lon, lat, west, east = first_grid(server)
    click(page, lon, lat)  # select the grid
    assert page.evaluate("() => window.planner.state.selected") == [code]
    page.fill("#pg-new-code", f"{code}-B")
    page.click("#pg-tool-split")
    # a line across the grid, from beyond its west edge to beyond its east edge
    span = east - west
    start, end = (west - 0.05 * span, lat), (east + 0.05 * span, lat)
    click(page, *start)
    click(page, *end)
    click(page, *end)  # clicking the last point again finishes the line
    page.wait_for_selector("#pg-cv", timeout=30_000)
    cv = page.text_content("#pg-cv") or ""
    assert "→" in cv, cv
    assert page.locator("#pg-problems li").count() == 0, page.inner_text("#pg-problems")
    rows = page.locator(".pg-impact-row").all_inner_texts()
    assert any(r.startswith(f"{code}-B") and "新建" in r for r in rows), rows  # zh page
    assert page.is_enabled("#pg-apply")
    page.screenshot(path="tests/artifacts/planner-preview.png")
    applied_id = page.evaluate("() => window.planner.state.plan")
    page.click("#pg-apply")
    page.wait_for_function("() => document.getElementById('pg-status').dataset.applied === '1'",
                           timeout=30_000)
    shown = page.evaluate("() => window.planner.grids.getLayers().map(l => "
                          "[l.feature.properties.code, l.feature.properties.version])")
    assert [code, 2] in shown and [f"{code}-B", 1] in shown
    assert f"{code} v2" in (page.text_content("#pg-status") or "")
    with db.session_scope(server.settings.database_url) as s:
        versions = dict(s.execute(text("SELECT code, version FROM grid WHERE valid_to IS NULL "
                                       "AND code IN (:a, :b)"), {"a": code, "b": f"{code}-B"}
                                  ).all())
    assert versions == {code: 2, f"{code}-B": 1}
    page.screenshot(path="tests/artifacts/planner-applied.png")
    assert page.evaluate("() => window.planner.state.plan") is None  # next edit: a new plan
    click(page, lon, lat)
    page.click("#pg-tool-retire")
    page.wait_for_function("() => window.planner.state.plan !== null && "
                           "!window.planner.state.busy", timeout=30_000)
    assert "409" not in (page.text_content("#pg-status") or "")
    assert page.log.console_errors == [] and page.log.failed == []  # type: ignore[attr-defined]
    # reopened, the applied plan is shown as applied, read only
    page.goto(server.url("/maps/planner", parent=PARENT, plan=applied_id))
    page.wait_for_function("() => (document.getElementById('pg-status').textContent || '')"
                           ".includes('已应用')", timeout=30_000)
    assert page.evaluate("() => window.planner.state.plan") is None
    assert not page.is_enabled("#pg-apply")
    with db.session_scope(server.settings.database_url) as s:  # in local time, not UTC
        at = s.execute(text("SELECT applied_at FROM plan WHERE id = :i"),
                       {"i": applied_id}).scalar_one()
    local = at.astimezone(ZoneInfo(server.settings.timezone)).strftime("%Y-%m-%d %H:%M")
    assert local in (page.text_content("#pg-status") or ""), local


def _plans(server: LiveServer) -> list[tuple[int, list[str]]]:
    with db.session_scope(server.settings.database_url) as s:
        rows = s.execute(text("SELECT p.id, array_remove(array_agg(e.op ORDER BY e.seq), NULL) "
                              "FROM plan p LEFT JOIN plan_edit e ON e.plan_id = p.id "
                              "GROUP BY p.id ORDER BY p.id")).all()
    return [(int(r[0]), list(r[1])) for r in rows]


def test_a_cancelled_or_switched_tool_sends_nothing(page: Page, server: LiveServer) -> None:
    open_planner(page, server)
    before = _plans(server)
    _, lon, lat, west, east = first_grid(server)
    click(page, lon, lat)
    page.click("#pg-tool-split")
    page.keyboard.press("Escape")  # cancelled
    page.click("#pg-tool-replace")  # switched away from before drawing
    page.click("#pg-tool-create")
    d = (east - west) * 0.05
    corners = [(lon - d, lat - d), (lon + d, lat - d), (lon, lat + d)]
    for corner in corners:
        click(page, *corner)
    click(page, *corners[0])
    page.wait_for_function("() => window.planner.state.plan !== null && "
                           "!window.planner.state.busy", timeout=30_000)
    page.wait_for_timeout(500)
    after = _plans(server)
    assert after[:len(before)] == before
    assert [ops for _, ops in after[len(before):]] == [["create"]], after


def test_validation_problems_are_drawn(page: Page, server: LiveServer) -> None:
    open_planner(page, server)
    page.click("#pg-tool-retire")  # nothing selected: said in the page's language
    assert page.text_content("#pg-status") == "撤销: 请只选中一个网格"
    code, lon, lat, west, east = first_grid(server)
    click(page, lon, lat)
    page.click("#pg-tool-replace")
    d = (east - west) * 0.05
    corners = [(lon - d, lat - d), (lon + d, lat - d), (lon, lat + d)]
    for corner in corners:
        click(page, *corner)
    click(page, *corners[0])  # closing the polygon on its first point
    page.wait_for_selector("#pg-problems li", timeout=30_000)
    items = page.locator("#pg-problems li").all_inner_texts()
    assert any(i.startswith("✗ 新缝隙 (gap)") and code in i for i in items), items
    drawn = page.evaluate("() => window.planner.problems.getLayers().map(l => "
                          "[l.feature.properties.message, l.getBounds().isValid()])")
    assert drawn and all(ok for _, ok in drawn) and any(code in m for m, _ in drawn), drawn
    assert not page.is_enabled("#pg-apply")
    page.screenshot(path="tests/artifacts/planner-problems.png")
    assert page.log.console_errors == []  # type: ignore[attr-defined]


def test_signed_in_through_the_form_the_page_needs_no_token(page: Page,
                                                            server: LiveServer) -> None:
    """Opened after /maps/login (no ?access_token=), the page's API calls go with the sign-in
    cookie and its header: nothing is asked, and a plan is drafted as the signed-in user."""
    prompts: list[str] = []
    page.on("dialog", lambda d: (prompts.append(d.message), d.dismiss()))
    page.goto(server.url("/maps/planner", auth=False, parent=PARENT))
    assert "/maps/login" in page.url
    page.fill("input[name=token]", server.token)
    page.click("button[type=submit]")
    page.wait_for_function("() => window.planner && window.planner.map")
    assert "access_token" not in page.url
    plan = page.evaluate("() => window.planner.api('POST', '/plans', "
                         f"{{name: 'signed in', parent: '{PARENT}'}})")
    assert plan["parent"] == PARENT and plan["status"] == "draft", plan
    with db.session_scope(server.settings.database_url) as s:
        stored = s.execute(text("SELECT name FROM plan WHERE id = :id"),
                           {"id": plan["id"]}).scalar_one()
    assert stored == "signed in"
    assert prompts == []
    assert page.log.console_errors == [] and page.log.failed == []  # type: ignore[attr-defined]


def test_a_grid_name_with_markup_is_shown_as_text(page: Page, server: LiveServer) -> None:
    """Names are planners' text: the grid tooltip used to run a name's markup as HTML."""
    code, lon, lat, _, _ = first_grid(server)
    evil = '<img src=x onerror="window.pgHacked=1">'
    with db.session_scope(server.settings.database_url) as s:
        old = s.execute(text("UPDATE grid SET name = name || :e WHERE code = :c AND "
                             "valid_to IS NULL RETURNING name"), {"e": evil, "c": code}
                        ).scalar_one().removesuffix(evil)
    try:
        open_planner(page, server)
        x, y = screen_xy(page, lon, lat)
        page.mouse.move(x, y)
        page.wait_for_selector(".leaflet-tooltip", timeout=10_000)
        assert evil in (page.text_content(".leaflet-tooltip") or "")
        assert page.locator(".leaflet-tooltip img").count() == 0
        assert page.evaluate("() => window.pgHacked") is None
    finally:
        with db.session_scope(server.settings.database_url) as s:
            s.execute(text("UPDATE grid SET name = :n WHERE code = :c AND valid_to IS NULL"),
                      {"n": old, "c": code})
