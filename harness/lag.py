"""The harness's own lag: how late the fake master's socket thread ran its timers, sampled all the time.

Heartbeats are timed when that thread reads them. When it runs late (a loaded machine, cases side by side), a
worker that was on time looks late: a heartbeat or progress finding during such a moment is the harness's doing
as much as the worker's, so it is never FAILED (``harness.oracles.overloaded``). Pure bookkeeping: times in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

SPIKE = 0.010  # seconds late from which a sample is kept with its time (smaller ones are only counted)
KEEP_SPIKES = 2000


@dataclass
class LagProbe:
    """Samples of lateness: ``(t, seconds late)``; the spikes are kept, the rest summarised."""

    samples: int = 0
    worst: float = 0.0
    spikes: list[tuple[float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, t: float, late: float) -> None:
        with self._lock:
            self.samples += 1
            self.worst = max(self.worst, late)
            if late >= SPIKE and len(self.spikes) < KEEP_SPIKES:
                self.spikes.append((t, late))

    def snapshot(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self.spikes)

    def over(self, tolerance: float) -> list[tuple[float, float]]:
        """The moments the harness was later than ``tolerance``: ``(start, end)`` of each stall."""
        return [(t - late, t) for t, late in self.snapshot() if late > tolerance]

    def to_json(self, t0: float, tolerance: float) -> dict[str, Any]:
        with self._lock:
            stalls = [[round(t - late - t0, 4), round(late, 4)] for t, late in self.spikes if late > tolerance]
            return {
                "samples": self.samples,
                "max_s": round(self.worst, 4),
                "spikes": len(self.spikes),
                "tolerance_s": round(tolerance, 4),
                "stalls": stalls,
            }
