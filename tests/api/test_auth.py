"""Bearer tokens on every route of the app, role checks on every write, the users CLI."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from geo.settings import Settings, get_settings
from geo.store.models import USER_ROLES, AppUser
from geo.store.users import create_user, revoke_tokens

Auth = Callable[[str], dict[str, str]]
#: /maps/login is the sign-in form itself (POST checks the token it is given, see
#: tests/api/test_maps_api.py); /maps/logout only forgets the cookie.
PUBLIC = {"/healthz", "/docs", "/maps/login", "/maps/logout"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _api_routes(settings: Settings) -> Iterator[tuple[str, set[str], Any]]:
    """(full path, methods, dependant) of every FastAPI route, through included routers."""
    routes = create_app(settings).routes
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.16x keeps routers nested
    except ImportError:  # older FastAPI flattens included routes into app.routes
        for route in routes:
            if isinstance(route, APIRoute):
                yield route.path, set(route.methods or ()), route.dependant
        return
    for ctx in iter_route_contexts(routes):
        if isinstance(ctx.original_route, APIRoute):
            yield str(ctx.path), set(ctx.methods or ()), ctx.dependant


def _routes(settings: Settings) -> list[tuple[str, str, Any]]:
    out = []
    for path, methods, dependant in _api_routes(settings):
        if path not in PUBLIC:
            for method in sorted(methods - {"HEAD", "OPTIONS"}):
                out.append((method, re.sub(r"\{[^}]+\}", "1", path), dependant))
    return out


def _allowed_roles(dependant: Any) -> set[str] | None:
    """The roles a route's ``require_role`` dependency lets through (None when it has none)."""
    pending = list(dependant.dependencies)
    while pending:
        dep = pending.pop()
        call = dep.call
        if call is not None and getattr(call, "__qualname__", "").startswith("require_role."):
            allowed: set[str] = inspect.getclosurevars(call).nonlocals["allowed"]
            return allowed
        pending.extend(dep.dependencies)
    return None


def test_the_app_has_the_routes_this_test_walks(settings: Settings) -> None:
    paths = {path for _, path, _ in _routes(settings)}
    assert {"/api/v1/grids", "/api/v1/grids/1", "/api/v1/locate", "/api/v1/workers",
            "/api/v1/duties/1"} <= paths


def test_every_route_but_health_and_docs_needs_a_token(client: TestClient,
                                                       settings: Settings) -> None:
    routes = _routes(settings)
    assert len(routes) > 10
    for method, path, _ in routes:
        for headers in ({}, {"Authorization": "Bearer pg_not-a-real-token"},
                        {"Authorization": "Basic dXNlcjpwYXNz"}):
            answer = client.request(method, path, headers=headers)
            if path.startswith("/open311/"):
                # GeoReport v2: its own error list; a key that is sent but wrong is a 403
                wrong_key = headers.get("Authorization", "").startswith("Bearer")
                assert answer.status_code == (403 if wrong_key else 401), (method, path)
                assert answer.json()[0]["field"] == "api_key"
                continue
            assert answer.status_code == 401, (method, path, headers, answer.text)
            if path.startswith("/maps"):  # also takes ?access_token= and the login cookie
                assert answer.json()["detail"]["field"] in ("Authorization", "cookie")
                continue
            assert answer.json()["detail"]["field"] == "Authorization"
    assert client.get("/healthz").status_code == 200


def test_every_write_checks_the_role(client: TestClient, settings: Settings,
                                     auth: Auth) -> None:
    # Open311 checks its api_key's role inside the endpoint (tests/api/test_open311.py)
    writes = [(m, p, r) for m, p, r in _routes(settings)
              if m in WRITES and not p.startswith("/open311/")]
    assert len(writes) >= 8
    refused = 0
    for method, path, route in writes:
        allowed = _allowed_roles(route)
        assert allowed is not None, f"{method} {path} has no role check"
        assert "admin" in allowed
        for role in sorted(set(USER_ROLES) - allowed):
            answer = client.request(method, path, headers=auth(role))
            assert answer.status_code == 403, (method, path, role, answer.text)
            assert answer.json()["detail"]["value"] == role
            refused += 1
    assert refused >= len(writes)


