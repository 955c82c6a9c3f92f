"""Tests of harness.protocol.states: the one transition table and the wire states per phase."""

from __future__ import annotations

import itertools
from collections import deque

import pytest

from harness.protocol.states import (
    DEFERS_MESSAGES,
    REPORTED_STATES,
    TRANSITIONS,
    Event,
    Phase,
    next_phase,
    wire_state,
)

P, E = Phase, Event
WIRE_STATES = frozenset({"ready", "spawning", "running"})
LIVE = (P.CONNECTING, P.READY, P.SPAWNING, P.RUNNING, P.STOPPING, P.COOLDOWN)


def _run(start: Phase, events: list[Event]) -> list[Phase]:
    """Apply events in order; fail on the first missing transition."""
    phases = [start]
    for event in events:
        nxt = next_phase(phases[-1], event)
        assert nxt is not None, f"no transition for ({phases[-1]}, {event})"
        phases.append(nxt)
    return phases


def test_happy_path() -> None:
    """CONNECTING->READY->SPAWNING->RUNNING->STOPPING->COOLDOWN->READY, as in spec §4.1 / §8.3."""
    events = [
        E.SENT_CLIENT_READY,  # a retry while waiting for the ack
        E.RECV_ACK,
        E.RECV_SPAWN,
        E.SENT_SPAWNING_COMPLETE,
        E.RECV_STOP,
        E.SENT_CLIENT_STOPPED,
        E.SENT_CLIENT_READY,
    ]
    assert _run(P.CONNECTING, events) == [
        P.CONNECTING,
        P.CONNECTING,
        P.READY,
        P.SPAWNING,
        P.RUNNING,
        P.STOPPING,
        P.COOLDOWN,
        P.READY,
    ]


def test_ramp_with_several_spawns_and_a_second_run() -> None:
    """Spawns during a ramp, a stale spawn, then a second spawn after the cooldown."""
    events = [
        E.RECV_ACK,
        E.RECV_SPAWN,
        E.SENT_SPAWNING_COMPLETE,
        E.RECV_SPAWN,  # next ramp step
        E.RECV_STALE_SPAWN,
        E.SENT_SPAWNING_COMPLETE,
        E.RECV_ACK,  # late duplicate ack
        E.RECV_STOP,
        E.SENT_CLIENT_STOPPED,
        E.RECV_ACK,
        E.SENT_CLIENT_READY,
        E.RECV_ACK,  # the ack of the post-stop client_ready (the worker does not wait for it)
        E.RECV_SPAWN,
    ]
    assert _run(P.CONNECTING, events)[-6:] == [P.STOPPING, P.COOLDOWN, P.COOLDOWN, P.READY, P.READY, P.SPAWNING]


@pytest.mark.parametrize("phase", LIVE)
def test_quit_from_master_then_sent_quit(phase: Phase) -> None:
    """recv quit -> QUITTING -> sent quit -> EXITED, from every live phase."""
    assert _run(phase, [E.RECV_QUIT, E.SENT_QUIT]) == [phase, P.QUITTING, P.EXITED]


@pytest.mark.parametrize("phase", LIVE)
def test_worker_may_quit_on_its_own(phase: Phase) -> None:
    """SIGTERM: a worker sends quit directly from any live phase."""
    assert next_phase(phase, E.SENT_QUIT) is P.EXITED


@pytest.mark.parametrize("phase", [P.READY, P.SPAWNING, P.RUNNING, P.STOPPING, P.COOLDOWN])
def test_master_silence_leads_to_quitting(phase: Phase) -> None:
    """After the master heartbeat timeout the worker quits (spec §5.3)."""
    assert _run(phase, [E.MASTER_SILENT, E.SENT_QUIT]) == [phase, P.QUITTING, P.EXITED]


def test_connecting_worker_cannot_detect_master_silence() -> None:
    """The timeout checker only arms after a master heartbeat, which needs an ack first."""
    assert next_phase(P.CONNECTING, E.MASTER_SILENT) is None


