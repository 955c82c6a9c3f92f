"""docs/coverage.md: every catalog case is under a rule, every check exists, and the page is in step."""

from __future__ import annotations

from pathlib import Path

from harness.catalog import all_cases
from harness.consequences import RULES as ORACLES
from harness.protocol.profiles import DEFAULT_PROFILE
from harness.spec_rules import RULES, coverage_markdown, uncovered_cases, unknown_cases

ROOT = Path(__file__).resolve().parents[2]


def test_every_case_checks_a_rule() -> None:
    assert uncovered_cases(all_cases()) == [], "name each new case under the rules it checks in harness/spec_rules.py"
    assert unknown_cases(all_cases()) == []


def test_every_check_is_an_oracle_a_profile_knob_or_a_test_file() -> None:
    knobs = set(DEFAULT_PROFILE.knobs())
    for rule in RULES:
        for check in rule.checks:
            assert check in ORACLES or check in knobs or (ROOT / check).is_file(), (rule.id, check)


def test_rule_ids_are_unique() -> None:
    assert len({r.id for r in RULES}) == len(RULES)


def test_the_page_is_the_table() -> None:
    assert (ROOT / "docs" / "coverage.md").read_text() == coverage_markdown(all_cases()), (
        "regenerate: locust-conformance coverage --markdown > docs/coverage.md"
    )
