"""The pure rules of geo.assign: shifts, the responsible worker, the grid chain."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from geo.assign import (
    DEFAULT_RULES,
    DutyCandidate,
    GridCandidate,
    choose_chain,
    choose_responsible,
    on_duty,
    parse_shifts,
    ties_of,
)
from geo.errors import InvalidInput

SH = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


def local(day: str, hhmm: str) -> dt.datetime:
    """A Shanghai local time; 2024-06-03 is a Monday."""
    return dt.datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=SH)


MON, TUE, FRI, SAT, SUN = "2024-06-03", "2024-06-04", "2024-06-07", "2024-06-08", "2024-06-09"
NEXT_MON = "2024-06-10"


def test_the_calendar_used_by_these_tests() -> None:
    assert [dt.date.fromisoformat(d).weekday() for d in (MON, TUE, FRI, SAT, SUN, NEXT_MON)] \
        == [0, 1, 4, 5, 6, 0]


# --------------------------------------------------------------------------- shifts

@pytest.mark.parametrize(("day", "hhmm", "expected"), [
    (MON, "07:59", False), (MON, "08:00", True), (MON, "16:59", True), (MON, "17:00", False),
    (TUE, "09:00", False), (SUN, "09:00", False),
])
def test_day_shift_start_inclusive_end_exclusive(day: str, hhmm: str, expected: bool) -> None:
    shifts = [{"days": [0], "start": "08:00", "end": "17:00"}]
    assert on_duty(shifts, local(day, hhmm), SH) is expected


@pytest.mark.parametrize(("day", "hhmm", "expected"), [
    (FRI, "21:59", False), (FRI, "22:00", True), (FRI, "23:30", True), (SAT, "00:00", True),
    (SAT, "05:59", True), (SAT, "06:00", False), (SAT, "23:00", False),
    # 03:00 on Friday belongs to a Thursday night shift, which is not listed.
    (FRI, "03:00", False),
])
def test_overnight_shift_belongs_to_the_day_it_starts(day: str, hhmm: str,
                                                      expected: bool) -> None:
    shifts = [{"days": [4], "start": "22:00", "end": "06:00"}]
    assert on_duty(shifts, local(day, hhmm), SH) is expected


def test_sunday_night_shift_runs_into_monday() -> None:
    shifts = [{"days": [6], "start": "22:00", "end": "02:00"}]
    assert on_duty(shifts, local(NEXT_MON, "01:00"), SH)
    assert not on_duty(shifts, local(MON, "03:00"), SH)
    assert not on_duty(shifts, local(SAT, "23:00"), SH)


def test_shifts_are_read_in_the_given_time_zone() -> None:
    shifts = [{"days": [0], "start": "08:00", "end": "17:00"}]
    # 00:30 UTC on Monday is 08:30 in Shanghai; 09:30 UTC is 17:30 there.
    assert on_duty(shifts, dt.datetime(2024, 6, 3, 0, 30, tzinfo=UTC), SH)
    assert not on_duty(shifts, dt.datetime(2024, 6, 3, 9, 30, tzinfo=UTC), SH)
    # The same instants in London (UTC+1 in June): 01:30 and 10:30.
    assert not on_duty(shifts, dt.datetime(2024, 6, 3, 0, 30, tzinfo=UTC), "Europe/London")
    assert on_duty(shifts, dt.datetime(2024, 6, 3, 9, 30, tzinfo=UTC), "Europe/London")
    # Sunday 23:30 UTC is Monday 07:30 in Shanghai: not yet.
    assert not on_duty(shifts, dt.datetime(2024, 6, 2, 23, 30, tzinfo=UTC), SH)
    # A naive time is local time.
    assert on_duty(shifts, dt.datetime(2024, 6, 3, 8, 30), SH)


def test_empty_shifts_mean_always_on_duty_and_equal_times_mean_24_hours() -> None:
    assert on_duty([], local(SUN, "03:00"), SH)
    day_long = [{"days": [0], "start": "08:00", "end": "08:00"}]
    assert on_duty(day_long, local(MON, "08:00"), SH)
    assert on_duty(day_long, local(TUE, "07:59"), SH)
    assert not on_duty(day_long, local(TUE, "08:00"), SH)
    assert not on_duty(day_long, local(MON, "07:59"), SH)


def test_end_of_day_can_be_written_24_00() -> None:
    shifts = parse_shifts([{"days": [1], "start": "18:00", "end": "24:00"}])
    assert on_duty(shifts, local(TUE, "23:59"), SH)
    assert not on_duty(shifts, local("2024-06-05", "00:00"), SH)
    assert shifts[0].as_dict() == {"days": [1], "start": "18:00", "end": "24:00"}


@pytest.mark.parametrize(("raw", "field"), [
    ([{"days": [7], "start": "08:00", "end": "17:00"}], "shifts[0].days"),
    ([{"days": [], "start": "08:00", "end": "17:00"}], "shifts[0].days"),
    ([{"days": ["1"], "start": "08:00", "end": "17:00"}], "shifts[0].days"),
    ([{"days": [1], "start": "8:00", "end": "17:00"}], "shifts[0].start"),
    ([{"days": [1], "start": "24:00", "end": "17:00"}], "shifts[0].start"),
    ([{"days": [1], "start": "08:00", "end": "17:60"}], "shifts[0].end"),
    ([{"days": [1], "start": "08:00", "end": "17:00"}, {"days": [2], "start": "08:00"}],
     "shifts[1]"),
    ({"days": [1]}, "shifts"),
])
def test_bad_shifts_name_the_field_and_what_is_valid(raw: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_shifts(raw)
    assert caught.value.field == field
    assert caught.value.valid


# --------------------------------------------------------------------------- responsible

def duty(duty_id: int, code: str, kind: str, shifts: list[dict[str, Any]] | None = None,
         categories: set[str] | None = None, active: bool = True) -> DutyCandidate:
    return DutyCandidate(duty_id=duty_id, worker_id=100 + duty_id, worker_code=code,
                         worker_name=f"name of {code}", kind=kind,
                         shifts=parse_shifts(shifts or []),
                         categories=None if categories is None else frozenset(categories),
                         active=active)


DAY: list[dict[str, Any]] = [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "17:00"}]
NIGHT: list[dict[str, Any]] = [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "17:00", "end": "08:00"}]


def test_primary_on_duty_wins_then_backup_when_primary_is_off_shift() -> None:
    duties = [duty(1, "W-B", "backup", NIGHT), duty(2, "W-A", "primary", DAY)]
    noon = choose_responsible(duties, local(MON, "12:00"), SH)
    assert (noon.worker and noon.worker.worker_code, noon.rule) == ("W-A", "primary")
    night = choose_responsible(duties, local(MON, "22:00"), SH)
    assert (night.worker and night.worker.worker_code, night.rule) == ("W-B", "backup")


def test_an_inactive_primary_is_skipped() -> None:
    duties = [duty(1, "W-A", "primary", active=False), duty(2, "W-B", "backup")]
    choice = choose_responsible(duties, local(MON, "12:00"), SH)
    assert choice.worker is not None and choice.worker.worker_code == "W-B"
    assert choice.rule == "backup"


def test_nobody_on_shift_gives_none_with_a_reason() -> None:
    duties = [duty(1, "W-A", "primary", DAY), duty(2, "W-B", "backup", DAY)]
    choice = choose_responsible(duties, local(SAT, "12:00"), SH)
    assert choice.worker is None and choice.rule == "none"
    assert choice.reason and "on shift" in choice.reason
    empty = choose_responsible([], local(SAT, "12:00"), SH)
    assert empty.worker is None and empty.reason and "no worker" in empty.reason


def test_category_limited_workers_serve_only_their_categories() -> None:
    duties = [duty(1, "W-A", "primary", categories={"fire"}), duty(2, "W-B", "backup")]
    fire = choose_responsible(duties, local(MON, "12:00"), SH, category="fire")
    assert fire.worker is not None and fire.worker.worker_code == "W-A"
    litter = choose_responsible(duties, local(MON, "12:00"), SH, category="litter")
    assert litter.worker is not None and litter.worker.worker_code == "W-B"
    unasked = choose_responsible(duties, local(MON, "12:00"), SH)
    assert unasked.worker is not None and unasked.worker.worker_code == "W-B"
    only_fire = choose_responsible(duties[:1], local(MON, "12:00"), SH, category="litter")
    assert only_fire.worker is None and only_fire.reason and "litter" in only_fire.reason


def test_among_several_eligible_primaries_the_smallest_worker_code_wins() -> None:
    duties = [duty(3, "W-C", "primary"), duty(1, "W-B", "primary"), duty(2, "W-D", "primary")]
    for order in itertools.permutations(duties):
        choice = choose_responsible(list(order), local(MON, "12:00"), SH)
        assert choice.worker is not None and choice.worker.worker_code == "W-B"


def test_rules_can_be_extended() -> None:
    fallback = duty(9, "W-MANAGER", "backup")

    def manager(duties: object, at: object, tz: object, category: object) -> DutyCandidate:
        return fallback

    rules = (*DEFAULT_RULES, ("community_manager", manager))
    choice = choose_responsible([duty(1, "W-A", "primary", DAY)], local(SAT, "12:00"), SH,
                                rules=rules)
    assert choice.worker is fallback and choice.rule == "community_manager"


# --------------------------------------------------------------------------- chain

def g(code: str, depth: int, parent: str | None = None) -> GridCandidate:
    return GridCandidate(code=code, name=f"name {code}", level=f"level{depth}", depth=depth,
                         parent_code=parent)


def test_finest_grid_is_the_smallest_code_and_ancestors_follow_parent_codes() -> None:
    # The point is on a street boundary: both streets, two communities, two grids cover it.
    candidates = [g("S-1", 1), g("S-2", 1), g("C-1", 2, "S-1"), g("C-2", 2, "S-2"),
                  g("G-2", 3, "C-1"), g("G-1", 3, "C-2")]
    for order in itertools.permutations(candidates):
        chain = choose_chain(list(order))
        # G-1 wins its depth; its ancestors are C-2 and S-2, not the smallest codes.
        assert [c.code for c in chain] == ["S-2", "C-2", "G-1"]
    assert ties_of(choose_chain(candidates), candidates) == ["G-2"]


def test_code_order_is_plain_string_order() -> None:
    chain = choose_chain([g("122", 3), g("0122", 3), g("a", 3), g("B", 3)])
    assert [c.code for c in chain] == ["0122"]


def test_levels_the_parent_walk_misses_are_filled_by_the_same_rule() -> None:
    # G-1's parent C-9 does not cover the point (a sliver): its depth is filled by C-2.
    candidates = [g("S-1", 1), g("C-3", 2, "S-1"), g("C-2", 2, "S-1"), g("G-1", 3, "C-9")]
    assert [c.code for c in choose_chain(candidates)] == ["S-1", "C-2", "G-1"]


def test_no_candidates_no_chain() -> None:
    assert choose_chain([]) == []
    assert ties_of([], []) == []
