"""Cleaning of GPS tracks: order, duplicate timestamps, speed spikes, jumps and gaps.

Pure numpy, no database: :func:`clean_track` takes the uploaded points and the
worker's stored points around them (so that a re-sent or late batch is cleaned
against what is already there) and decides which points to keep and where a
segment starts. The rules, in the order they apply:

1. **Order.** Points are sorted by time (stably) and kept. ``out_of_order`` is the
   fewest points that had to move (the upload's length less its longest run of
   points already in time order, not necessarily adjacent), duplicates left out.
2. **Duplicate timestamps.** Of several points with the same time only the
   first given is kept (``duplicates``); a point whose time is already stored
   for the worker is dropped (``already_stored``), so re-sending a batch is
   harmless.
3. **Speed spikes.** A *leg* between two consecutive points is *fast* when
   ``distance > max_speed_mps * dt + jitter_m`` (``jitter_m`` allows for GPS
   noise, which makes fixes a second apart look fast) and ``dt <= max_gap_s``.
   Fast legs cut the track into runs. A run of at most ``max_burst`` new points
   is a spike and dropped (``spikes`` counts the points) when

   - it is reached and left by fast legs and the points just before and after
     it are consistent with each other (an out-and-back jump), or
   - it ends the track (or is followed by a gap) after a fast leg from a run of
     more than ``max_burst`` points, or it starts the track (or follows a gap)
     before a fast leg into such a run.

   Stored points are never dropped. Runs are re-examined until nothing changes.
   **Held points.** With ``open_end`` (nothing of the worker is stored after the
   points examined), new points at the open end of the track are not kept or
   dropped but *held* (``held``): whether they are a glitch or the start of a real
   jump depends on fixes not sent yet. They are the points later than every point
   kept, and the short runs at the end each reached by a fast leg (at most
   ``max_burst`` points together: a zigzag of glitches). The store keeps them
   aside and passes them back (``held=``) with the worker's next upload, which
   decides: they are stored (``released``), dropped (``held_dropped``) or held
   again (``still_held``); a fix sent again at a held one's time takes its place
   (``held_replaced``).
4. **Jumps and gaps.** A fast leg left after that (the track really moved
   faster than the limit, e.g. in a vehicle) is a *jump* (``jumps``); a leg longer
   than ``max_gap_s`` is a *gap* (``gaps``). Both start a new segment, so no line
   is drawn across them. Only legs touching a new point are counted.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

EARTH_RADIUS_M = 6_371_008.8
US_PER_S = 1_000_000
#: At most this many dropped points are listed (with their index) in a report.
MAX_EXAMPLES = 100

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_OK, _FAST, _GAP = 0, 1, 2



@dataclass(frozen=True)
class Limits:
    """The limits the cleaning uses (reported with its counts)."""

    max_speed_mps: float = 3.0
    max_gap_s: float = 120.0
    jitter_m: float = 10.0
    max_burst: int = 3

    def to_dict(self) -> dict[str, Any]:
        """The limits as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: Any, *, max_speed_mps: float | None = None,
                      max_gap_s: float | None = None) -> Limits:
        """The limits of ``settings`` (``track_*`` fields), with per-upload overrides."""
        return cls(max_speed_mps=float(max_speed_mps or settings.track_max_speed_mps),
                   max_gap_s=float(max_gap_s or settings.track_max_gap_s),
                   jitter_m=float(settings.track_jitter_m),
                   max_burst=int(settings.track_max_burst))


@dataclass
class StoredPoints:
    """A worker's stored points around an upload, sorted by time (unique times)."""

    lon: FloatArray
    lat: FloatArray
    t_us: IntArray
    seg_start: BoolArray

    @classmethod
    def empty(cls) -> StoredPoints:
        """No stored points."""
        return cls(np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty(0, bool))

    def __len__(self) -> int:
        return len(self.t_us)


