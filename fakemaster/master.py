"""FakeMaster: a scriptable Locust master on a ZeroMQ ROUTER bound to 127.0.0.1.

Exactly one thread owns the socket (``SocketOwner``); every public method here
may be called from any thread and hands its work to that thread. Every frame
in both directions is recorded in ``trace`` with a monotonic timestamp.

Faults (``harness.faults``) are applied to everything the master sends except
storms: the owner thread keeps delayed deliveries in a heap and held messages
by token, and its poll deadline is the earliest of the liveness tick, the next
delivery, a held batch's time-out, and a pending resume, end of silence or
rebind. Every fault applied, and the start and end of every fault window
(``harness.trace.window_note``), is a ``Kind.FAULT`` record. A socket monitor
on the same thread records ``connection accepted``/``connection disconnected``
notes.

Before a liveness tick the owner thread reads whatever is queued, as Locust's heartbeat checker only runs
once its receive loop has nothing left to read; a tick that finds messages still queued after half an
interval is skipped and noted ("harness fell behind"), never run against heartbeats not yet read.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import socket as pysocket
import struct
import threading
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

import zmq

from fakemaster.storm import JOIN_SLACK, StormHandle, StormResult, StormSpec
from harness.clock import Clock, MonotonicClock
from harness.errors import ExpectationFailed, HarnessFault, MalformedFrame, ScenarioError
from harness.faults import RAW, Decision, FaultEngine, FaultPlan, malformed_frames
from harness.owner import RECV_BATCH, SocketOwner
from harness.protocol.codec import DEFAULT_MAX_FRAME_BYTES, decode, encode
from harness.protocol.master import MasterCore, WorkerView
from harness.protocol.messages import Message
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.lag import LagProbe
from harness.trace import Kind, Trace, TraceRecord, window_note
from harness.zmq_errors import errno_name

# ZMTP protocol errors a failed handshake reports (EVENT_HANDSHAKE_FAILED_PROTOCOL's value), by number.
PROTOCOL_ERRORS = {int(getattr(zmq, n)): n.removeprefix("PROTOCOL_ERROR_") for n in dir(zmq) if n.startswith("PROTOCOL_ERROR_")}

Predicate = Callable[[TraceRecord], bool]
# One outbound message as the owner thread keeps it: identity, payload frames, the message if any, a trace tag.
Outbound = tuple[bytes, list[bytes], Message | None, str]

_RECV, _SEND, _SEND_FAILED = Kind.RECV, Kind.SEND, Kind.SEND_FAILED  # globals: an enum member off its class costs more
_ERROR = Severity.ERROR
_NOBLOCK = int(zmq.NOBLOCK)  # plain ints: combining zmq's Flag members costs an enum call per send
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
LAG_PROBE_PERIOD = 0.05  # seconds between the socket thread's own lag samples
TRACE_KEEP_BYTES = 64 * 1024  # raw frames sent beyond this size are not copied into the trace (size only)
REBIND_RETRY = 0.02  # seconds between attempts to rebind the port after a restart
REBIND_ATTEMPTS = 100  # then the master stays down and says so (a harness fault)
MONITOR_EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def _tags(*parts: str) -> str:
    """Trace tags of a send, joined by "; " (a SEND record's note; a SEND_FAILED note ends with them in brackets)."""
    return "; ".join(p for p in parts if p)


def _failure(reason: str, tags: str) -> str:
    return f"{reason} [{tags}]" if tags else reason


def _check_seconds(what: str, seconds: Any, optional: bool = False) -> None:
    if optional and seconds is None:
        return
    if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds) and seconds >= 0):
        raise ScenarioError(f"{what}: expected a non-negative number of seconds{' or None' if optional else ''}, got {seconds!r}")


