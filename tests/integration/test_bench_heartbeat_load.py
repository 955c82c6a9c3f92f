"""The reference worker's heartbeats stay on time under load (the fast version of bench/heartbeat_under_load.py).

A raw pyzmq ROUTER in this process plays the master (ack, heartbeat replies) and timestamps every worker
heartbeat as it arrives; the worker runs at a compressed 0.2 s interval. Loads: a flood of unknown-type messages
that the worker cannot keep up with (each carries 5000 integers, ~0.3 ms to decode: a worker that works
through its backlog before a due heartbeat is late by far more than the limit), bounded in time and count;
and CPU-bound users. The flood's read loop measures its own stalls: a heartbeat's timestamp can be late by at
most the longest one, so that much is allowed on top of the limit (normally about a millisecond). The limit,
1.25 intervals (50 ms late), leaves room for the scheduling noise of a shared 2-core machine.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from harness.launcher import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

INTERVAL = 0.2
STARTUP = 15.0
FLOOD_SECONDS = 3.0
FLOOD_MAX_MESSAGES = 1_000_000
FLOOD_PAD = list(range(5000))
LIMIT = 1.25  # x the interval
MAX_STALL = 0.5 * INTERVAL  # the read loop's own stall we forgive, at most: a longer one is a harness failure, not a pass
NODE = "benchtest_1"


def pack(message_type: str, data: object, node_id: str = NODE) -> bytes:
    packed: bytes = msgpack.packb([message_type, data, node_id])
    return packed


class RawMaster:
    """A ROUTER that acks, answers heartbeats and timestamps them on arrival (``drain`` reads what is there)."""

    def __init__(self) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.beats: list[float] = []
        self.identity = b""

    def close(self) -> None:
        self.sock.close(linger=0)
        self.context.term()

    def drain(self) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            t = time.monotonic()
            message = msgpack.unpackb(frames[-1], strict_map_key=False)
            if message[0] == "client_ready":
                self.identity = frames[0]
                self.sock.send_multipart([frames[0], pack("ack", {"index": 0})])
            elif message[0] == "heartbeat":
                self.beats.append(t)
                try:
                    self.sock.send_multipart([frames[0], pack("heartbeat", None)], zmq.NOBLOCK)
                except zmq.Again:
                    pass  # the pipe is full of flood: the worker does not need every reply

    def wait_for_beats(self, n: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.beats) < n and time.monotonic() < deadline:
            self.sock.poll(20)
            self.drain()
        assert len(self.beats) >= n, f"{len(self.beats)} heartbeats within {within} s"

    def watch(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sock.poll(5)
            self.drain()

    def flood(self, seconds: float) -> tuple[int, int, float]:
        """Unknown-type messages as fast as the worker takes them; (sent, refused, longest stall between reads)."""
        payload = pack("noise", {"pad": FLOOD_PAD})
        sent, refused, stall = 0, 0, 0.0
        last = time.monotonic()
        end = last + seconds
        while sent < FLOOD_MAX_MESSAGES:
            now = time.monotonic()
            stall, last = max(stall, now - last), now
            if now >= end:
                break
            for _ in range(64):
                try:
                    self.sock.send_multipart([self.identity, payload], zmq.NOBLOCK)
                    sent += 1
                except zmq.Again:  # the worker's pipe is full: let it catch up
                    refused += 1
                    time.sleep(0.0005)
                    break
            self.drain()
        return sent, refused, stall


@pytest.fixture
def master() -> Iterator[RawMaster]:
    m = RawMaster()
    yield m
    m.close()


def start_worker(port: int, log: Path, *extra: str, pin: bool = False) -> WorkerProcess:
    argv = [sys.executable, "-m", "worker", "--master-port", str(port), "--heartbeat-interval", str(INTERVAL)]
    argv += ["--node-id", NODE, *extra]
    command = " ".join(shlex.quote(a) for a in argv)
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) >= 2:  # the busy users on one CPU: this process's timestamps do not wait for them
        command = f"taskset -c {cpus[-1]} {command}"
    return WorkerProcess(command, log).start()


def spanning_gaps(beats: list[float], start: float, end: float) -> list[float]:
    """Gaps from the last heartbeat before ``start`` to the first after ``end``."""
    before = [t for t in beats if t <= start][-1:]
    inside = [t for t in beats if start < t <= end]
    after = [t for t in beats if t > end][:1]
    series = before + inside + after
    assert before and after, f"no heartbeat before or after the window: {series}"
    return [b - a for a, b in zip(series, series[1:], strict=False)]


def flooded_gaps(master: RawMaster, tmp_path: Path, *extra: str) -> tuple[list[float], int, float]:
    """Heartbeat gaps across a flood; the number of sends the full pipe refused; the read loop's longest stall."""
    process = start_worker(master.port, tmp_path / "worker.log", *extra)
    try:
        master.wait_for_beats(3, STARTUP)
        start = time.monotonic()
        _, refused, stall = master.flood(FLOOD_SECONDS)
        end = time.monotonic()
        master.watch(3 * INTERVAL)
        assert process.poll() is None, process.output(tail_lines=30)
    finally:
        process.stop()
    return spanning_gaps(master.beats, start, end), refused, stall


