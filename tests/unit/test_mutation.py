"""The mutation matrix's bookkeeping (harness.mutation), on synthetic case results: no processes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.catalog import by_id
from harness.mutation import (
    CLEAN,
    MUTANTS,
    MUTANTS_BY_DEFECT,
    Cell,
    Matrix,
    Mutant,
    _judge,
    command_for,
    grid,
    intended_cases,
    summary_table,
)
from harness.runner import CaseResult
from harness.verdicts import Finding, Verdict

LOCK = MUTANTS_BY_DEFECT["lock-across-recv"]
CASE = "heartbeat/01-idle-cadence"


def result(verdict: Verdict, *findings: Finding, duration: float = 2.5) -> CaseResult:
    return CaseResult(by_id(CASE), verdict, list(findings), duration)


MISSING = Finding("heartbeat.missing", Verdict.FAILED, "a heartbeat every 0.8 s", "marked missing", 1.2)
GAP = Finding("heartbeat.gap", Verdict.NON_STRICT, "gaps <= 0.32 s", "a 0.4 s gap", 0.6)
HARNESS = Finding("harness", Verdict.UNKNOWN, "the harness to run", "boom")


def test_caught_needs_the_intended_oracle_at_the_intended_verdict() -> None:
    assert LOCK.caught(result(Verdict.FAILED, MISSING))
    assert not LOCK.caught(result(Verdict.NON_STRICT, GAP)), "a milder verdict from another oracle is a miss"
    assert not LOCK.caught(result(Verdict.FAILED, Finding("order.first", Verdict.FAILED, "x", "y"))), "wrong oracle"
    assert not LOCK.caught(result(Verdict.UNKNOWN, HARNESS)), "a harness failure never counts as a catch"
    late = Mutant("late-heartbeats", (CASE,), Verdict.NON_STRICT, ("heartbeat.gap", "heartbeat.missing"))
    assert late.caught(result(Verdict.NON_STRICT, GAP))
    assert late.caught(result(Verdict.FAILED, MISSING)), "a worse verdict from an intended oracle counts"
    assert not late.caught(result(Verdict.INFORMATIONAL, Finding("heartbeat.gap", Verdict.INFORMATIONAL, "a", "b")))
    assert not late.caught(result(Verdict.NON_STRICT, Finding("heartbeat.gap-x", Verdict.NON_STRICT, "a", "b"))), (
        "oracles are matched exactly, never by prefix"
    )


def test_a_defect_the_master_does_not_mind_is_caught_when_named_at_its_level() -> None:
    early = Mutant("heartbeat-before-ack", (CASE,), Verdict.INFORMATIONAL, ("order.first-ignored",))
    named = Finding("order.first-ignored", Verdict.INFORMATIONAL, "a", "b")
    assert early.caught(result(Verdict.INFORMATIONAL, named))
    assert not early.caught(result(Verdict.INFORMATIONAL, Finding("handshake.x", Verdict.INFORMATIONAL, "a", "b")))
    assert not early.caught(result(Verdict.UNKNOWN, named, HARNESS)), "a harness failure never counts"


def test_every_defect_has_exactly_one_mutant_and_commands_name_it() -> None:
    assert len(MUTANTS) == len(MUTANTS_BY_DEFECT)
    assert command_for(None).endswith("{heartbeat_interval}")
    assert command_for("stuck-spawning").endswith("--defect stuck-spawning")
    assert intended_cases(MUTANTS)[0].startswith("handshake/"), "catalog order"


def test_cells_tally_rates_latency_and_evidence() -> None:
    cell = Cell("lock-across-recv", CASE, intended=True)
    _judge(LOCK, cell, result(Verdict.FAILED, MISSING, duration=2.7))
    _judge(LOCK, cell, result(Verdict.OK))
    _judge(LOCK, cell, result(Verdict.FAILED, dataclasses.replace(MISSING, at=1.6), duration=2.9))
    data = cell.to_json()
    assert (data["runs"], data["caught"], data["rate"]) == (3, 2, pytest.approx(2 / 3, abs=1e-3))
    assert data["detection_s"] == {"min": 1.2, "median": 1.4, "max": 1.6}
    assert data["verdict_s"] == {"min": 2.7, "median": 2.8, "max": 2.9}
    assert "heartbeat.missing" in data["evidence"]
    assert data["missed_evidence"].startswith("OK"), "what the missed run showed"
    assert data["verdicts"] == {"FAILED": 2, "OK": 1}


def test_evidence_without_a_moment_is_counted_apart_from_detection_latency() -> None:
    cell = Cell("lock-across-recv", CASE, intended=True)
    _judge(LOCK, cell, result(Verdict.FAILED, Finding("heartbeat.missing", Verdict.FAILED, "x", "y"), duration=3.0))
    assert (cell.detection_s, cell.untimed, cell.verdict_s) == ([], 1, [3.0])
    assert cell.to_json()["untimed_detections"] == 1


def _matrix(*cells: Cell, min_rate: float = 0.95) -> Matrix:
    m = Matrix(runs=20, heartbeat_interval=0.2, min_rate=min_rate, subjects=[CLEAN, "lock-across-recv"], cases=[CASE])
    m.cells = {(c.subject, c.case): c for c in cells}
    return m


def _cell(subject: str, intended: bool, caught: int, runs: int, unknown: int = 0) -> Cell:
    cell = Cell(subject, CASE, intended)
    mutant = LOCK if subject != CLEAN else None
    for i in range(runs):
        if i < unknown:
            _judge(mutant, cell, result(Verdict.UNKNOWN, HARNESS))
        elif i < unknown + caught:
            _judge(mutant, cell, result(Verdict.FAILED, MISSING))
        else:
            _judge(mutant, cell, result(Verdict.OK))
    return cell


def test_a_matrix_passes_at_19_of_20_and_fails_at_18() -> None:
    assert _matrix(_cell(CLEAN, False, 0, 20), _cell("lock-across-recv", True, 19, 20)).problems() == []
    (problem,) = _matrix(_cell(CLEAN, False, 0, 20), _cell("lock-across-recv", True, 18, 20)).problems()
    assert problem == "lock-across-recv caught by heartbeat/01-idle-cadence in only 18 of 20 runs (needs 95%)"


def test_a_clean_catch_and_an_unknown_fail_the_matrix() -> None:
    problems = _matrix(_cell(CLEAN, False, 1, 20), _cell("lock-across-recv", True, 19, 20, unknown=1)).problems()
    assert "clean worker caught by heartbeat/01-idle-cadence in 1 of 20 runs (false positive)" in problems
    assert "lock-across-recv on heartbeat/01-idle-cadence: 1 of 20 runs UNKNOWN (harness failure)" in problems


def test_a_scenario_error_is_neither_caught_nor_missed_and_fails_the_matrix() -> None:
    """Like UNKNOWN, it says nothing about the worker: never a catch, for a defect or on the clean worker."""
    cell = Cell("lock-across-recv", CASE, True)
    error = Finding("script", Verdict.SCENARIO_ERROR, "a scenario the harness can run", "impossible")
    assert _judge(LOCK, cell, result(Verdict.SCENARIO_ERROR, error)) is False
    assert _judge(None, Cell(CLEAN, CASE, False), result(Verdict.SCENARIO_ERROR, error)) is False
    problems = _matrix(_cell(CLEAN, False, 0, 20), cell).problems()
    assert "lock-across-recv on heartbeat/01-idle-cadence: 1 of 1 runs SCENARIO-ERROR (a bug in the case)" in problems


def test_json_table_and_grid() -> None:
    m = _matrix(_cell(CLEAN, False, 0, 2), _cell("lock-across-recv", True, 2, 2))
    data = json.loads(json.dumps(m.to_json()))
    assert data["kind"] == "mutation-matrix" and data["ok"] is True and data["problems"] == []
    assert [s["name"] for s in data["subjects"]] == [CLEAN, "lock-across-recv"]
    assert data["subjects"][1]["intended"] == {"cases": [CASE], "verdict": "FAILED", "oracles": ["heartbeat.missing"]}
    assert {(c["subject"], c["caught"]) for c in data["cells"]} == {(CLEAN, 0), ("lock-across-recv", 2)}
    table = summary_table(m)
    assert "| lock-across-recv | heartbeat/01-idle-cadence | 2/2 | FAILED 2 | 1.20 / 1.20 | 2.50 / 2.50 |" in table
    assert "| clean | all 1 columns | 0/2 | false positives | | |" in table
    lines = grid(m).splitlines()
    assert lines[1].split() == [CLEAN, "0/2"] and lines[2].split() == ["lock-across-recv", "2/2*"]
    assert lines[-1].split() == ["c1", CASE]
