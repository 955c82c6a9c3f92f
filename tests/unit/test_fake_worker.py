"""The master catalog's fake worker core (sans-IO): what it sends, when, and what it makes of the master's messages."""

from __future__ import annotations

from harness.protocol.fake_worker import FOREIGN_VERSION, FakeWorkerCore, stats_data
from harness.protocol.messages import Direction, Message, MessageType
from harness.protocol.schema import check_payload


def test_it_registers_as_a_foreign_worker_and_heartbeats_on_its_period() -> None:
    core = FakeWorkerCore("w1", heartbeat_interval=1.0)
    assert core.start(10.0) == [Message(MessageType.CLIENT_READY, FOREIGN_VERSION, "w1")]
    assert core.due(10.9) == []
    beat = core.due(11.0)
    assert [m.type for m in beat] == [MessageType.HEARTBEAT]
    assert check_payload(beat[0], Direction.WORKER_TO_MASTER) == []
    assert core.due(11.5) == []
    assert core.next_due() == 12.0


def test_a_late_pump_sends_one_heartbeat_not_a_burst() -> None:
    core = FakeWorkerCore("w1")
    core.start(0.0)
    assert len(core.due(5.0)) == 1  # five periods late: one heartbeat, the next a period on
    assert core.due(5.2) == []
    assert core.next_due() == 6.0


def test_a_silent_worker_sends_nothing_more() -> None:
    core = FakeWorkerCore("w1")
    core.start(0.0)
    core.due(1.0)
    core.stop_heartbeats()
    assert core.next_due() is None and core.due(100.0) == []
    assert core.heartbeats_sent == [1.0]


def test_a_spawn_is_answered_with_spawning_and_its_counts() -> None:
    core = FakeWorkerCore("w1")
    spawn = {"timestamp": 1.0, "user_classes_count": {"U": 3}, "host": None, "stop_timeout": 0.0, "parsed_options": {}}
    replies = core.receive(Message(MessageType.SPAWN, spawn, "w1"), 2.0)
    assert [m.type for m in replies] == [MessageType.SPAWNING, MessageType.SPAWNING_COMPLETE]
    assert replies[1].data == {"user_classes_count": {"U": 3}, "user_count": 3}
    assert core.assigned() == 3 and core.state == "running" and core.spawns == [(2.0, spawn)]
    assert check_payload(replies[1], Direction.WORKER_TO_MASTER) == []


def test_what_the_master_sent_is_recorded_by_type() -> None:
    core = FakeWorkerCore("w1")
    core.receive(Message(MessageType.ACK, {"index": 4}, "w1"), 1.0)
    core.receive(Message(MessageType.HEARTBEAT, None, "w1"), 2.0)
    core.receive(Message(MessageType.RECONNECT, None, "w1"), 3.0)
    core.receive(Message("custom", 1, "w1"), 3.5)
    core.receive(Message(MessageType.QUIT, None, "w1"), 4.0)
    assert core.acks == [(1.0, {"index": 4})] and core.replies == [2.0] and core.reconnects == [3.0]
    assert core.quit_at == 4.0 and core.next_due() is None and [m.type for _, m in core.other] == ["custom"]


def test_stats_are_a_payload_the_master_reads_with_the_counts_given() -> None:
    data = stats_data(7, 2, 1_700_000_000.5, {"U": 2})
    message = Message(MessageType.STATS, data, "w1")
    assert check_payload(message, Direction.WORKER_TO_MASTER) == []
    assert data["stats"][0]["num_requests"] == 7 and data["stats_total"]["num_failures"] == 2
    assert data["stats"][0]["num_reqs_per_sec"] == {1_700_000_000: 7} and data["user_count"] == 2
    assert stats_data(0, 0, 5.0, {})["stats"] == []
