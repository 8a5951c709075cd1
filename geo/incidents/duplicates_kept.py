"""What a bulk import keeps in memory for its duplicate search: the open incidents it may
link to, per category, sorted by report time.

:func:`geo.incidents.duplicates_batch.match` matches each batch against the open
incidents of its time windows. Reading those from the database for every batch
made an import of a file far from time order quadratic: every batch spans the
year, so every batch read (or scanned, to filter out) all the rows the import had
already written (100k shuffled rows: 12 s of duplicate search instead of 0.5 s
sorted; 1M rows did not finish in 9 minutes). :class:`ImportedRows` instead keeps

- the import's own rows, added as each batch is written, and
- the incidents stored before the import began (ids below the first id the import
  reserved, ``floor``), read once per stretch of time: a batch reads only the parts
  of its windows that no earlier batch read (:meth:`ImportedRows.read`).

So every stored incident is read at most once per import, and none of the
import's own rows is read back. Caveat, as for any two uncommitted transactions:
an incident another transaction stores while the import runs (with an id above
``floor``, or in a stretch already read) is not seen, as that transaction's own
intake does not see the import's rows; candidate links are advice, nothing is
lost.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.loop import OPEN_STATUSES

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The time range drives (each stretch is read once); status and id only filter: left to
# itself the planner ANDs in the status index, whose open part is every row the import
# wrote, which made each read scan them all again.
_BEFORE = text("""
WITH near AS MATERIALIZED (
    SELECT o.id, o.category_code, o.reported_at, o.geom, o.candidate_of, o.status
      FROM unnest(CAST(:lo AS timestamptz[]), CAST(:hi AS timestamptz[])) AS r(lo, hi)
      JOIN incident o ON o.reported_at >= r.lo AND o.reported_at < r.hi
)
SELECT id, category_code, (EXTRACT(EPOCH FROM reported_at) * 1000000)::int8 AS us,
       ST_X(geom) AS lon, ST_Y(geom) AS lat, candidate_of IS NOT NULL AS child
  FROM near
 WHERE status = ANY(CAST(:open AS text[])) AND id < :floor
 LIMIT :cap
