"""``locust-conformance``: the command line.

Exit codes: 0 no case FAILED, UNKNOWN or SCENARIO-ERROR; 1 a case FAILED; 2 a case
was UNKNOWN (the harness or the worker launch failed, so it could not be judged); 3
usage or script error (SCENARIO-ERROR).
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import socket
import sys
import traceback
from pathlib import Path

from fakemaster.master import FakeMaster
from fakemaster.script import load_script, run_script
from fakemaster.serve import LOG_FORMAT as SERVE_LOG_FORMAT
from fakemaster.serve import SERVE_DEFECTS, serve, stop_on_signals
from harness.catalog import CATEGORIES, Case, all_cases, select
from harness.compatibility import render as render_compat
from harness.compatibility import run_matrix as run_compat_matrix
from harness.consequences import RULES, verdicts_markdown
from harness.errors import ScenarioError
from harness.launcher import BUILTIN_WORKERS, render_command
from harness.master_catalog.cli import add_master_run, cmd_master_run
from harness.proxy.cli import add_proxy, cmd_proxy
from harness.proxy.replay_cli import add_replay, cmd_replay
from harness.run_options import SCENARIO_EXIT, run_script_command
from harness.run_options import label as _label
from harness.run_options import profiles as _profiles
from harness.run_options import report_folder as _report_folder
from harness.run_options import resolve_pace as _resolve_pace
from harness.run_options import resolve_worker as _resolve_worker
from harness.run_options import startup_failed as _startup_failed
from harness.explore import EXPLORE_INTERVAL, Example, explore
from harness.mutation import MUTANTS, MUTANTS_BY_DEFECT, Matrix, check_plan, grid, run_matrix, summary_table
from harness.profile_docs import applies_to, profiles_markdown, profiles_text
from harness.protocol.profiles import ALL as ALL_PROFILES
from harness.protocol.profiles import DEFAULT_PROFILE, PROFILES, MasterProfile
from harness.protocol.timing import LOCUST_TIMING
from harness.report import compare_runs, load_run, write_run_report
from harness.root_causes import describe as describe_cause
from harness.root_causes import root_causes
from harness.pace import parse_interval
from harness.runner import AUTO as AUTO_JOBS
from harness.runner import DEFAULT_INTERVAL, CaseResult, RunConfig, plan, run_catalog, starting_jobs, write_not_run
from harness.spec_rules import RULES as SPEC_RULES
from harness.spec_rules import coverage_markdown
from harness.scenario import judge_script, new_report_dir, summarize, trace_findings
from harness.startup import StartupFailed
from harness.trace import format_record
from harness.verdicts import Verdict, worst
from harness.worker_timing import KEYS

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN, EXIT_USAGE = 0, 1, 2, 3
ROOT_CAUSES_SHOWN = 10

EPILOG = """exit codes:
  0  no case FAILED, UNKNOWN or SCENARIO-ERROR (OK, NON-STRICT, INFORMATIONAL and UNIMPLEMENTED all exit 0; NON-STRICT
     exits 1 with --fail-on non-strict)
  1  at least one case FAILED: the real master would misbehave or give up on the worker, or the user's data is lost
  2  at least one case was UNKNOWN (and none FAILED): the harness could not judge it - never a pass
  3  usage or script error: a script that asks for something impossible is SCENARIO-ERROR (and nothing FAILED)"""


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
    listing.add_argument("--markdown", action="store_true", help="a Markdown table (docs/catalog.md is this output)")
    listing.add_argument("--cases", default=None, help="comma-separated globs over case ids or category names")

    verdicts = sub.add_parser(
        "verdicts",
        help="the consequence table: each kind of finding, what it does to a real master, and its verdict",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    verdicts.add_argument("--markdown", action="store_true", help="as a Markdown page (docs/verdicts.md is this output)")

    run = sub.add_parser(
        "run", help="run the catalog (or one script) against a worker, writing a report", epilog=EPILOG, formatter_class=fmt
    )
    run.add_argument(
        "--worker",
        default=None,
        help=f"'{' or '.join(BUILTIN_WORKERS)}' (the default), 'locust@VERSION' (that release of Locust, installed into a "
        "cached environment on first use), or a shell command template with {{host}} {{port}} "
        "and optionally {heartbeat_interval}; started afresh for every case",
    )
    run.add_argument("--name", default=None, help="label of this implementation in the report (default: from --worker)")
    run.add_argument("--cases", default=None, help="comma-separated globs over case ids or categories, e.g. 'spawn,storms/01*'")
    run.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<UTC time>-<label>/)")
    _timing_options(run, DEFAULT_INTERVAL)
    run.add_argument(
        "--max-case-seconds",
        type=float,
        default=None,
        help="leave out cases that would take longer at the worker's timing (e.g. the master-silence cases, 60-90 s at "
        "Locust's pace); they are reported as not run, never as passed",
    )
    run.add_argument(
        "-j",
        "--jobs",
        default="auto",
        help="cases at once, each with its own fake master and worker (default auto: 8 at Locust's 1 s pace on 2 CPUs, "
        "fewer compressed; halved, and the case run again alone, whenever the harness itself runs late); floods always "
        "run alone. 1: one case after another",
    )
    run.add_argument(
        "--fail-on",
        choices=("failed", "non-strict"),
        default="failed",
        help="what exits 1: FAILED only (default), or NON-STRICT too: a CI gate that refuses late heartbeats (and other "
        "lost margins) before they reach the real master's 'missing'",
    )
    run.add_argument("--user-class", default="ConformanceUser", help="the user class name spawns ask for")
    run.add_argument("--script", type=Path, default=None, help="run this script (JSON or TOML) instead of the catalog")
    _profile_option(run, many=True)

    mutants = sub.add_parser(
        "mutants",
        help="the mutation matrix: the clean reference worker and each named defect, caught or missed, with rates",
        epilog="exit codes: 0 every defect caught by its intended case at --min-rate and the clean worker by none; "
        "1 otherwise; 3 usage error",
        formatter_class=fmt,
    )
    mutants.add_argument("--runs", type=int, default=3, help="runs of each subject on each of its cases (default 3)")
    mutants.add_argument("--defects", default=None, help="comma-separated defect names (default: all; see --list)")
    mutants.add_argument("--cases", default=None, help="columns: case globs (default: every defect's intended case)")
    mutants.add_argument("--cross", action="store_true", help="run every defect on every column, not just its intended case")
    mutants.add_argument("--min-rate", type=float, default=0.95, help="the catch rate a defect needs (default 0.95)")
    mutants.add_argument("--heartbeat-interval", type=float, default=DEFAULT_INTERVAL)
    mutants.add_argument("-j", "--jobs", default="1", help="cases at once, as for 'run' (default 1; 'auto')")
    mutants.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<UTC time>-mutants/)")
    mutants.add_argument("--list", action="store_true", help="list each defect with its intended case and exit")

    exp = sub.add_parser(
        "explore",
        help="Hypothesis-drawn timing schedules against a real worker; shrinks a failure to a standalone repro script",
        epilog="exit codes: 0 no schedule failed; 1 a schedule FAILED (repro script written); "
        "2 a schedule could not be judged (UNKNOWN) and none failed; 3 usage error",
        formatter_class=fmt,
    )
    exp.add_argument("--worker", default=None, help="as for 'run': reference (the default), locust or a command template")
    exp.add_argument("--examples", type=int, default=100, help="schedules to draw (default 100)")
    exp.add_argument("--seed", type=int, default=None, help="the same seed draws the same schedules (default: random, printed)")
    exp.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<UTC time>-explore/)")
    _timing_options(exp, EXPLORE_INTERVAL)
    exp.add_argument("--shrink-time", type=float, default=120.0, help="seconds the shrinker may use (default 120)")
    exp.add_argument("--reproduce", type=int, default=5, help="re-runs of the minimal schedule (default 5)")
    exp.add_argument("--no-target", action="store_true", help="do not steer towards the worst heartbeat gap")
    _profile_option(exp)

    compare = sub.add_parser(
        "compare",
        help="merge the reports of several runs (one per implementation) into one matrix with case pages",
        epilog="exit codes: 0 report written; 3 a folder is not a report (missing or invalid results.json)",
        formatter_class=fmt,
    )
    compare.add_argument("folders", nargs="+", type=Path, help="report folders of 'run' (each holds results.json)")
    compare.add_argument("--out", type=Path, default=None, help="a new folder (default: reports/<UTC time>-compare/)")

    report = sub.add_parser(
        "report",
        help="(re)write junit.xml and the HTML report of a run's folder from its results.json",
        epilog="exit codes: 0 report written; 3 the folder is not a report",
        formatter_class=fmt,
    )
    report.add_argument("folder", type=Path, help="a report folder of 'run' (holds results.json)")

    master = sub.add_parser(
        "master", help="run a script as a fake master against a worker started separately", epilog=EPILOG, formatter_class=fmt
    )
    roles = master.add_mutually_exclusive_group(required=True)
    roles.add_argument("--script", type=Path, help="the steps to run against a worker started separately")
    roles.add_argument(
        "--serve",
        action="store_true",
        help="no script: serve workers as the profile's release does (acks, replies, the missing rule, crashes), "
        "log registrations and missing workers in Locust's words, until SIGTERM/SIGINT (master-run --master fake@PROFILE)",
    )
    master.add_argument("--host", default="127.0.0.1")
    master.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    master.add_argument("--heartbeat-interval", type=float, default=None)
    master.add_argument("--trace-out", type=Path, default=None, help="also write the trace as JSON lines")
    master.add_argument(
        "--serve-defect",
        choices=sorted(SERVE_DEFECTS),
        default=None,
        help="with --serve: a master with this one bug (shows each master-run oracle failing): "
        + "; ".join(f"{name}: {what}" for name, what in SERVE_DEFECTS.items()),
    )
    _profile_option(master)

    add_master_run(sub, fmt, EPILOG)
    add_proxy(sub, fmt)
    add_replay(sub, fmt)

    compat = sub.add_parser(
        "compatibility",
        help="the compatibility matrix: the catalog for several workers (real Locust releases) under several master profiles",
        epilog="exit codes: 0 matrix written (whatever its verdicts: they are the findings); 2 a run could not be judged; "
        "3 usage error (an unknown profile, a locust@VERSION that does not exist or install)",
        formatter_class=fmt,
    )
    compat.add_argument(
        "--workers",
        default=",".join(["reference", *(f"locust@{v}" for v in COMPAT_RELEASES)]),
        help=f"comma-separated workers, as for 'run --worker' (default: reference, and locust@ {', '.join(COMPAT_RELEASES)})",
    )
    compat.add_argument("--report", type=Path, default=None, help="folder for the runs (default: reports/<UTC time>-compat/)")
    compat.add_argument("--markdown", type=Path, default=None, help="also write the page here (docs/compatibility.md)")
    compat.add_argument("--heartbeat-interval", type=float, default=DEFAULT_INTERVAL)
    compat.add_argument("-j", "--jobs", default="auto", help="cases at once, as for 'run' (default auto)")
    compat.add_argument("--cases", default=None, help="comma-separated globs over case ids or categories (default: all)")
    _profile_option(compat, many=True)
    compat.set_defaults(master_profile="all")

    coverage = sub.add_parser(
        "coverage", help="which rules of the wire spec and of the version reference are checked, and by what", formatter_class=fmt
    )
    coverage.add_argument("--markdown", action="store_true", help="the Markdown page (docs/coverage.md is this output)")

    profiles = sub.add_parser(
        "profiles",
        help="list the master profiles (the Locust master release ranges the fake master can behave like) and their knobs",
        formatter_class=fmt,
    )
    profiles.add_argument("--json", action="store_true", help="one JSON document: every profile and its knobs")
    profiles.add_argument("--markdown", action="store_true", help="a Markdown page (docs/master-profiles.md is this output)")
    return parser


def _profile_option(parser: argparse.ArgumentParser, many: bool = False) -> None:
    known = ", ".join(PROFILES)
    parser.add_argument(
        "--master-profile",
        default=DEFAULT_PROFILE.name,
        help=f"the Locust master release range the fake master behaves like: {known} (default {DEFAULT_PROFILE.name}; "
        "see 'locust-conformance profiles')"
        + (
            f"; '{ALL_PROFILES}' or a comma-separated list runs the catalog under each, with a case x profile matrix"
            if many
            else ""
        ),
    )


def _timing_options(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--heartbeat-interval",
        default=None,
        help=f"seconds, or 'auto': adopt the pace the worker keeps, measured by a probe before the run. Default: {default:g} "
        "for a worker command with {heartbeat_interval} (time compression: every Locust interval scales with it), auto "
        "for one without (a worker at its own pace: a JVM or Go worker heartbeats every 1 s whatever we pass). An "
        "interval the worker visibly does not follow is a usage error naming its measured pace",
    )
    parser.add_argument(
        "--worker-timing",
        default=None,
        metavar="KEY=S,...",
        help=f"periods the worker does not derive from its heartbeat interval, in seconds: {', '.join(KEYS)} "
        "(e.g. report=3,master-timeout=60); the rest follow Locust's proportions",
    )
    parser.add_argument(
        "--worker-profile",
        type=Path,
        default=None,
        help="a TOML file with the worker's command ('worker'), 'name' and a [timing] table of the same keys",
    )


def _jobs(value: str) -> int | str:
    if value == AUTO_JOBS:
        return value
    try:
        jobs = int(value)
    except ValueError:
        raise ScenarioError(f"--jobs: expected a number of cases at once or 'auto', got {value!r}") from None
    if jobs < 1:
        raise ScenarioError(f"--jobs: expected at least 1, got {jobs}")
    return jobs


def cmd_verdicts(args: argparse.Namespace) -> int:
    if args.markdown:
        print(verdicts_markdown(), end="")
        return EXIT_OK
    for rule in RULES.values():
        print(f"{rule.oracle:<32} {rule.verdict.value:<13} {rule.why}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    cases = select(args.cases)
    if args.json:
        print(json.dumps([c.to_json() for c in cases], indent=2))
        return EXIT_OK
    if args.markdown:
        print(catalog_markdown(cases), end="")
        return EXIT_OK
    for c in cases:
        print(f"{c.id:<44} {c.title}")
    print(f"{len(cases)} cases")
    return EXIT_OK


def catalog_markdown(cases: list[Case]) -> str:
    """The catalog as the Markdown page docs/catalog.md."""
    lines = [
        "# The conformance catalog",
        "",
        "Generated by `locust-conformance list --markdown`; a test keeps this page in step with the code.",
        "Budgets are in the worker's heartbeat intervals (0.2 s by default for a worker that takes the interval, its own "
        "pace otherwise), plus its other periods where a case waits one out (`report`: stats report interval, "
        "`master-timeout`: its master-silence timeout, ...): no case imposes a timing on the worker.",
        "Spec sections refer to `shared/reference/locust-protocol.md` (Locust 2.47.0). A case runs under the master "
        "profiles listed (see [master-profiles.md](master-profiles.md)); under the others it is not run.",
        "",
    ]
    for category in CATEGORIES:
        group = [c for c in cases if c.category == category]
        if not group:
            continue
        lines += [
            f"## {category}",
            "",
            "| id | title | expectation | spec | budget | master profiles |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| `{c.id}` | {c.title} | {c.expectation} | {c.spec} | {_budget(c)} | {_where(c)} |" for c in group]
        lines.append("")
    lines.append(f"{len(cases)} cases.")
    return "\n".join(lines) + "\n"


def _where(case: Case) -> str:
    """The master profiles a case runs under: 'all', or those that have what it needs."""
    where = applies_to(case)
    return "all" if len(where) == len(PROFILES) else ", ".join(where)


def _budget(case: Case) -> str:
    extra = "".join(f" + {n:g} {key}" for key, n in case.waits)
    return f"{case.budget:g}{extra}"


def cmd_run(args: argparse.Namespace) -> int:
    worker, declared = _resolve_worker(args)
    parse_interval(args.heartbeat_interval)  # a bad value is a usage error before anything starts
    jobs = _jobs(args.jobs)
    if args.max_case_seconds is not None and not args.max_case_seconds > 0:
        raise ScenarioError(f"--max-case-seconds: expected a positive number of seconds, got {args.max_case_seconds:g}")
    profiles = _profiles(args, many=args.script is None)
    if args.script is not None:
        return _run_script(args, declared, profiles[0])
    cases = select(args.cases)
    if not cases:
        raise ScenarioError(f"no case matches {args.cases!r} (see 'locust-conformance list')")
    excluded = [c for c in all_cases() if c not in cases]
    label = _label(args)
    folder = _report_folder(args, label)
    try:
        pace = _resolve_pace(args, declared, DEFAULT_INTERVAL, folder / "pace-probe")
    except StartupFailed as exc:
        config = RunConfig(worker, label, DEFAULT_INTERVAL, args.user_class, declared, None, args.max_case_seconds, profiles[0])
        failure = exc.failure
        reason = f"the worker never registered in the pace probe ({failure.verdict.value} [{failure.rule}]): nothing could run"
        write_not_run(all_cases(), config, folder, reason)
        code = _startup_failed(failure, folder)
        _write_report(folder)
        return code
    if len(profiles) == 1:
        config = RunConfig(worker, label, pace.interval, args.user_class, declared, pace, args.max_case_seconds, profiles[0])
        return _run_catalog(args, cases, excluded, config, folder, jobs)
    codes = []
    folders = []
    for profile in profiles:
        sub = folder / f"profile-{profile.name}"
        sub.mkdir(parents=True, exist_ok=True)
        config = RunConfig(
            worker, f"{label}@{profile.name}", pace.interval, args.user_class, declared, pace, args.max_case_seconds, profile
        )
        print(f"\n== master profile {profile.name} (Locust {profile.stands_for}) ==", flush=True)
        codes.append(_run_catalog(args, cases, excluded, config, sub, jobs))
        folders.append(sub)
    files = compare_runs(folders, folder / "matrix")
    print(f"\ncase x profile matrix: {files.index}  (junit: {files.junit}, matrix: {files.folder / 'compare.json'})")
    for profile, code in zip(profiles, codes, strict=True):
        print(f"  master profile {profile.name:<5} exit {code}: {folder / f'profile-{profile.name}'}")
    return _worst_exit(codes)


def _worst_exit(codes: list[int]) -> int:
    """The exit of several runs: FAILED over UNKNOWN over a usage error over OK."""
    for code in (EXIT_FAILED, EXIT_UNKNOWN, EXIT_USAGE):
        if code in codes:
            return code
    return EXIT_OK


def _run_catalog(
    args: argparse.Namespace, cases: list[Case], excluded: list[Case], config: RunConfig, folder: Path, jobs: int | str
) -> int:
    """Run the chosen cases under ``config`` into ``folder``, print the summary, and return the exit code."""
    label = config.label
    chosen, left = plan(cases, config, excluded)
    at_once = min(len(chosen), starting_jobs(jobs, config.timing)) or 1
    print(
        f"running {len(chosen)} cases, {at_once} at once{' (auto)' if jobs == AUTO_JOBS else ''}, against {label!r} "
        f"(heartbeat interval {config.heartbeat_interval:g} s, "
        f"report {config.timing.report_interval:g} s, master timeout {config.timing.master_heartbeat_timeout:g} s), "
        f"master profile {config.master_profile.name}; report in {folder}",
        flush=True,
    )
    for skipped in left:
        if skipped.reason != "not selected (--cases)":
            print(f"  not run: {skipped.case.id}: {skipped.reason}", flush=True)
    try:
        run = run_catalog(cases, config, folder, progress=_progress, excluded=excluded, jobs=jobs)
    finally:  # interrupted too: the report of the cases that finished
        reported = _write_report(folder)
    counts = {k: v for k, v in run.counts().items() if v}
    causes = root_causes([r.to_json() for r in run.results])
    if causes:
        print(f"\nroot causes, worst first ({len(causes)}):")
        for cause in causes[:ROOT_CAUSES_SHOWN]:
            print(f"  {describe_cause(cause)}")
        if len(causes) > ROOT_CAUSES_SHOWN:
            print(f"  ... and {len(causes) - ROOT_CAUSES_SHOWN} more in results.json")
    not_run = f", not run {len(run.not_run)}" if run.not_run else ""
    robust = sum(1 for r in run.results if r.verdict is Verdict.FAILED and r.case.kind == "robustness")
    of_which = f" ({robust} of the FAILED under input the stock master never sends)" if robust else ""
    print(
        f"\n{len(run.results)} cases in {run.duration:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + not_run
        + of_which
    )
    print(f"results: {folder / 'results.json'}")
    if counts.get(Verdict.FAILED.value) or (args.fail_on == "non-strict" and counts.get(Verdict.NON_STRICT.value)):
        return EXIT_FAILED  # the worker's verdict stands, whatever happened to the report
    if counts.get(Verdict.UNKNOWN.value) or not reported:
        return EXIT_UNKNOWN
    return EXIT_USAGE if counts.get(Verdict.SCENARIO_ERROR.value) else EXIT_OK


def _write_report(folder: Path) -> bool:
    """junit.xml and the HTML report of the run in ``folder``; a failure here is the harness's, said as such."""
    if not (folder / "results.json").is_file():
        return False
    try:
        files = write_run_report(folder)
    except Exception as exc:
        print(f"harness failure: could not write the report in {folder}: {exc!r} (results.json is intact)", file=sys.stderr)
        return False
    print(f"report:  {files.index}  (junit: {files.junit})")
    return True


