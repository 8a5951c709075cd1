"""Domain errors to HTTP statuses, in one place."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from api.guards import HEAD_KEY
from geo.errors import (
    TEXT_VALID,
    Busy,
    Conflict,
    DomainError,
    ImportRefused,
    InvalidInput,
    NotFound,
    encodable,
    jsonable,
)
from geo.jsonkeys import INT_DIGITS, long_integer
from geo.open311 import error_body

STATUS: dict[type[DomainError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    ImportRefused: 422,
}


def status_for(exc: DomainError) -> int:
    """The HTTP status of a domain error (by the nearest class in ``STATUS``; else 400)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Busy) else None
    return JSONResponse({"detail": exc.to_dict()}, status_code=status_for(exc),
                        headers=headers)


#: What is valid, by the type of pydantic's error (``{ctx key}`` filled from its context).
_VALID = {
    "missing": "a value: the field is required",
    "extra_forbidden": "only the documented fields",
    "int_parsing": "a whole number", "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a text", "list_type": "a JSON array",
    "greater_than_equal": "a number >= {ge}", "greater_than": "a number > {gt}",
    "less_than_equal": "a number <= {le}", "less_than": "a number < {lt}",
    "string_too_long": "at most {max_length} characters",
    "string_too_short": "at least {min_length} characters",
    "too_long": "at most {max_length} items", "too_short": "at least {min_length} items",
    "literal_error": "one of {expected}", "enum": "one of {expected}",
    "json_invalid": "a well-formed JSON document",
    "datetime_from_date_parsing": "an ISO 8601 date-time",
    "datetime_parsing": "an ISO 8601 date-time", "datetime_type": "an ISO 8601 date-time",
}
_JSON_BODY = "a JSON object, sent with Content-Type: application/json"
_MULTIPART_BODY = "a multipart/form-data body with the boundary its Content-Type names"


def _problem(err: Any) -> dict[str, Any]:
    kind = err.get("type", "")
    loc = [p for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
    value = err.get("input")
    if kind == "json_invalid":  # loc holds the character offset: the body is the field
        loc, value = [], f"invalid JSON at character {err.get('ctx', {}).get('error', '')}"
    elif loc and loc[-1] in ("int", "float", "str", "bool"):
        loc = loc[:-1]  # a union member's name, not a field
    # list items as our own messages name them: points[0].t (pydantic says points.0.t)
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") \
        or "body"
    if isinstance(value, bytes | bytearray):  # a body that is not JSON (or not sent as JSON)
        value = bytes(value[:80]).decode("utf-8", "replace")
        valid = _JSON_BODY
    elif field == "body" and kind in ("dict_type", "model_attributes_type"):
        valid = _JSON_BODY
    else:
        try:
            valid = _VALID.get(kind, err.get("msg", "")).format(**err.get("ctx", {}))
        except (KeyError, IndexError):
            valid = err.get("msg", "")
    message = f"{field}: {err.get('msg')}"
    if _not_finite(value) and kind in _BOUNDS:  # NaN fails every bound: say what is wrong
        message, valid = f"{field}: {value} is not a number", f"a finite number, {valid}"
    return {
        "field": field,
        "value": jsonable(value) if isinstance(value, str | int | float | bool | None)
        else str(value)[:200],
        "message": message,
        "valid": valid,
    }


_BOUNDS = {"greater_than_equal", "greater_than", "less_than_equal", "less_than",
           "finite_number"}


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower().lstrip("+-") in (
        "nan", "inf", "infinity")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(err) for err in exc.errors()]
    first = problems[0] if problems else {"field": "body", "value": None,
                                          "message": "invalid request", "valid": _JSON_BODY}
    detail = {**first, "errors": problems}
    return JSONResponse({"detail": encodable(detail)}, status_code=422)


