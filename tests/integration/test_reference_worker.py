"""The real reference worker process (``python -m worker``) against the FakeMaster on 127.0.0.1.

Time is compressed tenfold (heartbeat every 0.1 s, connect timeout 0.5 s, stats every
0.3 s, logs every 1 s). Every worker runs through ``WorkerProcess``, so it is always
reaped, with its output in ``tmp_path``; every wait has a deadline.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest

from fakemaster.master import FakeMaster
from harness.launcher import WorkerProcess
from harness.protocol.codec import encode
from harness.protocol.messages import LOCUST_VERSION, Direction, Message
from harness.protocol.schema import check_payload
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, TraceRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

INTERVAL = 0.1
TIMING = LOCUST_TIMING.compressed(INTERVAL)
MAX_GAP = 1.5 * INTERVAL
STARTUP = 15.0  # python start-up and imports, generous for a loaded machine

Launch = Callable[..., WorkerProcess]


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    """A fake master with compressed timing; afterwards, nothing the worker sent may carry a violation."""
    with FakeMaster(timing=TIMING) as m:
        yield m
        bad = [r for r in m.trace.records() if r.kind is Kind.RECV and r.violations]
        assert bad == [], f"worker sent {len(bad)} frames with violations, first: {bad[:1]}"


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start reference workers (always stopped and reaped afterwards; their output is printed on failure)."""
    procs: list[WorkerProcess] = []

    def start(port: int, *extra: str, node_id: str = "testworker_1") -> WorkerProcess:
        argv = [
            sys.executable,
            "-m",
            "worker",
            "--master-port",
            str(port),
            "--heartbeat-interval",
            str(INTERVAL),
            "--node-id",
            node_id,
            *extra,
        ]
        proc = WorkerProcess(" ".join(shlex.quote(a) for a in argv), tmp_path / f"{node_id}.log").start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        code = proc.stop()
        print(f"--- worker {proc.command} (exit {code}) ---\n{proc.output(tail_lines=60)}")


def from_worker(node_id: str) -> Callable[[TraceRecord], bool]:
    return lambda r: r.message is not None and r.message.node_id == node_id and r.identity == node_id


def connect(master: FakeMaster, launch: Launch, *extra: str, node_id: str = "testworker_1") -> WorkerProcess:
    """Start a worker and wait until it is registered and heartbeating."""
    proc = launch(master.port, *extra, node_id=node_id)
    master.expect("client_ready", within=STARTUP, where=from_worker(node_id))
    master.expect("heartbeat", within=2.0, where=from_worker(node_id))
    return proc


def received(master: FakeMaster, message_type: str, since: int = 0, node_id: str | None = None) -> list[TraceRecord]:
    """Every message of ``message_type`` the master received at or after trace seq ``since``."""
    return [
        r
        for r in master.trace.records(since)
        if r.kind is Kind.RECV and r.type == message_type and (node_id is None or r.identity == node_id)
    ]


def max_gap(times: list[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))


def heartbeat_window(master: FakeMaster, seconds: float, node_id: str = "testworker_1") -> list[TraceRecord]:
    """Watch for ``seconds``; assert no heartbeat gap (window edges included) reaches 1.5x the interval."""
    seq, start = len(master.trace), master.clock.now()
    master.sleep(seconds)
    end = master.clock.now()
    beats = [r for r in received(master, "heartbeat", seq, node_id) if r.t <= end]
    times = [start, *(r.t for r in beats), end]
    assert max_gap(times) < MAX_GAP, f"heartbeat gap {max_gap(times):.3f} s >= {MAX_GAP} s over {seconds} s"
    return beats


def wait_for_output(proc: WorkerProcess, text: str, within: float = 3.0) -> str:
    """The worker's output once it contains ``text`` (polled, with a deadline)."""
    deadline = time.monotonic() + within
    while True:
        out = proc.output()
        if text in out or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Handshake and heartbeats
# --------------------------------------------------------------------------------------------


