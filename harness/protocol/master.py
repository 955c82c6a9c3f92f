"""The master's sans-IO core: decode what workers send, and decide the automatic replies.

It mirrors what ``MasterRunner.client_listener`` and ``heartbeat_worker`` do for
each worker, as switchable behaviours:

* ``auto_ack``: reply ``ack {"index": n}`` to every truthy ``client_ready`` and
  register the worker (a falsy version is refused, as Locust does);
* ``auto_heartbeat``: reply ``heartbeat`` to heartbeats from registered workers
  (unknown workers get no reply, as in Locust);
* ``track_liveness``: run the real liveness counter on every tick.

``client_stopped`` and a worker's ``quit`` unregister it (the real master deletes
the node), so later heartbeats go unanswered until the next ``client_ready``.
Nothing here reads the clock: ``now`` is passed in, ``next_tick`` is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import MalformedFrame
from harness.protocol.codec import DEFAULT_MAX_FRAME_BYTES, decode
from harness.protocol.findings import Violation
from harness.protocol.messages import Direction, Message, MessageType
from harness.protocol.schema import Severity, check_payload
from harness.protocol.timing import LOCUST_TIMING, LivenessChange, LivenessCounter, Timing


@dataclass
class WorkerView:
    """What the master knows about one registered worker."""

    node_id: str
    index: int
    state: str = "ready"
    liveness: LivenessCounter = field(default_factory=LivenessCounter)
    user_classes_count: dict[str, int] = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        return self.liveness.missing


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received ROUTER message: the decoded message (if any) and every violation found."""

    identity: bytes
    frames: tuple[bytes, ...]
    message: Message | None
    violations: tuple[Violation, ...]

    @property
    def node_id(self) -> str:
        return self.message.node_id if self.message else self.identity.decode("utf-8", "replace")


_new_object = object.__new__
_inbound_slots = tuple(Inbound.__dict__[name].__set__ for name in ("identity", "frames", "message", "violations"))


def _inbound(identity: bytes, frames: tuple[bytes, ...], message: Message | None, violations: tuple[Violation, ...]) -> Inbound:
    """``Inbound(...)`` filled through its slots: built for every received frame, and the frozen dataclass's
    ``__init__`` costs a Python frame and an ``object.__setattr__`` per field."""
    inbound: Inbound = _new_object(Inbound)
    set_identity, set_frames, set_message, set_violations = _inbound_slots
    set_identity(inbound, identity)
    set_frames(inbound, frames)
    set_message(inbound, message)
    set_violations(inbound, violations)
    return inbound


# Violations after which the real master cannot have read the message at all.
_UNREADABLE = {"envelope.identity", "framing.frames", "direction"}
# Plain str and module-level constants on the per-message path: comparing a str with a StrEnum member, or
# reading a member off its class, costs several times a plain str comparison or a global lookup.
_MASTER_ONLY = frozenset(t.value for t in (MessageType.ACK, MessageType.SPAWN, MessageType.STOP, MessageType.RECONNECT))
_BUILT_IN = frozenset(t.value for t in MessageType)
_CLIENT_READY = MessageType.CLIENT_READY.value
_HEARTBEAT = MessageType.HEARTBEAT.value
_SPAWNING = MessageType.SPAWNING.value
_SPAWNING_COMPLETE = MessageType.SPAWNING_COMPLETE.value
_LEAVING = (MessageType.CLIENT_STOPPED.value, MessageType.QUIT.value)
_W2M = Direction.WORKER_TO_MASTER
_ERROR = Severity.ERROR
_DEVIATION = Severity.DEVIATION
_NO_ERRORS: frozenset[str] = frozenset()


def master_can_read_heartbeat(data: object) -> bool:
    """What ``client_listener`` needs of a heartbeat: ``state`` (any string) and ``current_cpu_usage``."""
    return isinstance(data, dict) and isinstance(data.get("state"), str) and "current_cpu_usage" in data


