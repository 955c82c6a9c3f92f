"""What the reference worker's two runtimes set up the same way (``worker.runtime`` and ``worker.threaded_runtime``).

The node id and the master's endpoint, the DEALER socket (identity, then the options each runtime asks for),
the session with its stats report and resource figures, the process's CPU and memory as a heartbeat carries
them, and the log and exit plumbing: a session ``Log`` effect on the ``worker`` logger, the closing line and the
exit code.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable

import psutil
import zmq

from worker.session import Log, WorkerConfig, WorkerSession
from worker.stats import RequestStats

log = logging.getLogger("worker")

EXIT_SOFTWARE = 70  # sysexits' EX_SOFTWARE: the runtime ended without an exit code from the session
KEEPALIVE_IDLE = 30  # seconds of silence before TCP keepalive probes start (the reference worker's socket)


def default_node_id() -> str:
    """``<hostname>_<uuid hex>``, the format Locust, boomer and locust4j use."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex}"


def master_endpoint(host: str, port: int) -> str:
    """The master's ZeroMQ endpoint, ``tcp://host:port``."""
    return f"tcp://{host}:{port}"


def new_dealer(
    context: zmq.Context[zmq.Socket[bytes]],
    node_id: str,
    *,
    keepalive: bool,
    linger_ms: int | None = None,
    receive_timeout_ms: int | None = None,
) -> zmq.Socket[bytes]:
    """A DEALER whose identity is ``node_id``, not connected yet.

    ``keepalive``: TCP keepalive, probes after ``KEEPALIVE_IDLE`` s of silence; ``linger_ms`` (ZMQ_LINGER) and
    ``receive_timeout_ms`` (ZMQ_RCVTIMEO): set only when given, libzmq's defaults otherwise.
    """
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, node_id.encode())
    if keepalive:
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, KEEPALIVE_IDLE)
    if linger_ms is not None:
        sock.setsockopt(zmq.LINGER, linger_ms)
    if receive_timeout_ms is not None:
        sock.setsockopt(zmq.RCVTIMEO, receive_timeout_ms)
    return sock


class ProcessUsage:
    """This process's CPU and memory, the figures a heartbeat carries."""

    def __init__(self) -> None:
        self._process = psutil.Process()

    def cpu_percent(self, interval: float | None = None) -> float:
        """CPU % since the previous call (``interval`` None: at once), or over ``interval`` s (blocks that long)."""
        return float(self._process.cpu_percent(interval))

    def rss(self) -> int:
        """The resident set size in bytes."""
        return int(self._process.memory_info().rss)

    def measure(self) -> tuple[float, int]:
        """``(cpu_percent(), rss())``, in that order."""
        return self.cpu_percent(), self.rss()


def new_session(config: WorkerConfig, stats: RequestStats, resources: Callable[[], tuple[float, int]]) -> WorkerSession:
    """The sans-IO session; its stats reports are taken from ``stats`` at the wall-clock time of each report."""
    return WorkerSession(config, report=lambda reset: stats.take_report(time.time(), reset=reset), resources=resources)


def log_effect(effect: Log) -> None:
    """Write a session ``Log`` effect to the ``worker`` logger at its level."""
    log.log(logging.getLevelName(effect.level.upper()), effect.text)


def finish(code: int | None, reason: str, stats: RequestStats) -> int:
    """Log the closing line; the exit code (``EXIT_SOFTWARE`` when the session gave none)."""
    log.info("Exiting (%s); requests made: %d, failures: %d", reason, stats.requests_total, stats.failures_total)
    return code if code is not None else EXIT_SOFTWARE
