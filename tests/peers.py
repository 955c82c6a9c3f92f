"""A raw pyzmq DEALER playing a worker, for tests of the fake master. Every receive has a deadline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import zmq

from fakemaster import FakeMaster

RECV_TIMEOUT = 2.0  # generous deadline for anything that must arrive
SILENCE = 0.25  # how long we listen to conclude that nothing was sent
HEARTBEAT_DATA = {"state": "ready", "current_cpu_usage": 1.5, "current_memory_usage": 1000}


class Peer:
    """A raw DEALER with a fixed identity; every receive has a deadline."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, identity: bytes | str) -> None:
        identity = identity.encode() if isinstance(identity, str) else identity
        self.identity = identity
        self.node_id = identity.decode("utf-8", "replace")
        self.sock: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, message_type: Any, data: Any = None, node_id: Any = None) -> bytes:
        """Pack ``[type, data, node_id]`` (node_id defaults to the identity) and send it; returns the frame."""
        frame: bytes = msgpack.packb((message_type, data, self.node_id if node_id is None else node_id))
        self.sock.send(frame)
        return frame

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def heartbeat(self, state: str = "ready") -> None:
        self.send("heartbeat", {**HEARTBEAT_DATA, "state": state})

    def recv_frames(self, timeout: float = RECV_TIMEOUT) -> list[bytes] | None:
        """The next multipart message, or None if nothing arrives within ``timeout``."""
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        return self.sock.recv_multipart(zmq.NOBLOCK)

    def recv(self, timeout: float = RECV_TIMEOUT) -> list[Any]:
        """The next message decoded as ``[type, data, node_id]``; fails the test on timeout."""
        frames = self.recv_frames(timeout)
        assert frames is not None, f"{self.node_id}: nothing received within {timeout} s"
        assert len(frames) == 1, f"{self.node_id}: expected one frame, got {frames!r}"
        decoded: list[Any] = msgpack.unpackb(frames[0], raw=False, strict_map_key=False)
        return decoded

    def assert_silent(self, within: float = SILENCE) -> None:
        frames = self.recv_frames(within)
        assert frames is None, f"{self.node_id}: expected silence, got {frames!r}"

    def register(self, version: Any = "2.47.0") -> int:
        """client_ready -> ack; returns the index."""
        self.send("client_ready", version)
        reply = self.recv()
        assert reply[0] == "ack" and reply[2] == self.node_id, reply
        index: int = reply[1]["index"]
        return index

    def close(self) -> None:
        self.sock.close(linger=0)


PeerFactory = Callable[..., Peer]


PeerFactory = Callable[[FakeMaster, Any], Peer]


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def make_peer(context: zmq.Context[zmq.Socket[bytes]]) -> Iterator[PeerFactory]:
    """Peers connected to a master; all closed at teardown."""
    peers: list[Peer] = []

    def make(m: FakeMaster, identity: bytes | str) -> Peer:
        peer = Peer(context, m.endpoint, identity)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()
