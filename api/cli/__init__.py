"""The ``patrolgrid`` command line: one sub-command group per module of this package."""

from __future__ import annotations

import typer

from api.cli import db as db_cli
from api.cli import demo as demo_cli
from api.cli import grids as grids_cli
from api.cli import roster as roster_cli
from api.cli import serve as serve_cli
from api.cli import users as users_cli

app = typer.Typer(help="patrolgrid: grid governance, patrols and incidents on PostGIS.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(db_cli.app, name="db")
app.add_typer(grids_cli.app, name="grids")
app.add_typer(users_cli.app, name="users")
app.add_typer(demo_cli.app, name="demo")
app.add_typer(roster_cli.app, name="roster")
app.command("serve")(serve_cli.serve)


def main() -> None:
    """Entry point of the console script."""
    app()
