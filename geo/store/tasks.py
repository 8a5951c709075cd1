"""Grab-order patrol tasks in PostGIS: publish, list near a point, claim, cancel, coverage.

Concurrency: a claim is one conditional ``UPDATE … WHERE status = 'open' AND
window_end > now RETURNING``. Under READ COMMITTED a second claimer's UPDATE waits
for the first claimer's transaction and then re-checks the condition on the
committed row, so exactly one claim wins; the losers get a Conflict naming the
winner's claim time. Claims of one worker are serialised by locking the worker's
row, so a worker cannot hold two claimed tasks whose windows overlap.

Tasks whose window is over are *settled* (``open`` -> ``expired``, ``claimed`` ->
``done``) at the start of every call here; reads compute the same status on the
fly, so an answer never shows an open task whose window has passed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound
from geo.store.track_queries import load_points
from geo.tasks import CLAIMER_ROLES, TaskIn, task_coverage

#: The status a task has at ``:now`` (a task whose window is over is expired or done).
_STATUS = """CASE WHEN t.status IN ('open', 'claimed') AND t.window_end <= :now
                  THEN CASE t.status WHEN 'open' THEN 'expired' ELSE 'done' END
                  ELSE t.status END"""

_COLUMNS = """t.id, t.title, t.description, t.kind, t.route_id, r.code AS route_code,
       t.grid_code, t.window_start, t.window_end, """ + _STATUS + """ AS status,
       t.published_at, pu.name AS published_by, t.claimed_by, w.code AS worker_code,
       w.name AS worker_name, t.claimed_at, cu.name AS cancelled_by, t.cancelled_at,
       t.cancel_reason, t.version, t.attrs, ST_AsGeoJSON(t.geom, 7) AS geojson,
       CASE WHEN t.kind = 'route' THEN ST_Length(t.geom::geography)
            ELSE ST_Area(t.geom::geography) END AS size"""

_FROM = """ FROM patrol_task t
  LEFT JOIN patrol_route r ON r.id = t.route_id
  LEFT JOIN app_user pu ON pu.id = t.published_by
  LEFT JOIN app_user cu ON cu.id = t.cancelled_by
  LEFT JOIN worker w ON w.id = t.claimed_by"""

_HERE = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"

_SETTLE = text("""
UPDATE patrol_task t
   SET status = CASE t.status WHEN 'open' THEN 'expired' ELSE 'done' END,
       closed_at = t.window_end
 WHERE t.id IN (SELECT id FROM patrol_task
                 WHERE status IN ('open', 'claimed') AND window_end <= :now
                 ORDER BY id FOR UPDATE SKIP LOCKED)
""")

_CLAIM = text("""
UPDATE patrol_task
   SET status = 'claimed', claimed_by = :worker, claimed_by_user = :user, claimed_at = :now,
       version = version + 1
 WHERE id = :id AND status = 'open' AND window_end > :now
RETURNING id
""")

# The claims of workers made inactive: their tasks whose window is not over open again.
_RELEASE = text("""
UPDATE patrol_task
   SET status = 'open', claimed_by = NULL, claimed_by_user = NULL, claimed_at = NULL,
       version = version + 1
 WHERE status = 'claimed' AND claimed_by = ANY(CAST(:workers AS integer[]))
   AND window_end > :now
RETURNING id
""")

_CANCEL = text("""
UPDATE patrol_task
   SET status = 'cancelled', cancelled_by = :user, cancelled_at = :now, closed_at = :now,
       cancel_reason = :reason, version = version + 1
 WHERE id = :id AND status IN ('open', 'claimed') AND window_end > :now
   AND (CAST(:version AS integer) IS NULL OR version = CAST(:version AS integer))
