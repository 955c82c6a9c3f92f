"""The named defects (``worker.defects``): registry, command line, FairLock, and each session deviation, sans-IO.

Each session defect is checked against the clean session on the same inputs, so a test shows both
the bug and that the reference behaviour is untouched without ``--defect``.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import worker
from harness.protocol.messages import Message
from harness.protocol.states import Phase
from harness.protocol.timing import Timing
from worker.__main__ import build_parser, main
from worker.defects import DEFECTS, THREADING_DEFECTS, listing, threading_defect
from worker.locks import FairLock
from worker.session import ApplyUsers, Effect, Exit, Reconnect, Send, WorkerConfig, WorkerSession
from worker.stats import RequestStats

NODE = "unit_defects"
TIMING = Timing(
    heartbeat_interval=1.0,
    master_heartbeat_timeout=10.0,
    connect_timeout=2.0,
    connect_retry_count=3,
    report_interval=3.0,
    log_report_interval=5.0,
)
SOURCES = Path(worker.__file__).parent


class Run:
    """A session on a simulated clock, ticked at every deadline as the runtime does."""

    def __init__(self, *defects: str) -> None:
        self.now = 0.0
        self.stats = RequestStats(0.0)
        config = WorkerConfig(NODE, TIMING, defects=frozenset(defects))
        self.session = WorkerSession(config, report=self._report, resources=lambda: (1.0, 1_000_000))
        self.effects: list[tuple[float, Effect]] = []

    def _report(self, reset: bool) -> dict[str, Any]:
        self.stats.log_request("GET", "/x", 10.0, 1, 1e9 + self.now)
        return self.stats.take_report(1e9 + self.now, reset=reset)

    def keep(self, effects: list[Effect]) -> list[Effect]:
        self.effects += [(self.now, e) for e in effects]
        return effects

    def recv(self, message_type: str, data: Any = None) -> list[Effect]:
        return self.keep(self.session.receive(Message(message_type, data, NODE), self.now))

    def connect(self) -> list[Effect]:
        return self.keep(self.session.start(self.now)) + self.recv("ack", {"index": 0})

    def advance(self, to: float) -> list[Effect]:
        out: list[Effect] = []
        while (deadline := self.session.next_deadline()) is not None and deadline <= to:
            self.now = max(self.now, deadline)
            out += self.keep(self.session.tick(self.now))
        self.now = max(self.now, to)
        return out

    def spawn(self, counts: dict[str, int], timestamp: float) -> list[Effect]:
        data = {"timestamp": timestamp, "user_classes_count": counts, "host": None, "stop_timeout": 0.0, "parsed_options": {}}
        return self.recv("spawn", data)

    def applied(self, effects: list[Effect]) -> list[Effect]:
        (apply,) = [e for e in effects if isinstance(e, ApplyUsers)]
        return self.keep(self.session.users_applied(apply.spawn_id, apply.counts))

    def sent(self, message_type: str, since: float = -1.0) -> list[tuple[float, Message]]:
        return [(t, e.message) for t, e in self.effects if isinstance(e, Send) and e.message.type == message_type and t >= since]


def sends(effects: list[Effect]) -> list[Message]:
    return [e.message for e in effects if isinstance(e, Send)]


def types(effects: list[Effect]) -> list[str]:
    return [e.message.type if isinstance(e, Send) else type(e).__name__ for e in effects]


# --------------------------------------------------------------------------------------------
# Registry and command line
# --------------------------------------------------------------------------------------------


def test_registry_names_and_descriptions() -> None:
    assert len(DEFECTS) == 23
    for name, text in DEFECTS.items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), name
        assert text and "\n" not in text
    assert set(THREADING_DEFECTS) <= set(DEFECTS)
    lines = listing().splitlines()
    assert [line.split()[0] for line in lines] == list(DEFECTS)


def test_every_defect_is_a_marked_deviation_in_the_source() -> None:
    """Each defect is visible to a reader: a ``# DEFECT <name>:`` comment where the code deviates."""
    text = "\n".join(p.read_text() for p in sorted(SOURCES.glob("*.py")))
    for name in DEFECTS:
        assert re.search(rf"# DEFECT [a-z, -]*\b{re.escape(name)}\b[a-z, -]*:", text), f"no '# DEFECT {name}:' comment"


