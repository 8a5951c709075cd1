"""Plumbing of the bulk import: read-ahead in one thread, the writes in another."""

from __future__ import annotations

import contextlib
import gc
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_DONE = object()

#: The interpreter's thread switch interval while an import runs (the default is 5 ms).
SWITCH_INTERVAL_S = 0.0002
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.005
#: The garbage collector's thresholds while an import runs (the defaults are 700, 10, 10).
GC_THRESHOLDS = (100_000, 50, 100)
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def import_mode(interval: float = SWITCH_INTERVAL_S) -> Iterator[None]:
    """The interpreter settings of a bulk import, while this runs.

    - Threads take turns at least every ``interval`` seconds: the writer thread
      mostly waits for the database; each time it wakes up it must get the GIL
      back from the reader thread, which with the default 5 ms switch interval
      keeps it (and the database) idle for up to 5 ms per COPY buffer.
    - The cyclic garbage collector runs less often (:data:`GC_THRESHOLDS`): an
      import allocates millions of short-lived containers (rows, incidents,
      columns), freed by reference counting, which with the default thresholds
      made the collector run a thousand times per 100,000 rows and walk the whole
      heap several times (about 1.5-2 s of 5 s of Python). It still runs, so
      cycles (a reject's exception and its traceback) are still freed.

    Nested and concurrent uses share the settings: the first sets them, the last
    restores what it found.
    """
    global _switch_users, _switch_saved, _gc_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, _switch_saved))
            _gc_saved = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)
                gc.set_threshold(*_gc_saved)


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


class BackgroundWriter(Generic[T]):
    """Runs ``write(batch)`` for each submitted batch, in order, in one thread.

    The caller prepares the next batch while this one is written: the database
    works on the batch (its own process) while Python works on the next one.
    At most ``depth`` batches wait. ``done(result)`` is called in the thread after
    each write. ``flush()``, when given, is called in the thread once every batch
    is written (for a ``write`` that stores each batch one call late), its result
    given to ``done`` too. An error of a write is raised by the next :meth:`submit` or by
    :meth:`close`; after an error nothing more is written. :meth:`close` waits
    for every write; :meth:`abort` for the one in progress only.
    """

    def __init__(self, write: Callable[[T], Any], done: Callable[[Any], None],
                 depth: int = 1, flush: Callable[[], Any] | None = None) -> None:
        self.write = write
        self.done = done
        self.flush = flush
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="incident-import-writer",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            batch = self.queue.get()
            if self.stop.is_set():
                return
            try:
                if batch is _DONE:
                    if self.flush is not None:
                        self.done(self.flush())
                    return
                self.done(self.write(batch))
            except BaseException as exc:  # handed to the caller
                self.error = exc
                self.stop.set()
                return

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, batch: T) -> None:
        """Queue ``batch`` (waits while ``depth`` batches are waiting)."""
        while True:
            self._raise()
            try:
                self.queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                if not self.thread.is_alive():
                    self._raise()
                    raise RuntimeError("the import's writer thread stopped") from None

    def close(self) -> None:
        """Wait until every batch is written; raise the error of a write, if any."""
        if self.thread.is_alive():
            self.submit(_DONE)  # type: ignore[arg-type]
            self.thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop after the write in progress (nothing queued is written) and wait for it."""
        self.stop.set()
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.queue.get_nowait()
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_DONE)
            self.thread.join(timeout=0.1)
