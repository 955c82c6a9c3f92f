"""Tests of harness.protocol.timing: Locust's constants and its exact "missing" rule (spec §5)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocol.timing import LOCUST_TIMING, LivenessChange, LivenessCounter, Timing, liveness_history

MISSING, HEALED, DEAD = LivenessChange.MISSING, LivenessChange.HEALED, LivenessChange.DEAD


# --------------------------------------------------------------------------------------------
# Constants and Timing
# --------------------------------------------------------------------------------------------


def test_locust_constants() -> None:
    """LOCUST_TIMING holds the module globals of locust/runners.py 2.47.0 (spec §5.1)."""
    t = LOCUST_TIMING
    assert (t.heartbeat_interval, t.heartbeat_liveness, t.heartbeat_dead) == (1.0, 3, -60)
    assert (t.master_heartbeat_timeout, t.connect_timeout, t.connect_retry_count) == (60.0, 5.0, 60)
    assert (t.report_interval, t.log_report_interval, t.cpu_monitor_interval, t.fallback_interval) == (3.0, 10.0, 10.0, 5.0)
    assert t == Timing()


def test_missing_after_bounds() -> None:
    """(N+1)*I and (N+2)*I: 4 s and 5 s for Locust's defaults."""
    assert LOCUST_TIMING.missing_after_min == 4.0
    assert LOCUST_TIMING.missing_after_max == 5.0
    custom = Timing(heartbeat_interval=0.5, heartbeat_liveness=10)
    assert custom.missing_after_min == pytest.approx(5.5)
    assert custom.missing_after_max == pytest.approx(6.0)


PERIODS = (
    "heartbeat_interval",
    "master_heartbeat_timeout",
    "connect_timeout",
    "report_interval",
    "log_report_interval",
    "cpu_monitor_interval",
    "fallback_interval",
)
COUNTS = ("heartbeat_liveness", "heartbeat_dead", "connect_retry_count")


def test_every_timing_field_is_a_period_or_a_count() -> None:
    """Keeps the two lists below honest if a field is added."""
    assert {f.name for f in dataclasses.fields(Timing)} == set(PERIODS) | set(COUNTS)


@pytest.mark.parametrize("interval", [0.1, 0.25, 1.0, 2.0])
def test_compressed_scales_periods_and_keeps_counts(interval: float) -> None:
    """compressed(I) multiplies every period by I / 1 s and leaves the counters alone."""
    fast = LOCUST_TIMING.compressed(interval)
    k = interval / LOCUST_TIMING.heartbeat_interval
    for name in PERIODS:
        assert getattr(fast, name) == pytest.approx(getattr(LOCUST_TIMING, name) * k), name
    for name in COUNTS:
        assert getattr(fast, name) == getattr(LOCUST_TIMING, name), name
    assert fast.heartbeat_interval == interval
    assert fast.missing_after_min == pytest.approx(4 * interval)
    assert fast.missing_after_max == pytest.approx(5 * interval)
    assert LOCUST_TIMING == Timing()  # the original is untouched (frozen)


def test_compressed_is_relative_to_the_current_interval() -> None:
    """Compressing an already compressed Timing scales by the ratio of intervals."""
    back = LOCUST_TIMING.compressed(0.5).compressed(1.0)
    for name in PERIODS:
        assert getattr(back, name) == pytest.approx(getattr(LOCUST_TIMING, name))
    assert Timing(heartbeat_interval=2.0, report_interval=6.0).compressed(1.0).report_interval == pytest.approx(3.0)


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_compressed_rejects_non_positive_intervals(interval: float) -> None:
    """A zero or negative interval is refused."""
    with pytest.raises(ValueError):
        LOCUST_TIMING.compressed(interval)


# --------------------------------------------------------------------------------------------
# LivenessCounter
# --------------------------------------------------------------------------------------------


def _ticks_until(counter: LivenessCounter, change: LivenessChange, limit: int = 1000) -> int:
    """Tick until ``change`` is reported; return the 1-based tick number."""
    for n in range(1, limit + 1):
        got = counter.tick()
        if got is change:
            return n
        assert got is None, f"unexpected {got} on tick {n}"
    raise AssertionError(f"{change} never reported")


