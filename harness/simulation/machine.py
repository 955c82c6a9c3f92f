"""The Hypothesis state machine: random master behaviour against the reference worker's session, in memory, with
every oracle (or the chosen few) judging."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from harness.faults import MALFORMED_KINDS
from harness.oracles import REPLY_DEADLINE_INTERVALS
from harness.protocol.messages import MessageType
from harness.simulation.pair import SIM_TIMING, Simulation
from harness.simulation.worker_side import EXIT_CRASH
from harness.verdicts import Verdict
from worker.session import EXIT_OK

ACCEPTED = frozenset({Verdict.OK, Verdict.INFORMATIONAL})
_intervals = st.integers(0, 24).map(lambda q: q / 4)


class SimulationMachine(RuleBasedStateMachine):
    """Random master behaviour against the reference worker's session; every oracle must stay quiet.

    Subclass with ``DEFECTS`` set to a defect's name to see the same machine catch it.
    """

    DEFECTS: frozenset[str] = frozenset()
    ONLY: frozenset[str] | None = None  # judge with these oracles alone ("crash", "exit.unprompted": the invariants)

    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation(SIM_TIMING, self.DEFECTS)
        self.interval = SIM_TIMING.heartbeat_interval
        self.quit_sent = False

    @initialize(ack_after=st.sampled_from((0.0, 0.0, 0.0, 6.0, 12.0)))
    def connect(self, ack_after: float) -> None:
        """The worker connects; the master acks at once, or only after withholding its acks for a while."""
        if ack_after:
            self.sim.core.auto_ack = False
        self.sim.start()
        if ack_after:
            self.sim.advance(ack_after * self.interval)
            self.sim.core.auto_ack = True
            self.sim.advance(self.sim.timing.connect_timeout + self.interval)
        self.sim.advance(0.01 * self.interval)

    @rule(intervals=_intervals)
    def wait(self, intervals: float) -> None:
        self.sim.advance(intervals * self.interval)

    @precondition(lambda self: not self.quit_sent)
    @rule(users=st.integers(0, 6), stale=st.booleans(), stop_timeout=st.sampled_from((0.0, 0.0, 1.0)))
    def spawn(self, users: int, stale: bool, stop_timeout: float) -> None:
        self.sim.spawn(users, stale=stale, stop_timeout=stop_timeout * self.interval)

    @precondition(lambda self: not self.quit_sent)
    @rule()
    def stop(self) -> None:
        self.sim.send(MessageType.STOP)

    @precondition(lambda self: not self.quit_sent)
    @rule(message=st.sampled_from(("heartbeat", "ack", "reconnect", "unknown", "spawning_complete")))
    def send(self, message: str) -> None:
        if message == "reconnect":
            self.sim.reconnect()
        elif message == "ack":
            self.sim.send(MessageType.ACK, {"index": 0})
        elif message == "unknown":
            self.sim.send("lc_unknown_type", {"x": 1})
        elif message == "spawning_complete":
            self.sim.send(MessageType.SPAWNING_COMPLETE, {"user_classes_count": {}, "user_count": 0})
        else:
            self.sim.send(message)

    @rule(kind=st.sampled_from(MALFORMED_KINDS))
    def malformed(self, kind: str) -> None:
        self.sim.send_malformed(kind)

    @rule(intervals=_intervals)
    def silence(self, intervals: float) -> None:
        self.sim.set_silenced(True)
        self.sim.advance(intervals * self.interval)
        self.sim.set_silenced(False)

    @rule(intervals=st.integers(0, 12).map(lambda q: q / 4))
    def pause_reading(self, intervals: float) -> None:
        self.sim.set_reading(False)
        self.sim.advance(intervals * self.interval)
        self.sim.set_reading(True)

    @rule(delay=st.sampled_from((0.0, 0.5, 1.5)), drop=st.sampled_from((0.0, 0.5, 1.0)), intervals=_intervals)
    def faulty_replies(self, delay: float, drop: float, intervals: float) -> None:
        self.sim.delay_replies, self.sim.drop_replies = delay, drop
        self.sim.advance(intervals * self.interval)
        self.sim.delay_replies = self.sim.drop_replies = 0.0

    @precondition(lambda self: not self.quit_sent)
    @rule()
    def quit(self) -> None:
        self.quit_sent = True
        self.sim.send(MessageType.QUIT)

    @precondition(lambda self: not self.quit_sent)
    @rule()
    def sigterm(self) -> None:
        self.quit_sent = True
        self.sim.sigterm()

    @precondition(lambda self: not self.quit_sent and not self.sim.dead)
    @rule()
    def master_dies(self) -> None:
        self.quit_sent = True
        self.sim.die()
        self.sim.advance(self.sim.timing.master_heartbeat_timeout + 3 * self.interval)

    def _judged(self, oracle: str) -> bool:
        return self.ONLY is None or oracle in self.ONLY

    @invariant()
    def worker_alive_unless_told(self) -> None:
        if self.sim.exit_code == EXIT_CRASH and self._judged("crash"):
            raise AssertionError(f"the worker crashed:\n{self.sim.output[-1][1]}")
        unprompted = self.sim.exit_code not in (None, EXIT_OK, EXIT_CRASH) and not (self.quit_sent or self.sim.dead)
        if unprompted and self._judged("exit.unprompted"):
            raise AssertionError(f"the worker exited with {self.sim.exit_code} unprompted")

    def teardown(self) -> None:
        """Let pending requests reach their deadlines, then every oracle must pass."""
        self.sim.advance((REPLY_DEADLINE_INTERVALS + 2) * self.interval)
        bad = [f for f in self.sim.judge() if f.verdict not in ACCEPTED and self._judged(f.oracle)]
        if bad:
            raise AssertionError("\n".join(map(str, bad)))


def machine_for(defects: frozenset[str], only: frozenset[str] | None = None) -> type[SimulationMachine]:
    """The state machine against the reference worker's session with ``defects`` switched on, judging with the
    oracles in ``only`` alone (None: every oracle and invariant)."""
    name = "SimulationMachine_" + "_".join(sorted(d.replace("-", "_") for d in defects))
    return type(name, (SimulationMachine,), {"DEFECTS": frozenset(defects), "ONLY": only})


def run_machine(
    defects: frozenset[str] = frozenset(),
    *,
    examples: int = 200,
    steps: int = 10,
    shrink: bool = True,
    only: frozenset[str] | None = None,
) -> None:
    """Run the state machine for ``examples`` examples; raises AssertionError (with the steps, shrunk unless
    ``shrink`` is False) on a failure. ``only`` limits the judging to those oracles (see ``machine_for``)."""
    test_settings = settings(
        max_examples=examples,
        phases=(Phase.explicit, Phase.generate, Phase.shrink) if shrink else (Phase.explicit, Phase.generate),
        stateful_step_count=steps,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )
    run: Callable[..., None] = run_state_machine_as_test  # typed in some Hypothesis releases, not in others
    run(machine_for(defects, only), settings=test_settings)
