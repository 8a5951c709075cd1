"""The grids' transaction lock: grid changes exclusive, incident intake shared.

It guards the assignments as a whole: a worker's deactivation takes it exclusive too
(:mod:`geo.incidents.handover`) and an escalation run shared, so no incident is given
to a worker whose deactivation has already handed the others over.

An incident is placed by the assignment index of the grids its transaction saw.
If a plan apply (or a grid import) committed new grids between that read and
the incident's insert, the incident would keep a grid the apply had just
retired, and the apply, which re-places the open incidents it can see, would
not see it. So:

- every intake holds :func:`hold_shared` from before it reads the grids' epoch
  until it commits (many intakes at once, never waiting on each other);
- every grid change takes :func:`lock_exclusive` before it reads what it
  changes: it waits for the intakes in flight to commit (their incidents are
  then visible to it) and the intakes that come after it wait for its commit
  (they then read the new epoch and rebuild their index).

Both are PostgreSQL transaction-level advisory locks on :data:`LOCK_KEY`: they
cost no row write and are released at commit or rollback. A grid change waits
at most ``wait_s`` (a bulk import holds the shared lock for its whole
transaction), then gives up with a :class:`~geo.errors.Busy` (a 409 with
``Retry-After``; the CLI retries). While it waits in PostgreSQL's queue every
new intake queues behind it, so it never queues for long: it queues for
:data:`QUEUE_S` (enough for the intakes in flight, milliseconds each, to commit),
and when a long holder (a bulk import, an escalation run) is still there it steps
aside for :data:`STEP_ASIDE_S`, letting the intakes through, and queues again.
Intakes wait at most :data:`QUEUE_S` at a time behind a grid change that cannot
have the lock, not its whole ``wait_s``.
"""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from geo.errors import Busy

#: ``pg_advisory_xact_lock`` key of the grids (b"grid" as an int).
LOCK_KEY = int.from_bytes(b"grid", "big")
#: How long a grid change waits for the intakes in flight, by default.
WAIT_S = 3.0
#: How long a grid change queues for the lock at a time (intakes queue behind it meanwhile).
QUEUE_S = 0.1
#: How long it then steps aside (out of the queue) while a long holder keeps the lock.
STEP_ASIDE_S = 0.4


def hold_shared(session: Session) -> None:
    """Hold the grids' lock shared until ``session``'s transaction ends (intake)."""
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": LOCK_KEY})


def try_shared(session: Session) -> bool:
    """Take the grids' lock shared if no grid change holds it; whether it was taken."""
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock_shared(:k)"),
                               {"k": LOCK_KEY}))


def lock_exclusive(session: Session, *, wait_s: float | None = None) -> None:
    """Hold the grids' lock alone until ``session``'s transaction ends (grid changes).

    Waits at most ``wait_s`` seconds (:data:`WAIT_S` by default); taking it again in
    the same transaction is immediate.

    Raises
    ------
    Busy
        Intakes (a bulk import) or another grid change held it longer than ``wait_s``;
        nothing was changed, the caller's transaction must be rolled back (a
        :class:`~geo.errors.Conflict`: HTTP 409 with ``Retry-After``).
    """
    if session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}):
        return
    wait_s = WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    saved = session.scalar(text("SELECT current_setting('lock_timeout')"))
    try:
        while True:
            if _queue(session, max(0.001, min(QUEUE_S, deadline - time.monotonic()))):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(max(0.0, min(STEP_ASIDE_S, left - QUEUE_S)))
    finally:
        session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": saved})
    raise Busy(f"the grids and assignments are in use by a bulk import, an escalation "
               f"run, a deactivation or another grid change; waited {wait_s:g} s",
               field="grids", value="busy",
               valid="the same request again once the running import, escalation "
                     "run or plan apply has finished")


def _queue(session: Session, seconds: float) -> bool:
    """Queue for the lock alone at most ``seconds``; whether it was taken."""
    session.execute(text("SELECT set_config('lock_timeout', :ms, true)"),
                    {"ms": f"{max(1, round(seconds * 1000))}ms"})
    try:
        with session.begin_nested():
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        return False
    return True