""")

_NO_SEQSCAN = text("SET LOCAL enable_seqscan = off")
_SEQSCAN_BACK = text("RESET enable_seqscan")

Arrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64],
               NDArray[np.float64], NDArray[np.bool_]]


class ImportedRows:
    """The incidents an import may link its new rows to (see the module docstring).

    ``floor``: the smallest id the import reserved (set by the importer before the first
    :meth:`read`). ``by_category``: per category, a few *runs*, each the arrays (report
    time in microseconds, id, lon, lat, child) of some kept incidents sorted by time;
    ``child`` says the incident is a candidate of another one. A batch is added as a new
    run, and the last two runs are merged while the older one is at most twice as long
    (so each run is at least twice as long as the next, a category has at most about
    log2(rows / batch) runs, and each row is copied that many times). Merging every batch
    into one array instead copied all the kept rows once per batch: quadratic in the file
    (3 s of the 1M-row import, 80 s at 5M).
    """

    def __init__(self) -> None:
        self.floor: int | None = None
        self.by_category: dict[str, list[Arrays]] = {}
        #: Sorted, disjoint ``[start, end)`` stretches (microseconds) already read.
        self._read: list[tuple[int, int]] = []

    def add(self, ids: Sequence[int], categories: Sequence[str], us: NDArray[np.int64],
            lon: Sequence[float], lat: Sequence[float], child: Sequence[bool]) -> None:
        """Keep incidents: ids, categories, report times (microseconds), points, and
        whether each is a candidate of another incident."""
        a_id, a_lon = np.asarray(ids, np.int64), np.asarray(lon, np.float64)
        a_lat, a_child = np.asarray(lat, np.float64), np.asarray(child, bool)
        for cat, sel in _groups(categories).items():
            order = sel[np.argsort(us[sel], kind="stable")]
            runs = self.by_category.setdefault(cat, [])
            runs.append((us[order], a_id[order], a_lon[order], a_lat[order], a_child[order]))
            while len(runs) >= 2 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
                newer = runs.pop()
                runs[-1] = _merge(runs[-1], newer)

    def keep(self, rows: Sequence[Any]) -> None:
        """Keep rows that :meth:`read` returned (the stored incidents of some stretches)."""
        if rows:
            self.add([r.id for r in rows], [r.category_code for r in rows],
                     np.fromiter((r.us for r in rows), np.int64, len(rows)),
                     [r.lon for r in rows], [r.lat for r in rows], [r.child for r in rows])

    def read(self, session: Session, lo: NDArray[np.int64], hi: NDArray[np.int64], *,
             cap: int) -> list[Any] | None:
        """The open incidents stored before the import (ids below ``floor``) in the parts
        of the windows ``[lo, hi]`` (microseconds, sorted and disjoint) not read yet, for
        :meth:`keep`; None (nothing read) when they are more than ``cap``.

        The stretches are recorded as read, so the bookkeeping of what was read
        (:meth:`read`, one thread) and the kept rows (:meth:`keep`, :meth:`add`,
        :meth:`near`, maybe another thread, in the same order) stay apart.
        """
        gaps = self._gaps([(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True)])
        if not gaps:
            return []
        # The import's own rows are uncommitted, so the table's statistics still describe it
        # as it was (empty, for a first import): left alone the planner scans it whole for
        # every batch, quadratic in the file. The time index is always the right path here.
        session.execute(_NO_SEQSCAN)
        rows = session.execute(_BEFORE, {
            "lo": [_at(a) for a, _ in gaps], "hi": [_at(b) for _, b in gaps],
            "open": list(OPEN_STATUSES), "floor": self.floor if self.floor is not None
            else 2**63 - 1, "cap": cap + 1}).all()
        session.execute(_SEQSCAN_BACK)
        if len(rows) > cap:
            return None
        for gap in gaps:
            self._cover(gap)
        return list(rows)

    def near(self, categories: Sequence[str], us: NDArray[np.int64], w: int, *,
             limit: int | None = None) -> tuple[
            NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64],
            NDArray[np.float64], NDArray[np.bool_]] | None:
        """Pairs (row of a batch, kept incident) of the same category at most ``w``
        microseconds apart: the batch positions, then the kept incidents' id, time, lon,
        lat and child flag, one entry per pair; None, before any is built, when they would
        be more than ``limit``."""
        found: list[tuple[NDArray[np.int64], Arrays, NDArray[np.int64],
                          NDArray[np.int64]]] = []
        total = 0
        for cat, sel in _groups(categories).items():
            t = us[sel]
            for kept in self.by_category.get(cat, ()):
                start = np.searchsorted(kept[0], t - w, side="left")
                counts = np.searchsorted(kept[0], t + w, side="right") - start
                total += int(counts.sum())
                found.append((sel, kept, start, counts))
        if limit is not None and total > limit:
            return None
        parts: list[tuple[NDArray[Any], ...]] = []
        for sel, kept, start, counts in found:
            n = int(counts.sum())
            if n == 0:
                continue
            offsets = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
            at = np.repeat(start, counts) + offsets
            parts.append((np.repeat(sel, counts), kept[1][at], kept[0][at], kept[2][at],
                          kept[3][at], kept[4][at]))
        if not parts:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, bool)
        pf, ids, times, lon, lat, child = (np.concatenate(c) for c in zip(*parts, strict=True))
        return pf, ids, times, lon, lat, child

    def within(self, categories: Sequence[str], lo: int, hi: int) -> tuple[
            list[str], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64],
            NDArray[np.float64], NDArray[np.bool_]]:
        """The kept incidents of ``categories`` reported in ``[lo, hi]`` (microseconds):
        their categories, times, ids, lon, lat and child flags."""
        cats: list[str] = []
        parts: list[tuple[NDArray[Any], ...]] = []
        for cat in sorted(set(categories)):
            for kept in self.by_category.get(cat, ()):
                a = np.searchsorted(kept[0], lo, side="left")
                b = np.searchsorted(kept[0], hi, side="right")
                if b > a:
                    cats += [cat] * int(b - a)
                    parts.append(tuple(k[a:b] for k in kept))
        if not parts:
            empty = np.zeros(0, np.int64)
            return [], empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, bool)
        t, ids, lon, lat, child = (np.concatenate(c) for c in zip(*parts, strict=True))
        return cats, t, ids, lon, lat, child

    def _gaps(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The parts of ``spans`` (sorted, disjoint) not read yet."""
        out: list[tuple[int, int]] = []
        for a, b in spans:
            k = bisect.bisect_right(self._read, (a, 2**63))
            if k and self._read[k - 1][1] > a:
                a = self._read[k - 1][1]
            while a < b:
                if k < len(self._read) and self._read[k][0] < b:
                    if self._read[k][0] > a:
                        out.append((a, self._read[k][0]))
                    a = max(a, self._read[k][1])
                    k += 1
                else:
                    out.append((a, b))
                    break
        return out

    def _cover(self, span: tuple[int, int]) -> None:
        """Record ``span`` as read, merging it with the stretches it touches."""
        a, b = span
        k = bisect.bisect_left(self._read, (a, a))
        if k and self._read[k - 1][1] >= a:
            k -= 1
            a = self._read[k][0]
        j = k
        while j < len(self._read) and self._read[j][0] <= b:
            b = max(b, self._read[j][1])
            j += 1
        self._read[k:j] = [(a, b)]


def _merge(older: Arrays, newer: Arrays) -> Arrays:
    """One run of two (sorted by time; at equal times the older run's rows first)."""
    at = np.searchsorted(older[0], newer[0], side="right")
    return (np.insert(older[0], at, newer[0]), np.insert(older[1], at, newer[1]),
            np.insert(older[2], at, newer[2]), np.insert(older[3], at, newer[3]),
            np.insert(older[4], at, newer[4]))


def _groups(categories: Sequence[str]) -> dict[str, NDArray[np.int64]]:
    """Positions of each category in ``categories``."""
    names, inverse = np.unique(np.asarray(categories, dtype=str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    return {str(name): order[bounds[k]:bounds[k + 1]] for k, name in enumerate(names)}


def _at(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)
