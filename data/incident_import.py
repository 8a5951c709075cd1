"""Bulk import of incidents: rows -> validation -> batched registration, with a summary.

The rows come from :mod:`data.incident_io` (a file) or any iterable of
:class:`~data.incident_io.SourceRow` (the demo city). Every row is either
accepted (a new incident, or a *duplicate*: an external id the database already
has, returned and not created again) or rejected with its row number, the
reason and its original values. Rejecting a row never stops the import; a
problem with the whole input (an unknown field or default category, a file that
is not CSV/JSON) raises :class:`~geo.errors.InvalidInput` before anything is
written. Everything is written in the caller's transaction: a failed import
leaves the database unchanged.

Field rules
-----------
- coordinates: ``lon_field``/``lat_field`` when given; otherwise a GeoJSON Point
  geometry; otherwise the first of :data:`~data.incident_fields.LON_NAMES` /
  :data:`~data.incident_fields.LAT_NAMES` the
  first record has (any case);
- category: ``category_field`` (default ``category``); rows without a value get
  ``default_category``; a row with neither, or an unknown code, is rejected;
- ``external_id_field`` (default ``external_id``), ``time_field`` (default
  ``reported_at``), ``description``, ``reporter``: read when present;
- source: ``source`` for every row when given, else each row's ``source``
  field, else ``other``; crs likewise (``crs`` option, a ``crs`` field, ``wgs84``);
- times without an offset are local time of ``timezone`` (default: the
  configured ``PATROLGRID_TIMEZONE``); rows without a time are reported "now".

Rows refused by the intake itself (a category not in the table, a pair that
looks swapped because it lands in a grid only when swapped, a point that does
not convert to WGS-84) are rejected like rows that fail validation.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from data.incident_batches import chunk_batches, row_batches
from data.incident_fields import Fields, ImportOptions, named_json_fields, resolve_fields
from data.incident_io import RowReader, SourceRow, open_rows
from data.incident_pipeline import BackgroundWriter, import_mode, prefetched
from data.incident_quick import QuickCheck
from data.incident_report import Reject, RejectWriter
from data.incident_summary import KEEP_REJECTS, ImportSummary
from geo.crs import parse_crs
from geo.errors import InvalidInput
from geo.incidents.bulk import BatchCounts, BulkIntake
from geo.incidents.schema import validate_incident
from geo.settings import Settings
from geo.store.incidents import category_codes
from geo.store.models import INCIDENT_SOURCES

Progress = Callable[[int, "ImportSummary"], None]

#: What a readable record is, for the reject report of one that is not.
RECORD_VALID = ("a CSV row with one value per header field, an NDJSON line holding a JSON "
                "object, or a GeoJSON Feature with a Point")


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> Any:
    """A text stripped; anything else as it is, for the intake's own check (a JSON number
    where a text belongs is refused there, as ``POST /incidents`` refuses it)."""
    return value.strip() if isinstance(value, str) else value


class _Importer:
    """Turns source rows into validated incidents or rejects, batch by batch."""

    def __init__(self, session: Session, options: ImportOptions, settings: Settings,
                 summary: ImportSummary, actor: str, writer: RejectWriter | None,
                 index: Any) -> None:
        self.session = session
        self.options = options
        self.settings = settings
        self.summary = summary
        self.actor = actor
        self.writer = writer
        self.index = index
        self.lock = threading.Lock()
        self.keep_ids = False
        self.bulk: BulkIntake | None = None
        self.background: BackgroundWriter[Any] | None = None
        self.threaded = True
        self.rows: dict[int, SourceRow] = {}
        self.quick: QuickCheck | None = None
        self.categories = set(category_codes(session))
        self.tz = _zone(options.timezone) if options.timezone else settings.tz
        if options.crs is not None:
            parse_crs(options.crs)  # an unknown --crs refuses the whole input
        if options.source is not None and \
                options.source.strip().lower() not in INCIDENT_SOURCES:
            raise InvalidInput(f"the source {options.source!r} is unknown", field="source",
                               value=options.source, valid=", ".join(INCIDENT_SOURCES))
        self.now = dt.datetime.now(dt.UTC)
        self.fields: Fields | None = None
        if options.default_category is not None and \
                options.default_category not in self.categories:
            raise InvalidInput(f"the default category {options.default_category!r} is unknown",
                               field="default_category", value=options.default_category,
                               valid=_category_list(self.categories))

    def reject(self, row: SourceRow, kind: str, reason: str, *, field_name: str | None = None,
               value: Any = None, valid: str | None = None) -> None:
        reject = Reject(row=row.row, reason=reason, kind=kind, field=field_name, value=value,
                        valid=valid, original=row.original_values())
        with self.lock:
            self._record(reject)

    def _record(self, reject: Reject) -> None:
        self.summary.rejected += 1
        kind = reject.kind
        self.summary.rejected_by_reason[kind] += 1
        if len(self.summary.rejects) < KEEP_REJECTS:
            self.summary.rejects.append(reject)
        if self.writer is not None:
            self.writer.write(reject)

    def value(self, row: SourceRow, name: str | None) -> Any:
        return None if name is None else row.values.get(name)

    def raw(self, row: SourceRow, f: Fields) -> dict[str, Any] | None:
        """The row as intake input, or ``None`` after rejecting it."""
        if row.problem is not None:
            self.reject(row, "unreadable record", row.problem, field_name="record",
                        valid=RECORD_VALID)
            return None
        lon, lat, lon_name, lat_name = f.coordinates(row)
        if _empty(lon) or _empty(lat):
            what = f"{lon_name}, {lat_name} empty" if lon_name is not None else \
                "neither a Point geometry nor lon/lat fields" if f.per_record and \
                not row.has_geometry else "geometry empty"
            self.reject(row, "no coordinates", f"no coordinates: {what}",
                        field_name=lon_name if _empty(lon) and lon_name else
                        lat_name or "geometry",
                        value=None, valid="a longitude and a latitude in every row")
            return None
        category = _text(self.value(row, f.category))
        if _empty(category):
            category = self.options.default_category
            if category is None:
                self.reject(row, "no category", "no category and no --default-category",
                            field_name=f.category or "category", value=None,
                            valid=_category_list(self.categories))
                return None
        elif category not in self.categories:
            self.reject(row, "unknown category", f"unknown category {category!r}",
                        field_name=f.category, value=category,
                        valid=_category_list(self.categories))
            return None
        return {
            "lon": lon, "lat": lat, "category": category,
            "crs": self.options.crs if f.crs is None else self.value(row, f.crs),
            "source": self.options.source if f.source is None else
            (self.value(row, f.source) or "other"),
            "external_id": _text(self.value(row, f.external_id)),
            "reported_at": self.value(row, f.time),
            "description": _text(self.value(row, f.description)),
            "reporter": _text(self.value(row, f.reporter)),
        }

    def quick_check(self) -> QuickCheck:
        """The quick path of the row check (made once the fields are known)."""
        if self.quick is None:
            assert self.fields is not None
            self.quick = QuickCheck(self.fields, self.options, self.categories, self.tz,
                                    self.now)
        return self.quick

    def check(self, row: SourceRow) -> Any:
        """The row's incident, or None after rejecting it (the quick path first)."""
        f = self.fields
        if f is None:
            return None
        item = self.quick_check()(row)
        if item is not None:
            return item
        raw = self.raw(row, f)
        return self.validate(row, raw) if raw is not None else None

    def validate(self, row: SourceRow, raw: dict[str, Any]) -> Any:
        clean = {k: v for k, v in raw.items() if not _empty(v)}
        clean.setdefault("source", "other")
        try:
            return validate_incident(clean, row=row.row, tz=self.tz, now=self.now)
        except InvalidInput as exc:
            self.refuse(row, exc)
            return None

    def refuse(self, row: SourceRow, exc: InvalidInput) -> None:
        name = self._file_field(exc.field)
        kind = "unknown category" if exc.field == "category" else f"bad {name}"
        self.reject(row, kind, exc.message, field_name=name, value=exc.value, valid=exc.valid)

    def _file_field(self, name: str | None) -> str:
        f = self.fields
        mapping = {} if f is None else {
            "lon": f.lon or "geometry", "lat": f.lat or "geometry", "category": f.category,
            "external_id": f.external_id, "reported_at": f.time, "description": f.description,
            "reporter": f.reporter, "source": f.source or "--source", "crs": f.crs or "--crs"}
        return mapping.get(name or "") or name or "row"

    def register(self, items: list[Any], rows: dict[int, SourceRow]) -> None:
        if not items:
            return
        if self.bulk is None:
            def refused(item: Any, exc: InvalidInput) -> None:
                self.refuse(self.rows[item.row], exc)

            self.bulk = BulkIntake(self.session, actor=self.actor, settings=self.settings,
                                   index=self.index, now=self.now, on_reject=refused)
            if self.bulk.preload() and self.threaded:
                self.background = BackgroundWriter(self.bulk.write_ahead, self.count,
                                                   flush=self.bulk.flush)
        self.rows = rows
        prepared = self.bulk.prepare(items)
        if prepared is None:
            return
        if self.background is not None:
            self.background.submit(prepared)
        else:
            self.count(self.bulk.write(prepared))

    def count(self, counts: BatchCounts) -> None:
        """Add a written batch's counts to the summary (called by the writer thread)."""
        with self.lock:
            s = self.summary
            s.accepted += counts.created
            s.duplicates += counts.duplicates
            s.unassigned += counts.unassigned
            s.snapped += counts.snapped
            s.no_worker += counts.no_worker
            s.candidates += counts.candidates
            s.events += counts.events
            s.by_rule.update(counts.by_rule)
            if self.keep_ids:
                s.ids.extend(counts.ids)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"timezone {name!r} is not an IANA time zone name",
                           field="timezone", value=name,
                           valid="a name such as Asia/Shanghai or America/Chicago") from None


