"""Waiting for what workers send, for scripts and cases: the next received message, expected or not.

``TraceWaits`` searches the trace from a cursor (a sequence number) that each match moves on, so a script's
``expect`` steps read the traffic in order. Any thread; the trace wakes waiters as records arrive.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.clock import Clock
from harness.errors import ExpectationFailed
from harness.trace import Kind, Trace, TraceRecord

Predicate = Callable[[TraceRecord], bool]
HANDSHAKE_NOTE = "connection handshake succeeded"  # fakemaster.socket_monitor's note for a connection that is up


class TraceWaits:
    """Waits over one trace's RECV records after ``cursor``."""

    def __init__(self, trace: Trace, clock: Clock) -> None:
        self.trace = trace
        self.clock = clock
        self.cursor = 0  # expect() searches records after this sequence number

    def wait_for(
        self, message_type: str | None = None, within: float = 5.0, where: Predicate | None = None, after: int | None = None
    ) -> TraceRecord | None:
        """The next received message of ``message_type`` matching ``where`` after the cursor, or None.

        With ``after``, the search starts there and the cursor stays put; otherwise a match moves it past.
        """
        since = self.cursor if after is None else after

        def match(r: TraceRecord) -> bool:
            return (
                r.kind is Kind.RECV
                and r.message is not None
                and (message_type is None or r.message.type == message_type)
                and (where is None or where(r))
            )

        found = self.trace.wait_for(match, since, within, self.clock.now)
        if found is not None and after is None:
            self.cursor = found.seq + 1
        return found

    def expect(
        self, message_type: str, within: float = 5.0, where: Predicate | None = None, description: str = ""
    ) -> TraceRecord:
        """Like ``wait_for`` but a miss raises ExpectationFailed naming what was seen instead."""
        since = self.cursor
        found = self.wait_for(message_type, within, where)
        if found is None:
            seen = [r.message.type for r in self.trace.records(since) if r.kind is Kind.RECV and r.message]
            summary = ", ".join(seen[-12:]) or "nothing"
            want = f"{message_type}{' ' + description if description else ''}"
            raise ExpectationFailed(f"expect.{message_type}", f"{want} within {within:g} s", f"{len(seen)} messages: {summary}")
        return found

    def expect_connection(self, within: float) -> TraceRecord:
        """A new connection's completed ZMTP handshake (the socket monitor's note) after the master's last send: a
        worker answering ``reconnect`` connects again. The cursor moves past it, so a later ``expect`` reads only
        what came once the new connection was up (nothing, if it lost the race for its identity)."""
        records = self.trace.records()
        since = next((r.seq + 1 for r in reversed(records) if r.kind is Kind.SEND), self.cursor)

        def match(r: TraceRecord) -> bool:
            return r.kind is Kind.NOTE and r.note.startswith(HANDSHAKE_NOTE)

        found = self.trace.wait_for(match, since, within, self.clock.now)
        if found is None:
            raise ExpectationFailed(
                "expect.connection",
                f"a new connection (its ZMTP handshake) within {within:g} s of the master's last message",
                "none: the worker kept its old connection",
            )
        self.cursor = max(self.cursor, found.seq + 1)
        return found

    def expect_none(self, message_type: str, within: float, where: Predicate | None = None) -> None:
        """Raise ExpectationFailed if a matching message arrives within ``within`` seconds (the cursor stays put)."""
        found = self.wait_for(message_type, within, where, after=self.cursor)
        if found is not None:
            raise ExpectationFailed(
                f"expect-none.{message_type}",
                f"no {message_type} for {within:g} s",
                f"{message_type} at t={found.t - self.trace.t0:.3f}",
            )
