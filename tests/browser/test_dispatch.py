"""/maps/dispatch/{incident_id} in headless Chromium on the demo city."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import LiveServer, check_map_page
from tests.browser.map_facts import panel_text, scalar


@pytest.fixture(scope="module")
def incident_id(demo_db_url: str) -> int:
    """A pending demo incident in a grid, with a worker assigned."""
    return int(scalar(demo_db_url, """SELECT id FROM incident
        WHERE grid_code IS NOT NULL AND worker_id IS NOT NULL
          AND status IN ('dispatched', 'accepted', 'in_progress')
        ORDER BY id DESC LIMIT 1"""))


def test_dispatch_map(live_server: LiveServer, page: Page, incident_id: int) -> None:
    info = check_map_page(page, live_server.url(f"/maps/dispatch/{incident_id}"),
                          screenshot="dispatch", expect_layers=8)
    assert info["kinds"]["geojson"] == 3, info  # street, community, grid
    assert info["kinds"]["marker"] >= 1  # the incident (and the assigned worker if placed)
    # five nearest on-duty workers: a circle and a dashed line per place (people within
    # about 10 m share one), each labelled with its numbers and distance
    labels = page.locator(".leaflet-tooltip").all_inner_texts()
    assert 1 <= len(labels) <= 5 and all(t.endswith((" m", " km")) for t in labels), labels
    numbers = [int(n) for t in labels for n in t.split(" · ")[0].split(",")]
    assert sorted(numbers) == [1, 2, 3, 4, 5]
    assert info["kinds"]["path"] >= 3 + 2 * len(labels)
    text = panel_text(page)
    assert f"#{incident_id}" in text and "附近在岗人员" in text and "承办人" in text
    assert page.locator("#pg-panel table").nth(1).locator("tr").count() == 1 + 5


def test_unknown_incident_is_a_404_page(live_server: LiveServer, page: Page) -> None:
    response = page.goto(live_server.url("/maps/dispatch/999999999"))
    assert response is not None and response.status == 404
    assert "999999999" in page.content() and "incident_id" in page.content()
