"""Timing schedules as data: what the master does, and for how long, drawn whole before anything runs.

A ``Schedule`` is a short list of ``Step``s that follow the handshake: an action
of the master (a spawn, a storm, a silence, a fault on its heartbeat replies, a
malformed frame, ...) and how long the step lasts, in heartbeat intervals, before
the next one. It is pure data: it prints, saves as JSON and replays the same way
against a real worker process (``harness.explore``) or the in-memory simulation
(``harness.simulation``).

``schedules()`` is the Hypothesis strategy that draws them. What is drawn: the
actions, their order, their durations (quarter-interval steps) and sizes.
What is measured when a schedule runs: every timing (heartbeat gaps, reply
latencies), and the verdicts of the catalog's oracles. Durations are bounded
(``MAX_TOTAL_INTERVALS``), storms are bounded in rate and length.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.faults import MALFORMED_KINDS

SCHEDULE_VERSION = 1
MAX_STEPS = 6
MAX_STEP_INTERVALS = 5.0
MAX_TOTAL_INTERVALS = 7.0
MAX_USERS = 8
STORM_RATES = (250.0, 500.0, 1000.0)  # messages/s per thread
STORM_MIXES: dict[str, tuple[tuple[str, float], ...]] = {
    "heartbeat": (("heartbeat", 1.0),),
    "unknown": (("unknown", 1.0),),
    "mixed": (("heartbeat", 0.5), ("unknown", 0.3), ("malformed:garbage", 0.2)),
}
MAX_PAUSE_INTERVALS = 3.0  # the master stops reading for at most this long (heartbeat gaps there are excused)

# action -> the fields it uses (besides ``intervals``)
ACTIONS: dict[str, tuple[str, ...]] = {
    "quiet": (),  # the master sends nothing unprompted (it still answers heartbeats, as the real one)
    "heartbeat": (),  # an unsolicited master heartbeat
    "spawn": ("users",),  # a fresh spawn of ``users`` (absolute count)
    "stale-spawn": ("users",),  # a spawn with timestamp 0: must be discarded
    "stop": (),
    "reconnect": (),
    "duplicate-ack": (),
    "unknown": (),  # a message type no worker knows
    "malformed": ("kind",),  # one malformed frame of ``kind`` (harness.faults.MALFORMED_KINDS)
    "storm": ("threads", "rate", "mix"),  # concurrent senders for the whole step
    "silence": (),  # heartbeat replies switched off for the step
    "delay-replies": ("delay",),  # heartbeat replies delayed by ``delay`` intervals during the step
    "drop-replies": ("probability",),  # heartbeat replies dropped with ``probability`` during the step
    "pause-reading": (),  # the master stops reading for the step (at most MAX_PAUSE_INTERVALS)
}


@dataclass(frozen=True)
class Step:
    """One master action and how long the step lasts (heartbeat intervals) before the next."""

    action: str
    intervals: float = 0.0
    users: int = 0
    kind: str = ""
    threads: int = 0
    rate: float = 0.0
    mix: str = ""
    delay: float = 0.0
    probability: float = 0.0

    def __post_init__(self) -> None:
        types = {"action": str, "kind": str, "mix": str, "users": int, "threads": int}
        numbers = ("intervals", "rate", "delay", "probability")
        for name, kind in types.items():
            value = getattr(self, name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ScenarioError(f"schedule step field {name!r}: expected {kind.__name__}, got {value!r}")
        for name in numbers:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ScenarioError(f"schedule step field {name!r}: expected a number, got {value!r}")
        if self.action not in ACTIONS:
            raise ScenarioError(f"schedule step: unknown action {self.action!r}; expected one of {', '.join(ACTIONS)}")
        if not 0.0 <= self.intervals <= MAX_STEP_INTERVALS:
            raise ScenarioError(f"schedule step {self.action}: intervals must be in [0, {MAX_STEP_INTERVALS:g}]")
        if self.action == "malformed" and self.kind not in MALFORMED_KINDS:
            raise ScenarioError(f"schedule step malformed: kind {self.kind!r} is not one of {', '.join(MALFORMED_KINDS)}")
        if self.action == "storm" and (self.mix not in STORM_MIXES or not 1 <= self.threads <= 4 or self.rate <= 0):
            raise ScenarioError(f"schedule step storm: bad threads/rate/mix {self.threads}/{self.rate}/{self.mix!r}")
        if self.action == "pause-reading" and self.intervals > MAX_PAUSE_INTERVALS:
            raise ScenarioError(f"schedule step pause-reading: at most {MAX_PAUSE_INTERVALS:g} intervals")
        if not 0 <= self.users <= 1000 or not 0.0 <= self.probability <= 1.0 or self.delay < 0:
            raise ScenarioError(f"schedule step {self.action}: users, probability or delay out of range")

    def to_dict(self) -> dict[str, Any]:
        """Only the fields the action uses."""
        return {"action": self.action, "intervals": self.intervals, **{k: asdict(self)[k] for k in ACTIONS[self.action]}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        if not isinstance(data, dict) or "action" not in data:
            raise ScenarioError(f"schedule step: expected an object with an 'action', got {data!r}")
        unknown = set(data) - {"action", "intervals", *ACTIONS.get(str(data["action"]), ())}
        if unknown:
            raise ScenarioError(f"schedule step {data['action']}: unknown fields {sorted(unknown)}")
        return cls(**data)

    def describe(self) -> str:
        """``spawn 3 for 1.5``: one short phrase."""
        detail = {
            "spawn": f" {self.users}",
            "stale-spawn": f" {self.users}",
            "malformed": f" {self.kind}",
            "storm": f" {self.mix} {self.threads}x{self.rate:g}/s",
            "delay-replies": f" by {self.delay:g}",
            "drop-replies": f" p={self.probability:g}",
        }.get(self.action, "")
        return f"{self.action}{detail} for {self.intervals:g}"


@dataclass(frozen=True)
class Schedule:
    """Steps after the handshake; ``quit_at_end`` ends with the master's quit (else the worker is stopped by signal)."""

    steps: tuple[Step, ...] = ()
    quit_at_end: bool = False
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def total_intervals(self) -> float:
        return sum(s.intervals for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"version": SCHEDULE_VERSION, "steps": [s.to_dict() for s in self.steps], "quit_at_end": self.quit_at_end}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        version = data.get("version") if isinstance(data, dict) else None
        if type(version) is not int or version != SCHEDULE_VERSION or not isinstance(data.get("steps"), list):
            raise ScenarioError(f"a schedule is {{'version': {SCHEDULE_VERSION}, 'steps': [...]}}; got {str(data)[:200]}")
        quit_at_end = data.get("quit_at_end", False)
        if not isinstance(quit_at_end, bool):
            raise ScenarioError(f"schedule field 'quit_at_end': expected true or false, got {quit_at_end!r}")
        return cls(tuple(Step.from_dict(s) for s in data["steps"]), quit_at_end)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"a schedule must be JSON: {exc}") from exc

    def describe(self) -> str:
        """``spawn 3 for 1.5 · quiet for 5 · quit``."""
        parts = [s.describe() for s in self.steps] or ["(no steps)"]
        return " · ".join([*parts, *(["quit"] if self.quit_at_end else [])])


