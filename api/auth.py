"""Bearer-token authentication and role checks.

Every endpoint but ``GET /healthz`` needs ``Authorization: Bearer <token>``:
401 without a valid token, 403 when the caller's role may not do this.
``admin`` may do everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionDep
from geo.store.users import Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="A token from `patrolgrid users create`.")


def current_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the bearer token, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status_code=401,
            detail={"message": "missing bearer token: send 'Authorization: Bearer <token>'",
                    "field": "Authorization", "value": None,
                    "valid": "a token from `patrolgrid users create`"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail={"message": "unknown or revoked token", "field": "Authorization",
                    "value": credentials.credentials[:8] + "…",
                    "valid": "a live token from `patrolgrid users create`"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through callers with one of ``roles`` (or ``admin``)."""
    allowed = set(roles) | {"admin"}

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status_code=403,
                detail={"message": f"role {principal.role!r} may not do this",
                        "field": "role", "value": principal.role,
                        "valid": ", ".join(sorted(allowed))},
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(current_principal)]
Planner = Annotated[Principal, Depends(require_role("planner"))]
Dispatcher = Annotated[Principal, Depends(require_role("dispatcher"))]
#: Who may report incidents: patrols in the field and dispatchers taking hotline calls.
REPORTER_ROLES = ("patrol", "dispatcher")
Reporter = Annotated[Principal, Depends(require_role(*REPORTER_ROLES))]
Admin = Annotated[Principal, Depends(require_role())]
