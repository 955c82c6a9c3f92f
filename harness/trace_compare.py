"""Two recordings of the same worker, one against a real Locust master and one against the fake master, compared.

What is compared, message by message: the order of the non-periodic messages (everything but heartbeats, stats
and logs), each message type's payload shape (its keys and their value types), which periodic types flow in each
direction, how many heartbeat replies the master sends per worker heartbeat, and the master's reply times (the ack
after client_ready, a heartbeat reply after a heartbeat) within a tolerance. Pure: recordings in, differences out.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.protocol.messages import Message
from harness.trace import Kind, TraceRecord

W2M, M2W = "W->M", "M->W"
PERIODIC = frozenset({"heartbeat", "stats", "logs"})
REPLY_RATIO_TOLERANCE = 0.25  # heartbeat replies per heartbeat, absolute


@dataclass(frozen=True)
class WireMessage:
    """One decoded message on the wire, with when it passed and which way."""

    t: float
    direction: str  # W2M or M2W
    type: str
    data: Any


@dataclass(frozen=True)
class Difference:
    """One way the fake master's recording differs from the real master's."""

    rule: str  # order, shape, presence, replies, timing
    what: str  # the message type or measure it concerns ("M->W spawn", "ack latency")
    real: str
    fake: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.what}: real master {self.real}; fake master {self.fake}"


def from_trace(records: Iterable[TraceRecord]) -> list[WireMessage]:
    """The fake master's trace as wire messages (what it sent and received, decoded)."""
    out: list[WireMessage] = []
    for record in records:
        if record.message is None or record.kind not in (Kind.SEND, Kind.RECV):
            continue
        out.append(WireMessage(record.t, M2W if record.kind is Kind.SEND else W2M, record.message.type, record.message.data))
    return out


def from_messages(items: Iterable[tuple[float, str, Message]]) -> list[WireMessage]:
    """``(t, direction, message)`` triples (a tap's decoded recording) as wire messages."""
    return [WireMessage(t, direction, m.type, m.data) for t, direction, m in items]


def shape(data: Any) -> str:
    """A payload's shape: for a map its keys and their value types, else its type (``nil``, ``str``, ``float`` ...)."""
    if isinstance(data, dict):
        return "{" + ", ".join(f"{k}: {_kind(data[k])}" for k in sorted(data, key=str)) + "}"
    return _kind(data)


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    for kind, name in ((int, "int"), (float, "float"), (str, "str"), (bytes, "bin"), (list, "array"), (dict, "map")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def events(messages: Sequence[WireMessage]) -> list[str]:
    """The non-periodic messages in order, as ``"M->W spawn"``; a message repeated back to back once, with how many
    times (``"M->W ack x2"``)."""
    out: list[list[Any]] = []
    for m in messages:
        if m.type in PERIODIC:
            continue
        label = f"{m.direction} {m.type}"
        if out and out[-1][0] == label:
            out[-1][1] += 1
        else:
            out.append([label, 1])
    return [label if n == 1 else f"{label} x{n}" for label, n in out]


def compare(real: Sequence[WireMessage], fake: Sequence[WireMessage], *, tolerance: float) -> list[Difference]:
    """Every difference between the two recordings; ``tolerance``: seconds two reply times may differ by."""
    found: list[Difference] = []
    real_events, fake_events = events(real), events(fake)
    if real_events != fake_events:
        found.append(Difference("order", "non-periodic messages", " | ".join(real_events), " | ".join(fake_events)))
    for key in sorted({(m.direction, m.type) for m in [*real, *fake]}):
        real_shapes = sorted({shape(m.data) for m in real if (m.direction, m.type) == key})
        fake_shapes = sorted({shape(m.data) for m in fake if (m.direction, m.type) == key})
        what = f"{key[0]} {key[1]}"
        if not real_shapes or not fake_shapes:
            if key[1] in PERIODIC:  # (a non-periodic one missing is already an order difference)
                found.append(Difference("presence", what, _present(real_shapes), _present(fake_shapes)))
            continue
        if real_shapes != fake_shapes:
            found.append(Difference("shape", what, " or ".join(real_shapes), " or ".join(fake_shapes)))
    real_ratio, fake_ratio = _reply_ratio(real), _reply_ratio(fake)
    if real_ratio and fake_ratio and abs(real_ratio - fake_ratio) > REPLY_RATIO_TOLERANCE:  # (none at all: presence)
        found.append(Difference("replies", "heartbeat replies per heartbeat", f"{real_ratio:.2f}", f"{fake_ratio:.2f}"))
    for what, measure in (("ack after client_ready", _ack_latency), ("heartbeat reply after a heartbeat", _reply_latency)):
        a, b = measure(real), measure(fake)
        if a is not None and b is not None and abs(a - b) > tolerance:
            found.append(Difference("timing", what, f"{a * 1000:.1f} ms", f"{b * 1000:.1f} ms"))
    return found


def _present(shapes: list[str]) -> str:
    return "sends it" if shapes else "never sends it"


def _reply_ratio(messages: Sequence[WireMessage]) -> float | None:
    beats = sum(1 for m in messages if m.direction == W2M and m.type == "heartbeat")
    replies = sum(1 for m in messages if m.direction == M2W and m.type == "heartbeat")
    return replies / beats if beats else None


def _ack_latency(messages: Sequence[WireMessage]) -> float | None:
    ready = next((m.t for m in messages if m.direction == W2M and m.type == "client_ready"), None)
    ack = next((m.t for m in messages if m.direction == M2W and m.type == "ack" and ready is not None and m.t >= ready), None)
    return None if ready is None or ack is None else ack - ready


def _reply_latency(messages: Sequence[WireMessage]) -> float | None:
    """The median time from a worker heartbeat to the next master heartbeat (None: no replies)."""
    delays: list[float] = []
    pending: float | None = None
    for m in messages:
        if m.type != "heartbeat":
            continue
        if m.direction == W2M:
            pending = m.t
        elif pending is not None:
            delays.append(m.t - pending)
            pending = None
    return statistics.median(delays) if delays else None
