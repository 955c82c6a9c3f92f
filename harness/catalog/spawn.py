"""Spawn cases: absolute counts, stale timestamps, odd options (spec §3.4)."""

from __future__ import annotations

import datetime
from typing import Any

from harness.catalog.base import ACTIVE, CaseContext, case, total_users
from harness.protocol.messages import MessageType


@case(
    "spawn/01-basic",
    "spawn",
    "spawn -> spawning -> spawning_complete -> running",
    "spawning first, then spawning_complete with exactly the asked counts, then heartbeats say running",
    "§3.4, §4.1",
    10,
)
def basic(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(3, complete=False)
    ctx.expect(MessageType.SPAWNING, 3, what="before spawning_complete")
    ctx.expect(MessageType.SPAWNING_COMPLETE, 4, where=lambda d: total_users(d) == 3, what="with 3 users in user_classes_count")
    # The master treats spawning and running alike (both active): the reported-state oracle grades which one it says.
    ctx.expect(MessageType.HEARTBEAT, 3, where=lambda d: isinstance(d, dict) and d.get("state") in ACTIVE, what="active")


@case(
    "spawn/02-scale-up-down",
    "spawn",
    "Counts are absolute targets",
    "2 -> 5 -> 1 -> 0 users: each spawning_complete reports the new absolute count",
    "§3.4",
    18,
)
def scale(ctx: CaseContext) -> None:
    ctx.handshake()
    for users in (2, 5, 1, 0):
        ctx.spawn(users)


@case(
    "spawn/03-stale-timestamp",
    "spawn",
    "A spawn older than the last one is discarded",
    "a spawn whose timestamp is older gets 'spawning' (Locust sends it before the check) but is not applied",
    "§3.4",
    8,
    waits={"report": 2.7},
)
def stale_timestamp(ctx: CaseContext) -> None:
    ctx.handshake()
    first = ctx.master.clock.wall()
    ctx.spawn(2, timestamp=first)
    ctx.spawn(4, timestamp=first - 10, complete=False)
    if ctx.master.wait_for(MessageType.SPAWNING, ctx.s(3)) is None:
        ctx.note("spawn.stale-spawning", "'spawning' even for a stale spawn (as Locust)", "none")
    applied = ctx.master.wait_for(
        MessageType.SPAWNING_COMPLETE, ctx.s(3), where=lambda r: r.message is not None and total_users(r.message.data) == 4
    )
    if applied is not None:
        ctx.note("spawn.stale", "the stale spawn (4 users) discarded", "spawning_complete with 4 users")
    ctx.expect(MessageType.STATS, ctx.reports(2.7), where=lambda d: total_users(d) == 2, what="still reporting 2 users")


@case(
    "spawn/04-equal-timestamp",
    "spawn",
    "A spawn with the same timestamp is discarded",
    "the second of two spawns with equal timestamps is not applied (timestamp <= last)",
    "§3.4",
    12,
)
def equal_timestamp(ctx: CaseContext) -> None:
    ctx.handshake()
    ts = ctx.master.clock.wall()
    ctx.spawn(2, timestamp=ts)
    ctx.spawn(3, timestamp=ts, complete=False)
    applied = ctx.master.wait_for(
        MessageType.SPAWNING_COMPLETE, ctx.s(3), where=lambda r: r.message is not None and total_users(r.message.data) == 3
    )
    if applied is not None:
        ctx.note("spawn.stale", "the equal-timestamp spawn (3 users) discarded", "spawning_complete with 3 users")


@case(
    "spawn/05-zero-users", "spawn", "A spawn of zero users completes", "spawn {class: 0} -> spawning_complete with 0", "§3.4", 8
)
def zerototal_users(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(0)


@case(
    "spawn/06-rapid-sequence",
    "spawn",
    "A burst of spawns ends at the last count",
    "five spawns 10 ms apart (1..5 users): the worker ends with 5 users and says so",
    "§3.4",
    6,
    waits={"report": 2.7},
)
def rapid_sequence(ctx: CaseContext) -> None:
    ctx.handshake()
    for users in (1, 2, 3, 4):
        ctx.spawn(users, complete=False)
        ctx.master.sleep(0.01)
    ctx.spawn(5)
    ctx.expect(MessageType.STATS, ctx.reports(2.7), where=lambda d: total_users(d) == 5, what="reporting 5 users")


@case(
    "spawn/07-odd-parsed-options",
    "spawn",
    "Arbitrary parsed_options are tolerated",
    "nested maps, mixed arrays, nil, a datetime and big ints in parsed_options do not disturb the worker",
    "§3.4, §7.1.4",
    8,
    needs=("parsed_options", "ext_hooks"),  # (a master before 2.20 cannot send the datetime)
)
def odd_parsed_options(ctx: CaseContext) -> None:
    ctx.handshake()
    options: dict[str, Any] = {
        "nested": {"a": [1, "x", None, 2.5]},
        "none": None,
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, 678901),
        "big": 2**62,
        "expect_workers": 1,
        "custom_arg": {"deep": {"deeper": []}},
    }
    ctx.spawn(2, parsed_options=options)


@case(
    "spawn/08-master-notices",
    "spawn",
    "Master spawning_complete and update_user_class are tolerated",
    "M->W spawning_complete {user_count} and update_user_class are handled or ignored; the worker keeps working",
    "§3.4, §3.11",
    10,
    needs=("spawning_complete_broadcast",),
)
def master_notices(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.send(MessageType.SPAWNING_COMPLETE, {"user_count": 2})
    ctx.master.send(MessageType.UPDATE_USER_CLASS, {"user_class_name": ctx.user_class, "weight": 1})
    ctx.observe(1)
    ctx.spawn(3)
