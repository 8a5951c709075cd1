"""Domain errors. The API maps each class to one HTTP status in ``api/errors.py``.

Every error names what was wrong, the value given and what would be valid, so
that a CLI user and an HTTP client get the same helpful message.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any


class DomainError(Exception):
    """Base class of every error patrolgrid reports to a user."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None,
                 valid: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.valid = valid
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: ``message`` plus field, value and what is valid."""
        out: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            out["field"] = self.field
            out["value"] = jsonable(self.value)
        if self.valid is not None:
            out["valid"] = self.valid
        out.update(self.extra)
        return encodable(out)


def encodable(value: Any) -> Any:
    """``value`` with every text UTF-8 can encode: an unpaired surrogate, which a JSON
    escape or a file can carry into a message or a value, written ``\\udXXX`` (the
    answer could not be sent: a 500)."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value


class InvalidInput(DomainError):
    """A field has a value that cannot be used (HTTP 422, CLI exit 2)."""


class NotFound(DomainError):
    """The thing asked for does not exist (HTTP 404)."""


class Conflict(DomainError):
    """The request clashes with the current state (HTTP 409)."""


class Busy(Conflict):
    """Other work held what the request needs for longer than it may wait; nothing was
    changed and the same request may succeed in a moment (HTTP 409 with ``Retry-After``;
    the CLI retries)."""

    #: Seconds a client should wait before it tries again (``Retry-After``).
    retry_after_s = 5


class ImportRefused(DomainError):
    """A commit was refused because validation found problems; nothing was written."""


#: The moments a time parameter may name: from 1970 to 2200. Within them a window, a day
#: or a look-back of days around the moment stays inside Python's and PostgreSQL's range
#: in every time zone (year 1 or 9999 overflowed there).
EARLIEST_MOMENT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST_MOMENT = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
MOMENT_VALID = "a moment from 1970-01-01 to 2199-12-31"


#: The largest UTC offset PostgreSQL takes with a ``timestamptz`` (Python takes up to 24 h).
PG_MAX_OFFSET = dt.timedelta(hours=15, minutes=59, seconds=59)


def storable_offset(moment: dt.datetime) -> dt.datetime:
    """``moment`` as it is, or in UTC when its offset is beyond what PostgreSQL takes
    (``+20:00`` is valid ISO 8601; the moment is the same, only written differently)."""
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > PG_MAX_OFFSET:
        return moment.astimezone(dt.UTC)
    return moment


def check_moment(moment: dt.datetime, field: str, value: Any = None) -> dt.datetime:
    """``moment`` (timezone-aware) when its date, read at its own offset, lies in
    [1970, 2200) (so ``1970-01-01`` in Shanghai is in, as the message says); else
    :class:`InvalidInput` naming ``field`` and the ``value`` given. An offset beyond
    PostgreSQL's range is turned into UTC (:func:`storable_offset`)."""
    wall = moment.replace(tzinfo=None)
    if not EARLIEST_MOMENT.replace(tzinfo=None) <= wall < LATEST_MOMENT.replace(tzinfo=None):
        raise InvalidInput(f"{field} {value if value is not None else moment!s} is out of "
                           "range", field=field, value=str(value if value is not None
                                                             else moment),
                           valid=MOMENT_VALID)
    return storable_offset(moment)


def check_day(day: dt.date, field: str) -> dt.date:
    """``day`` when it lies in [1970, 2200); else :class:`InvalidInput` naming ``field``."""
    if not EARLIEST_MOMENT.date() <= day < LATEST_MOMENT.date():
        raise InvalidInput(f"{field} {day.isoformat()} is out of range", field=field,
                           value=day.isoformat(), valid="a date from 1970-01-01 to 2199-12-31")
    return day


#: A JSON escape of what PostgreSQL cannot store: ``\u0000`` or a lone UTF-16 surrogate.
UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")

#: What :func:`storable_text` accepts, for error messages.
TEXT_VALID = "text without NUL characters (\\u0000) or unpaired surrogates (\\ud800-\\udfff)"


def unstorable(value: str) -> str | None:
    """Why PostgreSQL cannot store ``value`` as text (None: it can).

    JSON and URLs can carry both a NUL character and an unpaired UTF-16 surrogate
    (``"\\u0000"``, ``"\\ud800"``), which ``text`` and ``jsonb`` refuse.
    """
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (not valid Unicode)"
    return None


def storable_text(value: str, field: str) -> str:
    """``value`` when PostgreSQL can store it as text; otherwise :class:`InvalidInput`
    naming ``field``."""
    why = unstorable(value)
    if why is not None:
        raise InvalidInput(f"{field} {why}", field=field, value=shown_text(value)[:80],
                           valid=TEXT_VALID)
    return value


def shown_text(value: str) -> str:
    """``value`` printable and storable, for an error message: NUL as ``\\x00``, a lone
    surrogate as ``\\udcff``."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()


#: How deep a stored JSON value may nest (PostgreSQL and the answers' encoder have limits).
JSON_MAX_DEPTH = 64


def storable_json(value: Any, field: str) -> None:
    """Raise :class:`InvalidInput` naming ``field`` (and the key path) when a key or string
    inside the JSON value ``value`` cannot be stored by PostgreSQL's ``jsonb``, a number is
    not finite (NaN, ``1e999``: not JSON) or the value nests deeper than
    :data:`JSON_MAX_DEPTH`."""
    stack: list[tuple[str, Any, int]] = [(field, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise InvalidInput(f"{path or 'the value'} nests deeper than {JSON_MAX_DEPTH} "
                               "levels", field=path or field, value=None,
                               valid=f"JSON nested at most {JSON_MAX_DEPTH} levels deep")
        if isinstance(item, str):
            storable_text(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{path} is {item}, not a finite number", field=path,
                               value=str(item), valid="finite numbers (JSON has no NaN or "
                               "infinity)")
        elif isinstance(item, dict):
            for key, inner in item.items():
                storable_text(str(key), path)
                stack.append((f"{path}.{key}", inner, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", inner, depth + 1) for i, inner in enumerate(item))


def jsonable(value: Any) -> Any:
    """``value`` as JSON can carry it: NaN and infinities as their text, lists kept, any
    other object as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)
