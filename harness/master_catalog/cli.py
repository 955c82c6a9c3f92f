"""``locust-conformance master-run``: the master catalog against one master or several (a compatibility matrix)."""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from harness.errors import ScenarioError
from harness.master_catalog.cases import CASES
from harness.master_catalog.base import MasterCase
from harness.master_catalog.masters import MasterCommand
from harness.master_catalog.run import MasterRunResult, run_master_catalog
from harness.master_catalog.workers import MAX_WORKERS
from harness.master_catalog.verdict_page import render_page
from harness.report import compare_runs, write_run_report
from harness.verdicts import Verdict, judged_exit_code

EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C


def add_master_run(sub: Any, fmt: type[argparse.HelpFormatter], epilog: str) -> None:
    parser = sub.add_parser(
        "master-run",
        help="judge a Locust master (a release, our fake master, any command) with fake workers",
        description="Each case starts a fresh master and drives fake workers against it at Locust's real pace. "
        "--master: locust@VERSION (that release's master, headless, with the harness's locustfile), fake@PROFILE "
        "(our fake master serving like that release) or a shell template with {port} (and optionally {host} "
        "{workers} {users} {rate} {run_time} {csv} {locustfile} {python}). Several --master: one run each and a "
        "compare matrix; --verdict-page writes the Markdown matrix with every non-OK verdict explained.",
        epilog=epilog,
        formatter_class=fmt,
    )
    parser.add_argument("--master", action="append", required=True, help="the master to judge (repeatable)")
    parser.add_argument("--cases", default="", help="comma-separated case ids, categories or globs (default: all)")
    parser.add_argument("--report", type=Path, default=None, help="report folder (default: reports/<time>-master-<label>)")
    parser.add_argument("--jobs", type=int, default=3, help="cases at a time (each has its own master)")
    parser.add_argument("--swarm", type=int, default=200, help="workers of the load case load/01-many-workers")
    parser.add_argument("--verdict-page", type=Path, default=None, help="also write the Markdown verdict matrix here")


def select_master_cases(spec: str) -> list[MasterCase]:
    """Cases by id, category or glob; all for an empty ``spec``; a pattern that matches nothing is an error."""
    if not spec.strip():
        return list(CASES)
    chosen: list[MasterCase] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        matched = [c for c in CASES if c.id == part or c.category == part or fnmatch.fnmatch(c.id, part)]
        if not matched:
            raise ScenarioError(f"--cases {part!r} matches no master case; the ids: {', '.join(c.id for c in CASES)}")
        chosen.extend(c for c in matched if c not in chosen)
    return chosen


def _labels(commands: list[MasterCommand]) -> list[str]:
    """Each master's label, made unique (two custom templates are custom-1 and custom-2)."""
    plain = [c.label for c in commands]
    return [f"{label}-{plain[: i + 1].count(label)}" if plain.count(label) > 1 else label for i, label in enumerate(plain)]


def _folder(report: Path | None, label: str) -> Path:
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        return report
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = Path("reports") / f"{stamp}-master-{label.replace('@', '-').replace('/', '-')}"
    folder.mkdir(parents=True)
    return folder


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_master_run(args: argparse.Namespace) -> int:
    """SIGTERM ends the run as Ctrl-C does: every case stops at its next wait and its master is reaped."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _master_run(args)
    except KeyboardInterrupt:
        print("master-run interrupted: every case stopped and its master reaped", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _master_run(args: argparse.Namespace) -> int:
    commands = [MasterCommand(text).check() for text in args.master]  # every one checked before anything starts
    if len({c.text for c in commands}) != len(commands):
        raise ScenarioError("--master: the same master twice")
    if args.swarm < 1:
        raise ScenarioError(f"--swarm: expected at least 1, got {args.swarm}")
    if args.jobs < 1:
        raise ScenarioError(f"--jobs: expected at least 1, got {args.jobs}")
    if args.swarm > MAX_WORKERS:
        raise ScenarioError(f"--swarm: at most {MAX_WORKERS} fake workers in one process, got {args.swarm}")
    cases = select_master_cases(args.cases)
    labels = _labels(commands)
    folder = _folder(args.report, labels[0] if len(commands) == 1 else "matrix")
    runs: list[MasterRunResult] = []
    wheres: list[Path] = []
    for command, label in zip(commands, labels, strict=True):
        where = folder if len(commands) == 1 else folder / label.replace("@", "-")
        run = run_master_catalog(cases, command, where, jobs=args.jobs, label=label, swarm=args.swarm)
        write_run_report(where)
        runs.append(run)
        wheres.append(where)
        print(_summary(run, where), flush=True)
    if len(commands) > 1:
        files = compare_runs(wheres, folder / "matrix")
        print(f"matrix: {files.index}")
    if args.verdict_page is not None:
        page = render_page([run.to_json() for run in runs], " ".join(f"--master {c.text}" for c in commands))
        args.verdict_page.write_text(page, "utf-8")
        print(f"verdict page: {args.verdict_page}")
    verdicts = {r.verdict for run in runs for r in run.results}
    if not verdicts:  # every selected case was left out: nothing was judged, which is no pass
        print("nothing was run: every selected case needs what these masters cannot do (see not_run)", file=sys.stderr)
    return judged_exit_code(verdicts)


def _summary(run: MasterRunResult, folder: Path) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in run.counts().items() if v)
    lines = [
        f"master {run.command.text}: {counts or 'nothing run'}; {len(run.not_run)} not run; {run.duration:.1f} s; report {folder}"
    ]
    for result in run.results:
        if result.verdict is not Verdict.OK:
            lines.append(f"  {result.case.id}: {result.summary()}"[:400])
    return "\n".join(lines)
