"""Tests of worker.session: the reference worker's sans-IO protocol logic (spec §3, §4.1, §5.3).

``now`` is a plain float; nothing here opens a socket or sleeps. A ``Driver``
plays the runtime's part: it ticks the session at every deadline it announces,
exactly as ``worker.runtime`` does, and records every effect with its time.
Every phase change is checked against ``harness.protocol.states.TRANSITIONS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import worker.session as session_module
from harness.protocol.messages import LOCUST_VERSION, Direction, Message
from harness.protocol.schema import check_payload
from harness.protocol import states
from harness.protocol.states import REPORTED_STATES, TRANSITIONS, Event, Phase
from harness.protocol.timing import LOCUST_TIMING, Timing
from worker.session import (
    EXIT_CONNECT_FAILED,
    EXIT_MASTER_LOST,
    EXIT_OK,
    ApplyUsers,
    Effect,
    Exit,
    Log,
    Reconnect,
    Send,
    StopUsers,
    WorkerConfig,
    WorkerSession,
)
from worker.stats import RequestStats

NODE = "testhost_0123456789abcdef"
TIMING = Timing(
    heartbeat_interval=1.0,
    master_heartbeat_timeout=10.0,
    connect_timeout=2.0,
    connect_retry_count=3,
    report_interval=3.0,
    log_report_interval=5.0,
)
CPU, RSS = 12.5, 48_000_000
EPS = 1e-9


# --------------------------------------------------------------------------------------------
# Recording phase changes against the one transition table
# --------------------------------------------------------------------------------------------


Step = tuple[Phase, Event, Phase]


@contextlib.contextmanager
def recording_transitions() -> Iterator[list[Step]]:
    """Wrap the session's ``next_phase``: record every (phase, event, new phase) it is asked for."""
    steps: list[Step] = []
    real = states.next_phase

    def recorder(phase: Phase, event: Event) -> Phase | None:
        new = real(phase, event)
        assert new is not None, f"the session asked for a transition the table lacks: ({phase}, {event})"
        steps.append((phase, event, new))
        return new

    with mock.patch.object(session_module, "next_phase", recorder):
        yield steps


def assert_phase_history(steps: list[Step], final: Phase) -> None:
    """Every step is a table entry and they chain: the session changed phase only through the table."""
    current = Phase.CONNECTING
    for phase, event, new in steps:
        assert (phase, event) in TRANSITIONS and TRANSITIONS[(phase, event)] is new
        assert phase is current, f"phase changed outside the table: {current} -> {phase} before {event}"
        current = new
    assert final is current, f"final phase {final} was not reached through the table (last: {current})"


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


@dataclass
class Driver:
    """Runs a WorkerSession the way the runtime does, on a simulated clock."""

    timing: Timing = TIMING
    stop_wait: float = 0.0
    send_logs: bool = True
    waits_for_ack: bool = True
    now: float = 0.0
    timeline: list[tuple[float, Effect]] = field(default_factory=list)
    reports: int = 0

    def __post_init__(self) -> None:
        self.stats = RequestStats(0.0)
        config = WorkerConfig(NODE, self.timing, LOCUST_VERSION, self.stop_wait, self.send_logs, waits_for_ack=self.waits_for_ack)
        self.session = WorkerSession(config, report=self._report, resources=lambda: (CPU, RSS))

    def _report(self, reset: bool) -> dict[str, Any]:
        self.reports += 1
        self.stats.log_request("GET", "/x", 10.0, 1, 1_700_000_000.0 + self.now)
        return self.stats.take_report(1_700_000_000.0 + self.now, reset=reset)

    def _keep(self, effects: list[Effect]) -> list[Effect]:
        self.timeline += [(self.now, e) for e in effects]
        return effects

    def start(self) -> list[Effect]:
        return self._keep(self.session.start(self.now))

    def advance(self, to: float) -> list[Effect]:
        """Tick at every deadline up to ``to`` (as the runtime's poll loop does), then let the clock reach ``to``."""
        out: list[Effect] = []
        for _ in range(100_000):
            deadline = self.session.next_deadline()
            if deadline is None or deadline > to:
                break
            self.now = max(self.now, deadline)
            out += self._keep(self.session.tick(self.now))
            nxt = self.session.next_deadline()
            assert nxt is None or nxt > self.now, f"deadline {nxt} still due after a tick at {self.now}: a busy loop"
        else:
            raise AssertionError("the session never stops announcing deadlines")
        self.now = max(self.now, to)
        return out

    def recv(self, message_type: str, data: Any = None) -> list[Effect]:
        return self._keep(self.session.receive(Message(message_type, data, NODE), self.now))

    def connect(self) -> list[Effect]:
        """start + ack at the current time."""
        return self.start() + self.recv("ack", {"index": 0})

    def spawn(self, counts: dict[str, int], timestamp: float, stop_timeout: float = 0.0) -> list[Effect]:
        return self.recv("spawn", spawn_data(counts, timestamp, stop_timeout))

    def applied(self, effects: list[Effect]) -> list[Effect]:
        """Report the ApplyUsers in ``effects`` as done, with exactly the requested counts."""
        (apply,) = [e for e in effects if isinstance(e, ApplyUsers)]
        return self._keep(self.session.users_applied(apply.spawn_id, apply.counts))

    def stopped(self) -> list[Effect]:
        return self._keep(self.session.users_stopped(self.now))

    def sent(self, message_type: str | None = None, since: float = float("-inf")) -> list[tuple[float, Message]]:
        """Messages sent so far (of one type), with their times."""
        return [
            (t, e.message)
            for t, e in self.timeline
            if isinstance(e, Send) and t >= since and (message_type is None or e.message.type == message_type)
        ]

    def times(self, message_type: str, since: float = float("-inf")) -> list[float]:
        return [t for t, _ in self.sent(message_type, since)]


