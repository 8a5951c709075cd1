"""``patrolgrid demo``: load the demo city (鼓楼区, Fuzhou) with its roster and categories."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import console, reported_errors, settings
from data.demo.city import DEFAULT_SEED
from data.demo.load import load_demo
from geo.store.db import session_scope

app = typer.Typer(help="The demo city: real streets and communities of Gulou, Fuzhou.",
                  no_args_is_help=True)


@app.command("load")
def load(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic parts (grids, "
                                      "seeds of communities without a point, people).")]
    = DEFAULT_SEED,
) -> None:
    """Build 鼓楼区 (10 streets, 69 communities, a few hundred grids), its roster and the
    default categories, and write them. Running it again changes nothing.
    """
    with reported_errors(), session_scope(settings().database_url) as session:
        report = load_demo(session, seed=seed)
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
    console.print("nothing changed: the demo was already loaded" if not report.changed
                  else "[green]demo loaded[/green]")
    console.print(f"built in {report.build_seconds:.1f} s, loaded in "
                  f"{report.total_seconds:.1f} s")
    console.print("next: create a user with `patrolgrid users create --name admin --role "
                  "admin`, then `patrolgrid serve`")
