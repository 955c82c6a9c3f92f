"""The fake master serving on its own (``locust-conformance master --serve``), so it can be judged as a master.

No script drives it: it acks, replies to heartbeats, applies the missing rule and crashes its listener exactly as
its master profile says, and logs what a Locust master logs about its workers, in Locust's words (registrations,
"missing" marks, a dead listener). The master catalog reads those lines from any master alike. Until stopped
(SIGTERM or SIGINT); then, as Locust's master does on quit, it sends quit to every worker.

``defect`` (``--serve-defect``) makes it a master with one named bug, so each master oracle can be shown failing
on a master that has it (tests/interop/test_master_catalog.py); ``SERVE_DEFECTS`` says what each one does.
"""

from __future__ import annotations

import heapq
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from fakemaster.master import FakeMaster
from harness.protocol.master import CRASH_NOTE
from harness.protocol.messages import MessageType
from harness.trace import Kind, TraceRecord

# Locust 2.47's own wording (locust.runners) and log format (locust.log), which harness.master_catalog.master_log
# reads: "[time] host/LEVEL/logger: message".
LOG_FORMAT = "[%(asctime)s] {host}/%(levelname)s/%(name)s: %(message)s"
READY_LINE = "{node} (index {index}) reported as ready. {count} workers connected."
MISSING_LINE = "Worker {node} failed to send heartbeat, setting state to missing."
CRASH_LINE = "Unhandled exception in greenlet: <Greenlet client_listener>: {why}"
POLL = 0.02  # seconds between looks at the trace and the registered workers
LATE = {"late-ack": 1.5, "late-replies": 1.2}  # seconds the late defects wait
FALSE_MISSING_AFTER = 2.0  # seconds after registering that the false-missing defect marks a worker missing
SERVE_DEFECTS = {
    "shared-index": "every ack carries index 0",
    "nil-ack": "acks with nil data, as Locust 2.10 did (no worker index)",
    "bad-ack-index": "acks with {'index': 'first'}: an index that is no number",
    "late-ack": f"acks {LATE['late-ack']:g} s after client_ready",
    "one-ack": "acks the first client_ready it gets, and no other",
    "first-50-only": "acks and logs as ready only the first 50 workers (the others are never told or counted)",
    "first-ack-only": "acks a worker id once: a restarted worker's client_ready is neither acked nor registered again",
    "every-other-reply": "replies to every second heartbeat only",
    "late-replies": f"replies to each heartbeat {LATE['late-replies']:g} s late",
    "reconnect-wrong": "a frame it cannot decode also gets reconnect sent to the worker heard before (Locust 2.10-2.13.0)",
    "stranger-registers": "a heartbeat from a worker it never registered registers it",
    "false-missing": f"logs every worker missing {FALSE_MISSING_AFTER:g} s after it registered, heartbeats or not",
    "quit-on-register": "sends quit to every worker right after acking it",
}

ACK_DEFECTS = ("shared-index", "nil-ack", "bad-ack-index", "late-ack", "first-ack-only", "one-ack", "first-50-only")
LIMIT = 50  # workers the first-50-only defect takes  # acks sent by the loop

log = logging.getLogger("fakemaster.serve")
Action = Callable[[], object]  # what it returns is not used