@dataclass
class MasterCore:
    """Per-worker bookkeeping and automatic replies of a Locust-like master."""

    timing: Timing = LOCUST_TIMING
    auto_ack: bool = True
    auto_heartbeat: bool = True
    track_liveness: bool = True
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    workers: dict[str, WorkerView] = field(default_factory=dict)
    indexes: dict[str, int] = field(default_factory=dict)
    next_tick: float | None = None
    skipped_ticks: int = 0

    def start(self, now: float) -> None:
        """Begin ticking: the first liveness tick falls one interval after ``now``."""
        self.next_tick = now + self.timing.heartbeat_interval

    def inspect(self, identity: bytes, frames: list[bytes]) -> Inbound:
        """Decode one ROUTER message (identity + payload frames) and list its violations."""
        violations: list[Violation] = []
        try:
            identity.decode("utf-8")
        except UnicodeDecodeError:
            violations.append(Violation("envelope.identity", "a UTF-8 socket identity", f"bytes {identity[:40]!r}"))
        if len(frames) != 1:
            violations.append(
                Violation(
                    "framing.frames",
                    "exactly one payload frame per message",
                    f"{len(frames)} frames (sizes {[len(f) for f in frames]})",
                )
            )
            payload = frames[-1] if frames else b""
        else:
            payload = frames[0]
        message: Message | None = None
        try:
            message = decode(payload, self.max_frame_bytes)
        except MalformedFrame as exc:
            violations.append(Violation(exc.rule, exc.expected, exc.observed))
        if message is not None:
            found = self._message_violations(identity, message)
            if found:
                violations.extend(found)
        return _inbound(identity, tuple(frames), message, tuple(violations))

    def _message_violations(self, identity: bytes, message: Message) -> list[Violation]:
        found: list[Violation] = []
        message_type = message.type
        if message.node_id.encode("utf-8") != identity:
            found.append(
                Violation(
                    "envelope.node-id", f"node_id equal to the socket identity {identity!r}", f"node_id {message.node_id!r}"
                )
            )
        if message_type in _MASTER_ONLY:
            found.append(
                Violation("direction", "only worker-to-master types from a worker", f"master-only type {message_type!r}")
            )
        elif message_type not in _BUILT_IN:
            found.append(
                Violation(
                    "type.unknown",
                    "a built-in message type (custom types are ignored)",
                    f"type {message_type!r}",
                    _DEVIATION,
                )
            )
        problems = check_payload(message, _W2M)
        if problems:
            found.extend(Violation.from_problem(message_type, p) for p in problems)
        return found

    def react(self, inbound: Inbound) -> tuple[list[Message], list[tuple[str, LivenessChange]]]:
        """Update the worker bookkeeping for a received message.

        Returns:
            the automatic replies, and any liveness change (a self-heal).
        """
        msg = inbound.message
        errors = {v.rule for v in inbound.violations if v.severity is _ERROR} if inbound.violations else _NO_ERRORS
        if msg is None or errors & _UNREADABLE:
            return [], []  # the real master could not have processed this frame either
        msg_type = msg.type
        if msg_type == _CLIENT_READY and not errors & {f"schema.{msg_type}"}:
            # Locust registers and acks by the socket identity, not by the payload's node_id.
            return self._client_ready(inbound.identity.decode("utf-8", "replace")), []
        node = self.workers.get(msg.node_id)
        if node is None:
            return [], []
        if msg_type == _HEARTBEAT and master_can_read_heartbeat(msg.data):
            healed = node.liveness.heartbeat()
            node.state = str(msg.data["state"])
            replies = [Message(MessageType.HEARTBEAT, None, msg.node_id)] if self.auto_heartbeat else []
            return replies, [(msg.node_id, healed)] if healed else []
        if msg_type == _SPAWNING:
            node.state = "spawning"
        elif msg_type == _SPAWNING_COMPLETE and isinstance(msg.data, dict):
            node.state = "running"
            node.user_classes_count = dict(msg.data.get("user_classes_count") or {})
        elif msg_type in _LEAVING:
            del self.workers[msg.node_id]
        return [], []

    def _client_ready(self, node_id: str) -> list[Message]:
        index = self.indexes.setdefault(node_id, len(self.indexes))
        self.workers.pop(node_id, None)  # re-registration makes it the latest registered worker
        self.workers[node_id] = WorkerView(node_id, index, liveness=LivenessCounter.for_timing(self.timing))
        return [Message(MessageType.ACK, {"index": index}, node_id)] if self.auto_ack else []

    def skip_tick(self, now: float) -> None:
        """The tick due at ``now`` does not run; its time passes, counted in ``skipped_ticks``.

        Locust's heartbeat checker shares one event loop with its receive loop, which does not yield while
        messages are queued: a master busy reading does not tick. An adapter that could not catch up with its
        queue calls this instead of ``tick`` (counters untouched: the heartbeats may be in the queue).
        """
        if self.next_tick is None or self.next_tick > now:
            return
        missed = int((now - self.next_tick) // self.timing.heartbeat_interval) + 1
        self.skipped_ticks += missed
        self.next_tick += missed * self.timing.heartbeat_interval

    def tick(self, now: float) -> list[tuple[str, LivenessChange]]:
        """Run the liveness tick if it is due at ``now``; return the changes, deleting dead workers.

        Like Locust's ``heartbeat_worker`` (which sleeps an interval after each tick), a master that
        fell behind ticks once and carries on from ``now``; it never replays missed ticks in a burst,
        which would invent missing workers. ``skipped_ticks`` counts the ticks it missed.
        """
        changes: list[tuple[str, LivenessChange]] = []
        if self.next_tick is None or self.next_tick > now:
            return changes
        interval = self.timing.heartbeat_interval
        self.next_tick += interval
        if self.next_tick <= now:
            missed = int((now - self.next_tick) // interval) + 1
            self.skipped_ticks += missed
            self.next_tick += missed * interval
        if not self.track_liveness:
            return changes
        for node in list(self.workers.values()):
            change = node.liveness.tick()
            if change is not None:
                changes.append((node.node_id, change))
            if change is LivenessChange.DEAD:
                del self.workers[node.node_id]
        return changes
