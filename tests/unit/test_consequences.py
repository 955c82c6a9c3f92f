"""Verdicts graded by consequence (harness.consequences): the table, its page, and no verdict chosen anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.consequences import RULES, Consequence, judged, rule_for, verdicts_markdown
from harness.mutation import MUTANTS
from harness.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
GRADERS = ("judged", "note")  # judged(oracle, ...), ctx.note(oracle, ...)


def test_the_page_is_the_table() -> None:
    assert (ROOT / "docs" / "verdicts.md").read_text() == verdicts_markdown(), (
        "regenerate: locust-conformance verdicts --markdown > docs/verdicts.md"
    )


@pytest.mark.parametrize("oracle", sorted(RULES))
def test_every_rule_says_why_and_its_verdict_follows_its_consequence(oracle: str) -> None:
    rule = RULES[oracle]
    assert rule.why and rule.verdict is rule.consequence.verdict
    finding = judged(oracle, "x", "y")
    assert finding.verdict is rule.verdict and finding.consequence.endswith(rule.why)


def test_failed_means_the_master_misbehaves_or_the_users_data_is_lost() -> None:
    failed = {c for c in Consequence if c.verdict is Verdict.FAILED}
    assert failed == {Consequence.MASTER, Consequence.DATA}


def test_families() -> None:
    assert rule_for("schema.heartbeat").oracle == "schema"
    assert rule_for("schema.deviation.heartbeat").verdict is Verdict.INFORMATIONAL
    assert rule_for("harness.check_schema").verdict is Verdict.UNKNOWN
    assert rule_for("progress.spawn").consequence is Consequence.DATA
    with pytest.raises(KeyError, match="no consequence rule"):
        rule_for("made.up")


def _calls(path: Path) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(path.read_text("utf-8"))) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


SOURCES = [p for p in (ROOT / "harness").rglob("*.py") if p.name not in ("verdicts.py", "consequences.py")]


def test_no_verdict_is_chosen_outside_the_table() -> None:
    """Every finding is built by ``judged`` (or a case's ``note``): no code picks a verdict for a finding itself."""
    built = [f"{p.relative_to(ROOT)}:{c.lineno}" for p in SOURCES for c in _calls(p) if _name(c) == "Finding"]
    assert built == []


def test_every_oracle_named_in_the_code_has_a_rule() -> None:
    """Every oracle name handed to judged()/note() resolves, literally or by its fixed prefix (f-strings)."""
    missing = []
    for path in SOURCES:
        for call in _calls(path):
            if _name(call) not in GRADERS or len(call.args) < 3:  # master.note(text) is a trace line, not a finding
                continue
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value
            elif isinstance(first, ast.JoinedStr) and first.values and isinstance(first.values[0], ast.Constant):
                name = str(first.values[0].value).rstrip(".")  # f"progress.{name}" -> its family
            else:
                continue  # a variable: its values are literals elsewhere (checked there)
            try:
                rule_for(name or "?")
            except KeyError:
                missing.append(f"{path.relative_to(ROOT)}:{call.lineno}: {name}")
    assert missing == []


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.defect for m in MUTANTS])
def test_each_mutants_expected_level_is_its_oracles_consequence(mutant: object) -> None:
    """A defect is caught at the level its oracle's consequence gives, not at one chosen for the test."""
    from harness.mutation import Mutant

    assert isinstance(mutant, Mutant)
    levels = {rule_for(oracle).verdict for oracle in mutant.oracles}
    assert mutant.verdict in levels, (mutant.defect, levels)
