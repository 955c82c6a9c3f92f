"""Property-based exploration: Hypothesis draws timing schedules and runs each against a real worker process.

The property is the catalog's oracles: no schedule may earn a FAILED verdict
(the real master would mark the worker missing, a spawn or stop would go
unanswered, the worker crashed, garbled a frame or broke the protocol order or
its stats). A NON-STRICT lateness does not fail the property; the worst
heartbeat gap is fed to ``hypothesis.target`` instead, so the search is steered
towards it. So real-time jitter cannot fail a sound worker, while a hang or a
crash fails every time.

On a failure Hypothesis shrinks the schedule (bounded in time; a smaller
schedule counts only if it fails twice in a row), the minimal one is re-run K
times for a reproduction rate, and a standalone repro script with
the schedule embedded is written. A harness failure (UNKNOWN) is recorded and
reported, never counted as a pass.
"""

from __future__ import annotations

import datetime
import math
import pprint
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky

from fakemaster.master import FakeMaster
from fakemaster.storm import StormSpec
from harness.catalog import Case, CaseContext
from harness.faults import Fault, FaultPlan
from harness.launcher import WorkerProcess
from harness.oracles import REPLY_DEADLINE_INTERVALS
from harness.protocol.profiles import DEFAULT_PROFILE, MasterProfile
from harness.protocol.messages import MessageType
from harness.protocol.timing import Timing
from harness.consequences import judged
from harness.errors import ScenarioError
from harness.repro import EXIT_USAGE, Outcome, Recording
from harness.repro import main as repro_main
from harness.runner import CaseResult, RunConfig, run_case
from harness.schedule import STORM_MIXES, Schedule, Step, schedules
from harness.verdicts import NOT_JUDGED, Finding, Verdict

EXPLORE_INTERVAL = 0.1  # seconds: short enough for >= 60 real examples a minute, long enough for a 2-core machine
SETTLE_INTERVALS = 1.0  # observed after the last step
USER_CLASS = "ConformanceUser"


# -- running one schedule ---------------------------------------------------------------------------


def execute(master: FakeMaster, schedule: Schedule, timing: Timing, process: WorkerProcess | None = None) -> None:
    """Carry out ``schedule`` on ``master`` after the worker's client_ready (acked automatically)."""
    interval = timing.heartbeat_interval
    master.expect(MessageType.CLIENT_READY, 20.0)
    pending: tuple[str, float, int] | None = None  # the last spawn/stop: answer type, when, trace position
    for number, step in enumerate(schedule.steps, start=1):
        if process is not None and process.poll() is not None:
            master.note(f"schedule: the worker exited before step {number}")
            return
        master.note(f"schedule step {number}: {step.describe()}")
        sent = _perform(master, step, interval, number)
        if sent is not None:
            pending = (sent, master.clock.now(), len(master.trace.records()))
    if pending is not None:  # give the last request its full deadline, no more
        answer, at, position = pending
        remaining = at + REPLY_DEADLINE_INTERVALS * interval - master.clock.now()
        if remaining > 0:
            master.wait_for(answer, remaining, after=position)
    master.sleep(SETTLE_INTERVALS * interval)
    if schedule.quit_at_end and (process is None or process.poll() is None):
        if not master.send(MessageType.QUIT):  # refused by the master's socket (recorded): nothing to answer
            master.note("schedule: the quit could not be delivered, so no answer is expected")
            return
        master.expect(MessageType.QUIT, REPLY_DEADLINE_INTERVALS * interval, description="in answer to quit")
        if process is not None:
            process.wait(6 * interval)


def _perform(master: FakeMaster, step: Step, interval: float, number: int) -> str | None:
    """One step; returns the answer type the step's request awaits (spawn, stop), if any."""
    seconds = step.intervals * interval
    awaits: str | None = None
    if step.action == "storm":
        mix = STORM_MIXES[step.mix]
        master.storm(StormSpec(threads=step.threads, rate=step.rate, duration=max(seconds, 0.01), mix=mix, seed=number))
        return None
    if step.action == "heartbeat":
        master.send(MessageType.HEARTBEAT)
    elif step.action in ("spawn", "stale-spawn"):
        master.spawn({USER_CLASS: step.users}, timestamp=0.0 if step.action == "stale-spawn" else None)
        awaits = MessageType.SPAWNING_COMPLETE if step.action == "spawn" else None
    elif step.action == "stop":
        master.send(MessageType.STOP)
        awaits = MessageType.CLIENT_STOPPED
    elif step.action == "reconnect":
        master.send(MessageType.RECONNECT)
    elif step.action == "duplicate-ack":
        master.send(MessageType.ACK, {"index": 0})
    elif step.action == "unknown":
        master.send("lc_unknown_type", {"step": number})
    elif step.action == "malformed":
        master.send_malformed(step.kind)
    elif step.action in ("silence", "pause-reading", "delay-replies", "drop-replies"):
        _window(master, step, seconds, interval, number)
        return None
    master.sleep(seconds)
    return awaits


