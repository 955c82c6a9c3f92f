"""A worker's own timing: declared periods, measured cadence, adopting or refusing an interval (harness.worker_timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.catalog import all_cases, by_id
from harness.errors import ScenarioError
from harness.protocol.timing import LOCUST_TIMING
from harness.worker_timing import Cadence, load_worker_profile, parse_worker_timing, timing_json, worker_timing


def test_parse_worker_timing() -> None:
    assert parse_worker_timing("report=3, master-timeout=60,connect-timeout=5") == {
        "report": 3.0,
        "master-timeout": 60.0,
        "connect-timeout": 5.0,
    }
    assert parse_worker_timing("") == {}


@pytest.mark.parametrize("spec", ["report", "report=x", "report=-1", "report=0", "reports=3", "report=inf", "=3"])
def test_bad_worker_timing_is_a_usage_error(spec: str) -> None:
    with pytest.raises(ScenarioError, match="worker-timing"):
        parse_worker_timing(spec)


def test_declared_periods_replace_the_derived_ones() -> None:
    timing = worker_timing(1.0, {"report": 2.0, "master-timeout": 30.0})
    assert (timing.heartbeat_interval, timing.report_interval, timing.master_heartbeat_timeout) == (1.0, 2.0, 30.0)
    assert timing.connect_timeout == 5.0  # not declared: Locust's proportion
    assert worker_timing(0.2).report_interval == pytest.approx(0.6)
    assert timing_json(LOCUST_TIMING) == {
        "heartbeat": 1.0,
        "report": 3.0,
        "master-timeout": 60.0,
        "connect-timeout": 5.0,
        "log-report": 10.0,
        "cpu-monitor": 10.0,
    }


def test_worker_profile(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('worker = "java -jar w.jar --port {port}"\nname = "mine"\n[timing]\nreport = 3\nmaster-timeout = 90\n')
    profile = load_worker_profile(path)
    assert (profile.worker, profile.name, dict(profile.timing or {})) == (
        "java -jar w.jar --port {port}",
        "mine",
        {"report": 3.0, "master-timeout": 90.0},
    )
    path.write_text("[timing]\nreprot = 3\n")
    with pytest.raises(ScenarioError, match="unknown \\[timing\\] keys"):
        load_worker_profile(path)
    path.write_text("not toml = = 1")
    with pytest.raises(ScenarioError, match="TOML"):
        load_worker_profile(path)


def test_cadence_adopts_the_round_interval_it_is_near() -> None:
    assert Cadence.of([0.0, 1.001, 2.0, 3.004, 4.0]).adopted() == 1.0
    assert Cadence.of([0.0, 0.21, 0.4, 0.61, 0.8]).adopted() == 0.2
    assert Cadence.of([0.0, 0.7, 1.4, 2.1]).adopted() == 0.7  # no round interval within 20 %: the median itself
    late = Cadence.of([0.0, 1.0, 2.3, 3.3, 4.9, 5.9])  # a worker with late heartbeats still keeps a 1 s pace
    assert late.adopted() == 1.0


def test_follows_tells_a_worker_at_its_own_pace_from_a_late_one() -> None:
    own_pace = Cadence.of([0.0, 1.0, 2.0, 3.0, 4.0])
    assert not own_pace.follows(0.2)  # never as fast as asked: it keeps its own 1 s
    assert not own_pace.follows(5.0)  # always much faster than asked
    assert own_pace.follows(1.0)
    late = Cadence.of([0.0, 0.2, 0.55, 0.75, 1.1])  # the slow-recv-timeout defect at 0.2 s: late, but following
    assert late.follows(0.2)
    assert not Cadence.of([0.0]).measured and Cadence.of([0.0, 1.0, 2.0]).measured


def test_case_budgets_follow_the_workers_periods() -> None:
    silence = by_id("reconnect/03-master-silence-timeout")
    assert silence.seconds(LOCUST_TIMING) == pytest.approx(10 + 1.5 * 60)
    assert silence.seconds(worker_timing(1.0, {"master-timeout": 20})) == pytest.approx(10 + 1.5 * 20)
    assert silence.seconds(LOCUST_TIMING.compressed(0.2)) == pytest.approx(2 + 1.5 * 12)
    assert by_id("stats/01-cadence").seconds(worker_timing(1.0, {"report": 10})) == pytest.approx(4 + 2.4 * 10)


def test_no_case_imposes_its_own_interval() -> None:
    for case in all_cases():
        assert "heartbeat_interval" not in case.to_json(), case.id
