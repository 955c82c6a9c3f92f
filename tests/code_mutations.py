"""The suite's own mutation check: each check that judges a worker, broken on purpose, must turn a named test red.

A test that cannot fail is a defect. Each ``CodeMutation`` below is one exact edit of the product's code (a check
switched off, a table entry flipped, an error named wrong) and the tests that exist to catch it. ``check`` applies
it in a temporary copy of the repository, runs those tests there (``PYTHONPATH`` puts the copy first, so the copy
is what they import and what the workers they start run), and reports whether they failed, and failed for the
stated reason (``shows``: a text their output must contain, so a flaky timing failure is no catch).

Run it with ``python -m tests.code_mutations [NAME ...]`` (a table), or through
tests/test_code_mutations.py (part of ``make test``). Why not mutmut or cosmic-ray: both generate operator
mutants over whole modules and score the suite; this check pins chosen regressions to the tests that must catch
them, one edit each, and runs in well under two minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a test run needs from the repository (everything else, the venv and git included, stays behind).
COPIED = ("harness", "worker", "fakemaster", "tests", "docs", "conftest.py", "pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "reports")
TEST_TIMEOUT = 100.0  # seconds for one mutation's tests (pytest-timeout also bounds each test)


@dataclass(frozen=True)
class CodeMutation:
    """One edit of the product's code and the tests that must fail because of it."""

    name: str
    path: str  # relative to the repository root
    find: str  # exact text, found exactly once
    replace: str
    tests: tuple[str, ...]  # pytest arguments: node ids, or a file with "-k", "EXPR"
    shows: str  # text the failing tests' output must contain: they failed for this mutation, not by chance

    def apply(self, root: Path) -> None:
        """Edit the copy at ``root``; a mutation whose text is not there (once) is a broken check, never a pass."""
        target = root / self.path
        text = target.read_text()
        found = text.count(self.find)
        if found != 1:
            raise MutationNotApplicable(f"{self.name}: expected the text once in {self.path}, found it {found} times")
        target.write_text(text.replace(self.find, self.replace))


class MutationNotApplicable(Exception):
    """The code moved on and a mutation no longer matches it: update the table."""


@dataclass(frozen=True)
class Outcome:
    mutation: CodeMutation
    caught: bool
    seconds: float
    why: str  # what was seen, for a mutation that survived or did not apply

    def row(self) -> str:
        return f"{'caught' if self.caught else 'SURVIVED':8}  {self.seconds:6.1f} s  {self.mutation.name}" + (
            "" if self.caught else f"\n          {self.why}"
        )


def _returns_nothing(docstring_line: str) -> tuple[str, str]:
    """(find, replace) that make the function whose docstring ends with ``docstring_line`` return no findings."""
    return docstring_line, docstring_line + "    return []\n"


ORACLES = "harness/oracles"  # one module per family of oracles
ORACLE_TESTS = "tests/unit/test_oracles.py"
SIMULATION = "tests/unit/test_simulation.py::test_the_state_machine_catches_each_session_defect"
DEFECTS = "tests/integration/test_catalog_catches_defects.py"
OTHER = f"{DEFECTS}::test_other_case_checks_fail_a_worker_that_earns_them"

