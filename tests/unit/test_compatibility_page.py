"""docs/compatibility.md is its JSON rendered, every non-OK verdict explained; the explanations match what they say."""

from __future__ import annotations

import json
from pathlib import Path

from harness.compatibility import UNEXPLAINED, explain, render

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_page_is_its_matrix_and_explains_every_verdict() -> None:
    matrix = json.loads((DOCS / "compatibility.json").read_text())
    page = (DOCS / "compatibility.md").read_text()
    assert page == render(matrix), "regenerate: locust-conformance compatibility --markdown docs/compatibility.md"
    assert UNEXPLAINED not in page
    assert set(matrix["profiles"]) == {"2.0", "2.8", "2.15", "2.20", "2.47"}
    assert {"locust@2.8.6", "locust@2.15.1", "locust@2.20.0", "locust@2.47.0"} <= set(matrix["workers"])


def _case(case_id: str, verdict: str, *oracles: str) -> dict[str, object]:
    return {"id": case_id, "verdict": verdict, "findings": [{"oracle": o, "verdict": verdict} for o in oracles]}


def test_an_explanation_needs_its_oracle_not_only_its_case() -> None:
    assert (
        explain("locust@2.20.0", "2.20", _case("storms/04-stale-spawn-flood", "NON-STRICT", "heartbeat.gap")) == "flood-logging"
    )
    assert explain("locust@2.20.0", "2.20", _case("storms/04-stale-spawn-flood", "FAILED", "spawn.stale")) == UNEXPLAINED
    assert explain("locust@2.15.1", "2.15", _case("malformed/01-garbage", "FAILED", "socket.output")) == "receive-loop-dies"
    assert explain("locust@2.15.1", "2.15", _case("malformed/01-garbage", "FAILED", "stats.integrity")) == UNEXPLAINED
    assert explain("locust@2.47.0", "2.8", _case("spawn/01-basic", "FAILED", "handshake.ack-required")) == "ack-wait"
    assert explain("locust@2.47.0", "2.20", _case("timing/02-reordered-spawns", "FAILED", "spawn.stale")) == UNEXPLAINED
    assert explain("locust@2.20.0", "2.20", _case("timing/02-reordered-spawns", "FAILED", "spawn.stale")) == (
        "spawning-complete-per-message"
    )


def test_locust_explanations_never_excuse_another_worker_or_a_master_crash() -> None:
    garbage = _case("malformed/01-garbage", "FAILED", "socket.output")
    assert explain("locust@2.47.0", "2.47", garbage) == "receive-loop-dies"
    assert explain("reference", "2.47", garbage) == UNEXPLAINED  # a regression of ours is never blamed on Locust
    crashed = _case("malformed/01-garbage", "FAILED", "socket.output", "master.crashed")
    assert explain("locust@2.47.0", "2.47", crashed) == UNEXPLAINED
    mixed = _case("malformed/01-garbage", "FAILED", "socket.output", "stats.integrity")
    assert explain("locust@2.47.0", "2.47", mixed) == UNEXPLAINED  # every oracle of the verdict must be covered
