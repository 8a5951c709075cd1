"""Duplicate candidates and merging.

Rule
----
A new incident is linked (``candidate_of``) to an *open* incident (status not
``closed``, ``rejected`` or ``duplicate``) of the **same category** that lies
within ``settings.duplicate_radius_m`` metres (geodesic, on the WGS-84
spheroid) and was reported within ``settings.duplicate_window_h`` hours of it,
before or after. Nothing is dropped: the new incident keeps its own grid,
worker and status; the link only shows a dispatcher that it may be the same
matter. Among several matches the link goes to the first report: incidents
that are not themselves candidates first, then the earliest ``reported_at``,
then the smallest id. Within one batch a new incident links only to an
earlier one of the batch (by ``reported_at``, then id), so two new reports never
point at each other. A new incident already linked keeps its link. When the
target is rejected the links to it are dropped (``loop.change_status``), also
those written while the rejection was under way (:func:`follow_targets`).

Merging
-------
``merge(duplicate, into)`` is the dispatcher's decision: the duplicate's status
becomes ``duplicate`` (allowed from ``registered``, ``dispatched`` and
``accepted``), ``duplicate_of`` points at ``into``, it is closed, and both
incidents get an event. ``into`` may be in any status but ``rejected`` and
``duplicate`` (merge into the incident it duplicates instead). Candidates and
duplicates of the merged incident are moved to ``into``, so links stay one
level deep.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents.loop import (
    ALLOWED,
    OPEN_STATUSES,
    TransitionNotAllowed,
    check_version,
    lock_incident,
    record_event,
)
from geo.settings import Settings
from geo.store.models import Incident

# One statement: every new incident picks its first matching open incident, then
# is linked to it. The category + reported_at index narrows the candidates, the box
# (a little larger than the radius) lets the spatial index help, and ST_DWithin on
# geography is the exact test in metres.
_LINK = text("""
WITH fresh AS (
    SELECT id, category_code, reported_at, geom
      FROM incident
     WHERE id = ANY(CAST(:ids AS bigint[]))
       AND candidate_of IS NULL AND duplicate_of IS NULL
       AND status = ANY(CAST(:open AS text[]))
), pick AS (
    SELECT f.id, m.id AS target
      FROM fresh f
      CROSS JOIN LATERAL (
        SELECT o.id
          FROM incident o
         WHERE o.category_code = f.category_code
           AND o.id <> f.id
           AND o.status = ANY(CAST(:open AS text[]))
           AND o.reported_at BETWEEN f.reported_at - make_interval(secs => :window_s)
                                 AND f.reported_at + make_interval(secs => :window_s)
           AND o.geom && ST_Expand(
                   f.geom,
                   :radius_m / (110000.0 * greatest(cos(radians(ST_Y(f.geom))), 0.01)),
                   :radius_m / 110000.0)
           AND ST_DWithin(o.geom::geography, f.geom::geography, :radius_m)
           AND (o.id <> ALL(CAST(:ids AS bigint[]))
                OR (o.reported_at, o.id) < (f.reported_at, f.id))
         ORDER BY (o.candidate_of IS NOT NULL), o.reported_at, o.id
         LIMIT 1
      ) AS m
)
UPDATE incident AS i
   SET candidate_of = pick.target
  FROM pick
 WHERE i.id = pick.id
   AND i.id = ANY(CAST(:ids AS bigint[]))
