"""pytest plugin ``locust_conformance``: the catalog as test items, and fixtures for custom scenarios.

Registered through the ``pytest11`` entry point under its own name (Locust registers ``locust``). Only
pytest and the standard library are imported here at start-up; the harness (ZeroMQ, the fake master,
the catalog) is imported when a run or a fixture needs it.

    pytest --lc-worker reference                       # the whole catalog against the reference worker
    pytest --lc-worker locust --lc-cases 'spawn,storms/01*' --lc-heartbeat-interval 0.25
    pytest --lc-worker 'java -jar w.jar --master-port {port}' --lc-strict tests/   # catalog + your own tests

A worker command without ``{heartbeat_interval}`` runs at its own pace: the plugin measures it once per session (the
pace probe, ``harness.pace``) and every case and fixture uses it; ``--lc-worker-timing`` declares the periods such
a worker does not derive from its heartbeat interval, ``--lc-max-case-seconds`` leaves out (skips, "not run") the
cases that would take longer at that pace.

Verdicts map to outcomes: OK passes; NON-STRICT passes with a ``LocustConformanceWarning`` (fails with
``--lc-strict``); INFORMATIONAL and UNIMPLEMENTED are skips whose reason is the evidence; FAILED fails with
the evidence as its text; UNKNOWN (the harness could not judge) and SCENARIO-ERROR (the scenario asked for
something impossible) fail too, never pass.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fakemaster.master import FakeMaster
    from harness.catalog import Case, CaseContext
    from harness.launcher import WorkerProcess
    from harness.pace import Pace
    from harness.protocol.profiles import MasterProfile
    from harness.protocol.timing import Timing
    from harness.runner import CaseResult, NotRun, RunConfig
    from harness.startup import StartupFailure

DEFAULT_WORKER = "reference"
DEFAULT_INTERVAL = 0.2  # harness.runner.DEFAULT_INTERVAL, repeated to keep this module light (a test checks they agree)
DEFAULT_USER_CLASS = "ConformanceUser"
EXCLUSIVE_GROUP = "locust-conformance-exclusive"  # the xdist group of the cases that need a quiet machine


class LocustConformanceWarning(UserWarning):
    """A case passed outside its tolerance (NON-STRICT): the real master works with it, but the margin is gone."""


class VerdictFailure(Exception):
    """A FAILED, UNKNOWN or SCENARIO-ERROR verdict (or NON-STRICT under --lc-strict); its text is the evidence."""


# -- options -------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("locust-conformance", "Locust worker conformance (locust-conformance)")
    group.addoption(
        "--lc-worker",
        default=None,
        help="run the catalog against this worker: 'reference', 'locust' or a command template with {host} {port} "
        "(and optionally {heartbeat_interval}, {python}); also the default worker of the fixtures",
    )
    group.addoption("--lc-cases", default=None, help="comma-separated globs over case ids or categories (default: all)")
    group.addoption(
        "--lc-heartbeat-interval",
        default=None,
        help=f"seconds or 'auto' (the worker's own pace, measured once per session); default {DEFAULT_INTERVAL} s for a "
        "worker command with {heartbeat_interval}, auto for one without",
    )
    group.addoption(
        "--lc-worker-timing",
        default=None,
        help="periods the worker does not derive from its interval: report=3,master-timeout=60",
    )
    group.addoption(
        "--lc-max-case-seconds", default=None, help="skip (as not run) cases that would take longer at the worker's timing"
    )
    group.addoption("--lc-user-class", default=None, help=f"the user class spawns ask for (default {DEFAULT_USER_CLASS})")
    group.addoption("--lc-strict", action="store_true", default=None, help="NON-STRICT verdicts fail instead of warning")
    group.addoption(
        "--lc-fail-on",
        choices=("failed", "non-strict"),
        default=None,
        help="what fails an item: FAILED (default) or NON-STRICT too (the same switch as --lc-strict and as "
        "'locust-conformance run --fail-on')",
    )
    group.addoption("--lc-report", default=None, help="folder for the cases' evidence (default: pytest's tmp_path folders)")
    group.addoption(
        "--lc-master-profile",
        default=None,
        help="the Locust master release range the fake master behaves like: 2.0, 2.8, 2.15, 2.20 or 2.47 (default); "
        "cases that do not apply under it are skipped as not run (see 'locust-conformance profiles')",
    )
    parser.addini("lc_worker", "as --lc-worker", default=None)
    parser.addini("lc_cases", "as --lc-cases", default=None)
    parser.addini("lc_heartbeat_interval", "as --lc-heartbeat-interval", default=None)
    parser.addini("lc_worker_timing", "as --lc-worker-timing", default=None)
    parser.addini("lc_max_case_seconds", "as --lc-max-case-seconds", default=None)
    parser.addini("lc_user_class", "as --lc-user-class", default=None)
    parser.addini("lc_strict", "as --lc-strict", type="bool", default=False)
    parser.addini("lc_fail_on", "as --lc-fail-on", default=None)
    parser.addini("lc_report", "as --lc-report", default=None)
    parser.addini("lc_master_profile", "as --lc-master-profile", default=None)


_STARTED = pytest.StashKey[datetime.datetime]()
_RESULTS = pytest.StashKey[list[tuple["RunConfig", "CaseResult"]]]()
_PACES = pytest.StashKey[dict[str, "Pace | StartupFailure"]]()
_NOT_RUN = pytest.StashKey[list["NotRun"]]()


def _option(config: pytest.Config, name: str) -> Any:
    """The command-line value, else the ini value, else None."""
    value = config.getoption(f"lc_{name}")
    if value is None:
        value = config.getini(f"lc_{name}")
    return value if value not in ("", None) else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lc_catalog: a case of the locust-conformance catalog")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's group (--dist loadgroup keeps a group on one worker)")
    config.addinivalue_line("markers", "lc_worker(command): the worker command the lc_ fixtures start in this test")
    config.addinivalue_line("markers", "lc_heartbeat_interval(seconds): the time compression of the lc_ fixtures in this test")


# -- the catalog as items ----------------------------------------------------------------------------


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With --lc-worker and no paths on the command line, run the catalog only (not the project's own tests)."""
    if _option(config, "worker") and not _explicit_paths(config):
        return True
    return None


