"""Output files that appear whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(target: Path | None) -> Iterator[Path | None]:
    """A path beside ``target`` to write instead of it, renamed over ``target`` when the
    block ends without an error and removed when it fails: a failed export or import
    leaves an existing file as it was, never half a file or the report of an import that
    wrote nothing. ``None`` (no file wanted) yields ``None``."""
    if target is None:
        yield None
        return
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield part
        if part.exists():
            os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
