"""Point -> grid chain -> responsible worker: the rules, as pure functions (no database).

Boundary rule
-------------
A point covers-tests as inside every grid whose polygon *covers* it (PostGIS
``ST_Covers``), so a point exactly on a shared edge or vertex is inside all the
grids that meet there. The chain then picks, deterministically:

1. the finest grid: among the covering grids of the greatest ``depth``, the one
   with the smallest ``code`` (plain string comparison in Unicode code-point
   order, so ``"0122" < "122"`` and ``"A" < "a"``);
2. its ancestors, following ``parent_code`` through the covering grids;
3. any coarser depth the walk did not reach (a parent that does not cover the
   point, or a missing parent) is filled by the same rule: smallest code among
   the covering grids of that depth.

Shifts
------
A duty's ``shifts`` is a list of ``{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}``
with Monday = 0, in the configured local time zone. A shift is on from ``start``
(inclusive) to ``end`` (exclusive) on each listed day. When ``end`` is not after
``start`` the shift runs past midnight and belongs to the day it *starts*: a
Friday ``22:00``-``06:00`` shift covers Friday 22:00 to Saturday 06:00, and
``end == start`` is a full 24 hours. ``"24:00"`` is accepted as an end meaning
midnight. An empty list means always on duty.

Responsible worker
------------------
``choose_responsible`` tries its rules in order (``DEFAULT_RULES``): an active
primary (A角) on duty, then an active backup (B角) on duty. A duty limited to
categories is only chosen when the asked category is one of them (never when no
category is asked). Among several eligible duties the smallest worker code wins.
When no rule finds anyone the answer is ``None`` with the reason.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from geo.errors import InvalidInput

MINUTES_PER_DAY = 24 * 60
_HHMM = re.compile(r"^(\d{2}):(\d{2})\Z")
SHIFT_VALID = ('a list of {"days": [0..6] (Monday=0), "start": "HH:MM", "end": "HH:MM"} '
               '(00:00-23:59; end may also be 24:00; end <= start runs past midnight)')


@dataclass(frozen=True)
class Shift:
    """One weekly shift: ``days`` (Monday=0), ``start`` and ``end`` in minutes after midnight."""

    days: frozenset[int]
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``duty.shifts``."""
        return {"days": sorted(self.days), "start": _hhmm(self.start), "end": _hhmm(self.end)}


@dataclass(frozen=True)
class DutyCandidate:
    """A worker's duty on one grid, as the rules see it."""

    duty_id: int
    worker_id: int
    worker_code: str
    worker_name: str
    kind: str
    shifts: tuple[Shift, ...] = ()
    categories: frozenset[str] | None = None
    active: bool = True
    phone: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Choice:
    """The outcome of ``choose_responsible``: the duty chosen (or None), the rule, a reason."""

    worker: DutyCandidate | None
    rule: str
    reason: str | None = None


@dataclass(frozen=True)
class GridCandidate:
    """A grid that covers the point: what ``choose_chain`` needs to know about it."""

    code: str
    name: str
    level: str
    depth: int
    parent_code: str | None = None


# --------------------------------------------------------------------------- shifts

def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_time(value: Any, where: str, *, is_end: bool) -> int:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match:
        hours, minutes = int(match.group(1)), int(match.group(2))
        if (hours < 24 and minutes < 60) or (is_end and hours == 24 and minutes == 0):
            return hours * 60 + minutes
    valid = "a time HH:MM from 00:00 to 23:59" + (" (or 24:00)" if is_end else "")
    raise InvalidInput(f"{where} is {value!r}, not {valid}", field=where, value=value,
                       valid=valid)


