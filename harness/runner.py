"""Running catalog cases: a fresh fake master and worker process per case, oracles, verdicts, evidence on disk.

Every case ends with a verdict; a harness failure is UNKNOWN, never OK. A case
whose worker stops answering gets a stack dump (``harness.stacks``: py-spy for
Python, jcmd/jstack or SIGQUIT for a JVM, SIGQUIT for Go) before it is killed.
The worker's output is drained into the trace with the trace's clock, so the
oracles judge each line by when it was printed. A case that would take longer
than ``RunConfig.max_case_seconds`` at the worker's own timing is not run, and
is reported as not run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import importlib.metadata
import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fakemaster.master import FakeMaster
from harness import host_facts
from harness.catalog import Case, CaseContext
from harness.consequences import judged
from harness.errors import ConformanceError, ExpectationFailed, HarnessFault, ProtocolViolation, ScenarioError
from harness.launcher import WorkerProcess, describe_exit, render_command
from harness.oracles import (
    HARNESS_JITTER,
    NON_STRICT_GAP,
    Evidence,
    excused_windows,
    heartbeat_gaps,
    judge_run,
    overload_tolerance,
)
from harness.pace import Pace
from harness.protocol.messages import MessageType
from harness.protocol.profiles import DEFAULT_PROFILE, MasterProfile
from harness.protocol.timing import Timing
from harness.root_causes import root_causes
from harness.stacks import dump as dump_stacks
from harness.startup import StartupFailed
from harness.trace import Kind, TraceRecord, fault_windows, format_record, parse_window_note, window_note
from harness.verdicts import Finding, Verdict, rank, worst
from harness.worker_timing import timing_json, worker_timing

RESULTS_SCHEMA_VERSION = 5  # documented in docs/results-schema.md; harness/report/results.schema.json
DEFAULT_INTERVAL = 0.2
STACK_DUMP_TIMEOUT = 15.0
STOP_GRACE = 3.0  # seconds a worker gets to end on SIGTERM (at least two of its heartbeat intervals)


@dataclass
class RunConfig:
    """What a run judges and at which timing: the worker's own (measured pace, declared periods)."""

    worker: str  # 'reference', 'locust' or a command template
    label: str
    heartbeat_interval: float = DEFAULT_INTERVAL
    user_class: str = "ConformanceUser"
    declared: dict[str, float] = field(default_factory=dict)  # --worker-timing / worker profile periods (KEYS)
    pace: Pace | None = None  # how heartbeat_interval was settled (None: taken as given, not probed)
    max_case_seconds: float | None = None  # cases longer than this at the worker's timing are not run
    master_profile: MasterProfile = DEFAULT_PROFILE  # the Locust master release range the fake master behaves like

    @property
    def timing(self) -> Timing:
        """The worker's timing: Locust's proportions at its heartbeat interval, with its declared periods."""
        return worker_timing(self.heartbeat_interval, self.declared)


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
    budget_s: float = 0.0  # the most the case may take at the worker's timing
    harness_lag: dict[str, Any] = field(default_factory=dict)  # how late the fake master's own timers ran
    rerun: str = ""  # why this is a second attempt (the first one's harness was overloaded), if it is

    def to_json(self) -> dict[str, Any]:
        return {
            **self.case.to_json(),
            "budget_s": round(self.budget_s, 3),
            "harness_lag": self.harness_lag,
            "rerun": self.rerun,
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
        return str(max(bad, key=lambda f: rank(f.verdict))) if bad else "ok"


class QuietLock:
    """Cases that need a quiet machine (``Case.exclusive``: floods) run alone: beside no other case of any run in this
    process, however many catalogs run at once. Other cases share; a waiting exclusive case goes first. The thread
    that holds it alone may take it again (a case re-run alone runs inside)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._owner: int | None = None  # the thread holding it alone
        self._depth = 0
        self._waiting = 0

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:  # already alone: nested holds pass through
                self._depth += 1
                nested = True
            else:
                nested = False
                if exclusive:
                    self._waiting += 1
                    self._cond.wait_for(lambda: self._owner is None and self._shared == 0)
                    self._waiting -= 1
                    self._owner, self._depth = me, 1
                else:
                    self._cond.wait_for(lambda: self._owner is None and self._waiting == 0)
                    self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if nested or self._owner == me:
                    self._depth -= 1
                    if self._depth == 0:
                        self._owner = None
                else:
                    self._shared -= 1
                self._cond.notify_all()


QUIET = QuietLock()


def run_case(case: Case, config: RunConfig, folder: Path, report: Path | None = None) -> CaseResult:
    """Run one case against a fresh worker process; always returns a verdict.

    ``report``: the run's report folder, when ``folder`` is one of its case folders (sets ``CaseResult.dir``). A case
    that needs a quiet machine waits until no other case runs in this process (``QUIET``).
    """
    with QUIET.hold(case.exclusive):
        return _run_case(case, config, folder, report)


def _run_case(case: Case, config: RunConfig, folder: Path, report: Path | None) -> CaseResult:
    started = time.monotonic()
    timing = config.timing
    folder.mkdir(parents=True, exist_ok=True)
    findings: list[Finding] = []
    master = FakeMaster(timing=timing, profile=config.master_profile).start()
    if case.setup is not None:
        case.setup(master)  # before the worker exists
    command = ""
    ctx: CaseContext | None = None
    process: WorkerProcess | None = None
    try:
        command = render_command(config.worker, master.host, master.port, timing.heartbeat_interval)
        process = WorkerProcess(command, folder / "worker.log", clock=master.clock.now, on_line=master.output_line)
        process.start()
        ctx = CaseContext(master, process, timing, config.user_class)
        ctx.first_message()
        body_started = time.monotonic()
        try:
            case.body(ctx)
        finally:
            overrun = time.monotonic() - body_started - case.seconds(timing)
            if overrun > 0:
                master.note(f"case overran its budget of {case.seconds(timing):.1f} s by {overrun:.2f} s")
    except StartupFailed as exc:
        failure = exc.failure
        dump = _stack_dump(master, process, folder) if failure.verdict is Verdict.FAILED and process is not None else ""
        findings.append(judged(failure.rule, failure.expected, failure.observed + dump))
    except ExpectationFailed as exc:
        dump = _stack_dump(master, process, folder) if process is not None else ""
        findings.append(judged("progress", exc.expected, f"{exc.observed}{dump}", master.clock.now() - master.trace.t0))
    except ProtocolViolation as exc:
        findings.append(judged(exc.rule, exc.expected, exc.observed))
    except HarnessFault as exc:
        findings.append(judged("harness", "the harness to run the case", str(exc)))
    except ConformanceError as exc:  # ScenarioError: the case's own bug, the harness's (UNKNOWN, not SCENARIO-ERROR)
        findings.append(judged("harness.case", "a well-formed case", str(exc)))
    except Exception as exc:  # any other bug of ours: never a pass
        findings.append(judged("harness.crash", "the case to run", f"{exc!r}\n{traceback.format_exc()[-1500:]}"))
    end = master.clock.now()
    code = process.stop(grace=max(STOP_GRACE, 2 * timing.heartbeat_interval)) if process is not None else None
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
        output=process.lines() if process else [],
        exempt=[*excused_windows(master.trace.records()), *(ctx.exempt if ctx else [])],
        teardown_at=process.teardown_at if process else None,
        exited_at=process.exited_at if process else None,
        needed_sigkill=bool(process and process.needed_sigkill),
        output_not_judged=_not_judged(process),
        stalls=master.lag.over(overload_tolerance(timing)),
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
        case.seconds(timing),
        master.lag.to_json(master.trace.t0, overload_tolerance(timing)),
    )
    _write_case(master, result, folder)
    return result


def _stack_dump(master: FakeMaster, process: WorkerProcess, folder: Path) -> str:
    """A stack dump of a stuck worker (the case is over: a dump that ends the process is allowed), for the finding."""
    process.begin_teardown()  # whatever the worker prints from here on is the harness's doing
    master.fault_note(window_note("stack-dump", "start", "the harness asks the worker where it is stuck"))
    try:
        result = dump_stacks(process, folder / "stack.txt", final=True, note=master.note, timeout=STACK_DUMP_TIMEOUT)
        return f"; {result.summary()}"
    except Exception as exc:  # a failed dump must not hide the finding it was for
        return f"; no stack dump: it failed ({exc!r})"
    finally:
        master.fault_note(window_note("stack-dump", "end"))


def _not_judged(process: WorkerProcess | None) -> str:
    drain = process.drain if process is not None else None
    if drain is None or drain.kept_everything:
        return ""
    return (
        f"the worker printed {drain.total_lines} lines ({drain.total_bytes} bytes); {drain.lines_not_kept} lines after the "
        f"first {len(drain.head)} were neither kept nor judged (the last {drain.limits.tail_bytes} bytes were); "
        f"worker.log holds the first {drain.file_bytes} bytes"
    )


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


@dataclass(frozen=True)
class NotRun:
    """A selected case the run left out, and why (never counted as passed)."""

    case: Case
    reason: str
    estimated_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "category": self.case.category,
            "title": self.case.title,
            "reason": self.reason,
            "estimated_s": round(self.estimated_s, 1),
        }


@dataclass
class RunResult:
    config: RunConfig
    results: list[CaseResult] = field(default_factory=list)
    started_at: str = ""
    duration: float = 0.0
    not_run: list[NotRun] = field(default_factory=list)
    jobs: int = 1  # cases at once, at the end of the run

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for r in self.results if r.verdict is v) for v in Verdict}

    def to_json(self) -> dict[str, Any]:
        config = self.config
        cases = [r.to_json() for r in self.results]
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "run": {
                "label": config.label,
                "worker": config.worker,
                "heartbeat_interval": config.heartbeat_interval,
                "pace": config.pace.to_json() if config.pace is not None else None,
                "worker_timing": timing_json(config.timing),
                "declared_timing": dict(config.declared),
                "max_case_seconds": config.max_case_seconds,
                "master_profile": {
                    "name": config.master_profile.name,
                    "stands_for": config.master_profile.stands_for,
                    "knobs": config.master_profile.knobs(),
                },
                "jobs": self.jobs,
                "user_class": config.user_class,
                "started_at": self.started_at,
                "duration_s": round(self.duration, 3),
                "locust_version": _installed_version("locust"),
                **host_facts(),
            },
            "summary": self.counts(),
            "root_causes": root_causes(cases),
            "cases": cases,
            "not_run": [n.to_json() for n in self.not_run],
        }


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def plan(cases: list[Case], config: RunConfig, excluded: list[Case] | None = None) -> tuple[list[Case], list[NotRun]]:
    """The cases to run, and those left out: meaningless under ``config.master_profile`` (``Case.needs``), too long
    for ``config.max_case_seconds`` at the worker's timing, or ``excluded`` (not selected by --cases)."""
    timing = config.timing
    limit = config.max_case_seconds
    run: list[Case] = []
    left: list[NotRun] = []
    for case in cases:
        seconds = case.seconds(timing)
        why_not = case.not_applicable(config.master_profile)
        if why_not is not None:
            left.append(NotRun(case, why_not, seconds))
        elif limit is not None and seconds > limit:
            left.append(
                NotRun(case, f"would take up to {seconds:.0f} s at the worker's timing (--max-case-seconds {limit:g})", seconds)
            )
        else:
            run.append(case)
    left += [NotRun(c, "not selected (--cases)", c.seconds(timing)) for c in excluded or []]
    return run, left


AUTO = "auto"
Progress = Callable[[int, int, CaseResult, int], None]  # cases done, of how many, the one just done, how many running


def auto_jobs(timing: Timing, cpus: int | None = None) -> int:
    """How many cases at once ``--jobs auto`` starts with: a case mostly waits for heartbeats, so a slow pace allows
    many (8 at Locust's 1 s on 2 CPUs), a compressed one fewer (6 at 0.2 s: measured, the harness's own lag stays
    under its tolerance there); never fewer than 2 nor more than 12."""
    cpus = cpus or os.cpu_count() or 1
    return max(2, min(12, round(cpus * (3 + min(1.0, timing.heartbeat_interval)))))


def starting_jobs(jobs: int | str, timing: Timing) -> int:
    """The number of cases at once a run starts with: ``jobs`` itself, or ``auto_jobs`` for ``auto``."""
    return auto_jobs(timing) if jobs == AUTO else int(jobs)


T = TypeVar("T")


def side_by_side(
    items: list[T],
    run_one: Callable[[T, str], CaseResult],
    jobs: int | str,
    timing: Timing,
    case_of: Callable[[T], Case],
) -> int:
    """Run ``run_one(item, rerun_reason)`` for every item, up to ``jobs`` at once (``auto``: ``auto_jobs``), the
    longest case first; items whose case needs a quiet machine afterwards, alone. With ``auto``, an item whose harness
    was overloaded (harness.overloaded) halves the number at once and runs again, alone (one that already ran alone
    runs once more). With a number at once, an overloaded case stays UNKNOWN. Returns the final number."""
    adaptive = jobs == AUTO
    limit = starting_jobs(jobs, timing)
    if limit < 1:
        raise ScenarioError(f"jobs: expected at least 1 or 'auto', got {jobs}")

    def once_more_alone(item: T, first: CaseResult | None, why: str) -> None:
        """Run ``item`` again beside no other case if its first attempt's harness was overloaded (None: known)."""
        if first is None or (adaptive and overloaded(first)):
            with QUIET.hold(True):
                run_one(item, f"the first attempt's harness was overloaded{why}")

    if limit == 1:
        for item in items:
            once_more_alone(item, run_one(item, ""), " (cases at once: 1)")
        return limit
    again: list[T] = []
    pending = sorted((i for i in items if not case_of(i).exclusive), key=lambda i: -case_of(i).seconds(timing))
    with concurrent.futures.ThreadPoolExecutor(max_workers=limit, thread_name_prefix="case") as pool:
        busy: dict[concurrent.futures.Future[CaseResult], T] = {}
        while pending or busy:
            while pending and len(busy) < limit:
                item = pending.pop(0)
                busy[pool.submit(run_one, item, "")] = item
            done, _ = concurrent.futures.wait(busy, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                item = busy.pop(future)
                result = future.result()  # a bug of ours surfaces here, never lost (with a fixed number too)
                if adaptive and overloaded(result):
                    limit = max(1, limit // 2)
                    again.append(item)
    for item in again:
        once_more_alone(item, None, f" (cases at once now {limit})")
    for item in (i for i in items if case_of(i).exclusive):  # alone, and still late: the machine was busy; once more
        once_more_alone(item, run_one(item, ""), ", though the case ran alone")
    return limit


def run_catalog(
    cases: list[Case],
    config: RunConfig,
    report: Path,
    progress: Progress | None = None,
    excluded: list[Case] | None = None,
    jobs: int | str = 1,
) -> RunResult:
    """Run ``cases``, writing ``results.json`` and a folder per case under ``report``; results in catalog order.

    Cases longer than ``config.max_case_seconds`` and the ``excluded`` ones are listed as not run. With ``jobs`` > 1
    (or ``auto``), cases run side by side (``side_by_side``): each with its own fake master and worker process.
    """
    chosen, left = plan(cases, config, excluded)
    run = RunResult(config, started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), not_run=left)
    run.jobs = starting_jobs(jobs, config.timing)
    started = time.monotonic()
    order = {case.id: i for i, case in enumerate(chosen)}
    lock = threading.Lock()
    active = [0]
    _write_results(run, report)

    def one(case: Case, rerun: str) -> CaseResult:
        with lock:
            active[0] += 1
        try:
            result = run_case(case, config, report / "cases" / case.id.replace("/", "__"), report)
        finally:
            with lock:
                active[0] -= 1
        result.rerun = rerun
        with lock:
            run.results = [r for r in run.results if r.case.id != case.id] + [result]
            run.results.sort(key=lambda r: order[r.case.id])
            run.duration = time.monotonic() - started
            if progress is not None:
                progress(len(run.results), len(chosen), result, active[0])
            _write_results(run, report)
        return result

    run.jobs = side_by_side(chosen, one, jobs, config.timing, lambda case: case)
    _write_results(run, report)
    return run


def overloaded(result: CaseResult) -> bool:
    """True if the harness itself ran too late during the case to judge it (harness.overloaded)."""
    return any(f.oracle == "harness.overloaded" for f in result.findings)


def _write_results(run: RunResult, report: Path) -> None:
    (report / "results.json").write_text(json.dumps(run.to_json(), indent=2) + "\n", "utf-8")


def write_not_run(cases: list[Case], config: RunConfig, report: Path, reason: str) -> RunResult:
    """A run in which nothing could be judged: ``results.json`` lists every case as not run, with ``reason``."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    run = RunResult(config, started_at=now, not_run=[NotRun(c, reason, c.seconds(config.timing)) for c in cases])
    _write_results(run, report)
    return run
