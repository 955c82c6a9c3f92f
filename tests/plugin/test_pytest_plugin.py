"""The pytest plugin (harness.pytest_plugin), tested the way users run it: pytest in a subprocess (pytester)."""

from __future__ import annotations

import json

import subprocess
import sys
import time
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest


from harness.catalog import by_id
from harness.mutation import command_for
from harness.report import schema_errors
from harness.pytest_plugin import DEFAULT_INTERVAL, LocustConformanceWarning, VerdictFailure, outcome, quiet_across_workers
from harness.runner import DEFAULT_INTERVAL as RUNNER_INTERVAL
from harness.runner import CaseResult
from harness.verdicts import Finding, Verdict

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", *args, timeout=150)


# -- registration ------------------------------------------------------------------------------------


def test_registered_as_pytest11_under_its_own_name() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("locust_conformance") == "harness.pytest_plugin"
    assert plugins.get("locust", "harness.pytest_plugin") != "harness.pytest_plugin", "never under Locust's name"


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    heavy = "('zmq', 'fakemaster', 'harness.runner', 'msgpack')"
    code = f"import sys, harness.pytest_plugin; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() == "[]"


def test_defaults_agree_with_the_runner() -> None:
    assert DEFAULT_INTERVAL == RUNNER_INTERVAL


# -- the catalog as items ----------------------------------------------------------------------------


