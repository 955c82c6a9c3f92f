"""The reference worker's ``logs`` under a flood of unknown messages: Locust's 70-line rule (spec §3.8).

Without it, every unknown message of a flood adds a log line, and every log interval the worker would send the
whole, ever longer list (a 10 s flood at 60k msg/s: 600k lines, tens of MB per message, on the socket thread).
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

    def logs(self) -> list[tuple[float, list[str]]]:
        return [(t, m.data["logs"]) for t, m in self.sent if m.type == "logs"]


def test_a_few_unknown_messages_are_reported_every_interval() -> None:
    d = Driver()
    d.advance(1.0)
    for _ in range(MAX_NEW_LOG_LINES):  # exactly the limit: still fine
        d.recv("noise")
    d.advance(12.0)
    logs = d.logs()
    assert [t for t, _ in logs] == [0.0, 5.0]
    assert len(logs[1][1]) == 1 + MAX_NEW_LOG_LINES
    d.recv("noise")
    d.advance(16.0)
    assert [t for t, _ in d.logs()] == [0.0, 5.0, 15.0]


def test_a_flood_of_unknown_messages_turns_log_sending_off_for_good() -> None:
    """More than 70 new lines in one interval: the list goes once more, with Locust's warning, then never again."""
    d = Driver()
    d.advance(1.0)
    for _ in range(5000):
        d.recv("noise")
    d.advance(5.0)
    logs = d.logs()
    assert [t for t, _ in logs] == [0.0, 5.0]
    last = logs[-1][1]
    assert len(last) == 1 + 5000 + 1
    assert last[-1] == f"warning: {LOGS_DISABLED}"
    assert "more than 70 log lines" in LOGS_DISABLED
    for _ in range(5000):
        d.recv("noise")
    d.advance(60.0)
    assert len(d.logs()) == 2, "log sending must stay off"
    assert len(d.session.log_lines) == len(last), "the lines nobody will send are not kept"
    heartbeats = [t for t, m in d.sent if m.type == "heartbeat"]
    assert heartbeats == [float(t) for t in range(61)], "heartbeats are not affected"
    assert "logs" not in d.session._deadlines
