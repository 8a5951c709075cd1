"""H3 binning: exact cells, counts, mean positions, frames."""

from __future__ import annotations

from collections import Counter

import h3
import numpy as np
import pytest

from geo.h3bins import bin_points, cells_of


def _points(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(119.25, 119.33, n), rng.uniform(26.05, 26.11, n)


def test_cells_are_h3_cells() -> None:
    lon, lat = _points(500)
    cells = cells_of(lon, lat, 10)
    assert [h3.int_to_str(int(c)) for c in cells] == [
        h3.latlng_to_cell(float(y), float(x), 10) for x, y in zip(lon, lat, strict=True)]


def test_counts_and_mean_positions_match_a_plain_count() -> None:
    lon, lat = _points(20_000)
    bins = bin_points(lon, lat, 9)
    expected = Counter(h3.latlng_to_cell(float(y), float(x), 9)
                       for x, y in zip(lon, lat, strict=True))
    assert dict(zip(bins.cell_ids(), bins.count.tolist(), strict=True)) == expected
    assert bins.total == 20_000 and len(bins) == len(expected)
    first = bins.cell_ids()[0]
    inside = np.array([h3.latlng_to_cell(float(y), float(x), 9) == first
                       for x, y in zip(lon, lat, strict=True)])
    assert bins.lon[0] == pytest.approx(lon[inside].mean())
    assert bins.lat[0] == pytest.approx(lat[inside].mean())
    assert list(bins.cell) == sorted(bins.cell)


def test_frames_split_the_cells() -> None:
    lon = np.array([119.3, 119.3, 119.3, 119.31])
    lat = np.array([26.08, 26.08, 26.08, 26.09])
    bins = bin_points(lon, lat, 10, frame=[5, 5, 7, 5])
    rows = sorted(zip(bins.frame.tolist(), bins.cell_ids(), bins.count.tolist(), strict=True))
    a = h3.latlng_to_cell(26.08, 119.3, 10)
    b = h3.latlng_to_cell(26.09, 119.31, 10)
    assert rows == sorted([(5, a, 2), (5, b, 1), (7, a, 1)])


def test_empty_and_bad_input() -> None:
    empty = bin_points([], [], 9)
    assert len(empty) == 0 and empty.total == 0
    with pytest.raises(ValueError, match="resolution 13"):
        cells_of([119.3], [26.0], 13)
    with pytest.raises(ValueError, match="differ in length"):
        bin_points([1.0, 2.0], [1.0], 9)
