"""Tests of harness.protocol.codec: exact bytes, tagged maps, every MalformedFrame rule, round trips."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import MalformedFrame, ProtocolViolation
from harness.protocol.codec import (
    DATETIME_FORMAT,
    DEFAULT_MAX_FRAME_BYTES,
    ObjectIdRef,
    decode,
    encode,
    encode_parts,
    unpack,
)
from harness.protocol.messages import Message

NODE = "vm_fef595e9872f48ce9f832bbaf11b7bae"  # the 35-char id of spec §2.3 / §8.2
NODE_BYTES = b"\xd9\x23" + NODE.encode()  # str8, length 0x23 = 35


def _str(s: str) -> bytes:
    """A fixstr (< 32 bytes), as msgpack packs short strings."""
    raw = s.encode()
    assert len(raw) < 32
    return bytes([0xA0 | len(raw)]) + raw


# --------------------------------------------------------------------------------------------
# encode(): the byte examples of spec §2.3 and a few more envelopes
# --------------------------------------------------------------------------------------------

BYTE_EXAMPLES: list[tuple[str, Message, bytes]] = [
    (
        "ack",
        Message("ack", {"index": 0}, NODE),
        b"\x93" + _str("ack") + b"\x81" + _str("index") + b"\x00" + NODE_BYTES,
    ),
    (
        "worker heartbeat",
        Message("heartbeat", {"state": "ready", "current_cpu_usage": 12.5, "current_memory_usage": 55275520}, NODE),
        b"\x93"
        + _str("heartbeat")
        + b"\x83"
        + _str("state")
        + _str("ready")
        + b"\xb1current_cpu_usage"
        + b"\xcb"
        + struct.pack(">d", 12.5)
        + b"\xb4current_memory_usage"
        + b"\xce"
        + struct.pack(">I", 55275520)
        + NODE_BYTES,
    ),
    ("master heartbeat", Message("heartbeat", None, NODE), b"\x93" + _str("heartbeat") + b"\xc0" + NODE_BYTES),
    (
        "client_ready",
        Message("client_ready", "2.47.0", NODE),
        b"\x93" + _str("client_ready") + _str("2.47.0") + NODE_BYTES,
    ),
    ("client_ready -1", Message("client_ready", -1, "w"), b"\x93" + _str("client_ready") + b"\xff" + _str("w")),
    ("spawning nil", Message("spawning", None, "w"), b"\x93" + _str("spawning") + b"\xc0" + _str("w")),
    (
        "int map keys",
        Message("stats", {"response_times": {12: 4}}, "w"),
        b"\x93" + _str("stats") + b"\x81" + _str("response_times") + b"\x81\x0c\x04" + _str("w"),
    ),
    (
        "bytes travel as bin",
        Message("custom", b"\x00\xff", "w"),
        b"\x93" + _str("custom") + b"\xc4\x02\x00\xff" + _str("w"),
    ),
    (
        "datetime as tagged map",
        Message("demo_to_master", {"when": datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)}, "w"),
        b"\x93"
        + _str("demo_to_master")
        + b"\x81"
        + _str("when")
        + b"\x82"
        + _str("__datetime__")
        + b"\xc3"
        + _str("as_str")
        + b"\xb8"
        + b"20240102T03:04:05.678901"
        + _str("w"),
    ),
    (
        "ObjectIdRef as tagged map",
        Message("custom", ObjectIdRef("65a1b2c3d4e5f60718293a4b"), "w"),
        b"\x93"
        + _str("custom")
        + b"\x82"
        + _str("__ObjectId__")
        + b"\xc3"
        + _str("as_str")
        + b"\xb8"
        + b"65a1b2c3d4e5f60718293a4b"
        + _str("w"),
    ),
]


@pytest.mark.parametrize(("name", "message", "expected"), BYTE_EXAMPLES, ids=[e[0] for e in BYTE_EXAMPLES])
def test_encode_matches_known_bytes(name: str, message: Message, expected: bytes) -> None:
    """encode() produces exactly the bytes the spec documents (and Locust sends)."""
    assert encode(message) == expected
    assert encode_parts(message.type, message.data, message.node_id) == expected


def test_spec_byte_lengths() -> None:
    """The lengths quoted in spec §2.3 for the 35-char node id."""
    assert len(encode(Message("ack", {"index": 0}, NODE))) == 50
    assert len(encode(Message("heartbeat", None, NODE))) == 49
    assert len(encode(Message("client_ready", "2.47.0", NODE))) == 58


@pytest.mark.parametrize(("name", "message", "expected"), BYTE_EXAMPLES, ids=[e[0] for e in BYTE_EXAMPLES])
def test_decode_of_known_bytes(name: str, message: Message, expected: bytes) -> None:
    """The documented bytes decode back to the message."""
    assert decode(expected) == message


def test_envelope_starts_with_fixarray_of_three_and_str_type() -> None:
    """Every envelope is 0x93 followed by a msgpack str type (never bin)."""
    for message in (
        Message("ack", {"index": 3}, NODE),
        Message("heartbeat", None, NODE),
        Message("client_ready", "2.47.0", NODE),
    ):
        frame = encode(message)
        assert frame[0] == 0x93
        assert frame[1] & 0xE0 == 0xA0  # fixstr
        assert frame[2 : 2 + len(message.type)] == message.type.encode()


def test_float_is_float64_and_tuple_becomes_array() -> None:
    """Floats pack as 0xcb; tuples are arrays (decoded as lists)."""
    frame = encode(Message("x", (1.0, 2), "w"))
    assert b"\x92\xcb" + struct.pack(">d", 1.0) + b"\x02" in frame
    assert decode(frame).data == [1.0, 2]


def test_set_is_not_serialisable() -> None:
    """msgpack cannot pack a set (as in Locust: TypeError)."""
    with pytest.raises(TypeError):
        encode(Message("x", {1, 2}, "w"))


def test_encode_parts_allows_odd_envelopes() -> None:
    """encode_parts packs non-str parts so tests can send deliberately broken frames."""
    frame = encode_parts(b"ack", None, 7)
    assert frame == b"\x93\xc4\x03ack\xc0\x07"
    with pytest.raises(MalformedFrame) as info:
        decode(frame)
    assert info.value.rule == "codec.type-field"


# --------------------------------------------------------------------------------------------
# Tagged maps (spec §2.2)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        datetime.datetime(2024, 1, 2, 3, 4, 5, 678901),
        datetime.datetime(2024, 1, 2, 3, 4, 5),  # microsecond 0 still travels as ".000000"
        datetime.datetime(1000, 1, 1),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    ],
)
def test_datetime_round_trip(when: datetime.datetime) -> None:
    """A naive datetime survives encode/decode via the tagged map."""
    message = Message("custom", {"when": when, "list": [when]}, "w")
    assert decode(encode(message)) == message
    raw = msgpack.unpackb(encode(message), raw=False)
    assert raw[1]["when"] == {"__datetime__": True, "as_str": when.strftime(DATETIME_FORMAT)}


def test_aware_datetime_loses_its_timezone() -> None:
    """Locust's format has no offset: an aware datetime comes back naive, same wall time."""
    aware = datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    back = decode(encode(Message("x", aware, "w"))).data
    assert back.tzinfo is None
    assert back == aware.replace(tzinfo=None)


