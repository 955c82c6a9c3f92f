"""Tests of harness.scenario: a script's outcome as findings graded like a catalog case's, merged by ``worst``.

Whose fault it was: the worker missing a step or breaking the protocol is FAILED, the script asking for something
impossible SCENARIO-ERROR, the harness failing UNKNOWN (never a pass), and an error the fake master recorded in the
trace is FAILED whatever the script did. The run_scenario tests start a tiny raw-DEALER worker (a Python process that
registers, optionally sends a garbage frame first, and waits for quit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fakemaster.script import parse_script
from harness.cli import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, SCENARIO_EXIT
from harness.errors import ConformanceError, ExpectationFailed, HarnessFault, ProtocolViolation, ScenarioError
from harness.protocol.findings import Violation
from harness.protocol.schema import Severity
from harness.scenario import ScenarioOutcome, judge_script, run_scenario, summarize, trace_findings
from harness.trace import Kind, Trace
from harness.verdicts import NOT_JUDGED, Finding, Verdict

pytestmark = pytest.mark.timeout(60)

STEP = parse_script([{"expect": "heartbeat", "within": 1}]).steps[0]
SUMMARY_KEYS = {  # summary.json before findings were added: its readers rely on every one
    "verdict",
    "reason",
    "command",
    "worker_exit",
    "worker_exit_text",
    "steps_run",
    "steps_total",
    "duration_s",
    "max_heartbeat_gap_s",
    "violations",
}
TINY_WORKER = """
import sys, msgpack, zmq
sock = zmq.Context().socket(zmq.DEALER)
sock.setsockopt(zmq.IDENTITY, b"tiny")
sock.setsockopt(zmq.LINGER, 0)
sock.connect(f"tcp://{sys.argv[1]}:{sys.argv[2]}")
if "--garbage" in sys.argv:
    sock.send(b"\\xc1")  # never valid msgpack
sock.send(msgpack.packb(["client_ready", "2.47.0", "tiny"]))
while sock.poll(20000):
    if msgpack.unpackb(sock.recv())[0] == "quit":
        break
