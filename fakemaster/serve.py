"""The fake master serving on its own (``locust-conformance master --serve``), so it can be judged as a master.

No script drives it: it acks, replies to heartbeats, applies the missing rule and crashes its listener exactly as
its master profile says, and logs what a Locust master logs about its workers, in Locust's words (registrations,
"missing" marks, a dead listener). The master catalog reads those lines from any master alike. Until stopped
(SIGTERM or SIGINT); then, as Locust's master does on quit, it sends quit to every worker.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from fakemaster.master import FakeMaster
from harness.protocol.master import CRASH_NOTE
from harness.protocol.messages import MessageType
from harness.trace import Kind

# Locust 2.47's own wording (locust.runners) and log format (locust.log), which harness.master_catalog.master_log
# reads: "[time] host/LEVEL/logger: message".
LOG_FORMAT = "[%(asctime)s] {host}/%(levelname)s/%(name)s: %(message)s"
READY_LINE = "{node} (index {index}) reported as ready. {count} workers connected."
MISSING_LINE = "Worker {node} failed to send heartbeat, setting state to missing."
CRASH_LINE = "Unhandled exception in greenlet: <Greenlet client_listener>: {why}"
POLL = 0.02  # seconds between looks at the trace and the registered workers

log = logging.getLogger("fakemaster.serve")


def serve(fake: FakeMaster, stop: threading.Event) -> int:
    """Log the master's view of its workers until ``stop`` is set; then quit every worker. Returns 0."""
    seen: set[str] = set()
    cursor = 0
    while True:
        stopping = stop.wait(POLL)
        for record in fake.trace.records(cursor):
            cursor = record.seq + 1
            if record.kind is Kind.LIVENESS and record.note == "missing":
                log.info(MISSING_LINE.format(node=record.identity))
            elif record.kind is Kind.NOTE and CRASH_NOTE in record.note:
                log.critical(CRASH_LINE.format(why=record.note.split(CRASH_NOTE, 1)[1]))
        workers = fake.workers()
        seen &= set(workers)  # one that left (quit, deleted) and comes back is logged again, as Locust does
        connected = sum(1 for view in workers.values() if not view.missing)  # Locust counts ready/spawning/running
        for node, view in workers.items():
            if node not in seen:
                seen.add(node)
                log.info(READY_LINE.format(node=node, index=view.index, count=connected))
        if stopping:  # one last look first: what happened before the signal is logged
            break
    fake.broadcast(MessageType.QUIT)
    return 0


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (installed on the main thread)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
