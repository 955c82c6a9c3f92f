"""Concurrent-send storms from the master: heartbeats must never starve (spec §5.2, perf anchors)."""

from __future__ import annotations

from fakemaster.storm import StormSpec
from harness.catalog.base import CaseContext, case

THREADS = 2
RATE = 1500.0  # messages per second per thread: ~3k/s in all, bounded by the duration


def _storm(ctx: CaseContext, mix: tuple[tuple[str, float], ...], intervals: float = 5) -> None:
    result = ctx.master.storm(StormSpec(threads=THREADS, rate=RATE, duration=ctx.s(intervals), mix=mix, seed=7))
    if result.refused:
        ctx.note(
            "storm.refused",
            "every storm message delivered to the worker's socket",
            f"{result.refused} of {result.attempted} refused at the high-water mark (the worker read too slowly)",
        )


@case(
    "storms/01-unknown-type-flood",
    "storms",
    "Heartbeats survive a flood of unknown messages",
    "while the master sends ~3000 unknown-type messages/s for 5 intervals, heartbeats keep their cadence",
    "§3.0, §5.2",
    16,
    exclusive=True,
)
def unknown_flood(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    _storm(ctx, (("unknown", 1.0),))
    ctx.spawn(3)


@case(
    "storms/02-heartbeat-flood",
    "storms",
    "Heartbeats survive a flood of master heartbeats",
    "~3000 master heartbeats/s for 5 intervals; the worker's own heartbeats keep their cadence",
    "§3.2, §5.2",
    16,
    exclusive=True,
    needs=("heartbeat_reply",),
)
def heartbeat_flood(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    _storm(ctx, (("heartbeat", 1.0),))
    ctx.spawn(3)


@case(
    "storms/03-mixed-flood",
    "storms",
    "Heartbeats survive a mixed valid/invalid flood",
    "heartbeats, unknown types, garbage and wrong-arity frames mixed; the worker stays alive and on cadence",
    "§7.2",
    16,
    exclusive=True,
)
def mixed_flood(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    _storm(ctx, (("heartbeat", 0.4), ("unknown", 0.3), ("malformed:garbage", 0.15), ("malformed:wrong-arity", 0.15)))
    ctx.spawn(3)


@case(
    "storms/04-stale-spawn-flood",
    "storms",
    "A flood of stale spawns is discarded",
    "stale spawns (timestamp 0) at high rate: none is applied, heartbeats keep their cadence",
    "§3.4, §5.2",
    16,
    exclusive=True,
)
def stale_spawn_flood(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    _storm(ctx, (("stale-spawn", 1.0),), intervals=5)
    ctx.spawn(3)