def test_spec_observed_datetime_map_decodes() -> None:
    """The tagged map seen on the wire in run A decodes to a datetime."""
    frame = msgpack.packb(
        ["demo_to_master", {"echo": {}, "when": {"__datetime__": True, "as_str": "20240102T03:04:05.678901"}}, NODE]
    )
    assert decode(frame).data["when"] == datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)


def test_object_id_ref_round_trip() -> None:
    """An ObjectIdRef travels as {"__ObjectId__": True, "as_str": ...} and comes back equal."""
    oid = ObjectIdRef("65a1b2c3d4e5f60718293a4b")
    message = Message("custom", {"id": oid, "ids": [oid, ObjectIdRef("000000000000000000000000")]}, "w")
    assert decode(encode(message)) == message
    assert msgpack.unpackb(encode(message), raw=False)[1]["id"] == {"__ObjectId__": True, "as_str": oid.as_str}


def test_object_id_as_str_is_coerced_to_str() -> None:
    """A non-str as_str in an __ObjectId__ map is kept as its str() (as bson's ObjectId(str) would need)."""
    frame = msgpack.packb(["x", {"__ObjectId__": True, "as_str": 12}, "w"])
    assert decode(frame).data == ObjectIdRef("12")


def test_object_hook_applies_to_every_map_including_the_data_itself() -> None:
    """The hook runs on every map, so a tagged map as the whole payload is decoded too."""
    frame = msgpack.packb(["x", {"__datetime__": True, "as_str": "20240102T03:04:05.000001"}, "w"])
    assert decode(frame).data == datetime.datetime(2024, 1, 2, 3, 4, 5, 1)