def test_items_are_named_by_case_id(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--lc-worker", "reference", "--lc-cases", "handshake/01*,spawn/01*", "--collect-only", "-q")
    assert "handshake/01-first-message" in result.stdout.str()
    assert "spawn/01-basic" in result.stdout.str()
    assert "2 tests collected" in result.stdout.str()


def test_the_reference_worker_passes_and_keywords_select_by_category(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--lc-worker", "reference", "--lc-cases", "handshake/01*,spawn/01*,stop-quit/06*", "-k", "not stop")
    result.assert_outcomes(passed=2, deselected=1)


def test_failed_is_a_failure_whose_text_is_the_evidence(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--lc-worker", command_for("lock-across-recv"), "--lc-cases", "heartbeat/01*")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "heartbeat/01-idle-cadence: FAILED" in out and "[heartbeat.missing]" in out and "evidence: " in out


def test_non_strict_passes_with_a_warning_unless_strict(pytester: pytest.Pytester) -> None:
    worker = command_for("no-final-stats")
    lenient = run(pytester, "--lc-worker", worker, "--lc-cases", "stats/05*")
    lenient.assert_outcomes(passed=1, warnings=1)
    assert "LocustConformanceWarning" in lenient.stdout.str() and "stats.final" in lenient.stdout.str()
    strict = run(pytester, "--lc-worker", worker, "--lc-cases", "stats/05*", "--lc-strict")
    strict.assert_outcomes(failed=1)
    gated = run(pytester, "--lc-worker", worker, "--lc-cases", "stats/05*", "--lc-fail-on", "non-strict")
    gated.assert_outcomes(failed=1)  # the same switch as --lc-strict and as `run --fail-on non-strict`


def test_unimplemented_is_a_skip_with_the_evidence_as_reason(pytester: pytest.Pytester) -> None:
    worker = command_for("no-master-timeout") + " --master-heartbeat-timeout 3"  # its own timing, declared:
    result = run(pytester, "--lc-worker", worker, "--lc-cases", "reconnect/04*", "--lc-worker-timing", "master-timeout=3")
    result.assert_outcomes(skipped=1)
    assert "UNIMPLEMENTED" in result.stdout.str() and "shutdown.master-death" in result.stdout.str()


def test_ini_options_and_the_project_tests_beside_the_catalog(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlc_worker = reference\nlc_cases = handshake/01*\nlc_heartbeat_interval = 0.25\n")
    pytester.makepyfile(test_mine="def test_mine():\n    assert True\n")
    only_catalog = run(pytester)
    only_catalog.assert_outcomes(passed=1)  # no paths given: the catalog only
    both = run(pytester, "test_mine.py")
    both.assert_outcomes(passed=2)


def test_bad_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    bad_worker = run(pytester, "--lc-worker", "my-worker --no-port")
    assert bad_worker.ret == pytest.ExitCode.USAGE_ERROR
    assert "{port}" in bad_worker.stderr.str()
    no_case = run(pytester, "--lc-worker", "reference", "--lc-cases", "nothing/*")
    assert no_case.ret == pytest.ExitCode.USAGE_ERROR
    bad_interval = run(pytester, "--lc-worker", "reference", "--lc-heartbeat-interval", "-1")
    assert bad_interval.ret == pytest.ExitCode.USAGE_ERROR
    assert "a positive number of seconds" in bad_interval.stderr.str()


def test_a_master_profile_runs_the_cases_that_apply_and_skips_the_rest(pytester: pytest.Pytester) -> None:
    cases = "handshake/05*,heartbeat/04*"  # an ack (2.10+), heartbeat replies (2.19+)
    result = run(pytester, "--lc-worker", "reference", "--lc-cases", cases, "--lc-master-profile", "2.15")
    result.assert_outcomes(passed=1, skipped=1)
    assert "does not apply to a 2.15 master" in result.stdout.str()
    unknown = run(pytester, "--lc-worker", "reference", "--lc-master-profile", "2.9")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown master profile '2.9'" in unknown.stderr.str()


def test_xdist_runs_write_a_report_folder_per_worker(pytester: pytest.Pytester, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = run(
        pytester, "-n", "2", "--lc-worker", "reference", "--lc-cases", "handshake/01*,handshake/03*", "--lc-report", str(report)
    )
    result.assert_outcomes(passed=2)
    folders = {p.parent.parent.parent.name for p in report.glob("*/cases/*/trace.jsonl")}
    assert folders <= {"gw0", "gw1"} and folders, sorted(report.rglob("*"))
    ids = []
    for folder in folders:  # each worker's folder is a report, as `locust-conformance run` writes
        results = json.loads((report / folder / "results.json").read_text())
        assert schema_errors(results) == []
        assert (report / folder / "index.html").is_file() and (report / folder / "junit.xml").is_file()
        ids += [c["id"] for c in results["cases"]]
    assert sorted(ids) == ["handshake/01-first-message", "handshake/03-ack-without-index"]


# -- fixtures ----------------------------------------------------------------------------------------


def test_fixtures_for_custom_scenarios(pytester: pytest.Pytester) -> None:
    lock = command_for("lock-across-recv")
    pytester.makepyfile(
        test_custom=f"""
import pytest

def test_raw_fixtures(fake_master, lc_worker):
    record = fake_master.expect("client_ready", 20)
    assert record.message.data == "2.47.0"
    assert lc_worker.poll() is None

def test_scripting_api(lc_context):
    lc_context.handshake()
    lc_context.spawn(2)
    lc_context.quit()

def test_a_whole_scenario_judged_by_every_oracle(lc_run, lc_assert_verdict):
    def body(ctx):
        ctx.handshake()
        ctx.spawn(1)
        ctx.observe(3)
    result = lc_run(body, budget=15)
    lc_assert_verdict(result, "OK")
    assert result.case.id == "custom/test_a_whole_scenario_judged_by_every_oracle"

@pytest.mark.lc_worker({lock!r})
@pytest.mark.lc_heartbeat_interval(0.25)
def test_markers_choose_the_worker(lc_run, lc_timing):
    assert lc_timing.heartbeat_interval == 0.25
    result = lc_run(lambda ctx: (ctx.handshake(), ctx.observe(6)), budget=15)
    assert result.verdict.value == "FAILED", result.summary()

def test_assert_verdict_fails_with_the_evidence(lc_run, lc_assert_verdict):
    result = lc_run(lambda ctx: ctx.observe(1), budget=10)
    lc_assert_verdict(result, "FAILED")
"""
    )
    result = run(pytester, "test_custom.py")
    result.assert_outcomes(passed=4, failed=1)
    assert "verdict OK, expected FAILED" in result.stdout.str()


# -- the verdict mapping, pure ------------------------------------------------------------------------


def _result(verdict: Verdict) -> CaseResult:
    finding = Finding("x.y", verdict, "something", "something else", 1.0)
    return CaseResult(by_id("handshake/01-first-message"), verdict, [finding], 1.0, artifacts="/tmp/x")


@pytest.mark.parametrize("verdict", [Verdict.INFORMATIONAL, Verdict.UNIMPLEMENTED])
def test_informational_and_unimplemented_skip(verdict: Verdict) -> None:
    with pytest.raises(pytest.skip.Exception, match=f"{verdict.value}.*expected something; observed something else"):
        outcome(_result(verdict), strict=True)


@pytest.mark.parametrize("verdict", [Verdict.FAILED, Verdict.UNKNOWN, Verdict.SCENARIO_ERROR])
def test_failed_unknown_and_scenario_error_never_pass(verdict: Verdict) -> None:
    with pytest.raises(VerdictFailure, match=f"handshake/01-first-message: {verdict.value}"):
        outcome(_result(verdict), strict=False)


def test_every_verdict_has_an_outcome() -> None:
    """No verdict falls through to a silent pass: only OK and NON-STRICT (warned) return normally."""
    passed = []
    for verdict in Verdict:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LocustConformanceWarning)
                outcome(_result(verdict), strict=False)
        except (VerdictFailure, pytest.skip.Exception):
            continue
        passed.append(verdict)
    assert passed == [Verdict.OK, Verdict.NON_STRICT]


def test_ok_passes_and_non_strict_warns() -> None:
    outcome(_result(Verdict.OK), strict=True)
    with pytest.warns(LocustConformanceWarning, match="NON-STRICT"):
        outcome(_result(Verdict.NON_STRICT), strict=False)
    with pytest.raises(VerdictFailure):
        outcome(_result(Verdict.NON_STRICT), strict=True)


# -- a worker at its own pace --------------------------------------------------------------------------

OWN_PACE = "{python} -m worker --master-host {host} --master-port {port} --heartbeat-interval 0.5"


def test_a_worker_at_its_own_pace_is_measured_and_long_cases_are_not_run(pytester: pytest.Pytester) -> None:
    """No {heartbeat_interval}: the plugin probes the worker's pace once, runs at it, and skips (as "not run") the cases
    longer than --lc-max-case-seconds at that pace (reconnect/03 waits out the worker's 30 s master timeout here)."""
    cases = "handshake/01*,reconnect/03*"
    result = run(pytester, "--lc-worker", OWN_PACE, "--lc-cases", cases, "--lc-max-case-seconds", "20", "--lc-report", "r")
    result.assert_outcomes(passed=1, skipped=1)
    out = result.stdout.str()
    assert "not run: would take up to 50 s at the worker's timing (--max-case-seconds 20)" in out
    doc = json.loads((pytester.path / "r" / "main" / "results.json").read_text())
    assert doc["run"]["heartbeat_interval"] == 0.5 and doc["run"]["pace"]["mode"] == "auto"


def test_an_interval_the_worker_does_not_follow_fails_with_its_pace(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--lc-worker", OWN_PACE, "--lc-cases", "handshake/01*", "--lc-heartbeat-interval", "0.1")
    result.assert_outcomes(failed=1)
    assert "does not follow --heartbeat-interval 0.1" in result.stdout.str()


def test_bad_timing_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    for option, value in (("--lc-heartbeat-interval", "soon"), ("--lc-worker-timing", "report"), ("--lc-max-case-seconds", "0")):
        result = run(pytester, "--lc-worker", "reference", option, value)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, (option, result.stderr.str())


def test_floods_pass_side_by_side_with_xdist(pytester: pytest.Pytester) -> None:
    """Under pytest-xdist the floods hold the cross-process lock alone (test below) and carry one xdist group."""
    result = run(
        pytester,
        "-n",
        "2",
        "--dist",
        "loadgroup",
        "-v",
        "--lc-worker",
        "reference",
        "--lc-cases",
        "storms/01*,storms/02*,handshake/01*",
    )
    result.assert_outcomes(passed=3)


def test_a_flood_runs_alone_across_worker_processes(tmp_path: Path) -> None:
    """The cross-process lock of the catalog items: a process holding it alone keeps another's shared hold waiting."""
    lock = tmp_path / "quiet.lock"
    holder = (
        "import sys, time; from pathlib import Path; from harness.pytest_plugin import quiet_across_workers\n"
        f"with quiet_across_workers(True, Path({str(lock)!r})):\n"
        "    print('held', flush=True); time.sleep(0.8)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        started = time.monotonic()
        with quiet_across_workers(False, lock):
            waited = time.monotonic() - started
        assert waited > 0.4, f"a shared hold went in after {waited:.2f} s while a flood held it alone"
    finally:
        proc.wait(10)
