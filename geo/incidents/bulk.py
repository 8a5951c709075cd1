"""Registration of a bulk import, batch by batch: the rules of the intake, written by COPY.

:class:`BulkIntake` registers the batches of one import with the same rules and
the same stored outcome as :func:`geo.incidents.intake.register_many` (grid,
snapping, worker chain, due time, events, duplicate candidates, idempotency),
but is built for a million rows in one transaction:

- the roster is read once per import (:class:`~geo.incidents.intake.RosterCache`),
  not once per batch;
- repeats inside the batch count as duplicates (as in ``register_many``); ids
  for the rows are reserved from the sequence in one statement, and their
  duplicate links are found in memory (:mod:`geo.incidents.duplicates_batch`);
- the incidents and their events are then written by binary ``COPY``
  (:func:`geo.store.incident_copy.copy_incidents`) inside a savepoint, with the
  grid version of each from the index (so the table's trigger is skipped). The
  first COPY takes every key for new, which saves a look-up per batch: the unique
  indexes check it anyway. When one is stored already (an import run again, a
  file overlapping an earlier one), the COPY fails, the savepoint is rolled back,
  the batch's keys (``(source, external_id)`` and idempotency keys) are looked up
  and only the new rows are written, the others counting as duplicates. Should
  a concurrent writer store one of the keys in between, that COPY fails too and
  the batch goes through ``register_many`` (``ON CONFLICT DO NOTHING``) instead;
  nothing is lost or doubled.

Only counts come back (:class:`BatchCounts`), not one answer per row.
:meth:`BulkIntake.prepare` (grid and worker; it reads nothing from the database
once :meth:`BulkIntake.preload` has read the categories and the whole roster) and
:meth:`BulkIntake.write` (everything above) may run in two threads, one batch
apart, as the file import does (``data.incident_pipeline.BackgroundWriter``). There
the writing thread calls :meth:`BulkIntake.write_ahead`, which starts a batch (ids, the
stored incidents of its time windows) and hands its duplicate search to a third
thread, then stores the batch before it, whose search is done by then: the writing
thread, busy with the database most of an import, no longer spends its time on the
search (about a sixth of a 1M-row import). A batch linked to a row that was then not
written (its key was stored meanwhile) is linked again by SQL.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.incidents import duplicates, duplicates_batch
from geo.incidents.duplicates_kept import ImportedRows
from geo.incidents.intake import (
    OnReject,
    Registered,
    RosterCache,
    _Chains,
    _choose,
    _representatives,
    _rows,
    register_many,
)
from geo.incidents.placing import Index, Placed, place
from geo.incidents.responsible import community_and_street
from geo.incidents.schema import IncidentIn
from geo.settings import Settings
from geo.store import incident_copy
from geo.store import incidents as store

#: Stored incidents of a batch's time windows read for its duplicate search: at most
#: ``max(WINDOW_CAP, WINDOW_PER_ROW * new rows)``; more, and the batch is linked by SQL.
WINDOW_CAP = 50_000
WINDOW_PER_ROW = 8


@dataclass
class BatchCounts:
    """What registering batches did (added up over an import)."""

    created: int = 0
    duplicates: int = 0
    unassigned: int = 0
    snapped: int = 0
    no_worker: int = 0
    candidates: int = 0
    events: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    ids: list[int] = field(default_factory=list)

    def add(self, other: BatchCounts) -> None:
        """Add ``other``'s counts (and ids) to these."""
        for name in ("created", "duplicates", "unassigned", "snapped", "no_worker",
                     "candidates", "events"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_rule.update(other.by_rule)
        self.ids.extend(other.ids)

    @classmethod
    def of(cls, results: Sequence[Registered]) -> BatchCounts:
        """The counts of ``register_many``'s answers."""
        out = cls()
        for r in results:
            if not r.created:
                out.duplicates += 1
                continue
            out.created += 1
            out.ids.append(r.id)
            out.by_rule[r.rule or "none"] += 1
            out.unassigned += r.grid is None
            out.snapped += r.grid is not None and r.snapped_m is not None
            out.no_worker += r.worker is None
            out.candidates += r.candidate_of is not None
        return out


@dataclass
class _Prepared:
    """A batch ready to be written: its accepted items, the columns of its new rows and
    their report times in microseconds."""

    items: list[IncidentIn]
    rows: store.NewRows
    us: NDArray[np.int64]


@dataclass
class _Staged:
    """A batch whose ids are reserved and whose duplicate search runs (or ran) in the
    search thread: ``links`` is its answer (None: link by SQL after the COPY)."""

    prepared: _Prepared
    ids: list[int]
    links: Future[dict[int, int] | None]


class BulkIntake:
    """Registers the batches of one import in ``session`` (see the module docstring)."""

    def __init__(self, session: Session, *, actor: str, settings: Settings, index: Index,
                 now: dt.datetime, on_reject: OnReject) -> None:
        self.session = session
        self.actor = actor
        self.settings = settings
        self.index = index
        self.now = now
        self.on_reject = on_reject
        self.roster = RosterCache()
        self.chains = _Chains(index)
        self.fallbacks = 0
        #: Batches whose first COPY met a stored key (then written after a key look-up).
        self.clashes = 0
        self.categories: dict[str, float] | None = None
        #: Grid code -> the version the index was read from (written as ``grid_id``).
        self.grid_ids = {g.code: g.id for g in getattr(index, "grids", ()) if g.id is not None}
        #: Seconds spent per stage, over the import (for logs and the benchmark).
        self.seconds: dict[str, float] = {}
        #: The rows of the import and the stored ones read so far, for the duplicate search
        #: (kept by the search thread; the stretches read by the writing one).
        self.imported = ImportedRows()
        #: Ids reserved for rows that were then not written (stored meanwhile): a batch
        #: linked to one of them is linked again by SQL.
        self.dropped: set[int] = set()
        #: Batches linked by SQL because a target of their search was not written.
        self.relinks = 0
        self.pending: _Staged | None = None
        self.search = ThreadPoolExecutor(max_workers=1,
                                         thread_name_prefix="incident-import-duplicates")

    def register(self, items: Sequence[IncidentIn]) -> BatchCounts:
        """Register ``items`` (refused ones go to ``on_reject``); the counts of the batch."""
        prepared = self.prepare(items)
        return self.write(prepared) if prepared is not None else BatchCounts()

    def preload(self) -> bool:
        """Read the categories and the whole roster now, so that :meth:`prepare` never
        touches the database (and may run while :meth:`write` uses the connection).
        False when the index cannot list its grids (then nothing is preloaded)."""
        grids = getattr(self.index, "grids", None)
        if grids is None:
            return False
        self.categories = store.category_sla(self.session, store.category_codes(self.session))
        streets = {community_and_street(self.chains(g.code))[1] for g in grids}
        self.roster.preload(self.session, [s for s in streets if s is not None])
        return True

    def prepare(self, items: Sequence[IncidentIn]) -> _Prepared | None:
        """Grid, worker, due time and columns of a batch (no writes); None: all refused."""
        clock = _Clock(self.seconds)
        placed: list[Placed] = []
        for outcome, item in zip(place(self.session, items, self.index, self.settings,
                                       categories=self.categories), items, strict=True):
            if isinstance(outcome, InvalidInput):
                self.on_reject(item, outcome)
            else:
                placed.append(outcome)
        clock("place")
        if not placed:
            return None
        fresh = sorted(set(_representatives([p.item for p in placed])))
        at = [placed[k].item.reported_at or self.now for k in fresh]
        choices = _choose(self.session, [placed[k] for k in fresh], at, self.chains,
                          self.settings, self.roster)
        rows = _rows(placed, fresh, at, choices, self.settings)
        clock("worker")
        us = duplicates_batch.micros(rows.reported_at)
        clock("times")
        return _Prepared([p.item for p in placed], rows, us)

    def write(self, prepared: _Prepared) -> BatchCounts:
        """Store a prepared batch now: ids, duplicate links, COPY (see the module docstring).

        The counts of a batch still pending from :meth:`write_ahead` come with it.
        """
        out = self.flush()
        out.add(self._complete(self._stage(prepared)))
        return out

    def write_ahead(self, prepared: _Prepared) -> BatchCounts:
        """Start a batch (its ids, the stored incidents of its time windows, its duplicate
        search in the search thread) and store the one started before it; the counts of
        that one (empty for the first). :meth:`flush` stores the last one.

        So the search of one batch runs while the database writes the one before: the
        writing thread, which the database keeps busy, no longer waits for it.
        """
        staged = self._stage(prepared)
        before, self.pending = self.pending, staged
        return self._complete(before) if before is not None else BatchCounts()

    def flush(self) -> BatchCounts:
        """Store the batch started last by :meth:`write_ahead`, if any; its counts."""
        before, self.pending = self.pending, None
        return self._complete(before) if before is not None else BatchCounts()

    def close(self) -> None:
        """Stop the search thread (after an error, a batch started is not stored)."""
        self.pending = None
        self.search.shutdown(wait=True, cancel_futures=True)

    def _stage(self, prepared: _Prepared) -> _Staged:
        clock = _Clock(self.seconds)
        rows = prepared.rows
        ids = incident_copy.reserve_ids(self.session, len(rows))
        if self.imported.floor is None and ids:
            self.imported.floor = min(ids)
        clock("keys")
        spans = duplicates_batch.windows(prepared.us, self.settings)
        cap = max(WINDOW_CAP, WINDOW_PER_ROW * len(rows))
        stored = [] if spans is None else self.imported.read(self.session, *spans, cap=cap)
        clock("duplicates read")
        return _Staged(prepared, ids, self.search.submit(self._search, prepared, ids, stored))

    def _search(self, prepared: _Prepared, ids: list[int],
                stored: list[Any] | None) -> dict[int, int] | None:
        """The duplicate links of a batch (in the search thread); keeps its rows."""
        clock = _Clock(self.seconds)
        rows = prepared.rows
        links = None
        if stored is not None:
            self.imported.keep(stored)
            links = duplicates_batch.match(ids, rows.category_code, prepared.us, rows.lon,
                                           rows.lat, self.settings, imported=self.imported)
        child = [False] * len(ids) if links is None else [i in links for i in ids]
        self.imported.add(ids, rows.category_code, prepared.us, rows.lon, rows.lat, child)
        clock("duplicates")
        return links

    def _complete(self, staged: _Staged) -> BatchCounts:
        """Write a started batch (see :meth:`write`): the first COPY assumes every key is
        new (the common case: the unique indexes check it anyway); when one clashes, the
        batch's keys are looked up and only the new rows are written; when that clashes
        again (a concurrent writer), the batch goes through ``register_many``."""
        clock = _Clock(self.seconds)
        prepared, rows = staged.prepared, staged.prepared.rows
        links = staged.links.result()
        clock("duplicates wait")
        new, ids = list(range(len(rows))), staged.ids
        for looked_up in (False, True):
            if looked_up:
                new = self._not_stored(rows)
                kept = set(new)
                self.dropped.update(i for j, i in enumerate(staged.ids) if j not in kept)
                ids = [staged.ids[j] for j in new]
                clock("keys")
            if links is not None and self.dropped.intersection(links.values()):
                links = None  # a target was not written after all: SQL links the batch
                self.relinks += 1
            candidate_of = [None] * len(new) if links is None else [links.get(i) for i in ids]
            try:
                with self.session.begin_nested():
                    events = incident_copy.copy_incidents(
                        self.session, rows, new, ids, candidate_of, actor=self.actor,
                        grid_ids=self.grid_ids, clock=clock)
                break
            except incident_copy.KeyClash:
                clock("key clash")
                if looked_up:
                    self.fallbacks += 1
                    self.dropped.update(ids)
                    return BatchCounts.of(register_many(
                        self.session, prepared.items, actor=self.actor,
                        settings=self.settings, index=self.index, now=self.now,
                        roster=self.roster))
                self.clashes += 1
        if links is None:
            relink = duplicates.link_candidates(self.session, ids, self.settings) > 0
        else:  # a target merged or rejected while the COPY waited for it
            linked = [i for i, c in zip(ids, candidate_of, strict=True) if c is not None]
            relink = bool(linked) and duplicates.follow_targets(self.session, linked) > 0
        if relink:
            found = store.candidate_links(self.session, ids)
            candidate_of = [found.get(i) for i in ids]
        out = BatchCounts(created=len(new), duplicates=len(prepared.items) - len(new),
                          events=events, ids=list(ids))
        for j, target in zip(new, candidate_of, strict=True):
            out.by_rule[rows.rule[j]] += 1
            grid = rows.grid_code[j]
            out.unassigned += grid is None
            out.snapped += grid is not None and rows.snapped_m[j] is not None
            out.no_worker += rows.worker_id[j] is None
            out.candidates += target is not None
        return out

    def _not_stored(self, rows: store.NewRows) -> list[int]:
        """Positions of the rows whose external id and idempotency key are not stored yet."""
        external = [(s, e) for s, e in zip(rows.source, rows.external_id, strict=True)
                    if e is not None]
        keys = [k for k in rows.idempotency_key if k is not None]
        found = store.find_existing(self.session, external, keys)
        if not found.by_external and not found.by_key:
            return list(range(len(rows)))
        return [j for j in range(len(rows))
                if (rows.source[j], rows.external_id[j]) not in found.by_external
                and rows.idempotency_key[j] not in found.by_key]


class _Clock:
    """Adds the seconds since the last call to ``seconds[stage]``."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


__all__ = ["WINDOW_CAP", "WINDOW_PER_ROW", "BatchCounts", "BulkIntake"]
