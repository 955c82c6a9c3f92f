"""Timing accuracy of the harness: injected delays, and heartbeat gaps as the fake master's trace measures them.

    python bench/timing_accuracy.py [--out bench/results-timing-accuracy.json]
    python bench/timing_accuracy.py --quick      # fewer samples (under a minute)

(i) Injected delay error. The fake master, with a fault plan delaying one message type by D (10 ms, 100 ms,
1 s), is asked to send a message every 20 ms to a raw pyzmq DEALER in another process, which timestamps each
arrival. Error = arrival - due, where due = the time the master applied the fault (its FAULT record) + D; also
the trace's own SEND time - due, and arrival - SEND time. Baseline, same run, same receiver: a plain Python
thread per message doing ``time.sleep(D)`` and then a send on a raw pyzmq ROUTER (under a lock), due = thread
start + D.

(ii) Resolution of heartbeat-gap measurement. A raw pyzmq DEALER in another process registers and then sends
real heartbeats on a busy-wait-precise schedule (every 100 ms, and every 1 s), recording when each left. Error =
the gap between two heartbeats in the fake master's trace minus the gap between their send times; also the
latency, trace time - send time. Baseline, same run, same sender: a raw pyzmq ROUTER thread in this process
(acks and answers heartbeats as the master does) timestamping each arrival right after its recv.

Every timestamp is ``time.monotonic()``: the fake master runs with ``MonotonicClock(offset=0.0)``. Target: p99
error <= 2 ms. The figures are only as good as the machine is quiet: any other load shows in the baselines too.
``--pin`` runs the harness on one CPU and the raw peers on another (off by default: the peers hardly use any
CPU, and a pinned harness cannot move away from someone else's load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack
import zmq
from benchkit import DONE, HELLO, child, fmt_summary, gaps, load_average, pack, peer_argv, read_json, raw_router, summary

from fakemaster.master import FakeMaster
from harness.clock import MonotonicClock
from harness.faults import Fault, FaultPlan
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, TraceRecord

TARGET_MS = 2.0
DELAYS = (0.01, 0.1, 1.0)
SPACING = 0.02  # seconds between two delayed messages (they overlap when D is longer)
PERIODS = (0.1, 1.0)
TIMED = "lc_timed"
RECEIVER_ID = "lc-receiver"
SENDER_ID = "lc-sender"
STARTUP = 15.0


def pace(start: float, k: int) -> None:
    """Sleep until the k-th slot, ``SPACING`` apart."""
    left = start + k * SPACING - time.monotonic()
    if left > 0:
        time.sleep(left)


def key(data: Any) -> tuple[float, int] | None:
    return (float(data["d"]), int(data["k"])) if isinstance(data, dict) and "k" in data and "d" in data else None


def arrivals_by_key(path: Path) -> dict[tuple[float, int], float]:
    found = read_json(path) or {"arrivals": []}
    out: dict[tuple[float, int], float] = {}
    for t, message_type, data in found["arrivals"]:
        k = key(data)
        if message_type == TIMED and k is not None:
            out[k] = t
    return out


def delay_rows(delay: float, samples: Sequence[tuple[float, float | None, float | None]], what: str) -> dict[str, Any]:
    """``samples``: (due, sent, arrival) per message (None: never seen)."""
    arrived = [(due, sent, at) for due, sent, at in samples if at is not None]
    return {
        "what": what,
        "delay_s": delay,
        "samples": len(samples),
        "lost": len(samples) - len(arrived),
        "arrival_minus_due_ms": summary([at - due for due, _, at in arrived], 1000, 3),
        "arrival_minus_due_min_ms": round(min((at - due for due, _, at in arrived), default=0.0) * 1000, 3),
        "sent_minus_due_ms": summary([s - due for due, s, _ in arrived if s is not None], 1000, 3),
        "arrival_minus_sent_ms": summary([at - s for _, s, at in arrived if s is not None], 1000, 3),
    }


# -- (i) injected delays ----------------------------------------------------------------------------------------


def receiver(endpoint: str, out: Path, seconds: float, prefix: list[str]) -> list[str]:
    args = ("--endpoint", endpoint, "--identity", RECEIVER_ID, "--seconds", f"{seconds:g}", "--out", str(out))
    return [*prefix, *peer_argv("receiver", *args)]


def fake_master_delays(n: int, tmp: Path, prefix: list[str]) -> list[dict[str, Any]]:
    clock = MonotonicClock(offset=0.0)
    out = tmp / "delay-fakemaster.json"
    bound = sum(n * SPACING + d + 1.0 for d in DELAYS) + STARTUP
    with FakeMaster(timing=LOCUST_TIMING, clock=clock) as master:
        with child(receiver(master.endpoint, out, bound, prefix), tmp / "delay-fakemaster.log") as process:
            master.expect(HELLO, STARTUP, where=lambda r: r.identity == RECEIVER_ID)
            for d in DELAYS:
                master.install_faults(FaultPlan((Fault("delay", types=(TIMED,), seconds=d),)))
                start = time.monotonic()
                for k in range(n):
                    pace(start, k)
                    master.send(TIMED, {"d": d, "k": k}, to=RECEIVER_ID)
                master.sleep(d + 0.2)  # the last one is delivered
                master.clear_faults()
            master.send(DONE, None, to=RECEIVER_ID)
            process.wait(5.0)
        records = master.trace.records()
    arrived = arrivals_by_key(out)
    applied: dict[tuple[float, int], float] = {}
    sent: dict[tuple[float, int], float] = {}
    for r in records:
        which = key(r.message.data) if r.message is not None and r.message.type == TIMED else None
        if which is None:
            continue
        if r.kind is Kind.FAULT:
            applied[which] = r.t
        elif r.kind is Kind.SEND:
            sent[which] = r.t
    rows = []
    for d in DELAYS:
        keys = [(d, k) for k in range(n)]
        samples = [(applied[x] + d, sent.get(x), arrived.get(x)) for x in keys if x in applied]
        rows.append(delay_rows(d, samples, "fake master: delay fault"))
    return rows


def thread_delays(n: int, tmp: Path, prefix: list[str]) -> list[dict[str, Any]]:
    out = tmp / "delay-threads.json"
    bound = sum(n * SPACING + d + 1.0 for d in DELAYS) + STARTUP
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    lock = threading.Lock()
    record: dict[tuple[float, int], tuple[float, float]] = {}
    identity = RECEIVER_ID.encode()

    def deliver(d: float, k: int) -> None:
        due = time.monotonic() + d
        time.sleep(d)
        with lock:
            router.send_multipart([identity, pack(TIMED, {"d": d, "k": k}, RECEIVER_ID)])
            record[(d, k)] = (due, time.monotonic())

    try:
        with child(receiver(f"tcp://127.0.0.1:{port}", out, bound, prefix), tmp / "delay-threads.log") as process:
            if not router.poll(int(STARTUP * 1000)):
                raise RuntimeError("the receiver never said hello")
            router.recv_multipart()
            for d in DELAYS:
                threads = []
                start = time.monotonic()
                for k in range(n):
                    pace(start, k)
                    thread = threading.Thread(target=deliver, args=(d, k), daemon=True)
                    thread.start()
                    threads.append(thread)
                for thread in threads:
                    thread.join(d + 5.0)
            with lock:
                router.send_multipart([identity, pack(DONE, None, RECEIVER_ID)])
            process.wait(5.0)
    finally:
        router.close(linger=0)
        context.term()
    arrived = arrivals_by_key(out)
    rows = []
    for d in DELAYS:
        samples = [(due, sent, arrived.get((d, k))) for (dd, k), (due, sent) in sorted(record.items()) if dd == d]
        rows.append(delay_rows(d, samples, "baseline: thread sleep(D) + send"))
    return rows


# -- (ii) heartbeat gaps ----------------------------------------------------------------------------------------


def sender(endpoint: str, period: float, count: int, out: Path, prefix: list[str]) -> list[str]:
    return [
        *prefix,
        *peer_argv(
            "sender", "--endpoint", endpoint, "--identity", SENDER_ID, "--type", "heartbeat", "--register",
            "--period", f"{period:g}", "--count", str(count), "--out", str(out),
        ),
    ]  # fmt: skip


def gap_row(period: float, sent: list[float], received: list[float], what: str) -> dict[str, Any]:
    n = min(len(sent), len(received))
    errors = [abs(a - b) for a, b in zip(gaps(received[:n]), gaps(sent[:n]), strict=True)]
    signed = [a - b for a, b in zip(gaps(received[:n]), gaps(sent[:n]), strict=True)]
    return {
        "what": what,
        "period_s": period,
        "sent": len(sent),
        "received": len(received),
        "gap_error_abs_ms": summary(errors, 1000, 3),
        "gap_error_signed_min_max_ms": [round(min(signed, default=0.0) * 1000, 3), round(max(signed, default=0.0) * 1000, 3)],
        "latency_ms": summary([r - s for s, r in zip(sent[:n], received[:n], strict=True)], 1000, 3),
    }


def fake_master_gaps(period: float, count: int, tmp: Path, prefix: list[str]) -> dict[str, Any]:
    out = tmp / f"gaps-fakemaster-{period:g}.json"
    with FakeMaster(timing=LOCUST_TIMING, clock=MonotonicClock(offset=0.0)) as master:
        with child(sender(master.endpoint, period, count, out, prefix), tmp / f"gaps-fakemaster-{period:g}.log") as process:
            process.wait(STARTUP + count * period + 5.0)
        master.sleep(0.2)
        records: list[TraceRecord] = master.trace.records()
    received = [r.t for r in records if r.kind is Kind.RECV and r.type == "heartbeat" and r.identity == SENDER_ID]
    sent = (read_json(out) or {}).get("sent", [])
    return gap_row(period, sent, received, "fake master trace")


class RawRouter:
    """A raw pyzmq ROUTER on its own thread: timestamps every arrival right after its recv, acks, answers heartbeats."""

    def __init__(self) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock, self.port = raw_router(self.context)
        self.arrivals: list[tuple[float, bytes, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raw-router", daemon=True)

    def __enter__(self) -> RawRouter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close(linger=0)
        self.context.term()

    def _run(self) -> None:
        recv: Callable[[int], list[bytes]] = self.sock.recv_multipart
        while not self._stop.is_set():
            if not self.sock.poll(50):
                continue
            while True:
                try:
                    frames = recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                t = time.monotonic()
                message = msgpack.unpackb(frames[-1], strict_map_key=False)
                self.arrivals.append((t, frames[0], str(message[0])))
                reply = {"client_ready": ("ack", {"index": 0}), "heartbeat": ("heartbeat", None)}.get(str(message[0]))
                if reply is not None:
                    try:
                        self.sock.send_multipart([frames[0], pack(*reply, str(message[2]))], zmq.NOBLOCK)
                    except zmq.ZMQError:
                        pass  # a sender gone or not reading: the timestamps are what matters


def raw_router_gaps(period: float, count: int, tmp: Path, prefix: list[str]) -> dict[str, Any]:
    out = tmp / f"gaps-raw-{period:g}.json"
    with RawRouter() as router:
        endpoint = f"tcp://127.0.0.1:{router.port}"
        with child(sender(endpoint, period, count, out, prefix), tmp / f"gaps-raw-{period:g}.log") as process:
            process.wait(STARTUP + count * period + 5.0)
        time.sleep(0.2)
        received = [t for t, ident, kind in list(router.arrivals) if kind == "heartbeat" and ident == SENDER_ID.encode()]
    sent = (read_json(out) or {}).get("sent", [])
    return gap_row(period, sent, received, "baseline: raw pyzmq ROUTER")


# -- main -------------------------------------------------------------------------------------------------------


def within_target(row: dict[str, Any]) -> bool:
    """The row's p99 error is at most TARGET_MS, and nothing was lost."""
    if "arrival_minus_due_ms" in row:
        p99, complete = row["arrival_minus_due_ms"]["p99"], not row["lost"]
    else:
        p99, complete = row["gap_error_abs_ms"]["p99"], row["sent"] == row["received"]
    return complete and p99 is not None and p99 <= TARGET_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 delayed messages per D; 80 x 100 ms and 4 x 1 s heartbeats")
    parser.add_argument("--delayed", type=int, default=None, help="messages per delay D (default 200, quick 60)")
    parser.add_argument("--fast-count", type=int, default=None, help="heartbeats every 100 ms (default 300, quick 80)")
    parser.add_argument("--slow-count", type=int, default=None, help="heartbeats every 1 s (default 30, quick 4)")
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=False, help="harness on one CPU, raw peers on another"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON results (default bench/results-timing-accuracy[-quick].json)"
    )
    args = parser.parse_args()
    delayed = args.delayed or (60 if args.quick else 200)
    counts = {0.1: args.fast_count or (80 if args.quick else 300), 1.0: args.slow_count or (4 if args.quick else 30)}
    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin and len(cpus) >= 2
    prefix: list[str] = ["taskset", "-c", str(cpus[1])] if pinned else []
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    out = args.out or Path(__file__).parent / f"results-timing-accuracy{'-quick' if args.quick else ''}.json"
    started = time.monotonic()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="timing-accuracy-") as name:
        tmp = Path(name)
        delays = fake_master_delays(delayed, tmp, prefix) + thread_delays(delayed, tmp, prefix)
        gap_rows = []
        for period in PERIODS:
            gap_rows.append(fake_master_gaps(period, counts[period], tmp, prefix))
            gap_rows.append(raw_router_gaps(period, counts[period], tmp, prefix))

    print("(i) injected delay D: error of the delivery, ms (p50 / p99 / max); target p99 <= 2 ms")
    print("    sent = the fake master's SEND record (its trace), or when the baseline thread's send returned")
    print()
    print("| D | how | samples (lost) | arrival - due | sent - due | arrival - sent | p99 <= 2 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(delays, key=lambda r: (r["delay_s"], r["what"].startswith("baseline"))):
        err = r["arrival_minus_due_ms"]
        ok = within_target(r)
        print(
            f"| {r['delay_s'] * 1000:g} ms | {r['what']} | {r['samples']} ({r['lost']}) | {fmt_summary(err)} "
            f"| {fmt_summary(r['sent_minus_due_ms'])} | {fmt_summary(r['arrival_minus_sent_ms'])} | {'met' if ok else 'MISSED'} |"
        )
    print()
    print("(ii) heartbeat gaps: |measured gap - sent gap|, ms (p50 / p99 / max); target p99 <= 2 ms")
    print()
    print("| period | receiver | heartbeats sent / received | gap error | signed min / max | latency | p99 <= 2 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in gap_rows:
        err = r["gap_error_abs_ms"]
        ok = within_target(r)
        lo, hi = r["gap_error_signed_min_max_ms"]
        print(
            f"| {r['period_s'] * 1000:g} ms | {r['what']} | {r['sent']} / {r['received']} | {fmt_summary(err)} | {lo:g} / {hi:g} "
            f"| {fmt_summary(r['latency_ms'])} | {'met' if ok else 'MISSED'} |"
        )
    harness = [r for r in delays + gap_rows if r["what"].startswith("fake")]
    met = all(within_target(r) for r in harness)
    print(f"\nharness target (p99 error <= {TARGET_MS:g} ms on every fake-master row): {'met' if met else 'MISSED'}")
    print(f"wall {time.monotonic() - started:.1f} s; load average before {load_before}, after {load_average()}")
    print("peers pinned to CPU", cpus[1] if pinned else "any", "harness to CPU", cpus[0] if pinned else "any")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "python": platform.python_version(),
        "target_ms": TARGET_MS,
        "target_met": met,
        "pinned": {"peers_cpu": cpus[1], "harness_cpu": cpus[0]} if pinned else None,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "delays": delays,
        "gaps": gap_rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
