"""Saving uploaded files to disk under the configured size limit."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, UploadFile

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
