"""Fake master ingest: worker->master heartbeats decoded, validated and recorded per second, vs raw pyzmq and Locust.

    python bench/ingest.py [--seconds 5] [--repeats 3] [--out bench/results-ingest.json]
    python bench/ingest.py --quick            # 2 s per row, one repetition, no JSON unless --out (about 30 s)

One DEALER in a separate process sends a real 116-byte heartbeat
``["heartbeat", {"state": "ready", "current_cpu_usage": 1.0, "current_memory_usage": 1000000}, "host_<32 hex>"]``
in a tight blocking loop (it blocks at the high-water mark, so nothing is lost); the receiver counts, from
0.5 s after the first message, for ``--seconds``. Rows, measured in the same run and interleaved per repetition:

- raw: a pyzmq ROUTER in this process, ``recv_multipart`` + ``msgpack.unpackb(raw=False, strict_map_key=False)``;
- locust: Locust 2.47.0's own receive path, ``locust.rpc.rpc.Server.recv_from_client`` (zmq.green +
  ``Message.unserialize``) under gevent, in a subprocess so that gevent's monkey-patching stays out of ours;
- fake master, unknown worker: ``FakeMaster`` in this process (its socket thread); the sender never registered,
  so, as Locust, the master does not answer; counted are only the RECV records in its trace that hold a decoded
  heartbeat (schema checked, violations recorded);
- raw echo and fake master, registered worker: the same with a ``client_ready`` first, so every heartbeat is
  answered (and the reply recorded); the sender drains the replies. Informational: the per-heartbeat cost of
  the whole automatic behaviour.

Target: fake master (unknown worker) >= 0.7 x raw. The machine has 2 cores: sender and receiver (each with
its libzmq I/O thread) share them, so the spread between repetitions is large; compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from benchkit import BENCH_DIR, HEARTBEAT_DATA, children, environment, median, node_id, print_table, script_command, write_json

WARMUP = 0.5
TARGET_RATIO = 0.7
BATCH = 256


# -- roles run in subprocesses -------------------------------------------------------------------


def run_sender(port: int, seconds: float, register: bool, drain: bool) -> int:
    """Send heartbeats to 127.0.0.1:port for ``seconds``; register first (client_ready, wait for the ack) if asked."""
    nid = node_id()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, nid.encode())
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    payload: bytes = msgpack.packb(["heartbeat", HEARTBEAT_DATA, nid])
    assert len(payload) == 116, len(payload)
    if register:
        sock.send(msgpack.packb(["client_ready", "2.47.0", nid]))
        if not sock.poll(10_000):
            print("no ack within 10 s", file=sys.stderr)
            return 2
        sock.recv()
    sent = 0
    end = time.monotonic() + seconds
    send = sock.send
    while time.monotonic() < end:
        for _ in range(64):
            send(payload)
        sent += 64
        if drain:
            try:
                while True:
                    sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                pass
    print(json.dumps({"sent": sent}))
    sock.close(linger=0)
    ctx.term()
    return 0


def run_locust_receiver(seconds: float) -> int:
    """Locust's own master receive path under gevent: prints ``PORT n``, then a JSON result line."""
    from locust.rpc import rpc  # importing locust monkey-patches this process with gevent

    server_class: Any = rpc.Server  # Locust is untyped
    server = server_class("127.0.0.1", 0)
    print(f"PORT {server.port}", flush=True)
    server.recv_from_client()
    warm_end = time.monotonic() + WARMUP
    while time.monotonic() < warm_end:
        server.recv_from_client()
    count = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        for _ in range(BATCH):
            _addr, msg = server.recv_from_client()
        count += BATCH
        if time.monotonic() >= end:
            break
    elapsed = time.monotonic() - t0
    assert msg.type == "heartbeat", msg.type
    print(json.dumps({"count": count, "elapsed": elapsed}), flush=True)
    server.close(linger=0)
    return 0


# -- measurements in this process ----------------------------------------------------------------