def _progress(i: int, total: int, result: CaseResult, running: int) -> None:
    busy = f"  ({running} running)" if running else ""
    again = "  (run again alone: the first attempt's harness was overloaded)" if result.rerun else ""
    line = f"[{i:>3}/{total}] {result.case.id:<44} {result.verdict.value:<13} {result.duration:5.1f} s{busy}{again}"
    if result.verdict is not Verdict.OK:
        line += f"\n          {result.summary()}"
    print(line, flush=True)


def _run_script(args: argparse.Namespace, declared: dict[str, float], profile: MasterProfile) -> int:
    script = load_script(args.script)
    return run_script_command(args, script, declared, profile, _report_folder(args, _label(args)))


def cmd_mutants(args: argparse.Namespace) -> int:
    if args.list:
        for m in MUTANTS:
            print(f"{m.defect:<26} {', '.join(m.cases):<36} {m.verdict.value:<13} {'|'.join(m.oracles)}")
        return EXIT_OK
    jobs = _jobs(args.jobs)
    names = [d.strip() for d in args.defects.split(",") if d.strip()] if args.defects else [m.defect for m in MUTANTS]
    unknown = [d for d in names if d not in MUTANTS_BY_DEFECT]
    if unknown:
        raise ScenarioError(f"no such defect {', '.join(unknown)} (see 'locust-conformance mutants --list')")
    if args.runs < 1:
        raise ScenarioError("--runs must be at least 1")
    chosen = [MUTANTS_BY_DEFECT[d] for d in names]
    cases = [c.id for c in select(args.cases)] if args.cases else None
    if cases == []:
        raise ScenarioError(f"no case matches {args.cases!r} (see 'locust-conformance list')")
    check_plan(chosen, cases, args.min_rate)  # before a report folder exists
    folder = _report_folder(args, "mutants")
    out = folder / "matrix.json"
    print(f"mutation matrix: clean + {len(chosen)} defects, {args.runs} runs; report in {folder}", flush=True)

    def progress(run: int, subject: str, result: CaseResult, caught: bool) -> None:
        mark = "caught" if caught else "-"
        print(
            f"[run {run:>2}/{args.runs}] {subject:<26} {result.case.id:<36} {result.verdict.value:<13} {mark:<7}"
            f" {result.duration:5.1f} s",
            flush=True,
        )

    def save(matrix: Matrix) -> None:
        out.write_text(json.dumps(matrix.to_json(), indent=2) + "\n", "utf-8")

    matrix = run_matrix(
        chosen,
        runs=args.runs,
        cases=cases,
        cross=args.cross,
        heartbeat_interval=args.heartbeat_interval,
        min_rate=args.min_rate,
        report=folder,
        progress=progress,
        save=save,
        jobs=jobs,
    )
    save(matrix)
    print(f"\n{summary_table(matrix)}\n\n{grid(matrix)}\n")
    problems = matrix.problems()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"{'FAILED' if problems else 'OK'} in {matrix.duration:.0f} s; matrix: {out}")
    return EXIT_FAILED if problems else EXIT_OK


