"""Track cleaning rules on made-up walks (the real GeoLife noise is in tests/data)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.tracks.clean import Limits, StoredPoints, _drop_spikes, clean_track, haversine_m

LIMITS = Limits(max_speed_mps=3.0, max_gap_s=120.0, jitter_m=10.0, max_burst=3)
T0 = 1_714_550_400 * 1_000_000  # 2024-05-01T08:00:00Z in microseconds
M_PER_DEG_LAT = 111_195.0


def walk(n: int, *, step_s: float = 5.0, speed: float = 1.4, start_s: float = 0.0,
         lon0: float = 119.30, lat0: float = 26.08) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A walk due north at ``speed`` m/s, one fix every ``step_s`` seconds."""
    secs = start_s + np.arange(n) * step_s
    lat = lat0 + (secs - start_s) * speed / M_PER_DEG_LAT
    return np.full(n, lon0), lat, T0 + (secs * 1_000_000).astype(np.int64)


def test_a_clean_walk_is_kept_whole_as_one_segment() -> None:
    lon, lat, t = walk(50)
    out = clean_track(lon, lat, t, limits=LIMITS)
    assert out.keep.tolist() == list(range(50))
    assert out.seg_start.tolist() == [True] + [False] * 49
    r = out.report
    assert (r.kept, r.duplicates, r.spikes, r.jumps, r.gaps, r.segments) == (50, 0, 0, 0, 0, 1)


def test_duplicate_timestamps_keep_the_first_given() -> None:
    lon, lat, t = walk(10)
    lon = np.append(lon, lon[4] + 0.001)  # same time as point 4, elsewhere
    lat, t = np.append(lat, lat[4]), np.append(t, t[4])
    out = clean_track(lon, lat, t, limits=LIMITS)
    assert out.report.duplicates == 1
    assert 10 not in out.keep and 4 in out.keep
    assert out.report.dropped == [{"index": 10, "reason": "duplicate"}]


def test_points_out_of_order_are_sorted_and_kept() -> None:
    lon, lat, t = walk(20)
    order = np.array([0, 1, 2, 5, 3, 4, 6, 7, 8, 9, 19, 10, 11, 12, 13, 14, 15, 16, 17, 18])
    out = clean_track(lon[order], lat[order], t[order], limits=LIMITS)
    assert out.report.out_of_order == 2  # 5 and 19 came early
    assert out.report.kept == 20
    assert np.all(np.diff(t[order][out.keep]) > 0)


def test_an_out_and_back_spike_is_dropped() -> None:
    lon, lat, t = walk(30)
    lon[12] += 500 / (M_PER_DEG_LAT * np.cos(np.radians(26.08)))  # 500 m east for one fix
    out = clean_track(lon, lat, t, limits=LIMITS)
    assert out.report.spikes == 1 and out.report.dropped == [{"index": 12, "reason": "spike"}]
    assert (out.report.jumps, out.report.segments) == (0, 1)


def test_a_burst_of_fixes_elsewhere_is_dropped_up_to_max_burst() -> None:
    for burst in (2, 3, 4):
        lon, lat, t = walk(30)
        lat[10:10 + burst] += 0.01  # about 1.1 km north, then back
        out = clean_track(lon, lat, t, limits=LIMITS)
        if burst <= LIMITS.max_burst:
            assert out.report.spikes == burst and out.report.segments == 1
        else:  # too long to be noise: kept, with a jump out and a jump back
            assert out.report.spikes == 0
            assert (out.report.jumps, out.report.segments) == (2, 3)


def test_a_bad_first_fix_after_switching_on_is_dropped() -> None:
    lon, lat, t = walk(20)
    lat[0] -= 0.005  # the cold-start fix, 550 m off
    out = clean_track(lon, lat, t, limits=LIMITS)
    assert out.report.dropped == [{"index": 0, "reason": "spike"}]
    assert out.seg_start[0] and out.report.segments == 1


def test_a_one_way_jump_splits_the_track_without_dropping() -> None:
    lon_a, lat_a, t_a = walk(10)
    lon_b, lat_b, t_b = walk(10, start_s=50.0, lat0=26.10)  # 2 km away 5 s later
    out = clean_track(np.r_[lon_a, lon_b], np.r_[lat_a, lat_b], np.r_[t_a, t_b], limits=LIMITS)
    r = out.report
    assert (r.kept, r.spikes, r.jumps, r.gaps, r.segments) == (20, 0, 1, 0, 2)
    assert out.seg_start.tolist() == [True] + [False] * 9 + [True] + [False] * 9


