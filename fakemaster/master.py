"""FakeMaster: a scriptable Locust master on a ZeroMQ ROUTER bound to 127.0.0.1.

Exactly one thread owns the socket (``SocketOwner``); every public method here
may be called from any thread and hands its work to that thread. Every frame
in both directions is recorded in ``trace`` with a monotonic timestamp.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import Any

import zmq

from harness.clock import Clock, MonotonicClock
from harness.errors import ExpectationFailed, ScenarioError
from harness.owner import RECV_BATCH, SocketOwner
from harness.protocol.codec import DEFAULT_MAX_FRAME_BYTES, encode
from harness.protocol.master import MasterCore, WorkerView
from harness.protocol.messages import Message
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.trace import Kind, Trace, TraceRecord


Predicate = Callable[[TraceRecord], bool]


class FakeMaster:
    """A Locust-like master whose behaviour is switchable and whose traffic is recorded.

    Args:
        host: the address to bind; loopback only by default.
        port: 0 binds a free port (see ``port`` once started).
        timing: Locust's intervals, possibly time-compressed.
        auto_ack / auto_heartbeat / track_liveness: the real master's automatic behaviours.
        clock: the clock for timestamps and deadlines.
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
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.clock = clock or MonotonicClock()
        self.timing = timing
        self.core = MasterCore(timing, auto_ack, auto_heartbeat, track_liveness, max_frame_bytes)
        self.trace = Trace(t0=self.clock.now())
        self.cursor = 0  # expect() searches records after this sequence number
        self._owner = SocketOwner(
            self._bind, self._on_readable, lambda: self.core.next_tick, self._on_tick, self.clock.now, name="fakemaster-router"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeMaster:
        self.core.start(self.clock.now())  # before the owner thread first computes its poll deadline
        self._owner.start()
        self.note(f"master bound on tcp://{self.host}:{self.port}")
        return self

    def close(self) -> None:
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
        # Refuse, rather than silently drop, sends to unknown peers or beyond the high-water mark:
        # every message the harness could not deliver is recorded as such.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.LINGER, 0)
        if self._requested_port:
            sock.bind(f"tcp://{self.host}:{self._requested_port}")
            self.port = self._requested_port
        else:
            self.port = sock.bind_to_random_port(f"tcp://{self.host}")
        return sock

    # -- owner-thread handlers ---------------------------------------------------------------

    def _on_readable(self, sock: zmq.Socket[bytes]) -> None:
        for _ in range(RECV_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._receive(frames[0], frames[1:])

    def _receive(self, identity: bytes, payload: list[bytes]) -> None:
        inbound = self.core.inspect(identity, payload)
        broken = inbound.message is None or any(v.severity is Severity.ERROR for v in inbound.violations)
        self.trace.append(
            self.clock.now(),
            Kind.RECV,
            identity=identity.decode("utf-8", "backslashreplace"),
            message=inbound.message,
            frames=tuple(payload) if broken else (),
            size=sum(len(f) for f in payload),
            violations=inbound.violations,
        )
        replies, changes = self.core.react(inbound)
        for reply in replies:
            self._send_frames(identity if reply.type == "ack" else reply.node_id.encode(), [encode(reply)], reply)
        self._record_liveness(changes)

    def _on_tick(self) -> None:
        skipped = self.core.skipped_ticks
        self._record_liveness(self.core.tick(self.clock.now()))
        if self.core.skipped_ticks > skipped:
            self.note(f"harness fell behind: {self.core.skipped_ticks - skipped} liveness tick(s) skipped")

    def _record_liveness(self, changes: list[tuple[str, Any]]) -> None:
        for node_id, change in changes:
            self.trace.append(self.clock.now(), Kind.LIVENESS, identity=node_id, note=str(change))

    def _send_frames(self, identity: bytes, frames: list[bytes], message: Message | None) -> bool:
        sock = self._owner.socket
        assert sock is not None
        fields: dict[str, Any] = {
            "identity": identity.decode("utf-8", "backslashreplace"),
            "message": message,
            "size": sum(len(f) for f in frames),
        }
        if message is None:
            fields["frames"] = tuple(frames)
        try:
            sock.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.Again:
            self.trace.append(self.clock.now(), Kind.SEND_FAILED, note="high-water mark reached", **fields)
            return False
        except zmq.ZMQError as exc:
            self.trace.append(self.clock.now(), Kind.SEND_FAILED, note=f"{exc.strerror} (no such peer?)", **fields)
            return False
        self.trace.append(self.clock.now(), Kind.SEND, **fields)
        return True

    # -- sending (any thread) ----------------------------------------------------------------

    def send(self, message_type: str, data: Any = None, to: str | None = None) -> bool:
        """Send a message to worker ``to`` (default: the latest registered). Returns False if refused."""
        node_id = to if to is not None else self.default_worker()
        return self.send_message(Message(message_type, data, node_id))

    def send_message(self, message: Message) -> bool:
        frame = encode(message)
        return self._owner.call(lambda: self._send_frames(message.node_id.encode(), [frame], message))

    def send_raw(self, frames: list[bytes], to: str | bytes | None = None) -> bool:
        """Send arbitrary payload frames (malformed on purpose, perhaps) to a worker identity."""
        identity = to.encode() if isinstance(to, str) else to if to is not None else self.default_worker().encode()
        return self._owner.call(lambda: self._send_frames(identity, list(frames), None))

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
        data = {
            "timestamp": self.clock.wall() if timestamp is None else timestamp,
            "user_classes_count": dict(user_classes_count),
            "host": host,
            "stop_timeout": float(stop_timeout),
            "parsed_options": {},
        }
        return self.send("spawn", data, to)

    # -- state (any thread) ------------------------------------------------------------------

    def workers(self) -> dict[str, WorkerView]:
        """A snapshot of the registered workers, as the real master would see them."""
        return self._owner.call(lambda: deepcopy(self.core.workers))

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