def spawn_data(counts: dict[str, int], timestamp: float, stop_timeout: float = 0.0) -> dict[str, Any]:
    return {
        "timestamp": timestamp,
        "user_classes_count": counts,
        "host": "http://example.invalid",
        "stop_timeout": stop_timeout,
        "parsed_options": {},
    }


def types(effects: list[Effect]) -> list[str]:
    """A compact view of effects: message types for sends, class names otherwise."""
    return [e.message.type if isinstance(e, Send) else type(e).__name__ for e in effects]


PERIODIC = ("heartbeat", "stats", "logs")


def non_periodic(effects: list[Effect]) -> list[Effect]:
    """``effects`` without the periodic heartbeat/stats/logs sends."""
    return [e for e in effects if not (isinstance(e, Send) and e.message.type in PERIODIC)]


def heartbeat_states(d: Driver, since: float = float("-inf")) -> list[str]:
    return [m.data["state"] for _, m in d.sent("heartbeat", since)]


@pytest.fixture
def steps() -> Iterator[list[Step]]:
    with recording_transitions() as recorded:
        yield recorded


@pytest.fixture
def d(steps: list[Step]) -> Iterator[Driver]:
    """A driver whose session's whole phase history is checked against the table afterwards."""
    driver = Driver()
    yield driver
    assert_phase_history(steps, driver.session.phase)
    for _, message in driver.sent():
        assert check_payload(message, Direction.WORKER_TO_MASTER) == [], message


# --------------------------------------------------------------------------------------------
# Handshake
# --------------------------------------------------------------------------------------------


def test_start_sends_client_ready(d: Driver) -> None:
    """start: one client_ready carrying the version, from our node id; nothing else yet."""
    effects = d.start()
    assert effects == [Send(Message("client_ready", LOCUST_VERSION, NODE))]
    assert d.session.phase is Phase.CONNECTING
    assert d.session.next_deadline() == TIMING.connect_timeout


def test_no_ack_retries_then_exits_255(d: Driver) -> None:
    """client_ready every connect_timeout; after connect_retry_count retries, Exit(255) (spec §3.1)."""
    d.start()
    d.advance(100.0)
    retries = TIMING.connect_retry_count
    assert d.times("client_ready") == [k * TIMING.connect_timeout for k in range(retries + 1)]
    exits = [(t, e) for t, e in d.timeline if isinstance(e, Exit)]
    assert exits == [((retries + 1) * TIMING.connect_timeout, Exit(EXIT_CONNECT_FAILED, "no ack from the master"))]
    assert EXIT_CONNECT_FAILED == 255
    assert d.times("heartbeat") == [] and d.times("stats") == []
    logs = [e.text for _, e in d.timeline if isinstance(e, Log)]
    assert logs[0] == f"Failed to connect to master, retry 1/{retries}."
    assert len(logs) == retries + 1
    assert d.session.next_deadline() is None


def test_ack_ends_retries_and_starts_heartbeats(d: Driver) -> None:
    """Retries until the ack; then no more client_ready, and heartbeat/stats/logs start at once."""
    d.start()
    d.advance(3.0)
    assert d.times("client_ready") == [0.0, 2.0]
    assert d.times("heartbeat") == []
    effects = d.recv("ack", {"index": 7})
    assert types(effects) == ["Log"]
    assert d.session.index == 7
    assert d.session.phase is Phase.READY
    assert d.session.next_deadline() == 3.0  # heartbeat, stats and logs are due right away
    d.advance(30.0)
    assert d.times("client_ready") == [0.0, 2.0]
    assert d.times("heartbeat") == [3.0 + k for k in range(28)]
    assert not any(isinstance(e, Exit) for _, e in d.timeline)


def test_ack_without_index_is_tolerated(d: Driver) -> None:
    """Masters before 2.11 sent ack with data=None: the worker still connects (spec §3.1)."""
    d.start()
    d.recv("ack", None)
    assert d.session.phase is Phase.READY
    assert d.session.index is None


def test_duplicate_ack_changes_nothing(d: Driver) -> None:
    """A late or duplicate ack neither changes the phase nor restarts the cadence."""
    d.connect()
    d.advance(2.5)
    d.recv("ack", {"index": 0})
    d.advance(5.0)
    assert d.session.phase is Phase.READY
    assert d.times("heartbeat") == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


# --------------------------------------------------------------------------------------------
# Periodic messages
# --------------------------------------------------------------------------------------------