def _named(request: Request, exc: HTTPException) -> dict[str, Any] | None:
    """Starlette's bare 404 (no route) and 405 (a method the path does not take) as our
    detail, naming the path or the method (and setting ``Allow`` to every method of the
    path: Starlette's names the first route's only, and GET and POST are two routes)."""
    if exc.status_code == 404 and exc.detail == "Not Found":
        return {"message": f"there is no endpoint {request.url.path}", "field": "path",
                "value": request.url.path, "valid": "a path of the API (GET /docs lists them)"}
    if exc.status_code == 405 and exc.detail == "Method Not Allowed":
        methods = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if any(
            r.matches({**request.scope, "method": m})[0] == Match.FULL
            for r in request.app.router.routes)]
        allowed = ", ".join([*methods[:1], "HEAD", *methods[1:]] if "GET" in methods
                            else methods)
        exc.headers = {**(exc.headers or {}), "Allow": allowed}
        method = "HEAD" if request.scope.get(HEAD_KEY) else request.method
        return {"message": f"{method} is not allowed on {request.url.path}",
                "field": "method", "value": method,
                "valid": f"one of {allowed}" if allowed else "another method"}
    return None


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own 400 for a body it could not read (JSON nested too deep, a multipart
    body without its boundary) as a 422 in our shape, like any other unreadable body;
    under ``/open311/`` every HTTP error (405 included) in GeoReport's list format;
    every other HTTP error as FastAPI answers it."""
    assert isinstance(exc, HTTPException)
    named = _named(request, exc)
    if request.url.path.startswith("/open311/"):
        detail = named or (exc.detail if isinstance(exc.detail, dict)
                           else {"message": exc.detail})
        return JSONResponse(error_body(exc.status_code, str(detail.get("message")),
                                       field=detail.get("field"), value=detail.get("value"),
                                       valid=detail.get("valid")),
                            status_code=exc.status_code, headers=exc.headers)
    if named is not None:
        return JSONResponse({"detail": named}, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc.detail, dict):  # ours, which may quote what was sent
        return JSONResponse({"detail": encodable(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)
    if exc.status_code == 400 and isinstance(exc.detail, str):
        detail = unreadable_body(request, exc.detail)
        if "json" in request.headers.get("content-type", ""):
            found = long_integer(await request.body())
            if found is not None:  # Python reads at most INT_DIGITS digits
                field, digits = found
                detail = {"message": f"{field} is an integer of {len(digits.lstrip('-'))} "
                                     "digits", "field": field, "value": digits[:20] + "…",
                          "valid": f"an integer of at most {INT_DIGITS} digits"}
        return JSONResponse({"detail": detail}, status_code=422)
    return await http_exception_handler(request, exc)


def unreadable_body(request: Request, message: str) -> dict[str, Any]:
    """The detail of a body FastAPI or Starlette could not read (their bare 400)."""
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/")
    return {"message": message, "field": "body", "value": None,
            "valid": _MULTIPART_BODY if multipart else _JSON_BODY}


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """The last guard: a value the database refused as data (a number out of its column's
    range, a character it cannot store) is the caller's input, so 422, not 500. Inputs are
    checked before they reach the database; this answers for any the checks missed."""
    assert isinstance(exc, DataError)
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
    return JSONResponse({"detail": {
        "message": f"the database refused a value of this request: {reason}",
        "field": "request", "value": None,
        "valid": f"numbers within the range of their ids or columns; {TEXT_VALID}"}},
        status_code=422)


#: SQLSTATEs of a transaction PostgreSQL aborted because of another one running at once.
CONCURRENCY_STATES = {"40P01": "deadlock", "40001": "serialization failure"}


async def _operational_error(request: Request, exc: Exception) -> JSONResponse:
    """A transaction aborted by a concurrent one (deadlock, serialization failure) was rolled
    back whole: 409, to be retried. Any other operational error stays a server error."""
    assert isinstance(exc, OperationalError)
    state = getattr(exc.orig, "sqlstate", None)
    if state == "54000":  # program_limit_exceeded: a value too large to store (a 270 MiB text)
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
        return JSONResponse({"detail": {
            "message": f"a value of this request is too large to store: {reason}; nothing "
                       "was changed", "field": "request", "value": None,
            "valid": "texts and attrs far below 256 MiB"}}, status_code=413)
    if state not in CONCURRENCY_STATES:
        raise exc
    return JSONResponse({"detail": {
        "message": f"a concurrent change of the same records aborted this one "
                   f"({CONCURRENCY_STATES[state]}); nothing was changed",
        "field": "request", "value": None,
        "valid": "the same request again"}}, status_code=409)


_KEY_DETAIL = re.compile(r"Key \((?P<field>[^)]*)\)=\((?P<value>.*)\)")


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    """A unique or foreign key the checks passed but a concurrent transaction took or removed
    first (two requests creating the same code at once): 409, nothing changed. Any other
    integrity error stays a server error."""
    assert isinstance(exc, IntegrityError)
    state = getattr(exc.orig, "sqlstate", None)
    if state not in ("23505", "23503"):
        raise exc
    diag = getattr(exc.orig, "diag", None)
    found = _KEY_DETAIL.search(getattr(diag, "message_detail", None) or "")
    field = found["field"] if found else "request"
    value = found["value"] if found else None
    what = "was stored" if state == "23505" else "was removed"
    return JSONResponse({"detail": {
        "message": f"{field} {value!r} {what} by a concurrent request first; nothing was "
                   "changed", "field": field, "value": value,
        "valid": "a value not yet taken (read the current state and retry)"
        if state == "23505" else "a record that exists (read the current state and retry)"}},
        status_code=409)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the handlers that turn domain and validation errors into JSON answers."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _operational_error)
