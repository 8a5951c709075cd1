"""The database fixtures and the one public endpoint."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session


def test_migrations_from_empty_create_the_schema(session: Session) -> None:
    tables = set(session.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert {"grid", "worker", "team", "duty", "category", "incident", "incident_event",
            "patrol_route", "track_point", "app_user", "api_token"} <= tables
    index = session.execute(text(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'grid_current_geom'")).scalar_one()
    assert "gist" in index and "valid_to IS NULL" in index


def test_healthz_needs_no_token(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["postgis"].startswith("3.")


def test_config_lists_every_setting_with_its_variable() -> None:
    from typer.testing import CliRunner

    from api.cli import app
    from geo.settings import Settings

    result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for name in Settings.model_fields:
        variable = "DATABASE_URL" if name == "database_url" else f"PATROLGRID_{name.upper()}"
        assert variable in result.output
