"""Stats cases: cadence, schema, integrity, deltas, mergeability by the real master (spec §3.6)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import Any

import msgpack

from harness.catalog.base import CaseContext, case, users_of
from harness.launcher import PEERS
from harness.protocol.messages import MessageType
from harness.trace import Kind

MERGE_TIMEOUT = 60.0


def _stats(ctx: CaseContext) -> list[tuple[float, dict[str, Any]]]:
    return [
        (r.t, r.message.data)
        for r in ctx.master.trace.records()
        if r.kind is Kind.RECV
        and r.message is not None
        and r.message.type == MessageType.STATS
        and isinstance(r.message.data, dict)
    ]


@case(
    "stats/01-cadence",
    "stats",
    "Stats every report interval",
    "the first report right after the ack, then one every report interval (Locust: 3 s), at most 1.5 x late",
    "§3.6",
    4,
    waits={"report": 2.4},
)
def cadence(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.observe(ctx.reports(2.4))
    times = [t for t, _ in _stats(ctx)]
    report = ctx.timing.report_interval
    if len(times) < 2:
        ctx.note("stats.cadence", f"a report every {report:.2f} s", f"{len(times)} report(s) in {2.4 * report:.2f} s")
        return
    gap = max(b - a for a, b in zip(times, times[1:], strict=False))
    if gap > 1.5 * report:
        ctx.note("stats.cadence", f"reports at most {1.5 * report:.2f} s apart", f"a {gap:.3f} s gap")


@case(
    "stats/02-integrity-running",
    "stats",
    "Stats are consistent while users run",
    "every report fits the schema; histogram, per-second and total counts agree; requests are counted",
    "§3.6",
    8,
    waits={"report": 2},
)
def integrity_running(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(4)
    ctx.observe(ctx.reports(2))
    if not any(d.get("stats_total", {}).get("num_requests", 0) > 0 for _, d in _stats(ctx)):
        ctx.note("stats.requests", "requests counted while 4 users run", "every report counts 0 requests")


@case(
    "stats/03-mergeable-by-locust",
    "stats",
    "The real master's code merges the stats",
    "Locust's own StatsEntry/StatsError code (run in a subprocess) merges every report without an error",
    "§3.6",
    8,
    waits={"report": 2},
)
def mergeable(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(3)
    ctx.observe(ctx.reports(2))
    reports = [d for _, d in _stats(ctx)]
    if importlib.util.find_spec("locust") is None:
        ctx.note("stats.merge-unchecked", "a merge by Locust's code", "not checked: Locust is not installed")
        return
    problem = merge_problem(reports)
    if problem is not None:
        ctx.note("stats.merge", *problem)


def merge_problem(reports: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Merge ``reports`` with the real master's code (in a subprocess); what went wrong (expected, observed), if
    anything: the merge raised, or its total is not the sum the reports claim."""
    done = subprocess.run(
        [sys.executable, str(PEERS / "merge_stats.py")], input=msgpack.packb(reports), capture_output=True, timeout=MERGE_TIMEOUT
    )
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1][:300] if done.stderr else f"exit {done.returncode}"
        return "every report merged by Locust's master code", last
    merged = json.loads(done.stdout)
    sent = sum(d.get("stats_total", {}).get("num_requests", 0) for d in reports)
    if merged["total_requests"] != sent:
        return f"the merged total to equal the {sent} requests reported", str(merged["total_requests"])
    return None


@case(
    "stats/04-user-count",
    "stats",
    "Stats carry the running user counts",
    "after spawning 3 users, a report's user_classes_count says {class: 3} (what the real master reads)",
    "§3.6",
    6,
    waits={"report": 2.7},
)
def user_count(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(3)
    ctx.expect(
        MessageType.STATS,
        ctx.reports(2.7),
        where=lambda d: isinstance(d, dict) and users_of(d, ctx.user_class) == 3,
    )


@case(
    "stats/05-final-on-quit",
    "stats",
    "A final report on quit",
    "between the master's quit and the worker's quit comes one last stats report",
    "§3.9, §3.6",
    10,
)
def final_on_quit(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(3)
    ctx.observe(1)
    ctx.quit()


@case(
    "stats/06-deltas-not-cumulative",
    "stats",
    "Reports are deltas",
    "each report holds only what happened since the previous one (the master adds them up): no report repeats "
    "earlier seconds with their full counts",
    "§3.6",
    24,
    waits={"report": 4},
)
def deltas(ctx: CaseContext) -> None:
    ctx.handshake()
    ctx.spawn(4)
    # Requests are counted per wall-clock second: at least three second boundaries (3.6 s), each seen by a report
    # and then by later ones, and at least four reports.
    ctx.observe(max(3.6 / ctx.interval, ctx.reports(4)))
