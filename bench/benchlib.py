"""Shared plumbing of bench/ingest.py, bench/storm.py and bench/swarm.py (not a benchmark itself).

Child processes run in their own process group and are always killed and reaped (``Children``); CPU is
sampled once a second from utime+stime deltas (% of one core, all threads, what ``top`` shows); tables are
printed as Markdown; results are written as JSON next to the scripts.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
HEARTBEAT_DATA: dict[str, Any] = {"state": "ready", "current_cpu_usage": 1.0, "current_memory_usage": 1000000}


def node_id(rng: random.Random | None = None) -> str:
    """A Locust-style worker id, ``host_<32 hex>`` (its heartbeat packs to 116 bytes)."""
    bits = (rng or random.SystemRandom()).getrandbits(128)
    return f"host_{bits:032x}"


def environment() -> dict[str, Any]:
    """What the numbers depend on: Python, libraries, cores, load when the run started."""
    import msgpack
    import zmq

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


def script_command(script: str, *args: str) -> list[str]:
    """``python bench/<script> args...`` with this interpreter."""
    return [sys.executable, str(BENCH_DIR / script), *args]


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
    group = Children()
    try:
        yield group
    finally:
        group.close()


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


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: numbers rounded, None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |")
    sys.stdout.flush()


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")
