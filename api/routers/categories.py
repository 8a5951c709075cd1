"""``GET /api/v1/categories``: the incident taxonomy (any role)."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Reader
from api.deps import SessionDep
from api.schemas.incidents import CategoryOut
from geo.store.incidents import list_categories

router = APIRouter(tags=["incidents"])


@router.get("/categories", response_model=list[CategoryOut])
def categories(session: SessionDep, _: Reader) -> list[CategoryOut]:
    """Every category, ordered by code: 部件 (``component``, codes C…) and 事件 (``event``,
    codes E…), the department it goes to and its SLA in hours (``due_at`` = ``reported_at``
    + ``sla_hours``)."""
    return [CategoryOut.of(c) for c in list_categories(session)]
