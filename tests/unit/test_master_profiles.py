"""Master profiles: each knob changes what the master core does, as the release range it stands for did.

The expectations come from ../shared/reference/locust-versions.md (section 12 and the sections it cites).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.catalog import all_cases, by_id
from harness.profile_docs import KNOB_MEANING, applies_to, profiles_markdown
from harness.protocol.codec import encode
from harness.protocol.master import MasterCore
from harness.protocol.messages import Message, MessageType
from harness.protocol.profiles import PROFILES, Ack, UnknownProfile, master_profile, profiles_named
from harness.protocol.timing import LOCUST_TIMING

ROOT = Path(__file__).resolve().parents[2]
NODE = "host_abc"
ID = NODE.encode()


def core(name: str) -> MasterCore:
    master = MasterCore(LOCUST_TIMING, profile=master_profile(name))
    master.start(0.0)
    return master


def receive(
    master: MasterCore, message_type: str, data: object = None, node_id: str = NODE, identity: bytes = ID
) -> list[Message]:
    inbound = master.inspect(identity, [encode(Message(message_type, data, node_id))])
    replies, _ = master.react(inbound)
    return replies


def ready(master: MasterCore, identity: bytes = ID) -> list[Message]:
    return receive(master, MessageType.CLIENT_READY, "2.47.0", identity.decode(), identity)


HEARTBEAT = {"state": "ready", "current_cpu_usage": 1.0}


# -- the table ----------------------------------------------------------------------------------


def test_the_five_profiles_in_release_order() -> None:
    assert list(PROFILES) == ["2.0", "2.8", "2.15", "2.20", "2.47"]
    assert [p.release for p in PROFILES.values()] == ["2.1.0", "2.8.6", "2.15.1", "2.20.0", "2.47.0"]


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(UnknownProfile, match=r"'2\.9'.*2\.0, 2\.8, 2\.15, 2\.20, 2\.47"):
        master_profile("2.9")
    with pytest.raises(UnknownProfile):
        profiles_named("2.15,2.16")
    assert [p.name for p in profiles_named("all")] == list(PROFILES)
    assert [p.name for p in profiles_named(" 2.8 , 2.47")] == ["2.8", "2.47"]


def test_every_knob_is_explained() -> None:
    assert set(KNOB_MEANING) == set(PROFILES["2.47"].knobs())


# -- ack, heartbeat replies ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "ack"), [("2.0", None), ("2.8", None), ("2.15", {"index": 0}), ("2.47", {"index": 0})])
def test_ack_by_profile(name: str, ack: dict[str, int] | None) -> None:
    replies = ready(core(name))
    if ack is None:
        assert replies == []
    else:
        assert [(r.type, r.data) for r in replies] == [(MessageType.ACK, ack)]


def test_a_nil_ack_profile_knob() -> None:
    assert PROFILES["2.15"].ack is Ack.INDEX and PROFILES["2.8"].ack_data(3) is None
    nil = PROFILES["2.15"].__class__(**{**PROFILES["2.15"].__dict__, "ack": Ack.NIL})
    assert nil.acks and nil.ack_data(3) is None


@pytest.mark.parametrize(("name", "replies"), [("2.8", 0), ("2.15", 0), ("2.20", 1), ("2.47", 1)])
def test_heartbeat_replies_from_2_19(name: str, replies: int) -> None:
    master = core(name)
    ready(master)
    assert len(receive(master, MessageType.HEARTBEAT, HEARTBEAT)) == replies


# -- whose node_id ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "counted"), [("2.8", True), ("2.15", False)])
def test_node_id_from_the_identity_before_2_11_1(name: str, counted: bool) -> None:
    """A worker whose payload node_id differs from its identity: a 2.8 master reads the identity and keeps it alive;
    a 2.15 master looks the payload's id up, finds nobody, and the worker goes missing."""
    master = core(name)
    ready(master)
    for tick in range(1, 8):
        receive(master, MessageType.HEARTBEAT, HEARTBEAT, node_id="other_id")
        master.tick(float(tick))
    assert master.workers[NODE].missing is not counted


