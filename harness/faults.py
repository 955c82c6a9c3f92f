"""Faults as data: what the fake master does to the messages it sends, decided without I/O.

A ``FaultPlan`` is a seeded list of ``Fault`` records (serialisable with
``to_dict``/``from_dict``). A ``FaultEngine`` applies a plan to each outbound
message (``outbound(type, now)``) and says when to deliver how many copies;
the adapter (the fake master) keeps the payloads and a delivery heap. Nothing
here reads the clock, touches a socket or starts a thread: ``now`` is passed in.

Fault kinds:

* ``delay``: deliver ``seconds`` later, plus a uniform extra in ``[0, jitter]``;
* ``drop``: never deliver;
* ``duplicate``: deliver ``copies`` extra copies along with the original;
* ``hold``: keep ``batch`` matching messages, then release them in reverse
  order (reordering); a batch not complete ``release_after`` seconds after its
  first message, or when the fault's window ``end``\\s, is released anyway.

Every fault filters by message ``types`` (empty: all, raw frames included, which
carry the type ``RAW``), a window ``[start, end)`` in seconds since the plan was
installed, a ``count`` (at most that many messages) and a ``probability``.
Faults are tried in plan order; ``drop`` and ``hold`` end the list for a message.
The same plan (seed included) fed the same ``(type, now)`` sequence gives the same
decisions.

``malformed_frames`` builds deliberately broken payload frames for a worker.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

from harness.errors import ScenarioError
from harness.protocol.codec import encode, encode_parts
from harness.protocol.messages import Message

FAULT_KINDS = ("delay", "drop", "duplicate", "hold")
RAW = "<raw>"  # the message type a fault sees for raw (undecoded) frames

# Fields that only mean something for one kind; setting them on another kind is a script error.
_KIND_FIELDS: dict[str, frozenset[str]] = {
    "delay": frozenset({"seconds", "jitter"}),
    "drop": frozenset(),
    "duplicate": frozenset({"copies"}),
    "hold": frozenset({"batch", "release_after"}),
}
_MAX_SECONDS = 3600.0
_MAX_COPIES = 1000
_MAX_BATCH = 10_000


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Fault:
    """One fault applied to master->worker messages; invalid values raise ScenarioError naming the field."""

    kind: str
    types: tuple[str, ...] = ()
    count: int | None = None
    probability: float = 1.0
    start: float = 0.0
    end: float | None = None
    seconds: float = 0.0
    jitter: float = 0.0
    copies: int = 1
    batch: int = 2
    release_after: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ScenarioError(f"fault field 'kind': expected one of {', '.join(FAULT_KINDS)}, got {self.kind!r}")
        types = self.types
        if isinstance(types, str):
            types = (types,)
        if not isinstance(types, (tuple, list)) or not all(isinstance(t, str) and t for t in types):
            raise ScenarioError(f"fault field 'types': expected a list of message type names, got {self.types!r}")
        object.__setattr__(self, "types", tuple(types))
        if self.count is not None and not (_is_int(self.count) and self.count >= 1):
            raise ScenarioError(f"fault field 'count': expected null or an integer >= 1, got {self.count!r}")
        if not (_is_number(self.probability) and 0.0 <= self.probability <= 1.0):
            raise ScenarioError(f"fault field 'probability': expected a number in [0, 1], got {self.probability!r}")
        self._check_seconds("start", self.start)
        if self.end is not None:
            self._check_seconds("end", self.end)
            if self.end <= self.start:
                raise ScenarioError(f"fault field 'end': expected end > start ({self.start!r}), got {self.end!r}")
        self._check_seconds("seconds", self.seconds)
        self._check_seconds("jitter", self.jitter)
        if not (_is_int(self.copies) and 1 <= self.copies <= _MAX_COPIES):
            raise ScenarioError(f"fault field 'copies': expected an integer in [1, {_MAX_COPIES}], got {self.copies!r}")
        if not (_is_int(self.batch) and 1 <= self.batch <= _MAX_BATCH):
            raise ScenarioError(f"fault field 'batch': expected an integer in [1, {_MAX_BATCH}], got {self.batch!r}")
        self._check_seconds("release_after", self.release_after)
        if self.release_after <= 0:
            raise ScenarioError(f"fault field 'release_after': expected a positive number of seconds, got {self.release_after!r}")
        for name in frozenset().union(*_KIND_FIELDS.values()) - _KIND_FIELDS[self.kind]:
            if getattr(self, name) != _DEFAULTS[name]:
                owner = next(k for k, names in _KIND_FIELDS.items() if name in names)
                raise ScenarioError(f"fault field {name!r}: only a {owner} fault takes it, this one is a {self.kind}")

    @staticmethod
    def _check_seconds(name: str, value: Any) -> None:
        if not (_is_number(value) and 0.0 <= value <= _MAX_SECONDS):
            raise ScenarioError(f"fault field {name!r}: expected seconds in [0, {_MAX_SECONDS:g}], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """``kind`` plus every field that differs from its default (``types`` as a list)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "kind" and value != _DEFAULTS[f.name]:
                out[f.name] = list(value) if f.name == "types" else value
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> Fault:
        """Build a Fault from a mapping; unknown or bad fields raise ScenarioError naming them."""
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"a fault must be an object with a 'kind', got {raw!r}")
        unknown = sorted(set(raw) - set(_DEFAULTS) - {"kind"})
        if unknown:
            raise ScenarioError(f"fault field {unknown[0]!r}: unknown (known fields: kind, {', '.join(_DEFAULTS)})")
        if "kind" not in raw:
            raise ScenarioError("fault field 'kind': missing")
        kwargs = dict(raw)
        if isinstance(kwargs.get("types"), list):
            kwargs["types"] = tuple(kwargs["types"])
        return cls(**kwargs)

    def describe(self) -> str:
        """A short human-readable rendering, for notes and reports."""
        parts = [self.kind]
        if self.kind == "delay":
            parts.append(f"{self.seconds:g} s" + (f" +[0, {self.jitter:g}] s" if self.jitter else ""))
        elif self.kind == "duplicate":
            parts.append(f"+{self.copies}")
        elif self.kind == "hold":
            parts.append(f"batch {self.batch}, release after {self.release_after:g} s")
        parts.append(f"types {'/'.join(self.types)}" if self.types else "all types")
        if self.count is not None:
            parts.append(f"at most {self.count}x")
        if self.probability < 1.0:
            parts.append(f"p={self.probability:g}")
        if self.start or self.end is not None:
            parts.append(f"window [{self.start:g}, {'inf' if self.end is None else f'{self.end:g}'}) s")
        return " ".join(parts[:1]) + " " + ", ".join(parts[1:])


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Fault) if f.name != "kind"}


