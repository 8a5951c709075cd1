"""Storing GPS tracks: clean an upload against the stored points, write it in one go.

:func:`save_track` is the one write path (REST body, multipart upload and the
CLI all call it). In one transaction it locks the worker (uploads of one worker
are serialised, so two batches cannot both pass the duplicate check), reads the
worker's stored points around the upload's time span, cleans the upload with
:func:`geo.tracks.clean.clean_track`, makes the monthly partitions it needs,
inserts the kept points with one set-based statement, fixes the segment flags
of stored neighbours, and moves the worker's last known position to the newest
clean point when it is newer than the one on record.

Fixes that may be a glitch or the start of a real jump at the end of the
worker's track are *held* in ``track_held`` (not read as track) and judged again
with the worker's next upload that reaches their time: stored, dropped or held
again. Held fixes are always later than every stored fix of the worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from geo.tracks.clean import CleanReport, Limits, StoredPoints, clean_track
from geo.tracks.points import TrackInput, from_us

# NO KEY UPDATE: an incident insert naming the worker (its foreign key takes KEY SHARE,
# a bulk import for its whole transaction) does not wait for an upload, nor it for them
_LOCK_WORKER = text("SELECT id, code, name FROM worker WHERE id = :id FOR NO KEY UPDATE")

_CONTEXT = text("""
SELECT (extract(epoch FROM t) * 1000000)::bigint AS t_us, ST_X(geom) AS lon, ST_Y(geom) AS lat,
       seg_start
  FROM track_point
 WHERE worker_id = :worker AND t >= :lo AND t <= :hi
 ORDER BY t
""")

_HELD = text("""
SELECT (extract(epoch FROM t) * 1000000)::bigint AS t_us, ST_X(geom) AS lon, ST_Y(geom) AS lat,
       false AS seg_start
  FROM track_held
 WHERE worker_id = :worker
 ORDER BY t
""")

_LATER = text("SELECT EXISTS (SELECT 1 FROM track_point WHERE worker_id = :worker AND t > :t)")

_HOLD = text("""
INSERT INTO track_held (worker_id, t, geom)
SELECT :worker, v.t, ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326)
  FROM unnest(CAST(:t AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]))
       AS v(t, lon, lat)
""")

_UNHOLD = text("""
DELETE FROM track_held WHERE worker_id = :worker AND t = ANY(CAST(:t AS timestamptz[]))
""")

_PARTITION = text("SELECT track_point_partition(:at)")

_INSERT = text("""
INSERT INTO track_point (worker_id, t, geom, seg_start)
SELECT :worker, v.t, ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326), v.s
  FROM unnest(CAST(:t AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
              CAST(:s AS boolean[])) AS v(t, lon, lat, s)
""")

_FLAGS = text("""
UPDATE track_point p SET seg_start = v.s
  FROM unnest(CAST(:t AS timestamptz[]), CAST(:s AS boolean[])) AS v(t, s)
 WHERE p.worker_id = :worker AND p.t = v.t
""")

_LAST_POSITION = text("""
UPDATE worker SET last_geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), last_seen_at = :t
 WHERE id = :worker AND (last_seen_at IS NULL OR last_seen_at < :t)
""")


@dataclass
class TrackReport:
    """The answer to an upload: the worker, the cleaning report and what was written."""

    worker: dict[str, Any]
    cleaning: CleanReport
    written: bool
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    last_position: dict[str, Any] | None = None
    partitions: list[str] = field(default_factory=list)
    stored_flags_changed: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)
    #: The worker's fixes held after this upload (this upload's and earlier ones).
    held: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        report = self.cleaning
        return {
            "worker": self.worker,
            "written": self.written,
            "received": report.received,
            "stored": report.kept + report.released if self.written else 0,
            "would_store": None if self.written else report.kept + report.released,
            "held": self.held,
            "start": _iso(self.start), "end": _iso(self.end),
            "cleaning": report.to_dict(),
            "last_position": self.last_position,
            "partitions": self.partitions,
            "stored_flags_changed": self.stored_flags_changed,
            "sources": self.sources,
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def lock_worker(session: Session, worker_id: int) -> dict[str, Any]:
    """The worker ``{id, code, name}``, row-locked until the transaction ends; NotFound if none."""
    row = session.execute(_LOCK_WORKER, {"id": worker_id}).mappings().first()
    if row is None:
        raise NotFound(f"there is no worker with id {worker_id}", field="worker_id",
                       value=worker_id, valid="the id of a worker (GET /api/v1/workers)")
    return dict(row)


def stored_points(session: Session, worker_id: int, lo: dt.datetime,
                  hi: dt.datetime) -> StoredPoints:
    """The worker's stored points with ``lo <= t <= hi``, in time order."""
    return _points(session.execute(_CONTEXT, {"worker": worker_id, "lo": lo, "hi": hi}).all())


