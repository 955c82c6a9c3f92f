"""What standalone regression repro scripts share: run one scenario against any worker, print one screen.

A repro script (see ``repro/``) is a small file holding a scenario, written in
plain ``FakeMaster`` calls, and an ``explain`` function that turns what was
recorded into a verdict with its evidence. ``main`` does the rest: the command
line (``--worker CMD``, ``--heartbeat-interval``, ``--attempts``, ``--out``), a
fake master on a free port, the worker in its own process group with its output
in a file, always reaped, the catalog's oracles over the trace, and a report
that fits on one screen.

Exit codes: 0 not reproduced (the worker passes), 1 reproduced, 2 could not be
judged (the worker did not start, or the harness failed: never a pass), 3 usage.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fakemaster.master import FakeMaster
from fakemaster.script import first_message_or_exit
from harness.errors import ConformanceError, HarnessFault, ProtocolViolation
from harness.launcher import BUILTIN_WORKERS, WorkerProcess, describe_exit, render_command
from harness.oracles import HARNESS_JITTER, NON_STRICT_GAP, Evidence, excused_windows, heartbeats_due_from, judge_run
from harness.pace import parse_interval, resolve
from harness.startup import StartupFailed
from harness.protocol.profiles import DEFAULT_PROFILE, PROFILES, MasterProfile, UnknownProfile
from harness.protocol.profiles import master_profile as master_profile_named
from harness.protocol.master import master_can_read_heartbeat
from harness.protocol.messages import MessageType
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.trace import Kind, TraceRecord, format_record
from harness.verdicts import Finding, Verdict

EXIT_PASSES, EXIT_REPRODUCED, EXIT_UNKNOWN, EXIT_USAGE = 0, 1, 2, 3
STARTUP_TIMEOUT = 20.0


@dataclass
class Outcome:
    """A repro's conclusion: reproduced or not, the one-line headline and the facts behind it."""

    reproduced: bool
    headline: str
    evidence: list[str] = field(default_factory=list)
    at: float | None = None  # the moment that matters (seconds since the master started), for the wire excerpt


@dataclass
class Recording:
    """What one attempt recorded: the trace, the timing in force and the worker process's fate."""

    master: FakeMaster
    process: WorkerProcess
    timing: Timing
    exit_code: int | None = None
    findings: list[Finding] = field(default_factory=list)
    failure: str | None = None  # an expectation of the scenario the worker did not meet: "expected ...; observed ..."

    @property
    def records(self) -> list[TraceRecord]:
        return self.master.trace.records()

    def rel(self, t: float) -> float:
        """Seconds since the master started."""
        return t - self.master.trace.t0

    def heartbeats(self) -> list[float]:
        """When each heartbeat the real master could read arrived, after the ack (seconds since start)."""
        due = heartbeats_due_from(self.records)
        if due is None:
            return []
        return [
            self.rel(r.t)
            for r in self.records
            if r.kind is Kind.RECV
            and r.type == MessageType.HEARTBEAT
            and r.t >= due
            and r.message is not None
            and master_can_read_heartbeat(r.message.data)
        ]

    def acked_at(self) -> float | None:
        acks = [r.t for r in self.records if r.kind is Kind.SEND and r.type == MessageType.ACK]
        return self.rel(acks[0]) if acks else None

    def gaps(self, until: float | None = None) -> list[tuple[float, float]]:
        """``(start, length)`` of every silence between heartbeats, from the ack to ``until`` (default: the last record)."""
        start = self.acked_at()
        if start is None:
            return []
        end = until if until is not None else self.rel(self.records[-1].t)
        points = [start, *[b for b in self.heartbeats() if b <= end], end]
        return [(a, b - a) for a, b in zip(points, points[1:], strict=False) if b > a]

    def missing_at(self) -> list[float]:
        """When the fake master, replaying the real master's rule, marked the worker missing."""
        return [self.rel(r.t) for r in self.records if r.kind is Kind.LIVENESS and r.note == "missing"]

    def master_silent_for(self, at: float) -> tuple[float, str]:
        """How long before ``at`` the master last sent the worker anything, and what it was."""
        sends = [r for r in self.records if r.kind is Kind.SEND and self.rel(r.t) <= at]
        if not sends:
            return at, "nothing since it started"
        last = sends[-1]
        return at - self.rel(last.t), f"{last.type or 'raw frames'} at t={self.rel(last.t):.3f}s"

    def excerpt(self, around: float, lines: int = 8) -> list[str]:
        """The wire just before ``around`` (and one record after), one line each; a run of alike records is one line."""
        runs: list[tuple[TraceRecord, int, float]] = []  # first record, how many alike, time of the last
        for record in self.records:
            if runs and _alike(runs[-1][0], record):
                first, count, _ = runs[-1]
                runs[-1] = (first, count + 1, record.t)
            else:
                runs.append((record, 1, record.t))
        before = [run for run in runs if self.rel(run[0].t) <= around][-(lines - 1) :]
        after = [run for run in runs if self.rel(run[0].t) > around][:1]
        out = []
        for first, count, last in [*before, *after]:
            line = format_record(first, self.master.trace.t0, width=110)
            out.append(line if count == 1 else f"{line}  (x{count} until t={self.rel(last):.3f}s)")
        return out

    def non_ok(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict is not Verdict.OK]