# --------------------------------------------------------------------------------------------
# Every MalformedFrame rule
# --------------------------------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty frame", b"", "codec.empty"),
    ("trailing garbage (run B injection)", encode(Message("heartbeat", None, "w")) + b"\xc1GARBAGE", "codec.trailing-bytes"),
    ("two objects", b"\x90\x90", "codec.trailing-bytes"),
    ("invalid utf-8 in a str", b"\x93\xa3ack\xa1\xff\xa1w", "codec.utf8"),
    ("invalid utf-8 in node_id", b"\x93\xa3ack\xc0\xa2\xc3\x28", "codec.utf8"),
    ("datetime map without as_str", msgpack.packb(["x", {"__datetime__": True}, "w"]), "codec.ext-hook"),
    ("datetime map with bad as_str", msgpack.packb(["x", {"__datetime__": True, "as_str": "yesterday"}, "w"]), "codec.ext-hook"),
    ("datetime map with int as_str", msgpack.packb(["x", {"__datetime__": True, "as_str": 5}, "w"]), "codec.ext-hook"),
    ("ObjectId map without as_str", msgpack.packb(["x", {"__ObjectId__": True}, "w"]), "codec.ext-hook"),
    ("never-used byte 0xc1", b"\xc1", "codec.not-msgpack"),
    ("truncated array", b"\x93\xa3ack", "codec.not-msgpack"),
    ("truncated str", b"\x93\xa9heart", "codec.not-msgpack"),
    ("absurd array length", b"\xdd\xff\xff\xff\xff", "codec.not-msgpack"),
    ("nesting too deep", b"\x91" * 100_000 + b"\xc0", "codec.not-msgpack"),
    ("a map", msgpack.packb({"type": "ack", "data": None, "node_id": "w"}), "codec.envelope"),
    ("a 3-char string (Locust accepts it)", msgpack.packb("abc"), "codec.envelope"),
    ("an int", b"\x03", "codec.envelope"),
    ("nil", b"\xc0", "codec.envelope"),
    ("an ext type", b"\xd4\x05\x00", "codec.envelope"),
    ("empty array", b"\x90", "codec.arity"),
    ("arity 2", msgpack.packb(["ack", None]), "codec.arity"),
    ("arity 4", msgpack.packb(["ack", None, "w", "extra"]), "codec.arity"),
    ("bin type", msgpack.packb([b"ack", None, "w"]), "codec.type-field"),
    ("int type", msgpack.packb([1, None, "w"]), "codec.type-field"),
    ("nil type", msgpack.packb([None, None, "w"]), "codec.type-field"),
    ("bin node_id", msgpack.packb(["ack", None, b"w"]), "codec.node-id"),
    ("nil node_id", msgpack.packb(["ack", None, None]), "codec.node-id"),
    ("int node_id", msgpack.packb(["ack", None, 7]), "codec.node-id"),
]


