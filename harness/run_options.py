"""What the commands that run a worker share: the worker and its declared timing (``--worker``, ``--worker-profile``,
``--worker-timing``), the pace probe, the master profile, the report folder, and running one script against the
worker with its verdict's exit code (``run --script`` and ``replay``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fakemaster.script import Script
from harness.errors import ScenarioError
from harness.launcher import BUILTIN_WORKERS, render_command
from harness.locust_release import is_release
from harness.pace import Pace, parse_interval, resolve
from harness.protocol.profiles import PROFILES, MasterProfile, UnknownProfile, profiles_named
from harness.report.model import folder_name
from harness.scenario import new_report_dir, run_scenario
from harness.startup import StartupFailed, StartupFailure
from harness.verdicts import Verdict
from harness.worker_timing import load_worker_profile, parse_worker_timing

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN, EXIT_USAGE = 0, 1, 2, 3
# A script's exit code by its verdict: every verdict has one, so none can slip through as a pass by omission.
SCENARIO_EXIT = {
    Verdict.OK: EXIT_OK,
    Verdict.INFORMATIONAL: EXIT_OK,
    Verdict.NON_STRICT: EXIT_OK,
    Verdict.UNIMPLEMENTED: EXIT_OK,
    Verdict.SCENARIO_ERROR: EXIT_USAGE,
    Verdict.UNKNOWN: EXIT_UNKNOWN,
    Verdict.FAILED: EXIT_FAILED,
}


def profiles(args: argparse.Namespace, many: bool = False) -> list[MasterProfile]:
    """The profiles --master-profile names; an unknown one, or several where one is allowed, is a usage error."""
    try:
        chosen = profiles_named(args.master_profile)
    except UnknownProfile as exc:
        raise ScenarioError(str(exc)) from None
    if not chosen:
        raise ScenarioError(f"--master-profile: expected a profile name, got {args.master_profile!r}")
    if len(chosen) > 1 and not many:
        raise ScenarioError(f"--master-profile: one profile here, got {args.master_profile!r} (known: {', '.join(PROFILES)})")
    return chosen


def resolve_worker(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """The worker command and its declared periods, from --worker-profile, --worker and --worker-timing."""
    declared: dict[str, float] = {}
    if args.worker_profile is not None:
        profile = load_worker_profile(args.worker_profile)
        declared.update(profile.timing or {})
        if args.worker is None:
            args.worker = profile.worker
        if profile.name and getattr(args, "name", None) is None:
            args.name = profile.name
    if args.worker is None:
        args.worker = "reference"
    if args.worker_timing:
        declared.update(parse_worker_timing(args.worker_timing))
    render_command(args.worker, "127.0.0.1", 1, 1.0)  # a bad template is a usage error before anything starts
    return args.worker, declared


def resolve_pace(args: argparse.Namespace, declared: dict[str, float], default: float, folder: Path) -> Pace:
    """Probe the worker and settle the run's interval (see harness.pace); prints what was decided."""
    requested = parse_interval(args.heartbeat_interval)
    if requested is None and "heartbeat" in declared:
        requested = declared["heartbeat"]
    print(f"pace probe: starting the worker once to measure its heartbeat cadence (evidence in {folder})", flush=True)
    pace = resolve(args.worker, requested, default, folder)
    print(f"pace: {pace.describe()}", flush=True)
    return pace


def report_folder(args: argparse.Namespace, label: str) -> Path:
    """``--report``, else a new folder under reports/ named after the run."""
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        return Path(args.report)
    return new_report_dir(Path("reports"), folder_name(label))


def label(args: argparse.Namespace) -> str:
    """The worker's name in reports: --name, else the built-in worker or release, else "custom"."""
    return str(args.name or (args.worker if args.worker in BUILTIN_WORKERS or is_release(args.worker) else "custom"))


def startup_failed(failure: StartupFailure, folder: Path, what: str = "no case was run") -> int:
    """The worker never registered in the pace probe: nothing can be judged; say exactly why."""
    print(f"{failure.verdict.value} [{failure.rule}]: expected {failure.expected}; observed {failure.observed}", file=sys.stderr)
    print(f"{what}; the probe's trace and the worker's log: {folder / 'pace-probe'}", file=sys.stderr)
    return EXIT_FAILED if failure.verdict is Verdict.FAILED else EXIT_UNKNOWN


def run_script_command(
    args: argparse.Namespace,
    script: Script,
    declared: dict[str, float],
    profile: MasterProfile,
    folder: Path,
    verb: str = "running",
) -> int:
    """Probe the worker's pace, run ``script`` against it, print the outcome; the exit code of its verdict."""
    try:
        pace = resolve_pace(args, declared, script.heartbeat_interval, folder / "pace-probe")
    except StartupFailed as exc:
        return startup_failed(exc.failure, folder, f"nothing was {'replayed' if verb == 'replaying' else 'run'}")
    print(f"{verb} {script.name} ({len(script.steps)} steps) against {label(args)!r}; report in {folder}", flush=True)
    outcome = run_scenario(args.worker, script, folder, heartbeat_interval=pace.interval, profile=profile)
    print(f"{outcome.verdict.value}: {outcome.reason}")
    gap = outcome.max_heartbeat_gap
    print(
        f"steps {outcome.steps_run}/{outcome.steps_total}, {outcome.duration:.1f} s, "
        f"worker {outcome.to_json()['worker_exit_text']}, "
        f"max heartbeat gap {'n/a' if gap is None else f'{gap:.3f} s'}, violations {len(outcome.violations)}"
    )
    print(f"trace: {folder / 'trace.txt'}")
    return SCENARIO_EXIT[outcome.verdict]
