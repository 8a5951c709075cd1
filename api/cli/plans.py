"""``patrolgrid plans``: suggest, show, preview and apply grid plans (as the REST API does)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from fastapi.encoders import jsonable_encoder

from api.cli.common import (
    WAIT_DEFAULT_S,
    WaitOpt,
    console,
    reported_errors,
    settings,
    when_free,
)
from geo.plans import apply as apply_mod
from geo.plans import service
from geo.plans.impact import Workload
from geo.plans.suggested import suggest_plan
from geo.store.db import session_scope

app = typer.Typer(help="Grid plans: balanced suggestions, validation, impact, apply.",
                  no_args_is_help=True)

WorkloadOpt = Annotated[str, typer.Option("--workload", help="incidents, households or mix")]
WeightOpt = Annotated[float, typer.Option("--weight", help="Share of incidents in mix.")]
LookbackOpt = Annotated[float, typer.Option("--lookback-days", help="Incidents reported this "
                                                                    "many days back count.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON answer.")]


def _print(answer: Any, as_json: bool, summary: str) -> None:
    if as_json:
        console.print_json(json.dumps(jsonable_encoder(answer), ensure_ascii=False))
    else:
        console.print(summary)


def _balance(impact: dict[str, Any]) -> str:
    b = impact["balance"]
    return (f"cv of {b['measure']} {b['cv_before']} -> {b['cv_after']}, Polsby-Popper mean "
            f"{b['polsby_popper_mean_before']} -> {b['polsby_popper_mean_after']}, "
            f"{impact['moves']['open_incidents']} open incident(s) would move")


@app.command("suggest")
def suggest(parent: Annotated[str, typer.Argument(help="A community or street code.")],
            k: Annotated[int, typer.Option("--k", min=1, help="How many grids.")],
            workload: WorkloadOpt = "incidents", weight: WeightOpt = 0.5,
            lookback_days: LookbackOpt = 365.0,
            seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
            compactness: Annotated[float, typer.Option("--compactness", min=0)] = 0.05,
            as_json: JsonOpt = False) -> None:
    """Draft a balanced partition of PARENT into K grids (a plan of kind suggested)."""
    cfg = settings()
    with reported_errors(), session_scope(cfg.database_url) as session:
        out = suggest_plan(session, parent=parent, k=k, measure=Workload(workload, weight),
                           lookback_days=lookback_days, settings=cfg, user_id=None, seed=seed,
                           compactness=compactness)
    plan = out["plan"]
    _print(out, as_json, f"plan {plan['id']} ({len(plan['edits'])} edits, "
           f"{'valid' if plan['validation']['ok'] else 'NOT valid'}): {_balance(out['impact'])}")


@app.command("show")
def show(plan_id: Annotated[int, typer.Argument(help="The plan's id.")],
         as_json: JsonOpt = False) -> None:
    """A plan, its edits and its validation."""
    cfg = settings()
    with reported_errors(), session_scope(cfg.database_url) as session:
        rep = service.replay(session, plan_id)
        out = service.plan_dict(rep, service.check(session, rep, cfg.topology_tolerance_m2))
    problems = "; ".join(p["message"] for p in out["validation"]["problems"]) or "no problems"
    _print(out, as_json, f"plan {out['id']} {out['name']!r} on {out['parent']}: {out['status']}"
           f", {len(out['edits'])} edits, touches {', '.join(out['touched']) or 'nothing'}; "
           f"{problems}")


@app.command("impact")
def impact(plan_id: Annotated[int, typer.Argument(help="The plan's id.")],
           workload: WorkloadOpt = "incidents", weight: WeightOpt = 0.5,
           lookback_days: LookbackOpt = 365.0, as_json: JsonOpt = False) -> None:
    """The impact preview of a plan."""
    cfg = settings()
    with reported_errors(), session_scope(cfg.database_url) as session:
        rep = service.replay(session, plan_id)
        out = service.impact(session, rep, lookback_days=lookback_days,
                             measure=Workload(workload, weight))
    _print(out, as_json, f"plan {plan_id}: {_balance(out)}")


@app.command("apply")
def apply(plan_id: Annotated[int, typer.Argument(help="The plan's id.")],
          as_json: JsonOpt = False, wait: WaitOpt = WAIT_DEFAULT_S) -> None:
    """Apply a plan in one transaction (exit 2 when it conflicts or does not validate).

    While a bulk import or another grid change holds the grids, it tries again for up to
    ``--wait`` seconds."""
    cfg = settings()

    def attempt() -> dict[str, Any]:
        with session_scope(cfg.database_url) as session:
            return apply_mod.apply_plan(session, plan_id, user_id=None, actor="cli",
                                        settings=cfg)

    with reported_errors():
        out = when_free(attempt, wait_s=wait)
    _print(out, as_json, f"plan {plan_id} applied: versions {out['versions']}, retired "
           f"{out['retired']}, {out['incidents']['moved']} incident(s) moved, "
           f"{len(out['roster'])} retired grid(s) with duties to confirm")
