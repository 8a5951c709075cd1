"""Streaming readers of incident files (CSV, GeoJSON, NDJSON); the reject report is in
:mod:`data.incident_report`.

Nothing here loads a whole file: :func:`open_rows` yields one :class:`SourceRow`
at a time, so a file of a million rows is read in bounded memory. GeoJSON
FeatureCollections are parsed incrementally with ``ijson``; CSV and NDJSON line
by line.

Row numbers (``SourceRow.row``) count records from 1 in every format: the first
data row of a CSV file (the header is not a row), the first feature of a
GeoJSON file, the first line of an NDJSON file (blank lines are counted but
yield nothing, so the number is the line number).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson

from data.text_encoding import SNIFF_BYTES, check_header, csv_encoding
from geo.errors import InvalidInput
from geo.jsonkeys import Pairs, repeated_message, repeats

#: File name endings read by :func:`open_rows`, with the format each one is read as.
FORMATS: dict[str, str] = {
    ".csv": "csv", ".geojson": "geojson", ".json": "geojson",
    ".ndjson": "ndjson", ".jsonl": "ndjson", ".geojsonl": "ndjson", ".geojsons": "ndjson",
}
#: Longest text quoted in a reject reason (the report's original values are kept whole).
MAX_CELL = 2000
#: Longest CSV cell read (the csv module's default is 128 KiB): a longer description is a
#: rejected row (too long), not an unreadable file.
CSV_CELL_LIMIT = 16 << 20
csv.field_size_limit(max(csv.field_size_limit(), CSV_CELL_LIMIT))
#: Records per :class:`CsvChunk` read by :meth:`RowReader.csv_chunks`.
CHUNK_ROWS = 2_000
#: A JSON escape of an unpaired UTF-16 surrogate: a high one not followed by a low one, or a
#: low one not after a high one. yajl, ijson's fast parser, decodes ``"\\ud800"`` as ``"?"``
#: and ``"\\ud800\\u0041"`` as some other character, so a GeoJSON file holding one is read
#: by ijson's exact (slower) Python parser, and the row refused for the text it really holds.
UNPAIRED_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


@dataclass
class SourceRow:
    """One record of an incident file.

    ``values`` are the record's fields (CSV: strings or ``None`` for empty
    cells; JSON: the parsed values; GeoJSON: the feature's properties). ``lon``
    and ``lat`` come from a GeoJSON Point geometry (``None`` otherwise).
    ``problem`` says why a record could not be read at all (the importer
    rejects it with that reason).
    """

    row: int
    values: dict[str, Any]
    lon: Any = None
    lat: Any = None
    has_geometry: bool = False
    problem: str | None = None
    original: Any = None

    def original_values(self) -> Any:
        """The record as it was in the file (CSV: the fields; JSON: the object)."""
        return self.original if self.original is not None else self.values


@dataclass
class CsvChunk:
    """Consecutive records of a CSV file, as read: their row numbers and raw cells.

    Blank lines are left out (their numbers are skipped). :meth:`source_row`
    gives the :class:`SourceRow` that iterating the file would have given.
    """

    fields: list[str]
    numbers: list[int]
    cells: list[list[str]]

    def __len__(self) -> int:
        return len(self.numbers)

    def source_row(self, k: int) -> SourceRow:
        """The ``k``-th record as a :class:`SourceRow` (empty and blank cells are None)."""
        cells = self.cells[k]
        fields = self.fields
        values: dict[str, Any] = {f: (v if v.strip() else None)
                                  for f, v in zip(fields, cells, strict=False)}
        problem = None
        if len(cells) != len(fields):
            problem = f"the row has {len(cells)} values but the header has {len(fields)} fields"
            for f in fields[len(cells):]:
                values[f] = None
        return SourceRow(row=self.numbers[k], values=values, problem=problem,
                         original=values if problem is None else cells)


def format_of(name: str | Path, fmt: str | None = None) -> str:
    """The format (``csv``, ``geojson`` or ``ndjson``) of a file, from ``fmt`` or its ending."""
    if fmt is not None:
        wanted = fmt.strip().lower().lstrip(".")
        for suffix, kind in FORMATS.items():
            if wanted in (kind, suffix.lstrip(".")):
                return kind
        raise InvalidInput(f"unknown incident file format {fmt!r}", field="format", value=fmt,
                           valid="csv, geojson or ndjson")
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(
            f"cannot read {Path(name).name!r}: unknown file type {suffix or '(none)'!r}",
            field="file", value=Path(name).name,
            valid="a file ending in " + ", ".join(FORMATS) + " (or name the format)")
    return FORMATS[suffix]


class RowReader:
    """An open incident file: iterate it for :class:`SourceRow`; ``position`` is the bytes read.

    ``fields`` is the CSV header (``None`` for JSON formats, whose records may
    differ in their keys). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, binary: IO[bytes], fmt: str, *, name: str = "upload",
                 total_bytes: int | None = None) -> None:
        self.binary = binary
        self.format = fmt
        self.name = name
        self.total_bytes = total_bytes
        self.fields: list[str] | None = None
        self._text: io.TextIOWrapper | None = None
        self._csv_reader: Any = None
        self._pairs = Pairs.counting()  # JSON objects, noting a key given twice
        self._rows: Iterator[SourceRow]
        if fmt == "csv":
            self._rows = self._csv()
        elif fmt == "geojson":
            self._rows = self._geojson()
        elif fmt == "ndjson":
            self._rows = self._ndjson()
        else:
            raise InvalidInput(f"unknown incident file format {fmt!r}", field="format",
                               value=fmt, valid="csv, geojson or ndjson")

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (for a progress bar)."""
        try:
            return int(self.binary.tell())
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[SourceRow]:
        return self._rows

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying file."""
        if self._text is not None:
            self._text.close()  # closes the binary file too
        self.binary.close()

    # ------------------------------------------------------------------ CSV
    def _encoding(self) -> str:
        """UTF-8 or GB18030 (:func:`data.text_encoding.csv_encoding`)."""
        return csv_encoding(self.binary, self.name)

    def _csv(self) -> Iterator[SourceRow]:
        """Read the header now (so that ``fields`` is known before the first row)."""
        text = io.TextIOWrapper(self.binary, encoding=self._encoding(), newline="")
        self._text = text
        # strict: a quote left open swallows the rest of the file into one cell; strict
        # mode refuses that (and a quoted cell followed by more text) instead of accepting it
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidInput(f"{self.name!r} is empty", field="file", value=self.name,
                               valid="a CSV file with a header row") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _unreadable(self.name, "CSV", exc) from exc
        self.fields = [h.strip() for h in header]
        check_header(self.fields, self.name)
        self._csv_reader = reader
        return self._csv_rows(reader)

    def _csv_rows(self, reader: Any) -> Iterator[SourceRow]:
        for chunk in self._csv_chunks(reader, CHUNK_ROWS):
            for k in range(len(chunk)):
                yield chunk.source_row(k)

    def csv_chunks(self, size: int = CHUNK_ROWS) -> Iterator[CsvChunk] | None:
        """The records of a CSV file as :class:`CsvChunk` of up to ``size`` (None for the
        JSON formats). Read a file either so or by iterating it, not both."""
        if self.format != "csv":
            return None
        return self._csv_chunks(self._csv_reader, size)

    def _csv_chunks(self, reader: Any, size: int) -> Iterator[CsvChunk]:
        assert self.fields is not None
        numbers: list[int] = []
        records: list[list[str]] = []
        number = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                if numbers:
                    yield CsvChunk(self.fields, numbers, records)
                raise _unreadable(self.name, "CSV", exc, after=number,
                                  line=getattr(reader, "line_num", 0)) from exc
            number += 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            numbers.append(number)
            records.append(cells)
            if len(numbers) >= size:
                yield CsvChunk(self.fields, numbers, records)
                numbers, records = [], []
        if numbers:
            yield CsvChunk(self.fields, numbers, records)

    # ------------------------------------------------------------------ GeoJSON
    def _first_char(self) -> bytes:
        """The first significant byte; the file is left just after a UTF-8 BOM, if any."""
        start = 3 if self.binary.read(3) == codecs.BOM_UTF8 else 0
        self.binary.seek(start)
        while True:
            char = self.binary.read(1)
            if not char or not char.isspace():
                self.binary.seek(start)
                return char

    def _geojson(self) -> Iterator[SourceRow]:
        first = self._first_char()
        if first not in (b"{", b"["):
            raise InvalidInput(f"{self.name!r} is not a GeoJSON FeatureCollection",
                               field="file", value=self.name,
                               valid='a GeoJSON file {"type": "FeatureCollection", '
                               '"features": [...]} (or NDJSON: one object per line)')
        prefix = "item" if first == b"[" else "features.item"
        start = self.binary.tell()
        parser = ijson.get_backend("python") if self._unpaired_surrogate() else ijson
        self.binary.seek(start)
        number = 0
        pairs = self._pairs
        told = 0  # keys given twice that rows have been refused for
        try:
            for item in parser.items(self.binary, prefix, use_float=True, map_type=pairs):
                number += 1
                # ijson may build the next records before yielding this one: a count ahead
                # of ``told`` means this record or one of the next few gave a key twice
                if pairs.seen > told and (found := repeats(item)):
                    told += len(found)
                    yield _repeated_row(number, item, *found[0])
                else:
                    yield _json_row(number, item)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise _unreadable(self.name, "JSON", exc, after=number) from exc
        if number == 0 and prefix == "features.item":
            self._check_collection()

    def _unpaired_surrogate(self) -> bool:
        """Whether the file holds an escaped unpaired surrogate (a match across two pieces
        read may be one falsely: it only costs the slower parser)."""
        tail = b""
        while piece := self.binary.read(SNIFF_BYTES):
            if UNPAIRED_SURROGATE.search(tail + piece):
                return True
            tail = piece[-11:]
        return False

    def _check_collection(self) -> None:
        """Refuse a JSON object that is not a FeatureCollection (an empty one is fine)."""
        self.binary.seek(3 if self.binary.read(3) == codecs.BOM_UTF8 else 0)
        kinds = list(ijson.items(self.binary, "type"))
        if kinds != ["FeatureCollection"]:
            raise InvalidInput(
                f"{self.name!r} is a JSON object of type {kinds[0] if kinds else None!r}, "
                "not a FeatureCollection", field="file", value=self.name,
                valid='a GeoJSON FeatureCollection, a JSON array of objects, or NDJSON')

    # ------------------------------------------------------------------ NDJSON
    def _ndjson(self) -> Iterator[SourceRow]:
        for number, line in enumerate(self.binary, start=1):
            stripped = line.strip().lstrip(b"\x1e")  # RFC 8142 record separators
            if not stripped or (number == 1 and stripped == codecs.BOM_UTF8):
                continue
            if number == 1 and stripped.startswith(codecs.BOM_UTF8):
                stripped = stripped[len(codecs.BOM_UTF8):]
            seen = self._pairs.seen
            try:
                item = json.loads(stripped, object_pairs_hook=self._pairs.from_pairs)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                yield SourceRow(row=number, values={}, original=cut(line.decode(
                    "utf-8", "replace").rstrip("\r\n")), problem=f"not a JSON object: {exc}")
                continue
            if self._pairs.seen > seen and (found := repeats(item)):
                yield _repeated_row(number, item, *found[0])
            else:
                yield _json_row(number, item)


