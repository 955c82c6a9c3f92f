"""The fake master over real ZeroMQ on 127.0.0.1, driven by a raw pyzmq DEALER playing the worker.

Every receive in this file has a deadline (``zmq.Poller`` with a timeout), every socket is closed
with ``linger=0`` and every master is closed by a fixture, so a broken master fails a test instead
of hanging it. Time is compressed: one heartbeat interval is 0.1 s.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest

from fakemaster import FakeMaster
from harness.errors import ExpectationFailed, ScenarioError
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.trace import Kind, TraceRecord
from tests.peers import HEARTBEAT_DATA, RECV_TIMEOUT, PeerFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

TIMING = LOCUST_TIMING.compressed(0.1)
I = TIMING.heartbeat_interval
N = TIMING.heartbeat_liveness
TOLERANCE = 0.03  # scheduling slack on the liveness window's upper bound


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(timing=TIMING) as m:
        yield m


def settle(m: FakeMaster) -> None:
    """Barrier: returns once the owner thread has finished the turn it was in (all its records are in)."""
    m.workers()


def wait_recv(
    m: FakeMaster, identity: str, since: int, message_type: str | None = None, timeout: float = RECV_TIMEOUT
) -> TraceRecord:
    """The first RECV record from ``identity`` at or after ``since`` (optionally of a type), then a barrier."""

    def match(r: TraceRecord) -> bool:
        return r.kind is Kind.RECV and r.identity == identity and (message_type is None or r.type == message_type)

    found = m.trace.wait_for(match, since, timeout, m.clock.now)
    assert found is not None, f"no {message_type or 'message'} from {identity!r} within {timeout} s"
    settle(m)
    return found


def records(m: FakeMaster, kind: Kind, identity: str | None = None, since: int = 0) -> list[TraceRecord]:
    return [r for r in m.trace.records(since) if r.kind is kind and (identity is None or r.identity == identity)]


def rules(record: TraceRecord) -> set[str]:
    return {v.rule for v in record.violations}


# --------------------------------------------------------------------------------------------
# Binding
# --------------------------------------------------------------------------------------------


def test_port_zero_reports_the_bound_port_on_loopback_only(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Port 0 becomes a real port; the only listener on it is 127.0.0.1 (never 0.0.0.0)."""
    assert master.port > 0
    assert master.endpoint == f"tcp://127.0.0.1:{master.port}"
    listeners = [
        c for c in psutil.Process().net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == master.port
    ]
    assert [c.laddr.ip for c in listeners] == ["127.0.0.1"]
    assert make_peer(master, b"w-bind").register() == 0
    notes = [r.note for r in records(master, Kind.NOTE)]
    assert f"master bound on tcp://127.0.0.1:{master.port}" in notes


def test_explicit_port_is_used(make_peer: PeerFactory) -> None:
    """A requested port is bound as is."""
    with FakeMaster(timing=TIMING) as first:
        port = first.port
    with FakeMaster(port=port, timing=TIMING) as m:
        assert m.port == port
        assert make_peer(m, b"w-port").register() == 0


# --------------------------------------------------------------------------------------------
# client_ready / ack
# --------------------------------------------------------------------------------------------


