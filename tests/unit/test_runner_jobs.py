"""Cases side by side (harness.runner.run_catalog with jobs): order kept, floods alone, auto backs off on overload."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import runner
from harness.catalog import Case
from harness.protocol.timing import LOCUST_TIMING
from harness.runner import AUTO, CaseResult, RunConfig, auto_jobs, run_catalog
from harness.verdicts import Finding, Verdict


def _case(name: str, budget: float, exclusive: bool = False) -> Case:
    return Case(f"timing/{name}", "timing", name, "x", "", lambda ctx: None, budget, exclusive=exclusive)


CASES = [_case("01-short", 1), _case("02-long", 9), _case("03-flood", 2, exclusive=True), _case("04-middle", 5)]


def test_auto_starts_with_more_cases_at_a_slower_pace() -> None:
    assert auto_jobs(LOCUST_TIMING, cpus=2) == 8
    assert auto_jobs(LOCUST_TIMING.compressed(0.2), cpus=2) == 6
    assert auto_jobs(LOCUST_TIMING, cpus=16) == 12 and auto_jobs(LOCUST_TIMING.compressed(0.05), cpus=1) == 3


@pytest.fixture
def fake_cases(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """run_case replaced by a stand-in that records what ran beside what; the first run of 02-long "overloads"."""
    seen: dict[str, Any] = {"running": set(), "beside": {}, "calls": [], "overload": {"timing/02-long"}}
    lock = threading.Lock()

    def fake(case: Case, config: RunConfig, folder: Path, report: Path | None = None) -> CaseResult:
        with runner.QUIET.hold(case.exclusive):
            with lock:
                seen["beside"][case.id] = set(seen["running"])
                seen["running"].add(case.id)
                seen["calls"].append(case.id)
                first = seen["calls"].count(case.id) == 1
            time.sleep(0.05)
            with lock:
                seen["running"].discard(case.id)
        findings = []
        if case.id in seen["overload"] and first:
            findings = [Finding("harness.overloaded", Verdict.UNKNOWN, "a harness on time", "late")]
        verdict = Verdict.UNKNOWN if findings else Verdict.OK
        return CaseResult(case, verdict, findings, 0.05, dir=f"cases/{case.id.replace('/', '__')}")

    monkeypatch.setattr(runner, "run_case", fake)
    return seen


def test_results_keep_catalog_order_and_floods_run_alone(fake_cases: dict[str, Any], tmp_path: Path) -> None:
    run = run_catalog(CASES, RunConfig("reference", "x"), tmp_path, jobs=3)
    assert [r.case.id for r in run.results] == [c.id for c in CASES]
    assert fake_cases["beside"]["timing/03-flood"] == set()
    assert fake_cases["calls"][0] == "timing/02-long"  # the longest first
    assert fake_cases["calls"][-1] == "timing/03-flood"
    assert run.results[1].verdict is Verdict.UNKNOWN  # a number of jobs: an overloaded case stays UNKNOWN


def test_auto_halves_the_jobs_and_runs_an_overloaded_case_again_alone(fake_cases: dict[str, Any], tmp_path: Path) -> None:
    run = run_catalog(CASES, RunConfig("reference", "x", 1.0), tmp_path, jobs=AUTO)
    assert fake_cases["calls"].count("timing/02-long") == 2
    again = run.results[1]
    assert again.verdict is Verdict.OK and "overloaded" in again.rerun
    assert run.jobs == auto_jobs(LOCUST_TIMING) // 2
    assert [r.case.id for r in run.results] == [c.id for c in CASES]


def test_auto_runs_an_overloaded_flood_once_more_alone(fake_cases: dict[str, Any], tmp_path: Path) -> None:
    """A case that needs a quiet machine ran alone and its harness was still late: the machine was busy, once more."""
    fake_cases["overload"] = {"timing/03-flood"}
    run = run_catalog(CASES, RunConfig("reference", "x", 1.0), tmp_path, jobs=AUTO)
    assert fake_cases["calls"].count("timing/03-flood") == 2
    flood = next(r for r in run.results if r.case.id == "timing/03-flood")
    assert flood.verdict is Verdict.OK and "ran alone" in flood.rerun
    assert fake_cases["beside"]["timing/03-flood"] == set()


def test_a_number_at_once_leaves_an_overloaded_flood_unknown(fake_cases: dict[str, Any], tmp_path: Path) -> None:
    fake_cases["overload"] = {"timing/03-flood"}
    run = run_catalog(CASES, RunConfig("reference", "x", 1.0), tmp_path, jobs=3)
    assert fake_cases["calls"].count("timing/03-flood") == 1
    assert next(r for r in run.results if r.case.id == "timing/03-flood").verdict is Verdict.UNKNOWN


@pytest.mark.parametrize("jobs", [2, AUTO])
def test_a_bug_of_ours_in_a_case_surfaces_whatever_the_number_at_once(jobs: int | str) -> None:
    def run_one(case: Case, rerun: str) -> CaseResult:
        raise RuntimeError(f"a bug of ours in {case.id}")

    with pytest.raises(RuntimeError, match="a bug of ours"):
        runner.side_by_side([c for c in CASES if not c.exclusive], run_one, jobs, LOCUST_TIMING, lambda case: case)
