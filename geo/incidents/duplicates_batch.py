"""Duplicate candidates of a bulk batch, found in memory before the batch is written.

Same rule and the same answers as :func:`geo.incidents.duplicates.link_candidates`
(see :mod:`geo.incidents.duplicates`), worked out differently: the open incidents
already stored whose ``reported_at`` lies within the window of some incident of
the batch are read once (one indexed range query over the merged time windows),
then every new incident is matched with numpy against them and against the
earlier incidents of its own batch: same category, within the window (exact, in
microseconds), inside the same coarse box as the SQL (a little larger than the
radius), then within the radius on the WGS-84 spheroid (GeographicLib, as
PostGIS geography). The first match in the SQL's order wins: stored incidents
that are not candidates themselves, then the earliest report, then the smallest id
(a new incident of the batch is not a candidate yet when its batch is linked).

Within a bulk import the stored incidents come from an
:class:`~geo.incidents.duplicates_kept.ImportedRows` instead, which keeps the
import's own rows and reads each stretch of time of the older ones only once (so
a file far from time order costs what a sorted one does).

When the window holds more stored incidents than ``cap`` (a database already
holding very many open incidents across the file's time windows), :func:`pick`
answers ``None`` and the caller links with the SQL statement after writing the
batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.duplicates_kept import ImportedRows
from geo.incidents.loop import OPEN_STATUSES
from geo.settings import Settings

_GEOD = Geod(ellps="WGS84")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)

_STORED = text("""
SELECT o.id, o.category_code, (EXTRACT(EPOCH FROM o.reported_at) * 1000000)::int8 AS us,
       ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat, o.candidate_of IS NOT NULL AS child
  FROM unnest(CAST(:lo AS timestamptz[]), CAST(:hi AS timestamptz[])) AS r(lo, hi)
  JOIN incident o ON o.reported_at BETWEEN r.lo AND r.hi
 WHERE o.category_code = ANY(CAST(:cats AS text[]))
   AND o.status = ANY(CAST(:open AS text[]))
 LIMIT :cap