def _category_list(codes: set[str]) -> str:
    shown = sorted(codes)
    more = f" … ({len(shown)} in all: GET /api/v1/categories)" if len(shown) > 40 else ""
    return (", ".join(shown[:40]) + more) if shown else "(no categories: load them first)"


def import_rows(session: Session, rows: Iterable[SourceRow], options: ImportOptions, *,
                settings: Settings, actor: str, source: str = "rows", fmt: str = "rows",
                header: list[str] | None = None, reject_writer: RejectWriter | None = None,
                progress: Progress | None = None, position: Callable[[], int] | None = None,
                index: Any = None, keep_ids: bool = False,
                threaded: bool = True) -> ImportSummary:
    """Validate and register incidents from ``rows`` in batches, in ``session``.

    Parameters
    ----------
    session : Session
        The transaction to write in (the caller commits; nothing is committed here).
    rows : iterable of SourceRow
        The records, e.g. an open :class:`~data.incident_io.RowReader` (a CSV one,
        given with its ``header``, is read in chunks of raw records:
        :func:`data.incident_batches.chunk_batches`).
    options : ImportOptions
        Field names, CRS, source, default category, batch size.
    settings : Settings
        Snap tolerance, duplicate rule, time zone (passed to the intake).
    actor : str
        Who imports: stored on every registration event.
    source, fmt : str
        Name and format of the input, for the summary.
    header : list of str, optional
        The CSV header (to check named fields before the first row).
    reject_writer : RejectWriter, optional
        Receives every rejected row.
    progress : callable, optional
        Called as ``progress(position(), summary)`` after every batch.
    index : AssignmentIndex, optional
        The assignment index (the process-wide cached one by default).
    keep_ids : bool
        Keep the ids of the new incidents in ``summary.ids``.
    threaded : bool
        Read and validate in a thread, a batch or two ahead, and write in
        another, a batch behind (the rows must then not be read by anything else
        meanwhile, nor the session used by anything else until this returns).

    Returns
    -------
    ImportSummary

    Raises
    ------
    InvalidInput
        For a problem with the whole input (nothing has been written then if it
        is found before the first row; otherwise the caller rolls back).
    """
    started = time.perf_counter()
    summary = ImportSummary(source=source, format=fmt)
    if index is None:
        index = _index(session)
    importer = _Importer(session, options, settings, summary, actor, reject_writer, index)
    importer.keep_ids = keep_ids
    importer.threaded = threaded
    size = max(1, options.batch_size)
    chunks = rows.csv_chunks() if isinstance(rows, RowReader) else None
    if chunks is not None and header is not None:
        batches = chunk_batches(chunks, importer, header, options, size)
    else:
        batches = row_batches(_rows_with_fields(rows, importer, header, options), importer,
                              size)
    try:
        with import_mode():
            for batch, sources in prefetched(batches) if threaded else batches:
                importer.register(batch, sources)
                if progress is not None:
                    progress(position() if position else summary.rows, summary)
            if importer.background is not None:
                importer.background.close()
    finally:
        if importer.background is not None:
            importer.background.abort()  # after an error: no write may outlive the import
        if importer.bulk is not None:
            importer.bulk.close()
    summary.seconds = time.perf_counter() - started
    if importer.bulk is not None:
        summary.stages.update(importer.bulk.seconds)
    if progress is not None:
        progress(position() if position else summary.rows, summary)
    return summary


