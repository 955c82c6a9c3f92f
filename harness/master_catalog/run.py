"""Running the master catalog: a fresh master per case, cases side by side, the usual report.

The results document has the worker catalog's shape (results.json, schema 5, with ``run.role`` "master"), so
``report``, JUnit, the HTML pages and ``compare`` (a master compatibility matrix) read it as they read any run.
Whose fault: a master that broke the protocol is FAILED; a master command that never listens, or a harness error,
is UNKNOWN (never a pass); a case a master cannot take (a load test from a command without ``{users}``) is not run.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import host_facts
from harness.errors import LaunchError, ScenarioError
from harness.launcher import WorkerProcess, describe_exit
from harness.master_catalog.base import MasterCase, MasterCaseContext, MasterProcessView, MasterViolation
from harness.master_catalog.consequences import graded
from harness.master_catalog.masters import HOST, LISTEN_TIMEOUT, Launch, MasterCommand, free_port, listening
from harness.master_catalog.workers import FakeWorkers, Interrupted
from harness.owner import raise_open_file_limit
from harness.protocol.profiles import DEFAULT_PROFILE, master_profile
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, TraceRecord
from harness.verdicts import Finding, Verdict, rank, worst
from harness.worker_timing import timing_json

RESULTS_SCHEMA_VERSION = 5
STOP_GRACE = 10.0  # seconds a master gets to quit on SIGTERM (it sends quit to its workers, writes its CSV)


@dataclass
class MasterCaseResult:
    case: MasterCase
    verdict: Verdict
    findings: list[Finding]
    duration: float
    command: str = ""
    master_exit: int | None = None
    dir: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    artifacts: str = ""  # the case's folder as run: master.log, trace.jsonl (the wire log), wire.txt, result.json

    def to_json(self) -> dict[str, Any]:
        return {
            **self.case.to_json(),
            "budget_s": self.case.budget,
            "harness_lag": {},
            "rerun": "",
            "dir": self.dir,
            "verdict": self.verdict.value,
            "findings": [f.to_json() for f in self.findings],
            "duration_s": round(self.duration, 3),
            "command": self.command,
            "worker_exit": self.master_exit,
            "worker_exit_text": describe_exit(self.master_exit),
            "max_heartbeat_gap_s": None,
            "artifacts": self.artifacts,
            "seeds": [],
            "timeline": {},
            "measurements": self.measurements,
        }

    def summary(self) -> str:
        bad = [f for f in self.findings if f.verdict is not Verdict.OK]
        return str(max(bad, key=lambda f: rank(f.verdict))) if bad else "ok"


@dataclass(frozen=True)
class MasterNotRun:
    case: MasterCase
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "category": self.case.category,
            "title": self.case.title,
            "reason": self.reason,
            "estimated_s": self.case.budget,
        }


@dataclass
class MasterRunResult:
    command: MasterCommand
    label: str
    results: list[MasterCaseResult] = field(default_factory=list)
    not_run: list[MasterNotRun] = field(default_factory=list)
    started_at: str = ""
    duration: float = 0.0
    jobs: int = 1

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for r in self.results if r.verdict is v) for v in Verdict}

    def _profile(self) -> dict[str, Any]:
        """The profile a fake@ master ran as; for any other master, the protocol the fake workers speak."""
        if self.command.text.startswith("fake@"):
            profile = master_profile(self.command.profile_name())
            return {"name": profile.name, "stands_for": profile.stands_for, "knobs": profile.knobs()}
        return {"name": DEFAULT_PROFILE.name, "stands_for": "the fake workers speak Locust 2.47's protocol", "knobs": {}}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run": {
                "role": "master",
                "label": self.label,
                "worker": self.command.text,  # the implementation judged (here a master), as every report reads it
                "heartbeat_interval": LOCUST_TIMING.heartbeat_interval,
                "pace": None,
                "worker_timing": timing_json(LOCUST_TIMING),
                "declared_timing": {},
                "max_case_seconds": None,
                "master_profile": self._profile(),
                "jobs": self.jobs,
                "user_class": "ConformanceUser",
                "started_at": self.started_at,
                "duration_s": round(self.duration, 3),
                "locust_version": None,
                **host_facts(),
            },
            "summary": self.counts(),
            "root_causes": [],
            "cases": [r.to_json() for r in self.results],
            "not_run": [n.to_json() for n in self.not_run],
        }


def run_master_case(
    case: MasterCase, command: MasterCommand, folder: Path, swarm: int = 200, stop: threading.Event | None = None
) -> MasterCaseResult:
    """Start a master for ``case``, run its body against fake workers, judge, reap, write the case's files."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    port = free_port()
    csv_prefix = folder / "stats"
    rendered = command.render(port, case.launch, csv_prefix)  # checked by run_master_catalog before any case
    process = WorkerProcess(rendered, folder / "master.log", case.launch.env(), clock=time.monotonic)
    findings: list[Finding] = []
    measurements: dict[str, Any] = {}
    code: int | None = None
    try:
        process.start()
        view = MasterProcessView(process, rendered, port, time.monotonic())
        failure = _wait_listening(process, port, stop)
        if failure:
            findings.append(failure)
        else:
            view.t0 = time.monotonic()
            with FakeWorkers(f"tcp://{HOST}:{port}", time.monotonic, stop) as workers:
                ctx = MasterCaseContext(view, workers, case.id, csv_prefix, time.time, swarm=swarm)
                try:
                    case.body(ctx)
                except MasterViolation as violation:
                    ctx.findings.append(violation.finding)
                finally:  # whatever ended the body, what it found and the wire log are kept
                    findings.extend(ctx.findings)
                    measurements = ctx.measurements
                    _write_wire(folder, workers, process, view.t0)
    except Interrupted:
        findings.append(graded("harness.interrupted", "the case runs to its end", "the run was interrupted"))
    except ScenarioError as exc:
        findings.append(graded("harness.scenario", "a case the master can take", str(exc)))
    except LaunchError as exc:
        findings.append(graded("harness.launch", "the master command starts", str(exc)))
    except Exception as exc:  # ours: never a pass, never the master's fault
        findings.append(
            graded("harness.case", "the case runs to its end", f"harness failure: {exc!r}\n{traceback.format_exc(limit=6)}")
        )
    finally:
        try:
            code = process.stop(STOP_GRACE) if process.drain is not None else None  # None: it never started
        except LaunchError as exc:
            findings.append(graded("harness.reap", "the master's processes end when the case is over", str(exc)))
    result = MasterCaseResult(
        case,
        worst(f.verdict for f in findings),
        findings,
        time.monotonic() - started,
        rendered,
        code,
        f"cases/{folder.name}",
        measurements,
        str(folder),
    )
    (folder / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", "utf-8")
    return result


def _wait_listening(process: WorkerProcess, port: int, stop: threading.Event | None) -> Finding | None:
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise Interrupted("the run is being stopped")
        code = process.poll()
        if code is not None:
            return graded(
                "harness.master-start",
                f"the master listens on {HOST}:{port}",
                f"it ended first ({describe_exit(code)}); its last lines: {process.output(8)!r}",
            )
        if listening(process, port):
            return None
        time.sleep(0.05)
    return graded(
        "harness.master-start",
        f"the master listens on {HOST}:{port} within {LISTEN_TIMEOUT:g} s",
        f"it does not; its last lines: {process.output(8)!r}",
    )


def _write_wire(folder: Path, workers: FakeWorkers, process: WorkerProcess, t0: float) -> None:
    """trace.jsonl (the report's wire log: what the master received and sent, and what it printed) and wire.txt."""
    records: list[TraceRecord] = []
    for r in workers.records:
        kind = Kind.RECV if r.direction == "w2m" else Kind.SEND
        message = r.message if r.message is not None else None
        frames = (r.raw,) if r.message is None else ()
        note = f"undecodable: {r.problem}" if r.message is None else r.problem
        records.append(TraceRecord(0, r.t, kind, r.node, message, frames, len(r.raw), (), note))
    for line in process.lines():
        records.append(TraceRecord(0, line.t, Kind.OUTPUT, "", None, (), 0, (), line.text))
    records.sort(key=lambda rec: rec.t)
    with (folder / "trace.jsonl").open("w", encoding="utf-8") as out:
        for seq, rec in enumerate(records):
            data = rec.to_json(t0)
            data["seq"] = seq
            out.write(json.dumps(data) + "\n")
    (folder / "wire.txt").write_text("\n".join(r.line(t0) for r in workers.records) + "\n", "utf-8")


def case_folder(case: MasterCase) -> str:
    """The case's folder name under the report's ``cases/``."""
    return case.id.replace("/", "__")


def plan(cases: list[MasterCase], command: MasterCommand) -> tuple[list[MasterCase], list[MasterNotRun]]:
    """The cases ``command`` can take, and the rest with the reason."""
    run: list[MasterCase] = []
    skipped: list[MasterNotRun] = []
    for case in cases:
        missing = [need for need in case.needs if need not in command.capabilities]
        if missing:
            why = (
                "the fake master serves workers but starts no load test"
                if command.text.startswith("fake@")
                else "the command has no {users} placeholder"
            )
            skipped.append(MasterNotRun(case, f"needs a master that can {', '.join(missing)} a load test: {why}"))
        else:
            run.append(case)
    return run, skipped


def run_master_catalog(
    cases: list[MasterCase], command: MasterCommand, report: Path, jobs: int = 3, label: str | None = None, swarm: int = 200
) -> MasterRunResult:
    """Every case of ``cases`` against ``command`` (``jobs`` at a time), results.json in ``report``."""
    command.check().render(0, Launch(), report / "stats")  # a locust@ release is installed now, before any case
    raise_open_file_limit(jobs * (swarm + 64) * 3)  # each fake worker's socket takes a few descriptors
    report.mkdir(parents=True, exist_ok=True)
    chosen, skipped = plan(cases, command)
    result = MasterRunResult(command, label or command.label, not_run=skipped, jobs=jobs)
    result.started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="master-case") as pool:
        futures = [
            pool.submit(run_master_case, case, command, report / "cases" / case_folder(case), swarm, stop) for case in chosen
        ]
        try:
            result.results = [f.result() for f in futures]
        except BaseException:  # Ctrl-C or SIGTERM: cases end at their next wait, their masters reaped; then re-raised
            stop.set()
            for future in futures:
                future.cancel()
            raise
    result.duration = time.monotonic() - started
    (report / "results.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", "utf-8")
    return result
