"""Workers in other languages, built by the suite for it: a JVM worker (tests/jvm_worker) and a Go peer (tests/go_peer).

A missing toolchain (or the real Locust) skips what needs it, unless LC_REQUIRE_PEERS=1 (``make test``, CI): then it
fails, so a CI machine without them can never pass by skipping.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from harness.runner import CaseResult
from harness.verdicts import Verdict

from tests.go_peer import build as go_peer
from tests.jvm_worker import build as jvm


def need(reason: str) -> None:
    """Skip with ``reason``; fail instead where LC_REQUIRE_PEERS=1."""
    if os.environ.get("LC_REQUIRE_PEERS") == "1":
        pytest.fail(f"LC_REQUIRE_PEERS=1 but {reason}")
    pytest.skip(reason)


def locust_or_skip() -> None:
    """At a test module's top: skip it without the real Locust (our reference peer); fail where LC_REQUIRE_PEERS=1."""
    if importlib.util.find_spec("locust") is None:  # finds the package without importing it
        reason = "the real Locust is not installed (pip install .[locust]; make install does)"
        if os.environ.get("LC_REQUIRE_PEERS") == "1":
            pytest.fail(f"LC_REQUIRE_PEERS=1 but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def jvm_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JVM worker's classes, compiled once per session."""
    reason = jvm.available()
    if reason:
        need(reason)
    return jvm.build(tmp_path_factory.mktemp("jvm-worker"))


@pytest.fixture(scope="session")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go peer's binary, built once per session."""
    if go_peer.available() is None:
        need("no Go toolchain (make go-peer installs golang-go)")
    return go_peer.build(tmp_path_factory.mktemp("go-peer"))


LOCUST_EXPECTED = Path(__file__).resolve().parents[1] / "docs" / "locust-expected.json"


def locust_expected() -> dict[str, list[str]]:
    """docs/locust-expected.json without its comments: case id -> the verdicts documented for Locust's worker."""
    return {k: v for k, v in json.loads(LOCUST_EXPECTED.read_text()).items() if not k.startswith("_")}


def undocumented(results: Iterable[CaseResult], expected: dict[str, list[str]]) -> list[str]:
    """The results whose verdict is not documented for their case (none documented: OK), each with why.

    An entry ``"VERDICT:oracle"`` allows that verdict only with a finding of that oracle at that verdict, and beside
    it only the heartbeat findings it causes (a race documented as such, never another failure of the case).
    """
    return [
        f"{r.case.id}: {r.verdict.value} (documented: {expected.get(r.case.id, [Verdict.OK.value])}) - {r.summary()}"
        for r in results
        if r.verdict.value not in expected.get(r.case.id, [Verdict.OK.value]) and not excused_by_oracle(r, expected)
    ]


def excused_by_oracle(result: CaseResult, expected: dict[str, list[str]]) -> bool:
    """True if ``result``'s verdict is allowed by a ``"VERDICT:oracle"`` entry: that oracle gave it, and the only
    other findings at that verdict are the heartbeat findings it causes."""
    allowed = set(expected.get(result.case.id, []))
    at_verdict = {f.oracle for f in result.findings if f.verdict is result.verdict}
    tied = {o for o in at_verdict if f"{result.verdict.value}:{o}" in allowed}
    return bool(tied) and all(o in tied or o.startswith("heartbeat.") for o in at_verdict)