def _window(master: FakeMaster, step: Step, seconds: float, interval: float, number: int) -> None:
    """A fault that lasts the whole step, then ends."""
    if step.action == "silence":
        master.silence(seconds)
    elif step.action == "pause-reading":
        master.pause_reading(seconds)
    else:
        if step.action == "delay-replies":
            fault = Fault("delay", types=(MessageType.HEARTBEAT,), seconds=step.delay * interval, jitter=0.25 * interval)
        else:
            fault = Fault("drop", types=(MessageType.HEARTBEAT,), probability=step.probability)
        master.install_faults(FaultPlan((fault,), seed=number))
    master.sleep(seconds)
    if step.action in ("delay-replies", "drop-replies"):
        master.clear_faults()
    elif step.action == "silence":
        master.end_silence()
    else:
        master.resume_reading()


def schedule_case(schedule: Schedule) -> Case:
    """The schedule as a catalog-style case, so it runs with every oracle, stack dumps and evidence on disk."""

    def body(ctx: CaseContext) -> None:
        execute(ctx.master, schedule, ctx.timing, ctx.process)

    budget = schedule.total_intervals + REPLY_DEADLINE_INTERVALS + SETTLE_INTERVALS + 12
    return Case(
        "explore/schedule",
        "timing",
        "A drawn schedule",
        "no FAILED verdict from any oracle",
        "§5",
        body,
        budget,
    )


# -- exploring ---------------------------------------------------------------------------------------


UNCONFIRMED = "shrink (failed once, then passed: not kept)"  # an Example's phase


@dataclass
class Example:
    """One schedule run against the worker."""

    number: int
    schedule: Schedule
    verdict: Verdict
    worst_gap: float | None  # in heartbeat intervals
    duration: float
    failed: list[Finding]
    phase: str  # generate / shrink / confirm (a shrink failure run again) / reproduce
    harness_error: str = ""  # why it could not be judged (UNKNOWN)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "phase": self.phase,
            "schedule": self.schedule.to_dict(),
            "describe": self.schedule.describe(),
            "verdict": self.verdict.value,
            "worst_gap_intervals": None if self.worst_gap is None else round(self.worst_gap, 3),
            "duration_s": round(self.duration, 3),
            "failed": [f.to_json() for f in self.failed],
            "harness_error": self.harness_error,
        }


@dataclass
class Exploration:
    """What ``explore`` did and found."""

    worker: str
    seed: int
    max_examples: int
    heartbeat_interval: float
    examples: list[Example] = field(default_factory=list)
    minimal: Example | None = None
    reproduced: int = 0
    reproduce_runs: int = 0
    repro_script: str = ""
    started_at: str = ""
    duration: float = 0.0
    flaky: str = ""
    master_profile: str = DEFAULT_PROFILE.name

    @property
    def unconfirmed(self) -> set[int]:
        """The shrink examples that failed once, then passed their confirm run (never the minimal one)."""
        return {e.number for e in self.examples if e.phase == UNCONFIRMED}

    @property
    def failures(self) -> list[Example]:
        return [e for e in self.examples if e.failed]

    @property
    def unknown(self) -> list[Example]:
        return [e for e in self.examples if e.verdict in NOT_JUDGED]  # could not be judged: never a pass

    def generated(self) -> int:
        return sum(1 for e in self.examples if e.phase == "generate")

    def to_json(self) -> dict[str, Any]:
        first = next((e for e in self.examples if e.failed), None)
        return {
            "schema_version": 1,
            "kind": "exploration",
            "run": {
                "worker": self.worker,
                "seed": self.seed,
                "max_examples": self.max_examples,
                "heartbeat_interval": self.heartbeat_interval,
                "master_profile": self.master_profile,
                "started_at": self.started_at,
                "duration_s": round(self.duration, 1),
            },
            "examples_run": len(self.examples),
            "examples_generated": self.generated(),
            "first_failure_at_example": first.number if first else None,
            "minimal": self.minimal.to_json() if self.minimal else None,
            "reproduction": {"reproduced": self.reproduced, "runs": self.reproduce_runs},
            "repro_script": self.repro_script,
            "flaky": self.flaky,
            "unknown": [e.to_json() for e in self.unknown],
            "examples": [e.to_json() for e in self.examples],
        }


Progress = Callable[[Example], None]


def _size(schedule: Schedule) -> tuple[int, float]:
    return (len(schedule.steps), schedule.total_intervals)


