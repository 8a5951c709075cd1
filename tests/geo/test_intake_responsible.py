"""The worker fallback chain (pure): primary, backup, community manager, nearest, none."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.assign import DutyCandidate, Shift, choose_responsible, on_duty, parse_shifts
from geo.incidents.responsible import (
    MINUTES_PER_WEEK,
    RosterView,
    StreetWorker,
    choose_workers,
    community_and_street,
    minutes_of_week,
    week_mask,
)

SH = ZoneInfo("Asia/Shanghai")
CHAIN = (("S1", "街道", "street"), ("C1", "社区", "community"), ("G1", "网格", "grid"))
MONDAY_10 = dt.datetime(2024, 6, 3, 10, 0, tzinfo=SH)
SUNDAY_10 = dt.datetime(2024, 6, 9, 10, 0, tzinfo=SH)
OFFICE = parse_shifts([{"days": [0, 1, 2, 3, 4], "start": "08:30", "end": "17:30"}])
NIGHT = parse_shifts([{"days": [0, 1, 2, 3, 4, 5, 6], "start": "18:00", "end": "08:00"}])


def duty(duty_id: int, code: str, kind: str, shifts: tuple[Shift, ...] = (), *,
         role: str = "grid_worker", categories: set[str] | None = None,
         active: bool = True) -> DutyCandidate:
    return DutyCandidate(duty_id=duty_id, worker_id=duty_id, worker_code=code,
                         worker_name=f"name {code}", kind=kind, shifts=shifts,
                         categories=None if categories is None else frozenset(categories),
                         active=active, role=role)


def choose(view: RosterView, at: dt.datetime = MONDAY_10, category: str = "E1",
           lon: float = 120.0, lat: float = 30.0, grid: str | None = "G1") -> Any:
    return choose_workers(view, [grid], [CHAIN if grid else ()], [lon], [lat], [at],
                          [category], SH)[0]


# --------------------------------------------------------------------------- bitmaps

shift_st = st.builds(
    lambda days, start, end: {"days": sorted(days), "start": f"{start // 60:02d}:{start % 60:02d}",
                              "end": f"{end // 60:02d}:{end % 60:02d}"},
    st.sets(st.integers(0, 6), min_size=1), st.integers(0, 1439), st.integers(0, 1440))


@settings(max_examples=60, deadline=None)
@given(st.lists(shift_st, max_size=3), st.lists(st.integers(0, MINUTES_PER_WEEK - 1),
                                                min_size=1, max_size=40),
       st.integers(0, 59))
def test_week_mask_agrees_with_on_duty(raw: list[dict[str, Any]], minutes: list[int],
                                       second: int) -> None:
    shifts = parse_shifts(raw)
    mask = week_mask(shifts)
    monday = dt.datetime(2024, 6, 3, tzinfo=SH)
    for m in minutes:
        at = monday + dt.timedelta(minutes=m, seconds=second)
        assert bool(mask[m]) is on_duty(shifts, at, SH), (raw, m)


def test_minutes_of_week_follow_local_time_across_daylight_saving() -> None:
    chicago = ZoneInfo("America/Chicago")
    moments = [dt.datetime(2025, 3, 9, 7, 59, tzinfo=dt.UTC),   # 01:59 CST, Sunday
               dt.datetime(2025, 3, 9, 8, 0, tzinfo=dt.UTC),    # 03:00 CDT, Sunday
               dt.datetime(2025, 6, 2, 13, 5, 30, tzinfo=dt.UTC)]  # 08:05:30 CDT, Monday
    expected = [6 * 1440 + 119, 6 * 1440 + 180, 8 * 60 + 5]
    assert minutes_of_week(moments, chicago).tolist() == expected
    # Big batches take the vectorised (pandas) path: the same answers.
    many = moments * 20 + [dt.datetime(2025, 11, 2, 6, 30, tzinfo=dt.UTC)]  # 01:30 CDT, Sun
    assert minutes_of_week(many, chicago).tolist() == expected * 20 + [6 * 1440 + 90]
    naive = minutes_of_week([dt.datetime(2024, 6, 4, 0, 1)], SH)  # naive = local
    assert naive.tolist() == [1440 + 1]


# --------------------------------------------------------------------------- equivalence

duty_st = st.builds(
    lambda i, kind, raw, cats, active: duty(i, f"W{i % 4}", kind, parse_shifts(raw),
                                            categories=cats, active=active),
    st.integers(1, 50), st.sampled_from(["primary", "backup"]), st.lists(shift_st, max_size=2),
    st.one_of(st.none(), st.sets(st.sampled_from(["E1", "E2", "E3"]), min_size=1)),
    st.booleans())


@settings(max_examples=80, deadline=None)
@given(st.lists(duty_st, max_size=6, unique_by=lambda d: d.duty_id),
       st.lists(st.tuples(st.integers(0, 2 * MINUTES_PER_WEEK), st.sampled_from(["E1", "E2"])),
                min_size=1, max_size=20))
def test_batch_primary_and_backup_agree_with_choose_responsible(
        duties: list[DutyCandidate], asks: list[tuple[int, str]]) -> None:
    view = RosterView(duties={"G1": duties})
    ats = [MONDAY_10 + dt.timedelta(minutes=m) for m, _ in asks]
    cats = [c for _, c in asks]
    n = len(asks)
    got = choose_workers(view, ["G1"] * n, [CHAIN] * n, [120.0] * n, [30.0] * n, ats, cats, SH)
    for choice, at, cat in zip(got, ats, cats, strict=True):
        expected = choose_responsible(duties, at, SH, cat)
        if expected.worker is None:
            assert choice.worker_id is None and choice.rule == "none"
        else:
            assert (choice.rule, choice.duty_id) == (expected.rule, expected.worker.duty_id)


# --------------------------------------------------------------------------- the chain

def test_primary_then_backup_then_manager() -> None:
    view = RosterView(duties={
        "G1": [duty(1, "WG1", "primary", OFFICE), duty(2, "WB1", "backup", NIGHT)],
        "C1": [duty(3, "MC1", "primary", OFFICE, role="manager")],
    })
    assert choose(view).worker_code == "WG1" and choose(view).rule == "primary"
    night = MONDAY_10.replace(hour=22)
    assert (choose(view, night).worker_code, choose(view, night).rule) == ("WB1", "backup")
    # Sunday 10:00: nobody on G1, the manager works Mon-Fri: nobody at all.
    sunday = choose(view, SUNDAY_10)
    assert sunday.worker_id is None and sunday.rule == "none"
    assert "no worker of street S1" in sunday.reason
    # An inactive primary hands Monday morning over to the manager.
    view.duties["G1"][0] = duty(1, "WG1", "primary", OFFICE, active=False)  # type: ignore[index]
    monday = choose(view)
    assert (monday.worker_code, monday.rule, monday.duty_id) == ("MC1", "community_manager", 3)


def test_only_managers_count_for_the_community_rule() -> None:
    view = RosterView(duties={"C1": [duty(3, "DC1", "primary", role="dispatcher")]})
    assert choose(view).rule == "none"


def test_category_limits_are_respected_in_every_rule() -> None:
    view = RosterView(duties={
        "G1": [duty(1, "WG1", "primary", categories={"C0101"})],
        "C1": [duty(3, "MC1", "primary", role="manager", categories={"C0101", "E2"})],
    }, street_workers={"S1": [StreetWorker(9, "P1", "巡", 120.0, 30.001,
                                           duties=(((), frozenset({"E3"})),))]})
    assert choose(view, category="C0101").worker_code == "WG1"
    assert choose(view, category="E2").worker_code == "MC1"
    assert choose(view, category="E3").rule == "street_nearest"
    assert choose(view, category="E1").rule == "none"


def test_nearest_on_duty_worker_of_the_street() -> None:
    view = RosterView(street_workers={"S1": [
        StreetWorker(7, "P-FAR", "远", 120.01, 30.0),                       # ~963 m, on call
        StreetWorker(8, "P-NEAR", "近", 120.001, 30.0, duties=((NIGHT, None),)),  # ~96 m
        StreetWorker(9, "P-MID", "中", 120.003, 30.0),                      # ~289 m, on call
    ]})
    day = choose(view)
    assert (day.worker_code, day.rule) == ("P-MID", "street_nearest")
    assert 280 < day.distance_m < 300
    night = choose(view, MONDAY_10.replace(hour=23))
    assert night.worker_code == "P-NEAR" and 90 < night.distance_m < 100


def test_distance_ties_go_to_the_smallest_code() -> None:
    view = RosterView(street_workers={"S1": [StreetWorker(2, "B", "b", 120.001, 30.0),
                                             StreetWorker(1, "A", "a", 119.999, 30.0)]})
    assert choose(view).worker_code == "A"


def test_no_grid_means_nobody() -> None:
    view = RosterView(duties={"G1": [duty(1, "WG1", "primary")]})
    none = choose(view, grid=None)
    assert none.worker_id is None and "outside every grid" in none.reason


def test_reasons_say_what_was_missing() -> None:
    assert "no worker has a duty on grid G1" in choose(RosterView()).reason
    inactive = RosterView(duties={"G1": [duty(1, "WG1", "primary", active=False)]})
    assert "inactive" in choose(inactive).reason
    assert "no manager of community C1" in choose(RosterView()).reason
    # a grid right under a street: its manager level is the street's, not "community"
    [under] = choose_workers(RosterView(), ["G9"], [(CHAIN[0], ("G9", "网格", "grid"))],
                             [120.0], [30.0], [MONDAY_10], ["E1"], SH)
    assert "no manager of street S1" in under.reason, under.reason


def test_batch_groups_many_grids_and_times_like_one_by_one() -> None:
    rng = np.random.default_rng(7)
    view = RosterView(duties={
        f"G{g}": [duty(10 * g + 1, f"A{g}", "primary", OFFICE),
                  duty(10 * g + 2, f"B{g}", "backup", NIGHT, categories={"E1"})]
        for g in range(5)} | {"C1": [duty(99, "MC1", "primary", role="manager")]})
    grids = [f"G{int(rng.integers(0, 6))}" for _ in range(300)]  # G5 has no duties
    ats = [MONDAY_10 + dt.timedelta(minutes=int(rng.integers(0, MINUTES_PER_WEEK)))
           for _ in grids]
    cats = [str(rng.choice(["E1", "E2"])) for _ in grids]
    chains = [(*CHAIN[:2], (g, g, "grid")) for g in grids]
    batch = choose_workers(view, grids, chains, [120.0] * 300, [30.0] * 300, ats, cats, SH)
    for k in range(300):
        one = choose_workers(view, [grids[k]], [chains[k]], [120.0], [30.0], [ats[k]],
                             [cats[k]], SH)[0]
        assert batch[k] == one
    assert {c.rule for c in batch} == {"primary", "backup", "community_manager"}


def test_community_and_street_of_a_chain() -> None:
    assert community_and_street(CHAIN) == ("C1", "S1")
    beats = (("D01", "District 1", "district"), ("0111", "Beat 111", "beat"))
    assert community_and_street(beats) == ("D01", "D01")
    assert community_and_street((("X", "x", "grid"),)) == (None, "X")
    assert community_and_street(()) == (None, None)
