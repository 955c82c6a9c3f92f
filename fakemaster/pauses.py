"""Pauses that keep the fake master's ROUTER open: reading paused (the workers' sends pile up) and silence.

A pause in reading turns ``ROUTER_HANDOVER`` on for its span (see ``Pauses._set_handover``); a silence leaves
heartbeats unanswered while everything else goes on. Each is a FAULT window (``harness.trace.window_note``)
ended by a call or after the given time (``Pauses`` is a ``socket_loop.Timer``). Owner thread only.
"""

from __future__ import annotations

import zmq

from fakemaster.socket_loop import SocketLoop
from harness.trace import window_note


class Pauses:
    """Reading pauses and heartbeat silences of one ``SocketLoop``, with their scheduled ends."""

    def __init__(self, loop: SocketLoop) -> None:
        self._loop = loop
        self._resume_at: float | None = None
        self._silence_until: float | None = None

    def pause_reading(self, seconds: float | None) -> None:
        """Stop reading the ROUTER, for ``seconds`` or until ``resume_reading``."""
        loop = self._loop
        now = loop.clock.now()
        if loop.owner.reading:
            loop.fault_note(window_note("pause-reading", "start", "until resumed" if seconds is None else f"for {seconds:g} s"))
            self._set_handover(True)
        loop.owner.reading = False
        self._resume_at = None if seconds is None else now + seconds

    def resume_reading(self) -> None:
        """Read the ROUTER again (no-op if reading)."""
        self._resume_at = None
        loop = self._loop
        if not loop.owner.reading:
            self._set_handover(False)
            loop.owner.reading = True
            loop.fault_note(window_note("pause-reading", "end"))

    def silence(self, seconds: float | None) -> None:
        """Stop answering heartbeats, for ``seconds`` or until ``end_silence``."""
        loop = self._loop
        if not loop.silenced:
            loop.fault_note(window_note("master-silence", "start", "until ended" if seconds is None else f"for {seconds:g} s"))
        loop.silenced = True
        self._silence_until = None if seconds is None else loop.clock.now() + seconds

    def end_silence(self) -> None:
        """Answer heartbeats again (no-op if not silenced)."""
        self._silence_until = None
        if self._loop.silenced:
            self._loop.silenced = False
            self._loop.fault_note(window_note("master-silence", "end"))

    def next_deadline(self) -> float | None:
        """The scheduled end of a pause or a silence, whichever comes first."""
        resume, silence_end = self._resume_at, self._silence_until
        if resume is None or (silence_end is not None and silence_end < resume):
            return silence_end
        return resume

    def on_deadline(self, now: float) -> None:
        """End the pause and the silence that are due."""
        if self._resume_at is not None and now >= self._resume_at:
            self.resume_reading()
        if self._silence_until is not None and now >= self._silence_until:
            self.end_silence()

    def _set_handover(self, on: bool) -> None:
        """ROUTER_HANDOVER while reading is paused.

        A connection keeps its identity until its unread messages are read, and a ROUTER without handover
        (Locust's) rejects a reconnecting peer with that identity for good: a pause across a worker's
        reconnect would cut the worker off, the harness's doing. Reading normally, the fake master is
        exactly as strict as Locust's. The loop reads messages left on a replaced connection as from the
        identity it had (``SocketLoop._original_identity``).
        """
        loop = self._loop
        if loop.owner.socket is not None:
            loop.owner.socket.setsockopt(zmq.ROUTER_HANDOVER, int(on))
            loop.handed_over = loop.handed_over or on