def test_handshake_retries_client_ready_until_ack(master: FakeMaster, launch: Launch) -> None:
    """No ack: client_ready again every connect_timeout and no heartbeat; after the ack, heartbeats and no retries."""
    master.set_auto(ack=False)
    node = "testworker_1"
    launch(master.port, node_id=node)
    first = master.expect("client_ready", within=STARTUP, where=from_worker(node))
    assert first.message is not None and first.message.data == LOCUST_VERSION
    tries = [first]
    for _ in range(2):
        tries.append(master.expect("client_ready", within=TIMING.connect_timeout + 0.5, where=from_worker(node)))
    gaps = [b.t - a.t for a, b in zip(tries, tries[1:], strict=False)]
    assert all(TIMING.connect_timeout - 0.1 <= g <= TIMING.connect_timeout + 0.3 for g in gaps), gaps
    assert received(master, "heartbeat") == []
    assert received(master, "stats") == []

    master.set_auto(ack=True)
    acked = master.expect("client_ready", within=TIMING.connect_timeout + 0.5, where=from_worker(node))
    ack = master.trace.wait_for(lambda r: r.kind is Kind.SEND and r.type == "ack", acked.seq, 1.0, master.clock.now)
    assert ack is not None
    beat = master.expect("heartbeat", within=1.0, where=from_worker(node))
    assert beat.seq > ack.seq
    assert all(r.seq > ack.seq for r in received(master, "heartbeat"))
    assert beat.message is not None and beat.message.data["state"] == "ready"
    master.expect_none("client_ready", within=2 * TIMING.connect_timeout + 0.2)


def test_heartbeat_payload_and_cadence(master: FakeMaster, launch: Launch) -> None:
    """Heartbeats carry state/cpu (float)/RSS (int > 0); over ~2 s no gap reaches 1.5x the interval."""
    connect(master, launch)
    beats = heartbeat_window(master, 2.0)
    assert len(beats) >= 15
    for r in beats:
        assert r.message is not None
        data = r.message.data
        assert set(data) == {"state", "current_cpu_usage", "current_memory_usage"}
        assert data["state"] == "ready"
        assert isinstance(data["current_cpu_usage"], float)
        assert isinstance(data["current_memory_usage"], int) and data["current_memory_usage"] > 1_000_000
        assert check_payload(r.message, Direction.WORKER_TO_MASTER) == []
    assert master.workers()["testworker_1"].missing is False


# --------------------------------------------------------------------------------------------
# Spawning and stats
# --------------------------------------------------------------------------------------------


def test_spawn_scale_down_and_stale_spawn(master: FakeMaster, launch: Launch) -> None:
    """Several classes -> exact absolute counts; scaling down; a stale spawn gets spawning but no completion."""
    node = "testworker_1"
    proc = connect(master, launch)
    mine = from_worker(node)
    t1 = time.time()
    master.spawn({"A": 3, "B": 2, "C": 1}, to=node, timestamp=t1)
    master.expect("spawning", within=1.0, where=mine)
    done = master.expect("spawning_complete", within=2.0, where=mine)
    assert done.message is not None
    assert done.message.data == {"user_classes_count": {"A": 3, "B": 2, "C": 1}, "user_count": 6}
    master.expect("heartbeat", within=1.0, where=lambda r: mine(r) and r.message.data["state"] == "running")  # type: ignore[union-attr]

    master.spawn({"A": 1, "B": 0, "C": 0}, to=node, timestamp=t1 + 1)
    master.expect("spawning", within=1.0, where=mine)
    done = master.expect("spawning_complete", within=2.0, where=mine)
    assert done.message is not None
    assert done.message.data == {"user_classes_count": {"A": 1, "B": 0, "C": 0}, "user_count": 1}
    stats = master.expect("stats", within=1.0, where=mine)
    assert stats.message is not None and stats.message.data["user_count"] == 1

    master.spawn({"A": 5}, to=node, timestamp=t1 + 0.5)  # older than the last one
    master.expect("spawning", within=1.0, where=mine)
    master.expect_none("spawning_complete", within=1.0)
    out = wait_for_output(proc, "Discard spawn message")
    assert "Discard spawn message" in out
    assert master.workers()[node].user_classes_count == {"A": 1, "B": 0, "C": 0}


