"""A flood from the master, then silence, then ``quit``: does the reference worker shrug it off?

    python bench/flood_drain.py [--out bench/results-flood-drain.json]
    python bench/flood_drain.py --quick        # shorter phases (a smoke run, about 40 s)

The master here is a raw pyzmq ROUTER in this process (``ROUTER_MANDATORY``, so every message the worker's pipe
accepted is counted and every refusal too; Locust's ROUTER would drop the refused ones silently). Two measurements:

1. **Drain rate.** A saturating flood of unknown-type messages ``["noise", None, id]`` for ``--drain-seconds``
   (sent as fast as the pipe takes them), then ``quit``: the peer's throughput is the messages it took divided by
   the time from the flood's start to its ``quit`` reply. One Python sender cannot outrun a raw receiver, so that
   figure is the sender's as much as the peer's; the capacity compared is messages per CPU second of the peer's
   process (its user + system time over the flood, its libzmq I/O thread included, both peers on the same CPU).
   Baseline, same run, same flood: a raw pyzmq DEALER child that does nothing but ``recv`` + ``msgpack.unpackb``
   (the least any worker must do per message) and answers ``quit``. Target: the reference worker >= 0.5 x the
   baseline.
2. **Flood, silence, quit** (the report that found the defect). The reference worker at Locust's own timing
   (heartbeat interval 1 s), idle ``--idle`` s, a flood offered at ``--rate`` msg/s for ``--flood-seconds``
   (unknown-type ``noise``, then in a second row valid master heartbeats), ``--silence`` s with nothing sent,
   then ``quit``. Targets: the worker sends its final stats and ``quit`` and exits within 2 s of our quit, no
   heartbeat gap over 1.1 s in the whole run, fewer than 100 lines in its log; for the noise flood the counts its
   log reports add up to exactly what its pipe accepted (nothing ignored goes unrecorded).

The worker runs pinned to one CPU and this process to the other (``--no-pin`` to share), as in
bench/heartbeat_under_load.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq
from benchkit import child, gaps, load_average, pack, raw_router

BATCH = 1000  # messages per paced burst (and between two looks at what the peer sent)
NOISE = "noise"
RAW_RECEIVER = "raw-receiver"


@dataclass
class Peer:
    """What the flooding master saw of one peer: its identity, its messages with their arrival times."""

    identity: bytes = b""
    received: list[tuple[float, str]] = field(default_factory=list)

    def times(self, message_type: str) -> list[float]:
        return [t for t, kind in self.received if kind == message_type]

    def first(self, message_type: str) -> float | None:
        return next((t for t, kind in self.received if kind == message_type), None)


class FloodMaster:
    """A ROUTER on 127.0.0.1 that acks one peer, floods it and records what it sends back."""

    def __init__(self) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock, self.port = raw_router(self.context)
        self.peer = Peer()
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def close(self) -> None:
        self.sock.close(0)
        self.context.term()

    def take(self) -> None:
        """Record every message waiting; ack a ``client_ready``."""
        while True:
            try:
                identity, frame = self.sock.recv_multipart(zmq.NOBLOCK)[:2]
            except zmq.Again:
                return
            except ValueError:
                continue
            now = time.monotonic()
            try:
                kind = str(msgpack.unpackb(frame, raw=False, strict_map_key=False)[0])
            except Exception:  # noqa: BLE001 - a bad frame is recorded as such, never fatal here
                kind = "?"
            self.peer.identity = identity
            self.peer.received.append((now, kind))
            if kind == "client_ready":
                self.send("ack", {"index": 0})

    def wait(self, seconds: float, until: str | None = None) -> bool:
        """Record for ``seconds`` (or until the peer sent ``until``); True if ``until`` came."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if until is not None and self.peer.first(until) is not None:
                return True
            if self.poller.poll(int(min(left, 0.05) * 1000) + 1):
                self.take()
        return until is not None and self.peer.first(until) is not None

    def send(self, message_type: str, data: Any = None) -> bool:
        try:
            self.sock.send_multipart([self.peer.identity, pack(message_type, data, self.peer.identity.decode())], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def flood(self, frame: bytes, seconds: float, rate: float | None) -> tuple[int, int]:
        """Offer ``frame`` for ``seconds``: at ``rate`` msg/s in bursts, or (None) as fast as the pipe takes it.

        Returns (accepted, refused). Paced: a message refused at the high-water mark is counted and dropped, with
        the rest of its burst, as Locust's ROUTER would drop them. Saturating: a full pipe is waited on (up to
        10 ms at a time), nothing is dropped.
        """
        sock, identity = self.sock, self.peer.identity
        send, more, nowait = sock.send, zmq.SNDMORE | zmq.NOBLOCK, zmq.NOBLOCK  # (send_multipart costs 3x two sends)
        accepted = refused = 0
        start = time.monotonic()
        end = start + seconds
        sent_due = 0
        while (now := time.monotonic()) < end:
            if rate is not None:
                due = min(int((now - start) * rate), int(seconds * rate))
                burst = min(BATCH, due - sent_due)
                if burst <= 0:
                    time.sleep(min(BATCH / rate / 4, end - now))
                    self.take()
                    continue
                sent_due += burst
            else:
                burst = BATCH
            for sent in range(burst):
                try:
                    send(identity, more)  # (a full pipe refuses the first part: nothing half-sent)
                    send(frame, nowait)
                    accepted += 1
                except zmq.Again:
                    if rate is not None:  # the rest of the burst is dropped too (raising per refusal halves the rate)
                        refused += burst - sent
                        break
                    sock.poll(10, zmq.POLLOUT)
            self.take()
        return accepted, refused


def _pin(worker_cpu: int | None, argv: list[str]) -> list[str]:
    return argv if worker_cpu is None else ["taskset", "-c", str(worker_cpu), *argv]


def _worker_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "worker", "--master-host", "127.0.0.1", "--master-port", str(port), "--heartbeat-interval", "1"]


