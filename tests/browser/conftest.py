"""Browser tests: the map pages in headless Chromium with the network cut to loopback.

* ``demo_db_url`` (session): a database with the demo city loaded once per run
  (``PATROLGRID_TEST_DEMO_INCIDENTS`` incidents, default the demo's 100,000, and
  ``PATROLGRID_TEST_DEMO_TRACK_DAYS`` days of tracks, default 7). Tests only read
  it; a module that writes clones it with :func:`clone_demo`. For quicker runs
  while developing, ``PATROLGRID_TEST_DEMO_FROM=<database>`` copies a database
  where ``patrolgrid demo load`` ran instead of loading (nobody may be connected
  to it).
* ``live_server`` (session): uvicorn in a thread on 127.0.0.1:<free port> serving
  ``create_app`` on that database, with an admin token (``.url(path, **query)``
  adds it as ``?access_token=``).
* ``page``: a Playwright page of the Debian Chromium, where every host but
  127.0.0.1 resolves to nothing and any request off loopback is aborted and
  recorded; console errors, page errors and failed requests are recorded.
* :func:`check_map_page` loads a page, waits for Leaflet, asserts a clean load,
  counts the layers and keeps a screenshot in ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, sync_playwright
from sqlalchemy.engine import make_url

from api.app import create_app
from data.demo.city import DEFAULT_SEED
from data.demo.incidents import DEFAULT_COUNT
from data.demo.load import load_demo
from geo.settings import Settings
from geo.store import db
from geo.store.users import create_user
from tests.conftest import _url_for

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
LOOPBACK = ("127.0.0.1", "localhost")


def _test_settings(url: str) -> Settings:
    return Settings(database_url=url, escalation_interval_s=0)


@pytest.fixture(scope="session")
def demo_db_url(template_url: str) -> Iterator[str]:
    """A database with the demo city, loaded once for the whole run (read it only)."""
    url = _url_for(f"patrolgrid_test_demo_{os.getpid()}")
    db.drop_database(url)
    source = os.environ.get("PATROLGRID_TEST_DEMO_FROM")
    if source:  # development: copy a database where `patrolgrid demo load` already ran
        db.create_database(url, template=source)
        try:
            yield url
        finally:
            db.drop_database(url)
        return
    db.create_database(url, template=make_url(template_url).database)
    incidents = int(os.environ.get("PATROLGRID_TEST_DEMO_INCIDENTS", DEFAULT_COUNT))
    track_days = int(os.environ.get("PATROLGRID_TEST_DEMO_TRACK_DAYS", 7))
    try:
        with db.session_scope(url) as session:
            load_demo(session, seed=DEFAULT_SEED, incidents=incidents,
                      settings=_test_settings(url), track_days=track_days)
        yield url
    finally:
        db.drop_database(url)


def clone_demo(demo_db_url: str) -> str:
    """A new database copied from the demo one (for tests that write); the caller drops it."""
    url = _url_for(f"patrolgrid_test_demo_{uuid.uuid4().hex[:12]}")
    db.create_database(url, template=make_url(demo_db_url).database)
    return url


@dataclass
class LiveServer:
    """The app served on loopback, and a token of an admin."""

    base: str
    token: str
    settings: Settings

    def url(self, path: str, *, auth: bool = True, **query: Any) -> str:
        """``base + path`` with ``query`` (and ``access_token`` unless ``auth=False``)."""
        params = {k: v for k, v in query.items() if v is not None}
        if auth:
            params["access_token"] = self.token
        return self.base + path + (("?" + urlencode(params, doseq=True)) if params else "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(db_url: str) -> Iterator[LiveServer]:
    """uvicorn in a thread serving the app on ``db_url``, with a new admin's token."""
    settings = _test_settings(db_url)
    with db.session_scope(db_url) as session:
        _, token = create_user(session, name=f"browser-{uuid.uuid4().hex[:6]}", role="admin")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", token, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(demo_db_url: str) -> Iterator[LiveServer]:
    """uvicorn in a thread serving the app on the demo database."""
    with serve(demo_db_url) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The Debian Chromium, headless (never a downloaded browser)."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: run `make setup`"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class PageLog:
    """What went wrong while a page loaded."""

    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.console_errors.clear()
        self.failed.clear()
        self.blocked.clear()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own context) with ``page.log``: a PageLog."""
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    log = PageLog()

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            log.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            log.console_errors.append(f"{msg.text} ({msg.location.get('url', '')})")

    def on_failed(request: Request) -> None:
        log.failed.append(f"{request.url}: {request.failure}")

    context.route("**/*", guard)
    pg = context.new_page()
    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: log.console_errors.append(f"page error: {exc}"))
    pg.on("requestfailed", on_failed)
    pg.log = log  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()


_LAYERS_JS = """() => {
  const maps = Object.values(window).filter(v => v instanceof L.Map);
  const kinds = {heat: L.HeatLayer, geojson: L.GeoJSON, tile: L.TileLayer, marker: L.Marker,
                 path: L.Path, timedimension: L.TimeDimension && L.TimeDimension.Layer};
  const out = {maps: maps.length, layers: 0, kinds: {}};
  for (const m of maps) {
    m.eachLayer(layer => {
      out.layers += 1;
      for (const [name, cls] of Object.entries(kinds)) {
        if (cls && layer instanceof cls) { out.kinds[name] = (out.kinds[name] || 0) + 1; }
      }
    });
  }
  return out;
}"""


def check_map_page(page: Page, url: str, *, screenshot: str, expect_layers: int
                   ) -> dict[str, Any]:
    """Load ``url``, wait for Leaflet, check it loaded cleanly, keep a screenshot.

    Asserts HTTP 200, ``window.L`` and a ``.leaflet-container``, at least
    ``expect_layers`` Leaflet layers, no console errors, no failed requests and
    no request off loopback. Returns ``{"maps", "layers", "kinds", "bytes"}``
    (``kinds`` counts heat / geojson / tile / marker / path layers).
    """
    log: PageLog = page.log  # type: ignore[attr-defined]
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, (
        f"{url}: HTTP {response.status if response else None}: "
        f"{response.text()[:500] if response else ''}")
    page.wait_for_function("() => window.L && document.querySelector('.leaflet-container')",
                           timeout=15_000)
    page.wait_for_timeout(500)  # let canvas layers (heat) draw before the screenshot
    info: dict[str, Any] = page.evaluate(_LAYERS_JS)
    info["bytes"] = len(response.body())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{screenshot}.png"), full_page=False)
    assert log.blocked == [], f"requests off loopback: {log.blocked}"
    assert log.failed == [], f"failed requests: {log.failed}"
    assert log.console_errors == [], f"console errors: {log.console_errors}"
    assert info["maps"] >= 1, "no Leaflet map on the page"
    assert info["layers"] >= expect_layers, f"{info['layers']} layers, expected {expect_layers}"
    return info
