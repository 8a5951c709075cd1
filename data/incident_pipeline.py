"""Plumbing of the bulk import: read-ahead in a thread, and fresh planner statistics."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

T = TypeVar("T")
#: New rows after which the import refreshes the incident table's statistics.
ANALYZE_AFTER = 20_000

_DONE = object()


def prefetched(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``batches`` read and validated by a thread, up to ``depth`` batches ahead.

    Parsing and validating the next batch overlaps with the database writing the
    current one. An error of the thread is raised here; when the consumer stops
    early the thread is told to stop and joined.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, name="incident-import-reader", daemon=True)
    worker.start()
    try:
        while True:
            value = out.get()
            if value is _DONE:
                return
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


class TableStatistics:
    """Keeps the planner's idea of the incident table's size honest during a big import.

    The intake's queries (duplicate candidates, idempotency look-ups) are planned
    from the table's statistics, which autovacuum cannot refresh while the
    import's transaction is open: after a million rows the planner still thinks
    the table is as small as before and picks plans that scan it per batch. So
    the import runs ``ANALYZE incident`` itself (it sees the transaction's own
    rows) each time the table has grown by half since the last look, at least
    :data:`ANALYZE_AFTER` rows: a handful of times per import.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.base = max(0.0, float(session.execute(text(
            "SELECT reltuples FROM pg_class WHERE oid = CAST('incident' AS regclass)"))
            .scalar_one()))
        self.added = 0
        self.analyzed = 0

    def grew(self, created: int) -> None:
        self.added += created
        since = self.added - self.analyzed
        if since < max(ANALYZE_AFTER, 0.5 * (self.base + self.analyzed)):
            return
        try:
            with self.session.begin_nested():
                self.session.execute(text("ANALYZE incident"))
        except DBAPIError:  # e.g. not the table's owner: carry on with the old statistics
            pass
        self.analyzed = self.added