MUTATIONS: tuple[CodeMutation, ...] = (
    # issue 20 item 1: a layering contract broken (the sans-IO codec imports zmq)
    CodeMutation(
        "codec imports zmq",
        "harness/protocol/codec.py",
        "\nimport msgpack\n",
        "\nimport msgpack\nimport zmq  # noqa: F401\n",
        ("tests/test_layering.py::test_import_linter_contracts_hold",),
        "broken",
    ),
    # item 2: the defect table's exact oracles
    CodeMutation(
        "spawn/03 never notes a stale spawn applied",
        "harness/catalog/spawn.py",
        '    if applied is not None:\n        ctx.note("spawn.stale", "the stale spawn (4 users) discarded"',
        '    if False:\n        ctx.note("spawn.stale", "the stale spawn (4 users) discarded"',
        (f"{DEFECTS}::test_defect_is_caught[accepts-stale-spawn]",),
        "AssertionError",
    ),
    CodeMutation(
        "check_replies judges nothing",
        f"{ORACLES}/progress.py",
        *_returns_nothing('    oracle\'s (``check_exit_after_quit``).\n    """\n'),
        (ORACLE_TESTS, "-k", "stop_without_client_stopped or spawn_without_spawning_complete or unanswered_by_a_ready"),
        "check_replies",
    ),
    # item 3: the state machine's catches are the intended oracle's
    CodeMutation(
        "check_stats judges nothing",
        f"{ORACLES}/stats.py",
        *_returns_nothing('    """Stats reports are internally consistent and never negative (counts never go backwards)."""\n'),
        (f"{SIMULATION}[stats-backwards]",),
        "Failed: DID NOT RAISE",  # judged by stats.integrity alone, the machine finds no failing session
    ),
    CodeMutation(
        "spawn counts judged by nobody",
        f"{ORACLES}/order.py",
        "    _, wrong = match_spawns(ev)\n    if not wrong:\n        return []\n",
        "    _, wrong = match_spawns(ev)\n    if True:\n        return []\n",
        (f"{SIMULATION}[wrong-counts]",),
        "Failed: DID NOT RAISE",  # judged by order.spawn-counts alone, the machine finds no failing session
    ),
    CodeMutation(
        "check_stats_deltas crashes",
        f"{ORACLES}/stats.py",
        '    """Reports are deltas, not cumulative.\n',
        '    """Reports are deltas, not cumulative.\n    """\n    raise RuntimeError("an oracle of ours crashed")\n    """\n',
        (f"{SIMULATION}[cumulative-stats]",),
        "Failed: DID NOT RAISE",  # judged by stats.deltas alone, the machine finds no failing session
    ),
    # item 4: case checks no defect of the session catches
    CodeMutation(
        "spawn/04 never notes an equal-timestamp spawn applied",
        "harness/catalog/spawn.py",
        '    if applied is not None:\n        ctx.note("spawn.stale", "the equal-timestamp spawn',
        '    if False:\n        ctx.note("spawn.stale", "the equal-timestamp spawn',
        (f"{OTHER}[accepts-stale-spawn-spawn]",),
        "AssertionError",
    ),
    CodeMutation(
        "timing/02 never notes an older spawn applied",
        "harness/catalog/timing.py",
        '        ctx.note("spawn.stale", "the older spawn (2 users) discarded", "applied after the newer one")\n',
        "        pass\n",
        (f"{OTHER}[accepts-stale-spawn-timing]",),
        "AssertionError",
    ),
    CodeMutation(
        "reconnect/03 never notes a worker that ignores a silent master",
        "harness/catalog/reconnect.py",
        '    if quit_msg is None:\n        ctx.note(\n            "shutdown.master-silence",',
        '    if False:\n        ctx.note(\n            "shutdown.master-silence",',
        (f"{OTHER}[no-master-timeout-reconnect]",),
        "AssertionError",
    ),
    CodeMutation(
        "stats/03 takes any merged total",
        "harness/catalog/stats.py",
        '    if merged["total_requests"] != sent:\n',
        "    if False:\n",
        ("tests/unit/test_stats_merge.py",),
        "test_a_merged_total_unlike_the_reports_is_named",
    ),
    CodeMutation(
        "stats/03 keeps a failed merge to itself",
        "harness/catalog/stats.py",
        '    if problem is not None:\n        ctx.note("stats.merge", *problem)\n',
        '    if False:\n        ctx.note("stats.merge", *problem)\n',
        ("tests/unit/test_stats_merge.py",),
        "test_the_case_notes_reports_the_masters_code_rejects",
    ),
    CodeMutation(
        "storms keep a refused flood to themselves",
        "harness/catalog/storms.py",
        "    if result.refused:\n",
        "    if False:\n",
        ("tests/unit/test_storm_case.py",),
        "storm.refused",
    ),
    # item 5: crash signs in a worker's output
    CodeMutation(
        "greenlet crashes go unseen",
        "harness/output.py",
        '    (re.compile(r"Unhandled exception in greenlet"), "greenlet.uncaught"),\n',
        "",
        (ORACLE_TESTS, "-k", "crash_lines_in_the_output"),
        "greenlet",
    ),
    CodeMutation(
        "heap corruption goes unseen",
        "harness/output.py",
        '    (re.compile(r"double free|corrupted (?:size|double-linked)|malloc\\(\\)|free\\(\\): invalid"), '
        '"heap-corruption"),\n',
        "",
        (ORACLE_TESTS, "-k", "crash_lines_in_the_output"),
        "corrupted",
    ),
    CodeMutation(
        "segfault lines go unseen",
        "harness/output.py",
        '    (re.compile(r"Segmentation fault|SIGSEGV"), "segfault"),\n',
        "",
        (ORACLE_TESTS, "-k", "crash_lines_in_the_output"),
        "segmentation fault",
    ),
    # issue 13: errno 156384765 is ETERM, not EFSM
    CodeMutation(
        "errno 156384765 named EFSM",
        "harness/zmq_errors.py",
        '    HAUSNUMERO + 53: "ETERM",\n    HAUSNUMERO + 54: "EMTHREAD",\n    HAUSNUMERO + 105',
        '    HAUSNUMERO + 53: "EFSM",\n    HAUSNUMERO + 54: "EMTHREAD",\n    HAUSNUMERO + 105',
        (ORACLE_TESTS, "-k", "crash_lines_in_the_output"),
        "ETERM",
    ),
    # issue 14: verdicts graded by their consequence; gaps end when shutdown begins
    CodeMutation(
        "a missing worker graded NON-STRICT",
        "harness/consequences.py",
        '    Rule("heartbeat.missing", MASTER,',
        '    Rule("heartbeat.missing", MARGIN,',
        ("tests/unit/test_consequences.py",),
        "heartbeat.missing",
    ),
    CodeMutation(
        "heartbeat gaps run on past the shutdown",
        f"{ORACLES}/liveness.py",
        "    stop = min(ev.end, shutdown[0]) if shutdown is not None else ev.end\n",
        "    stop = ev.end\n",
        (ORACLE_TESTS, "-k", "gaps_end_when"),
        "heartbeat.",
    ),
    # harness failures are UNKNOWN, never a pass
    CodeMutation(
        "a bug of ours in a case is a pass",
        "harness/runner.py",
        '        findings.append(judged("harness.crash", "the case to run",',
        '        pass\n        if False: findings.append(judged("harness.crash", "the case to run",',
        ("tests/integration/test_harness_failures.py::test_a_failure_of_ours_is_unknown_and_says_so[bug]",),
        "Verdict.OK",
    ),
    # item 8: independent expectations
    CodeMutation(
        "cooldown goes back to running",
        "harness/protocol/states.py",
        "    (P.COOLDOWN, E.SENT_CLIENT_READY): P.READY,\n",
        "    (P.COOLDOWN, E.SENT_CLIENT_READY): P.RUNNING,\n",
        ("tests/unit/test_states.py",),
        "RUNNING",
    ),
    CodeMutation(
        "storms ignore their weights",
        "fakemaster/storm.py",
        "cum_weights = list(itertools.accumulate(weight for _, weight in spec.mix))",
        "cum_weights = list(itertools.accumulate(1.0 for _ in spec.mix))",
        ("tests/unit/test_bench_fast_paths.py::test_a_storm_draws_its_mix_by_weight_and_from_its_seed",),
        "AssertionError",
    ),
    # the proxy: what a worker sent reaches the master, garbage included; the master judged on its own promptness
    CodeMutation(
        "the proxy swallows undecodable frames",
        "harness/proxy/forwarder.py",
        "            self._dispatch(TO_MASTER, conn, frames, message, now)\n",
        "            if message is not None:\n                self._dispatch(TO_MASTER, conn, frames, message, now)\n",
        ("tests/integration/test_proxy.py::test_frames_cross_byte_for_byte_both_ways_and_garbage_is_forwarded_and_recorded",),
        "nothing arrived in time",
    ),
    CodeMutation(
        "the proxy blames the master for its own delays",
        "harness/proxy/session.py",
        "    replies = conn.master_sent[MessageType.HEARTBEAT]\n",
        "    replies = [r.t for r in ev.sent(MessageType.HEARTBEAT)]\n",
        ("tests/integration/test_proxy.py::test_the_master_side_oracles_fail_a_master_that_has_the_bug",),
        "the reply was on time",
    ),
)
BY_NAME = {m.name: m for m in MUTATIONS}