def test_heartbeat_payload(d: Driver) -> None:
    """heartbeat: state, cpu (float) and RSS (int) from resources()."""
    d.connect()
    effects = d.advance(0.0)
    (hb,) = [e.message for e in effects if isinstance(e, Send) and e.message.type == "heartbeat"]
    assert hb == Message("heartbeat", {"state": "ready", "current_cpu_usage": CPU, "current_memory_usage": RSS}, NODE)


def test_heartbeats_on_fixed_cadence(d: Driver) -> None:
    """Late ticks do not make the cadence drift; only a full period behind restarts it from now."""
    d.connect()
    d.advance(0.0)
    assert d.session.next_deadline() == 1.0
    d.now = 1.3  # the runtime woke 0.3 s late
    d._keep(d.session.tick(1.3))
    assert d.times("heartbeat") == [0.0, 1.3]
    assert d.session.next_deadline() == 2.0  # back on the 1 s grid
    d.now = 3.5  # more than a period behind: restart from now
    d._keep(d.session.tick(3.5))
    assert d.times("heartbeat") == [0.0, 1.3, 3.5]
    assert d.session.next_deadline() == 4.5  # not 4.0: a missed slot is not made up in a burst
    d.advance(6.5)
    assert d.times("heartbeat") == [0.0, 1.3, 3.5, 4.5, 5.5, 6.5]


def test_tick_before_deadline_does_nothing(d: Driver) -> None:
    """A spurious wake-up before any deadline sends nothing."""
    d.connect()
    d.advance(0.0)
    assert d.session.tick(0.5) == []


def test_stats_every_report_interval(d: Driver) -> None:
    """stats at ack time and every report_interval, with the report and the user counts."""
    d.connect()
    d.advance(7.0)
    assert d.times("stats") == [0.0, 3.0, 6.0]
    assert d.reports == 3
    _, first = d.sent("stats")[0]
    assert first.data["user_classes_count"] == {} and first.data["user_count"] == 0
    assert set(first.data) == {"stats", "stats_total", "errors", "user_classes_count", "user_count"}
    d.applied(d.spawn({"A": 2, "B": 1}, 1.0))
    d.advance(9.0)
    _, later = d.sent("stats")[-1]
    assert later.data["user_classes_count"] == {"A": 2, "B": 1}
    assert later.data["user_count"] == 3


def test_logs_only_when_new_lines(d: Driver) -> None:
    """logs at start, then every log_report_interval only if lines were added; always the full list."""
    d.connect()
    d.advance(12.0)
    logs = d.sent("logs")
    assert [t for t, _ in logs] == [0.0]
    assert logs[0][1].data == {"worker_id": NODE, "logs": ["info: Connected to master (index 0)."]}
    d.recv("no_such_type")
    d.advance(16.0)
    logs = d.sent("logs")
    assert [t for t, _ in logs] == [0.0, 15.0]
    assert logs[1][1].data["logs"] == [
        "info: Connected to master (index 0).",
        "warning: Unknown message type received: no_such_type",
    ]
    d.advance(30.0)
    assert len(d.sent("logs")) == 2


def test_no_logs_when_disabled(steps: list[Step]) -> None:
    """send_logs=False: no logs message ever, the other periodic messages unchanged."""
    d = Driver(send_logs=False)
    d.connect()
    d.recv("no_such_type")
    d.advance(20.0)
    assert d.sent("logs") == []
    assert len(d.times("heartbeat")) == 21
    assert_phase_history(steps, d.session.phase)


# --------------------------------------------------------------------------------------------
# Spawning
# --------------------------------------------------------------------------------------------


def test_spawn_then_spawning_complete(d: Driver) -> None:
    """spawn -> spawning, ApplyUsers(absolute counts) -> users_applied -> spawning_complete."""
    d.connect()
    effects = d.spawn({"A": 2, "B": 1}, 100.0, stop_timeout=4.0)
    assert effects == [Send(Message("spawning", None, NODE)), ApplyUsers({"A": 2, "B": 1}, 1)]
    assert d.session.phase is Phase.SPAWNING
    assert (d.session.host, d.session.stop_timeout, d.session.last_spawn_timestamp) == ("http://example.invalid", 4.0, 100.0)
    done = d.applied(effects)
    assert done == [Send(Message("spawning_complete", {"user_classes_count": {"A": 2, "B": 1}, "user_count": 3}, NODE))]
    assert d.session.phase is Phase.RUNNING


def test_scale_down_names_every_class(d: Driver) -> None:
    """A later spawn is absolute: a class it leaves out goes to 0."""
    d.connect()
    d.applied(d.spawn({"A": 2, "B": 1}, 100.0))
    effects = d.spawn({"A": 1}, 101.0)
    assert [e for e in effects if isinstance(e, ApplyUsers)] == [ApplyUsers({"A": 1, "B": 0}, 2)]
    done = d.applied(effects)
    assert done[0].message.data == {"user_classes_count": {"A": 1, "B": 0}, "user_count": 1}  # type: ignore[union-attr]


