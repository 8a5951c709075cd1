"""``patrolgrid db``: create and migrate the database."""

from __future__ import annotations

import typer

from api.cli.common import console, reported_errors, settings, styled
from geo.store import db

app = typer.Typer(help="Database administration.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(create: bool = typer.Option(True, help="Create the database when missing.")) -> None:
    """Create the database named by DATABASE_URL if needed and run the migrations."""
    url = settings().database_url
    with reported_errors():  # an unreachable server: a message and exit 2, no traceback
        if create and db.create_database(url):
            console.print(styled("created database ", (url.rsplit('/', 1)[-1], "bold")))
        db.migrate(url)
    console.print("database is at the newest migration")
