"""Stats integrity: reports that are consistent, never negative, deltas rather than cumulative, and a final report
after the master's quit."""

from __future__ import annotations

from typing import Any

from harness.consequences import judged
from harness.oracles.evidence import Evidence, reachable_quits, worker_quit_at
from harness.protocol.messages import MessageType
from harness.verdicts import Finding


def check_stats(ev: Evidence) -> list[Finding]:
    """Stats reports are internally consistent and never negative (counts never go backwards)."""
    for rec in ev.received(MessageType.STATS):
        data = rec.message.data if rec.message else None
        if not isinstance(data, dict):
            continue
        problem = _stats_problem(data)
        if problem:
            return [judged("stats.integrity", "consistent, non-negative delta counts", problem, ev.rel(rec.t))]
    return []


def check_stats_deltas(ev: Evidence) -> list[Finding]:
    """Reports are deltas, not cumulative.

    Requests are counted per wall-clock second (``num_reqs_per_sec``) and the master adds the reports up. A
    cumulative report repeats earlier seconds with at least their earlier counts; FAILED when a report does so
    for two or more seconds that an earlier report had already seen end (a second that is not the last one of
    that report). A single late request stamped with an earlier second (a thread that read the clock before a
    report was taken) is not that.
    """
    reports: list[tuple[float, dict[int, int]]] = []
    for rec in ev.received(MessageType.STATS):
        data = rec.message.data if rec.message else None
        total = data.get("stats_total") if isinstance(data, dict) else None
        counts = total.get("num_reqs_per_sec") if isinstance(total, dict) else None
        if isinstance(counts, dict):
            per_second = {k: v for k, v in counts.items() if isinstance(k, int) and isinstance(v, int) and v > 0}
            if per_second:
                reports.append((rec.t, per_second))
    closed: dict[int, tuple[int, float]] = {}  # second -> (count, when reported) for seconds a report saw end
    for t_new, new in reports:
        again = sorted(k for k, (count, _) in closed.items() if new.get(k, 0) >= count)
        if len(again) >= 2:
            first = closed[again[0]][1]
            return [
                judged(
                    "stats.deltas",
                    "each report to count only new requests (the master adds the reports up)",
                    f"the report at t={ev.rel(t_new):.3f}s repeats {len(again)} earlier seconds with their full counts "
                    f"(second {again[0]} was first reported at t={ev.rel(first):.3f}s): cumulative counts, "
                    "the master counts them twice",
                    ev.rel(t_new),
                )
            ]
        last = max(new)
        for k, v in new.items():
            if k < last and k not in closed:
                closed[k] = (v, t_new)
    return []


def _stats_problem(data: dict[str, Any]) -> str | None:
    entries = [e for e in data.get("stats", []) if isinstance(e, dict)]
    total = data.get("stats_total") if isinstance(data.get("stats_total"), dict) else None
    counts = data.get("user_classes_count")
    if isinstance(counts, dict) and isinstance(data.get("user_count"), int):
        if data["user_count"] < 0 or any(isinstance(v, int) and v < 0 for v in counts.values()):
            return f"negative user counts: user_count={data['user_count']}, user_classes_count={counts}"
    for entry in [*entries, *([total] if total else [])]:
        name = entry.get("name")
        try:
            n, none, fails = entry["num_requests"], entry["num_none_requests"], entry["num_failures"]
            if min(n, none, fails) < 0:
                return f"{name}: negative counts (num_requests={n}, num_failures={fails})"
            if sum(entry["response_times"].values()) != n - none:
                return (
                    f"{name}: response_times holds {sum(entry['response_times'].values())} samples for {n - none} timed requests"
                )
            if sum(entry["num_reqs_per_sec"].values()) != n:
                return f"{name}: num_reqs_per_sec sums to {sum(entry['num_reqs_per_sec'].values())}, num_requests is {n}"
        except (KeyError, TypeError, AttributeError):
            continue  # the schema oracle reports missing or mistyped fields
    if total and isinstance(data.get("stats"), list):
        per_entry = sum(e.get("num_requests", 0) for e in entries if isinstance(e.get("num_requests"), int))
        if isinstance(total.get("num_requests"), int) and total["num_requests"] != per_entry:
            return f"stats_total counts {total['num_requests']} requests, the entries {per_entry}"
    return None


def check_final_stats_on_quit(ev: Evidence) -> list[Finding]:
    """After the master's quit, a final stats report comes before the worker's quit, or before it exits if it sends
    no quit (optional in the spec: the requests since the last report are lost without it)."""
    quits_sent = reachable_quits(ev)
    if not quits_sent:
        return []
    asked = quits_sent[0].t
    worker_quit = worker_quit_at(ev)
    if worker_quit is not None and worker_quit < asked:
        return []  # it had left on its own before the master asked
    if worker_quit is not None:
        until, how = worker_quit, "quit"
    elif ev.exit_code is not None and not ev.killed_by_harness:
        until, how = (ev.exited_at if ev.exited_at is not None else ev.end), "exited (without a quit)"
    else:
        return []  # it never ended: the exit oracle says so
    if any(asked <= r.t <= until for r in ev.received(MessageType.STATS)):
        return []
    return [
        judged(
            "stats.final",
            "a final stats report between the master's quit and the worker's end",
            f"it {how} without a final report: requests made since the last report are lost",
            ev.rel(until),
        )
    ]
