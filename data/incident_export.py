"""Export of incidents to CSV, GeoJSON or NDJSON, streamed from the database.

Rows are read with a server-side cursor and written one at a time, so an export
of a million incidents runs in bounded memory. A CSV export imports back with
``patrolgrid incidents import`` (fields ``lon``, ``lat``, ``category``,
``external_id``, ``source``, ``reported_at`` and ``description`` are found by
name): incidents with an external id come back as duplicates.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from data.staged import staged
from geo.errors import InvalidInput
from geo.store.models import INCIDENT_STATUSES

#: Columns of an export, in order (GeoJSON: the properties, lon/lat in the geometry).
EXPORT_COLUMNS = (
    "id", "external_id", "source", "category", "lon", "lat", "grid_code", "worker_id",
    "worker_code", "status", "rule", "snapped_m", "unassigned_reason", "candidate_of",
    "duplicate_of", "escalated_to", "reported_at", "due_at", "closed_at", "description",
)
#: File endings written by :func:`export_incidents`.
EXPORT_FORMATS = {".csv": "csv", ".geojson": "geojson", ".json": "geojson",
                  ".ndjson": "ndjson", ".jsonl": "ndjson"}
FETCH = 5000

_SELECT = text("""
SELECT i.id, i.external_id, i.source, i.category_code AS category,
       ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.grid_code, i.worker_id,
       w.code AS worker_code, i.status, i.rule, i.snapped_m, i.unassigned_reason,
       i.candidate_of, i.duplicate_of, i.escalated_to, i.reported_at, i.due_at, i.closed_at,
       i.description
  FROM incident i LEFT JOIN worker w ON w.id = i.worker_id
 WHERE (CAST(:status AS text) IS NULL OR i.status = CAST(:status AS text))
   AND (CAST(:since AS timestamptz) IS NULL OR i.reported_at >= CAST(:since AS timestamptz))
   AND (CAST(:until AS timestamptz) IS NULL OR i.reported_at < CAST(:until AS timestamptz))
 ORDER BY i.id
""")


def export_format(path: str | Path) -> str:
    """The export format of ``path`` from its ending; InvalidInput if unknown."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise InvalidInput(f"cannot export to {Path(path).name!r}: unknown file type "
                           f"{suffix or '(none)'!r}", field="path", value=str(path),
                           valid="a file ending in " + ", ".join(EXPORT_FORMATS))
    return EXPORT_FORMATS[suffix]


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def check_status(status: str | None) -> None:
    """Raise :class:`InvalidInput` unless ``status`` is None or an incident status."""
    if status is not None and status not in INCIDENT_STATUSES:
        raise InvalidInput(f"status {status!r} is not an incident status", field="status",
                           value=status, valid=", ".join(INCIDENT_STATUSES))


def incident_rows(session: Session, *, status: str | None = None,
                  since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """The incidents (filtered by status and ``since <= reported_at < until``), by id."""
    check_status(status)
    result = session.execute(_SELECT.execution_options(stream_results=True, yield_per=FETCH),
                             {"status": status, "since": since, "until": until})
    for row in result.mappings():
        yield {k: _value(row[k]) for k in EXPORT_COLUMNS}


def _csv(out: IO[str], rows: Iterator[dict[str, Any]]) -> int:
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(["" if row[k] is None else row[k] for k in EXPORT_COLUMNS])
        count += 1
    return count


def _feature(row: dict[str, Any]) -> str:
    props = {k: row[k] for k in EXPORT_COLUMNS if k not in ("lon", "lat")}
    return json.dumps({"type": "Feature", "id": row["id"],
                       "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
                       "properties": props}, ensure_ascii=False)


def _geojson(out: IO[str], rows: Iterator[dict[str, Any]]) -> int:
    out.write('{"type": "FeatureCollection", "features": [\n')
    count = 0
    for row in rows:
        out.write((",\n" if count else "") + _feature(row))
        count += 1
    out.write("\n]}\n")
    return count


def _ndjson(out: IO[str], rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def export_incidents(session: Session, path: str | Path, *, status: str | None = None,
                     since: dt.datetime | None = None,
                     until: dt.datetime | None = None) -> int:
    """Write the incidents to ``path`` (CSV, GeoJSON or NDJSON by its ending); the count.

    Parameters
    ----------
    session : Session
    path
        ``.csv``, ``.geojson``/``.json`` (a FeatureCollection of Points, WGS-84) or
        ``.ndjson``/``.jsonl``. The file is replaced.
    status : str, optional
        Only incidents in this status.
    since, until : datetime, optional
        Only incidents reported in ``[since, until)``.

    Returns
    -------
    int
        How many incidents were written.
    """
    kind = export_format(path)
    check_status(status)  # before the file is touched
    rows = incident_rows(session, status=status, since=since, until=until)
    writer = {"csv": _csv, "geojson": _geojson, "ndjson": _ndjson}[kind]
    target = Path(path)
    with staged(target) as part:
        assert part is not None
        with part.open("w", encoding="utf-8", newline="") as out:
            count = writer(out, rows)
    return count
