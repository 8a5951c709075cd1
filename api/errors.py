"""Domain errors to HTTP statuses, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from geo.errors import Conflict, DomainError, ImportRefused, InvalidInput, NotFound

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
    return JSONResponse({"detail": exc.to_dict()}, status_code=status_for(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        field = ".".join(loc) or "request"
        value = err.get("input")
        problems.append({
            "field": field,
            "value": value if isinstance(value, str | int | float | bool | None) else str(value),
            "message": f"{field}: {err.get('msg')}",
        })
    first = problems[0] if problems else {"field": "request", "value": None, "message": "invalid"}
    detail = {**first, "errors": problems}
    return JSONResponse({"detail": detail}, status_code=422)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the handlers that turn domain and validation errors into JSON answers."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