class _Server:
    """The serving loop's state: what it logged, what it will do later (a heap of due actions)."""

    def __init__(self, fake: FakeMaster, defect: str | None) -> None:
        self.fake = fake
        self.defect = defect
        self.seen: set[str] = set()
        self.strangers: set[str] = set()
        self.acked: set[str] = set()
        self.beats: dict[str, int] = {}
        self.recent: dict[str, None] = {}  # senders of decodable messages, the latest last
        self.due: list[tuple[float, int, Action]] = []
        self._n = 0

    def later(self, at: float, action: Action) -> None:
        self._n += 1
        heapq.heappush(self.due, (at, self._n, action))

    def run_due(self) -> None:
        now = self.fake.clock.now()
        while self.due and self.due[0][0] <= now:
            heapq.heappop(self.due)[2]()

    def record(self, record: TraceRecord) -> None:
        if record.kind is Kind.LIVENESS and record.note == "missing":
            log.info(MISSING_LINE.format(node=record.identity))
        elif record.kind is Kind.NOTE and CRASH_NOTE in record.note:
            log.critical(CRASH_LINE.format(why=record.note.split(CRASH_NOTE, 1)[1]))
        elif record.kind is Kind.RECV and self.defect is not None:
            self._defective(record)

    def _defective(self, record: TraceRecord) -> None:
        fake, defect, message = self.fake, self.defect, record.message
        if message is None:
            others = [node for node in self.recent if node != record.identity]
            if defect == "reconnect-wrong" and others:
                fake.send(MessageType.RECONNECT, None, to=others[-1])
            return
        node = message.node_id
        if message.type == MessageType.CLIENT_READY and message.data:
            self._ready(record.t, node)
        elif message.type == MessageType.HEARTBEAT:
            self.beats[node] = self.beats.get(node, 0) + 1
            registered = node in fake.workers()
            if defect == "every-other-reply" and registered and self.beats[node] % 2 == 0:
                fake.send(MessageType.HEARTBEAT, None, to=node)
            elif defect == "late-replies" and registered:
                self.later(record.t + LATE["late-replies"], lambda: fake.send(MessageType.HEARTBEAT, None, to=node))
            elif defect == "stranger-registers" and not registered and node not in self.strangers:
                self.strangers.add(node)
                log.info(READY_LINE.format(node=node, index=99, count=len(fake.workers()) + 1))
        self.recent.pop(node, None)
        self.recent[node] = None

    def _ready(self, t: float, node: str) -> None:
        fake, defect = self.fake, self.defect
        if defect in ACK_DEFECTS:
            if defect == "first-ack-only" and node in self.acked:
                return
            if (defect == "one-ack" and self.acked) or (defect == "first-50-only" and len(self.acked) >= LIMIT):
                return
            self.acked.add(node)
            view = fake.workers().get(node)
            data: dict[str, object] | None = {"index": 0 if defect == "shared-index" or view is None else view.index}
            if defect == "nil-ack":
                data = None
            elif defect == "bad-ack-index":
                data = {"index": "first"}
            self.later(t + LATE.get(defect, 0.0), lambda: fake.send(MessageType.ACK, data, to=node))
        elif defect == "quit-on-register":
            self.later(t + 0.05, lambda: fake.send(MessageType.QUIT, None, to=node))
        elif defect == "false-missing":
            self.later(t + FALSE_MISSING_AFTER, lambda: log.info(MISSING_LINE.format(node=node)))

    def log_registrations(self) -> None:
        workers = self.fake.workers()
        self.seen &= set(workers)  # one that left (quit, deleted) and comes back is logged again, as Locust does
        connected = sum(1 for view in workers.values() if not view.missing)  # Locust counts ready/spawning/running
        for node, view in workers.items():
            if node not in self.seen:
                if self.defect == "first-50-only" and node not in self.acked:
                    continue
                self.seen.add(node)
                log.info(READY_LINE.format(node=node, index=view.index, count=connected))


def serve(fake: FakeMaster, stop: threading.Event, defect: str | None = None) -> int:
    """Log the master's view of its workers until ``stop`` is set; then quit every worker. Returns 0."""
    if defect is not None and defect not in SERVE_DEFECTS:
        raise ValueError(f"unknown serve defect {defect!r}; known: {', '.join(SERVE_DEFECTS)}")
    if defect in ACK_DEFECTS:
        fake.set_auto(ack=False)
    if defect in ("every-other-reply", "late-replies"):
        fake.set_auto(heartbeat=False)
    server = _Server(fake, defect)
    cursor = 0
    while True:
        stopping = stop.wait(POLL)
        for record in fake.trace.records(cursor):
            cursor = record.seq + 1
            server.record(record)
        server.run_due()
        server.log_registrations()
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
