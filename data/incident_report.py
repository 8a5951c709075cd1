"""The reject report of an import: every refused row with its reason and original values.

:class:`RejectWriter` writes it as CSV while the import runs (nothing is kept in
memory); :class:`Reject` is one refused row, as the summary also keeps a few.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from data.incident_io import cut
from geo.errors import unstorable

#: Columns that come first in every reject report.
REPORT_COLUMNS = ("row", "reason", "field", "value", "valid")


def writable(value: Any) -> Any:
    """``value`` with every unpaired surrogate in its texts (keys too) written as ``\\udXXX``:
    a rejected row keeps what it was given, and UTF-8 (the report, the JSON answer) cannot
    hold a lone surrogate."""
    if isinstance(value, str):
        return value if value.isascii() or unstorable(value) is None else \
            value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {writable(k): writable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [writable(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A value as one CSV cell: text as is, numbers plainly, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return cut(json.dumps(value, ensure_ascii=False, default=str))


@dataclass
class Reject:
    """A rejected row: its number, the reason and the field, value and what is valid."""

    row: int
    reason: str
    kind: str
    field: str | None = None
    value: Any = None
    valid: str | None = None
    original: Any = None

    def __post_init__(self) -> None:
        self.reason = writable(self.reason)
        self.value = writable(self.value)
        self.original = writable(self.original)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the original values included)."""
        return {"row": self.row, "reason": self.reason, "kind": self.kind, "field": self.field,
                "value": cell(self.value) if self.value is not None else None,
                "valid": self.valid, "original": self.original}


@dataclass
class RejectWriter:
    """Writes rejected rows to a CSV report as they come (nothing is kept in memory).

    The columns are ``row, reason, field, value, valid`` and then the original
    values, whole: the source's own columns for a CSV file, all of them and in
    their order (so the report can be fixed and imported again), one ``original``
    column with the record as JSON otherwise. When the source has a column of one
    of those five names, the report's own five are ``reject_row``, ``reject_reason``
    and so on, so that no original column is lost. Rows come roughly in file
    order: the few refused by the intake itself (e.g. swapped pairs) follow the
    validation rejects of the next batch.
    """

    path: Path
    fields: list[str] | None = None
    written: int = 0
    _out: IO[str] | None = None
    _writer: Any = None
    _columns: list[str] = field(default_factory=list)
    _own: int = len(REPORT_COLUMNS)

    def open(self, fields: list[str] | None) -> None:
        """Start the report for a source with these CSV ``fields`` (``None``: JSON)."""
        self.fields = fields
        extra = list(fields) if fields else ["original"]
        own = list(REPORT_COLUMNS)
        if set(own) & set(extra):
            own = [f"reject_{c}" for c in own]
        self._columns = [*own, *extra]
        self._out = self.path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._out)
        self._writer.writerow(self._columns)

    def write(self, reject: Reject) -> None:
        """Append one rejected row."""
        if self._writer is None:
            self.open(self.fields)
        head = [str(reject.row), reject.reason, reject.field or "",
                cell(reject.value), reject.valid or ""]
        original = reject.original
        if self.fields and isinstance(original, dict):
            tail = [cell(original.get(f)) for f in self._columns[self._own:]]
        elif self.fields and isinstance(original, list):
            tail = [cell(v) for v in original]
        else:
            tail = [cell(original)]
        self._writer.writerow(head + tail)
        self.written += 1

    def close(self) -> None:
        """Finish the report (an empty import still gets its header row)."""
        if self._writer is None:
            self.open(self.fields)
        if self._out is not None:
            self._out.close()
            self._out = None