def _rows_with_fields(rows: Iterable[SourceRow], importer: _Importer,
                      header: list[str] | None, options: ImportOptions) -> Iterator[SourceRow]:
    """The rows, resolving the fields on the first readable one; for JSON records, a field
    named in the options that no record has refuses the import at the end."""
    unseen = named_json_fields(options) if header is None else {}
    keys: set[str] = set()
    for row in rows:
        if importer.fields is None and (row.problem is None or header is not None):
            importer.fields = resolve_fields(row, header, options)
            importer.summary.fields = importer.fields.as_dict()
        if importer.fields is None:
            importer.reject(row, "unreadable record", row.problem or "unreadable",
                            field_name="record", valid=RECORD_VALID)
            importer.summary.rows += 1
            continue
        if unseen:
            unseen = {o: n for o, n in unseen.items() if n not in row.values}
            if len(keys) < 100:
                keys.update(str(k) for k in row.values)
        yield row
    if unseen and importer.fields is not None:
        option, name = next(iter(unseen.items()))
        raise InvalidInput(f"no record of the input has the field {name!r} (given as "
                           f"{option.replace('-', '_')}, --{option} in the CLI)",
                           field=option.replace("-", "_"), value=name,
                           valid="a field the records have: " + ", ".join(sorted(keys)))


