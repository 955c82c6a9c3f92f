"""The in-memory simulation (harness.simulation): deterministic, judged by the catalog's oracles, and able to
catch the reference worker's protocol-logic defects through a Hypothesis state machine."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings

from harness.mutation import MUTANTS, MUTANTS_BY_DEFECT
from harness.protocol.messages import MessageType
from harness.schedule import Schedule, Step, schedules
from harness.simulation import ACCEPTED, EXIT_CRASH, SIM_TIMING, Simulation, check_simulation, run_machine, simulate
from harness.trace import Kind
from harness.verdicts import Verdict
from worker.defects import DEFECTS, THREADING_DEFECTS

# Defects of the socket design need real threads and sockets: the simulation has neither.
SESSION_DEFECTS = sorted(set(DEFECTS) - set(THREADING_DEFECTS))
# Defects a real master does not mind (graded INFORMATIONAL by consequence) are named, not failed: the state machine,
# which fails on anything worse, cannot catch them; the test below shows the simulation naming them.
NAMED_ONLY = sorted(m.defect for m in MUTANTS if m.verdict is Verdict.INFORMATIONAL and m.defect in SESSION_DEFECTS)
FAILING = [d for d in SESSION_DEFECTS if d not in NAMED_ONLY]


def lifecycle(sim: Simulation) -> Simulation:
    sim.start()
    sim.advance(0.5)
    sim.spawn(3)
    sim.advance(5)
    sim.send(MessageType.STOP)
    sim.advance(3)
    sim.send(MessageType.QUIT)
    sim.advance(7)
    return sim


def test_a_clean_lifecycle_is_judged_ok_by_every_oracle() -> None:
    sim = lifecycle(Simulation())
    assert sim.judge() == []
    assert sim.exit_code == 0
    types = [r.type for r in sim.records if r.kind is Kind.RECV]
    assert types[:2] == [MessageType.CLIENT_READY, MessageType.HEARTBEAT]
    assert [t for t in types if t not in (MessageType.HEARTBEAT, MessageType.STATS, MessageType.LOGS)] == [
        "client_ready",
        "spawning",
        "spawning_complete",
        "client_stopped",
        "client_ready",
        "quit",
    ]


def test_the_same_inputs_give_the_same_trace() -> None:
    a, b = lifecycle(Simulation(seed=3)), lifecycle(Simulation(seed=3))
    assert [(r.t, r.kind, r.type, r.note) for r in a.records] == [(r.t, r.kind, r.type, r.note) for r in b.records]


def test_heartbeats_keep_exact_time_in_simulation() -> None:
    sim = Simulation().start()
    sim.advance(20)
    beats = [r.t for r in sim.records if r.kind is Kind.RECV and r.type == MessageType.HEARTBEAT]
    assert len(beats) == 20
    assert {round(b - a, 6) for a, b in zip(beats, beats[1:], strict=False)} == {1.0}


def test_a_raise_in_the_session_is_a_crash_with_its_traceback() -> None:
    sim = Simulation(defects=frozenset({"crash-on-unknown"})).start()
    sim.advance(0.5)
    sim.send("no_such_type", {})
    sim.advance(10)
    assert sim.exit_code == EXIT_CRASH
    assert "KeyError" in sim.output[-1][1]
    assert {f.oracle for f in sim.judge()} >= {"socket.traceback", "heartbeat.missing"}


def test_simulate_replays_a_schedule() -> None:
    result = simulate(Schedule((Step("spawn", 2, users=3), Step("quiet", 4), Step("stop", 1)), quit_at_end=True))
    assert result.verdict is Verdict.OK, result.findings
    assert result.worst_gap == pytest.approx(1.0)
    late = simulate(Schedule((Step("quiet", 5),)), defects=frozenset({"late-heartbeats"}))
    assert late.verdict is Verdict.NON_STRICT and late.worst_gap == pytest.approx(1.7)


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_the_clean_session_passes_any_drawn_schedule(schedule: Schedule) -> None:
    result = simulate(schedule)
    assert result.verdict in ACCEPTED, "\n".join(map(str, result.findings))


def test_the_clean_session_passes_the_state_machine() -> None:
    run_machine(examples=300)


# The oracle meant to catch each defect in the simulation ("crash": the invariant that the worker never crashes). A
# catch by another oracle, or by a harness.* finding (a crash of ours), does not count.
INTENDED: dict[str, set[str]] = {
    "stuck-spawning": {"progress.spawn"},
    "no-final-stats": {"stats.final"},
    "ignores-reconnect": {"reconnect.socket"},
    "overlapping-reconnect": {"reconnect.identity-race"},
    "no-master-timeout": {"shutdown.master-death"},
    "accepts-stale-spawn": {"order.spawn-counts"},
    "wrong-counts": {"order.spawn-counts"},
    "crash-on-unknown": {"crash"},
    "no-ready-after-stop": {"progress.spawn"},  # stuck in stopped: the next spawn goes unanswered
    "no-exit-on-quit": {"shutdown.exit"},
    "stats-backwards": {"stats.integrity"},
    "late-heartbeats": {"heartbeat.gap"},
    "silent-after-spawn": {"heartbeat.missing"},
    "deaf-after-garbage": {"progress.spawn", "progress.stop", "shutdown.exit"},
    "cumulative-stats": {"stats.deltas"},
    "no-client-ready-retry": {"heartbeat.missing"},
    "impatient-master-timeout": {"shutdown.unprompted"},
    "silent-sigterm": {"shutdown.sigterm"},
    "stale-heartbeat-state": {"order.state"},
}


# Examples the machine may draw to catch a defect. Derandomized (CI and the mutation check) each is caught within
# 500, so 1000 keeps a broken oracle's futile search short; random draws get more room. A spawn after a stop is rarer.
EXAMPLES = {"no-ready-after-stop": 3000}
DEFAULT_EXAMPLES = 1000 if settings.default.derandomize else 3000


def caught_by(error: AssertionError) -> set[str]:
    """The oracles an example failed on, as the state machine reports them (``[oracle]`` in each finding)."""
    text = str(error)
    return set(re.findall(r"\[([a-z][a-z.-]*)\]", text)) | ({"crash"} if "the worker crashed" in text else set())


def test_every_failing_session_defect_has_its_intended_oracle() -> None:
    assert set(INTENDED) == set(FAILING)


@pytest.mark.parametrize("defect", FAILING)
def test_the_state_machine_catches_each_session_defect(defect: str) -> None:
    """Judged by the intended oracle alone: another oracle, or a crash of ours (harness.*), cannot stand in for it."""
    with pytest.raises(AssertionError) as caught:
        examples = EXAMPLES.get(defect, DEFAULT_EXAMPLES)
        run_machine(frozenset({defect}), examples=examples, shrink=False, only=frozenset(INTENDED[defect]))
    found = caught_by(caught.value)
    assert found & INTENDED[defect], f"caught by {sorted(found)}, not by {sorted(INTENDED[defect])}:\n{caught.value}"


@pytest.mark.parametrize("defect", NAMED_ONLY)
def test_a_defect_the_master_does_not_mind_is_named_by_its_oracle(defect: str) -> None:
    mutant = MUTANTS_BY_DEFECT[defect]
    named = {f.oracle for f in lifecycle(Simulation(defects=frozenset({defect}))).judge()}
    assert {o for o in named if o.startswith(mutant.oracles)}, named
    assert not {f.oracle for f in lifecycle(Simulation()).judge()}


def test_a_caught_defect_shrinks_to_the_few_steps_that_show_it() -> None:
    with pytest.raises(AssertionError) as caught:
        run_machine(frozenset({"stuck-spawning"}), examples=1000)
    notes = getattr(caught.value, "__notes__", [])
    steps = [line for line in notes if line.startswith("state.") and "worker_alive_unless_told" not in line]
    assert "progress.spawn" in str(caught.value)
    assert steps[-1] == "state.teardown()" and any(line.startswith("state.spawn(") for line in steps)
    assert len(steps) <= 6, steps  # connect, at most four actions (of up to ten drawn), teardown


@pytest.mark.parametrize(
    ("defect", "oracle", "act"),
    [
        ("ignores-reconnect", "reconnect.socket", lambda sim: sim.reconnect()),
        ("impatient-master-timeout", "shutdown.unprompted", lambda sim: sim.set_silenced(True)),
        ("silent-sigterm", "shutdown.sigterm", lambda sim: sim.sigterm()),
        ("no-master-timeout", "shutdown.master-death", lambda sim: sim.die()),
    ],
)
def test_each_simulation_check_fails_the_defect_it_is_for_and_passes_the_clean_session(
    defect: str, oracle: str, act: Callable[[Simulation], None]
) -> None:
    def run(defects: frozenset[str]) -> set[str]:
        sim = Simulation(defects=defects).start()
        sim.advance(1.5)
        sim.send(MessageType.HEARTBEAT)
        sim.advance(0.5)
        act(sim)
        sim.advance(SIM_TIMING.master_heartbeat_timeout + 5)
        return {f.oracle for f in check_simulation(sim)}

    assert oracle in run(frozenset({defect}))
    assert run(frozenset()) == set()
