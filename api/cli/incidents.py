"""``patrolgrid incidents``: bulk import (CSV, GeoJSON, NDJSON, streamed) and export."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.cli.common import check_writable, console, reported_errors, settings, styled
from data.incident_export import export_incidents
from data.incident_fields import DEFAULT_BATCH
from data.incident_import import ImportOptions, ImportSummary, import_file
from data.incident_io import open_rows
from data.staged import staged
from geo.errors import InvalidInput, check_moment
from geo.store.db import session_scope

app = typer.Typer(help="Incidents: bulk import and export.", no_args_is_help=True)

#: Rejected rows shown in the terminal (the --report file has them all).
SHOWN = 10


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False, readable=True,
        help="CSV (header row), GeoJSON FeatureCollection of Points, or NDJSON.")],
    lon_field: Annotated[str | None, typer.Option(
        "--lon-field", help="Field with the longitude (default: the Point geometry, or a "
        "field named lon, lng, long, longitude or x).")] = None,
    lat_field: Annotated[str | None, typer.Option(
        "--lat-field", help="Field with the latitude (default: lat, latitude or y).")] = None,
    crs: Annotated[str | None, typer.Option(
        "--crs", help="wgs84 (default), gcj02, bd09, cgcs2000 or EPSG:n of every row "
        "(default: a 'crs' field, else wgs84).")] = None,
    external_id_field: Annotated[str | None, typer.Option(
        "--external-id-field", help="Field with the id in the source system; a repeated id "
        "is a duplicate, not a new incident (default: 'external_id').")] = None,
    category_field: Annotated[str | None, typer.Option(
        "--category-field", help="Field with the category code (default: 'category').")]
    = None,
    default_category: Annotated[str | None, typer.Option(
        "--default-category", help="Category of rows without one.")] = None,
    time_field: Annotated[str | None, typer.Option(
        "--time-field", help="Field with the time reported, ISO 8601; without an offset it "
        "is local time (default: 'reported_at'; none: now).")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="hotline, app, patrol, camera, sensor or other, for every row "
        "(default: a 'source' field, else other).")] = None,
    description_field: Annotated[str | None, typer.Option(
        "--description-field", help="Field with the description (default: 'description').")]
    = None,
    reporter_field: Annotated[str | None, typer.Option(
        "--reporter-field", help="Field with the reporter (default: 'reporter').")] = None,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="Time zone of times without an offset, e.g. America/Chicago "
        "(default: PATROLGRID_TIMEZONE).")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv, geojson or ndjson when the file name does not say.")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", dir_okay=False, help="Write every rejected row (row, reason, field, "
        "value, valid, the original values) to this CSV file.")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=100_000, help="Rows registered per statement batch.")]
    = DEFAULT_BATCH,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Do everything, then roll back: write nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Import incidents: each row lands on its grid and worker like a single report.

    Every row is accepted or rejected with its row number and reason; a row whose
    external id is known already counts as a duplicate. The whole import is one
    transaction: if it fails, nothing is written. Exit status 0 (also with rejected
    rows), 2 for unusable input (unknown field, category or format).
    """
    cfg = settings()
    options = ImportOptions(
        lon_field=lon_field, lat_field=lat_field, crs=crs, external_id_field=external_id_field,
        category_field=category_field, default_category=default_category,
        time_field=time_field, source=source, description_field=description_field,
        reporter_field=reporter_field, timezone=timezone, batch_size=batch_size)
    with reported_errors():
        check_writable(report, "report")
        open_rows(path, fmt).close()  # an unknown format fails before the bar appears
        # the report replaces the file only once the import is committed (or a dry run done)
        with staged(report) as part, _Bar(path, quiet) as advance, \
                session_scope(cfg.database_url) as session:
            summary = import_file(session, path, options, settings=cfg, fmt=fmt,
                                  actor=f"import:{getpass.getuser()}", report=part,
                                  progress=advance)
            if dry_run:
                session.rollback()
    print_summary(summary, report)
    console.print("dry run: nothing written" if dry_run else styled(("imported", "green")))


