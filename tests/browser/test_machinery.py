"""The browser fixtures themselves: a clean page passes, a page reaching outside fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from maps import pages
from tests.browser.conftest import LiveServer, check_map_page
from tests.maps import sample_page


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(pages.PAGES, sample_page.KIND, sample_page)
    yield


@pytest.mark.usefixtures("sample")
def test_offline_page_loads_clean(live_server: LiveServer, page: Page) -> None:
    info = check_map_page(page, live_server.url("/maps/sample", level="street"),
                          screenshot="sample", expect_layers=2)
    assert info["kinds"].get("geojson") == 1 and "tile" not in info["kinds"]
    assert info["layers"] >= 11  # the GeoJSON layer and its 10 streets


@pytest.mark.usefixtures("sample")
def test_a_page_reaching_outside_fails(live_server: LiveServer, page: Page) -> None:
    """OSM tiles are off loopback: the guard blocks them and check_map_page says so."""
    with pytest.raises(AssertionError, match=r"requests off loopback: .*tile\.openstreetmap\.org"):
        check_map_page(page, live_server.url("/maps/sample", basemap="osm"),
                       screenshot="sample-osm", expect_layers=1)


@pytest.mark.usefixtures("sample")
def test_login_in_the_browser(live_server: LiveServer, page: Page) -> None:
    page.goto(live_server.url("/maps/sample", auth=False, level="community"))
    assert "/maps/login" in page.url
    page.fill("input[name=token]", live_server.token)
    page.click("button[type=submit]")
    page.wait_for_function("() => window.L && document.querySelector('.leaflet-container')")
    assert page.url.endswith("/maps/sample?level=community")
    assert page.log.console_errors == []  # type: ignore[attr-defined]
