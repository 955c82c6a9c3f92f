"""stats/03's check: Locust's own master code merges the reports (run in a subprocess), or the case says why not."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from harness.catalog import stats
from harness.catalog.stats import merge_problem
from harness.consequences import rule_for
from harness.verdicts import Verdict
from tests.foreign_peers import locust_or_skip

locust_or_skip()


def report(requests: Any) -> dict[str, Any]:
    total = {
        "name": "Aggregated",
        "method": "",
        "last_request_timestamp": None,
        "start_time": 1.0,
        "num_requests": requests,
        "num_none_requests": 0,
        "num_failures": 0,
        "total_response_time": 0,
        "max_response_time": 0,
        "min_response_time": None,
        "total_content_length": 0,
        "response_times": {},
        "num_reqs_per_sec": {},
        "num_fail_per_sec": {},
    }
    return {"stats": [], "stats_total": total, "errors": {}, "user_classes_count": {}, "user_count": 0}


def test_reports_the_master_merges_are_fine() -> None:
    assert merge_problem([report(0), report(0)]) is None


def test_a_report_the_masters_code_rejects_is_named() -> None:
    problem = merge_problem([report(0), report("3")])
    assert problem is not None and problem[0] == "every report merged by Locust's master code"
    assert "TypeError" in problem[1]


def test_a_merged_total_unlike_the_reports_is_named() -> None:
    problem = merge_problem([report(float("nan"))])  # garbage counts: the master's total is not what was reported
    assert problem is not None and problem[0].startswith("the merged total to equal the nan requests")


class Ctx:
    """What stats/03's body uses of a case context: the driving steps do nothing, notes are kept."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, str]] = []

    def handshake(self) -> None: ...
    def spawn(self, users: int) -> None: ...
    def observe(self, seconds: float) -> None: ...
    def reports(self, n: float) -> float:
        return n

    def note(self, oracle: str, expected: str, observed: str) -> None:
        self.notes.append((oracle, expected, observed))


def run_case_body(monkeypatch: pytest.MonkeyPatch, reports: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    ctx = Ctx()
    monkeypatch.setattr(stats, "_stats", lambda _: [(float(i), r) for i, r in enumerate(reports)])
    stats.mergeable(ctx)  # type: ignore[arg-type]
    return ctx.notes


def test_the_case_notes_reports_the_masters_code_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    [(oracle, expected, observed)] = run_case_body(monkeypatch, [report(1), report("3")])
    assert (oracle, expected) == ("stats.merge", "every report merged by Locust's master code") and "TypeError" in observed
    assert rule_for(oracle).verdict is Verdict.FAILED


def test_the_case_is_silent_on_reports_the_master_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_case_body(monkeypatch, [report(1), report(2)]) == []


def test_without_locust_the_case_says_it_could_not_check(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "locust" else real(name, *a))
    [(oracle, _, observed)] = run_case_body(monkeypatch, [report("3")])
    assert (oracle, observed) == ("stats.merge-unchecked", "not checked: Locust is not installed")
    assert rule_for(oracle).verdict is Verdict.INFORMATIONAL