def test_heartbeat_state_follows_phase(d: Driver) -> None:
    """ready -> spawning -> running; kept during the stop cooldown; ready after client_ready."""
    d.connect()
    d.advance(1.5)
    assert heartbeat_states(d) == ["ready", "ready"]
    spawn = d.spawn({"A": 1}, 10.0, stop_timeout=3.0)
    d.advance(2.5)
    assert heartbeat_states(d, since=2.0) == ["spawning"]
    d.applied(spawn)
    d.advance(3.5)
    assert heartbeat_states(d, since=3.0) == ["running"]
    d.recv("stop")
    d.advance(4.5)
    assert d.session.phase is Phase.STOPPING
    d.stopped()
    assert d.session.phase is Phase.COOLDOWN
    d.advance(7.4)
    assert heartbeat_states(d, since=4.0) == ["running"] * 4  # 4, 5, 6, 7: the previous state is kept
    d.advance(8.0)
    assert d.times("client_ready", since=4.0) == [7.5]
    assert heartbeat_states(d, since=7.6) == ["ready"]


def test_spawning_is_sent_before_the_stale_check(d: Driver) -> None:
    """A stale spawn (timestamp <= last) still gets spawning, but no ApplyUsers (spec §3.4)."""
    d.connect()
    d.applied(d.spawn({"A": 2}, 100.0))
    for stale_timestamp, logged in ((100.0, ["Log"]), (99.0, [])):  # (the second is counted, one line per interval)
        effects = d.spawn({"A": 5}, stale_timestamp)
        assert types(effects) == ["spawning", *logged]
        assert not logged or "Discard spawn message" in effects[1].text  # type: ignore[union-attr]
        assert d.session.phase is Phase.RUNNING
    assert d.session.last_spawn_timestamp == 100.0
    d.advance(1.0)
    assert heartbeat_states(d, since=0.5) == ["running"]


def test_first_spawn_with_zero_timestamp_is_stale(d: Driver) -> None:
    """The last timestamp starts at 0, so a spawn stamped 0 is discarded as stale."""
    d.connect()
    assert types(d.spawn({"A": 1}, 0.0)) == ["spawning", "Log"]
    assert d.session.phase is Phase.READY


def test_superseded_users_applied_is_ignored(d: Driver) -> None:
    """users_applied for an older spawn sends nothing; the newest one completes the spawn."""
    d.connect()
    first = d.spawn({"A": 1}, 100.0)
    second = d.spawn({"A": 3}, 101.0)
    assert d.applied(first) == []
    assert d.session.phase is Phase.SPAWNING
    done = d.applied(second)
    assert types(done) == ["spawning_complete"]
    assert d.session.phase is Phase.RUNNING
    assert d.applied(first) == []  # a very late completion changes nothing either
    assert d.session.phase is Phase.RUNNING
    assert len(d.sent("spawning_complete")) == 1


def test_spawn_before_ack_is_ignored(d: Driver) -> None:
    """A spawn while still connecting is logged and dropped."""
    d.start()
    effects = d.spawn({"A": 1}, 100.0)
    assert types(effects) == ["Log"]
    assert d.session.phase is Phase.CONNECTING


# --------------------------------------------------------------------------------------------
# Stop
# --------------------------------------------------------------------------------------------


def test_stop_then_client_ready_after_cooldown(steps: list[Step]) -> None:
    """stop -> StopUsers -> users_stopped -> client_stopped -> after stop_timeout + extra wait, client_ready."""
    d = Driver(stop_wait=1.5)
    d.connect()
    d.applied(d.spawn({"A": 2}, 100.0, stop_timeout=2.0))
    d.advance(5.0)
    assert d.recv("stop") == [StopUsers(2.0)]
    d.advance(6.0)
    assert d.sent("client_stopped") == []
    effects = d.stopped()
    assert effects == [Send(Message("client_stopped", None, NODE))]
    assert d.session.user_classes_count == {"A": 0}
    d.advance(6.0 + 2.0 + 1.5 - 0.01)
    assert d.times("client_ready", since=1.0) == []
    d.advance(10.0)
    assert d.times("client_ready", since=1.0) == [9.5]
    assert d.session.phase is Phase.READY
    assert_phase_history(steps, d.session.phase)
    assert steps[-3:] == [
        (Phase.RUNNING, Event.RECV_STOP, Phase.STOPPING),
        (Phase.STOPPING, Event.SENT_CLIENT_STOPPED, Phase.COOLDOWN),
        (Phase.COOLDOWN, Event.SENT_CLIENT_READY, Phase.READY),
    ]


def test_stats_continue_during_stop(d: Driver) -> None:
    """Stats and heartbeats keep their cadence while stopping and cooling down."""
    d.connect()
    d.applied(d.spawn({"A": 1}, 100.0, stop_timeout=10.0))
    d.recv("stop")
    d.advance(2.0)
    d.stopped()
    d.advance(9.0)
    assert d.times("stats") == [0.0, 3.0, 6.0, 9.0]
    assert d.times("heartbeat") == [float(k) for k in range(10)]


