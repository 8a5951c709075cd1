"""The CLI and the server against a database that is missing, empty or behind the code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from api.cli import app
from api.cli.common import reported_errors
from geo.errors import InvalidInput
from geo.settings import get_settings
from geo.store import db


@pytest.fixture
def other_url(db_url: str) -> Iterator[str]:
    """The URL of a database of this test's own that does not exist yet."""
    url = make_url(db_url).set(database=f"patrolgrid_test_{uuid.uuid4().hex[:12]}")
    text = url.render_as_string(hide_password=False)
    yield text
    db.drop_database(text)


def _run(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("PATROLGRID_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


COMMANDS = [("demo", "load", "--no-incidents", "--track-days", "0"),
            ("grids", "export", "/tmp/never-written.geojson"), ("serve", "--port", "1")]


@pytest.mark.parametrize("args", COMMANDS)
def test_a_missing_database_is_named_with_the_fix(other_url: str, args: tuple[str, ...],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(other_url, monkeypatch, *args)
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "cannot connect to the database" in out and "does not exist" in out
    assert "patrolgrid db upgrade" in out and "Traceback" not in out


@pytest.mark.parametrize("args", COMMANDS)
def test_an_empty_database_is_named_with_the_fix(other_url: str, args: tuple[str, ...],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db.create_database(other_url)
    result = _run(other_url, monkeypatch, *args)
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "has no patrolgrid tables" in out and "patrolgrid db upgrade" in out, out


def test_the_server_refuses_a_database_behind_the_code(other_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db.create_database(other_url)
    db.migrate(other_url, "0007")
    result = _run(other_url, monkeypatch, "serve", "--port", "1")
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"is at migration 0007, this code needs {db.head_revision()}" in out, out


def test_db_upgrade_fixes_what_it_names(other_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(other_url, monkeypatch, "db", "upgrade").exit_code == 0
    assert db.schema_problem(other_url) is None


def test_a_bad_setting_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATROLGRID_PORT", "abc")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config"])
    finally:
        monkeypatch.delenv("PATROLGRID_PORT")
        get_settings.cache_clear()
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "PATROLGRID_PORT=abc" in out and "Traceback" not in out


@pytest.mark.parametrize(("env", "value", "words"), [
    ("DATABASE_URL", "", "is not a PostgreSQL URL"),
    ("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:abc/x", "is not a PostgreSQL"),
    ("DATABASE_URL", "mysql://u@h/x", "needs PostGIS"),
    ("PATROLGRID_HOTSPOT_LOOKBACK_DAYS", "1e300", "less than or equal to 3660"),
    ("PATROLGRID_TRACK_MAX_WINDOW_DAYS", "1e300", "less than or equal to 3660"),
    ("PATROLGRID_DUPLICATE_WINDOW_H", "1e300", "less than or equal to 8760"),
    ("PATROLGRID_PAGE_LIMIT", "5000", "above max_page_limit 1000"),
    ("PATROLGRID_BASEMAP", "foo", "not one of none, osm"),
])
def test_settings_that_would_fail_later_are_refused_at_start(
        monkeypatch: pytest.MonkeyPatch, env: str, value: str, words: str) -> None:
    monkeypatch.setenv(env, value)  # each was taken, then failed requests (500s, or 422s
    monkeypatch.delenv("PATROLGRID_DATABASE_URL", raising=False)  # blaming the client) or a
    get_settings.cache_clear()                                     # traceback
    try:
        result = CliRunner().invoke(app, ["config"])
    finally:
        monkeypatch.delenv(env)
        get_settings.cache_clear()
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and words in out and "Traceback" not in out, out
    if env != "PATROLGRID_PAGE_LIMIT":  # the variable set, not PATROLGRID_DATABASE_URL
        assert f"error: {env}=" in out


@pytest.mark.parametrize("args", [["--workers", "1000"], ["--workers", "0"],
                                  ["--port", "70000"], ["--port", "0"]])
def test_serve_options_keep_the_settings_ranges(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["serve", *args])  # 1000 workers ran the machine dry
    assert result.exit_code == 2 and "Invalid value" in result.output, result.output


def test_db_upgrade_names_an_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run("postgresql+psycopg://postgres@127.0.0.1:1/x", monkeypatch, "db", "upgrade")
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "cannot connect" in out and "Traceback" not in out, out


def test_messages_keep_their_square_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit), reported_errors():
        raise InvalidInput("point [1, 2] is off", field="x", valid='"coordinates": [lon, lat]')
    err = " ".join(capsys.readouterr().err.split())
    assert "point [1, 2] is off" in err and '"coordinates": [lon, lat]' in err
