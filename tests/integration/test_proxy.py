"""The proxy on real ZeroMQ sockets with plain peers: frame-for-frame forwarding both ways, garbage forwarded and
recorded, faults by direction, and bad input (no master, a port in use, a bad plan) as clear errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import pytest
import zmq

from harness.cli import main
from harness.launcher import WorkerProcess
from harness.protocol.timing import LOCUST_TIMING
from harness.proxy.forwarder import Proxy
from harness.proxy.plan import ProxyPlan
from harness.proxy.session import judge_all
from harness.verdicts import Verdict

HOST = "127.0.0.1"


def pack(kind: str, data: object, node: str) -> bytes:
    packed: bytes = msgpack.packb([kind, data, node])
    return packed


@contextmanager
def peers(plan: ProxyPlan | None = None) -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes], Proxy]]:
    """A plain ROUTER as the master, the proxy in front, a DEALER worker "w1" on the proxy (all closed after)."""
    context = zmq.Context()
    master = context.socket(zmq.ROUTER)
    master.setsockopt(zmq.LINGER, 0)
    port = master.bind_to_random_port(f"tcp://{HOST}")
    proxy = Proxy(HOST, port, plan=plan).start()
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.setsockopt(zmq.IDENTITY, b"w1")
    worker.connect(f"tcp://{HOST}:{proxy.port}")
    try:
        yield master, worker, proxy
    finally:
        proxy.stop()
        worker.close(0)
        master.close(0)
        context.term()


def recv(sock: zmq.Socket[bytes], timeout: float = 3.0) -> list[bytes]:
    assert sock.poll(int(timeout * 1000)), "nothing arrived in time"
    return sock.recv_multipart()


def test_frames_cross_byte_for_byte_both_ways_and_garbage_is_forwarded_and_recorded() -> None:
    with peers() as (master, worker, proxy):
        ready = pack("client_ready", "2.47.0", "w1")
        worker.send(ready)
        assert recv(master) == [b"w1", ready]
        ack = pack("ack", {"index": 0}, "w1")
        master.send_multipart([b"w1", ack])
        assert recv(worker) == [ack]
        garbage = b"\xc1 not msgpack"
        worker.send(garbage)
        assert recv(master) == [b"w1", garbage]  # the real master must see what the worker sent
        worker.send_multipart([pack("heartbeat", {"state": "ready", "current_cpu_usage": 1.0}, "w1"), b"extra"])
        assert recv(master)[1:] == [pack("heartbeat", {"state": "ready", "current_cpu_usage": 1.0}, "w1"), b"extra"]
        time.sleep(0.1)
    assert proxy.silent_connections() == []  # one worker, one connection
    counts = proxy.counts()
    assert counts == {
        "to-master": {"read": 3, "forwarded": 3, "refused": 0},
        "to-worker": {"read": 1, "forwarded": 1, "refused": 0},
    }
    [result] = judge_all(proxy, proxy.clock.now())
    recorded = [r for r in proxy.trace.records() if r.kind.value == "recv" and r.message is None]
    assert recorded and recorded[0].frames == (garbage,)  # its bytes kept
    assert result.verdict is Verdict.FAILED, [str(f) for f in result.findings]  # garbage kills a real master's listener
    assert any("frame" in f.oracle or "crash" in f.oracle for f in result.findings), [f.oracle for f in result.findings]


def test_faults_apply_by_direction_window_and_kind() -> None:
    plan = ProxyPlan.from_dict(
        {
            "faults": [
                {"direction": "to-worker", "kind": "delay", "types": ["spawn"], "seconds": 0.4},
                {"direction": "to-worker", "kind": "duplicate", "types": ["heartbeat"], "copies": 1},
                {"direction": "to-master", "kind": "drop", "types": ["heartbeat"], "count": 1},
                {"direction": "to-master", "kind": "malformed", "malformed": "garbage", "types": ["stats"]},
            ]
        }
    )
    with peers(plan) as (master, worker, proxy):
        worker.send(pack("client_ready", "2.47.0", "w1"))
        recv(master)
        sent = time.monotonic()
        master.send_multipart([b"w1", pack("spawn", {"timestamp": 1.0}, "w1")])
        recv(worker)
        assert time.monotonic() - sent >= 0.35  # delayed 0.4 s
        master.send_multipart([b"w1", pack("heartbeat", None, "w1")])
        assert recv(worker) == recv(worker) == [pack("heartbeat", None, "w1")]  # duplicated
        worker.send(pack("heartbeat", {"state": "ready"}, "w1"))  # dropped
        worker.send(pack("heartbeat", {"state": "ready"}, "w1"))
        assert msgpack.unpackb(recv(master)[1])[0] == "heartbeat"
        assert not master.poll(200)  # only one of the two arrived
        worker.send(pack("stats", {"stats": []}, "w1"))
        assert recv(master)[1].startswith(b"\xc1")  # replaced by garbage
    notes = [r.note for r in proxy.trace.records() if r.kind.value == "fault"]
    assert any(n.startswith("to-worker: delay") for n in notes), notes
    assert any(n.startswith("to-master: drop") for n in notes), notes
    assert any(n.startswith("to-master: replaced by malformed frames (garbage)") for n in notes), notes


def test_a_pause_of_one_side_holds_its_messages_until_the_window_ends_and_is_excused() -> None:
    plan = ProxyPlan.from_dict({"faults": [{"direction": "to-master", "kind": "pause", "start": 0.3, "end": 1.0}]})
    with peers(plan) as (master, worker, proxy):
        time.sleep(0.4)
        worker.send(pack("client_ready", "2.47.0", "w1"))
        recv(master)
    records = proxy.trace.records()
    windows = [r.note for r in records if r.kind.value == "fault"]
    assert windows[:2] == ["pause-reading start: to-master", "pause-reading end: to-master"], windows
    [ready] = [r for r in records if r.type == "client_ready"]
    assert ready.t - proxy.started_at >= 1.0  # read only once the pause had ended
    [result] = judge_all(proxy, proxy.clock.now())
    assert [label for _, _, label in result.timeline["excused"]] == ["pause-reading"]  # heartbeat gaps there are ours


def test_the_proxys_own_faults_never_make_the_master_look_late() -> None:
    """A client_ready held back 1.5 s on its way to the master, and the master's prompt heartbeat reply read only
    after a to-worker pause: the master answered at once both times, so no lateness is held against it."""
    plan = ProxyPlan.from_dict(
        {
            "faults": [
                {"direction": "to-master", "kind": "delay", "types": ["client_ready"], "seconds": 1.5},
                {"direction": "to-worker", "kind": "pause", "start": 2.0, "end": 3.6},
            ]
        }
    )
    with peers(plan) as (master, worker, proxy):
        worker.send(pack("client_ready", "2.47.0", "w1"))
        assert recv(master)[0] == b"w1"
        master.send_multipart([b"w1", pack("ack", {"index": 0}, "w1")])  # at once
        recv(worker)
        while proxy.clock.now() - proxy.started_at < 2.2:
            time.sleep(0.05)
        worker.send(pack("heartbeat", {"state": "ready", "current_cpu_usage": 1.0}, "w1"))
        recv(master)
        master.send_multipart([b"w1", pack("heartbeat", None, "w1")])  # at once, while the proxy pauses its side
        recv(worker, timeout=4)  # read out when the pause ended, 1.4 s later
    [result] = judge_all(proxy, proxy.clock.now())
    oracles = {f.oracle for f in result.findings}
    assert not oracles & {"master.ack.late", "master.ack.missing", "master.heartbeat-reply.late"}, oracles


def test_after_the_masters_quit_a_silent_worker_is_not_missing() -> None:
    """At 0.1 s ticks (missing after 0.5 s of silence): a worker told to quit and silent for 1 s is gone, not missing,
    in both views."""
    proxy_timing = LOCUST_TIMING.compressed(0.1)
    context = zmq.Context()
    master = context.socket(zmq.ROUTER)
    master.setsockopt(zmq.LINGER, 0)
    proxy = Proxy(HOST, master.bind_to_random_port(f"tcp://{HOST}"), timing=proxy_timing).start()
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.setsockopt(zmq.IDENTITY, b"w1")
    worker.connect(f"tcp://{HOST}:{proxy.port}")
    try:
        worker.send(pack("client_ready", "2.47.0", "w1"))
        recv(master)
        master.send_multipart([b"w1", pack("quit", None, "w1")])
        recv(worker)
        time.sleep(1.0)
    finally:
        proxy.stop()
        worker.close(0)
        master.close(0)
        context.term()
    [result] = judge_all(proxy, proxy.clock.now())
    assert result.measurements["worker_view"] == [] and result.measurements["master_view"] == [], result.measurements
    assert proxy.all_left()


def test_at_stop_what_a_paused_side_holds_is_read_recorded_and_delivered() -> None:
    plan = ProxyPlan.from_dict({"faults": [{"direction": "to-worker", "kind": "pause", "start": 0.0, "end": 600}]})
    with peers(plan) as (master, worker, proxy):
        worker.send(pack("client_ready", "2.47.0", "w1"))
        recv(master)
        master.send_multipart([b"w1", pack("custom", {"n": 1}, "w1")])
        time.sleep(0.3)
        assert not worker.poll(100)  # held by the pause
        proxy.stop()
        assert msgpack.unpackb(recv(worker)[0])[0] == "custom"  # read out at stop, and sent before the socket closed
    assert proxy.counts()["to-worker"] == {"read": 1, "forwarded": 1, "refused": 0}
    assert [r.type for r in proxy.trace.records() if r.kind.value == "send"] == ["custom"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def test_bad_input_gets_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closed = _free_port()
    assert main(["proxy", "--master", f"{HOST}:{closed}", "--report", str(tmp_path / "a")]) == 3
    assert "nothing listens there" in capsys.readouterr().err
    with socket.socket() as master:  # something listening, and a port already taken for --listen
        master.bind((HOST, 0))
        master.listen()
        taken = master.getsockname()[1]
        assert main(["proxy", "--master", f"{HOST}:{taken}", "--listen", f"{HOST}:{taken}", "--report", str(tmp_path / "b")]) == 3
        assert "the port is in use" in capsys.readouterr().err
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"faults": [{"direction": "up", "kind": "drop"}]}))
        assert main(["proxy", "--master", f"{HOST}:{taken}", "--faults", str(plan), "--report", str(tmp_path / "c")]) == 3
        assert "faults[0]: fault field 'direction'" in capsys.readouterr().err
        assert main(["proxy", "--master", "nowhere", "--report", str(tmp_path / "d")]) == 3
        assert "expected HOST:PORT" in capsys.readouterr().err
        # nobody connects: nothing judged is no pass (exit 2), and the report is written anyway
        code = main(
            ["proxy", "--master", f"{HOST}:{taken}", "--listen", f"{HOST}:0", "--seconds", "0.5", "--report", str(tmp_path / "e")]
        )
        assert code == 2, capsys.readouterr()
        doc = json.loads((tmp_path / "e" / "results.json").read_text())
        assert doc["run"]["role"] == "proxy" and doc["cases"] == []


def test_a_second_worker_with_a_taken_identity_is_ignored_as_the_master_would_and_said() -> None:
    """Two workers with one identity: the ROUTER (as the master's) ignores the second connection; the first keeps
    working, and the run says that a connection stayed open without a message arriving."""
    with peers() as (master, worker, proxy):
        worker.send(pack("client_ready", "2.47.0", "w1"))
        recv(master)
        twin = worker.context.socket(zmq.DEALER)
        twin.setsockopt(zmq.LINGER, 0)
        twin.setsockopt(zmq.IDENTITY, b"w1")
        twin.connect(f"tcp://{HOST}:{proxy.port}")
        try:
            twin.send(pack("client_ready", "twin", "w1"))
            assert not master.poll(300)  # ignored: it never reaches the master
            worker.send(pack("heartbeat", {"state": "ready"}, "w1"))
            assert msgpack.unpackb(recv(master)[1])[0] == "heartbeat"  # the first connection still works
            proxy.stop()
        finally:
            twin.close(0)
    assert len(proxy.connections) == 1 and proxy.counts()["to-master"]["read"] == 2
    assert len(proxy.silent_connections()) == 2  # both peers named: which one holds the identity cannot be seen


def _second_worker(proxy: Proxy, worker: zmq.Socket[bytes], name: bytes) -> zmq.Socket[bytes]:
    other: zmq.Socket[bytes] = worker.context.socket(zmq.DEALER)
    other.setsockopt(zmq.LINGER, 0)
    other.setsockopt(zmq.IDENTITY, name)
    other.connect(f"tcp://{HOST}:{proxy.port}")
    return other


def test_the_master_side_oracles_fail_a_master_that_has_the_bug() -> None:
    """A master that acks one worker late and the other never, answers heartbeats late and sends a spawn a Locust
    worker cannot read: each is a finding of the master table's; a delay the proxy's own plan adds is not."""
    plan = ProxyPlan.from_dict(
        {"faults": [{"direction": "to-worker", "workers": ["w2"], "kind": "delay", "types": ["heartbeat"], "seconds": 1.5}]}
    )
    with peers(plan) as (master, worker, proxy):
        w2 = _second_worker(proxy, worker, b"w2")
        try:
            worker.send(pack("client_ready", "2.47.0", "w1"))
            w2.send(pack("client_ready", "2.47.0", "w2"))
            got = {recv(master)[0], recv(master)[0]}
            assert got == {b"w1", b"w2"}
            time.sleep(1.2)  # w1's ack comes late; w2 never gets one
            master.send_multipart([b"w1", pack("ack", {"index": 0}, "w1")])
            worker.send(pack("heartbeat", {"state": "ready", "current_cpu_usage": 1.0}, "w1"))
            w2.send(pack("heartbeat", {"state": "ready", "current_cpu_usage": 1.0}, "w2"))
            recv(master), recv(master)
            master.send_multipart([b"w2", pack("heartbeat", None, "w2")])  # prompt, then delayed by the proxy's plan
            time.sleep(1.2)
            master.send_multipart([b"w1", pack("heartbeat", None, "w1")])  # late, by the master
            master.send_multipart([b"w1", pack("spawn", {"user_classes_count": "lots"}, "w1")])
            recv(worker), recv(worker), recv(worker), recv(w2, timeout=4)
        finally:
            proxy.stop()
            w2.close(0)
    results = {r.connection.identity: r for r in judge_all(proxy, proxy.clock.now())}
    first = {f.oracle: f.verdict for f in results["w1"].findings}
    second = {f.oracle: f.verdict for f in results["w2"].findings}
    assert first.get("master.ack.late") is Verdict.NON_STRICT, first
    assert first.get("master.heartbeat-reply.late") is Verdict.NON_STRICT, first
    assert first.get("master.spawn-schema") is Verdict.FAILED, first
    assert second.get("master.ack.missing") is Verdict.FAILED, second
    assert "master.heartbeat-reply.late" not in second, second  # the reply was on time; the proxy's plan delayed it


def test_sigterm_ends_the_proxy_command_with_its_report(tmp_path: Path) -> None:
    """The command as users run it, stopped as Ctrl-C or a supervisor stops it: what was recorded is judged and
    written, nothing lost."""
    context = zmq.Context()
    master = context.socket(zmq.ROUTER)
    master.setsockopt(zmq.LINGER, 0)
    port = master.bind_to_random_port(f"tcp://{HOST}")
    command = f"{sys.executable} -m harness.cli proxy --master {HOST}:{port} --listen {HOST}:0 --report {tmp_path / 'r'}"
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.setsockopt(zmq.IDENTITY, b"w1")
    try:
        with WorkerProcess(command, tmp_path / "proxy.log") as proc:
            deadline = time.monotonic() + 15
            while not (found := re.search(r"listening on tcp://[\d.]+:(\d+)", proc.output())):
                assert time.monotonic() < deadline and proc.poll() is None, proc.output()
                time.sleep(0.05)
            worker.connect(f"tcp://{HOST}:{found.group(1)}")
            worker.send(pack("client_ready", "2.47.0", "w1"))
            assert recv(master, timeout=5)[0] == b"w1"
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(15)
        assert code == 0, proc.output()
    finally:
        worker.close(0)
        master.close(0)
        context.term()
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [c["id"] for c in doc["cases"]] == ["proxy/01-w1"] and doc["run"]["frames"]["to-master"]["read"] == 1
    assert (tmp_path / "r" / "junit.xml").exists() and (tmp_path / "r" / "index.html").exists()
