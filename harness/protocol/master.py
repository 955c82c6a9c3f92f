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
from harness.protocol.schema import LENIENT_NIL, MAY_FAIL, Severity, check_payload, well_formed_heartbeat
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
# The fast path (``MasterCore.accept``): the types a worker may send, and those whose payload check can find a
# problem (the rest have no schema, or accept anything).
_FROM_WORKER = _BUILT_IN - _MASTER_ONLY
_MAY_FAIL_W2M = MAY_FAIL[_W2M]
_LENIENT_W2M = LENIENT_NIL[_W2M]


# Identities remembered for the fast path (beyond this, new ones take the general path: a bound on memory).
_MAX_NAMES = 100_000


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
    _names: dict[bytes, str] = field(default_factory=dict)  # UTF-8 identities seen, decoded (the fast path's key)

    def start(self, now: float) -> None:
        """Begin ticking: the first liveness tick falls one interval after ``now``."""
        self.next_tick = now + self.timing.heartbeat_interval

    def inspect(self, identity: bytes, frames: list[bytes]) -> Inbound:
        """Decode one ROUTER message (identity + payload frames) and list its violations."""
        name = self._names.get(identity)
        if name is not None and len(frames) == 1:  # the common case (a known UTF-8 identity, one frame), inlined
            payload = frames[0]
            try:
                message = decode(payload, self.max_frame_bytes)
            except MalformedFrame as exc:
                return _inbound(identity, (payload,), None, (Violation(exc.rule, exc.expected, exc.observed),))
            found = self._message_violations(identity, name, message)
            return _inbound(identity, (payload,), message, tuple(found) if found else ())
        violations: list[Violation] = []
        try:
            name = identity.decode("utf-8")
        except UnicodeDecodeError:
            violations.append(Violation("envelope.identity", "a UTF-8 socket identity", f"bytes {identity[:40]!r}"))
        else:
            if len(self._names) < _MAX_NAMES:
                self._names[identity] = name
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
        decoded: Message | None = None
        try:
            decoded = decode(payload, self.max_frame_bytes)
        except MalformedFrame as exc:
            violations.append(Violation(exc.rule, exc.expected, exc.observed))
        if decoded is not None:
            found = self._message_violations(identity, name, decoded)
            if found:
                violations.extend(found)
        return _inbound(identity, tuple(frames), decoded, tuple(violations))

    def _message_violations(self, identity: bytes, name: str | None, message: Message) -> list[Violation]:
        """Violations of a decoded message from socket ``identity``, whose UTF-8 decoding is ``name``.

        (None: an identity that is no UTF-8, which no node_id can equal. A decoded message's node_id is always
        valid UTF-8, so comparing it with the decoded identity is comparing their bytes.)
        """
        found: list[Violation] = []
        message_type = message.type
        if message.node_id != name:
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

    def accept(self, identity: bytes, frame: bytes) -> Message | None:
        """The fast path of ``inspect``: the message in ``frame`` if it has no violation at all, else None.

        No violation means: a UTF-8 identity seen before, one decodable frame, the node_id equal to the identity,
        a built-in worker-to-master type and a payload its schema accepts without even a deviation (the same
        ``decode`` and ``check_payload`` as ``inspect``). None sends the caller to ``inspect``, which names what
        is wrong; a message it accepts is one ``inspect`` would find nothing in. React with ``react_clean``.
        """
        name = self._names.get(identity)
        if name is None:
            return None
        try:
            message = decode(frame, self.max_frame_bytes)
        except MalformedFrame:
            return None
        message_type = message.type
        if message.node_id != name or message_type not in _FROM_WORKER:
            return None
        if message_type == _HEARTBEAT:
            return message if well_formed_heartbeat(message.data) else None  # (else: inspect names the problem)
        if message_type in _MAY_FAIL_W2M or message_type in _LENIENT_W2M:
            if check_payload(message, _W2M):
                return None
        return message

    def react(self, inbound: Inbound) -> tuple[list[Message], list[tuple[str, LivenessChange]]]:
        """Update the worker bookkeeping for a received message.

        Returns:
            the automatic replies, and any liveness change (a self-heal).
        """
        msg = inbound.message
        errors = {v.rule for v in inbound.violations if v.severity is _ERROR} if inbound.violations else _NO_ERRORS
        if msg is None or errors & _UNREADABLE:
            return [], []  # the real master could not have processed this frame either
        return self.react_clean(inbound.identity, msg, errors)

    def react_clean(
        self, identity: bytes, msg: Message, errors: frozenset[str] | set[str] = _NO_ERRORS
    ) -> tuple[list[Message], list[tuple[str, LivenessChange]]]:
        """``react`` for a message ``accept`` returned (no violation): the same bookkeeping, without an Inbound.

        (``react`` passes the rules its message broke as ``errors``.)
        """
        msg_type = msg.type
        if msg_type == _CLIENT_READY and not errors & {f"schema.{msg_type}"}:
            # Locust registers and acks by the socket identity, not by the payload's node_id.
            return self._client_ready(identity.decode("utf-8", "replace")), []
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