def cmd_explore(args: argparse.Namespace) -> int:
    _, declared = _resolve_worker(args)
    profile = _profiles(args)[0]
    parse_interval(args.heartbeat_interval)
    if args.examples < 1 or args.reproduce < 0:
        raise ScenarioError("--examples must be >= 1 and --reproduce >= 0")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    folder = _report_folder(args, "explore")
    print(f"explore: worker {args.worker!r}, seed {seed}, up to {args.examples} schedules; report in {folder}", flush=True)
    try:
        pace = _resolve_pace(args, declared, EXPLORE_INTERVAL, folder / "pace-probe")
    except StartupFailed as exc:
        return _startup_failed(exc.failure, folder)

    def progress(e: Example) -> None:
        gap = "-" if e.worst_gap is None else f"{e.worst_gap:.2f}"
        head = f"[{e.phase[0]} {e.number:>4}] {e.verdict.value:<13} {e.duration:4.1f} s  gap {gap:>5}"
        print(f"{head}  {e.schedule.describe()}", flush=True)
        if e.failed:
            print(f"         {e.failed[0]}", flush=True)

    result = explore(
        args.worker,
        seed=seed,
        max_examples=args.examples,
        report=folder,
        heartbeat_interval=pace.interval,
        declared=declared,
        shrink_seconds=args.shrink_time,
        reproduce=args.reproduce,
        progress=progress,
        target=not args.no_target,
        profile=profile,
    )
    (folder / "explore.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", "utf-8")
    per_minute = 60 * len(result.examples) / result.duration if result.duration else 0.0
    print(f"\n{len(result.examples)} schedules in {result.duration:.0f} s ({per_minute:.0f}/min), seed {seed}")
    if result.minimal is not None:
        first = result.failures[0]
        print(f"FAILED: first at schedule {first.number}: {first.failed[0]}")
        print(f"minimal schedule ({len(result.minimal.schedule.steps)} steps): {result.minimal.schedule.describe()}")
        print(f"reproduced {result.reproduced} of {result.reproduce_runs} re-runs")
        if result.flaky:
            print(f"note: {result.flaky}")
        print(f"repro script: python {result.repro_script} --worker CMD")
        return EXIT_FAILED
    if result.unknown:
        print(f"UNKNOWN: {len(result.unknown)} schedules could not be judged (harness failure); see {folder / 'explore.json'}")
        return EXIT_UNKNOWN
    print("no schedule failed")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    for folder in args.folders:
        load_run(folder)  # every input is checked before an output folder is made
    out = args.out if args.out is not None else new_report_dir(Path("reports"), "compare")
    files = compare_runs(list(args.folders), out)
    print(f"compared {len(args.folders)} runs: {files.index}  (junit: {files.junit}, matrix: {out / 'compare.json'})")
    return EXIT_OK