def test_messages_are_deferred_during_stop_and_cooldown(d: Driver) -> None:
    """spawn/stop/ack/unknown wait while stopping or cooling down, then run in order after client_ready."""
    d.connect()
    d.applied(d.spawn({"A": 1}, 100.0, stop_timeout=2.0))
    d.recv("stop")
    assert d.spawn({"A": 4}, 101.0) == []  # while STOPPING
    d.stopped()
    assert d.recv("no_such_type") == []  # while COOLDOWN
    assert d.recv("ack", {"index": 0}) == []
    assert d.spawn({"A": 5}, 102.0) == []
    assert d.sent("spawning") == [(0.0, Message("spawning", None, NODE))]
    effects = non_periodic(d.advance(2.0))
    assert types(effects) == ["client_ready", "spawning", "ApplyUsers", "Log", "spawning", "ApplyUsers"]
    applies = [e for e in effects if isinstance(e, ApplyUsers)]
    assert applies == [ApplyUsers({"A": 4}, 2), ApplyUsers({"A": 5}, 3)]
    assert d.session.phase is Phase.SPAWNING
    assert types(d.applied([applies[1]])) == ["spawning_complete"]


def test_deferred_stop_defers_what_follows(d: Driver) -> None:
    """A deferred stop, replayed after client_ready, stops again; messages behind it keep waiting."""
    d.connect()
    d.applied(d.spawn({"A": 1}, 100.0))
    d.recv("stop")
    d.stopped()
    d.recv("stop")
    d.spawn({"A": 2}, 101.0)
    effects = non_periodic(d.advance(0.0))
    assert effects == [Send(Message("client_ready", LOCUST_VERSION, NODE)), StopUsers(0.0)]
    assert d.session.phase is Phase.STOPPING
    d.stopped()
    effects = non_periodic(d.advance(0.0))
    assert types(effects) == ["client_ready", "spawning", "ApplyUsers"]


def test_quit_is_handled_at_once_during_cooldown(d: Driver) -> None:
    """quit is never deferred: it interrupts the cooldown, and no client_ready follows."""
    d.connect()
    d.applied(d.spawn({"A": 1}, 100.0, stop_timeout=5.0))
    d.recv("stop")
    d.stopped()
    d.spawn({"A": 2}, 101.0)  # deferred, and dropped by the quit
    effects = d.recv("quit")
    assert types(effects) == ["Log", "StopUsers"]
    assert d.session.phase is Phase.QUITTING
    d.stopped()
    d.advance(20.0)
    assert d.times("client_ready", since=0.1) == []
    assert len(d.sent("spawning")) == 1
    assert d.session.phase is Phase.EXITED


def test_master_heartbeat_and_reconnect_are_handled_during_stop(d: Driver) -> None:
    """heartbeat and reconnect are handled while stopping, as Locust's other greenlets do."""
    d.connect()
    d.recv("stop")
    assert d.session.phase is Phase.STOPPING
    assert d.recv("heartbeat") == []
    assert d.session.last_master_heartbeat == 0.0
    assert types(d.recv("reconnect")) == ["Log", "Reconnect"]


def test_stop_while_spawning_ignores_the_late_completion(d: Driver) -> None:
    """A spawn still being applied when stop arrives never completes."""
    d.connect()
    spawn = d.spawn({"A": 3}, 100.0)
    d.recv("stop")
    assert d.applied(spawn) == []
    assert d.sent("spawning_complete") == []
    assert types(d.stopped()) == ["client_stopped"]


# --------------------------------------------------------------------------------------------
# Quit, shutdown, master silence
# --------------------------------------------------------------------------------------------


def test_quit_sends_final_stats_then_quit(d: Driver) -> None:
    """quit -> StopUsers -> users_stopped -> final stats, quit, Exit(0); heartbeats go on meanwhile."""
    d.connect()
    d.applied(d.spawn({"A": 2}, 100.0, stop_timeout=5.0))
    d.advance(1.0)
    effects = d.recv("quit")
    assert effects == [Log("info", "Got quit message from master, shutting down..."), StopUsers(5.0)]
    assert d.session.phase is Phase.QUITTING
    reports = d.reports
    d.advance(4.0)
    assert d.times("heartbeat", since=1.5) == [2.0, 3.0, 4.0]
    assert d.times("stats", since=1.5) == []  # the periodic stats end with the quit
    effects = d.stopped()
    assert types(effects) == ["stats", "quit", "Exit"]
    assert effects[-1] == Exit(EXIT_OK, "quit from master")
    assert d.reports == reports + 1  # a fresh, final report
    assert effects[0].message.data["user_classes_count"] == {"A": 0}  # type: ignore[union-attr]
    assert d.session.phase is Phase.EXITED
    assert d.session.next_deadline() is None
    assert d.recv("heartbeat") == [] and d.spawn({"A": 1}, 200.0) == []


def test_quit_when_users_never_stop(d: Driver) -> None:
    """If users never report stopping, the 'quit' deadline (stop_timeout + one interval) still ends it."""
    d.connect()
    d.applied(d.spawn({"A": 2}, 100.0, stop_timeout=2.0))
    d.advance(1.0)
    d.recv("quit")
    assert d.session.next_deadline() is not None
    d.advance(3.99)
    assert not any(isinstance(e, Exit) for _, e in d.timeline)
    effects = d.advance(10.0)
    assert types(effects)[-3:] == ["stats", "quit", "Exit"]
    assert [t for t, e in d.timeline if isinstance(e, Exit)] == [1.0 + 2.0 + TIMING.heartbeat_interval]
    assert d.session.phase is Phase.EXITED
    assert d.stopped() == []  # a late report changes nothing


