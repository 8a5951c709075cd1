"""The Chinese pages name roles, rules and the rules' reasons in Chinese."""

from __future__ import annotations

import re

import pytest

from geo.assign import DutyCandidate, _no_one_reason
from geo.incidents.escalation import ESCALATION_RULES
from geo.incidents.responsible import RULES, RosterView, _reason
from geo.store.models import WORKER_ROLES
from maps.pages.dispatch import LABELS
from maps.panel import reason_text, role_name

_ENGLISH = re.compile(r"\b[a-z]{3,}\b")  # codes (G1, C0101) are upper case


def _duty(active: bool = True, categories: frozenset[str] | None = None) -> DutyCandidate:
    return DutyCandidate(duty_id=1, worker_id=1, worker_code="W1", worker_name="王", kind="primary",
                         active=active, categories=categories)


def _reasons() -> list[str]:
    """Every reason the intake's and the locate's worker rules give when nobody is found."""
    out = [_no_one_reason([], "E1"), _no_one_reason([_duty(active=False)], "E1"),
           _no_one_reason([_duty(categories=frozenset({"E2"}))], "E1"),
           _no_one_reason([_duty(categories=frozenset({"E2"}))], None),
           _no_one_reason([_duty()], "E1")]
    for duties in ([], [_duty(active=False)], [_duty()]):
        view = RosterView(duties={"G1": duties})
        out += [_reason(view, "G1", "C1", "S1"), _reason(view, "G1", None, None)]
    return [*out, "the incident is outside every grid"]


@pytest.mark.parametrize("reason", _reasons())
def test_every_reason_of_the_rules_reads_in_chinese(reason: str) -> None:
    zh = reason_text(reason, "zh")
    assert not _ENGLISH.search(zh), (reason, zh)
    assert reason_text(reason, "en") == reason


def test_a_reason_no_pattern_knows_is_shown_as_it_is() -> None:
    assert reason_text("declined by the worker", "zh") == "declined by the worker"


def test_every_rule_and_role_has_a_chinese_name() -> None:
    rules = [*RULES, "none", "dispatcher", *(f"escalation_{name}" for name, _ in ESCALATION_RULES)]
    for lang in ("zh", "en"):
        assert not [r for r in rules if r not in LABELS[lang]], lang
    assert all(not _ENGLISH.search(role_name(role, "zh")) for role in WORKER_ROLES)
    assert role_name("grid_worker", "en") == "grid worker"


def test_every_plan_problem_kind_has_a_chinese_name_on_the_planner() -> None:
    from geo.plans.validate import PROBLEM_KINDS
    from maps.pages.planner import LABELS as PLANNER

    names = PLANNER["zh"]["kinds"]
    assert isinstance(names, dict) and sorted(names) == sorted(PROBLEM_KINDS)
    assert not [n for n in names.values() if _ENGLISH.search(n)]