@pytest.mark.parametrize(("name", "frame", "rule"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_names_the_rule(name: str, frame: bytes, rule: str) -> None:
    """Each broken frame raises MalformedFrame with the exact rule name."""
    with pytest.raises(MalformedFrame) as info:
        decode(frame)
    error = info.value
    assert error.rule == rule
    assert isinstance(error, ProtocolViolation)
    assert error.expected and error.observed
    assert str(error).startswith(f"[{rule}] expected ")


def test_every_codec_rule_is_exercised() -> None:
    """The table above covers every rule codec.py can raise."""
    rules = {
        "codec.empty",
        "codec.size",
        "codec.trailing-bytes",
        "codec.utf8",
        "codec.ext-hook",
        "codec.not-msgpack",
        "codec.envelope",
        "codec.arity",
        "codec.type-field",
        "codec.node-id",
    }
    assert {m[2] for m in MALFORMED} | {"codec.size"} == rules


def test_size_limit() -> None:
    """A frame above max_frame_bytes is rejected before unpacking; one at the limit is fine."""
    frame = encode(Message("ack", {"index": 0}, NODE))
    assert decode(frame, max_frame_bytes=len(frame)) == Message("ack", {"index": 0}, NODE)
    with pytest.raises(MalformedFrame) as info:
        decode(frame, max_frame_bytes=len(frame) - 1)
    assert info.value.rule == "codec.size"
    assert str(len(frame)) in info.value.observed
    with pytest.raises(MalformedFrame) as info:
        unpack(b"\xc1" * 10, max_frame_bytes=9)  # size is checked before the content
    assert info.value.rule == "codec.size"


def test_default_size_limit_is_generous() -> None:
    """The default limit admits large legitimate frames."""
    assert DEFAULT_MAX_FRAME_BYTES >= 1024 * 1024
    big = Message("logs", {"worker_id": "w", "logs": ["x" * 1000] * 1000}, "w")
    assert decode(encode(big)) == big


def test_unpack_returns_raw_object_without_envelope_checks() -> None:
    """unpack() applies Locust's options but not the envelope rules."""
    assert unpack(msgpack.packb("abc")) == "abc"
    assert unpack(msgpack.packb({1: 2})) == {1: 2}  # strict_map_key=False
    assert unpack(msgpack.packb([b"x"])) == [b"x"]  # raw=False keeps bin as bytes
    with pytest.raises(MalformedFrame) as info:
        unpack(b"")
    assert info.value.rule == "codec.empty"


# --------------------------------------------------------------------------------------------
# Round-trip property
# --------------------------------------------------------------------------------------------

TAG_KEYS = frozenset({"__datetime__", "__ObjectId__"})
MSGPACK_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# strftime("%Y") does not zero-pad years below 1000, so (in Locust too) they do not round-trip.
NAIVE_DATETIMES = st.datetimes(
    min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)
)
MAP_KEYS = st.one_of(st.text(max_size=12).filter(lambda k: k not in TAG_KEYS), MSGPACK_INTS)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    MSGPACK_INTS,
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    NAIVE_DATETIMES,
    st.builds(ObjectIdRef, st.text(alphabet="0123456789abcdef", min_size=24, max_size=24)),
)
PAYLOADS: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(MAP_KEYS, children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=100, database=None)
@given(message_type=st.text(max_size=20), data=PAYLOADS, node_id=st.text(max_size=40))
def test_round_trip(message_type: str, data: Any, node_id: str) -> None:
    """decode(encode(m)) == m for every msgpack-able payload."""
    message = Message(message_type, data, node_id)
    assert decode(encode(message)) == message


@settings(max_examples=40, database=None)
@given(data=PAYLOADS)
def test_encoding_is_deterministic_and_canonical(data: Any) -> None:
    """Re-encoding a decoded message gives the same bytes."""
    frame = encode(Message("custom", data, "w"))
    assert encode(decode(frame)) == frame
