"""The compact text form of weekly shifts used in roster CSV files.

``"mon-fri 08:00-18:00; sat 09:00-12:00"``: entries separated by ``;``, each a
day list and a time range. Days are ``mon tue wed thu fri sat sun`` (any case),
ranges such as ``mon-fri`` (a range may wrap: ``fri-mon``), lists such as
``sat,sun`` or ``mon,wed-fri``, or ``daily``. Times are ``HH:MM`` from 00:00 to
23:59, and an end may be ``24:00``. An end not after its start runs past
midnight and belongs to the day it starts (``fri 22:00-06:00`` is Friday night);
an end equal to its start is a full 24 hours. An empty cell (or ``always``)
means always on duty. The meaning is the one of ``geo.assign``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from geo.assign import parse_shifts
from geo.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SHIFTS_VALID = ("entries separated by ';', each 'DAYS HH:MM-HH:MM' where DAYS is a day "
                "(mon tue wed thu fri sat sun), a range such as mon-fri, a list such as "
                "sat,sun, or daily; e.g. 'mon-fri 08:00-18:00; sat 09:00-12:00'; "
                "empty or 'always' = always on duty")
_ENTRY = re.compile(r"^(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*"
                    r"(?P<end>\d{1,2}:\d{2})$")


def _problem(text: str, why: str) -> InvalidInput:
    return InvalidInput(f"shifts {text!r}: {why}", field="shifts", value=text,
                        valid=SHIFTS_VALID)


_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(name: str, text: str) -> int:
    key = name.strip().lower()
    for names in (DAYS, _FULL):
        if key in names:
            return names.index(key)
    raise _problem(text, f"{name.strip()!r} is not a day")


def _days(spec: str, text: str) -> list[int]:
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if part.lower() == "daily":
            out.update(range(7))
        elif "-" in part:
            first, last = (_day(p, text) for p in part.split("-", 1))
            span = (last - first) % 7
            out.update((first + i) % 7 for i in range(span + 1))
        elif part:
            out.add(_day(part, text))
        else:
            raise _problem(text, "an empty day in the day list")
    return sorted(out)


def _time(value: str) -> str:
    hours, minutes = value.split(":")
    return f"{int(hours):02d}:{int(minutes):02d}"  # full-width ０８:３０ is 08:30, as the API says


def parse_shift_text(text: str) -> list[dict[str, Any]]:
    """Parse the compact text of shifts into the JSON form stored in ``duty.shifts``.

    Parameters
    ----------
    text : str
        For example ``"mon-fri 08:00-18:00; sat-sun 08:00-18:00"``.

    Returns
    -------
    list of dict
        ``[{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}, ...]``; empty
        for always on duty.

    Raises
    ------
    InvalidInput
        ``field="shifts"`` with the text and the accepted format.
    """
    stripped = text.strip()
    if stripped == "" or stripped.lower() == "always":
        return []
    shifts = []
    for entry in (e.strip() for e in stripped.split(";")):
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if not match:
            raise _problem(text, f"{entry!r} is not 'DAYS HH:MM-HH:MM'")
        shifts.append({"days": _days(match["days"], text), "start": _time(match["start"]),
                       "end": _time(match["end"])})
    try:
        parse_shifts(shifts)
    except InvalidInput as exc:
        raise _problem(text, exc.message) from exc
    return shifts


def _day_runs(days: Sequence[int]) -> str:
    ordered = sorted(set(days))
    if ordered == list(range(7)):
        return "daily"
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(DAYS[r[0]] if len(r) == 1 else f"{DAYS[r[0]]}-{DAYS[r[-1]]}" for r in runs)


def format_shifts(shifts: Sequence[Mapping[str, Any]]) -> str:
    """The compact text of stored shifts (the inverse of :func:`parse_shift_text`)."""
    return "; ".join(f"{_day_runs(s['days'])} {s['start']}-{s['end']}" for s in shifts)