def _alike(a: TraceRecord, b: TraceRecord) -> bool:
    return a.kind is b.kind and a.kind in (Kind.SEND, Kind.SEND_FAILED, Kind.RECV) and a.type == b.type


def judge_recording(recording: Recording, end: float, process: WorkerProcess) -> list[Finding]:
    """The catalog runner's judgement (``oracles.judge_run``) of what one attempt recorded."""
    timing = recording.timing
    evidence = Evidence(
        recording.records,
        recording.master.trace.t0,
        timing,
        end,
        exit_code=recording.exit_code,
        killed_by_harness=process.killed_by_harness,
        output=process.lines(),
        exempt=excused_windows(recording.records),
        teardown_at=process.teardown_at,
        exited_at=process.exited_at,
        needed_sigkill=process.needed_sigkill,
    )
    return judge_run(evidence)


Drive = Callable[[FakeMaster, WorkerProcess, Timing], None]
Explain = Callable[[Recording], Outcome]


def heartbeat_limits(timing: Timing) -> str:
    """The thresholds a reader needs to weigh a heartbeat gap."""
    return (
        f"heartbeat interval {timing.heartbeat_interval:g} s; late above {NON_STRICT_GAP * timing.heartbeat_interval:g} s "
        f"(+{HARNESS_JITTER:g} s harness jitter); "
        f"the real master marks a worker missing after {timing.missing_after_min:g}-{timing.missing_after_max:g} s "
        "without heartbeats"
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(
    title: str, description: str, default_interval: float, attempts: int, master_profile: str = DEFAULT_PROFILE.name
) -> argparse.ArgumentParser:
    parser = _Parser(
        description=f"{title}\n\n{description}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 not reproduced (the worker passes), 1 reproduced, 2 could not judge (never a pass), 3 usage",
    )
    parser.add_argument(
        "--worker",
        required=True,
        help=f"'{' or '.join(BUILTIN_WORKERS)}' or a shell command template with {{host}} {{port}} "
        "(and optionally {heartbeat_interval}, {python}); e.g. "
        "'{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --defect lock-across-recv'",
    )
    parser.add_argument(
        "--heartbeat-interval",
        default=None,
        help=f"seconds or 'auto' (adopt the worker's own pace, measured first). Default: {default_interval:g} s for a "
        "worker command with {heartbeat_interval} (time compression), auto for one without (a worker at its own pace)",
    )
    parser.add_argument("--attempts", type=int, default=attempts, help=f"tries before 'not reproduced' (default {attempts})")
    parser.add_argument("--out", type=Path, default=None, help="keep the trace and the worker's log here")
    parser.add_argument(
        "--master-profile",
        default=master_profile,
        help=f"the Locust master release range the fake master behaves like: {', '.join(PROFILES)} (default {master_profile})",
    )
    return parser


def main(
    drive: Drive,
    explain: Explain,
    *,
    title: str,
    description: str,
    default_interval: float = 0.25,
    attempts: int = 1,
    master_profile: str = DEFAULT_PROFILE.name,
    argv: Sequence[str] | None = None,
) -> int:
    """Run a repro script from the command line; returns the exit code."""
    parser = build_parser(title, description, default_interval, attempts, master_profile)
    args = parser.parse_args(argv)
    if args.attempts < 1:
        parser.error("--attempts must be at least 1")
    try:
        requested = parse_interval(args.heartbeat_interval)
        render_command(args.worker, "127.0.0.1", 1, 1.0)
        profile = master_profile_named(args.master_profile)
    except (ConformanceError, UnknownProfile) as exc:
        parser.error(str(exc))
    print(title)
    print(f"worker: {args.worker}")
    keep = args.out
    with tempfile.TemporaryDirectory(prefix="lc-repro-") as scratch:
        try:
            pace = resolve(args.worker, requested, default_interval, (keep or Path(scratch)) / "pace-probe")
        except StartupFailed as exc:
            failure = exc.failure
            print(
                f"\nCOULD NOT JUDGE: the worker never registered ({failure.verdict.value} [{failure.rule}]): {failure.observed}"
            )
            return EXIT_UNKNOWN
        except ConformanceError as exc:
            parser.error(str(exc))
        timing = LOCUST_TIMING.compressed(pace.interval)
        print(f"pace: {pace.describe()}")
        print(heartbeat_limits(timing))
        for attempt in range(1, args.attempts + 1):
            folder = (keep or Path(scratch)) / (f"attempt-{attempt}" if args.attempts > 1 else "")
            code, lines = _attempt(drive, explain, args.worker, timing, folder, profile)
            label = f" (attempt {attempt} of {args.attempts})" if args.attempts > 1 else ""
            if code != EXIT_PASSES or attempt == args.attempts:
                print(f"\n{lines[0]}{label}")
                print("\n".join(lines[1:]))
                if keep is not None:
                    print(f"trace and worker log: {folder}")
                else:
                    print("(--out DIR keeps the trace and the worker's log)")
                return code
            print(f"attempt {attempt}: not reproduced ({lines[0]})", flush=True)
            if keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    return EXIT_UNKNOWN  # unreachable: the loop always returns


def _attempt(
    drive: Drive, explain: Explain, worker: str, timing: Timing, folder: Path, profile: MasterProfile = DEFAULT_PROFILE
) -> tuple[int, list[str]]:
    """One run of the scenario; returns the exit code and the report's lines (headline first).

    Whatever goes wrong on our side (the master cannot bind, the process cannot be stopped, a bug in the
    scenario or in ``explain``) is COULD NOT JUDGE, exit 2: never "reproduced", never "passes".
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with FakeMaster(timing=timing, profile=profile) as master:
            command = render_command(worker, master.host, master.port, timing.heartbeat_interval)
            process = WorkerProcess(command, folder / "worker.log", clock=master.clock.now, on_line=master.output_line)
            with process:
                recording = Recording(master, process, timing)
                if first_message_or_exit(master, process, STARTUP_TIMEOUT) is None:
                    ended = process.poll()
                    code = process.stop()
                    tail = process.output(tail_lines=10) or "(no output)"
                    why = f"it ended ({describe_exit(code)})" if ended is not None else f"nothing within {STARTUP_TIMEOUT:g} s"
                    return EXIT_UNKNOWN, [
                        f"COULD NOT JUDGE: the worker never sent a message: {why}",
                        textwrap.indent(tail, "  | "),
                    ]
                try:
                    drive(master, process, timing)
                except ProtocolViolation as exc:  # the worker's fault: evidence, judged below
                    recording.failure = f"expected {exc.expected}; observed {exc.observed}"
                    master.note(f"repro: {recording.failure}")
                end = master.clock.now()
                recording.exit_code = process.stop()
            master.trace.save(folder / "trace.jsonl")
            recording.findings = judge_recording(recording, end, process)
            outcome = explain(recording)
    except HarnessFault as exc:
        return EXIT_UNKNOWN, [f"COULD NOT JUDGE: the harness failed: {exc}"]
    except Exception as exc:  # a bug in the scenario, in explain or in the harness: never a verdict
        return EXIT_UNKNOWN, [f"COULD NOT JUDGE: the repro crashed: {exc!r}", traceback.format_exc(limit=3)]
    lines = [f"{'REPRODUCED' if outcome.reproduced else 'NOT REPRODUCED'}: {outcome.headline}"]
    lines += [f"  - {e}" for e in outcome.evidence]
    bad = recording.non_ok()
    if bad:
        lines.append("the catalog's oracles:")
        lines += ["  " + textwrap.shorten(str(f), 200, placeholder=" ...") for f in bad[:4]]
    if outcome.at is not None:
        lines.append(f"the wire up to t={outcome.at:.3f}s:")
        lines += [f"  {line}" for line in recording.excerpt(outcome.at)]
    lines.append(f"worker: {describe_exit(recording.exit_code)}")
    return (EXIT_REPRODUCED if outcome.reproduced else EXIT_PASSES), lines
