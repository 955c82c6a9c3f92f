"""The master catalog against real Locust masters and our fake master, and each master oracle failing on a master
with the defect it looks for.

- locust@2.47.0 and locust@2.15.1 run the whole catalog and get the verdicts docs/master-expected.json documents:
  the listener crashes of locust-versions.md are FAILED where the release has them and OK where it fixed them.
- fake@2.47 and fake@2.15 agree with the real master of their release on every case they run.
- The missing rule measured on the real 2.47 master (20 trials, phases spread over a second) lies in Locust's window,
  and so does the fake master's.
"""

from __future__ import annotations

import json
import shlex
import sys
import concurrent.futures
from pathlib import Path

import pytest

from harness.master_catalog.cases import CASES, LOG_SLACK
from harness.master_catalog.masters import MasterCommand
from harness.master_catalog.run import MasterRunResult, run_master_catalog
from harness.master_catalog.verdict_page import unexplained
from harness.protocol.timing import LOCUST_TIMING
from harness.verdicts import Verdict
from tests.foreign_peers import locust_or_skip

locust_or_skip()

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
EXPECTED = ROOT / "docs" / "master-expected.json"
MASTERS = ("locust@2.47.0", "locust@2.15.1", "fake@2.47", "fake@2.15")
DEFECTS = ROOT / "tests" / "master_defects"
PYTHON = shlex.quote(sys.executable)


def expected() -> dict[str, dict[str, str]]:
    return {k: v for k, v in json.loads(EXPECTED.read_text()).items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MasterRunResult]:
    """The whole catalog against each of MASTERS, one master's catalog at a time (three cases at once): the suite's
    other tests run beside this module, and the timing verdicts are documented as exact."""
    root = tmp_path_factory.mktemp("master-catalog")
    return {text: run_master_catalog(list(CASES), MasterCommand(text), root / text.replace("@", "-"), jobs=3) for text in MASTERS}


def _verdicts(run: MasterRunResult) -> dict[str, str]:
    return {r.case.id: r.verdict.value for r in run.results}


def _explain(run: MasterRunResult) -> str:
    return "\n".join(f"{r.case.id}: {r.summary()}" for r in run.results if r.verdict is not Verdict.OK)


@pytest.mark.parametrize("master", MASTERS)
def test_each_master_gets_its_documented_verdicts(runs: dict[str, MasterRunResult], master: str) -> None:
    run = runs[master]
    assert _verdicts(run) == expected()[master], _explain(run)
    assert not [r for r in run.results if r.verdict in (Verdict.UNKNOWN, Verdict.SCENARIO_ERROR)]
    assert unexplained([run.to_json()]) == []


def test_the_listener_crashes_are_where_the_releases_have_them(runs: dict[str, MasterRunResult]) -> None:
    """2.15 fixed the unknown spawning (PR #2309), 2.10 the unknown client_stopped; 2.47 the unknown
    spawning_complete (PR #3516); a numeric client_ready and a non-msgpack frame kill both."""
    old, new = _verdicts(runs["locust@2.15.1"]), _verdicts(runs["locust@2.47.0"])
    assert old["robustness/01-unknown-spawning-complete"] == "FAILED" and new["robustness/01-unknown-spawning-complete"] == "OK"
    assert old["robustness/02-unknown-spawning"] == new["robustness/02-unknown-spawning"] == "OK"
    assert old["robustness/03-unknown-client-stopped"] == new["robustness/03-unknown-client-stopped"] == "OK"
    for case in ("robustness/04-client-ready-number", "robustness/05-not-msgpack"):
        assert old[case] == new[case] == "FAILED"
    crash = next(r for r in runs["locust@2.15.1"].results if r.case.id == "robustness/01-unknown-spawning-complete")
    assert "client_listener" in crash.findings[0].observed and "KeyError" in crash.findings[0].observed


