"""Uploads: saving files to disk under the configured size limit, checking form fields."""

from __future__ import annotations

from pathlib import Path
from typing import get_args, get_origin

from fastapi import HTTPException, Request, UploadFile

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
        shown = value.filename if isinstance(value, UploadFile) else str(value)[:80]
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
