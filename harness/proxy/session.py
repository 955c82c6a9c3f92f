"""A proxy run: forward until told to stop (or until every worker has left), then judge each worker connection and
write the usual report (results.json, one entry per connection; JUnit and HTML by ``harness.report``).

Whose fault: the worker's doing is judged by the catalog's oracles on what it sent and received (its heartbeats as
the proxy read them, so a fault of the proxy's never counts against it); the master's by the master catalog's table
(acks, heartbeat replies, spawn payloads); what the proxy's own faults did to the master's view of a worker is said
as such (``proxy.missing-by-fault``); a proxy that failed is UNKNOWN, never a pass.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import host_facts
from harness.consequences import judged
from harness.master_catalog.consequences import graded
from harness.oracles import DEFAULT_ORACLES, Evidence, excused_windows, heartbeat_gaps, judge
from harness.protocol.messages import MessageType
from harness.protocol.schema import Severity
from harness.proxy.forwarder import TO_MASTER, Connection, Proxy
from harness.runner import timeline
from harness.trace import Kind, TraceRecord, format_record
from harness.verdicts import Finding, Verdict, worst
from harness.worker_timing import timing_json

RESULTS_SCHEMA_VERSION = 5
REPLY_WITHIN = 1.0  # the master answers a heartbeat or a client_ready within this (the master catalog's rule)
MASTER_VIEW = "master view: "


@dataclass
class ConnectionResult:
    """One worker connection's verdict and evidence."""

    connection: Connection
    verdict: Verdict
    findings: list[Finding]
    measurements: dict[str, Any] = field(default_factory=dict)
    timeline: dict[str, Any] = field(default_factory=dict)
    dir: str = ""

    number: int = 1  # the connection's order of arrival

    @property
    def case_id(self) -> str:
        """``proxy/NN-<identity as a slug>``: the results schema's stable id shape."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.connection.identity.lower()).strip("-")[:60] or "worker"
        return f"proxy/{self.number:02d}-{slug}"

    def to_json(self) -> dict[str, Any]:
        gaps = self.timeline.get("gaps", [])
        return {
            "id": self.case_id,
            "category": "proxy",
            "kind": "conformance",
            "title": f"worker connection {self.connection.identity!r} through the proxy",
            "expectation": "the worker and the master keep Locust's protocol on real traffic",
            "spec": "",
            "budget_intervals": 0,
            "budget_waits": {},
            "needs": [],
            "budget_s": 0,
            "harness_lag": {},
            "rerun": "",
            "dir": self.dir,
            "verdict": self.verdict.value,
            "findings": [f.to_json() for f in self.findings],
            "duration_s": round(self.connection.last_t - self.connection.first_t, 3),
            "command": "",
            "worker_exit": None,
            "worker_exit_text": "not started by the harness",
            "max_heartbeat_gap_s": round(max((g[1] for g in gaps), default=0.0), 4) if gaps else None,
            "artifacts": self.dir,
            "seeds": [],
            "timeline": self.timeline,
            "measurements": self.measurements,
        }


def connection_records(records: list[TraceRecord], identity: str) -> list[TraceRecord]:
    """The records of one connection, plus the proxy's own records without an identity (fault windows, notes)."""
    return [r for r in records if r.identity == identity or not r.identity]


def judge_connection(
    proxy: Proxy, conn: Connection, records: list[TraceRecord], end: float, acking_master: bool
) -> ConnectionResult:
    """Every worker oracle on what this worker sent and got, and the master's side of the same conversation."""
    mine = connection_records(records, conn.identity)
    ev = Evidence(mine, proxy.started_at, proxy.timing, end, exempt=excused_windows(mine))
    findings = judge(ev, DEFAULT_ORACLES)
    findings += master_findings(ev, conn, acking_master)
    findings += fault_findings(ev, conn.identity)
    gaps = heartbeat_gaps(ev)
    measurements = {
        "frames": {d: n.to_json() for d, n in conn.counts.items()},
        "master_view": [
            [round(r.t - proxy.started_at, 4), r.note.removeprefix(MASTER_VIEW)]
            for r in mine
            if r.kind is Kind.NOTE and r.identity == conn.identity and r.note.startswith(MASTER_VIEW)
        ],
        "worker_view": [[round(r.t - proxy.started_at, 4), r.note] for r in mine if r.kind is Kind.LIVENESS],
    }
    verdict = worst([f.verdict for f in findings]) if findings else Verdict.OK
    return ConnectionResult(conn, verdict, findings, measurements, timeline(ev, gaps))


