"""The fault plan applied to what the fake master sends: delays, drops, duplicates, holds and their release.

``OutboundFaults`` stands between every send of the master (storms excepted) and the ROUTER send
(``SocketLoop.send_frames``). With no plan and nothing deferred a message goes straight through; otherwise
``harness.faults.FaultEngine`` decides its fate: delayed deliveries wait in a heap, held messages by token,
until the owner thread's timer (``next_deadline``/``on_deadline``) sends them. Every fault applied, and the
start and end of every plan (``harness.trace.window_note``), is a ``Kind.FAULT`` record. Owner thread only.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable

from harness.clock import Clock
from harness.faults import RAW, Decision, FaultEngine, FaultPlan
from harness.protocol.messages import Message
from harness.trace import Kind, Trace, window_note

# One outbound message as the owner thread keeps it: identity, payload frames, the message if any, a trace tag.
Outbound = tuple[bytes, list[bytes], Message | None, str]
# The ROUTER send: hands one message to the socket and records the outcome; False if the socket refused it.
SendFrames = Callable[[bytes, list[bytes], Message | None, str], bool]


def join_tags(*parts: str) -> str:
    """Trace tags of a send, joined by "; " (a SEND record's note; a SEND_FAILED note ends with them in brackets)."""
    return "; ".join(p for p in parts if p)


class OutboundFaults:
    """The installed fault plan, if any, and the messages it has delayed or held (owner thread only)."""

    def __init__(
        self, send_frames: SendFrames, clock: Clock, trace: Trace, *, window_label: str = "fault-plan", note_prefix: str = ""
    ) -> None:
        """``window_label`` names the plan's window in the trace; ``note_prefix`` starts every FAULT note (a proxy's
        direction, say)."""
        self._send_frames = send_frames
        self._label = window_label
        self._prefix = note_prefix
        self._clock = clock
        self._trace = trace
        self._engine: FaultEngine | None = None
        self._heap: list[tuple[float, int, Outbound]] = []  # delayed deliveries: (due, order, message)
        self._order = itertools.count()
        self._held: dict[int, Outbound] = {}  # held messages by the engine's token

    def dispatch(self, item: Outbound) -> bool:
        """Send through the fault plan, if any. False only if the socket refused an immediate delivery."""
        if self._engine is None and not self._heap:  # no fault plan, nothing deferred: straight to the socket
            return self._send_frames(*item)
        now = self._clock.now()
        self._deliver_due(now)
        if self._engine is None:
            return self._send_frames(*item)
        message = item[2]
        decision = self._engine.outbound(message.type if message is not None else RAW, now)
        return self._apply(decision, now, item)

    @property
    def passthrough(self) -> bool:
        """No plan and nothing deferred: a message would go straight to the socket (``dispatch``'s fast path)."""
        return self._engine is None and not self._heap

    def install(self, plan: FaultPlan | None) -> None:
        """Apply ``plan`` from now on (None: no plan); the previous plan's held messages are released now."""
        now = self._clock.now()
        if self._engine is not None:
            self._apply(self._engine.release_all(now, "plan replaced" if plan else "plan cleared"), now)
            self._engine = None
            self._fault_note(window_note(self._label, "end", "replaced" if plan else "cleared"))
        if plan is not None:
            self._fault_note(window_note(self._label, "start", json.dumps(plan.to_dict())))
            self._engine = FaultEngine(plan, now)

    def flush(self, reason: str) -> None:
        """Hand every delayed or held message to the socket now (used when the socket is gone: all fail)."""
        now = self._clock.now()
        if self._engine is not None:
            self._apply(self._engine.release_all(now, reason), now)
        for _ in range(len(self._heap)):
            self._send_frames(*heapq.heappop(self._heap)[2])

    def record_fault(self, text: str, item: Outbound) -> None:
        """A FAULT record about one outbound message (its identity and message)."""
        identity, _, message, _ = item
        self._trace.append(
            self._clock.now(),
            Kind.FAULT,
            identity=identity.decode("utf-8", "backslashreplace"),
            message=message,
            note=self._prefix + text,
        )

    def next_deadline(self) -> float | None:
        """The next delayed delivery or held batch's time-out, if any."""
        deadline = self._heap[0][0] if self._heap else None
        if self._engine is not None:
            candidate = self._engine.next_deadline()
            if candidate is not None and (deadline is None or candidate < deadline):
                deadline = candidate
        return deadline

    def on_deadline(self, now: float) -> None:
        """Send what has fallen due."""
        self._deliver_due(now)

    def _fault_note(self, text: str) -> None:
        self._trace.append(self._clock.now(), Kind.FAULT, note=text if text.startswith(self._label) else self._prefix + text)

    def _apply(self, decision: Decision, now: float, item: Outbound | None = None) -> bool:
        for text in decision.applied:
            if item is not None:
                self.record_fault(text, item)
            else:
                self._fault_note(text)
        if decision.held is not None and item is not None:
            self._held[decision.held] = item
        for release in decision.released:
            held = self._held.pop(release.token)
            for t in release.deliveries:
                self._schedule(t, now, (*held[:3], join_tags(held[3], "released by fault")))
        ok = True
        if item is not None:
            for t in decision.deliveries:
                ok = self._schedule(t, now, item) and ok
        return ok

    def _schedule(self, t: float, now: float, item: Outbound) -> bool:
        if t <= now:
            return self._send_frames(*item)
        heapq.heappush(self._heap, (t, next(self._order), (*item[:3], join_tags(item[3], "deferred by fault"))))
        return True

    def _deliver_due(self, now: float) -> None:
        if self._engine is not None:
            self._apply(self._engine.release_due(now), now)
        for _ in range(len(self._heap)):
            if not self._heap or self._heap[0][0] > now:
                break
            self._send_frames(*heapq.heappop(self._heap)[2])