class _Bar:
    """A rich progress bar over the bytes of the file (or nothing when quiet)."""

    def __init__(self, path: Path, quiet: bool) -> None:
        self.total = path.stat().st_size
        self.progress: Progress | None = None if quiet else Progress(
            TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]} rows, {task.fields[rate]} rows/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self.task: Any = None
        self.started = dt.datetime.now()

    def __enter__(self) -> Any:
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task("importing", total=self.total, rows=0, rate=0)
        return self.advance

    def advance(self, position: int, summary: ImportSummary) -> None:
        if self.progress is None:
            return
        seconds = (dt.datetime.now() - self.started).total_seconds() or 1e-9
        self.progress.update(self.task, completed=min(position, self.total),
                             rows=f"{summary.rows:,}", rate=f"{summary.rows / seconds:,.0f}")

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_summary(summary: ImportSummary, report: Path | None) -> None:
    """The summary of an import as rich tables."""
    table = Table(title=f"incident import: {summary.source} ({summary.format}, "
                        f"{summary.rows:,} rows in {summary.seconds:.1f} s)")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("accepted (new incidents)", f"{summary.accepted:,}")
    table.add_row("  of them unassigned (outside every grid)", f"{summary.unassigned:,}")
    table.add_row("  of them snapped to a grid nearby", f"{summary.snapped:,}")
    table.add_row("  of them without a worker", f"{summary.no_worker:,}")
    table.add_row("  of them duplicate candidates", f"{summary.candidates:,}")
    table.add_row("duplicates (known external id)", f"{summary.duplicates:,}")
    table.add_row("rejected", f"{summary.rejected:,}")
    for reason, count in summary.rejected_by_reason.most_common():
        table.add_row(f"  {reason}", f"{count:,}")
    console.print(table)
    if summary.by_rule:
        rules = Table(title="how the worker was chosen (rule)")
        rules.add_column("rule")
        rules.add_column("incidents", justify="right")
        for rule, count in summary.by_rule.most_common():
            rules.add_row(rule, f"{count:,}")
        console.print(rules)
    used = ", ".join(f"{k}={v}" for k, v in summary.fields.items() if v)
    if used:
        console.print(f"fields: {used}")
    if summary.rejects:
        shown = Table(title=f"rejected rows (first {min(SHOWN, summary.rejected)} of "
                            f"{summary.rejected:,})")
        for column in ("row", "reason"):
            shown.add_column(column, justify="right" if column == "row" else "left")
        for reject in summary.rejects[:SHOWN]:
            shown.add_row(str(reject.row), reject.reason)
        console.print(shown)
    if report is not None:
        console.print(f"rejected rows written to {report}")


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(
        dir_okay=False, help="A .csv, .geojson or .ndjson file to write (replaced).")],
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    since: Annotated[dt.datetime | None, typer.Option(
        "--from", help="Only incidents reported at or after this time (local time).")] = None,
    until: Annotated[dt.datetime | None, typer.Option(
        "--to", help="Only incidents reported before this time (local time).")] = None,
) -> None:
    """Write incidents (id, external_id, lon, lat, grid_code, worker_id, status, rule,
    snapped_m, reported_at, …) to CSV, GeoJSON or NDJSON, streamed.
    """
    cfg = settings()
    since, until = (None if t is None else t if t.tzinfo else t.replace(tzinfo=cfg.tz)
                    for t in (since, until))
    with reported_errors():
        check_writable(path, "PATH")
        if since is not None:
            since = check_moment(since, "--from", since.isoformat())
        if until is not None:
            until = check_moment(until, "--to", until.isoformat())
        if since is not None and until is not None and until <= since:
            raise InvalidInput(f"--to ({until.isoformat()}) is not after --from "
                               f"({since.isoformat()})", field="--to", value=until.isoformat(),
                               valid="a time after --from")
        with session_scope(cfg.database_url) as session:
            count = export_incidents(session, path, status=status, since=since, until=until)
    console.print(f"exported {count:,} incident(s) to {path}")
