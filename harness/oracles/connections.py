"""The worker's TCP connections as the fake master's socket monitor noted them, and the identity race they can show.

A ROUTER without ROUTER_HANDOVER (the real master's, and the fake master's) keeps the first connection of an
identity: a second connection whose identity is still attached is ignored for good, and nothing sent on it ever
arrives. A worker that answers ``reconnect`` by connecting again with the same identity before the master has
dropped its old connection loses that race (Locust 2.47's own worker sometimes does: it reconnects at once). The
monitor's notes (``fakemaster.socket_monitor``) come in the order libzmq's I/O thread saw the events: "the new
connection's handshake came before the old one's disconnect" is read off them. The ROUTER lets go of the old
connection on its own thread, a little later, so a new connection that comes up within ``RACE_WINDOW`` of the old
one's end loses too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.trace import Kind, TraceRecord

_ACCEPTED = re.compile(r"connection accepted fd=(?P<fd>-?\d+) peer=(?P<peer>\S+)")
_DISCONNECTED = re.compile(r"connection disconnected fd=(?P<fd>-?\d+) peer=(?P<peer>\S+)")
_HANDSHAKE = "connection handshake succeeded"
_HANDSHAKE_FAILED = "connection handshake failed"
_ROUTER_CLOSED = "ROUTER closed"  # a restart's or a death's fault note: every connection ends with it
_ROUTER_REBOUND = "ROUTER rebound"  # the end of a restart's down time


@dataclass
class Connection:
    """One accepted TCP connection; times on the trace clock, ``None`` for what never happened while recorded."""

    fd: int
    peer: str
    accepted: float
    handshake: float | None = None  # when its ZMTP handshake succeeded
    handshake_seq: int | None = None
    closed: float | None = None
    closed_seq: int | None = None
    failed: bool = False  # its handshake failed


def connections(records: Iterable[TraceRecord]) -> list[Connection]:
    """Every connection the monitor noted, in the order they were accepted.

    A handshake event names no connection: it belongs to the oldest accepted one whose handshake is still pending
    (libzmq handshakes in order on its one I/O thread).
    """
    found: list[Connection] = []
    open_by_fd: dict[int, Connection] = {}
    closed_at: TraceRecord | None = None  # the ROUTER is closed (a restart's down time, or death) since this record
    for r in records:
        if r.kind is Kind.FAULT and _ROUTER_CLOSED in r.note:
            closed_at = r
            for conn in open_by_fd.values():
                conn.closed, conn.closed_seq = r.t, r.seq
            open_by_fd.clear()
            continue
        if r.kind is Kind.FAULT and _ROUTER_REBOUND in r.note:
            closed_at = None
            continue
        if r.kind is not Kind.NOTE or not r.note.startswith("connection "):
            continue
        if closed_at is not None:
            # The closed ROUTER's last events, noted after the fault note that closed it: that ROUTER's, and gone.
            if match := _ACCEPTED.match(r.note):
                found.append(Connection(int(match["fd"]), match["peer"], r.t, closed=closed_at.t, closed_seq=closed_at.seq))
            continue
        if match := _ACCEPTED.match(r.note):
            conn = Connection(int(match["fd"]), match["peer"], r.t)
            found.append(conn)
            open_by_fd[conn.fd] = conn
        elif match := _DISCONNECTED.match(r.note):
            gone = open_by_fd.pop(int(match["fd"]), None)
            if gone is not None:
                gone.closed, gone.closed_seq = r.t, r.seq
        elif r.note.startswith((_HANDSHAKE, _HANDSHAKE_FAILED)):
            pending = next((c for c in found if c.handshake is None and not c.failed and c.closed is None), None)
            if pending is None:
                continue
            if r.note.startswith(_HANDSHAKE_FAILED):
                pending.failed = True
            else:
                pending.handshake, pending.handshake_seq = r.t, r.seq
    return found


@dataclass(frozen=True)
class IdentityRace:
    """A connection that came up while an older one was still attached, or within ``RACE_WINDOW`` of its end, and
    what arrived after it came up."""

    new: Connection
    old: Connection
    overlapping: bool  # the old one was still open at the new one's handshake (else: it had just closed)
    received_after: int  # messages received after the new connection's handshake

    def describe(self, t0: float) -> str:
        """Evidence, on the case's clock."""
        assert self.new.handshake is not None
        came = f"its new connection ({self.new.peer}) completed the ZMTP handshake at t={self.new.handshake - t0:.3f}"
        if self.overlapping or self.old.closed is None:
            closed = f"closed at t={self.old.closed - t0:.3f}" if self.old.closed is not None else "still open at the end"
            when = f"while its old one ({self.old.peer}) was still open ({closed})"
        else:
            when = (
                f"{self.new.handshake - self.old.closed:.3f} s after its old one ({self.old.peer}) closed, within the "
                f"{RACE_WINDOW:g} s in which the master's ROUTER takes both in one turn and still holds the identity"
            )
        return f"{came} {when}; {self.received_after} message(s) arrived after that"


# A new connection that comes up this soon after the old one's end meets a ROUTER that has not yet let go of the
# identity: libzmq drops the old connection on the ROUTER's own thread, in the same turn as it attaches the new one
# (seen with Locust's worker: disconnect, accept and handshake noted in the same millisecond, then nothing). Our
# reference worker waits 50 ms before it connects again, well outside.
RACE_WINDOW = 0.02


def identity_race(records: list[TraceRecord], since: float) -> IdentityRace | None:
    """The first connection handshaken at or after ``since`` while an older handshaken one was still open, or
    within ``RACE_WINDOW`` seconds of its end.

    The monitor names no identity: this reads a trace of one worker (a catalog case's). With several workers,
    any two connections open at once would look alike.
    """
    conns = connections(records)
    for new in conns:
        if new.handshake is None or new.handshake < since or new.handshake_seq is None:
            continue
        at = new.handshake_seq
        for old in conns:
            if old is new or old.handshake_seq is None or old.handshake_seq >= at:
                continue
            overlapping = old.closed_seq is None or old.closed_seq > at
            if overlapping or (old.closed is not None and new.handshake - old.closed <= RACE_WINDOW):
                received = sum(1 for r in records if r.kind is Kind.RECV and r.seq > at)
                return IdentityRace(new, old, overlapping, received)
    return None
