"""Alembic environment: runs the migrations against the URL the caller configured."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from geo.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations in one transaction on the configured database."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by geo.store.db.migrate()"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
