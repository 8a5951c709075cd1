"""``patrolgrid tasks``: grab-order patrol tasks; link API users to their worker."""

from __future__ import annotations

import typer
from rich.table import Table

from api.cli.common import console, reported_errors, settings, styled
from geo.errors import InvalidInput
from geo.store import tasks as task_store
from geo.store.db import session_scope
from geo.store.track_queries import resolve_worker
from geo.tasks import check_radius, parse_near, parse_statuses

app = typer.Typer(help="Grab-order patrol tasks (抢单式巡防).", no_args_is_help=True)


@app.command("link")
def link(
    user: str = typer.Option(..., "--user", help="The API user's name."),
    worker: str = typer.Option(None, "--worker", help="Worker id or code the user claims "
                               "tasks (a patrol member or volunteer) and uploads tracks as."),
    unlink: bool = typer.Option(False, "--unlink", help="Remove the user's link."),
) -> None:
    """Link an API user to the worker they are in the field: a patrol user claims tasks and
    uploads tracks only as it."""
    if (worker is None) != unlink:
        with reported_errors():
            raise InvalidInput("give --worker or --unlink" if worker is None else
                               "give --worker or --unlink, not both", field="worker",
                               value=worker, valid="--worker ID_OR_CODE, or --unlink")
    with reported_errors(), session_scope(settings().database_url) as session:
        worker_id = None if unlink else resolve_worker(session, worker)
        out = task_store.link_user(session, user=user, worker_id=worker_id)
    if out["worker_id"] is None:
        console.print(styled("user ", (user, "bold"), " is linked to no worker"))
    else:
        console.print(styled("user ", (user, "bold"), " claims tasks and uploads tracks as "
                             f"worker {out['worker_code']} (id {out['worker_id']})"))


@app.command("list")
def list_tasks(
    status: str = typer.Option("open", "--status", help="Statuses (comma-separated) or any."),
    near: str = typer.Option(None, "--near", help="lon,lat: nearest first."),
    radius_m: float = typer.Option(None, "--radius-m", help="Radius around --near (m)."),
) -> None:
    """Tasks with their status, window and claimant."""
    conf = settings()
    with reported_errors(), session_scope(conf.database_url) as session:
        task_store.settle(session)
        rows, total = task_store.list_tasks(
            session, statuses=parse_statuses(status), near=parse_near(near),
            radius_m=check_radius(radius_m if radius_m is not None else conf.task_near_radius_m,
                                  conf.task_max_radius_m), limit=conf.max_page_limit)
    table = Table("id", "title", "kind", "status", "window", "claimed by", "distance m",
                  title=f"{total} task(s)")
    for r in rows:  # in local time (PATROLGRID_TIMEZONE), the end's date when it differs
        start, end = r.window_start.astimezone(conf.tz), r.window_end.astimezone(conf.tz)
        table.add_row(str(r.id), r.title, r.kind, r.status,
                      f"{start:%Y-%m-%d %H:%M} – "
                      f"{end:%H:%M}" if end.date() == start.date() else
                      f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}",
                      r.worker_code or "", "" if r.distance_m is None else f"{r.distance_m:.0f}")
    console.print(table)
