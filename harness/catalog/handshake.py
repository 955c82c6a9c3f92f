"""Handshake cases: client_ready, ack, retries (spec §3.1, §1.2)."""

from __future__ import annotations

import re

from fakemaster.master import FakeMaster
from harness.catalog.base import ACTIVE, CaseContext, case
from harness.protocol.messages import MessageType


def _no_auto_ack(master: FakeMaster) -> None:
    master.set_auto(ack=False)


@case(
    "handshake/01-first-message",
    "handshake",
    "The first message is client_ready with a version",
    "client_ready (a version string or -1) comes first; after the ack, heartbeats start",
    "§3.1, §7.1.2",
    6,
)
def first_message(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.observe(2)


@case(
    "handshake/02-retry-until-ack",
    "handshake",
    "client_ready is retried until acked",
    "without an ack, client_ready is re-sent every connect timeout (Locust: 5 s); heartbeats start only after the ack",
    "§3.1",
    6,
    waits={"connect-timeout": 1.6},
    setup=_no_auto_ack,
    needs=("acks",),
)
def retry_until_ack(ctx: CaseContext) -> None:
    first = ctx.master.expect(MessageType.CLIENT_READY, 20)
    within = 1.6 * ctx.timing.connect_timeout / ctx.interval
    ctx.expect(MessageType.CLIENT_READY, within, what="re-sent after the connect timeout")
    if any(r.t > first.t for r in ctx.master.trace.records() if r.type == MessageType.HEARTBEAT):
        ctx.note(
            "handshake.early-heartbeat",
            "no heartbeat before the ack (Locust waits for it)",
            "heartbeats before any ack (the real master ignores them)",
        )
    ctx.master.set_auto(ack=True)
    ctx.master.send(MessageType.ACK, {"index": 0})
    ctx.expect(MessageType.HEARTBEAT, 3, what="after the ack")
    ctx.observe(2)


@case(
    "handshake/03-ack-without-index",
    "handshake",
    "An ack without an index is accepted",
    "masters before 2.11 sent no index: the worker proceeds and heartbeats",
    "§3.1",
    8,
    setup=_no_auto_ack,
    needs=("acks",),
)
def ack_without_index(ctx: CaseContext) -> None:
    ctx.master.expect(MessageType.CLIENT_READY, 20)
    ctx.master.send(MessageType.ACK, {})
    ctx.expect(MessageType.HEARTBEAT, 3, what="after an index-less ack")
    ctx.spawn(1)


@case(
    "handshake/04-ack-other-index",
    "handshake",
    "Any worker index is accepted",
    "an ack with index 7 is stored or ignored; the worker proceeds",
    "§3.1, §1.2",
    8,
    setup=_no_auto_ack,
    needs=("acks",),
)
def ack_other_index(ctx: CaseContext) -> None:
    ctx.master.expect(MessageType.CLIENT_READY, 20)
    ctx.master.send(MessageType.ACK, {"index": 7})
    ctx.expect(MessageType.HEARTBEAT, 3)
    ctx.spawn(1)


@case(
    "handshake/05-duplicate-ack",
    "handshake",
    "A duplicate ack changes nothing",
    "a second ack while running is ignored: no new client_ready, users keep running",
    "§3.1",
    10,
    needs=("acks",),
)
def duplicate_ack(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(2)
    ctx.master.send(MessageType.ACK, {"index": 0})
    ctx.observe(3)
    if ctx.master.wait_for(MessageType.CLIENT_READY, 0.0) is not None:
        ctx.note("handshake.duplicate-ack", "no client_ready after a duplicate ack", "client_ready re-sent")
    ctx.expect(MessageType.HEARTBEAT, 2, where=lambda d: isinstance(d, dict) and d.get("state") in ACTIVE, what="active")


@case(
    "handshake/06-identity-format",
    "handshake",
    "The identity is <host>_<unique> and equals node_id",
    "node_id equals the socket identity (else replies go nowhere) and has the <hostname>_<unique> form the dispatcher splits",
    "§1.2",
    4,
)
def identity_format(ctx: CaseContext) -> None:
    record = ctx.master.expect(MessageType.CLIENT_READY, 20)
    assert record.message is not None
    node_id = record.message.node_id
    if not re.fullmatch(r"[^_\s]+_\S+", node_id):
        ctx.note(
            "handshake.identity-format",
            "an identity like <hostname>_<hex>",
            f"{node_id!r} (the master groups workers by the part before '_')",
        )
    ctx.first_heartbeat()
