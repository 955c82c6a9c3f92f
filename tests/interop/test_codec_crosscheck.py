"""Codec cross-check against Locust's own ``Message.serialize``/``unserialize`` (both directions, byte-identical).

Locust runs in a subprocess (``locust_codec_server.py``): ``import locust`` gevent-patches the
whole interpreter, so it must never be imported here. Every read from the subprocess has a
deadline, and the subprocess is always reaped.
"""

from __future__ import annotations

import datetime
import os
import pickle
import select
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import MalformedFrame
from harness.protocol.codec import decode, encode
from harness.protocol.messages import LOCUST_VERSION, Message, MessageType
from tests.foreign_peers import locust_or_skip

locust_or_skip()

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

SERVER = Path(__file__).with_name("locust_codec_server.py")
HEADER = struct.Struct(">I")
STARTUP_TIMEOUT = 20.0  # importing locust takes ~1-2 s
REQUEST_TIMEOUT = 10.0


class LocustCodecError(Exception):
    """Locust raised while serving a request (the repr of its exception is the message)."""


class LocustCodec:
    """Client of locust_codec_server.py; every read and write has a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        assert proc.stdin is not None and proc.stdout is not None
        self._in = proc.stdin.fileno()
        self._out = proc.stdout.fileno()
        self.version: str = ""

    def _diagnostics(self) -> str:
        try:
            tail = self.stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            tail = "<no stderr>"
        return f"locust codec server (pid {self.proc.pid}, rc {self.proc.poll()}); stderr tail:\n{tail}"

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"writing to the {self._diagnostics()}")
            _, writable, _ = select.select([], [self._in], [], remaining)
            if writable:
                view = view[os.write(self._in, view[:65536]) :]

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"reading from the {self._diagnostics()}")
            readable, _, _ = select.select([self._out], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._out, n)
            if not chunk:
                raise EOFError(f"EOF from the {self._diagnostics()}")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read_reply(self, timeout: float = REQUEST_TIMEOUT) -> Any:
        """Read one ("ok", value) / ("error", repr) reply; return value or raise LocustCodecError."""
        deadline = time.monotonic() + timeout
        (length,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        status, value = pickle.loads(self._read_exact(length, deadline))
        if status == "error":
            raise LocustCodecError(value)
        assert status == "ok", status
        return value

    def call(self, *request: Any, timeout: float = REQUEST_TIMEOUT) -> Any:
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self._write_all(HEADER.pack(len(payload)) + payload, time.monotonic() + timeout)
        return self.read_reply(timeout)

    def serialize(self, message_type: Any, data: Any, node_id: Any) -> bytes:
        """locust.rpc.protocol.Message(type, data, node_id).serialize()."""
        frame: bytes = self.call("serialize", message_type, data, node_id)
        return frame

    def unserialize(self, frame: bytes) -> tuple[Any, Any, Any]:
        """(msg.type, msg.data, msg.node_id) of locust's Message.unserialize(frame)."""
        message_type, data, node_id = self.call("unserialize", frame)
        return message_type, data, node_id

    def close(self) -> None:
        """Close stdin (the server exits on EOF); kill it if it lingers; always reap it."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def locust_codec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocustCodec]:
    """One Locust codec subprocess for the whole module."""
    stderr_path = tmp_path_factory.mktemp("locust_codec") / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
        )
    codec = LocustCodec(proc, stderr_path)
    try:
        codec.version = codec.read_reply(timeout=STARTUP_TIMEOUT)
        yield codec
    finally:
        codec.close()


def test_locust_is_not_imported_in_this_process() -> None:
    """The gevent monkey-patching of `import locust` must stay out of the pytest process."""
    assert "locust" not in sys.modules
    assert "gevent.monkey" not in sys.modules or not sys.modules["gevent.monkey"].is_module_patched("socket")


def test_server_is_the_reference_locust(locust_codec: LocustCodec) -> None:
    """The subprocess runs the Locust version the harness targets."""
    assert locust_codec.version == LOCUST_VERSION
    assert locust_codec.call("ping") == "pong"
    with pytest.raises(LocustCodecError):
        locust_codec.call("no-such-request")


# --------------------------------------------------------------------------------------------
# Strategies: realistic payloads plus arbitrary msgpack-able values
# --------------------------------------------------------------------------------------------

TAG_KEYS = frozenset({"__datetime__", "__ObjectId__"})
MSGPACK_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False)
UNICODE = st.text(max_size=16)  # hypothesis text covers the whole of unicode (minus surrogates)
# strftime("%Y") does not zero-pad years < 1000, so they do not round-trip (checked separately below).
NAIVE_DATETIMES = st.datetimes(
    min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)
)
MAP_KEYS = st.one_of(UNICODE.filter(lambda k: k not in TAG_KEYS), MSGPACK_INTS)
SCALARS = st.one_of(st.none(), st.booleans(), MSGPACK_INTS, FLOATS, UNICODE, st.binary(max_size=16), NAIVE_DATETIMES)
ANY_PAYLOAD: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(MAP_KEYS, children, max_size=4)),
    max_leaves=20,
)

COUNTS = st.dictionaries(st.sampled_from(["DemoUser", "ApiUser", "Ünïcødé"]), st.integers(0, 10_000), max_size=3)
EPOCH = st.floats(1.7e9, 1.9e9)
EPOCH_SECONDS = st.integers(1_700_000_000, 1_900_000_000)


def _stats_entry(name: st.SearchStrategy[str], method: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "name": name,
            "method": method,
            "last_request_timestamp": st.one_of(st.none(), EPOCH),
            "start_time": EPOCH,
            "num_requests": st.integers(0, 10**9),
            "num_none_requests": st.integers(0, 10**6),
            "num_failures": st.integers(0, 10**9),
            "total_response_time": st.one_of(st.integers(0, 10**12), st.floats(0, 1e12)),
            "max_response_time": st.one_of(st.integers(0, 10**6), st.floats(0, 1e6)),
            "min_response_time": st.one_of(st.none(), st.integers(0, 10**6), st.floats(0, 1e6)),
            "total_content_length": st.integers(0, 2**40),
            "response_times": st.dictionaries(st.integers(0, 10**6), st.integers(1, 10**6), max_size=6),
            "num_reqs_per_sec": st.dictionaries(EPOCH_SECONDS, st.integers(0, 10**5), max_size=4),
            "num_fail_per_sec": st.dictionaries(EPOCH_SECONDS, st.integers(0, 10**5), max_size=4),
        }
    )


STATS = st.fixed_dictionaries(
    {
        "stats": st.lists(
            _stats_entry(st.sampled_from(["/ok", "/fail", "/ünï"]) | UNICODE, st.sampled_from(["GET", "POST"])), max_size=3
        ),
        "stats_total": _stats_entry(st.just("Aggregated"), st.just("")),
        "errors": st.dictionaries(
            st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
            st.fixed_dictionaries(
                {
                    "name": UNICODE,
                    "method": st.sampled_from(["GET", "POST"]),
                    "error": UNICODE,
                    "occurrences": st.integers(1, 10**6),
                    "first_seen": st.one_of(st.none(), EPOCH),
                    "last_seen": st.one_of(st.none(), EPOCH),
                }
            ),
            max_size=2,
        ),
        "user_classes_count": COUNTS,
        "user_count": st.integers(0, 10**5),
    }
)
HEARTBEAT = st.fixed_dictionaries(
    {
        "state": st.sampled_from(["ready", "spawning", "running"]),
        "current_cpu_usage": st.floats(0, 100),
        "current_memory_usage": st.integers(0, 2**40),
    }
)
SPAWN = st.fixed_dictionaries(
    {
        "timestamp": EPOCH,
        "user_classes_count": COUNTS,
        "host": st.one_of(st.none(), UNICODE),
        "stop_timeout": st.one_of(st.none(), st.floats(0, 600)),
        "parsed_options": st.dictionaries(UNICODE.filter(lambda k: k not in TAG_KEYS), ANY_PAYLOAD, max_size=6),
    }
)
CUSTOM = st.fixed_dictionaries({"echo": ANY_PAYLOAD, "when": NAIVE_DATETIMES})  # like run A's demo_to_master

TYPED_PAYLOADS = st.one_of(
    st.tuples(st.just("heartbeat"), HEARTBEAT),
    st.tuples(st.just("stats"), STATS),
    st.tuples(st.just("spawn"), SPAWN),
    st.tuples(st.just("client_ready"), st.sampled_from([LOCUST_VERSION, -1])),
    st.tuples(st.just("ack"), st.fixed_dictionaries({"index": st.integers(0, 1000)})),
    st.tuples(st.just("demo_to_master"), CUSTOM),
    st.tuples(st.sampled_from([t.value for t in MessageType]) | UNICODE, ANY_PAYLOAD),
)
NODE_IDS = st.one_of(
    st.builds(
        lambda host, hexid: f"{host}_{hexid}",
        st.sampled_from(["vm", "host-1", "wörker"]),
        st.text("0123456789abcdef", min_size=32, max_size=32),
    ),
    UNICODE,
)


@settings(max_examples=200, deadline=None, database=None)
@given(typed=TYPED_PAYLOADS, node_id=NODE_IDS)
def test_codec_matches_locust_both_directions(locust_codec: LocustCodec, typed: tuple[str, Any], node_id: str) -> None:
    """Our bytes == Locust's bytes; Locust decodes ours like we do; we decode Locust's to the original."""
    message_type, data = typed
    message = Message(message_type, data, node_id)

    ours = encode(message)
    theirs = locust_codec.serialize(message_type, data, node_id)
    assert ours == theirs

    our_view = decode(ours)
    assert locust_codec.unserialize(ours) == (our_view.type, our_view.data, our_view.node_id)
    assert decode(theirs) == message


# --------------------------------------------------------------------------------------------
# Deterministic corner cases
# --------------------------------------------------------------------------------------------

NODE = "vm_fef595e9872f48ce9f832bbaf11b7bae"


@pytest.mark.parametrize(
    "message",
    [
        Message("ack", {"index": 0}, NODE),
        Message("heartbeat", {"state": "ready", "current_cpu_usage": 0.0, "current_memory_usage": 0}, NODE),
        Message("heartbeat", None, NODE),
        Message("client_ready", "2.47.0", NODE),
        Message("client_ready", -1, NODE),
        Message("demo_to_master", {"when": datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)}, NODE),
        Message("demo_to_worker", {"hello": [1, 2.5, "x"], "none": None}, NODE),
        Message("stats", {"response_times": {12: 4, 1000: 1}, "num_reqs_per_sec": {1795736686: 1}}, NODE),
        Message("x", {"big": 2**64 - 1, "small": -(2**63), "inf": float("inf"), "bin": b"\x00\xff"}, ""),
    ],
    ids=lambda m: m.type,
)
def test_spec_examples_are_byte_identical(locust_codec: LocustCodec, message: Message) -> None:
    """The documented sample messages pack identically and cross-decode."""
    frame = encode(message)
    assert locust_codec.serialize(message.type, message.data, message.node_id) == frame
    assert locust_codec.unserialize(frame) == (message.type, message.data, message.node_id)


def test_old_years_are_garbled_identically(locust_codec: LocustCodec) -> None:
    """Year < 1000 is not zero-padded by strftime: both codecs turn 0999-01-02 into the same wrong date."""
    when = datetime.datetime(999, 1, 2, 3, 4, 5, 6)
    frame = encode(Message("x", when, "w"))
    assert locust_codec.serialize("x", when, "w") == frame
    ours = decode(frame).data
    assert locust_codec.unserialize(frame)[1] == ours
    assert ours != when


@pytest.mark.parametrize(
    ("frame", "rule"),
    [
        (b"", "codec.empty"),
        (b"\xc1", "codec.not-msgpack"),
        (b"\x93\xa3ack", "codec.not-msgpack"),
        (msgpack.packb(["heartbeat", None, "w"]) + b"\xc1GARBAGE", "codec.trailing-bytes"),
        (b"\x93\xa3ack\xa1\xff\xa1w", "codec.utf8"),
        (msgpack.packb(["x", {"__datetime__": True, "as_str": "yesterday"}, "w"]), "codec.ext-hook"),
        (msgpack.packb(["ack", None]), "codec.arity"),
        (msgpack.packb(["ack", None, "w", 1]), "codec.arity"),
        (msgpack.packb(7), "codec.envelope"),
    ],
)
def test_frames_locust_also_rejects(locust_codec: LocustCodec, frame: bytes, rule: str) -> None:
    """Where we raise MalformedFrame, Locust's unserialize raises too."""
    with pytest.raises(MalformedFrame) as info:
        decode(frame)
    assert info.value.rule == rule
    with pytest.raises(LocustCodecError):
        locust_codec.unserialize(frame)


@pytest.mark.parametrize(
    ("frame", "locust_view", "rule"),
    [
        (msgpack.packb("abc"), ("a", "b", "c"), "codec.envelope"),
        (msgpack.packb({"t": 1, "d": 2, "n": 3}), ("t", "d", "n"), "codec.envelope"),
        (msgpack.packb([b"ack", None, "w"]), (b"ack", None, "w"), "codec.type-field"),
        (msgpack.packb(["ack", None, 5]), ("ack", None, 5), "codec.node-id"),
    ],
)
def test_frames_only_we_reject(locust_codec: LocustCodec, frame: bytes, locust_view: tuple[Any, Any, Any], rule: str) -> None:
    """Locust's Message(*loads(buf)) is lenient here; our decoder is strict and names the rule."""
    assert locust_codec.unserialize(frame) == locust_view
    with pytest.raises(MalformedFrame) as info:
        decode(frame)
    assert info.value.rule == rule
