"""Choropleth classes: mapclassify breaks, a ColorBrewer ramp and legend labels.

Schemes: ``quantiles`` (the same number of areas per class), ``equal_interval``
and ``head_tail_breaks`` (for heavy-tailed counts: classes split at the mean of
what lies above the previous mean; ``k`` is then the most classes). With fewer
distinct values than ``k`` there are as many classes as values. For whole
numbers (counts) the bounds are whole numbers too, so no two classes share a
label and every class can hold a count. Values that are
None (no figure, e.g. a rate of nothing) get no class and the grey ``NO_DATA``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import branca.colormap as cm
import mapclassify
import numpy as np

Scheme = Literal["quantiles", "equal_interval", "head_tail_breaks"]
SCHEMES: tuple[str, ...] = ("quantiles", "equal_interval", "head_tail_breaks")
NO_DATA = "#d9d9d9"


@dataclass(frozen=True)
class Classes:
    """Upper bounds of the classes, their colours, each value's class (-1: no data) and
    the smallest value."""

    bins: list[float]
    colours: list[str]
    of_value: list[int]
    low: float = 0.0

    def colour(self, index: int) -> str:
        """The fill of the value at ``index`` (``NO_DATA`` when it has no class)."""
        k = self.of_value[index]
        return NO_DATA if k < 0 else self.colours[k]

    def labels(self, fmt: str = "{:,.0f}", *, integer: bool = False) -> list[str]:
        """``"a – b"`` per class; class i holds values above bin i-1 up to bin i
        (``integer``: counts, so a class starts one above the previous bound)."""
        out = []
        for i, upper in enumerate(self.bins):
            lower = self.low if i == 0 else self.bins[i - 1]
            if integer:
                lower = lower if i == 0 else math.floor(lower) + 1
                upper = math.floor(upper)
            out.append(fmt.format(lower) if lower >= upper
                       else f"{fmt.format(lower)} – {fmt.format(upper)}")
        return out


def classify(values: Sequence[float | None], scheme: Scheme = "quantiles", k: int = 5,
             *, reverse: bool = False) -> Classes:
    """Classes of ``values`` by ``scheme`` with at most ``k`` classes (YlOrRd ramp;
    ``reverse`` for figures where high is good, e.g. a resolution rate).
    """
    data = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if data.size == 0:
        return Classes([], [], [-1] * len(values))
    distinct = np.unique(data)
    k = max(1, min(k, len(distinct)))
    if k == 1:
        bins = [float(distinct[-1])]
    else:
        with warnings.catch_warnings():  # "not enough unique values": handled by k above
            warnings.simplefilter("ignore")
            if scheme == "quantiles":
                result = mapclassify.Quantiles(data, k=k)
            elif scheme == "equal_interval":
                result = mapclassify.EqualInterval(data, k=k)
            else:
                result = mapclassify.HeadTailBreaks(data)
        bins = sorted({float(b) for b in result.bins})[:k]
        bins[-1] = float(distinct[-1])
        if np.all(data == np.floor(data)):  # counts: a bound between two integers is the
            bins = sorted({math.floor(b) for b in bins})  # lower one (same classes, and
            # labels that neither overlap nor name a class no value can fall in)
    ramp = cm.linear.YlOrRd_09  # type: ignore[attr-defined]
    steps = [0.15 + 0.85 * i / max(1, len(bins) - 1) for i in range(len(bins))]
    colours = [ramp.rgb_hex_str(ramp.vmin + (ramp.vmax - ramp.vmin) * (1 - s if reverse else s))
               for s in steps]
    edges = np.array(bins)
    of_value = [-1 if v is None or math.isnan(v)
                else min(int(np.searchsorted(edges, v, side="left")), len(bins) - 1)
                for v in values]
    return Classes(bins, colours, of_value, float(distinct[0]))
