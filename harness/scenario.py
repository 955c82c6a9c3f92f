"""Running one script against one worker process, and writing what happened to a report folder.

A script run ends as a catalog case does: with findings graded by the consequence table (``harness.consequences``)
and merged by ``worst``. Whose fault a failure is: ``FAILED`` (the worker missed one of the script's expectations,
or broke the protocol: an error in the trace is FAILED whatever else happened), ``UNKNOWN`` (the harness or the launch
failed, so nothing can be said about the worker; never a pass), ``SCENARIO-ERROR`` (the script itself asked for
something impossible).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakemaster.master import FakeMaster
from fakemaster.script import Script, first_message_or_exit, run_script
from harness.consequences import judged
from harness.errors import ConformanceError, ProtocolViolation, ScenarioError
from harness.launcher import WorkerProcess, describe_exit, render_command
from harness.protocol.profiles import DEFAULT_PROFILE, MasterProfile
from harness.protocol.findings import Violation
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, TraceRecord, format_record
from harness.verdicts import Finding, Verdict, worst

STARTUP_TIMEOUT = 15.0  # Locust's own worker needs ~0.3 s warm, several seconds on a cold cache
FRAME_FAMILIES = ("codec", "framing", "envelope")  # trace violations graded by their own rule; the rest as schema.*


@dataclass
class ScenarioOutcome:
    """What a script run found: its verdict is the worst finding's (OK with none, as a catalog case's)."""

    report_dir: Path
    findings: list[Finding] = field(default_factory=list)
    command: str = ""
    worker_exit: int | None = None
    steps_run: int = 0
    steps_total: int = 0
    duration: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)  # every one in the trace, deviations included
    max_heartbeat_gap: float | None = None

    @property
    def verdict(self) -> Verdict:
        return worst(f.verdict for f in self.findings)

    @property
    def reason(self) -> str:
        return summarize(self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "command": self.command,
            "worker_exit": self.worker_exit,
            "worker_exit_text": describe_exit(self.worker_exit),
            "steps_run": self.steps_run,
            "steps_total": self.steps_total,
            "duration_s": round(self.duration, 3),
            "max_heartbeat_gap_s": None if self.max_heartbeat_gap is None else round(self.max_heartbeat_gap, 4),
            "violations": self.violations,
            "findings": [f.to_json() for f in self.findings],
        }


def new_report_dir(root: Path, label: str) -> Path:
    """``root/<UTC time>-<label>/``, with ``root/latest`` pointing at it."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = root / f"{stamp}-{label}"
    folder.mkdir(parents=True, exist_ok=False)
    latest = root / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(folder.name)
    except OSError:
        pass  # a missing 'latest' link is cosmetic
    return folder


def run_scenario(
    worker: str,
    script: Script,
    report_dir: Path,
    *,
    heartbeat_interval: float | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    profile: MasterProfile = DEFAULT_PROFILE,
) -> ScenarioOutcome:
    """Start a fake master (behaving like ``profile``'s releases) and the worker command, run ``script``, and write the
    evidence to ``report_dir``."""
    interval = heartbeat_interval or script.heartbeat_interval
    started = time.monotonic()
    outcome = ScenarioOutcome(report_dir, steps_total=len(script.steps))
    master = FakeMaster(timing=LOCUST_TIMING.compressed(interval), profile=profile).start()
    judged_run = False
    try:
        outcome.command = render_command(worker, master.host, master.port, interval)
        with WorkerProcess(outcome.command, report_dir / "worker.log") as process:
            if first_message_or_exit(master, process, startup_timeout) is None:
                outcome.findings.append(_silent_start(process, startup_timeout))
            else:
                result = run_script(master, script, process)
                outcome.steps_run = result.steps_run
                at = master.clock.now() - master.trace.t0
                outcome.findings += judge_script(result.error, result.failed_step, process.poll(), at)
            outcome.worker_exit = process.stop()
        judged_run = True
    except ConformanceError as exc:  # outside the steps: a worker command the harness cannot run, a harness fault
        outcome.findings += judge_script(exc, None)
        judged_run = True
    finally:
        master.close()
        outcome.duration = time.monotonic() - started
        if not judged_run:  # an unexpected error of ours is on its way up: never a pass
            outcome.findings.append(judged("harness", "the script to run to its end", "interrupted by a harness error"))
        records = master.trace.records()
        outcome.findings += trace_findings(records, master.trace.t0)
        _collect_violations(records, master.trace.t0, outcome)
        _write(master, outcome)
    return outcome


