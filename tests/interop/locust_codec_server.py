"""Serve Locust's own ``Message.serialize``/``unserialize`` over stdin/stdout, for the codec cross-check.

Run as ``python tests/interop/locust_codec_server.py``. It lives in its own process because
``import locust`` monkey-patches the whole interpreter with gevent, which must never happen
inside the pytest process.

Wire format, both directions: a 4-byte big-endian length, then a pickle of that length.

Requests::

    ("serialize", type, data, node_id)   -> ("ok", Message(type, data, node_id).serialize())
    ("unserialize", frame_bytes)         -> ("ok", (msg.type, msg.data, msg.node_id))
    ("ping",)                            -> ("ok", "pong")

Any exception while serving a request is answered with ``("error", repr(exc))``. Right after
start-up the server sends one unsolicited ``("ok", locust.__version__)``. It exits on EOF.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    """Read exactly n bytes, or None on EOF."""
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send(out: BinaryIO, reply: tuple[str, Any]) -> None:
    try:
        payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable decoded value
        payload = pickle.dumps(("error", f"unpicklable reply: {exc!r}"), protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(payload)) + payload)
    out.flush()


def _handle(request: Any, message_cls: Any) -> Any:
    match request:
        case ("serialize", message_type, data, node_id):
            return message_cls(message_type, data, node_id).serialize()
        case ("unserialize", bytes() as frame):
            msg = message_cls.unserialize(frame)
            return (msg.type, msg.data, msg.node_id)
        case ("ping",):
            return "pong"
        case _:
            raise ValueError(f"unknown request {request!r}")


def main() -> int:
    # Keep the protocol channel private: anything that prints to stdout (locust, gevent) goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer

    import locust
    from locust.rpc.protocol import Message

    _send(out, ("ok", locust.__version__))
    while True:
        header = _read_exact(stdin, HEADER.size)
        if header is None:
            return 0
        (length,) = HEADER.unpack(header)
        body = _read_exact(stdin, length)
        if body is None:
            return 0
        try:
            reply: tuple[str, Any] = ("ok", _handle(pickle.loads(body), Message))
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the caller
            reply = ("error", repr(exc))
        _send(out, reply)


if __name__ == "__main__":
    sys.exit(main())
