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

Pairs are found by time first (same category, within the window: sorted keys, no
geometry), which is fast while reports are spread in time. When a batch would make
more than :data:`PAIR_LIMIT` such pairs (a file without report times, all "now",
or with dates only: every row shares one window, and the pairs grow with the
square of the rows), they are found by place first instead (an STRtree of the
batch and the kept incidents of its time span, queried with each row's coarse
box), so memory follows the rows that are near each other, not the file squared.

The caller reads the stored incidents of the batch's :func:`windows` into the
import's rows (:meth:`~geo.incidents.duplicates_kept.ImportedRows.read`, then
``keep``), and :func:`match` needs no database. When a stretch holds more stored
incidents than the caller's cap (a database already holding very many open incidents
across the file's time windows), it links with the SQL statement after writing the
batch instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod

from geo.incidents.duplicates_kept import ImportedRows
from geo.settings import Settings

_GEOD = Geod(ellps="WGS84")
#: Most (row, target) pairs of a batch found by time alone; beyond, they are found by place.
PAIR_LIMIT = 4_000_000
#: Most rows of a batch whose pairs are found by place at a time, and about how many pairs
#: a chunk may make (a chunk shrinks where rows crowd one place: a hotline's default
#: address, thousands of reports on one point).
PLACE_CHUNK = 1_000
PLACE_PAIRS = 1_000_000
Ints = NDArray[np.int64]
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
    cats = sorted(set(categories))
    code = {c: j for j, c in enumerate(cats)}
    b_cat = np.fromiter((code[c] for c in categories), np.int64, n)
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
    b_lon, b_lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    chunks: Iterator[tuple[Ints, Ints]]
    total = int(counts.sum())
    near = (imported.near(categories, us, w, limit=PAIR_LIMIT - total)
            if total <= PAIR_LIMIT else None)
    if near is None:
        targets, chunks = _by_place(categories, us, b_lon, b_lat, radius, w, imported)
    else:
        o_pf, o_id, o_us, o_lon, o_lat, o_child = near
        k = len(o_pf)
        # Targets: the batch itself, then the kept incidents near it (one entry per pair).
        targets = (o_id, o_us, o_lon, o_lat, o_child)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        chunks = iter([(
            np.concatenate((np.repeat(np.arange(n), counts), o_pf)),
            np.concatenate((order[np.repeat(start, counts) + offsets], np.arange(n, n + k))))])
    t = _Targets(id=np.concatenate((np.asarray(ids, dtype=np.int64), targets[0])),
                 us=np.concatenate((us, targets[1])), lon=np.concatenate((b_lon, targets[2])),
                 lat=np.concatenate((b_lat, targets[3])),
                 child=np.concatenate((np.zeros(n, dtype=bool), targets[4])),
                 new=np.concatenate((np.ones(n, dtype=bool),
                                     np.zeros(len(targets[0]), dtype=bool))))
    out: dict[int, int] = {}
    for pf, po in chunks:  # each row's pairs are all in one chunk
        out |= _first_matches(pf, po, t, radius)
    return out


@dataclass
class _Targets:
    """The batch's rows, then the kept incidents: what a pair's ``po`` indexes."""

    id: Ints
    us: Ints
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    child: NDArray[np.bool_]
    new: NDArray[np.bool_]


def candidate_pairs(pf: Ints, po: Ints, t: _Targets, radius: float) -> tuple[Ints, Ints]:
    """The pairs (row ``pf``, target ``po``) inside the SQL's coarse box (a little larger
    than ``radius``, at the row's latitude) that its order and identity rules allow (not
    itself; a new incident only after an earlier one), sorted by row and then best first:
    stored non-candidates, then the earliest report, then the smallest id."""
    dlat = radius / 110000.0
    dlon = radius / (110000.0 * np.maximum(np.cos(np.radians(t.lat[pf])), 0.01))
    keep = (np.abs(t.lat[po] - t.lat[pf]) <= dlat) & (np.abs(t.lon[po] - t.lon[pf]) <= dlon)
    keep &= po != pf
    earlier = (t.us[po] < t.us[pf]) | ((t.us[po] == t.us[pf]) & (t.id[po] < t.id[pf]))
    keep &= ~t.new[po] | earlier
    pf, po = pf[keep], po[keep]
    best = np.lexsort((t.id[po], t.us[po], t.child[po], pf))
    return pf[best], po[best]