def test_duplicate_quit_only_logs(d: Driver) -> None:
    d.connect()
    d.recv("quit")
    assert types(d.recv("quit")) == ["Log"]
    assert types(d.stopped()) == ["stats", "quit", "Exit"]


def test_shutdown_sends_quit_and_exits_0(d: Driver) -> None:
    """shutdown (SIGTERM): StopUsers(0), quit, Exit(0); nothing afterwards."""
    d.connect()
    d.applied(d.spawn({"A": 1}, 100.0))
    effects = d._keep(d.session.shutdown("SIGTERM"))
    assert types(effects) == ["Log", "StopUsers", "quit", "Exit"]
    assert effects[1] == StopUsers(0.0)
    assert effects[-1] == Exit(EXIT_OK, "SIGTERM")
    assert d.session.phase is Phase.EXITED
    assert d.session.next_deadline() is None
    assert d.session.shutdown("SIGINT") == []
    assert d.session.user_error("x", "tb") == []


def test_master_silence_quits_with_exit_1(d: Driver) -> None:
    """After a master heartbeat, none for master_heartbeat_timeout -> StopUsers(0), quit, Exit(1) (spec §5.3)."""
    d.connect()
    d.advance(2.0)
    d.recv("heartbeat")
    d.advance(5.0)
    d.recv("heartbeat")  # each master heartbeat pushes the deadline back
    d.advance(5.0 + TIMING.master_heartbeat_timeout - 0.01)
    assert d.sent("quit") == []
    effects = d.advance(30.0)
    assert types(effects)[-4:] == ["Log", "StopUsers", "quit", "Exit"]
    assert effects[-1] == Exit(EXIT_MASTER_LOST, "master heartbeat timeout")
    assert d.times("quit") == [15.0]
    assert "Didn't get heartbeat from master" in effects[-4].text  # type: ignore[union-attr]
    assert d.session.phase is Phase.EXITED
    assert max(d.times("heartbeat")) == 15.0  # the heartbeat due at the same moment went out, then nothing


def test_no_master_silence_before_first_master_heartbeat(d: Driver) -> None:
    """A master that never heartbeats (pre-2.19) never triggers the timeout."""
    d.connect()
    d.advance(10 * TIMING.master_heartbeat_timeout)
    assert d.sent("quit") == []
    assert d.session.phase is Phase.READY


def test_master_silence_during_cooldown(d: Driver) -> None:
    """The timeout applies while cooling down too (issue #2621: stop_timeout above the timeout)."""
    d.connect()
    d.recv("heartbeat")
    d.applied(d.spawn({"A": 1}, 100.0, stop_timeout=60.0))
    d.recv("stop")
    d.stopped()
    d.advance(30.0)
    assert d.times("quit") == [TIMING.master_heartbeat_timeout]
    assert d.session.phase is Phase.EXITED
    assert d.times("client_ready", since=0.1) == []


# --------------------------------------------------------------------------------------------
# Other messages and inputs
# --------------------------------------------------------------------------------------------


def test_reconnect_effect(d: Driver) -> None:
    d.connect()
    effects = d.recv("reconnect")
    assert effects == [Log("warning", "Received reconnect message from master. Resetting RPC connection."), Reconnect()]
    assert d.session.phase is Phase.READY


def test_unknown_type_only_warns(d: Driver) -> None:
    d.connect()
    effects = d.recv("no_such_type", {"x": [1, 2]})
    assert effects == [Log("warning", "Unknown message type received: no_such_type")]


def test_info_messages_are_logged(d: Driver) -> None:
    """Master spawning_complete / update_user_class are accepted and only logged."""
    d.connect()
    assert types(d.recv("spawning_complete", {"user_count": 3})) == ["Log"]
    assert types(d.recv("update_user_class", {"user_class_name": "A", "weight": 2})) == ["Log"]
    assert d.session.phase is Phase.READY


@pytest.mark.parametrize(
    ("message_type", "data"),
    [
        ("spawn", {k: v for k, v in spawn_data({"A": 1}, 100.0).items() if k != "timestamp"}),
        ("spawn", {k: v for k, v in spawn_data({"A": 1}, 100.0).items() if k != "host"}),
        ("spawn", {**spawn_data({"A": 1}, 100.0), "timestamp": "yesterday"}),
        ("spawn", {**spawn_data({"A": 1}, 100.0), "user_classes_count": {"A": "many"}}),
        ("spawn", None),
        ("spawn", [1, 2, 3]),
        ("spawning_complete", "x"),
        ("update_user_class", 3),
    ],
)
def test_malformed_payloads_are_logged_and_ignored(d: Driver, message_type: str, data: Any) -> None:
    """A payload that breaks its schema: one error log, no message sent, no phase change."""
    d.connect()
    before = d.session.phase
    effects = d.recv(message_type, data)
    assert len(effects) == 1 and isinstance(effects[0], Log) and effects[0].level == "error"
    assert f"Ignoring malformed {message_type}" in effects[0].text
    assert d.session.phase is before
    assert d.sent("spawning") == []
    assert d.session.last_spawn_timestamp == 0.0


