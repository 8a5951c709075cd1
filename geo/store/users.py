"""Users and their API tokens. Tokens are random, shown once, and stored as SHA-256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, storable_text
from geo.store.models import USER_ROLES, ApiToken, AppUser

TOKEN_PREFIX = "pg_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind a valid token."""

    user_id: int
    name: str
    role: str


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (tokens carry 256 random bits, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(session: Session, *, name: str, role: str) -> tuple[AppUser, str]:
    """Create a user with one role and a first token; returns the user and the clear token."""
    if role not in USER_ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(USER_ROLES)}",
                           field="role", value=role, valid=", ".join(USER_ROLES))
    if not name.strip():
        raise InvalidInput("name must not be empty", field="name", value=name,
                           valid="a non-empty user name")
    if name != name.strip():  # "admin " beside "admin": two users that look the same
        raise InvalidInput(f"name {name!r} has spaces around it", field="name", value=name,
                           valid="a user name without leading or trailing spaces")
    storable_text(name, "name")  # a name that is not text (a NUL, bytes not UTF-8) is refused
    if session.scalar(select(AppUser.id).where(AppUser.name == name)) is not None:
        raise Conflict(f"a user named {name!r} already exists", field="name", value=name,
                       valid="a name not yet taken")
    user = AppUser(name=name, role=role, active=True)
    session.add(user)
    session.flush()
    return user, issue_token(session, user_id=user.id)


def issue_token(session: Session, *, user_id: int) -> str:
    """A new token for an existing user; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user_id, token_hash=hash_token(token), prefix=token[:8]))
    session.flush()
    return token


def revoke_tokens(session: Session, *, user_id: int) -> int:
    """Revoke every live token of a user; returns how many were revoked."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal behind a live token of an active user, or None."""
    row = session.execute(
        select(AppUser.id, AppUser.name, AppUser.role)
        .join(ApiToken, ApiToken.user_id == AppUser.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None),
               AppUser.active.is_(True))
    ).first()
    if row is None:
        return None
    return Principal(user_id=row.id, name=row.name, role=row.role)
