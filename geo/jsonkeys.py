"""JSON objects that give a key twice.

A JSON parser keeps one of two values given for the same key and drops the other
silently (``{"lon": 119.3, "lon": 26.08}`` is read as ``26.08``). Request bodies and
the records of incident files are refused instead (the same value twice is harmless
and let through). :class:`Pairs` is the object type that notices: pass it to
``ijson.items(..., map_type=Pairs)``, or :meth:`Pairs.from_pairs` to ``json.loads(...,
object_pairs_hook=Pairs.from_pairs)``; :func:`repeated_path` finds where it happened;
:func:`loads_unique` parses a whole document and refuses one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from geo.errors import InvalidInput


class Repeated(ValueError):
    """A key given twice in one JSON object with different values (args: key, first, second)."""


class Pairs(dict[str, Any]):
    """A parsed JSON object that remembers the first key given twice in it with different
    values (``repeated``: the key and both values; ``None`` when there is none).

    ``seen`` counts such objects built by the class: a reader parsing many records makes a
    class of its own (:meth:`counting`) and compares ``seen`` before and after a record to
    know, cheaply, that the record needs :func:`repeated_path`."""

    repeated: tuple[str, Any, Any] | None = None
    seen = 0

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and self.repeated is None and not same(self[key], value):
            self.repeated = (key, self[key], value)
            type(self).seen += 1
        dict.__setitem__(self, key, value)

    @classmethod
    def counting(cls) -> type[Pairs]:
        """A class of its own, whose ``seen`` only its objects count (one per reader)."""
        return type("Pairs", (cls,), {"seen": 0})

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> Pairs:
        """A ``json.loads`` ``object_pairs_hook`` that builds this class."""
        out = cls(pairs)
        if len(out) < len(pairs):
            try:
                unique_keys(pairs)
            except Repeated as exc:
                out.repeated = exc.args
                cls.seen += 1
        return out


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A ``json.loads`` ``object_pairs_hook`` that raises :class:`Repeated` (fast path)."""
    out = dict(pairs)
    if len(out) < len(pairs):
        first: dict[str, Any] = {}
        for key, value in pairs:
            if key in first and not same(first[key], value):
                raise Repeated(key, first[key], value)
            first.setdefault(key, value)
    return out


def repeated_path(node: Any, root: str = "") -> tuple[str, Any, Any] | None:
    """The path (``properties.k``, ``points[2].t``) of the first key given twice in the
    :class:`Pairs` tree ``node``, with its two values; ``None`` when there is none."""
    found = repeats(node, root, first=True)
    return found[0] if found else None


def repeats(node: Any, root: str = "", *, first: bool = False) -> list[tuple[str, Any, Any]]:
    """Every key given twice in the :class:`Pairs` tree ``node`` (path and both values), in
    document order; only the first when ``first``."""
    found: list[tuple[str, Any, Any]] = []
    for path, item in walk(node, root):
        if isinstance(item, Pairs) and item.repeated is not None:
            key, a, b = item.repeated
            found.append((f"{path}.{key}".lstrip("."), a, b))
            if first:
                break
    return found


def walk(node: Any, root: str = "") -> Iterator[tuple[str, Any]]:
    """Every value of the parsed JSON ``node`` with its path (``.k``, ``[2]``, from
    ``root``), in document order, the node itself first."""
    stack: list[tuple[str, Any]] = [(root, node)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}", v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))


def loads_unique(text: str | bytes, where: str = "") -> Any:
    """``text`` parsed as JSON; :class:`~geo.errors.InvalidInput` naming the path (after
    ``where``, a file's name) of a key given twice in one object with different values.
    Other parse errors are raised as ``json.loads`` raises them."""
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except Repeated:  # read again to find where: the common path parses once
        found = repeated_path(json.loads(text, object_pairs_hook=Pairs.from_pairs))
        assert found is not None
        path, a, b = found
        message = repeated_message(path, a, b)
        raise InvalidInput(f"{where}: {message}" if where else message,
                           field=f"{where}.{path}" if where else path, value=shown(b),
                           valid="each key once in an object") from None


def same(a: Any, b: Any) -> bool:
    """Equal as JSON (Python's ``1 == True == 1.0`` is not)."""
    if type(a) is type(b) and isinstance(a, str):
        return bool(a == b)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def shown(value: Any) -> str:
    """``value`` as JSON, cut to 80 characters, for a message."""
    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= 80 else text[:79] + "…"


def repeated_message(path: str, a: Any, b: Any) -> str:
    """The sentence that refuses a key given twice."""
    return f"{path} is given twice in one JSON object, as {shown(a)} and {shown(b)}"


#: Python reads integers of at most this many digits (``sys.get_int_max_str_digits``).
INT_DIGITS = 4300


class _LongInteger(str):
    """An integer too long for Python to read, kept as its digits."""


def long_integer(body: bytes) -> tuple[str, str] | None:
    """The path (``attrs.n[1]``, ``body`` at the top) and digits of the first integer of
    more than :data:`INT_DIGITS` digits in the JSON ``body``, which Python's parser refuses
    naming nothing; None when there is none or the body is not JSON for another reason."""
    try:
        data = json.loads(body, parse_int=lambda t: _LongInteger(t) if len(t) > INT_DIGITS
                          else int(t))
    except (ValueError, RecursionError):
        return None
    for path, item in walk(data):
        if isinstance(item, _LongInteger):
            return path.lstrip(".") or "body", str(item)
    return None
