"""An append-only, thread-safe record of everything that crossed the fake master's socket.

The socket owner thread appends almost every record (notes and fault-window
edges may come from any thread; appends are locked); any thread may read or
wait for a record with a deadline. ``fault_windows`` pairs the FAULT records
that open and close a window of deliberate disruption. Records keep the decoded message, the violations
found, and the raw frames of anything that did not decode cleanly.

Appending is on the fake master's hot path (every frame in both directions), so ``Trace.add`` stores a
record's fields as plain values in one flat list, in order, with its sequence number and timestamp fixed at
once; the ``TraceRecord`` object is built the first time a reader asks for it (and kept). What a reader sees
is the same either way. The flat list also keeps the garbage collector out of the way: a million records
stored as objects (a record and its message each) are a million objects that every full collection walks,
and that trigger full collections as they pile up; plain values in one list are neither.
"""

from __future__ import annotations

import datetime
import enum
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.protocol.codec import ObjectIdRef
from harness.protocol.findings import Violation
from harness.protocol.messages import Message


class Kind(enum.StrEnum):
    RECV = "recv"  # worker -> master
    SEND = "send"  # master -> worker, handed to the socket
    SEND_FAILED = "send-failed"  # master -> worker, refused by the socket (unknown peer, high-water mark)
    LIVENESS = "liveness"  # the real master's rule changed a worker's liveness
    FAULT = "fault"  # a fault applied on purpose: per message, or a window edge (see ``window_note``)
    NOTE = "note"  # anything else worth a line: script steps, lifecycle, connections
    OUTPUT = "output"  # a line the worker printed (stdout or stderr), timed when the harness read it


@dataclass(frozen=True)
class TraceRecord:
    seq: int
    t: float
    kind: Kind
    identity: str = ""
    message: Message | None = None
    frames: tuple[bytes, ...] = ()
    size: int = 0
    violations: tuple[Violation, ...] = ()
    note: str = ""

    @property
    def type(self) -> str | None:
        return self.message.type if self.message else None

    def to_json(self, t0: float = 0.0) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "t": round(self.t - t0, 6), "kind": self.kind.value}
        if self.identity:
            out["identity"] = self.identity
        if self.message is not None:
            out["type"] = self.message.type
            out["data"] = json_safe(self.message.data)
            out["node_id"] = self.message.node_id
        if self.size:
            out["size"] = self.size
        if self.frames:
            out["frames_hex"] = [f.hex() for f in self.frames]
        if self.violations:
            out["violations"] = [v.to_dict() for v in self.violations]
        if self.note:
            out["note"] = self.note
        return out


