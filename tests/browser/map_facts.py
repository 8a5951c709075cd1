"""Shared bits of the coverage, routes and dispatch browser tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import Page
from sqlalchemy import text

from geo.settings import Settings
from geo.store import db

#: The Leaflet map of a page and a few facts about it.
MAP_JS = """() => {
  const m = Object.values(window).find(v => v instanceof L.Map);
  const px = 96 / 25.4;
  const box = m.getContainer().getBoundingClientRect();
  return {width_mm: box.width / px, height_mm: box.height / px, size: m.getSize(),
          inner: [m.getContainer().clientWidth, m.getContainer().clientHeight],
          fits: m.pgBounds ? m.getBounds().pad(0.05).contains(L.latLngBounds(m.pgBounds)) : null};
}"""


def yesterday(settings: Settings) -> dt.date:
    """The last local day of the demo's tracks: the day before the demo was loaded (not
    before now: a run that crosses local midnight asked for a day without tracks)."""
    last = scalar(settings.database_url, "SELECT max(t) FROM track_point")
    return last.astimezone(settings.tz).date() if last is not None else \
        dt.datetime.now(settings.tz).date() - dt.timedelta(days=1)


def scalar(url: str, sql: str, **params: Any) -> Any:
    """One value from the demo database."""
    with db.session_scope(url) as s:
        return s.execute(text(sql), params).scalar_one()


def panel_text(page: Page) -> str:
    """The text of the page's info panel."""
    return page.inner_text("#pg-panel")
