"""What happened to the demo incidents after intake: the closed loop, set-based.

The steps follow :data:`geo.incidents.loop.ALLOWED` and are written with the
loop's own functions: :func:`~geo.incidents.loop.change_status_many` for every
status change (it moves only incidents whose current status allows the change,
writes one event per incident at the planned time and bumps the version),
:func:`~geo.incidents.duplicates.merge` for merged duplicates, and
:func:`~geo.incidents.escalation.escalate_overdue` at the end. Evaluations are
written with one statement that does what :func:`~geo.incidents.loop.evaluate`
does (closed incidents only, version bumped, an ``evaluation`` event).

Plan of each incident (seeded; times after ``now`` do not happen, so recent
incidents are still open):

- a duplicate candidate is merged into the incident it repeats (60 %), half an
  hour or so after it was reported;
- an incident outside every grid, or without a worker, is rejected after a few
  hours ("outside our grids: handed to the local authority") once a day has
  passed; until then it waits in the dispatcher's queue;
- 3 % are rejected by the dispatcher (not a matter for city management);
- the others run the main line: dispatched (≈8 min), accepted (≈15 min), in
  progress (≈30 min), disposed (a log-normal share of the category's SLA: most
  in time, about one in ten late), verified (≈3 h), closed (≈1 h); 6 % fail
  verification once and are reworked; 1.5 % get stuck (accepted or in progress)
  and stay overdue;
- 65 % of closed incidents are evaluated by the reporter within a few days
  (mostly 4–5; late ones score lower).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import DomainError
from geo.incidents.duplicates import merge
from geo.incidents.loop import ALLOWED, PENDING_STATUSES, change_status_many

MIN = 60.0
HOUR = 3600.0
#: (status, actor, note) of the main line after intake, in order.
STEPS: tuple[tuple[str, str, str | None], ...] = (
    ("dispatched", "demo:dispatcher", None),
    ("accepted", "demo:worker", None),
    ("in_progress", "demo:worker", None),
    ("disposed", "demo:worker", "已处置，上传处置后照片"),
    ("in_progress", "demo:supervisor", "核查未通过，返工"),
    ("disposed", "demo:worker", "返工完成"),
    ("verified", "demo:supervisor", "核查通过"),
    ("closed", "demo:dispatcher", None),
)
REJECT_NOTE = "经核实不属于城市管理事项，已告知反映人"
OUTSIDE_NOTE = "不在本区网格范围内，已转交属地处理"
SCORES = (1, 2, 3, 4, 5)
COMMENTS = {5: "处理及时，非常满意", 4: "满意", 3: "基本满意", 2: "处理太慢", 1: "问题没有解决"}

_ROWS = text("""
SELECT i.id, i.status, extract(epoch FROM i.reported_at) AS t0, c.sla_hours,
       i.grid_code IS NULL OR i.worker_id IS NULL AS orphan, i.candidate_of
  FROM incident i JOIN category c ON c.code = i.category_code
 WHERE i.id = ANY(CAST(:ids AS bigint[]))
 ORDER BY i.id
""")

_EVALUATE = text("""
WITH scored AS (
    UPDATE incident AS i
       SET evaluation_score = v.score, evaluation_comment = v.comment, evaluated_at = v.at,
           version = i.version + 1
      FROM unnest(CAST(:ids AS bigint[]), CAST(:scores AS smallint[]), CAST(:comments AS text[]),
                  CAST(:ats AS timestamptz[])) AS v(id, score, comment, at)
     WHERE i.id = v.id AND i.status = 'closed' AND i.evaluation_score IS NULL
 RETURNING i.id, v.score, v.comment, v.at, i.version
)
INSERT INTO incident_event (incident_id, at, actor, from_status, to_status, note, data)
SELECT id, at, 'demo:reporter', 'closed', 'closed', comment,
       jsonb_build_object('kind', 'evaluation', 'score', score, 'version', version)
  FROM scored