def _sender(group: Any, port: int, seconds: float, register: bool = False, drain: bool = False) -> subprocess.Popen[bytes]:
    args = ["--role", "sender", "--port", str(port), "--seconds", f"{seconds + WARMUP + 5:g}"]
    args += ["--register"] if register else []
    args += ["--drain"] if drain else []
    proc: subprocess.Popen[bytes] = group.start(script_command("ingest.py", *args), log=None)
    return proc


def measure_raw(seconds: float, echo: bool, tuned: bool = False) -> dict[str, Any]:
    """A plain ROUTER: recv_multipart + unpackb (+ a packed reply per message with ``echo``).

    ``tuned`` receives as the fake master does: ``recv`` of the identity, then the payload as a Frame whose
    ``more`` flag replaces recv_multipart's RCVMORE socket option reads.
    """
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    loads, packb = msgpack.unpackb, msgpack.packb
    try:
        with children() as group:
            _sender(group, port, seconds, register=echo, drain=echo)
            recv, recv_one, send = sock.recv_multipart, sock.recv, sock.send_multipart

            def one() -> None:
                if tuned:
                    identity = recv_one()
                    frame = recv_one(copy=False)
                    frames = [identity, frame.bytes]
                    while frame.more:
                        frame = recv_one(copy=False)
                        frames.append(frame.bytes)
                else:
                    frames = recv()
                msg = loads(frames[1], raw=False, strict_map_key=False)
                if echo:
                    send([frames[0], packb(["ack" if msg[0] == "client_ready" else "heartbeat", None, msg[2]])])

            one()
            warm_end = time.monotonic() + WARMUP
            while time.monotonic() < warm_end:
                one()
            count = 0
            t0 = time.monotonic()
            end = t0 + seconds
            while True:
                for _ in range(BATCH):
                    one()
                count += BATCH
                if time.monotonic() >= end:
                    break
            elapsed = time.monotonic() - t0
    finally:
        sock.close(linger=0)
        ctx.term()
    return {"rate": count / elapsed, "count": count, "seconds": round(elapsed, 3)}


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise RuntimeError(f"no output from pid {proc.pid} within {timeout:g} s")
    return proc.stdout.readline().decode().strip()


def measure_locust(seconds: float, log_dir: Path) -> dict[str, Any]:
    """Locust's rpc.Server under gevent in a subprocess; the sender in another."""
    with children() as group:
        receiver = group.start(
            script_command("ingest.py", "--role", "locust-receiver", "--seconds", f"{seconds:g}"),
            log=log_dir / "locust-receiver.log",
            stdout_pipe=True,
        )
        line = _read_line(receiver, 30)
        if not line.startswith("PORT "):
            raise RuntimeError(f"locust receiver: unexpected first line {line!r}")
        _sender(group, int(line.split()[1]), seconds)
        result = json.loads(_read_line(receiver, seconds + WARMUP + 30))
    return {"rate": result["count"] / result["elapsed"], "count": result["count"], "seconds": round(result["elapsed"], 3)}


def measure_fake(seconds: float, registered: bool) -> dict[str, Any]:
    """FakeMaster in this process; counts RECV records holding a decoded heartbeat within the window."""
    from fakemaster import FakeMaster
    from harness.trace import Kind

    with FakeMaster() as master, children() as group:
        _sender(group, master.port, seconds, register=registered, drain=registered)
        first = master.wait_for("heartbeat", within=20)
        if first is None:
            raise RuntimeError("the fake master recorded no heartbeat within 20 s")
        start = first.t + WARMUP
        end = start + seconds
        master.clock.sleep(max(0.0, end + 0.2 - master.clock.now()))
        group.close()  # stop the sender before reading the trace
        records = master.trace.records(first.seq)
    window = [r for r in records if start <= r.t < end]
    heartbeats = [r for r in window if r.kind is Kind.RECV and r.message is not None and r.message.type == "heartbeat"]
    replies = sum(1 for r in window if r.kind is Kind.SEND and r.message is not None and r.message.type == "heartbeat")
    refused = sum(1 for r in window if r.kind is Kind.SEND_FAILED)
    violations = sum(len(r.violations) for r in heartbeats)
    return {
        "rate": len(heartbeats) / seconds,
        "count": len(heartbeats),
        "seconds": seconds,
        "violations": violations,
        "replies_recorded": replies,
        "replies_refused": refused,
    }


