"""The real master's missing rule applied twice per worker connection: to what the worker sent (its own doing) and
to what the proxy delivered to the master (after the proxy's faults). Pure: times are passed in.

The first is the worker's verdict (a ``Kind.LIVENESS`` record, judged by ``harness.oracles``); the second predicts
what the real master logs ("failed to send heartbeat, setting state to missing") for the traffic it actually got.
They differ only when a fault of the proxy held heartbeats back.

The rule is Locust's counter (``harness.protocol.timing.LivenessCounter``), counted in ticks instead of kept per
worker: a heartbeat (or a client_ready) resets the counter, so the worker goes missing on the 5th tick after it and
is deleted on the 65th (``MISSING_AFTER``, ``DEAD_AFTER``, from the counter's constants). Kept as deadlines by tick,
a tick costs nothing for the workers that are fine (a proxy of a thousand workers ticks without a stall), and a
heartbeat a dict and a set lookup (a flood costs no more per message than a trickle). A tick that ran late counts
once, as Locust's (``LivenessCounter`` ticked by ``MasterCore.tick``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from harness.protocol.timing import LivenessChange, LivenessCounter, Timing

_RULE = LivenessCounter()
MISSING_AFTER = _RULE.liveness + 2  # ticks after the last heartbeat: the counter runs from 3 below 0 (LOCUST: 5)
DEAD_AFTER = MISSING_AFTER + (-(_RULE.dead_at or 0))  # ... and on to dead_at while missing (LOCUST: 65)


class View(enum.StrEnum):
    SENT = "sent"  # what the worker sent, as the proxy read it
    DELIVERED = "delivered"  # what the proxy handed to the master


Key = tuple[str, View]


@dataclass
class _Worker:
    due: int  # the tick it goes missing on, unless it beats first
    missing: bool = False
    dead_due: int = 0  # while missing: the tick it is deleted on


@dataclass
class LivenessViews:
    """Per connection and view, the master's rule; ticks fall every interval from ``start``."""

    timing: Timing
    next_tick: float | None = None
    ticks: int = 0  # ticks run so far
    workers: dict[Key, _Worker] = field(default_factory=dict)
    # Tick -> the workers whose deadline it may be. A beat only moves its worker's own deadline (a set keeps one
    # entry per tick): a flood of heartbeats costs a dict and a set lookup each, and an entry found stale is skipped.
    _missing_at: dict[int, set[Key]] = field(default_factory=dict)
    _dead_at: dict[int, set[Key]] = field(default_factory=dict)

    def start(self, now: float) -> None:
        self.next_tick = now + self.timing.heartbeat_interval

    def beat(self, identity: str, view: View, registers: bool) -> LivenessChange | None:
        """A heartbeat (or, with ``registers``, a client_ready) seen in ``view``; a client_ready (re)starts the
        count, a heartbeat from a connection that never registered counts for nothing (as on the master)."""
        key = (identity, view)
        due = self.ticks + MISSING_AFTER
        worker = self.workers.get(key)
        if worker is None:
            if not registers:
                return None
            worker = self.workers[key] = _Worker(due)
        elif worker.due == due and not worker.missing:
            return None  # beaten this tick already: its deadline stands
        healed = worker.missing and not registers
        worker.due, worker.missing = due, False
        bucket = self._missing_at.get(due)
        if bucket is None:
            bucket = self._missing_at[due] = set()
        bucket.add(key)
        return LivenessChange.HEALED if healed else None

    def forget(self, identity: str, view: View) -> None:
        """The worker left (quit, client_stopped): the master deletes it."""
        self.workers.pop((identity, view), None)

    def tick(self, now: float) -> list[tuple[str, View, LivenessChange]]:
        """The tick due at ``now``, if any (a late tick runs once and carries on, like Locust's)."""
        changes: list[tuple[str, View, LivenessChange]] = []
        if self.next_tick is None or self.next_tick > now:
            return changes
        interval = self.timing.heartbeat_interval
        self.next_tick += interval
        if self.next_tick <= now:
            self.next_tick += (int((now - self.next_tick) // interval) + 1) * interval
        self.ticks += 1
        tick = self.ticks
        for key in self._dead_at.pop(tick, ()):
            worker = self.workers.get(key)
            if worker is not None and worker.missing and worker.dead_due == tick:
                del self.workers[key]
                changes.append((key[0], key[1], LivenessChange.DEAD))
        for key in self._missing_at.pop(tick, ()):
            worker = self.workers.get(key)
            if worker is not None and not worker.missing and worker.due == tick:
                worker.missing, worker.dead_due = True, tick - MISSING_AFTER + DEAD_AFTER
                self._dead_at.setdefault(worker.dead_due, set()).add(key)
                changes.append((key[0], key[1], LivenessChange.MISSING))
        return changes
