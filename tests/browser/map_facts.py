"""Shared bits of the coverage, routes and dispatch browser tests."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page
from sqlalchemy import text

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


def yesterday(tz: ZoneInfo) -> dt.date:
    """The local day before today: the last day of the demo's tracks."""
    return dt.datetime.now(tz).date() - dt.timedelta(days=1)


def scalar(url: str, sql: str, **params: Any) -> Any:
    """One value from the demo database."""
    with db.session_scope(url) as s:
        return s.execute(text(sql), params).scalar_one()


def panel_text(page: Page) -> str:
    """The text of the page's info panel."""
    return page.inner_text("#pg-panel")
