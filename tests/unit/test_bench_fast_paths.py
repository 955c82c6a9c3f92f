"""The fast paths made for bench/ingest.py, bench/storm.py and bench/swarm.py change no result.

- ``check_payload``'s heartbeat fast path agrees with the full schema on any heartbeat data;
- ``decode`` and ``MasterCore.inspect`` build the same frozen Message and Inbound as their constructors;
- ``Trace.add`` records what ``Trace.append`` records, in order, readable and awaitable from another thread;
- a storm hands its messages over in batches but keeps each thread's order, the draws of the old one-by-one
  loop, its rate cap, and one message per hand-over at low rates.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fakemaster.storm import NOISE_TYPE, StormHandle, StormSpec
from harness.protocol.codec import decode, encode
from harness.protocol.findings import Violation
from harness.protocol.master import Inbound, MasterCore
from harness.protocol.messages import Direction, Message
from harness.protocol.schema import WORKER_SCHEMAS, Problem, check_payload
from harness.trace import Kind, Trace

HEARTBEAT = {"state": "ready", "current_cpu_usage": 1.0, "current_memory_usage": 1000000}

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["ready", "spawning", "running", "stopped"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
NUMBERISH = st.one_of(st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3))
HEARTBEAT_DATA = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "state": st.one_of(st.sampled_from(["ready", "spawning", "running"]), VALUES),
            "current_cpu_usage": NUMBERISH,
            "current_memory_usage": NUMBERISH,
            "extra": VALUES,
        },
    ),
)


@settings(max_examples=500, deadline=None)
@given(HEARTBEAT_DATA)
@example(dict(HEARTBEAT))
@example({**HEARTBEAT, "current_cpu_usage": True})
@example({**HEARTBEAT, "current_memory_usage": False})
@example({"state": "ready", "current_cpu_usage": 1.0})
@example({**HEARTBEAT, "state": "stopped"})
def test_the_heartbeat_fast_path_agrees_with_the_full_schema(data: Any) -> None:
    full: list[Problem] = []
    WORKER_SCHEMAS["heartbeat"](data, "heartbeat.data", full)
    assert check_payload(Message("heartbeat", data, "w"), Direction.WORKER_TO_MASTER) == full


def test_a_decoded_message_is_an_ordinary_frozen_message() -> None:
    built = Message("spawn", {"user_classes_count": {"U": 1}}, "w")
    decoded = decode(encode(built))
    assert type(decoded) is Message and decoded == built and repr(decoded) == repr(built)
    assert hash(decode(encode(Message("quit", None, "w")))) == hash(Message("quit", None, "w"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.type = "stop"  # type: ignore[misc]


def test_inspect_builds_an_ordinary_inbound() -> None:
    frame = encode(Message("heartbeat", HEARTBEAT, "w"))
    inbound = MasterCore().inspect(b"w", [frame])
    assert type(inbound) is Inbound
    assert inbound == Inbound(b"w", (frame,), Message("heartbeat", HEARTBEAT, "w"), ())
    odd = MasterCore().inspect(b"w", [encode(Message("lc_custom", 1, "other"))])
    assert [v.rule for v in odd.violations] == ["envelope.node-id", "type.unknown"]


FRAME_TYPES = st.sampled_from(
    [
        "heartbeat",
        "stats",
        "client_ready",
        "spawning",
        "spawning_complete",
        "client_stopped",
        "quit",
        "exception",
        "logs",
        "locustfile",
        "ack",
        "spawn",
        "stop",
        "reconnect",
        "lc_custom",
    ]
)
FRAMES = st.one_of(
    st.builds(
        lambda t, data, node: encode(Message(t, data, node)),
        FRAME_TYPES,
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "state": st.sampled_from(["ready", "spawning", "running", "stopped", ""]),
                    "current_cpu_usage": st.one_of(st.integers(-9, 9), st.floats(allow_nan=False), st.booleans(), st.none()),
                    "current_memory_usage": st.one_of(st.integers(0, 2**40), st.text(max_size=2)),
                },
            ),
            st.just(dict(HEARTBEAT)),
            st.just({"user_classes_count": {"U": 1}, "user_count": 1}),
            st.sampled_from([None, 0, -1, "2.47.0", [1], {}]),
        ),
        st.sampled_from(["w", "other"]),
    ),
    st.binary(max_size=12),
    st.just(encode(Message("heartbeat", {"at": {"__datetime__": True, "as_str": "bad"}}, "w"))),
)


@settings(max_examples=800, deadline=None)
@given(FRAMES, st.sampled_from([b"w", b"\xff\xfe"]), st.booleans())
@example(encode(Message("heartbeat", HEARTBEAT, "w")), b"w", True)
@example(encode(Message("spawning", 1, "w")), b"w", True)  # a lenient nil: only a deviation, still not clean
def test_accept_takes_exactly_the_messages_inspect_finds_nothing_in(frame: bytes, identity: bytes, registered: bool) -> None:
    """The fake master's ingest fast path (``accept`` + ``react_clean``) against the general path."""
    fast, slow = MasterCore(), MasterCore()
    for core in (fast, slow):
        core.inspect(identity, [encode(Message("heartbeat", HEARTBEAT, "w"))])  # the identity is seen before
        if registered:
            core.react(core.inspect(b"w", [encode(Message("client_ready", "2.47.0", "w"))]))
    inbound = slow.inspect(identity, [frame])
    accepted = fast.accept(identity, frame)
    if inbound.violations or inbound.message is None:
        assert accepted is None
        return
    assert accepted == inbound.message
    assert fast.react_clean(identity, accepted) == slow.react(inbound)
    assert fast.workers.keys() == slow.workers.keys()
    assert [(w.state, w.liveness) for w in fast.workers.values()] == [(w.state, w.liveness) for w in slow.workers.values()]