@dataclass
class CleanReport:
    """What the cleaning did, with the limits it used."""

    received: int
    kept: int = 0
    duplicates: int = 0
    already_stored: int = 0
    out_of_order: int = 0
    spikes: int = 0
    jumps: int = 0
    gaps: int = 0
    segments: int = 0
    held: int = 0
    released: int = 0
    held_dropped: int = 0
    held_replaced: int = 0
    still_held: int = 0
    limits: Limits = field(default_factory=Limits)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``dropped`` lists at most ``MAX_EXAMPLES`` points by index)."""
        out = asdict(self)
        out["limits"] = self.limits.to_dict()
        return out


@dataclass
class Cleaned:
    """The outcome of :func:`clean_track`.

    Indexes run over the uploaded points followed by the held ones (index
    ``n + j`` is held point ``j`` of an upload of ``n``). ``keep`` indexes the
    points to store, in time order, and ``seg_start`` says which of them start a
    segment. ``hold`` indexes the points to hold (until the next upload) and
    ``release`` the earlier-held points to take out of the held ones (stored or
    dropped). ``stored_flags`` lists the stored points (by time, microseconds)
    whose ``seg_start`` must change because a new point now precedes them.
    """

    keep: IntArray
    seg_start: BoolArray
    stored_flags: list[tuple[int, bool]]
    report: CleanReport
    hold: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    release: IntArray = field(default_factory=lambda: np.empty(0, np.int64))


def haversine_m(lon1: FloatArray, lat1: FloatArray, lon2: FloatArray,
                lat2: FloatArray) -> FloatArray:
    """Great-circle distances in metres between (lon1, lat1) and (lon2, lat2), element-wise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    out: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


def _pair_kinds(lon: FloatArray, lat: FloatArray, t_us: IntArray, a: IntArray,
                b: IntArray, limits: Limits) -> IntArray:
    """_OK, _FAST or _GAP for the legs from points ``a`` to points ``b`` (``a`` before ``b``)."""
    dt_s = (t_us[b] - t_us[a]) / US_PER_S
    dist = haversine_m(lon[a], lat[a], lon[b], lat[b])
    kinds = np.full(len(dt_s), _OK, dtype=np.int64)
    kinds[dist > limits.max_speed_mps * dt_s + limits.jitter_m] = _FAST
    kinds[dt_s > limits.max_gap_s] = _GAP
    return kinds


def _leg_kinds(lon: FloatArray, lat: FloatArray, t_us: IntArray, limits: Limits) -> IntArray:
    """For each consecutive pair: _OK, _FAST or _GAP (length ``n - 1``)."""
    first = np.arange(max(len(t_us) - 1, 0), dtype=np.int64)
    return _pair_kinds(lon, lat, t_us, first, first + 1, limits)


def _spike_runs(lon: FloatArray, lat: FloatArray, t_us: IntArray, fixed: BoolArray,
                limits: Limits) -> tuple[IntArray, IntArray, BoolArray]:
    """One pass over the alive points: run starts, ends (inclusive) and which are spikes."""
    kinds = _leg_kinds(lon, lat, t_us, limits)
    cuts = np.flatnonzero(kinds != _OK)  # leg i joins point i and point i + 1
    starts = np.concatenate([[0], cuts + 1]).astype(np.int64)
    ends = np.concatenate([cuts, [len(t_us) - 1]]).astype(np.int64)
    fixed_runs = np.add.reduceat(fixed.astype(np.int64), starts) > 0
    established = ((ends - starts + 1) > limits.max_burst) | fixed_runs
    runs = len(starts)
    in_fast = np.zeros(runs, dtype=bool)
    out_fast = np.zeros(runs, dtype=bool)
    in_fast[1:] = kinds[starts[1:] - 1] == _FAST
    out_fast[:-1] = kinds[ends[:-1]] == _FAST
    est_prev = np.zeros(runs, dtype=bool)
    est_next = np.zeros(runs, dtype=bool)
    est_prev[1:], est_next[:-1] = established[:-1], established[1:]
    bracket = np.zeros(runs, dtype=bool)  # the points around the run agree with each other
    both = np.flatnonzero(in_fast & out_fast)  # never the first or last run
    bracket[both] = _pair_kinds(lon, lat, t_us, ends[both - 1], starts[both + 1], limits) == _OK
    candidate = ~established & ((in_fast & out_fast & bracket) | (in_fast & ~out_fast & est_prev)
                                | (~in_fast & out_fast & est_next))
    # of consecutive candidates drop every other one (the first, third, ...): a run next
    # to one dropped in this pass is judged again in the next pass, with its new neighbour
    block_start = candidate & ~np.concatenate([[False], candidate[:-1]])
    block_id = np.cumsum(block_start)
    first_of_block = np.flatnonzero(block_start)
    offset = np.arange(runs) - (first_of_block[block_id - 1] if len(first_of_block) else 0)
    spikes = candidate & (offset % 2 == 0)
    return starts, ends, spikes