def _explicit_paths(config: pytest.Config) -> bool:
    """True if paths or node ids were given on the command line (not taken from testpaths or the current folder)."""
    return config.args_source is pytest.Config.ArgsSource.ARGS


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    worker = _option(config, "worker")
    if not worker:
        return
    from harness.catalog import select
    from harness.errors import ScenarioError
    from harness.launcher import render_command

    try:
        render_command(worker, "127.0.0.1", 1, 1.0)
    except ScenarioError as exc:
        raise pytest.UsageError(f"--lc-worker: {exc}") from exc
    _check_timing_options(config)
    master_profile_of(config)  # an unknown profile is a usage error before anything runs
    cases = select(_option(config, "cases"))
    if not cases:
        raise pytest.UsageError(f"--lc-cases {_option(config, 'cases')!r} matches no case (see 'locust-conformance list')")
    from _pytest.runner import collect_one_node  # collected through pytest's own machinery: counted and reported

    collector = CatalogCollector.from_parent(session, name="locust-conformance", nodeid="locust-conformance", cases=cases)
    report = collect_one_node(collector)
    collector.ihook.pytest_collectreport(report=report)
    items[:0] = [item for item in report.result if isinstance(item, pytest.Item)]


def _check_timing_options(config: pytest.Config) -> None:
    from harness.errors import ScenarioError
    from harness.pace import parse_interval
    from harness.worker_timing import parse_worker_timing

    interval = _option(config, "heartbeat_interval")
    try:
        parse_interval(interval)
    except ScenarioError:
        raise pytest.UsageError(f"--lc-heartbeat-interval: a positive number of seconds or 'auto', got {interval!r}") from None
    try:
        parse_worker_timing(str(_option(config, "worker_timing") or ""))
    except ScenarioError as exc:
        raise pytest.UsageError(f"--lc-worker-timing: {exc}") from None
    fail_on = _option(config, "fail_on")
    if fail_on not in (None, "failed", "non-strict"):
        raise pytest.UsageError(f"lc_fail_on: 'failed' or 'non-strict', got {fail_on!r}")
    limit = _option(config, "max_case_seconds")
    try:
        if limit is not None and not float(limit) > 0:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"--lc-max-case-seconds: a positive number of seconds, got {limit!r}") from None


