"""Intake: checked incidents -> grid, responsible worker, due time -> stored with their events.

:func:`register_many` takes a batch of :class:`~geo.incidents.schema.IncidentIn`
(one for REST and Open311, thousands for a bulk import) and, set-based:

1. checks the categories against the category table (one query) and converts
   the coordinates to WGS-84 (vectorised per CRS);
2. finds the grid with the assignment index (``geo.index``): the finest current
   grid covering the point (the boundary rule of :mod:`geo.assign`). A point
   outside every grid goes to the nearest grid when it is within
   ``settings.snap_tolerance_m`` (``snapped_m`` records the distance); beyond, it
   is kept without a grid, with ``unassigned_reason``. A point outside every grid
   that lands inside one when lon and lat are swapped is refused as swapped;
3. chooses the worker at ``reported_at`` by the fallback chain of
   :mod:`geo.incidents.responsible` and records the ``rule``; ``due_at`` is
   ``reported_at`` plus the category's SLA hours;
4. writes the batch and its events in one statement. Registration writes an
   event ``None -> registered`` (actor, grid, rule, worker, snapping); when a
   worker was found and ``settings.auto_dispatch`` is on (the default) the
   incident is dispatched to them on intake: status ``dispatched``, a second
   event ``registered -> dispatched``. Without a worker it stays ``registered``
   in the dispatcher's queue (``GET /api/v1/incidents?unassigned=true``);
5. links duplicate candidates (:func:`geo.incidents.duplicates.link_candidates`).

Idempotency: ``(source, external_id)`` and ``idempotency_key`` are unique. A
retry (or a repeat inside the batch) creates nothing and answers the incident
already stored, with ``created`` False; concurrent retries are safe (``INSERT
… ON CONFLICT DO NOTHING``, then the existing row is read).

Grids are the *current* ones even for old ``reported_at`` (history is not
replayed); the roster is the current one, read at ``reported_at``'s time of week.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents import duplicates, responsible
from geo.incidents.placing import Index, Placed, place, screen
from geo.incidents.responsible import ChainLink, RosterView, WorkerChoice
from geo.incidents.schema import IncidentIn
from geo.settings import Settings
from geo.store import incidents as store

OnReject = Callable[[IncidentIn, InvalidInput], None]
__all__ = ["GridRef", "Index", "OnReject", "Registered", "Roster", "RosterCache", "WorkerRef",
           "register", "register_many", "screen"]


@dataclass(frozen=True)
class GridRef:
    """The incident's grid and its chain, coarsest first (street ... grid)."""

    code: str
    name: str | None
    level: str | None
    chain: tuple[ChainLink, ...]


@dataclass(frozen=True)
class WorkerRef:
    """The responsible worker."""

    id: int
    code: str
    name: str


@dataclass(frozen=True)
class Registered:
    """The outcome of registering one incident (``created`` False: it already existed)."""

    id: int
    created: bool
    status: str
    category: str
    source: str
    external_id: str | None
    idempotency_key: str | None
    lon: float
    lat: float
    crs: str
    reported_at: dt.datetime
    due_at: dt.datetime | None
    grid: GridRef | None
    worker: WorkerRef | None
    rule: str | None
    snapped_m: float | None
    unassigned_reason: str | None
    candidate_of: int | None
    row: int | None = None
    #: For a retry (``created`` False): the key it was found by, ``external_id`` or
    #: ``Idempotency-Key`` (None: a repeat inside one batch).
    found_by: str | None = None


# --------------------------------------------------------------------------- registration

def _representatives(items: Sequence[IncidentIn]) -> list[int]:
    """For each item, the first item of the batch with the same external id or key."""
    by_external: dict[tuple[str, str], int] = {}
    by_key: dict[str, int] = {}
    reps: list[int] = []
    for i, item in enumerate(items):
        ext = (item.source, item.external_id) if item.external_id is not None else None
        rep = by_external.get(ext) if ext is not None else None
        if rep is None and item.idempotency_key is not None:
            rep = by_key.get(item.idempotency_key)
        rep = i if rep is None else rep
        if ext is not None:
            by_external.setdefault(ext, rep)
        if item.idempotency_key is not None:
            by_key.setdefault(item.idempotency_key, rep)
        reps.append(rep)
    return reps