def _wait_exit(process: Any, seconds: float) -> float | None:
    """When the process exited (monotonic), polled every 5 ms; None if it is still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return time.monotonic()
        time.sleep(0.005)
    return None


def drain_rate(kind: str, seconds: float, worker_cpu: int | None, workdir: Path) -> dict[str, Any]:
    """One saturating flood of unknown-type messages into ``kind`` (the reference worker or the raw receiver)."""
    master = FloodMaster()
    log = workdir / f"drain-{kind}.log"
    argv = _worker_argv(master.port) if kind == "reference" else [sys.executable, __file__, RAW_RECEIVER, str(master.port)]
    try:
        with child(_pin(worker_cpu, argv), log) as process:
            if not master.wait(20.0, until="client_ready"):
                raise SystemExit(f"{kind}: no client_ready within 20 s (see {log})")
            master.wait(1.0)
            frame = pack(NOISE, None, master.peer.identity.decode())
            usage = psutil.Process(process.pid)
            cpu_before = sum(usage.cpu_times()[:2])
            start = time.monotonic()
            accepted, _ = master.flood(frame, seconds, rate=None)
            master.send("quit")
            got_quit = master.wait(60.0, until="quit")
            quit_at = master.peer.first("quit")
            cpu = sum(usage.cpu_times()[:2]) - cpu_before
            _wait_exit(process, 5.0)
    finally:
        master.close()
    elapsed = (quit_at - start) if got_quit and quit_at is not None else None
    return {
        "peer": kind,
        "accepted": accepted,
        "seconds_to_quit": None if elapsed is None else round(elapsed, 3),
        "rate": None if elapsed is None else round(accepted / elapsed),
        "cpu_seconds": round(cpu, 3),
        "per_cpu_second": round(accepted / cpu) if cpu > 0 else None,
    }


IGNORED = re.compile(r"Ignored ([\d,]+) more messages of unknown type 'noise'")


def flood_then_quit(frame_type: str, args: argparse.Namespace, worker_cpu: int | None, workdir: Path) -> dict[str, Any]:
    """The reference worker: idle, a paced flood of ``frame_type``, silence, quit; what it did and when."""
    master = FloodMaster()
    log = workdir / f"flood-{frame_type}.log"
    try:
        with child(_pin(worker_cpu, _worker_argv(master.port)), log) as process:
            if not master.wait(20.0, until="client_ready"):
                raise SystemExit(f"no client_ready within 20 s (see {log})")
            master.wait(args.idle)
            frame = pack(frame_type, None, master.peer.identity.decode())
            flood_start = time.monotonic()
            accepted, refused = master.flood(frame, args.flood_seconds, rate=args.rate)
            flood_end = time.monotonic()
            master.wait(args.silence)
            quit_at = time.monotonic()
            master.send("quit")
            master.wait(10.0, until="quit")
            exited = _wait_exit(process, 10.0)
            master.wait(0.2)
    finally:
        master.close()
    peer = master.peer
    beats = peer.times("heartbeat")
    during = [t for t in beats if t >= flood_start - 1.5]
    final_stats = [t for t in peer.times("stats") if t >= quit_at]
    quit_reply = peer.first("quit")
    lines = log.read_text(errors="replace").splitlines()
    counted = None
    if frame_type == NOISE:
        counted = sum(int(m.group(1).replace(",", "")) for m in map(IGNORED.search, lines) if m) + sum(
            1 for line in lines if f"Unknown message type received: {NOISE}" in line
        )
    return {
        "flood": frame_type,
        "offered_rate": args.rate,
        "flood_seconds": round(flood_end - flood_start, 3),
        "accepted": accepted,
        "refused": refused,
        "accepted_rate": round(accepted / (flood_end - flood_start)),
        "counted_by_worker": counted,
        "max_heartbeat_gap": round(max(gaps([*during, quit_reply or time.monotonic()]), default=float("nan")), 3),
        "heartbeats_over_1.1s": sum(1 for g in gaps(during) if g > 1.1),
        "final_stats": bool(final_stats),
        "quit_reply_after_quit": None if quit_reply is None else round(quit_reply - quit_at, 3),
        "exit_after_quit": None if exited is None else round(exited - quit_at, 3),
        "log_lines": len(lines),
    }


def raw_receiver(port: int) -> int:
    """The baseline peer: recv + msgpack decode and nothing else, until ``quit`` (answered with ``quit``)."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.DEALER)
    identity = f"raw_{os.getpid()}"
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send(pack("client_ready", -1, identity))
    unpackb, recv = msgpack.unpackb, sock.recv
    count = 0
    while True:
        message = unpackb(recv(), raw=False, strict_map_key=False)
        count += 1
        if message[0] == "quit":
            sock.send(pack("quit", None, identity))
            break
    sock.close(linger=1000)
    context.term()
    print(f"received {count}")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == RAW_RECEIVER:
        return raw_receiver(int(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="shorter phases: a smoke run")
    parser.add_argument("--drain-seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=200_000.0, help="offered flood rate, msg/s")
    parser.add_argument("--idle", type=float, default=2.0)
    parser.add_argument("--flood-seconds", type=float, default=6.0)
    parser.add_argument("--silence", type=float, default=6.0)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.quick:
        args.drain_seconds, args.idle, args.flood_seconds, args.silence = 1.5, 1.0, 3.0, 2.0
    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin and len(cpus) >= 2
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    worker_cpu = cpus[1] if pinned else None
    with tempfile.TemporaryDirectory(prefix="lc-flood-") as tmp:
        workdir = Path(tmp)
        drains = [drain_rate(kind, args.drain_seconds, worker_cpu, workdir) for kind in ("raw", "reference")]
        floods = [flood_then_quit(kind, args, worker_cpu, workdir) for kind in (NOISE, "heartbeat")]
    raw, ref = drains
    ratio = (ref["per_cpu_second"] / raw["per_cpu_second"]) if raw["per_cpu_second"] and ref["per_cpu_second"] else None
    print(f"pinned: worker CPU {worker_cpu}, this process CPU {cpus[0] if pinned else 'any'}")
    print("\n1. Drain rate (saturating unknown-type flood, then quit)")
    print(f"{'peer':<12}{'accepted':>10}{'to quit s':>11}{'msg/s':>10}{'CPU s':>8}{'msg per CPU s':>15}")
    for row in drains:
        cells = [row["seconds_to_quit"] or "-", row["rate"] or "-", row["cpu_seconds"], row["per_cpu_second"] or "-"]
        print(f"{row['peer']:<12}{row['accepted']:>10}{cells[0]:>11}{cells[1]:>10}{cells[2]:>8}{cells[3]:>15}")
    print(f"reference / raw, messages per CPU second: {ratio:.2f} (target >= 0.5)" if ratio is not None else "ratio: -")
    print(f"\n2. Flood at {args.rate:,.0f} msg/s for {args.flood_seconds:g} s, {args.silence:g} s silence, quit (targets)")
    heads = ["flood", "accepted", "refused", "counted", "max gap s (<=1.1)", "quit reply s", "exit s (<=2)", "log lines (<100)"]
    print(" | ".join(heads))
    for row in floods:
        cells = [
            row["flood"],
            row["accepted"],
            row["refused"],
            row["counted_by_worker"] if row["counted_by_worker"] is not None else "-",
            row["max_heartbeat_gap"],
            row["quit_reply_after_quit"],
            row["exit_after_quit"],
            row["log_lines"],
        ]
        print(" | ".join(str(c) for c in cells))
    met = {
        "drain_ratio": ratio is not None and ratio >= 0.5,
        "exit_within_2s": all(r["exit_after_quit"] is not None and r["exit_after_quit"] <= 2.0 for r in floods),
        "final_stats_and_quit": all(r["final_stats"] and r["quit_reply_after_quit"] is not None for r in floods),
        "gaps_within_1.1": all(r["max_heartbeat_gap"] <= 1.1 for r in floods),
        "log_under_100": all(r["log_lines"] < 100 for r in floods),
        "noise_all_counted": all(r["counted_by_worker"] in (None, r["accepted"]) for r in floods),
    }
    print("\ntargets:", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": load_average()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "pinned": pinned,
        "drain": drains,
        "drain_ratio": None if ratio is None else round(ratio, 3),
        "flood_then_quit": floods,
        "targets_met": met,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
