"""The master half of a simulation: ``harness.protocol.master.MasterCore`` reading the worker's frames and answering,
recorded as the fake master records a real run, and the master's actions and faults (spawns, stops, reconnects,
silences, paused reading, lost or late replies, death)."""

from __future__ import annotations

import functools
import random
from typing import Any

from harness.faults import malformed_frames
from harness.protocol.codec import encode
from harness.protocol.findings import Violation
from harness.protocol.master import Inbound, MasterCore
from harness.protocol.messages import Message, MessageType
from harness.protocol.schema import Severity
from harness.protocol.timing import LivenessChange
from harness.simulation.shared import LATENCY, NODE, WALL0, Shared
from harness.trace import Kind, TraceRecord, window_note

USER_CLASS = "ConformanceUser"

INSPECT_CACHE_SIZE = 4096
_INSPECTED: dict[bytes, Inbound] = {}


@functools.cache
def _malformed(kind: str) -> tuple[bytes, ...]:
    """``malformed_frames(kind, NODE)``, built once per kind (the same bytes every time; an oversized one is 1 MiB)."""
    return tuple(malformed_frames(kind, NODE))


@functools.cache
def _encoded_nil(message_type: str, node_id: str) -> bytes:
    """A message with a nil payload (the master's heartbeat replies), encoded once."""
    return encode(Message(message_type, None, node_id))


def _encoded(reply: Message) -> bytes:
    """``encode(reply)``; a reply with a nil payload from ``_encoded_nil``."""
    return encode(reply) if reply.data is not None else _encoded_nil(reply.type, reply.node_id)


class MasterSide(Shared):
    """The fake master's sans-IO core and its recording, in memory."""

    seed: int
    core: MasterCore
    silenced: bool
    reading: bool
    drop_replies: float
    delay_replies: float
    _rng: random.Random
    _held: list[bytes]  # worker frames waiting while the master does not read

    def _init_master(self) -> None:
        self._rng = random.Random(self.seed)
        self.core = MasterCore(self.timing)
        self.silenced = False
        self.reading = True
        self._held = []
        self.drop_replies = 0.0
        self.delay_replies = 0.0
        self.dead = False
        self.reconnects_asked = 0
        self.reconnect_windows = []

    def _record(
        self,
        kind: Kind,
        identity: str = "",
        message: Message | None = None,
        frames: tuple[bytes, ...] = (),
        size: int = 0,
        violations: tuple[Violation, ...] = (),
        note: str = "",
    ) -> None:
        """Append a record at the current time (positionally: this runs for every simulated message)."""
        records = self.records
        records.append(TraceRecord(len(records), self.now, kind, identity, message, frames, size, violations, note))

    def _master_receives(self, frame: bytes) -> None:
        if self.dead:
            return
        if not self.reading:
            self._held.append(frame)
            return
        inbound = _INSPECTED.get(frame)
        if inbound is None:  # identical frames (most heartbeats) decode and validate identically: once is enough
            inbound = self.core.inspect(NODE.encode(), [frame])
            if len(_INSPECTED) < INSPECT_CACHE_SIZE:
                _INSPECTED[frame] = inbound
        message, violations = inbound.message, inbound.violations
        broken = message is None or any(v.severity is Severity.ERROR for v in violations)
        self._record(Kind.RECV, NODE, message, (frame,) if broken else (), len(frame), violations)
        replies, changes = self.core.react(inbound)
        notes = self.core.notes
        while notes:
            self._record(Kind.NOTE, note=notes.pop(0))
        for reply in replies:
            if reply.type == MessageType.HEARTBEAT:
                if self.silenced:
                    self._record(Kind.FAULT, identity=NODE, message=reply, note="withheld: master-silence")
                    continue
                if self.drop_replies and self._rng.random() < self.drop_replies:
                    self._record(Kind.FAULT, identity=NODE, message=reply, note="dropped")
                    continue
                self._send_frames([_encoded(reply)], reply, self.delay_replies * self.timing.heartbeat_interval)
            else:
                self._send_frames([_encoded(reply)], reply)
        self._record_liveness(changes)

    def _record_liveness(self, changes: list[tuple[str, LivenessChange]]) -> None:
        for node, change in changes:
            self._record(Kind.LIVENESS, identity=node, note=str(change))

    def _send_frames(self, frames: list[bytes], message: Message | None, delay: float = 0.0, note: str = "") -> None:
        """Master to worker. While the worker is between sockets (a reconnect) the ROUTER cannot deliver: a
        SEND_FAILED record, as the fake master's ROUTER_MANDATORY socket gives; frames in flight to the old
        socket are lost with it."""
        if self.dead:
            return
        size = sum(map(len, frames))
        lost_at = self.identity_lost_at
        if self.now < self._worker_online_at or (lost_at is not None and self.now >= lost_at):
            self._record(Kind.SEND_FAILED, identity=NODE, message=message, size=size, note="peer not connected")
            return
        self._record(Kind.SEND, NODE, message, (), size, (), note)
        if lost_at is not None:
            return  # to the old connection, which the worker no longer reads
        connection = self.reconnects_done

        def arrive() -> None:
            if connection == self.reconnects_done:
                self._worker_receives(frames)

        self._at(self.now + delay + LATENCY, arrive)

    # -- the master's actions ------------------------------------------------------------------------

    def send(self, message_type: str, data: Any = None) -> None:
        """Send the worker a message."""
        message = Message(message_type, data, NODE)
        self._send_frames([encode(message)], message)

    def send_malformed(self, kind: str) -> None:
        """Send the worker a malformed message (``harness.faults.MALFORMED_KINDS``)."""
        self._send_frames(list(_malformed(kind)), None, note=f"malformed:{kind}")

    def spawn(self, users: int, *, stale: bool = False, stop_timeout: float = 0.0) -> None:
        """Ask for ``users`` users (``stale``: with a timestamp a conformant worker ignores)."""
        data = {
            "timestamp": 0.0 if stale else WALL0 + self.now,
            "user_classes_count": {USER_CLASS: users},
            "host": None,
            "stop_timeout": stop_timeout,
            "parsed_options": {},
        }
        self.send(MessageType.SPAWN, data)

    def reconnect(self) -> None:
        """Tell the worker to reconnect (frames sent until its new socket is online may be lost)."""
        self.reconnects_asked += 1
        self.reconnect_windows.append([self.now, self.now + 2 * LATENCY])
        self.send(MessageType.RECONNECT)

    def set_reading(self, reading: bool) -> None:
        """Stop or resume reading: held frames are read on resume, in order."""
        if reading != self.reading:
            self._record(Kind.FAULT, note=window_note("pause-reading", "end" if reading else "start"))
        self.reading = reading
        if reading:
            held, self._held = self._held, []
            for frame in held:
                self._master_receives(frame)

    def set_silenced(self, silenced: bool) -> None:
        """Withhold (or send again) the master's heartbeats."""
        if silenced != self.silenced:
            self._record(Kind.FAULT, note=window_note("master-silence", "start" if silenced else "end"))
        self.silenced = silenced

    def die(self) -> None:
        """The master is gone for good: nothing is read, sent or ticked any more."""
        if not self.dead:
            self._record(Kind.FAULT, note=window_note("master-death", "start"))
        self.dead = True
