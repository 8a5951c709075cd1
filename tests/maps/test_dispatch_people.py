"""The dispatch map's nearest people: groups of labels and the age of their positions."""

from __future__ import annotations

import datetime as dt

from geo.settings import Settings
from geo.store.map_dispatch import Person
from maps.pages.dispatch import LABELS, _seen, _together

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def _person(k: int, east_m: float, seen: dt.datetime | None = NOW) -> Person:
    return Person(id=k, code=f"P{k}", name=f"人{k}", role="patrol", phone=None, team_code=None,
                  team_name=None, lon=120.0 + east_m / 96_490.0, lat=30.0, distance_m=100.0,
                  last_seen_at=seen)


def test_people_linked_by_a_chain_share_one_label() -> None:
    # 2 is 10 m from 1, 3 is 10 m from 2 but 20 m from 1: one group; 4 is far away
    people = [_person(1, 0), _person(2, 10), _person(3, 20), _person(4, 200)]
    groups = [[k for k, _ in g] for g in _together(people)]
    assert groups == [[1, 2, 3], [4]]


def test_old_positions_are_flagged_stale() -> None:
    labels, settings = LABELS["en"], Settings()
    assert "stale" not in _seen(_person(1, 0, NOW - dt.timedelta(hours=3)), NOW, labels,
                                settings)
    old = _seen(_person(1, 0, NOW - dt.timedelta(days=548)), NOW, labels, settings)
    assert "stale (548 d)" in old and "2025-06-02" in old
    assert _seen(_person(1, 0, None), NOW, labels, settings) == "—"