RETURNING id
""")


@dataclass
class TaskRow:
    """A stored task as the API shows it (``status`` as of the time it was read)."""

    id: int
    title: str
    description: str | None
    kind: str
    route_id: int | None
    route_code: str | None
    grid_code: str | None
    window_start: dt.datetime
    window_end: dt.datetime
    status: str
    published_at: dt.datetime
    published_by: str | None
    claimed_by: int | None
    worker_code: str | None
    worker_name: str | None
    claimed_at: dt.datetime | None
    cancelled_by: str | None
    cancelled_at: dt.datetime | None
    cancel_reason: str | None
    version: int
    attrs: dict[str, Any]
    geometry: dict[str, Any]
    size: float
    distance_m: float | None = None

    def feature(self) -> dict[str, Any]:
        """The task as a GeoJSON Feature (lon/lat)."""
        def iso(moment: dt.datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        claimant = None if self.claimed_by is None else {
            "worker_id": self.claimed_by, "code": self.worker_code, "name": self.worker_name}
        props: dict[str, Any] = {
            "title": self.title, "description": self.description, "kind": self.kind,
            "route_id": self.route_id, "route_code": self.route_code, "grid": self.grid_code,
            "window_start": iso(self.window_start), "window_end": iso(self.window_end),
            "status": self.status, "published_by": self.published_by,
            "published_at": iso(self.published_at), "claimed_by": claimant,
            "claimed_at": iso(self.claimed_at), "cancelled_by": self.cancelled_by,
            "cancelled_at": iso(self.cancelled_at), "cancel_reason": self.cancel_reason,
            "version": self.version, "attrs": self.attrs,
            ("length_m" if self.kind == "route" else "area_m2"): round(self.size, 1)}
        if self.distance_m is not None:
            props["distance_m"] = round(self.distance_m, 1)
        return {"type": "Feature", "id": self.id, "geometry": self.geometry,
                "properties": props}


def _row(r: Any) -> TaskRow:
    values = dict(r._mapping)
    geojson = values.pop("geojson")
    values.pop("total", None)
    return TaskRow(**values, geometry=json.loads(geojson))


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def settle(session: Session, *, now: dt.datetime | None = None) -> int:
    """Mark tasks whose window is over: open -> expired, claimed -> done; returns how many.

    Rows another transaction holds are skipped (it settles them or changes them). The
    version is left alone: it counts edits (claim, cancel), and the end of a window is not
    one; GET derives the same status before it is stored, at the same version, so a refusal
    never names a version GET did not show (nor does another request's settling change it).
    """
    return int(session.execute(_SETTLE, {"now": _now(now)}).rowcount or 0)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- publish

def _task_geometry(session: Session, task: TaskIn, max_km2: float) -> tuple[str, bytes, Any]:
    """(kind, WKB, route id or grid code) of a new task's route, grid or area."""
    if task.area is not None:
        return "area", shapely.to_wkb(task.area), None
    if task.grid is not None:
        row = session.execute(text("""
            SELECT ST_AsBinary(geom) AS wkb, ST_Area(geom::geography) / 1e6 AS km2 FROM grid
             WHERE code = :c AND valid_to IS NULL"""), {"c": task.grid}).first()
        if row is None:
            raise InvalidInput(f"there is no current grid {task.grid!r}", field="grid",
                               value=task.grid, valid="the code of a current grid "
                               "(GET /api/v1/grids)")
        if float(row.km2) > max_km2:
            raise InvalidInput(f"grid {task.grid!r} covers {float(row.km2):.3f} km²",
                               field="grid", value=task.grid,
                               valid=f"a grid of at most {max_km2:g} km² "
                                     "(PATROLGRID_TASK_MAX_AREA_KM2), or an area")
        return "area", bytes(row.wkb), task.grid
    ref = str(task.route).strip()
    row = session.execute(text("""
        SELECT id, ST_AsBinary(geom) AS wkb FROM patrol_route
         WHERE code = :ref OR (:ref ~ '^[0-9]{1,9}$' AND id = CAST(:ref AS integer))
         ORDER BY (code = :ref) DESC LIMIT 1"""), {"ref": ref}).first()
    if row is None:
        raise InvalidInput(f"there is no route {task.route!r}", field="route", value=task.route,
                           valid="the id or code of a route (GET /api/v1/routes)")
    return "route", bytes(row.wkb), int(row.id)


def create_task(session: Session, task: TaskIn, *, published_by: int | None,
                max_km2: float = 10.0, now: dt.datetime | None = None) -> TaskRow:
    """Publish a task (status ``open``); a route's line is copied into the task.

    Raises
    ------
    InvalidInput
        When the route or grid does not exist or the grid is too large.
    """
    kind, wkb, ref = _task_geometry(session, task, max_km2)
    new_id = session.execute(text("""
        INSERT INTO patrol_task (title, description, kind, route_id, grid_code, geom,
                                 window_start, window_end, published_by, published_at, attrs)
        VALUES (:title, :description, :kind, :route_id, :grid, ST_GeomFromWKB(:wkb, 4326),
                :start, :end, :user, :now, CAST(:attrs AS jsonb))
        RETURNING id"""), {
        "title": task.title, "description": task.description, "kind": kind,
        "route_id": ref if kind == "route" else None,
        "grid": ref if kind == "area" else None, "wkb": wkb, "start": task.window_start,
        "end": task.window_end, "user": published_by, "now": _now(now),
        "attrs": json.dumps(task.attrs)}).scalar_one()
    return get_task(session, int(new_id), now=now)


# --------------------------------------------------------------------------- reads

def get_task(session: Session, task_id: int, *, now: dt.datetime | None = None) -> TaskRow:
    """One task (NotFound when there is none with that id)."""
    row = session.execute(text("SELECT " + _COLUMNS + ", NULL::float8 AS distance_m" + _FROM
                               + " WHERE t.id = :id"), {"id": task_id, "now": _now(now)}).first()
    if row is None:
        raise NotFound(f"there is no task with id {task_id}", field="task_id", value=task_id,
                       valid="the id of a task (GET /api/v1/tasks?status=any)")
    return _row(row)


def list_tasks(session: Session, *, statuses: list[str], near: tuple[float, float] | None = None,
               radius_m: float | None = None, worker_id: int | None = None, limit: int = 100,
               offset: int = 0, now: dt.datetime | None = None) -> tuple[list[TaskRow], int]:
    """Tasks with one of ``statuses``; nearest first within ``radius_m`` of ``near``.

    Without ``near`` they are ordered by window start. ``worker_id`` keeps the tasks
    that worker claimed. Returns the page and the number of matches.
    """
    params: dict[str, Any] = {"statuses": statuses, "worker": worker_id, "now": _now(now),
                              "limit": limit, "offset": offset}
    where = (" WHERE " + _STATUS + " = ANY(:statuses)"
             " AND (CAST(:worker AS integer) IS NULL OR t.claimed_by = CAST(:worker AS integer))")
    if near is None:
        distance, order = ", NULL::float8 AS distance_m", " ORDER BY t.window_start, t.id"
    else:
        params |= {"lon": near[0], "lat": near[1], "radius": radius_m}
        distance = ", ST_Distance(t.geom::geography, " + _HERE + ") AS distance_m"
        where += " AND ST_DWithin(t.geom::geography, " + _HERE + ", :radius)"
        order = " ORDER BY distance_m, t.window_start, t.id"
    rows = session.execute(text("SELECT " + _COLUMNS + distance + ", count(*) OVER () AS total"
                                + _FROM + where + order + " LIMIT :limit OFFSET :offset"),
                           params).all()
    if rows:
        return [_row(r) for r in rows], int(rows[0].total)
    total = session.execute(text("SELECT count(*)" + _FROM + where), params).scalar_one()
    return [], int(total)


# --------------------------------------------------------------------------- claim, cancel

def _check_claimer(session: Session, worker_id: int) -> Any:
    """Lock the worker's row (claims of one worker are serialised) and check they may claim."""
    worker = session.execute(text("SELECT id, code, role, active FROM worker WHERE id = :id "
                                  "FOR NO KEY UPDATE"), {"id": worker_id}).first()
    if worker is None:
        raise InvalidInput(f"there is no worker with id {worker_id}", field="worker_id",
                           value=worker_id, valid="the id of a worker (GET /api/v1/workers)")
    if not worker.active or worker.role not in CLAIMER_ROLES:
        state = "inactive" if not worker.active else f"a {worker.role}"
        raise InvalidInput(f"worker {worker.code!r} is {state} and may not claim tasks",
                           field="worker_id", value=worker_id,
                           valid="an active worker with role " + " or ".join(CLAIMER_ROLES))
    return worker


def _refusal(task: TaskRow) -> Conflict:
    """Why task ``task`` cannot be claimed any more."""
    extra: dict[str, Any] = {"status": task.status, "version": task.version}
    if task.claimed_at is not None:
        extra |= {"claimed_at": task.claimed_at.isoformat(),
                  "claimed_by": {"worker_id": task.claimed_by, "code": task.worker_code}}
    if task.status == "claimed" or (task.status == "done" and task.claimed_at is not None):
        assert task.claimed_at is not None
        message = (f"task {task.id} was already claimed at {task.claimed_at.isoformat()} "
                   f"by worker {task.worker_code!r}")
    elif task.status == "cancelled":
        message = f"task {task.id} was cancelled"
    else:
        message = (f"task {task.id} is {task.status}: its window ended at "
                   f"{task.window_end.isoformat()}")
    return Conflict(message, field="task_id", value=task.id,
                    valid="an open task (GET /api/v1/tasks?near=lon,lat)", extra=extra)


def claim_task(session: Session, task_id: int, *, worker_id: int, user_id: int | None,
               now: dt.datetime | None = None) -> TaskRow:
    """Claim an open task for a worker; the first claim wins.

    Raises
    ------
    NotFound
        No such task.
    InvalidInput
        The worker does not exist, is inactive, or is not a patrol member or volunteer.
    Conflict
        The task is no longer open (claimed: the message names the claim time and
        the claimant), or the worker holds a claimed task whose window overlaps.
    """
    moment = _now(now)
    settle(session, now=moment)
    task = get_task(session, task_id, now=moment)
    if task.status != "open":
        raise _refusal(task)
    worker = _check_claimer(session, worker_id)
    other = session.execute(text("""
        SELECT id, window_start, window_end FROM patrol_task
         WHERE claimed_by = :worker AND status = 'claimed' AND id <> :id
           AND window_start < :end AND window_end > :start AND window_end > :now
         ORDER BY window_start LIMIT 1"""), {"worker": worker_id, "id": task_id,
                                              "start": task.window_start,
                                              "end": task.window_end, "now": moment}).first()
    if other is not None:
        raise Conflict(f"worker {worker.code!r} already holds task {other.id} "
                       f"({other.window_start.isoformat()} to {other.window_end.isoformat()}), "
                       "whose window overlaps this one", field="worker_id", value=worker_id,
                       valid="a worker without a claimed task in this window",
                       extra={"overlapping_task": int(other.id)})
    won = session.execute(_CLAIM, {"id": task_id, "worker": worker_id, "user": user_id,
                                   "now": moment}).scalar()
    if won is None:
        raise _refusal(get_task(session, task_id, now=moment))
    return get_task(session, task_id, now=moment)


def cancel_task(session: Session, task_id: int, *, user_id: int | None,
                reason: str | None = None, version: int | None = None,
                now: dt.datetime | None = None) -> TaskRow:
    """Cancel an open or claimed task whose window is not over.

    ``version``, when given, must be the task's current version (optimistic lock).

    Raises
    ------
    NotFound
        No such task.
    Conflict
        The version differs, or the task is done, expired or already cancelled.
    """
    moment = _now(now)
    task = get_task(session, task_id, now=moment)
    settle(session, now=moment)
    done = session.execute(_CANCEL, {"id": task_id, "user": user_id, "now": moment,
                                     "reason": reason, "version": version}).scalar()
    if done is not None:
        return get_task(session, task_id, now=moment)
    if task.status in ("open", "claimed"):  # cancellable as read: a version, or a race
        if version is not None and task.version != version:
            raise Conflict(f"task {task_id} is at version {task.version}, not {version}",
                           field="version", value=version,
                           valid=f"the current version {task.version} (GET the task again)",
                           extra={"status": task.status, "version": task.version})
        task = get_task(session, task_id, now=moment)  # changed meanwhile: as it is now
    raise Conflict(f"task {task_id} is {task.status} and cannot be cancelled", field="task_id",
                   value=task_id, valid="an open or claimed task whose window is not over",
                   extra={"status": task.status, "version": task.version})


# --------------------------------------------------------------------------- coverage

def coverage_of(session: Session, task: TaskRow, *, tolerance_m: float,
                now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The claimant's coverage of a task from the fixes in its window (None if unclaimed).

    The window is cut at now (a running task) and at the cancellation time.
    """
    if task.claimed_by is None:
        return None
    hi = min(task.window_end, _now(now))
    if task.cancelled_at is not None:
        hi = min(hi, task.cancelled_at)
    lo = task.window_start
    geom = shape(task.geometry)
    if hi > lo:
        pts = load_points(session, start=lo, end=hi, worker_id=task.claimed_by)
        result = task_coverage(geom, pts.lon, pts.lat, pts.seg_start, tolerance_m=tolerance_m)
    else:
        empty = np.empty(0)
        result = task_coverage(geom, empty, empty, np.empty(0, dtype=bool),
                               tolerance_m=tolerance_m)
    return {"worker_id": task.claimed_by, "from": lo.isoformat(),
            "to": max(hi, lo).isoformat(), **result.as_dict()}


# --------------------------------------------------------------------------- users

def release_claims(session: Session, worker_ids: Sequence[int], now: dt.datetime) -> list[int]:
    """Open again the claimed tasks of ``worker_ids`` (made inactive) whose window is not
    over, so that another worker can claim them; their ids."""
    if not worker_ids:
        return []
    return sorted(int(i) for i in session.scalars(
        _RELEASE, {"workers": sorted(set(worker_ids)), "now": now}))


def linked_worker(session: Session, user_id: int) -> int | None:
    """The worker an API user is linked to, or None."""
    found = session.execute(text("SELECT worker_id FROM app_user WHERE id = :id"),
                            {"id": user_id}).scalar()
    return int(found) if found is not None else None


def link_user(session: Session, *, user: str, worker_id: int | None) -> dict[str, Any]:
    """Link API user ``user`` (by name) to a worker (None removes the link): a ``patrol``
    user claims tasks (a patrol member or volunteer) and uploads tracks only as that worker.

    Raises
    ------
    NotFound
        No user with that name, or no such worker.
    Conflict
        The worker is already linked to another user.
    """
    row = session.execute(text("SELECT id, worker_id FROM app_user WHERE name = :n FOR UPDATE"),
                          {"n": user}).first()
    if row is None:
        raise NotFound(f"there is no user named {user!r}", field="user", value=user,
                       valid="the name of a user (patrolgrid users list)")
    code = None
    if worker_id is not None:
        code = session.execute(text("SELECT code FROM worker WHERE id = :id"),
                               {"id": worker_id}).scalar()
        if code is None:
            raise NotFound(f"there is no worker with id {worker_id}", field="worker",
                           value=worker_id, valid="a worker id or code (GET /api/v1/workers)")
        active = session.execute(text("SELECT active FROM worker WHERE id = :id"),
                                 {"id": worker_id}).scalar_one()
        if not active:  # every claim and upload would be refused
            raise InvalidInput(f"worker {code!r} is inactive", field="worker", value=code,
                               valid="an active worker (a patrol member or volunteer to "
                                     "claim tasks; any worker to upload tracks)")
        other = session.execute(text("SELECT name FROM app_user WHERE worker_id = :w AND id <> :u"),
                                {"w": worker_id, "u": row.id}).scalar()
        if other is not None:
            raise Conflict(f"worker {code!r} is already linked to user {other!r}",
                           field="worker", value=worker_id,
                           valid="a worker no other user is linked to (unlink it first)")
    session.execute(text("UPDATE app_user SET worker_id = :w WHERE id = :u"),
                    {"w": worker_id, "u": row.id})
    return {"user": user, "worker_id": worker_id, "worker_code": code}
