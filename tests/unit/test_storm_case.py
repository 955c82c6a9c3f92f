"""The storm cases' own note: a storm the worker's socket refused at the high-water mark is said, with its count."""

from __future__ import annotations

from fakemaster.storm import StormResult, StormSpec
from harness.catalog import storms
from harness.consequences import rule_for
from harness.verdicts import Verdict


class Master:
    def __init__(self, refused: int) -> None:
        self.refused = refused
        self.specs: list[StormSpec] = []

    def storm(self, spec: StormSpec) -> StormResult:
        self.specs.append(spec)
        return StormResult(attempted=1000, delivered=1000 - self.refused, refused=self.refused, duration=spec.duration)


class Ctx:
    def __init__(self, refused: int) -> None:
        self.master = Master(refused)
        self.notes: list[tuple[str, str, str]] = []

    def s(self, intervals: float) -> float:
        return intervals * 0.2

    def note(self, oracle: str, expected: str, observed: str) -> None:
        self.notes.append((oracle, expected, observed))


def test_a_storm_refused_at_the_high_water_mark_is_noted_with_its_count() -> None:
    ctx = Ctx(refused=250)
    storms._storm(ctx, (("unknown", 1.0),))  # type: ignore[arg-type]
    assert [oracle for oracle, _, _ in ctx.notes] == ["storm.refused"]
    [(oracle, expected, observed)] = ctx.notes
    assert expected == "every storm message delivered to the worker's socket"
    assert observed.startswith("250 of 1000 refused at the high-water mark")
    assert rule_for(oracle).verdict is Verdict.INFORMATIONAL
    [spec] = ctx.master.specs
    assert (spec.threads, spec.rate, spec.duration) == (storms.THREADS, storms.RATE, 1.0)  # 5 intervals of 0.2 s


def test_a_storm_delivered_whole_says_nothing() -> None:
    ctx = Ctx(refused=0)
    storms._storm(ctx, (("heartbeat", 1.0),))  # type: ignore[arg-type]
    assert ctx.notes == []
