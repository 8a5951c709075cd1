"""The OpenAPI document, with the error shape this API really answers.

FastAPI declares every 422 as its own ``HTTPValidationError`` (``detail``: a list of
pydantic errors). Ours is one object naming the field, the value and what is valid
(:mod:`api.errors`), so the document says that instead; clients generated from it,
and schemathesis's conformance check, then read our 422s right.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """What was wrong with a request."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(description="What is wrong, in a sentence.")
    field: str | None = Field(None, description="The field, parameter or header at fault.")
    value: Any = Field(None, description="The value given (shortened when long).")
    valid: str | None = Field(None, description="What would be valid.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Every problem found, when the framework found several.")


class ErrorAnswer(BaseModel):
    """The body of a 4xx answer."""

    detail: Problem


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe 422 answers as :class:`ErrorAnswer`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        answer = ErrorAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(answer.pop("$defs", {}))
        schemas["HTTPValidationError"] = answer
        schemas.pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
