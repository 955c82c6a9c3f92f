"""Connection notes from a ZeroMQ socket monitor on the fake master's ROUTER.

``ConnectionMonitor`` watches the ROUTER's monitor socket on the owner thread and notes each event in the
trace: ``connection accepted``/``connection disconnected`` (with the peer's address), and the end of each
ZMTP handshake, named (an errno, a ZMTP protocol error, a ZAP status) when it failed.
"""

from __future__ import annotations

import socket as pysocket
import struct
from collections.abc import Callable

import zmq

from harness.owner import RECV_BATCH, SocketOwner
from harness.zmq_errors import errno_name

# ZMTP protocol errors a failed handshake reports (EVENT_HANDSHAKE_FAILED_PROTOCOL's value), by number.
PROTOCOL_ERRORS = {int(getattr(zmq, n)): n.removeprefix("PROTOCOL_ERROR_") for n in dir(zmq) if n.startswith("PROTOCOL_ERROR_")}
MONITOR_EVENTS = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def handshake_failure(event: int, value: int) -> str:
    """What a failed-handshake event says: its kind and its value named (an errno, a ZMTP protocol error, a ZAP status)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return f"no detail, errno {value} {errno_name(value) or 'unknown'}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return f"ZMTP protocol error {PROTOCOL_ERRORS.get(value, hex(value))}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"authentication failed, ZAP status {value}"
    return f"event {event}, value {value}"


def peer_name(fd: int) -> str:
    """The remote address of a connection's file descriptor, best effort (it may be gone already)."""
    try:
        with pysocket.fromfd(fd, pysocket.AF_INET, pysocket.SOCK_STREAM) as dup:
            host, port = dup.getpeername()[:2]
            return f"{host}:{port}"
    except (OSError, ValueError):
        return "unknown"


class ConnectionMonitor:
    """The monitor of one ROUTER at a time (a restart attaches it to the new one); owner thread only."""

    def __init__(self, owner: SocketOwner, note: Callable[[str], None]) -> None:
        self._owner = owner
        self._note = note
        self._socket: zmq.Socket[bytes] | None = None
        self._generation = 0  # each ROUTER's monitor gets an inproc address of its own
        self._peers: dict[int, str] = {}  # fd -> peer address, while connected

    def attach(self, router: zmq.Socket[bytes]) -> None:
        """Monitor ``router`` (just bound) and have the owner thread read its events."""
        self._generation += 1
        self._socket = router.get_monitor_socket(MONITOR_EVENTS, f"inproc://fakemaster-monitor-{id(self)}-{self._generation}")
        self._owner.watch(self._socket, self.read_events)

    def detach(self, router: zmq.Socket[bytes] | None) -> None:
        """Note what happened before ``router`` closes, then stop monitoring it (no-op if not attached)."""
        if self._socket is None:
            return
        self.read_events(self._socket)
        self._owner.unwatch(self._socket)
        if router is not None:
            router.disable_monitor()
        self._socket.close(linger=0)
        self._socket = None
        self._peers.clear()

    def read_events(self, monitor: zmq.Socket[bytes]) -> None:
        """Note up to RECV_BATCH queued events (the owner thread's handler for the monitor socket)."""
        for _ in range(RECV_BATCH):
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2 or len(frames[0]) != 6:
                self._note(f"socket monitor: unreadable event {[f.hex() for f in frames]}")
                continue
            event, value = struct.unpack("=hi", frames[0])
            endpoint = frames[1].decode("utf-8", "replace")
            if event == zmq.EVENT_ACCEPTED:
                self._peers[value] = peer_name(value)
                self._note(f"connection accepted fd={value} peer={self._peers[value]} endpoint={endpoint}")
            elif event == zmq.EVENT_DISCONNECTED:
                self._note(f"connection disconnected fd={value} peer={self._peers.pop(value, 'unknown')} endpoint={endpoint}")
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # its value is no fd: with one peer it is that peer's
                peers = ",".join(sorted(set(self._peers.values()))) or "unknown"
                self._note(f"connection handshake succeeded (ZMTP) peers={peers} endpoint={endpoint}")
            else:
                self._note(f"connection handshake failed ({handshake_failure(event, value)}) endpoint={endpoint}")
