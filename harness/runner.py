"""Running catalog cases: a fresh fake master and worker process per case, oracles, verdicts, evidence on disk.

Every case ends with a verdict; a harness failure is UNKNOWN, never OK. A case
whose worker stops answering gets a stack dump (py-spy for Python, SIGQUIT for
a JVM) before it is killed.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
import shutil
import signal
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakemaster.master import FakeMaster
from harness import __version__
from harness.catalog import Case, CaseContext
from harness.errors import ConformanceError, ExpectationFailed, HarnessFault, ProtocolViolation
from harness.launcher import WorkerProcess, describe_exit, render_command
from harness.oracles import HARNESS_JITTER, NON_STRICT_GAP, Evidence, excused_windows, heartbeat_gaps, judge_run
from harness.protocol.messages import MessageType
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, TraceRecord, fault_windows, format_record, parse_window_note
from harness.verdicts import Finding, Verdict, worst

RESULTS_SCHEMA_VERSION = 2  # documented in docs/results-schema.md; harness/report/results.schema.json
DEFAULT_INTERVAL = 0.2
STACK_DUMP_TIMEOUT = 15.0


@dataclass
class RunConfig:
    worker: str  # 'reference', 'locust' or a command template
    label: str
    heartbeat_interval: float = DEFAULT_INTERVAL
    user_class: str = "ConformanceUser"


@dataclass
class CaseResult:
    case: Case
    verdict: Verdict
    findings: list[Finding]
    duration: float
    command: str = ""
    worker_exit: int | None = None
    artifacts: str = ""
    max_heartbeat_gap: float | None = None  # seconds; None when no heartbeat was due (never acked)
    timeline: dict[str, Any] = field(default_factory=dict)  # heartbeats, gaps and windows, for the report's picture
    seeds: list[dict[str, Any]] = field(default_factory=list)  # the seeds of the fault plans and storms the case used
    dir: str = ""  # the case's folder, relative to the run's report folder

    def to_json(self) -> dict[str, Any]:
        return {
            **self.case.to_json(),
            "dir": self.dir,
            "verdict": self.verdict.value,
            "findings": [f.to_json() for f in self.findings],
            "duration_s": round(self.duration, 3),
            "command": self.command,
            "worker_exit": self.worker_exit,
            "worker_exit_text": describe_exit(self.worker_exit),
            "max_heartbeat_gap_s": None if self.max_heartbeat_gap is None else round(self.max_heartbeat_gap, 4),
            "artifacts": self.artifacts,
            "seeds": self.seeds,
            "timeline": self.timeline,
        }

    def summary(self) -> str:
        """The one line a person reads first: what went wrong, if anything."""
        bad = [f for f in self.findings if f.verdict is not Verdict.OK]
        return str(max(bad, key=lambda f: list(Verdict).index(f.verdict))) if bad else "ok"


def dump_stacks(process: WorkerProcess, out: Path) -> str:
    """Ask a stuck worker where it is: py-spy for Python, SIGQUIT for a JVM (its dump goes to its output)."""
    if process.poll() is not None:
        return "no stack dump: the process had already ended"
    if "java" in process.command.split()[0:3] or " -jar " in process.command:
        process.signal_group(signal.SIGQUIT)
        time.sleep(0.5)
        return "SIGQUIT sent: the JVM's thread dump is in worker.log"
    spy = shutil.which("py-spy")
    if spy is None:
        return "no stack dump: py-spy is not installed (pip install py-spy)"
    try:
        done = subprocess.run(
            [spy, "dump", "--pid", str(process.pid)], capture_output=True, text=True, timeout=STACK_DUMP_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return "py-spy did not answer in time"
    out.write_text(done.stdout + done.stderr, "utf-8")
    return f"py-spy stack dump in {out.name}" if done.returncode == 0 else f"py-spy failed: {done.stderr.strip()[:200]}"


def run_case(case: Case, config: RunConfig, folder: Path, report: Path | None = None) -> CaseResult:
    """Run one case against a fresh worker process; always returns a verdict.

    ``report``: the run's report folder, when ``folder`` is one of its case folders (sets ``CaseResult.dir``).
    """
    started = time.monotonic()
    interval = case.heartbeat_interval or config.heartbeat_interval
    timing = LOCUST_TIMING.compressed(interval)
    folder.mkdir(parents=True, exist_ok=True)
    findings: list[Finding] = []
    master = FakeMaster(timing=timing).start()
    if case.setup is not None:
        case.setup(master)  # before the worker exists
    command = ""
    ctx: CaseContext | None = None
    process: WorkerProcess | None = None
    try:
        command = render_command(config.worker, master.host, master.port, interval)
        process = WorkerProcess(command, folder / "worker.log").start()
        ctx = CaseContext(master, process, timing, config.user_class)
        ctx.first_message()
        body_started = time.monotonic()
        try:
            case.body(ctx)
        finally:
            overrun = time.monotonic() - body_started - timing.heartbeat_interval * case.budget
            if overrun > 0:
                master.note(f"case overran its budget of {case.budget:g} intervals by {overrun:.2f} s")
    except ExpectationFailed as exc:
        dump = dump_stacks(process, folder / "stack.txt") if process is not None else ""
        findings.append(
            Finding("progress", Verdict.FAILED, exc.expected, f"{exc.observed}; {dump}", master.clock.now() - master.trace.t0)
        )
    except ProtocolViolation as exc:
        findings.append(Finding(exc.rule, Verdict.FAILED, exc.expected, exc.observed))
    except HarnessFault as exc:
        findings.append(Finding("harness", Verdict.UNKNOWN, "the harness to run the case", str(exc)))
    except ConformanceError as exc:  # ScenarioError: a bug in the case itself
        findings.append(Finding("harness.case", Verdict.UNKNOWN, "a well-formed case", str(exc)))
    except Exception as exc:  # any other bug of ours: never a pass
        findings.append(
            Finding("harness.crash", Verdict.UNKNOWN, "the case to run", f"{exc!r}\n{traceback.format_exc()[-1500:]}")
        )
    end = master.clock.now()
    code = process.stop() if process is not None else None
    master.close()
    if ctx is not None:
        findings += ctx.findings
    evidence = Evidence(
        master.trace.records(),
        master.trace.t0,
        timing,
        end,
        exit_code=code,
        killed_by_harness=bool(process and process.killed_by_harness),
        output=process.output() if process else "",
        exempt=[*excused_windows(master.trace.records()), *(ctx.exempt if ctx else [])],
    )
    findings += judge_run(evidence, case.oracles)
    findings = _dedupe(findings)
    gaps = heartbeat_gaps(evidence)
    records = master.trace.records()
    result = CaseResult(
        case,
        worst(f.verdict for f in findings),
        findings,
        time.monotonic() - started,
        command,
        code,
        str(folder),
        max((g for _, g in gaps), default=None),
        timeline(evidence, gaps),
        seeds_used(records, master.trace.t0),
        folder.relative_to(report).as_posix() if report is not None else "",
    )
    _write_case(master, result, folder)
    return result


def timeline(ev: Evidence, gaps: list[tuple[float, float]]) -> dict[str, Any]:
    """What the report's heartbeat picture shows: times in seconds since the master started."""
    t0 = ev.t0

    def rel(t: float) -> float:
        return round(t - t0, 4)

    acks = ev.sent(MessageType.ACK)
    quits = ev.received(MessageType.QUIT)
    return {
        "interval": ev.timing.heartbeat_interval,
        "tolerance": round(NON_STRICT_GAP * ev.timing.heartbeat_interval + HARNESS_JITTER, 6),
        "missing_after_min": round(ev.timing.missing_after_min, 6),
        "missing_after_max": round(ev.timing.missing_after_max, 6),
        "acked_at": rel(acks[0].t) if acks else None,
        "quit_at": rel(quits[0].t) if quits else None,
        "end": rel(ev.end),
        "heartbeats": [rel(r.t) for r in ev.received(MessageType.HEARTBEAT)],
        "gaps": [[rel(start), round(length, 4)] for start, length in gaps],
        "fault_windows": [[rel(a), rel(b), label] for a, b, label in fault_windows(ev.records)],
        "excused": [[rel(a), rel(b), label] for a, b, label in ev.exempt],
        "liveness": [[rel(r.t), r.note] for r in ev.records if r.kind is Kind.LIVENESS],
    }


