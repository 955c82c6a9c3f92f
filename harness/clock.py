"""The only module of the harness core that reads the system clock.

Protocol code never reads time: it receives ``now`` as an argument. Adapters
(the fake master, the reference worker) hold a ``Clock`` and pass its readings
down. ``FakeClock`` drives the same code deterministically in tests.
"""

from __future__ import annotations

import random
import time
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic and wall-clock time."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps that cross the wire."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""


class MonotonicClock:
    """The real clock, shifted by a large random offset (trio's trick).

    A stray comparison between ``now()`` and ``time.time()`` or a raw
    ``time.monotonic()`` then fails loudly instead of working by accident.
    """

    def __init__(self, offset: float | None = None) -> None:
        self._offset = random.uniform(10_000.0, 200_000.0) if offset is None else offset

    def now(self) -> float:
        return time.monotonic() + self._offset

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_delta = wall_start - start

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_delta

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward; time never goes backwards."""
        if seconds < 0:
            raise ValueError(f"time can't go backwards (advance by {seconds})")
        self._now += seconds

    def advance_to(self, deadline: float) -> None:
        """Jump to ``deadline`` if it lies in the future."""
        if deadline > self._now:
            self._now = deadline