def test_stats_every_report_interval(master: FakeMaster, launch: Launch) -> None:
    """stats every report interval, schema-valid, with the user counts; requests grow while users run."""
    node = "testworker_1"
    connect(master, launch, "--wait-time", "0.02", "--task-time", "0.01", "--fail-every", "5")
    master.spawn({"A": 2, "B": 1}, to=node)
    master.expect("spawning_complete", within=2.0, where=from_worker(node))
    seq, start = len(master.trace), master.clock.now()
    master.sleep(2.0)
    reports = [r for r in received(master, "stats", seq, node) if r.t <= start + 2.0]
    assert len(reports) >= 5
    times = [start, *(r.t for r in reports)]
    assert max_gap(times) < TIMING.report_interval * 1.5
    for r in reports:
        assert r.message is not None
        assert check_payload(r.message, Direction.WORKER_TO_MASTER) == []
        assert r.message.data["user_classes_count"] == {"A": 2, "B": 1}
        assert r.message.data["user_count"] == 3
    counts = [r.message.data["stats_total"]["num_requests"] for r in reports]  # type: ignore[union-attr]
    half = len(counts) // 2
    assert sum(counts[:half]) > 0 and sum(counts[half:]) > 0, counts  # deltas: requests keep coming
    names = {e["name"] for r in reports for e in r.message.data["stats"]}  # type: ignore[union-attr]
    assert names == {"/A", "/B"}
    errors = [e for r in reports for e in r.message.data["errors"].values()]  # type: ignore[union-attr]
    assert errors and all("failed on purpose" in e["error"] for e in errors)
    failures = sum(r.message.data["stats_total"]["num_failures"] for r in reports)  # type: ignore[union-attr]
    assert failures == sum(e["occurrences"] for e in errors)


# --------------------------------------------------------------------------------------------
# Stop, quit, shutdown
# --------------------------------------------------------------------------------------------


def test_stop_then_ready_then_quit(master: FakeMaster, launch: Launch) -> None:
    """stop -> client_stopped -> (stop_timeout later) client_ready; quit -> final stats, quit, exit 0."""
    node = "testworker_1"
    proc = connect(master, launch)
    mine = from_worker(node)
    master.spawn({"A": 2}, to=node, stop_timeout=0.4)
    master.expect("spawning_complete", within=2.0, where=mine)
    master.send("stop", to=node)
    stopped = master.expect("client_stopped", within=2.0, where=mine)
    ready = master.expect("client_ready", within=2.0, where=mine)
    assert 0.4 - 0.05 <= ready.t - stopped.t <= 0.4 + 0.5
    cooldown = [
        r.message.data["state"]
        for r in received(master, "heartbeat", stopped.seq, node)  # type: ignore[union-attr]
        if r.seq < ready.seq
    ]
    assert cooldown and set(cooldown) == {"running"}  # the previous state is kept while cooling down
    master.expect("heartbeat", within=1.0, where=lambda r: mine(r) and r.message.data["state"] == "ready")  # type: ignore[union-attr]
    assert node in master.workers()  # re-registered by that client_ready

    master.send("quit", to=node)
    sent_at = len(master.trace)
    quit_msg = master.expect("quit", within=3.0, where=mine)
    final = [r for r in received(master, "stats", sent_at, node) if r.seq < quit_msg.seq]
    assert final, "no final stats before the quit"
    assert final[-1].message is not None and final[-1].message.data["user_count"] == 0
    assert proc.wait(5.0) == 0


def test_sigterm_sends_quit_and_exits_0(master: FakeMaster, launch: Launch) -> None:
    node = "testworker_1"
    proc = connect(master, launch)
    master.spawn({"A": 2}, to=node)
    master.expect("spawning_complete", within=2.0, where=from_worker(node))
    proc.signal_group(signal.SIGTERM)
    master.expect("quit", within=3.0, where=from_worker(node))
    assert proc.wait(5.0) == 0
    assert "SIGTERM" in proc.output()


