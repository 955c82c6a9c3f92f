"""The seed regressions' repro scripts: each reproduces against its defect and passes against the clean worker.

They run as a user runs them, ``python repro/FILE --worker CMD``, in a subprocess; the report must fit one screen.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
REPRO = ROOT / "repro"
WORKER = "{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval}"
SCREEN = 40  # lines

# script, the defect it reproduces, phrases its report must hold
SCRIPTS = [
    ("deadlock_lock_across_recv.py", "lock-across-recv", ("missing threshold", "the master had been silent for")),
    ("late_heartbeats_recv_timeout.py", "slow-recv-timeout", ("heartbeat gaps above", "receive timeout")),
    ("shared_socket_storm.py", "shared-socket", ("the worker", "storm delivered")),
]


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPRO / script), *args], capture_output=True, text=True, timeout=100, cwd=ROOT)


def test_every_script_is_listed_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert sorted(p.name for p in REPRO.glob("*.py")) == sorted(s for s, _, _ in SCRIPTS)
    for script, defect, _ in SCRIPTS:
        assert f"repro/{script}" in readme and defect in readme


@pytest.mark.parametrize(("script", "defect", "phrases"), SCRIPTS, ids=[s[1] for s in SCRIPTS])
def test_reproduces_against_its_defect(script: str, defect: str, phrases: tuple[str, ...], tmp_path: Path) -> None:
    done = run(script, "--worker", f"{WORKER} --defect {defect}", "--out", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\nREPRODUCED: " in done.stdout, done.stdout
    for phrase in phrases:
        assert phrase in done.stdout, done.stdout
    assert len(done.stdout.splitlines()) <= SCREEN, done.stdout
    kept = list(tmp_path.rglob("trace.jsonl"))
    assert kept and list(tmp_path.rglob("worker.log")), "--out keeps the trace and the worker's log"


@pytest.mark.parametrize("script", [s[0] for s in SCRIPTS])
def test_passes_against_the_clean_worker(script: str) -> None:
    done = run(script, "--worker", "reference")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nNOT REPRODUCED: " in done.stdout, done.stdout
    assert len(done.stdout.splitlines()) <= SCREEN, done.stdout


def test_a_worker_that_does_not_start_is_not_judged() -> None:
    done = run("deadlock_lock_across_recv.py", "--worker", f"{sys.executable} -c 'import sys; sys.exit(4)' {{port}}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "COULD NOT JUDGE: the worker never registered (UNKNOWN [launch]): it ended (exit code 4)" in done.stdout


def test_a_bad_worker_template_is_a_usage_error() -> None:
    done = run("late_heartbeats_recv_timeout.py", "--worker", "my-worker --no-port")
    assert done.returncode == 3
    assert "{port}" in done.stderr


def test_a_worker_at_its_own_pace_is_reproduced_at_that_pace(tmp_path: Path) -> None:
    """No {heartbeat_interval} in the command: the script measures the worker's pace and runs there (not at its 0.25 s
    default, which this worker would never follow)."""
    own_pace = "{python} -m worker --master-port {port} --heartbeat-interval 0.5"
    done = run("deadlock_lock_across_recv.py", "--worker", own_pace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pace: heartbeat interval 0.5 s (adopted from the worker" in done.stdout, done.stdout
    assert "heartbeat interval 0.5 s; late above 0.75 s" in done.stdout
