"""Engines, sessions, database creation and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, text
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
    from alembic.config import Config

    check_postgis(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


#: Tables a bulk load rewrites (the demo plays every incident through the loop).
BULK_TABLES = ("incident", "incident_event", "grid", "worker", "duty", "track_point")


def vacuum_analyze(url: str, tables: tuple[str, ...] = BULK_TABLES) -> None:
    """``VACUUM (ANALYZE)`` of ``tables`` after a bulk load: without it the planner has no
    statistics (autovacuum may be off, or not have run yet) and picks plans that are ten
    times slower, and the rows the load updated stay dead in the heap."""
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {', '.join(tables)}"))