def test_a_spawn_without_parsed_options_is_applied(d: Driver) -> None:
    """Masters before 2.2 send no parsed_options (Locust's own 2.2+ worker dies of the KeyError): ours spawns."""
    d.connect()
    old = {k: v for k, v in spawn_data({"A": 2}, 100.0).items() if k != "parsed_options"}
    d.applied(d.recv("spawn", old))
    assert [m.data["user_classes_count"] for _, m in d.sent("spawning_complete")] == [{"A": 2}]


def test_locust_compat_below_2_10_heartbeats_without_an_ack(steps: list[Step]) -> None:
    """--locust-compat 2.8: heartbeats and stats start with client_ready (a pre-2.10 master never acks), client_ready
    is sent once, and a later ack (a 2.10+ master) changes nothing."""
    d = Driver(waits_for_ack=False)
    d.start()
    d.advance(10 * TIMING.heartbeat_interval)
    assert len(d.sent("client_ready")) == 1
    assert len(d.sent("heartbeat")) >= 10 and d.sent("stats")
    d.recv("ack", {"index": 3})
    d.advance(12 * TIMING.heartbeat_interval)
    assert len(d.sent("client_ready")) == 1
    d.applied(d.spawn({"A": 1}, 100.0))
    assert d.sent("spawning_complete")
    assert_phase_history(steps, d.session.phase)


def test_malformed_frame_is_logged(d: Driver) -> None:
    d.connect()
    effects = d.session.malformed("codec.arity: an array of 2 items", "codec.arity", d.now)
    assert effects == [Log("error", "Skipping malformed frame from master: codec.arity: an array of 2 items")]
    assert d.session.phase is Phase.READY


def test_user_error_sends_exception(d: Driver) -> None:
    d.connect()
    effects = d._keep(d.session.user_error("boom", "Traceback line\n"))
    assert effects == [Send(Message("exception", {"msg": "boom", "traceback": "Traceback line\n"}, NODE))]


def test_locust_timing_is_the_default() -> None:
    """Without a Timing, the session uses Locust's constants (5 s connect timeout, 61 attempts)."""
    session = WorkerSession(WorkerConfig(NODE), report=lambda reset: {}, resources=lambda: (0.0, 1))
    assert session.config.timing is LOCUST_TIMING
    session.start(0.0)
    assert session.next_deadline() == 5.0


# --------------------------------------------------------------------------------------------
# Regressions of bugs found earlier: late acks and heartbeats while quitting, quit before ack
# --------------------------------------------------------------------------------------------


def test_ack_while_quitting_is_harmless() -> None:
    """An ack that crosses the master's quit (reply to a client_ready sent at the end of a cooldown)."""
    d = Driver()
    d.connect()
    d.recv("stop")
    d.stopped()
    d.advance(0.0)  # cooldown over: client_ready sent
    d.recv("quit")
    assert d.recv("ack", {"index": 0}) == []
    assert types(d.stopped()) == ["stats", "quit", "Exit"]


def test_master_heartbeat_while_quitting_does_not_crash() -> None:
    """Users slower than master_heartbeat_timeout to stop after a quit; the master answered one heartbeat meanwhile."""
    d = Driver()
    d.connect()
    d.applied(d.spawn({"A": 1}, 100.0, stop_timeout=30.0))
    d.recv("quit")
    d.advance(1.0)
    d.recv("heartbeat")
    effects = d.advance(40.0)
    assert types(effects)[-3:] == ["stats", "quit", "Exit"]
    assert [t for t, e in d.timeline if isinstance(e, Exit)] == [31.0]


def test_master_heartbeat_before_ack_does_not_crash() -> None:
    """Locust starts its heartbeat_timeout_checker only after the ack; a stray heartbeat before it is harmless."""
    d = Driver(timing=LOCUST_TIMING)
    d.start()
    d.recv("heartbeat")
    d.advance(400.0)
    assert [e for _, e in d.timeline if isinstance(e, Exit)] == [Exit(EXIT_CONNECT_FAILED, "no ack from the master")]


def test_no_heartbeat_before_ack_even_after_quit() -> None:
    d = Driver()
    d.start()
    d.recv("quit")
    d.advance(10.0)
    assert d.session.phase is Phase.EXITED
    assert d.sent("heartbeat") == []


# --------------------------------------------------------------------------------------------
# Property: random master behaviour
# --------------------------------------------------------------------------------------------

GARBAGE = [
    ("spawn", None),
    ("spawn", {"timestamp": 5.0}),
    ("spawn", {"user_classes_count": {"A": 1}, "host": None, "stop_timeout": 0.0, "parsed_options": {}}),
    ("ack", "nope"),
    ("ack", {"index": "0"}),
    ("heartbeat", {"x": 1}),
    ("spawning_complete", "x"),
    ("update_user_class", 3),
    ("stop", {"unexpected": True}),  # a non-nil stop is accepted (Locust never reads it)
    ("quit_now", None),
    ("", None),
]