def _strict(config: pytest.Config) -> bool:
    """NON-STRICT fails: --lc-strict, or --lc-fail-on non-strict (one switch, two spellings)."""
    return bool(_option(config, "strict")) or _option(config, "fail_on") == "non-strict"


def _declared(config: pytest.Config) -> dict[str, float]:
    from harness.worker_timing import parse_worker_timing

    return parse_worker_timing(str(_option(config, "worker_timing") or ""))


def session_pace(config: pytest.Config, worker: str) -> Pace:
    """The worker's pace, probed once per session (and per xdist worker); a worker that never registers fails every
    test that needs it with the probe's diagnosis."""
    from harness.pace import parse_interval, resolve
    from harness.startup import StartupFailed, StartupFailure

    paces = config.stash.setdefault(_PACES, {})
    if worker not in paces:
        requested = parse_interval(_option(config, "heartbeat_interval"))
        declared = _declared(config)
        if requested is None and "heartbeat" in declared:
            requested = declared["heartbeat"]
        folder = _run_folder(config) / "pace-probe" / str(len(paces))
        try:
            paces[worker] = resolve(worker, requested, DEFAULT_INTERVAL, folder)
        except StartupFailed as exc:
            paces[worker] = exc.failure
    found = paces[worker]
    if isinstance(found, StartupFailure):
        raise VerdictFailure(
            f"the worker never registered in the pace probe: {found.verdict.value} [{found.rule}]: expected "
            f"{found.expected}; observed {found.observed}"
        )
    return found