def test_master_silence_quits_with_exit_1(master: FakeMaster, launch: Launch) -> None:
    """No quit while the master never heartbeats; after replies stop, quit within the timeout, exit 1."""
    timeout = 1.5
    node = "testworker_1"
    mine = from_worker(node)
    master.set_auto(heartbeat=False)
    proc = connect(master, launch, "--master-heartbeat-timeout", str(timeout))
    master.expect_none("quit", within=timeout + 0.5)  # no master heartbeat yet: the check is not armed
    assert proc.poll() is None

    master.set_auto(heartbeat=True)
    first_reply = len(master.trace)
    master.sleep(0.5)
    replies = [r for r in master.trace.records(first_reply) if r.kind is Kind.SEND and r.type == "heartbeat"]
    assert len(replies) >= 3
    master.set_auto(heartbeat=False)
    off = master.clock.now()
    quit_msg = master.expect("quit", within=timeout + 2.0, where=mine)
    assert timeout - 0.2 <= quit_msg.t - off <= timeout + 1.0
    assert proc.wait(3.0) == 1
    assert "Didn't get heartbeat from master" in proc.output()


# --------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------


def _ignored(out: str, what: str) -> int:
    """How many messages the worker's log says it ignored after the first line of a kind ("Ignored N more <what>")."""
    return sum(int(n.replace(",", "")) for n in re.findall(rf"Ignored ([\d,]+) more {re.escape(what)} in the last", out))


def test_a_flood_of_junk_is_counted_not_logged_line_by_line(master: FakeMaster, launch: Launch) -> None:
    """Thousands of unknown-type messages and undecodable frames: a few log lines whose counts add up to what came.

    (One line per message turned a flood into disk writes the worker was still draining long after the flood.)
    """
    node = "testworker_1"
    proc = connect(master, launch)
    noise, garbage = encode(Message("noise", None, node)), b"\xc1 not msgpack"
    taken = {"noise": 0, "garbage": 0}
    for _ in range(10):  # (batches below the pipe's high-water mark, so that the worker keeps up)
        taken["noise"] += master.storm_send_many(node.encode(), [([noise], None)] * 800, tag="flood")
        taken["garbage"] += master.storm_send_many(node.encode(), [([garbage], None)] * 100, tag="flood")
        master.sleep(0.05)
    assert taken["noise"] > 4000 and taken["garbage"] > 500, taken
    assert master.send("quit", to=node)
    assert proc.wait(10.0) == 0
    out = proc.output()
    assert out.count("Unknown message type received: noise") == 1, out
    assert out.count("Skipping malformed frame from master") == 1, out
    assert 1 + _ignored(out, "messages of unknown type 'noise'") == taken["noise"], out
    assert 1 + _ignored(out, "malformed frames (codec.not-msgpack)") == taken["garbage"], out
    assert len(out.splitlines()) < 30, out


