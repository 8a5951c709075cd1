"""``patrolgrid roster``: import and export the roster (workers, teams, duties) as CSV."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import (
    WAIT_DEFAULT_S,
    WaitOpt,
    check_writable,
    console,
    err_console,
    reported_errors,
    settings,
    styled,
    when_free,
)
from data.roster_io import RosterReport, export_roster, import_roster
from geo.errors import ImportRefused
from geo.store.db import session_scope

app = typer.Typer(help="The roster of grid workers, patrols and their duties, as CSV.",
                  no_args_is_help=True)

#: Problems shown in the terminal (all of them are counted).
SHOWN = 30


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="Roster CSV (UTF-8 or GB18030, header line).")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check the file and count what would change; write nothing.")]
    = False,
    wait: WaitOpt = WAIT_DEFAULT_S,
) -> None:
    """Import a roster CSV in one transaction: any bad row refuses the whole file.

    A deactivation hands open incidents over under the grids' lock: while a bulk import
    holds it, the import tries again for up to ``--wait`` seconds.

    Exit status: 0 on success, 1 when the file is refused (every problem is listed
    with its line, field, value and what is valid), 2 for other errors.
    """
    refused: ImportRefused | None = None

    def attempt() -> RosterReport:
        with session_scope(settings().database_url) as session:
            return import_roster(session, path, dry_run=dry_run, settings=settings(),
                                 actor=f"roster:{getpass.getuser()}")

    with reported_errors():
        try:
            report = when_free(attempt, wait_s=wait)
        except ImportRefused as exc:
            refused = exc
    if refused is not None:
        _problems(refused.extra.get("problems", []))
        err_console.print(styled(("refused:", "red"), f" {refused.message}"))
        raise typer.Exit(code=1)
    table = Table(title=f"roster import: {path.name} ({report.rows} rows)")
    for column in ("what", "created", "updated", "unchanged", "deleted"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for what, counts in (("team", report.teams), ("worker", report.workers),
                         ("duty", report.duties)):
        data = counts.as_dict()
        table.add_row(what, *(str(data.get(k, "")) for k in
                              ("created", "updated", "unchanged", "deleted")))
    console.print(table)
    moved = report.incidents
    if moved.get("handed_over"):
        console.print(f"open incidents of workers now inactive "
                      f"{'that would be handed over' if dry_run else 'handed over'}: "
                      f"{moved['handed_over']} ({moved['to_nobody']} to nobody: no one "
                      "qualifies)")
    if moved.get("tasks_released"):
        console.print(f"patrol tasks they had claimed, "
                      f"{'that would open again' if dry_run else 'open again'}: "
                      f"{moved['tasks_released']}")
    console.print("dry run: nothing written" if dry_run else styled(("imported", "green")))


def _problems(problems: list[dict[str, Any]]) -> None:
    table = Table(title=f"problems ({len(problems)})")
    for column in ("line", "field", "value", "problem", "valid"):
        table.add_column(column)
    for p in problems[:SHOWN]:
        table.add_row(str(p["row"]), p["field"], str(p["value"]), p["message"], p["valid"])
    if len(problems) > SHOWN:
        table.caption = f"… and {len(problems) - SHOWN} more"
    err_console.print(table)


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="CSV file to write (replaced).")],
) -> None:
    """Write every worker, team and duty as a roster CSV (the import format)."""
    with reported_errors():
        check_writable(path, "PATH")
        with session_scope(settings().database_url) as session:
            count = export_roster(session, path)
    console.print(f"exported {count} row(s) to {path}")
