"""Fixtures of the API tests."""

from __future__ import annotations

import pytest

from tests.api.test_open311 import build_small_city


@pytest.fixture
def small_city(db_url: str) -> dict[str, int]:
    """Open311's small city (grids G1, G2 with a worker each; categories E1, E2): grid code
    -> id of its worker."""
    return build_small_city(db_url)
