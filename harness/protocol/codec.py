"""Encoding and decoding of Locust messages, byte-identical to ``locust/rpc/protocol.py``.

A message on the wire is one msgpack array ``[type, data, node_id]`` packed with
msgpack's defaults (``use_bin_type=True``) and unpacked with ``raw=False`` and
``strict_map_key=False``. Datetimes and bson ObjectIds travel as tagged maps
(``{"__datetime__": True, "as_str": ...}``), and the unpack ``object_hook`` is
applied to every map, exactly as Locust does.

Where Locust is accidentally lenient (``Message(*loads(buf))`` accepts any
3-item iterable, e.g. a 3-character string or a 3-key map) we are strict and
report a ``MalformedFrame`` that names the rule.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import msgpack

from harness.errors import MalformedFrame
from harness.protocol.messages import Message

DATETIME_FORMAT = "%Y%m%dT%H:%M:%S.%f"

# Frames above this size are rejected before msgpack sees them. Locust sets no
# limit; 64 MiB is far above any legitimate message (a stats report with 300
# histogram buckets per entry is a few kB) and bounds the harness's memory.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ObjectIdRef:
    """A bson ObjectId seen on the wire, kept as its string (bson is optional)."""

    as_str: str


class _HookError(Exception):
    """Raised inside the msgpack object hook; converted to MalformedFrame."""


def _encode_ext(obj: Any) -> Any:
    if isinstance(obj, datetime.datetime):
        return {"__datetime__": True, "as_str": obj.strftime(DATETIME_FORMAT)}
    if isinstance(obj, ObjectIdRef):
        return {"__ObjectId__": True, "as_str": obj.as_str}
    return obj


def _decode_ext(obj: dict[Any, Any]) -> Any:
    try:
        if "__datetime__" in obj:
            return datetime.datetime.strptime(obj["as_str"], DATETIME_FORMAT)
        if "__ObjectId__" in obj:
            return ObjectIdRef(str(obj["as_str"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _HookError(f"bad tagged map {obj!r}: {exc!r}") from exc
    return obj


def encode(message: Message) -> bytes:
    """Pack a message exactly as ``locust.rpc.protocol.Message.serialize`` does."""
    packed: bytes = msgpack.packb((message.type, message.data, message.node_id), default=_encode_ext)
    return packed


def encode_parts(message_type: Any, data: Any, node_id: Any) -> bytes:
    """Pack an envelope without validating its parts (for deliberately odd frames)."""
    packed: bytes = msgpack.packb((message_type, data, node_id), default=_encode_ext)
    return packed


def _malformed(exc: BaseException) -> MalformedFrame:
    """The MalformedFrame for an exception raised while unpacking a frame."""
    if isinstance(exc, msgpack.ExtraData):
        return MalformedFrame("codec.trailing-bytes", "exactly one msgpack object per frame", "trailing bytes after the message")
    if isinstance(exc, UnicodeDecodeError):
        return MalformedFrame("codec.utf8", "msgpack str values in valid UTF-8", f"invalid UTF-8 ({exc.reason})")
    if isinstance(exc, _HookError):
        return MalformedFrame("codec.ext-hook", "a well-formed __datetime__/__ObjectId__ map", str(exc))
    return MalformedFrame("codec.not-msgpack", "a complete msgpack object", f"{type(exc).__name__}: {exc}")


# Everything unpacking may raise on bad input (ExtraData and UnicodeDecodeError are ValueErrors).
_UNPACK_ERRORS = (_HookError, ValueError, TypeError, msgpack.UnpackException, RecursionError)


def _check_size(frame: bytes, max_frame_bytes: int) -> None:
    if len(frame) > max_frame_bytes:
        raise MalformedFrame("codec.size", f"a frame of at most {max_frame_bytes} bytes", f"{len(frame)} bytes")
    if not frame:
        raise MalformedFrame("codec.empty", "one msgpack array [type, data, node_id]", "an empty frame")


def unpack(frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """Unpack a frame with Locust's options, mapping every failure to a MalformedFrame."""
    _check_size(frame, max_frame_bytes)
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False, object_hook=_decode_ext)
    except _UNPACK_ERRORS as exc:
        raise _malformed(exc) from None


_new_object = object.__new__
_set_type = Message.__dict__["type"].__set__  # the slot descriptors of a slots dataclass
_set_data = Message.__dict__["data"].__set__
_set_node_id = Message.__dict__["node_id"].__set__


def _message(message_type: str, data: Any, node_id: str) -> Message:
    """``Message(message_type, data, node_id)``, filled through its slots (the hot path of every received frame).

    The frozen dataclass's own ``__init__`` costs a Python frame and an ``object.__setattr__`` per field.
    """
    message: Message = _new_object(Message)
    _set_type(message, message_type)
    _set_data(message, data)
    _set_node_id(message, node_id)
    return message


def decode(frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decode one frame into a Message, or raise MalformedFrame naming the rule broken."""
    if not 0 < len(frame) <= max_frame_bytes:
        _check_size(frame, max_frame_bytes)
    # The object hook only changes a map with a "__datetime__" or "__ObjectId__" key, whose UTF-8 bytes are then in
    # the frame: without "__" in it, no map can match and the hook (a Python call per map) is left out.
    hook = _decode_ext if b"__" in frame else None
    try:  # unpack(), inlined: this runs for every frame the fake master and the reference worker receive
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=False, object_hook=hook)
    except _UNPACK_ERRORS as exc:
        raise _malformed(exc) from None
    if type(obj) is list and len(obj) == 3:  # the common case, inlined (msgpack returns exact list and str types)
        message_type, data, node_id = obj
        if type(message_type) is str and type(node_id) is str:
            message: Message = _new_object(Message)
            _set_type(message, message_type)
            _set_data(message, data)
            _set_node_id(message, node_id)
            return message
    if not isinstance(obj, list):
        raise MalformedFrame("codec.envelope", "a msgpack array [type, data, node_id]", f"a {type(obj).__name__}")
    if len(obj) != 3:
        raise MalformedFrame("codec.arity", "an array of exactly 3 items", f"an array of {len(obj)} items")
    message_type, data, node_id = obj
    if not isinstance(message_type, str):
        raise MalformedFrame(
            "codec.type-field", "the message type as a msgpack str", f"{type(message_type).__name__} {message_type!r}"
        )
    if not isinstance(node_id, str):
        raise MalformedFrame("codec.node-id", "node_id as a msgpack str", f"{type(node_id).__name__} {node_id!r}")
    return _message(message_type, data, node_id)