def _index(session: Session) -> Any:
    from geo.index_cache import index_for_intake

    return index_for_intake(session)


def import_file(session: Session, path: str | Path, options: ImportOptions, *,
                settings: Settings, actor: str, fmt: str | None = None, name: str | None = None,
                report: Path | None = None, progress: Progress | None = None,
                index: Any = None) -> ImportSummary:
    """Import a CSV, GeoJSON or NDJSON file (streamed) with :func:`import_rows`.

    Parameters
    ----------
    path
        The file; ``fmt`` names its format when its ending does not.
    name
        The name shown in messages and the summary (default: the file name).
    report
        Write every rejected row to this CSV file (see :class:`RejectWriter`).

    Other parameters are those of :func:`import_rows`; ``progress`` gets the
    bytes read so far (``summary.total_bytes`` is the file size).
    """
    writer = RejectWriter(Path(report)) if report is not None else None
    with open_rows(path, fmt, name=name) as reader:
        if writer is not None:
            writer.open(reader.fields)
        try:
            summary = import_rows(session, reader, options, settings=settings, actor=actor,
                                  source=reader.name, fmt=reader.format, header=reader.fields,
                                  reject_writer=writer, progress=progress,
                                  position=lambda: reader.position, index=index)
        finally:
            if writer is not None:
                writer.close()
    return summary