def test_heartbeats_on_time_under_a_flood_of_unknown_messages(master: RawMaster, tmp_path: Path) -> None:
    """The worker cannot keep up with the flood, yet due heartbeats go before the backlog: no gap over the limit."""
    gaps, refused, stall = flooded_gaps(master, tmp_path)
    assert stall <= MAX_STALL, f"the test's own read loop stalled {stall:.3f} s: it cannot judge gaps (rerun on a quiet machine)"
    assert refused > 0, "the worker kept up: not a flood"
    assert len(gaps) >= FLOOD_SECONDS / INTERVAL - 1
    limit = LIMIT * INTERVAL + stall
    assert max(gaps) <= limit, f"max gap {max(gaps):.3f} s > {limit:.3f} s; gaps {[round(g, 3) for g in gaps]}"


def test_the_flood_measurement_catches_late_heartbeats(master: RawMaster, tmp_path: Path) -> None:
    """The same measurement fails a worker whose heartbeats come every 1.7 intervals."""
    gaps, _, stall = flooded_gaps(master, tmp_path, "--defect", "late-heartbeats")
    assert stall <= MAX_STALL, f"the test's own read loop stalled {stall:.3f} s"
    assert max(gaps) > LIMIT * INTERVAL + stall
    assert sorted(gaps)[len(gaps) // 2] > 1.5 * INTERVAL, gaps  # the median: the defect is on


def test_heartbeats_on_time_with_cpu_bound_users(master: RawMaster, tmp_path: Path) -> None:
    """10 users busy-looping 200 ms with no wait: the socket thread still gets the GIL in time (gaps < 1.5 intervals)."""
    extra = ("--busy-task", "--task-time", "0.2", "--wait-time", "0")
    process = start_worker(master.port, tmp_path / "worker.log", *extra, pin=True)
    try:
        master.wait_for_beats(3, STARTUP)
        spawn = {"timestamp": time.time(), "user_classes_count": {"Burn": 10}, "host": None, "stop_timeout": 0.0}
        master.sock.send_multipart([master.identity, pack("spawn", {**spawn, "parsed_options": {}})])
        start = time.monotonic()
        master.watch(4.0)
        end = time.monotonic()
        master.watch(3 * INTERVAL)
        assert process.poll() is None, process.output(tail_lines=30)
    finally:
        process.stop()
    gaps = spanning_gaps(master.beats, start, end)
    assert len(gaps) >= 4.0 / INTERVAL - 1
    assert max(gaps) < 1.5 * INTERVAL, f"max gap {max(gaps):.3f} s; gaps {gaps}"
