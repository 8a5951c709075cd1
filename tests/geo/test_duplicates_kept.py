"""The memory of a bulk import's duplicate search: stretches read once, pairs by time."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.incidents.duplicates_kept import ImportedRows

spans = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=6).map(
    lambda xs: [(a, a + n) for a, n in xs])


def _disjoint_sorted(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    points = sorted({t for a, b in items for t in range(a, b)})
    out: list[tuple[int, int]] = []
    for t in points:
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], t + 1)
        else:
            out.append((t, t + 1))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(spans, min_size=1, max_size=5))
def test_each_instant_is_read_once(batches: list[list[tuple[int, int]]]) -> None:
    kept = ImportedRows()
    read: set[int] = set()
    for batch in batches:
        wanted = _disjoint_sorted(batch)
        gaps = kept._gaps(wanted)
        got = {t for a, b in gaps for t in range(a, b)}
        assert got == {t for a, b in wanted for t in range(a, b)} - read
        assert not got & read
        assert all(a < b for a, b in gaps)
        for gap in gaps:
            kept._cover(gap)
        read |= got
        assert kept._read == _disjoint_sorted([(t, t + 1) for t in read])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("AB"), st.integers(0, 100)), max_size=40),
       st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 100)), min_size=1,
                max_size=20), st.integers(0, 15))
def test_near_finds_every_pair_of_a_category_within_the_window(
        stored: list[tuple[str, int]], batch: list[tuple[str, int]], w: int) -> None:
    kept = ImportedRows()
    for k in range(0, len(stored), 7):  # added in pieces, as batches are
        part = stored[k:k + 7]
        kept.add(list(range(k, k + len(part))), [c for c, _ in part],
                 np.asarray([t for _, t in part], np.int64), [0.0] * len(part),
                 [0.0] * len(part), [False] * len(part))
    pf, ids, times, *_ = kept.near([c for c, _ in batch],
                                   np.asarray([t for _, t in batch], np.int64), w)
    got = sorted(zip(pf.tolist(), ids.tolist(), strict=True))
    expected = sorted((j, i) for j, (c, t) in enumerate(batch)
                      for i, (d, u) in enumerate(stored) if c == d and abs(t - u) <= w)
    assert got == expected
    assert all(stored[i][1] == t for i, t in zip(ids.tolist(), times.tolist(), strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("AB"), st.integers(0, 1000)), min_size=1,
                         max_size=30), max_size=12))
def test_kept_rows_stay_in_few_sorted_runs(batches: list[list[tuple[str, int]]]) -> None:
    kept = ImportedRows()
    added: dict[str, list[tuple[int, int]]] = {}
    next_id = 0
    for batch in batches:
        ids = list(range(next_id, next_id + len(batch)))
        next_id += len(batch)
        kept.add(ids, [c for c, _ in batch], np.asarray([t for _, t in batch], np.int64),
                 [0.0] * len(batch), [0.0] * len(batch), [False] * len(batch))
        for i, (c, t) in zip(ids, batch, strict=True):
            added.setdefault(c, []).append((t, i))
    for cat, rows in added.items():
        runs = kept.by_category[cat]
        sizes = [len(r[0]) for r in runs]
        # each run more than twice the next: about log2(rows) runs, each row copied as often
        assert all(a > 2 * b for a, b in pairwise(sizes))
        assert len(runs) <= max(1, len(rows)).bit_length()
        for run in runs:
            assert (np.diff(run[0]) >= 0).all()
        got = sorted((int(t), int(i)) for run in runs for t, i in zip(run[0], run[1],
                                                                         strict=True))
        assert got == sorted(rows)
