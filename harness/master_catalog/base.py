"""What a master case is, and the context its body drives the master under test and the fake workers with.

A master case judges the master: its findings say what the master did wrong and what that does to the workers
(``consequence``). Times are in seconds: the master keeps Locust's real 1 s pace (nothing here compresses it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.launcher import WorkerProcess
from harness.master_catalog import master_log
from harness.master_catalog.masters import Launch
from harness.master_catalog.workers import FakeWorkers
from harness.protocol.fake_worker import FakeWorkerCore
from harness.master_catalog.consequences import graded
from harness.verdicts import Finding

CATEGORIES = ("handshake", "heartbeat", "liveness", "robustness", "load", "dispatch", "stats")
ROBUSTNESS = frozenset({"robustness", "load"})


class MasterViolation(Exception):
    """The master did something that ends the case at once (the finding is recorded, the case stops)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


@dataclass(frozen=True)
class MasterCase:
    """One master catalog case. ``id`` is stable; ``body`` drives the fake workers and records findings."""

    id: str
    category: str
    title: str
    expectation: str
    spec: str
    body: Callable[[MasterCaseContext], None]
    launch: Launch = Launch()
    budget: float = 20.0  # seconds the body is expected to take (reported; every wait in the body has its own deadline)
    needs: tuple[str, ...] = ()  # master capabilities (harness.master_catalog.masters.RUN)

    @property
    def kind(self) -> str:
        return "robustness" if self.category in ROBUSTNESS else "conformance"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "kind": self.kind,
            "title": self.title,
            "expectation": self.expectation,
            "spec": self.spec,
            "budget_intervals": self.budget,
            "budget_waits": {},
            "needs": list(self.needs),
        }


@dataclass
class MasterCaseContext:
    """The case's handle on the master process (its log) and on its fake workers."""

    master: MasterProcessView
    workers: FakeWorkers
    case_id: str
    csv_prefix: Path  # where a master that runs a load test writes its CSV (``--csv``)
    wall: Callable[[], float]  # wall-clock seconds, for payloads that carry a time (stats)
    swarm: int = 200  # workers of the load case (master-run --swarm)
    _log_events: list[master_log.LogEvent] = field(default_factory=list)
    _log_lines: int = -1
    findings: list[Finding] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def clock(self) -> Callable[[], float]:
        return self.workers.clock

    def worker(self, name: str, *, register: bool = True, **options: Any) -> FakeWorkerCore:
        """A new fake worker (identity ``<name>-<hex>``, unique per run), connected, with client_ready sent."""
        core = FakeWorkerCore(f"{name}-{uuid.uuid4().hex[:10]}", **options)
        return self.workers.add(core, register=register)

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let the fake workers run (heartbeats, replies) for ``seconds`` or until ``until()``."""
        return self.workers.run(seconds, until)

    def log(self) -> list[master_log.LogEvent]:
        """What the master logged about its workers so far (read again only when it printed more)."""
        lines = self.master.process.lines()
        if len(lines) != self._log_lines:
            self._log_events = master_log.events(lines)
            self._log_lines = len(lines)
        return self._log_events

    def logged(self, kind: str, node: str | None = None) -> master_log.LogEvent | None:
        return master_log.first(self.log(), kind, node)

    def registered(self, core: FakeWorkerCore, within: float) -> str | None:
        """Wait until the master shows it took ``core``'s client_ready (an ack, or its 'reported as ready' line);
        how it showed it, or None."""
        self.run(within, lambda: bool(core.acks) or self.logged("ready", core.node_id) is not None)
        return self.how_registered(core)

    def how_registered(self, core: FakeWorkerCore) -> str | None:
        """How the master showed it took ``core``'s client_ready so far (an ack or its log line), or None."""
        if core.acks:
            return f"acked {core.acks[0][0] - self.master.t0:.3f} s after the master started"
        event = self.logged("ready", core.node_id)
        return None if event is None else f"logged {event.text.strip()[-120:]!r}"

    def registered_at(self, core: FakeWorkerCore) -> float | None:
        """When the master first showed it took ``core``'s client_ready (its ack's arrival or its log line's)."""
        times = [core.acks[0][0]] if core.acks else []
        event = self.logged("ready", core.node_id)
        if event is not None:
            times.append(event.t)
        return min(times, default=None)

    def finding(self, oracle: str, expected: str, observed: str, at: float | None = None) -> None:
        """Record what the master did wrong; its verdict and consequence come from the master role's table."""
        self.findings.append(graded(oracle, expected, observed, at))

    def fail(self, oracle: str, expected: str, observed: str) -> None:
        """A finding that ends the case (nothing after it could be judged)."""
        raise MasterViolation(graded(oracle, expected, observed))


@dataclass
class MasterProcessView:
    """The master process as the case sees it: its output lines (timed on the workers' clock) and start time."""

    process: WorkerProcess
    command: str
    port: int
    t0: float

    def crash_excerpt(self) -> str:
        return master_log.crash_excerpt(self.process.lines())

    def error_excerpt(self) -> str:
        return master_log.error_excerpt(self.process.lines())
