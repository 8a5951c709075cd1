"""``GET /healthz``: the only endpoint that needs no token."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    """Liveness and database reachability, with the PostGIS version."""
    version = session.execute(text("SELECT postgis_lib_version()")).scalar_one()
    return {"status": "ok", "postgis": str(version)}