_action = st.one_of(
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=2.5)),
    st.tuples(st.just("advance"), st.floats(min_value=5.0, max_value=12.0)),  # long enough for master silence
    st.tuples(st.just("recv"), st.sampled_from(["ack", "stop", "stop", "reconnect", "unknown", "ack", "quit"])),
    st.just(("recv", "heartbeat")),
    st.tuples(
        st.just("spawn"),
        st.integers(min_value=-2, max_value=3),
        st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers(min_value=0, max_value=4), max_size=3),
        st.sampled_from([0.0, 0.5, 2.0, 15.0]),
    ),
    st.tuples(st.just("garbage"), st.sampled_from(range(len(GARBAGE)))),
    st.tuples(st.just("applied")),
    st.tuples(st.just("applied")),
    st.tuples(st.just("stopped")),
    st.tuples(st.just("stopped")),
    st.tuples(st.just("malformed")),
    st.tuples(st.just("user_error")),
)


@settings(max_examples=400, database=None)
@given(st.lists(_action, max_size=80))
def test_random_master_behaviour(actions: list[tuple[Any, ...]]) -> None:
    """Random master traffic and time: no exception, phases only via the table, heartbeats on time,
    valid payloads, nothing sent after Exit, and a quit always ends in EXITED.

    """
    with recording_transitions() as steps:
        d = Driver()
        pending_applies: list[ApplyUsers] = []
        pending_stops = 0
        last_timestamp = 1000.0
        exit_at: int | None = None  # index in the timeline of the Exit
        interval = TIMING.heartbeat_interval

        def absorb(start: int, phase_before: Phase) -> None:
            """Check the effects recorded since timeline index ``start`` and play the pool's part."""
            nonlocal pending_stops, exit_at
            for i in range(start, len(d.timeline)):
                e = d.timeline[i][1]
                if isinstance(e, ApplyUsers):
                    pending_applies.append(e)
                elif isinstance(e, StopUsers):
                    pending_stops += 1
                elif isinstance(e, Send):
                    assert check_payload(e.message, Direction.WORKER_TO_MASTER) == [], e.message
                    if e.message.type == "heartbeat":
                        assert e.message.data["state"] in REPORTED_STATES[phase_before]
                elif isinstance(e, Exit):
                    assert exit_at is None, "a second Exit"
                    exit_at = i

        def heartbeat_on_time() -> None:
            """While connected (acked, not exited), the last heartbeat is at most one interval old."""
            if exit_at is None:
                beats = d.times("heartbeat")
                assert beats and d.now - beats[-1] <= interval + EPS, (d.now, beats[-3:])

        def step(fn: Any, *args: Any) -> None:
            start, before = len(d.timeline), d.session.phase
            fn(*args)
            absorb(start, before)

        def advance(to: float) -> None:
            while True:  # one deadline at a time, checking the cadence at every tick
                deadline = d.session.next_deadline()
                if deadline is None or deadline > to:
                    break
                step(d.advance, deadline)
                heartbeat_on_time()
            d.now = max(d.now, to)
            heartbeat_on_time()

        step(d.connect)
        advance(0.0)
        for action in actions:
            kind = action[0]
            if kind == "advance":
                advance(d.now + action[1])
            elif kind == "recv":
                message_type = "no_such_type" if action[1] == "unknown" else action[1]
                step(d.recv, message_type, {"index": 0} if message_type == "ack" else None)
            elif kind == "spawn":
                last_timestamp += action[1]
                step(d.spawn, action[2], last_timestamp, action[3])
            elif kind == "garbage":
                message_type, data = GARBAGE[action[1]]
                step(d.recv, message_type, data)
            elif kind == "applied" and pending_applies:
                apply = pending_applies.pop(0)
                step(lambda a=apply: d._keep(d.session.users_applied(a.spawn_id, a.counts)))
            elif kind == "stopped" and pending_stops:
                pending_stops -= 1
                step(d.stopped)
            elif kind == "malformed":
                step(lambda: d._keep(d.session.malformed("garbage bytes", "codec.msgpack", d.now)))
            elif kind == "user_error":
                step(lambda: d._keep(d.session.user_error("boom", "tb")))
            if exit_at is None:
                heartbeat_on_time()
        # Finally the master quits; with or without the users reporting, the session ends.
        if exit_at is None:
            if d.session.phase is not Phase.QUITTING:
                step(d.recv, "quit")
            advance(d.now + 15.0 + 2 * interval)
        assert exit_at is not None
        assert d.session.phase is Phase.EXITED
        assert d.session.next_deadline() is None
        exit_effect = d.timeline[exit_at][1]
        assert isinstance(exit_effect, Exit) and exit_effect.code in (EXIT_OK, EXIT_MASTER_LOST)
        previous = d.timeline[exit_at - 1][1]
        assert isinstance(previous, Send) and previous.message.type == "quit"
        assert not any(isinstance(e, (Send, ApplyUsers, StopUsers, Reconnect)) for _, e in d.timeline[exit_at + 1 :])
        assert len(d.sent("quit")) == 1
        assert_phase_history(steps, d.session.phase)
