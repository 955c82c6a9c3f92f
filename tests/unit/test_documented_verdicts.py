"""The interop tests' reading of docs/locust-expected.json: a verdict, or a verdict only when one oracle gave it."""

from __future__ import annotations

from harness.catalog import by_id
from harness.consequences import RULES, judged
from harness.runner import CaseResult
from harness.verdicts import Verdict
from tests.foreign_peers import locust_expected, undocumented

CASE = "reconnect/01-reconnect-message"
EXPECTED = {CASE: ["OK", "FAILED:reconnect.identity-race"], "storms/04-stale-spawn-flood": ["OK", "NON-STRICT"]}


def result(case_id: str, *oracles: str) -> CaseResult:
    findings = [judged(o, "x", "y") for o in oracles]
    worst = max((f.verdict for f in findings), key=lambda v: v is Verdict.FAILED, default=Verdict.OK)
    return CaseResult(by_id(case_id), worst, findings, 1.0)


def test_a_verdict_tied_to_an_oracle_is_allowed_only_with_that_oracle() -> None:
    assert undocumented([result(CASE)], EXPECTED) == []
    assert undocumented([result(CASE, "reconnect.identity-race", "heartbeat.missing")], EXPECTED) == []
    [bad] = undocumented([result(CASE, "heartbeat.missing")], EXPECTED)
    assert bad.startswith(f"{CASE}: FAILED (documented: ")
    assert len(undocumented([result(CASE, "reconnect.identity-race", "progress")], EXPECTED)) == 1  # another failure


def test_a_case_not_listed_must_be_ok_and_a_plain_entry_allows_its_verdict() -> None:
    assert undocumented([result("storms/04-stale-spawn-flood", "heartbeat.gap")], EXPECTED) == []
    assert len(undocumented([result("heartbeat/01-idle-cadence", "heartbeat.gap")], EXPECTED)) == 1


def test_the_documented_file_names_oracles_that_exist() -> None:
    oracles = {v.partition(":")[2] for vs in locust_expected().values() for v in vs if ":" in v}
    assert oracles and oracles <= set(RULES)
