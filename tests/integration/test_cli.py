"""The command line: exit codes, report folders, and `master` against a separately started worker."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "harness.cli"]


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


LIFECYCLE = str(Path(__file__).resolve().parents[2] / "harness" / "scenarios" / "lifecycle.json")


def test_list_names_every_case() -> None:
    done = run_cli("list")
    assert done.returncode == 0, done.stderr
    assert "handshake/01-first-message" in done.stdout and "storms/01-unknown-type-flood" in done.stdout
    count = int(done.stdout.strip().splitlines()[-1].split()[0])
    assert count == 57  # the catalog's documented size (README, docs/catalog.md): a case added or lost shows here
    cases = json.loads(run_cli("list", "--json").stdout)
    assert len(cases) == count
    assert {"id", "category", "title", "expectation", "spec", "budget_intervals"} <= set(cases[0])
    assert len({c["id"] for c in cases}) == count


def test_run_catalog_subset_writes_results(tmp_path: Path) -> None:
    done = run_cli("run", "--worker", "reference", "--cases", "spawn/01*,stop-quit/06*", "--report", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 at once (auto)" in done.stdout and "OK 2" in done.stdout  # side by side: each line as a case finishes
    assert {line.split()[2] for line in done.stdout.splitlines() if line.startswith("[  ")} == {
        "spawn/01-basic",
        "stop-quit/06-quit-while-ready",
    }
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["schema_version"] == 5 and results["summary"]["OK"] == 2
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "index.html").is_file() and "report:" in done.stdout
    assert [c["id"] for c in results["cases"]] == ["spawn/01-basic", "stop-quit/06-quit-while-ready"]
    assert all(c["verdict"] == "OK" and c["duration_s"] > 0 for c in results["cases"])
    case_dir = Path(results["cases"][0]["artifacts"])
    assert (case_dir / "trace.jsonl").exists() and (case_dir / "worker.log").exists()


def test_run_catalog_against_a_defective_worker_exits_1(tmp_path: Path) -> None:
    """A worker whose client_ready is never acked (empty version) FAILS handshake/01, with the evidence in results.json."""
    cmd = "{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --version-string ''"
    done = run_cli("run", "--worker", cmd, "--cases", "handshake/01*", "--report", str(tmp_path), "--name", "empty-version")
    assert done.returncode == 1, done.stdout + done.stderr
    case = json.loads((tmp_path / "results.json").read_text())["cases"][0]
    assert case["verdict"] == "FAILED"
    assert any(f["oracle"] == "progress" for f in case["findings"])


def test_no_matching_case_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("run", "--cases", "no-such-case*", "--report", str(tmp_path))
    assert done.returncode == 3 and "no case matches" in done.stderr


def test_run_script_writes_a_report(tmp_path: Path) -> None:
    done = run_cli("run", "--worker", "reference", "--script", LIFECYCLE, "--report", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: every step passed" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] == "OK" and summary["worker_exit"] == 0 and summary["steps_run"] == summary["steps_total"]
    assert summary["findings"] == [] and summary["reason"] == "every step passed"
    assert summary["max_heartbeat_gap_s"] < 0.25 * 1.5
    lines = (tmp_path / "trace.jsonl").read_text().splitlines()
    types = [json.loads(line).get("type") for line in lines]
    assert types.count("spawning_complete") == 3 and "client_stopped" in types and types[-1] != "client_ready"
    assert "requests made" in (tmp_path / "worker.log").read_text()


def test_broken_worker_fails_with_exit_1(tmp_path: Path) -> None:
    """A worker whose client_ready carries an empty version is never acked by a real master: FAILED."""
    cmd = "{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --version-string ''"
    done = run_cli("run", "--worker", cmd, "--script", LIFECYCLE, "--report", str(tmp_path), "--name", "empty-version")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert any(v["rule"] == "schema.client_ready" for v in summary["violations"])
    assert summary["verdict"] == "FAILED"
    assert any(f["oracle"] == "schema.client_ready" and f["verdict"] == "FAILED" for f in summary["findings"])


def test_a_script_asking_for_the_impossible_is_a_scenario_error_exit_3(tmp_path: Path) -> None:
    """Neither a pass nor the worker's fault: SCENARIO-ERROR, the usage exit code, the finding in summary.json."""
    script = tmp_path / "impossible.toml"
    script.write_text(
        'heartbeat_interval = 0.2\n[[steps]]\nexpect = "client_ready"\nwithin = 15\n'
        "[[steps]]\ndie = true\n[[steps]]\nrestart = 0.1\n"
    )
    done = run_cli("run", "--worker", "reference", "--script", str(script), "--report", str(tmp_path / "report"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "SCENARIO-ERROR: [script]" in done.stdout and "the master is dead" in done.stdout
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["verdict"] == "SCENARIO-ERROR" and summary["steps_run"] == 2
    assert [(f["oracle"], f["verdict"]) for f in summary["findings"]] == [("script", "SCENARIO-ERROR")]


def test_jobs_one_runs_the_cases_in_catalog_order(tmp_path: Path) -> None:
    done = run_cli("run", "--worker", "reference", "-j", "1", "--cases", "spawn/01*,stop-quit/06*", "--report", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("[  ")]
    assert lines[0].startswith("[  1/2] spawn/01-basic") and "running" not in lines[0] and "1 at once" in done.stdout
    assert run_cli("run", "--worker", "reference", "-j", "0", "--report", str(tmp_path / "x")).returncode == 3


def test_worker_command_that_cannot_start_is_unknown_not_a_pass(tmp_path: Path) -> None:
    done = run_cli(
        "run", "--worker", "no-such-worker-binary --port {port}", "--cases", "handshake/01*", "--report", str(tmp_path)
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "UNKNOWN [launch]" in done.stderr and "command not found" in done.stderr  # said once, before any case
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["cases"] == [] and results["summary"]["OK"] == 0
    assert len(results["not_run"]) == 57 and "never registered" in results["not_run"][0]["reason"]


@pytest.mark.parametrize(
    "args",
    [["run", "--bogus"], ["run", "--worker", "w {nope} {port}"], ["run", "--script", "/nonexistent.json"], [], ["list", "--x"]],
)
def test_usage_errors_exit_3(args: list[str], tmp_path: Path) -> None:
    done = run_cli(*args, "--report", str(tmp_path)) if args and args[0] == "run" else run_cli(*args)
    assert done.returncode == 3, done.stdout + done.stderr


def test_master_command_against_a_separately_started_worker(tmp_path: Path) -> None:
    script = tmp_path / "short.toml"
    script.write_text(
        "heartbeat_interval = 0.2\n"
        '[[steps]]\nexpect = "client_ready"\nwithin = 15\n'
        '[[steps]]\nexpect = "heartbeat"\nwithin = 1\n'
        "[[steps]]\nspawn = { ConformanceUser = 2 }\n"
        '[[steps]]\nexpect = "spawning_complete"\nwithin = 2\nwhere = { user_count = 2 }\n'
        '[[steps]]\nsend = "quit"\n'
        '[[steps]]\nexpect = "quit"\nwithin = 3\n'
    )
    trace_out = tmp_path / "trace.jsonl"
    master = subprocess.Popen(
        [*CLI, "master", "--script", str(script), "--trace-out", str(trace_out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    worker = None
    try:
        assert master.stdout is not None
        ready, _, _ = select.select([master.stdout], [], [], 15)
        assert ready, "the master printed nothing within 15 s"
        first = master.stdout.readline()
        assert "listening on tcp://127.0.0.1:" in first
        port = first.split("tcp://127.0.0.1:")[1].split()[0]
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--master-port", port, "--heartbeat-interval", "0.2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        out, _ = master.communicate(timeout=60)
        assert master.returncode == 0, first + out
        assert "OK: 6 steps passed" in out and "spawning_complete" in out
        assert worker.wait(10) == 0
        assert len(trace_out.read_text().splitlines()) > 5
    finally:
        for proc in (master, worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_catalog_page_is_in_step_with_the_code() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "catalog.md"
    assert page.read_text() == run_cli("list", "--markdown").stdout, (
        "regenerate: locust-conformance list --markdown > docs/catalog.md"
    )


def test_a_report_that_cannot_be_written_is_a_harness_failure_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"schema_version": 5, "run": {}, "summary": {}, "cases": [], "not_run": []}')
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 3 and "does not match the results schema" in done.stderr and "$.run" in done.stderr
