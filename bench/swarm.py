"""A swarm of simulated workers against the fake master and, in the same run, the real Locust master.

    python bench/swarm.py [--sizes 1000,4000,10000] [--steady 25] [--out bench/results-swarm.json]
    python bench/swarm.py --quick              # 500 workers, 8 s steady, both masters (under a minute)
    python bench/swarm.py --sizes 4000 --masters fake --connect-rate 0   # every worker connects at once

For each size N and each master, N simulated workers (DEALER sockets, ``--per-process`` of them per swarm
process, so ceil(N/500) processes by default) connect to the master on 127.0.0.1:

- fake: ``FakeMaster`` at Locust's real timing (``LOCUST_TIMING``: heartbeat interval 1 s, the real missing
  rule), in a subprocess of its own (``--role fakemaster``): it waits for N registrations, sends every
  worker a spawn of one user (``spawn_all``: one turn of its socket thread, as the real master dispatches),
  waits ``--steady`` + 5 s, sends quit to every worker (``broadcast``) and summarises its trace (counts,
  LIVENESS records, skipped ticks, GC pauses, CPU per thread: main, socket thread, libzmq);
- real: ``locust -f lf_idle.py --master --headless --master-bind-host 127.0.0.1 --master-bind-port P
  --expect-workers N --expect-workers-max-wait R -u N -r N -t <steady + 5>s`` (perf-anchors §2.1), its output in
  a file, on a free port in 21000-32000.

Workers connect at ``--connect-rate`` per second over the whole swarm (default 1000, perf-anchors' "ramp";
``0``: all at once, which overflows libzmq's listen backlog of 100 on either master and turns "all acked" into
a measure of the kernel's SYN retransmissions). ``--swarm-nice 10`` runs the swarm below the master's priority.

Each simulated worker has the identity ``host_<32 hex>``, sends ``["client_ready", "2.47.0", id]`` and re-sends
it every 5 s while un-acked; after the ack it sends a heartbeat on a fixed 1 Hz schedule with a random phase
and times each reply (FIFO per socket); it answers a spawn with ``spawning`` and ``spawning_complete``; it stops
on quit or at the end of the run. A swarm process waits on every socket's ``ZMQ_FD`` with ``select.epoll``,
drains only the sockets that fired (``while EVENTS & POLLIN: recv(NOBLOCK)``), reads ``EVENTS`` right after
every send (``ZMQ_FD`` is edge-like), and sweeps every socket once a second as a safety net.

Reported per run: time until all N acked (from the first connect), client_ready re-sends, heartbeat reply
latency p50/p99/max in the steady window (2 s after the last spawn arrived to 3 s before the first quit) and
over the whole run, heartbeats never answered, master CPU mean/max (psutil, utime+stime per second, % of one
core, whole run) and its steady-window mean, swarm CPU (all swarm processes), and false "missing" marks: the
fake master's LIVENESS "missing" records before its quit; for the real master its "failed to send heartbeat,
setting state to missing" log lines. Targets: all 10,000 acked, no false missing, steady reply p99 <= 10 ms at
4,000 workers. The swarm shares the 2 cores with the master under test: above a few thousand workers the
machine, not only the master, is saturated (perf-anchors §2.5); on this machine the swarm alone costs about
1.2-1.5 cores at 10,000 workers.
"""

from __future__ import annotations

import argparse
import collections
import gc
import heapq
import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