@dataclass(frozen=True)
class FaultPlan:
    """A seeded, ordered list of faults."""

    faults: tuple[Fault, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        faults = self.faults
        if not isinstance(faults, (tuple, list)) or not all(isinstance(f, Fault) for f in faults):
            raise ScenarioError(f"fault plan field 'faults': expected a list of Fault, got {faults!r}")
        object.__setattr__(self, "faults", tuple(faults))
        if not _is_int(self.seed):
            raise ScenarioError(f"fault plan field 'seed': expected an integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """``{"faults": [...], "seed": n}``, the inverse of ``from_dict``."""
        return {"faults": [f.to_dict() for f in self.faults], "seed": self.seed}

    @classmethod
    def from_dict(cls, raw: Any) -> FaultPlan:
        """Build a plan from ``{"faults": [...], "seed": n}``; errors name the fault index and field."""
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"a fault plan must be an object with 'faults', got {raw!r}")
        unknown = sorted(set(raw) - {"faults", "seed"})
        if unknown:
            raise ScenarioError(f"fault plan field {unknown[0]!r}: unknown (known fields: faults, seed)")
        items = raw.get("faults", [])
        if not isinstance(items, (list, tuple)):
            raise ScenarioError(f"fault plan field 'faults': expected a list, got {items!r}")
        faults = []
        for i, item in enumerate(items):
            try:
                faults.append(Fault.from_dict(item))
            except ScenarioError as exc:
                raise ScenarioError(f"faults[{i}]: {exc}") from None
        return cls(tuple(faults), raw.get("seed", 0))


@dataclass(frozen=True)
class Release:
    """A held message to deliver now: its token, and one delivery time per copy."""

    token: int
    deliveries: tuple[float, ...]


@dataclass
class Decision:
    """What to do with one outbound message (or with held ones whose time has come).

    ``deliveries``: absolute times, one copy each ([] = dropped or held).
    ``held``: if set, keep this message's payload under that token until it is released.
    ``released``: held messages to deliver now, in this order (reverse of arrival).
    ``applied``: a description of every fault applied, for the trace.
    """

    deliveries: list[float] = field(default_factory=list)
    held: int | None = None
    released: list[Release] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    opened_at: float
    items: list[tuple[int, tuple[float, ...]]] = field(default_factory=list)


class FaultEngine:
    """Applies a FaultPlan to a sequence of outbound messages; pure and deterministic for a given seed."""

    def __init__(self, plan: FaultPlan, installed_at: float) -> None:
        self.plan = plan
        self.installed_at = installed_at
        self._rng = random.Random(plan.seed)
        self._uses = [0] * len(plan.faults)
        self._batches: dict[int, _Batch] = {}
        self._next_token = 0

    def uses(self) -> list[int]:
        """How many messages each fault has been applied to so far."""
        return list(self._uses)

    def _fires(self, i: int, fault: Fault, message_type: str, now: float) -> bool:
        if fault.types and message_type not in fault.types:
            return False
        elapsed = now - self.installed_at
        if elapsed < fault.start or (fault.end is not None and elapsed >= fault.end):
            return False
        if fault.count is not None and self._uses[i] >= fault.count:
            return False
        return fault.probability >= 1.0 or self._rng.random() < fault.probability

    def outbound(self, message_type: str, now: float) -> Decision:
        """Decide the fate of one message of ``message_type`` sent at ``now``."""
        decision = self.release_due(now)  # a batch whose time is up goes before anything sent later
        deliveries = [now]
        for i, fault in enumerate(self.plan.faults):
            if not self._fires(i, fault, message_type, now):
                continue
            self._uses[i] += 1
            tag = f"[fault {i + 1}: {fault.kind}]"
            if fault.kind == "drop":
                decision.applied.append(f"drop {tag}")
                deliveries = []
                break
            if fault.kind == "delay":
                extra = self._rng.uniform(0.0, fault.jitter) if fault.jitter > 0 else 0.0
                delay = fault.seconds + extra
                deliveries = [t + delay for t in deliveries]
                decision.applied.append(f"delay {delay:.6f} s {tag}")
            elif fault.kind == "duplicate":
                deliveries = [t for t in deliveries for _ in range(1 + fault.copies)]
                decision.applied.append(f"duplicate +{fault.copies} {tag}")
            else:  # hold
                batch = self._batches.setdefault(i, _Batch(opened_at=now))
                token = self._next_token
                self._next_token += 1
                batch.items.append((token, tuple(deliveries)))
                decision.held = token
                decision.applied.append(f"hold {len(batch.items)}/{fault.batch} {tag}")
                deliveries = []
                if len(batch.items) >= fault.batch:
                    self._release(i, now, "batch complete", decision)
                break
        decision.deliveries = deliveries
        return decision

    def _deadline(self, i: int) -> float:
        fault = self.plan.faults[i]
        deadline = self._batches[i].opened_at + fault.release_after
        if fault.end is not None:
            deadline = min(deadline, self.installed_at + fault.end)
        return deadline

    def _release(self, i: int, now: float, why: str, decision: Decision) -> None:
        batch = self._batches.pop(i)
        for token, times in reversed(batch.items):
            decision.released.append(Release(token, tuple(max(t, now) for t in times)))
        decision.applied.append(f"release {len(batch.items)} held in reverse order ({why}) [fault {i + 1}: hold]")

    def next_deadline(self) -> float | None:
        """When the earliest incomplete held batch must be released, if any is pending."""
        return min((self._deadline(i) for i in self._batches), default=None)

    def release_due(self, now: float) -> Decision:
        """Release every held batch whose ``release_after`` or window end has passed."""
        decision = Decision()
        for i in sorted(self._batches):
            if self._deadline(i) <= now:
                self._release(i, now, "released on time-out", decision)
        return decision

    def release_all(self, now: float, why: str = "plan removed") -> Decision:
        """Release every held batch (the plan is being replaced or cleared)."""
        decision = Decision()
        for i in sorted(self._batches):
            self._release(i, now, why, decision)
        return decision


# --------------------------------------------------------------------------------------------
# Malformed frames
# --------------------------------------------------------------------------------------------

MALFORMED_KINDS = (
    "garbage",
    "truncated",
    "wrong-arity",
    "wrong-types",
    "unknown-type",
    "empty",
    "extra-frames",
    "oversized",
    "bad-utf8",
    "bin-type",
    "trailing-bytes",
)
DEFAULT_GARBAGE_BYTES = 16
DEFAULT_OVERSIZED_BYTES = 1024 * 1024
MAX_MALFORMED_BYTES = 256 * 1024 * 1024
UNKNOWN_TYPE = "lc_unknown_type"
OVERSIZED_TYPE = "lc_oversized"


def malformed_frames(kind: str, node_id: str, *, size: int = 0) -> list[bytes]:
    """Payload frames (without the ROUTER identity) that break the protocol in the way ``kind`` names.

    ``size`` (0: a default) sets the length of ``garbage`` and the padding of ``oversized``:

    ====================  ==================================================================
    ``garbage``           ``0xc1`` (never valid msgpack) then filler bytes, ``size`` in all
    ``truncated``         a valid heartbeat envelope missing its last 3 bytes
    ``wrong-arity``       ``["heartbeat", nil]``: 2 items instead of 3
    ``wrong-types``       ``["spawn", ["not", "a", "map"], node_id]``: data of the wrong type
    ``unknown-type``      ``["lc_unknown_type", {"n": 1}, node_id]``: valid but unknown
    ``empty``             one empty frame
    ``extra-frames``      a valid heartbeat frame followed by a second frame
    ``oversized``         a valid ``lc_oversized`` message padded to ``size`` bytes (1 MiB)
    ``bad-utf8``          the type field as a msgpack str holding invalid UTF-8
    ``bin-type``          the type field as msgpack bin instead of str
    ``trailing-bytes``    a valid heartbeat frame followed by one more msgpack byte
    ====================  ==================================================================
    """
    if kind not in MALFORMED_KINDS:
        raise ScenarioError(f"malformed kind {kind!r}: expected one of {', '.join(MALFORMED_KINDS)}")
    if not _is_int(size) or not 0 <= size <= MAX_MALFORMED_BYTES:
        raise ScenarioError(f"malformed size: expected an integer in [0, {MAX_MALFORMED_BYTES}], got {size!r}")
    heartbeat = encode(Message("heartbeat", None, node_id))
    if kind == "garbage":
        n = size or DEFAULT_GARBAGE_BYTES
        filler = b"GARBAGE!" * (n // 8 + 1)
        return [(b"\xc1" + filler)[:n]]
    if kind == "truncated":
        return [heartbeat[:-3]]
    if kind == "wrong-arity":
        return [_pack(["heartbeat", None])]
    if kind == "wrong-types":
        return [encode_parts("spawn", ["not", "a", "map"], node_id)]
    if kind == "unknown-type":
        return [encode_parts(UNKNOWN_TYPE, {"n": 1}, node_id)]
    if kind == "empty":
        return [b""]
    if kind == "extra-frames":
        return [heartbeat, b"lc-extra-frame"]
    if kind == "oversized":
        return [encode_parts(OVERSIZED_TYPE, {"padding": b"\x00" * (size or DEFAULT_OVERSIZED_BYTES)}, node_id)]
    if kind == "bad-utf8":
        return [b"\x93\xa3\xff\xfe\xfd\xc0" + _pack(node_id)]
    if kind == "bin-type":
        return [encode_parts(b"heartbeat", None, node_id)]
    return [heartbeat + b"\xc0"]  # trailing-bytes


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed
