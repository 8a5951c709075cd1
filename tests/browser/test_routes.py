"""/maps/routes/{team} in headless Chromium on the demo city, on screen and printed on A4."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import ARTIFACTS, LiveServer, check_map_page
from tests.browser.map_facts import MAP_JS, panel_text, scalar, yesterday


@pytest.fixture(scope="module")
def team(demo_db_url: str) -> str:
    """The code of the first demo team with a route."""
    return str(scalar(demo_db_url, "SELECT t.code FROM team t JOIN patrol_route r "
                                   "ON r.team_id = t.id ORDER BY t.code LIMIT 1"))


def test_route_map_on_screen(live_server: LiveServer, page: Page, team: str) -> None:
    day = yesterday(live_server.settings).isoformat()
    info = check_map_page(page, live_server.url(f"/maps/routes/{team}", date=day),
                          screenshot="routes", expect_layers=6)
    # crossed grids, claimed grids, tracks, routes, incidents; numbered incident labels
    assert info["kinds"]["geojson"] == 5, info
    assert info["kinds"].get("marker", 0) >= 1
    text = panel_text(page)
    assert team in text and day in text and "沿线事件" in text
    facts = page.evaluate(MAP_JS)
    assert facts["fits"] is True


def test_route_map_prints_on_one_a4_sheet(live_server: LiveServer, page: Page,
                                          team: str) -> None:
    day = yesterday(live_server.settings).isoformat()
    check_map_page(page, live_server.url(f"/maps/routes/{team}", date=day),
                   screenshot="routes-screen", expect_layers=6)
    page.emulate_media(media="print")
    page.wait_for_timeout(300)
    facts = page.evaluate(MAP_JS)
    assert facts["width_mm"] == pytest.approx(190, abs=1)
    assert facts["height_mm"] == pytest.approx(120, abs=1)
    assert [facts["size"]["x"], facts["size"]["y"]] == facts["inner"]  # Leaflet resized
    assert facts["fits"] is True  # and refitted to the routes and grids
    hidden = page.evaluate("""() => [getComputedStyle(document.querySelector(
        '.leaflet-control-layers')).display, getComputedStyle(document.querySelector(
        '.leaflet-control-zoom')).display, getComputedStyle(document.querySelector(
        '#pg-panel')).position]""")
    assert hidden == ["none", "none", "static"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "routes-print.png"), full_page=True)
    pdf = page.pdf(format="A4", path=str(ARTIFACTS / "routes.pdf"))
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1  # one sheet


def test_unknown_team_is_a_404_page(live_server: LiveServer, page: Page) -> None:
    response = page.goto(live_server.url("/maps/routes/NO-SUCH-TEAM"))
    assert response is not None and response.status == 404
    assert "NO-SUCH-TEAM" in page.content() and "team" in page.content()
