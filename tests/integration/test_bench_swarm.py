"""bench/swarm.py end to end, small: 20 simulated workers against the fake master for a short steady window.

Runs the script itself (subprocesses in their own process groups, reaped by the script) and reads its JSON:
every worker is acked, spawned and quit, heartbeats are answered, nothing is unanswered, and the fake master's
trace holds no "missing" mark, no violation and no refused send.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parent.parent.parent
N = 20


def test_small_swarm_against_the_fake_master(tmp_path: Path) -> None:
    out = tmp_path / "swarm.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "swarm.py"),
            "--sizes",
            str(N),
            "--masters",
            "fake",
            "--steady",
            "2",
            "--register-timeout",
            "20",
            "--per-process",
            "8",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["swarm_processes"] == 3
    assert run["acked"] == run["spawned"] == run["quit_received"] == N, run
    assert run["all_acked"] and run["all_acked_s"] < 10
    assert run["false_missing"] == 0
    assert run["unanswered"] == 0 and run["unmatched_replies"] == 0 and run["swarm_send_refused"] == 0
    assert run["steady_samples"] >= N  # at least one answered heartbeat per worker in the window
    assert run["p99_ms"] is not None and run["p99_ms"] < 1000
    summary = run["master_summary"]
    assert summary["registered"] == N
    counts = summary["counts"]
    assert summary["violations"] == 0
    assert counts["recv:client_ready"] >= N and counts["send:ack"] >= N
    assert counts["recv:spawning_complete"] == N and counts["send:quit"] == N
    # Every heartbeat is answered; a reply may only be refused to a worker that left on quit while it was in flight.
    refused = counts.get("send-failed:heartbeat", 0)
    assert summary["send_failed"] == refused <= 2
    assert counts["recv:heartbeat"] == counts["send:heartbeat"] + refused > 0
