"""The summary of an incident import: counts per outcome, rejects by reason, how fast."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from data.incident_report import Reject

#: Rejected rows kept in memory for an HTTP answer (all of them go to a report file).
KEEP_REJECTS = 1000


@dataclass
class ImportSummary:
    """What an import did: counts per outcome, rejects by reason, and how fast."""

    source: str
    format: str
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    unassigned: int = 0
    snapped: int = 0
    candidates: int = 0
    events: int = 0
    no_worker: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    fields: dict[str, str | None] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    def as_dict(self, *, rejects: bool = True) -> dict[str, Any]:
        """JSON-ready; ``rejects`` adds the first :data:`KEEP_REJECTS` rejected rows."""
        out: dict[str, Any] = {
            "source": self.source, "format": self.format, "rows": self.rows,
            "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "unassigned": self.unassigned, "snapped": self.snapped,
            "duplicate_candidates": self.candidates, "no_worker": self.no_worker,
            "by_rule": dict(self.by_rule.most_common()), "fields": self.fields,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else None,
        }
        if rejects:
            out["rejected_rows"] = [r.as_dict() for r in self.rejects]
            out["rejected_rows_truncated"] = self.rejected > len(self.rejects)
        return out