ROWS: list[tuple[str, str]] = [
    ("raw", "pyzmq ROUTER recv_multipart + msgpack.unpackb (baseline a)"),
    ("raw-tuned", "pyzmq ROUTER recv + Frame.more (the fake master's receive loop) + msgpack.unpackb"),
    ("locust", "Locust rpc.Server.recv_from_client under gevent (baseline b)"),
    ("fake", "FakeMaster, unknown worker: decoded + validated + recorded (RECV records counted)"),
    ("raw-echo", "pyzmq ROUTER recv + unpackb + packb/send a reply (informational baseline)"),
    ("fake-registered", "FakeMaster, registered worker: + heartbeat reply sent and recorded (informational)"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row and repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s per row, one repetition")
    parser.add_argument(
        "--rows", default=",".join(k for k, _ in ROWS), help="comma-separated subset of " + ", ".join(k for k, _ in ROWS)
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON output (default bench/results-ingest.json, none with --quick)"
    )
    parser.add_argument("--role", choices=["sender", "locust-receiver"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--register", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sender":
        return run_sender(args.port, args.seconds, args.register, args.drain)
    if args.role == "locust-receiver":
        return run_locust_receiver(args.seconds)
    if args.quick:
        args.seconds, args.repeats = 2.0, 1
    out = args.out if args.out is not None else (None if args.quick else BENCH_DIR / "results-ingest.json")
    wanted = [k for k in args.rows.split(",") if k]
    unknown = sorted(set(wanted) - {k for k, _ in ROWS})
    if unknown:
        parser.error(f"unknown rows: {unknown}")
    log_dir = Path("/tmp") / f"bench-ingest-{int(time.time())}"
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in wanted}
    env = environment()
    for rep in range(1, args.repeats + 1):
        for key in wanted:
            if key in ("raw", "raw-tuned"):
                result = measure_raw(args.seconds, echo=False, tuned=key == "raw-tuned")
            elif key == "raw-echo":
                result = measure_raw(args.seconds, echo=True)
            elif key == "locust":
                result = measure_locust(args.seconds, log_dir)
            else:
                result = measure_fake(args.seconds, registered=key == "fake-registered")
            runs[key].append(result)
            print(f"repetition {rep} {key:<16} {result['rate']:>10,.0f} msg/s", flush=True)
    medians = {k: median([r["rate"] for r in v]) for k, v in runs.items()}
    rows_out: list[dict[str, Any]] = []
    table: list[list[Any]] = []
    for key, what in ROWS:
        if key not in runs:
            continue
        base = "raw-echo" if key == "fake-registered" else "raw"
        ratio = medians[key] / medians[base] if base in medians and medians[base] else None
        target = TARGET_RATIO if key == "fake" else None
        rows_out.append(
            {
                "row": key,
                "what": what,
                "rate_median": round(medians[key]),
                "rates": [round(r["rate"]) for r in runs[key]],
                "ratio_to": base if ratio is not None else None,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "target_ratio": target,
                "met": (ratio >= target) if (ratio is not None and target is not None) else None,
                "runs": runs[key],
            }
        )
        table.append(
            [
                key,
                what,
                f"{medians[key]:,.0f}",
                " / ".join(f"{r['rate']:,.0f}" for r in runs[key]),
                f"{ratio:.2f} x {base}" if ratio is not None else "-",
                f">= {target} x raw" if target else "-",
            ]
        )
    print()
    print_table(["row", "receiver", "msg/s (median)", "runs", "ratio", "target"], table)
    fake = next((r for r in rows_out if r["row"] == "fake"), None)
    if fake is not None and fake["ratio"] is not None:
        print(f"\nfake master / raw = {fake['ratio']:.2f} (target >= {TARGET_RATIO}): {'MET' if fake['met'] else 'MISSED'}")
    write_json(
        out,
        {
            "benchmark": "ingest",
            "environment": env,
            "config": {"seconds": args.seconds, "repeats": args.repeats, "warmup": WARMUP, "message_bytes": 116},
            "rows": rows_out,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
