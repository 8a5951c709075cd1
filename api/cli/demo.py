"""``patrolgrid demo``: load the demo city (鼓楼区, Fuzhou) with its roster and categories."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import console, reported_errors, settings, styled
from data.demo.city import DEFAULT_SEED
from data.demo.incidents import DEFAULT_COUNT
from data.demo.load import load_demo
from data.demo.tracks import DEFAULT_DAYS as TRACK_DAYS
from geo.store.db import session_scope, vacuum_analyze

app = typer.Typer(help="The demo city: real streets and communities of Gulou, Fuzhou.",
                  no_args_is_help=True)


@app.command("load")
def load(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic parts (grids, "
                                      "seeds of communities without a point, people).")]
    = DEFAULT_SEED,
    incidents: Annotated[int, typer.Option(
        "--incidents", min=0, help="Synthetic incidents over the past year, loaded through "
        "the import path and played through the loop.")] = DEFAULT_COUNT,
    no_incidents: Annotated[bool, typer.Option(
        "--no-incidents", help="Skip the synthetic incidents (same as --incidents 0).")]
    = False,
    track_days: Annotated[int, typer.Option(
        "--track-days", min=0, help="Days of synthetic GPS tracks of the patrols along "
        "their routes (0: none).")] = TRACK_DAYS,
) -> None:
    """Build 鼓楼区 (10 streets, 69 communities, a few hundred grids), its roster, the
    default categories and a year of synthetic incidents, and write them. Running it
    again changes nothing.
    """
    count = 0 if no_incidents else incidents
    cfg = settings()
    with reported_errors(), session_scope(cfg.database_url) as session:
        report = load_demo(session, seed=seed, incidents=count, settings=cfg,
                           track_days=track_days)
    if report.changed:
        vacuum_analyze(cfg.database_url)  # fresh statistics: the map pages' plans need them
    table = Table(title=f"demo city 鼓楼区 (seed {report.seed})")
    for column in ("what", "created", "updated", "unchanged"):
        table.add_column(column, justify="left" if column == "what" else "right")
    rows = [(level, counts) for level, counts in report.grids.items()]
    rows.append(("category", report.categories))
    if report.roster is not None:
        rows += [("team", report.roster.teams), ("worker", report.roster.workers),
                 ("duty", report.roster.duties)]
    for what, counts in rows:
        table.add_row(what, str(len(counts.created)), str(len(counts.updated)),
                      str(len(counts.unchanged)))
    console.print(table)
    if report.retired_grids:
        console.print(f"closed {len(report.retired_grids)} demo grid(s) the build no longer has")
    if report.positions_set:
        console.print(f"set {report.positions_set} last known position(s)")
    if report.incidents is not None:
        _incidents(report.incidents.as_dict())
    if report.tracks is not None:
        console.print(f"patrol tracks: {report.tracks.as_dict()}")
    console.print("nothing changed: the demo was already loaded" if not report.changed
                  else styled(("demo loaded", "green")))
    console.print(f"built in {report.build_seconds:.1f} s, loaded in "
                  f"{report.total_seconds:.1f} s")
    console.print("next: create a user with `patrolgrid users create --name admin --role "
                  "admin`, then `patrolgrid serve`")


def _incidents(data: dict[str, Any]) -> None:
    table = Table(title=f"demo incidents ({data['generated']:,} generated, imported in "
                        f"{data['import_seconds']} s)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key in ("accepted", "duplicates", "rejected", "unassigned", "snapped", "candidates"):
        table.add_row(key, f"{data[key]:,}")
    table.add_row("merged duplicates", f"{data['history']['merged']:,}")
    table.add_row("evaluated", f"{data['history']['evaluated']:,}")
    table.add_row("escalated now", f"{data['escalated']:,}")
    table.add_row("overdue now", f"{data['overdue']:,}")
    for status, count in data["by_status"].items():
        table.add_row(f"status {status}", f"{count:,}")
    console.print(table)