def test_a_long_pause_is_a_gap_that_splits_the_track() -> None:
    lon_a, lat_a, t_a = walk(10)
    lon_b, lat_b, t_b = walk(10, start_s=45.0 + 121.0, lat0=float(lat_a[-1]))
    out = clean_track(np.r_[lon_a, lon_b], np.r_[lat_a, lat_b], np.r_[t_a, t_b], limits=LIMITS)
    assert (out.report.gaps, out.report.jumps, out.report.segments) == (1, 0, 2)
    lon_c, lat_c, t_c = walk(10, start_s=45.0 + 119.0, lat0=float(lat_a[-1]))
    out = clean_track(np.r_[lon_a, lon_c], np.r_[lat_a, lat_c], np.r_[t_a, t_c], limits=LIMITS)
    assert (out.report.gaps, out.report.segments) == (0, 1)


def test_the_speed_limit_is_configurable() -> None:
    lon, lat, t = walk(30, speed=8.0)  # a bicycle
    walking = clean_track(lon, lat, t, limits=LIMITS).report
    cycling = clean_track(lon, lat, t, limits=Limits(max_speed_mps=10.0)).report
    assert walking.jumps == 29 and walking.segments == 30 and walking.kept == 30
    assert cycling.jumps == 0 and cycling.segments == 1
    assert walking.limits.max_speed_mps == 3.0 and cycling.limits.max_speed_mps == 10.0


def test_gps_jitter_between_close_fixes_is_not_a_spike() -> None:
    lon, lat, t = walk(20, step_s=1.0)
    lat[::2] += 8 / M_PER_DEG_LAT  # 8 m of noise, a second apart: 9 m/s on paper
    out = clean_track(lon, lat, t, limits=LIMITS)
    assert (out.report.spikes, out.report.jumps) == (0, 0)
    strict = clean_track(lon, lat, t, limits=Limits(jitter_m=0.0)).report
    assert strict.spikes + strict.jumps > 0


def _stored(lon: np.ndarray, lat: np.ndarray, t: np.ndarray,
            starts: list[bool]) -> StoredPoints:
    return StoredPoints(lon=lon, lat=lat, t_us=t, seg_start=np.array(starts))


def test_a_resent_batch_stores_nothing_twice() -> None:
    lon, lat, t = walk(15)
    stored = _stored(lon, lat, t, [True] + [False] * 14)
    out = clean_track(lon, lat, t, limits=LIMITS, stored=stored)
    assert (out.report.already_stored, out.report.kept) == (15, 0)
    assert len(out.keep) == 0 and out.stored_flags == []


def test_a_late_batch_filling_a_gap_joins_the_stored_segments() -> None:
    lon, lat, t = walk(60)
    before, late, after = slice(0, 20), slice(20, 45), slice(45, 60)
    stored = _stored(np.r_[lon[before], lon[after]], np.r_[lat[before], lat[after]],
                     np.r_[t[before], t[after]], [True] + [False] * 19 + [True] + [False] * 14)
    out = clean_track(lon[late], lat[late], t[late], limits=LIMITS, stored=stored)
    assert out.report.kept == 25 and not out.seg_start.any()
    assert out.stored_flags == [(int(t[45]), False)]
    assert out.report.segments == 1


def test_a_batch_continuing_the_stored_track_continues_its_segment() -> None:
    lon, lat, t = walk(40)
    stored = _stored(lon[:20], lat[:20], t[:20], [True] + [False] * 19)
    out = clean_track(lon[20:], lat[20:], t[20:], limits=LIMITS, stored=stored)
    assert not out.seg_start.any() and out.stored_flags == []


def test_stored_points_are_never_dropped_but_new_spikes_are() -> None:
    lon, lat, t = walk(40)
    lat[25] += 0.01
    stored = _stored(lon[:20], lat[:20], t[:20], [True] + [False] * 19)
    out = clean_track(lon[20:], lat[20:], t[20:], limits=LIMITS, stored=stored)
    assert out.report.dropped == [{"index": 5, "reason": "spike"}]