COMPAT_RELEASES = ("2.8.6", "2.15.1", "2.20.0", "2.47.0")


def cmd_compatibility(args: argparse.Namespace) -> int:
    profiles = _profiles(args, many=True)
    jobs = _jobs(args.jobs)
    workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    if not workers:
        raise ScenarioError("--workers: expected at least one worker")
    for worker in workers:
        render_command(worker, "127.0.0.1", 1, 1.0)  # a bad one (or a release that does not install) before any run
    cases = select(args.cases)
    folder = _report_folder(args, "compat")
    command = f"locust-conformance compatibility --workers {','.join(workers)} --master-profile {args.master_profile}"
    matrix = run_compat_matrix(workers, profiles, cases, folder, args.heartbeat_interval, jobs, command)
    page = render_compat(matrix)
    (folder / "compatibility.md").write_text(page, "utf-8")
    if args.markdown is not None:
        args.markdown.write_text(page, "utf-8")
        shutil.copyfile(folder / "compatibility.json", args.markdown.parent / "compatibility.json")
    print(f"compatibility matrix: {folder / 'compatibility.md'}" + (f" and {args.markdown}" if args.markdown else ""))
    unknown = [k for k, cell in matrix["cells"].items() if any(c["verdict"] == "UNKNOWN" for c in cell["cases"].values())]
    if unknown:
        print(f"UNKNOWN: cases could not be judged in {', '.join(unknown)}", file=sys.stderr)
        return EXIT_UNKNOWN
    return EXIT_OK