def test_reads_are_open_to_every_role(client: TestClient, auth: Auth) -> None:
    for role in USER_ROLES:
        assert client.get("/api/v1/grids", headers=auth(role)).status_code == 200
        assert client.get("/api/v1/workers", headers=auth(role)).status_code == 200


def test_revoked_tokens_and_inactive_users_get_401(client: TestClient, session: Session) -> None:
    user, token = create_user(session, name="someone", role="planner")
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/grids", headers=headers).status_code == 200
    assert revoke_tokens(session, user_id=user.id) == 1
    session.commit()
    assert client.get("/api/v1/grids", headers=headers).status_code == 401

    other, token2 = create_user(session, name="other", role="planner")
    other.active = False
    session.commit()
    assert client.get("/api/v1/grids",
                      headers={"Authorization": f"Bearer {token2}"}).status_code == 401


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def cli(db_url: str) -> Iterator[Callable[..., Any]]:
    """Run ``patrolgrid`` on this test's database."""
    runner = CliRunner()
    get_settings.cache_clear()

    def run(*args: str) -> Any:
        get_settings.cache_clear()
        return runner.invoke(cli_app, list(args), env={"DATABASE_URL": db_url,
                                                       "PATROLGRID_DATABASE_URL": db_url})

    yield run
    get_settings.cache_clear()


def test_users_create_prints_a_working_token_last(cli: Callable[..., Any], client: TestClient,
                                                  session: Session) -> None:
    made = cli("users", "create", "--name", "alice", "--role", "dispatcher")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("pg_") and " " not in token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/grids", headers=headers).status_code == 200
    created = client.post("/api/v1/workers", headers=headers,
                          json={"code": "W-1", "name": "x", "role": "patrol"})
    assert created.status_code == 201
    assert session.scalar(select(AppUser.role).where(AppUser.name == "alice")) == "dispatcher"

    listed = cli("users", "list")
    assert listed.exit_code == 0 and "alice" in listed.stdout and "dispatcher" in listed.stdout

    revoked = cli("users", "revoke", "--name", "alice")
    assert revoked.exit_code == 0 and "1 token" in revoked.stdout
    assert client.get("/api/v1/grids", headers=headers).status_code == 401

    again = cli("users", "token", "--name", "alice")
    assert again.exit_code == 0
    fresh = again.stdout.strip().splitlines()[-1]
    assert client.get("/api/v1/grids",
                      headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


@pytest.mark.parametrize(("args", "words"), [
    (("users", "create", "--name", "bob", "--role", "boss"), "boss"),
    (("users", "create", "--name", "taken", "--role", "patrol"), "already exists"),
    (("users", "revoke", "--name", "nobody"), "nobody"),
    # a name that is not UTF-8 (a shell's $'\xff') was a traceback
    (("users", "create", "--name", "\udcff\udcfe", "--role", "admin"), "name"),
    (("users", "token", "--name", "a\x00b"), "NUL"),
    (("users", "create", "--name", "taken ", "--role", "admin"), "spaces around"),
])
def test_users_cli_errors_exit_2_with_a_message(cli: Callable[..., Any], session: Session,
                                                args: tuple[str, ...], words: str) -> None:
    create_user(session, name="taken", role="patrol")
    session.commit()
    result = cli(*args)
    assert result.exit_code == 2
    assert words in result.output


def test_cli_prints_names_and_titles_as_given(cli: Callable[..., Any], client: TestClient,
                                              auth: Callable[[str], dict[str, str]]) -> None:
    """The CLI read user text as rich markup: "[/bold]" crashed it (MarkupError), and
    "[red]qa_red" was shown as "qa_red", a name `users token` then did not find."""
    for name in ("[/bold]", "[red]qa_red", "ops:fire:team"):  # ":fire:" became an emoji
        made = cli("users", "create", "--name", name, "--role", "patrol")
        assert made.exit_code == 0 and f"created user {name} " in made.stdout, made.output
    listed = cli("users", "list")
    assert listed.exit_code == 0 and "[red]qa_red" in listed.stdout, listed.output
    assert "ops:fire:team" in listed.stdout, listed.output
    assert cli("users", "token", "--name", "[red]qa_red").exit_code == 0
    refused = cli("users", "revoke", "--name", "[/nobody]")
    assert refused.exit_code == 2 and "'[/nobody]'" in refused.output, refused.output
