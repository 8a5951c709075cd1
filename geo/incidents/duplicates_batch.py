"""Duplicate candidates of a bulk batch, found in memory before the batch is written.

Same rule and the same answers as :func:`geo.incidents.duplicates.link_candidates`
(see :mod:`geo.incidents.duplicates`), worked out differently: the open incidents
the batch may repeat come from the import's
:class:`~geo.incidents.duplicates_kept.ImportedRows` (its own earlier rows, and
those stored before it began, each stretch of time read from the database once),
and every new incident is matched with numpy against them and against the earlier
incidents of its own batch: same category, within the window (exact, in
microseconds), inside the same coarse box as the SQL (a little larger than the
radius), then within the radius on the WGS-84 spheroid (GeographicLib, as
PostGIS geography). The first match in the SQL's order wins: stored incidents
that are not candidates themselves, then the earliest report, then the smallest id
(a new incident of the batch is not a candidate yet when its batch is linked).

The caller reads the stored incidents of the batch's :func:`windows` into the
import's rows (:meth:`~geo.incidents.duplicates_kept.ImportedRows.read`, then
``keep``), and :func:`match` needs no database. When a stretch holds more stored
incidents than the caller's cap (a database already holding very many open incidents
across the file's time windows), it links with the SQL statement after writing the
batch instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pyproj import Geod

from geo.incidents.duplicates_kept import ImportedRows
from geo.settings import Settings

_GEOD = Geod(ellps="WGS84")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def micros(at: Sequence[dt.datetime]) -> NDArray[np.int64]:
    """Microseconds since 1970 of timezone-aware moments."""
    return np.fromiter(((t - _EPOCH) // _US for t in at), dtype=np.int64, count=len(at))


def _windows(us: NDArray[np.int64], w: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The union of ``[t - w, t + w]`` over ``us``, as sorted disjoint ranges (starts, ends
    in microseconds, ends included)."""
    t = np.sort(us)
    breaks = np.flatnonzero(np.diff(t) > 2 * w)
    starts = np.concatenate(([t[0]], t[breaks + 1])) - w
    ends = np.concatenate((t[breaks], [t[-1]])) + w
    return starts, ends


def _rule(settings: Settings) -> tuple[float, int]:
    """The radius (m) and the half window (microseconds) of the duplicate rule."""
    return (float(settings.duplicate_radius_m),
            round(float(settings.duplicate_window_h) * 3600 * 1_000_000))


def windows(us: NDArray[np.int64], settings: Settings) -> tuple[
        NDArray[np.int64], NDArray[np.int64]] | None:
    """The time windows (starts, ends in microseconds) whose stored incidents a batch
    reported at ``us`` may repeat; None when there is nothing to search (no rows, or the
    rule is switched off)."""
    radius, w = _rule(settings)
    if len(us) == 0 or radius <= 0 or w <= 0:
        return None
    return _windows(us, w)


def match(ids: Sequence[int], categories: Sequence[str], us: NDArray[np.int64],
          lon: Sequence[float], lat: Sequence[float], settings: Settings, *,
          imported: ImportedRows) -> dict[int, int] | None:
    """``new id -> target id`` for the new incidents of a batch (not yet written), once
    ``imported`` holds the stored incidents of the batch's :func:`windows`; None when the
    batch's (category, time) keys would not fit in 63 bits (then SQL links it).

    Parameters
    ----------
    ids, categories, us, lon, lat
        The new incidents (their reserved ids; report times as :func:`micros`), one entry
        each.
    settings
        ``duplicate_radius_m`` and ``duplicate_window_h``.
    imported
        The import's kept rows; the caller adds this batch to them afterwards.
    """
    n = len(ids)
    radius, w = _rule(settings)
    if n == 0 or radius <= 0 or w <= 0:
        return {}
    o_pf, o_id, o_us, o_lon, o_lat, o_child = imported.near(categories, us, w)
    k = len(o_pf)
    cats = sorted(set(categories))
    code = {c: j for j, c in enumerate(cats)}
    b_cat = np.fromiter((code[c] for c in categories), np.int64, n)
    # Targets: the batch itself, then the kept incidents near it (one entry per pair).
    t_id = np.concatenate((np.asarray(ids, dtype=np.int64), o_id))
    t_us = np.concatenate((us, o_us))
    t_lon = np.concatenate((np.asarray(lon, dtype=np.float64), o_lon))
    t_lat = np.concatenate((np.asarray(lat, dtype=np.float64), o_lat))
    t_child = np.concatenate((np.zeros(n, dtype=bool), o_child))
    t_new = np.concatenate((np.ones(n, dtype=bool), np.zeros(k, dtype=bool)))
    # pairs inside the batch, through one sorted (category, time) key
    base = int(us.min()) - w
    shift = (int(us.max()) - base + w + 1).bit_length()
    if len(cats) >= 1 << (62 - shift):  # the (category, time) key would not fit in 63 bits
        return None
    key = (b_cat << shift) | (us - base)
    order = np.argsort(key, kind="stable")
    skey = key[order]
    start = np.searchsorted(skey, key - w, side="left")
    counts = np.searchsorted(skey, key + w, side="right") - start
    total = int(counts.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    pf = np.concatenate((np.repeat(np.arange(n), counts), o_pf))
    po = np.concatenate((order[np.repeat(start, counts) + offsets], np.arange(n, n + k)))
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