# -- messages from unknown workers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message_type", "outcome"),
    [
        ("2.0", MessageType.CLIENT_STOPPED, "crash"),
        ("2.15", MessageType.CLIENT_STOPPED, "ignored"),
        ("2.8", MessageType.SPAWNING, "crash"),
        ("2.15", MessageType.SPAWNING, "quit"),
        ("2.20", MessageType.SPAWNING_COMPLETE, "crash"),
        ("2.47", MessageType.SPAWNING_COMPLETE, "quit"),
        ("2.0", MessageType.STATS, "ignored"),
    ],
)
def test_messages_from_unknown_workers(name: str, message_type: str, outcome: str) -> None:
    master = core(name)
    data = {"user_classes_count": {"U": 1}, "user_count": 1} if message_type == MessageType.SPAWNING_COMPLETE else None
    if message_type == MessageType.STATS:
        data = {"stats": [], "stats_total": {}, "errors": {}, "user_count": 0, "user_classes_count": {}}
    replies = receive(master, message_type, data, node_id="stranger_1", identity=b"stranger_1")
    if outcome == "quit":
        assert [(r.type, r.node_id) for r in replies] == [(MessageType.QUIT, "stranger_1")]
        assert master.crashed is None and "quit sent to unknown worker" in master.notes[-1]
    elif outcome == "crash":
        assert replies == [] and master.crashed is not None
        assert "client_listener crashed" in master.notes[-1]
    else:
        assert replies == [] and master.crashed is None


def test_a_crashed_master_reads_nothing_more() -> None:
    master = core("2.20")
    ready(master)
    receive(master, MessageType.SPAWNING_COMPLETE, {"user_classes_count": {}, "user_count": 0}, "x_1", b"x_1")
    assert master.crashed is not None
    assert ready(master, b"late_1") == []  # no ack for anyone any more
    changes = []
    for tick in range(1, 7):
        assert receive(master, MessageType.HEARTBEAT, HEARTBEAT) == []  # read, but never counted
        changes += master.tick(float(tick))
    assert changes == []  # (the real master marks them all missing: master.crashed already says why)
    master.forget()  # a restarted master is a new process
    assert master.crashed is None and [r.type for r in ready(master)] == [MessageType.ACK]


@pytest.mark.parametrize(("name", "crashes"), [("2.0", False), ("2.8", True), ("2.47", True)])
def test_unsliceable_client_ready_data_kills_the_listener_from_2_5(name: str, crashes: bool) -> None:
    master = core(name)
    receive(master, MessageType.CLIENT_READY, 5)
    assert (master.crashed is not None) is crashes
    assert (NODE in master.workers) is not crashes  # before 2.5 any truthy data registers
    for data in (-1, [1], "0.9.0"):  # the -1 bypass, and sliceable data, never crash
        again = core(name)
        assert [r.type for r in receive(again, MessageType.CLIENT_READY, data)] == (
            [MessageType.ACK] if again.profile.acks else []
        )
        assert again.crashed is None and NODE in again.workers
    falsy = core(name)
    assert receive(falsy, MessageType.CLIENT_READY, "") == [] and falsy.workers == {}  # "an old (pre 2.0) worker"


@pytest.mark.parametrize(
    ("data", "crashes"),
    [({"state": "ready"}, True), ({"state": "ready", "current_cpu_usage": "high"}, True), (None, True), (HEARTBEAT, False)],
)
def test_a_heartbeat_the_master_cannot_read_kills_the_listener(data: object, crashes: bool) -> None:
    master = core("2.47")
    ready(master)
    receive(master, MessageType.HEARTBEAT, data)
    assert (master.crashed is not None) is crashes


@pytest.mark.parametrize(("name", "outcome"), [("2.20", "crash"), ("2.47", "quit")])
def test_spawning_complete_without_counts_from_a_known_worker(name: str, outcome: str) -> None:
    master = core(name)
    ready(master)
    replies = receive(master, MessageType.SPAWNING_COMPLETE, {"user_count": 1})
    if outcome == "quit":
        assert [r.type for r in replies] == [MessageType.QUIT] and master.crashed is None
    else:
        assert replies == [] and master.crashed is not None
    untyped = core(name)
    ready(untyped)
    receive(untyped, MessageType.SPAWNING_COMPLETE, None)  # a TypeError, not a KeyError: every release dies of it
    assert untyped.crashed is not None


def test_an_exception_without_its_fields_kills_the_listener() -> None:
    master = core("2.47")
    ready(master)
    receive(master, MessageType.EXCEPTION, {"msg": "boom"})
    assert master.crashed is not None and "exception" in master.crashed


# -- bad frames, deletion ----------------------------------------------------------------------------


TRAILING = encode(Message(MessageType.HEARTBEAT, HEARTBEAT, NODE)) + b"\x00"  # ExtraData: a receive error


