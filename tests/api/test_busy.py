"""While a bulk import holds the grids, a grid change is refused with a 409 that says when to
retry (``Retry-After``), and the CLI retries for up to ``--wait`` seconds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import Result

from api.cli.common import when_free
from geo.errors import Busy, InvalidInput
from geo.store import db, grid_lock
from tests.api.test_roster_api import grids, worker
from tests.data.test_grid_import import _squares, current_count

Auth = Callable[[str], dict[str, str]]
Cli = Callable[..., Result]
__all__ = ["grids"]  # fixture used here


class _Import:
    """A transaction holding the grids shared, as a bulk import does for its whole run."""

    def __init__(self, db_url: str) -> None:
        self.url, self.held, self.done = db_url, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with db.session_scope(self.url) as s:
            grid_lock.hold_shared(s)
            self.held.set()
            self.done.wait(30)

    def __enter__(self) -> _Import:
        self.thread.start()
        assert self.held.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(grid_lock, "WAIT_S", 0.2)
    yield


def test_a_deactivation_during_a_bulk_import_is_a_409_with_retry_after(
        client: TestClient, auth: Auth, grids: None, db_url: str, quick: None) -> None:
    made = worker(client, auth, "W-1")
    with _Import(db_url):
        busy = client.post(f"/api/v1/workers/{made['id']}/deactivate", headers=auth("planner"))
        assert busy.status_code == 409 and busy.headers["Retry-After"] == "5"
        detail = busy.json()["detail"]
        assert (detail["field"], detail["value"]) == ("grids", "busy") and detail["valid"]
        still = client.get(f"/api/v1/workers/{made['id']}", headers=auth("planner")).json()
        assert still["active"] is True  # nothing half-written
    done = client.post(f"/api/v1/workers/{made['id']}/deactivate", headers=auth("planner"))
    assert done.status_code == 200 and "Retry-After" not in done.headers


def test_other_conflicts_carry_no_retry_after(client: TestClient, auth: Auth,
                                              grids: None) -> None:
    worker(client, auth, "W-1")
    taken = client.post("/api/v1/workers", json={"code": "W-1", "name": "again",
                                                 "role": "grid_worker"},
                        headers=auth("planner"))
    assert taken.status_code == 409 and "Retry-After" not in taken.headers


def test_the_cli_retries_a_grid_import_until_the_bulk_import_ends(
        cli: Cli, tmp_path: Path, db_url: str, quick: None) -> None:
    path = _squares(tmp_path / "g.geojson", [("G1", None, "grid", 119.30)])
    with _Import(db_url) as running:
        refused = cli("grids", "import", path, "--code-field", "code", "--commit", "--wait", 0)
        out = " ".join(refused.output.split())
        assert refused.exit_code == 2 and "in use by a bulk import" in out, out
        assert current_count(db_url) == 0
        threading.Timer(1.5, running.done.set).start()
        waited = cli("grids", "import", path, "--code-field", "code", "--commit",
                     "--wait", 30)
    out = " ".join(waited.output.split())
    assert waited.exit_code == 0, out
    assert "busy:" in out and "trying again in 1 s" in out and "committed" in out
    assert current_count(db_url) == 1


def test_when_free_backs_off_and_gives_up_when_its_time_is_spent() -> None:
    pauses: list[float] = []
    failures = iter([Busy("busy"), Busy("busy"), Busy("busy")])

    def work() -> str:
        exc = next(failures, None)
        if exc:
            raise exc
        return "done"

    assert when_free(work, wait_s=100, sleep=pauses.append) == "done"
    assert pauses == [1.0, 2.0, 4.0]
    with pytest.raises(Busy):
        when_free(lambda: (_ for _ in ()).throw(Busy("still busy")), wait_s=0)
    calls = []

    def bad() -> None:
        calls.append(1)
        raise InvalidInput("bad", field="f", value=1, valid="2")

    with pytest.raises(InvalidInput):  # only Busy is retried
        when_free(bad, wait_s=100, sleep=pauses.append)
    assert calls == [1]


def test_a_waiting_grid_change_steps_aside_for_the_intakes(db_url: str) -> None:
    """A grid change waiting for a bulk import queued in PostgreSQL for its whole wait, and
    every intake queued behind it; it now queues QUEUE_S at a time and steps aside between."""
    outcome: list[str] = []

    def change() -> None:
        with db.session_scope(db_url) as s:
            try:
                grid_lock.lock_exclusive(s, wait_s=2.0)
                outcome.append("taken")
            except Busy:
                outcome.append("busy")

    with _Import(db_url):
        waiting = threading.Thread(target=change)
        waiting.start()
        tries, through = 0, 0
        with db.session_scope(db_url) as s:
            while waiting.is_alive() and tries < 60:
                through += grid_lock.try_shared(s)  # an intake not waiting on the change
                tries += 1
                s.rollback()
                threading.Event().wait(0.025)
        waiting.join()
    assert outcome == ["busy"]  # the import held the lock throughout
    assert tries >= 20 and through >= tries / 2, (through, tries)


@pytest.mark.parametrize("bad", ["nan", "inf", "1e309", "-1", "86401"])
def test_wait_is_a_number_of_seconds_up_to_a_day(cli: Cli, tmp_path: Path, bad: str) -> None:
    """``--wait 1e309`` (infinite) was taken, ``nan`` called "not >= 0"."""
    path = _squares(tmp_path / "g.geojson", [("G1", None, "grid", 119.30)])
    for args in (("grids", "import", path, "--code-field", "code"), ("roster", "import", path),
                 ("plans", "apply", "1")):
        result = cli(*args, "--wait", bad)
        out = " ".join(result.output.split())
        assert result.exit_code == 2 and ("outside [0, 86400]" in out or "not a number" in out), \
            (args, out)