class _Chains:
    """Grid chains from the index, one lookup per code."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.cache: dict[str, tuple[ChainLink, ...]] = {}
        self.refs: dict[str, GridRef] = {}

    def __call__(self, code: str | None) -> tuple[ChainLink, ...]:
        if code is None:
            return ()
        if code not in self.cache:
            try:
                self.cache[code] = tuple((c, n, lv) for c, n, lv in self.index.chain(code))
            except NotFound:  # not a current grid (any more)
                self.cache[code] = ()
        return self.cache[code]

    def ref(self, code: str | None) -> GridRef | None:
        if code is None:
            return None
        ref = self.refs.get(code)
        if ref is None:  # GridRef is frozen: one per code is shared by its incidents
            chain = self(code)
            last = chain[-1] if chain and chain[-1][0] == code else None
            ref = self.refs[code] = GridRef(code=code, name=last[1] if last else None,
                                            level=last[2] if last else None, chain=chain)
        return ref


class Roster:
    """Reads the roster the rules need: each call asks the database (see :class:`RosterCache`)."""

    def duties_on(self, session: Session, codes: Sequence[str]) -> Mapping[str, Any]:
        """Duties by grid code (:func:`geo.store.incidents.duties_on`)."""
        return store.duties_on(session, codes)

    def street_workers(self, session: Session, streets: Sequence[str]) -> Mapping[str, Any]:
        """Street workers by street (:func:`geo.store.incidents.street_workers`)."""
        return store.street_workers(session, streets)

    def view(self, session: Session, codes: Sequence[str]) -> RosterView:
        """A view with the duties of ``codes`` (their grids and communities)."""
        return RosterView(duties=self.duties_on(session, codes))


class RosterCache(Roster):
    """The roster read once for a whole import: every duty at the first call, each street's
    workers at the first call that needs them (the import's transaction sees no roster
    change meanwhile unless it makes one)."""

    def __init__(self) -> None:
        self.duties: dict[str, Any] | None = None
        self.streets: dict[str, Any] = {}
        self.complete = False
        self.kept: RosterView | None = None

    def view(self, session: Session, codes: Sequence[str]) -> RosterView:
        """One view for the whole import (its duty order and week masks are kept)."""
        if self.kept is None:
            self.kept = RosterView(duties=self.duties_on(session, codes), frozen=True)
        return self.kept

    def preload(self, session: Session, streets: Sequence[str]) -> None:
        """Read every duty and the workers of ``streets`` now; later calls read nothing
        (a street not among them has no workers)."""
        self.duties = store.duties_on(session, None)
        self.streets = dict(store.street_workers(session, sorted(set(streets))))
        self.complete = True

    def duties_on(self, session: Session, codes: Sequence[str]) -> Mapping[str, Any]:
        """Every duty, read at the first call."""
        if self.duties is None:
            self.duties = store.duties_on(session, None)
        return self.duties

    def street_workers(self, session: Session, streets: Sequence[str]) -> Mapping[str, Any]:
        """The workers of ``streets``, each street read once."""
        missing = [s for s in streets if s not in self.streets]
        if missing and not self.complete:
            self.streets.update(store.street_workers(session, missing))
        return self.streets


def _choose(session: Session, placed: Sequence[Placed], at: Sequence[dt.datetime],
            chains: _Chains, settings: Settings, roster: Roster | None = None
            ) -> list[WorkerChoice]:
    roster = roster or Roster()
    links = [chains(p.grid) for p in placed]
    places = responsible.communities_and_streets(links)
    codes = {p.grid for p in placed if p.grid} | {c for c, _ in places if c}
    view = roster.view(session, sorted(codes))

    def run(ks: Sequence[int]) -> list[WorkerChoice]:
        return responsible.choose_workers(
            view, [placed[k].grid for k in ks], [links[k] for k in ks],
            [placed[k].lon for k in ks], [placed[k].lat for k in ks], [at[k] for k in ks],
            [placed[k].item.category for k in ks], settings.tz)

    choices = run(range(len(placed)))
    again = [k for k, c in enumerate(choices) if c.rule == "none" and places[k][1] is not None]
    if again:  # only now read the street workers (rule 4), for these streets only
        view.street_workers = roster.street_workers(
            session, sorted({street for k in again if (street := places[k][1]) is not None}))
        for k, choice in zip(again, run(again), strict=True):
            choices[k] = choice
    return choices


def register_many(session: Session, items: Sequence[IncidentIn], *, actor: str,
                  settings: Settings, index: Index, now: dt.datetime | None = None,
                  on_reject: OnReject | None = None,
                  roster: Roster | None = None) -> list[Registered]:
    """Register a batch of incidents (see the module docstring), in the caller's transaction.

    Parameters
    ----------
    session : Session
    items : sequence of IncidentIn
        Checked by :func:`geo.incidents.schema.validate_incident`.
    actor : str
        Who registers (stored on the events).
    settings : Settings
        Snap tolerance, time zone, ``auto_dispatch``, the duplicate rule.
    index : AssignmentIndex
        Usually ``geo.index_cache.index_for_intake(session)``, which also holds the
        grids' shared lock so that a plan apply cannot retire its grids unseen.
    now : datetime, optional
        The time of items without ``reported_at`` (default: the clock).
    on_reject : callable, optional
        ``on_reject(item, error)`` for each refused item (see :func:`screen`),
        which is then skipped. Without it the first refusal is raised.
    roster : Roster, optional
        Where the duties and street workers come from (a :class:`RosterCache`
        for a bulk import; by default the database, at each call).

    Returns
    -------
    list of Registered
        One per item that was not refused, in input order.

    Raises
    ------
    InvalidInput
        A refused item when ``on_reject`` is not given (nothing is written).
    """
    if not items:
        return []
    clock = now if now is not None else dt.datetime.now(dt.UTC)
    placed: list[Placed] = []
    for outcome, item in zip(place(session, items, index, settings), items, strict=True):
        if isinstance(outcome, InvalidInput):
            if on_reject is None:
                raise outcome
            on_reject(item, outcome)
        else:
            placed.append(outcome)
    if not placed:
        return []
    reps = _representatives([p.item for p in placed])
    fresh = sorted(set(reps))
    chains = _Chains(index)
    at = [placed[k].item.reported_at or clock for k in fresh]
    choices = _choose(session, [placed[k] for k in fresh], at, chains, settings, roster)
    rows = _rows(placed, fresh, at, choices, settings)
    written = store.insert_incidents(session, rows, actor=actor)
    new_ids = [i for i, created in written if created]
    candidates: dict[int, int] = {}
    if new_ids and duplicates.link_candidates(session, new_ids, settings):
        candidates = store.candidate_links(session, new_ids)
    by_fresh: dict[int, Registered] = {}
    lost = [k for k, (_, created) in zip(fresh, written, strict=True) if not created]
    existing = _existing(session, {k: placed[k].item for k in lost}, chains)
    for j, k in enumerate(fresh):
        incident_id, created = written[j]
        if created:
            by_fresh[k] = _new(placed[k], incident_id, rows, j, choices[j], chains,
                               candidates.get(incident_id))
        else:
            by_fresh[k] = existing[k]
    return [by_fresh[rep] if rep == k else _replay(by_fresh[rep], placed[k].item.row)
            for k, rep in enumerate(reps)]


def register(session: Session, item: IncidentIn, *, actor: str, settings: Settings,
             index: Index, now: dt.datetime | None = None) -> Registered:
    """Register one incident: :func:`register_many` of one (refusals are raised)."""
    return register_many(session, [item], actor=actor, settings=settings, index=index,
                         now=now)[0]


def _rows(placed: Sequence[Placed], fresh: Sequence[int], at: Sequence[dt.datetime],
          choices: Sequence[WorkerChoice], settings: Settings) -> store.NewRows:
    sel = [placed[k] for k in fresh]
    dispatch = settings.auto_dispatch
    return store.NewRows(
        source=[p.item.source for p in sel],
        external_id=[p.item.external_id for p in sel],
        idempotency_key=[p.item.idempotency_key for p in sel],
        category_code=[p.item.category for p in sel],
        description=[p.item.description for p in sel],
        reporter=[p.item.reporter for p in sel],
        lon=[p.lon for p in sel], lat=[p.lat for p in sel],
        input_crs=[p.item.crs for p in sel],
        input_lon=[None if p.item.crs == "wgs84" else p.item.lon for p in sel],
        input_lat=[None if p.item.crs == "wgs84" else p.item.lat for p in sel],
        grid_code=[p.grid for p in sel],
        worker_id=[c.worker_id for c in choices],
        rule=[c.rule for c in choices],
        snapped_m=[p.snapped_m for p in sel],
        unassigned_reason=[p.unassigned_reason or (c.reason if c.worker_id is None else None)
                           for p, c in zip(sel, choices, strict=True)],
        status=["dispatched" if dispatch and c.worker_id is not None else "registered"
                for c in choices],
        reported_at=list(at),
        due_at=[due_at(t, p.sla_hours) for p, t in zip(sel, at, strict=True)],
        attrs=[store.json_text(p.item.attrs) for p in sel],
    )


def due_at(reported_at: dt.datetime, sla_hours: float) -> dt.datetime:
    """``sla_hours`` of elapsed time after ``reported_at``, in its time zone. Python adds a
    timedelta to an aware time on its wall clock, which is an hour off across a DST change."""
    utc = reported_at.astimezone(dt.UTC) + dt.timedelta(hours=sla_hours)
    return utc.astimezone(reported_at.tzinfo)


def _new(placed: Placed, incident_id: int, rows: store.NewRows, j: int, choice: WorkerChoice,
         chains: _Chains, candidate_of: int | None) -> Registered:
    item = placed.item
    worker = None
    if choice.worker_id is not None:
        worker = WorkerRef(choice.worker_id, choice.worker_code or "", choice.worker_name or "")
    return Registered(
        id=incident_id, created=True, status=rows.status[j], category=item.category,
        source=item.source, external_id=item.external_id,
        idempotency_key=item.idempotency_key, lon=placed.lon, lat=placed.lat, crs=item.crs,
        reported_at=rows.reported_at[j], due_at=rows.due_at[j], grid=chains.ref(placed.grid),
        worker=worker, rule=choice.rule, snapped_m=placed.snapped_m,
        unassigned_reason=rows.unassigned_reason[j], candidate_of=candidate_of, row=item.row)


def _existing(session: Session, items: dict[int, IncidentIn],
              chains: _Chains) -> dict[int, Registered]:
    """The stored incidents that the retried ``items`` (by position) clashed with."""
    if not items:
        return {}
    found = store.find_existing(
        session, [(i.source, i.external_id) for i in items.values() if i.external_id is not None],
        [i.idempotency_key for i in items.values() if i.idempotency_key is not None])
    ids: dict[int, int] = {}
    found_by: dict[int, str] = {}
    for k, item in items.items():
        hit = found.by_external.get((item.source, item.external_id)) \
            if item.external_id is not None else None
        by_key = found.by_key.get(item.idempotency_key) \
            if item.idempotency_key is not None else None
        if hit is not None and by_key is not None and hit != by_key:
            raise Conflict(f"Idempotency-Key {item.idempotency_key!r} belongs to incident "
                           f"{by_key}, but external_id {item.external_id!r} to incident {hit}",
                           field="Idempotency-Key", value=item.idempotency_key,
                           valid="the key and external_id of one report (a retry repeats "
                                 "both), or new ones for a new report",
                           extra={"incident_id": by_key, "external_id_incident": hit})
        found_by[k] = "external_id" if hit is not None else "Idempotency-Key"
        hit = hit if hit is not None else by_key
        if hit is None:
            raise Conflict("a concurrent registration of the same incident did not finish; "
                           "retry", field="external_id", value=item.external_id,
                           valid="a retry of the same request")
        ids[k] = hit
        if by_key is None and item.idempotency_key is not None:
            store.keep_idempotency_key(session, hit, item.idempotency_key)
    rows = store.summaries(session, list(ids.values()))
    return {k: replace(_stored(rows[hit], chains, items[k].row), found_by=found_by[k])
            for k, hit in ids.items()}


def _stored(r: dict[str, Any], chains: _Chains, row: int | None) -> Registered:
    worker = None
    if r["worker_id"] is not None:
        worker = WorkerRef(int(r["worker_id"]), r["worker_code"], r["worker_name"])
    return Registered(
        id=int(r["id"]), created=False, status=r["status"], category=r["category_code"],
        source=r["source"], external_id=r["external_id"], idempotency_key=r["idempotency_key"],
        lon=float(r["lon"]), lat=float(r["lat"]), crs=r["input_crs"],
        reported_at=r["reported_at"], due_at=r["due_at"], grid=chains.ref(r["grid_code"]),
        worker=worker, rule=r["rule"], snapped_m=r["snapped_m"],
        unassigned_reason=r["unassigned_reason"], candidate_of=r["candidate_of"], row=row)


def _replay(first: Registered, row: int | None) -> Registered:
    """A repeat inside the batch: the same incident, not created by this item."""
    return replace(first, created=False, row=row)