""")


def micros(at: Sequence[dt.datetime]) -> NDArray[np.int64]:
    """Microseconds since 1970 of timezone-aware moments."""
    return np.fromiter(((t - _EPOCH) // _US for t in at), dtype=np.int64, count=len(at))


def _windows(us: NDArray[np.int64], w: int) -> tuple[list[dt.datetime], list[dt.datetime]]:
    """The union of ``[t - w, t + w]`` over ``us``, as sorted disjoint ranges."""
    t = np.sort(us)
    breaks = np.flatnonzero(np.diff(t) > 2 * w)
    starts = np.concatenate(([t[0]], t[breaks + 1])) - w
    ends = np.concatenate((t[breaks], [t[-1]])) + w
    to_dt = [_EPOCH + dt.timedelta(microseconds=int(v)) for v in (*starts, *ends)]
    return to_dt[:len(starts)], to_dt[len(starts):]


def pick(session: Session, ids: Sequence[int], categories: Sequence[str],
         at: Sequence[dt.datetime], lon: Sequence[float], lat: Sequence[float],
         settings: Settings, *, cap: int,
         imported: ImportedRows | None = None,
         us: NDArray[np.int64] | None = None) -> dict[int, int] | None:
    """``new id -> target id`` for the new incidents of a batch (not yet written).

    Parameters
    ----------
    ids, categories, at, lon, lat
        The new incidents (their reserved ids), one entry each.
    settings
        ``duplicate_radius_m`` and ``duplicate_window_h``.
    cap
        Most stored incidents read; more in the window: answer None.
    imported
        The import's kept rows (:class:`~geo.incidents.duplicates_kept.ImportedRows`):
        then the stored incidents come from there (it reads the windows it has not read
        yet); the caller adds this batch to it once written.
    us
        ``at`` as :func:`micros` (when the caller has it already).
    """
    n = len(ids)
    radius = float(settings.duplicate_radius_m)
    w = round(float(settings.duplicate_window_h) * 3600 * 1_000_000)
    if n == 0 or radius <= 0 or w <= 0:
        return {}
    f_us = micros(at) if us is None else us
    lo, hi = _windows(f_us, w)
    cats = sorted(set(categories))
    stored: Sequence[Any] = []
    if imported is None:
        stored = session.execute(_STORED, {"lo": lo, "hi": hi, "cats": cats,
                                           "open": list(OPEN_STATUSES), "cap": cap + 1}).all()
        if len(stored) > cap:
            return None
    elif not imported.fetch(session, lo, hi, cap=cap):
        return None
    own = imported.near(categories, f_us, w) if imported is not None else None
    code = {c: k for k, c in enumerate(cats)}
    m = len(stored)
    # Targets: the stored incidents, then the batch itself.
    t_id = np.concatenate((np.fromiter((r.id for r in stored), np.int64, m),
                           np.asarray(ids, dtype=np.int64)))
    t_cat = np.concatenate((np.fromiter((code[r.category_code] for r in stored), np.int64, m),
                            np.fromiter((code[c] for c in categories), np.int64, n)))
    t_us = np.concatenate((np.fromiter((r.us for r in stored), np.int64, m), f_us))
    t_lon = np.concatenate((np.fromiter((r.lon for r in stored), np.float64, m),
                            np.asarray(lon, dtype=np.float64)))
    t_lat = np.concatenate((np.fromiter((r.lat for r in stored), np.float64, m),
                            np.asarray(lat, dtype=np.float64)))
    t_child = np.concatenate((np.fromiter((r.child for r in stored), bool, m),
                              np.zeros(n, dtype=bool)))
    t_new = np.concatenate((np.zeros(m, dtype=bool), np.ones(n, dtype=bool)))
    k = 0 if own is None else len(own[0])
    if k:  # the import's own earlier rows near the batch: targets like stored ones
        assert own is not None
        o_pf, o_id, o_us, o_lon, o_lat, o_child = own
        t_id = np.concatenate((t_id, o_id))
        t_cat = np.concatenate((t_cat, t_cat[m + o_pf]))
        t_us = np.concatenate((t_us, o_us))
        t_lon = np.concatenate((t_lon, o_lon))
        t_lat = np.concatenate((t_lat, o_lat))
        t_child = np.concatenate((t_child, o_child))
        t_new = np.concatenate((t_new, np.zeros(k, dtype=bool)))
    # stored and batch rows: matched through one sorted (category, time) key
    sb = m + n
    base = int(t_us[:sb].min()) - w
    shift = (int(t_us[:sb].max()) - base + w + 1).bit_length()
    if len(cats) >= 1 << (62 - shift):  # the (category, time) key would not fit in 63 bits
        return None
    key = (t_cat[:sb] << shift) | (t_us[:sb] - base)
    order = np.argsort(key, kind="stable")
    skey = key[order]
    f = np.arange(m, sb)
    fkey = key[f]
    start = np.searchsorted(skey, fkey - w, side="left")
    counts = np.searchsorted(skey, fkey + w, side="right") - start
    total = int(counts.sum())
    if total + k == 0:
        return {}
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    pf = np.concatenate((np.repeat(f, counts), m + own[0] if own is not None and k
                         else np.zeros(0, np.int64)))
    po = np.concatenate((order[np.repeat(start, counts) + offsets], np.arange(sb, sb + k)))
    # The coarse box of the SQL (f's latitude), then order and identity rules.
    dlat = radius / 110000.0
    dlon = radius / (110000.0 * np.maximum(np.cos(np.radians(t_lat[pf])), 0.01))
    keep = (np.abs(t_lat[po] - t_lat[pf]) <= dlat) & (np.abs(t_lon[po] - t_lon[pf]) <= dlon)
    keep &= po != pf
    earlier = (t_us[po] < t_us[pf]) | ((t_us[po] == t_us[pf]) & (t_id[po] < t_id[pf]))
    keep &= ~t_new[po] | earlier
    pf, po = pf[keep], po[keep]
    if pf.size == 0:
        return {}
    _, _, dist = _GEOD.inv(t_lon[pf], t_lat[pf], t_lon[po], t_lat[po])
    near = np.asarray(dist) <= radius
    pf, po = pf[near], po[near]
    if pf.size == 0:
        return {}
    best = np.lexsort((t_id[po], t_us[po], t_child[po], pf))
    pf, po = pf[best], po[best]
    first = np.concatenate(([True], pf[1:] != pf[:-1]))
    return {int(t_id[a]): int(t_id[b]) for a, b in zip(pf[first], po[first], strict=True)}
