"""The master's sans-IO core: decode what workers send, and decide the automatic replies.

It mirrors what ``MasterRunner.client_listener`` and ``heartbeat_worker`` do for
each worker, as switchable behaviours:

* ``auto_ack``: reply ``ack {"index": n}`` to every truthy ``client_ready`` and
  register the worker (a falsy version is refused, as Locust does);
* ``auto_heartbeat``: reply ``heartbeat`` to heartbeats from registered workers
  (unknown workers get no reply, as in Locust);
* ``track_liveness``: run the real liveness counter on every tick.

What the automatic behaviours do follows ``profile`` (``harness.protocol.profiles``): whether and how it acks,
whether it answers heartbeats, whose node_id it trusts, what it does with messages from workers it does not know
(a release whose ``client_listener`` died on them is emulated as ``crashed``: nothing more is read, and every worker
goes missing), a ``reconnect`` for an undecodable frame, and whether missing workers are ever deleted.

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
from harness.protocol.profiles import DEFAULT_PROFILE, MasterProfile, Unknown
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


# The messages whose sender the master must know, and the profile knob that says what happens when it does not.
_UNKNOWN_REACTION = {
    MessageType.SPAWNING.value: "unknown_spawning",
    MessageType.SPAWNING_COMPLETE.value: "unknown_spawning_complete",
    MessageType.CLIENT_STOPPED.value: "unknown_client_stopped",
}


def _readable_exception(data: object) -> bool:
    """What ``log_exception`` needs, from any sender: ``msg`` and a ``traceback`` it can hash."""
    if not (isinstance(data, dict) and "msg" in data and "traceback" in data):
        return False
    try:
        hash(data["traceback"])
    except TypeError:
        return False
    return True


def _unsliceable_version(data: object) -> bool:
    """2.5+ compares ``data[0:4]`` with its own version: truthy data other than -1 that cannot be sliced raises."""
    if not data or data == -1:
        return False
    return not isinstance(data, (str, bytes, list, tuple))


# Why ``recv_from_client`` could not decode a payload (harness.protocol.codec's rules), and what the master does:
# a receive error (logged; 2.13.2+ reconnects a known sender), decoded anyway and ignored, or (the rest) an exception
# that kills client_listener (locust-protocol.md 7.2).
_RECEIVE_ERRORS = frozenset({"codec.trailing-bytes", "codec.utf8"})
_READ_ANYWAY = frozenset({"codec.size", "codec.type-field", "codec.node-id"})
_EXCEPTION = MessageType.EXCEPTION.value
CRASH_NOTE = "client_listener crashed on "  # the NOTE an emulated crash leaves (the oracle master.crashed reads it)

# Identities remembered for the fast path (beyond this, new ones take the general path: a bound on memory).
_MAX_NAMES = 100_000


def master_can_read_heartbeat(data: object) -> bool:
    """What ``client_listener`` needs of a heartbeat: a ``state`` and a ``current_cpu_usage`` it can compare with 90
    (anything else raises in the listener)."""
    return isinstance(data, dict) and "state" in data and isinstance(data.get("current_cpu_usage"), (int, float))


@dataclass
class MasterCore:
    """Per-worker bookkeeping and automatic replies of a Locust-like master."""

    timing: Timing = LOCUST_TIMING
    auto_ack: bool = True
    auto_heartbeat: bool = True
    track_liveness: bool = True
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    profile: MasterProfile = DEFAULT_PROFILE
    workers: dict[str, WorkerView] = field(default_factory=dict)
    indexes: dict[str, int] = field(default_factory=dict)
    next_tick: float | None = None
    skipped_ticks: int = 0
    crashed: str | None = None  # why the emulated client_listener died (this profile's master would have)
    notes: list[str] = field(default_factory=list)  # what the profile made the master do, for the adapter to record
    _last: Message | None = None  # the last message handled (2.13.2+ handles it again after a reconnect)
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
        """Update the worker bookkeeping for a received message, as the profile's ``client_listener`` would.

        Returns:
            the automatic replies, and any liveness change (a self-heal).
        """
        if self.crashed is not None:
            return [], []
        msg = inbound.message
        errors = {v.rule for v in inbound.violations if v.severity is _ERROR} if inbound.violations else _NO_ERRORS
        if "envelope.identity" in errors:
            return [], []  # an identity that is not UTF-8: logged ("Unrecognized message"), never answered
        if "framing.frames" in errors:
            return self._first_frame(inbound.identity, inbound.frames)  # the master reads the first payload frame only
        if msg is None:
            rule = next((v.rule for v in inbound.violations if v.rule.startswith("codec.")), "codec.not-msgpack")
            return self._undecodable(inbound.identity, rule)
        return self.react_clean(inbound.identity, msg, errors)

    def _first_frame(self, identity: bytes, frames: tuple[bytes, ...]) -> tuple[list[Message], list[tuple[str, LivenessChange]]]:
        """A message in several frames: ``recv_from_client`` decodes the first payload frame and drops the rest."""
        try:
            msg = decode(frames[0] if frames else b"", self.max_frame_bytes)
        except MalformedFrame as exc:
            return self._undecodable(identity, exc.rule)
        return self.react_clean(identity, msg)

    def _undecodable(self, identity: bytes, rule: str) -> tuple[list[Message], list[tuple[str, LivenessChange]]]:
        """A payload the master could not turn into a message, by why (``rule``, harness.protocol.codec's)."""
        if rule in _RECEIVE_ERRORS:
            try:
                name: str | None = identity.decode("utf-8")
            except UnicodeDecodeError:
                name = None
            if not (self.profile.reconnect_on_bad_frame and name is not None and name in self.workers):
                return [], []  # logged only (before 2.10: a ROUTER reset, not emulated: see docs/master-profiles.md)
            # 2.13.2+: ``reconnect`` to that worker; and, with no ``continue`` after it, the listener handles the
            # previous message again under this worker's id.
            self.notes.append(f"master profile {self.profile.name}: reconnect sent to {name!r} for a frame it could not decode")
            replies: list[Message] = [Message(MessageType.RECONNECT, None, name)]
            changes: list[tuple[str, LivenessChange]] = []
            if self._last is not None:
                self.notes.append(
                    f"master profile {self.profile.name}: the previous {self._last.type} handled again for {name!r}"
                )
                replies_again, changes = self.react_clean(identity, self._last)
                replies += replies_again
            return replies, changes
        if rule in _READ_ANYWAY or (rule == "codec.ext-hook" and not self.profile.ext_hooks):
            return [], []  # decoded by the real master, and ignored (or a payload it cannot act on)
        self._crash(f"a frame it could not decode ({rule})")
        return [], []

    def react_clean(
        self, identity: bytes, msg: Message, errors: frozenset[str] | set[str] = _NO_ERRORS
    ) -> tuple[list[Message], list[tuple[str, LivenessChange]]]:
        """``react`` for a message ``accept`` returned (no violation): the same bookkeeping, without an Inbound.

        (``react`` passes the rules its message broke as ``errors``; the profile's master reads what it can.)
        """
        if self.crashed is not None:
            return [], []
        self._last = msg
        msg_type = msg.type
        profile = self.profile
        data = msg.data
        if msg_type == _CLIENT_READY:
            if not data:
                return [], []  # "An old (pre 2.0) worker tried to connect": refused, no ack
            if profile.version_slice_check and _unsliceable_version(data):
                self._crash(f"client_ready data {data!r} that cannot be sliced (TypeError)")
                return [], []
            # Locust registers and acks by the socket identity, not by the payload's node_id.
            return self._client_ready(identity.decode("utf-8", "replace")), []
        if msg_type == _EXCEPTION and not _readable_exception(data):
            self._crash(f"an exception message without a msg and a hashable traceback ({data!r}: KeyError or TypeError)")
            return [], []
        node_id = msg.node_id if profile.node_id_from_payload else identity.decode("utf-8", "replace")
        node = self.workers.get(node_id)
        if node is None:
            return self._from_unknown(msg_type, node_id), []
        if msg_type == _HEARTBEAT:
            if not master_can_read_heartbeat(data):
                self._crash(f"a heartbeat it cannot read ({data!r}: KeyError or TypeError)")
                return [], []
            healed = node.liveness.heartbeat()
            node.state = str(data["state"])
            reply = self.auto_heartbeat and profile.heartbeat_reply
            replies = [Message(MessageType.HEARTBEAT, None, node_id)] if reply else []
            return replies, [(node_id, healed)] if healed else []
        if msg_type == _SPAWNING:
            node.state = "spawning"
        elif msg_type == _SPAWNING_COMPLETE:
            if not isinstance(data, dict):
                self._crash(f"spawning_complete data {data!r} (TypeError)")
            elif "user_classes_count" not in data:
                return self._from_unknown(msg_type, node_id, "without user_classes_count"), []  # the same KeyError
            else:
                node.state = "running"
                counts = data["user_classes_count"]
                node.user_classes_count = dict(counts) if isinstance(counts, dict) else {}
        elif msg_type in _LEAVING:
            del self.workers[node_id]
        return [], []

    def _from_unknown(self, msg_type: str, node_id: str, why: str = "") -> list[Message]:
        """What this profile's master does with ``msg_type`` from a worker it does not know (or, ``why``, with one it
        knows whose message raises the same KeyError)."""
        reaction = _UNKNOWN_REACTION.get(msg_type)
        if reaction is None:
            return []  # heartbeats, stats and the rest from an unknown worker are ignored by every release
        how = getattr(self.profile, reaction)
        sender = f"worker {node_id!r} {why}" if why else f"unknown worker {node_id!r}"
        if how is Unknown.CRASH:
            self._crash(f"{msg_type} from {sender} (KeyError)")
        elif how is Unknown.QUIT:
            self.notes.append(f"master profile {self.profile.name}: quit sent to {sender} for its {msg_type}")
            return [Message(MessageType.QUIT, None, node_id)]
        return []

    def _crash(self, why: str) -> None:
        self.crashed = why
        self.notes.append(
            f"master profile {self.profile.name}: {CRASH_NOTE}{why}; as the real master, this one reads nothing more "
            "(its workers would go missing: liveness is no longer counted, the finding master.crashed says why)"
        )

    def _client_ready(self, node_id: str) -> list[Message]:
        index = self.indexes.setdefault(node_id, len(self.indexes))
        self.workers.pop(node_id, None)  # re-registration makes it the latest registered worker
        self.workers[node_id] = WorkerView(
            node_id, index, liveness=LivenessCounter.for_timing(self.timing, deletes=self.profile.delete_missing)
        )
        if not (self.auto_ack and self.profile.acks):
            return []
        return [Message(MessageType.ACK, self.profile.ack_data(index), node_id)]

    def forget(self) -> None:
        """What a restarted master knows: nothing (no workers, no indexes), with a listener that reads again."""
        self.workers.clear()
        self.indexes.clear()
        self.crashed = None
        self._last = None

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
        if not self.track_liveness or self.crashed is not None:
            return changes
        for node in list(self.workers.values()):
            change = node.liveness.tick()
            if change is not None:
                changes.append((node.node_id, change))
            if change is LivenessChange.DEAD:
                del self.workers[node.node_id]
        return changes
