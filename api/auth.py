"""Bearer-token authentication and role checks.

Every endpoint but ``GET /healthz`` needs ``Authorization: Bearer <token>``:
401 without a valid token, 403 when the caller's role may not do this.
``admin`` may do everything.

The map pages' own scripts (the planner) may instead send the HttpOnly cookie of
``/maps/login`` (:data:`COOKIE`) together with the header :data:`PAGE_HEADER`:
a page on another site cannot send that header to us without a CORS preflight,
which this API never grants, so the cookie alone (a cross-site form) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.deps import SessionDep
from geo.store.tasks import linked_worker
from geo.store.users import Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="A token from `patrolgrid users create`.")

#: The cookie ``POST /maps/login`` sets (HttpOnly, SameSite=Lax, path ``/``).
COOKIE = "patrolgrid_token"
#: The header (value ``1``) with which a map page's script may authenticate by :data:`COOKIE`.
PAGE_HEADER = "X-Patrolgrid-Page"


def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the bearer token (or a map page's cookie, see above), or 401."""
    token, field = None, "Authorization"
    if credentials is not None and credentials.scheme.lower() == "bearer":
        token = credentials.credentials
    elif request.headers.get(PAGE_HEADER) == "1" and request.cookies.get(COOKIE):
        token, field = request.cookies[COOKIE], "cookie"
    if token is None:
        raise HTTPException(
            status_code=401,
            detail={"message": "missing bearer token: send 'Authorization: Bearer <token>'",
                    "field": "Authorization", "value": None,
                    "valid": "a token from `patrolgrid users create`"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = authenticate(session, token)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail={"message": "unknown or revoked token", "field": field,
                    "value": token[:8] + "…",
                    "valid": "a live token from `patrolgrid users create`"
                    + (" (sign in again at /maps/login)" if field == "cookie" else "")},
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


def own_worker(session: Session, principal: Principal) -> int:
    """The worker the caller's user is linked to, or 403 saying how to link one."""
    worker_id = linked_worker(session, principal.user_id)
    if worker_id is None:
        raise HTTPException(status_code=403, detail={
            "message": f"user {principal.name!r} is not linked to a worker",
            "field": "user", "value": principal.name,
            "valid": "a user linked to the worker: patrolgrid tasks link --user NAME "
                     "--worker CODE"})
    return worker_id


def acting_for(session: Session, principal: Principal, asked: int | None, what: str, *,
               optional: bool = False) -> int | None:
    """The worker a ``patrol`` caller acts as: their own (:func:`own_worker`), and 403 when
    ``asked`` names another; for other roles ``asked`` as given. ``what`` names the act
    in the message ("claims", "uploads"); ``optional``: the caller may leave it out."""
    if principal.role != "patrol":
        return asked
    worker_id = own_worker(session, principal)
    if asked is not None and asked != worker_id:
        raise HTTPException(status_code=403, detail={
            "message": f"user {principal.name!r} {what} as worker {worker_id}, not {asked}",
            "field": "worker_id", "value": asked,
            "valid": f"{worker_id} (your worker)" + (" or leave it out" if optional else "")})
    return worker_id