""")


def link_candidates(session: Session, new_ids: Sequence[int], settings: Settings) -> int:
    """Link new incidents to the open incidents they may duplicate (one statement).

    Parameters
    ----------
    session : Session
        The intake's transaction.
    new_ids : sequence of int
        Ids of the incidents just registered.
    settings : Settings
        ``duplicate_radius_m`` and ``duplicate_window_h``.

    Returns
    -------
    int
        How many of them were linked.
    """
    ids = sorted({int(i) for i in new_ids})
    if not ids or settings.duplicate_radius_m <= 0 or settings.duplicate_window_h <= 0:
        return 0
    result = session.execute(_LINK, {
        "ids": ids, "open": list(OPEN_STATUSES), "radius_m": float(settings.duplicate_radius_m),
        "window_s": float(settings.duplicate_window_h) * 3600.0})
    linked = int(getattr(result, "rowcount", 0) or 0)
    if linked:
        follow_targets(session, ids)
    return linked


# A link's target merged away or rejected while the link was written (the link's foreign
# key check waited for that change to commit; this statement sees it): link to the
# survivor of a merge, so that links stay one level deep, and drop a link to a rejected
# incident or to one merged into the new incident itself.
_FOLLOW_TARGETS = text("""
UPDATE incident AS n
   SET candidate_of = CASE WHEN t.status = 'duplicate' THEN nullif(t.duplicate_of, n.id) END
  FROM incident AS t
 WHERE n.id = ANY(CAST(:ids AS bigint[])) AND t.id = n.candidate_of
   AND (t.status = 'rejected' OR (t.status = 'duplicate' AND t.duplicate_of IS NOT NULL))""")


def follow_targets(session: Session, ids: Sequence[int]) -> int:
    """Re-point the duplicate links of the new incidents ``ids`` whose target was merged
    (to the survivor) or rejected (no link) by a transaction their link waited for.

    Returns how many links changed.
    """
    result = session.execute(_FOLLOW_TARGETS, {"ids": sorted({int(i) for i in ids})})
    return int(getattr(result, "rowcount", 0) or 0)


# Every row a merge changes, locked in id order in one statement before anything changes:
# merges that share an incident (the same pair, a chain, a cycle, two duplicates into one
# incident) then wait for each other instead of deadlocking.
_MERGED_ROWS = """
SELECT id FROM incident
 WHERE id IN (:duplicate, :into) OR candidate_of = :duplicate OR duplicate_of = :duplicate"""
_LOCK_MERGE = text(_MERGED_ROWS + " ORDER BY id FOR UPDATE")
_MERGE_ROWS = text(_MERGED_ROWS)


class _Relock(Exception):
    """The rows linked to the duplicate changed while its merge waited for them."""


def _lock_merged_rows(session: Session, duplicate_id: int, into_id: int) -> None:
    """Lock the rows of a merge in id order. The set is read before the wait: a merge that
    committed meanwhile may have linked more rows to the duplicate. Once the duplicate is
    locked nothing more can be linked to it, so read the set again and, when it grew, give
    the locks back (a savepoint) and take the new set in order."""
    params = {"duplicate": duplicate_id, "into": into_id}
    for _ in range(5):
        try:
            with session.begin_nested():
                held = set(session.scalars(_LOCK_MERGE, params))
                if not set(session.scalars(_MERGE_ROWS, params)) - held:
                    return
                raise _Relock
        except _Relock:
            continue


def _lock_pair(session: Session, duplicate_id: int, into_id: int) -> tuple[Incident, Incident]:
    _lock_merged_rows(session, duplicate_id, into_id)
    first, second = sorted((duplicate_id, into_id))
    locked: dict[int, Incident] = {}
    for incident_id in (first, second):
        try:
            locked[incident_id] = lock_incident(session, incident_id)
        except NotFound as exc:
            if incident_id == into_id:  # name the body's field, not the path's
                exc.field, exc.valid = "into", "the id of the incident this one repeats"
            raise
    return locked[duplicate_id], locked[into_id]


def merge(session: Session, duplicate_id: int, into_id: int, *, actor: str,
          note: str | None = None, expected_version: int | None = None,
          at: dt.datetime | None = None) -> Incident:
    """Merge ``duplicate_id`` into ``into_id`` (see the module docstring).

    Parameters
    ----------
    session : Session
    duplicate_id : int
        The incident that repeats another one.
    into_id : int
        The incident it repeats.
    actor : str
        Who merged (stored on both events).
    note : str, optional
        Why (at most 2000 characters).
    expected_version : int, optional
        The version of the duplicate the caller last read.
    at : datetime, optional
        When (timezone-aware); now by default.

    Returns
    -------
    Incident
        The merged (now ``duplicate``) incident.

    Raises
    ------
    InvalidInput, NotFound, StaleVersion, TransitionNotAllowed, Conflict
    """
    if not isinstance(into_id, int) or isinstance(into_id, bool) or into_id == duplicate_id:
        raise InvalidInput(f"into {into_id!r} cannot be merged into by incident {duplicate_id}",
                           field="into", value=into_id,
                           valid="the id of another incident, the one this one repeats")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise InvalidInput("note must be a text of at most 2000 characters", field="note",
                           value=str(note)[:80], valid="a text of at most 2000 characters")
    duplicate, into = _lock_pair(session, duplicate_id, into_id)
    check_version(duplicate, expected_version)
    if "duplicate" not in ALLOWED[duplicate.status]:
        raise TransitionNotAllowed(
            f"incident {duplicate.id} is {duplicate.status}: it can no longer be merged",
            field="status", value="duplicate",
            valid="an incident that is registered, dispatched or accepted",
            extra={"from": duplicate.status, "allowed": list(ALLOWED[duplicate.status]),
                   "version": duplicate.version})
    if into.status in ("duplicate", "rejected"):
        hint = (f"incident {into.duplicate_of} (the one it duplicates)"
                if into.duplicate_of is not None else "an incident that is not rejected")
        raise Conflict(f"incident {into.id} is {into.status}: merge into {hint}", field="into",
                       value=into.id, valid=hint,
                       extra={"into_status": into.status, "duplicate_of": into.duplicate_of})
    from_status = duplicate.status
    duplicate.status = "duplicate"
    duplicate.duplicate_of = into.id
    duplicate.version = duplicate.version + 1
    duplicate.closed_at = at if at is not None else func.now()
    session.flush()
    into.version = into.version + 1  # it changed too: its candidates and its event
    if into.candidate_of == duplicate.id:  # it is the survivor now, no longer a candidate
        into.candidate_of = None
    moved = _repoint(session, duplicate.id, into.id)
    text_note = (note.strip() or None) if note else None
    record_event(session, duplicate.id, actor=actor, from_status=from_status,
                 to_status="duplicate", note=text_note,
                 data={"kind": "merge", "merged_into": into.id, "version": duplicate.version},
                 at=at)
    record_event(session, into.id, actor=actor, from_status=into.status, to_status=into.status,
                 note=text_note, data={"kind": "merge", "merged": duplicate.id,
                                       "category": duplicate.category_code,
                                       "version": into.version, **moved}, at=at)
    session.flush()
    session.refresh(duplicate)
    return duplicate


def _repoint(session: Session, old: int, new: int) -> dict[str, list[int]]:
    candidates = session.scalars(
        update(Incident).where(Incident.candidate_of == old, Incident.id != new)
        .values(candidate_of=new).returning(Incident.id)).all()
    duplicates = session.scalars(
        update(Incident).where(Incident.duplicate_of == old, Incident.id != new)
        .values(duplicate_of=new).returning(Incident.id)).all()
    out: dict[str, list[int]] = {}
    if candidates:
        out["moved_candidates"] = sorted(candidates)
    if duplicates:
        out["moved_duplicates"] = sorted(duplicates)
    return out


@dataclass(frozen=True)
class Related:
    """An incident linked to another: as its candidate, the one it may repeat, or merged."""

    id: int
    relation: str  # 'candidate_of' | 'candidate' | 'merged'
    status: str
    category_code: str
    reported_at: dt.datetime
    lon: float
    lat: float
    grid_code: str | None
    worker_id: int | None
    description: str | None
    distance_m: float
    minutes_apart: float


_RELATED = text("""
SELECT o.id, o.status, o.category_code, o.reported_at, ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat,
       o.grid_code, o.worker_id, o.description,
       CASE WHEN o.id = i.candidate_of THEN 'candidate_of'
            WHEN o.duplicate_of = i.id THEN 'merged'
            ELSE 'candidate' END AS relation,
       ST_Distance(o.geom::geography, i.geom::geography) AS distance_m,
       EXTRACT(EPOCH FROM (o.reported_at - i.reported_at)) / 60.0 AS minutes_apart
  FROM incident i
  JOIN incident o
    ON o.id <> i.id AND (o.id = i.candidate_of OR o.candidate_of = i.id OR o.duplicate_of = i.id)
 WHERE i.id = :id
 ORDER BY o.id = i.candidate_of DESC, o.reported_at, o.id
""")


def related(session: Session, incident_id: int) -> list[Related]:
    """The incidents linked to ``incident_id``: the one it may repeat, its candidates, merged.

    Raises
    ------
    NotFound
        When there is no such incident.
    """
    exists = session.scalar(select(Incident.id).where(Incident.id == incident_id))
    if exists is None:
        lock_incident(session, incident_id)  # raises NotFound with the usual message
    rows = session.execute(_RELATED, {"id": incident_id}).mappings()
    return [Related(id=r["id"], relation=r["relation"], status=r["status"],
                    category_code=r["category_code"], reported_at=r["reported_at"],
                    lon=float(r["lon"]), lat=float(r["lat"]), grid_code=r["grid_code"],
                    worker_id=r["worker_id"], description=r["description"],
                    distance_m=float(r["distance_m"]), minutes_apart=float(r["minutes_apart"]))
            for r in rows]


__all__ = ["Related", "follow_targets", "link_candidates", "merge", "related"]
