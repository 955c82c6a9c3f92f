"""The proxy's socket adapter: workers connect to its ROUTER as if it were the master; for each worker identity it
opens a DEALER to the real master with the same identity and forwards both ways, frame for frame, byte for byte.

One thread owns every socket (``harness.owner.SocketOwner``: the ROUTER is its main socket, the DEALERs are watched
helper sockets); other threads only call ``stop`` or read the trace. Every message read is recorded (``RECV`` from a
worker, ``SEND`` to a worker once handed to its socket), undecodable frames with their bytes, and still forwarded:
the real peer must see what was sent. Faults (``harness.proxy.plan``) apply per direction through the fake master's
``OutboundFaults``; every fault applied is a ``FAULT`` record naming its direction. The real master's missing rule
runs on what each worker sent and on what the master got (``harness.proxy.liveness``).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from fakemaster.outbound_faults import OutboundFaults, SendFrames
from fakemaster.socket_monitor import ConnectionMonitor
from harness.clock import Clock, MonotonicClock
from harness.errors import MalformedFrame, ScenarioError, TransportError
from harness.faults import FaultPlan, malformed_frames
from harness.oracles.connections import connections as monitored_connections
from harness.owner import RECV_BATCH, SocketOwner, readable
from harness.protocol.codec import decode
from harness.protocol.findings import Violation
from harness.protocol.master import MasterCore
from harness.protocol.messages import Direction, Message, MessageType
from harness.protocol.schema import Severity, check_payload
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.proxy.liveness import LivenessViews, View
from harness.proxy.plan import FaultGroup, MalformedChooser, Pause, ProxyPlan
from harness.trace import Kind, Trace, window_note

TO_MASTER, TO_WORKER = "to-master", "to-worker"
HWM = 100_000  # messages a socket queues before refusing more (refusals are recorded, never blocking)
CONNECT_PROBE_S = 2.0
CLOSE_LINGER_MS = 500  # at stop, what was handed to a socket (held messages flushed included) gets this long to go out
DRAIN_AT_STOP_S = 0.5  # at stop, what is still queued in the sockets is read and recorded for at most this long
RESUMED_S = 1.0  # after a to-worker pause, the master's answers read this long are not timed (sent during it?)
MAX_SOCKETS = 20_000  # a DEALER per worker identity ever seen (libzmq's default limit is 1023)
LEFT = frozenset({MessageType.QUIT, MessageType.CLIENT_STOPPED})


@dataclass
class DirectionCounts:
    """What crossed the proxy one way: messages read, handed on, refused by the socket, and copies added."""

    read: int = 0
    forwarded: int = 0
    refused: int = 0

    def to_json(self) -> dict[str, int]:
        return {"read": self.read, "forwarded": self.forwarded, "refused": self.refused}


@dataclass
class Connection:
    """One worker connection as the proxy saw it."""

    identity: str
    first_t: float
    last_t: float
    quit_seen: bool = False  # a quit (either way) or the worker's client_stopped
    beats_delivered: list[float] = field(default_factory=list)  # when each heartbeat the master answers reached it
    readies_delivered: list[float] = field(default_factory=list)  # when each client_ready reached the master's socket
    # When the master's own acks and heartbeat replies were read from it, before any fault of the proxy's: the
    # master's promptness is judged on these, the worker's on what it was delivered (the trace's SEND records).
    # None: read once a to-worker pause ended (when the master sent it cannot be told).
    master_sent: dict[str, list[float | None]] = field(default_factory=lambda: {MessageType.ACK: [], MessageType.HEARTBEAT: []})
    to_master: DirectionCounts = field(default_factory=DirectionCounts)
    to_worker: DirectionCounts = field(default_factory=DirectionCounts)
    raw: bytes = b""  # the socket identity, as the ROUTER gives it
    back: zmq.Socket[bytes] | None = field(default=None, repr=False)  # its DEALER to the master (owner thread's)
    lanes: dict[str, OutboundFaults] = field(default_factory=dict, repr=False)  # direction -> the faults it goes through

    @property
    def counts(self) -> dict[str, DirectionCounts]:
        return {TO_MASTER: self.to_master, TO_WORKER: self.to_worker}


def master_reachable(host: str, port: int, timeout: float = CONNECT_PROBE_S) -> bool:
    """True if something accepts TCP connections at ``host:port`` (a ZeroMQ connect never says)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Proxy:
    """A recording, fault-injecting forwarder between Locust workers and a real master."""

    def __init__(
        self,
        master_host: str,
        master_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        plan: ProxyPlan | None = None,
        timing: Timing = LOCUST_TIMING,
        clock: Clock | None = None,
        freeze_gc: bool = False,
    ) -> None:
        """``freeze_gc``: once a second, move every object alive to the collector's permanent generation
        (``gc.freeze``), so that its full collections, which would walk the whole recording (millions of payloads
        in a long run) for 5-10 ms, walk only what came since. Objects are still freed when unreferenced. For a
        process that runs the proxy (the command, the benchmark); it is the whole process's collector."""
        self.freeze_gc = freeze_gc
        self.master_endpoint = f"tcp://{master_host}:{master_port}"
        self.listen_host = listen_host
        self.port = listen_port
        self.plan = plan or ProxyPlan()
        self.timing = timing
        self.clock = clock or MonotonicClock()
        self.trace = Trace()
        self.connections: dict[str, Connection] = {}
        self.started_at = 0.0
        self._core = MasterCore(auto_ack=False, auto_heartbeat=False, track_liveness=False)  # decoding and checks only
        self._backs: dict[bytes, zmq.Socket[bytes]] = {}
        self._by_identity: dict[bytes, Connection] = {}
        self._lanes: dict[str, list[tuple[FaultGroup, OutboundFaults]]] = {}  # direction -> its groups' fault lanes
        self._malformed: MalformedChooser | None = None
        self._liveness = LivenessViews(timing)
        self._pause_edges: list[tuple[float, Pause, str]] = []  # (when, pause, "start" | "end"), in time order
        self._paused: Counter[str] = Counter()  # direction -> pauses open
        self._monitor: ConnectionMonitor | None = None
        self._stopped = False
        self._draining: set[str] = set()  # directions whose paused side is being read out
        self._resumed_until: dict[str, float] = {}  # direction -> until when its queued messages may still come in
        self._owner = SocketOwner(
            self._bind,
            self._on_front,
            self._next_deadline,
            self._on_deadline,
            self.clock.now,
            name="proxy",
            close_linger_ms=CLOSE_LINGER_MS,
            max_sockets=MAX_SOCKETS,
        )

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> Proxy:
        """Bind and start forwarding; a port in use or a bad address is a ScenarioError saying so."""
        try:
            self._owner.start()
        except TransportError as exc:
            cause = exc.__cause__
            if isinstance(cause, zmq.ZMQError) and cause.errno == errno.EADDRINUSE:
                raise ScenarioError(f"the proxy cannot listen on {self.listen_host}:{self.port}: the port is in use") from None
            raise ScenarioError(
                f"the proxy cannot listen on {self.listen_host}:{self.port or 'any port'}: {cause or exc}"
            ) from None
        self._owner.call(self._begin)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Read and record what is still queued, hand what faults still hold to the sockets (they get
        CLOSE_LINGER_MS to send it), stop the thread and close every socket. Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        try:
            with contextlib.suppress(TransportError):
                self._owner.call(self._flush, timeout)
        finally:
            self._owner.stop(timeout)  # a thread that died is kept in ``failure`` (judged UNKNOWN), not raised here

    @property
    def failure(self) -> BaseException | None:
        """Why the proxy's socket thread died, if it did (a harness failure, never the workers')."""
        return self._owner.failure

    def idle_since(self) -> float | None:
        """When the last message crossed (trace clock), None before the first."""
        return max((c.last_t for c in list(self.connections.values())), default=None)  # the owner thread adds to it

    def all_left(self) -> bool:
        """Every connection seen has ended its session (a quit either way, or the worker's client_stopped)."""
        connections = list(self.connections.values())  # the owner thread adds to it
        return bool(connections) and all(c.quit_seen for c in connections)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per direction over every connection: read, forwarded, refused (owner thread's counters; read after stop)."""
        total = {TO_MASTER: DirectionCounts(), TO_WORKER: DirectionCounts()}
        for c in list(self.connections.values()):
            for direction, n in c.counts.items():
                total[direction].read += n.read
                total[direction].forwarded += n.forwarded
                total[direction].refused += n.refused
        return {d: n.to_json() for d, n in total.items()}

    # -- owner thread ----------------------------------------------------------------------------

    def _bind(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        front = context.socket(zmq.ROUTER)
        try:
            front.setsockopt(zmq.ROUTER_MANDATORY, 1)
            front.setsockopt(zmq.LINGER, 0)
            front.setsockopt(zmq.SNDHWM, HWM)
            front.setsockopt(zmq.RCVHWM, HWM)
            if self.port:
                front.bind(f"tcp://{self.listen_host}:{self.port}")
            else:
                self.port = front.bind_to_random_port(f"tcp://{self.listen_host}")
        except BaseException:
            front.close(linger=0)
            raise
        return front

    def _begin(self) -> None:
        now = self.clock.now()
        self.started_at = self.trace.t0 = now
        self._liveness.start(now)
        front = self._owner.socket
        assert front is not None
        self._monitor = ConnectionMonitor(self._owner, lambda text: self.trace.add(self.clock.now(), Kind.NOTE, note=text))
        self._monitor.attach(front)
        self.trace.add(
            now, Kind.NOTE, note=f"proxy listening on tcp://{self.listen_host}:{self.port}, master {self.master_endpoint}"
        )
        for direction in (TO_MASTER, TO_WORKER):
            send = self._to_master if direction == TO_MASTER else self._to_worker
            groups = self.plan.groups_for(direction)
            lanes = [(g, self._lane(send, direction, g.plan, i, len(groups))) for i, g in enumerate(groups)]
            if not any(not g.workers for g in groups):  # connections no group names go straight through
                lanes.append((FaultGroup(direction, (), FaultPlan()), self._lane(send, direction, None, len(groups), 0)))
            self._lanes[direction] = lanes
        if self.plan.malformed:
            self._malformed = MalformedChooser(self.plan.malformed, self.plan.seed, now)
        for pause in self.plan.pauses:
            self._pause_edges += [(now + pause.start, pause, "start"), (now + pause.end, pause, "end")]
        self._pause_edges.sort(key=lambda e: e[0])

    def _lane(self, send: SendFrames, direction: str, plan: FaultPlan | None, i: int, n: int) -> OutboundFaults:
        label = f"fault-plan-{direction}" + (f"-{i + 1}" if n > 1 else "")
        lane = OutboundFaults(send, self.clock, self.trace, window_label=label, note_prefix=f"{direction}: ")
        if plan is not None:
            lane.install(plan)
        return lane

    def _lane_for(self, direction: str, name: str) -> OutboundFaults:
        """The fault lane of a connection: the first group of the direction that names it."""
        return next(faults for group, faults in self._lanes[direction] if group.names(name))

    def _connection(self, identity: bytes, now: float) -> Connection:
        """The connection of ``identity``, made (with its DEALER to the master) on its first message."""
        conn = self._by_identity.get(identity)
        if conn is not None:
            return conn
        name = identity.decode("utf-8", "backslashreplace")
        if name in self.connections:  # another identity reads the same (invalid UTF-8): kept apart, by its bytes
            name = f"{name}#{identity.hex()}"
        conn = self.connections[name] = Connection(name, now, now, raw=identity)
        conn.lanes = {direction: self._lane_for(direction, name) for direction in (TO_MASTER, TO_WORKER)}
        conn.back = self._dealer(identity, name)
        self._by_identity[identity] = conn
        return conn

    def _dealer(self, identity: bytes, name: str) -> zmq.Socket[bytes]:
        assert self._owner.socket is not None
        back: zmq.Socket[bytes] = self._owner.socket.context.socket(zmq.DEALER)
        back.setsockopt(zmq.IDENTITY, identity)
        back.setsockopt(zmq.LINGER, 0)
        back.setsockopt(zmq.SNDHWM, HWM)
        back.setsockopt(zmq.RCVHWM, HWM)
        back.connect(self.master_endpoint)
        self._backs[identity] = back
        if not self._paused[TO_WORKER]:
            self._owner.watch(back, self._reader(identity))
        self.trace.add(self.clock.now(), Kind.NOTE, name, note="connection: a DEALER to the master for this worker")
        return back

    def _on_front(self, front: zmq.Socket[bytes]) -> None:
        """Read up to RECV_BATCH messages from workers: record each, run the rule on it, forward it. A message with
        nothing wrong takes the core's fast path (``MasterCore.accept``); anything else is inspected and named."""
        recv, accept, add, now_of = front.recv, self._core.accept, self.trace.add, self.clock.now
        for _ in range(RECV_BATCH):
            try:
                identity = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            frame = recv(zmq.NOBLOCK, copy=False)
            frames = [frame.bytes]
            while frame.more:  # a ROUTER message arrives whole: its other frames are there
                frame = recv(zmq.NOBLOCK, copy=False)
                frames.append(frame.bytes)
            now = now_of()
            conn = self._by_identity.get(identity) or self._connection(identity, now)
            conn.last_t = now
            conn.to_master.read += 1
            message = accept(identity, frames[0]) if len(frames) == 1 else None
            if message is not None:
                add(now, Kind.RECV, conn.identity, message, (), len(frames[0]), ())
            else:
                inbound = self._core.inspect(identity, frames)
                message, violations = inbound.message, inbound.violations
                broken = message is None or any(v.severity is Severity.ERROR for v in violations)
                size = sum(len(f) for f in frames)
                add(now, Kind.RECV, conn.identity, message, tuple(frames) if broken else (), size, violations)
            if message is not None:
                self._seen(conn, View.SENT, message, now)
                if message.type in LEFT:
                    conn.quit_seen = True
                elif message.type == MessageType.CLIENT_READY:
                    conn.quit_seen = False  # back in session (Locust's worker re-registers after a stop)
            self._dispatch(TO_MASTER, conn, frames, message, now)

    def _reader(self, identity: bytes) -> Callable[[zmq.Socket[bytes]], None]:
        def read(back: zmq.Socket[bytes]) -> None:
            self._on_back(identity, back)

        return read

    def _on_back(self, identity: bytes, back: zmq.Socket[bytes]) -> None:
        conn = self._by_identity[identity]
        now_of = self.clock.now
        for _ in range(RECV_BATCH):
            try:
                frames = back.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now = now_of()
            conn.last_t = now
            conn.to_worker.read += 1
            message: Message | None = None
            if len(frames) == 1:
                with contextlib.suppress(MalformedFrame):
                    message = decode(frames[0])  # an undecodable frame from the master is forwarded as it is
            if message is not None:
                if message.type == MessageType.QUIT:
                    conn.quit_seen = True  # the worker leaves: neither view counts its silence from now on
                    self._liveness.forget(conn.identity, View.SENT)
                    self._liveness.forget(conn.identity, View.DELIVERED)
                elif message.type in conn.master_sent:
                    # When the master's answer was read; None while this side was paused: it may have come any time
                    conn.master_sent[message.type].append(None if self._paused_since(TO_WORKER) else now)
            self._dispatch(TO_WORKER, conn, frames, message, now)

    def _dispatch(self, direction: str, conn: Connection, frames: list[bytes], message: Message | None, now: float) -> None:
        if self._malformed is not None:
            chosen = self._malformed.choose(direction, conn.identity, message.type if message is not None else None, now)
            if chosen is not None:
                node_id = message.node_id if message is not None else conn.identity
                note = f"{direction}: replaced by malformed frames ({chosen.malformed})"
                self.trace.add(now, Kind.FAULT, conn.identity, message, note=note)
                frames, message = malformed_frames(chosen.malformed, node_id), None
        lane = conn.lanes[direction]
        if not lane.passthrough:
            lane.dispatch((conn.raw, frames, message, direction))
        elif direction == TO_MASTER:  # no fault plan for this connection, nothing deferred: straight to the socket
            self._forward_to_master(conn, frames, message, now, direction)
        else:
            self._to_worker(conn.raw, frames, message, direction)

    def _to_master(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str) -> bool:
        """The send of the to-master fault lanes (``OutboundFaults``): forward one message to the master now."""
        return self._forward_to_master(self._by_identity[identity], frames, message, self.clock.now(), tag)

    def _forward_to_master(self, conn: Connection, frames: list[bytes], message: Message | None, now: float, tag: str) -> bool:
        back = conn.back
        assert back is not None
        try:
            if len(frames) == 1:
                back.send(frames[0], zmq.NOBLOCK)
            else:
                back.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self._owner.touched(back)
            conn.to_master.refused += 1
            note = f"to-master: refused by the socket ({exc.strerror}) [{tag}]"
            self.trace.add(self.clock.now(), Kind.NOTE, conn.identity, message, note=note)
            return False
        self._owner.touched(back)  # the send may have taken the ZMQ_FD edge of a reply waiting on this socket
        conn.to_master.forwarded += 1
        if message is not None:
            if message.type == MessageType.HEARTBEAT:
                if (conn.identity, View.DELIVERED) in self._liveness.workers:  # the master answers only workers it knows
                    conn.beats_delivered.append(now)
            elif message.type == MessageType.CLIENT_READY:
                conn.readies_delivered.append(now)
            self._seen(conn, View.DELIVERED, message, now)
        return True

    def _to_worker(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str) -> bool:
        front = self._owner.socket
        conn = self._by_identity[identity]
        size = sum(len(f) for f in frames)
        violations: tuple[Violation, ...] = ()
        if message is not None:
            violations = tuple(
                Violation.from_problem(f"master.{message.type}", p) for p in check_payload(message, Direction.MASTER_TO_WORKER)
            )
        kept = tuple(frames) if message is None else ()
        if front is None:
            conn.to_worker.refused += 1
            self.trace.add(
                self.clock.now(), Kind.SEND_FAILED, conn.identity, message, kept, size, violations, f"proxy closed [{tag}]"
            )
            return False
        try:
            front.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            conn.to_worker.refused += 1
            self.trace.add(
                self.clock.now(), Kind.SEND_FAILED, conn.identity, message, kept, size, violations, f"{exc.strerror} [{tag}]"
            )
            return False
        conn.to_worker.forwarded += 1
        self.trace.add(
            self.clock.now(), Kind.SEND, conn.identity, message, kept, size, violations, "" if tag == TO_WORKER else tag
        )
        return True

    def _seen(self, conn: Connection, view: View, message: Message, now: float) -> None:
        """A message in ``view`` that counts for the master's rule: a heartbeat or client_ready (re)registers or
        beats; a quit or client_stopped unregisters (the master deletes the worker)."""
        if message.type in (MessageType.HEARTBEAT, MessageType.CLIENT_READY):
            change = self._liveness.beat(conn.identity, view, message.type == MessageType.CLIENT_READY)
            self._liveness_change(conn.identity, view, change, now)
        elif message.type in LEFT:
            self._liveness.forget(conn.identity, view)

    def _liveness_change(self, identity: str, view: View, change: object, now: float) -> None:
        if change is None:
            return
        if view is View.SENT:
            self.trace.add(now, Kind.LIVENESS, identity, note=str(change))
        else:
            self.trace.add(now, Kind.NOTE, identity, note=f"master view: {change}")

    def _next_deadline(self) -> float | None:
        deadlines = [d for d in (f.next_deadline() for f in self._all_lanes()) if d is not None]
        if self._liveness.next_tick is not None:
            deadlines.append(self._liveness.next_tick)
        if self._pause_edges:
            deadlines.append(self._pause_edges[0][0])
        return min(deadlines, default=None)

    def _on_deadline(self) -> None:
        now = self.clock.now()
        while self._pause_edges and self._pause_edges[0][0] <= now:
            _, pause, edge = self._pause_edges.pop(0)
            self._switch_pause(pause, edge)
        for faults in self._all_lanes():
            faults.on_deadline(now)
        ticked = self._liveness.next_tick is not None and self._liveness.next_tick <= now
        for identity, view, change in self._liveness.tick(now):
            self._liveness_change(identity, view, change, now)
        if ticked and self.freeze_gc:
            gc.freeze()

    def _paused_since(self, direction: str) -> bool:
        """This side is paused, its pause ended less than a second ago (what it queued meanwhile may still be read
        now), or the proxy is reading it out at stop."""
        return (
            self._paused[direction] > 0
            or direction in self._draining
            or self.clock.now() < self._resumed_until.get(direction, float("-inf"))
        )

    def _switch_pause(self, pause: Pause, edge: str) -> None:
        self.trace.add(self.clock.now(), Kind.FAULT, note=window_note(pause.label, edge, pause.direction))
        self._paused[pause.direction] += 1 if edge == "start" else -1
        paused = self._paused[pause.direction] > 0
        if pause.direction == TO_MASTER:
            self._owner.reading = not paused
            return
        if paused:
            for back in self._backs.values():
                self._owner.unwatch(back)
            return
        # What the master sent meanwhile, read now (its timing is the pause's, not the master's), for a bounded time:
        # what is left is read as usual once the DEALERs are watched again, and not timed either for a second.
        self._resumed_until[TO_WORKER] = self.clock.now() + RESUMED_S
        self._read_out(TO_WORKER, self.clock.now() + DRAIN_AT_STOP_S)
        for identity, back in self._backs.items():
            self._owner.watch(back, self._reader(identity))

    def _read_out(self, direction: str, until: float | None = None) -> None:
        """Read every message queued on one side now (up to ``until``, the proxy's clock), marked as read out."""
        self._draining.add(direction)
        try:
            if direction == TO_MASTER:
                front = self._owner.socket
                while front is not None and readable(front):
                    self._on_front(front)
                    if until is not None and self.clock.now() >= until:
                        return
                return
            for identity, back in list(self._backs.items()):
                while readable(back):
                    self._on_back(identity, back)
                    if until is not None and self.clock.now() >= until:
                        return
        finally:
            self._draining.discard(direction)

    def silent_connections(self) -> list[str]:
        """The peers of TCP connections still open at the end beyond the workers still in session: a worker whose
        identity another connection holds (a ROUTER without handover, the master's and so the proxy's, ignores the
        second connection for good: nothing it sends arrives) or one that connected and never spoke."""
        open_now = [c for c in monitored_connections(self.trace.records()) if c.closed is None and not c.failed]
        in_session = [c for c in self.connections.values() if not c.quit_seen]
        surplus = len(open_now) - len(in_session)
        return [c.peer for c in open_now] if surplus > 0 else []

    def _all_lanes(self) -> list[OutboundFaults]:
        return [faults for lanes in self._lanes.values() for _, faults in lanes]

    def _flush(self) -> None:
        """At stop: what the sockets still hold is read and recorded (both sides, paused or not), then what the
        faults hold is handed to the sockets, which get CLOSE_LINGER_MS to send it."""
        until = self.clock.now() + DRAIN_AT_STOP_S
        self._read_out(TO_MASTER, until)
        self._read_out(TO_WORKER, until)
        for faults in self._all_lanes():
            if faults.next_deadline() is not None:
                self.trace.add(self.clock.now(), Kind.NOTE, note="the proxy stops: what faults still hold is delivered now")
            faults.flush("the proxy stops")
        if self._monitor is not None:
            self._monitor.detach(self._owner.socket)
        for back in self._backs.values():
            self._owner.unwatch(back)
            back.close(linger=CLOSE_LINGER_MS)
        self._backs.clear()