def _handshake_failure(event: int, value: int) -> str:
    """What a failed-handshake event says: its kind and its value named (an errno, a ZMTP protocol error, a ZAP status)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return f"no detail, errno {value} {errno_name(value) or 'unknown'}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return f"ZMTP protocol error {PROTOCOL_ERRORS.get(value, hex(value))}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"authentication failed, ZAP status {value}"
    return f"event {event}, value {value}"


def _peer_name(fd: int) -> str:
    """The remote address of a connection's file descriptor, best effort (it may be gone already)."""
    try:
        with pysocket.fromfd(fd, pysocket.AF_INET, pysocket.SOCK_STREAM) as dup:
            host, port = dup.getpeername()[:2]
            return f"{host}:{port}"
    except (OSError, ValueError):
        return "unknown"


class FakeMaster:
    """A Locust-like master whose behaviour is switchable and whose traffic is recorded.

    Args:
        host: the address to bind; loopback only by default.
        port: 0 binds a free port (see ``port`` once started); a restart rebinds the same one.
        timing: Locust's intervals, possibly time-compressed.
        auto_ack / auto_heartbeat / track_liveness: the real master's automatic behaviours.
        clock: the clock for timestamps and deadlines.
        monitor: record connection accepted/disconnected notes from a ZeroMQ socket monitor.
        sockopts: extra ROUTER options set before binding (``{zmq.SNDHWM: 10}``); Locust's defaults otherwise.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timing: Timing = LOCUST_TIMING,
        auto_ack: bool = True,
        auto_heartbeat: bool = True,
        track_liveness: bool = True,
        clock: Clock | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        monitor: bool = True,
        sockopts: Mapping[int, int] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.clock = clock or MonotonicClock()
        self.timing = timing
        self.core = MasterCore(timing, auto_ack, auto_heartbeat, track_liveness, max_frame_bytes)
        self.trace = Trace(t0=self.clock.now())
        self.cursor = 0  # expect() searches records after this sequence number
        self._monitor_enabled = monitor
        self._sockopts = dict(sockopts or {})
        # Owner-thread state: faults, deliveries, pauses, restarts, the socket monitor.
        self._engine: FaultEngine | None = None
        self._heap: list[tuple[float, int, Outbound]] = []
        self._order = itertools.count()
        self._held: dict[int, Outbound] = {}
        self._resume_at: float | None = None
        self._silenced = False
        self._handed_over = False  # ROUTER_HANDOVER was on at some point (a pause in reading)
        self._identities_seen: set[bytes] = set()
        self._names: dict[bytes, str] = {}  # identity -> its trace rendering
        self._silence_until: float | None = None
        self._rebind_at: float | None = None
        self._rebind_attempts = 0
        self.lag = LagProbe()  # how late the socket thread's own timers ran (harness overload, not the worker's doing)
        self._probe_at: float | None = None
        self._down: str | None = None  # why sends fail while the ROUTER is closed
        self._dead = False
        self._monitor: zmq.Socket[bytes] | None = None
        self._monitor_generation = 0
        self._peers: dict[int, str] = {}
        # Storms (any thread).
        self._storms: list[StormHandle] = []
        self._storms_lock = threading.Lock()
        self._storm_numbers = itertools.count(1)
        self._owner = SocketOwner(
            self._bind, self._on_readable, self._next_deadline, self._on_deadline, self.clock.now, name="fakemaster-router"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeMaster:
        self.core.start(self.clock.now())  # before the owner thread first computes its poll deadline
        self._probe_at = self.clock.now() + LAG_PROBE_PERIOD
        self._owner.start()
        self.note(f"master bound on tcp://{self.host}:{self.port}")
        return self

    def close(self) -> None:
        """Cancel running storms, then stop the socket thread (the trace stays readable)."""
        with self._storms_lock:
            storms = list(self._storms)
        for storm in storms:
            storm.cancel()
        for storm in storms:
            try:
                storm.join(JOIN_SLACK)
            except HarnessFault as exc:  # a storm that will not end must not keep the socket thread alive
                self.note(f"harness fault: {exc}")
        self._owner.stop()

    def __enter__(self) -> FakeMaster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def _bind(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
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
        if self._monitor_enabled:
            self._monitor_generation += 1
            self._monitor = sock.get_monitor_socket(
                MONITOR_EVENTS, f"inproc://fakemaster-monitor-{id(self)}-{self._monitor_generation}"
            )
            self._owner.watch(self._monitor, self._on_monitor)
        return sock

    def _close_router(self) -> None:
        """Close the ROUTER and its monitor (owner thread)."""
        sock = self._owner.socket
        if self._monitor is not None:
            self._on_monitor(self._monitor)  # what happened before the close
            self._owner.unwatch(self._monitor)
            if sock is not None:
                sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
            self._peers.clear()
        self._owner.close_socket()

    # -- owner-thread handlers ---------------------------------------------------------------

    def _on_readable(self, sock: zmq.Socket[bytes]) -> None:
        self._read_batch(sock)

    def _read_batch(self, sock: zmq.Socket[bytes]) -> bool:
        """Read up to RECV_BATCH messages; True if that many were read (more may be queued)."""
        recv = sock.recv
        for _ in range(RECV_BATCH):
            try:
                identity = recv(_NOBLOCK)
            except zmq.Again:
                return False
            # A ROUTER message is its peer's identity and then at least one frame, delivered all at once. The
            # frame says whether more follow (recv_multipart asks the socket, which costs more than the recv).
            frame = recv(_NOBLOCK, copy=False)
            payload = [frame.bytes]
            while frame.more:
                frame = recv(_NOBLOCK, copy=False)
                payload.append(frame.bytes)
            self._receive(identity, payload)
        return True

    def _read_before_tick(self) -> bool:
        """Read everything queued before a liveness tick; True if messages were still queued after half an interval.

        The real master's heartbeat checker runs on the event loop of its receive loop, which does not yield
        while messages are queued: it never judges a worker whose heartbeat is waiting to be read. Reading
        first keeps a busy fake master as fair (and the give-up keeps it answering its own calls).
        """
        sock = self._owner.socket
        if sock is None or not self._owner.reading:
            return False  # a pause in reading is a fault on purpose: the tick runs
        give_up = self.clock.now() + self.timing.heartbeat_interval / 2
        while self._read_batch(sock):
            if self.clock.now() >= give_up:
                return True
        return False

    def _on_monitor(self, monitor: zmq.Socket[bytes]) -> None:
        for _ in range(RECV_BATCH):
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2 or len(frames[0]) != 6:
                self.note(f"socket monitor: unreadable event {[f.hex() for f in frames]}")
                continue
            event, value = struct.unpack("=hi", frames[0])
            endpoint = frames[1].decode("utf-8", "replace")
            if event == zmq.EVENT_ACCEPTED:
                self._peers[value] = _peer_name(value)
                self.note(f"connection accepted fd={value} peer={self._peers[value]} endpoint={endpoint}")
            elif event == zmq.EVENT_DISCONNECTED:
                self.note(f"connection disconnected fd={value} peer={self._peers.pop(value, 'unknown')} endpoint={endpoint}")
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # its value is no fd: with one peer it is that peer's
                peers = ",".join(sorted(set(self._peers.values()))) or "unknown"
                self.note(f"connection handshake succeeded (ZMTP) peers={peers} endpoint={endpoint}")
            else:
                self.note(f"connection handshake failed ({_handshake_failure(event, value)}) endpoint={endpoint}")

    def _name(self, identity: bytes) -> str:
        """An identity as the trace shows it (cached: a worker's frames all carry the same one)."""
        name = self._names.get(identity)
        if name is None:
            name = self._names[identity] = identity.decode("utf-8", "backslashreplace")
        return name

    def _receive(self, identity: bytes, payload: list[bytes]) -> None:
        """Record one received message and react to it (owner thread; runs for every frame: kept lean)."""
        if self._handed_over:
            identity = self._original_identity(identity, payload)
        self._identities_seen.add(identity)
        inbound = self.core.inspect(identity, payload)
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
        replies, changes = self.core.react(inbound)
        for reply in replies:
            target = identity if reply.type == "ack" else reply.node_id.encode()
            if self._silenced and reply.type == "heartbeat":
                self._record_fault("withheld: master-silence", (target, [], reply, ""))
                continue
            self._dispatch((target, [encode(reply)], reply, ""))
        if changes:
            self._record_liveness(changes)

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
        """The owner thread's next timer: liveness tick, delivery, held batch, resume, silence end or rebind."""
        deadline = self.core.next_tick
        for candidate in (self._resume_at, self._silence_until, self._rebind_at, self._probe_at):
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        if self._heap and (deadline is None or self._heap[0][0] < deadline):
            deadline = self._heap[0][0]
        if self._engine is not None:
            candidate = self._engine.next_deadline()
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        return deadline

    def _on_deadline(self) -> None:
        now = self.clock.now()
        if self._probe_at is not None and now >= self._probe_at:
            self.lag.add(now, now - self._probe_at)
            self._probe_at = now + LAG_PROBE_PERIOD
        self._on_tick()
        self._deliver_due(now)
        if self._resume_at is not None and now >= self._resume_at:
            self._resume()
        if self._silence_until is not None and now >= self._silence_until:
            self._end_silence()
        if self._rebind_at is not None and now >= self._rebind_at:
            self._rebind(now)

    def _record_liveness(self, changes: list[tuple[str, Any]]) -> None:
        for node_id, change in changes:
            self.trace.add(self.clock.now(), Kind.LIVENESS, node_id, note=str(change))

    def _record_fault(self, text: str, item: Outbound) -> None:
        identity, _, message, _ = item
        self.trace.append(
            self.clock.now(), Kind.FAULT, identity=identity.decode("utf-8", "backslashreplace"), message=message, note=text
        )

    def _send_frames(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str = "") -> bool:
        """Hand one message to the ROUTER and record the outcome (owner thread only)."""
        self._owner.check_owner("a ROUTER send")
        size = len(frames[0]) if len(frames) == 1 else sum(len(f) for f in frames)
        kept: tuple[bytes, ...] = ()
        if message is None:
            if size <= TRACE_KEEP_BYTES:
                kept = tuple(frames)
            else:
                tag = _tags(tag, f"frames not kept: {size} bytes")
        name = self._name(identity)
        sock = self._owner.socket
        if sock is None:
            self.trace.add(
                self.clock.now(), _SEND_FAILED, name, message, kept, size, (), _failure(self._down or "master down", tag)
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

    # -- faults (owner thread) ---------------------------------------------------------------

    def _dispatch(self, item: Outbound) -> bool:
        """Send through the fault plan, if any. False only if the socket refused an immediate delivery."""
        if self._engine is None and not self._heap:  # no fault plan, nothing deferred: straight to the socket
            return self._send_frames(*item)
        now = self.clock.now()
        self._deliver_due(now)
        if self._engine is None:
            return self._send_frames(*item)
        message = item[2]
        decision = self._engine.outbound(message.type if message is not None else RAW, now)
        return self._apply(decision, now, item)

    def _apply(self, decision: Decision, now: float, item: Outbound | None = None) -> bool:
        for text in decision.applied:
            if item is not None:
                self._record_fault(text, item)
            else:
                self.fault_note(text)
        if decision.held is not None and item is not None:
            self._held[decision.held] = item
        for release in decision.released:
            held = self._held.pop(release.token)
            for t in release.deliveries:
                self._schedule(t, now, (*held[:3], _tags(held[3], "released by fault")))
        ok = True
        if item is not None:
            for t in decision.deliveries:
                ok = self._schedule(t, now, item) and ok
        return ok

    def _schedule(self, t: float, now: float, item: Outbound) -> bool:
        if t <= now:
            return self._send_frames(*item)
        heapq.heappush(self._heap, (t, next(self._order), (*item[:3], _tags(item[3], "deferred by fault"))))
        return True

    def _deliver_due(self, now: float) -> None:
        if self._engine is not None:
            self._apply(self._engine.release_due(now), now)
        for _ in range(len(self._heap)):
            if not self._heap or self._heap[0][0] > now:
                break
            self._send_frames(*heapq.heappop(self._heap)[2])

    def _flush_pending(self) -> None:
        """Hand every delayed or held message to the socket now (used when the socket is gone: all fail)."""
        now = self.clock.now()
        if self._engine is not None:
            self._apply(self._engine.release_all(now, self._down or "flushed"), now)
        for _ in range(len(self._heap)):
            self._send_frames(*heapq.heappop(self._heap)[2])

    def _install(self, plan: FaultPlan | None) -> None:
        now = self.clock.now()
        if self._engine is not None:
            self._apply(self._engine.release_all(now, "plan replaced" if plan else "plan cleared"), now)
            self._engine = None
            self.fault_note(window_note("fault-plan", "end", "replaced" if plan else "cleared"))
        if plan is not None:
            self.fault_note(window_note("fault-plan", "start", json.dumps(plan.to_dict())))
            self._engine = FaultEngine(plan, now)

    def _pause(self, seconds: float | None) -> None:
        now = self.clock.now()
        if self._owner.reading:
            self.fault_note(window_note("pause-reading", "start", "until resumed" if seconds is None else f"for {seconds:g} s"))
            self._set_handover(True)
        self._owner.reading = False
        self._resume_at = None if seconds is None else now + seconds

    def _resume(self) -> None:
        self._resume_at = None
        if not self._owner.reading:
            self._set_handover(False)
            self._owner.reading = True
            self.fault_note(window_note("pause-reading", "end"))

    def _original_identity(self, identity: bytes, payload: list[bytes]) -> bytes:
        """The identity a handed-over connection had (see ``_set_handover``).

        Handover gives the replaced connection a routing id libzmq generates (a zero byte and four more); its
        unread messages then arrive under that id. Only such an id never seen before, after a handover, whose
        message names a node_id already seen as an identity, is read as that node_id: a worker that sets no
        identity at all keeps being judged for it.
        """
        generated = len(identity) == 5 and identity[:1] == b"\x00"
        if not (self._handed_over and generated and identity not in self._identities_seen and len(payload) == 1):
            return identity
        try:
            node_id = decode(payload[0]).node_id
        except MalformedFrame:
            return identity
        if node_id.encode("utf-8", "surrogateescape") not in self._identities_seen:
            return identity  # not a connection we knew under that name: judged as it comes
        self.note(f"a message left on a connection replaced during a pause: read as from {node_id!r}")
        return node_id.encode("utf-8", "surrogateescape")

    def _set_handover(self, on: bool) -> None:
        """ROUTER_HANDOVER while reading is paused (owner thread only).

        A connection keeps its identity until its unread messages are read, and a ROUTER without handover
        (Locust's) rejects a reconnecting peer with that identity for good: a pause across a worker's
        reconnect would cut the worker off, the harness's doing. Reading normally, the fake master is
        exactly as strict as Locust's.
        """
        if self._owner.socket is not None:
            self._owner.socket.setsockopt(zmq.ROUTER_HANDOVER, int(on))
            self._handed_over = self._handed_over or on

    def _silence(self, seconds: float | None) -> None:
        if not self._silenced:
            self.fault_note(window_note("master-silence", "start", "until ended" if seconds is None else f"for {seconds:g} s"))
        self._silenced = True
        self._silence_until = None if seconds is None else self.clock.now() + seconds

    def _end_silence(self) -> None:
        self._silence_until = None
        if self._silenced:
            self._silenced = False
            self.fault_note(window_note("master-silence", "end"))

    def _go_down(self, down_for: float) -> None:
        if self._dead:
            raise ScenarioError("restart: the master is dead (die() was called) and cannot restart")
        if self._owner.socket is None:
            raise ScenarioError("restart: the master is already down")
        self.fault_note(
            window_note("master-down", "start", f"restart: ROUTER closed, rebinding port {self.port} in {down_for:g} s")
        )
        self._close_router()
        self._down = "master down (restarting)"
        self.core.workers.clear()  # a restarted master has forgotten every worker, and their indexes
        self.core.indexes.clear()
        self._flush_pending()
        self._rebind_at = self.clock.now() + down_for
        self._rebind_attempts = 0

    def _rebind(self, now: float) -> None:
        try:
            self._owner.open_socket(self._bind)
        except zmq.ZMQError as exc:
            self._rebind_attempts += 1
            if self._rebind_attempts < REBIND_ATTEMPTS:
                self._rebind_at = now + REBIND_RETRY
                return
            self._rebind_at = None
            self._down = f"master down (rebind failed: {exc.strerror})"
            self.note(f"harness fault: could not rebind {self.endpoint} after {self._rebind_attempts} attempts: {exc.strerror}")
            return
        self._rebind_at = None
        self._down = None
        self.fault_note(window_note("master-down", "end", f"ROUTER rebound on {self.endpoint} ({self._rebind_attempts} retries)"))

    def _die(self) -> None:
        if self._dead:
            return
        if self._rebind_at is not None or self._owner.socket is None:
            self._rebind_at = None
            self.fault_note(window_note("master-down", "end", "superseded by master death"))
        self.fault_note(window_note("master-death", "start", "ROUTER closed for good"))
        if self._owner.socket is not None:
            self._close_router()
        self._dead = True
        self._down = "master dead"
        self.core.next_tick = None  # a dead master judges nobody
        self._flush_pending()

    # -- faults (any thread) -----------------------------------------------------------------

    def install_faults(self, plan: FaultPlan) -> None:
        """Apply ``plan`` to every message sent from now on (replacing any previous plan; its held messages go now)."""
        if not isinstance(plan, FaultPlan):
            raise ScenarioError(f"install_faults takes a FaultPlan, got {type(plan).__name__}")
        self._owner.call(lambda: self._install(plan))

    def clear_faults(self) -> None:
        """Stop applying faults; held messages are released now, delayed ones still arrive on time."""
        self._owner.call(lambda: self._install(None))

    def pause_reading(self, seconds: float | None = None) -> None:
        """Stop reading the ROUTER, so the workers' sends pile up against the high-water marks.

        With ``seconds``, reading resumes by itself then; otherwise at ``resume_reading``. Peers still
        connect and disconnect meanwhile (libzmq's commands keep running, see ``harness.owner``): only
        messages wait.
        """
        _check_seconds("pause_reading", seconds, optional=True)
        self._owner.call(lambda: self._pause(seconds))

    def resume_reading(self) -> None:
        """Read the ROUTER again (no-op if reading)."""
        self._owner.call(self._resume)

    def silence(self, seconds: float | None = None) -> None:
        """Stop answering heartbeats (everything else goes on), for ``seconds`` or until ``end_silence``."""
        _check_seconds("silence", seconds, optional=True)
        self._owner.call(lambda: self._silence(seconds))

    def end_silence(self) -> None:
        """Answer heartbeats again (no-op if not silenced)."""
        self._owner.call(self._end_silence)

    def restart(self, down_for: float) -> None:
        """Close the ROUTER, forget every worker, and rebind the same port ``down_for`` seconds later.

        Sends while down are recorded as SEND_FAILED "master down"; workers' DEALERs reconnect by
        themselves. Returns at once: wait for the ``master-down end`` FAULT record to see the rebind.
        """
        _check_seconds("restart", down_for)
        self._owner.call(lambda: self._go_down(down_for))

    def die(self) -> None:
        """Close the ROUTER for good; the trace stays readable, sends fail as SEND_FAILED "master dead"."""
        self._owner.call(self._die)

    def fault_note(self, text: str) -> None:
        """Append a FAULT record (window edges come from ``harness.trace.window_note``); any thread."""
        self.trace.append(self.clock.now(), Kind.FAULT, note=text)

    # -- storms (any thread) -----------------------------------------------------------------

    def storm(self, spec: StormSpec) -> StormResult:
        """Run a storm to its end and return what it did (see ``fakemaster.storm``)."""
        return self.storm_async(spec).join(spec.duration + 2 * JOIN_SLACK)

    def storm_async(self, spec: StormSpec) -> StormHandle:
        """Start a storm and return at once; ``handle.join(timeout)`` gives its StormResult."""
        if not isinstance(spec, StormSpec):
            raise ScenarioError(f"storm takes a StormSpec, got {type(spec).__name__}")
        node_id = spec.to if spec.to is not None else self.default_worker()
        index = self._owner.call(lambda: self.core.indexes.get(node_id, 0))
        handle = StormHandle(spec, self, f"storm#{next(self._storm_numbers)}", node_id, index, self.clock.now)
        with self._storms_lock:
            self._storms.append(handle)
        return handle.start()

    def storm_send(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str) -> bool:
        """A storm's send: straight to the socket on the owner thread, bypassing faults (StormTarget)."""
        return self._owner.call(lambda: self._send_frames(identity, frames, message, tag))

    def storm_send_many(self, identity: bytes, batch: list[tuple[list[bytes], Message | None]], tag: str) -> int:
        """A storm's batch: sent in order on the owner thread, each recorded; returns how many the socket took."""

        def send_all() -> int:
            send = self._send_frames
            return sum(send(identity, frames, message, tag) for frames, message in batch)

        return self._owner.call(send_all)

    # -- sending (any thread) ----------------------------------------------------------------

    def send(self, message_type: str, data: Any = None, to: str | None = None) -> bool:
        """Send a message to worker ``to`` (default: the latest registered).

        Returns False if the socket refused it; a message delayed, held or dropped by a fault counts
        as sent (its fate is in the trace).
        """
        node_id = to if to is not None else self.default_worker()
        return self.send_message(Message(message_type, data, node_id))

    def send_message(self, message: Message) -> bool:
        frame = encode(message)
        return self._owner.call(lambda: self._dispatch((message.node_id.encode(), [frame], message, "")))

    def broadcast(self, message_type: str, data: Any = None, to: list[str] | None = None) -> int:
        """Send one message to each worker in ``to`` (default: every registered worker) in one turn of the socket
        thread, as the real master sends a spawn or a quit to all its workers at once. Returns how many the socket
        took; each send and each refusal is recorded as by ``send``."""

        def send_all() -> int:
            sent = 0
            for node in list(self.core.workers) if to is None else to:
                message = Message(message_type, data, node)
                sent += self._dispatch((node.encode(), [encode(message)], message, ""))
            return sent

        return self._owner.call(send_all, timeout=60.0)

    def send_raw(self, frames: list[bytes], to: str | bytes | None = None, tag: str = "") -> bool:
        """Send arbitrary payload frames (malformed on purpose, perhaps) to a worker identity."""
        identity = to.encode() if isinstance(to, str) else to if to is not None else self.default_worker().encode()
        return self._owner.call(lambda: self._dispatch((identity, list(frames), None, tag)))

    def send_malformed(self, kind: str, to: str | None = None, size: int = 0) -> bool:
        """Send ``harness.faults.malformed_frames(kind, ...)``; the SEND record's note is ``malformed:<kind>``."""
        node_id = to if to is not None else self.default_worker()
        return self.send_raw(malformed_frames(kind, node_id, size=size), node_id, tag=f"malformed:{kind}")

    def spawn(
        self,
        user_classes_count: dict[str, int],
        *,
        to: str | None = None,
        stop_timeout: float = 0.0,
        host: str | None = None,
        timestamp: float | None = None,
    ) -> bool:
        """Send a complete 2.47 ``spawn`` (absolute per-class counts, a fresh timestamp)."""
        return self.send("spawn", self._spawn_data(user_classes_count, stop_timeout, host, timestamp), to)

    def spawn_all(
        self,
        user_classes_count: dict[str, int],
        *,
        to: list[str] | None = None,
        stop_timeout: float = 0.0,
        host: str | None = None,
        timestamp: float | None = None,
    ) -> int:
        """``spawn`` to each worker in ``to`` (default: every registered one) at once (``broadcast``)."""
        return self.broadcast("spawn", self._spawn_data(user_classes_count, stop_timeout, host, timestamp), to)

    def _spawn_data(
        self, user_classes_count: dict[str, int], stop_timeout: float, host: str | None, timestamp: float | None
    ) -> dict[str, Any]:
        return {
            "timestamp": self.clock.wall() if timestamp is None else timestamp,
            "user_classes_count": dict(user_classes_count),
            "host": host,
            "stop_timeout": float(stop_timeout),
            "parsed_options": {},
        }

    # -- state (any thread) ------------------------------------------------------------------

    def workers(self) -> dict[str, WorkerView]:
        """A snapshot of the registered workers, as the real master would see them."""
        return self._owner.call(lambda: deepcopy(self.core.workers))

    def worker_ids(self) -> list[str]:
        """The registered workers' ids, oldest registration first (cheap: no copy of their views)."""
        return self._owner.call(lambda: list(self.core.workers))

    def default_worker(self) -> str:
        """The worker a message goes to when none is named: the latest registered, else the latest heard."""
        ids = self._owner.call(lambda: list(self.core.workers))
        if ids:
            return ids[-1]
        last = next((r for r in reversed(self.trace.records()) if r.kind is Kind.RECV), None)
        if last is None:
            raise ScenarioError("no worker has connected yet, so there is nobody to send to")
        return last.message.node_id if last.message else last.identity

    def set_auto(self, *, ack: bool | None = None, heartbeat: bool | None = None, liveness: bool | None = None) -> None:
        """Switch the automatic behaviours on or off."""

        def apply() -> None:
            if ack is not None:
                self.core.auto_ack = ack
            if heartbeat is not None:
                self.core.auto_heartbeat = heartbeat
            if liveness is not None:
                self.core.track_liveness = liveness

        self._owner.call(apply)

    def note(self, text: str) -> None:
        self.trace.append(self.clock.now(), Kind.NOTE, note=text)

    def output_line(self, t: float, text: str) -> None:
        """Record a line the worker printed, read at ``t`` (trace clock); any thread (the output drain's)."""
        self.trace.add(t, Kind.OUTPUT, note=text)

    # -- scripting: waiting and expecting ----------------------------------------------------

    def wait_for(
        self, message_type: str | None = None, within: float = 5.0, where: Predicate | None = None, after: int | None = None
    ) -> TraceRecord | None:
        """The next received message of ``message_type`` matching ``where`` after the cursor, or None."""
        since = self.cursor if after is None else after

        def match(r: TraceRecord) -> bool:
            return (
                r.kind is Kind.RECV
                and r.message is not None
                and (message_type is None or r.message.type == message_type)
                and (where is None or where(r))
            )

        found = self.trace.wait_for(match, since, within, self.clock.now)
        if found is not None and after is None:
            self.cursor = found.seq + 1
        return found

    def expect(
        self, message_type: str, within: float = 5.0, where: Predicate | None = None, description: str = ""
    ) -> TraceRecord:
        """Like ``wait_for`` but a miss raises ExpectationFailed naming what was seen instead."""
        since = self.cursor
        found = self.wait_for(message_type, within, where)
        if found is None:
            seen = [r.message.type for r in self.trace.records(since) if r.kind is Kind.RECV and r.message]
            summary = ", ".join(seen[-12:]) or "nothing"
            want = f"{message_type}{' ' + description if description else ''}"
            raise ExpectationFailed(f"expect.{message_type}", f"{want} within {within:g} s", f"{len(seen)} messages: {summary}")
        return found

    def expect_none(self, message_type: str, within: float, where: Predicate | None = None) -> None:
        """Raise ExpectationFailed if a matching message arrives within ``within`` seconds."""
        found = self.wait_for(message_type, within, where, after=self.cursor)
        if found is not None:
            raise ExpectationFailed(
                f"expect-none.{message_type}",
                f"no {message_type} for {within:g} s",
                f"{message_type} at t={found.t - self.trace.t0:.3f}",
            )

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(max(0.0, seconds))