def test_counter_missing_on_fifth_tick_and_dead_sixty_ticks_later() -> None:
    """Missing on the 5th tick after the last heartbeat, deleted on the 65th (spec §5.2)."""
    counter = LivenessCounter.for_timing(LOCUST_TIMING)
    assert (counter.liveness, counter.dead_at, counter.counter, counter.missing) == (3, -60, 3, False)
    assert _ticks_until(counter, MISSING) == 5
    assert counter.missing
    assert counter.counter == -1  # the tick that marks missing does not decrement
    assert _ticks_until(counter, DEAD) == 60
    assert counter.tick() is DEAD  # stays dead (Locust deletes it)


def test_counter_sequence_matches_locust_tick_order() -> None:
    """The exact counter values of heartbeat_worker: 3,2,1,0,-1, missing at -1, then -2 ..."""
    counter = LivenessCounter()
    values = []
    for _ in range(8):
        counter.tick()
        values.append((counter.counter, counter.missing))
    assert values == [(2, False), (1, False), (0, False), (-1, False), (-1, True), (-2, True), (-3, True), (-4, True)]


def test_heartbeat_resets_and_self_heals() -> None:
    """A heartbeat resets the counter; one after missing reports HEALED once."""
    counter = LivenessCounter()
    for _ in range(3):
        counter.tick()
    assert counter.heartbeat() is None
    assert counter.counter == 3
    assert _ticks_until(counter, MISSING) == 5
    for _ in range(30):
        assert counter.tick() is None
    assert counter.heartbeat() is HEALED
    assert (counter.counter, counter.missing) == (3, False)
    assert counter.heartbeat() is None
    assert _ticks_until(counter, MISSING) == 5  # the full cycle starts over
    assert _ticks_until(counter, DEAD) == 60


def test_heartbeats_every_tick_never_go_missing() -> None:
    """A worker heartbeating on every tick stays alive forever."""
    counter = LivenessCounter()
    for _ in range(500):
        assert counter.heartbeat() is None
        assert counter.tick() is None


@settings(max_examples=60, database=None)
@given(liveness=st.integers(0, 12), dead_at=st.integers(-120, -1))
def test_counter_general_formula(liveness: int, dead_at: int) -> None:
    """Missing on tick L+2, deleted on tick L+2-D, for any liveness L and dead threshold D <= -1."""
    counter = LivenessCounter(liveness=liveness, dead_at=dead_at, counter=liveness)
    assert _ticks_until(counter, MISSING) == liveness + 2
    assert liveness + 2 + _ticks_until(counter, DEAD) == liveness + 2 - dead_at


def test_for_timing_uses_the_timing_counts() -> None:
    """for_timing copies liveness and the dead threshold."""
    counter = LivenessCounter.for_timing(Timing(heartbeat_liveness=7, heartbeat_dead=-9))
    assert (counter.liveness, counter.dead_at, counter.counter, counter.missing) == (7, -9, 7, False)


# --------------------------------------------------------------------------------------------
# liveness_history
# --------------------------------------------------------------------------------------------


def test_history_of_run_c() -> None:
    """Spec §8.4 run C: last heartbeat 05.233, ticks at .250 -> missing +4.02 s, deleted 60 ticks later."""
    beats = [float(s) + 0.233 for s in range(0, 6)]  # ..., 5.233
    changes = liveness_history(registered_at=0.0, heartbeat_times=beats, first_tick=0.25, now=200.0)
    assert changes == [(9.25, MISSING), (69.25, DEAD)]
    assert changes[0][0] - beats[-1] == pytest.approx(4.017)


def test_history_no_heartbeat_after_registration() -> None:
    """client_ready counts as a heartbeat: missing on the 5th tick after registration."""
    assert liveness_history(0.5, [], 0.0, 10.0) == [(5.0, MISSING)]
    assert liveness_history(0.5, [], 0.0, 4.99) == []


def test_history_heartbeat_on_a_tick_is_counted_before_it() -> None:
    """A heartbeat landing exactly on a tick resets the counter before that tick decrements it."""
    on_tick = liveness_history(-0.5, [1.0], 0.0, 20.0)
    just_after = liveness_history(-0.5, [1.0 + 2**-10], 0.0, 20.0)
    assert on_tick == [(5.0, MISSING)]
    assert just_after == [(6.0, MISSING)]


def test_history_steady_heartbeats_never_change() -> None:
    """One heartbeat per interval (any phase) never gets a worker marked missing."""
    beats = [0.3 + i for i in range(300)]
    assert liveness_history(0.0, beats, 0.7, 300.0) == []


def test_history_ignores_beats_outside_the_window_and_sorts_them() -> None:
    """Beats before registration or after now are ignored; order of input does not matter."""
    beats = [3.25, 1.25, 2.25, -5.0, 50.0]
    assert liveness_history(0.25, beats, 0.0, 9.5) == [(8.0, MISSING)]
    assert liveness_history(0.25, sorted(beats), 0.0, 9.5) == [(8.0, MISSING)]


