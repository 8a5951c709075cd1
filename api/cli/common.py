"""Helpers shared by the CLI commands: console, settings, error reporting."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from sqlalchemy import exc as sa_exc

from geo.errors import Busy, DomainError, InvalidInput
from geo.settings import Settings, get_settings
from geo.store.db import UPGRADE_HINT, explain_database_error

# No markup, no emoji codes: what is printed holds user text (names, titles, file names), and
# "[/x]" in it crashed a command (MarkupError), "[red]x" lost its brackets and ":fire:" became
# an emoji. Styles are given as such (:func:`styled`).
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of plain text and ``(text, style)`` pieces, printed as given (no markup)."""
    return Text.assemble(*parts)

T = TypeVar("T")



def settings() -> Settings:
    """The settings of this process; a bad ``PATROLGRID_*`` variable is named (exit 2)."""
    try:
        return get_settings()
    except ValidationError as exc:
        for err in exc.errors():
            if not err["loc"]:  # a check across settings: its message names them
                err_console.print(styled(("error:", "red"), f" {err['msg']}"))
                continue
            name = "PATROLGRID_" + str(err["loc"][0]).upper()
            if name == "PATROLGRID_DATABASE_URL" and name not in os.environ:
                name = "DATABASE_URL"  # read under either name: the one that was set
            err_console.print(styled(("error:", "red"), f" {name}={err.get('input')!s}"
                                                        f": {err['msg']}"))
        err_console.print("  valid: see `patrolgrid config --help` and the README's settings "
                          "table; unset the variable for its default")
        raise typer.Exit(code=2) from exc


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn domain errors into a red message (with what is valid) and exit code 2; a
    database that is unreachable or not migrated likewise, with what fixes it."""
    try:
        yield
    except DomainError as exc:
        err_console.print(styled(("error:", "red"), f" {exc.message}"))
        if exc.valid:
            err_console.print(f"  valid: {exc.valid}")
        raise typer.Exit(code=2) from exc
    except (sa_exc.OperationalError, sa_exc.ProgrammingError) as exc:
        why = explain_database_error(exc, settings().database_url)
        if why is None:
            raise
        err_console.print(styled(("error:", "red"), f" {why}"))
        err_console.print(f"  valid: {UPGRADE_HINT}")
        raise typer.Exit(code=2) from exc


def _can_create(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (tried: ``os.access`` says yes to root even
    for a read-only file system or ``/proc``)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".patrolgrid-check-"):
            return True
    except OSError:
        return False


def check_writable(path: Path | None, option: str) -> None:
    """Refuse (exit 2, before anything is done) an output file that cannot be written: its
    folder missing or read-only, or the path a folder."""
    if path is None:
        return
    folder = path.parent
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK) \
            or not _can_create(folder):
        raise InvalidInput(f"cannot write {path}: "
                           + ("it is a folder" if path.is_dir() else
                              f"the folder {folder} does not exist or is not writable"),
                           field=option, value=str(path),
                           valid="a file in an existing, writable folder")


def when_free(work: Callable[[], T], *, wait_s: float,
              sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``work`` (one whole transaction) again while it fails with
    :class:`~geo.errors.Busy`, pausing 1, 2, 4 … (at most 10) seconds, for at most
    ``wait_s`` seconds in all; then the last :class:`~geo.errors.Busy` is raised."""
    deadline = time.monotonic() + wait_s
    pause = 1.0
    while True:
        try:
            return work()
        except Busy as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            pause = min(pause, left)
            err_console.print(styled(("busy:", "yellow"), f" {exc.message}; trying again in "
                                     f"{pause:.0f} s ({left:.0f} s left of --wait)"))
            sleep(pause)
            pause = min(pause * 2, 10.0)


def number_in(low: float, high: float) -> Callable[[float | None], float | None]:
    """An option callback refusing NaN, infinities and numbers outside [low, high], saying
    which (typer's own range check called NaN "not less than or equal to" the top)."""
    def check(value: float | None) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a number; give one from {low:g} to "
                                     f"{high:g}")
        if not low <= value <= high:
            raise typer.BadParameter(f"{value:g} is outside [{low:g}, {high:g}]")
        return value
    return check


#: The longest ``--wait``: a day.
WAIT_MAX_S = 86_400.0
#: ``--wait``: how long a command that changes the grids or the roster keeps trying.
WaitOpt = Annotated[float, typer.Option(
    "--wait", callback=number_in(0.0, WAIT_MAX_S),
    help="Seconds to keep retrying while a bulk import, an escalation run or another grid "
         "change holds the grids (0: try once; at most a day).")]
WAIT_DEFAULT_S = 60.0