def _drop_spikes(lon: FloatArray, lat: FloatArray, t_us: IntArray, fixed: BoolArray,
                 limits: Limits) -> BoolArray:
    """Alive mask over the merged, time-sorted points after removing spike runs."""
    alive = np.ones(len(t_us), dtype=bool)
    while True:
        pos = np.flatnonzero(alive)
        if len(pos) < 2:
            return alive
        starts, ends, spikes = _spike_runs(lon[pos], lat[pos], t_us[pos], fixed[pos], limits)
        if not spikes.any():
            return alive
        sizes = ends[spikes] - starts[spikes] + 1
        members = np.repeat(starts[spikes], sizes) + (
            np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes))
        alive[pos[members]] = False


def _hold_from(lon: FloatArray, lat: FloatArray, t_us: IntArray, fixed: BoolArray,
               alive: BoolArray, limits: Limits) -> int:
    """Where the open end of a track starts (an index of the merged points): new points
    from there on may be a glitch or a real jump, which only later fixes can tell.

    That is the end of the kept points, moved back over the runs at the end that are
    short (not established) and each reached by a fast leg, when together they hold at
    most ``max_burst`` points (a longer chain of fast legs is a real trip, kept as jumps)
    and the run before them is longer than ``max_burst`` (not merely stored: after a
    short run, the whole track would keep the chain).
    """
    pos = np.flatnonzero(alive)
    if not len(pos):
        return 0
    kinds = _leg_kinds(lon[pos], lat[pos], t_us[pos], limits)
    cuts = np.flatnonzero(kinds != _OK)
    starts = np.concatenate([[0], cuts + 1]).astype(np.int64)
    sizes = np.diff(np.concatenate([starts, [len(pos)]]))
    has_fixed = np.add.reduceat(fixed[pos].astype(np.int64), starts) > 0
    first, total = len(starts), 0
    for r in range(len(starts) - 1, 0, -1):
        if sizes[r] > limits.max_burst or has_fixed[r] or kinds[starts[r] - 1] != _FAST:
            break
        total += int(sizes[r])
        if total > limits.max_burst:
            first = len(starts)
            break
        first = r
    if first < len(starts) and sizes[first - 1] <= limits.max_burst:
        first = len(starts)  # after a short run: the whole track would keep the chain too
    return int(pos[starts[first]]) if first < len(starts) else int(pos[-1]) + 1


def _longest_ordered_run(values: IntArray) -> int:
    """Length of the longest non-decreasing subsequence (patience sorting, O(n log n))."""
    tails: list[int] = []
    for value in values.tolist():
        i = bisect.bisect_right(tails, value)
        if i == len(tails):
            tails.append(value)
        else:
            tails[i] = value
    return len(tails)


