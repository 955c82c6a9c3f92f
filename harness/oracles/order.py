"""Protocol order: client_ready first, spawning_complete with the spawn's counts, heartbeat states that follow the
phase."""

from __future__ import annotations

from harness.consequences import judged
from harness.oracles.evidence import Evidence
from harness.oracles.spawns import match_spawns, spawn_counts
from harness.protocol.messages import MessageType
from harness.verdicts import Finding

# What the real master does with a message from a worker it does not know yet (2.47): it asks a worker that says
# spawning or spawning_complete to quit; it ignores the rest (a heartbeat at debug level; stats are merged anyway).
ACTED_ON_WHEN_UNKNOWN = frozenset({MessageType.SPAWNING, MessageType.SPAWNING_COMPLETE})


def check_protocol_order(ev: Evidence) -> list[Finding]:
    """First message client_ready; spawning_complete matches the spawn; states follow the phase; ready after stop."""
    findings: list[Finding] = []
    received = ev.received()
    if received and received[0].message is not None and received[0].message.type != MessageType.CLIENT_READY:
        first = received[0].message.type
        findings.append(
            judged(
                "order.first" if first in ACTED_ON_WHEN_UNKNOWN else "order.first-ignored",
                "client_ready as the worker's first message",
                f"{first} first",
                ev.rel(received[0].t),
            )
        )
    findings += _check_spawn_counts(ev)
    findings += _check_reported_states(ev)
    return findings


def _check_spawn_counts(ev: Evidence) -> list[Finding]:
    _, wrong = match_spawns(ev)
    if not wrong:
        return []
    done, spawn = wrong[0]
    return [
        judged(
            "order.spawn-counts",
            f"spawning_complete counts equal to the spawn's {spawn_counts(spawn)}",
            f"{spawn_counts(done)}",
            ev.rel(done.t),
        )
    ]


def _check_reported_states(ev: Evidence) -> list[Finding]:
    """After spawning_complete the worker reports running; after its post-stop client_ready, ready."""
    grace = ev.timing.heartbeat_interval  # a heartbeat may cross the change on the wire
    expected: tuple[str, float] | None = None
    for rec in ev.received():
        msg = rec.message
        assert msg is not None
        if msg.type == MessageType.SPAWNING_COMPLETE:
            expected = ("running", rec.t)
        elif msg.type in (MessageType.SPAWNING, MessageType.CLIENT_STOPPED, MessageType.QUIT):
            expected = None
        elif msg.type == MessageType.CLIENT_READY and any(r.t < rec.t for r in ev.received(MessageType.CLIENT_STOPPED)):
            expected = ("ready", rec.t)
        elif msg.type == MessageType.HEARTBEAT and expected is not None and rec.t - expected[1] > grace:
            if _stop_in_flight(ev, expected[1], rec.t):
                expected = None
                continue
            state = msg.data.get("state") if isinstance(msg.data, dict) else None
            if state != expected[0]:
                # The master treats spawning and running alike (both active): only its UI differs.
                spawning = expected[0] == "running" and state == "spawning"
                return [
                    judged(
                        "order.state-spawning" if spawning else "order.state",
                        f"heartbeats reporting {expected[0]!r} after "
                        f"{'spawning_complete' if expected[0] == 'running' else 'client_ready'}",
                        f"state {state!r} {rec.t - expected[1]:.3f} s later",
                        ev.rel(rec.t),
                    )
                ]
    return []


def _stop_in_flight(ev: Evidence, start: float, end: float) -> bool:
    return any(start < r.t < end for r in ev.sent(MessageType.SPAWN, MessageType.STOP, MessageType.QUIT))