def test_client_ready_indexes(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Indexes follow first registration; a re-sent client_ready keeps the worker's index."""
    w1, w2 = make_peer(master, b"w-one"), make_peer(master, b"w-two")
    w1.send("client_ready", "2.47.0")
    assert w1.recv() == ["ack", {"index": 0}, "w-one"]
    w2.send("client_ready", "2.47.0")
    assert w2.recv() == ["ack", {"index": 1}, "w-two"]
    w1.send("client_ready", "2.47.0")
    assert w1.recv() == ["ack", {"index": 0}, "w-one"]
    w2.assert_silent(0.1)
    assert make_peer(master, b"w-three").register() == 2
    assert {k: v.index for k, v in master.workers().items()} == {"w-one": 0, "w-two": 1, "w-three": 2}


def test_client_ready_minus_one_is_accepted(master: FakeMaster, make_peer: PeerFactory) -> None:
    """The int -1 (boomer, locust4j) skips the version check and is acked."""
    assert make_peer(master, b"w-boomer").register(-1) == 0


@pytest.mark.parametrize("version", ["", None, 0], ids=["empty-string", "nil", "zero"])
def test_falsy_client_ready_gets_no_ack(master: FakeMaster, make_peer: PeerFactory, version: Any) -> None:
    """A falsy version is refused as Locust does: no ack, no registration, a schema violation on record."""
    w = make_peer(master, b"w-old")
    frame = w.send("client_ready", version)
    record = wait_recv(master, "w-old", 0, "client_ready")
    w.assert_silent()
    assert "schema.client_ready" in rules(record)
    assert all(v.severity is Severity.ERROR for v in record.violations if v.rule == "schema.client_ready")
    assert record.frames == (frame,)
    assert master.workers() == {}
    assert records(master, Kind.SEND) == []


# --------------------------------------------------------------------------------------------
# heartbeats and registration
# --------------------------------------------------------------------------------------------


def test_heartbeats_answered_only_for_registered_workers(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Known worker: heartbeat -> heartbeat(nil). Unknown: no reply. client_stopped unregisters until client_ready."""
    stranger = make_peer(master, b"w-stranger")
    stranger.heartbeat()
    wait_recv(master, "w-stranger", 0, "heartbeat")
    stranger.assert_silent()

    w = make_peer(master, b"w-hb")
    assert w.register() == 0
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-hb"]

    w.send("client_stopped", None)
    since = wait_recv(master, "w-hb", 0, "client_stopped").seq
    assert "w-hb" not in master.workers()
    w.heartbeat()
    wait_recv(master, "w-hb", since, "heartbeat")
    w.assert_silent()

    assert w.register() == 0  # same index after re-registration
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-hb"]
    assert records(master, Kind.SEND, "w-stranger") == []


def test_quit_unregisters(master: FakeMaster, make_peer: PeerFactory) -> None:
    """A worker's quit deletes it like client_stopped."""
    w = make_peer(master, b"w-quit")
    w.register()
    w.send("quit", None)
    wait_recv(master, "w-quit", 0, "quit")
    assert master.workers() == {}
    w.heartbeat()
    w.assert_silent()


def _wait_mid_interval(m: FakeMaster) -> None:
    """Sleep until the next liveness tick is about half an interval away (keeps heartbeats off tick edges)."""
    deadline = time.monotonic() + 20 * I
    while time.monotonic() < deadline:
        next_tick = m.core.next_tick  # a float read; the owner thread only ever rebinds it
        assert next_tick is not None
        if 0.4 * I <= next_tick - m.clock.now() <= 0.6 * I:
            return
        time.sleep(I / 50)
    pytest.fail("could not align with the master's liveness ticks")


def test_liveness_missing_window_then_healed(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Missing is recorded between (N+1)*I and (N+2)*I after the last heartbeat, never before; a heartbeat heals."""
    w = make_peer(master, b"w-live")
    w.register()
    for _ in range(6):  # regular heartbeats: never missing
        w.heartbeat()
        assert w.recv()[0] == "heartbeat"
        time.sleep(I * 0.8)
    _wait_mid_interval(master)
    since = len(master.trace)
    w.heartbeat()
    last = wait_recv(master, "w-live", since, "heartbeat")
    assert w.recv()[0] == "heartbeat"

    def is_liveness(r: TraceRecord) -> bool:
        return r.kind is Kind.LIVENESS and r.identity == "w-live"

    change = master.trace.wait_for(is_liveness, 0, TIMING.missing_after_max + 1.0, master.clock.now)
    assert change is not None, "never marked missing"
    assert change.note == "missing"
    gap = change.t - last.t
    assert TIMING.missing_after_min <= gap <= TIMING.missing_after_max + TOLERANCE, gap
    assert master.workers()["w-live"].missing

    since = len(master.trace)
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-live"]
    healed = master.trace.wait_for(is_liveness, since, RECV_TIMEOUT, master.clock.now)
    assert healed is not None and healed.note == "healed"
    assert not master.workers()["w-live"].missing


def test_liveness_dead_worker_is_deleted(make_peer: PeerFactory) -> None:
    """With a short dead threshold the worker goes missing, then dead, then is no longer answered."""
    timing = Timing(heartbeat_interval=0.1, heartbeat_liveness=1, heartbeat_dead=-2)
    with FakeMaster(timing=timing) as m:
        w = make_peer(m, b"w-dead")
        w.register()
        w.heartbeat()
        assert w.recv()[0] == "heartbeat"

        def dead(r: TraceRecord) -> bool:
            return r.kind is Kind.LIVENESS and r.note == "dead"

        assert m.trace.wait_for(dead, 0, 3.0, m.clock.now) is not None
        assert [r.note for r in records(m, Kind.LIVENESS, "w-dead")] == ["missing", "dead"]
        assert m.workers() == {}
        w.heartbeat()
        w.assert_silent()


def test_liveness_after_an_idle_start(master: FakeMaster, make_peer: PeerFactory) -> None:
    """A worker whose first client_ready comes 10 intervals after start is missing (N+1)*I..(N+2)*I later."""
    time.sleep(10 * I)
    w = make_peer(master, b"w-late")
    w.register()
    ready = wait_recv(master, "w-late", 0, "client_ready")

    def is_liveness(r: TraceRecord) -> bool:
        return r.kind is Kind.LIVENESS and r.identity == "w-late"

    change = master.trace.wait_for(is_liveness, 0, TIMING.missing_after_max + 1.0, master.clock.now)
    assert change is not None and change.note == "missing"
    gap = change.t - ready.t
    assert TIMING.missing_after_min - TOLERANCE <= gap <= TIMING.missing_after_max + TOLERANCE, gap


# --------------------------------------------------------------------------------------------
# Switchable automatic behaviours
# --------------------------------------------------------------------------------------------


def test_set_auto_switches_acks_and_heartbeat_replies(master: FakeMaster, make_peer: PeerFactory) -> None:
    """ack=False: client_ready registers silently; heartbeat=False: heartbeats unanswered; both come back."""
    w = make_peer(master, b"w-auto")
    master.set_auto(ack=False)
    w.send("client_ready", "2.47.0")
    wait_recv(master, "w-auto", 0, "client_ready")
    w.assert_silent()
    assert "w-auto" in master.workers()
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-auto"]

    master.set_auto(heartbeat=False)
    since = len(master.trace)
    w.heartbeat()
    wait_recv(master, "w-auto", since, "heartbeat")
    w.assert_silent()

    master.set_auto(ack=True, heartbeat=True)
    assert w.register() == 0
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-auto"]


def test_set_auto_liveness_off_records_nothing(master: FakeMaster, make_peer: PeerFactory) -> None:
    """With liveness tracking off a silent worker is never marked missing."""
    master.set_auto(liveness=False)
    w = make_peer(master, b"w-quiet")
    w.register()
    w.heartbeat()
    assert w.recv()[0] == "heartbeat"
    time.sleep(TIMING.missing_after_max + 3 * I)
    settle(master)
    assert records(master, Kind.LIVENESS) == []
    assert not master.workers()["w-quiet"].missing


# --------------------------------------------------------------------------------------------
# Bad input: recorded, never fatal
# --------------------------------------------------------------------------------------------

GOOD_HEARTBEAT: bytes = msgpack.packb(("heartbeat", HEARTBEAT_DATA, "w-bad"))

BAD_INPUTS: list[tuple[str, list[bytes], str]] = [
    ("not-msgpack", [b"\xc1garbage"], "codec.not-msgpack"),
    ("truncated", [GOOD_HEARTBEAT[:-5]], "codec.not-msgpack"),
    ("arity-2", [msgpack.packb(("heartbeat", None))], "codec.arity"),
    ("arity-4", [msgpack.packb(("heartbeat", None, "w-bad", 1))], "codec.arity"),
    ("type-as-bin", [msgpack.packb((b"heartbeat", None, "w-bad"))], "codec.type-field"),
    ("node-id-int", [msgpack.packb(("heartbeat", None, 7))], "codec.node-id"),
    ("three-char-string", [msgpack.packb("abc")], "codec.envelope"),
    ("empty-frame", [b""], "codec.empty"),
    ("empty-delimiter", [b"", GOOD_HEARTBEAT], "framing.frames"),
    ("node-id-mismatch", [msgpack.packb(("heartbeat", HEARTBEAT_DATA, "someone-else"))], "envelope.node-id"),
    ("oversized", [b"\x00" * 2000], "codec.size"),
    ("invalid-utf8", [b"\x93\xa3\xff\xfe\xfd\xc0\xa5w-bad"], "codec.utf8"),
    ("trailing-bytes", [GOOD_HEARTBEAT + b"\xc0"], "codec.trailing-bytes"),
]


@pytest.fixture
def small_master() -> Iterator[FakeMaster]:
    with FakeMaster(timing=TIMING, max_frame_bytes=1024) as m:
        yield m


@pytest.mark.parametrize(("frames", "rule"), [(f, r) for _, f, r in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
def test_bad_input_is_recorded_with_raw_bytes(
    small_master: FakeMaster, make_peer: PeerFactory, frames: list[bytes], rule: str
) -> None:
    """Each malformed message becomes one RECV record with its rule (an error) and the exact raw frames."""
    w = make_peer(small_master, b"w-bad")
    w.send_frames(frames)
    record = wait_recv(small_master, "w-bad", 0)
    assert rule in rules(record), record.violations
    assert any(v.rule == rule and v.severity is Severity.ERROR for v in record.violations)
    assert record.frames == tuple(frames)
    assert record.size == sum(len(f) for f in frames)
    settle(small_master)  # raises if the owner thread has died


def test_bad_input_barrage_then_a_fresh_worker_is_acked(small_master: FakeMaster, make_peer: PeerFactory) -> None:
    """Every bad input in a row from one peer: all recorded and none answered. The first frame that is no message kills
    the emulated client_listener, as it kills the real one (noted in the trace); a restart revives it."""
    w = make_peer(small_master, b"w-bad")
    for _, frames, _ in BAD_INPUTS:
        w.send_frames(frames)
    bad_identity = make_peer(small_master, b"\xff\xfebad")
    bad_identity.send("client_ready", "2.47.0", node_id="bad")
    expected = [rule for _, _, rule in BAD_INPUTS]

    deadline = time.monotonic() + RECV_TIMEOUT
    while len(records(small_master, Kind.RECV)) < len(expected) + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    settle(small_master)
    received = records(small_master, Kind.RECV, "w-bad")
    assert [r.frames for r in received] == [tuple(f) for _, f, _ in BAD_INPUTS]
    for record, rule in zip(received, expected, strict=True):
        assert rule in rules(record)
    odd = records(small_master, Kind.RECV, "\\xff\\xfebad")
    assert len(odd) == 1 and "envelope.identity" in rules(odd[0])
    bad_identity.assert_silent(0.05)
    w.assert_silent(0.05)  # the node-id mismatch and delimiter cases are heartbeats of an unknown worker
    notes = [r.note for r in small_master.trace.records() if r.kind is Kind.NOTE]
    assert any("client_listener crashed on a frame it could not decode" in n for n in notes), notes

    small_master.restart(0.05)  # a new master process: a listener that reads again
    assert make_peer(small_master, b"w-fresh").register() == 0
    assert w.register() == 1  # the misbehaving peer itself can still register properly


def test_client_ready_with_foreign_node_id_is_acked_by_identity(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Locust registers and acks by socket identity: the mismatch is recorded, the ack goes to the identity."""
    w = make_peer(master, b"w-real")
    w.send("client_ready", "2.47.0", node_id="w-claimed")
    assert w.recv() == ["ack", {"index": 0}, "w-real"]
    record = wait_recv(master, "w-real", 0, "client_ready")
    assert "envelope.node-id" in rules(record)
    assert list(master.workers()) == ["w-real"]


# --------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------


def test_send_raw_delivers_exact_frames(master: FakeMaster, make_peer: PeerFactory) -> None:
    """send_raw frames arrive byte for byte (even empty ones) and are kept in the trace."""
    w = make_peer(master, b"w-raw")
    w.register()
    frames = [b"\x01\x02", b"", b"\xc1not msgpack"]
    assert master.send_raw(frames, to="w-raw")
    assert w.recv_frames() == frames
    assert master.send_raw([b"bytes-identity"], to=b"w-raw")
    assert w.recv_frames() == [b"bytes-identity"]
    assert master.send_raw([b"default"])  # the latest registered worker
    assert w.recv_frames() == [b"default"]
    sent = records(master, Kind.SEND, "w-raw")
    assert sent[-3].frames == tuple(frames) and sent[-3].message is None and sent[-3].size == sum(map(len, frames))


def test_send_and_spawn_reach_the_worker(master: FakeMaster, make_peer: PeerFactory) -> None:
    """send() packs [type, data, node_id]; spawn() sends all five keys."""
    w = make_peer(master, b"w-send")
    w.register()
    assert master.send("custom", {"a": [1, 2]}, to="w-send")
    assert w.recv() == ["custom", {"a": [1, 2]}, "w-send"]
    before = time.time()
    assert master.spawn({"UserA": 3}, stop_timeout=2, host="http://x")
    kind, data, node_id = w.recv()
    assert (kind, node_id) == ("spawn", "w-send")
    assert set(data) == {"timestamp", "user_classes_count", "host", "stop_timeout", "parsed_options"}
    assert data["user_classes_count"] == {"UserA": 3} and data["host"] == "http://x"
    assert data["stop_timeout"] == 2.0 and data["parsed_options"] == {}
    assert before - 1 <= data["timestamp"] <= time.time() + 1


def test_send_to_unknown_identity_fails_loudly(master: FakeMaster) -> None:
    """ROUTER_MANDATORY: a send to nobody returns False and is recorded as SEND_FAILED."""
    assert master.send("heartbeat", None, to="ghost") is False
    assert master.send_raw([b"x"], to="ghost") is False
    failed = records(master, Kind.SEND_FAILED, "ghost")
    assert len(failed) == 2
    assert failed[0].message is not None and failed[0].message.type == "heartbeat"
    assert failed[1].frames == (b"x",)
    assert all("no such peer" in r.note for r in failed)
    assert records(master, Kind.SEND) == []


def test_send_without_any_worker_is_a_scenario_error(master: FakeMaster) -> None:
    """With nobody connected there is no default recipient."""
    with pytest.raises(ScenarioError, match="no worker"):
        master.send("heartbeat")


def test_concurrent_sends_are_all_delivered(master: FakeMaster, make_peer: PeerFactory) -> None:
    """8 threads x 200 sends through the one owner thread: 1600 delivered, 1600 SEND records, order kept per thread."""
    threads_n, per_thread = 8, 200
    w = make_peer(master, b"w-many")
    w.register()
    results: list[list[bool]] = [[] for _ in range(threads_n)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def blast(t: int) -> None:
        try:
            start.wait(timeout=5)
            for i in range(per_thread):
                results[t].append(master.send("blast", {"t": t, "i": i}, to="w-many"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=blast, args=(t,), daemon=True) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + 10
    while len(got) < threads_n * per_thread and time.monotonic() < deadline:
        frames = w.recv_frames(0.2)
        if frames is None:
            continue
        kind, data, node_id = msgpack.unpackb(frames[0], raw=False)
        assert (kind, node_id) == ("blast", "w-many")
        got.append((data["t"], data["i"]))
    for thread in threads:
        thread.join(5)
    assert not errors
    assert all(r == [True] * per_thread for r in results)
    assert len(got) == threads_n * per_thread
    for t in range(threads_n):
        assert [i for tt, i in got if tt == t] == list(range(per_thread))
    w.assert_silent(0.05)
    blasts = [r for r in records(master, Kind.SEND, "w-many") if r.type == "blast"]
    assert len(blasts) == threads_n * per_thread
    assert records(master, Kind.SEND_FAILED) == []
    assert [r.seq for r in master.trace.records()] == list(range(len(master.trace)))


def test_default_worker_is_the_latest_registered(master: FakeMaster, make_peer: PeerFactory) -> None:
    """w1, w2, then w1 again: w1 is the latest registered, so an unaddressed send goes to w1."""
    w1, w2 = make_peer(master, b"w-first"), make_peer(master, b"w-second")
    w1.register()
    w2.register()
    w1.register()
    assert master.default_worker() == "w-first"


# --------------------------------------------------------------------------------------------
# expect / expect_none / wait_for
# --------------------------------------------------------------------------------------------


def test_expect_failure_names_what_was_seen(master: FakeMaster, make_peer: PeerFactory) -> None:
    """A missed expect raises ExpectationFailed listing the messages seen since the cursor."""
    w = make_peer(master, b"w-exp")
    w.register()
    w.heartbeat()
    assert master.expect("client_ready", 2.0).identity == "w-exp"
    assert master.expect("heartbeat", 2.0).type == "heartbeat"
    w.heartbeat()
    w.send("spawning", None)
    wait_recv(master, "w-exp", 0, "spawning")
    started = time.monotonic()
    with pytest.raises(ExpectationFailed) as info:
        master.expect("stats", 0.3, where=lambda r: True, description="with users")
    assert 0.3 <= time.monotonic() - started < 1.5
    exc = info.value
    assert exc.rule == "expect.stats"
    assert exc.expected == "stats with users within 0.3 s"
    assert exc.observed == "2 messages: heartbeat, spawning"
    assert "heartbeat, spawning" in str(exc)


def test_expect_with_nothing_seen(master: FakeMaster) -> None:
    with pytest.raises(ExpectationFailed, match="0 messages: nothing"):
        master.expect("client_ready", 0.1)


def test_expect_where_and_cursor(master: FakeMaster, make_peer: PeerFactory) -> None:
    """where filters; each expect moves the cursor past what it matched."""
    w = make_peer(master, b"w-cur")
    w.register()
    w.heartbeat("ready")
    w.heartbeat("running")
    found = master.expect("heartbeat", 2.0, where=lambda r: r.message is not None and r.message.data["state"] == "running")
    assert found.message is not None and found.message.data["state"] == "running"
    with pytest.raises(ExpectationFailed):
        master.expect("heartbeat", 0.2)  # the "ready" one lies before the cursor now


def test_expect_none(master: FakeMaster, make_peer: PeerFactory) -> None:
    """expect_none passes on silence and raises as soon as the message arrives."""
    w = make_peer(master, b"w-none")
    w.register()
    started = time.monotonic()
    master.expect_none("stats", 0.2)
    assert time.monotonic() - started >= 0.2
    w.heartbeat()
    started = time.monotonic()
    with pytest.raises(ExpectationFailed) as info:
        master.expect_none("heartbeat", 3.0)
    assert time.monotonic() - started < 2.0
    assert info.value.rule == "expect-none.heartbeat"
    assert info.value.observed.startswith("heartbeat at t=")


def test_wait_for_times_out_with_none(master: FakeMaster) -> None:
    """wait_for returns None once its deadline passes, not much later, and leaves the cursor alone."""
    cursor = master.cursor
    started = time.monotonic()
    assert master.wait_for("stats", 0.3) is None
    assert 0.3 <= time.monotonic() - started < 0.8
    assert master.cursor == cursor


# --------------------------------------------------------------------------------------------
# Trace dump
# --------------------------------------------------------------------------------------------


def test_trace_jsonl_renders_awkward_values(master: FakeMaster, make_peer: PeerFactory, tmp_path: Path) -> None:
    """One JSON object per line; int map keys, bytes, datetimes and ObjectIds are rendered; raw frames as hex."""
    master.set_auto(liveness=False)  # no liveness records racing with the dump
    w = make_peer(master, b"w-json")
    w.register()
    data = {
        1: b"\x00\xff",
        "when": {"__datetime__": True, "as_str": "20240102T03:04:05.000006"},
        "oid": {"__ObjectId__": True, "as_str": "65a1b2c3d4e5f60718293a4b"},
        "nested": [{2: 3}],
    }
    w.send("custom_data", data)
    w.send_frames([b"\xc1"])
    deadline = time.monotonic() + RECV_TIMEOUT
    while len(records(master, Kind.RECV, "w-json")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    settle(master)

    out = io.StringIO()
    written = master.trace.dump_jsonl(out)
    lines = out.getvalue().splitlines()
    assert written == len(lines) == len(master.trace)
    parsed = [json.loads(line) for line in lines]
    assert [p["seq"] for p in parsed] == list(range(len(parsed)))
    custom = next(p for p in parsed if p.get("type") == "custom_data")
    assert custom["data"] == {
        "1": {"bytes_hex": "00ff"},
        "when": {"datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, 6).isoformat()},
        "oid": {"object_id": "65a1b2c3d4e5f60718293a4b"},
        "nested": [{"2": 3}],
    }
    assert custom["kind"] == "recv" and custom["node_id"] == "w-json"
    assert custom["violations"][0]["rule"] == "type.unknown"
    broken = next(p for p in parsed if p.get("frames_hex") == ["c1"])
    assert broken["violations"][0]["rule"] == "codec.not-msgpack" and "type" not in broken
    ack = next(p for p in parsed if p.get("type") == "ack")
    assert ack["kind"] == "send" and ack["data"] == {"index": 0}
    assert all(p["t"] >= 0 for p in parsed)

    path = tmp_path / "sub" / "trace.jsonl"
    assert master.trace.save(path) == len(master.trace)
    assert [json.loads(line) for line in path.read_text("utf-8").splitlines()] == parsed[: len(master.trace)]
