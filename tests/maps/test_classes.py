"""Choropleth classes of counts: whole-number bounds, labels that do not overlap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maps.pages.classes import classify


def test_counts_get_whole_bounds_and_disjoint_labels() -> None:
    values = [0, 0, 0, 1, 2]  # quantile bounds 0, 0.67, 2: the middle class holds no count
    classes = classify(values, "quantiles", 5)
    labels = classes.labels(integer=True)
    assert labels == ["0", "1 – 2"]
    assert [labels[k] for k in classes.of_value] == ["0", "0", "0", "1 – 2", "1 – 2"]


@given(st.lists(st.integers(0, 8), min_size=1, max_size=30),
       st.sampled_from(["quantiles", "equal_interval", "head_tail_breaks"]),
       st.integers(1, 9))
def test_every_count_lies_in_its_labelled_class(values: list[int], scheme: str, k: int) -> None:
    classes = classify(values, scheme, k)  # type: ignore[arg-type]
    labels = classes.labels(integer=True)
    ranges = [(int(low), int(high or low)) for low, _, high in
              (label.partition(" – ") for label in labels)]
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high < low, labels  # disjoint and in order
    for value, index in zip(values, classes.of_value, strict=True):
        low, high = ranges[index]
        assert low <= value <= high, (value, labels)


def test_rates_keep_their_fractional_bounds() -> None:
    classes = classify([0.1, 0.25, 0.5, 0.75, 0.9], "equal_interval", 4)
    assert classes.bins[0] == pytest.approx(0.3)
