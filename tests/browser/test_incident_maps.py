"""/maps/heatmap, /maps/hexbins and /maps/grids in headless Chromium on the demo city."""

from __future__ import annotations

import datetime as dt

from playwright.sync_api import Page

from tests.browser.conftest import LiveServer, check_map_page

#: The heatmap of every demo incident must stay under this (the issue's limit).
MAX_HEATMAP_BYTES = 2_000_000


def _year_ago() -> str:
    return (dt.date.today() - dt.timedelta(days=370)).isoformat()


def _incidents(page: Page) -> int:
    text = page.locator("#pg-panel tr").first.inner_text()
    return int(text.split()[-1].replace(",", ""))


def test_heatmap_of_every_demo_incident_is_small(live_server: LiveServer, page: Page) -> None:
    info = check_map_page(page, live_server.url("/maps/heatmap", since=_year_ago()),
                          screenshot="heatmap", expect_layers=2 + 324)
    assert info["kinds"]["heat"] == 1 and info["kinds"]["geojson"] == 1, info
    assert info["bytes"] < MAX_HEATMAP_BYTES, info["bytes"]
    assert _incidents(page) >= 90_000  # the demo's year of incidents, all on this page
    drawn = page.evaluate("""() => {
        const m = Object.values(window).find(v => v instanceof L.Map); let n = 0;
        m.eachLayer(l => { if (l instanceof L.HeatLayer) n = l._latlngs.length; });
        return n; }""")
    assert 1_000 < drawn < 20_000  # weighted H3 cells, not one point per incident
    assert page.title() == "事件热力图"


def test_heatmap_week_slider(live_server: LiveServer, page: Page) -> None:
    since = (dt.date.today() - dt.timedelta(weeks=26)).isoformat()
    info = check_map_page(page, live_server.url("/maps/heatmap", mode="week", since=since),
                          screenshot="heatmap-week-start", expect_layers=2)
    assert info["kinds"].get("timedimension") == 1, info
    control = page.locator(".leaflet-control-timecontrol.timecontrol-date")
    first = control.inner_text()
    assert "起一周" in first
    for _ in range(12):
        page.locator(".leaflet-control-timecontrol.timecontrol-forward").click()
    page.wait_for_timeout(500)
    assert control.inner_text() not in ("", first)
    page.screenshot(path=str(_artifact("heatmap-week")))
    assert page.log.console_errors == []  # type: ignore[attr-defined]


def test_heatmap_hour_slider_in_english(live_server: LiveServer, page: Page) -> None:
    info = check_map_page(page, live_server.url("/maps/heatmap", mode="hour", lang="en",
                                                outline="street"),
                          screenshot="heatmap-hour-en", expect_layers=2 + 10)
    assert info["kinds"].get("timedimension") == 1
    assert page.locator(".leaflet-control-timecontrol.timecontrol-date").inner_text() \
        == "00:00–01:00"
    assert page.title() == "Incident heatmap"


def test_hexbins_with_legend(live_server: LiveServer, page: Page) -> None:
    info = check_map_page(page, live_server.url("/maps/hexbins", k=6),
                          screenshot="hexbins", expect_layers=2 + 10)
    assert info["kinds"]["geojson"] == 2, info
    assert page.locator("#pg-legend div").count() == 6
    hexagons = page.evaluate("""() => {
        const m = Object.values(window).find(v => v instanceof L.Map); let n = 0;
        m.eachLayer(l => { if (l.feature && l.feature.properties.cell) n++; });
        return n; }""")
    assert hexagons > 100
    # hovering a cell inside a street shows the cell's count and id, not the street's name
    x, y, cell = page.evaluate("""() => {
        const m = Object.values(window).find(v => v instanceof L.Map); let best = null;
        m.eachLayer(l => { if (l.feature && l.feature.properties.cell && !best) best = l; });
        const p = m.latLngToContainerPoint(best.getCenter());
        const box = m.getContainer().getBoundingClientRect();
        return [box.left + p.x, box.top + p.y, best.feature.properties.cell]; }""")
    page.mouse.move(x, y)
    page.wait_for_selector(".leaflet-tooltip")
    tip = page.locator(".leaflet-tooltip").inner_text()
    assert cell in tip, tip


def test_grids_popup_in_chinese_and_english(live_server: LiveServer, page: Page) -> None:
    check_map_page(page, live_server.url("/maps/grids", metric="overdue"),
                   screenshot="grids", expect_layers=1 + 324)
    _open_popup(page)
    popup = page.locator(".leaflet-popup-content").inner_text()
    for label in ("名称", "责任人", "超期", "办结率", "平均办结时长"):
        assert label in popup, popup
    assert "A角" in popup
    page.screenshot(path=str(_artifact("grids-popup")))
    check_map_page(page, live_server.url("/maps/grids", metric="resolution_rate",
                                         level="community", lang="en"),
                   screenshot="grids-community-en", expect_layers=1 + 69)
    _open_popup(page)
    popup = page.locator(".leaflet-popup-content").inner_text()
    assert "resolution rate" in popup and "average time to close (h)" in popup, popup
    assert page.log.console_errors == []  # type: ignore[attr-defined]


def _open_popup(page: Page) -> None:
    """Click (with the mouse) the centre of the rightmost grid polygon, clear of the panel."""
    x, y = page.evaluate("""() => { const m = Object.values(window).find(v => v instanceof L.Map);
        let best = null; m.eachLayer(l => {
          if (l.feature && l.feature.properties.responsible !== undefined) {
            const p = m.latLngToContainerPoint(l.getCenter());
            if (!best || p.x > best.x) { best = p; } } });
        const box = m.getContainer().getBoundingClientRect();
        return [box.left + best.x, box.top + best.y]; }""")
    page.mouse.click(x, y)
    page.wait_for_selector(".leaflet-popup-content", timeout=5_000)


def _artifact(name: str) -> object:
    from tests.browser.conftest import ARTIFACTS

    return ARTIFACTS / f"{name}.png"