def test_threading_defect_picks_at_most_one() -> None:
    assert threading_defect(frozenset()) is None
    assert threading_defect({"stuck-spawning"}) is None
    assert threading_defect({"wrong-counts", "lock-across-recv"}) == "lock-across-recv"
    with pytest.raises(ValueError, match="at most one"):
        threading_defect({"shared-socket", "slow-recv-timeout"})
    assert threading_defect({"overlapping-reconnect"}) is None
    with pytest.raises(ValueError, match="cannot be combined"):
        threading_defect({"overlapping-reconnect", "lock-across-recv"})


def test_list_defects_prints_every_name_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-defects"]) == 0
    out = capsys.readouterr().out
    for name, text in DEFECTS.items():
        assert re.search(rf"^{re.escape(name)} +{re.escape(text)}$", out, re.MULTILINE), name


def test_unknown_defect_is_a_usage_error_listing_the_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--defect", "no-such-bug"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-bug'" in err
    assert all(name in err for name in DEFECTS)


def test_two_threading_defects_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--defect", "shared-socket", "--defect", "lock-across-recv"])
    assert exited.value.code == 2
    assert "at most one of" in capsys.readouterr().err


def test_no_defect_flag_means_no_defect() -> None:
    args = build_parser().parse_args([])
    assert args.defect is None
    assert WorkerConfig("x").defects == frozenset()
    repeated = build_parser().parse_args(["--defect", "wrong-counts", "--defect", "no-final-stats"])
    assert repeated.defect == ["wrong-counts", "no-final-stats"]


def test_session_rejects_a_misspelt_defect_check() -> None:
    with pytest.raises(AssertionError, match="no such defect"):
        Run().session._defective("wrong-count")


# --------------------------------------------------------------------------------------------
# Session defects, each against the clean session
# --------------------------------------------------------------------------------------------


def test_heartbeat_before_ack() -> None:
    assert types(Run().session.start(0.0)) == ["client_ready"]
    r = Run("heartbeat-before-ack")
    first = r.keep(r.session.start(0.0))
    assert types(first) == ["heartbeat", "client_ready"]
    r.advance(1.5)  # no ack yet: heartbeats go on anyway
    assert [t for t, _ in r.sent("heartbeat")] == [0.0, 1.0]


def test_late_heartbeats_every_1_7_intervals() -> None:
    for defects, period in (((), 1.0), (("late-heartbeats",), 1.7)):
        r = Run(*defects)
        r.connect()
        r.advance(10.0)
        times = [t for t, _ in r.sent("heartbeat")]
        gaps = {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}
        assert gaps == {period}, (defects, gaps)


def test_silent_after_spawn_for_six_intervals() -> None:
    for defects, gap in (((), 1.0), (("silent-after-spawn",), 6.0)):
        r = Run(*defects)
        r.connect()
        r.advance(2.0)
        r.now = 2.5
        r.applied(r.spawn({"A": 1}, 1.0))
        r.advance(12.0)
        beats = [t for t, _ in r.sent("heartbeat")]
        after = min(t for t in beats if t > 2.5)
        assert after - 2.5 == pytest.approx(0.5 if not defects else gap), (defects, beats)


def test_stuck_spawning_never_completes() -> None:
    r = Run("stuck-spawning")
    r.connect()
    done = r.applied(r.spawn({"A": 2}, 1.0))
    assert done == []
    assert r.session.phase is Phase.SPAWNING
    r.advance(5.0)
    assert {m.data["state"] for t, m in r.sent("heartbeat") if t > 0} == {"spawning"}
    assert r.sent("stats")[-1][1].data["user_count"] == 2  # the users do run
    clean = Run()
    clean.connect()
    assert types(clean.applied(clean.spawn({"A": 2}, 1.0))) == ["spawning_complete"]


