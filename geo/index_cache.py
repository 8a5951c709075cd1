"""One assignment index per database per process, rebuilt when the grids change.

``get_index(session)`` reads ``grid_epoch`` (one indexed row; a statement trigger
on ``grid`` bumps it in the same transaction as every grid change) and returns
the cached index when its epoch matches, otherwise builds a new one from the
session and caches it. Every process (each uvicorn worker) keeps its own cache
and notices a change at its next lookup, so no notification is needed.

A session that has itself changed grids and not committed yet sees an epoch no
other session sees: it gets an index of its own (kept for that transaction
only, never shared), so uncommitted grids never leak into other requests and a
rolled-back change never leaves a stale index behind.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.index import AssignmentIndex

_EPOCH = text("""SELECT epoch, xmin::text::bigint AS row_xid,
                        txid_current_if_assigned() AS my_txid FROM grid_epoch""")
_COMMITTED = text("SELECT epoch FROM grid_epoch")
_XID_MOD = 1 << 32


@dataclass
class _Entry:
    index: AssignmentIndex | None = None
    private: tuple[int, int, AssignmentIndex] | None = None  # (txid, epoch, index)


#: Databases whose index is kept; the least recently used beyond this is dropped.
MAX_DATABASES = 4

_guard = threading.Lock()
_entries: OrderedDict[str, tuple[threading.Lock, _Entry]] = OrderedDict()
#: How many indexes this process has built (for tests and logs).
builds = 0


def _key(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def _slot(key: str) -> tuple[threading.Lock, _Entry]:
    with _guard:
        slot = _entries.get(key)
        if slot is None:
            slot = _entries[key] = (threading.Lock(), _Entry())
            while len(_entries) > MAX_DATABASES:
                _entries.popitem(last=False)
        else:
            _entries.move_to_end(key)
        return slot


def _build(session: Session, loader: Callable[[Session], AssignmentIndex]) -> AssignmentIndex:
    global builds
    index = loader(session)
    with _guard:
        builds += 1
    return index


def _uncommitted(session: Session, epoch: int, row_xid: int, my_txid: int | None) -> bool:
    """Whether ``session`` sees an epoch it wrote itself and has not committed."""
    if my_txid is None:  # this transaction has written nothing at all
        return False
    if row_xid == my_txid % _XID_MOD:
        return True
    # Written in a subtransaction (savepoint), or not by us: ask a fresh connection.
    with session.get_bind().engine.connect() as conn:
        committed = int(conn.execute(_COMMITTED).scalar_one())
    return committed != epoch


def get_index(session: Session, *,
              loader: Callable[[Session], AssignmentIndex] = AssignmentIndex.load
              ) -> AssignmentIndex:
    """The assignment index of the current grids as ``session`` sees them.

    Parameters
    ----------
    session : Session
        Any session; one cheap query is made on it (two when it has already
        written in its transaction, to tell its own grid changes apart).
    loader : callable
        Builds an index from a session (``AssignmentIndex.load``; tests swap it).

    Returns
    -------
    AssignmentIndex
        Shared by every caller until the grids change; thread-safe.
    """
    key = _key(session)
    row = session.execute(_EPOCH).one()
    epoch = int(row.epoch)
    lock, entry = _slot(key)
    cached = entry.index
    if cached is not None and cached.epoch == epoch:
        return cached
    if _uncommitted(session, epoch, int(row.row_xid), row.my_txid):
        mine = entry.private
        if mine is not None and mine[0] == row.my_txid and mine[1] == epoch:
            return mine[2]
        index = _build(session, loader)
        entry.private = (int(row.my_txid), epoch, index)
        return index
    with lock:
        cached = entry.index
        if cached is not None and cached.epoch == epoch:
            return cached
        index = _build(session, loader)
        if cached is None or index.epoch >= cached.epoch:
            entry.index = index
        return index


def clear() -> None:
    """Forget every cached index (tests; a process that dropped its databases)."""
    with _guard:
        _entries.clear()


def index_for_intake(session: Session) -> AssignmentIndex:
    """:func:`get_index` for a transaction that stores incidents: it first takes the
    grids' shared lock (:mod:`geo.store.grid_lock`), held until it commits, so that a
    plan apply either sees its incidents or commits before it reads the grids."""
    from geo.store.grid_lock import hold_shared

    hold_shared(session)
    return get_index(session)
