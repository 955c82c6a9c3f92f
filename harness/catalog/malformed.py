"""Malformed input from the master: the worker logs and skips it and keeps working (spec §1.3, §2, §7.2)."""

from __future__ import annotations

from harness.catalog.base import CaseContext, case
from harness.faults import malformed_frames
from harness.protocol.messages import MessageType

KINDS = {
    "garbage": "bytes that are not msgpack",
    "truncated": "a msgpack message cut short",
    "wrong-arity": "an array of 2 and of 4 items instead of 3",
    "wrong-types": "a spawn whose fields have the wrong types",
    "unknown-type": "a message type no worker knows",
    "empty": "an empty frame",
    "extra-frames": "a message in several frames (a REQ-style envelope)",
    "oversized": "a 2 MB payload",
    "bad-utf8": "a str with invalid UTF-8",
    "bin-type": "the message type as msgpack bin",
}


def _register(number: int, kind: str, what: str) -> None:
    @case(
        f"malformed/{number:02d}-{kind}",
        "malformed",
        f"Survives {what}",
        f"after {what} from the master the worker keeps heartbeating and still handles a spawn",
        "§2.1, §7.2",
        10,
    )
    def body(ctx: CaseContext) -> None:
        ctx.handshake()
        node = ctx.master.default_worker()
        for frames in malformed_variants(kind, node):
            ctx.master.send_raw(frames)
        ctx.observe(1.5)
        ctx.spawn(2)


def malformed_variants(kind: str, node: str) -> list[list[bytes]]:
    return [malformed_frames(kind, node, size=2 * 1024 * 1024 if kind == "oversized" else 0)]


for _number, (_kind, _what) in enumerate(KINDS.items(), start=1):
    _register(_number, _kind, _what)


@case(
    "malformed/11-spawn-missing-keys",
    "malformed",
    "Survives a spawn with missing keys",
    "a spawn without parsed_options, host and stop_timeout is skipped or applied; heartbeats go on; a valid spawn works",
    "§3.4, §7.3.4",
    12,
)
def spawn_missing_keys(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.master.send(MessageType.SPAWN, {"timestamp": ctx.master.clock.wall(), "user_classes_count": {ctx.user_class: 1}})
    ctx.observe(3)
    ctx.spawn(2)