# -- Hypothesis strategies ------------------------------------------------------------------------

# Quarter intervals: shrinks towards 0 and prints readably.
_quarters = st.integers(0, int(MAX_STEP_INTERVALS * 4)).map(lambda q: q / 4)


def _step_strategies() -> dict[str, st.SearchStrategy[Step]]:
    users = st.integers(0, MAX_USERS)
    return {
        "quiet": st.builds(Step, st.just("quiet"), _quarters),
        "heartbeat": st.builds(Step, st.just("heartbeat"), _quarters),
        "spawn": st.builds(Step, st.just("spawn"), _quarters, users=users),
        "stale-spawn": st.builds(Step, st.just("stale-spawn"), _quarters, users=users),
        "stop": st.builds(Step, st.just("stop"), _quarters),
        "reconnect": st.builds(Step, st.just("reconnect"), _quarters),
        "duplicate-ack": st.builds(Step, st.just("duplicate-ack"), _quarters),
        "unknown": st.builds(Step, st.just("unknown"), _quarters),
        "malformed": st.builds(Step, st.just("malformed"), _quarters, kind=st.sampled_from(MALFORMED_KINDS)),
        "storm": st.builds(
            Step,
            st.just("storm"),
            st.integers(1, 16).map(lambda q: q / 4),
            threads=st.integers(1, 2),
            rate=st.sampled_from(STORM_RATES),
            mix=st.sampled_from(sorted(STORM_MIXES)),
        ),
        "silence": st.builds(Step, st.just("silence"), _quarters),
        "delay-replies": st.builds(Step, st.just("delay-replies"), _quarters, delay=st.integers(1, 6).map(lambda q: q / 4)),
        "drop-replies": st.builds(Step, st.just("drop-replies"), _quarters, probability=st.sampled_from((0.25, 0.5, 1.0))),
        "pause-reading": st.builds(
            Step, st.just("pause-reading"), st.integers(0, int(MAX_PAUSE_INTERVALS * 4)).map(lambda q: q / 4)
        ),
    }


STEP_STRATEGIES = _step_strategies()


def steps(actions: tuple[str, ...] | None = None) -> st.SearchStrategy[Step]:
    """One step; ``actions`` limits the actions drawn (all by default, in ``ACTIONS`` order, which shrinks to quiet)."""
    chosen = actions or tuple(ACTIONS)
    unknown = set(chosen) - set(ACTIONS)
    if unknown:
        raise ScenarioError(f"unknown actions {sorted(unknown)}")
    return st.one_of([STEP_STRATEGIES[a] for a in chosen])


def _bounded(drawn: list[Step], max_total: float) -> tuple[Step, ...]:
    """Keep steps while the total stays within ``max_total`` intervals (the last one is cut short)."""
    kept: list[Step] = []
    total = 0.0
    for step in drawn:
        room = max_total - total
        if room <= 0:
            break
        if step.intervals > room:
            step = Step.from_dict({**step.to_dict(), "intervals": room})
        kept.append(step)
        total += step.intervals
    return tuple(kept)


@st.composite
def schedules(
    draw: st.DrawFn,
    *,
    max_steps: int = MAX_STEPS,
    max_total: float = MAX_TOTAL_INTERVALS,
    actions: tuple[str, ...] | None = None,
) -> Schedule:
    """A whole schedule: up to ``max_steps`` steps, at most ``max_total`` intervals in all, maybe a final quit."""
    drawn = draw(st.lists(steps(actions), max_size=max_steps))
    return Schedule(_bounded(drawn, max_total), draw(st.booleans()))
