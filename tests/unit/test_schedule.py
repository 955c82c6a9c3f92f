"""Schedules as data (harness.schedule): drawn whole, bounded, printable, and replayable from JSON."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.schedule import (
    ACTIONS,
    MAX_STEPS,
    MAX_TOTAL_INTERVALS,
    Schedule,
    Step,
    schedules,
    steps,
)


@given(schedules())
def test_any_drawn_schedule_round_trips_through_json(schedule: Schedule) -> None:
    again = Schedule.from_json(schedule.to_json())
    assert again == schedule
    assert again.describe() == schedule.describe()


@given(schedules())
def test_drawn_schedules_stay_within_their_bounds(schedule: Schedule) -> None:
    assert len(schedule.steps) <= MAX_STEPS
    assert schedule.total_intervals <= MAX_TOTAL_INTERVALS + 1e-9
    for step in schedule.steps:
        assert set(step.to_dict()) == {"action", "intervals", *ACTIONS[step.action]}


@settings(max_examples=300)
@given(st.data())
def test_every_action_can_be_drawn(data: st.DataObject) -> None:
    action = data.draw(st.sampled_from(sorted(ACTIONS)))
    step = data.draw(steps((action,)))
    assert step.action == action
    assert Step.from_dict(step.to_dict()) == step


def test_a_schedule_reads_like_what_it_does() -> None:
    schedule = Schedule(
        (Step("spawn", 1.5, users=3), Step("storm", 2, threads=2, rate=500.0, mix="heartbeat"), Step("quiet", 5)),
        quit_at_end=True,
    )
    assert schedule.describe() == "spawn 3 for 1.5 · storm heartbeat 2x500/s for 2 · quiet for 5 · quit"
    assert Schedule().describe() == "(no steps)"
    assert schedule.total_intervals == 8.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "explode"}, "unknown action 'explode'"),
        ({"action": "quiet", "intervals": 99}, "intervals must be in"),
        ({"action": "quiet", "users": 3}, "unknown fields ['users']"),
        ({"action": "malformed", "kind": "nonsense"}, "is not one of"),
        ({"action": "storm", "threads": 0, "rate": 1, "mix": "heartbeat"}, "bad threads/rate/mix"),
        ({"action": "pause-reading", "intervals": 5}, "at most 3"),
        ("quiet", "expected an object with an 'action'"),
        ({"action": "quiet", "intervals": "2"}, "field 'intervals': expected a number"),
        ({"action": "spawn", "users": 2.5}, "field 'users': expected int"),
        ({"action": ["quiet"]}, "field 'action': expected str"),
    ],
)
def test_bad_steps_are_scenario_errors_naming_the_problem(data: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        Step.from_dict(data)  # type: ignore[arg-type]


def test_bad_schedules_are_scenario_errors() -> None:
    with pytest.raises(ScenarioError, match="must be JSON"):
        Schedule.from_json("{nope")
    with pytest.raises(ScenarioError, match="'version': 1"):
        Schedule.from_dict({"steps": []})
    with pytest.raises(ScenarioError, match="'version': 1"):
        Schedule.from_dict({"version": True, "steps": []})
    with pytest.raises(ScenarioError, match="'quit_at_end': expected true or false"):
        Schedule.from_dict({"version": 1, "steps": [], "quit_at_end": "false"})