def test_malformed_frames_do_not_disturb_the_worker(master: FakeMaster, launch: Launch) -> None:
    """Garbage, wrong arity, unknown type, incomplete spawn: logged, heartbeats undisturbed; two frames: two messages."""
    node = "testworker_1"
    proc = connect(master, launch)
    mine = from_worker(node)
    heartbeat = encode(Message("heartbeat", None, node))
    seq, start = len(master.trace), master.clock.now()
    assert master.send_raw([b"\xc1\xc1 not msgpack \xff"], to=node)
    assert master.send_raw([msgpack.packb(["heartbeat", None])], to=node)  # 2 items
    assert master.send_raw([msgpack.packb(["spawn", None, node, 4])], to=node)  # 4 items
    assert master.send_raw([heartbeat, heartbeat], to=node)  # two payload frames: two heartbeats, as Locust's worker
    assert master.send_raw([b""], to=node)
    assert master.send_raw([heartbeat + b"\x00"], to=node)  # trailing bytes
    assert master.send("no_such_type", {"x": [1, 2]}, to=node)
    assert master.send("spawn", {"user_classes_count": {"A": 1}}, to=node)  # timestamp, host ... missing
    master.sleep(1.5)
    end = master.clock.now()
    beats = [r.t for r in received(master, "heartbeat", seq, node) if r.t <= end]
    assert max_gap([start, *beats, end]) < MAX_GAP
    assert received(master, "spawning", seq) == []
    assert proc.poll() is None
    out = wait_for_output(proc, "Ignoring malformed spawn")
    # one line per kind of bad frame per log interval: the second wrong arity is counted, then summed up
    assert out.count("Skipping malformed frame from master") == 4, out
    out = wait_for_output(proc, "Ignored 1 more malformed frames (codec.arity)", within=2 * TIMING.log_report_interval)
    assert "Ignored 1 more malformed frames (codec.arity)" in out, out
    assert "frames in one message" not in out
    assert "Unknown message type received: no_such_type" in out
    assert "Ignoring malformed spawn from master" in out
    logs = master.expect(
        "logs",
        within=3 * TIMING.log_report_interval,
        where=lambda r: mine(r) and any("malformed frame" in line for line in r.message.data["logs"]),
    )  # type: ignore[union-attr]
    assert logs.message is not None and logs.message.data["worker_id"] == node
    master.spawn({"A": 1}, to=node)  # and it still works
    done = master.expect("spawning_complete", within=2.0, where=mine)
    assert done.message is not None and done.message.data["user_count"] == 1


def test_reconnect_keeps_heartbeating_with_the_same_identity(master: FakeMaster, launch: Launch) -> None:
    """reconnect -> a new DEALER with the same identity: heartbeats go on, no new client_ready, spawns still work."""
    node = "testworker_1"
    proc = connect(master, launch)
    mine = from_worker(node)
    seq, sent = len(master.trace), master.clock.now()
    assert master.send("reconnect", None, to=node)
    master.sleep(1.5)
    beats = [r for r in received(master, "heartbeat", seq) if r.t >= sent]
    assert len(beats) >= 8, f"{len(beats)} heartbeats after reconnect; worker exit: {proc.poll()}"
    assert all(mine(r) for r in beats)
    assert max_gap([sent, *(r.t for r in beats)]) < 0.5  # Locust: 0.26 s observed (spec §3.10)
    assert received(master, "client_ready", seq) == []
    master.spawn({"A": 1}, to=node)
    master.expect("spawning_complete", within=2.0, where=mine)
    assert proc.poll() is None


def test_raise_every_sends_exception(master: FakeMaster, launch: Launch) -> None:
    """--raise-every: each raising task becomes an ``exception`` message with msg and traceback."""
    node = "testworker_1"
    connect(master, launch, "--raise-every", "1", "--wait-time", "0.02", "--task-time", "0.01")
    master.expect_none("exception", within=0.3)  # no users, no exceptions
    master.spawn({"A": 1}, to=node)
    exc = master.expect("exception", within=2.0, where=from_worker(node))
    assert exc.message is not None
    assert check_payload(exc.message, Direction.WORKER_TO_MASTER) == []
    assert exc.message.data["msg"] == "task of A failed on purpose (request 1)"
    assert "raise RuntimeError" in exc.message.data["traceback"]
    master.expect("exception", within=1.0, where=from_worker(node))  # and again for the next task


def test_no_master_exits_255(launch: Launch) -> None:
    """Nothing listens: --connect-timeout 0.1 --connect-retry-count 3 -> 4 attempts, then exit 255 promptly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but never listening: connections are refused
        started = time.monotonic()
        proc = launch(port, "--connect-timeout", "0.1", "--connect-retry-count", "3")
        code = proc.wait(10.0)
        elapsed = time.monotonic() - started
    assert code == 255, proc.output()
    assert elapsed < 5.0
    out = proc.output()
    assert "retry 4/3" in out and "retry 5/3" not in out
