"""Concurrent-send storms: N sender threads hammer one worker through the fake master's send path.

The sender threads never touch the socket: each send is a closure run by the
master's socket owner thread (``StormTarget.storm_send``), which returns
whether the socket took the message. ``ROUTER_MANDATORY`` makes a full pipe
refuse a message (EAGAIN) instead of dropping it silently, so every attempt is
either delivered or refused, and both are in the trace tagged with the storm's
label: ``attempted == delivered + refused`` holds exactly. Storm sends bypass
the fault plan for that reason.

Each thread sends at ``rate`` messages per second for ``duration`` seconds
(never catching up in bursts), and all threads together stop at ``max_messages``.

A thread hands its messages over in batches (``StormTarget.storm_send_many``): whatever its schedule has
made due, at most ``BURST_SECONDS`` worth of it and ``MAX_BATCH`` messages, in one hand-over to the socket
thread, which sends them in order and records each. Up to 1,000 msg/s per thread a batch is one message, as
before; at 100k msg/s per thread up to about 100 (a thread that fell behind skips the backlog beyond that).

``StormRegistry`` numbers the storms a master starts and cancels them all when it closes.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.errors import ConformanceError, HarnessFault, ScenarioError
from harness.faults import MALFORMED_KINDS, malformed_frames
from harness.protocol.codec import encode
from harness.protocol.messages import Message
from harness.trace import window_note

# Valid messages with valid payloads that a storm can send (see ``build``).
STORM_TYPES = ("heartbeat", "unknown", "stale-spawn", "ack", "update_user_class", "spawning_complete")
MALFORMED_PREFIX = "malformed:"
NOISE_TYPE = "lc_storm_noise"
STORM_USER_CLASS = "ConformanceUser"  # the class update_user_class names (the bundled locustfile's)
MAX_THREADS = 64
MAX_RATE = 100_000.0
MAX_DURATION = 3600.0
MAX_MESSAGES = 10_000_000
JOIN_SLACK = 5.0  # beyond the duration, how long storm() waits for its threads before it calls it a harness fault
BURST_SECONDS = 0.001  # a sender's schedule keeps at most this much backlog: its largest batch, in time
MAX_BATCH = 256  # and in messages


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class StormSpec:
    """What a storm sends: ``threads`` x ``rate`` msg/s for ``duration`` s, types drawn from ``mix`` by weight.

    ``mix`` entries are ``(name, weight)``; names are ``STORM_TYPES`` or ``"malformed:<kind>"``.
    ``to`` is the worker's node id (default: the latest registered worker).
    """

    threads: int
    rate: float
    duration: float
    mix: tuple[tuple[str, float], ...] = (("heartbeat", 1.0),)
    to: str | None = None
    seed: int = 0
    max_messages: int = 100_000

    def __post_init__(self) -> None:
        if not (_is_int(self.threads) and 1 <= self.threads <= MAX_THREADS):
            raise ScenarioError(f"storm field 'threads': expected an integer in [1, {MAX_THREADS}], got {self.threads!r}")
        if not (_is_number(self.rate) and 0 < self.rate <= MAX_RATE):
            raise ScenarioError(f"storm field 'rate': expected messages/s per thread in (0, {MAX_RATE:g}], got {self.rate!r}")
        if not (_is_number(self.duration) and 0 < self.duration <= MAX_DURATION):
            raise ScenarioError(f"storm field 'duration': expected seconds in (0, {MAX_DURATION:g}], got {self.duration!r}")
        mix = self.mix
        if isinstance(mix, Mapping):
            mix = tuple(mix.items())
        if not isinstance(mix, (tuple, list)) or not mix:
            raise ScenarioError(f"storm field 'mix': expected a non-empty list of [type, weight], got {self.mix!r}")
        entries = []
        for entry in mix:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise ScenarioError(f"storm field 'mix': expected [type, weight] pairs, got {entry!r}")
            name, weight = entry
            if not _valid_mix_name(name):
                raise ScenarioError(
                    f"storm field 'mix': unknown type {name!r} (expected one of {', '.join(STORM_TYPES)} "
                    f"or malformed:<{'|'.join(MALFORMED_KINDS)}>)"
                )
            if not (_is_number(weight) and weight > 0):
                raise ScenarioError(f"storm field 'mix': the weight of {name!r} must be a positive number, got {weight!r}")
            entries.append((name, float(weight)))
        object.__setattr__(self, "mix", tuple(entries))
        if self.to is not None and not (isinstance(self.to, str) and self.to):
            raise ScenarioError(f"storm field 'to': expected a worker node id or null, got {self.to!r}")
        if not _is_int(self.seed):
            raise ScenarioError(f"storm field 'seed': expected an integer, got {self.seed!r}")
        if not (_is_int(self.max_messages) and 1 <= self.max_messages <= MAX_MESSAGES):
            raise ScenarioError(
                f"storm field 'max_messages': expected an integer in [1, {MAX_MESSAGES}], got {self.max_messages!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping, the inverse of ``from_dict``."""
        return {
            "threads": self.threads,
            "rate": self.rate,
            "duration": self.duration,
            "mix": [[name, weight] for name, weight in self.mix],
            "to": self.to,
            "seed": self.seed,
            "max_messages": self.max_messages,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> StormSpec:
        """Build a spec from a mapping (``mix`` as ``[[type, weight], ...]`` or ``{type: weight}``)."""
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"a storm must be an object with threads, rate and duration, got {raw!r}")
        known = ("threads", "rate", "duration", "mix", "to", "seed", "max_messages")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ScenarioError(f"storm field {unknown[0]!r}: unknown (known fields: {', '.join(known)})")
        missing = [k for k in ("threads", "rate", "duration") if k not in raw]
        if missing:
            raise ScenarioError(f"storm field {missing[0]!r}: missing")
        kwargs = dict(raw)
        if isinstance(kwargs.get("mix"), (list, Mapping)):
            mix = kwargs["mix"]
            kwargs["mix"] = tuple(mix.items()) if isinstance(mix, Mapping) else tuple(mix)
        return cls(**kwargs)