def explore(
    worker: str,
    *,
    seed: int,
    max_examples: int,
    report: Path,
    heartbeat_interval: float = EXPLORE_INTERVAL,
    declared: dict[str, float] | None = None,
    shrink_seconds: float = 120.0,
    reproduce: int = 5,
    progress: Progress | None = None,
    strategy: hypothesis.strategies.SearchStrategy[Schedule] | None = None,
    target: bool = True,
    profile: MasterProfile = DEFAULT_PROFILE,
) -> Exploration:
    """Run up to ``max_examples`` drawn schedules against ``worker``; shrink, re-run and script a failure.

    ``heartbeat_interval`` is the worker's pace (``harness.pace``), ``declared`` its other periods.
    The same ``seed`` draws the same schedules in the same order until Hypothesis starts optimising the
    target (after about half of ``max_examples``): from there it follows the measured gaps. With
    ``target=False`` the whole sequence follows from the seed (for as long as the verdicts are the same).
    ``profile``: the master release range the fake master behaves like (the repro script replays under it too).
    """
    result = Exploration(
        worker,
        seed,
        max_examples,
        heartbeat_interval,
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        master_profile=profile.name,
    )
    config = RunConfig(worker, "explore", heartbeat_interval, declared=dict(declared or {}), master_profile=profile)
    started = time.monotonic()
    shrink_until: list[float] = []  # set when the first failure is seen
    out_of_time: list[bool] = []  # the shrinker ran out of --shrink-time
    scratch = report / "examples"

    def run(schedule: Schedule, phase: str) -> Example:
        number = len(result.examples) + 1
        started_run = time.monotonic()
        try:
            case = run_case(schedule_case(schedule), config, scratch / f"{number:04d}")
        except Exception as exc:  # the harness itself failed (run_case judges everything else): UNKNOWN
            example = Example(number, schedule, Verdict.UNKNOWN, None, time.monotonic() - started_run, [], phase, repr(exc))
            result.examples.append(example)
            if progress is not None:
                progress(example)
            return example
        gap = None if case.max_heartbeat_gap is None else case.max_heartbeat_gap / heartbeat_interval
        failed = [f for f in case.findings if f.verdict is Verdict.FAILED]
        unknown = "; ".join(str(f) for f in case.findings if f.verdict in NOT_JUDGED)
        example = Example(number, schedule, case.verdict, gap, case.duration, failed, phase, unknown)
        result.examples.append(example)
        _keep_only_interesting(case, example)
        if progress is not None:
            progress(example)
        return example

    @settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=(Phase.generate, Phase.target, Phase.shrink) if target else (Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    @given(strategy if strategy is not None else schedules())
    def property_(schedule: Schedule) -> None:
        shrinking = bool(shrink_until)
        if shrinking and time.monotonic() > shrink_until[0]:
            out_of_time.append(True)
            return  # out of shrinking time: candidates pass untried, the shrinker gives up (see Flaky below)
        example = run(schedule, "shrink" if shrinking else "generate")
        if target and example.worst_gap is not None:
            hypothesis.target(example.worst_gap, label="worst heartbeat gap (intervals)")
        if example.verdict in NOT_JUDGED:
            hypothesis.reject()  # the harness could not judge it: recorded and reported, not a pass
        if example.failed and shrinking:
            # A smaller schedule counts only if it fails twice: a race that a shrunk schedule shows once in a while
            # (a deadlock that needs time to show, cut down to no time) would make a repro that rarely reproduces.
            # A confirm run the harness could not judge does not contradict the failure: it stands.
            again = run(schedule, "confirm")
            if not again.failed and again.verdict not in NOT_JUDGED:
                example.phase = UNCONFIRMED
                return
        if example.failed:
            if not shrink_until:
                shrink_until.append(time.monotonic() + shrink_seconds)
            raise AssertionError(f"{example.failed[0]}")

    try:
        hypothesis.seed(seed)(property_)()
    except AssertionError:
        pass  # the failure is in result.examples
    except Flaky as exc:  # the minimal schedule did not fail again on Hypothesis's final replay
        if out_of_time:
            result.flaky = f"shrinking stopped at the {shrink_seconds:g} s limit; the smallest failing schedule so far is kept"
        else:
            result.flaky = "the minimal schedule passed on Hypothesis's final replay (a race): " + str(exc).splitlines()[0][:200]
    except hypothesis.errors.Unsatisfiable as exc:
        result.flaky = f"too many schedules could not be judged: {exc}"
    failures = result.failures
    if failures:
        confirmed = [e for e in failures if e.phase not in (UNCONFIRMED, "confirm")] or failures
        result.minimal = min(confirmed, key=lambda e: _size(e.schedule))
        for _ in range(reproduce):
            again = run(result.minimal.schedule, "reproduce")
            result.reproduced += bool(again.failed)
            result.reproduce_runs += 1
        script = report / "repro_explore.py"
        script.write_text(repro_script(result.minimal, result), "utf-8")
        result.repro_script = str(script)
    result.duration = time.monotonic() - started
    return result


def _keep_only_interesting(case: CaseResult, example: Example) -> None:
    """Keep the evidence of failures and UNKNOWNs; a passing example's folder is removed."""
    if not example.failed and example.verdict not in NOT_JUDGED:
        shutil.rmtree(case.artifacts, ignore_errors=True)


# -- the standalone repro script --------------------------------------------------------------------

_SCRIPT = '''"""A minimal schedule found by `locust-conformance explore` ({when}, seed {seed}).

Against {worker} it failed: {failure}
Reproduced {reproduced} of {runs} re-runs. Schedule ({steps} steps): {describe}

    python {name} --worker CMD [--heartbeat-interval {interval:g}] [--attempts N] [--out DIR] [--master-profile {profile}]

--attempts defaults to {attempts}: enough tries to reproduce at the rate measured, 99 times in 100.

Exit codes: 0 not reproduced, 1 reproduced, 2 could not judge, 3 usage.
"""

import sys

from harness.explore import replay_main

SCHEDULE = {schedule}

if __name__ == "__main__":
    sys.exit(replay_main(SCHEDULE, default_interval={interval!r}, attempts={attempts}, master_profile={profile!r}))
'''


def repro_script(example: Example, exploration: Exploration) -> str:
    """The text of a standalone script that replays ``example``'s schedule against any worker."""
    failure = textwrap.shorten(str(example.failed[0]) if example.failed else example.verdict.value, 300)
    return _SCRIPT.format(
        when=exploration.started_at,
        seed=exploration.seed,
        worker=_docstring_safe(repr(exploration.worker)),
        failure=_docstring_safe(failure),
        reproduced=exploration.reproduced,
        runs=exploration.reproduce_runs,
        steps=len(example.schedule.steps),
        describe=example.schedule.describe(),
        name="repro_explore.py",
        interval=exploration.heartbeat_interval,
        attempts=attempts_for(exploration.reproduced, exploration.reproduce_runs),
        schedule=pprint.pformat(example.schedule.to_dict(), width=110, sort_dicts=False),
        profile=exploration.master_profile,
    )


MAX_DEFAULT_ATTEMPTS = 10


def attempts_for(reproduced: int, runs: int, confidence: float = 0.99) -> int:
    """How many tries a repro script makes by default: enough to reproduce a race at the rate measured (``reproduced``
    of ``runs``) with ``confidence``; at most MAX_DEFAULT_ATTEMPTS (a rate of 0 measured: that many)."""
    if runs <= 0 or reproduced >= runs:
        return 1
    if reproduced <= 0:
        return MAX_DEFAULT_ATTEMPTS
    miss = 1 - reproduced / runs
    return min(MAX_DEFAULT_ATTEMPTS, max(1, math.ceil(math.log(1 - confidence) / math.log(miss))))


def _docstring_safe(text: str) -> str:
    """Text that cannot end or break the generated script's docstring (no backslash escapes, no triple quotes)."""
    return text.replace("\\", "/").replace('"""', "'''")


def replay_main(
    schedule: dict[str, Any],
    *,
    default_interval: float = EXPLORE_INTERVAL,
    attempts: int = 1,
    master_profile: str = DEFAULT_PROFILE.name,
    argv: list[str] | None = None,
) -> int:
    """Replay one schedule against ``--worker`` (the entry point of a generated repro script), up to ``attempts``
    times by default."""
    try:
        plan = Schedule.from_dict(schedule)
    except ScenarioError as exc:
        print(f"error: the embedded schedule is not valid: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def drive(master: FakeMaster, process: WorkerProcess, timing: Timing) -> None:
        execute(master, plan, timing, process)

    def explain(r: Recording) -> Outcome:
        failed = [f for f in r.findings if f.verdict is Verdict.FAILED]
        if r.failure:
            expected, _, observed = r.failure.removeprefix("expected ").partition("; observed ")
            failed.append(judged("progress", expected, observed))  # after the oracles' (they say why)
        gaps = [g for _, g in r.gaps()]
        worst = f"worst heartbeat gap {max(gaps):.3f} s" if gaps else "no heartbeat gap measured"
        evidence = [f"schedule: {plan.describe()}", worst]
        if not failed:
            return Outcome(False, f"no FAILED verdict ({worst})", evidence)
        first = failed[0]
        return Outcome(True, str(first), evidence, first.at)

    return repro_main(
        drive,
        explain,
        title=f"explore repro: a {len(plan.steps)}-step schedule",
        description=plan.describe(),
        default_interval=default_interval,
        attempts=attempts,
        master_profile=master_profile,
        argv=argv,
    )
