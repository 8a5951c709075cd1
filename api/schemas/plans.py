"""Request bodies of ``/api/v1/plans``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_SQUARE = {"type": "Polygon", "coordinates": [[[119.29, 26.07], [119.30, 26.07], [119.30, 26.08],
                                               [119.29, 26.08], [119.29, 26.07]]]}
EDIT_EXAMPLES: dict[str, Any] = {
    "replace": {"value": {"op": "replace", "code": "G1", "geometry": _SQUARE}},
    "split": {"value": {"op": "split", "code": "G1", "new_code": "G1B", "line": {
        "type": "LineString", "coordinates": [[119.295, 26.06], [119.295, 26.09]]}}},
    "merge": {"value": {"op": "merge", "codes": ["G1", "G2"], "into": "G1"}},
    "move_cells": {"value": {"op": "move_cells", "from": "G1", "to": "G2",
                             "cells": ["8b40a8d1a6e6fff"]}},
    "create": {"value": {"op": "create", "code": "G9", "name": "新网格", "geometry": _SQUARE}},
    "retire": {"value": {"op": "retire", "code": "G2", "successor": "G1"}},
}


class PlanIn(BaseModel):
    """A new plan: its name and the parent whose children it redraws."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["乌塔社区 2027 redraw"])
    parent: str = Field(min_length=1, max_length=64, description="Code of a community or "
                        "street", examples=["350102001001"])


class SuggestIn(BaseModel):
    """A balanced partition of ``parent`` into ``k`` grids."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON true is not k = 1

    parent: str = Field(min_length=1, max_length=64)
    k: int = Field(ge=1, le=200, description="How many grids.")
    workload: str = Field("incidents", description="incidents, households or mix")
    weight: float = Field(0.5, ge=0, le=1, description="Share of incidents in mix.")
    lookback_days: float = Field(365.0, gt=0, le=3660)
    resolution: int | None = Field(None, ge=6, le=13, description="H3 resolution of the "
                                   "building blocks (default: chosen from the parent's area).")
    name: str | None = Field(None, max_length=200)
    seed: int = Field(0, ge=0, le=2**63 - 1,
                      description="Seed of the region growing (same seed, same answer).")
    compactness: float = Field(0.05, ge=0, le=100, description="Weight of compact shapes "
                               "against balance in the local search (0: balance only).")
