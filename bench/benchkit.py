"""Shared plumbing of the timing benchmarks: raw pyzmq peers (run as child processes), child processes, statistics.

The peers run in processes of their own, so that their timestamps do not wait for the GIL of the process under
measurement. Every timestamp is ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on Linux);
a fake master under measurement is built with ``MonotonicClock(offset=0.0)`` so that its trace uses it too.

    python bench/benchkit.py sender --endpoint tcp://127.0.0.1:PORT --identity ID --period 0.1 --count 100 --out F.json
    python bench/benchkit.py receiver --endpoint tcp://127.0.0.1:PORT --identity ID --seconds 30 --out F.json

``sender``: a DEALER sending one message every ``--period`` seconds on a busy-wait-precise schedule and recording
when each left (``--register``: a ``client_ready`` first, waiting for the ack; ``--type heartbeat`` sends real
heartbeats; any other type carries ``{"t": send time, "n": k}`` in its data). ``receiver``: a DEALER that says
``lc_hello`` and timestamps every message that arrives until ``lc_done`` (or ``--seconds``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import zmq

from harness.launcher import WorkerProcess

BENCH = Path(__file__).resolve().parent
SPIN = 0.002  # the last this many seconds before a scheduled send are busy-waited, not slept
HELLO = "lc_hello"
DONE = "lc_done"


# -- statistics -------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """``n``, ``p50``, ``p99`` and ``max`` of ``values`` times ``scale`` (None when there are none)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * scale, digits),
        "p99": round(percentile(values, 99) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


def fmt(stats: dict[str, Any], keys: Iterable[str] = ("p50", "p99", "max")) -> str:
    """``a / b / c`` for a ``summary``, ``-`` for missing figures."""
    return " / ".join("-" if stats.get(k) is None else f"{stats[k]:g}" for k in keys)


def gaps(times: Sequence[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (what else ran on the machine while measuring)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


# -- child processes --------------------------------------------------------------------------------------------


@contextmanager
def child(argv: Sequence[str], log: Path, grace: float = 3.0) -> Iterator[WorkerProcess]:
    """Run ``argv`` in its own process group, output to ``log``; always stopped and reaped."""
    process = WorkerProcess(" ".join(shlex.quote(a) for a in argv), log).start()
    try:
        yield process
    finally:
        process.stop(grace)


def peer_argv(role: str, *args: str) -> list[str]:
    """The command line of a raw peer (``sender`` or ``receiver``) of this module."""
    return [sys.executable, str(BENCH / "benchkit.py"), role, *args]


def read_json(path: Path) -> Any:
    """A peer's result file (None if it never wrote one)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- the raw peers ------------------------------------------------------------------------------------------------


def _dealer(context: zmq.Context[zmq.Socket[bytes]], endpoint: str, identity: str) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.setsockopt(zmq.LINGER, 500)
    sock.connect(endpoint)
    return sock


def pack(message_type: str, data: Any, node_id: str) -> bytes:
    """One Locust message as raw peers send it (``[type, data, node_id]``, msgpack defaults)."""
    packed: bytes = msgpack.packb([message_type, data, node_id])
    return packed


def raw_router(context: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], int]:
    """A raw ROUTER bound to a free port on 127.0.0.1: ROUTER_MANDATORY (a full pipe refuses, counted, instead of
    dropping silently as Locust's does) and no linger. Returns the socket and its port."""
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    return sock, sock.bind_to_random_port("tcp://127.0.0.1")


def _wait_until(t: float) -> None:
    """Sleep, then busy-wait the last ``SPIN`` seconds, until ``time.monotonic() >= t``."""
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        if left > SPIN:
            time.sleep(left - SPIN)


def _drain(sock: zmq.Socket[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    while True:
        try:
            out.append(sock.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            return out


def run_sender(args: argparse.Namespace) -> int:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = _dealer(context, args.endpoint, args.identity)
    sent: list[float] = []
    result: dict[str, Any] = {"identity": args.identity, "type": args.type, "period": args.period, "sent": sent}
    try:
        if args.register:
            deadline = time.monotonic() + args.ack_within
            sock.send(pack("client_ready", "2.47.0", args.identity))
            acked = False
            while not acked and time.monotonic() < deadline:
                if sock.poll(50):
                    acked = any(msgpack.unpackb(f[-1], strict_map_key=False)[0] == "ack" for f in _drain(sock))
            result["acked"] = acked
            if not acked:
                return 2
        heartbeat = {"state": "ready", "current_cpu_usage": 0.0, "current_memory_usage": 1_000_000}
        start = time.monotonic() + args.period
        for k in range(args.count):
            _wait_until(start + k * args.period)
            t = time.monotonic()
            if args.type == "heartbeat":
                sock.send(pack("heartbeat", heartbeat, args.identity))
            else:
                sock.send(pack(args.type, {"t": t, "n": k}, args.identity))
            sent.append(t)
            _drain(sock)  # heartbeat replies, if any: never let them pile up against the high-water mark
        return 0
    finally:
        Path(args.out).write_text(json.dumps(result))
        sock.close(linger=500)
        context.term()


def run_receiver(args: argparse.Namespace) -> int:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = _dealer(context, args.endpoint, args.identity)
    arrivals: list[tuple[float, str, Any]] = []
    try:
        sock.send(pack(HELLO, None, args.identity))
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            if not sock.poll(50):
                continue
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                t = time.monotonic()
                message = msgpack.unpackb(frames[-1], strict_map_key=False)
                arrivals.append((t, str(message[0]), message[1]))
                if message[0] == DONE:
                    return 0
        return 1
    finally:
        Path(args.out).write_text(json.dumps({"identity": args.identity, "arrivals": arrivals}, default=repr))
        sock.close(linger=0)
        context.term()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    sender = roles.add_parser("sender", help="send messages on a precise schedule, record the send times")
    sender.add_argument("--endpoint", required=True)
    sender.add_argument("--identity", required=True)
    sender.add_argument("--type", default="heartbeat")
    sender.add_argument("--period", type=float, required=True)
    sender.add_argument("--count", type=int, required=True)
    sender.add_argument("--register", action="store_true", help="client_ready first, and wait for the ack")
    sender.add_argument("--ack-within", type=float, default=10.0)
    sender.add_argument("--out", required=True)
    receiver = roles.add_parser("receiver", help="timestamp every message that arrives until lc_done")
    receiver.add_argument("--endpoint", required=True)
    receiver.add_argument("--identity", required=True)
    receiver.add_argument("--seconds", type=float, required=True, help="give up after this long")
    receiver.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return run_sender(args) if args.role == "sender" else run_receiver(args)


if __name__ == "__main__":
    sys.exit(main())
