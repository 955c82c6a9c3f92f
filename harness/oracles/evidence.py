"""What every oracle judges: a case's recorded ``Evidence``, and the moments and windows several families read.

Pure: the trace and the process's fate in, answers out. The oracle families (``harness.oracles.*``) build on this
module and never on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness.output import OutputLine
from harness.protocol.messages import MessageType
from harness.protocol.timing import Timing
from harness.trace import Kind, TraceRecord, fault_windows
from harness.verdicts import Finding


@dataclass
class Evidence:
    """Everything a case recorded: the trace, the worker process's fate, and the windows to excuse."""

    records: list[TraceRecord]
    t0: float
    timing: Timing
    end: float  # when observation stopped (absolute, trace clock)
    exit_code: int | None = None  # None: still running when the case ended
    killed_by_harness: bool = False
    output: list[OutputLine] = field(default_factory=list)  # what the worker printed, timed on the trace's clock
    exempt: list[tuple[float, float, str]] = field(default_factory=list)  # absolute windows
    asked_counts: dict[str, int] | None = None
    teardown_at: float | None = None  # when the harness began stopping the worker (trace clock); None: it did not
    exited_at: float | None = None  # when the worker was first seen to have ended (trace clock)
    needed_sigkill: bool = False  # the worker outlived the harness's SIGTERM and was killed
    output_not_judged: str = ""  # what of the output was not kept (a flood of output), said in a finding
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (start, end): the harness itself ran late

    @property
    def node_id(self) -> str | None:
        first = next((r for r in self.records if r.kind is Kind.RECV and r.message is not None), None)
        return first.message.node_id if first and first.message else None

    def received(self, *types: str) -> list[TraceRecord]:
        """Decoded messages from the worker (of ``types``, if given), in trace order."""
        return self._select(Kind.RECV, types)

    def sent(self, *types: str) -> list[TraceRecord]:
        """Messages the master handed to its socket (of ``types``, if given), in trace order."""
        return self._select(Kind.SEND, types)

    def _select(self, kind: Kind, types: tuple[str, ...]) -> list[TraceRecord]:
        index = self.__dict__.get("_index")
        if index is None or self.__dict__.get("_indexed") != len(self.records):  # built once; rebuilt if records grew
            index = {}
            for r in self.records:
                if r.message is not None and r.kind in (Kind.RECV, Kind.SEND):
                    index.setdefault((r.kind, None), []).append(r)
                    index.setdefault((r.kind, r.message.type), []).append(r)
            self.__dict__["_index"], self.__dict__["_indexed"] = index, len(self.records)
        if not types:
            return list(index.get((kind, None), []))
        if len(types) == 1:
            return list(index.get((kind, types[0]), []))
        return sorted((r for t in set(types) for r in index.get((kind, t), [])), key=lambda r: r.seq)

    def rel(self, t: float) -> float:
        return t - self.t0

    def exempted(self, start: float, end: float) -> bool:
        """True if the interval (start, end) overlaps a window in which the harness itself disrupted traffic."""
        return any(a < end and start < b for a, b, _ in self.exempt)


Oracle = Callable[[Evidence], list[Finding]]

# Windows in which the harness itself cut the worker off; heartbeat gaps there are not the worker's.
# Fault plans, storms and master silence are NOT excused: keeping heartbeats going through them is the test.
DISRUPTIONS = frozenset({"pause-reading", "master-down", "master-death"})
# Windows in which a message from the master may not reach the worker at all.
UNREACHABLE = frozenset({"master-down", "master-death", "reconnect"})


def excused_windows(records: Iterable[TraceRecord]) -> list[tuple[float, float, str]]:
    """The fault windows of ``records`` that excuse heartbeat gaps (the master could not hear the worker)."""
    return [w for w in fault_windows(records) if w[2] in DISRUPTIONS]


def reachable_quits(ev: Evidence) -> list[TraceRecord]:
    """The master's quits sent while the worker could be reached (outside every ``UNREACHABLE`` window)."""
    unreachable = [(a, b) for a, b, label in ev.exempt if label in UNREACHABLE]
    return [q for q in ev.sent(MessageType.QUIT) if not any(a <= q.t <= b for a, b in unreachable)]


def worker_quit_at(ev: Evidence) -> float | None:
    """When the worker's first quit arrived; None if it sent none."""
    quits = ev.received(MessageType.QUIT)
    return quits[0].t if quits else None


# A case that makes the worker shut down by other means than quit (a signal, a master it is expected to give up on)
# says so with a note starting with this.
SHUTDOWN_NOTE = "worker shutdown begins: "


def shutdown_began(ev: Evidence) -> tuple[float, str] | None:
    """When and why the worker began shutting down on its own: the master's quit, its own quit, or a case's note."""
    moments: list[tuple[float, str]] = []
    sent = ev.sent(MessageType.QUIT)
    if sent:
        moments.append((sent[0].t, "the master's quit"))
    got = ev.received(MessageType.QUIT)
    if got:
        moments.append((got[0].t, "its own quit"))
    note = next((r for r in ev.records if r.kind is Kind.NOTE and r.note.startswith(SHUTDOWN_NOTE)), None)
    if note is not None:
        moments.append((note.t, note.note.removeprefix(SHUTDOWN_NOTE)))
    return min(moments) if moments else None