class CatalogCollector(pytest.Collector):
    """The selected catalog cases, as items."""

    def __init__(self, *, cases: list[Case], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cases = cases

    def collect(self) -> list[pytest.Item]:
        return [CatalogItem.from_parent(self, name=case.id, case=case) for case in self.cases]


class CatalogItem(pytest.Item):
    """One catalog case run against the --lc-worker command; named by its case id."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker(pytest.mark.lc_catalog)
        self.keywords[case.category] = True
        if case.exclusive:  # floods: under pytest-xdist (--dist loadgroup) they all go to one worker, one at a time
            self.add_marker(pytest.mark.xdist_group(EXCLUSIVE_GROUP))

    def runtest(self) -> None:
        from harness.runner import plan, run_case

        config = self.config
        run = _config_of(config)
        _, left = plan([self.case], run)
        if left:
            config.stash.setdefault(_NOT_RUN, []).extend(left)
            config.stash.setdefault(_RESULTS, [])
            pytest.skip(f"not run: {left[0].reason}")
        with quiet_across_workers(self.case.exclusive):  # floods alone, across pytest-xdist's worker processes too
            result = run_case(self.case, run, _report_folder(config, self.case.id), _run_folder(config))
        config.stash.setdefault(_RESULTS, []).append((run, result))
        self.user_properties.append(("verdict", result.verdict.value))
        self.user_properties.append(("artifacts", result.artifacts))
        outcome(result, strict=_strict(config))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, VerdictFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(self.case.body.__code__.co_filename), self.case.body.__code__.co_firstlineno, f"catalog case {self.case.id}"


@contextlib.contextmanager
def quiet_across_workers(exclusive: bool, path: Path | None = None) -> Iterator[None]:
    """A lock shared by every pytest-xdist worker of this test run (a file lock): catalog items take it shared, cases
    that need a quiet machine alone, so a flood never runs beside another case in any worker. Without xdist it is
    this process's alone (and harness.runner.QUIET does the same within a process)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if path is None:
        if run_id is None:
            yield
            return
        path = Path(tempfile.gettempdir()) / f"locust-conformance-{run_id}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_folder(config: pytest.Config) -> Path:
    """One report folder per xdist worker, so parallel runs never share one."""
    base = _option(config, "report")
    worker_id = os.environ.get("PYTEST_XDIST_WORKER", "main")
    root = Path(base) if base else config._tmp_path_factory.getbasetemp() / "locust-conformance"  # type: ignore[attr-defined]
    return root / worker_id


def _report_folder(config: pytest.Config, case_id: str) -> Path:
    return _run_folder(config) / "cases" / case_id.replace("/", "__")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With --lc-report, the catalog items' folder gets results.json, junit.xml and the HTML report, as `run` writes."""
    runs = session.config.stash.get(_RESULTS, [])
    not_run = session.config.stash.get(_NOT_RUN, [])
    if not (runs or not_run) or _option(session.config, "report") is None:
        return
    import json

    from harness.report import write_run_report
    from harness.runner import RunResult

    folder = _run_folder(session.config)
    started = session.config.stash[_STARTED]
    elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    config = runs[0][0] if runs else _config_of(session.config)
    run = RunResult(config, [result for _, result in runs], started.isoformat(timespec="seconds"), elapsed, not_run)
    (folder / "results.json").write_text(json.dumps(run.to_json(), indent=2) + "\n", "utf-8")
    try:
        write_run_report(folder)
    except Exception as exc:  # a failure of ours: say so, and never let the session pass
        session.config.get_terminal_writer().line(
            f"locust-conformance: could not write the report in {folder}: {exc!r}", red=True
        )
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def master_profile_of(config: pytest.Config) -> MasterProfile:
    """--lc-master-profile (or lc_master_profile), default 2.47; an unknown name stops the session with the known ones."""
    from harness.protocol.profiles import DEFAULT_PROFILE, UnknownProfile, master_profile

    name = _option(config, "master_profile")
    if name is None:
        return DEFAULT_PROFILE
    try:
        return master_profile(str(name))
    except UnknownProfile as exc:
        raise pytest.UsageError(f"--lc-master-profile: {exc}") from None


def _config_of(config: pytest.Config) -> RunConfig:
    """The catalog items' run config: the --lc- options and the worker's pace (probed once per session)."""
    from harness.runner import RunConfig

    worker = str(_option(config, "worker"))
    pace = session_pace(config, worker)
    label = worker if worker in ("reference", "locust") else "custom"
    limit = _option(config, "max_case_seconds")
    user_class = str(_option(config, "user_class") or DEFAULT_USER_CLASS)
    return RunConfig(
        worker,
        label,
        pace.interval,
        user_class,
        _declared(config),
        pace,
        float(limit) if limit else None,
        master_profile_of(config),
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = datetime.datetime.now(datetime.UTC)


def evidence(result: CaseResult) -> str:
    """The verdict and every finding that is not OK, with where the evidence lies on disk."""
    from harness.verdicts import Verdict

    lines = [f"{result.case.id}: {result.verdict.value} ({result.case.title})", f"expected: {result.case.expectation}"]
    lines += [f"  {f}" for f in result.findings if f.verdict is not Verdict.OK]
    lines.append(f"evidence: {result.artifacts}")
    return "\n".join(lines)


def outcome(result: CaseResult, *, strict: bool) -> None:
    """Turn a verdict into a pytest outcome (see the module docstring)."""
    from harness.verdicts import NOT_JUDGED, Verdict

    text = evidence(result)
    verdict = result.verdict
    if verdict is Verdict.FAILED or verdict in NOT_JUDGED or (strict and verdict is Verdict.NON_STRICT):
        raise VerdictFailure(text)
    if result.verdict in (Verdict.INFORMATIONAL, Verdict.UNIMPLEMENTED):
        pytest.skip(text)
    if result.verdict is Verdict.NON_STRICT:
        import warnings

        warnings.warn(LocustConformanceWarning(text), stacklevel=1)


# -- fixtures for custom scenarios ------------------------------------------------------------------


def _marker_arg(request: pytest.FixtureRequest, name: str) -> Any:
    marker = request.node.get_closest_marker(name)
    return marker.args[0] if marker and marker.args else None


@pytest.fixture
def lc_worker_command(request: pytest.FixtureRequest) -> str:
    """The worker command: the ``lc_worker`` marker, else --lc-worker / lc_worker, else 'reference'."""
    return str(_marker_arg(request, "lc_worker") or _option(request.config, "worker") or DEFAULT_WORKER)


@pytest.fixture
def lc_timing(request: pytest.FixtureRequest, lc_worker_command: str) -> Timing:
    """The worker's timing: the ``lc_heartbeat_interval`` marker, else the option, else (a command without
    {heartbeat_interval}, or 'auto') its own pace measured once per session; with --lc-worker-timing's periods."""
    from harness.launcher import takes_interval
    from harness.worker_timing import worker_timing

    interval = _marker_arg(request, "lc_heartbeat_interval") or _option(request.config, "heartbeat_interval")
    if interval in (None, "auto") and (interval == "auto" or not takes_interval(lc_worker_command)):
        seconds = session_pace(request.config, lc_worker_command).interval
    else:
        seconds = float(interval or DEFAULT_INTERVAL)
    return worker_timing(seconds, _declared(request.config))


@pytest.fixture
def fake_master(lc_timing: Timing, request: pytest.FixtureRequest) -> Iterator[FakeMaster]:
    """A running fake master on 127.0.0.1, on a free port, behaving like --lc-master-profile's; closed after the test."""
    from fakemaster.master import FakeMaster

    with FakeMaster(timing=lc_timing, profile=master_profile_of(request.config)) as master:
        yield master


@pytest.fixture
def lc_worker(fake_master: FakeMaster, lc_worker_command: str, lc_timing: Timing, tmp_path: Path) -> Iterator[WorkerProcess]:
    """The worker command started against ``fake_master`` in its own process group (output in tmp_path/worker.log);
    always stopped and reaped after the test."""
    from harness.launcher import WorkerProcess, render_command

    command = render_command(lc_worker_command, fake_master.host, fake_master.port, lc_timing.heartbeat_interval)
    process = WorkerProcess(command, tmp_path / "worker.log", clock=fake_master.clock.now, on_line=fake_master.output_line)
    with process:
        yield process


@pytest.fixture
def lc_context(
    fake_master: FakeMaster, lc_worker: WorkerProcess, lc_timing: Timing, request: pytest.FixtureRequest
) -> Iterator[CaseContext]:
    """The catalog's scripting API (handshake, spawn, expect, observe, quit, ...) on ``fake_master`` and ``lc_worker``,
    after the worker's first message. A FAILED, UNKNOWN or SCENARIO-ERROR finding the script notes (``ctx.note``,
    ``require_exit``) fails the test at teardown; for every oracle's judgement use ``lc_run``."""
    from harness.catalog import CaseContext
    from harness.verdicts import NOT_JUDGED, Verdict

    ctx = CaseContext(fake_master, lc_worker, lc_timing, str(_option(request.config, "user_class") or DEFAULT_USER_CLASS))
    ctx.first_message()
    yield ctx
    bad = [f for f in ctx.findings if f.verdict is Verdict.FAILED or f.verdict in NOT_JUDGED]
    if bad:
        pytest.fail("\n".join(map(str, bad)), pytrace=False)


@pytest.fixture
def lc_run(
    lc_worker_command: str, lc_timing: Timing, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., CaseResult]:
    """Run a scenario body like a catalog case: ``lc_run(body, budget=20)`` -> CaseResult (verdict, findings).

    The body gets a CaseContext; a fresh fake master and worker, every oracle, evidence under tmp_path.
    """
    from harness.catalog import Case
    from harness.runner import RunConfig, run_case

    def run(body: Callable[[CaseContext], None], *, budget: float = 30, title: str = "", expectation: str = "") -> CaseResult:
        name = request.node.name
        case = Case(f"custom/{name}", "timing", title or name, expectation or "no FAILED verdict", "", body, budget)
        user_class = str(_option(request.config, "user_class") or DEFAULT_USER_CLASS)
        config = RunConfig(
            lc_worker_command,
            "custom",
            lc_timing.heartbeat_interval,
            user_class,
            _declared(request.config),
            master_profile=master_profile_of(request.config),
        )
        return run_case(case, config, tmp_path / "case")

    return run


@pytest.fixture
def lc_assert_verdict() -> Callable[..., None]:
    """``lc_assert_verdict(result, "OK", "INFORMATIONAL")``: fail with the evidence unless the verdict is allowed."""

    def check(result: CaseResult, *allowed: str) -> None:
        wanted = allowed or ("OK",)
        if result.verdict.value not in wanted:
            pytest.fail(f"verdict {result.verdict.value}, expected {' or '.join(wanted)}\n{evidence(result)}", pytrace=False)

    return check