def clean_track(lon: FloatArray, lat: FloatArray, t_us: IntArray, *, limits: Limits,
                stored: StoredPoints | None = None, held: StoredPoints | None = None,
                open_end: bool = False) -> Cleaned:
    """Clean one worker's uploaded points against the stored ones around them.

    Parameters
    ----------
    lon, lat : numpy.ndarray
        WGS-84 coordinates of the uploaded points, in upload order.
    t_us : numpy.ndarray
        Their times, int64 microseconds since 1970-01-01 UTC.
    limits : Limits
        Speed limit, gap, GPS jitter allowance and burst size.
    stored : StoredPoints, optional
        The worker's stored points around the upload: at least those within
        ``limits.max_gap_s`` of its first and last times (farther ones cannot
        change the outcome, since a longer pause is a gap anyway).
    held : StoredPoints, optional
        Points held back by earlier uploads (their ``seg_start`` is ignored),
        judged again with this upload. Their times differ from the stored ones.
    open_end : bool
        Nothing of the worker is stored (or held and not passed) after the
        points given: dropped points after the last kept one are held, not
        dropped.

    Returns
    -------
    Cleaned
        Which points to store (time order), their segment starts, which to hold
        or take out of the held ones, the stored points whose segment start
        changes, and the report.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    t_us = np.asarray(t_us, dtype=np.int64)
    stored = stored if stored is not None else StoredPoints.empty()
    held = held if held is not None else StoredPoints.empty()
    n = len(t_us)
    report = CleanReport(received=n, limits=limits)
    reasons: dict[int, str] = {}
    order = np.argsort(t_us, kind="stable")
    dup = np.zeros(n, dtype=bool)
    dup[1:] = t_us[order][1:] == t_us[order][:-1]
    report.duplicates = int(dup.sum())
    unique_in_given_order = t_us[np.sort(order[~dup])]
    report.out_of_order = len(unique_in_given_order) - _longest_ordered_run(unique_in_given_order)
    reasons.update(dict.fromkeys(order[dup].tolist(), "duplicate"))
    cand = order[~dup]
    known = np.isin(t_us[cand], stored.t_us)
    report.already_stored = int(known.sum())
    reasons.update(dict.fromkeys(cand[known].tolist(), "already_stored"))
    cand = cand[~known]
    # a fix sent again at the time of a held one takes its place
    replaced = n + np.flatnonzero(np.isin(held.t_us, t_us[cand]))
    report.held_replaced = len(replaced)
    cand = np.concatenate([cand, np.setdiff1d(n + np.arange(len(held), dtype=np.int64),
                                              replaced)])
    lon = np.concatenate([lon, held.lon])
    lat = np.concatenate([lat, held.lat])
    t_us = np.concatenate([t_us, held.t_us])

    m_t = np.concatenate([stored.t_us, t_us[cand]])
    m_order = np.argsort(m_t, kind="stable")
    m_t = m_t[m_order]
    m_lon = np.concatenate([stored.lon, lon[cand]])[m_order]
    m_lat = np.concatenate([stored.lat, lat[cand]])[m_order]
    m_src = np.concatenate([np.full(len(stored), -1, dtype=np.int64), cand])[m_order]
    m_flag = np.concatenate([stored.seg_start, np.zeros(len(cand), dtype=bool)])[m_order]
    fixed = m_src < 0

    alive = _drop_spikes(m_lon, m_lat, m_t, fixed, limits)
    later = np.arange(len(m_t)) >= (_hold_from(m_lon, m_lat, m_t, fixed, alive, limits)
                                    if open_end else len(m_t))
    hold = m_src[later & ~fixed]
    alive &= ~later
    dropped = ~alive & ~later
    spikes = m_src[dropped]
    report.spikes = int(np.count_nonzero(spikes < n))
    report.held = int(np.count_nonzero(hold < n))
    report.still_held = len(hold) - report.held
    report.held_dropped = len(spikes) - report.spikes
    reasons.update(dict.fromkeys(spikes[spikes < n].tolist(), "spike"))

    pos = np.flatnonzero(alive)
    kinds = _leg_kinds(m_lon[pos], m_lat[pos], m_t[pos], limits) if len(pos) else np.empty(0)
    is_new = ~fixed[pos]
    touches_new = is_new[:-1] | is_new[1:]
    report.jumps = int(np.count_nonzero((kinds == _FAST) & touches_new))
    report.gaps = int(np.count_nonzero((kinds == _GAP) & touches_new))

    starts = np.ones(len(pos), dtype=bool)  # the first point has no predecessor
    if len(pos):
        starts[1:] = kinds != _OK
        keep_stored = fixed[pos].copy()
        keep_stored[1:] &= fixed[pos][:-1]  # a stored point after a stored one keeps its flag
        starts[keep_stored] = m_flag[pos][keep_stored]
    changed = fixed[pos] & (starts != m_flag[pos])
    stored_flags = [(int(t), bool(s)) for t, s in zip(m_t[pos][changed], starts[changed],
                                                      strict=True)]
    segment_of = np.cumsum(starts)
    report.segments = len(np.unique(segment_of[is_new]))
    keep = m_src[pos][is_new]
    report.kept = int(np.count_nonzero(keep < n))
    report.released = len(keep) - report.kept
    report.dropped = [{"index": i, "reason": reasons[i]} for i in sorted(reasons)[:MAX_EXAMPLES]]
    released = np.concatenate([keep[keep >= n], spikes[spikes >= n], replaced])
    return Cleaned(keep=keep, seg_start=starts[is_new], stored_flags=stored_flags,
                   report=report, hold=hold, release=np.sort(released))
