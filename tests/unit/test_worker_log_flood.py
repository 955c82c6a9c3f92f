"""The reference worker's log under a flood: one line per kind of ignored message per log interval, with a count,
and Locust's 70-line rule for ``logs`` messages (spec §3.8).

Without them, every unknown message of a flood adds a log line (disk writes the worker still drains long after
the flood ended), and every log interval the worker would send the whole, ever longer list.
"""

from __future__ import annotations

from harness.protocol.messages import Message
from harness.protocol.timing import Timing
from worker.session import LOGS_DISABLED, MAX_NEW_LOG_LINES, Effect, Send, WorkerConfig, WorkerSession

NODE = "testhost_0123456789abcdef"
TIMING = Timing(heartbeat_interval=1.0, report_interval=3.0, log_report_interval=5.0)


class Driver:
    """Ticks a session at every deadline it announces, as ``worker.runtime`` does; keeps what it sends."""

    def __init__(self) -> None:
        self.session = WorkerSession(WorkerConfig(NODE, TIMING), report=lambda reset: {}, resources=lambda: (0.0, 1))
        self.now = 0.0
        self.sent: list[tuple[float, Message]] = []
        self._keep(self.session.start(self.now))
        self.recv("ack", {"index": 0})

    def _keep(self, effects: list[Effect]) -> None:
        self.sent += [(self.now, e.message) for e in effects if isinstance(e, Send)]

    def recv(self, message_type: str, data: object = None) -> None:
        self._keep(self.session.receive(Message(message_type, data, NODE), self.now))

    def advance(self, to: float) -> None:
        while (deadline := self.session.next_deadline()) is not None and deadline <= to:
            self.now = max(self.now, deadline)
            self._keep(self.session.tick(self.now))
        self.now = to

    def lines(self) -> list[str]:
        """Every line the session logged so far (as it keeps them for ``logs`` messages)."""
        return [line for line in self.session.log_lines if not line.startswith("info: Connected")]

    def logs(self) -> list[tuple[float, list[str]]]:
        return [(t, m.data["logs"]) for t, m in self.sent if m.type == "logs"]


def test_a_few_unknown_messages_are_reported_every_interval() -> None:
    d = Driver()
    d.advance(1.0)
    for n in range(MAX_NEW_LOG_LINES):  # exactly the limit (one line per type): still fine
        d.recv(f"noise{n}")
    d.advance(12.0)
    logs = d.logs()
    assert [t for t, _ in logs] == [0.0, 5.0]
    assert len(logs[1][1]) == 1 + MAX_NEW_LOG_LINES
    d.recv("noise")
    d.advance(16.0)
    assert [t for t, _ in d.logs()] == [0.0, 5.0, 15.0]


def test_a_flood_of_one_unknown_type_is_one_line_and_a_count_per_interval() -> None:
    """The first message of a kind is logged as it comes; the rest of the interval is one line with the count."""
    d = Driver()
    d.advance(1.0)
    for _ in range(5000):
        d.recv("noise")
    assert d.lines() == ["warning: Unknown message type received: noise"]
    d.advance(5.9)
    for _ in range(2000):
        d.recv("noise")
    d.advance(6.0)  # the interval (5 s here) that began with the first message has ended
    assert d.lines()[1:] == ["warning: Ignored 6,999 more messages of unknown type 'noise' in the last 5.0 s"]
    for _ in range(300):  # still coming: counted in the next interval, no new first line
        d.recv("noise")
    d.advance(11.0)
    assert d.lines()[2:] == ["warning: Ignored 300 more messages of unknown type 'noise' in the last 5.0 s"]
    d.advance(16.5)  # nothing came in that interval: no line, and the kind is forgotten
    assert len(d.lines()) == 3
    d.recv("noise")
    assert d.lines()[3:] == ["warning: Unknown message type received: noise"]
    assert MAX_NEW_LOG_LINES > 3 and all(lines for _, lines in d.logs()), "log sending stays on"
    heartbeats = [t for t, m in d.sent if m.type == "heartbeat"]
    assert heartbeats == [float(t) for t in range(17)], "heartbeats are not affected"


def test_kinds_are_counted_apart_and_an_exit_writes_what_it_counted() -> None:
    """Unknown types, malformed payloads and bad frames each get their line; a quit flushes the counts."""
    d = Driver()
    d.advance(1.0)
    for _ in range(3):
        d.recv("noise")
        d.recv("other")
        d.recv("spawn", {"user_classes_count": {"A": 1}})  # timestamp, host ... missing
        d._keep(d.session.malformed("codec.arity: an array of 2 items", "codec.arity", d.now))
        d._keep(d.session.malformed("codec.msgpack: not msgpack", "codec.msgpack", d.now))
    assert len(d.lines()) == 5
    d.recv("quit")
    d.advance(3.0)  # the users never report stopped here: the quit finishes at its deadline, 1 s later
    assert d.lines()[5] == "info: Got quit message from master, shutting down..."
    assert sorted(d.lines()[6:]) == sorted(
        [
            "warning: Ignored 2 more messages of unknown type 'noise' in the last 1.0 s",
            "warning: Ignored 2 more messages of unknown type 'other' in the last 1.0 s",
            "error: Ignored 2 more malformed spawn messages in the last 1.0 s",
            "error: Ignored 2 more malformed frames (codec.arity) in the last 1.0 s",
            "error: Ignored 2 more malformed frames (codec.msgpack) in the last 1.0 s",
        ]
    )
    assert [m.type for _, m in d.sent][-2:] == ["stats", "quit"]


def test_many_kinds_in_one_interval_turn_log_sending_off_for_good() -> None:
    """More than 70 new lines in one interval: the list goes once more, with Locust's warning, then never again."""
    d = Driver()
    d.advance(1.0)
    for n in range(500):
        d.recv(f"noise{n}")
    d.advance(5.0)
    logs = d.logs()
    assert [t for t, _ in logs] == [0.0, 5.0]
    last = logs[-1][1]
    assert len(last) == 1 + 500 + 1
    assert last[-1] == f"warning: {LOGS_DISABLED}"
    assert "more than 70 log lines" in LOGS_DISABLED
    for n in range(500):
        d.recv(f"other{n}")
    d.advance(60.0)
    assert len(d.logs()) == 2, "log sending must stay off"
    assert len(d.session.log_lines) == len(last), "the lines nobody will send are not kept"
    heartbeats = [t for t, m in d.sent if m.type == "heartbeat"]
    assert heartbeats == [float(t) for t in range(61)], "heartbeats are not affected"
    assert "logs" not in d.session._deadlines
