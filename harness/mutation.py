"""The mutation matrix: the catalog against the reference worker with each named defect, caught or missed.

A harness is worth the bugs it catches. Each *mutant* is the reference worker
started with one named defect (``python -m worker --defect NAME``, see
``worker.defects``) together with the catalog case meant to catch it, the least
verdict that counts and the oracles that may give it. ``run_matrix`` runs the
clean worker and every mutant several times and tallies, per defect and case,
how often it was caught, how long detection took and what the evidence was.

Detection latency is measured from the start of the case (the fake master's
clock starts just before the worker is launched) to the moment of the evidence
that decided the verdict (the finding's time; for a heartbeat gap that is where
the gap began, so the gap was certain up to 1.5 intervals later); evidence with
no moment (a process that did not exit) is counted apart. The verdict latency is
the case's whole wall time, when the verdict is handed out.
"""

from __future__ import annotations

import datetime
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.catalog import all_cases, by_id
from harness.errors import ScenarioError
from harness.protocol.timing import LOCUST_TIMING
from harness.runner import AUTO, DEFAULT_INTERVAL, CaseResult, RunConfig, overloaded, run_case, side_by_side
from harness.verdicts import NOT_JUDGED, Finding, Verdict, rank
from worker.defects import DEFECTS

MATRIX_SCHEMA_VERSION = 1
CLEAN = "clean"
REFERENCE = "{python} -m worker --master-host {host} --master-port {port} --heartbeat-interval {heartbeat_interval}"
# A case "catches" a worker when it grades it below a pass; UNKNOWN (the harness's failure) and SCENARIO-ERROR (the
# case's own) say nothing about the worker: neither caught nor missed.
CAUGHT = frozenset({Verdict.NON_STRICT, Verdict.UNIMPLEMENTED, Verdict.FAILED})