def _json_row(number: int, item: Any) -> SourceRow:
    if not isinstance(item, dict):
        return SourceRow(row=number, values={}, original=item,
                         problem=f"not a JSON object but {type(item).__name__}")
    if item.get("type") != "Feature":
        return SourceRow(row=number, values=item, original=item)
    props = item.get("properties")
    values = props if isinstance(props, dict) else {}
    geometry = item.get("geometry")
    row = SourceRow(row=number, values=values, original=item)
    if geometry is None:
        return row
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if kind != "Point":
        row.problem = f"the geometry is a {kind or type(geometry).__name__}, not a Point"
    elif not isinstance(coords, list) or len(coords) < 2:
        row.problem = f"the Point has no (lon, lat) coordinates: {cut(json.dumps(coords))}"
    else:
        row.lon, row.lat, row.has_geometry = coords[0], coords[1], True
    return row


def _repeated_row(number: int, item: Any, path: str, first: Any, second: Any) -> SourceRow:
    """A record that gives a key twice with different values: refused, naming the key."""
    row = _json_row(number, item)
    row.problem = repeated_message(path, first, second) + " (give each key once)"
    row.lon = row.lat = None
    row.has_geometry = False
    return row


def _unreadable(name: str, kind: str, exc: Exception, *, after: int = 0,
                line: int = 0) -> InvalidInput:
    where = f" after row {after}" if after else ""
    why = str(exc)
    if kind == "CSV" and "unexpected end of data" in why:
        why = (f"a quote (\") opened in row {after + 1} is never closed, so the rest of the "
               "file would be one cell")
    elif kind == "CSV" and "expected after" in why:
        at = f" (line {line})" if line else ""
        why = (f"row {after + 1}{at} has text after a quoted cell: {exc}; quote the "
               'whole cell and double the quotes inside it ("")')
    elif kind == "CSV" and "field larger than field limit" in why:
        why = (f"row {after + 1} has a cell longer than {CSV_CELL_LIMIT >> 20} MiB, the "
               "longest cell read (is a quote left open?)")
    valid = f"a well-formed {kind} file"
    if kind == "JSON" and (isinstance(exc, UnicodeDecodeError) or "invalid bytes in UTF8" in why):
        bad = (f" (bytes {exc.object[exc.start:exc.end].hex(' ')})"
               if isinstance(exc, UnicodeDecodeError) else "")
        why = f"a text at or after row {after + 1} is not UTF-8{bad}"
        valid = "a JSON file in UTF-8 (as RFC 8259 requires): save it again as UTF-8"
    return InvalidInput(f"cannot read {name!r} as {kind}{where}: {why}", field="file",
                        value=name, valid=valid)


def open_rows(path: str | Path, fmt: str | None = None, *, name: str | None = None) -> RowReader:
    """Open an incident file for streaming.

    Parameters
    ----------
    path
        A ``.csv``, ``.geojson``/``.json`` (FeatureCollection or array of objects)
        or ``.ndjson``/``.jsonl`` (one object or Feature per line) file.
    fmt
        The format, when the file name does not say it.
    name
        The name used in messages (default: the file name).

    Raises
    ------
    InvalidInput
        For an unknown format, an empty CSV file or a CSV header naming a field twice.
    """
    path = Path(path)
    kind = format_of(name or path.name, fmt)
    binary = path.open("rb")
    try:
        return RowReader(binary, kind, name=name or path.name, total_bytes=path.stat().st_size)
    except BaseException:
        binary.close()
        raise


def cut(text: str) -> str:
    """``text``, cut to :data:`MAX_CELL` characters for messages."""
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"
