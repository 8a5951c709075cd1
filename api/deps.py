"""FastAPI dependencies: settings, database sessions, the caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

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


class _Repeated(ValueError):
    """A key given twice in one JSON object with different values."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        first: dict[str, Any] = {}
        for key, value in pairs:
            if key in first and not _same(first[key], value):
                raise _Repeated(key, first[key], value)
            first.setdefault(key, value)
    return out


class _Pairs(dict[str, Any]):
    """A parsed JSON object that remembers a key given twice in it with different values."""

    repeated: tuple[str, Any, Any] | None = None


def _recording(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs(pairs)
    try:
        _unique_keys(pairs)
    except _Repeated as exc:
        out.repeated = exc.args
    return out


def _repeated_path(body: bytes) -> tuple[str, Any, Any]:
    """The path (``attrs.k``, ``points[2].t``) of a key given twice in ``body``, and its two
    values; read again only after a first parse found one, so the common path parses once."""
    stack: list[tuple[str, Any]] = [("", json.loads(body, object_pairs_hook=_recording))]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Pairs):
            if node.repeated is not None:
                key, a, b = node.repeated
                return f"{path}.{key}".lstrip("."), a, b
            stack.extend((f"{path}.{k}", v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    raise AssertionError("a repeated key was found by the first parse")  # pragma: no cover


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (Python's ``1 == True == 1.0`` is not)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


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
        data = json.loads(body, object_pairs_hook=_unique_keys)
    except _Repeated:
        path, a, b = _repeated_path(body)
        raise InvalidInput(f"{path} is given twice in one JSON object, as {_shown(a)} and "
                           f"{_shown(b)}", field=path, value=_shown(b),
                           valid="each key once in an object") from None
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


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"
