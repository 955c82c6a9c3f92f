"""Reconnect and master loss: reconnect messages, restarts, silence, death (spec §3.10, §5.3)."""

from __future__ import annotations

from harness.catalog.base import CaseContext, case
from harness.errors import ExpectationFailed
from harness.oracles import connections, identity_race
from harness.protocol.messages import MessageType

# These cases wait out the worker's own master-silence timeout (Locust: 60 s), at its real length: no case changes a
# worker's timing. Slack after it before a worker counts as never leaving: half the timeout (Locust checks it
# once a second, and a worker may round up).
MARGIN = 0.5


def _accepted_since(ctx: CaseContext, t: float) -> bool:
    return any(c.accepted >= t for c in connections(ctx.master.trace.records()))


@case(
    "reconnect/01-reconnect-message",
    "reconnect",
    "reconnect makes the worker open a new connection",
    "on reconnect the worker closes its socket and connects again with the same identity; heartbeats go on",
    "§3.10, §7.1.8",
    10,
    needs=("reconnect_on_bad_frame",),
)
def reconnect_message(ctx: CaseContext) -> None:
    ctx.handshake()
    sent_at = ctx.master.clock.now()
    ctx.master.send(MessageType.RECONNECT)
    ctx.observe(4)
    if not _accepted_since(ctx, sent_at):
        ctx.note("reconnect.socket", "a new connection after reconnect", "the worker kept its old connection")
    try:
        ctx.expect(MessageType.HEARTBEAT, 2, what="after the reconnect")
    except ExpectationFailed:
        trace = ctx.master.trace
        race = identity_race(trace.records(), sent_at)
        if race is None:
            raise
        ctx.note(
            "reconnect.identity-race",
            "a new connection once the old one is gone (a ROUTER without handover, as the real master's, ignores a "
            "second connection whose identity is still attached)",
            f"{race.describe(trace.t0)}; no heartbeat came after the reconnect",
        )


@case(
    "reconnect/02-master-restart",
    "reconnect",
    "Heartbeats resume after a master restart",
    "the master closes and rebinds its port for 2 intervals; the worker's heartbeats reach it again",
    "§1.4, §5.3",
    12,
)
def master_restart(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.restart(ctx.s(2))  # the master-down window excuses the heartbeats it could not hear
    ctx.observe(2.5)
    ctx.expect(MessageType.HEARTBEAT, 4, what="after the master came back")
    if ctx.master.wait_for(MessageType.CLIENT_READY, ctx.s(3)) is not None:
        ctx.note(
            "reconnect.re-register",
            "no client_ready after a restart (Locust never re-registers)",
            "the worker registered again (better than Locust)",
        )


@case(
    "reconnect/03-master-silence-timeout",
    "reconnect",
    "A silent master is given up after the timeout",
    "with no master heartbeat for the worker's master timeout (Locust: 60 s) the worker sends quit and exits "
    "(optional in the spec)",
    "§5.3, §7.1.8",
    10,
    waits={"master-timeout": 1 + MARGIN},
    needs=("heartbeat_reply",),
)
def master_silence(ctx: CaseContext) -> None:
    ctx.handshake()
    silent_from = ctx.master.clock.now()
    ctx.master.set_auto(heartbeat=False)
    timeout = ctx.timing.master_heartbeat_timeout
    patience = timeout * (1 + MARGIN)
    quit_msg = ctx.master.wait_for(MessageType.QUIT, patience)
    if quit_msg is None:
        ctx.note(
            "shutdown.master-silence",
            f"quit within {patience:.2f} s of silence",
            "the worker never gave up on the silent master",
        )
        return
    if quit_msg.t - silent_from < timeout * 0.9:
        ctx.note(
            "shutdown.master-silence-early",
            f"no quit before {timeout:.2f} s of silence",
            f"quit after {quit_msg.t - silent_from:.2f} s",
        )
    ctx.require_exit_s(timeout * MARGIN)


@case(
    "reconnect/04-master-death",
    "reconnect",
    "Load stops after the master dies",
    "the master closes for good; within the worker's master-silence timeout it stops its users and exits",
    "§5.3",
    14,
    waits={"master-timeout": 1 + MARGIN},
    needs=("heartbeat_reply",),
)
def master_death(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.die()
    timeout = ctx.timing.master_heartbeat_timeout
    deadline = timeout * (1 + MARGIN)
    if ctx.process.wait(0.9 * timeout) is None:
        ctx.shutdown_expected("its master-silence timeout after the master's death")
    if ctx.process.wait(deadline - 0.9 * timeout) is None:
        ctx.note(
            "shutdown.master-death",
            f"exit within {deadline:.2f} s of the master's death",
            "still running (and generating load) with no master",
        )


@case(
    "reconnect/05-short-silence-tolerated",
    "reconnect",
    "A short master silence is tolerated",
    "half the worker's master timeout (Locust: 30 s) without master heartbeats must not make the worker quit",
    "§5.3",
    10,
    waits={"master-timeout": 0.5},
    needs=("heartbeat_reply",),
)
def short_silence(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.set_auto(heartbeat=False)
    ctx.observe(ctx.timeouts(0.5))
    ctx.master.set_auto(heartbeat=True)
    ctx.expect_none(MessageType.QUIT, 4)
