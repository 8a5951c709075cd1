"""Fixtures on a real PostGIS.

A template database is migrated once per run; each test that asks for ``db_url``
gets its own database cloned from it (``CREATE DATABASE … TEMPLATE``) and
dropped afterwards. The database named by ``DATABASE_URL`` is never touched.
When PostgreSQL or PostGIS is missing these fixtures raise: the tests fail,
they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from api.app import create_app
from api.cli import app
from geo.settings import DEFAULT_DATABASE_URL, Settings, get_settings
from geo.store import db
from geo.store.users import create_user

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def _url_for(name: str) -> str:
    base = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; a missing folder fails the test."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: clone with ../shared beside it"
    return SHARED_DATA


@pytest.fixture(scope="session")
def template_url() -> Iterator[str]:
    """A migrated database that every test database is cloned from."""
    url = _url_for(f"patrolgrid_test_tpl_{os.getpid()}")
    db.drop_database(url)
    db.create_database(url)
    try:
        db.migrate(url)
        yield url
    finally:
        db.drop_database(url)


@pytest.fixture
def db_url(template_url: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    url = _url_for(f"patrolgrid_test_{uuid.uuid4().hex[:12]}")
    db.create_database(url, template=make_url(template_url).database)
    try:
        yield url
    finally:
        db.drop_database(url)


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings pointing at this test's database."""
    return Settings(database_url=db_url)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on this test's database; the test commits when it needs to."""
    with db.session_scope(db_url) as s:
        yield s


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client for an app on this test's database."""
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``cli("grids", "import", …)`` runs `patrolgrid …` against this test's database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("PATROLGRID_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args])

    yield run
    get_settings.cache_clear()


@pytest.fixture
def auth(db_url: str) -> Callable[[str], dict[str, str]]:
    """``auth(role)`` creates a user with that role and returns its Authorization header."""
    made: dict[str, dict[str, str]] = {}

    def make(role: str) -> dict[str, str]:
        if role not in made:
            with db.session_scope(db_url) as s:
                _, token = create_user(s, name=f"test-{role}-{uuid.uuid4().hex[:6]}", role=role)
            made[role] = {"Authorization": f"Bearer {token}"}
        return made[role]

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test fails the run: nothing here may silently not run (e.g. without PostGIS)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        reporter.write_line("error: tests were skipped; every test must run here", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
