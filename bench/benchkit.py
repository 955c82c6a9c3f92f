"""Shared plumbing of the benchmark scripts in bench/ (not a benchmark itself), and the raw pyzmq peers they run.

Child processes run in their own process group and are always stopped and reaped (``child`` for one command run
through ``harness.launcher``, ``Children`` for a group of them); CPU is sampled once a second from utime+stime
deltas (% of one core, all threads, what ``top`` shows); tables are printed as Markdown; results are written as
JSON next to the scripts.

The raw peers run in processes of their own, so that their timestamps do not wait for the GIL of the process under
measurement. Every timestamp is ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on Linux);
a fake master under measurement is built with ``MonotonicClock(offset=0.0)`` so that its trace uses it too.

    python bench/benchkit.py sender --endpoint tcp://127.0.0.1:PORT --identity ID --period 0.1 --count 100 --out F.json
    python bench/benchkit.py receiver --endpoint tcp://127.0.0.1:PORT --identity ID --seconds 30 --out F.json

``sender``: a DEALER sending one message every ``--period`` seconds on a busy-wait-precise schedule and recording
when each left (``--register``: a ``client_ready`` first, waiting for the ack; ``--type heartbeat`` sends real
heartbeats; any other type carries ``{"t": send time, "n": k}`` in its data). ``receiver``: a DEALER that says
``lc_hello`` and timestamps every message that arrives until ``lc_done`` (or ``--seconds``).

Statistics, one definition each (every script uses these):

* ``percentile(values, q)``: linear interpolation between closest ranks (numpy's default, Hyndman & Fan type 7):
  with the n values sorted ``v[0] <= ... <= v[n-1]`` and ``pos = (n - 1) * q / 100``, it is
  ``v[floor(pos)] + (v[floor(pos) + 1] - v[floor(pos)]) * (pos - floor(pos))``. ``q = 0`` is the min, ``q = 100``
  the max, ``q = 50`` the median. None for no values.
* ``median(values)``: the middle value, or the mean of the two middle values for an even count (``statistics.median``;
  the same as ``percentile(values, 50)`` up to float rounding).
* ``summary(values)``: ``n``, ``p50``, ``p99`` (``percentile``) and ``max``, each times a scale and rounded.
* ``gaps(times)``: the differences between consecutive times.
* ``CpuSampler.summary``: mean and max of the per-second CPU samples (% of one core) that end in a window.
* ``load_average()``: the kernel's 1, 5 and 15 minute load averages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgpack
import psutil
import zmq

if TYPE_CHECKING:
    from harness.launcher import WorkerProcess

BENCH_DIR = Path(__file__).resolve().parent
HEARTBEAT_DATA: dict[str, Any] = {"state": "ready", "current_cpu_usage": 1.0, "current_memory_usage": 1000000}
SPIN = 0.002  # the last this many seconds before a scheduled send are busy-waited, not slept
HELLO = "lc_hello"
DONE = "lc_done"


# -- the machine ------------------------------------------------------------------------------------------------


def node_id(rng: random.Random | None = None) -> str:
    """A Locust-style worker id, ``host_<32 hex>`` (its heartbeat packs to 116 bytes)."""
    bits = (rng or random.SystemRandom()).getrandbits(128)
    return f"host_{bits:032x}"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (what else ran on the machine while measuring); [] if unreadable."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def environment() -> dict[str, Any]:
    """What the numbers depend on: Python, libraries, cores, load when the run started."""
    return {
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def raise_nofile(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (capped by the hard limit); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def free_port(low: int = 21000, high: int = 32000, attempts: int = 200) -> int:
    """A TCP port on 127.0.0.1 in ``[low, high)`` that could be bound just now (below the ephemeral range)."""
    rng = random.SystemRandom()
    for _ in range(attempts):
        port = rng.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{low}, {high}) after {attempts} attempts")


def wait_listening(port: int, timeout: float) -> bool:
    """True once a TCP connect to 127.0.0.1:port succeeds (the peer is listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


# -- statistics (definitions in the module docstring) -------------------------------------------------------------


def _interpolated(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted, non-empty ``ordered`` by linear interpolation between closest ranks."""
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks; None for no values."""
    return _interpolated(sorted(values), q) if values else None


def median(values: Sequence[float]) -> float:
    """The middle value, or the mean of the two middle ones for an even count (``values`` must not be empty)."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """``n``, ``p50``, ``p99`` (``percentile``) and ``max`` of ``values`` times ``scale``, rounded to ``digits``
    (None when there are no values)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(_interpolated(ordered, 50) * scale, digits),
        "p99": round(_interpolated(ordered, 99) * scale, digits),
        "max": round(ordered[-1] * scale, digits),
    }


def gaps(times: Sequence[float]) -> list[float]:
    """The differences between consecutive ``times`` (one fewer than there are times)."""
    return [b - a for a, b in zip(times, times[1:], strict=False)]


class CpuSampler:
    """Per-second CPU of some processes: utime+stime deltas of each pid, as % of one core."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: dict[str, list[tuple[float, float]]] = {}  # label -> [(t_end, percent)]
        self._procs: dict[str, list[psutil.Process]] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def watch(self, label: str, pid: int) -> None:
        """Add ``pid`` to the group ``label`` (a group's figure is the sum over its processes)."""
        try:
            proc = psutil.Process(pid)
            times = proc.cpu_times()
        except psutil.Error:
            return
        with self._lock:
            self._procs.setdefault(label, []).append(proc)
            self.samples.setdefault(label, [])
            self._last[pid] = times.user + times.system

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        last_t = time.monotonic()
        while not self._stop.wait(max(0.0, last_t + self.interval - time.monotonic())):
            now = time.monotonic()
            span = now - last_t
            last_t = now
            with self._lock:
                for label, procs in self._procs.items():
                    used = 0.0
                    for proc in procs:
                        try:
                            times = proc.cpu_times()
                        except psutil.Error:
                            continue
                        total = times.user + times.system
                        used += total - self._last.get(proc.pid, total)
                        self._last[proc.pid] = total
                    self.samples[label].append((now, 100.0 * used / span))

    def summary(self, label: str, start: float | None = None, end: float | None = None) -> dict[str, float | None]:
        """Mean and max % of one core for ``label`` over samples ending in [start, end] (default: all)."""
        values = [p for t, p in self.samples.get(label, []) if (start is None or t >= start) and (end is None or t <= end)]
        if not values:
            return {"mean": None, "max": None, "samples": 0}
        return {"mean": round(sum(values) / len(values), 1), "max": round(max(values), 1), "samples": len(values)}


# -- output -------------------------------------------------------------------------------------------------------


def fmt_value(value: Any, digits: int = 1) -> str:
    """One value as a table cell: floats to ``digits`` decimals and ints with thousands separators, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def fmt_summary(stats: dict[str, Any], keys: Iterable[str] = ("p50", "p99", "max")) -> str:
    """Some figures of a ``summary`` as ``a / b / c`` (shortest form, ``:g``), ``-`` for missing ones."""
    return " / ".join("-" if stats.get(k) is None else f"{stats[k]:g}" for k in keys)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table on stdout; cells that are not strings go through ``fmt_value``."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(fmt_value(c) if not isinstance(c, str) else c for c in row) + " |")
    sys.stdout.flush()


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` (indented, creating its folder); nothing for None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")


def read_json(path: Path) -> Any:
    """A peer's result file (None if it never wrote one)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- child processes ----------------------------------------------------------------------------------------------


def script_command(script: str, *args: str) -> list[str]:
    """``python bench/<script> args...`` with this interpreter."""
    return [sys.executable, str(BENCH_DIR / script), *args]


def peer_argv(role: str, *args: str) -> list[str]:
    """The command line of a raw peer (``sender`` or ``receiver``) of this module."""
    return script_command("benchkit.py", role, *args)


@contextmanager
def child(argv: Sequence[str], log: Path, grace: float = 3.0) -> Iterator[WorkerProcess]:
    """Run ``argv`` in its own process group, output to ``log``; always stopped and reaped."""
    from harness.launcher import WorkerProcess  # here: the scripts that never call this do not import the harness

    process = WorkerProcess(" ".join(shlex.quote(a) for a in argv), log).start()
    try:
        yield process
    finally:
        process.stop(grace)


class Children:
    """Child processes, each in its own process group; ``close`` kills every group and reaps every child.

    Use as a context manager so that nothing outlives the benchmark, whatever happens.
    """

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def start(
        self, command: Sequence[str], log: Path | None = None, stdout_pipe: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command``; its stdout and stderr go to ``log`` (never an undrained pipe) or DEVNULL.

        With ``stdout_pipe`` stdout is a pipe the caller must drain (small outputs only); stderr still goes to ``log``.
        """
        out: IO[bytes] | int = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            handle = log.open("wb")
            self._files.append(handle)
            out = handle
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out if log is not None or not stdout_pipe else subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killpg reaches everything it starts
            env=env,
        )
        self.procs.append(proc)
        return proc

    def close(self, grace: float = 2.0) -> None:
        """SIGTERM every group, ``grace`` seconds, SIGKILL every group, reap every child.

        A group is signalled only while its leader is not yet reaped (running, or a zombie): until then its
        pid, and so the group id, cannot belong to anyone else.
        """
        for proc in self.procs:
            if proc.returncode is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            if proc.returncode is None:
                wait_exit(proc, max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.returncode is None:
                _signal_group(proc, signal.SIGKILL)  # also whatever the leader started in its group
                try:
                    proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    print(f"warning: pid {proc.pid} not reaped after SIGKILL", file=sys.stderr)
            if proc.stdout is not None:
                proc.stdout.close()
        for handle in self._files:
            handle.close()
        self.procs.clear()
        self._files.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``proc`` to exit, without reaping it (so its group id stays reserved)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True  # already reaped
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)  # pgid == pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def children() -> Iterator[Children]:
    """A ``Children`` group, closed (every group killed, every child reaped) on the way out."""
    group = Children()
    try:
        yield group
    finally:
        group.close()


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
