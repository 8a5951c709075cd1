"""API users for tests that act as a worker in the field (claims, track uploads)."""

from __future__ import annotations

import uuid

from geo.store.db import session_scope
from geo.store.tasks import link_user
from geo.store.users import create_user


def field_user(db_url: str, worker_id: int | None, role: str = "patrol") -> dict[str, str]:
    """A new user of ``role`` linked to ``worker_id`` (None: unlinked); its Authorization
    header."""
    with session_scope(db_url) as s:
        user, token = create_user(s, name=f"u-{role}-{worker_id}-{uuid.uuid4().hex[:6]}",
                                  role=role)
        if worker_id is not None:
            link_user(s, user=user.name, worker_id=worker_id)
    return {"Authorization": f"Bearer {token}"}
