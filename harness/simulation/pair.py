"""``Simulation``: the worker half and the master half joined on one simulated clock, and judged as a real run."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from harness.oracles import Evidence, excused_windows, judge_run
from harness.output import OutputLine
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.simulation.judging import check_simulation
from harness.simulation.master_side import MasterSide
from harness.simulation.worker_side import WorkerSide
from harness.trace import Kind, TraceRecord
from harness.verdicts import Finding

_INF = float("inf")
_EVENT, _WORKER, _TICK = "event", "worker", "tick"  # what falls due next in ``advance``
SIM_TIMING = LOCUST_TIMING.compressed(1.0)  # real Locust timing: the simulation costs nothing per second


@dataclass
class Simulation(WorkerSide, MasterSide):
    """One worker and one master, in memory. Drive it with the master's actions and ``advance``."""

    timing: Timing = SIM_TIMING
    defects: frozenset[str] = frozenset()
    seed: int = 0
    user_delay: float = 0.1  # intervals a spawn or a stop takes to take effect
    request_period: float = 1.0  # intervals between one user's requests
    now: float = 0.0
    records: list[TraceRecord] = field(default_factory=list)
    output: list[tuple[float, str]] = field(default_factory=list)  # (when, what the worker logged)
    exit_code: int | None = None

    def __post_init__(self) -> None:
        self._init_clock()
        self._init_master()
        self._init_worker()

    def start(self) -> Simulation:
        """The master starts ticking; the worker starts its handshake."""
        self.core.start(self.now)
        self._worker(self.session.start, self.now)
        return self

    def advance(self, seconds: float) -> None:
        """Run every event up to ``now + seconds``: at equal times deliveries and users first, then the worker's
        timers, then the master's tick."""
        end = self.now + max(0.0, seconds)
        events, session, core, pop = self._events, self.session, self.core, heapq.heappop
        while True:
            t, source = (events[0][0], _EVENT) if events else (_INF, _EVENT)
            if self.exit_code is None:
                deadline = session.next_deadline()
                if deadline is not None and deadline < t:
                    t, source = deadline, _WORKER
            if not self.dead:
                tick = core.next_tick
                if tick is not None and tick < t:
                    t, source = tick, _TICK
            if t > end:
                break
            if t > self.now:
                self.now = t
            if source is _EVENT:
                pop(events)[2]()
            elif source is _WORKER:
                self._worker(session.tick, self.now)
            else:
                self._record_liveness(core.tick(self.now))
        self.now = end

    def evidence(self) -> Evidence:
        """The recording, judged as a real run's: windows still open (a dead master) last until now."""
        if not self.records or self.records[-1].t < self.now:
            self._record(Kind.NOTE, note="simulation: judged here")
        return Evidence(
            list(self.records),
            0.0,
            self.timing,
            self.now,
            exit_code=self.exit_code,
            output=[OutputLine(t, line) for t, text in self.output for line in text.splitlines()],
            exempt=[*excused_windows(self.records), *((a, b, "reconnect") for a, b in self.reconnect_windows)],
        )

    def judge(self) -> list[Finding]:
        """The catalog's oracles plus the checks only a simulation can make."""
        ev = self.evidence()
        return [
            *judge_run(ev),
            *check_simulation(self),
        ]
