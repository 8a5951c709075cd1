"""``patrolgrid tracks``: import GPS track files of a worker, list the monthly partitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import check_writable, console, number_in, reported_errors, settings, styled
from data.track_io import read_tracks
from geo.errors import InvalidInput
from geo.settings import GAP_LIMIT_MAX_S, SPEED_LIMIT_MAX_MPS
from geo.store import track_queries
from geo.store.db import session_scope
from geo.store.tracks import save_track
from geo.tracks.clean import Limits

app = typer.Typer(help="GPS tracks: import files (GPX, GeoLife PLT, CSV, GeoJSON), partitions.",
                  no_args_is_help=True)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(
        exists=True, dir_okay=True, readable=True,
        help="Track files (.gpx, .plt, .csv, .geojson) or folders of them, one worker's.")],
    worker: Annotated[str, typer.Option("--worker", help="Worker id or code.")],
    fmt: Annotated[str | None, typer.Option(
        "--format", help="gpx, plt, csv or geojson (default: from each file's ending).")]
    = None,
    crs: Annotated[str | None, typer.Option(
        "--crs", help="wgs84 (default), gcj02, bd09, cgcs2000 or EPSG:n.")] = None,
    max_speed: Annotated[float | None, typer.Option(
        "--max-speed", callback=number_in(0.01, SPEED_LIMIT_MAX_MPS),
        help="Speed limit in m/s (default: "
        "PATROLGRID_TRACK_MAX_SPEED_MPS, walking).")] = None,
    max_gap: Annotated[float | None, typer.Option(
        "--max-gap", callback=number_in(0.01, GAP_LIMIT_MAX_S),
        help="Pause in s that splits segments, "
        "at most a day (default: PATROLGRID_TRACK_MAX_GAP_S).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Clean and report, write nothing.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", dir_okay=False, help="Also write the report as JSON to this file.")] = None,
) -> None:
    """Clean and store the fixes of one worker's track files, all in one transaction.

    Exit status: 0 on success, 2 for unusable input (nothing written).
    """
    cfg = settings()
    with reported_errors():
        check_writable(report, "report")
        files = _expand(paths)
    with reported_errors(), session_scope(cfg.database_url) as session:
        worker_id = track_queries.resolve_worker(session, worker)
        assert worker_id is not None
        track, sources = read_tracks(files, fmt=fmt, crs=crs,
                                     clock_skew_s=cfg.track_clock_skew_s,
                                     max_points=cfg.track_max_points)
        limits = Limits.from_settings(cfg, max_speed_mps=max_speed, max_gap_s=max_gap)
        result = save_track(session, worker_id=worker_id, track=track, limits=limits,
                            dry_run=dry_run)
        result.sources = sources
    data = result.to_dict()
    if report is not None:
        report.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    print_report(data)


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the track files directly inside it, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower()
                           in (".gpx", ".plt", ".csv", ".geojson", ".json"))
            if not found:  # "no track file given", naming nothing
                raise InvalidInput(f"the folder {path} holds no track file directly inside it "
                                   "(its subfolders are not searched)", field="PATH",
                                   value=str(path), valid="track files (.gpx, .plt, .csv, "
                                   ".geojson), or folders holding them, e.g. "
                                   f"{path}/*/Trajectory")
            out.extend(found)
        else:
            out.append(path)
    return out


def print_report(data: dict[str, Any]) -> None:
    """Print an upload report (``TrackReport.to_dict()``) as a rich table."""
    clean = data["cleaning"]
    limits = clean["limits"]
    worker = data["worker"]
    table = Table(title=f"tracks of worker {worker['code']} (id {worker['id']})")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("rule")
    table.add_row("points received", str(data["received"]), ", ".join(
        f"{s['file']} ({s['points']})" for s in data["sources"]))
    table.add_row("duplicate timestamps", str(clean["duplicates"]), "first kept")
    table.add_row("already stored", str(clean["already_stored"]), "skipped")
    table.add_row("out of order", str(clean["out_of_order"]), "sorted by time, kept")
    table.add_row("speed spikes", str(clean["spikes"]),
                  f"> {limits['max_speed_mps']} m/s (+{limits['jitter_m']} m), out and back, "
                  f"runs of <= {limits['max_burst']}: dropped")
    table.add_row("jumps", str(clean["jumps"]), "faster legs kept: new segment")
    table.add_row("gaps", str(clean["gaps"]), f"> {limits['max_gap_s']} s: new segment")
    table.add_row("held back", str(clean["held"]),
                  "at the open end of the track (after a jump): the next upload decides")
    for key, what, rule in (("released", "stored", ""),
                            ("held_dropped", "dropped", "a spike after all"),
                            ("held_replaced", "replaced", "sent again: the new fix counts"),
                            ("still_held", "still held", "the next upload decides")):
        if clean[key]:
            table.add_row(f"earlier held: {what}", str(clean[key]), rule)
    table.add_row("segments", str(clean["segments"]), "")
    stored = data["stored"] if data["written"] else data["would_store"]
    table.add_row("stored" if data["written"] else "would store", str(stored),
                  f"{data['start'] or '-'} .. {data['end'] or '-'}")
    console.print(table)
    if data["held"]:
        console.print(f"fixes held for the worker now: {data['held']}")
    if data["last_position"]:
        pos = data["last_position"]
        console.print(f"last known position: {pos['lon']:.6f}, {pos['lat']:.6f} at {pos['t']}")
    console.print("dry run: nothing written" if not data["written"]
                  else styled(("stored", "green")))


@app.command("partitions")
def list_partitions() -> None:
    """List the monthly partitions of the track points with rows (estimated) and size."""
    with reported_errors(), session_scope(settings().database_url) as session:
        rows = track_queries.partitions(session)
    table = Table(title=f"track_point partitions ({len(rows)})")
    for column in ("name", "from", "to", "rows (est.)", "size"):
        table.add_column(column, no_wrap=column == "name",
                         justify="right" if column in ("rows (est.)", "size") else "left")
    for row in rows:
        table.add_row(row["name"], row["from"], row["to"], str(row["rows_estimate"]),
                      f"{row['bytes'] / 1024 / 1024:.1f} MiB")
    console.print(table)
