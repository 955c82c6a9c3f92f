"""The socket monitor's notes read back as connections, and the identity race told from a clean reconnect."""

from __future__ import annotations

import pytest

from harness.oracles import connections, identity_race
from harness.trace import Kind, TraceRecord
from harness.protocol.messages import Message

ENDPOINT = "endpoint=tcp://127.0.0.1:5557"


def _records(*steps: tuple[float, str]) -> list[TraceRecord]:
    """``(t, what)``: a monitor note, ``"recv"`` for a heartbeat received, ``"restart"`` for a closed ROUTER."""
    out = []
    for seq, (t, what) in enumerate(steps):
        if what == "recv":
            out.append(TraceRecord(seq, t, Kind.RECV, "w", Message("heartbeat", None, "w")))
        elif what == "restart":
            out.append(TraceRecord(seq, t, Kind.FAULT, note="master-down start: restart: ROUTER closed, rebinding port"))
        elif what == "rebound":
            out.append(TraceRecord(seq, t, Kind.FAULT, note="master-down end: ROUTER rebound on tcp://127.0.0.1:5557"))
        else:
            out.append(TraceRecord(seq, t, Kind.NOTE, note=f"{what} {ENDPOINT}"))
    return out


FIRST = [
    (0.10, "connection accepted fd=18 peer=127.0.0.1:1000"),
    (0.11, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1000"),
    (0.20, "recv"),
]


RACES = {
    # the new connection's handshake noted before the old one's disconnect (Locust's worker, CI of stop 23)
    "overlap": (
        [
            (3.43, "connection accepted fd=19 peer=127.0.0.1:1001"),
            (3.439, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1000,127.0.0.1:1001"),
            (3.451, "connection disconnected fd=18 peer=127.0.0.1:1000"),
        ],
        ["t=3.439", "closed at t=3.451"],
    ),
    # disconnect, accept and handshake noted in the same millisecond, then nothing (Locust's worker, a later CI)
    "same-moment": (
        [
            (3.426, "connection disconnected fd=18 peer=127.0.0.1:1000"),
            (3.426, "connection accepted fd=18 peer=127.0.0.1:1001"),
            (3.426, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1001"),
        ],
        ["0.000 s after its old one (127.0.0.1:1000) closed"],
    ),
}


@pytest.mark.parametrize("kind", RACES)
def test_a_new_connection_before_or_right_at_the_old_ones_end_is_a_race(kind: str) -> None:
    steps, said = RACES[kind]
    race = identity_race(_records(*FIRST, *steps), since=3.0)
    assert race is not None
    assert (race.old.peer, race.new.peer, race.received_after) == ("127.0.0.1:1000", "127.0.0.1:1001", 0)
    assert all(text in race.describe(0.0) for text in said), race.describe(0.0)


def test_a_reconnect_after_the_old_connection_closed_is_no_race() -> None:
    records = _records(
        *FIRST,
        (3.43, "connection disconnected fd=18 peer=127.0.0.1:1000"),
        (3.48, "connection accepted fd=18 peer=127.0.0.1:1001"),  # the fd is reused; 50 ms later, as our worker
        (3.481, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1001"),
        (3.60, "recv"),
    )
    assert identity_race(records, since=3.0) is None
    conns = connections(records)
    assert [(c.peer, c.closed) for c in conns] == [("127.0.0.1:1000", 3.43), ("127.0.0.1:1001", None)]


def test_only_connections_after_since_count_and_a_failed_handshake_is_none() -> None:
    records = _records(
        *FIRST,
        (0.30, "connection accepted fd=19 peer=127.0.0.1:1001"),
        (0.31, "connection handshake failed (ZMTP protocol error ZMTP_UNEXPECTED_COMMAND)"),
        (0.50, "connection accepted fd=20 peer=127.0.0.1:1002"),
        (0.51, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1000,127.0.0.1:1002"),
        (0.60, "recv"),
    )
    assert connections(records)[1].failed and connections(records)[2].handshake == 0.51
    race = identity_race(records, since=0.4)
    assert race is not None and race.new.peer == "127.0.0.1:1002" and race.received_after == 1
    assert identity_race(records, since=0.6) is None


def test_a_closed_router_ends_every_connection_and_events_noted_after_it_are_its_own() -> None:
    """A restart notes its fault first, then the closed ROUTER's queued monitor events: those connections are gone."""
    records = _records(
        *FIRST,
        (1.0, "restart"),
        (1.001, "connection accepted fd=19 peer=127.0.0.1:1001"),
        (1.002, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1000,127.0.0.1:1001"),
        (2.0, "rebound"),
        (3.0, "connection accepted fd=18 peer=127.0.0.1:1002"),
        (3.01, "connection handshake succeeded (ZMTP) peers=127.0.0.1:1002"),
    )
    assert identity_race(records, since=2.0) is None
    assert [(c.peer, c.closed, c.handshake) for c in connections(records)] == [
        ("127.0.0.1:1000", 1.0, 0.11),
        ("127.0.0.1:1001", 1.0, None),
        ("127.0.0.1:1002", None, 3.01),
    ]