def cmd_coverage(args: argparse.Namespace) -> int:
    if args.markdown:
        print(coverage_markdown(all_cases()), end="")
        return EXIT_OK
    for rule in SPEC_RULES:
        mark = "checked" if rule.checked else "NOT CHECKED"
        print(f"{rule.id:<36} {mark:<12} {rule.text}")
    checked = sum(1 for r in SPEC_RULES if r.checked)
    print(f"{checked} of {len(SPEC_RULES)} rules checked")
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    if args.json:
        doc = [{"name": p.name, "stands_for": p.stands_for, "release": p.release, "knobs": p.knobs()} for p in PROFILES.values()]
        print(json.dumps(doc, indent=2))
    elif args.markdown:
        print(profiles_markdown(all_cases()), end="")
    else:
        print(profiles_text(), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    files = write_run_report(args.folder)
    print(f"report: {files.index}  (junit: {files.junit})")
    return EXIT_OK


def cmd_master(args: argparse.Namespace) -> int:
    profile = _profiles(args)[0]
    if args.serve_defect is not None and not args.serve:
        raise ScenarioError("--serve-defect needs --serve")
    if args.serve:
        return _serve(args, profile)
    script = load_script(args.script)
    interval = args.heartbeat_interval or script.heartbeat_interval
    with FakeMaster(args.host, args.port, timing=LOCUST_TIMING.compressed(interval), profile=profile) as fake:
        print(
            f"fake master listening on {fake.endpoint} (heartbeat interval {interval:g} s, master profile {profile.name})",
            flush=True,
        )
        result = run_script(fake, script)
    for record in fake.trace.records():
        print(format_record(record, fake.trace.t0))
    if args.trace_out:
        fake.trace.save(args.trace_out)
    findings = [*judge_script(result.error, result.failed_step), *trace_findings(fake.trace.records(), fake.trace.t0)]
    verdict = worst(f.verdict for f in findings)
    print(f"OK: {result.steps_run} steps passed" if verdict is Verdict.OK else f"{verdict.value}: {summarize(findings)}")
    return SCENARIO_EXIT[verdict]


def _serve(args: argparse.Namespace, profile: MasterProfile) -> int:
    host = socket.gethostname().replace("%", "%%")
    logging.basicConfig(level=logging.INFO, format=SERVE_LOG_FORMAT.format(host=host), stream=sys.stdout)
    stop = stop_on_signals()  # before the socket exists: a SIGTERM from the start on ends it cleanly
    timing = LOCUST_TIMING.compressed(args.heartbeat_interval or LOCUST_TIMING.heartbeat_interval)
    with FakeMaster(args.host, args.port, timing=timing, profile=profile) as fake:
        print(f"fake master serving on {fake.endpoint} (master profile {profile.name})", flush=True)
        code = serve(fake, stop, args.serve_defect)
    if args.trace_out:
        fake.trace.save(args.trace_out)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "list": cmd_list,
        "verdicts": cmd_verdicts,
        "run": cmd_run,
        "mutants": cmd_mutants,
        "explore": cmd_explore,
        "master": cmd_master,
        "master-run": cmd_master_run,
        "proxy": cmd_proxy,
        "replay": cmd_replay,
        "compare": cmd_compare,
        "report": cmd_report,
        "profiles": cmd_profiles,
        "compatibility": cmd_compatibility,
        "coverage": cmd_coverage,
    }
    try:
        return commands[args.command](args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a failure of ours: never exit 1 ("FAILED"), which blames the worker
        print(f"harness failure: {exc!r}\n{traceback.format_exc(limit=5)}", file=sys.stderr)
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