""")


@dataclass
class HistoryReport:
    """How many incidents each step moved, and how many were merged or evaluated."""

    moved: Counter[str] = field(default_factory=Counter)
    merged: int = 0
    evaluated: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"moved": dict(self.moved), "merged": self.merged, "evaluated": self.evaluated}


def check_steps() -> None:
    """Refuse a plan the loop would not allow (the table in ``geo.incidents.loop``)."""
    status = "registered"
    for to_status, _, _ in STEPS:
        if to_status not in ALLOWED[status]:
            raise AssertionError(f"the demo history moves {status} -> {to_status}, "
                                 "which the loop does not allow")
        status = to_status
    for start in ("registered", "dispatched"):
        assert "rejected" in ALLOWED[start]
    for start in ("registered", "dispatched", "accepted"):
        assert "duplicate" in ALLOWED[start]


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(seconds), dt.UTC)


def _move(session: Session, report: HistoryReport, ids: np.ndarray, times: np.ndarray,
          status: str, actor: str, note: str | None) -> None:
    changes = [(int(i), _at(t)) for i, t in zip(ids, times, strict=True)]
    report.moved[status] += change_status_many(session, changes, status, actor=actor, note=note)


def _merge(session: Session, report: HistoryReport, ids: np.ndarray, into: np.ndarray,
           times: np.ndarray) -> None:
    """Merge each candidate into the incident it repeats (or where that one was merged)."""
    merged_into: dict[int, int] = {}
    for i, target, t in zip(ids, into, times, strict=True):
        target = int(target)
        while target in merged_into:
            target = merged_into[target]
        try:
            with session.begin_nested():
                merge(session, int(i), target, actor="demo:dispatcher",
                      note="同一事项，合并处理", at=_at(t))
        except DomainError:
            continue  # e.g. the incident it repeats was rejected meanwhile: leave it be
        merged_into[int(i)] = target
        report.merged += 1


def _main_line(rng: np.random.Generator, t0: np.ndarray, sla: np.ndarray) -> list[np.ndarray]:
    """Planned times of :data:`STEPS` (NaN: the step does not happen)."""
    n = len(t0)
    dispatched = t0 + rng.exponential(8 * MIN, n) + MIN
    accepted = dispatched + rng.exponential(15 * MIN, n) + MIN
    started = accepted + rng.exponential(30 * MIN, n) + MIN
    disposed = np.maximum(t0 + sla * rng.lognormal(np.log(0.45), 0.55, n), started + 10 * MIN)
    rework = rng.random(n) < 0.06
    redo = np.where(rework, disposed + rng.exponential(2 * HOUR, n) + MIN, np.nan)
    redone = redo + sla * 0.3 * rng.lognormal(0.0, 0.5, n)
    verified = np.where(rework, redone, disposed) + rng.exponential(3 * HOUR, n) + MIN
    closed = verified + rng.exponential(1 * HOUR, n) + MIN
    times = [dispatched, accepted, started, disposed, redo, redone, verified, closed]
    stuck = rng.random(n) < 0.015
    stop = np.where(rng.random(n) < 0.5, 2, 3)  # stuck after 'accepted' or 'in_progress'
    for k in range(len(times)):
        times[k] = np.where(stuck & (k >= stop), np.nan, times[k])
    return times


def play(session: Session, ids: Sequence[int], *, seed: int,
         now: dt.datetime) -> HistoryReport:
    """Run the demo history (module docstring) for the new incidents ``ids``, up to ``now``."""
    check_steps()
    report = HistoryReport()
    rows = session.execute(_ROWS, {"ids": list(ids)}).all()
    if not rows:
        return report
    rng = np.random.default_rng([seed, 0x415])
    end = now.timestamp()
    idx = np.asarray([r.id for r in rows], dtype=np.int64)
    t0 = np.asarray([float(r.t0) for r in rows])
    sla = np.asarray([float(r.sla_hours) * HOUR for r in rows])
    orphan = np.asarray([bool(r.orphan) for r in rows])
    into = np.asarray([r.candidate_of if r.candidate_of is not None else -1 for r in rows])
    n = len(rows)
    merged = (into > 0) & (rng.random(n) < 0.6)
    merge_at = t0 + rng.exponential(30 * MIN, n) + MIN
    merged &= merge_at < end
    order = np.argsort(merge_at[merged], kind="stable")
    _merge(session, report, idx[merged][order], into[merged][order], merge_at[merged][order])
    live = ~merged
    outside = live & orphan
    out_at = t0 + rng.exponential(3 * HOUR, n) + 24 * HOUR
    rejected = live & ~orphan & (rng.random(n) < 0.03)
    reject_at = t0 + rng.exponential(40 * MIN, n) + MIN
    line = live & ~orphan & ~rejected
    times = _main_line(rng, t0, sla)
    for mask, at, why in ((outside, out_at, OUTSIDE_NOTE), (rejected, reject_at, REJECT_NOTE)):
        due = mask & (at < end)
        _move(session, report, idx[due], at[due], "rejected", "demo:dispatcher", why)
    for (status, actor, note), at in zip(STEPS, times, strict=True):
        due = line & ~np.isnan(at) & (at < end)
        _move(session, report, idx[due], at[due], status, actor, note)
    _evaluate(session, report, rng, idx, times, t0, sla, line, end)
    return report


def _evaluate(session: Session, report: HistoryReport, rng: np.random.Generator,
              idx: np.ndarray, times: list[np.ndarray], t0: np.ndarray, sla: np.ndarray,
              line: np.ndarray, end: float) -> None:
    closed_at, disposed = times[-1], np.where(np.isnan(times[5]), times[3], times[5])
    at = closed_at + rng.exponential(24 * HOUR, len(idx)) + 10 * MIN
    chosen = line & ~np.isnan(closed_at) & (at < end) & (rng.random(len(idx)) < 0.65)
    late = disposed > t0 + sla
    good = (0.02, 0.03, 0.10, 0.30, 0.55)
    bad = (0.10, 0.20, 0.30, 0.25, 0.15)
    scores = np.where(late, rng.choice(SCORES, size=len(idx), p=bad),
                      rng.choice(SCORES, size=len(idx), p=good))
    ids = idx[chosen]
    if not len(ids):
        return
    chosen_scores = [int(s) for s in scores[chosen]]
    comments = [COMMENTS[s] if rng.random() < 0.4 else None for s in chosen_scores]
    result = session.execute(_EVALUATE, {
        "ids": [int(i) for i in ids], "scores": chosen_scores, "comments": comments,
        "ats": [_at(t) for t in at[chosen]]})
    report.evaluated += int(getattr(result, "rowcount", 0) or 0)


def overdue_count(session: Session, now: dt.datetime) -> int:
    """Incidents pending past their due time at ``now``."""
    return int(session.execute(text(
        "SELECT count(*) FROM incident WHERE status = ANY(CAST(:pending AS text[])) "
        "AND due_at < :now"), {"pending": list(PENDING_STATUSES), "now": now}).scalar_one())
