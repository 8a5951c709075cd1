"""Engines, sessions, database creation and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """One pooled engine per database URL, shared by the process."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = create_engine(url, pool_pre_ping=True)
    return engine


def dispose_engine(url: str) -> None:
    """Close the pooled connections of ``url``'s engine and forget it."""
    engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


@lru_cache(maxsize=64)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    session = _factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _admin_url(url: str | URL) -> URL:
    return make_url(url).set(database="postgres")


def database_exists(url: str) -> bool:
    """Whether the database named in ``url`` exists on its server."""
    name = make_url(url).database
    engine = create_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            return found.scalar() is not None
    finally:
        engine.dispose()


def create_database(url: str, *, template: str | None = None) -> bool:
    """Create the database named in ``url`` if it is missing; True when it was created."""
    if database_exists(url):
        return False
    name = make_url(url).database
    assert name, f"the database URL {url!r} names no database"
    engine = create_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            tpl = ""
            if template:
                tpl = " TEMPLATE " + conn.dialect.identifier_preparer.quote(template)
            conn.execute(text(f"CREATE DATABASE {quoted}{tpl}"))
    finally:
        engine.dispose()
    return True


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (closing its connections first)."""
    name = make_url(url).database
    assert name, f"the database URL {url!r} names no database"
    dispose_engine(url)
    _factory.cache_clear()
    engine = create_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        engine.dispose()


def check_postgis(url: str) -> str:
    """The PostGIS version the server offers; raises RuntimeError with the fix when missing."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")
            ).first()
    finally:
        engine.dispose()
    if row is None:
        raise RuntimeError(
            "PostGIS is not installed on this PostgreSQL server. On Debian run: "
            "apt-get update && apt-get install -y postgresql-15-postgis-3 "
            "(or `make setup`, which does it)."
        )
    return str(row[0])


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` with the Alembic migrations."""
    from alembic import command

    check_postgis(url)
    cfg = _alembic_config()
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def _alembic_config() -> Any:
    """Alembic's configuration of our migrations (no database named yet)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


#: Tables a bulk load rewrites (the demo plays every incident through the loop).
BULK_TABLES = ("incident", "incident_event", "grid", "worker", "duty", "track_point")


def vacuum_analyze(url: str, tables: tuple[str, ...] = BULK_TABLES) -> None:
    """``VACUUM (ANALYZE)`` of ``tables`` after a bulk load: without it the planner has no
    statistics (autovacuum may be off, or not have run yet) and picks plans that are ten
    times slower, and the rows the load updated stay dead in the heap."""
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {', '.join(tables)}"))


#: What fixes a database that is missing, unreachable or behind the code's migrations.
UPGRADE_HINT = ("DATABASE_URL naming a running PostgreSQL with PostGIS; `patrolgrid db "
                "upgrade` creates the database when missing and migrates it")


def head_revision() -> str:
    """The newest migration of this code (Alembic's head)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_problem(url: str) -> str | None:
    """Why the database at ``url`` cannot serve this code (unreachable, missing, not
    migrated, or at another migration than this code's newest), or None when it can."""
    name = make_url(url).render_as_string(hide_password=True)
    try:
        with get_engine(url).connect() as conn:
            found = conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")
                                 ).scalar_one()
            revision = (conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                        if found else None)
    except sa_exc.OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"cannot connect to the database {name}: {reason}"
    head = head_revision()
    if revision is None:
        return f"the database {name} has no patrolgrid tables (it was never migrated)"
    if revision != head:
        return (f"the database {name} is at migration {revision}, this code needs {head}")
    return None


def explain_database_error(exc: BaseException, url: str) -> str | None:
    """A one-line explanation of a database error that a missing, unreachable or
    unmigrated database causes (no connection, undefined table or column); None for
    other errors."""
    if isinstance(exc, sa_exc.OperationalError) and getattr(exc.orig, "sqlstate", None) is None:
        return schema_problem(url) or str(exc.orig or exc).strip().splitlines()[0]
    if isinstance(exc, sa_exc.ProgrammingError) and getattr(exc.orig, "sqlstate", None) in (
            "42P01", "42703", "42883"):  # undefined table, column, function
        return schema_problem(url) or str(exc.orig).strip().splitlines()[0]
    return None
