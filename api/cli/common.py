"""Helpers shared by the CLI commands: console, settings, error reporting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from geo.errors import DomainError
from geo.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The settings of this process."""
    return get_settings()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn domain errors into a red message (with what is valid) and exit code 2."""
    try:
        yield
    except DomainError as exc:
        details = exc.to_dict()
        err_console.print(f"[red]error:[/red] {exc.message}")
        if exc.valid:
            err_console.print(f"  valid: {exc.valid}")
        del details
        raise typer.Exit(code=2) from exc