def master_findings(ev: Evidence, conn: Connection, acking_master: bool) -> list[Finding]:
    """The master's side: an ack for every client_ready (from a master that acks at all), heartbeat replies within a
    second, spawn payloads a Locust worker reads. Graded by the master catalog's table. Promptness is timed from
    when a message reached the master's socket to when the proxy read the answer, before any fault of its own; an
    answer read out after a pause of the proxy's is not timed (when the master sent it cannot be told)."""
    findings: list[Finding] = []
    readies = conn.readies_delivered
    acks = conn.master_sent[MessageType.ACK]
    if acking_master and readies:
        if not acks:
            findings.append(
                graded(
                    "master.ack.missing",
                    "an ack for the worker's client_ready",
                    "none (the master acked other workers)",
                    ev.rel(readies[0]),
                )
            )
        elif acks[0] is not None and acks[0] - readies[0] > REPLY_WITHIN:
            findings.append(
                graded(
                    "master.ack.late",
                    f"an ack within {REPLY_WITHIN:g} s of the client_ready reaching the master",
                    f"after {acks[0] - readies[0]:.3f} s",
                    ev.rel(acks[0]),
                )
            )
    replies = conn.master_sent[MessageType.HEARTBEAT]
    if replies:  # a master that answers heartbeats (2.19+): each one it got from a worker it knows, first in first out
        late = [(r - t, r) for t, r in zip(conn.beats_delivered, replies, strict=False) if r is not None and r - t > REPLY_WITHIN]
        if late:
            lag, at = max(late, key=lambda x: x[0])
            findings.append(
                graded(
                    "master.heartbeat-reply.late",
                    f"heartbeat replies within {REPLY_WITHIN:g} s of the heartbeat reaching the master",
                    f"{len(late)} late, the worst after {lag:.3f} s",
                    ev.rel(at),
                )
            )
    for spawn in ev.sent(MessageType.SPAWN):
        for violation in spawn.violations:  # a spawn Locust's worker cannot read is FAILED, an odd field INFORMATIONAL
            oracle = "master.spawn-schema.deviation" if violation.severity is Severity.DEVIATION else "master.spawn-schema"
            if any(f.oracle == oracle for f in findings):
                continue
            findings.append(graded(oracle, "a spawn payload Locust's worker reads", str(violation), ev.rel(spawn.t)))
    return findings


def fault_findings(ev: Evidence, identity: str) -> list[Finding]:
    """What the proxy's faults made the master see: a worker the master marks missing while what it sent was on
    time (or its silence is excused: a pause of the proxy's). Said, and never held against the worker."""
    worker_missing = [
        r.t
        for r in ev.records
        if r.kind is Kind.LIVENESS and r.note == "missing" and not ev.exempted(r.t - ev.timing.missing_after_max, r.t)
    ]
    out = []
    for r in ev.records:
        if r.kind is Kind.NOTE and r.identity == identity and r.note == MASTER_VIEW + "missing":
            if not any(abs(t - r.t) <= ev.timing.heartbeat_interval for t in worker_missing):
                out.append(
                    judged(
                        "proxy.missing-by-fault",
                        "the master to hear the worker's heartbeats",
                        "the proxy's faults held its heartbeats back: the real master's rule marks it missing now "
                        "(the master's log says 'failed to send heartbeat, setting state to missing')",
                        ev.rel(r.t),
                    )
                )
    return out