def test_history_self_heal_and_second_absence() -> None:
    """missing -> healed (at the heartbeat time) -> missing again."""
    changes = liveness_history(0.5, [1.5, 10.5], 0.0, 30.0)
    assert changes == [(6.0, MISSING), (10.5, HEALED), (15.0, MISSING)]


def test_history_stops_at_dead() -> None:
    """After deletion nothing more is reported, even if the worker heartbeats again."""
    changes = liveness_history(0.5, [100.5, 101.5], 0.0, 200.0)
    assert changes == [(5.0, MISSING), (65.0, DEAD)]


def test_history_with_compressed_timing() -> None:
    """The rule scales with the interval: missing 5 ticks, dead 65 ticks after the last heartbeat."""
    timing = LOCUST_TIMING.compressed(0.25)
    changes = liveness_history(0.0, [0.125], 0.0, 100.0, timing=timing)
    assert changes == [(0.25 + 4 * 0.25, MISSING), (1.25 + 60 * 0.25, DEAD)]  # first tick at/after the beat: 0.25


def test_history_reports_a_heal_between_the_last_tick_and_now() -> None:
    """Missing at 4.5, heartbeat at 10.6, now 10.8: the heal happened before now and must be reported."""
    assert liveness_history(0.0, [10.6], 0.5, 10.8) == [(4.5, MISSING), (10.6, HEALED)]


# The gap property (spec §5.2): with N = 3, a worker is marked missing on the 5th tick at or after its
# last heartbeat, so never for a gap <= 4I, always for a gap > 5I, and depending on the tick phase in
# between. All times are dyadic fractions of the interval so the float arithmetic is exact.

STEPS = 64  # tick phase / gap resolution: I / 64


@settings(max_examples=300, database=None)
@given(
    interval=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    phase=st.integers(0, STEPS - 1),
    offset=st.integers(0, STEPS - 1),
    gap=st.integers(1, 8 * STEPS),
)
def test_history_gap_property(interval: float, phase: int, offset: int, gap: int) -> None:
    """A single heartbeat gap of g: missing iff the 5th tick at/after the last beat comes before the next one."""
    timing = LOCUST_TIMING.compressed(interval)
    unit = interval / STEPS
    first_tick = phase * unit
    registered_at = -unit / 2  # never on a tick
    last_beat = registered_at + offset * unit  # within one interval of registration
    next_beat = last_beat + gap * unit
    after = [next_beat + 0.5 * interval * i for i in range(40)]  # healthy again afterwards
    now = after[-1]

    changes = liveness_history(registered_at, [last_beat, *after], first_tick, now, timing)

    k = 0
    while first_tick + k * interval < last_beat:
        k += 1
    fifth_tick = first_tick + (k + 4) * interval  # ticks k..k+4 are the 1st..5th at or after the beat
    g = gap * unit
    if fifth_tick < next_beat:
        assert changes == [(fifth_tick, MISSING), (next_beat, HEALED)]
        assert 4 * interval <= fifth_tick - last_beat < 5 * interval
    else:
        assert changes == []
    if g <= timing.missing_after_min:
        assert changes == []
    if g > timing.missing_after_max:
        assert changes and changes[0][1] is MISSING
    if changes:
        assert timing.missing_after_min < g


@settings(max_examples=100, database=None)
@given(
    phase=st.integers(0, STEPS - 1),
    beats=st.lists(st.integers(1, 4 * STEPS), min_size=1, max_size=60),
)
def test_history_gaps_up_to_four_intervals_never_go_missing(phase: int, beats: list[int]) -> None:
    """Any heartbeat train whose gaps are all <= 4I (starting right after registration) stays healthy."""
    unit = 1.0 / STEPS
    times = []
    t = 0.0
    for step in beats:
        t += step * unit
        times.append(t)
    assert liveness_history(unit / 2, times, phase * unit, times[-1], LOCUST_TIMING) == []


def test_registration_on_a_tick_counts_before_the_tick() -> None:
    """Registration and heartbeats are ordered the same way against a tick that lands at the same instant."""
    by_registration = liveness_history(1.0, [], 0.0, 20.0)
    by_heartbeat = liveness_history(0.5, [1.0], 0.0, 20.0)
    assert by_registration[0] == by_heartbeat[0] == (5.0, MISSING)
