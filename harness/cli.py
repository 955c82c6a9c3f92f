"""``locust-conformance``: the command line.

Exit codes: 0 no case FAILED or UNKNOWN; 1 a case FAILED; 2 a case was UNKNOWN
(the harness or the worker launch failed, so it could not be judged); 3 usage or
script error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fakemaster.master import FakeMaster
from fakemaster.script import load_script, run_script
from harness.catalog import select
from harness.errors import ProtocolViolation, ScenarioError
from harness.launcher import BUILTIN_WORKERS, render_command
from harness.protocol.timing import LOCUST_TIMING
from harness.runner import DEFAULT_INTERVAL, CaseResult, RunConfig, run_catalog
from harness.scenario import Verdict as ScenarioVerdict
from harness.scenario import new_report_dir, run_scenario
from harness.trace import format_record
from harness.verdicts import Verdict

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN, EXIT_USAGE = 0, 1, 2, 3
SCENARIO_EXIT = {
    ScenarioVerdict.OK: EXIT_OK,
    ScenarioVerdict.FAILED: EXIT_FAILED,
    ScenarioVerdict.UNKNOWN: EXIT_UNKNOWN,
    ScenarioVerdict.SCENARIO: EXIT_USAGE,
}

EPILOG = """exit codes:
  0  no case FAILED or UNKNOWN (OK, NON-STRICT, INFORMATIONAL and UNIMPLEMENTED all exit 0)
  1  at least one case FAILED: the worker broke the protocol
  2  at least one case was UNKNOWN (and none FAILED): the harness could not judge it - never a pass
  3  usage or script error"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="locust-conformance",
        description="Conformance harness and fake master for Locust's distributed mode.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = sub.add_parser("list", help="list the catalog's cases", epilog=EPILOG, formatter_class=fmt)
    listing.add_argument("--json", action="store_true", help="one JSON document with every case")
    listing.add_argument("--cases", default=None, help="comma-separated globs over case ids or category names")

    run = sub.add_parser(
        "run", help="run the catalog (or one script) against a worker, writing a report", epilog=EPILOG, formatter_class=fmt
    )
    run.add_argument(
        "--worker",
        default="reference",
        help=f"'{' or '.join(BUILTIN_WORKERS)}', or a shell command template with {{host}} {{port}} "
        "and optionally {heartbeat_interval}; started afresh for every case",
    )
    run.add_argument("--name", default=None, help="label of this implementation in the report (default: from --worker)")
    run.add_argument("--cases", default=None, help="comma-separated globs over case ids or categories, e.g. 'spawn,storms/01*'")
    run.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<UTC time>-<label>/)")
    run.add_argument(
        "--heartbeat-interval",
        type=float,
        default=None,
        help=f"time compression: the heartbeat interval in seconds (default {DEFAULT_INTERVAL}); "
        "every other Locust interval scales with it",
    )
    run.add_argument("--user-class", default="ConformanceUser", help="the user class name spawns ask for")
    run.add_argument("--script", type=Path, default=None, help="run this script (JSON or TOML) instead of the catalog")

    master = sub.add_parser(
        "master", help="run a script as a fake master against a worker started separately", epilog=EPILOG, formatter_class=fmt
    )
    master.add_argument("--script", type=Path, required=True)
    master.add_argument("--host", default="127.0.0.1")
    master.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    master.add_argument("--heartbeat-interval", type=float, default=None)
    master.add_argument("--trace-out", type=Path, default=None, help="also write the trace as JSON lines")
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    cases = select(args.cases)
    if args.json:
        print(json.dumps([c.to_json() for c in cases], indent=2))
        return EXIT_OK
    for c in cases:
        print(f"{c.id:<44} {c.title}")
    print(f"{len(cases)} cases")
    return EXIT_OK


def _report_folder(args: argparse.Namespace, label: str) -> Path:
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        return Path(args.report)
    return new_report_dir(Path("reports"), label)