@pytest.mark.parametrize(("name", "reconnects", "replayed"), [("2.8", False, 0), ("2.15", True, 0), ("2.47", True, 1)])
def test_reconnect_for_a_receive_error_from_a_known_worker(name: str, reconnects: bool, replayed: int) -> None:
    """2.13.2+: ``reconnect`` to a known sender of trailing bytes or bad UTF-8, and (no ``continue`` after it) the
    previous message handled again: here a heartbeat, whose reply a 2.19+ master sends once more."""
    master = core(name)
    stranger = master.react(master.inspect(b"stranger_2", [TRAILING]))[0]
    assert stranger == [] and master.crashed is None  # an unknown sender gets nothing, in every release
    ready(master)
    receive(master, MessageType.HEARTBEAT, HEARTBEAT)
    replies, _ = master.react(master.inspect(ID, [TRAILING]))
    expected = [MessageType.RECONNECT, *[MessageType.HEARTBEAT] * replayed] if reconnects else []
    assert [r.type for r in replies] == expected
    assert master.crashed is None


@pytest.mark.parametrize("frame", [b"\xc1garbage", b"", encode(Message(MessageType.HEARTBEAT, HEARTBEAT, NODE))[:-3]])
@pytest.mark.parametrize("name", ["2.0", "2.15", "2.47"])
def test_a_frame_that_is_no_message_kills_the_listener(name: str, frame: bytes) -> None:
    master = core(name)
    ready(master)
    assert master.react(master.inspect(ID, [frame])) == ([], [])
    assert master.crashed is not None and "could not decode" in master.crashed


def test_a_message_in_several_frames_is_read_from_its_first() -> None:
    master = core("2.47")
    ready(master)
    first = encode(Message(MessageType.HEARTBEAT, HEARTBEAT, NODE))
    replies, _ = master.react(master.inspect(ID, [first, b"extra"]))
    assert [r.type for r in replies] == [MessageType.HEARTBEAT]
    master.react(master.inspect(ID, [b"", first]))  # a REQ-style envelope: the empty first frame
    assert master.crashed is not None


@pytest.mark.parametrize(("name", "deleted"), [("2.0", False), ("2.8", True)])
def test_missing_workers_are_deleted_from_2_8_4(name: str, deleted: bool) -> None:
    master = core(name)
    ready(master)
    for tick in range(1, 80):
        master.tick(float(tick))
    assert (NODE not in master.workers) is deleted
    if not deleted:
        assert master.workers[NODE].missing


# -- spawn payloads ---------------------------------------------------------------------------------------


def test_spawn_payloads_by_profile() -> None:
    old = PROFILES["2.0"].spawn_payload({"U": 2}, timestamp=1.0)
    assert old == {"timestamp": 1.0, "user_classes_count": {"U": 2}, "host": None, "stop_timeout": None}
    assert PROFILES["2.0"].spawn_payload({"U": 2}, timestamp=1.0, stop_timeout=0.4)["stop_timeout"] == 1  # whole seconds
    assert PROFILES["2.8"].spawn_payload({"U": 2}, timestamp=1.0, stop_timeout=3)["stop_timeout"] == 3
    assert PROFILES["2.8"].spawn_payload({"U": 2}, timestamp=1.0)["parsed_options"] == {}
    new = PROFILES["2.15"].spawn_payload({"U": 2}, timestamp=1.0)
    assert new["stop_timeout"] == 0.0 and isinstance(new["stop_timeout"], float)


# -- cases and the docs ----------------------------------------------------------------------------------


def test_cases_that_need_a_knob_apply_only_where_it_is() -> None:
    assert applies_to(by_id("reconnect/03-master-silence-timeout")) == ["2.20", "2.47"]
    assert applies_to(by_id("handshake/02-retry-until-ack")) == ["2.15", "2.20", "2.47"]
    assert applies_to(by_id("spawn/08-master-notices")) == ["2.47"]
    assert applies_to(by_id("spawn/01-basic")) == list(PROFILES)
    reason = by_id("storms/02-heartbeat-flood").not_applicable(PROFILES["2.15"])
    assert reason is not None and "heartbeat_reply" in reason


def test_the_page_is_the_table() -> None:
    assert (ROOT / "docs" / "master-profiles.md").read_text() == profiles_markdown(all_cases()), (
        "regenerate: locust-conformance profiles --markdown > docs/master-profiles.md"
    )
