"""The fake master's ROUTER and the one thread that owns it: binding, the receive path, the send path, the ticks.

``SocketLoop`` runs on a ``harness.owner.SocketOwner`` (the thread ``fakemaster-router``); everything here runs
on that thread. The receive path (``_read_batch`` and ``_receive``: read, decode and check, record, react)
runs for every frame a worker sends and is kept lean: one object, its own attributes, nothing it can do
without. Replies and every other send go through the fault plan (``fakemaster.outbound_faults``) to
``send_frames``, which records each send and each refusal. Components with deadlines of their own (fault
deliveries, pauses, a rebind) are ``Timer``s, run after the loop's own two: the lag probe and the liveness tick.

Before a liveness tick the loop reads whatever is queued, as Locust's heartbeat checker only runs once its
receive loop has nothing left to read; a tick that finds messages still queued after half an interval is
skipped and noted ("harness fell behind"), never run against heartbeats not yet read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import zmq

from fakemaster.outbound_faults import OutboundFaults, join_tags
from fakemaster.socket_monitor import ConnectionMonitor
from harness.clock import Clock
from harness.errors import MalformedFrame
from harness.lag import LagProbe
from harness.owner import RECV_BATCH, SocketOwner
from harness.protocol.codec import decode, encode
from harness.protocol.master import MasterCore
from harness.protocol.messages import Message
from harness.protocol.schema import Severity
from harness.protocol.timing import Timing
from harness.trace import Kind, Trace

_RECV, _SEND, _SEND_FAILED = Kind.RECV, Kind.SEND, Kind.SEND_FAILED  # globals: an enum member off its class costs more
_ERROR = Severity.ERROR
_NOBLOCK = int(zmq.NOBLOCK)  # plain ints: combining zmq's Flag members costs an enum call per send
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
LAG_PROBE_PERIOD = 0.05  # seconds between the socket thread's own lag samples
TRACE_KEEP_BYTES = 64 * 1024  # raw frames sent beyond this size are not copied into the trace (size only)


def _failure(reason: str, tags: str) -> str:
    return f"{reason} [{tags}]" if tags else reason


class Timer(Protocol):
    """A component with deadlines of its own on the owner thread (fault deliveries, pauses, a rebind)."""

    def next_deadline(self) -> float | None:
        """Its earliest deadline, if any."""

    def on_deadline(self, now: float) -> None:
        """Do what has fallen due by ``now``."""


class SocketLoop:
    """The ROUTER, its owner thread, and what that thread does with each frame in and out.

    Start it with ``start``; other threads reach it only through ``owner.call``. ``silenced``, ``handed_over``
    and ``down`` are switched by ``fakemaster.pauses`` and ``fakemaster.restarts``; the receive and send paths
    read them.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clock: Clock,
        timing: Timing,
        core: MasterCore,
        trace: Trace,
        monitor: bool,
        sockopts: Mapping[int, int],
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0  # the bound port once started; a restart rebinds the same one
        self.clock = clock
        self.timing = timing
        self.core = core
        self.trace = trace
        self._sockopts = dict(sockopts)
        self.lag = LagProbe()  # how late the socket thread's own timers ran (harness overload, not the worker's doing)
        self._probe_at: float | None = None
        self.silenced = False  # heartbeats go unanswered (master-silence)
        self.handed_over = False  # ROUTER_HANDOVER was on at some point (a pause in reading)
        self.down: str | None = None  # why sends fail while the ROUTER is closed
        self._identities_seen: set[bytes] = set()
        self._names: dict[bytes, str] = {}  # identity -> its trace rendering
        self.owner = SocketOwner(
            self.bind, self._on_readable, self._next_deadline, self._on_deadline, clock.now, name="fakemaster-router"
        )
        self._monitor = ConnectionMonitor(self.owner, self.note) if monitor else None
        self.faults = OutboundFaults(self.send_frames, clock, trace)
        self._dispatch = self.faults.dispatch  # bound once: every reply goes through it
        self._timers: list[Timer] = [self.faults]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the liveness timer and the lag probe, then the owner thread (binding the ROUTER); any thread."""
        self.core.start(self.clock.now())  # before the owner thread first computes its poll deadline
        self._probe_at = self.clock.now() + LAG_PROBE_PERIOD
        self.owner.start()

    def add_timer(self, timer: Timer) -> None:
        """Poll ``timer``'s deadlines too, after those added before it (before ``start``)."""
        self._timers.append(timer)

    @property
    def endpoint(self) -> str:
        """The ROUTER's address, for workers to connect to."""
        return f"tcp://{self.host}:{self.port}"

    def bind(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        """A new ROUTER bound to the port (the requested one, else a free one; once bound, that one again)."""
        sock = context.socket(zmq.ROUTER)
        try:
            # Refuse, rather than silently drop, sends to unknown peers or beyond the high-water mark:
            # every message the harness could not deliver is recorded as such.
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.LINGER, 0)
            for option, value in self._sockopts.items():
                sock.setsockopt(option, value)
            port = self.port or self._requested_port
            if port:
                sock.bind(f"tcp://{self.host}:{port}")
                self.port = port
            else:
                self.port = sock.bind_to_random_port(f"tcp://{self.host}")
        except BaseException:
            sock.close(linger=0)
            raise
        if self._monitor is not None:
            self._monitor.attach(sock)
        return sock

    def close_router(self) -> None:
        """Close the ROUTER and its monitor."""
        if self._monitor is not None:
            self._monitor.detach(self.owner.socket)
        self.owner.close_socket()

    def note(self, text: str) -> None:
        """Append a NOTE record; any thread."""
        self.trace.append(self.clock.now(), Kind.NOTE, note=text)

    def fault_note(self, text: str) -> None:
        """Append a FAULT record; any thread."""
        self.trace.append(self.clock.now(), Kind.FAULT, note=text)

    # -- receiving ---------------------------------------------------------------------------

    def _on_readable(self, sock: zmq.Socket[bytes]) -> None:
        self._read_batch(sock)

    def _read_batch(self, sock: zmq.Socket[bytes]) -> bool:
        """Read up to RECV_BATCH messages; True if that many were read (more may be queued)."""
        recv = sock.recv
        # The fast path, for a message with nothing wrong (most heartbeats and stats): decoded and checked once by
        # the core's own decode and schema (``MasterCore.accept``), recorded without an Inbound. Anything else
        # (several frames, a violation, a handed-over connection) goes the long way, ``_receive``.
        accept, react, add, now = self.core.accept, self.core.react_clean, self.trace.add, self.clock.now
        seen, names, core_notes = self._identities_seen, self._names, self.core.notes
        for _ in range(RECV_BATCH):
            try:
                identity = recv(_NOBLOCK)
            except zmq.Again:
                return False
            # A ROUTER message is its peer's identity and then at least one frame, delivered all at once. The
            # frame says whether more follow (recv_multipart asks the socket, which costs more than the recv).
            frame = recv(_NOBLOCK, copy=False)
            if frame.more:
                payload = [frame.bytes]
                while frame.more:
                    frame = recv(_NOBLOCK, copy=False)
                    payload.append(frame.bytes)
                self._receive(identity, payload)
                continue
            data = frame.bytes
            message = accept(identity, data)
            if message is None or self.handed_over:
                self._receive(identity, [data])
                continue
            seen.add(identity)
            add(now(), _RECV, names.get(identity) or self._name(identity), message, (), len(data), ())
            replies, changes = react(identity, message)
            if replies or changes or core_notes:
                self._after_react(identity, replies, changes)
        return True

    def _read_before_tick(self) -> bool:
        """Read everything queued before a liveness tick; True if messages were still queued after half an interval.

        The real master's heartbeat checker runs on the event loop of its receive loop, which does not yield
        while messages are queued: it never judges a worker whose heartbeat is waiting to be read. Reading
        first keeps a busy fake master as fair (and the give-up keeps it answering its own calls).
        """
        sock = self.owner.socket
        if sock is None or not self.owner.reading:
            return False  # a pause in reading is a fault on purpose: the tick runs
        give_up = self.clock.now() + self.timing.heartbeat_interval / 2
        while self._read_batch(sock):
            if self.clock.now() >= give_up:
                return True
        return False

    def _name(self, identity: bytes) -> str:
        """An identity as the trace shows it (cached: a worker's frames all carry the same one)."""
        name = self._names.get(identity)
        if name is None:
            name = self._names[identity] = identity.decode("utf-8", "backslashreplace")
        return name

    def _receive(self, identity: bytes, payload: list[bytes]) -> None:
        """Record one received message and react to it: the general path (see ``_read_batch`` for the fast one)."""
        core = self.core
        if self.handed_over:
            identity = self._original_identity(identity, payload)
        self._identities_seen.add(identity)
        inbound = core.inspect(identity, payload)
        message, violations = inbound.message, inbound.violations
        if violations:
            broken = message is None or any(v.severity is _ERROR for v in violations)
        else:
            broken = message is None
        self.trace.add(
            self.clock.now(),
            _RECV,
            self._names.get(identity) or self._name(identity),
            message,
            inbound.frames if broken else (),
            len(payload[0]) if len(payload) == 1 else sum(len(f) for f in payload),
            violations,
        )
        replies, changes = core.react(inbound)
        if replies or changes or core.notes:
            self._after_react(identity, replies, changes)

    def _after_react(self, identity: bytes, replies: list[Message], changes: list[tuple[str, Any]]) -> None:
        """Record what the master profile made the core do, send its automatic replies (withheld while silenced) and
        record its liveness changes."""
        notes = self.core.notes
        while notes:
            self.note(notes.pop(0))
        for reply in replies:
            target = identity if reply.type == "ack" else reply.node_id.encode()
            if self.silenced and reply.type == "heartbeat":
                self.faults.record_fault("withheld: master-silence", (target, [], reply, ""))
                continue
            self._dispatch((target, [encode(reply)], reply, ""))
        if changes:
            self._record_liveness(changes)

    def _original_identity(self, identity: bytes, payload: list[bytes]) -> bytes:
        """The identity a handed-over connection had (see ``fakemaster.pauses``).

        Handover gives the replaced connection a routing id libzmq generates (a zero byte and four more); its
        unread messages then arrive under that id. Only such an id never seen before, after a handover, whose
        message names a node_id already seen as an identity, is read as that node_id: a worker that sets no
        identity at all keeps being judged for it.
        """
        generated = len(identity) == 5 and identity[:1] == b"\x00"
        if not (self.handed_over and generated and identity not in self._identities_seen and len(payload) == 1):
            return identity
        try:
            node_id = decode(payload[0]).node_id
        except MalformedFrame:
            return identity
        if node_id.encode("utf-8", "surrogateescape") not in self._identities_seen:
            return identity  # not a connection we knew under that name: judged as it comes
        self.note(f"a message left on a connection replaced during a pause: read as from {node_id!r}")
        return node_id.encode("utf-8", "surrogateescape")

    # -- timers ------------------------------------------------------------------------------

    def _on_tick(self) -> None:
        skipped = self.core.skipped_ticks
        due = self.core.next_tick
        if due is not None and self.clock.now() >= due and self._read_before_tick():
            self.core.skip_tick(self.clock.now())
            self.note(
                f"harness fell behind: {self.core.skipped_ticks - skipped} liveness tick(s) skipped (messages still queued)"
            )
            return
        self._record_liveness(self.core.tick(self.clock.now()))
        if self.core.skipped_ticks > skipped:
            self.note(f"harness fell behind: {self.core.skipped_ticks - skipped} liveness tick(s) skipped")

    def _next_deadline(self) -> float | None:
        """The owner thread's next timer: liveness tick, lag probe, or a timer's (delivery, held batch, resume, ...)."""
        deadline = self.core.next_tick
        probe = self._probe_at
        if probe is not None and (deadline is None or probe < deadline):
            deadline = probe
        for timer in self._timers:
            candidate = timer.next_deadline()
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        return deadline

    def _on_deadline(self) -> None:
        now = self.clock.now()
        if self._probe_at is not None and now >= self._probe_at:
            self.lag.add(now, now - self._probe_at)
            self._probe_at = now + LAG_PROBE_PERIOD
        self._on_tick()
        for timer in self._timers:
            timer.on_deadline(now)

    def _record_liveness(self, changes: list[tuple[str, Any]]) -> None:
        for node_id, change in changes:
            self.trace.add(self.clock.now(), Kind.LIVENESS, node_id, note=str(change))

    # -- sending -----------------------------------------------------------------------------

    def send_frames(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str = "") -> bool:
        """Hand one message to the ROUTER and record the outcome (owner thread only; no faults applied)."""
        self.owner.check_owner("a ROUTER send")
        size = len(frames[0]) if len(frames) == 1 else sum(len(f) for f in frames)
        kept: tuple[bytes, ...] = ()
        if message is None:
            if size <= TRACE_KEEP_BYTES:
                kept = tuple(frames)
            else:
                tag = join_tags(tag, f"frames not kept: {size} bytes")
        name = self._name(identity)
        sock = self.owner.socket
        if sock is None:
            self.trace.add(
                self.clock.now(), _SEND_FAILED, name, message, kept, size, (), _failure(self.down or "master down", tag)
            )
            return False
        try:
            if len(frames) == 1:  # what send_multipart does, without its per-part checks; the identity frame decides
                sock.send(identity, _NOBLOCK_SNDMORE)
                sock.send(frames[0], _NOBLOCK)
            else:
                sock.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.Again:
            self.trace.add(
                self.clock.now(), _SEND_FAILED, name, message, kept, size, (), _failure("high-water mark reached", tag)
            )
            return False
        except zmq.ZMQError as exc:
            note = _failure(f"{exc.strerror} (no such peer?)", tag)
            self.trace.add(self.clock.now(), _SEND_FAILED, name, message, kept, size, (), note)
            return False
        self.trace.add(self.clock.now(), _SEND, name, message, kept, size, (), tag)
        return True