def _first_matches(pf: Ints, po: Ints, t: _Targets, radius: float) -> dict[int, int]:
    """``row id -> target id`` of the pairs (row ``pf``, target ``po``) the rule links,
    the first in the SQL's order for each row."""
    pf, po = candidate_pairs(pf, po, t, radius)
    if pf.size == 0:
        return {}
    # Each row's pairs, best first: the geodesic distance is worked out only until a row's
    # first pair within the radius, 1, 2, 4 … pairs a row at a time. Where rows crowd one
    # place (thousands of reports on one point), each has thousands of pairs and its first
    # is the match: measuring them all made a batch quadratic in time.
    starts = np.flatnonzero(np.concatenate(([True], pf[1:] != pf[:-1])))
    ends = np.concatenate((starts[1:], [len(pf)]))
    out: dict[int, int] = {}
    rows, pos, step = np.arange(len(starts)), starts.copy(), 1
    while rows.size:
        lo = pos[rows]
        hi = np.minimum(lo + step, ends[rows])
        counts = hi - lo
        idx = np.repeat(lo, counts) + (np.arange(int(counts.sum()))
                                       - np.repeat(np.cumsum(counts) - counts, counts))
        _, _, dist = _GEOD.inv(t.lon[pf[idx]], t.lat[pf[idx]], t.lon[po[idx]], t.lat[po[idx]])
        found = idx[np.asarray(dist) <= radius]  # in order: a row's best comes first
        first = found[np.concatenate(([True], pf[found][1:] != pf[found][:-1]))] \
            if found.size else found
        out.update(zip(t.id[pf[first]].tolist(), t.id[po[first]].tolist(), strict=True))
        pos[rows] = hi
        done = np.isin(pf[starts[rows]], pf[first]) | (hi >= ends[rows])
        rows, step = rows[~done], step * 2
    return out


def _by_place(categories: Sequence[str], us: Ints, lon: NDArray[np.float64],
              lat: NDArray[np.float64], radius: float, w: int, imported: ImportedRows) -> tuple[
        tuple[Ints, Ints, NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]],
        Iterator[tuple[Ints, Ints]]]:
    """The kept incidents of the batch's time span (as targets after the batch's own rows)
    and, up to :data:`PLACE_CHUNK` rows at a time (fewer where they crowd, so that a chunk
    makes about :data:`PLACE_PAIRS` pairs), the (row, target) pairs of the same category
    within the window whose points lie in the row's coarse box, found with an STRtree
    rather than by time (memory follows the rows near each other, a chunk at a time)."""
    n = len(us)
    o_cat, o_us, o_id, o_lon, o_lat, o_child = imported.within(
        categories, int(us.min()) - w, int(us.max()) + w)
    t_lon, t_lat = np.concatenate((lon, o_lon)), np.concatenate((lat, o_lat))
    t_us = np.concatenate((us, o_us))
    names = sorted(set(categories) | set(o_cat))
    code = {c: j for j, c in enumerate(names)}
    t_cat = np.fromiter((code[c] for c in [*categories, *o_cat]), np.int64, n + len(o_cat))
    dlat = radius / 110000.0
    dlon = radius / (110000.0 * np.maximum(np.cos(np.radians(lat)), 0.01))
    tree = shapely.STRtree(np.asarray(shapely.points(t_lon, t_lat), dtype=object))

    def chunks() -> Iterator[tuple[Ints, Ints]]:
        a, size = 0, min(PLACE_CHUNK, 64)  # a small first chunk measures the crowding
        while a < n:
            b = min(a + size, n)
            pf, po = tree.query(shapely.box(lon[a:b] - dlon[a:b], lat[a:b] - dlat,
                                            lon[a:b] + dlon[a:b], lat[a:b] + dlat),
                                predicate="intersects")
            pf = pf.astype(np.int64) + a
            po = po.astype(np.int64)
            same = (t_cat[po] == t_cat[pf]) & (np.abs(t_us[po] - t_us[pf]) <= w)
            per_row = max(len(pf) / (b - a), 1.0)
            a, size = b, max(1, min(PLACE_CHUNK, int(PLACE_PAIRS / per_row)))
            yield pf[same], po[same]

    return (o_id, o_us, o_lon, o_lat, o_child), chunks()
