"""FastAPI dependencies: settings, database sessions, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from geo.errors import UNSTORABLE_ESCAPE, InvalidInput, storable_json
from geo.jsonkeys import loads_unique
from geo.settings import Settings
from geo.store.db import session_scope
from geo.store.models import INT4_MAX, INT8_MAX


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """A session per request, committed when the endpoint returns, rolled back on error."""
    with session_scope(settings.database_url) as session:
        yield session


#: ``scope="function"``: the transaction commits when the endpoint returns and *before* the
#: response is sent, so a failed commit is a 500, never a 2xx for something not stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Ids beyond their column's range (INT4_MAX, INT8_MAX) are refused as a 422 naming them,
# not sent to the database (which would fail).
#: A path id of a ``serial`` table (grids, workers, teams, duties, routes, tasks, plans).
Id = Annotated[int, Path(ge=1, le=INT4_MAX)]
#: A path id of a ``bigserial`` table (incidents).
BigId = Annotated[int, Path(ge=1, le=INT8_MAX)]
#: An optional query filter by the id of a ``serial`` table.
IdFilter = Annotated[int | None, Query(ge=1, le=INT4_MAX)]


async def storable_json_body(request: Request) -> None:
    """Refuse (422 naming the field), for every endpoint at once, a JSON body that gives a
    key twice in one object with different values (a JSON parser keeps one of them
    silently: ``{"lon": 119.3, "lon": 26.08}`` was stored at 26.08) or holds text
    PostgreSQL cannot store (an unpaired surrogate such as ``\\ud800``, or NUL)."""
    if request.method not in ("POST", "PUT", "PATCH") or "json" not in request.headers.get(
            "content-type", ""):
        return
    body = await request.body()
    try:
        data = loads_unique(body)
    except (ValueError, RecursionError):
        return  # not JSON (or NDJSON): FastAPI or the endpoint answers for that
    if not UNSTORABLE_ESCAPE.search(body):
        return
    try:
        storable_json(data, "")
    except InvalidInput as exc:  # paths start at the root: ".name" is the body's "name"
        path = exc.field or ""
        exc.field = path.lstrip(".") or "body"
        exc.message = exc.field + exc.message[len(path):]
        raise