def seeds_used(records: list[TraceRecord], t0: float) -> list[dict[str, Any]]:
    """The seeds of the fault plans and storms a case installed, read off their window-opening FAULT records."""
    out: list[dict[str, Any]] = []
    for record in records:
        parsed = parse_window_note(record.note) if record.kind is Kind.FAULT else None
        if parsed is None or parsed[1] != "start" or ": " not in record.note:
            continue
        detail = record.note.split(": ", 1)[1]
        brace = detail.find("{")
        try:
            spec = json.loads(detail[brace:]) if brace >= 0 else None
        except ValueError:
            spec = None
        if isinstance(spec, dict) and isinstance(spec.get("seed"), int):
            out.append({"source": parsed[0], "seed": spec["seed"], "at": round(record.t - t0, 4)})
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.oracle, f.observed) not in seen:
            seen.add((f.oracle, f.observed))
            out.append(f)
    return out


def _write_case(master: FakeMaster, result: CaseResult, folder: Path) -> None:
    master.trace.save(folder / "trace.jsonl")
    lines = [format_record(r, master.trace.t0, width=400) for r in master.trace.records()]
    (folder / "trace.txt").write_text("\n".join(lines) + "\n", "utf-8")
    (folder / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", "utf-8")


@dataclass
class RunResult:
    config: RunConfig
    results: list[CaseResult] = field(default_factory=list)
    started_at: str = ""
    duration: float = 0.0

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for r in self.results if r.verdict is v) for v in Verdict}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run": {
                "label": self.config.label,
                "worker": self.config.worker,
                "heartbeat_interval": self.config.heartbeat_interval,
                "user_class": self.config.user_class,
                "started_at": self.started_at,
                "duration_s": round(self.duration, 3),
                "harness_version": __version__,
                "locust_version": _installed_version("locust"),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "hostname": platform.node(),
            },
            "summary": self.counts(),
            "cases": [r.to_json() for r in self.results],
        }


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_catalog(
    cases: list[Case], config: RunConfig, report: Path, progress: Callable[[int, int, CaseResult], None] | None = None
) -> RunResult:
    """Run ``cases`` in order, writing ``results.json`` and a folder per case under ``report``."""
    run = RunResult(config, started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    started = time.monotonic()
    for i, case in enumerate(cases, start=1):
        result = run_case(case, config, report / "cases" / case.id.replace("/", "__"), report)
        run.results.append(result)
        if progress is not None:
            progress(i, len(cases), result)
        run.duration = time.monotonic() - started
        (report / "results.json").write_text(json.dumps(run.to_json(), indent=2) + "\n", "utf-8")
    return run