@pytest.mark.parametrize("release, profile", [("locust@2.47.0", "fake@2.47"), ("locust@2.15.1", "fake@2.15")])
def test_the_fake_master_agrees_with_the_real_master_of_its_release(
    runs: dict[str, MasterRunResult], release: str, profile: str
) -> None:
    real, fake = _verdicts(runs[release]), _verdicts(runs[profile])
    assert fake, "the fake master ran no case"
    assert {case: real[case] for case in fake} == fake, _explain(runs[profile])
    not_run = {n.case.id for n in runs[profile].not_run}
    assert not_run == {c.id for c in CASES if c.needs}  # only the load-test cases, which a serving fake master cannot take


@pytest.mark.parametrize("master", ["locust@2.47.0", "fake@2.47"])
def test_the_missing_window_is_locusts_rule(runs: dict[str, MasterRunResult], master: str) -> None:
    result = next(r for r in runs[master].results if r.case.id == "liveness/01-missing-window")
    m = result.measurements["missing_after_s"]
    low, high = LOCUST_TIMING.missing_after_min, LOCUST_TIMING.missing_after_max
    assert m["declared"] == m["trials"] == 20
    assert low - 0.05 <= m["min"] and m["max"] <= high + LOG_SLACK, m
    # the phases are spread over one interval, so the trials cover most of the window: the rule, not a point of it
    assert m["max"] - m["min"] >= 0.7 * (high - low), m


def _one(case_id: str, command: str, folder: Path) -> MasterRunResult:
    return run_master_catalog([c for c in CASES if c.id == case_id], MasterCommand(command), folder, jobs=1)


def _oracles(run: MasterRunResult) -> dict[str, str]:
    return {f.oracle: f.verdict.value for r in run.results for f in r.findings}


FAKE = f"{PYTHON} -m harness.cli master --serve --host {{host}} --port {{port}}"


def _real(users: str, run_time: str, locustfile: str, env: str = "", csv: bool = True) -> str:
    """Locust's master with a defect: it takes {users} and {run_time} (so it can run a load test) and may ignore them."""
    return (
        f"env LC_USERS_ASKED={{users}} LC_RUN_TIME_ASKED={{run_time}} {env} {PYTHON} -m locust -f {DEFECTS / locustfile} "
        f"--master --master-bind-host {{host}} --master-bind-port {{port}} --headless --expect-workers {{workers}} "
        f"-u {users} -r {{rate}} -t {run_time} {'--csv {csv}' if csv else ''} --loglevel INFO"
    )


def _garbled(defect: str) -> str:
    return _real("{users}", "{run_time}", "garbled_spawns.py", env=f"LC_SPAWN_DEFECT={defect}")


