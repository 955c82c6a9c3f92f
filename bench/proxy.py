"""The transparent proxy (harness/proxy/forwarder.py) against a raw pyzmq forwarder, and the real master through it.

    python bench/proxy.py --out bench/results-proxy.json      # the full run, about two minutes
    python bench/proxy.py --workers 1,5 --seconds 1 --flood-seconds 1 --flood-workers 5 --master-workers 5 --master-seconds 2
    python bench/proxy.py --parts latency --workers 100 --quiet-wait 60   # one part; first wait for an idle machine

Three measurements in one run, each against a baseline measured in the same run (issue 16, "Performance"):

1. Added latency per message, at each ``--workers`` size. Simulated workers (``--role clients``: one DEALER each,
   ``select.epoll`` on their ``ZMQ_FD``s as bench/swarm.py's swarm) register with a ``client_ready`` and then
   heartbeat on a fixed schedule with a random phase; an echo peer (``--role echo``: a plain pyzmq ROUTER in place
   of the master) acks the ``client_ready`` and answers every heartbeat with the master's reply
   ``["heartbeat", None, id]``. Each worker times its heartbeat -> reply round trip (FIFO per socket, the clock of
   one process). Three paths per size, one after the other: **direct** (workers on the echo), **raw** (through the
   baseline forwarder below) and **proxy** (through ``harness.proxy.forwarder.Proxy``, in a process of its own:
   ``--role forwarder --kind proxy``). A forwarder adds two hops to a round trip (worker -> echo, echo -> worker),
   so the latency it adds *per message* is reported as ``(RT_path - RT_direct) / 2``, percentile by percentile (the
   p99 of the path's round trips minus the p99 of the direct ones, halved). Each worker heartbeats every
   ``--interval`` s (Locust's 1 s), faster where needed so that the whole swarm sends at least ``--min-rate``
   messages/s (a single worker at 1 Hz would give too few samples for a p99): the rate is in the table.
2. Throughput, one way, at each ``--flood-workers`` size (10 and 100): the workers register, then send heartbeats as
   fast as their sockets take them (``NOBLOCK``; a full pipe is counted and skipped), at most ``--flood-max``
   messages or ``--flood-seconds``. The forwarder runs on a CPU of its own, the sender and the echo on the other
   (``--no-pin``: anywhere), so that what it forwards is its capacity, not what the busy sender leaves it.
   The echo only counts what arrives, per 10 ms; the rate is what arrived from 0.5 s after the flood began to its
   end (the queues full, the forwarder saturated). The same flood direct (the sender's and echo's ceiling), through
   the raw forwarder and through the proxy. Also the forwarder's CPU (% of one core, all its threads, sampled every
   0.25 s) and so messages per CPU second, which does not depend on who was the bottleneck. The target is judged
   on the lower of the two ratios to the raw forwarder (msg/s flatters the proxy when the raw forwarder was not
   saturated).
3. The real Locust master's heartbeat replies at ``--master-workers`` (1,000) workers: ``python -m locust -f
   harness/peers/locustfile.py --master --headless ... --expect-workers N+1`` (it waits for one more worker than
   will come, so it starts no test and only registers and answers heartbeats), its output in a file, on a port
   from binding port 0; bench/swarm.py's own simulated workers (``swarm.py --role swarm``, 500 per process,
   connecting at 1,000/s, 1 Hz heartbeats) connect to it directly, then, against a fresh master, through the proxy.
   Reply latency p50/p99/max over the steady window (2 s after the last ack to 1 s before the end).

The raw forwarder (the baseline, ``--kind raw``): one thread, a ``zmq.Poller`` over its ROUTER and one DEALER per
worker identity (connected to the master with that identity, as the proxy does), ``recv_multipart`` /
``send_multipart`` with ``NOBLOCK``, the same options and high-water marks as the proxy, no decoding, no recording.

Targets: proxy p99 added per message <= 1 ms at 100 workers; proxy throughput >= 0.5x the raw forwarder's;
the real master's reply p99 at 1,000 workers through the proxy no more than 2 ms above direct. Other work on the
machine skews all of it: each row records how busy the machine was just before it (``--quiet-wait`` waits for it
to be idle first). The forwarder's garbage-collector pauses are in the JSON (``forwarder.gc``). Every child runs in
its own process group with its output in a file and is always stopped and reaped (``benchkit.Children``); every
wait has a deadline and every loop a bound in time and count.
"""

from __future__ import annotations

import argparse
import collections
import functools
import heapq
import json
import math
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

from benchkit import (
    BENCH_DIR,
    HEARTBEAT_DATA,
    Children,
    CpuSampler,
    environment,
    node_id,
    percentile,
    print_table,
    raise_nofile,
    script_command,
    wait_exit,
    wait_listening,
    write_json,
)
from swarm import MISSING_LINE, _GcPauses

