"""Faults, restarts, backpressure, malformed frames and storms of the fake master, over real ZeroMQ on 127.0.0.1.

A raw pyzmq DEALER plays the worker (tests/peers.py). Every receive has a deadline, every wait loop is
bounded in time, and every master is closed by a fixture or a ``with`` block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq

from fakemaster import FakeMaster
from fakemaster.script import parse_script, run_script
from fakemaster.storm import StormSpec
from harness.errors import HarnessFault, ScenarioError, TransportError
from harness.faults import MALFORMED_KINDS, RAW, Fault, FaultPlan, malformed_frames
from harness.protocol.timing import LOCUST_TIMING
from harness.trace import Kind, TraceRecord, fault_windows
from tests.peers import RECV_TIMEOUT, Peer, PeerFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TIMING = LOCUST_TIMING.compressed(0.1)
SLACK = 0.06  # scheduling slack on an upper time bound (2-CPU CI machines, a busy suite)


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(timing=TIMING) as m:
        yield m


def settle(m: FakeMaster) -> None:
    """Barrier: the owner thread has finished the turn it was in."""
    m.workers()


def records(m: FakeMaster, kind: Kind, identity: str | None = None, since: int = 0) -> list[TraceRecord]:
    return [r for r in m.trace.records(since) if r.kind is kind and (identity is None or r.identity == identity)]


def wait_record(m: FakeMaster, match: Any, since: int = 0, timeout: float = RECV_TIMEOUT) -> TraceRecord:
    found = m.trace.wait_for(match, since, timeout, m.clock.now)
    assert found is not None, "the expected trace record never came"
    return found


def fault_note(prefix: str) -> Any:
    return lambda r: r.kind is Kind.FAULT and r.note.startswith(prefix)


def drain(peer: Peer, want: int, quiet: float = 0.5, limit: float = 10.0) -> list[list[bytes]]:
    """Receive until ``want`` messages came, nothing came for ``quiet`` s, or ``limit`` s passed."""
    got: list[list[bytes]] = []
    deadline = time.monotonic() + limit
    while len(got) < want and time.monotonic() < deadline:
        frames = peer.recv_frames(quiet)
        if frames is None:
            break
        got.append(frames)
    return got


def registered(make_peer: PeerFactory, m: FakeMaster, name: str) -> Peer:
    peer = make_peer(m, name)
    peer.register()
    return peer


# --------------------------------------------------------------------------------------------
# delay, drop, duplicate, hold/reorder
# --------------------------------------------------------------------------------------------


def test_delay_is_measured_at_the_peer(master: FakeMaster, make_peer: PeerFactory) -> None:
    """A 0.2 s delay on 'custom' arrives 0.2 s late, never early, typically within a few ms;
    FAULT then SEND 'deferred by fault' in the trace, 0.2 s apart."""
    w = registered(make_peer, master, "w-delay")
    master.install_faults(FaultPlan((Fault("delay", types=("custom",), seconds=0.2),)))
    elapsed = []
    for i in range(5):
        sent_at = time.monotonic()
        assert master.send("custom", {"i": i}, to="w-delay")
        assert w.recv(1.0) == ["custom", {"i": i}, "w-delay"]
        elapsed.append(time.monotonic() - sent_at)
    assert min(elapsed) >= 0.2 - 0.001, elapsed
    assert sorted(elapsed)[2] <= 0.2 + 0.01 and max(elapsed) <= 0.2 + SLACK, elapsed
    settle(master)
    faults = [r for r in records(master, Kind.FAULT, "w-delay") if r.type == "custom"]
    sends = [r for r in records(master, Kind.SEND, "w-delay") if r.type == "custom"]
    assert [r.note for r in faults] == ["delay 0.200000 s [fault 1: delay]"] * 5
    assert [r.note for r in sends] == ["deferred by fault"] * 5
    gaps = sorted(send.t - fault.t for fault, send in zip(faults, sends, strict=True))
    assert gaps[0] >= 0.2 and gaps[2] <= 0.2 + 0.005, gaps
    w.heartbeat()  # other types are untouched
    started = time.monotonic()
    assert w.recv()[0] == "heartbeat" and time.monotonic() - started < 0.1


def test_delay_with_jitter_applies_to_automatic_replies(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Heartbeat replies delayed 0.05 s plus up to 0.1 s of jitter: each lands in that range, and they vary."""
    w = registered(make_peer, master, "w-jitter")
    master.install_faults(FaultPlan((Fault("delay", types=("heartbeat",), seconds=0.05, jitter=0.1),), seed=7))
    elapsed = []
    for _ in range(8):
        started = time.monotonic()
        w.heartbeat()
        assert w.recv(1.0)[0] == "heartbeat"
        elapsed.append(time.monotonic() - started)
    assert all(0.05 - 0.002 <= e <= 0.15 + SLACK for e in elapsed), elapsed
    assert max(elapsed) - min(elapsed) > 0.01


