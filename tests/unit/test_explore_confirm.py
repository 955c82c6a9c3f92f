"""explore's shrinking keeps a smaller schedule only if it fails twice in a row (run_case stubbed: no processes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import harness.explore as explore_module
from harness.consequences import judged
from harness.explore import MAX_DEFAULT_ATTEMPTS, attempts_for, explore
from harness.runner import CaseResult
from harness.verdicts import Verdict


def stub(second_run: Verdict) -> Any:
    """A worker whose schedules of 2+ steps always fail, of no steps pass, and of 1 step pass until a failure has
    been seen; from then on (shrinking) each fails on its first run only, its second run gets ``second_run``."""
    runs: Counter[str] = Counter()
    seen_failure: list[bool] = []

    def run_case(case: Any, config: Any, folder: Path) -> CaseResult:
        folder.mkdir(parents=True, exist_ok=True)
        key = case.body.__closure__[0].cell_contents.describe()  # the schedule the case carries out
        runs[key] += 1
        steps = 0 if key.startswith("(no steps)") else key.count(" · ") + 1 - key.endswith("quit")
        if steps >= 2 or (steps == 1 and seen_failure and runs[key] == 1):
            seen_failure.append(True)
            finding = judged("heartbeat.missing", "heartbeats", "none")
            return CaseResult(case, Verdict.FAILED, [finding], 0.01, max_heartbeat_gap=1.0, artifacts=str(folder))
        verdict = second_run if steps == 1 and seen_failure else Verdict.OK
        findings = [judged("harness.overloaded", "on time", "late")] if verdict is Verdict.UNKNOWN else []
        return CaseResult(case, verdict, findings, 0.01, max_heartbeat_gap=0.2, artifacts=str(folder))

    return run_case


@pytest.mark.parametrize(("second_run", "minimal_steps"), [(Verdict.OK, 2), (Verdict.UNKNOWN, 1)])
def test_a_shrunk_schedule_that_passes_its_second_run_is_not_the_minimal_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second_run: Verdict, minimal_steps: int
) -> None:
    monkeypatch.setattr(explore_module, "run_case", stub(second_run))
    result = explore("stub", seed=3, max_examples=60, report=tmp_path, shrink_seconds=30, reproduce=1, target=False)
    assert result.minimal is not None and result.failures
    assert len(result.minimal.schedule.steps) == minimal_steps, result.minimal.schedule.describe()
    if second_run is Verdict.OK:  # one-step schedules failed once, then passed: recorded, never kept
        assert result.unconfirmed and all(len(e.schedule.steps) == 1 for e in result.examples if e.number in result.unconfirmed)
    else:  # a confirm run that could not be judged does not contradict the failure
        assert not result.unconfirmed


def test_a_repro_script_tries_as_often_as_the_measured_rate_needs() -> None:
    assert attempts_for(2, 2) == 1  # reproduced every time
    assert attempts_for(1, 2) == 7  # half the time: 0.5 ** 7 < 0.01
    assert attempts_for(3, 5) == 6  # 0.4 ** 6 < 0.01 <= 0.4 ** 5
    assert attempts_for(0, 2) == attempts_for(1, 10) == MAX_DEFAULT_ATTEMPTS
    assert attempts_for(0, 0) == 1  # not re-run at all: no rate to go by