ROOT = BENCH_DIR.parent
LOCUSTFILE = ROOT / "harness" / "peers" / "locustfile.py"
HWM = 100_000  # the proxy's high-water marks (harness/proxy/forwarder.py), used by the raw forwarder and the echo too
HB_PREFIX: bytes = b"\x93" + msgpack.packb("heartbeat")  # how every [type, data, node_id] heartbeat begins
READY_RETRY = 5.0  # Locust's CONNECT_TIMEOUT: client_ready again while un-acked
WARMUP = 0.5  # seconds after the last ack (or the flood's start) before anything is measured
TAIL = 1.0  # seconds the clients wait for the replies of their last heartbeats
REGISTER_TIMEOUT = 20.0
BIN = 0.01  # the echo's arrival counts, per this many seconds
SWARM_PER_PROCESS = 500
SWARM_CONNECT_RATE = 1000.0
TARGET_ADDED_P99_MS, TARGET_ADDED_AT = 1.0, 100
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_MASTER_P99_MS = 2.0
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
NOBLOCK = int(zmq.NOBLOCK)
PATHS = ("direct", "raw", "proxy")


class Stop:
    """Set by SIGTERM: a role's loop ends at its next check, and the role writes its result."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: object) -> None:
        self.requested = True


def pin(cpus: str) -> None:
    """Run this process (and the threads it starts later, libzmq's among them) on ``cpus`` ("0", "1,2"; "": anywhere)."""
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` via a temporary file and a rename (a reader never sees half of it)."""
    part = path.with_suffix(path.suffix + ".part")
    part.write_text(text)
    os.replace(part, path)


# ---------------------------------------------------------------------------------------------------------
# --role echo: a plain ROUTER in place of the master
# ---------------------------------------------------------------------------------------------------------


def run_echo(args: argparse.Namespace) -> int:
    """Ack every client_ready; ``--mode reply``: answer each heartbeat as the master does; ``count``: count them."""
    stop = Stop()
    pin(args.cpus)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    write_atomic(Path(args.port_file), str(port))
    replies: dict[bytes, bytes] = {}
    bins: collections.Counter[int] = collections.Counter()
    heartbeats = acks = refused = other = 0
    count_only = args.mode == "count"
    end = time.monotonic() + args.seconds
    try:
        while not stop.requested and time.monotonic() < end:
            if not sock.poll(50):
                continue
            for _ in range(4096):
                try:
                    frames = sock.recv_multipart(NOBLOCK)
                except zmq.Again:
                    break
                identity, payload = frames[0], frames[-1]
                if payload.startswith(HB_PREFIX):
                    heartbeats += 1
                    if count_only:
                        bins[int(time.monotonic() / BIN)] += 1
                        continue
                    reply = replies.get(identity)
                    if reply is None:
                        reply = replies[identity] = msgpack.packb(["heartbeat", None, identity.decode("utf-8", "replace")])
                    out = [identity, reply]
                else:
                    try:
                        message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
                    except Exception:
                        other += 1
                        continue
                    if not (isinstance(message, list) and message and message[0] == "client_ready"):
                        other += 1
                        continue
                    out = [identity, msgpack.packb(["ack", {"index": acks}, identity.decode("utf-8", "replace")])]
                    acks += 1
                try:
                    sock.send_multipart(out, NOBLOCK)
                except zmq.ZMQError:
                    refused += 1
    finally:
        result = {"heartbeats": heartbeats, "acks": acks, "refused": refused, "other": other, "bins": sorted(bins.items())}
        Path(args.out).write_text(json.dumps(result))
        sock.close(linger=0)
        context.term()
    return 0


# ---------------------------------------------------------------------------------------------------------
# --role forwarder: the raw baseline or the proxy under test
# ---------------------------------------------------------------------------------------------------------


class RawForwarder:
    """The baseline: a ROUTER for the workers, a DEALER per identity to the master, one thread, no recording."""

    def __init__(self, master_port: int) -> None:
        self.endpoint = f"tcp://127.0.0.1:{master_port}"
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.front = self.context.socket(zmq.ROUTER)
        for option, value in ((zmq.ROUTER_MANDATORY, 1), (zmq.LINGER, 0), (zmq.SNDHWM, HWM), (zmq.RCVHWM, HWM)):
            self.front.setsockopt(option, value)
        self.port = self.front.bind_to_random_port("tcp://127.0.0.1")
        self.poller = zmq.Poller()
        self.poller.register(self.front, zmq.POLLIN)
        self.backs: dict[bytes, zmq.Socket[bytes]] = {}
        self.names: dict[zmq.Socket[bytes], bytes] = {}
        self.forwarded = {"to-master": 0, "to-worker": 0}
        self.refused = {"to-master": 0, "to-worker": 0}

    def _back(self, identity: bytes) -> zmq.Socket[bytes]:
        back = self.context.socket(zmq.DEALER)
        for option, value in ((zmq.IDENTITY, identity), (zmq.LINGER, 0), (zmq.SNDHWM, HWM), (zmq.RCVHWM, HWM)):
            back.setsockopt(option, value)
        back.connect(self.endpoint)
        self.backs[identity] = back
        self.names[back] = identity
        self.poller.register(back, zmq.POLLIN)
        return back

    def run(self, stop: Stop, end: float) -> None:
        front, backs, names = self.front, self.backs, self.names
        while not stop.requested and time.monotonic() < end:
            for sock, _ in self.poller.poll(100):
                if sock is front:
                    for _ in range(512):
                        try:
                            identity, *frames = front.recv_multipart(NOBLOCK)
                        except zmq.Again:
                            break
                        back = backs.get(identity) or self._back(identity)
                        try:
                            back.send_multipart(frames, NOBLOCK)
                            self.forwarded["to-master"] += 1
                        except zmq.ZMQError:
                            self.refused["to-master"] += 1
                else:
                    identity = names[sock]
                    for _ in range(512):
                        try:
                            frames = sock.recv_multipart(NOBLOCK)
                        except zmq.Again:
                            break
                        try:
                            front.send_multipart([identity, *frames], NOBLOCK)
                            self.forwarded["to-worker"] += 1
                        except zmq.ZMQError:
                            self.refused["to-worker"] += 1

    def close(self) -> None:
        for back in self.backs.values():
            back.close(linger=0)
        self.front.close(linger=0)
        self.context.term()


def run_forwarder(args: argparse.Namespace) -> int:
    stop = Stop()
    pin(args.cpus)
    raise_nofile(4 * args.expect + 1024)
    end = time.monotonic() + args.seconds
    result: dict[str, Any] = {"kind": args.kind}
    pauses = _GcPauses().install()  # the garbage collector's pauses in this process (the forwarding thread's too)
    if args.kind == "raw":
        raw = RawForwarder(args.master_port)
        write_atomic(Path(args.port_file), str(raw.port))
        try:
            raw.run(stop, end)
        finally:
            pauses.stop()
            result.update(forwarded=raw.forwarded, refused=raw.refused, connections=len(raw.backs), gc=pauses.summary())
            raw.close()
            Path(args.out).write_text(json.dumps(result))
        return 0
    sys.path.insert(0, str(ROOT))
    from harness.proxy.forwarder import Proxy  # only this role needs the harness

    proxy = Proxy("127.0.0.1", args.master_port, freeze_gc=True).start()  # as the proxy command runs it
    write_atomic(Path(args.port_file), str(proxy.port))
    try:
        while not stop.requested and time.monotonic() < end and proxy.failure is None:
            time.sleep(0.05)
    finally:
        proxy.stop()
        pauses.stop()
        result.update(
            gc=pauses.summary(),
            counts=proxy.counts(),
            connections=len(proxy.connections),
            records=len(proxy.trace),
            failure=None if proxy.failure is None else repr(proxy.failure),
        )
        Path(args.out).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------------------
# --role clients: simulated workers (epoll on ZMQ_FD, as bench/swarm.py)
# ---------------------------------------------------------------------------------------------------------


class Clients:
    """``count`` DEALERs that register; then either paced heartbeats with timed replies, or a flood."""

    def __init__(self, port: int, count: int, seed: int, connect_rate: float) -> None:
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.count = count
        self.connect_rate = connect_rate
        self.rng = random.Random(f"proxy-bench:{seed}")
        self.ids = [node_id(self.rng) for _ in range(count)]
        self.beats: list[bytes] = [msgpack.packb(["heartbeat", HEARTBEAT_DATA, nid]) for nid in self.ids]
        self.replies: list[bytes] = [msgpack.packb(["heartbeat", None, nid]) for nid in self.ids]
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.context.setsockopt(zmq.LINGER, 0)
        self.context.set(zmq.MAX_SOCKETS, max(1024, count + 64))
        self.socks: list[zmq.Socket[bytes]] = []
        self.fds: dict[int, int] = {}
        self.epoll = select.epoll()
        self.acked_at: list[float | None] = [None] * count
        self.ready_sent: list[float] = [0.0] * count
        self.acked = 0
        self.pending: list[collections.deque[float]] = [collections.deque() for _ in range(count)]
        self.lat: list[float] = []  # round trips (s) of heartbeats sent in [measure_from, measure_to)
        self.measure_from = math.inf
        self.measure_to = math.inf
        self.sent = 0
        self.refused = 0
        self.unmatched = 0
        self.other = 0

    def _connect(self, i: int) -> None:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.ids[i].encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self.socks.append(sock)
        fd = sock.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        self.fds[fd] = i
        self.epoll.register(fd, select.EPOLLIN)
        self._ready(i)

    def _ready(self, i: int) -> None:
        try:
            self.socks[i].send(msgpack.packb(["client_ready", "2.47.0", self.ids[i]]), NOBLOCK)
        except zmq.Again:
            self.refused += 1
        self.ready_sent[i] = time.monotonic()
        self.drain(i)

    def drain(self, i: int) -> None:
        sock = self.socks[i]
        for _ in range(100_000):
            if not sock.getsockopt(EVENTS) & POLLIN:  # type: ignore[operator]
                return
            frame = sock.recv(NOBLOCK)
            now = time.monotonic()
            if frame == self.replies[i]:
                queue = self.pending[i]
                if not queue:
                    self.unmatched += 1
                    continue
                sent = queue.popleft()
                if self.measure_from <= sent < self.measure_to:
                    self.lat.append(now - sent)
                continue
            try:
                message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
            except Exception:
                self.other += 1
                continue
            if isinstance(message, list) and message and message[0] == "ack" and self.acked_at[i] is None:
                self.acked_at[i] = now
                self.acked += 1
            else:
                self.other += 1

    def _wait(self, timeout: float) -> None:
        for fd, _ in self.epoll.poll(max(0.0, timeout), 4096):
            i = self.fds.get(fd)
            if i is not None:
                self.drain(i)

    def register(self, deadline: float) -> float:
        """Connect at ``connect_rate``/s, each with a client_ready (again every 5 s while un-acked), until every
        worker is acked or ``deadline``; returns when the last ack came (or the deadline)."""
        started = time.monotonic()
        next_sweep = started + 1.0
        while time.monotonic() < deadline and self.acked < self.count:
            now = time.monotonic()
            allowed = self.count if self.connect_rate <= 0 else int((now - started) * self.connect_rate) + 1
            while len(self.socks) < min(allowed, self.count):
                self._connect(len(self.socks))
            self._wait(0.005 if len(self.socks) < self.count else 0.05)
            now = time.monotonic()
            if now >= next_sweep:  # the safety net for an edge missed on ZMQ_FD, and the client_ready retries
                next_sweep = now + 1.0
                for i in range(len(self.socks)):
                    self.drain(i)
                    if self.acked_at[i] is None and now - self.ready_sent[i] >= READY_RETRY:
                        self._ready(i)
        return max((t for t in self.acked_at if t is not None), default=time.monotonic())

    def paced(self, period: float, seconds: float, ready_at: float) -> None:
        """Heartbeats every ``period`` s per worker (random phase, fixed schedule); round trips of those sent in
        [ready_at + WARMUP, + seconds) are kept."""
        self.measure_from = ready_at + WARMUP
        self.measure_to = self.measure_from + seconds
        timers = [(ready_at + self.rng.random() * period, i) for i in range(self.count) if self.acked_at[i] is not None]
        heapq.heapify(timers)
        end = self.measure_to + TAIL
        next_sweep = time.monotonic() + 1.0
        while time.monotonic() < end:
            now = time.monotonic()
            while timers and timers[0][0] <= now and now < self.measure_to:
                due, i = heapq.heappop(timers)
                try:
                    self.socks[i].send(self.beats[i], NOBLOCK)
                    self.pending[i].append(time.monotonic())
                    self.sent += 1
                except zmq.Again:
                    self.refused += 1
                nxt = due + period
                heapq.heappush(timers, (nxt if nxt > now else now, i))  # late: no burst
                self.drain(i)
                now = time.monotonic()
            if now >= self.measure_to and not any(q and q[-1] < self.measure_to for q in self.pending):
                break  # every measured heartbeat answered
            wake = end if now >= self.measure_to or not timers else min(end, timers[0][0])
            self._wait(min(wake - now, next_sweep - now))
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + 1.0
                for i in range(self.count):
                    self.drain(i)

    def flood(self, seconds: float, limit: int) -> tuple[float, float]:
        """Heartbeats round robin over every acked worker as fast as their sockets take them, at most ``limit``
        messages or ``seconds``; returns when the flood began and ended."""
        order = [i for i in range(self.count) if self.acked_at[i] is not None]
        started = time.monotonic()
        end = started + seconds
        refused_in_a_row = 0
        k = 0
        while self.sent < limit:
            if k % 1024 == 0 and time.monotonic() >= end:
                break
            i = order[k % len(order)]
            k += 1
            try:
                self.socks[i].send(self.beats[i], NOBLOCK)
                self.sent += 1
                refused_in_a_row = 0
            except zmq.Again:
                self.refused += 1
                refused_in_a_row += 1
                if refused_in_a_row >= len(order):  # every pipe is full: let the peer catch up
                    time.sleep(0.001)
                    refused_in_a_row = 0
        return started, time.monotonic()

    def close(self) -> None:
        for sock in self.socks:
            sock.close(linger=0)
        self.epoll.close()
        self.context.term()


def run_clients(args: argparse.Namespace) -> int:
    raise_nofile(2 * args.count + 256)
    pin(args.cpus)
    clients = Clients(args.port, args.count, args.seed, args.connect_rate)
    result: dict[str, Any] = {"count": args.count, "mode": args.mode}
    try:
        ready_at = clients.register(time.monotonic() + REGISTER_TIMEOUT)
        result["acked"] = clients.acked
        if args.mode == "paced":
            clients.paced(args.period, args.seconds, ready_at)
            result["unanswered"] = sum(1 for q in clients.pending for t in q if clients.measure_from <= t < clients.measure_to)
            result["lat"] = [round(x, 7) for x in clients.lat]
            result["measured_s"] = args.seconds
        else:
            result["flood_start"], result["flood_end"] = clients.flood(args.seconds, args.limit)
        result.update(sent=clients.sent, refused=clients.refused, unmatched=clients.unmatched, other=clients.other)
    finally:
        Path(args.out).write_text(json.dumps(result))
        clients.close()
    return 0


# ---------------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on now (bound to port 0 and released: the master binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return int(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited ({proc.returncode}) before writing {path}")
        time.sleep(0.02)
    raise RuntimeError(f"{path} not written within {timeout:g} s")


def read_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"no result in {path} ({exc})") from None
    assert isinstance(data, dict)
    return data


def ms(values: list[float], q: float) -> float | None:
    p = percentile(values, q)
    return None if p is None else round(1000 * p, 3)


def role(*args: str) -> list[str]:
    return script_command("proxy.py", *args)


def start_echo(group: Children, mode: str, folder: Path, hard: float, cpus: str = "") -> int:
    """The echo peer in place of the master (``--mode reply`` or ``count``), on ``cpus``; its port."""
    port_file = folder / "echo.port"
    command = ["--role", "echo", "--mode", mode, "--port-file", str(port_file), "--out", str(folder / "echo.json")]
    command += ["--cpus", cpus]
    echo = group.start(role(*command, "--seconds", f"{hard:g}"), log=folder / "echo.log")
    return wait_port_file(port_file, echo, 30)


def drive_clients(group: Children, command: list[str], folder: Path, sampler: CpuSampler, hard: float, what: str) -> None:
    """Start the simulated workers, sample the forwarder's CPU while they run, wait for them, stop the group."""
    clients = group.start(role(*command), log=folder / "clients.log")
    sampler.start()
    try:
        if not wait_exit(clients, hard):
            print(f"  warning: {what} did not end in time", file=sys.stderr)
    finally:
        sampler.stop()
    group.close(grace=5.0)


def start_path(
    group: Children, path: str, folder: Path, echo_port: int, hard: float, expect: int, sampler: CpuSampler, cpus: str = ""
) -> tuple[int, Path | None]:
    """The forwarder of ``path`` (none for direct) in front of the peer on ``echo_port``: the port workers connect to."""
    if path == "direct":
        return echo_port, None
    port_file, out = folder / "forwarder.port", folder / "forwarder.json"
    args = ["--role", "forwarder", "--kind", path, "--master-port", str(echo_port), "--expect", str(expect), "--cpus", cpus]
    fwd = group.start(
        role(*args, "--port-file", str(port_file), "--out", str(out), "--seconds", f"{hard:g}"), log=folder / "forwarder.log"
    )
    sampler.watch("forwarder", fwd.pid)
    return wait_port_file(port_file, fwd, 30), out


def latency_run(path: str, n: int, period: float, opts: argparse.Namespace, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    hard = REGISTER_TIMEOUT + opts.seconds + 30
    sampler = CpuSampler(interval=0.25)
    with Children() as group:
        echo_port = start_echo(group, "reply", folder, hard)
        port, fwd_out = start_path(group, path, folder, echo_port, hard, n, sampler)
        out = folder / "clients.json"
        command = ["--role", "clients", "--mode", "paced", "--port", str(port), "--count", str(n), "--seed", str(opts.seed)]
        command += ["--period", f"{period:g}", "--seconds", f"{opts.seconds:g}", "--out", str(out)]
        drive_clients(group, command, folder, sampler, hard, f"the clients of {path} N={n}")
    data = read_result(out)
    lat: list[float] = data.get("lat", [])
    row: dict[str, Any] = {
        "path": path,
        "workers": n,
        "period_s": period,
        "rate_msg_s": round(n / period, 1),
        "acked": data.get("acked"),
        "sent": data.get("sent"),
        "samples": len(lat),
        "unanswered": data.get("unanswered"),
        "rt_p50_ms": ms(lat, 50),
        "rt_p99_ms": ms(lat, 99),
        "rt_max_ms": ms(lat, 100),
        "forwarder_cpu": sampler.summary("forwarder") if fwd_out else None,
    }
    if fwd_out is not None:
        row["forwarder"] = read_result(fwd_out)
    return row


def split_cpus() -> tuple[str, str]:
    """The CPUs of the flood's sender and echo, and the forwarder's (the last one): a forwarder gets a core of its
    own, so that what it forwards is its own capacity, not its share of what the busy sender leaves. ("", "") on
    one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "", ""
    return ",".join(map(str, cpus[:-1])), str(cpus[-1])


def throughput_run(path: str, n: int, opts: argparse.Namespace, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    hard = REGISTER_TIMEOUT + opts.flood_seconds + 30
    peers_cpus, forwarder_cpus = split_cpus() if opts.pin else ("", "")
    sampler = CpuSampler(interval=0.25)
    with Children() as group:
        echo_port = start_echo(group, "count", folder, hard, peers_cpus)
        port, fwd_out = start_path(group, path, folder, echo_port, hard, n, sampler, forwarder_cpus)
        out = folder / "clients.json"
        command = ["--role", "clients", "--mode", "flood", "--port", str(port), "--count", str(n), "--seed", str(opts.seed)]
        command += ["--seconds", f"{opts.flood_seconds:g}", "--limit", str(opts.flood_max), "--out", str(out)]
        command += ["--cpus", peers_cpus]
        drive_clients(group, command, folder, sampler, hard, f"the flood clients of {path}")
    data, echoed = read_result(out), read_result(folder / "echo.json")
    start, end = data["flood_start"] + WARMUP, data["flood_end"]
    window = max(1e-9, end - start)
    arrived = sum(c for b, c in echoed["bins"] if start <= b * BIN < end)
    rate = arrived / window
    cpu = sampler.summary("forwarder", start + 0.25, end) if fwd_out else None  # samples wholly inside the window
    cpu_mean = cpu["mean"] if cpu else None
    row: dict[str, Any] = {
        "path": path,
        "workers": n,
        "sent": data["sent"],
        "refused_by_sockets": data["refused"],
        "window_s": round(window, 3),
        "arrived_in_window": arrived,
        "msg_s": round(rate),
        "forwarder_cpu": cpu,
        "msg_per_cpu_s": round(rate / (cpu_mean / 100.0)) if cpu_mean else None,
        "echo_heartbeats": echoed["heartbeats"],
    }
    if fwd_out is not None:
        row["forwarder"] = read_result(fwd_out)
    return row


def master_run(path: str, opts: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The real master (idle: it waits for N+1 workers) and bench/swarm.py's swarm, direct or through the proxy."""
    folder.mkdir(parents=True, exist_ok=True)
    n = opts.master_workers
    port = free_port()
    processes = max(1, math.ceil(n / SWARM_PER_PROCESS))
    connect_s = n / SWARM_CONNECT_RATE
    sampler = CpuSampler()
    log = folder / "locust-master.log"
    with Children() as group:
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--master", "--headless"]
        command += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", str(n + 1)]
        master = group.start([*command, "-u", "1", "-r", "1", "--loglevel", "INFO"], log=log)
        if not wait_listening(port, 60):
            raise RuntimeError(f"the real master did not listen on {port} within 60 s (see {log})")
        sampler.watch("master", master.pid)
        target, fwd_out = start_path(group, path, folder, port, 300, n, sampler)
        start_at = time.monotonic() + 1.0
        end_at = start_at + connect_s + 3.0 + opts.master_seconds + 1.0
        outs = [folder / f"swarm-{i}.json" for i in range(processes)]
        per = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
        swarms = []
        for i, count in enumerate(per):
            command = ["--role", "swarm", "--port", str(target), "--count", str(count), "--seed", str(opts.seed + n)]
            command += ["--index", str(i), "--start-at", f"{start_at:.6f}", "--end-at", f"{end_at:.6f}"]
            command += ["--connect-rate", f"{SWARM_CONNECT_RATE / processes:g}", "--out", str(outs[i])]
            swarms.append(group.start(script_command("swarm.py", *command), log=folder / f"swarm-{i}.log"))
        sampler.start()
        try:
            for proc in swarms:
                if not wait_exit(proc, max(1.0, end_at + 20 - time.monotonic())):
                    print(f"  warning: swarm pid {proc.pid} did not end in time", file=sys.stderr)
        finally:
            sampler.stop()
        group.close(grace=5.0)
    data = [read_result(p) for p in outs]
    acked = [t for s in data for t in s["acked_at"] if t is not None]
    ended = max(s["ended"] for s in data)
    steady_from = (max(acked) if acked else ended) + 2.0
    steady_to = min(end_at, ended) - 1.0
    steady = [s["lat"][k + 1] for s in data for k in range(0, len(s["lat"]), 2) if steady_from <= s["lat"][k] <= steady_to]
    unanswered = sum(1 for s in data for t in s["unanswered"] if t < steady_to)
    text = log.read_text(errors="replace")
    row: dict[str, Any] = {
        "path": path,
        "workers": n,
        "acked": len(acked),
        "all_acked_s": round(max(acked) - start_at, 3) if len(acked) == n else None,
        "steady_window_s": round(max(0.0, steady_to - steady_from), 1),
        "samples": len(steady),
        "p50_ms": ms(steady, 50),
        "p99_ms": ms(steady, 99),
        "max_ms": ms(steady, 100),
        "unanswered": unanswered,
        "master_missing_marks": text.count(MISSING_LINE),
        "master_cpu": sampler.summary("master", steady_from, steady_to),
        "proxy_cpu": sampler.summary("forwarder", steady_from, steady_to) if fwd_out else None,
    }
    if fwd_out is not None:
        row["forwarder"] = read_result(fwd_out)
    return row


# -- figures and targets -----------------------------------------------------------------------------------------


def added(row: dict[str, Any], direct: dict[str, Any] | None, q: str) -> float | None:
    """The latency a forwarder adds per message at percentile ``q``: half of the round trip's difference to direct."""
    if direct is None or row.get(q) is None or direct.get(q) is None:
        return None
    return round((float(row[q]) - float(direct[q])) / 2, 3)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def gc_max(row: dict[str, Any]) -> str:
    """The longest garbage-collector pause in the forwarder's process (ms), "-" without a forwarder."""
    gc = (row.get("forwarder") or {}).get("gc")
    if not gc:
        return "-"
    return fmt(max((g["max_ms"] or 0.0) for g in gc.values()), 1)


def cpu_mean(stats: dict[str, Any] | None) -> str:
    return "-" if not stats or stats.get("mean") is None else f"{stats['mean']:.0f}"


def report(latency: list[dict[str, Any]], throughput: list[dict[str, Any]], master: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Print the three tables and the targets; the checks as JSON."""
    checks: list[dict[str, Any]] = []
    if latency:
        print("\nAdded latency per message (echo peer in place of the master; added = (RT_path - RT_direct) / 2)\n")
        rows = []
        for r in latency:
            direct = next((d for d in latency if d["workers"] == r["workers"] and d["path"] == "direct"), None)
            r["added_p50_ms"] = added(r, direct, "rt_p50_ms") if r["path"] != "direct" else None
            r["added_p99_ms"] = added(r, direct, "rt_p99_ms") if r["path"] != "direct" else None
            rows.append(
                [
                    r["workers"],
                    fmt(r["rate_msg_s"], 0),
                    r["path"],
                    r["samples"],
                    f"{fmt(r['rt_p50_ms'])} / {fmt(r['rt_p99_ms'])} / {fmt(r['rt_max_ms'], 1)}",
                    f"{fmt(r['added_p50_ms'])} / {fmt(r['added_p99_ms'])}",
                    fmt(r["unanswered"]),
                    cpu_mean(r["forwarder_cpu"]),
                ]
            )
        headers = ["workers", "msg/s", "path", "samples", "round trip p50 / p99 / max (ms)", "added per message p50 / p99 (ms)"]
        print_table([*headers, "unanswered", "forwarder CPU (%)"], rows)
        at = next((r for r in latency if r["workers"] == TARGET_ADDED_AT and r["path"] == "proxy"), None)
        if at is not None:
            value = at["added_p99_ms"]
            checks.append(
                {
                    "what": f"proxy p99 added per message <= {TARGET_ADDED_P99_MS:g} ms at {TARGET_ADDED_AT} workers",
                    "value": value,
                    "met": value is not None and value <= TARGET_ADDED_P99_MS,
                }
            )
    if throughput:
        print("\nThroughput, one way (heartbeats as fast as the workers' sockets take them; the forwarder on a CPU of its own)\n")
        rows = []
        for r in throughput:
            raw = next((b for b in throughput if b["path"] == "raw" and b["workers"] == r["workers"]), None)
            r["vs_raw"] = round(r["msg_s"] / raw["msg_s"], 2) if raw and raw["msg_s"] else None
            r["cpu_vs_raw"] = (
                round(r["msg_per_cpu_s"] / raw["msg_per_cpu_s"], 2)
                if raw and raw.get("msg_per_cpu_s") and r.get("msg_per_cpu_s")
                else None
            )
            rows.append(
                [
                    r["workers"],
                    r["path"],
                    r["sent"],
                    r["arrived_in_window"],
                    r["msg_s"],
                    cpu_mean(r["forwarder_cpu"]),
                    fmt(r["msg_per_cpu_s"]),
                    fmt(r["vs_raw"], 2),
                    fmt(r["cpu_vs_raw"], 2),
                ]
            )
        headers = ["workers", "path", "sent", "arrived in window", "msg/s", "forwarder CPU (%)", "msg per CPU s", "msg/s vs raw"]
        print_table([*headers, "per CPU s vs raw"], rows)
        for proxy in (r for r in throughput if r["path"] == "proxy"):
            ratios = [x for x in (proxy["vs_raw"], proxy["cpu_vs_raw"]) if x is not None]
            value = min(ratios) if len(ratios) == 2 else None  # both: msg/s flatters an unsaturated baseline
            checks.append(
                {
                    "what": f"proxy throughput >= {TARGET_THROUGHPUT_RATIO:g}x the raw forwarder's at {proxy['workers']} "
                    "workers (the lower of msg/s and msg per CPU s)",
                    "value": value,
                    "met": value is not None and value >= TARGET_THROUGHPUT_RATIO,
                }
            )
    if master:
        print("\nThe real Locust master's heartbeat replies (bench/swarm.py's workers, 1 Hz), direct and through the proxy\n")
        direct = next((r for r in master if r["path"] == "direct"), None)
        rows = []
        for r in master:
            extra = {
                "added_p50_ms": None if r is direct or direct is None else _diff(r["p50_ms"], direct["p50_ms"]),
                "added_p99_ms": None if r is direct or direct is None else _diff(r["p99_ms"], direct["p99_ms"]),
            }
            r.update(extra)
            rows.append(
                [
                    r["path"],
                    r["workers"],
                    f"{r['acked']}/{r['workers']}",
                    r["samples"],
                    f"{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])} / {fmt(r['max_ms'], 1)}",
                    f"{fmt(extra['added_p50_ms'])} / {fmt(extra['added_p99_ms'])}",
                    r["unanswered"],
                    cpu_mean(r["master_cpu"]),
                    cpu_mean(r["proxy_cpu"]),
                    gc_max(r),
                    r["master_missing_marks"],
                ]
            )
        headers = ["path", "workers", "acked", "samples", "reply p50 / p99 / max (ms)", "later than direct p50 / p99 (ms)"]
        print_table([*headers, "unanswered", "master CPU (%)", "proxy CPU (%)", "proxy GC max (ms)", "missing marks"], rows)
        through = next((r for r in master if r["path"] == "proxy"), None)
        if through is not None and direct is not None:
            value = through["added_p99_ms"]
            checks.append(
                {
                    "what": f"real master reply p99 at {through['workers']} workers through the proxy <= direct + "
                    f"{TARGET_MASTER_P99_MS:g} ms",
                    "value": value,
                    "met": value is not None and value <= TARGET_MASTER_P99_MS,
                }
            )
    print()
    for check in checks:
        print(f"{'MET   ' if check['met'] else 'MISSED'} {check['what']} ({fmt(check['value'])})")
    return checks


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(float(a) - float(b), 3)


def machine_busy(wait: float, below: float) -> float:
    """How busy the machine is with nothing of ours running (% of all CPUs over 0.3 s); with ``wait``, sampled
    again until it is under ``below`` or ``wait`` seconds have passed (other work on the machine skews every
    figure here)."""
    deadline = time.monotonic() + wait
    busy = psutil.cpu_percent(interval=0.3)
    while busy >= below and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=0.5)
    return float(busy)


def orchestrate(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.workers.split(",") if s]
    parts = {p for p in args.parts.split(",") if p}
    if not parts <= {"latency", "throughput", "master"}:
        raise SystemExit("--parts takes latency, throughput and/or master")
    flood_sizes = [int(s) for s in args.flood_workers.split(",") if s]
    raise_nofile(4 * max([*sizes, *flood_sizes, args.master_workers]) + 1024)
    env = environment()
    latency: list[dict[str, Any]] = []
    throughput: list[dict[str, Any]] = []
    master: list[dict[str, Any]] = []
    errors: list[str] = []
    started = time.monotonic()

    def attempt(what: str, run: Callable[[], dict[str, Any]], into: list[dict[str, Any]]) -> None:
        busy = machine_busy(args.quiet_wait, args.quiet_below)
        print(f"{what} ... (machine busy {busy:.0f} % before it)", flush=True)
        t = time.monotonic()
        try:
            row = run()
        except Exception as exc:  # a run that failed says so; the others still run
            errors.append(f"{what}: {exc!r}")
            print(f"  FAILED: {exc!r}", flush=True)
            return
        row["wall_s"] = round(time.monotonic() - t, 1)
        row["machine_busy_before_pct"] = round(busy, 1)
        into.append(row)

    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        root = args.keep or Path(tmp)
        if "latency" in parts:
            for n in sizes:
                period = min(args.interval, n / args.min_rate)
                for path in PATHS:
                    run = functools.partial(latency_run, path, n, period, args, root / f"latency-{n}-{path}")
                    attempt(f"latency N={n} {path}", run, latency)
        if "throughput" in parts:
            for n in flood_sizes:
                for path in PATHS:
                    run = functools.partial(throughput_run, path, n, args, root / f"throughput-{n}-{path}")
                    attempt(f"throughput N={n} {path}", run, throughput)
        if "master" in parts:
            for path in ("direct", "proxy"):
                run = functools.partial(master_run, path, args, root / f"master-{path}")
                attempt(f"real master N={args.master_workers} {path}", run, master)
    checks = report(latency, throughput, master)
    wall = round(time.monotonic() - started, 1)
    print(f"\nwall time {wall} s")
    for error in errors:
        print(f"ERROR {error}")
    write_json(
        args.out,
        {
            "benchmark": "proxy",
            "environment": env,
            "config": {
                "workers": sizes,
                "seconds": args.seconds,
                "interval_s": args.interval,
                "min_rate": args.min_rate,
                "flood_workers": flood_sizes,
                "flood_seconds": args.flood_seconds,
                "flood_max": args.flood_max,
                "master_workers": args.master_workers,
                "master_seconds": args.master_seconds,
                "parts": sorted(parts),
                "quiet_wait_s": args.quiet_wait,
                "quiet_below_pct": args.quiet_below,
                "seed": args.seed,
            },
            "method": {
                "added_latency": "(round-trip percentile through the forwarder - the same percentile direct) / 2, "
                "heartbeat -> reply round trips timed by each simulated worker against a plain pyzmq ROUTER echo",
                "throughput": f"heartbeats arrived at a counting ROUTER from {WARMUP:g} s after the flood began to its end",
                "master": "heartbeat reply latency at bench/swarm.py's workers, steady window 2 s after the last ack",
            },
            "targets": {
                "added_p99_ms_at": {str(TARGET_ADDED_AT): TARGET_ADDED_P99_MS},
                "throughput_vs_raw": TARGET_THROUGHPUT_RATIO,
                "master_p99_later_than_direct_ms": TARGET_MASTER_P99_MS,
            },
            "checks": checks,
            "errors": errors,
            "wall_s": wall,
            "latency": latency,
            "throughput": throughput,
            "master": master,
        },
    )
    return 1 if errors or (args.strict and not all(c["met"] for c in checks)) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,100,1000", help="worker counts for the latency runs, comma-separated")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per latency run")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat period per worker (s), at most")
    parser.add_argument("--min-rate", type=float, default=200.0, help="messages/s the whole swarm sends, at least")
    parser.add_argument("--flood-workers", default="10,100", help="worker counts for the floods, comma-separated")
    parser.add_argument("--flood-seconds", type=float, default=3.0)
    parser.add_argument("--flood-max", type=int, default=2_000_000, help="messages per flood, at most")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="floods: do not give the forwarder a CPU of its own")
    parser.add_argument("--master-workers", type=int, default=1000)
    parser.add_argument("--master-seconds", type=float, default=8.0, help="steady seconds per real-master run")
    parser.add_argument("--parts", default="latency,throughput,master")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--quiet-wait", type=float, default=0.0, help="before each run, wait up to this long for the machine to be idle"
    )
    parser.add_argument("--quiet-below", type=float, default=10.0, help="idle: under this %% of all CPUs busy")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and raw results under this folder")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (e.g. bench/results-proxy.json)")
    # the child roles
    parser.add_argument("--role", choices=["echo", "forwarder", "clients"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="reply", help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["raw", "proxy"], default="raw", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--master-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--period", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--connect-rate", type=float, default=1000.0, help=argparse.SUPPRESS)
    parser.add_argument("--cpus", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "echo":
        return run_echo(args)
    if args.role == "forwarder":
        return run_forwarder(args)
    if args.role == "clients":
        return run_clients(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