def parse_shifts(raw: Any, *, field_name: str = "shifts") -> tuple[Shift, ...]:
    """Check and convert the JSON form of shifts.

    Parameters
    ----------
    raw : list of dict
        ``[{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}, ...]``; ``None`` or ``[]``
        means always on duty.
    field_name : str
        The field named in errors (``shifts[1].end`` and so on).

    Returns
    -------
    tuple of Shift

    Raises
    ------
    InvalidInput
        Naming the exact field, the value and what is valid.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise InvalidInput(f"{field_name} must be a list of shifts", field=field_name,
                           value=raw, valid=SHIFT_VALID)
    shifts = []
    for i, item in enumerate(raw):
        where = f"{field_name}[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"days", "start", "end"}:
            raise InvalidInput(f"{where} must have exactly the keys days, start and end",
                               field=where, value=item, valid=SHIFT_VALID)
        days = item["days"]
        ok_days = (isinstance(days, list | tuple) and len(days) > 0
                   and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6
                           for d in days))
        if not ok_days:
            raise InvalidInput(f"{where}.days is {days!r}, not a non-empty list of weekdays",
                               field=f"{where}.days", value=days,
                               valid="a non-empty list of integers 0..6 (Monday=0, Sunday=6)")
        start = _parse_time(item["start"], f"{where}.start", is_end=False)
        end = _parse_time(item["end"], f"{where}.end", is_end=True)
        shifts.append(Shift(days=frozenset(days), start=start, end=end))
    return tuple(shifts)


def _local(at: dt.datetime, tz: ZoneInfo | str) -> dt.datetime:
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    if at.tzinfo is None:
        return at.replace(tzinfo=zone)
    return at.astimezone(zone)


def on_duty(shifts: Iterable[Shift | Mapping[str, Any]], at: dt.datetime,
            tz: ZoneInfo | str) -> bool:
    """Whether ``shifts`` put a worker on duty at ``at``.

    Parameters
    ----------
    shifts : iterable of Shift or dict
        Parsed shifts or their JSON form; empty means always on duty.
    at : datetime
        The moment asked about; a naive datetime is read as local time in ``tz``.
    tz : ZoneInfo or str
        The time zone the shifts are written in.

    Returns
    -------
    bool
    """
    parsed = [s if isinstance(s, Shift) else parse_shifts([s])[0] for s in shifts]
    if not parsed:
        return True
    local = _local(at, tz)
    weekday = local.weekday()
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    yesterday = (weekday - 1) % 7
    for shift in parsed:
        if shift.end > shift.start:
            if weekday in shift.days and shift.start <= minute < shift.end:
                return True
            continue
        # Runs past midnight (or 24 hours when end == start): it belongs to its start day.
        if weekday in shift.days and minute >= shift.start:
            return True
        if yesterday in shift.days and minute < shift.end:
            return True
    return False


# --------------------------------------------------------------------------- responsible

Rule = Callable[[Sequence[DutyCandidate], dt.datetime, ZoneInfo | str, str | None],
                DutyCandidate | None]


def _serves(duty: DutyCandidate, category: str | None) -> bool:
    if duty.categories is None:
        return True
    return category is not None and category in duty.categories


def _on_duty_of_kind(kind: str) -> Rule:
    def rule(duties: Sequence[DutyCandidate], at: dt.datetime, tz: ZoneInfo | str,
             category: str | None) -> DutyCandidate | None:
        eligible = [d for d in duties if d.kind == kind and d.active and _serves(d, category)
                    and on_duty(d.shifts, at, tz)]
        return min(eligible, key=lambda d: (d.worker_code, d.duty_id), default=None)

    rule.__name__ = kind
    return rule


#: The rules tried in order; each is named by the ``rule`` of the ``Choice`` it makes.
DEFAULT_RULES: tuple[tuple[str, Rule], ...] = (
    ("primary", _on_duty_of_kind("primary")),
    ("backup", _on_duty_of_kind("backup")),
)


def _no_one_reason(duties: Sequence[DutyCandidate], category: str | None) -> str:
    if not duties:
        return "no worker has a duty on this grid"
    active = [d for d in duties if d.active]
    if not active:
        return "every worker with a duty on this grid is inactive"
    serving = [d for d in active if _serves(d, category)]
    if not serving:
        what = f"category {category!r}" if category else "requests without a category"
        return f"no active duty on this grid serves {what}"
    return "no primary or backup of this grid is on shift at this time"


def choose_responsible(duties: Sequence[DutyCandidate], at: dt.datetime, tz: ZoneInfo | str,
                       category: str | None = None, *,
                       rules: Sequence[tuple[str, Rule]] = DEFAULT_RULES) -> Choice:
    """The worker responsible for a grid at ``at``.

    Parameters
    ----------
    duties : sequence of DutyCandidate
        Every duty on the grid.
    at : datetime
        When; a naive datetime is local time in ``tz``.
    tz : ZoneInfo or str
        Time zone of the shifts.
    category : str, optional
        The incident category; duties limited to categories only serve those.
    rules : sequence of (name, rule)
        Tried in order; the first that returns a duty wins. Append rules to extend
        (community manager, nearest worker, ...).

    Returns
    -------
    Choice
        ``worker`` None with ``rule == "none"`` and a ``reason`` when nobody fits.
    """
    for name, rule in rules:
        found = rule(duties, at, tz, category)
        if found is not None:
            return Choice(worker=found, rule=name)
    return Choice(worker=None, rule="none", reason=_no_one_reason(duties, category))


# --------------------------------------------------------------------------- chain

def _pick(candidates: Iterable[GridCandidate]) -> GridCandidate | None:
    return min(candidates, key=lambda g: g.code, default=None)


def choose_chain(candidates: Sequence[GridCandidate]) -> list[GridCandidate]:
    """The chain of covering grids from coarsest to finest, by the module's boundary rule.

    Parameters
    ----------
    candidates : sequence of GridCandidate
        Every grid that covers the point (any order, any depth).

    Returns
    -------
    list of GridCandidate
        One grid per depth present among the candidates, coarsest first; empty
        when there are no candidates.
    """
    if not candidates:
        return []
    by_code = {g.code: g for g in candidates}
    deepest = max(g.depth for g in candidates)
    finest = _pick(g for g in candidates if g.depth == deepest)
    assert finest is not None
    chosen: dict[int, GridCandidate] = {finest.depth: finest}
    node = finest
    while node.parent_code is not None and node.parent_code in by_code:
        parent = by_code[node.parent_code]
        if parent.depth >= node.depth or parent.depth in chosen:
            break  # a malformed tree: let the fill rule decide the remaining depths
        chosen[parent.depth] = parent
        node = parent
    for depth in sorted({g.depth for g in candidates} - chosen.keys()):
        if depth < deepest:
            pick = _pick(g for g in candidates if g.depth == depth)
            assert pick is not None
            chosen[depth] = pick
    return [chosen[d] for d in sorted(chosen)]


def ties_of(chain: Sequence[GridCandidate], candidates: Sequence[GridCandidate]) -> list[str]:
    """Codes of the other covering grids at the finest depth (the point is on their boundary)."""
    if not chain:
        return []
    finest = chain[-1]
    return sorted(g.code for g in candidates if g.depth == finest.depth and g.code != finest.code)