from benchkit import (
    BENCH_DIR,
    CpuSampler,
    children,
    environment,
    fmt_value,
    free_port,
    node_id,
    percentile,
    print_table,
    raise_nofile,
    script_command,
    wait_exit,
    wait_listening,
    write_json,
)

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT: dict[str, Any] = {"state": "ready", "current_cpu_usage": 1.0, "current_memory_usage": 1000000}
READY_RETRY = 5.0  # Locust's CONNECT_TIMEOUT: client_ready again while un-acked
SWEEP = 1.0
USER_CLASS = "IdleUser"
MISSING_LINE = "failed to send heartbeat, setting state to missing"
TARGET_P99_MS = 10.0
TARGET_P99_AT = 4000
LOCUSTFILE = '''"""Idle users (perf-anchors 2.1 lf_idle.py): the real master only needs the class to dispatch it."""

from locust import User, constant, task


class IdleUser(User):
    wait_time = constant(1)

    @task
    def idle(self) -> None:
        pass
'''
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
NOBLOCK = int(zmq.NOBLOCK)


# ---------------------------------------------------------------------------------------------------------
# A swarm process: up to --per-process simulated workers on one epoll
# ---------------------------------------------------------------------------------------------------------


class Swarm:
    """Simulated workers, one DEALER each, driven by epoll on their ZMQ_FDs (one thread)."""

    def __init__(self, port: int, count: int, seed: int, index: int, start_at: float, end_at: float, connect_rate: float) -> None:
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.count = count
        self.index = index
        self.start_at = start_at
        self.end_at = end_at
        self.connect_rate = connect_rate
        self.rng = random.Random(f"swarm:{seed}:{index}")
        self.ids = [node_id(self.rng) for _ in range(count)]
        # Packed once: what each worker sends every second, and the master's reply it expects (compared as bytes;
        # anything else is decoded).
        self.beats = {
            state: [msgpack.packb(["heartbeat", {**HEARTBEAT, "state": state}, nid]) for nid in self.ids]
            for state in ("ready", "running")
        }
        self.replies = [msgpack.packb(["heartbeat", None, nid]) for nid in self.ids]
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        self.ctx.setsockopt(zmq.LINGER, 0)
        self.ctx.set(zmq.MAX_SOCKETS, max(1024, count + 64))
        self.socks: list[zmq.Socket[bytes] | None] = [None] * count
        self.fds: dict[int, int] = {}
        self.epoll = select.epoll()
        self.connected = 0
        self.connect_at: list[float | None] = [None] * count
        self.acked_at: list[float | None] = [None] * count
        self.spawn_at: list[float | None] = [None] * count
        self.quit_at: list[float | None] = [None] * count
        self.ready_sends = [0] * count
        self.state = ["ready"] * count
        self.pending: list[collections.deque[float]] = [collections.deque() for _ in range(count)]
        self.timers: list[tuple[float, int, int]] = []  # (due, kind, worker): kind 0 heartbeat, 1 client_ready retry
        self.lat: list[float] = []  # flat [t_send, latency, ...]
        self.lateness_max = 0.0
        self.heartbeats_sent = 0
        self.unmatched = 0
        self.send_refused = 0
        self.spawns = 0
        self.other: collections.Counter[str] = collections.Counter()
        self.live = 0
        self.stop = False
        self.first_connect: float | None = None

    # -- sending -------------------------------------------------------------------------------------

    def _send(self, i: int, payload: list[Any] | bytes) -> bool:
        sock = self.socks[i]
        if sock is None:
            return False
        try:
            sock.send(payload if isinstance(payload, bytes) else msgpack.packb(payload), NOBLOCK)
        except zmq.Again:
            self.send_refused += 1
            return False
        return True

    def connect(self, i: int, now: float) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.ids[i].encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self.socks[i] = sock
        fd = sock.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        self.fds[fd] = i
        self.epoll.register(fd, select.EPOLLIN)
        self.connect_at[i] = now
        self.first_connect = self.first_connect if self.first_connect is not None else now
        self.live += 1
        self.send_ready(i, now)

    def send_ready(self, i: int, now: float) -> None:
        if self._send(i, ["client_ready", "2.47.0", self.ids[i]]):
            self.ready_sends[i] += 1
        heapq.heappush(self.timers, (now + READY_RETRY, 1, i))
        self.drain(i)

    def heartbeat(self, i: int, due: float) -> None:
        now = time.monotonic()
        if now - due > self.lateness_max:
            self.lateness_max = now - due
        if self._send(i, self.beats[self.state[i]][i]):
            self.pending[i].append(now)
            self.heartbeats_sent += 1
        nxt = due + HEARTBEAT_INTERVAL
        heapq.heappush(self.timers, (nxt if nxt > now else now, 0, i))  # fixed schedule; late: no burst
        self.drain(i)

    # -- receiving -----------------------------------------------------------------------------------

    def drain(self, i: int) -> None:
        while True:
            sock = self.socks[i]
            if sock is None or not sock.getsockopt(EVENTS) & POLLIN:  # type: ignore[operator]
                return
            frame = sock.recv(NOBLOCK)
            self.handle(i, frame)

    def _reply(self, i: int, now: float) -> None:
        """A heartbeat reply for socket ``i``: its latency against the oldest unanswered heartbeat (FIFO)."""
        queue = self.pending[i]
        if queue:
            sent = queue.popleft()
            self.lat.append(round(sent, 6))
            self.lat.append(round(now - sent, 7))
        else:
            self.unmatched += 1

    def handle(self, i: int, frame: bytes) -> None:
        now = time.monotonic()
        if frame == self.replies[i]:  # a heartbeat reply, the common case, without decoding it
            self._reply(i, now)
            return
        try:
            message_type, data, _ = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        except Exception:
            self.other["<undecodable>"] += 1
            return
        if message_type == "heartbeat":
            self._reply(i, now)
        elif message_type == "ack":
            if self.acked_at[i] is None:
                self.acked_at[i] = now
                heapq.heappush(self.timers, (now + self.rng.random() * HEARTBEAT_INTERVAL, 0, i))
        elif message_type == "spawn":
            counts = dict(data.get("user_classes_count") or {}) if isinstance(data, dict) else {}
            self._send(i, ["spawning", None, self.ids[i]])
            self._send(i, ["spawning_complete", {"user_classes_count": counts, "user_count": sum(counts.values())}, self.ids[i]])
            self.state[i] = "running"
            self.spawns += 1
            if self.spawn_at[i] is None:
                self.spawn_at[i] = now
        elif message_type == "quit":
            if self.quit_at[i] is None:
                self.quit_at[i] = now
            self.close(i)
        else:
            self.other[str(message_type)] += 1

    def close(self, i: int) -> None:
        sock = self.socks[i]
        if sock is None:
            return
        fd = sock.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        self.epoll.unregister(fd)
        self.fds.pop(fd, None)
        sock.close(linger=0)
        self.socks[i] = None
        self.live -= 1

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        while time.monotonic() < self.start_at and not self.stop:
            time.sleep(min(0.05, max(0.0, self.start_at - time.monotonic())))
        next_sweep = time.monotonic() + SWEEP
        while not self.stop:
            now = time.monotonic()
            if now >= self.end_at or (self.connected == self.count and self.live == 0):
                break
            if self.connected < self.count:
                allowed = self.count if self.connect_rate <= 0 else int((now - self.start_at) * self.connect_rate) + 1
                while self.connected < min(allowed, self.count):
                    self.connect(self.connected, time.monotonic())
                    self.connected += 1
            wake = min(self.end_at, next_sweep)
            if self.timers:
                wake = min(wake, self.timers[0][0])
            if self.connected < self.count:
                wake = min(wake, now + 0.01)
            for fd, _ in self.epoll.poll(max(0.0, wake - time.monotonic()), 4096):
                i = self.fds.get(fd)
                if i is not None:
                    self.drain(i)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                due, kind, i = heapq.heappop(self.timers)
                if self.socks[i] is None:
                    continue
                if kind == 0:
                    self.heartbeat(i, due)
                elif self.acked_at[i] is None:
                    self.send_ready(i, time.monotonic())
            if now >= next_sweep:
                for i in range(self.connected):
                    self.drain(i)
                next_sweep = now + SWEEP

    def shutdown(self) -> None:
        for i in range(self.count):
            self.close(i)
        self.epoll.close()
        self.ctx.term()

    def result(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "count": self.count,
            "first_connect": self.first_connect,
            "connect_at": self.connect_at,
            "acked_at": self.acked_at,
            "spawn_at": self.spawn_at,
            "quit_at": self.quit_at,
            "ready_sends": sum(self.ready_sends),
            "resends": sum(max(0, n - 1) for n in self.ready_sends),
            "heartbeats_sent": self.heartbeats_sent,
            "lat": self.lat,
            "unanswered": [t for q in self.pending for t in q],
            "unmatched_replies": self.unmatched,
            "send_refused": self.send_refused,
            "spawns": self.spawns,
            "other": dict(self.other),
            "lateness_max": round(self.lateness_max, 6),
            "ended": time.monotonic(),
        }