# oracle -> (case, a master that has the defect the oracle exists for, its verdict there)
DEMOS: dict[str, tuple[str, str, str]] = {
    "master.registers": ("handshake/01-ack", f"{PYTHON} {DEFECTS / 'silent_router.py'} {{host}} {{port}}", "FAILED"),
    "master.registers.stranger": (
        "robustness/08-stranger-heartbeats",
        FAKE + " --serve-defect stranger-registers",
        "INFORMATIONAL",
    ),
    "master.reregister": ("handshake/02-reregister", FAKE + " --serve-defect first-ack-only", "FAILED"),
    "master.ack": ("handshake/01-ack", "fake@2.8", "UNIMPLEMENTED"),
    "master.ack.missing": ("handshake/01-ack", FAKE + " --serve-defect one-ack", "FAILED"),
    "master.registers.some": ("load/01-many-workers", FAKE + " --serve-defect first-50-only", "FAILED"),
    "master.ack.late": ("handshake/01-ack", FAKE + " --serve-defect late-ack", "NON-STRICT"),
    "master.ack-index.nil": ("handshake/01-ack", FAKE + " --serve-defect nil-ack", "INFORMATIONAL"),
    "master.ack-index.malformed": ("handshake/01-ack", FAKE + " --serve-defect bad-ack-index", "FAILED"),
    "master.ack-index.shared": ("handshake/01-ack", FAKE + " --serve-defect shared-index", "FAILED"),
    "master.heartbeat-reply": ("heartbeat/01-replies", "fake@2.15", "UNIMPLEMENTED"),
    "master.heartbeat-reply.lost": ("heartbeat/01-replies", FAKE + " --serve-defect every-other-reply", "NON-STRICT"),
    "master.heartbeat-reply.late": ("heartbeat/01-replies", FAKE + " --serve-defect late-replies", "NON-STRICT"),
    # the fake master's own liveness at another interval: 3 s (missing after 12-15 s: never within the case's
    # patience), 0.5 s (after 2-2.5 s: before an ordinary late heartbeat), 1.2 s (after 4.8-6 s: late)
    "master.missing.never": ("liveness/01-missing-window", FAKE + " --heartbeat-interval 3", "FAILED"),
    "master.missing-window.early": ("liveness/01-missing-window", FAKE + " --heartbeat-interval 0.5", "FAILED"),
    "master.missing-window": ("liveness/01-missing-window", FAKE + " --heartbeat-interval 1.2", "NON-STRICT"),
    "master.missing.false": ("liveness/01-missing-window", FAKE + " --serve-defect false-missing", "FAILED"),
    "master.quit.unprompted": ("liveness/01-missing-window", FAKE + " --serve-defect quit-on-register", "FAILED"),
    "master.listener-alive": ("robustness/01-unknown-spawning-complete", "fake@2.20", "FAILED"),
    "master.stall": ("robustness/06-trailing-bytes", "locust@2.8.6", "NON-STRICT"),
    "master.reconnect": ("robustness/06-trailing-bytes", "fake@2.8", "INFORMATIONAL"),
    "master.reconnect-target": ("robustness/06-trailing-bytes", FAKE + " --serve-defect reconnect-wrong", "FAILED"),
    # the real 2.47 master, told 3 users instead of {users}; a run of 40 s instead of {run_time}; garbling its spawns
    "master.dispatch": ("dispatch/01-users-split", _real("3", "{run_time}", "lossy_stats.py"), "FAILED"),
    "master.quit": ("dispatch/01-users-split", _real("{users}", "40s", "lossy_stats.py"), "FAILED"),
    "master.dispatch.uneven": ("dispatch/01-users-split", _garbled("uneven"), "FAILED"),
    "master.spawn-schema": ("dispatch/01-users-split", _garbled("no-host"), "FAILED"),
    "master.spawn-schema.deviation": ("dispatch/01-users-split", _garbled("no-parsed-options"), "INFORMATIONAL"),
    "master.spawn-order": ("dispatch/01-users-split", _garbled("same-timestamp"), "FAILED"),
    "master.redispatch": ("dispatch/03-quit-before-report", "locust@2.47.0", "FAILED"),
    # losing every worker report before the merge; writing no CSV at all
    "master.stats-merge": ("stats/01-merge", _real("{users}", "{run_time}", "lossy_stats.py"), "FAILED"),
    "master.stats-merge.no-report": ("stats/01-merge", _real("{users}", "{run_time}", "lossy_stats.py", csv=False), "FAILED"),
}


def test_every_master_oracle_has_a_demonstration() -> None:
    from harness.master_catalog.consequences import RULES

    assert set(DEMOS) == {oracle for oracle in RULES if oracle.startswith("master.")}
    assert all(RULES[oracle].verdict.value == verdict for oracle, (_, _, verdict) in DEMOS.items())


def test_each_master_oracle_fails_on_a_master_with_its_defect(tmp_path: Path) -> None:
    """Each one on its own master, four at a time."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            oracle: pool.submit(_one, case_id, command, tmp_path / oracle.replace(".", "_"))
            for oracle, (case_id, command, _) in DEMOS.items()
        }
        results = {oracle: future.result(timeout=240) for oracle, future in futures.items()}
    wrong = {
        oracle: _oracles(run) or [n.reason for n in run.not_run]
        for oracle, run in results.items()
        if _oracles(run).get(oracle) != DEMOS[oracle][2]
    }
    assert wrong == {}