def test_ack_crossing_a_quit_changes_nothing() -> None:
    """The ack of a post-stop client_ready may arrive after the master's quit."""
    assert next_phase(P.QUITTING, E.RECV_ACK) is P.QUITTING


@pytest.mark.parametrize("phase", [P.READY, P.SPAWNING, P.RUNNING])
def test_stale_spawn_and_late_ack_change_nothing(phase: Phase) -> None:
    """A stale spawn or a duplicate ack keeps the phase."""
    assert next_phase(phase, E.RECV_STALE_SPAWN) is phase
    assert next_phase(phase, E.RECV_ACK) is phase


@pytest.mark.parametrize(
    ("phase", "event"),
    [
        (P.CONNECTING, E.RECV_SPAWN),
        (P.CONNECTING, E.RECV_STOP),
        (P.CONNECTING, E.SENT_SPAWNING_COMPLETE),
        (P.CONNECTING, E.SENT_CLIENT_STOPPED),
        (P.READY, E.SENT_SPAWNING_COMPLETE),
        (P.READY, E.SENT_CLIENT_STOPPED),
        (P.READY, E.SENT_CLIENT_READY),
        (P.RUNNING, E.SENT_SPAWNING_COMPLETE),
        (P.RUNNING, E.SENT_CLIENT_READY),
        (P.RUNNING, E.SENT_CLIENT_STOPPED),
        (P.STOPPING, E.RECV_SPAWN),
        (P.STOPPING, E.SENT_CLIENT_READY),
        (P.COOLDOWN, E.RECV_SPAWN),
        (P.COOLDOWN, E.SENT_CLIENT_STOPPED),
        (P.QUITTING, E.RECV_SPAWN),
        (P.QUITTING, E.MASTER_SILENT),
        (P.QUITTING, E.SENT_CLIENT_READY),
    ],
)
def test_illegal_pairs_return_none(phase: Phase, event: Event) -> None:
    """Pairs missing from the table have no next phase."""
    assert (phase, event) not in TRANSITIONS
    assert next_phase(phase, event) is None


@pytest.mark.parametrize("event", list(Event))
def test_exited_is_terminal(event: Event) -> None:
    """Nothing happens after the worker sent quit."""
    assert next_phase(P.EXITED, event) is None


# The worker's phases as the spec tells them (§3.1, §3.4, §3.5, §3.9, §5.3), written out by hand, not derived from
# TRANSITIONS: every (phase, event) pair not listed has no transition.
SPEC = """
connecting sent client_ready -> connecting | connecting recv ack -> ready | connecting recv quit -> quitting
connecting sent quit -> exited
ready recv ack -> ready | ready recv spawn -> spawning | ready recv stale spawn -> ready | ready recv stop -> stopping
ready recv quit -> quitting | ready master silent -> quitting | ready sent quit -> exited
spawning recv ack -> spawning | spawning recv spawn -> spawning | spawning recv stale spawn -> spawning
spawning sent spawning_complete -> running | spawning recv stop -> stopping | spawning recv quit -> quitting
spawning master silent -> quitting | spawning sent quit -> exited
running recv ack -> running | running recv spawn -> spawning | running recv stale spawn -> running
running recv stop -> stopping | running recv quit -> quitting | running master silent -> quitting
running sent quit -> exited
stopping recv ack -> stopping | stopping sent client_stopped -> cooldown | stopping recv quit -> quitting
stopping master silent -> quitting | stopping sent quit -> exited
cooldown recv ack -> cooldown | cooldown sent client_ready -> ready | cooldown recv quit -> quitting
cooldown master silent -> quitting | cooldown sent quit -> exited
quitting recv ack -> quitting | quitting sent quit -> exited
"""


def _spec() -> dict[tuple[Phase, Event], Phase]:
    table = {}
    for rule in (r.strip() for r in SPEC.replace("\n", "|").split("|") if r.strip()):
        left, target = rule.split(" -> ")
        phase, event = left.split(" ", 1)
        table[(Phase(phase), Event(event))] = Phase(target)
    return table


