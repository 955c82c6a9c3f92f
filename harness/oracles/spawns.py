"""Which spawns the master sent count, and which spawning_complete answers which: read by the protocol-order and the
progress oracles alike."""

from __future__ import annotations

from typing import Any

from harness.oracles.evidence import Evidence
from harness.protocol.messages import MessageType
from harness.trace import TraceRecord


def valid_spawns(ev: Evidence) -> list[TraceRecord]:
    """Spawns the master sent whose timestamp was newer than every earlier one (a conformant worker applies them).

    As Locust's worker (``last_received_spawn_timestamp = 0``), a spawn must also be newer than 0.
    """
    newest = 0.0
    out = []
    for rec in ev.sent(MessageType.SPAWN):
        data = rec.message.data if rec.message else None
        ts = data.get("timestamp") if isinstance(data, dict) else None
        if isinstance(ts, (int, float)) and ts > newest:
            newest = ts
            out.append(rec)
    return out


def spawn_counts(rec: TraceRecord) -> dict[str, Any] | None:
    """The ``user_classes_count`` of a spawn or a spawning_complete; None if it has none (or not a map)."""
    data = rec.message.data if rec.message else None
    counts = data.get("user_classes_count") if isinstance(data, dict) else None
    return counts if isinstance(counts, dict) else None


def match_spawns(ev: Evidence) -> tuple[dict[int, float], list[tuple[TraceRecord, TraceRecord]]]:
    """Pair spawning_completes with the valid spawns they answer.

    A spawning_complete answers any spawn still waiting (in a burst a worker may finish an older one first), the
    newest whose counts it matches; answering spawn k also settles the spawns before it. Returns when each settled
    spawn (by seq) was settled, and every (spawning_complete, spawn) pair whose counts match no waiting spawn.
    """
    events = sorted(
        [(r.t, 0, r) for r in valid_spawns(ev)] + [(r.t, 1, r) for r in ev.received(MessageType.SPAWNING_COMPLETE)],
        key=lambda e: (e[0], e[1]),
    )
    pending: list[TraceRecord] = []
    settled: dict[int, float] = {}
    wrong: list[tuple[TraceRecord, TraceRecord]] = []
    last: TraceRecord | None = None
    for _, is_done, rec in events:
        if not is_done:
            pending.append(rec)
            last = rec
            continue
        got = spawn_counts(rec)
        candidates = pending or ([last] if last is not None else [])
        if got is None or not candidates:
            continue
        # The newest spawn it matches: spawns alike in counts (a spawn, a stop, the same spawn again) are all settled.
        matches = [i for i, s in enumerate(candidates) if _counts_match(spawn_counts(s) or {}, got)]
        matched = matches[-1] if matches else None
        if matched is None:
            wrong.append((rec, candidates[-1]))
        elif pending:
            settled.update((s.seq, rec.t) for s in pending[: matched + 1])
            pending = pending[matched + 1 :]
    return settled, wrong


def _counts_match(asked: dict[str, int], got: dict[str, Any]) -> bool:
    keys = set(asked) | set(got)
    return all(asked.get(k, 0) == got.get(k, 0) for k in keys)
