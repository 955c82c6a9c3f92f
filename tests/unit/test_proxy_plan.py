"""The proxy's fault plan (pure): directions, groups by worker, malformed and pause faults, and errors that name the
field; and the master's rule applied to what each worker sent and to what the master got."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.protocol.timing import LOCUST_TIMING, LivenessChange, LivenessCounter
from harness.proxy.liveness import LivenessViews, View
from harness.proxy.plan import MalformedChooser, ProxyPlan, load_plan

PLAN = {
    "seed": 7,
    "faults": [
        {"direction": "to-master", "workers": ["victim_*"], "kind": "drop", "types": ["heartbeat"], "start": 4, "end": 10},
        {"direction": "to-worker", "kind": "delay", "seconds": 0.5},
        {"direction": "to-master", "kind": "duplicate", "copies": 2, "count": 1},
        {"direction": "to-worker", "kind": "malformed", "malformed": "garbage", "types": ["spawn"], "count": 1},
        {"direction": "to-master", "kind": "pause", "start": 1, "end": 2},
    ],
}


def test_a_plan_groups_its_faults_by_direction_and_workers_and_round_trips() -> None:
    plan = ProxyPlan.from_dict(PLAN)
    to_master = plan.groups_for("to-master")
    assert [(g.workers, [f.kind for f in g.plan.faults]) for g in to_master] == [(("victim_*",), ["drop"]), ((), ["duplicate"])]
    assert to_master[0].names("victim_1") and not to_master[0].names("healthy_1") and to_master[1].names("anyone")
    assert [f.kind for g in plan.groups_for("to-worker") for f in g.plan.faults] == ["delay"]
    assert all(g.plan.seed == 7 for g in plan.groups)
    assert [(m.direction, m.malformed) for m in plan.malformed] == [("to-worker", "garbage")]
    assert [(p.direction, p.start, p.end, p.label) for p in plan.pauses] == [("to-master", 1, 2, "pause-reading")]
    again = ProxyPlan.from_dict(plan.to_dict())
    assert again == plan and not again.empty and ProxyPlan().empty


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"kind": "drop"}, "'direction'"),
        ({"direction": "sideways", "kind": "drop"}, "'direction'"),
        ({"direction": "to-master", "kind": "explode"}, "'kind'"),
        ({"direction": "to-master", "kind": "delay", "seconds": -1}, "'seconds'"),
        ({"direction": "to-master", "kind": "malformed", "malformed": "nonsense"}, "'malformed'"),
        ({"direction": "to-master", "kind": "malformed", "malformed": "garbage", "copies": 2}, "'copies'"),
        ({"direction": "to-master", "kind": "pause", "start": 1}, "'end'"),
        ({"direction": "to-master", "kind": "pause", "end": 2, "types": ["heartbeat"]}, "'types'"),
        ({"direction": "to-master", "kind": "pause", "end": 2, "workers": ["a"]}, "'workers'"),
        ({"direction": "to-master", "kind": "drop", "workers": []}, "'workers'"),
        ({"direction": "to-master", "kind": "drop", "start": 5, "end": 2}, "'end'"),
    ],
)
def test_a_bad_fault_is_a_scenario_error_naming_its_index_and_field(fault: dict[str, object], says: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        ProxyPlan.from_dict({"faults": [{"direction": "to-worker", "kind": "drop"}, fault]})
    assert str(caught.value).startswith("faults[1]: ") and says in str(caught.value)


def test_a_plan_file_that_is_not_a_plan_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_plan(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_plan(tmp_path / "absent.json")
    with pytest.raises(ScenarioError, match="'seed'"):
        ProxyPlan.from_dict({"seed": "one"})
    toml = tmp_path / "plan.toml"
    toml.write_text('seed = 3\n[[faults]]\ndirection = "to-worker"\nkind = "drop"\ntypes = ["heartbeat"]\n')
    assert load_plan(toml).to_dict() == {
        "seed": 3,
        "faults": [{"direction": "to-worker", "kind": "drop", "types": ["heartbeat"]}],
    }
    good = tmp_path / "plan2.json"
    good.write_text(json.dumps(PLAN))
    assert load_plan(good) == ProxyPlan.from_dict(PLAN)


def test_malformed_faults_fire_by_direction_worker_type_window_and_count() -> None:
    plan = ProxyPlan.from_dict(
        {
            "faults": [
                {
                    "direction": "to-master",
                    "workers": ["w1"],
                    "kind": "malformed",
                    "malformed": "garbage",
                    "start": 1,
                    "end": 3,
                    "count": 2,
                }
            ]
        }
    )
    chooser = MalformedChooser(plan.malformed, plan.seed, started_at=100.0)
    assert chooser.choose("to-master", "w1", "heartbeat", 100.5) is None  # before the window
    assert chooser.choose("to-worker", "w1", "heartbeat", 101.5) is None  # the other direction
    assert chooser.choose("to-master", "w2", "heartbeat", 101.5) is None  # another worker
    assert chooser.choose("to-master", "w1", None, 101.5) is not None  # raw frames too (no types given)
    assert chooser.choose("to-master", "w1", "stats", 102.0) is not None
    assert chooser.choose("to-master", "w1", "stats", 102.5) is None  # count spent
    late = MalformedChooser(plan.malformed, plan.seed, started_at=100.0)
    assert late.choose("to-master", "w1", "stats", 103.0) is None  # the window has ended


def test_the_rule_on_what_was_sent_and_on_what_was_delivered_diverges_only_when_beats_are_held() -> None:
    views = LivenessViews(LOCUST_TIMING)
    views.start(0.0)
    for view in View:
        views.beat("w", view, registers=True)
    assert views.beat("stranger", View.SENT, registers=False) is None  # never registered: counts for nothing
    changes: list[tuple[float, str, View, LivenessChange]] = []
    for step in range(1, 13):
        t = float(step)
        views.beat("w", View.SENT, registers=False)  # the worker keeps beating
        if t <= 2 or t >= 10:  # the master gets nothing between 2 and 10 s
            change = views.beat("w", View.DELIVERED, registers=False)
            if change is not None:
                changes.append((t, "w", View.DELIVERED, change))
        changes += [(t, i, v, c) for i, v, c in views.tick(t + 0.5)]
    # the last beat the master got was at 2 s; the 5th tick after it (6.5 s, 4.5 s later) marks it missing
    assert changes == [(6.0, "w", View.DELIVERED, LivenessChange.MISSING), (10.0, "w", View.DELIVERED, LivenessChange.HEALED)]
    views.forget("w", View.DELIVERED)
    assert ("w", View.DELIVERED) not in views.workers and ("w", View.SENT) in views.workers


EVENTS = st.lists(
    st.tuples(st.sampled_from(["beat", "ready", "forget", "tick", "late-tick"]), st.sampled_from(["a", "b"])), max_size=200
)


@given(EVENTS)
def test_the_rule_counted_in_ticks_is_locusts_counter(events: list[tuple[str, str]]) -> None:
    """The deadline heap reports exactly what Locust's per-worker counter does, tick for tick (late ticks included)."""
    views = LivenessViews(LOCUST_TIMING)
    views.start(0.0)
    counters: dict[str, LivenessCounter] = {}
    now = 0.0
    for event, who in events:
        if event in ("tick", "late-tick"):
            now = views.next_tick + (2.5 if event == "late-tick" else 0.0)  # type: ignore[operator]
            got = [(i, c) for i, _, c in views.tick(now)]
            expected = []
            for name, counter in list(counters.items()):
                change = counter.tick()
                if change is not None:
                    expected.append((name, change))
                if change is LivenessChange.DEAD:
                    del counters[name]
            assert sorted(got) == sorted(expected)
        elif event == "forget":
            views.forget(who, View.SENT)
            counters.pop(who, None)
        else:
            got_change = views.beat(who, View.SENT, registers=event == "ready")
            if event == "ready":
                counters[who] = LivenessCounter()
                want = None
            else:
                want = counters[who].heartbeat() if who in counters else None
            assert got_change == want


def test_a_silent_worker_is_missing_on_the_5th_tick_and_deleted_on_the_65th() -> None:
    views = LivenessViews(LOCUST_TIMING)
    views.start(0.0)
    views.beat("w", View.DELIVERED, registers=True)
    changes = {tick: views.tick(float(tick)) for tick in range(1, 70)}
    assert {t: c for t, c in changes.items() if c} == {
        5: [("w", View.DELIVERED, LivenessChange.MISSING)],
        65: [("w", View.DELIVERED, LivenessChange.DEAD)],
    }
    assert views.workers == {} and views.beat("w", View.DELIVERED, registers=False) is None  # deleted: must register
