"""The master catalog against real Locust masters and our fake master, and each master oracle failing on a master
with the defect it looks for.

- locust@2.47.0 and locust@2.15.1 run the whole catalog and get the verdicts docs/master-expected.json documents:
  the listener crashes of locust-versions.md are FAILED where the release has them and OK where it fixed them.
- fake@2.47 and fake@2.15 agree with the real master of their release on every case they run.
- The missing rule measured on the real 2.47 master (20 trials, phases spread over a second) lies in Locust's window,
  and so does the fake master's.
Runs beside the rest of the suite (the Makefile's BESIDE): the masters keep Locust's 1 s pace and mostly wait.
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
from pathlib import Path

import pytest

from harness.master_catalog.cases import CASES
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
    assert low - 0.05 <= m["min"] and m["max"] <= high + 0.25, m
    # the phases are spread over one interval, so the trials cover most of the window: the rule, not a point of it
    assert m["max"] - m["min"] >= 0.7 * (high - low), m


def _one(case_id: str, command: str, folder: Path) -> MasterRunResult:
    return run_master_catalog([c for c in CASES if c.id == case_id], MasterCommand(command), folder, jobs=1)


def _oracles(run: MasterRunResult) -> dict[str, str]:
    return {f.oracle: f.verdict.value for r in run.results for f in r.findings}


def test_each_master_oracle_fails_on_a_master_with_its_defect(runs: dict[str, MasterRunResult], tmp_path: Path) -> None:
    fake = f"{PYTHON} -m harness.cli master --serve --host {{host}} --port {{port}}"

    def real(users: str, run_time: str, locustfile: str = "lossy_stats.py") -> str:
        """Locust's master with a defect: it takes {users} and {run_time} (so it can run a load test) and may ignore them."""
        return (
            f"env LC_USERS_ASKED={{users}} LC_RUN_TIME_ASKED={{run_time}} {PYTHON} -m locust -f {DEFECTS / locustfile} "
            f"--master --master-bind-host {{host}} --master-bind-port {{port}} --headless --expect-workers {{workers}} "
            f"-u {users} -r {{rate}} -t {run_time} --csv {{csv}} --loglevel INFO"
        )

    plan = {
        # a ROUTER that reads nothing: no worker can join
        "registers": ("handshake/01-ack", f"{PYTHON} {DEFECTS / 'silent_router.py'} {{host}} {{port}}"),
        # the fake master at a 0.5 s heartbeat interval: missing after 2-2.5 s, before a healthy late heartbeat
        "early": ("liveness/01-missing-window", fake + " --heartbeat-interval 0.5"),
        # at a 3 s interval: missing after 12-15 s, never within the case's patience
        "late": ("liveness/01-missing-window", fake + " --heartbeat-interval 3"),
        # the real master, told 3 users instead of {users}
        "dispatch": ("dispatch/01-users-split", real("3", "{run_time}")),
        # told the right users, but a run of 40 s instead of {run_time}: no quit when the run should have ended
        "quit": ("dispatch/01-users-split", real("{users}", "40s")),
        # with a locustfile that empties every worker report before the master merges it
        "stats": ("stats/01-merge", real("{users}", "{run_time}")),
    }
    results: dict[str, MasterRunResult] = {}

    def one(name: str) -> None:
        case_id, command = plan[name]
        results[name] = _one(case_id, command, tmp_path / name)

    threads = [threading.Thread(target=one, args=(name,)) for name in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(results) == set(plan)
    assert all(run.results for run in results.values()), {name: run.not_run for name, run in results.items()}
    assert _oracles(results["registers"]) == {"master.registers": "FAILED"}
    assert _oracles(results["early"]).get("master.missing-window.early") == "FAILED"
    assert _oracles(results["late"]).get("master.missing.never") == "FAILED"
    assert _oracles(results["dispatch"]) == {"master.dispatch": "FAILED"}
    assert _oracles(results["quit"]) == {"master.quit": "FAILED"}
    assert _oracles(results["stats"]).get("master.stats-merge") == "FAILED"
    # the rest come from the releases: no ack (fake 2.15 acks; 2.8's master does not), no heartbeat replies before 2.19,
    # and a dead listener (2.15's, on an unknown spawning_complete)
    assert _oracles(runs["fake@2.15"]).get("master.heartbeat-reply") == "UNIMPLEMENTED"
    assert _oracles(runs["locust@2.15.1"]).get("master.listener-alive") == "FAILED"
    no_ack = _one("handshake/01-ack", "fake@2.8", tmp_path / "no-ack")
    assert _oracles(no_ack) == {"master.ack": "UNIMPLEMENTED"}