def test_wrong_counts_one_more_in_the_first_class() -> None:
    for defects, expected in (((), {"A": 2, "B": 1}), (("wrong-counts",), {"A": 3, "B": 1})):
        r = Run(*defects)
        r.connect()
        (complete,) = sends(r.applied(r.spawn({"A": 2, "B": 1}, 1.0)))
        assert complete.data == {"user_classes_count": expected, "user_count": sum(expected.values())}
    r = Run("wrong-counts")
    r.connect()
    (complete,) = sends(r.applied(r.spawn({}, 1.0)))
    assert complete.data["user_count"] == 1


def test_accepts_stale_spawn() -> None:
    clean = Run()
    clean.connect()
    clean.applied(clean.spawn({"A": 1}, 10.0))
    assert not [e for e in clean.spawn({"A": 5}, 9.0) if isinstance(e, ApplyUsers)]
    r = Run("accepts-stale-spawn")
    r.connect()
    r.applied(r.spawn({"A": 1}, 10.0))
    (complete,) = sends(r.applied(r.spawn({"A": 5}, 9.0)))
    assert complete.data == {"user_classes_count": {"A": 5}, "user_count": 5}


def test_no_ready_after_stop() -> None:
    for defects, readies in (((), 1), (("no-ready-after-stop",), 0)):
        r = Run(*defects)
        r.connect()
        r.applied(r.spawn({"A": 1}, 1.0))
        r.advance(1.0)
        r.recv("stop")
        assert types(r.keep(r.session.users_stopped(r.now))) == ["client_stopped"]
        r.advance(30.0)
        assert len(r.sent("client_ready", since=0.1)) == readies, defects


def _quit(r: Run) -> list[Effect]:
    r.connect()
    r.applied(r.spawn({"A": 1}, 1.0))
    r.recv("quit")
    return r.keep(r.session.users_stopped(r.now))


def test_no_final_stats() -> None:
    assert types(_quit(Run())) == ["stats", "quit", "Exit"]
    assert types(_quit(Run("no-final-stats"))) == ["quit", "Exit"]


def test_no_exit_on_quit_until_a_signal() -> None:
    r = Run("no-exit-on-quit")
    assert types(_quit(r)) == ["stats", "quit"]
    assert r.session.phase is Phase.EXITED
    assert r.advance(100.0) == []  # silent, and never exits by itself
    (exit_,) = r.session.shutdown("SIGTERM")
    assert isinstance(exit_, Exit) and exit_.code == 0
    assert Run().session.shutdown("x")[-1] == Exit(0, "x")


def test_stats_backwards() -> None:
    r = Run("stats-backwards")
    r.connect()
    r.applied(r.spawn({"A": 2}, 1.0))
    r.advance(10.0)
    for _, stats in r.sent("stats"):
        for entry in [stats.data["stats_total"], *stats.data["stats"]]:
            assert entry["num_requests"] == sum(entry["response_times"].values()) - 1
        assert stats.data["user_count"] < 0
    clean = Run()
    clean.connect()
    clean.advance(10.0)
    for _, stats in clean.sent("stats"):
        total = stats.data["stats_total"]
        assert total["num_requests"] == sum(total["response_times"].values())
        assert stats.data["user_count"] == 0


def test_ignores_reconnect() -> None:
    clean = Run()
    clean.connect()
    assert any(isinstance(e, Reconnect) for e in clean.recv("reconnect"))
    r = Run("ignores-reconnect")
    r.connect()
    assert types(r.recv("reconnect")) == ["Log"]


def test_overlapping_reconnect_keeps_the_old_connection_two_intervals() -> None:
    clean = Run()
    clean.connect()
    assert [e.overlap for e in clean.recv("reconnect") if isinstance(e, Reconnect)] == [0.0]
    r = Run("overlapping-reconnect")
    r.connect()
    interval = r.session.config.timing.heartbeat_interval
    assert [e.overlap for e in r.recv("reconnect") if isinstance(e, Reconnect)] == [2 * interval]


def test_no_master_timeout() -> None:
    for defects, exits in (((), True), (("no-master-timeout",), False)):
        r = Run(*defects)
        r.connect()
        r.recv("heartbeat")
        r.advance(100.0)
        assert any(isinstance(e, Exit) for _, e in r.effects) is exits, defects
    assert [t for t, _ in r.sent("heartbeat")][-1] == 100.0  # still heartbeating