@dataclass
class ProxyRunResult:
    proxy: Proxy
    results: list[ConnectionResult]
    started_at: str
    duration: float
    silent: list[str] = field(default_factory=list)  # peers of connections open at the end that never spoke

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for r in self.results if r.verdict is v) for v in Verdict}

    def to_json(self) -> dict[str, Any]:
        proxy = self.proxy
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run": {
                "role": "proxy",
                "label": f"proxy to {proxy.master_endpoint}",
                "worker": f"workers through the proxy on tcp://{proxy.listen_host}:{proxy.port}",
                "heartbeat_interval": proxy.timing.heartbeat_interval,
                "pace": None,
                "worker_timing": timing_json(proxy.timing),
                "declared_timing": {},
                "max_case_seconds": None,
                "master_profile": {"name": "real", "stands_for": f"the real master at {proxy.master_endpoint}", "knobs": {}},
                "jobs": 1,
                "user_class": "",
                "started_at": self.started_at,
                "duration_s": round(self.duration, 3),
                "locust_version": None,
                **host_facts(),
                "faults": proxy.plan.to_dict(),
                "frames": proxy.counts(),
                "silent_connections": self.silent,
            },
            "summary": self.counts(),
            "root_causes": [],
            "cases": [r.to_json() for r in self.results],
            "not_run": [],
        }


def judge_all(proxy: Proxy, end: float) -> list[ConnectionResult]:
    """Every connection judged (the proxy must have stopped: its thread owns the counters)."""
    records = proxy.trace.records()
    acking = any(r.kind is Kind.SEND and r.type == MessageType.ACK for r in records)
    results = [judge_connection(proxy, conn, records, end, acking) for conn in proxy.connections.values()]
    for number, result in enumerate(results, 1):
        result.number = number
    if proxy.failure is not None:
        for result in results:
            result.findings.append(
                judged("harness.proxy", "the proxy forwarding to the end", f"its socket thread failed: {proxy.failure!r}")
            )
            result.verdict = worst([f.verdict for f in result.findings])
    return results


def write_report(run: ProxyRunResult, folder: Path) -> Path:
    """results.json, and per connection its folder: trace.jsonl (the wire log), trace.txt, result.json."""
    folder.mkdir(parents=True, exist_ok=True)
    records = run.proxy.trace.records()
    t0 = run.proxy.started_at
    for result in run.results:
        sub = folder / "cases" / result.case_id.replace("/", "__")
        sub.mkdir(parents=True, exist_ok=True)
        result.dir = str(sub.relative_to(folder))
        mine = connection_records(records, result.connection.identity)
        with (sub / "trace.jsonl").open("w", encoding="utf-8") as out:
            for r in mine:
                out.write(json.dumps(r.to_json(t0), default=repr) + "\n")
        (sub / "trace.txt").write_text("\n".join(format_record(r, t0, width=400) for r in mine) + "\n", "utf-8")
        (sub / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", "utf-8")
    run.proxy.trace.save(folder / "proxy-trace.jsonl")
    path = folder / "results.json"
    path.write_text(json.dumps(run.to_json(), indent=2) + "\n", "utf-8")
    return path


def run_proxy(
    proxy: Proxy,
    stop: threading.Event,
    *,
    until_all_left: bool = True,
    idle_after_left: float = 2.0,
    max_seconds: float | None = None,
    on_start: Callable[[Proxy], None] | None = None,
    poll: float = 0.1,
) -> ProxyRunResult:
    """Start ``proxy`` and forward until ``stop`` is set, ``max_seconds`` pass, or (``until_all_left``) every
    connection has ended its session and nothing crossed for ``idle_after_left`` seconds; then judge it."""
    started_wall = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    proxy.start()
    if on_start is not None:
        on_start(proxy)
    clock = proxy.clock
    begin = clock.now()
    try:
        while not stop.wait(poll):
            now = clock.now()
            if max_seconds is not None and now - begin >= max_seconds:
                break
            if proxy.failure is not None:
                break
            idle = proxy.idle_since()
            if until_all_left and proxy.all_left() and idle is not None and now - idle >= idle_after_left:
                break
    finally:
        end = clock.now()
        proxy.stop()
    return ProxyRunResult(proxy, judge_all(proxy, end), started_wall, end - begin, proxy.silent_connections())


__all__ = ["TO_MASTER", "ConnectionResult", "ProxyRunResult", "judge_all", "run_proxy", "write_report"]
