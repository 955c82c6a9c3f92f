"""Heartbeat liveness: the real master's missing rule, and the gaps between the heartbeats it can read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.consequences import judged
from harness.oracles.evidence import Evidence, shutdown_began
from harness.protocol.master import master_can_read_heartbeat
from harness.protocol.messages import MessageType
from harness.protocol.profiles import NO_ACK_NOTE
from harness.trace import Kind, TraceRecord
from harness.verdicts import Finding

NON_STRICT_GAP = 1.5  # heartbeat gaps above this many intervals are NON-STRICT (the master still accepts them)
# Our own timestamping lags the wire by up to this much on a loaded 2-core machine (the master's receive loop
# and GIL); it is added to the NON-STRICT limit so time compression does not turn our jitter into a verdict.
HARNESS_JITTER = 0.02


def check_heartbeat_liveness(ev: Evidence) -> list[Finding]:
    """The real master's missing rule -> FAILED; a gap above 1.5 x interval -> NON-STRICT."""
    findings: list[Finding] = []
    interval = ev.timing.heartbeat_interval
    due = heartbeats_due_from(ev.records)
    if due is None:
        return findings  # heartbeats are only due once the worker has been acked
    for rec in ev.records:
        if rec.t < due:
            continue  # a case that withholds the ack lets the master's counter run down: our doing
        if rec.t > ev.end:
            break  # after the observation ended (the worker was being stopped): not judged
        if rec.kind is Kind.LIVENESS and rec.note == "missing" and not ev.exempted(rec.t - ev.timing.missing_after_max, rec.t):
            findings.append(
                judged(
                    "heartbeat.missing",
                    f"a heartbeat at least every {ev.timing.missing_after_min:g} s (the master's missing rule)",
                    f"the real master's rule marked the worker missing{_last_beat_before(ev, rec.t)}",
                    ev.rel(rec.t),
                )
            )
    worst_at, worst_gap = max(heartbeat_gaps(ev), key=lambda g: g[1], default=(0.0, 0.0))
    limit = NON_STRICT_GAP * interval + HARNESS_JITTER
    if worst_gap > ev.timing.missing_after_max and not any(f.oracle == "heartbeat.missing" for f in findings):
        findings.append(
            judged(
                "heartbeat.missing",
                f"no heartbeat gap above {ev.timing.missing_after_max:g} s",
                f"a {worst_gap:.3f} s gap without heartbeats",
                ev.rel(worst_at),
            )
        )
    elif worst_gap > limit and not findings:
        findings.append(
            judged(
                "heartbeat.gap",
                f"heartbeat gaps of at most {limit:.3f} s (1.5 x interval + {HARNESS_JITTER:g} s)",
                f"a {worst_gap:.3f} s gap",
                ev.rel(worst_at),
            )
        )
    return findings


def heartbeats_due_from(records: Sequence[TraceRecord]) -> float | None:
    """When heartbeats became due: the first ack; under a master profile that never acks, the first client_ready
    (None: neither yet)."""
    no_ack = False
    for r in records:
        if r.kind is Kind.SEND and r.type == MessageType.ACK:
            return r.t
        if r.kind is Kind.NOTE and r.note.endswith(NO_ACK_NOTE):
            no_ack = True
        elif no_ack and r.kind is Kind.RECV and r.type == MessageType.CLIENT_READY:
            return r.t
    return None


def heartbeat_gaps(ev: Evidence) -> list[tuple[float, float]]:
    """``(start, length)`` of every silence between readable heartbeats, from the first ack until the worker began
    shutting down (the master's quit, its own, a signal the case sent) or observation ended.

    A window in which the harness could not hear the worker excuses its own span only: the silence before it
    and after it is judged, so heartbeats that never resume after a master restart are a gap like any other.
    """
    due = heartbeats_due_from(ev.records)
    if due is None:
        return []
    beats = [
        r.t for r in ev.received(MessageType.HEARTBEAT) if r.t >= due and r.message and master_can_read_heartbeat(r.message.data)
    ]
    shutdown = shutdown_began(ev)
    stop = min(ev.end, shutdown[0]) if shutdown is not None else ev.end
    points = [due, *[b for b in beats if b <= stop], stop]
    gaps: list[tuple[float, float]] = []
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            gaps += [(start, end - start) for start, end in _unexcused(a, b, ev.exempt) if end > start]
    return gaps


def _unexcused(start: float, end: float, windows: Iterable[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """The parts of ``(start, end)`` outside every window."""
    parts = [(start, end)]
    for w0, w1, _ in sorted(windows):
        kept: list[tuple[float, float]] = []
        for a, b in parts:
            if w1 <= a or w0 >= b:
                kept.append((a, b))
                continue
            if a < w0:
                kept.append((a, w0))
            if w1 < b:
                kept.append((w1, b))
        parts = kept
    return parts


def _last_beat_before(ev: Evidence, t: float) -> str:
    beats = [r.t for r in ev.received(MessageType.HEARTBEAT) if r.t <= t]
    if not beats:
        return " (no heartbeat had arrived at all)"
    return f" after {t - beats[-1]:.3f} s of silence (last heartbeat at t={ev.rel(beats[-1]):.3f}s)"
