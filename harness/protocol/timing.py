"""Locust's timing constants and its exact "missing" rule, as pure functions.

The real master (``MasterRunner.heartbeat_worker``) ticks every
``HEARTBEAT_INTERVAL``. On each tick, for each worker: if it is missing and its
counter is at or below ``HEARTBEAT_DEAD_INTERNAL`` it is deleted; then if the
counter is below 0 and the worker is not missing it becomes missing; otherwise
the counter is decremented. ``client_ready`` and every heartbeat reset the
counter to ``HEARTBEAT_LIVENESS``. So a worker is marked missing on the 5th tick
after its last heartbeat: between (N+1)*I and (N+2)*I later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Timing:
    """Locust 2.47.0's constants (``locust/runners.py``), in seconds unless named otherwise."""

    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 3
    heartbeat_dead: int = -60  # HEARTBEAT_DEAD_INTERNAL (sic)
    master_heartbeat_timeout: float = 60.0
    connect_timeout: float = 5.0
    connect_retry_count: int = 60
    report_interval: float = 3.0  # WORKER_REPORT_INTERVAL
    log_report_interval: float = 10.0  # WORKER_LOG_REPORT_INTERVAL
    cpu_monitor_interval: float = 10.0
    fallback_interval: float = 5.0

    def compressed(self, heartbeat_interval: float) -> Timing:
        """Every period scaled by ``heartbeat_interval / self.heartbeat_interval`` (counts unchanged)."""
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {heartbeat_interval}")
        k = heartbeat_interval / self.heartbeat_interval
        return replace(
            self,
            heartbeat_interval=heartbeat_interval,
            master_heartbeat_timeout=self.master_heartbeat_timeout * k,
            connect_timeout=self.connect_timeout * k,
            report_interval=self.report_interval * k,
            log_report_interval=self.log_report_interval * k,
            cpu_monitor_interval=self.cpu_monitor_interval * k,
            fallback_interval=self.fallback_interval * k,
        )

    @property
    def missing_after_min(self) -> float:
        """A heartbeat gap up to this long can never get a worker marked missing."""
        return (self.heartbeat_liveness + 1) * self.heartbeat_interval

    @property
    def missing_after_max(self) -> float:
        """A heartbeat gap longer than this always gets a worker marked missing."""
        return (self.heartbeat_liveness + 2) * self.heartbeat_interval


LOCUST_TIMING = Timing()


class LivenessChange(enum.StrEnum):
    MISSING = "missing"
    HEALED = "healed"
    DEAD = "dead"


@dataclass
class LivenessCounter:
    """The master's per-worker counter (``WorkerNode.heartbeat``), with the tick rule."""

    liveness: int = 3
    dead_at: int | None = -60  # None: never deleted (masters before 2.8.4)
    counter: int = 3
    missing: bool = False

    def heartbeat(self) -> LivenessChange | None:
        """A heartbeat arrived: reset the counter; report a self-heal."""
        self.counter = self.liveness
        if self.missing:
            self.missing = False
            return LivenessChange.HEALED
        return None

    def tick(self) -> LivenessChange | None:
        """One ``heartbeat_worker`` tick, exactly as Locust orders its checks."""
        if self.missing and self.dead_at is not None and self.counter <= self.dead_at:
            return LivenessChange.DEAD
        if self.counter < 0 and not self.missing:
            self.missing = True
            return LivenessChange.MISSING
        self.counter -= 1
        return None

    @classmethod
    def for_timing(cls, timing: Timing, *, deletes: bool = True) -> LivenessCounter:
        """The counter at ``timing``; ``deletes=False`` never reports DEAD (before 2.8.4 missing workers stayed)."""
        return cls(timing.heartbeat_liveness, timing.heartbeat_dead if deletes else None, timing.heartbeat_liveness)


def liveness_history(
    registered_at: float,
    heartbeat_times: Iterable[float],
    first_tick: float,
    now: float,
    timing: Timing = LOCUST_TIMING,
) -> list[tuple[float, LivenessChange]]:
    """Replay the real master's rule over recorded events, up to ``now``.

    Args:
        registered_at: when the master registered the worker (its ``client_ready``).
        heartbeat_times: when the master received each heartbeat.
        first_tick: when the master's first liveness tick falls (ticks repeat every interval).
        now: the end of the replay.
        timing: the constants in force.

    Returns:
        ``(tick_time, change)`` for every missing / healed / dead change, in order.
        A registration or heartbeat that lands exactly on a tick is counted before the tick.
    """
    beats = sorted(t for t in heartbeat_times if registered_at <= t <= now)
    counter = LivenessCounter.for_timing(timing)
    changes: list[tuple[float, LivenessChange]] = []
    interval = timing.heartbeat_interval
    k = 0
    while first_tick + k * interval < registered_at:
        k += 1
    i = 0

    def beats_until(t: float) -> None:
        nonlocal i
        while i < len(beats) and beats[i] <= t:
            if counter.heartbeat() is LivenessChange.HEALED:
                changes.append((beats[i], LivenessChange.HEALED))
            i += 1

    while (tick := first_tick + k * interval) <= now:
        beats_until(tick)
        change = counter.tick()
        if change is not None:
            changes.append((tick, change))
            if change is LivenessChange.DEAD:
                return changes
        k += 1
    beats_until(now)
    return changes
