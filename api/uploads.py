"""Uploads: saving files to disk under the configured size limit, checking form fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

from fastapi import HTTPException, Request, UploadFile
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUpload

from geo.errors import InvalidInput

_CHUNK = 1 << 20


def save_upload(upload: UploadFile, path: Path, limit_mb: int) -> None:
    """Copy the upload to ``path``, refusing it with 413 past ``limit_mb`` MiB."""
    limit = limit_mb * 1024 * 1024
    size = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(status_code=413, detail={
                    "message": f"the file {upload.filename!r} is larger than {limit_mb} MiB",
                    "field": "file", "value": upload.filename,
                    "valid": f"a file of at most {limit_mb} MiB (PATROLGRID_MAX_UPLOAD_MB)"})
            out.write(chunk)


async def known_form_fields(request: Request) -> None:
    """Refuse (422) a form field the route does not take, or one given twice with
    different values: FastAPI would ignore the first and keep the last, so a misspelt
    option (``time_feild``) or a repeat would be silently dropped."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    names = sorted({f.alias for f in dependant.body_params})
    lists = {f.alias for f in dependant.body_params if _is_list(f.field_info.annotation)}
    form = await request.form()  # Starlette keeps the form parsed once for the route
    seen: dict[str, object] = {}
    for key, value in form.multi_items():
        # the form holds Starlette's UploadFile, of which FastAPI's is a subclass
        shown = value.filename if isinstance(value, StarletteUpload) else str(value)[:80]
        if key not in names:
            raise InvalidInput(f"{key!r} is not a field of this form", field=key, value=shown,
                               valid="one of " + ", ".join(names))
        if key in seen and key not in lists and seen[key] != value:
            raise InvalidInput(f"{key} is given twice, with different values", field=key,
                               value=shown, valid=f"{key} once")
        seen[key] = value


def _is_list(annotation: object) -> bool:
    """Whether a parameter takes several values (``list[UploadFile]``, ``list[str] | None``)."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_is_list(a) for a in get_args(annotation)) if origin is not None else False


async def known_query_params(request: Request) -> None:
    """Refuse (422) a query parameter an ``/api/v1`` route does not take, or one
    given twice with different values: FastAPI ignored the first (``lon`` twice put the
    point at the last) and any unknown one (a misspelt ``bbxo`` returned everything)."""
    path = request.url.path
    if not request.query_params or not path.startswith("/api/"):
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    params = getattr(route, _CACHE, None)
    if params is None:  # read once per route, kept on it: every request with a query asks
        params = _query_params(dependant)
        setattr(route, _CACHE, params)
    seen: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in params:
            raise InvalidInput(f"{key!r} is not a parameter of {path}", field=key,
                               value=value[:80], valid="one of " + ", ".join(sorted(params))
                               if params else "no query parameters")
        if key in seen and seen[key] != value and not params[key]:
            raise InvalidInput(f"{key} is given twice, with different values", field=key,
                               value=value[:80], valid=f"{key} once")
        seen[key] = value


#: The attribute of a route holding its query parameters once read.
_CACHE = "_patrolgrid_query_params"


def _query_params(dependant: Any) -> dict[str, bool]:
    """The query parameters of a route and its dependencies: name -> takes several values."""
    out: dict[str, bool] = {}
    stack = [dependant]
    while stack:
        dep = stack.pop()
        for param in dep.query_params:
            annotation = param.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                for name, info in annotation.model_fields.items():
                    out[info.alias or name] = _is_list(info.annotation)
            else:
                out[param.alias] = _is_list(annotation)
        stack.extend(dep.dependencies)
    return out
