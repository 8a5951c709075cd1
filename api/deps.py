"""FastAPI dependencies: settings, database sessions, the caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from geo.errors import UNSTORABLE_ESCAPE, InvalidInput, storable_json
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


# A JSON escape that may decode to text PostgreSQL cannot store: a lone surrogate or NUL.


async def storable_json_body(request: Request) -> None:
    """Refuse (422 naming the field) a JSON body holding text PostgreSQL cannot store (an
    unpaired surrogate such as ``\\ud800``, or NUL), for every endpoint at once; the raw
    bytes are searched first, so ordinary bodies are not parsed twice."""
    if request.method not in ("POST", "PUT", "PATCH") or "json" not in request.headers.get(
            "content-type", ""):
        return
    body = await request.body()
    if not UNSTORABLE_ESCAPE.search(body):
        return
    try:
        data = json.loads(body)
    except ValueError:
        return  # not JSON: FastAPI answers for that
    try:
        storable_json(data, "")
    except InvalidInput as exc:  # paths start at the root: ".name" is the body's "name"
        path = exc.field or ""
        exc.field = path.lstrip(".") or "body"
        exc.message = exc.field + exc.message[len(path):]
        raise
