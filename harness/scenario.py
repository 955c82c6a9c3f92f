"""Running one script against one worker process, and writing what happened to a report folder.

The verdict says whose fault a failure is: ``FAILED`` (the worker broke the
protocol or missed an expectation), ``UNKNOWN`` (the harness or the launch
failed, so nothing can be said about the worker; never a pass), ``SCENARIO``
(the script itself is wrong).
"""

from __future__ import annotations

import datetime
import enum
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakemaster.master import FakeMaster
from fakemaster.script import Script, first_message_or_exit, run_script
from harness.errors import ConformanceError, HarnessFault, ProtocolViolation, ScenarioError
from harness.launcher import WorkerProcess, describe_exit, render_command
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, format_record

STARTUP_TIMEOUT = 15.0  # Locust's own worker needs ~0.3 s warm, several seconds on a cold cache


class Verdict(enum.StrEnum):
    OK = "OK"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    SCENARIO = "SCENARIO-ERROR"


@dataclass
class ScenarioOutcome:
    verdict: Verdict
    reason: str
    report_dir: Path
    command: str = ""
    worker_exit: int | None = None
    steps_run: int = 0
    steps_total: int = 0
    duration: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)
    max_heartbeat_gap: float | None = None

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
) -> ScenarioOutcome:
    """Start a fake master and the worker command, run ``script``, and write the evidence to ``report_dir``."""
    interval = heartbeat_interval or script.heartbeat_interval
    started = time.monotonic()
    outcome = ScenarioOutcome(Verdict.UNKNOWN, "not run", report_dir, steps_total=len(script.steps))
    master = FakeMaster(timing=LOCUST_TIMING.compressed(interval)).start()
    try:
        outcome.command = render_command(worker, master.host, master.port, interval)
        with WorkerProcess(outcome.command, report_dir / "worker.log") as process:
            if first_message_or_exit(master, process, startup_timeout) is None:
                code = process.poll()
                tail = process.output(tail_lines=15) or "(no output)"
                if code is not None:
                    outcome.reason = (
                        f"the worker command ended ({describe_exit(code)}) before sending anything; its output:\n{tail}"
                    )
                else:
                    outcome.verdict = Verdict.FAILED
                    outcome.reason = f"the worker sent nothing within {startup_timeout:g} s of starting; its output:\n{tail}"
            else:
                result = run_script(master, script, process)
                outcome.steps_run = result.steps_run
                outcome.verdict, outcome.reason = judge_script(result.error, result.failed_step, process.poll())
            outcome.worker_exit = process.stop()
    except ScenarioError as exc:
        outcome.verdict, outcome.reason = Verdict.SCENARIO, str(exc)
    except HarnessFault as exc:
        outcome.verdict, outcome.reason = Verdict.UNKNOWN, f"harness failure: {exc}"
    finally:
        master.close()
        outcome.duration = time.monotonic() - started
        _collect_violations(master, outcome)
        _write(master, outcome)
    return outcome


def judge_script(error: ConformanceError | None, step: object, exit_code: int | None = None) -> tuple[Verdict, str]:
    """The verdict of a script run from the error that stopped it: whose fault it was, and why."""
    died = f" (the worker process had ended: {describe_exit(exit_code)})" if exit_code is not None else ""
    if error is None:
        return Verdict.OK, "every step passed"
    if isinstance(error, ProtocolViolation):
        return Verdict.FAILED, f"{step}: {error}{died}"
    if isinstance(error, ScenarioError):
        return Verdict.SCENARIO, f"{step}: {error}"
    return Verdict.UNKNOWN, f"harness failure at {step}: {error}"


def _collect_violations(master: FakeMaster, outcome: ScenarioOutcome) -> None:
    beats = [r.t for r in master.trace.records() if r.kind is Kind.RECV and r.type == "heartbeat"]
    outcome.max_heartbeat_gap = max((b - a for a, b in zip(beats, beats[1:], strict=False)), default=None)
    for record in master.trace.records():
        for v in record.violations:
            outcome.violations.append({"seq": record.seq, "t": round(record.t - master.trace.t0, 6), **v.to_dict()})
    errors = [v for v in outcome.violations if v["severity"] == Severity.ERROR.value]
    if errors and outcome.verdict is Verdict.OK:
        first = errors[0]
        outcome.verdict = Verdict.FAILED
        outcome.reason = (
            f"{len(errors)} protocol violation(s); first at t={first['t']:.3f}: "
            f"[{first['rule']}] expected {first['expected']}; observed {first['observed']}"
        )


def _write(master: FakeMaster, outcome: ScenarioOutcome) -> None:
    folder = outcome.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    master.trace.save(folder / "trace.jsonl")
    lines = [format_record(r, master.trace.t0, width=400) for r in master.trace.records()]
    (folder / "trace.txt").write_text("\n".join(lines) + "\n", "utf-8")
    (folder / "summary.json").write_text(json.dumps(outcome.to_json(), indent=2) + "\n", "utf-8")