def test_next_phase_follows_the_spec_on_every_pair() -> None:
    """Every (phase, event) pair, against the transitions written out from the spec above."""
    spec = _spec()
    for phase, event in itertools.product(Phase, Event):
        assert next_phase(phase, event) == spec.get((phase, event)), (phase, event)


def _reachable(start: Phase) -> set[Phase]:
    seen = {start}
    queue = deque([start])
    while queue:
        phase = queue.popleft()
        for (src, _event), dst in TRANSITIONS.items():
            if src is phase and dst not in seen:
                seen.add(dst)
                queue.append(dst)
    return seen


def test_every_phase_is_reachable_from_connecting() -> None:
    """No dead phase in the table."""
    assert _reachable(P.CONNECTING) == set(Phase)


@pytest.mark.parametrize("phase", [p for p in Phase if p is not P.EXITED])
def test_every_phase_can_reach_exited(phase: Phase) -> None:
    """A worker can always end."""
    assert P.EXITED in _reachable(phase)


def test_nothing_leads_back_to_connecting() -> None:
    """CONNECTING is only the start (a re-registration after stop goes COOLDOWN -> READY)."""
    assert all(dst is not P.CONNECTING for (src, _), dst in TRANSITIONS.items() if src is not P.CONNECTING)


def test_deferring_phases_take_no_spawn_or_stop() -> None:
    """While Locust sleeps out stop_timeout, spawn/stop are not processed (spec §3.5)."""
    assert DEFERS_MESSAGES == {P.STOPPING, P.COOLDOWN}
    for phase in DEFERS_MESSAGES:
        for event in (E.RECV_SPAWN, E.RECV_STALE_SPAWN, E.RECV_STOP):
            assert next_phase(phase, event) is None
        assert next_phase(phase, E.RECV_QUIT) is P.QUITTING


def test_reported_states_cover_every_phase_with_wire_states() -> None:
    """Each phase maps to a subset of the three wire states."""
    assert set(REPORTED_STATES) == set(Phase)
    for allowed in REPORTED_STATES.values():
        assert allowed <= WIRE_STATES


@pytest.mark.parametrize(
    ("phase", "allowed"),
    [
        (P.CONNECTING, frozenset()),
        (P.READY, frozenset({"ready"})),
        (P.SPAWNING, frozenset({"spawning"})),
        (P.RUNNING, frozenset({"running"})),
        (P.STOPPING, WIRE_STATES),
        (P.COOLDOWN, WIRE_STATES),
        (P.QUITTING, WIRE_STATES),
        (P.EXITED, frozenset()),
    ],
)
def test_reported_states_per_phase(phase: Phase, allowed: frozenset[str]) -> None:
    """READY reports only "ready", etc.; a stopping worker keeps reporting its previous state."""
    assert REPORTED_STATES[phase] == allowed


def test_phases_named_after_a_wire_state_report_only_it() -> None:
    """Where a phase is named after a wire state, it reports exactly that state."""
    for phase in Phase:
        if phase.value in WIRE_STATES:
            assert REPORTED_STATES[phase] == {phase.value}


@pytest.mark.parametrize(
    ("phase", "previous", "expected"),
    [
        (P.READY, "running", "ready"),
        (P.SPAWNING, "ready", "spawning"),
        (P.RUNNING, "spawning", "running"),
        (P.STOPPING, "running", "running"),  # Locust keeps "running" during the stop (spec §3.5)
        (P.STOPPING, "spawning", "spawning"),
        (P.COOLDOWN, "running", "running"),
        (P.QUITTING, "ready", "ready"),
        (P.STOPPING, "stopped", "ready"),  # never invent a state outside the wire vocabulary
        (P.COOLDOWN, "", "ready"),
    ],
)
def test_wire_state(phase: Phase, previous: str, expected: str) -> None:
    """wire_state reports what a Locust-like worker would, and is always allowed for the phase."""
    state = wire_state(phase, previous)
    assert state == expected
    assert state in REPORTED_STATES[phase]
