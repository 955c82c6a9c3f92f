"""In-memory deterministic simulation: the reference worker's protocol logic and the master's core, joined.

``worker.session.WorkerSession`` (the reference worker, sans-IO) and
``harness.protocol.master.MasterCore`` (the fake master's decisions, sans-IO)
exchange encoded frames through in-memory links on a simulated clock: no
sockets, threads or sleeps, and the same inputs always give the same trace.
Time advances from event to event (worker deadlines, master liveness ticks,
deliveries, users finishing), so hours of protocol time take milliseconds.

The trace is made of the fake master's own ``TraceRecord``s, so the catalog's
oracles judge a simulation exactly as they judge a real run; a few checks only
a simulation can make (``check_simulation``) are added. ``SimulationMachine``
drives it with a Hypothesis ``RuleBasedStateMachine``; ``simulate`` replays a
``harness.schedule.Schedule``.

Modules: ``shared`` (the clock's event queue and the state the halves share), ``worker_side`` (the session and its
effects), ``master_side`` (the master core, its recording and the master's actions), ``judging`` (the checks only a
simulation can make), ``pair`` (``Simulation``: both halves on one clock), ``replay`` (``simulate``) and
``machine`` (the state machine). This package re-exports the public names of each.
"""

from harness.simulation.judging import check_simulation
from harness.simulation.machine import ACCEPTED, SimulationMachine, machine_for, run_machine
from harness.simulation.master_side import INSPECT_CACHE_SIZE, USER_CLASS
from harness.simulation.pair import SIM_TIMING, Simulation
from harness.simulation.replay import SIM_STORM_CAP, SimResult, simulate
from harness.simulation.shared import LATENCY, NODE, WALL0
from harness.simulation.worker_side import EXIT_CRASH, RECONNECT_DELAY

__all__ = [
    "ACCEPTED",
    "EXIT_CRASH",
    "INSPECT_CACHE_SIZE",
    "LATENCY",
    "NODE",
    "RECONNECT_DELAY",
    "SIM_STORM_CAP",
    "SIM_TIMING",
    "USER_CLASS",
    "WALL0",
    "SimResult",
    "Simulation",
    "SimulationMachine",
    "check_simulation",
    "machine_for",
    "run_machine",
    "simulate",
]
