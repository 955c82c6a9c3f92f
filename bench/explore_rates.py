"""How fast schedules run: real worker processes (examples per minute) and the in-memory simulation.

    python bench/explore_rates.py [--real 60] [--simulated 2000] [--out bench/results-explore-rates.json]

Rows, each next to a baseline measured in the same run:
- real: ``explore`` against the reference worker (schedules drawn, run, judged), vs the bare cost of a
  fresh worker process per example (start, handshake, stop: what no schedule can go below);
- simulated: ``simulate()`` of pre-drawn schedules (drawn once, outside the timing), and the Hypothesis
  state machine (drawing included), vs a simulation that only idles for the same simulated time.
Targets: at least 60 real examples a minute, 1,000 simulated schedules a second and 300 state-machine examples a
second. The state machine's baseline is Hypothesis alone: the same machine (same rules, strategies, preconditions and
step count) with every rule's work replaced by nothing, the most any work inside the rules can reach. Schedules are
drawn with a fixed seed; each simulated rate is the median of ``--passes`` passes.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from fakemaster.master import FakeMaster
from harness.explore import EXPLORE_INTERVAL, explore
from harness.launcher import WorkerProcess, render_command
from harness.protocol.timing import LOCUST_TIMING
from harness.schedule import Schedule, schedules
from harness.simulation import SIM_TIMING, Simulation, SimulationMachine, run_machine, simulate


def bare_worker_runs(n: int) -> float:
    """Seconds per fresh worker: start, client_ready acked, first heartbeat, stop."""
    timing = LOCUST_TIMING.compressed(EXPLORE_INTERVAL)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            with FakeMaster(timing=timing) as master:
                command = render_command("reference", master.host, master.port, EXPLORE_INTERVAL)
                with WorkerProcess(command, Path(tmp) / f"{i}.log") as process:
                    master.expect("client_ready", 20)
                    master.expect("heartbeat", 2)
                    process.stop()
    return (time.monotonic() - started) / n


SEED = 2026


def draw_schedules(n: int) -> list[Schedule]:
    drawn: list[Schedule] = []

    @seed(SEED)  # the same schedules every run: rates compare across runs and commits
    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(schedules())
    def collect(schedule: Schedule) -> None:
        drawn.append(schedule)

    collect()
    return drawn[:n]


class _NoWork:
    """Stands in for a Simulation: every action does nothing (the Hypothesis-only baseline)."""

    dead = False
    exit_code = None
    output: list[tuple[float, str]] = []
    timing = SIM_TIMING

    class core:  # noqa: N801 - mirrors Simulation.core's one attribute the machine sets
        auto_ack = True

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class HypothesisOnlyMachine(SimulationMachine):
    """``SimulationMachine`` with no simulation: what Hypothesis's stateful engine costs by itself."""

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self.sim = _NoWork()  # type: ignore[assignment]
        self.interval = SIM_TIMING.heartbeat_interval
        self.quit_sent = False

    def teardown(self) -> None:
        pass


def machine_rate(examples: int, *, work: bool) -> float:
    """State-machine examples a second (10 steps, no shrinking needed: the clean worker passes)."""
    started = time.perf_counter()
    if work:
        run_machine(examples=examples)
    else:
        test_settings = settings(
            max_examples=examples,
            phases=(Phase.explicit, Phase.generate),
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        run_state_machine_as_test(HypothesisOnlyMachine, settings=test_settings)
    return examples / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=int, default=60, help="real examples to run (default 60)")
    parser.add_argument("--simulated", type=int, default=2000, help="schedules to simulate (default 2000)")
    parser.add_argument("--passes", type=int, default=3, help="passes of each simulated row; the median is reported")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []

    per_bare = bare_worker_runs(10)
    with tempfile.TemporaryDirectory() as tmp:
        run = explore("reference", seed=2026, max_examples=args.real, report=Path(tmp), target=False)
    real_rate = 60 * len(run.examples) / run.duration
    rows.append(
        {
            "what": "real worker processes: explore (draw, run, judge)",
            "rate": round(real_rate, 1),
            "unit": "examples/min",
            "baseline": round(60 / per_bare, 1),
            "baseline_what": "bare fresh worker per example (start, handshake, stop)",
            "target": 60,
            "failures": len(run.failures),
            "unknown": len(run.unknown),
        }
    )

    drawn = draw_schedules(args.simulated)
    sim_rates = []
    for _ in range(args.passes):
        started = time.perf_counter()
        verdicts = [simulate(s).verdict.value for s in drawn]
        sim_rates.append(len(drawn) / (time.perf_counter() - started))
    sim_rate = statistics.median(sim_rates)
    idle_for = sum(s.total_intervals + 5 for s in drawn) / len(drawn) * SIM_TIMING.heartbeat_interval
    idle_rates = []
    for _ in range(args.passes):
        started = time.perf_counter()
        for _ in range(200):
            Simulation().start().advance(idle_for)
        idle_rates.append(200 / (time.perf_counter() - started))
    rows.append(
        {
            "what": "simulation: simulate() of pre-drawn schedules (run + judge)",
            "rate": round(sim_rate, 1),
            "passes": [round(r, 1) for r in sim_rates],
            "unit": "schedules/s",
            "baseline": round(statistics.median(idle_rates), 1),
            "baseline_what": f"an idle simulation of the same mean length ({idle_for:g} simulated s), no judging",
            "target": 1000,
            "failures": sum(1 for v in verdicts if v not in ("OK", "INFORMATIONAL")),
        }
    )
    n_machine = max(100, args.simulated // 4)
    machine = [machine_rate(n_machine, work=True) for _ in range(args.passes)]
    alone = [machine_rate(n_machine, work=False) for _ in range(args.passes)]
    rows.append(
        {
            "what": "simulation: Hypothesis RuleBasedStateMachine (draw + run + judge, 10 steps)",
            "rate": round(statistics.median(machine), 1),
            "passes": [round(r, 1) for r in machine],
            "unit": "examples/s",
            "baseline": round(statistics.median(alone), 1),
            "baseline_what": "Hypothesis alone: the same machine with every rule doing nothing",
            "target": 300,
        }
    )
    print("| what | rate | baseline | target |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['rate']} {r['unit']} | {r['baseline']} ({r['baseline_what']}) | >= {r['target']} |")
    if args.out:
        args.out.write_text(json.dumps({"python": platform.python_version(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
