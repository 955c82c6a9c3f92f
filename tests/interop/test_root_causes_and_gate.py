"""A run is read by root cause, not case by case; and a worker's CI can refuse late heartbeats (--fail-on non-strict)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.mutation import command_for
from tests.jvm_worker import build as jvm

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]
CLI = [sys.executable, "-m", "harness.cli"]
QUIT_CASES = "stop-quit/05*,stop-quit/06*,stats/05*"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=200, stdin=subprocess.DEVNULL)


def test_one_shutdown_defect_is_one_root_cause_at_the_top(jvm_build: Path, tmp_path: Path) -> None:
    """The JVM worker whose shutdown races its receive thread: three quit cases, one root cause, named first in the CLI
    summary, above the matrix in the HTML, and per implementation in a comparison."""
    racy = tmp_path / "racy"
    done = run_cli(
        "run",
        "--worker",
        jvm.command(jvm_build, "--shutdown-race"),
        "--name",
        "racy",
        "--cases",
        QUIT_CASES,
        "--report",
        str(racy),
    )
    assert done.returncode == 0, done.stdout + done.stderr  # NON-STRICT: the master was served
    summary = done.stdout.split("root causes, worst first", 1)[1].splitlines()
    assert summary[1].strip().startswith("NON-STRICT [shutdown.output] in 3 cases: ZMQ ETERM"), done.stdout
    doc = json.loads((racy / "results.json").read_text())
    top = doc["root_causes"][0]
    assert (top["oracle"], len(top["cases"]), top["findings"]) == ("shutdown.output", 3, 3)
    index = (racy / "index.html").read_text()
    assert index.index("Root causes") < index.index('id="matrix"') and "shutdown.output" in index
    ref = tmp_path / "ref"
    assert run_cli("run", "--worker", "reference", "--cases", QUIT_CASES, "--report", str(ref)).returncode == 0
    both = tmp_path / "both"
    assert run_cli("compare", str(racy), str(ref), "--out", str(both)).returncode == 0
    page = (both / "index.html").read_text()
    assert 'data-run="racy"' in page and 'data-run="reference"' in page


@pytest.mark.parametrize(
    ("defect", "code"),
    [("late-heartbeats", 1), ("slow-recv-timeout", 1), (None, 0)],
    ids=["late-heartbeats", "slow-recv-timeout", "clean"],
)
def test_fail_on_non_strict_refuses_late_heartbeats(defect: str | None, code: int, tmp_path: Path) -> None:
    worker = command_for(defect)
    gated = run_cli(
        "run", "--worker", worker, "--cases", "heartbeat/01*", "--fail-on", "non-strict", "--report", str(tmp_path / "g")
    )
    assert gated.returncode == code, gated.stdout + gated.stderr
    if defect is not None:
        lenient = run_cli("run", "--worker", worker, "--cases", "heartbeat/01*", "--report", str(tmp_path / "l"))
        assert lenient.returncode == 0, lenient.stdout  # the real master tolerates it: exit 0 without the gate
        assert "NON-STRICT [heartbeat.gap]" in lenient.stdout
