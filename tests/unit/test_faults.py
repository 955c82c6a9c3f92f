"""Faults as data, without sockets: the FaultEngine's decisions, specs and their validation, malformed frames,
storm specs, fault windows in a trace, and the fault steps of scripts."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakemaster.script import FAULT_STEP_KINDS, parse_script
from fakemaster.storm import STORM_TYPES, StormSpec, build
from harness.errors import MalformedFrame, ScenarioError
from harness.faults import (
    FAULT_KINDS,
    MALFORMED_KINDS,
    RAW,
    Decision,
    Fault,
    FaultEngine,
    FaultPlan,
    malformed_frames,
)
from harness.protocol.codec import decode, unpack
from harness.trace import Kind, Trace, fault_windows, parse_window_note, window_note

T0 = 1000.0


def engine(*faults: Fault, seed: int = 0) -> FaultEngine:
    return FaultEngine(FaultPlan(tuple(faults), seed), T0)


def run(e: FaultEngine, sequence: list[tuple[str, float]]) -> list[Decision]:
    return [e.outbound(message_type, T0 + dt) for message_type, dt in sequence]


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def test_no_fault_delivers_once_now() -> None:
    d = engine().outbound("heartbeat", T0 + 1)
    assert d.deliveries == [T0 + 1] and d.held is None and d.released == [] and d.applied == []


def test_delay_is_fixed_and_described() -> None:
    d = engine(Fault("delay", seconds=0.25)).outbound("ack", T0)
    assert d.deliveries == [T0 + 0.25]
    assert d.applied == ["delay 0.250000 s [fault 1: delay]"]


def test_jitter_stays_in_range_and_spreads() -> None:
    e = engine(Fault("delay", seconds=0.1, jitter=0.05), seed=3)
    delays = [e.outbound("x", T0 + i).deliveries[0] - (T0 + i) for i in range(500)]
    assert all(0.1 - 1e-9 <= d <= 0.15 + 1e-9 for d in delays)
    assert max(delays) - min(delays) > 0.04  # uniform over [0, jitter]: the extremes are nearly reached
    assert 0.12 < sum(delays) / len(delays) < 0.13


def test_same_seed_same_decisions_other_seed_differs() -> None:
    faults = (Fault("drop", probability=0.3), Fault("delay", jitter=0.2), Fault("duplicate", probability=0.5))
    sequence = [("heartbeat" if i % 3 else "ack", i * 0.01) for i in range(300)]

    def outcome(seed: int) -> list[tuple[list[float], list[str]]]:
        return [(d.deliveries, d.applied) for d in run(engine(*faults, seed=seed), sequence)]

    assert outcome(42) == outcome(42)
    assert outcome(42) != outcome(43)


def test_drop_by_type_and_count() -> None:
    e = engine(Fault("drop", types=("heartbeat",), count=2))
    decisions = run(e, [("heartbeat", 0), ("ack", 0.1), ("heartbeat", 0.2), ("heartbeat", 0.3), (RAW, 0.4)])
    assert [bool(d.deliveries) for d in decisions] == [False, True, False, True, True]
    assert e.uses() == [2]


def test_window_is_half_open_from_install_time() -> None:
    e = engine(Fault("drop", start=1.0, end=2.0))
    decisions = run(e, [("a", 0.5), ("a", 0.999), ("a", 1.0), ("a", 1.5), ("a", 1.999), ("a", 2.0), ("a", 5.0)])
    assert [not d.deliveries for d in decisions] == [False, False, True, True, True, False, False]


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_probability_statistics(p: float) -> None:
    """With a fixed seed the drop rate of 4000 messages lies within 5 standard deviations of p."""
    n = 4000
    e = engine(Fault("drop", probability=p), seed=99)
    dropped = sum(not d.deliveries for d in run(e, [("m", i * 0.001) for i in range(n)]))
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(dropped - n * p) < 5 * sigma, (dropped, n * p)


def test_probability_zero_and_count_with_probability() -> None:
    assert all(d.deliveries for d in run(engine(Fault("drop", probability=0.0)), [("m", 0.0)] * 50))
    e = engine(Fault("drop", probability=0.5, count=3), seed=1)
    run(e, [("m", 0.0)] * 200)
    assert e.uses() == [3]


def test_duplicate_copies() -> None:
    d = engine(Fault("duplicate", copies=3)).outbound("spawn", T0)
    assert d.deliveries == [T0] * 4
    assert d.applied == ["duplicate +3 [fault 1: duplicate]"]


def test_faults_compose_in_order_and_drop_ends_the_list() -> None:
    e = engine(Fault("duplicate"), Fault("delay", seconds=0.5), Fault("drop", types=("x",)), Fault("delay", seconds=1.0))
    d = e.outbound("m", T0)
    assert d.deliveries == [T0 + 1.5, T0 + 1.5]
    d = e.outbound("x", T0)
    assert d.deliveries == [] and len(d.applied) == 3
    assert e.uses() == [2, 2, 1, 1]


def test_hold_releases_a_complete_batch_in_reverse() -> None:
    e = engine(Fault("hold", types=("spawn",), batch=3))
    d1, d2, dx, d3 = run(e, [("spawn", 0.0), ("spawn", 0.1), ("ack", 0.15), ("spawn", 0.2)])
    assert (d1.held, d1.deliveries, d1.released) == (0, [], [])
    assert d2.held == 1 and d2.released == []
    assert dx.held is None and dx.deliveries == [T0 + 0.15]
    assert d3.held == 2
    assert [(r.token, r.deliveries) for r in d3.released] == [(2, (T0 + 0.2,)), (1, (T0 + 0.2,)), (0, (T0 + 0.2,))]
    assert d3.applied[-1] == "release 3 held in reverse order (batch complete) [fault 1: hold]"
    assert e.next_deadline() is None


def test_hold_released_on_time_out_and_window_end() -> None:
    e = engine(Fault("hold", batch=5, release_after=0.5))
    run(e, [("m", 0.0), ("m", 0.2)])
    assert e.next_deadline() == pytest.approx(T0 + 0.5)
    assert e.release_due(T0 + 0.49).released == []
    d = e.release_due(T0 + 0.5)
    assert [r.token for r in d.released] == [1, 0] and "time-out" in d.applied[0]
    assert e.next_deadline() is None

    e = engine(Fault("hold", batch=5, release_after=10, end=1.0))
    e.outbound("m", T0 + 0.8)
    assert e.next_deadline() == pytest.approx(T0 + 1.0)
    assert len(e.release_due(T0 + 1.0).released) == 1
    assert e.outbound("m", T0 + 1.1).deliveries == [T0 + 1.1]  # outside the window: not held


def test_hold_keeps_earlier_delays_and_release_all() -> None:
    e = engine(Fault("delay", seconds=2.0), Fault("hold", batch=2))
    e.outbound("m", T0)
    d = e.outbound("m", T0 + 0.1)
    assert [r.deliveries for r in d.released] == [(T0 + 2.1,), (T0 + 2.0,)]
    e.outbound("m", T0 + 0.2)
    d = e.release_all(T0 + 0.3, "plan cleared")
    assert [r.token for r in d.released] == [2] and "plan cleared" in d.applied[0]


def test_an_overdue_batch_is_released_before_a_new_message_is_held() -> None:
    e = engine(Fault("hold", batch=3, release_after=0.5))
    e.outbound("m", T0)
    d = e.outbound("m", T0 + 1.0)
    assert [r.token for r in d.released] == [0] and d.held == 1


# --------------------------------------------------------------------------------------------
# Specs: validation and serialisation
# --------------------------------------------------------------------------------------------

faults_st = st.one_of(
    st.builds(
        Fault,
        kind=st.just("delay"),
        seconds=st.floats(0, 10),
        jitter=st.floats(0, 5),
        types=st.lists(st.sampled_from(["heartbeat", "ack", "spawn"]), max_size=2).map(tuple),
    ),
    st.builds(Fault, kind=st.just("drop"), probability=st.floats(0, 1), count=st.one_of(st.none(), st.integers(1, 9))),
    st.builds(Fault, kind=st.just("duplicate"), copies=st.integers(1, 5), start=st.floats(0, 5)),
    st.builds(Fault, kind=st.just("hold"), batch=st.integers(1, 9), release_after=st.floats(0.01, 5), end=st.floats(6, 9)),
)


@given(st.lists(faults_st, max_size=5), st.integers(-(2**40), 2**40))
def test_plan_round_trips_through_dicts(faults: list[Fault], seed: int) -> None:
    plan = FaultPlan(tuple(faults), seed)
    assert FaultPlan.from_dict(plan.to_dict()) == plan
    for fault in faults:
        assert Fault.from_dict(fault.to_dict()) == fault
        assert fault.describe().startswith(fault.kind)


def test_to_dict_is_minimal_and_from_dict_accepts_lists() -> None:
    assert Fault("drop").to_dict() == {"kind": "drop"}
    fault = Fault.from_dict({"kind": "delay", "types": ["heartbeat"], "seconds": 1})
    assert fault.types == ("heartbeat",) and fault.to_dict() == {"kind": "delay", "types": ["heartbeat"], "seconds": 1}
    assert FaultPlan.from_dict({"faults": []}) == FaultPlan()
    assert Fault("drop", types="ack").types == ("ack",)  # type: ignore[arg-type]


BAD_FAULTS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "explode"}, "'kind'"),
    ({}, "'kind': missing"),
    ({"kind": "delay", "secs": 1}, "'secs': unknown"),
    ({"kind": "delay", "seconds": -1}, "'seconds'"),
    ({"kind": "delay", "seconds": float("nan")}, "'seconds'"),
    ({"kind": "delay", "seconds": True}, "'seconds'"),
    ({"kind": "delay", "jitter": "1"}, "'jitter'"),
    ({"kind": "drop", "probability": 1.5}, "'probability'"),
    ({"kind": "drop", "count": 0}, "'count'"),
    ({"kind": "drop", "count": 1.0}, "'count'"),
    ({"kind": "drop", "types": [1]}, "'types'"),
    ({"kind": "drop", "types": [""]}, "'types'"),
    ({"kind": "drop", "start": 2, "end": 1}, "'end'"),
    ({"kind": "drop", "seconds": 1}, "'seconds': only a delay fault"),
    ({"kind": "delay", "copies": 2}, "'copies': only a duplicate fault"),
    ({"kind": "duplicate", "batch": 3}, "'batch': only a hold fault"),
    ({"kind": "duplicate", "copies": 0}, "'copies'"),
    ({"kind": "hold", "batch": 0}, "'batch'"),
    ({"kind": "hold", "release_after": 0}, "'release_after'"),
]


@pytest.mark.parametrize(("raw", "match"), BAD_FAULTS, ids=[str(r) for r, _ in BAD_FAULTS])
def test_bad_fault_specs_name_the_field(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        Fault.from_dict(raw)


def test_bad_plans_name_the_index() -> None:
    with pytest.raises(ScenarioError, match=r"faults\[1\]: fault field 'seconds'"):
        FaultPlan.from_dict({"faults": [{"kind": "drop"}, {"kind": "delay", "seconds": -2}]})
    with pytest.raises(ScenarioError, match="'seed'"):
        FaultPlan.from_dict({"faults": [], "seed": "x"})
    with pytest.raises(ScenarioError, match="'extra': unknown"):
        FaultPlan.from_dict({"faults": [], "extra": 1})
    with pytest.raises(ScenarioError, match="expected a list"):
        FaultPlan.from_dict({"faults": {"kind": "drop"}})
    with pytest.raises(ScenarioError, match="must be an object"):
        Fault.from_dict(["drop"])
    assert set(FAULT_KINDS) == {"delay", "drop", "duplicate", "hold"}


def test_faults_module_is_sans_io() -> None:
    """harness/faults.py imports no clock, thread, socket or zmq module."""
    path = Path(__file__).resolve().parents[2] / "harness" / "faults.py"
    roots = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots & {"time", "threading", "socket", "select", "zmq", "os", "asyncio", "psutil"} == set()


# --------------------------------------------------------------------------------------------
# Malformed frames
# --------------------------------------------------------------------------------------------

EXPECTED_RULE = {
    "garbage": "codec.not-msgpack",
    "truncated": "codec.not-msgpack",
    "wrong-arity": "codec.arity",
    "empty": "codec.empty",
    "bad-utf8": "codec.utf8",
    "bin-type": "codec.type-field",
    "trailing-bytes": "codec.trailing-bytes",
}


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_frames_break_what_they_say(kind: str) -> None:
    frames = malformed_frames(kind, "w-1")
    assert frames == malformed_frames(kind, "w-1")  # deterministic
    assert all(isinstance(f, bytes) for f in frames)
    if kind in EXPECTED_RULE:
        assert len(frames) == 1
        with pytest.raises(MalformedFrame) as info:
            decode(frames[0])
        assert info.value.rule == EXPECTED_RULE[kind]
    elif kind == "extra-frames":
        assert len(frames) == 2 and decode(frames[0]).type == "heartbeat"
    elif kind == "wrong-types":
        message = decode(frames[0])
        assert message.type == "spawn" and not isinstance(message.data, dict)
    elif kind == "unknown-type":
        assert decode(frames[0]).type == "lc_unknown_type"
    else:  # oversized: a valid message, just big
        assert kind == "oversized" and len(frames[0]) > 1024 * 1024
        assert decode(frames[0]).node_id == "w-1"


def test_malformed_sizes_and_errors() -> None:
    assert len(malformed_frames("garbage", "w", size=1000)[0]) == 1000
    assert malformed_frames("garbage", "w", size=1)[0] == b"\xc1"
    big = malformed_frames("oversized", "w", size=5000)[0]
    assert 5000 < len(big) < 5100 and unpack(big)[1]["padding"] == b"\x00" * 5000
    with pytest.raises(ScenarioError, match="malformed kind 'nope'"):
        malformed_frames("nope", "w")
    with pytest.raises(ScenarioError, match="size"):
        malformed_frames("garbage", "w", size=-1)


# --------------------------------------------------------------------------------------------
# Storm specs
# --------------------------------------------------------------------------------------------


def test_storm_spec_round_trip_and_mix_forms() -> None:
    spec = StormSpec(4, 100.0, 1.5, (("heartbeat", 2.0), ("malformed:garbage", 1.0)), to="w", seed=3, max_messages=50)
    assert StormSpec.from_dict(spec.to_dict()) == spec
    as_map = StormSpec.from_dict({"threads": 1, "rate": 1, "duration": 1, "mix": {"ack": 1, "unknown": 3}})
    assert as_map.mix == (("ack", 1.0), ("unknown", 3.0))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"rate": 1, "duration": 1}, "'threads': missing"),
        ({"threads": 0, "rate": 1, "duration": 1}, "'threads'"),
        ({"threads": 1, "rate": 0, "duration": 1}, "'rate'"),
        ({"threads": 1, "rate": 1, "duration": -1}, "'duration'"),
        ({"threads": 1, "rate": 1, "duration": 1, "mix": []}, "'mix'"),
        ({"threads": 1, "rate": 1, "duration": 1, "mix": [["bogus", 1]]}, "unknown type 'bogus'"),
        ({"threads": 1, "rate": 1, "duration": 1, "mix": [["malformed:nope", 1]]}, "malformed:nope"),
        ({"threads": 1, "rate": 1, "duration": 1, "mix": [["ack", 0]]}, "weight"),
        ({"threads": 1, "rate": 1, "duration": 1, "max_messages": 0}, "'max_messages'"),
        ({"threads": 1, "rate": 1, "duration": 1, "burst": 1}, "'burst': unknown"),
        ({"threads": 1, "rate": 1, "duration": 1, "to": ""}, "'to'"),
    ],
)
def test_bad_storm_specs(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        StormSpec.from_dict(raw)


@pytest.mark.parametrize("name", [*STORM_TYPES, *(f"malformed:{k}" for k in MALFORMED_KINDS if k != "oversized")])
def test_storm_messages(name: str) -> None:
    frames, message = build(name, "w-9", 4, 1, 7)
    if message is None:
        assert name.startswith("malformed:") and frames == malformed_frames(name.split(":", 1)[1], "w-9")
        return
    assert len(frames) == 1 and msgpack.unpackb(frames[0], raw=False) == [message.type, message.data, "w-9"]
    if name == "stale-spawn":
        assert message.data["timestamp"] == 0.0 and set(message.data) >= {"user_classes_count", "stop_timeout"}
    if name == "ack":
        assert message.data == {"index": 4}


# --------------------------------------------------------------------------------------------
# Fault windows in a trace
# --------------------------------------------------------------------------------------------


def test_fault_windows_pair_by_label() -> None:
    trace = Trace(t0=0.0)
    trace.append(1.0, Kind.FAULT, note=window_note("pause-reading", "start", "for 2 s"))
    trace.append(1.5, Kind.FAULT, note=window_note("storm#1", "start", '{"threads": 1}'))
    trace.append(1.6, Kind.FAULT, note="delay 0.100000 s [fault 1: delay]")
    trace.append(1.7, Kind.NOTE, note="master-death start")  # not a FAULT record: ignored
    trace.append(2.0, Kind.FAULT, note=window_note("storm#2", "start"))
    trace.append(2.5, Kind.FAULT, note=window_note("storm#1", "end", "attempted=3 delivered=3 refused=0"))
    trace.append(3.0, Kind.FAULT, note=window_note("pause-reading", "end"))
    trace.append(3.5, Kind.FAULT, note=window_note("storm#2", "end"))
    trace.append(4.0, Kind.FAULT, note=window_note("master-death", "start", "ROUTER closed for good"))
    trace.append(5.0, Kind.NOTE, note="last")
    assert fault_windows(trace) == [
        (1.0, 3.0, "pause-reading"),
        (1.5, 2.5, "storm#1"),
        (2.0, 3.5, "storm#2"),
        (4.0, 5.0, "master-death"),
    ]
    assert fault_windows([]) == []
    assert parse_window_note("hold 1/2 [fault 1: hold]") is None
    assert parse_window_note("withheld: master-silence") is None
    assert parse_window_note("master-down end: superseded") == ("master-down", "end")
    with pytest.raises(ValueError):
        window_note("two words", "start")
    with pytest.raises(ValueError):
        window_note("x", "middle")


# --------------------------------------------------------------------------------------------
# Script steps
# --------------------------------------------------------------------------------------------


def test_fault_steps_parse() -> None:
    steps = [
        {"faults": [{"kind": "delay", "seconds": 0.1}], "seed": 3},
        {"clear_faults": True},
        {"pause_reading": 2.0},
        {"pause_reading": True},
        {"resume_reading": True},
        {"silence": 1},
        {"restart": 0.5},
        {"die": True},
        {"storm": {"threads": 2, "rate": 10, "duration": 1, "mix": [["heartbeat", 1]]}, "wait": False},
        {"send_malformed": "garbage", "size": 10, "to": "w"},
    ]
    script = parse_script(steps)
    assert [s.kind for s in script.steps] == [next(iter(k for k in s if k in FAULT_STEP_KINDS)) for s in steps]


@pytest.mark.parametrize(
    ("step", "match"),
    [
        ({"faults": [{"kind": "drop", "count": -1}]}, r"step 1 \(faults\): faults\[0\]: fault field 'count'"),
        ({"faults": [], "seed": 1.5}, r"step 1 \(faults\): fault plan field 'seed'"),
        ({"faults": "drop"}, r"step 1 \(faults\)"),
        ({"clear_faults": False}, r"step 1 \(clear_faults\): takes the value true"),
        ({"pause_reading": -1}, r"step 1 \(pause_reading\)"),
        ({"pause_reading": "2"}, r"step 1 \(pause_reading\)"),
        ({"silence": False}, r"step 1 \(silence\)"),
        ({"restart": True}, r"step 1 \(restart\)"),
        ({"die": 1}, r"step 1 \(die\)"),
        ({"storm": {"threads": 1}}, r"step 1 \(storm\): storm field 'rate': missing"),
        ({"storm": {"threads": 1, "rate": 1, "duration": 1}, "wait": "no"}, r"step 1 \(storm\): 'wait'"),
        ({"send_malformed": "junk"}, r"step 1 \(send_malformed\): takes one of"),
        ({"send_malformed": "garbage", "size": -5}, r"step 1 \(send_malformed\): 'size'"),
    ],
)
def test_bad_fault_steps_name_the_step(step: dict[str, Any], match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        parse_script([step])
