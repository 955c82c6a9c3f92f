"""Master profiles against real worker processes: the verdicts follow the master's release, the matrix is case x profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakemaster.master import FakeMaster
from harness.cli import main
from harness.catalog import by_id
from harness.launcher import WorkerProcess, render_command
from harness.mutation import REFERENCE
from harness.protocol.messages import MessageType
from harness.protocol.profiles import master_profile
from harness.protocol.timing import LOCUST_TIMING
from harness.runner import RunConfig, run_case
from harness.verdicts import Verdict

CLI = [sys.executable, "-m", "harness.cli"]
COMPAT_28 = f"{REFERENCE} --locust-compat 2.8"


def test_a_worker_that_waits_for_an_ack_fails_under_a_master_that_never_sends_one(tmp_path: Path) -> None:
    """The oracle handshake.ack-required on a worker with the incompatibility (every 2.10+ worker under a 2.8 master),
    and not on one that behaves as workers of that era did."""
    config = RunConfig("reference", "reference", master_profile=master_profile("2.8"))
    result = run_case(by_id("handshake/01-first-message"), config, tmp_path / "waits")
    assert result.verdict is Verdict.FAILED
    failed = [f.oracle for f in result.findings if f.verdict is Verdict.FAILED]
    assert "handshake.ack-required" in failed, failed
    # ... beside only the heartbeats a worker that never heartbeats lacks (due from client_ready: no ack will come)
    assert all(o == "handshake.ack-required" or o.startswith("heartbeat.") for o in failed), failed
    compat = run_case(
        by_id("spawn/01-basic"), RunConfig(COMPAT_28, "compat", master_profile=master_profile("2.8")), tmp_path / "c"
    )
    assert compat.verdict is Verdict.OK, [str(f) for f in compat.findings if f.verdict is not Verdict.OK]


def test_the_fake_master_speaks_the_profile_on_the_wire(tmp_path: Path) -> None:
    """A 2.8 master: no ack, no heartbeat replies, spawn with parsed_options and a nil stop_timeout, no
    spawning_complete broadcast; the compat worker heartbeats and spawns all the same."""
    timing = LOCUST_TIMING.compressed(0.2)
    with FakeMaster(timing=timing, profile=master_profile("2.8")) as master:
        command = render_command(COMPAT_28, master.host, master.port, 0.2)
        with WorkerProcess(command, tmp_path / "worker.log", clock=master.clock.now) as process:
            master.expect(MessageType.CLIENT_READY, 20)
            master.expect(MessageType.HEARTBEAT, 2)
            master.spawn({"ConformanceUser": 1})
            master.expect(MessageType.SPAWNING_COMPLETE, 3)
            master.sleep(0.5)
            process.stop()
        sent = [r for r in master.trace.records() if r.kind.value == "send" and r.message is not None]
    types = {r.message.type for r in sent if r.message is not None}
    assert MessageType.ACK not in types and MessageType.HEARTBEAT not in types, types
    spawn = next(r.message for r in sent if r.message is not None and r.message.type == MessageType.SPAWN)
    assert spawn.data["stop_timeout"] is None and spawn.data["parsed_options"] == {}


def test_run_all_profiles_writes_a_case_by_profile_matrix(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "run", "--master-profile", "2.8,2.20", "--cases", "handshake/01*,reconnect/05*", "--report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # the reference worker waits for an ack: 2.8 fails
    matrix = json.loads((tmp_path / "matrix" / "compare.json").read_text())
    cells = matrix["cases"]
    columns = ["reference@2.8", "reference@2.20"]
    assert [i["label"] for i in matrix["implementations"]] == columns
    assert [cells["handshake/01-first-message"][c] for c in columns] == ["FAILED", "OK"]
    # the short master silence only exists where the master heartbeats (2.19+)
    assert [cells["reconnect/05-short-silence-tolerated"][c] for c in columns] == ["NOT-RUN", "OK"]
    results = json.loads((tmp_path / "profile-2.20" / "results.json").read_text())
    assert results["run"]["master_profile"]["name"] == "2.20"
    assert results["run"]["master_profile"]["knobs"]["ack"] == "index"
    assert "master profile 2.0 " not in done.stdout  # 'all' is the same loop over every profile


def test_an_unknown_profile_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["run"], ["explore"], ["master", "--script", "x.json"]):
        assert main([*command, "--master-profile", "2.9"]) == 3, command
        err = capsys.readouterr().err
        assert "unknown master profile '2.9'" in err and "2.0, 2.8, 2.15, 2.20, 2.47" in err, (command, err)


def test_a_locust_release_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    """Exit 3, the release named, the index's releases listed, and nothing left in the cache."""
    env = {**os.environ, "LC_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [*CLI, "run", "--worker", "locust@9.9.9", "--report", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "locust 9.9.9 does not exist on the package index" in done.stderr and "2.47.0" in done.stderr, done.stderr
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".install.lock"]
    malformed = subprocess.run([*CLI, "run", "--worker", "locust@2.15"], capture_output=True, text=True, timeout=60)
    assert malformed.returncode == 3 and "locust@MAJOR.MINOR.PATCH" in malformed.stderr