def _label(args: argparse.Namespace) -> str:
    return str(args.name or (args.worker if args.worker in BUILTIN_WORKERS else "custom"))


def cmd_run(args: argparse.Namespace) -> int:
    render_command(args.worker, "127.0.0.1", 1, 1.0)  # a bad template is a usage error before anything starts
    if args.script is not None:
        return _run_script(args)
    cases = select(args.cases)
    if not cases:
        raise ScenarioError(f"no case matches {args.cases!r} (see 'locust-conformance list')")
    label = _label(args)
    folder = _report_folder(args, label)
    config = RunConfig(args.worker, label, args.heartbeat_interval or DEFAULT_INTERVAL, args.user_class)
    print(
        f"running {len(cases)} cases against {label!r} (heartbeat interval {config.heartbeat_interval:g} s); report in {folder}",
        flush=True,
    )
    run = run_catalog(cases, config, folder, progress=_progress)
    counts = {k: v for k, v in run.counts().items() if v}
    print(f"\n{len(run.results)} cases in {run.duration:.1f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"results: {folder / 'results.json'}")
    if counts.get(Verdict.FAILED.value):
        return EXIT_FAILED
    return EXIT_UNKNOWN if counts.get(Verdict.UNKNOWN.value) else EXIT_OK


def _progress(i: int, total: int, result: CaseResult) -> None:
    line = f"[{i:>3}/{total}] {result.case.id:<44} {result.verdict.value:<13} {result.duration:5.1f} s"
    if result.verdict is not Verdict.OK:
        line += f"\n          {result.summary()}"
    print(line, flush=True)


def _run_script(args: argparse.Namespace) -> int:
    script = load_script(args.script)
    label = _label(args)
    folder = _report_folder(args, label)
    print(f"running {script.name} ({len(script.steps)} steps) against {label!r}; report in {folder}", flush=True)
    outcome = run_scenario(args.worker, script, folder, heartbeat_interval=args.heartbeat_interval)
    print(f"{outcome.verdict.value}: {outcome.reason}")
    gap = outcome.max_heartbeat_gap
    print(
        f"steps {outcome.steps_run}/{outcome.steps_total}, {outcome.duration:.1f} s, "
        f"worker {outcome.to_json()['worker_exit_text']}, "
        f"max heartbeat gap {'n/a' if gap is None else f'{gap:.3f} s'}, violations {len(outcome.violations)}"
    )
    print(f"trace: {folder / 'trace.txt'}")
    return SCENARIO_EXIT[outcome.verdict]


def cmd_master(args: argparse.Namespace) -> int:
    script = load_script(args.script)
    interval = args.heartbeat_interval or script.heartbeat_interval
    with FakeMaster(args.host, args.port, timing=LOCUST_TIMING.compressed(interval)) as fake:
        print(f"fake master listening on {fake.endpoint} (heartbeat interval {interval:g} s)", flush=True)
        result = run_script(fake, script)
    for record in fake.trace.records():
        print(format_record(record, fake.trace.t0))
    if args.trace_out:
        fake.trace.save(args.trace_out)
    errors = [v for r in fake.trace.records() for v in r.violations if v.severity == "error"]
    if result.error is None and not errors:
        print(f"OK: {result.steps_run} steps passed")
        return EXIT_OK
    reason = f"{result.failed_step}: {result.error}" if result.error else f"protocol violation: {errors[0]}"
    if result.error is None or isinstance(result.error, ProtocolViolation):
        verdict = ScenarioVerdict.FAILED
    else:
        verdict = ScenarioVerdict.SCENARIO if isinstance(result.error, ScenarioError) else ScenarioVerdict.UNKNOWN
    print(f"{verdict.value}: {reason}")
    return SCENARIO_EXIT[verdict]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"list": cmd_list, "run": cmd_run, "master": cmd_master}
    try:
        return commands[args.command](args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