"""


# --------------------------------------------------------------------------------------------
# judge_script: the error that stopped a script
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "verdict", "oracle"),
    [
        (ExpectationFailed("expect.heartbeat", "heartbeat within 1 s", "0 messages"), Verdict.FAILED, "expect.heartbeat"),
        (ProtocolViolation("codec.arity", "an array of exactly 3 items", "4 items"), Verdict.FAILED, "codec.arity"),
        (ScenarioError("restart: the master is dead"), Verdict.SCENARIO_ERROR, "script"),
        (HarnessFault("the socket refused the message"), Verdict.UNKNOWN, "harness"),
        (ConformanceError("any other error of ours"), Verdict.UNKNOWN, "harness"),
    ],
    ids=["expectation", "protocol-violation", "scenario-error", "harness-fault", "other"],
)
def test_the_error_that_stopped_a_script_says_whose_fault_it_was(error: ConformanceError, verdict: Verdict, oracle: str) -> None:
    [finding] = judge_script(error, STEP, at=1.25)
    assert (finding.oracle, finding.verdict, finding.at) == (oracle, verdict, 1.25)
    assert finding.observed.startswith(f"at {STEP}: ")
    assert finding.consequence, "graded by the consequence table, as a catalog case's finding"
    assert SCENARIO_EXIT[verdict] != EXIT_OK, "never a pass"


def test_a_failed_step_says_the_worker_had_died() -> None:
    [finding] = judge_script(ExpectationFailed("expect.heartbeat", "a heartbeat", "none"), STEP, exit_code=1)
    assert finding.observed.endswith("none (the worker process had ended: exit code 1)")


def test_a_script_that_ran_every_step_has_no_finding_and_passes(tmp_path: Path) -> None:
    assert judge_script(None, None) == []
    outcome = ScenarioOutcome(tmp_path)
    assert outcome.verdict is Verdict.OK and outcome.reason == "every step passed"


def test_an_error_outside_the_steps_names_no_step() -> None:
    [finding] = judge_script(ScenarioError("worker command must contain {port}"), None)
    assert finding.verdict is Verdict.SCENARIO_ERROR and finding.observed == "worker command must contain {port}"


def test_every_verdict_has_an_exit_code() -> None:
    """A script graded like a catalog case exits as ``run`` does: nothing slips through as a pass by omission."""
    assert set(SCENARIO_EXIT) == set(Verdict)
    assert {v for v, code in SCENARIO_EXIT.items() if code == EXIT_OK} == set(Verdict) - NOT_JUDGED - {Verdict.FAILED}
    assert SCENARIO_EXIT[Verdict.FAILED] == EXIT_FAILED
    assert SCENARIO_EXIT[Verdict.UNKNOWN] == EXIT_UNKNOWN
    assert SCENARIO_EXIT[Verdict.SCENARIO_ERROR] == EXIT_USAGE == 3


# --------------------------------------------------------------------------------------------
# trace_findings and the merge
# --------------------------------------------------------------------------------------------


def _trace(*violations: Violation) -> Trace:
    """One received record per violation, at t = 1, 2, 3 ... (t0 = 0)."""
    trace = Trace(t0=0.0)
    for i, v in enumerate(violations, start=1):
        trace.append(float(i), Kind.RECV, identity="w", violations=(v,))
    return trace


def test_errors_in_the_trace_are_failed_named_as_the_catalog_names_them() -> None:
    empty = Violation("schema.client_ready", "version as a non-empty str", "''")
    trace = _trace(
        empty,
        Violation("codec.not-msgpack", "a complete msgpack object", "garbage"),
        Violation("direction", "only worker-to-master types from a worker", "master-only type 'spawn'"),
        Violation("type.unknown", "a built-in message type", "type 'custom'", Severity.DEVIATION),
        Violation("schema.client_ready", empty.expected, "'x y'"),
    )
    findings = trace_findings(trace.records(), trace.t0)
    assert [(f.oracle, f.verdict, f.at) for f in findings] == [
        ("schema.client_ready", Verdict.FAILED, 1.0),
        ("codec.not-msgpack", Verdict.FAILED, 2.0),
        ("schema.direction", Verdict.FAILED, 3.0),
    ], "deviations from Locust's worker are reported in violations, not judged"
    assert findings[0].observed == "'' (2 messages, the first shown)"


def test_an_error_in_the_trace_turns_a_passing_script_into_failed(tmp_path: Path) -> None:
    trace = _trace(Violation("codec.not-msgpack", "a complete msgpack object", "garbage"))
    outcome = ScenarioOutcome(tmp_path, [*judge_script(None, None), *trace_findings(trace.records(), trace.t0)])
    assert outcome.verdict is Verdict.FAILED
    assert outcome.reason == "[codec.not-msgpack] at t=1.000s: expected a complete msgpack object; observed garbage"


@pytest.mark.parametrize("error", [ScenarioError("restart: the master is dead"), HarnessFault("refused")])
def test_evidence_in_the_trace_is_never_hidden_by_a_run_that_was_not_judged(error: ConformanceError) -> None:
    trace = _trace(Violation("framing.frames", "exactly one payload frame per message", "2 frames"))
    findings = [*judge_script(error, STEP), *trace_findings(trace.records(), trace.t0)]
    assert ScenarioOutcome(Path("."), findings).verdict is Verdict.FAILED


def test_the_reason_is_the_first_worst_finding_and_how_many_share_its_verdict() -> None:
    findings = [
        Finding("a", Verdict.UNKNOWN, "x", "y"),
        Finding("b", Verdict.SCENARIO_ERROR, "e", "o"),
        Finding("c", Verdict.UNKNOWN, "x2", "y2", 2.0),
    ]
    assert summarize(findings) == "[a]: expected x; observed y (and 1 more UNKNOWN findings)"
    assert summarize(findings[1:2]) == "[b]: expected e; observed o"


# --------------------------------------------------------------------------------------------
# run_scenario: the same judgements from a real run
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_worker(tmp_path: Path) -> str:
    path = tmp_path / "tiny_worker.py"
    path.write_text(TINY_WORKER)
    return f"{sys.executable} {path} {{host}} {{port}}"


@pytest.mark.parametrize(
    ("steps", "verdict", "oracle"),
    [
        ([{"expect": "client_ready", "within": 5}], Verdict.OK, None),
        ([{"expect": "client_ready", "within": 5}, {"expect": "heartbeat", "within": 0.3}], Verdict.FAILED, "expect.heartbeat"),
        ([{"expect": "client_ready", "within": 5}, {"die": True}, {"restart": 0.1}], Verdict.SCENARIO_ERROR, "script"),
        ([{"expect": "client_ready", "within": 5}, {"send": "custom", "to": "nobody"}], Verdict.UNKNOWN, "harness"),
    ],
    ids=["ok", "missed-step", "impossible-step", "harness-fault"],
)
def test_a_run_ends_with_its_findings_in_summary_json(
    tiny_worker: str, tmp_path: Path, steps: list[object], verdict: Verdict, oracle: str | None
) -> None:
    report = tmp_path / "report"
    outcome = run_scenario(tiny_worker, parse_script({"heartbeat_interval": 0.2, "steps": steps}), report)
    assert outcome.verdict is verdict, outcome.reason
    assert [f.oracle for f in outcome.findings] == ([] if oracle is None else [oracle])
    summary = json.loads((report / "summary.json").read_text())
    assert SUMMARY_KEYS | {"findings"} == set(summary)
    assert summary["verdict"] == verdict.value and summary["reason"] == outcome.reason
    assert summary["findings"] == [f.to_json() for f in outcome.findings]


def test_a_run_whose_every_step_passed_fails_on_an_error_in_the_trace(tiny_worker: str, tmp_path: Path) -> None:
    script = parse_script({"heartbeat_interval": 0.2, "steps": [{"expect": "client_ready", "within": 5}]})
    outcome = run_scenario(f"{tiny_worker} --garbage", script, tmp_path)
    assert outcome.steps_run == outcome.steps_total == 1
    assert outcome.verdict is Verdict.FAILED and SCENARIO_EXIT[outcome.verdict] == EXIT_FAILED
    assert [f.oracle for f in outcome.findings] == ["codec.not-msgpack"]
    assert [v["rule"] for v in outcome.violations] == ["codec.not-msgpack"]


def test_a_worker_command_the_harness_cannot_run_is_a_scenario_error(tmp_path: Path) -> None:
    outcome = run_scenario("my-worker --no-port", parse_script([{"note": "never run"}]), tmp_path)
    assert outcome.verdict is Verdict.SCENARIO_ERROR and outcome.steps_run == 0
    assert "must contain {port}" in outcome.reason
