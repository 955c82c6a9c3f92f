"""Progress: every spawn and stop the master sent is answered in time (a stop a ready worker leaves unanswered is
only named)."""

from __future__ import annotations

from harness.consequences import judged
from harness.oracles.evidence import Evidence
from harness.oracles.spawns import match_spawns, valid_spawns
from harness.protocol.messages import MessageType
from harness.trace import TraceRecord
from harness.verdicts import Finding

REPLY_DEADLINE_INTERVALS = 4.0  # spawn/stop/quit answered within this many heartbeat intervals


def check_replies(ev: Evidence) -> list[Finding]:
    """Every spawn and stop the master sent is answered within the deadline.

    A stop sent to a worker that was ready is not waited for by the real master (its stop check counts a ready
    worker as stopped): left unanswered, it is ``stop.when-ready``. The worker's answer to quit is the exit
    oracle's (``check_exit_after_quit``).
    """
    deadline = REPLY_DEADLINE_INTERVALS * ev.timing.heartbeat_interval
    findings: list[Finding] = []
    rules: list[tuple[str, list[TraceRecord], tuple[str, ...]]] = [
        ("spawn", valid_spawns(ev), (MessageType.SPAWNING_COMPLETE,)),
        ("stop", ev.sent(MessageType.STOP), (MessageType.CLIENT_STOPPED,)),
    ]
    settled, _ = match_spawns(ev)
    for name, asks, answers in rules:
        for ask in asks:
            if ask.t + deadline > ev.end or ev.exempted(ask.t, ask.t + deadline):
                continue  # the case did not watch long enough to judge this one
            if name == "spawn":
                answered = settled.get(ask.seq, float("inf")) <= ask.t + deadline  # by a spawning_complete with its counts
            else:
                answered = any(ask.t <= r.t <= ask.t + deadline for r in ev.received(*answers))
            if answered:
                continue
            # A spawn is superseded by a later spawn, stop or quit (a stale spawn supersedes nothing), a stop by a
            # quit, the master's or the worker's own: the master no longer waits for the answer (Locust's master
            # deletes a worker that quits).
            quits = [*ev.sent(MessageType.QUIT), *ev.received(MessageType.QUIT)]
            later = [*valid_spawns(ev), *ev.sent(MessageType.STOP), *quits] if name == "spawn" else quits
            if any(ask.seq < s.seq and s.t <= ask.t + deadline for s in later):
                continue
            ready = name == "stop" and worker_state_at(ev, ask.t) == "ready"
            findings.append(
                judged(
                    "stop.when-ready" if ready else f"progress.{name}",
                    f"{'/'.join(answers)} within {deadline:.2f} s of {name}",
                    "no answer" + (" (the worker was ready: the real master counts it as stopped)" if ready else ""),
                    ev.rel(ask.t),
                )
            )
            break
    return findings


def worker_state_at(ev: Evidence, t: float) -> str | None:
    """The state the worker was in at ``t`` as the master knew it: its last heartbeat's, moved on by spawns in flight
    and by what it said since (spawning, spawning_complete, client_stopped)."""
    state: str | None = None
    since = float("-inf")
    for rec in ev.received(MessageType.HEARTBEAT):
        if rec.t > t:
            break
        data = rec.message.data if rec.message else None
        state, since = (data.get("state") if isinstance(data, dict) else None), rec.t
    for rec in ev.received(MessageType.SPAWNING, MessageType.SPAWNING_COMPLETE, MessageType.CLIENT_STOPPED):
        if since < rec.t <= t:
            state = {"spawning": "spawning", "spawning_complete": "running"}.get(str(rec.type), "ready")
    if any(since < r.t <= t for r in valid_spawns(ev)):
        state = "spawning"
    return state
