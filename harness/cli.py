"""``locust-conformance``: the command line.

Exit codes: 0 every check passed; 1 the worker FAILED; 2 UNKNOWN (the harness
or the worker launch failed, so nothing could be judged); 3 usage or script error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fakemaster.master import FakeMaster
from fakemaster.script import load_script, run_script
from harness.errors import ProtocolViolation, ScenarioError
from harness.launcher import BUILTIN_WORKERS
from harness.protocol.timing import LOCUST_TIMING
from harness.scenario import Verdict, new_report_dir, run_scenario
from harness.trace import format_record

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN, EXIT_USAGE = 0, 1, 2, 3
EXIT_CODES = {Verdict.OK: EXIT_OK, Verdict.FAILED: EXIT_FAILED, Verdict.UNKNOWN: EXIT_UNKNOWN, Verdict.SCENARIO: EXIT_USAGE}
DEFAULT_SCRIPT = Path(__file__).parent / "scenarios" / "lifecycle.json"

EPILOG = """exit codes: 0 passed; 1 the worker FAILED; 2 UNKNOWN (harness or launch failure: never a pass);
3 usage or script error"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="locust-conformance",
        description="Conformance harness and fake master for Locust's distributed mode.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="start a worker and drive it through a script, writing a report",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--worker",
        default="reference",
        help=f"'{' or '.join(BUILTIN_WORKERS)}', or a shell command template with {{host}} {{port}} "
        "and optionally {heartbeat_interval}",
    )
    run.add_argument(
        "--script", type=Path, default=DEFAULT_SCRIPT, help="steps to run (JSON or TOML); default: the lifecycle scenario"
    )
    run.add_argument("--name", default=None, help="label of this implementation in the report folder name")
    run.add_argument("--report", type=Path, default=Path("reports"), help="folder that receives <time>-<label>/")
    run.add_argument("--heartbeat-interval", type=float, default=None, help="time compression (default: the script's)")

    master = sub.add_parser(
        "master",
        help="run a script as a fake master against a worker started separately",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    master.add_argument("--script", type=Path, required=True)
    master.add_argument("--host", default="127.0.0.1")
    master.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    master.add_argument("--heartbeat-interval", type=float, default=None)
    master.add_argument("--trace-out", type=Path, default=None, help="also write the trace as JSON lines")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    script = load_script(args.script)
    label = args.name or (args.worker if args.worker in BUILTIN_WORKERS else "custom")
    folder = new_report_dir(args.report, label)
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
    return EXIT_CODES[outcome.verdict]


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
    verdict = (
        Verdict.FAILED
        if result.error is None or isinstance(result.error, ProtocolViolation)
        else (Verdict.SCENARIO if isinstance(result.error, ScenarioError) else Verdict.UNKNOWN)
    )
    print(f"{verdict.value}: {reason}")
    return EXIT_CODES[verdict]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return cmd_run(args) if args.command == "run" else cmd_master(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