def run_swarm(args: argparse.Namespace) -> int:
    if args.nice:
        os.nice(args.nice)  # before libzmq starts its threads, which inherit it
    raise_nofile(4 * args.count + 256)
    swarm = Swarm(args.port, args.count, args.seed, args.index, args.start_at, args.end_at, args.connect_rate)

    def on_term(signum: int, frame: object) -> None:
        swarm.stop = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        swarm.run()
    finally:
        result = swarm.result()
        swarm.shutdown()
        Path(args.out).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------------------
# The fake master, in a process of its own
# ---------------------------------------------------------------------------------------------------------


class _GcPauses:
    """Durations of the garbage collector's runs in this process, per generation (a master's pauses)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    @property
    def installed(self) -> bool:
        return self._callback in gc.callbacks

    def install(self) -> _GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.pauses[int(info["generation"])].append(time.perf_counter() - self.started)
            self.started = None

    def summary(self) -> dict[str, Any]:
        return {
            f"gen{g}": {"runs": len(v), "total_s": round(sum(v), 3), "max_ms": round(1000 * max(v), 1) if v else None}
            for g, v in self.pauses.items()
        }


class _Progress:
    """One line a second on stdout (the role's log): trace length and registered workers, for post-mortems."""

    def __init__(self, master: Any, started: float) -> None:
        self.master = master
        self.started = started
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def start(self) -> _Progress:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self.done.wait(1.0):
            cpu = psutil.Process().cpu_times()
            print(
                f"t={time.monotonic() - self.started:6.1f} records={len(self.master.trace)} "
                f"workers={len(self.master.core.workers)} cpu={cpu.user + cpu.system:.1f}",
                flush=True,
            )


def run_fake_master(args: argparse.Namespace) -> int:
    """Register N workers, spawn them, wait out the run, quit them, summarise the trace (even if overloaded)."""
    from fakemaster import FakeMaster
    from harness.errors import TransportError
    from harness.protocol.timing import LOCUST_TIMING
    from harness.trace import Kind

    raise_nofile(2 * args.n + 1024)
    summary: dict[str, Any] = {"n": args.n}
    pauses = _GcPauses().install()
    phases: dict[str, dict[str, float]] = {}
    with FakeMaster(timing=LOCUST_TIMING) as master:
        owner_tid = master._owner._thread.native_id  # the socket thread, for the CPU split below

        def phase(name: str) -> None:
            """CPU seconds so far per thread: main, the socket thread, libzmq's threads."""
            split = {"main": 0.0, "socket thread": 0.0, "other": 0.0}
            for thread in psutil.Process().threads():
                key = "main" if thread.id == os.getpid() else "socket thread" if thread.id == owner_tid else "other"
                split[key] += thread.user_time + thread.system_time
            phases[name] = {k: round(v, 2) for k, v in split.items()}

        Path(args.port_file).write_text(str(master.port))
        started = time.monotonic()
        registered: list[str] = []
        progress = _Progress(master, started).start()
        quit_clock: float | None = None
        try:
            while time.monotonic() < started + args.register_timeout:
                try:
                    registered = master.worker_ids()
                except TransportError:  # the socket thread is too busy to answer within 5 s: ask again
                    continue
                if len(registered) >= args.n:
                    break
                time.sleep(0.2)
            phase("registered")
            summary["registered"] = len(registered)
            summary["registered_after"] = round(time.monotonic() - started, 3)
            spawn_started = time.monotonic()
            summary["spawn_sent"] = master.spawn_all({USER_CLASS: 1}, to=registered)  # one turn, as the real master
            summary["spawn_send_s"] = round(time.monotonic() - spawn_started, 3)
            phase("spawned")
            time.sleep(max(0.0, spawn_started + args.steady + 5 - time.monotonic()))  # like the real master's -t
            pauses.stop()  # the run's pauses, not those of summarising the trace below
            phase("before quit")
            quit_clock = master.clock.now()
            quit_started = time.monotonic()
            summary["quit_sent"] = master.broadcast("quit")
            summary["quit_send_s"] = round(time.monotonic() - quit_started, 3)
            time.sleep(0.5)
        except TransportError as exc:  # an overloaded socket thread: say so, and summarise what was recorded
            summary["error"] = str(exc)
        finally:
            progress.stop()
            if pauses.installed:
                pauses.stop()
        summary["skipped_ticks"] = master.core.skipped_ticks
        summary["thread_cpu_s"] = phases
        records = master.trace.records()
        if quit_clock is None:
            quit_clock = master.clock.now()
    summary["gc"] = pauses.summary()
    liveness = [r for r in records if r.kind is Kind.LIVENESS]
    counts: collections.Counter[str] = collections.Counter(f"{r.kind.value}:{r.type}" for r in records if r.message is not None)
    summary.update(
        {
            "records": len(records),
            "counts": dict(counts),
            "send_failed": sum(1 for r in records if r.kind is Kind.SEND_FAILED),
            "violations": sum(len(r.violations) for r in records if r.kind is Kind.RECV),
            "liveness": collections.Counter(r.note for r in liveness),
            "missing_before_quit": sum(1 for r in liveness if r.note == "missing" and r.t < quit_clock),
            "fell_behind_notes": sum(1 for r in records if r.kind is Kind.NOTE and "fell behind" in r.note),
        }
    )
    Path(args.summary).write_text(json.dumps(summary, default=str))
    return 0


# ---------------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------------


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited ({proc.returncode}) before writing {path}")
        time.sleep(0.05)
    raise RuntimeError(f"{path} not written within {timeout:g} s")


def run_one(kind: str, n: int, opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One master, one swarm of n workers; returns the analysed figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    run_time = int(round(opts.steady + 5))
    hard_limit = opts.register_timeout + run_time + 60  # nothing outlives this (+ a minute for an overloaded master)
    sampler = CpuSampler()
    with children() as group:
        if kind == "fake":
            port_file, summary_file = workdir / "port", workdir / "fakemaster.json"
            master = group.start(
                script_command(
                    "swarm.py",
                    "--role",
                    "fakemaster",
                    "--n",
                    str(n),
                    "--steady",
                    f"{opts.steady:g}",
                    "--register-timeout",
                    f"{opts.register_timeout:g}",
                    "--port-file",
                    str(port_file),
                    "--summary",
                    str(summary_file),
                ),
                log=workdir / "fakemaster.log",
            )
            port = int(_wait_file(port_file, master, 30))
        else:
            port = free_port()
            lf = workdir / "lf_idle.py"
            lf.write_text(LOCUSTFILE)
            master = group.start(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(lf),
                    "--master",
                    "--headless",
                    "--master-bind-host",
                    "127.0.0.1",
                    "--master-bind-port",
                    str(port),
                    "--expect-workers",
                    str(n),
                    "--expect-workers-max-wait",
                    f"{opts.register_timeout:g}",
                    "-u",
                    str(n),
                    "-r",
                    str(n),
                    "-t",
                    f"{run_time}s",
                ],
                log=workdir / "locust-master.log",
            )
            if not wait_listening(port, 60):
                raise RuntimeError(f"the real master did not listen on {port} within 60 s (see {workdir})")
        master_started = time.monotonic()
        sampler.watch("master", master.pid)
        processes = math.ceil(n / opts.per_process)
        start_at = time.monotonic() + 1.0  # every swarm process connects from the same moment
        end_at = start_at + hard_limit
        per = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
        outs = [workdir / f"swarm-{i}.json" for i in range(processes)]
        swarms: list[subprocess.Popen[bytes]] = []
        for i, count in enumerate(per):
            swarms.append(
                group.start(
                    script_command(
                        "swarm.py",
                        "--role",
                        "swarm",
                        "--port",
                        str(port),
                        "--count",
                        str(count),
                        "--seed",
                        str(opts.seed + n),
                        "--index",
                        str(i),
                        "--start-at",
                        f"{start_at:.6f}",
                        "--end-at",
                        f"{end_at:.6f}",
                        "--connect-rate",
                        f"{opts.connect_rate / processes:g}",
                        "--out",
                        str(outs[i]),
                        "--nice",
                        str(opts.swarm_nice),
                    ),
                    log=workdir / f"swarm-{i}.log",
                )
            )
            sampler.watch("swarm", swarms[-1].pid)
        sampler.start()
        try:
            if not wait_exit(master, max(1.0, end_at + 15 - time.monotonic())):
                print(f"  warning: the {kind} master did not end in time; killing it", file=sys.stderr)
            master_ended = time.monotonic()
            _stop_swarms(swarms, grace=3.0)
        finally:
            sampler.stop()
        group.close()  # reaps the master too (its exit code is read below)
    swarm_data = [json.loads(p.read_text()) for p in outs if p.exists()]
    if len(swarm_data) != len(outs):
        raise RuntimeError(f"{len(outs) - len(swarm_data)} swarm process(es) wrote no result (see {workdir})")
    result = analyse(kind, n, swarm_data, sampler, master_started, master_ended)
    result["swarm_processes"] = processes
    if kind == "fake":
        summary = json.loads((workdir / "fakemaster.json").read_text()) if (workdir / "fakemaster.json").exists() else {}
        result["master_summary"] = summary
        result["false_missing"] = summary.get("missing_before_quit")
    else:
        log = (workdir / "locust-master.log").read_text(errors="replace")
        result["false_missing"] = log.count(MISSING_LINE)
        result["master_summary"] = {
            "gave_up_waiting": "Gave up waiting for workers" in log,
            "all_users_spawned": "All users spawned" in log,
            "exit_code": master.returncode,
            "log": str(workdir / "locust-master.log"),
        }
    return result


def _stop_swarms(swarms: list[subprocess.Popen[bytes]], grace: float) -> None:
    """Give the swarm processes ``grace`` s to end on their own, then SIGTERM (they write their results first).

    Nothing is reaped here (``Children.close`` does it), so every group signalled still has its leader.
    """
    deadline = time.monotonic() + grace
    ended = [wait_exit(proc, max(0.0, deadline - time.monotonic())) for proc in swarms]
    for proc, done in zip(swarms, ended, strict=True):
        if not done:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in swarms:
        wait_exit(proc, max(0.0, deadline - time.monotonic()))  # then killed and reaped by the group


def analyse(
    kind: str, n: int, swarms: list[dict[str, Any]], sampler: CpuSampler, master_started: float, master_ended: float
) -> dict[str, Any]:
    first = min((s["first_connect"] for s in swarms if s["first_connect"] is not None), default=None)
    acked = [t for s in swarms for t in s["acked_at"] if t is not None]
    spawns = [t for s in swarms for t in s["spawn_at"] if t is not None]
    quits = [t for s in swarms for t in s["quit_at"] if t is not None]
    ended = max(s["ended"] for s in swarms)
    steady_start = (max(spawns) if spawns else max(acked, default=ended)) + 2.0
    steady_end = (min(quits) if quits else ended) - 3.0
    steady: list[float] = []
    whole: list[float] = []
    for s in swarms:
        lat = s["lat"]
        for k in range(0, len(lat), 2):
            whole.append(lat[k + 1])
            if steady_start <= lat[k] <= steady_end:
                steady.append(lat[k + 1])
    cutoff = (min(quits) if quits else ended) - 1.0  # sent a second or more before the first quit, never answered
    unanswered = sum(1 for s in swarms for t in s["unanswered"] if t < cutoff)

    def ms(values: list[float], q: float) -> float | None:
        p = percentile(values, q)
        return None if p is None else round(1000 * p, 3)

    return {
        "master": kind,
        "n": n,
        "acked": len(acked),
        "all_acked": len(acked) == n,
        "all_acked_s": round(max(acked) - first, 3) if acked and first is not None and len(acked) == n else None,
        "client_ready_resends": sum(s["resends"] for s in swarms),
        "spawned": len(spawns),
        "spawn_spread_s": round(max(spawns) - min(spawns), 3) if spawns else None,
        "quit_received": len(quits),
        "steady_window_s": round(max(0.0, steady_end - steady_start), 1),
        "steady_samples": len(steady),
        "p50_ms": ms(steady, 50),
        "p99_ms": ms(steady, 99),
        "max_ms": ms(steady, 100),
        "whole_p99_ms": ms(whole, 99),
        "whole_max_ms": ms(whole, 100),
        "heartbeats_sent": sum(s["heartbeats_sent"] for s in swarms),
        "unanswered": unanswered,
        "unmatched_replies": sum(s["unmatched_replies"] for s in swarms),
        "swarm_send_refused": sum(s["send_refused"] for s in swarms),
        "swarm_lateness_max_s": max(s["lateness_max"] for s in swarms),
        "other_messages": dict(sum((collections.Counter(s["other"]) for s in swarms), collections.Counter())),
        "master_cpu_series": [[round(t - (first or 0.0), 1), round(v, 1)] for t, v in sampler.samples.get("master", [])],
        "swarm_cpu_series": [[round(t - (first or 0.0), 1), round(v, 1)] for t, v in sampler.samples.get("swarm", [])],
        "master_cpu": sampler.summary("master", master_started, master_ended),
        "master_cpu_steady": sampler.summary("master", steady_start, steady_end),
        "swarm_cpu": sampler.summary("swarm", master_started, master_ended),
        "swarm_cpu_steady": sampler.summary("swarm", steady_start, steady_end),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,4000,10000", help="swarm sizes, comma-separated")
    parser.add_argument("--masters", default="fake,real", help="fake, real or both (comma-separated)")
    parser.add_argument(
        "--steady", type=float, default=25.0, help="seconds of steady state (the run is this + 5 s after the spawn)"
    )
    parser.add_argument("--register-timeout", type=float, default=60.0, help="seconds to wait for all N registrations")
    parser.add_argument("--per-process", type=int, default=500, help="simulated workers per swarm process")
    parser.add_argument(
        "--connect-rate",
        type=float,
        default=1000.0,
        help="connects per second over the whole swarm (default 1000, perf-anchors' ramp; 0: all at once)",
    )
    parser.add_argument(
        "--swarm-nice",
        type=int,
        default=0,
        help="niceness of the swarm processes (default 0, as perf-anchors; 10 lets the master under test run first)",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="500 workers, 8 s steady")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and raw swarm data under this folder")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON output (default bench/results-swarm.json, none with --quick)"
    )
    parser.add_argument("--role", choices=["swarm", "fakemaster"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--end-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--summary", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "swarm":
        return run_swarm(args)
    if args.role == "fakemaster":
        return run_fake_master(args)
    if args.quick:
        args.sizes, args.steady = "500", 8.0
    out = args.out if args.out is not None else (None if args.quick else BENCH_DIR / "results-swarm.json")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    masters = [m for m in args.masters.split(",") if m]
    if not set(masters) <= {"fake", "real"}:
        parser.error("--masters takes fake and/or real")
    raise_nofile(max(sizes) * 2 + 1024)
    env = environment()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-swarm-") as tmp:
        root = args.keep or Path(tmp)
        for n in sizes:
            for kind in masters:
                print(f"N={n:>6} {kind} master ...", flush=True)
                started = time.monotonic()
                result = run_one(kind, n, args, root / f"{kind}-{n}")
                result["wall_s"] = round(time.monotonic() - started, 1)
                results.append(result)
                print(
                    f"  acked {result['acked']}/{n} in {fmt_value(result['all_acked_s'], 2)} s, re-sends "
                    f"{result['client_ready_resends']}, steady p50/p99 "
                    f"{fmt_value(result['p50_ms'], 2)}/{fmt_value(result['p99_ms'], 2)} ms,"
                    f" master CPU {fmt_value(result['master_cpu']['mean'])}/{fmt_value(result['master_cpu']['max'])} %, "
                    f"false missing {result['false_missing']}",
                    flush=True,
                )
    table = [
        [
            r["master"],
            r["n"],
            f"{r['acked']}/{r['n']}",
            fmt_value(r["all_acked_s"], 2),
            r["client_ready_resends"],
            f"{fmt_value(r['p50_ms'], 2)} / {fmt_value(r['p99_ms'], 2)} / {fmt_value(r['max_ms'], 1)}",
            f"{fmt_value(r['whole_p99_ms'], 1)} / {fmt_value(r['whole_max_ms'], 0)}",
            r["unanswered"],
            f"{fmt_value(r['master_cpu']['mean'])} / {fmt_value(r['master_cpu']['max'])}",
            fmt_value(r["master_cpu_steady"]["mean"]),
            fmt_value(r["swarm_cpu"]["mean"]),
            r["false_missing"],
        ]
        for r in results
    ]
    print()
    print_table(
        [
            "master",
            "N",
            "acked",
            "all acked (s)",
            "client_ready re-sends",
            "steady reply p50 / p99 / max (ms)",
            "whole-run p99 / max (ms)",
            "unanswered",
            "master CPU mean / max (%)",
            "master CPU steady (%)",
            "swarm CPU (%)",
            "false missing",
        ],
        table,
    )
    checks = []
    for r in results:
        if r["master"] != "fake":
            continue
        checks.append((f"fake N={r['n']}: all acked", r["all_acked"]))
        checks.append((f"fake N={r['n']}: no false missing", r["false_missing"] == 0))
        if r["n"] == TARGET_P99_AT:
            checks.append((f"fake N={r['n']}: steady p99 <= {TARGET_P99_MS:g} ms", (r["p99_ms"] or 1e9) <= TARGET_P99_MS))
    print()
    for what, ok in checks:
        print(f"{'MET   ' if ok else 'MISSED'} {what}")
    write_json(
        out,
        {
            "benchmark": "swarm",
            "environment": env,
            "config": {
                "sizes": sizes,
                "masters": masters,
                "steady_s": args.steady,
                "register_timeout_s": args.register_timeout,
                "per_process": args.per_process,
                "swarm_nice": args.swarm_nice,
                "connect_rate": args.connect_rate,
                "heartbeat_interval_s": HEARTBEAT_INTERVAL,
            },
            "targets": {"all_acked": True, "false_missing": 0, "p99_ms_at": {str(TARGET_P99_AT): TARGET_P99_MS}},
            "checks": [{"what": w, "met": ok} for w, ok in checks],
            "runs": results,
        },
    )
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
