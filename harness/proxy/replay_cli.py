"""``locust-conformance replay TRACE``: the master's side of a recorded conversation (``harness.proxy.replay``) as a
fake-master script, written (``--as-script``), run against a worker (``--worker``) as ``run --script`` runs one,
or printed.

A run is judged as ``run --script`` judges a script (``harness.scenario.run_scenario``: the same findings, report
files and exit codes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fakemaster.script import Script, parse_script
from harness.errors import ScenarioError
from harness.pace import parse_interval
from harness.protocol.profiles import DEFAULT_PROFILE, PROFILES
from harness.proxy.replay import DEFAULT_INTERVAL, parse_trace, to_script
from harness.run_options import label, profiles, report_folder, resolve_worker, run_script_command
from harness.worker_timing import KEYS

EXIT_OK = 0
PROXY_TRACE = "proxy-trace.jsonl"
CASE_TRACE = "trace.jsonl"
SCRIPT_FILE = "replay-script.json"


def add_replay(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    parser = sub.add_parser(
        "replay",
        help="play the master's side of a recorded trace against a worker, or write it as a script",
        description="TRACE: a connection's trace.jsonl of a proxy report (cases/<id>/trace.jsonl), a whole "
        "proxy-trace.jsonl, a proxy report folder, or any trace.jsonl the harness wrote. The master's messages "
        "(all but its acks and heartbeat replies, which the fake master makes itself) are sent again with their "
        "timing relative to the worker's, after the worker's messages the master acted on (client_ready, "
        "spawning_complete, client_stopped, quit). --as-script writes that as a fake-master script (JSON only: the "
        "harness writes no TOML, and TOML has no null for recorded payloads) to edit and keep; run it with 'run "
        "--script'. --worker runs it against a worker as 'run --worker CMD --script FILE' does (same report and exit "
        "codes). With neither, the script is printed.",
        epilog="exit codes: as 'run --script': 0 the worker passed (or the script was only written or printed); 1 it "
        "FAILED; 2 UNKNOWN (the harness or the launch failed); 3 usage error (not a trace, no such connection, nothing "
        "to replay, a bad script)",
        formatter_class=fmt,
    )
    parser.add_argument("trace", type=Path, metavar="TRACE", help="a trace.jsonl, a proxy-trace.jsonl or a proxy report folder")
    parser.add_argument(
        "--connection",
        default=None,
        metavar="ID",
        help="the worker connection to replay: its identity, or its number or case id in the proxy's report (2, "
        "proxy/02-...); default: the first connection that sent a client_ready",
    )
    parser.add_argument("--as-script", type=Path, default=None, metavar="FILE", help="write the script here (JSON)")
    parser.add_argument(
        "--worker",
        default=None,
        help="run the replay against this worker: 'reference', 'locust', 'locust@VERSION' or a command template with "
        "{host} {port} (as for 'run')",
    )
    parser.add_argument("--name", default=None, help="label of the worker in the report (default: from --worker)")
    parser.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<UTC time>-replay-<label>/)")
    parser.add_argument(
        "--heartbeat-interval",
        default=None,
        help="seconds or 'auto', as for 'run --script' (default: the recorded interval, results.json's "
        "run.heartbeat_interval, else 1 s, for a worker command with {heartbeat_interval}; auto for one without). The "
        "recorded delays are replayed as they are, in seconds",
    )
    parser.add_argument(
        "--worker-timing",
        default=None,
        metavar="KEY=S,...",
        help=f"periods the worker does not derive from its heartbeat interval: {', '.join(KEYS)} (as for 'run')",
    )
    parser.add_argument("--worker-profile", type=Path, default=None, help="a TOML worker profile (as for 'run')")
    parser.add_argument(
        "--master-profile",
        default=DEFAULT_PROFILE.name,
        help=f"the Locust master release range the fake master behaves like: {', '.join(PROFILES)} "
        f"(default {DEFAULT_PROFILE.name})",
    )


def cmd_replay(args: argparse.Namespace) -> int:
    script = build_script(args.trace, args.connection)
    parsed = parse_script(script, name=str(script["name"]))  # what run --script would read back
    if args.as_script is not None:
        write_script(script, args.as_script)
        print(f"script: {args.as_script} ({len(parsed.steps)} steps, connection {script['replay']['connection']!r})")
    if args.worker is None and args.worker_profile is None:
        if args.as_script is None:
            print(json.dumps(script, indent=2))
        return EXIT_OK
    return run_replay(args, script, parsed)


def build_script(trace: Path, connection: str | None) -> dict[str, Any]:
    """The script of ``trace`` (a file or a report folder); every bad input is a ScenarioError."""
    path = trace_file(trace)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the trace {path}: {exc}") from None
    records = parse_trace(text, str(path))
    interval = recorded_interval(path)
    return to_script(records, connection, heartbeat_interval=interval, source=str(path))


def trace_file(path: Path) -> Path:
    """The trace file of TRACE: the file itself, or a report folder's proxy-trace.jsonl (else its trace.jsonl)."""
    if path.is_file() and path.name == "results.json":
        path = path.parent
    if path.is_dir():
        for name in (PROXY_TRACE, CASE_TRACE):
            if (path / name).is_file():
                return path / name
        raise ScenarioError(f"{path}: a folder without {PROXY_TRACE} or {CASE_TRACE} (not a proxy report or a case folder)")
    if not path.exists():
        raise ScenarioError(f"{path}: no such trace file or folder")
    return path


def recorded_interval(trace: Path) -> float:
    """The heartbeat interval of the recording: run.heartbeat_interval of the report's results.json (beside a
    proxy-trace.jsonl, or two folders up from cases/<id>/trace.jsonl), else Locust's 1 s."""
    candidates = [trace.parent / "results.json"]
    if trace.parent.parent.name == "cases":
        candidates.append(trace.parent.parent.parent / "results.json")
    for results in candidates:
        try:
            run = json.loads(results.read_text("utf-8")).get("run", {})
        except (OSError, ValueError, AttributeError):
            continue
        value = run.get("heartbeat_interval") if isinstance(run, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return DEFAULT_INTERVAL


def write_script(script: dict[str, Any], path: Path) -> None:
    if path.suffix.lower() == ".toml":
        raise ScenarioError(
            f"--as-script {path}: only JSON is written (the harness has no TOML writer, and TOML has no null for "
            "recorded payloads); name the file .json"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(script, indent=2) + "\n", "utf-8")
    except OSError as exc:
        raise ScenarioError(f"--as-script {path}: cannot write it: {exc}") from None


def run_replay(args: argparse.Namespace, raw: dict[str, Any], script: Script) -> int:
    """Run the script against the worker as ``run --worker CMD --script FILE`` does; the same exit codes."""
    _, declared = resolve_worker(args)
    profile = profiles(args)[0]
    parse_interval(args.heartbeat_interval)  # a bad value is a usage error before anything starts
    folder = report_folder(args, f"replay-{label(args)}")
    write_script(raw, folder / SCRIPT_FILE)
    return run_script_command(args, script, declared, profile, folder, verb="replaying")
