"""The fake master going down: a restart (the ROUTER closed, every worker forgotten, the port rebound) or death.

While the ROUTER is closed every send fails as SEND_FAILED with the reason in ``SocketLoop.down``, and
whatever the fault plan delayed or held is flushed (and fails) at once. A restart is a ``master-down``
FAULT window whose end is the rebind, retried every ``REBIND_RETRY`` seconds (``Restarts`` is a
``socket_loop.Timer``); death is a ``master-death`` window that never ends. Owner thread only.
"""

from __future__ import annotations

import zmq

from fakemaster.socket_loop import SocketLoop
from harness.errors import ScenarioError
from harness.trace import window_note

REBIND_RETRY = 0.02  # seconds between attempts to rebind the port after a restart
REBIND_ATTEMPTS = 100  # then the master stays down and says so (a harness fault)


class Restarts:
    """Restarts and death of one ``SocketLoop``'s ROUTER, with the pending rebind."""

    def __init__(self, loop: SocketLoop) -> None:
        self._loop = loop
        self._rebind_at: float | None = None
        self._rebind_attempts = 0
        self._dead = False

    def restart(self, down_for: float) -> None:
        """Close the ROUTER, forget every worker, and rebind the same port ``down_for`` seconds later."""
        loop = self._loop
        if self._dead:
            raise ScenarioError("restart: the master is dead (die() was called) and cannot restart")
        if loop.owner.socket is None:
            raise ScenarioError("restart: the master is already down")
        loop.fault_note(
            window_note("master-down", "start", f"restart: ROUTER closed, rebinding port {loop.port} in {down_for:g} s")
        )
        loop.close_router()
        loop.down = down = "master down (restarting)"
        loop.core.forget()  # a restarted master is a new process: no workers, no indexes, a listener that reads
        loop.faults.flush(down)
        self._rebind_at = loop.clock.now() + down_for
        self._rebind_attempts = 0

    def die(self) -> None:
        """Close the ROUTER for good (no-op if dead already); a pending rebind is called off."""
        loop = self._loop
        if self._dead:
            return
        if self._rebind_at is not None or loop.owner.socket is None:
            self._rebind_at = None
            loop.fault_note(window_note("master-down", "end", "superseded by master death"))
        loop.fault_note(window_note("master-death", "start", "ROUTER closed for good"))
        if loop.owner.socket is not None:
            loop.close_router()
        self._dead = True
        loop.down = down = "master dead"
        loop.core.next_tick = None  # a dead master judges nobody
        loop.faults.flush(down)

    def next_deadline(self) -> float | None:
        """When the next attempt to rebind is due, if a restart is under way."""
        return self._rebind_at

    def on_deadline(self, now: float) -> None:
        """Try to rebind, if due."""
        if self._rebind_at is not None and now >= self._rebind_at:
            self._rebind(now)

    def _rebind(self, now: float) -> None:
        loop = self._loop
        try:
            loop.owner.open_socket(loop.bind)
        except zmq.ZMQError as exc:
            self._rebind_attempts += 1
            if self._rebind_attempts < REBIND_ATTEMPTS:
                self._rebind_at = now + REBIND_RETRY
                return
            self._rebind_at = None
            loop.down = f"master down (rebind failed: {exc.strerror})"
            loop.note(f"harness fault: could not rebind {loop.endpoint} after {self._rebind_attempts} attempts: {exc.strerror}")
            return
        self._rebind_at = None
        loop.down = None
        loop.fault_note(window_note("master-down", "end", f"ROUTER rebound on {loop.endpoint} ({self._rebind_attempts} retries)"))