def test_crash_on_unknown_raises() -> None:
    clean = Run()
    clean.connect()
    assert types(clean.recv("no_such_type", {"x": 1})) == ["Log"]
    r = Run("crash-on-unknown")
    r.connect()
    with pytest.raises(KeyError, match="no_such_type"):
        r.recv("no_such_type", {"x": 1})


def test_deaf_after_garbage_handles_nothing_after_an_undecodable_frame() -> None:
    for defects, handled in (((), True), (("deaf-after-garbage",), False)):
        r = Run(*defects)
        r.connect()
        assert types(r.session.malformed("not msgpack", "codec.msgpack", r.now)) == ["Log"]
        effects = r.spawn({"A": 1}, 1.0)
        assert any(isinstance(e, ApplyUsers) for e in effects) is handled, defects
        r.advance(3.0)
        assert r.sent("heartbeat", since=2.0), "heartbeats go on either way"


def test_cumulative_stats_never_resets() -> None:
    stats = RequestStats(0.0)
    stats.log_request("GET", "/x", 10.0, 1, 5.0)
    first = stats.take_report(6.0, reset=False)
    stats.log_request("GET", "/x", 10.0, 1, 7.0)
    second = stats.take_report(8.0, reset=False)
    assert first["stats_total"]["num_requests"] == 1 and second["stats_total"]["num_requests"] == 2
    assert second["stats_total"]["num_reqs_per_sec"] == {5: 1, 7: 1}
    first["stats_total"]["num_requests"] = 99  # a report is a copy, not a view
    assert stats.take_report(9.0)["stats_total"]["num_requests"] == 2
    assert stats.take_report(10.0)["stats_total"]["num_requests"] == 0  # the default resets


def test_cumulative_stats_is_a_session_decision() -> None:
    for defects, totals in (((), [1, 1, 1]), (("cumulative-stats",), [1, 2, 3])):
        r = Run(*defects)
        r.connect()
        r.advance(7.0)  # reports at 0, 3 and 6: each logs one request first
        assert [m.data["stats_total"]["num_requests"] for _, m in r.sent("stats")] == totals, defects


def test_no_client_ready_retry() -> None:
    for defects, sent in (((), 4), (("no-client-ready-retry",), 1)):
        r = Run(*defects)
        r.keep(r.session.start(0.0))
        r.advance(30.0)
        assert len(r.sent("client_ready")) == sent, defects
        assert r.session.next_deadline() is None or not defects


def test_impatient_master_timeout_gives_up_after_two_intervals() -> None:
    for defects, gives_up_by in (((), 10.0), (("impatient-master-timeout",), 2.0)):
        r = Run(*defects)
        r.connect()
        r.recv("heartbeat")
        r.advance(gives_up_by - 0.01)
        assert not r.sent("quit"), defects
        r.advance(gives_up_by)
        assert r.sent("quit"), defects


def test_silent_sigterm_exits_without_quit() -> None:
    assert types(Run().session.shutdown("SIGTERM"))[-2:] == ["quit", "Exit"]
    r = Run("silent-sigterm")
    r.connect()
    assert types(r.session.shutdown("SIGTERM")) == ["Exit"]
    assert r.session.next_deadline() is None


def test_stale_heartbeat_state_always_says_ready() -> None:
    for defects, state in (((), "running"), (("stale-heartbeat-state",), "ready")):
        r = Run(*defects)
        r.connect()
        r.applied(r.spawn({"A": 1}, 1.0))
        r.advance(3.0)
        assert r.sent("heartbeat")[-1][1].data["state"] == state, defects


# --------------------------------------------------------------------------------------------
# FairLock (the lock-based threading defects)
# --------------------------------------------------------------------------------------------


def test_fair_lock_hands_over_in_arrival_order() -> None:
    lock = FairLock()
    order: list[int] = []
    lock.acquire()
    threads = []
    for i in range(4):
        t = threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release()))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # each waiter queues before the next one starts
    lock.release()
    for t in threads:
        t.join(5.0)
    assert order == [0, 1, 2, 3]


def test_fair_lock_timeout_and_misuse() -> None:
    lock = FairLock()
    with lock:
        assert lock.acquire(timeout=0.05) is False
    assert lock.acquire(timeout=0.05) is True
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