def json_safe(value: Any) -> Any:
    """A JSON-encodable rendering of a decoded msgpack value (int map keys become strings)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes_hex": value.hex()}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, ObjectIdRef):
        return {"object_id": value.as_str}
    return value


# ``Trace._flat`` holds _WIDTH values per record, in seq order: t, kind, identity, message type (or
# _NO_MESSAGE), data, node_id, frames, size, violations, note. No Message and no record object: plain values
# (and the message's own data).
_WIDTH = 10
_NO_MESSAGE: Any = object()  # the type slot of a record without a message


def _flat_fields(record: TraceRecord) -> tuple[Any, ...]:
    message = record.message
    head = (record.t, record.kind, record.identity)
    tail = (record.frames, record.size, record.violations, record.note)
    if message is None:
        return (*head, _NO_MESSAGE, None, None, *tail)
    return (*head, message.type, message.data, message.node_id, *tail)


@dataclass
class Trace:
    """The append-only record; ``wait_for`` blocks with a deadline until a record matches."""

    t0: float = 0.0
    _flat: list[Any] = field(default_factory=list)  # _WIDTH values per record
    _built: list[TraceRecord | None] = field(default_factory=list)  # by seq: the record object, once built
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition = field(init=False)
    _waiting: int = 0  # threads in wait_for: appends notify only when someone waits

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    def append(self, t: float, kind: Kind, **fields: Any) -> TraceRecord:
        """Append a record (fields as in TraceRecord) and return it."""
        with self._lock:
            record = TraceRecord(len(self._built), t, kind, **fields)
            self._flat.extend(_flat_fields(record))
            self._built.append(record)
            if self._waiting:
                self._cond.notify_all()
        return record

    def add(
        self,
        t: float,
        kind: Kind,
        identity: str = "",
        message: Message | None = None,
        frames: tuple[bytes, ...] = (),
        size: int = 0,
        violations: tuple[Violation, ...] = (),
        note: str = "",
    ) -> None:
        """``append`` without building the record object now (the socket thread's fast path)."""
        fields: tuple[Any, ...]
        if message is None:
            fields = (t, kind, identity, _NO_MESSAGE, None, None, frames, size, violations, note)
        else:
            fields = (t, kind, identity, message.type, message.data, message.node_id, frames, size, violations, note)
        with self._lock:
            self._flat.extend(fields)
            self._built.append(None)
            if self._waiting:
                self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._built)

    def records(self, since: int = 0) -> list[TraceRecord]:
        """A snapshot of the records with ``seq >= since``."""
        with self._lock:
            end = len(self._built)
            if since < 0:
                since = max(0, end + since)
            built = self._built[since:end]
            flat = self._flat[since * _WIDTH : end * _WIDTH]
        out: list[TraceRecord] = []
        store = self._built
        for j, record in enumerate(built):
            if record is None:
                t, kind, identity, message_type, data, node_id, frames, size, violations, note = flat[
                    j * _WIDTH : (j + 1) * _WIDTH
                ]
                message = None if message_type is _NO_MESSAGE else Message(message_type, data, node_id)
                record = TraceRecord(since + j, t, kind, identity, message, frames, size, violations, note)
                store[since + j] = record  # one atomic slot store; a racing reader may build an equal twin, never another
            out.append(record)
        return out

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records())

    def find(self, match: Callable[[TraceRecord], bool], since: int = 0) -> TraceRecord | None:
        return next((r for r in self.records(since) if match(r)), None)

    def wait_for(
        self, match: Callable[[TraceRecord], bool], since: int, timeout: float, monotonic: Callable[[], float]
    ) -> TraceRecord | None:
        """The first record at or after ``since`` that matches, waiting at most ``timeout`` seconds."""
        deadline = monotonic() + timeout
        scanned = since
        while True:
            for record in self.records(scanned):  # matched outside the lock: appends never wait for a reader
                if match(record):
                    return record
                scanned = record.seq + 1
            with self._lock:
                if len(self._built) > scanned:
                    continue  # more arrived while matching
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return None
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1

    def dump_jsonl(self, out: TextIO) -> int:
        """Write one JSON object per record; returns the number written."""
        records = self.records()
        for record in records:
            out.write(json.dumps(record.to_json(self.t0), default=repr) + "\n")
        return len(records)

    def save(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            return self.dump_jsonl(out)


def format_record(record: TraceRecord, t0: float = 0.0, width: int = 160) -> str:
    """One human-readable line for a record, for printed traces."""
    arrow = {Kind.RECV: "W->M", Kind.SEND: "M->W", Kind.SEND_FAILED: "M-xW", Kind.FAULT: "~~~~", Kind.OUTPUT: "W>>>"}.get(
        record.kind, "    "
    )
    head = f"{record.t - t0:9.3f} {arrow} {record.kind.value:<11}"
    if record.kind is Kind.FAULT:
        body = f"{record.message.type:<18} {record.note}" if record.message is not None else record.note
    elif record.message is not None:
        body = f"{record.message.type:<18} {json.dumps(json_safe(record.message.data), default=repr)}"
    elif record.frames:
        body = f"<undecodable {record.size} bytes> {record.frames[-1][:24].hex()}"
    else:
        body = record.note
    line = f"{head} {body}"
    if record.violations:
        line += "  !! " + "; ".join(str(v) for v in record.violations)
    return line if len(line) <= width else line[: width - 3] + "..."


# --------------------------------------------------------------------------------------------
# Fault windows
# --------------------------------------------------------------------------------------------

WINDOW_EDGES = ("start", "end")
# Labels the fake master uses; storms are numbered ("storm#1") so that overlapping storms pair up.
WINDOW_LABELS = ("fault-plan", "pause-reading", "master-silence", "master-down", "master-death", "storm", "stack-dump")


def window_note(label: str, edge: str, detail: str = "") -> str:
    """The note of a FAULT record that opens or closes a window: ``"<label> <start|end>[: detail]"``."""
    if edge not in WINDOW_EDGES or not label or ": " in label or " " in label:
        raise ValueError(f"bad window note: label {label!r}, edge {edge!r}")
    return f"{label} {edge}" + (f": {detail}" if detail else "")


def parse_window_note(note: str) -> tuple[str, str] | None:
    """``(label, edge)`` if ``note`` opens or closes a window, else None."""
    head = note.split(": ", 1)[0]
    label, _, edge = head.rpartition(" ")
    if edge not in WINDOW_EDGES or not label or " " in label:
        return None
    return label, edge


def fault_windows(trace: Trace | Iterable[TraceRecord]) -> list[tuple[float, float, str]]:
    """``(start, end, label)`` for every window opened by a FAULT record, sorted by start.

    Start and end records pair up by label. A window never closed (``master-death``, or a
    trace saved mid-window) ends at the last record's time.
    """
    records = trace.records() if isinstance(trace, Trace) else list(trace)
    last = records[-1].t if records else 0.0
    opened: dict[str, float] = {}
    windows: list[tuple[float, float, str]] = []
    for record in records:
        if record.kind is not Kind.FAULT:
            continue
        parsed = parse_window_note(record.note)
        if parsed is None:
            continue
        label, edge = parsed
        if edge == "start":
            opened.setdefault(label, record.t)
        elif label in opened:
            windows.append((opened.pop(label), record.t, label))
    windows.extend((start, last, label) for label, start in opened.items())
    return sorted(windows)
