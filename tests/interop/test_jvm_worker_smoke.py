"""Smoke tests of the JVM worker test peer (tests/jvm_worker): a foreign Locust worker at its own fixed 1 s pace.

A missing JDK or jar skips these, unless LC_REQUIRE_PEERS=1: then it fails (tests/foreign_peers.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fakemaster import FakeMaster
from harness.launcher import WorkerProcess, render_command
from harness.protocol import LOCUST_TIMING, Severity
from harness.trace import Kind, TraceRecord
from tests.foreign_peers import need
from tests.jvm_worker import build as jvm

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

USER_CLASS = "JvmUser"


def _start(master: FakeMaster, build_dir: Path, log: Path, *flags: str) -> WorkerProcess:
    return WorkerProcess(render_command(jvm.command(build_dir, *flags), master.host, master.port, 1.0), log)


def _error_violations(master: FakeMaster) -> list[str]:
    return [f"{r.type}: {v}" for r in master.trace.records() for v in r.violations if v.severity is Severity.ERROR]


def _total_requests(record: TraceRecord) -> int:
    assert record.message is not None
    return int(record.message.data["stats_total"]["num_requests"])


def test_clean_worker_lifecycle(jvm_build: Path, tmp_path: Path) -> None:
    """Handshake, 1 s heartbeats, spawn, stats, stop and quit, all conformant and without an exception."""
    with FakeMaster(timing=LOCUST_TIMING) as master:
        with _start(master, jvm_build, tmp_path / "worker.log") as worker:
            ready = master.expect("client_ready", within=15)
            assert ready.message is not None and ready.message.data == -1
            beats = [master.expect("heartbeat", within=2) for _ in range(3)]
            gaps = [round(b.t - a.t, 3) for a, b in zip(beats, beats[1:], strict=False)]
            assert all(0.8 <= gap <= 1.3 for gap in gaps), gaps
            assert {b.message.data["state"] for b in beats if b.message} == {"ready"}

            master.spawn({USER_CLASS: 2})
            master.expect("spawning", within=3)
            done = master.expect("spawning_complete", within=3)
            assert done.message is not None
            assert done.message.data == {"user_classes_count": {USER_CLASS: 2}, "user_count": 2}
            master.expect("stats", within=4, where=lambda r: _total_requests(r) > 0)

            master.send("stop")
            master.expect("client_stopped", within=3)
            again = master.expect("client_ready", within=3)
            assert again.message is not None and again.message.data == -1

            master.send("quit")
            master.expect("quit", within=3)
            code = worker.wait(5)
        log = worker.output()
    assert code == 0, log
    assert not _error_violations(master)
    assert "Exception" not in log, log


def test_shutdown_race_prints_eterm(jvm_build: Path, tmp_path: Path) -> None:
    """--shutdown-race serves the master (final stats, quit), then dies noisily of ETERM, and still exits."""
    with FakeMaster(timing=LOCUST_TIMING) as master:
        with _start(master, jvm_build, tmp_path / "worker.log", "--shutdown-race") as worker:
            master.expect("client_ready", within=15)
            master.expect("heartbeat", within=3)
            master.send("quit")
            master.expect("stats", within=3)
            master.expect("quit", within=3)
            code = worker.wait(10)
        log = worker.output()
    assert code == 0, log
    assert "156384765" in log, log
    assert 'Exception in thread "zmq-receiver" org.zeromq.ZMQException' in log, log


def test_stuck_spawn_keeps_heartbeating(jvm_build: Path, tmp_path: Path) -> None:
    """--stuck-spawn: spawning, then nothing more, while heartbeats go on; a thread dump shows where it hangs."""
    jcmd = shutil.which("jcmd")
    if jcmd is None:
        need("the JDK's jcmd is not on PATH")
    with FakeMaster(timing=LOCUST_TIMING) as master:
        with _start(master, jvm_build, tmp_path / "worker.log", "--stuck-spawn") as worker:
            master.expect("client_ready", within=15)
            master.expect("heartbeat", within=3)
            master.spawn({USER_CLASS: 2})
            spawning = master.expect("spawning", within=3)
            master.expect_none("spawning_complete", within=3.0)
            beats = [r for r in master.trace.records(spawning.seq) if r.kind is Kind.RECV and r.type == "heartbeat" and r.message]
            assert len(beats) >= 2, f"{len(beats)} heartbeats in the 3 s after spawning"
            assert beats[-1].message is not None and beats[-1].message.data["state"] == "spawning"
            dump = subprocess.run([jcmd or "jcmd", str(worker.pid), "Thread.print"], capture_output=True, text=True, timeout=30)
            assert worker.poll() is None, "the stuck worker must stay up"
        log = worker.output()
    stanza = dump.stdout.split('"spawn-handler"', 1)[-1].split("\n\n", 1)[0]
    assert '"spawn-handler"' in dump.stdout, dump.stdout + dump.stderr
    assert "WAITING" in stanza and "applySpawn" in stanza, stanza
    assert "Exception" not in log, log
