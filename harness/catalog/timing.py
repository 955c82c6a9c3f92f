"""Timing faults: delay, reorder, duplicate, backpressure (spec §3.4, §1.4)."""

from __future__ import annotations

from harness.catalog.base import CaseContext, case, total_users
from harness.faults import Fault, FaultPlan
from harness.protocol.messages import MessageType


@case(
    "timing/01-delayed-master",
    "timing",
    "A slow master is tolerated",
    "every master message delayed 0.5-0.8 interval: spawn, stop, re-ready and quit all still work",
    "§3",
    24,
)
def delayed_master(ctx: CaseContext) -> None:
    ctx.master.install_faults(FaultPlan((Fault("delay", seconds=ctx.s(0.5), jitter=ctx.s(0.3)),), seed=11))
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.send(MessageType.STOP)
    ctx.expect(MessageType.CLIENT_READY, 6, what="after stop")
    ctx.spawn(1)
    ctx.quit()


@case(
    "timing/02-reordered-spawns",
    "timing",
    "Reordered spawns: the newest wins",
    "two spawns delivered newest first: the older one is stale and must not be applied",
    "§3.4",
    12,
)
def reordered_spawns(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.install_faults(FaultPlan((Fault("hold", types=("spawn",), batch=2, count=2),), seed=12))
    ts = ctx.master.clock.wall()
    start = ctx.master.cursor
    ctx.spawn(2, timestamp=ts, complete=False)
    ctx.spawn(4, timestamp=ts + 1, complete=False)
    # Looked for from the start, before or after the newer one's answer: a worker that applies the stale spawn may
    # abandon the newer one for it and never answer that at all.
    if ctx.master.wait_for(
        MessageType.SPAWNING_COMPLETE,
        ctx.s(3),
        where=lambda r: r.message is not None and total_users(r.message.data) == 2,
        after=start,
    ):
        ctx.note("spawn.stale", "the older spawn (2 users) discarded", "applied after the newer one")
    ctx.expect(MessageType.SPAWNING_COMPLETE, 1, where=lambda d: total_users(d) == 4, what="for the newest spawn (4 users)")


@case(
    "timing/03-duplicated-spawn",
    "timing",
    "A duplicated spawn is applied once",
    "the same spawn delivered twice: the copy has an equal timestamp and is discarded",
    "§3.4",
    10,
)
def duplicated_spawn(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.install_faults(FaultPlan((Fault("duplicate", types=("spawn",), copies=1, count=1),), seed=13))
    ctx.spawn(3)
    again = ctx.master.wait_for(MessageType.SPAWNING_COMPLETE, ctx.s(3))
    if again is not None:
        ctx.note("spawn.duplicate", "the duplicate discarded (equal timestamp)", "applied twice")


@case(
    "timing/04-pause-reading",
    "timing",
    "Backpressure: the master stops reading for a while",
    "the master reads nothing for 4 intervals; the worker does not crash, and everything it queued arrives afterwards",
    "§1.4",
    14,
)
def pause_reading(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.pause_reading(ctx.s(4))  # the pause-reading window excuses the heartbeats it did not read
    ctx.observe(4.5)
    ctx.expect(MessageType.HEARTBEAT, 3, what="after reading resumed")
    ctx.spawn(3)
