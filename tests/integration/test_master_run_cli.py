"""``master-run`` from the command line: whose fault each outcome is, and the fake master's serving mode."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from harness.launcher import WorkerProcess
from harness.master_catalog.masters import free_port, listening
from harness.master_catalog.workers import FakeWorkers
from harness.protocol.fake_worker import FakeWorkerCore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.mark.parametrize(
    "master, says",
    [
        ("mymaster --no-port", "{port}"),
        ("fake@9.9", "unknown master profile"),
        ("locust@2.15", "locust@MAJOR.MINOR.PATCH"),
    ],
)
def test_a_master_that_cannot_work_is_a_usage_error(
    master: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["master-run", "--master", master, "--report", str(tmp_path)]) == 3
    assert says in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_unknown_cases_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["master-run", "--master", "fake@2.47", "--cases", "nope/01", "--report", str(tmp_path)]) == 3
    assert "matches no master case" in capsys.readouterr().err


def test_a_master_that_never_listens_is_unknown_never_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'print(\"no master here\")' {{port}}"
    code = main(["master-run", "--master", command, "--cases", "handshake/01-ack", "--report", str(tmp_path)])
    assert code == 2, capsys.readouterr().out
    case = json.loads((tmp_path / "results.json").read_text())["cases"][0]
    assert case["verdict"] == "UNKNOWN" and case["findings"][0]["oracle"] == "harness.master-start"
    assert "no master here" in case["findings"][0]["observed"] and "exit code 0" in case["findings"][0]["observed"]
    assert (tmp_path / "index.html").is_file() and (tmp_path / "junit.xml").is_file()


def test_the_fake_master_serves_logs_and_quits_its_workers_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    command = f"{shlex.quote(sys.executable)} -m harness.cli master --serve --host 127.0.0.1 --port {port} --master-profile 2.47"
    with WorkerProcess(command, tmp_path / "master.log") as master:
        deadline = time.monotonic() + 30
        while not listening(master, port):
            assert master.poll() is None and time.monotonic() < deadline, master.output()
            time.sleep(0.05)
        with FakeWorkers(f"tcp://127.0.0.1:{port}", time.monotonic) as workers:
            core = workers.add(FakeWorkerCore("served-1"))
            assert workers.run(5, lambda: bool(core.acks) and bool(core.replies))
            assert core.acks[0][1] == {"index": 0}
            assert workers.run(5, lambda: "served-1 (index 0) reported as ready" in master.output())
            master.signal_group(signal.SIGTERM)
            assert workers.run(5, lambda: core.quit_at is not None), master.output()
        assert master.wait(10) == 0


def test_sigterm_stops_the_run_and_reaps_every_master(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "harness.cli", "master-run", "--master", "fake@2.47", "--cases", "liveness,load"]
    run = subprocess.Popen([*command, "--report", str(tmp_path)], stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        masters: list[psutil.Process] = []
        while len(masters) < 2:  # both cases have their master
            assert run.poll() is None and time.monotonic() < deadline
            masters = [p for p in psutil.Process(run.pid).children(recursive=True) if "--serve" in " ".join(p.cmdline())]
            time.sleep(0.1)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    assert run.returncode == 130 and "interrupted" in err, err
    assert not [p.pid for p in masters if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_run_that_judges_nothing_is_no_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["master-run", "--master", "fake@2.47", "--cases", "dispatch", "--report", str(tmp_path)]) == 2
    assert "nothing was run" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "results.json").read_text())["not_run"]) == 3
