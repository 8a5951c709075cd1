"""Where a worker was at a given moment: the newest stored fix then, else the last known position.

The worker row keeps only the last known position (``last_geom``, ``last_seen_at``).
A map of a past moment wants where each worker was *then*: when the last known
position was taken after that moment, the newest fix of the worker's stored track
at or before it (``track_point``, read by its primary key ``(worker_id, t)``) takes
its place. A worker with no stored fix by then keeps the last known position, taken
later (the dispatch map flags it). With ``:at`` NULL (a live map) nothing is looked
up and the last known position stands.

The fragments below are joined to ``worker w`` and take the parameter ``:at``.
"""

from __future__ import annotations

#: ``fix``: the worker's newest stored fix at or before ``:at``, only when their last
#: known position was taken after ``:at`` (no row otherwise, or when ``:at`` is NULL).
FIX_AT = """LEFT JOIN LATERAL (
    SELECT tp.geom, tp.t FROM track_point tp
     WHERE w.last_seen_at > CAST(:at AS timestamptz) AND tp.worker_id = w.id
       AND tp.t <= CAST(:at AS timestamptz)
     ORDER BY tp.t DESC LIMIT 1) fix ON true"""
#: The worker's position at ``:at`` (see the module docstring).
GEOM_AT = "COALESCE(fix.geom, w.last_geom)"
#: When that position was taken.
SEEN_AT = "CASE WHEN fix.t IS NULL THEN w.last_seen_at ELSE fix.t END"

__all__ = ["FIX_AT", "GEOM_AT", "SEEN_AT"]