def _valid_mix_name(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    if name.startswith(MALFORMED_PREFIX):
        return name[len(MALFORMED_PREFIX) :] in MALFORMED_KINDS
    return name in STORM_TYPES


def build(name: str, node_id: str, ack_index: int, thread: int, n: int) -> tuple[list[bytes], Message | None]:
    """The payload frames (and the message, if it is one) for one mix entry."""
    if name.startswith(MALFORMED_PREFIX):
        return malformed_frames(name[len(MALFORMED_PREFIX) :], node_id), None
    message = {
        "heartbeat": lambda: Message("heartbeat", None, node_id),
        "unknown": lambda: Message(NOISE_TYPE, {"thread": thread, "n": n}, node_id),
        "stale-spawn": lambda: Message(
            "spawn",
            {"timestamp": 0.0, "user_classes_count": {}, "host": None, "stop_timeout": 0.0, "parsed_options": {}},
            node_id,
        ),
        "ack": lambda: Message("ack", {"index": ack_index}, node_id),
        "update_user_class": lambda: Message("update_user_class", {"user_class_name": STORM_USER_CLASS}, node_id),
        "spawning_complete": lambda: Message("spawning_complete", {"user_count": 0}, node_id),
    }[name]()
    return [encode(message)], message


@dataclass(frozen=True)
class StormResult:
    """What a storm did: ``attempted == delivered + refused`` (``errors``: harness failures, if any)."""

    attempted: int
    delivered: int
    refused: int
    duration: float
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping, for reports."""
        return {
            "attempted": self.attempted,
            "delivered": self.delivered,
            "refused": self.refused,
            "duration": round(self.duration, 6),
            "errors": list(self.errors),
        }


class StormTarget(Protocol):
    """What a storm needs of the fake master."""

    def storm_send(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str) -> bool:
        """Hand one message to the socket owner thread; True if the socket took it."""

    def storm_send_many(self, identity: bytes, batch: list[tuple[list[bytes], Message | None]], tag: str) -> int:
        """Hand messages to the socket owner thread at once, sent in order; how many the socket took."""

    def fault_note(self, text: str) -> None:
        """Append a FAULT record."""


class StormHandle:
    """A running storm: ``join`` for its result, ``cancel`` to end it early."""

    def __init__(
        self, spec: StormSpec, target: StormTarget, label: str, node_id: str, ack_index: int, monotonic: Callable[[], float]
    ) -> None:
        self.spec = spec
        self.label = label
        self.node_id = node_id
        self._target = target
        self._ack_index = ack_index
        self._monotonic = monotonic
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._budget = spec.max_messages
        self._attempted = 0
        self._delivered = 0
        self._refused = 0
        self._errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._sender, args=(i,), name=f"{label}-sender-{i}", daemon=True) for i in range(spec.threads)
        ]
        self._done = threading.Event()
        self._result: StormResult | None = None
        self._started_at = 0.0

    def start(self) -> StormHandle:
        self._target.fault_note(window_note(self.label, "start", f"to {self.node_id} {json.dumps(self.spec.to_dict())}"))
        self._started_at = self._monotonic()
        for thread in self._threads:
            thread.start()
        threading.Thread(target=self._finish, name=f"{self.label}-join", daemon=True).start()
        return self

    def cancel(self) -> None:
        """Ask the sender threads to stop after their current send."""
        self._cancel.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def join(self, timeout: float) -> StormResult:
        """The result once every sender has ended; HarnessFault if that takes longer than ``timeout``."""
        if not self._done.wait(timeout):
            raise HarnessFault(f"{self.label}: the sender threads did not end within {timeout:g} s")
        assert self._result is not None
        return self._result

    def _take(self, wanted: int) -> int:
        """Up to ``wanted`` messages of the storm's budget (``max_messages`` over all threads)."""
        with self._lock:
            granted = min(wanted, self._budget)
            self._budget -= granted
            return granted

    def _sender(self, index: int) -> None:
        spec = self.spec
        rng = random.Random(f"storm:{spec.seed}:{index}")
        names = [name for name, _ in spec.mix]
        cum_weights = list(itertools.accumulate(weight for _, weight in spec.mix))
        identity = self.node_id.encode()
        end = self._started_at + spec.duration
        interval = 1.0 / spec.rate
        # What a late schedule may still owe: below BURST_SECONDS between messages, nothing (one message at a
        # time, as ever); above, up to BURST_SECONDS worth, sent as one batch. Never a catch-up beyond that.
        backlog = BURST_SECONDS if interval < BURST_SECONDS else 0.0
        next_at = self._started_at  # when the next message is due
        constant: dict[str, tuple[list[bytes], Message | None]] = {}  # everything but "unknown" is the same each time
        n = 0
        delivered = refused = 0
        try:
            while n < spec.max_messages:
                now = self._monotonic()
                if self._cancel.is_set() or now >= end:
                    break
                next_at = max(next_at, now - backlog)  # behind schedule: carry on, never catch up
                due = min(MAX_BATCH, spec.max_messages - n, int((now - next_at) / interval) + 1)
                count = self._take(due)
                if count == 0:
                    break
                # One draw per message, as k separate rng.choices calls would make (a one-type mix needs none).
                picks = rng.choices(names, cum_weights=cum_weights, k=count) if len(names) > 1 else names * count
                batch: list[tuple[list[bytes], Message | None]] = []
                for name in picks:
                    if name == "unknown":
                        batch.append(build(name, self.node_id, self._ack_index, index, n))
                    else:
                        item = constant.get(name)
                        if item is None:
                            item = constant[name] = build(name, self.node_id, self._ack_index, index, n)
                        batch.append(item)
                    n += 1
                took = self._target.storm_send_many(identity, batch, self.label)
                delivered += took
                refused += count - took
                next_at += count * interval
                wait = min(next_at, end) - self._monotonic()
                if wait > 0 and self._cancel.wait(wait):
                    break
        except ConformanceError as exc:  # the socket thread failed to answer: a harness fault, kept for join()
            with self._lock:
                self._errors.append(f"sender {index}: {exc}")
        except Exception as exc:  # a bug in the harness: reported by join(), never silent
            with self._lock:
                self._errors.append(f"sender {index}: unexpected {exc!r}")
        finally:
            with self._lock:
                self._attempted += delivered + refused
                self._delivered += delivered
                self._refused += refused

    def _finish(self) -> None:
        deadline = self._started_at + self.spec.duration + JOIN_SLACK
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        with self._lock:
            if alive:
                self._errors.append(f"sender threads still running after {self.spec.duration + JOIN_SLACK:g} s: {alive}")
            result = StormResult(
                self._attempted, self._delivered, self._refused, self._monotonic() - self._started_at, tuple(self._errors)
            )
        self._result = result
        try:
            self._target.fault_note(
                window_note(
                    self.label, "end", f"attempted={result.attempted} delivered={result.delivered} refused={result.refused}"
                )
            )
        finally:
            self._done.set()


class StormRegistry:
    """The storms one target has started, labelled ``storm#1``, ``storm#2``, ... in order; any thread."""

    def __init__(self, target: StormTarget, monotonic: Callable[[], float]) -> None:
        self._target = target
        self._monotonic = monotonic
        self._storms: list[StormHandle] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def launch(self, spec: StormSpec, node_id: str, ack_index: int) -> StormHandle:
        """Start a storm on ``node_id`` and keep it for ``stop_all``; returns at once."""
        handle = StormHandle(spec, self._target, f"storm#{next(self._numbers)}", node_id, ack_index, self._monotonic)
        with self._lock:
            self._storms.append(handle)
        return handle.start()

    def stop_all(self, note: Callable[[str], None]) -> None:
        """Cancel every storm, then wait for each; one that will not end is a harness fault told to ``note``, not raised."""
        with self._lock:
            storms = list(self._storms)
        for storm in storms:
            storm.cancel()
        for storm in storms:
            try:
                storm.join(JOIN_SLACK)
            except HarnessFault as exc:  # a storm that will not end must not keep the socket thread alive
                note(f"harness fault: {exc}")
