"""Heartbeat cases: cadence, payload, independence from the master's replies (spec §3.2, §5)."""

from __future__ import annotations

from harness.catalog.base import CaseContext, case
from harness.faults import Fault, FaultPlan
from harness.protocol.messages import MessageType


@case(
    "heartbeat/01-idle-cadence",
    "heartbeat",
    "Heartbeats every interval while idle",
    "a heartbeat at least every 1.5 intervals with state, current_cpu_usage and current_memory_usage",
    "§3.2",
    12,
)
def idle_cadence(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.observe(5)


@case(
    "heartbeat/02-running-cadence",
    "heartbeat",
    "Heartbeats every interval while users run",
    "running users never delay a heartbeat beyond 1.5 intervals",
    "§3.2, §7.1.3",
    14,
)
def running_cadence(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(10)
    ctx.observe(5)


@case(
    "heartbeat/03-no-master-replies",
    "heartbeat",
    "Heartbeats do not wait for the master's replies",
    "with the master's heartbeat replies switched off for 5 intervals, heartbeats keep their cadence and the worker stays",
    "§3.2, §5.3",
    14,
)
def no_master_replies(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.set_auto(heartbeat=False)
    ctx.observe(5)
    ctx.master.set_auto(heartbeat=True)
    ctx.expect_none(MessageType.QUIT, 1)


@case(
    "heartbeat/04-delayed-replies",
    "heartbeat",
    "Late master replies do not slow heartbeats",
    "master heartbeat replies delayed by 0.5-1.0 interval; the worker's cadence is unchanged",
    "§3.2",
    12,
    needs=("heartbeat_reply",),
)
def delayed_replies(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.install_faults(FaultPlan((Fault("delay", types=("heartbeat",), seconds=ctx.s(0.5), jitter=ctx.s(0.5)),), seed=4))
    ctx.observe(5)


@case(
    "heartbeat/05-dropped-replies",
    "heartbeat",
    "Lost master replies do not slow heartbeats",
    "half of the master's heartbeat replies dropped; the worker's cadence is unchanged and it does not quit",
    "§3.2",
    12,
    needs=("heartbeat_reply",),
)
def dropped_replies(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.install_faults(FaultPlan((Fault("drop", types=("heartbeat",), probability=0.5),), seed=5))
    ctx.observe(5)
    ctx.expect_none(MessageType.QUIT, 1)


@case(
    "heartbeat/06-resources-reported",
    "heartbeat",
    "CPU and memory are reported",
    "current_memory_usage becomes a positive RSS within the CPU monitor interval (Locust: 10 s)",
    "§3.2",
    3,
    waits={"cpu-monitor": 1.3},
)
def resources_reported(ctx: CaseContext) -> None:
    ctx.handshake()
    within = 1.3 * ctx.timing.cpu_monitor_interval
    found = ctx.master.wait_for(
        MessageType.HEARTBEAT,
        within,
        where=lambda r: (
            r.message is not None
            and isinstance(r.message.data, dict)
            and isinstance(r.message.data.get("current_memory_usage"), (int, float))
            and r.message.data["current_memory_usage"] > 0
        ),
    )
    if found is None:
        ctx.note(
            "heartbeat.resources",
            f"a positive current_memory_usage within {within:g} s (1.3 CPU monitor intervals)",
            "always 0 or absent (the master shows no memory for this worker)",
        )