@dataclass(frozen=True)
class Mutant:
    """A named defect and the catalog case(s) meant to catch it."""

    defect: str
    cases: tuple[str, ...]
    verdict: Verdict  # the least verdict that counts as caught: its consequence on a real master
    oracles: tuple[str, ...]  # the exact oracles, any of which may give that verdict (a race may show several ways)

    def deciding(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings that show this defect caught as intended: by one of its oracles, exactly, at its level."""
        return [f for f in findings if rank(f.verdict) >= rank(self.verdict) and f.oracle in self.oracles]

    def caught(self, result: CaseResult) -> bool:
        """True if ``result`` is this defect caught by the intended oracle with at least the intended verdict.

        A defect whose consequence on a real master is nothing (INFORMATIONAL: it only differs from Locust's own
        worker) is caught when the intended oracle reports it at that level; a run not judged never catches.
        """
        return result.verdict not in NOT_JUDGED and bool(self.deciding(result.findings))


MUTANTS: tuple[Mutant, ...] = (
    # The seed's three regressions
    Mutant(
        "shared-socket",
        ("storms/02-heartbeat-flood",),
        Verdict.FAILED,
        ("socket.signal", "socket.output", "socket.traceback", "socket.frames", "heartbeat.missing", "progress"),
    ),
    Mutant("lock-across-recv", ("heartbeat/01-idle-cadence",), Verdict.FAILED, ("heartbeat.missing",)),
    Mutant("slow-recv-timeout", ("heartbeat/01-idle-cadence",), Verdict.NON_STRICT, ("heartbeat.gap",)),
    # Heartbeats
    Mutant("late-heartbeats", ("heartbeat/01-idle-cadence",), Verdict.NON_STRICT, ("heartbeat.gap",)),
    Mutant("silent-after-spawn", ("heartbeat/02-running-cadence",), Verdict.FAILED, ("heartbeat.missing",)),
    Mutant("impatient-master-timeout", ("heartbeat/03-no-master-replies",), Verdict.FAILED, ("progress",)),
    Mutant("stale-heartbeat-state", ("spawn/01-basic",), Verdict.FAILED, ("order.state",)),
    # Handshake
    # the real master ignores a heartbeat from a worker it does not know yet: a difference, not a failure
    Mutant("heartbeat-before-ack", ("handshake/01-first-message",), Verdict.INFORMATIONAL, ("order.first-ignored",)),
    Mutant("no-client-ready-retry", ("handshake/02-retry-until-ack",), Verdict.FAILED, ("progress",)),
    # Spawn
    Mutant("stuck-spawning", ("spawn/01-basic",), Verdict.FAILED, ("progress",)),
    Mutant("wrong-counts", ("spawn/02-scale-up-down",), Verdict.FAILED, ("order.spawn-counts",)),
    Mutant("accepts-stale-spawn", ("spawn/03-stale-timestamp",), Verdict.FAILED, ("spawn.stale",)),
    # Stop and quit
    Mutant("no-ready-after-stop", ("stop-quit/01-stop-then-ready",), Verdict.FAILED, ("progress",)),
    Mutant("no-exit-on-quit", ("stop-quit/06-quit-while-ready",), Verdict.FAILED, ("shutdown.exit",)),
    Mutant("silent-sigterm", ("stop-quit/07-sigterm-sends-quit",), Verdict.NON_STRICT, ("shutdown.sigterm",)),
    # Stats
    Mutant("no-final-stats", ("stats/05-final-on-quit",), Verdict.NON_STRICT, ("stats.final",)),
    Mutant("stats-backwards", ("stats/02-integrity-running",), Verdict.FAILED, ("stats.integrity",)),
    Mutant("cumulative-stats", ("stats/06-deltas-not-cumulative",), Verdict.FAILED, ("stats.deltas",)),
    # Reconnect and master loss
    Mutant("ignores-reconnect", ("reconnect/01-reconnect-message",), Verdict.FAILED, ("reconnect.socket",)),
    Mutant("overlapping-reconnect", ("reconnect/01-reconnect-message",), Verdict.FAILED, ("reconnect.identity-race",)),
    Mutant("no-master-timeout", ("reconnect/04-master-death",), Verdict.UNIMPLEMENTED, ("shutdown.master-death",)),
    # Malformed input
    Mutant(
        "crash-on-unknown",
        ("malformed/05-unknown-type",),
        Verdict.FAILED,
        ("socket.traceback",),
    ),
    Mutant("deaf-after-garbage", ("malformed/01-garbage",), Verdict.FAILED, ("progress",)),
)
MUTANTS_BY_DEFECT = {m.defect: m for m in MUTANTS}


def command_for(defect: str | None) -> str:
    """The reference worker's command template, with ``defect`` switched on (None: the clean worker)."""
    return REFERENCE if defect is None else f"{REFERENCE} --defect {defect}"


def intended_cases(mutants: Iterable[Mutant]) -> list[str]:
    """Every case some mutant is meant to be caught by, in catalog order."""
    wanted = {c for m in mutants for c in m.cases}
    return [c.id for c in all_cases() if c.id in wanted]


# -- tallies ----------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One subject (clean or a defect) on one case, over every run."""

    subject: str
    case: str
    intended: bool  # this is the case meant to catch this defect
    verdicts: list[Verdict] = field(default_factory=list)
    caught: list[bool] = field(default_factory=list)
    detection_s: list[float] = field(default_factory=list)  # per caught run
    verdict_s: list[float] = field(default_factory=list)  # per caught run
    untimed: int = 0  # caught runs whose deciding evidence has no moment (not in detection_s)
    evidence: str = ""  # the first deciding finding seen
    missed_evidence: str = ""  # what a run that should have caught it (or a clean run that was caught) showed
    artifacts: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.verdicts)

    @property
    def caught_count(self) -> int:
        return sum(self.caught)

    @property
    def unknown(self) -> int:
        return sum(1 for v in self.verdicts if v is Verdict.UNKNOWN)

    def add(self, result: CaseResult, caught: bool, deciding: list[Finding]) -> None:
        self.verdicts.append(result.verdict)
        self.caught.append(caught)
        if caught:
            timed = [f.at for f in deciding if f.at is not None]
            if timed:
                self.detection_s.append(min(timed))
            else:
                self.untimed += 1  # evidence without a moment (e.g. the process did not exit): only the verdict time
            self.verdict_s.append(result.duration)
            if not self.evidence and deciding:
                self.evidence = str(deciding[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "case": self.case,
            "intended": self.intended,
            "runs": self.runs,
            "caught": self.caught_count,
            "rate": round(self.caught_count / self.runs, 4) if self.runs else None,
            "unknown": self.unknown,
            "verdicts": dict(Counter(v.value for v in self.verdicts)),
            "detection_s": _spread(self.detection_s),
            "untimed_detections": self.untimed,
            "verdict_s": _spread(self.verdict_s),
            "evidence": self.evidence,
            "missed_evidence": self.missed_evidence,
            "artifacts": self.artifacts,
        }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


@dataclass
class Matrix:
    """Subjects x cases, with catch counts; ``problems()`` says what keeps it from passing."""

    runs: int
    heartbeat_interval: float
    min_rate: float
    subjects: list[str]
    cases: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    started_at: str = ""
    duration: float = 0.0

    def cell(self, subject: str, case: str) -> Cell | None:
        return self.cells.get((subject, case))

    def problems(self) -> list[str]:
        """Every reason the matrix fails: a defect caught too rarely, a clean-worker catch, an UNKNOWN or SCENARIO-ERROR."""
        out = []
        for cell in self.cells.values():
            for verdict, why in ((Verdict.UNKNOWN, "harness failure"), (Verdict.SCENARIO_ERROR, "a bug in the case")):
                if n := cell.verdicts.count(verdict):
                    out.append(f"{cell.subject} on {cell.case}: {n} of {cell.runs} runs {verdict.value} ({why})")
            if cell.subject == CLEAN and cell.caught_count:
                out.append(f"clean worker caught by {cell.case} in {cell.caught_count} of {cell.runs} runs (false positive)")
            if cell.intended and cell.runs and cell.caught_count < self.min_rate * cell.runs:
                out.append(
                    f"{cell.subject} caught by {cell.case} in only {cell.caught_count} of {cell.runs} runs "
                    f"(needs {self.min_rate:.0%})"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        defects = [s for s in self.subjects if s != CLEAN]
        return {
            "schema_version": MATRIX_SCHEMA_VERSION,
            "kind": "mutation-matrix",
            "run": {
                "started_at": self.started_at,
                "duration_s": round(self.duration, 1),
                "runs": self.runs,
                "heartbeat_interval": self.heartbeat_interval,
                "min_rate": self.min_rate,
                "harness_version": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "cases": self.cases,
            "subjects": [
                {"name": CLEAN, "command": command_for(None), "description": "the reference worker, no defect"},
                *(
                    {
                        "name": d,
                        "command": command_for(d),
                        "description": DEFECTS[d],
                        "intended": {
                            "cases": list(MUTANTS_BY_DEFECT[d].cases),
                            "verdict": MUTANTS_BY_DEFECT[d].verdict.value,
                            "oracles": list(MUTANTS_BY_DEFECT[d].oracles),
                        },
                    }
                    for d in defects
                ),
            ],
            "cells": [c.to_json() for c in self.cells.values()],
            "problems": self.problems(),
            "ok": not self.problems(),
        }


# -- running ----------------------------------------------------------------------------------------


def check_plan(mutants: list[Mutant], cases: list[str] | None, min_rate: float) -> list[str]:
    """The columns of a matrix; ScenarioError if it could not judge every mutant or the rate is impossible."""
    columns = cases if cases is not None else intended_cases(mutants)
    blind = [m.defect for m in mutants if not set(m.cases) & set(columns)]
    if blind:  # a matrix that never ran a defect's intended case cannot say it was caught
        raise ScenarioError(f"the columns leave out the intended case of {', '.join(blind)}: nothing would judge them")
    if not 0 < min_rate <= 1:
        raise ScenarioError(f"the minimum catch rate must be in (0, 1], got {min_rate}")
    return columns


Progress = Callable[[int, str, CaseResult, bool], None]


def run_matrix(
    mutants: list[Mutant],
    *,
    runs: int,
    cases: list[str] | None = None,
    cross: bool = False,
    heartbeat_interval: float = DEFAULT_INTERVAL,
    min_rate: float = 0.95,
    report: Path,
    progress: Progress | None = None,
    save: Callable[[Matrix], None] | None = None,
    jobs: int | str = 1,
) -> Matrix:
    """Run the clean worker and each mutant ``runs`` times.

    Columns are ``cases`` (default: every mutant's intended cases). The clean worker runs every column; a
    mutant runs its intended cases, or every column with ``cross``. Artifacts (trace, worker log, stack
    dump) are kept under ``report`` for the first run and for every unexpected outcome (a miss, a clean
    catch, an UNKNOWN); ``save`` is called after every case so nothing recorded is lost. ``jobs``: cases at once, as
    for ``run`` (``auto`` runs a case whose harness was overloaded again, alone, and counts only that attempt).
    """
    columns = check_plan(mutants, cases, min_rate)
    matrix = Matrix(
        runs,
        heartbeat_interval,
        min_rate,
        [CLEAN, *(m.defect for m in mutants)],
        columns,
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    plan: list[tuple[Mutant | None, list[str]]] = [(None, columns)]
    plan += [(m, columns if cross else [c for c in columns if c in m.cases]) for m in mutants]
    for subject, wanted in plan:
        name = CLEAN if subject is None else subject.defect
        for case_id in wanted:
            matrix.cells[(name, case_id)] = Cell(name, case_id, subject is not None and case_id in subject.cases)
    started = time.monotonic()
    lock = threading.Lock()
    tasks = [(run, subject, case_id) for run in range(1, runs + 1) for subject, wanted in plan for case_id in wanted]
    with tempfile.TemporaryDirectory(prefix="lc-mutants-") as scratch:

        def one(task: tuple[int, Mutant | None, str], rerun: str) -> CaseResult:
            run, subject, case_id = task
            name = CLEAN if subject is None else subject.defect
            config = RunConfig(command_for(None if subject is None else subject.defect), name, heartbeat_interval)
            folder = Path(scratch) / name / str(run) / case_id.replace("/", "__")
            result = run_case(by_id(case_id), config, folder)
            result.rerun = rerun
            if overloaded(result) and jobs == AUTO and not rerun:
                shutil.rmtree(folder, ignore_errors=True)
                return result  # run again alone: this attempt tells nothing about the worker
            with lock:
                cell = matrix.cells[(name, case_id)]
                caught = _judge(subject, cell, result, [m for m in mutants if case_id in m.cases])
                watched = subject is None or cell.intended  # a column whose outcome is known in advance
                unexpected = result.verdict in NOT_JUDGED or (watched and caught != cell.intended)
                if unexpected or (run == 1 and watched):
                    kept = report / "artifacts" / name / f"run-{run:02d}" / case_id.replace("/", "__")
                    shutil.copytree(folder, kept, dirs_exist_ok=True)
                    cell.artifacts.append(str(kept.relative_to(report)))
                shutil.rmtree(folder, ignore_errors=True)
                if progress is not None:
                    progress(run, name, result, caught)
                matrix.duration = time.monotonic() - started
                if save is not None:
                    save(matrix)
            return result

        side_by_side(tasks, one, jobs, LOCUST_TIMING.compressed(heartbeat_interval), lambda task: by_id(task[2]))
    return matrix


def _judge(subject: Mutant | None, cell: Cell, result: CaseResult, meant: list[Mutant] | None = None) -> bool:
    """Tally ``result`` into ``cell``; True if the case caught the worker.

    ``meant``: the mutants this case is meant to catch. The clean worker counts as caught when the case grades it
    below a pass, or when it shows what one of them is caught by (an INFORMATIONAL mutant's finding included).
    """
    if subject is not None and cell.intended:
        deciding = subject.deciding(result.findings)
        caught = subject.caught(result)
        if not caught and not cell.missed_evidence:
            cell.missed_evidence = f"{result.verdict.value}: {result.summary()}"
    else:
        deciding = [f for f in result.findings if f.verdict in CAUGHT]
        if subject is None:
            deciding += [f for m in meant or [] for f in m.deciding(result.findings) if f not in deciding]
        caught = result.verdict in CAUGHT or bool(deciding)
        if caught and subject is None and not cell.missed_evidence:
            cell.missed_evidence = f"{result.verdict.value}: {result.summary()}"
    cell.add(result, caught, deciding)
    return caught


# -- printing ---------------------------------------------------------------------------------------


def summary_table(matrix: Matrix) -> str:
    """One row per defect on its intended case: catch rate, verdicts, detection and verdict latency."""
    header = (
        "| defect | intended case | caught | verdicts | detection s (median / max) | verdict s (median / max) |\n"
        "|---|---|---|---|---|---|"
    )
    rows = [header]
    for cell in matrix.cells.values():
        if not cell.intended:
            continue
        verdicts = ", ".join(f"{v} {n}" for v, n in Counter(v.value for v in cell.verdicts).most_common())
        det, ver = _spread(cell.detection_s), _spread(cell.verdict_s)
        rows.append(
            f"| {cell.subject} | {cell.case} | {cell.caught_count}/{cell.runs} | {verdicts} | {_fmt(det)} | {_fmt(ver)} |"
        )
    clean = [c for c in matrix.cells.values() if c.subject == CLEAN]
    false = sum(c.caught_count for c in clean)
    total = sum(c.runs for c in clean)
    rows.append(f"| {CLEAN} | all {len(clean)} columns | {false}/{total} | false positives | | |")
    return "\n".join(rows)


def _fmt(spread: dict[str, float] | None) -> str:
    return "-" if spread is None else f"{spread['median']:.2f} / {spread['max']:.2f}"


def grid(matrix: Matrix) -> str:
    """Subjects x cases: ``caught/runs`` per cell (``*`` marks the intended case, ``.`` not run)."""
    numbers = {case: i for i, case in enumerate(matrix.cases, start=1)}
    width = max(len(s) for s in matrix.subjects)
    lines = [" " * width + " " + "".join(f"{'c' + str(n):>7}" for n in numbers.values())]
    for subject in matrix.subjects:
        cells = []
        for case in matrix.cases:
            cell = matrix.cell(subject, case)
            text = "." if cell is None else f"{cell.caught_count}/{cell.runs}" + ("*" if cell.intended else "")
            cells.append(f"{text:>7}")
        lines.append(f"{subject:<{width}} " + "".join(cells))
    lines.append("")
    lines += [f"  c{n:<3} {case}" for case, n in numbers.items()]
    return "\n".join(lines)
