"""The bulk import's batching: validated incidents in batches, with the rows they came from.

Two ways in, with the same outcome:

- :func:`row_batches` checks one :class:`~data.incident_io.SourceRow` at a time
  (GeoJSON, NDJSON, any iterable of rows);
- :func:`chunk_batches` reads a CSV file a :class:`~data.incident_io.CsvChunk`
  at a time and checks each record's raw cells with the quick path
  (:meth:`data.incident_quick.QuickCheck.cells`), building a ``SourceRow`` only
  for a record that the quick path does not accept (it then goes the row way:
  quick check, full validation, reject) or when a later stage refuses it
  (:class:`BatchRows` builds it then). On the demo file this reads a row in
  about a quarter of the time.

Both yield ``(incidents, rows)`` where ``rows`` maps each incident's row number
to its record, and both count every record in ``summary.rows``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from data.incident_fields import ImportOptions, resolve_fields
from data.incident_io import CsvChunk, SourceRow
from data.incident_quick import QuickCheck


class BatchRows(dict[int, SourceRow]):
    """The records of a batch by row number; those read by the quick path are built on
    first use (when the intake refuses one) from the chunk they came in."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[int, tuple[CsvChunk, int]] = {}

    def __missing__(self, number: int) -> SourceRow:
        chunk, k = self.pending.pop(number)
        row = self[number] = chunk.source_row(k)
        return row


Batch = tuple[list[Any], dict[int, SourceRow]]
#: One record as checked: its incident (None: rejected), row number, and its SourceRow or
#: where to build it from.
Entry = tuple[Any, int, "SourceRow | tuple[CsvChunk, int]"]


def row_batches(rows: Iterable[SourceRow], importer: Any, size: int) -> Iterator[Batch]:
    """Validated incidents of ``rows`` in batches of ``size``, with the rows they came from."""
    return _batched(((importer.check(row), row.row, row) for row in rows), importer.summary,
                    size)


def chunk_batches(chunks: Iterable[CsvChunk], importer: Any, header: list[str],
                  options: ImportOptions, size: int) -> Iterator[Batch]:
    """:func:`row_batches` for the chunks of a CSV file (see the module docstring)."""
    return _batched(_chunk_entries(chunks, importer, header, options), importer.summary, size)


def _chunk_entries(chunks: Iterable[CsvChunk], importer: Any, header: list[str],
                   options: ImportOptions) -> Iterator[Entry]:
    at: list[int | None] | None = None
    quick: QuickCheck | None = None
    width = len(header)
    if importer.fields is None:  # from the header alone, so a header-only file is checked too
        importer.fields = resolve_fields(SourceRow(row=0, values={}), header, options)
        importer.summary.fields = importer.fields.as_dict()
    for chunk in chunks:
        if quick is None:
            quick = importer.quick_check()
            at = quick.columns(header)
        for k, (number, cells) in enumerate(zip(chunk.numbers, chunk.cells, strict=True)):
            item = quick.cells(number, cells, at) if at is not None and \
                len(cells) == width else None
            if item is not None:
                yield item, number, (chunk, k)
            else:
                row = chunk.source_row(k)
                yield importer.check(row), number, row


def _batched(entries: Iterable[Entry], summary: Any, size: int) -> Iterator[Batch]:
    """The accepted incidents of ``entries`` in batches of ``size`` with their records;
    every entry counts in ``summary.rows``, the time spent in ``summary.stages["read"]``."""
    batch: list[Any] = []
    sources = BatchRows()
    stages = summary.stages
    started = time.perf_counter()
    for item, number, source in entries:
        summary.rows += 1
        if item is None:
            continue
        batch.append(item)
        if isinstance(source, SourceRow):
            sources[number] = source
        else:
            sources.pending[number] = source
        if len(batch) >= size:
            stages["read"] = stages.get("read", 0.0) + time.perf_counter() - started
            yield batch, sources
            started = time.perf_counter()
            batch, sources = [], BatchRows()
    stages["read"] = stages.get("read", 0.0) + time.perf_counter() - started
    if batch:
        yield batch, sources


__all__ = ["Batch", "BatchRows", "chunk_batches", "row_batches"]
