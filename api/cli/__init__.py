"""The ``patrolgrid`` command line: one sub-command group per module of this package."""

from __future__ import annotations

import typer

from api.cli import config as config_cli
from api.cli import coverage as coverage_cli
from api.cli import db as db_cli
from api.cli import demo as demo_cli
from api.cli import escalate as escalate_cli
from api.cli import grids as grids_cli
from api.cli import incidents as incidents_cli
from api.cli import maps as maps_cli
from api.cli import network as network_cli
from api.cli import plans as plans_cli
from api.cli import roster as roster_cli
from api.cli import routes as routes_cli
from api.cli import serve as serve_cli
from api.cli import tasks as tasks_cli
from api.cli import tracks as tracks_cli
from api.cli import users as users_cli

app = typer.Typer(help="patrolgrid: grid governance, patrols and incidents on PostGIS.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(db_cli.app, name="db")
app.add_typer(grids_cli.app, name="grids")
app.add_typer(users_cli.app, name="users")
app.add_typer(demo_cli.app, name="demo")
app.add_typer(roster_cli.app, name="roster")
app.add_typer(routes_cli.app, name="routes")
app.add_typer(network_cli.app, name="network")
app.add_typer(incidents_cli.app, name="incidents")
app.add_typer(tracks_cli.app, name="tracks")
app.add_typer(tasks_cli.app, name="tasks")
app.add_typer(maps_cli.app, name="maps")
app.add_typer(plans_cli.app, name="plans")
app.command("serve")(serve_cli.serve)
app.command("config")(config_cli.show_config)
app.command("escalate")(escalate_cli.escalate)
app.command("coverage")(coverage_cli.coverage)


def main() -> None:
    """Entry point of the console script."""
    app()
