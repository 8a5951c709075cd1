"""``patrolgrid users``: API users and their bearer tokens."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.cli.common import console, reported_errors, settings, styled
from geo.errors import NotFound, storable_text
from geo.store.db import session_scope
from geo.store.models import USER_ROLES, ApiToken, AppUser
from geo.store.users import create_user, issue_token, revoke_tokens

app = typer.Typer(help="API users and tokens.", no_args_is_help=True)


def _user(session: Session, name: str) -> AppUser:
    user = session.scalar(select(AppUser).where(AppUser.name == storable_text(name, "name")))
    if user is None:
        raise NotFound(f"there is no user named {name!r}", field="name", value=name,
                       valid="the name of a user (patrolgrid users list)")
    return user


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Unique user name."),
    role: str = typer.Option(..., "--role", help=f"One of {', '.join(USER_ROLES)}."),
) -> None:
    """Create a user; the new token is printed as the last line (it is shown only once)."""
    with reported_errors(), session_scope(settings().database_url) as session:
        user, token = create_user(session, name=name, role=role)
        console.print(styled("created user ", (user.name, "bold"), f" with role {user.role}; "
                             "its token (shown once) is on the next line"))
    typer.echo(token)


@app.command("token")
def token(name: str = typer.Option(..., "--name", help="The user's name.")) -> None:
    """Issue another token for an existing user; printed as the last line."""
    with reported_errors(), session_scope(settings().database_url) as session:
        user = _user(session, name)
        fresh = issue_token(session, user_id=user.id)
    typer.echo(fresh)


@app.command("list")
def list_users() -> None:
    """Every user with role, state and number of live tokens."""
    with reported_errors(), session_scope(settings().database_url) as session:
        live = (select(ApiToken.user_id, func.count().label("n"))
                .where(ApiToken.revoked_at.is_(None)).group_by(ApiToken.user_id).subquery())
        rows = session.execute(
            select(AppUser.name, AppUser.role, AppUser.active, AppUser.created_at,
                   func.coalesce(live.c.n, 0).label("tokens"))
            .outerjoin(live, live.c.user_id == AppUser.id).order_by(AppUser.name)).all()
    table = Table("name", "role", "active", "live tokens", "created")
    for r in rows:
        table.add_row(r.name, r.role, "yes" if r.active else "no", str(r.tokens),
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@app.command("revoke")
def revoke(name: str = typer.Option(..., "--name", help="The user whose tokens to revoke.")
           ) -> None:
    """Revoke every live token of a user (their requests get 401 from now on)."""
    with reported_errors(), session_scope(settings().database_url) as session:
        count = revoke_tokens(session, user_id=_user(session, name).id)
    console.print(f"revoked {count} token(s) of {name}")
