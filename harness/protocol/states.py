"""The worker's protocol state machine, as ONE transition table.

Rule 1: every transition of a worker's protocol phase lives in ``TRANSITIONS``.
The reference worker drives itself from it, the oracles judge a worker's trace
against it, and reports can draw it. Nothing else may encode a transition.

Rule 2: the table is written from the worker's point of view. Events are
``Recv*`` (a message the worker received) or ``Sent*`` (a message the worker
sent), plus ``MASTER_SILENT`` (the master-heartbeat timeout expired).

Phases are finer than the state string a worker reports in its heartbeats:
``REPORTED_STATES`` says which wire states each phase may report (Locust keeps
reporting ``running`` while it waits out ``stop_timeout`` after a stop).
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    CONNECTING = "connecting"  # client_ready sent, no ack yet
    READY = "ready"
    SPAWNING = "spawning"
    RUNNING = "running"
    STOPPING = "stopping"  # stop received, users stopping, client_stopped not yet sent
    COOLDOWN = "cooldown"  # client_stopped sent, waiting stop_timeout before client_ready
    QUITTING = "quitting"  # quit received or master lost: final stats, then quit
    EXITED = "exited"  # quit sent


class Event(enum.StrEnum):
    SENT_CLIENT_READY = "sent client_ready"
    RECV_ACK = "recv ack"
    RECV_SPAWN = "recv spawn"
    RECV_STALE_SPAWN = "recv stale spawn"
    SENT_SPAWNING_COMPLETE = "sent spawning_complete"
    RECV_STOP = "recv stop"
    SENT_CLIENT_STOPPED = "sent client_stopped"
    RECV_QUIT = "recv quit"
    MASTER_SILENT = "master silent"
    SENT_QUIT = "sent quit"


P, E = Phase, Event
_ACTIVE = (P.READY, P.SPAWNING, P.RUNNING)

TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (P.CONNECTING, E.SENT_CLIENT_READY): P.CONNECTING,  # retry until acked
    (P.CONNECTING, E.RECV_ACK): P.READY,
    **{(p, E.RECV_ACK): p for p in (*_ACTIVE, P.STOPPING, P.COOLDOWN, P.QUITTING)},  # late or duplicate acks change nothing
    **{(p, E.RECV_SPAWN): P.SPAWNING for p in _ACTIVE},
    **{(p, E.RECV_STALE_SPAWN): p for p in _ACTIVE},
    (P.SPAWNING, E.SENT_SPAWNING_COMPLETE): P.RUNNING,
    **{(p, E.RECV_STOP): P.STOPPING for p in _ACTIVE},
    (P.STOPPING, E.SENT_CLIENT_STOPPED): P.COOLDOWN,
    (P.COOLDOWN, E.SENT_CLIENT_READY): P.READY,
    **{(p, E.RECV_QUIT): P.QUITTING for p in (P.CONNECTING, *_ACTIVE, P.STOPPING, P.COOLDOWN)},
    **{(p, E.MASTER_SILENT): P.QUITTING for p in (*_ACTIVE, P.STOPPING, P.COOLDOWN)},
    **{(p, E.SENT_QUIT): P.EXITED for p in (P.CONNECTING, *_ACTIVE, P.STOPPING, P.COOLDOWN, P.QUITTING)},
}

_ALL_WIRE = frozenset({"ready", "spawning", "running"})
REPORTED_STATES: dict[Phase, frozenset[str]] = {
    P.CONNECTING: frozenset(),  # Locust starts heartbeating only after the ack
    P.READY: frozenset({"ready"}),
    P.SPAWNING: frozenset({"spawning"}),
    P.RUNNING: frozenset({"running"}),
    P.STOPPING: _ALL_WIRE,  # the previous state is kept until client_ready
    P.COOLDOWN: _ALL_WIRE,
    P.QUITTING: _ALL_WIRE,
    P.EXITED: frozenset(),
}

# Phases in which a worker processes the master's messages as they arrive. In the
# others Locust's message loop is blocked (it sleeps out stop_timeout), so messages
# other than quit/reconnect/heartbeat wait until the worker is ready again.
DEFERS_MESSAGES = frozenset({P.STOPPING, P.COOLDOWN})


def next_phase(phase: Phase, event: Event) -> Phase | None:
    """The phase after ``event`` in ``phase``, or None if the table has no such transition."""
    return TRANSITIONS.get((phase, event))


def wire_state(phase: Phase, previous: str) -> str:
    """The state string a Locust-like worker reports in ``phase`` (keeping ``previous`` where Locust does)."""
    allowed = REPORTED_STATES[phase]
    if len(allowed) == 1:
        return next(iter(allowed))
    return previous if previous in allowed else "ready"
