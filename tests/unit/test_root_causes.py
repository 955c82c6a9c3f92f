"""Root causes: one defect seen in many cases is one line (harness.root_causes)."""

from __future__ import annotations

from typing import Any

from harness.root_causes import describe, normalise, root_causes


def case(case_id: str, *findings: tuple[str, str, str], kind: str = "conformance") -> dict[str, Any]:
    return {
        "id": case_id,
        "kind": kind,
        "findings": [{"oracle": o, "verdict": v, "expected": "e", "observed": obs, "consequence": "c"} for o, v, obs in findings],
    }


ETERM = "ZMQ ETERM (errno 156384765, ...): 'Exception in thread \"zmq-receiver\"' while shutting down (t={t}s)"


def test_one_defect_in_many_cases_is_one_cause_worst_first() -> None:
    cases = [
        case("stop-quit/05", ("shutdown.output", "NON-STRICT", ETERM.format(t="4.010"))),
        case("stop-quit/06", ("shutdown.output", "NON-STRICT", ETERM.format(t="2.377")), ("stats.final", "NON-STRICT", "x")),
        case("stats/05", ("shutdown.output", "NON-STRICT", ETERM.format(t="9.5"))),
        case("malformed/01", ("progress", "FAILED", "no spawning_complete within 4 s"), kind="robustness"),
        case("handshake/01", ("heartbeat.gap", "OK", "fine")),
    ]
    causes = root_causes(cases)
    assert [(c["oracle"], c["verdict"], c["cases"]) for c in causes] == [
        ("progress", "FAILED", ["malformed/01"]),
        ("shutdown.output", "NON-STRICT", ["stop-quit/05", "stop-quit/06", "stats/05"]),
        ("stats.final", "NON-STRICT", ["stop-quit/06"]),
    ]
    eterm = causes[1]
    assert eterm["findings"] == 3 and eterm["first"]["case"] == "stop-quit/05" and eterm["kinds"] == ["conformance"]
    assert "in 3 cases" in describe(eterm) and describe(causes[0]).startswith("FAILED [progress] in 1 case (robustness): ")


def test_what_differs_between_occurrences_is_stripped() -> None:
    a = normalise("missing after 4.523 s (last heartbeat at t=1.200s) from vm_88d61537e23b4e3e8c8e22efc79631e9 at 127.0.0.1:5557")
    b = normalise("missing after 5.1 s (last heartbeat at t=7s) from vm_0a1b2c3d4e5f at 10.0.0.2:40000")
    assert a == b == "missing after <n> s (last heartbeat at t=<n>s) from vm_<id> at <addr>"
    assert normalise("File /tmp/pytest-of-root/x/worker.log") == "File <path>"
    assert normalise("ETERM") != normalise("EFSM")
