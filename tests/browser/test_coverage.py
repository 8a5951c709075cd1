"""/maps/coverage in headless Chromium on the demo city (network cut to loopback)."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import LiveServer, check_map_page
from tests.browser.map_facts import panel_text, yesterday

#: Most bytes the page of one day over the whole demo city may weigh.
MAX_BYTES = 3_000_000


def test_coverage_page_of_yesterday(live_server: LiveServer, page: Page) -> None:
    day = yesterday(live_server.settings).isoformat()
    info = check_map_page(page, live_server.url("/maps/coverage", date=day),
                          screenshot="coverage", expect_layers=324 + 3)
    # grids, tracks and the missed hotspots are on; the visited hotspots are a hidden layer
    assert info["kinds"]["geojson"] == 3, info
    assert info["bytes"] < MAX_BYTES, info["bytes"]
    text = panel_text(page)
    assert day in text and "覆盖最低的网格" in text and "未巡到的热点" in text
    assert page.locator("#pg-legend").count() == 1
    page.locator(".leaflet-control-layers").get_by_text("已巡到热点").click()
    after = page.evaluate("""() => { let n = 0; const m = Object.values(window)
        .find(v => v instanceof L.Map); m.eachLayer(l => { if (l instanceof L.GeoJSON) n++; });
        return n; }""")
    assert after == 4
    assert page.log.console_errors == []  # type: ignore[attr-defined]


def test_coverage_page_in_english_by_community(live_server: LiveServer, page: Page) -> None:
    day = yesterday(live_server.settings).isoformat()
    info = check_map_page(page, live_server.url("/maps/coverage", date=day, level="community",
                                                lang="en"),
                          screenshot="coverage-community-en", expect_layers=69 + 3)
    assert info["kinds"]["geojson"] >= 2
    assert "Least covered grids" in panel_text(page)
    assert page.title() == "Patrol coverage"