def judge_script(
    error: ConformanceError | None, step: object, exit_code: int | None = None, at: float | None = None
) -> list[Finding]:
    """The finding of the error that stopped a script (none if every step passed): whose fault it was."""
    if error is None:
        return []
    where = "" if step is None else f"at {step}: "
    if isinstance(error, ProtocolViolation):
        died = f" (the worker process had ended: {describe_exit(exit_code)})" if exit_code is not None else ""
        return [judged(error.rule, error.expected, f"{where}{error.observed}{died}", at, rule="script.expectation")]
    if isinstance(error, ScenarioError):
        return [judged("script", "a script the harness can run", f"{where}{error}", at)]
    return [judged("harness", "the harness to run the script", f"{where}harness failure: {error}", at)]


def trace_findings(records: Iterable[TraceRecord], t0: float) -> list[Finding]:
    """A finding per error the fake master recorded in the trace (FAILED, whatever the script did): one per rule and
    expectation, at its first message, named as the catalog's oracles name it (deviations are not judged here)."""
    groups: dict[tuple[str, str], list[tuple[float, Violation]]] = {}
    for record in records:
        for v in record.violations:
            if v.severity == Severity.ERROR:
                family = v.rule.split(".")[0]
                oracle = v.rule if family in FRAME_FAMILIES else f"schema.{v.rule.removeprefix('schema.')}"
                groups.setdefault((oracle, v.expected), []).append((record.t - t0, v))
    findings = []
    for (oracle, expected), hits in groups.items():
        at, first = hits[0]
        count = f" ({len(hits)} messages, the first shown)" if len(hits) > 1 else ""
        findings.append(judged(oracle, expected, first.observed + count, at))
    return findings


def summarize(findings: list[Finding]) -> str:
    """One line for the reader: the first of the worst findings, without its verdict, and how many share it."""
    verdict = worst(f.verdict for f in findings)
    top = [f for f in findings if f.verdict is verdict]
    if not top:
        return "every step passed"
    more = f" (and {len(top) - 1} more {verdict.value} findings)" if len(top) > 1 else ""
    return str(top[0]).removeprefix(f"{verdict.value} ") + more


def _silent_start(process: WorkerProcess, within: float) -> Finding:
    """No first message: the command ended (nothing could be judged) or the worker is up and silent (FAILED)."""
    code = process.poll()
    tail = process.output(tail_lines=15) or "(no output)"
    if code is not None:
        observed = f"the worker command ended ({describe_exit(code)}) before sending anything; its output:\n{tail}"
        return judged("launch", "the worker command to start and send a first message", observed)
    return judged("startup", f"a first message within {within:g} s of starting", f"nothing; its output:\n{tail}")


def _collect_violations(records: list[TraceRecord], t0: float, outcome: ScenarioOutcome) -> None:
    beats = [r.t for r in records if r.kind is Kind.RECV and r.type == "heartbeat"]
    outcome.max_heartbeat_gap = max((b - a for a, b in zip(beats, beats[1:], strict=False)), default=None)
    for record in records:
        for v in record.violations:
            outcome.violations.append({"seq": record.seq, "t": round(record.t - t0, 6), **v.to_dict()})


def _write(master: FakeMaster, outcome: ScenarioOutcome) -> None:
    folder = outcome.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    master.trace.save(folder / "trace.jsonl")
    lines = [format_record(r, master.trace.t0, width=400) for r in master.trace.records()]
    (folder / "trace.txt").write_text("\n".join(lines) + "\n", "utf-8")
    (folder / "summary.json").write_text(json.dumps(outcome.to_json(), indent=2) + "\n", "utf-8")