def test_trace_add_records_what_append_records() -> None:
    message = Message("heartbeat", dict(HEARTBEAT), "w")
    violation = (Violation("schema.heartbeat", "x", "y"),)
    entries: list[tuple[float, Kind, dict[str, Any]]] = [
        (1.0, Kind.RECV, {"identity": "w", "message": message, "size": 116, "violations": violation}),
        (2.0, Kind.SEND_FAILED, {"identity": "w", "frames": (b"\xc1",), "size": 1, "note": "high-water mark reached"}),
        (3.0, Kind.LIVENESS, {"identity": "w", "note": "missing"}),
        (4.0, Kind.NOTE, {}),
    ]
    appended, added = Trace(t0=0.5), Trace(t0=0.5)
    for t, kind, fields in entries:
        appended.append(t, kind, **fields)
        added.add(t, kind, **fields)
    assert len(added) == len(appended) == 4
    assert added.records(2) == appended.records(2)  # part of it first, then the whole
    assert added.records() == appended.records()
    assert added.records(-1) == appended.records(-1) and added.records(9) == []
    assert added.records()[0] is added.records()[0]  # built once, then kept
    assert added.find(lambda r: r.kind is Kind.LIVENESS) == appended.records()[2]
    added.append(5.0, Kind.NOTE, note="appended")
    added.add(6.0, Kind.NOTE, note="added")
    assert [(r.seq, r.note) for r in added.records(4)] == [(4, "appended"), (5, "added")]


def test_wait_for_sees_a_record_added_by_another_thread() -> None:
    trace = Trace()
    trace.add(1.0, Kind.NOTE, note="early")

    def later() -> None:
        time.sleep(0.05)
        trace.add(2.0, Kind.NOTE, note="late")

    thread = threading.Thread(target=later)
    thread.start()
    found = trace.wait_for(lambda r: r.note == "late", 1, 5.0, time.monotonic)
    thread.join()
    assert found is not None and found.seq == 1
    assert trace.wait_for(lambda r: r.note == "never", 0, 0.05, time.monotonic) is None


class Collector:
    """A StormTarget that takes every message and keeps the batches (with the sending thread's name)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[tuple[list[bytes], Message | None]]]] = []
        self.notes: list[str] = []
        self.lock = threading.Lock()

    def storm_send(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str) -> bool:
        raise AssertionError("storms hand over batches")

    def storm_send_many(self, identity: bytes, batch: list[tuple[list[bytes], Message | None]], tag: str) -> int:
        with self.lock:
            self.batches.append((threading.current_thread().name, list(batch)))
        return len(batch)

    def fault_note(self, text: str) -> None:
        self.notes.append(text)


def run_storm(spec: StormSpec) -> tuple[Collector, Any]:
    target = Collector()
    result = StormHandle(spec, target, "storm#1", "w", 0, time.monotonic).start().join(10)
    return target, result


def test_a_fast_storm_batches_but_keeps_each_threads_order_and_the_rate_cap() -> None:
    spec = StormSpec(threads=2, rate=50_000, duration=0.3, mix=(("unknown", 1.0),), max_messages=1_000_000)
    target, result = run_storm(spec)
    sent = sum(len(batch) for _, batch in target.batches)
    assert result.errors == () and result.attempted == result.delivered == sent
    assert sent <= 2 * (50_000 * 0.3 + 50_000 * 0.001 + 1)  # the rate, plus at most one burst of backlog
    assert max(len(batch) for _, batch in target.batches) <= 51
    for thread in ("storm#1-sender-0", "storm#1-sender-1"):
        numbers = [m.data["n"] for name, batch in target.batches if name == thread for _, m in batch if m is not None]
        assert numbers == list(range(len(numbers))) and numbers
        assert all(m is not None and m.type == NOISE_TYPE for name, b in target.batches if name == thread for _, m in b)


def test_a_slow_storm_hands_over_one_message_at_a_time() -> None:
    target, result = run_storm(StormSpec(threads=1, rate=200, duration=0.2))
    assert all(len(batch) == 1 for _, batch in target.batches)
    assert 20 <= result.attempted <= 41


def test_a_storm_draws_its_mix_by_weight_and_from_its_seed() -> None:
    """The batched storm draws each message type in proportion to its weight, and the seed fixes the sequence
    (checked against the weights and against a second run, not against a copy of its own RNG)."""
    mix = (("heartbeat", 1.0), ("unknown", 3.0), ("ack", 0.5))

    def draw(seed: int) -> list[str]:
        # A count, not a time, ends the storm: how many a real-time thread sends in 0.1 s depends on the machine's load.
        spec = StormSpec(threads=1, rate=100_000, duration=30.0, mix=mix, seed=seed, max_messages=4000)
        target, result = run_storm(spec)
        drawn = [m.type if m is not None else "" for _, batch in target.batches for _, m in batch]
        assert result.attempted == len(drawn) == 4000
        return drawn

    first = draw(7)
    shares = {name: first.count({"unknown": NOISE_TYPE}.get(name, name)) / len(first) for name, _ in mix}
    for name, weight in mix:
        assert abs(shares[name] - weight / 4.5) < 0.05, shares
    again = draw(7)
    prefix = min(len(first), len(again))
    assert first[:prefix] == again[:prefix]
    assert draw(8)[:200] != first[:200]