def _ride(n_walk: int = 20, n_ride: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A walk, then (5 s later, 2 km north) a walk again: a real one-way jump."""
    lon_a, lat_a, t_a = walk(n_walk)
    lon_b, lat_b, t_b = walk(n_ride, start_s=5.0 * n_walk, lat0=26.10)
    return np.r_[lon_a, lon_b], np.r_[lat_a, lat_b], np.r_[t_a, t_b]


def test_fixes_after_a_jump_at_the_open_end_are_held_not_dropped() -> None:
    lon, lat, t = _ride(20, 3)
    closed = clean_track(lon, lat, t, limits=LIMITS)
    assert (closed.report.spikes, closed.report.held) == (3, 0)
    out = clean_track(lon, lat, t, limits=LIMITS, open_end=True)
    r = out.report
    assert (r.kept, r.spikes, r.held, r.received) == (20, 0, 3, 23)
    assert out.hold.tolist() == [20, 21, 22] and out.release.tolist() == []
    assert out.report.dropped == []  # held, not dropped


def test_the_next_upload_stores_held_fixes_that_it_continues() -> None:
    lon, lat, t = _ride(20, 10)
    stored = _stored(lon[:20], lat[:20], t[:20], [True] + [False] * 19)
    held = _stored(lon[20:23], lat[20:23], t[20:23], [False] * 3)
    out = clean_track(lon[23:], lat[23:], t[23:], limits=LIMITS, stored=stored, held=held,
                      open_end=True)
    r = out.report
    assert (r.received, r.kept, r.released, r.held, r.still_held, r.jumps) == (7, 7, 3, 0, 0, 1)
    # indexes past the upload's 7 points are the held ones
    assert out.keep.tolist() == [7, 8, 9, 0, 1, 2, 3, 4, 5, 6]
    assert out.seg_start.tolist() == [True] + [False] * 9
    assert out.release.tolist() == [7, 8, 9]


def test_the_next_upload_drops_held_fixes_it_contradicts() -> None:
    lon, lat, t = walk(30)
    lat[20:23] += 0.02  # three fixes 2 km off, then back on the walk
    stored = _stored(lon[:20], lat[:20], t[:20], [True] + [False] * 19)
    held = _stored(lon[20:23], lat[20:23], t[20:23], [False] * 3)
    out = clean_track(lon[23:], lat[23:], t[23:], limits=LIMITS, stored=stored, held=held,
                      open_end=True)
    r = out.report
    assert (r.kept, r.released, r.held_dropped, r.spikes, r.jumps) == (7, 0, 3, 0, 0)
    assert out.release.tolist() == [7, 8, 9] and not out.seg_start.any()


def test_held_fixes_followed_by_a_gap_are_dropped_and_resending_them_is_harmless() -> None:
    lon, lat, t = _ride(20, 3)
    stored = _stored(lon[:20], lat[:20], t[:20], [True] + [False] * 19)
    held = _stored(lon[20:], lat[20:], t[20:], [False] * 3)
    resent = clean_track(lon[20:], lat[20:], t[20:], limits=LIMITS, stored=stored, held=held,
                         open_end=True)
    # the fixes sent again take the held ones' places, and are held in turn
    assert (resent.report.held, resent.report.held_replaced, resent.report.kept) == (3, 3, 0)
    assert resent.hold.tolist() == [0, 1, 2] and resent.release.tolist() == [3, 4, 5]
    lon_c, lat_c, t_c = walk(5, start_s=500.0, lat0=26.10)  # after a pause of 6 minutes
    out = clean_track(lon_c, lat_c, t_c, limits=LIMITS, stored=stored, held=held,
                      open_end=True)
    assert (out.report.kept, out.report.held_dropped, out.report.gaps) == (5, 3, 1)
    assert out.release.tolist() == [5, 6, 7]


def test_empty_input_gives_an_empty_report() -> None:
    out = clean_track(np.empty(0), np.empty(0), np.empty(0, np.int64), limits=LIMITS)
    assert out.report.received == 0 and len(out.keep) == 0


def test_haversine_matches_a_known_distance() -> None:
    # one degree of latitude on the mean sphere
    d = haversine_m(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]))
    assert abs(float(d[0]) - 111_195.08) < 0.1


#: Steps in metres east and north and seconds: mostly walking, with jumps out and back.
step = st.one_of(st.floats(-12, 12), st.floats(-12, 12), st.floats(-400, 400))
noisy = st.lists(st.tuples(step, step, st.integers(0, 40)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(noisy, st.integers(0, 2**31))
def test_cleaning_accounts_for_every_point_and_is_idempotent(
        steps: list[tuple[float, float, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    dx = np.array([s[0] for s in steps]) / M_PER_DEG_LAT
    dy = np.array([s[1] for s in steps]) / M_PER_DEG_LAT
    lon, lat = 119.3 + np.cumsum(dx), 26.08 + np.cumsum(dy)
    t = T0 + np.cumsum([s[2] for s in steps]).astype(np.int64) * 1_000_000
    shuffle = rng.permutation(len(t))
    lon, lat, t = lon[shuffle], lat[shuffle], t[shuffle]
    out = clean_track(lon, lat, t, limits=LIMITS)
    r = out.report
    assert r.kept + r.duplicates + r.already_stored + r.spikes == r.received == len(t)
    assert len(np.unique(out.keep)) == len(out.keep) == r.kept
    assert np.all(np.diff(t[out.keep]) > 0)
    assert r.kept == 0 or bool(out.seg_start[0])
    assert r.segments == int(out.seg_start.sum())
    again = clean_track(lon[out.keep], lat[out.keep], t[out.keep], limits=LIMITS)
    assert again.report.kept == r.kept
    assert again.seg_start.tolist() == out.seg_start.tolist()
    # within a segment, every leg keeps to the limits
    k = out.keep
    dist = haversine_m(lon[k][:-1], lat[k][:-1], lon[k][1:], lat[k][1:])
    dt_s = np.diff(t[k]) / 1e6
    inside = ~out.seg_start[1:]
    assert np.all(dist[inside] <= LIMITS.max_speed_mps * dt_s[inside] + LIMITS.jitter_m + 1e-6)
    assert np.all(dt_s[inside] <= LIMITS.max_gap_s)


def test_a_fix_sent_at_a_held_glitchs_time_takes_its_place() -> None:
    lon, lat, t = walk(30)
    bad = lat.copy()
    bad[20:23] += 0.02
    stored = _stored(lon[:20], lat[:20], t[:20], [True] + [False] * 19)
    held = _stored(lon[20:23], bad[20:23], t[20:23], [False] * 3)
    out = clean_track(lon[20:], lat[20:], t[20:], limits=LIMITS, stored=stored, held=held,
                      open_end=True)
    r = out.report
    assert (r.kept, r.already_stored, r.held_replaced, r.held_dropped) == (10, 0, 3, 0)
    assert out.keep.tolist() == list(range(10)) and out.release.tolist() == [10, 11, 12]


def test_one_fix_at_a_time_drops_a_zigzag_of_glitches_as_the_whole_track_does() -> None:
    lon, lat, t = walk(30)
    for i, north in ((20, 1), (21, -1), (22, 1)):
        lat[i] += north * 600 / M_PER_DEG_LAT
    whole = clean_track(lon, lat, t, limits=LIMITS, open_end=True)
    assert whole.keep.tolist() == list(range(20)) + list(range(23, 30))
    kept = list(range(20))
    held: list[int] = []
    for i in range(20, 30):
        known = _stored(lon[kept], lat[kept], t[kept], [False] * len(kept))
        out = clean_track(lon[i:i + 1], lat[i:i + 1], t[i:i + 1], limits=LIMITS, stored=known,
                          held=_stored(lon[held], lat[held], t[held], [False] * len(held)),
                          open_end=True)
        index = [i, *held]  # the upload's one fix, then the held ones
        kept = sorted(kept + [index[k] for k in out.keep.tolist()])
        held = sorted(index[k] for k in out.hold.tolist())
        assert all(k < h for k in kept for h in held)
    assert kept == whole.keep.tolist() and held == []


def test_a_ride_of_fast_legs_is_not_held_once_longer_than_a_burst() -> None:
    lon, lat, t = walk(30, speed=8.0)  # a bicycle, at the walking limits: every leg is fast
    out = clean_track(lon, lat, t, limits=LIMITS, open_end=True)
    assert (out.report.kept, out.report.held, out.report.jumps) == (30, 0, 29)
    lon_w, lat_w, t_w = walk(20)
    lon_b, lat_b, t_b = walk(4, speed=8.0, start_s=100.0, lat0=float(lat_w[-1]) + 0.0005)
    for n_bike, held in ((3, 3), (4, 0)):  # after a walk: held until longer than a burst
        out = clean_track(np.r_[lon_w, lon_b[:n_bike]], np.r_[lat_w, lat_b[:n_bike]],
                          np.r_[t_w, t_b[:n_bike]], limits=LIMITS, open_end=True)
        assert (out.report.kept, out.report.held) == (20 + n_bike - held, held)


@settings(max_examples=150, deadline=None)
@given(noisy, st.integers(1, 59))
def test_held_fixes_are_accounted_for_and_later_than_every_kept_one(
        steps: list[tuple[float, float, int]], cut: int) -> None:
    lon = 119.3 + np.cumsum([s[0] for s in steps]) / M_PER_DEG_LAT
    lat = 26.08 + np.cumsum([s[1] for s in steps]) / M_PER_DEG_LAT
    t = T0 + np.cumsum([s[2] + 1 for s in steps]).astype(np.int64) * 1_000_000
    cut = min(cut, len(t))
    first = clean_track(lon[:cut], lat[:cut], t[:cut], limits=LIMITS, open_end=True)
    r = first.report
    assert r.kept + r.spikes + r.held == r.received == cut
    if len(first.hold) and len(first.keep):
        assert t[first.hold].min() > t[first.keep].max()
    kept, hold = first.keep, first.hold
    stored = _stored(lon[kept], lat[kept], t[kept], first.seg_start.tolist())
    held = _stored(lon[hold], lat[hold], t[hold], [False] * len(hold))
    rest = slice(cut, len(t))
    second = clean_track(lon[rest], lat[rest], t[rest], limits=LIMITS, stored=stored,
                         held=held, open_end=True)
    r2 = second.report
    assert r2.kept + r2.spikes + r2.held == r2.received == len(t) - cut
    assert r2.released + r2.held_dropped + r2.still_held + r2.held_replaced == len(hold)
    n = len(t) - cut
    assert sorted(second.release.tolist()) == sorted(
        set(range(n, n + len(hold))) - set(second.hold.tolist()))
    assert r2.held_replaced == 0  # the second part's times differ from the first's
    both = np.r_[t[rest], held.t_us]
    if len(second.hold):
        assert both[second.hold].min() > max(both[second.keep].max(initial=0),
                                             stored.t_us.max(initial=0))


def _reference_drop_spikes(lon: np.ndarray, lat: np.ndarray, t: np.ndarray, fixed: np.ndarray,
                           limits: Limits) -> np.ndarray:
    """The spike rule written plainly, run by run (what the vectorised passes must match)."""

    def kind(a: int, b: int) -> str:
        dt_s = (t[b] - t[a]) / 1e6
        dist = float(haversine_m(lon[a:a + 1], lat[a:a + 1], lon[b:b + 1], lat[b:b + 1])[0])
        if dt_s > limits.max_gap_s:
            return "gap"
        return "fast" if dist > limits.max_speed_mps * dt_s + limits.jitter_m else "ok"

    alive = np.ones(len(t), dtype=bool)
    while True:
        pos: list[int] = np.flatnonzero(alive).tolist()
        runs: list[list[int]] = [[pos[0]]] if pos else []
        legs: list[str] = []
        for a, b in itertools.pairwise(pos):
            legs.append(kind(a, b))
            if legs[-1] == "ok":
                runs[-1].append(b)
            else:
                runs.append([b])
        # legs between runs, in order: the leg after run r is the r-th non-ok leg
        between = [leg for leg in legs if leg != "ok"]
        est = [len(r) > limits.max_burst or bool(fixed[r].any()) for r in runs]
        dropped = False
        previous = False
        for r, run in enumerate(runs):
            if est[r] or previous:
                previous = False
                continue
            in_fast = r > 0 and between[r - 1] == "fast"
            out_fast = r < len(runs) - 1 and between[r] == "fast"
            if in_fast and out_fast:
                spike = kind(runs[r - 1][-1], runs[r + 1][0]) == "ok"
            else:
                spike = (in_fast and est[r - 1]) or (out_fast and est[r + 1])
            if spike:
                alive[run] = False
                dropped = True
            previous = spike
        if not dropped:
            return alive


@settings(max_examples=150, deadline=None)
@given(noisy, st.lists(st.booleans(), min_size=60, max_size=60), st.integers(1, 4))
def test_the_vectorised_spike_rule_matches_the_plain_one(
        steps: list[tuple[float, float, int]], fixed_flags: list[bool], burst: int) -> None:
    lon = 119.3 + np.cumsum([s[0] for s in steps]) / M_PER_DEG_LAT
    lat = 26.08 + np.cumsum([s[1] for s in steps]) / M_PER_DEG_LAT
    t = T0 + np.cumsum([s[2] + 1 for s in steps]).astype(np.int64) * 1_000_000
    fixed = np.array(fixed_flags[:len(t)])
    limits = Limits(max_burst=burst)
    expected = _reference_drop_spikes(lon, lat, t, fixed, limits)
    assert _drop_spikes(lon, lat, t, fixed, limits).tolist() == expected.tolist()
