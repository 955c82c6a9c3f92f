"""harness.trace_compare: each kind of difference is found, and identical recordings have none."""

from __future__ import annotations

from harness.trace_compare import M2W, W2M, WireMessage, compare, events, shape

BEAT = {"state": "ready", "current_cpu_usage": 0.0}


def recording(
    *, ack: object = {"index": 0}, replies: bool = True, reply_after: float = 0.001, stop_timeout: object = 0.0
) -> list[WireMessage]:
    out = [WireMessage(0.0, W2M, "client_ready", "2.47.0")]
    if ack is not None:
        out.append(WireMessage(0.001, M2W, "ack", ack))
    for i in range(1, 6):
        out.append(WireMessage(float(i), W2M, "heartbeat", BEAT))
        if replies:
            out.append(WireMessage(i + reply_after, M2W, "heartbeat", None))
    spawn = {"timestamp": 1.0, "user_classes_count": {"U": 2}, "host": None, "stop_timeout": stop_timeout}
    out += [WireMessage(6.0, M2W, "spawn", spawn), WireMessage(6.1, W2M, "spawning", None)]
    out += [WireMessage(6.2, W2M, "spawning_complete", {"user_classes_count": {"U": 2}, "user_count": 2})]
    out += [WireMessage(9.0, M2W, "quit", None), WireMessage(9.1, W2M, "quit", None)]
    return out


def test_identical_recordings_have_no_difference() -> None:
    assert compare(recording(), recording(), tolerance=0.05) == []


def test_shape_is_keys_and_value_types() -> None:
    assert shape({"b": 1.0, "a": None, "c": {"x": 1}}) == "{a: nil, b: float, c: map}"
    assert shape("2.47.0") == "str" and shape(None) == "nil" and shape(True) == "bool" and shape([1]) == "array"


def test_events_skip_periodic_messages_and_count_repeats() -> None:
    messages = [WireMessage(0, W2M, "client_ready", "v"), WireMessage(1, W2M, "client_ready", "v")]
    messages += [WireMessage(2, W2M, "heartbeat", BEAT), WireMessage(3, M2W, "ack", None)]
    assert events(messages) == ["W->M client_ready x2", "M->W ack"]


def test_a_missing_ack_is_an_order_difference() -> None:
    (difference,) = compare(recording(), recording(ack=None), tolerance=0.05)
    assert (difference.rule, difference.what) == ("order", "non-periodic messages")
    assert "M->W ack" in difference.real and "M->W ack" not in difference.fake


def test_payload_shapes_are_compared_per_type() -> None:
    found = compare(recording(ack={"index": 0}, stop_timeout=None), recording(ack=None, stop_timeout=0.0), tolerance=0.05)
    assert {(d.rule, d.what) for d in found} >= {("order", "non-periodic messages"), ("shape", "M->W spawn")}
    spawn = next(d for d in found if d.what == "M->W spawn")
    assert "stop_timeout: nil" in spawn.real and "stop_timeout: float" in spawn.fake


def test_heartbeat_replies_present_or_not() -> None:
    found = {(d.rule, d.what) for d in compare(recording(replies=True), recording(replies=False), tolerance=0.05)}
    assert found == {("presence", "M->W heartbeat")}


def test_reply_times_beyond_the_tolerance() -> None:
    (difference,) = compare(recording(reply_after=0.001), recording(reply_after=0.3), tolerance=0.05)
    assert (difference.rule, difference.what) == ("timing", "heartbeat reply after a heartbeat")
    assert compare(recording(reply_after=0.001), recording(reply_after=0.04), tolerance=0.05) == []


def test_replies_to_only_some_heartbeats() -> None:
    half = [m for m in recording() if not (m.direction == M2W and m.type == "heartbeat" and int(m.t) % 2)]
    (difference,) = compare(recording(), half, tolerance=0.05)
    assert (difference.rule, difference.what, difference.real) == ("replies", "heartbeat replies per heartbeat", "1.00")
