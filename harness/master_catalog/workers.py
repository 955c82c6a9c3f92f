"""Fake workers on real DEALER sockets, for the master catalog.

One thread owns every socket of a ``FakeWorkers``: the one that made it (a case's thread). It makes, polls, sends
on and closes them; any other thread's call is refused. Nothing here waits without a deadline: ``run`` pumps the
sockets (each worker's ``FakeWorkerCore`` decides what to send and when) until a predicate holds or time is up.
Every frame each way is recorded with its time, undecodable ones with their bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from harness.errors import MalformedFrame
from harness.protocol.codec import decode, encode, encode_parts
from harness.protocol.fake_worker import FakeWorkerCore
from harness.protocol.messages import Message

MAX_WORKERS = 2000  # sockets one FakeWorkers may hold (master-run --swarm is checked against it)
SEND_QUEUE = 10_000  # messages a fake worker's socket queues for a slow master (a flood's whole burst fits)
POLL_SLICE = 0.05  # seconds: the longest poll, so a predicate on outside state (the master's log) is seen soon


@dataclass(frozen=True)
class WireRecord:
    """One frame each way: ``direction`` is ``w2m`` or ``m2w``; ``message`` None for an undecodable frame."""

    t: float
    direction: str
    node: str
    message: Message | None
    raw: bytes = b""
    problem: str = ""

    def line(self, t0: float) -> str:
        if self.message is None:
            what = f"UNDECODABLE ({self.problem}) {self.raw[:64]!r}"
        else:
            what = f"{self.message.type} {self.message.data!r}" + (f" [{self.problem}]" if self.problem else "")
        arrow = "->" if self.direction == "w2m" else "<-"
        return f"{self.t - t0:9.3f}s {self.node} {arrow} {what}"[:2000]


class Interrupted(Exception):
    """The run is being stopped (Ctrl-C, SIGTERM): the case ends at its next wait."""


class NotOwner(RuntimeError):
    """A thread other than the sockets' owner called in (a harness bug)."""


class FakeWorkers:
    """The fake workers of one case, all on the calling thread; use as a context manager so sockets are closed."""

    def __init__(self, endpoint: str, clock: Callable[[], float], stop: threading.Event | None = None) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self._stop = stop
        self.records: list[WireRecord] = []
        self.cores: dict[str, FakeWorkerCore] = {}
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._context.set(zmq.MAX_SOCKETS, MAX_WORKERS + 64)
        self._poller = zmq.Poller()
        self._owner = threading.get_ident()

    def __enter__(self) -> FakeWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_owner(self) -> None:
        if threading.get_ident() != self._owner:
            raise NotOwner("fake worker sockets are used only by the thread that made them")

    # -- workers -----------------------------------------------------------------------------

    def add(self, core: FakeWorkerCore, *, register: bool = True) -> FakeWorkerCore:
        """Connect ``core``'s DEALER (identity = its node id); with ``register``, send its client_ready now."""
        self._check_owner()
        if core.node_id in self._sockets:
            raise ValueError(f"a fake worker {core.node_id!r} is connected already")
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, core.node_id.encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, SEND_QUEUE)
        sock.connect(self.endpoint)
        self._sockets[core.node_id] = sock
        self._poller.register(sock, zmq.POLLIN)
        self.cores[core.node_id] = core
        if register:
            self._send_all(core.node_id, core.start(self.clock()))
        return core

    def drop(self, node: str) -> None:
        """Close ``node``'s socket at once (a worker that vanished); its core's record stays."""
        self._check_owner()
        sock = self._sockets.pop(node)
        self._poller.unregister(sock)
        sock.close(0)

    def close(self) -> None:
        self._check_owner()
        for node in list(self._sockets):
            self.drop(node)
        self._context.term()

    # -- sending -----------------------------------------------------------------------------

    def send(self, node: str, message_type: str, data: Any = None, node_id: str | None = None) -> None:
        """A message from ``node`` (``node_id`` in the envelope defaults to the same id)."""
        self._send_all(node, [Message(message_type, data, node if node_id is None else node_id)])

    def send_raw(self, node: str, frame: bytes, problem: str) -> None:
        """A frame exactly as given (malformed on purpose), recorded as undecodable with ``problem``."""
        self._check_owner()
        self._sockets[node].send(frame, zmq.NOBLOCK)
        self.records.append(WireRecord(self.clock(), "w2m", node, None, frame[:4096], problem))

    def send_many(self, node: str, message_type: str, data: Any, count: int) -> int:
        """``count`` copies at once, without waiting (a flood); returns how many the socket took."""
        self._check_owner()
        frame = encode_parts(message_type, data, node)
        sent = 0
        sock = self._sockets[node]
        for _ in range(count):
            try:
                sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                break
            sent += 1
        self.records.append(WireRecord(self.clock(), "w2m", node, Message(message_type, {"flood": sent}, node)))
        return sent

    def _send_all(self, node: str, messages: list[Message]) -> None:
        self._check_owner()
        sock = self._sockets[node]
        for message in messages:
            try:
                sock.send(encode(message), zmq.NOBLOCK)
            except zmq.Again:  # the pipe to the master is full (it reads slowly, or not at all): recorded, not sent
                self.records.append(WireRecord(self.clock(), "w2m", node, message, problem="not sent: the pipe is full"))
                continue
            self.records.append(WireRecord(self.clock(), "w2m", node, message))

    # -- pumping -----------------------------------------------------------------------------

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Pump every socket for up to ``seconds`` (heartbeats when due, replies to the master); True as soon as
        ``until()`` holds (checked after every event, and at least every POLL_SLICE), False when time ran out."""
        self._check_owner()
        deadline = self.clock() + seconds
        while True:
            if self._stop is not None and self._stop.is_set():
                raise Interrupted("the run is being stopped")
            now = self.clock()
            for node, core in list(self.cores.items()):
                if node in self._sockets:
                    self._send_all(node, core.due(now))
            if until is not None and until():
                return True
            if now >= deadline:
                return until is None
            dues = [d for n, c in self.cores.items() if n in self._sockets and (d := c.next_due()) is not None]
            wait = min([deadline, *dues]) - now
            timeout_ms = round(1000 * max(0.0, min(wait, POLL_SLICE)))
            events = dict(self._poller.poll(timeout_ms))
            for node, sock in list(self._sockets.items()):
                if sock in events:
                    self._read(node, sock)

    def _read(self, node: str, sock: zmq.Socket[bytes]) -> None:
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now = self.clock()
            frame = frames[-1] if frames else b""
            try:
                message = decode(frame)
            except MalformedFrame as exc:
                self.records.append(WireRecord(now, "m2w", node, None, frame[:4096], str(exc)))
                continue
            self.records.append(WireRecord(now, "m2w", node, message))
            replies = self.cores[node].receive(message, now)
            if replies:
                self._send_all(node, replies)