def test_drop_by_type_and_count(master: FakeMaster, make_peer: PeerFactory) -> None:
    """The first two heartbeat replies are dropped and recorded; the rest, and acks, go through."""
    master.install_faults(FaultPlan((Fault("drop", types=("heartbeat",), count=2),)))
    w = registered(make_peer, master, "w-drop")  # the ack is not a heartbeat
    w.heartbeat()
    w.assert_silent(0.15)
    w.heartbeat()
    w.assert_silent(0.15)
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-drop"]
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-drop"]
    settle(master)
    drops = [r for r in records(master, Kind.FAULT, "w-drop") if r.note.startswith("drop")]
    assert [r.type for r in drops] == ["heartbeat", "heartbeat"]
    assert len([r for r in records(master, Kind.SEND, "w-drop") if r.type == "heartbeat"]) == 2


def test_drop_the_first_ack(master: FakeMaster, make_peer: PeerFactory) -> None:
    """An automatic ack can be dropped: the worker must send client_ready again to be acked."""
    master.install_faults(FaultPlan((Fault("drop", types=("ack",), count=1),)))
    w = make_peer(master, "w-noack")
    w.send("client_ready", "2.47.0")
    w.assert_silent(0.2)
    assert w.register() == 0


def test_drop_within_a_time_window(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Drop everything in [0.3, 0.6) s after install: before and after pass, inside is dropped."""
    w = registered(make_peer, master, "w-window")
    master.install_faults(FaultPlan((Fault("drop", start=0.3, end=0.6),)))
    installed = wait_record(master, fault_note("fault-plan start")).t
    outcomes = []
    for at in (0.05, 0.45, 0.75):
        master.sleep(installed + at - master.clock.now())
        master.send("custom", {"at": at}, to="w-window")
        outcomes.append(w.recv_frames(0.15) is not None)
    assert outcomes == [True, False, True]


def test_duplicate(master: FakeMaster, make_peer: PeerFactory) -> None:
    """copies=2: the message arrives three times, three SEND records."""
    w = registered(make_peer, master, "w-dup")
    master.install_faults(FaultPlan((Fault("duplicate", types=("custom",), copies=2),)))
    assert master.send("custom", {"x": 1}, to="w-dup")
    assert [w.recv() for _ in range(3)] == [["custom", {"x": 1}, "w-dup"]] * 3
    w.assert_silent(0.1)
    assert len([r for r in records(master, Kind.SEND, "w-dup") if r.type == "custom"]) == 3


def test_hold_reorders_a_batch(master: FakeMaster, make_peer: PeerFactory) -> None:
    """hold batch=3: 1, 2, 3 sent; 3, 2, 1 received; an incomplete batch goes after release_after, reversed."""
    w = registered(make_peer, master, "w-hold")
    master.install_faults(FaultPlan((Fault("hold", types=("custom",), batch=3, release_after=0.2),)))
    for i in (1, 2, 3):
        master.send("custom", {"i": i}, to="w-hold")
    assert [w.recv()[1]["i"] for _ in range(3)] == [3, 2, 1]

    started = time.monotonic()
    master.send("custom", {"i": "a"}, to="w-hold")
    master.send("custom", {"i": "b"}, to="w-hold")
    w.assert_silent(0.15)
    assert [w.recv(1.0)[1]["i"] for _ in range(2)] == ["b", "a"]
    assert 0.2 - 0.002 <= time.monotonic() - started <= 0.2 + SLACK
    notes = [r.note for r in records(master, Kind.FAULT) if r.note.startswith("release")]
    assert notes == [
        "release 3 held in reverse order (batch complete) [fault 1: hold]",
        "release 2 held in reverse order (released on time-out) [fault 1: hold]",
    ]


def test_clear_and_replace_release_held_messages(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Clearing the plan releases what it held at once; replacing it does the same; windows are recorded."""
    w = registered(make_peer, master, "w-clear")
    master.install_faults(FaultPlan((Fault("hold", types=("custom",), batch=5, release_after=30),)))
    master.send("custom", "a", to="w-clear")
    master.send("custom", "b", to="w-clear")
    w.assert_silent(0.1)
    master.clear_faults()
    assert [w.recv()[1] for _ in range(2)] == ["b", "a"]
    master.send("custom", "c", to="w-clear")
    assert w.recv()[1] == "c"

    master.install_faults(FaultPlan((Fault("hold", batch=5, release_after=30),)))
    master.send("custom", "d", to="w-clear")
    master.install_faults(FaultPlan((Fault("drop", types=("nothing",)),)))
    assert w.recv()[1] == "d"
    settle(master)
    assert [label for _, _, label in fault_windows(master.trace)] == ["fault-plan"] * 3


def test_faults_see_raw_frames_as_raw(master: FakeMaster, make_peer: PeerFactory) -> None:
    """A fault on the RAW type catches send_raw and send_malformed, not typed messages."""
    w = registered(make_peer, master, "w-raw")
    master.install_faults(FaultPlan((Fault("drop", types=(RAW,)),)))
    assert master.send_raw([b"\x01"], to="w-raw")
    assert master.send_malformed("garbage", to="w-raw")
    assert master.send("custom", 1, to="w-raw")
    assert w.recv() == ["custom", 1, "w-raw"]
    w.assert_silent(0.1)


# --------------------------------------------------------------------------------------------
# pause reading, silence
# --------------------------------------------------------------------------------------------


def test_pause_reading_piles_sends_up_to_the_high_water_mark(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """While the master reads nothing, the peer's sends pile up until its DEALER refuses (EAGAIN at the HWM);
    once reading resumes, every message the peer did send arrives, in order."""
    opts = {zmq.RCVHWM: 10, zmq.RCVBUF: 4096}
    with FakeMaster(timing=TIMING, sockopts=opts) as m:
        w = Peer(context, m.endpoint, "w-pile")
        w.sock.setsockopt(zmq.SNDHWM, 10)
        w.sock.setsockopt(zmq.SNDBUF, 4096)
        try:
            w.register()
            m.pause_reading()
            received_before = len(records(m, Kind.RECV))
            padding = "x" * 8192
            sent = 0
            for i in range(5000):
                try:
                    w.sock.send(msgpack.packb(("pile", {"i": i, "pad": padding}, "w-pile")), zmq.NOBLOCK)
                except zmq.Again:
                    break
                sent += 1
            assert 0 < sent < 5000, "the peer never hit its high-water mark"
            time.sleep(0.2)
            settle(m)
            assert len(records(m, Kind.RECV)) == received_before  # nothing read while paused
            m.resume_reading()
            deadline = time.monotonic() + 5
            while len([r for r in records(m, Kind.RECV) if r.type == "pile"]) < sent and time.monotonic() < deadline:
                time.sleep(0.02)
            settle(m)
            piles = [r for r in records(m, Kind.RECV) if r.type == "pile"]
            assert [r.message.data["i"] for r in piles if r.message] == list(range(sent))
            assert [label for _, _, label in fault_windows(m.trace)] == ["pause-reading"]
        finally:
            w.close()


def test_pause_reading_for_a_while_resumes_by_itself(master: FakeMaster, make_peer: PeerFactory) -> None:
    """pause_reading(0.25): a heartbeat sent at once is answered after the pause, and the window is ~0.25 s."""
    w = registered(make_peer, master, "w-pause")
    started = time.monotonic()
    master.pause_reading(0.25)
    w.heartbeat()
    assert w.recv(1.0) == ["heartbeat", None, "w-pause"]
    assert 0.25 - 0.01 <= time.monotonic() - started <= 0.25 + SLACK
    end = wait_record(master, fault_note("pause-reading end"))
    [(start, stop, label)] = fault_windows(master.trace.records(0)[: end.seq + 1])
    assert label == "pause-reading" and 0.25 <= stop - start <= 0.25 + SLACK
    master.resume_reading()  # no-op when reading
    master.pause_reading(None)
    master.pause_reading(None)  # still one window
    master.resume_reading()
    settle(master)
    assert [label for _, _, label in fault_windows(master.trace)] == ["pause-reading", "pause-reading"]


def test_silence_withholds_heartbeat_replies_only(master: FakeMaster, make_peer: PeerFactory) -> None:
    """During a silence heartbeats go unanswered (FAULT 'withheld'), other replies go on; it ends by itself."""
    w = registered(make_peer, master, "w-silent")
    master.silence(0.3)
    w.heartbeat()
    w.assert_silent(0.15)
    assert w.register() == 0  # acks still flow
    wait_record(master, fault_note("master-silence end"), timeout=1.0)
    w.heartbeat()
    assert w.recv() == ["heartbeat", None, "w-silent"]
    withheld = [r for r in records(master, Kind.FAULT, "w-silent") if r.note == "withheld: master-silence"]
    assert len(withheld) == 1 and withheld[0].type == "heartbeat"
    master.silence()
    master.end_silence()
    settle(master)
    assert [label for _, _, label in fault_windows(master.trace)] == ["master-silence", "master-silence"]


# --------------------------------------------------------------------------------------------
# restart, die, socket monitor
# --------------------------------------------------------------------------------------------


def accepted_since(m: FakeMaster, since: int) -> list[TraceRecord]:
    return [r for r in records(m, Kind.NOTE, since=since) if r.note.startswith("connection accepted")]


def test_restart_rebinds_the_same_port_and_forgets_workers(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Down: sends fail 'master down', workers forgotten. Back on the same port: the DEALERs reconnect by
    themselves, and re-registration starts the indexes afresh."""
    port = master.port
    a, b = registered(make_peer, master, "w-a"), registered(make_peer, master, "w-b")
    master.install_faults(FaultPlan((Fault("delay", types=("custom",), seconds=5),)))
    assert master.send("custom", "pending", to="w-a")  # delayed, then lost in the restart
    master.clear_faults()  # a delayed message stays scheduled
    master.restart(0.3)
    assert master.workers() == {}
    assert master.send("custom", "lost", to="w-a") is False
    failed = records(master, Kind.SEND_FAILED, "w-a")
    assert [r.note for r in failed] == ["master down (restarting) [deferred by fault]", "master down (restarting)"]
    with pytest.raises(ScenarioError, match="already down"):
        master.restart(0.1)

    up = wait_record(master, fault_note("master-down end"))
    assert up.note.startswith(f"master-down end: ROUTER rebound on tcp://127.0.0.1:{port} (")
    assert master.port == port
    deadline = time.monotonic() + 3
    while len(accepted_since(master, up.seq)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(accepted_since(master, up.seq)) == 2, "the peers did not reconnect"
    [(start, end, label)] = [w for w in fault_windows(master.trace) if w[2] == "master-down"]
    assert 0.3 <= end - start <= 0.3 + 2 * SLACK
    assert b.register() == 0 and a.register() == 1
    a.heartbeat()
    assert a.recv() == ["heartbeat", None, "w-a"]


def test_die_closes_for_good(master: FakeMaster, make_peer: PeerFactory) -> None:
    """After die(): sends fail 'master dead', nothing is read or judged, the trace and state stay readable."""
    w = registered(make_peer, master, "w-die")
    master.die()
    master.die()  # idempotent
    assert master.send("custom", 1, to="w-die") is False
    assert records(master, Kind.SEND_FAILED, "w-die")[-1].note == "master dead"
    before = len(records(master, Kind.RECV))
    w.heartbeat()
    w.assert_silent(0.3)
    settle(master)
    assert len(records(master, Kind.RECV)) == before
    assert records(master, Kind.LIVENESS) == []
    assert "w-die" in master.workers()
    with pytest.raises(ScenarioError, match="dead"):
        master.restart(0.1)
    windows = fault_windows(master.trace)
    assert [label for _, _, label in windows] == ["master-death"]


def test_die_while_down_closes_the_down_window(master: FakeMaster) -> None:
    master.restart(10)
    master.die()
    settle(master)
    assert [label for _, _, label in fault_windows(master.trace)] == ["master-down", "master-death"]
    assert records(master, Kind.FAULT)[-2].note == "master-down end: superseded by master death"


def test_socket_monitor_records_connections(master: FakeMaster, context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """A connect, a disconnect and a reconnect with the same identity are notes with fd and peer address."""
    is_accepted = lambda r: r.kind is Kind.NOTE and r.note.startswith("connection accepted")  # noqa: E731
    first = Peer(context, master.endpoint, "w-mon")
    first.register()
    # The monitor's events reach the owner thread on their own socket: the note may follow the ack.
    accepted = wait_record(master, is_accepted)
    assert f"endpoint=tcp://127.0.0.1:{master.port}" in accepted.note and "peer=127.0.0.1:" in accepted.note
    first.close()
    wait_record(master, lambda r: r.kind is Kind.NOTE and r.note.startswith("connection disconnected"))
    second = Peer(context, master.endpoint, "w-mon")
    try:
        assert second.register() == 0
        wait_record(master, is_accepted, since=accepted.seq + 1)
        assert len(accepted_since(master, 0)) == 2
    finally:
        second.close()


def test_monitor_can_be_switched_off(make_peer: PeerFactory) -> None:
    with FakeMaster(timing=TIMING, monitor=False) as m:
        registered(make_peer, m, "w-nomon")
        settle(m)
        assert accepted_since(m, 0) == []


# --------------------------------------------------------------------------------------------
# malformed frames
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind_arrives_byte_exact(master: FakeMaster, make_peer: PeerFactory, kind: str) -> None:
    w = registered(make_peer, master, "w-mal")
    assert master.send_malformed(kind, to="w-mal")
    assert w.recv_frames() == malformed_frames(kind, "w-mal")
    settle(master)
    [sent] = [r for r in records(master, Kind.SEND, "w-mal") if r.message is None]
    assert sent.note == f"malformed:{kind}" + ("; frames not kept: 1048610 bytes" if kind == "oversized" else "")
    expected = malformed_frames(kind, "w-mal")
    assert sent.size == sum(map(len, expected))
    assert sent.frames == (tuple(expected) if kind != "oversized" else ())


# --------------------------------------------------------------------------------------------
# storms
# --------------------------------------------------------------------------------------------


def record_sender_threads(m: FakeMaster, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every thread that reaches the ROUTER send (the socket code), by name."""
    names: set[str] = set()
    inner = m._send_frames

    def spy(*args: Any, **kwargs: Any) -> bool:
        names.add(threading.current_thread().name)
        return inner(*args, **kwargs)

    monkeypatch.setattr(m, "_send_frames", spy)
    return names


def storm_records(m: FakeMaster, label: str) -> tuple[list[TraceRecord], list[TraceRecord]]:
    sent = [r for r in records(m, Kind.SEND) if label in r.note.split("; ")]
    failed = [r for r in records(m, Kind.SEND_FAILED) if r.note.endswith(f"[{label}]")]
    return sent, failed


def test_storm_of_four_threads_is_counted_exactly(
    master: FakeMaster, make_peer: PeerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 threads, valid and malformed mixed, while the peer drains: attempted == delivered + refused, the
    trace agrees, the peer gets exactly 'delivered' messages, per-thread order holds, and only the owner
    thread ever reached the socket."""
    w = registered(make_peer, master, "w-storm")
    threads_seen = record_sender_threads(master, monkeypatch)
    mix = (
        ("heartbeat", 1.0),
        ("unknown", 2.0),
        ("stale-spawn", 1.0),
        ("malformed:garbage", 0.5),
        ("malformed:extra-frames", 0.5),
    )
    spec = StormSpec(threads=4, rate=300, duration=0.5, mix=mix, seed=1)
    handle = master.storm_async(spec)
    got = drain(w, 10_000, quiet=0.5, limit=10)
    result = handle.join(5)
    got += drain(w, 10_000, quiet=0.2)

    assert result.errors == ()
    assert result.attempted == result.delivered + result.refused
    assert 0.25 * 4 * 300 * 0.5 <= result.attempted <= 4 * 300 * 0.5 + 8
    assert 0.45 <= result.duration <= 1.5
    settle(master)
    sent, failed = storm_records(master, handle.label)
    assert (len(sent), len(failed)) == (result.delivered, result.refused)
    assert len(got) == result.delivered
    noise = [msgpack.unpackb(f[0], raw=False)[1] for f in got if len(f) == 1 and f[0].startswith(b"\x93\xaelc_storm_noise")]
    assert len(noise) == sum(1 for r in sent if r.type == "lc_storm_noise")
    for t in range(4):
        ns = [d["n"] for d in noise if d["thread"] == t]
        assert ns == sorted(ns)
    assert threads_seen == {"fakemaster-router"}
    labels = [label for _, _, label in fault_windows(master.trace)]
    assert labels == [handle.label] and handle.label == "storm#1"


def test_storm_refusals_at_the_high_water_mark_are_counted(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """The peer reads nothing, the pipes are tiny: the ROUTER refuses (ROUTER_MANDATORY) instead of dropping,
    every refusal is a SEND_FAILED, and afterwards the peer receives exactly what was delivered."""
    with FakeMaster(timing=TIMING, sockopts={zmq.SNDHWM: 5, zmq.SNDBUF: 4096}) as m:
        w = Peer(context, m.endpoint, "w-full")
        w.sock.setsockopt(zmq.RCVHWM, 5)
        w.sock.setsockopt(zmq.RCVBUF, 4096)
        try:
            w.register()
            result = m.storm(StormSpec(threads=4, rate=2000, duration=0.4, mix=(("unknown", 1.0),), seed=2))
            assert result.errors == ()
            assert result.refused > 0 and result.delivered > 0
            assert result.attempted == result.delivered + result.refused
            sent, failed = storm_records(m, "storm#1")
            assert (len(sent), len(failed)) == (result.delivered, result.refused)
            assert all(r.note.startswith("high-water mark reached") for r in failed)
            got = drain(w, result.delivered + 1, quiet=0.5)
            assert len(got) == result.delivered
        finally:
            w.close()


def test_storm_bounds_cancel_and_errors(master: FakeMaster, make_peer: PeerFactory) -> None:
    """max_messages caps the total; cancel ends a long storm at once; no worker is a scenario error."""
    with pytest.raises(ScenarioError, match="no worker"):
        master.storm(StormSpec(1, 10, 0.1))
    w = registered(make_peer, master, "w-bound")
    capped = master.storm(StormSpec(threads=3, rate=10_000, duration=5, max_messages=20, to="w-bound"))
    assert capped.attempted == 20 and capped.duration < 2
    long = master.storm_async(StormSpec(threads=2, rate=50, duration=30, to="w-bound"))
    time.sleep(0.1)
    long.cancel()
    result = long.join(2)
    assert result.attempted < 30 and result.attempted == result.delivered
    assert len(drain(w, 100, quiet=0.3)) == 20 + result.delivered
    with pytest.raises(HarnessFault):
        master.storm_async(StormSpec(threads=1, rate=1, duration=5, to="w-bound")).join(0.05)


def test_only_the_owner_thread_may_send(master: FakeMaster) -> None:
    with pytest.raises(TransportError, match="socket.owner"):
        master._send_frames(b"x", [b"y"], None)


# --------------------------------------------------------------------------------------------
# script steps
# --------------------------------------------------------------------------------------------


def test_script_fault_steps_drive_the_master(master: FakeMaster, make_peer: PeerFactory) -> None:
    """Every fault step runs against a peer and leaves its mark in the trace."""
    w = registered(make_peer, master, "w-script")
    script = parse_script(
        [
            {"faults": [{"kind": "duplicate", "types": ["custom"]}], "seed": 4},
            {"send": "custom", "data": 1, "to": "w-script"},
            {"clear_faults": True},
            {"pause_reading": 0.05},
            {"resume_reading": True},
            {"send_malformed": "empty", "to": "w-script"},
            {"storm": {"threads": 1, "rate": 100, "duration": 0.1, "to": "w-script"}},
            {"storm": {"threads": 1, "rate": 100, "duration": 0.1, "to": "w-script"}, "wait": False},
            {"silence": 0.05},
            {"restart": 0.05},
            {"sleep": 0.3},
            {"die": True},
        ]
    )
    result = run_script(master, script)
    assert result.ok, result.error
    got = drain(w, 100, quiet=0.3)
    assert got[:3] == [[msgpack.packb(("custom", 1, "w-script"))]] * 2 + [[b""]]
    settle(master)
    storm_sends = [r for r in records(master, Kind.SEND, "w-script") if r.note in ("storm#1", "storm#2")]
    assert len(got) - 3 == len(storm_sends) >= 5  # two storms of ~10 heartbeats, the second cut short by the restart
    labels = sorted({label for _, _, label in fault_windows(master.trace)})
    assert labels == ["fault-plan", "master-death", "master-down", "master-silence", "pause-reading", "storm#1", "storm#2"]
