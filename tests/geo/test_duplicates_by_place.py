"""The duplicate search of a bulk batch found by place gives what it finds by time.

A file without report times (every row "now") or with dates only puts a whole batch
in one window: found by time, its pairs grew with the square of the rows (5,000 rows
took 2.6 GB, 60,000 were killed). Past ``PAIR_LIMIT`` they are found by place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.incidents import duplicates_batch
from geo.incidents.duplicates_kept import ImportedRows
from geo.settings import Settings

RULE = Settings(database_url="postgresql+psycopg://unused@127.0.0.1/unused",
                duplicate_radius_m=50.0, duplicate_window_h=2.0)
HOUR = 3_600_000_000


def _rows(rng: np.random.Generator, n: int, first_id: int, *, hours: float,
          metres: float) -> dict[str, Any]:
    return {"ids": list(range(first_id, first_id + n)),
            "categories": rng.choice(["A", "B", "C"], n).tolist(),
            "us": (rng.uniform(0, hours, n) * HOUR).astype(np.int64) + 1_700_000_000_000_000,
            "lon": (119.3 + rng.uniform(0, metres, n) / 100_000).tolist(),
            "lat": (26.08 + rng.uniform(0, metres, n) / 111_000).tolist()}


def _kept(rng: np.random.Generator, n: int, *, hours: float, metres: float) -> ImportedRows:
    kept = ImportedRows()
    rows = _rows(rng, n, 1, hours=hours, metres=metres)
    for k in range(0, n, 97):  # in pieces, as batches are added
        kept.add(rows["ids"][k:k + 97], rows["categories"][k:k + 97], rows["us"][k:k + 97],
                 rows["lon"][k:k + 97], rows["lat"][k:k + 97],
                 (rng.random(len(rows["ids"][k:k + 97])) < 0.2).tolist())
    return kept


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.integers(0, 600),
       st.sampled_from([0.0, 1.0, 30.0]), st.sampled_from([80.0, 400.0]))
def test_by_place_matches_by_time(seed: int, n: int, stored: int, hours: float,
                                  metres: float) -> None:
    rng = np.random.default_rng(seed)
    kept = _kept(rng, stored, hours=hours, metres=metres)
    batch = _rows(rng, n, 10_000, hours=hours, metres=metres)
    by_time = duplicates_batch.match(**batch, settings=RULE, imported=kept)
    limit = duplicates_batch.PAIR_LIMIT
    try:
        duplicates_batch.PAIR_LIMIT = -1  # every batch by place
        by_place = duplicates_batch.match(**batch, settings=RULE, imported=kept)
    finally:
        duplicates_batch.PAIR_LIMIT = limit
    assert by_place == by_time


def test_a_batch_in_one_window_is_found_by_place(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    kept = _kept(rng, 3000, hours=0.0, metres=2000.0)
    batch = _rows(rng, 3000, 10_000, hours=0.0, metres=2000.0)
    calls: list[int] = []
    by_place = duplicates_batch._by_place

    def spy(*args: Any, **kwargs: Any) -> Any:
        targets, chunks = by_place(*args, **kwargs)

        def counted() -> Iterator[Any]:
            for pf, po in chunks:
                calls.append(len(pf))
                yield pf, po

        return targets, counted()

    monkeypatch.setattr(duplicates_batch, "PAIR_LIMIT", 1_000_000)
    monkeypatch.setattr(duplicates_batch, "_by_place", spy)
    found = duplicates_batch.match(**batch, settings=RULE, imported=kept)
    # by time: 3,000 x 6,000 rows of a category third in one window = 6M pairs; by place
    # only the rows within about 50 m of each other
    assert len(calls) >= 3 and sum(calls) < 200_000  # up to 1,000 rows a chunk
    assert found and all(target < source for source, target in found.items()
                         if target >= 10_000)


def _all_pairs_first(pf: np.ndarray, po: np.ndarray, t: Any, radius: float) -> dict[int, int]:
    """The rule as it was written first: every candidate pair measured, then the best."""
    pf, po = duplicates_batch.candidate_pairs(pf, po, t, radius)
    _, _, dist = duplicates_batch._GEOD.inv(t.lon[pf], t.lat[pf], t.lon[po], t.lat[po])
    near = np.asarray(dist) <= radius
    pf, po = pf[near], po[near]  # still sorted by row, best first
    first = np.concatenate(([True], pf[1:] != pf[:-1])) if pf.size else np.zeros(0, bool)
    return {int(t.id[a]): int(t.id[b]) for a, b in zip(pf[first], po[first], strict=True)}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.sampled_from([30.0, 60.0, 120.0]))
def test_measuring_pairs_lazily_finds_the_same_first_match(seed: int, n: int,
                                                           metres: float) -> None:
    """A row's pairs are measured best first until one is within the radius (a crowd on one
    point measured every pair: quadratic); the answer is the one of measuring them all."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 2 * n))
    rows = _rows(rng, n + k, 1, hours=0.5, metres=metres)
    t = duplicates_batch._Targets(
        id=np.asarray(rows["ids"], np.int64), us=rows["us"],
        lon=np.asarray(rows["lon"]), lat=np.asarray(rows["lat"]),
        child=np.concatenate((np.zeros(n, bool), rng.random(k) < 0.3)),
        new=np.concatenate((np.ones(n, bool), np.zeros(k, bool))))
    pf = np.repeat(np.arange(n), n + k)
    po = np.tile(np.arange(n + k), n)
    expected = _all_pairs_first(pf, po, t, 50.0)
    assert duplicates_batch._first_matches(pf, po, t, 50.0) == expected
