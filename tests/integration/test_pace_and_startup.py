"""The pace probe (a worker at its own pace is measured, never told) and why a worker never registered."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from fakemaster import FakeMaster
from harness.errors import ScenarioError
from harness.launcher import WorkerProcess, render_command
from harness.pace import AUTO, resolve
from harness.startup import StartupFailed, wait_for_registration
from harness.trace import Kind
from harness.verdicts import Verdict

pytestmark = pytest.mark.integration
OWN_PACE = "{python} -m worker --master-host {host} --master-port {port} --heartbeat-interval 0.5"  # no placeholder
PY = sys.executable


def test_a_worker_at_its_own_pace_is_measured_and_adopted(tmp_path: Path) -> None:
    pace = resolve(OWN_PACE, None, 0.2, tmp_path / "probe")  # no interval asked: auto for a template without one
    assert (pace.mode, pace.interval) == (AUTO, 0.5)
    assert pace.cadence is not None and pace.cadence.measured
    assert abs(pace.cadence.median - 0.5) < 0.05
    assert (tmp_path / "probe" / "trace.jsonl").is_file() and (tmp_path / "probe" / "worker.log").is_file()
    assert pace.to_json()["measured_s"] == pytest.approx(0.5, abs=0.05)


def test_an_interval_the_worker_does_not_follow_is_a_usage_error_naming_its_pace(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        resolve(OWN_PACE, 0.1, 0.2, tmp_path / "probe")
    text = str(caught.value)
    assert "does not follow --heartbeat-interval 0.1" in text
    assert "no {heartbeat_interval} placeholder" in text
    assert "--heartbeat-interval 0.5" in text  # the flag to pass
    assert time.monotonic() - started < 15


def test_a_worker_told_its_interval_is_only_seen_to_register(tmp_path: Path) -> None:
    """A template with {heartbeat_interval} is told the interval: how it keeps it is for the cases to judge (a late
    worker is a finding, not a usage error), so the probe only checks that it starts, fast."""
    started = time.monotonic()
    late = "{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --defect slow-recv-timeout"
    pace = resolve(late, None, 0.2, tmp_path / "probe")
    assert (pace.mode, pace.interval, pace.cadence) == ("given", 0.2, None)
    assert "only saw it register" in pace.note
    assert time.monotonic() - started < 5


def test_a_worker_that_never_heartbeats_is_judged_at_locusts_pace(tmp_path: Path) -> None:
    """Too few heartbeats to measure: the run goes on at Locust's 1 s, and says so (the cases will judge the silence)."""
    template = "{python} -m worker --master-port {port} --heartbeat-interval 0.5 --defect lock-across-recv"
    pace = resolve(template, None, 0.2, tmp_path / "probe")
    assert pace.interval == 1.0 and "assuming Locust's 1 s" in pace.note


def _registration(tmp_path: Path, command: str, within: float = 3.0) -> object:
    with FakeMaster() as master:
        process = WorkerProcess(render_command(command, master.host, master.port, 1.0), tmp_path / "worker.log")
        with process:
            return wait_for_registration(master, process, within)


def test_a_command_that_does_not_start_is_unknown_launch(tmp_path: Path) -> None:
    failure = _registration(tmp_path, "no-such-worker-command --port {port}")
    assert failure is not None
    assert (failure.rule, failure.verdict) == ("launch", Verdict.UNKNOWN)  # type: ignore[attr-defined]
    assert "command not found" in failure.observed  # type: ignore[attr-defined]


def test_a_worker_that_never_connects_is_unknown(tmp_path: Path) -> None:
    failure = _registration(tmp_path, f"{PY} -c 'import time; time.sleep(30)' {{port}}", within=1.5)
    assert (failure.rule, failure.verdict) == ("connection.none", Verdict.UNKNOWN)  # type: ignore[attr-defined]


RAW_TCP = (
    f"{PY} -c 'import socket, sys, time; "
    's = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(30)\' {port}'
)


def test_a_tcp_connection_without_a_zmtp_handshake_is_failed_and_says_so(tmp_path: Path) -> None:
    failure = _registration(tmp_path, RAW_TCP, within=2.0)
    assert (failure.rule, failure.verdict) == ("connection.zmtp-handshake", Verdict.FAILED)  # type: ignore[attr-defined]
    assert "the TCP connection was accepted" in failure.observed  # type: ignore[attr-defined]
    assert "ZMTP handshake never completed" in failure.observed  # type: ignore[attr-defined]


def test_a_zeromq_peer_that_never_sends_is_failed_startup(tmp_path: Path) -> None:
    silent = (
        f"{PY} -c 'import sys, time, zmq; s = zmq.Context().socket(zmq.DEALER); "
        's.connect("tcp://127.0.0.1:" + sys.argv[1]); time.sleep(30)\' {port}'
    )
    failure = _registration(tmp_path, silent, within=2.0)
    assert (failure.rule, failure.verdict) == ("startup", Verdict.FAILED)  # type: ignore[attr-defined]
    assert "the ZeroMQ connection came up but the worker never sent a message" in failure.observed  # type: ignore[attr-defined]


def test_the_probe_stops_a_run_of_a_worker_that_never_registers(tmp_path: Path) -> None:
    with pytest.raises(StartupFailed) as caught:
        resolve("no-such-worker-command --port {port}", None, 0.2, tmp_path / "probe")
    assert caught.value.failure.rule == "launch"


def test_monitor_notes_name_the_handshake(tmp_path: Path) -> None:
    """A ZeroMQ peer's handshake is noted as succeeded; a peer greeting with another mechanism as failed, named."""
    import zmq

    with FakeMaster() as master:
        context = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.connect(master.endpoint)
        greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
        with socket.create_connection((master.host, master.port)) as raw:
            raw.sendall(greeting)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                notes = [r.note for r in master.trace.records() if r.kind is Kind.NOTE]
                if any("handshake failed" in n for n in notes) and any("handshake succeeded" in n for n in notes):
                    break
                time.sleep(0.05)
        dealer.close(0)
        context.term()
    assert any(n.startswith("connection handshake succeeded (ZMTP)") for n in notes), notes
    failed = [n for n in notes if n.startswith("connection handshake failed")]
    assert failed and "ZMTP protocol error ZMTP_MECHANISM_MISMATCH" in failed[0], notes
    assert "fd=" not in failed[0]  # the event's value is no file descriptor
