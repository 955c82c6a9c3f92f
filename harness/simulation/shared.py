"""What the two halves of a simulation share: the simulated clock's event queue, the state one half (or the judging)
reads of the other, and the hand-overs between them, each defined by its own half.

The halves are mixins of one object (``Simulation``): calls between them are plain method calls, with no
per-message indirection in the hot loop.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Callable

from harness.protocol.timing import Timing
from harness.trace import TraceRecord

NODE = "sim_worker"
WALL0 = 1_700_000_000.0  # the simulated wall clock at t=0 (spawn timestamps, per-second stats keys)
LATENCY = 0.0005  # one-way link latency, seconds

_Event = tuple[float, int, Callable[[], None]]  # when, insertion order (ties), what


class Shared(ABC):
    """The state both halves of a ``Simulation`` use, declared once, and the event queue of its simulated clock."""

    timing: Timing
    now: float
    records: list[TraceRecord]  # the fake master's own records: the master half writes them, the judging reads them
    output: list[tuple[float, str]]  # (when, what the worker logged)
    exit_code: int | None
    # Set by the master half, read by the worker half or the judging.
    dead: bool  # the master is gone for good
    reconnects_asked: int
    reconnect_windows: list[list[float]]  # [asked, new socket online]: frames sent meanwhile may be lost
    # Set by the worker half, read by the master half or the judging.
    reconnects_done: int
    sigterm_at: float | None
    _worker_online_at: float  # after a reconnect, the new socket connects at this time
    # An overlapping reconnect (the new connection up while the old one holds the identity): the ROUTER ignores the new
    # connection for good; the old one stays open until this time, then nothing reaches the worker. None: no such.
    identity_lost_at: float | None
    _events: list[_Event]
    _order: int

    def _init_clock(self) -> None:
        self._events = []
        self._order = 0

    def _at(self, t: float, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated time ``t`` (events at the same time run in the order they were scheduled)."""
        self._order += 1
        heapq.heappush(self._events, (t, self._order, action))

    @abstractmethod
    def _master_receives(self, frame: bytes) -> None:
        """The master half: a frame from the worker arrives."""

    @abstractmethod
    def _worker_receives(self, frames: list[bytes]) -> None:
        """The worker half: a message's frames from the master arrive."""
