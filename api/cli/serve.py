"""``patrolgrid serve``: run the API and the maps with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import typer

from api.cli.common import console, err_console, settings, styled
from geo.store.db import UPGRADE_HINT, schema_problem


def serve(
    host: str | None = typer.Option(None, help="Bind address (default from settings)."),
    port: int | None = typer.Option(None, min=1, max=65535,
                                    help="Port, 1-65535 (default from settings)."),
    workers: int | None = typer.Option(None, min=1, max=64,
                                       help="Worker processes, 1-64 (default from settings)."),
) -> None:
    """Serve the API on http://HOST:PORT, printing the URLs of the docs and pages.
    Exit status 2, before serving, when the database is unreachable or not migrated."""
    import uvicorn

    cfg = settings()
    problem = schema_problem(cfg.database_url)
    if problem is not None:  # every request would fail: say why, and what fixes it
        err_console.print(styled(("error:", "red"), f" {problem}"))
        err_console.print(f"  valid: {UPGRADE_HINT}")
        raise typer.Exit(code=2)
    host = host or cfg.host
    port = port if port is not None else cfg.port
    base = f"http://{host}:{port}"
    console.print(f"API docs:   {base}/docs")
    console.print(f"OpenAPI:    {base}/openapi.json")
    console.print(f"Health:     {base}/healthz")
    console.print(f"Grids:      {base}/api/v1/grids?level=street")
    console.print(f"Map pages:  {base}/maps")
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port,
                workers=workers if workers is not None else cfg.workers, loop="uvloop",
                http="httptools")