def pristine_copy(into: Path) -> Path:
    """The parts of the repository a test run needs, copied under ``into``."""
    root = into / "repo"
    root.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, root / name)
    return root


def run_tests(root: Path, tests: Sequence[str], timeout: float = TEST_TIMEOUT) -> tuple[int | None, str]:
    """pytest on ``tests`` in the copy at ``root`` (its code first on the path); the exit code (None: timed out)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "HYPOTHESIS_PROFILE": "ci",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LC_REQUIRE_PEERS": "1",
    }
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist", *tests]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return None, out
    return done.returncode, done.stdout + done.stderr


def check(mutation: CodeMutation, pristine: Path, scratch: Path) -> Outcome:
    """Apply ``mutation`` to a copy of ``pristine`` and run its tests: caught when they fail, for its reason."""
    started = time.monotonic()
    root = scratch / "repo"
    shutil.copytree(pristine, root)
    try:
        mutation.apply(root)
    except MutationNotApplicable as exc:
        return Outcome(mutation, False, time.monotonic() - started, str(exc))
    code, output = run_tests(root, mutation.tests)
    seconds = time.monotonic() - started
    tail = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    if code == 0:
        return Outcome(mutation, False, seconds, f"the tests still pass: {tail}")
    if code != 1:  # 2: interrupted or a collection error, 4/5: usage or nothing collected; None: timed out
        return Outcome(mutation, False, seconds, f"the tests did not run to a failure (pytest exit {code}): {tail}")
    if mutation.shows not in output:
        return Outcome(mutation, False, seconds, f"the tests failed, but not showing {mutation.shows!r}: {tail}")
    return Outcome(mutation, True, seconds, tail)


def check_all(mutations: Iterable[CodeMutation], jobs: int = 2) -> list[Outcome]:
    """Every mutation, ``jobs`` at a time, each in its own copy of one pristine copy of the repository."""
    with tempfile.TemporaryDirectory(prefix="lc-mutations-") as folder:
        base = Path(folder)
        pristine = pristine_copy(base / "pristine")
        todo = list(mutations)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(lambda im: check(im[1], pristine, base / f"m{im[0]}"), enumerate(todo)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.code_mutations", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to check (default: all)")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown mutations {unknown}; known: {sorted(BY_NAME)}")
    started = time.monotonic()
    outcomes = check_all([BY_NAME[n] for n in args.names] or MUTATIONS, args.jobs)
    for outcome in outcomes:
        print(outcome.row())
    caught = sum(o.caught for o in outcomes)
    print(f"{caught}/{len(outcomes)} mutations caught in {time.monotonic() - started:.1f} s")
    return 0 if caught == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