def _points(rows: Sequence[Any]) -> StoredPoints:
    """Rows of ``(t_us, lon, lat, seg_start)`` as arrays."""
    if not rows:
        return StoredPoints.empty()
    t_us, lon, lat, start = zip(*rows, strict=True)
    return StoredPoints(lon=np.asarray(lon, dtype=np.float64),
                        lat=np.asarray(lat, dtype=np.float64),
                        t_us=np.asarray(t_us, dtype=np.int64),
                        seg_start=np.asarray(start, dtype=bool))


def ensure_partitions(session: Session, times: list[dt.datetime]) -> list[str]:
    """Create the monthly partitions (UTC months) holding ``times``; their names."""
    months = sorted({dt.datetime(t.astimezone(dt.UTC).year, t.astimezone(dt.UTC).month, 1,
                                 tzinfo=dt.UTC) for t in times})
    return [str(session.execute(_PARTITION, {"at": month}).scalar_one()) for month in months]


def save_track(session: Session, *, worker_id: int, track: TrackInput, limits: Limits,
               dry_run: bool = False) -> TrackReport:
    """Clean ``track`` for the worker and store the kept points (unless ``dry_run``).

    Parameters
    ----------
    session : Session
        The caller commits; on any error nothing of the upload stays.
    worker_id : int
        The worker the points belong to (NotFound when unknown).
    track : TrackInput
        Checked WGS-84 points (:func:`geo.tracks.points.track_input`).
    limits : Limits
        Cleaning limits (from settings, maybe overridden per upload).
    dry_run : bool
        Report what would be stored without writing.

    Returns
    -------
    TrackReport
    """
    worker = lock_worker(session, worker_id)
    margin = round(limits.max_gap_s * 1_000_000) + 1
    first, last = int(track.t_us.min()), int(track.t_us.max())
    held_all = held_points(session, worker_id)
    # the held fixes are one run at the end of the track: judged again all together, or
    # (a late batch long before them) not at all
    within = bool(len(held_all)) and int(held_all.t_us[0]) <= last + margin
    held = held_all if within else StoredPoints.empty()
    lo = min([first, *held.t_us[:1].tolist()]) - margin
    hi = max([last, *held.t_us[-1:].tolist()]) + margin
    stored = stored_points(session, worker_id, from_us(lo), from_us(hi))
    open_end = (within or not len(held_all)) and not session.execute(
        _LATER, {"worker": worker_id, "t": from_us(hi)}).scalar_one()
    cleaned = clean_track(track.lon, track.lat, track.t_us, limits=limits, stored=stored,
                          held=held, open_end=open_end)
    lon = np.concatenate([track.lon, held.lon])
    lat = np.concatenate([track.lat, held.lat])
    t_us = np.concatenate([track.t_us, held.t_us])
    keep = cleaned.keep
    times = [from_us(int(t)) for t in t_us[keep]]
    report = TrackReport(worker=worker, cleaning=cleaned.report, written=not dry_run,
                         start=times[0] if times else None, end=times[-1] if times else None,
                         held=len(cleaned.hold) + (0 if within else len(held_all)))
    if dry_run:
        return report
    n = len(track.t_us)
    if len(cleaned.release):
        session.execute(_UNHOLD, {"worker": worker_id,
                                  "t": [from_us(int(t)) for t in t_us[cleaned.release]]})
    new_held = cleaned.hold[cleaned.hold < n]
    if len(new_held):
        session.execute(_HOLD, {"worker": worker_id,
                                "t": [from_us(int(t)) for t in t_us[new_held]],
                                "lon": lon[new_held].tolist(), "lat": lat[new_held].tolist()})
    if not len(keep):
        return report
    report.partitions = ensure_partitions(session, times)
    session.execute(_INSERT, {"worker": worker_id, "t": times, "lon": lon[keep].tolist(),
                              "lat": lat[keep].tolist(), "s": cleaned.seg_start.tolist()})
    if cleaned.stored_flags:
        session.execute(_FLAGS, {"worker": worker_id,
                                 "t": [from_us(t) for t, _ in cleaned.stored_flags],
                                 "s": [s for _, s in cleaned.stored_flags]})
        report.stored_flags_changed = len(cleaned.stored_flags)
    newest = int(np.argmax(t_us[keep]))
    x, y, at = float(lon[keep][newest]), float(lat[keep][newest]), times[newest]
    moved = session.execute(_LAST_POSITION, {"worker": worker_id, "lon": x, "lat": y, "t": at})
    if getattr(moved, "rowcount", 0):
        report.last_position = {"lon": x, "lat": y, "t": at.isoformat()}
    return report


def held_points(session: Session, worker_id: int) -> StoredPoints:
    """The fixes held back for the worker by earlier uploads, in time order."""
    return _points(session.execute(_HELD, {"worker": worker_id}).all())


def month_of(moment: dt.datetime) -> str:
    """The partition name holding ``moment`` (``track_point_yYYYYmMM``, UTC months)."""
    utc = moment.astimezone(dt.UTC)
    return f"track_point_y{utc.year:04d}m{utc.month:02d}"

