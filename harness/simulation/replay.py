"""Replaying a ``harness.schedule.Schedule`` in memory against the reference worker's session, judged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.oracles import REPLY_DEADLINE_INTERVALS
from harness.protocol.messages import MessageType
from harness.protocol.timing import Timing
from harness.schedule import STORM_MIXES, Schedule, Step
from harness.simulation.pair import SIM_TIMING, Simulation
from harness.trace import Kind
from harness.verdicts import Finding, Verdict, worst

SIM_STORM_CAP = 40  # messages per storm step: without threads a storm is only volume, and volume is cheap to prove


@dataclass
class SimResult:
    """A replayed schedule's findings, its worst verdict, and its worst heartbeat gap."""

    findings: list[Finding]
    verdict: Verdict
    worst_gap: float | None  # intervals


def simulate(
    schedule: Schedule, *, timing: Timing = SIM_TIMING, defects: frozenset[str] = frozenset(), seed: int = 0
) -> SimResult:
    """Run ``schedule`` in memory against the reference worker's session (with ``defects``)."""
    sim = Simulation(timing, defects, seed).start()
    interval = timing.heartbeat_interval
    sim.advance(0.01 * interval)
    for step in schedule.steps:
        _simulate_step(sim, step, interval)
    sim.advance((REPLY_DEADLINE_INTERVALS + 1) * interval)
    if schedule.quit_at_end:
        sim.send(MessageType.QUIT)
        sim.advance(7 * interval)
    findings = sim.judge()
    gaps = [(b - a) / interval for a, b in _beat_pairs(sim)]
    return SimResult(findings, worst(f.verdict for f in findings), max(gaps, default=None))


def _beat_pairs(sim: Simulation) -> list[tuple[float, float]]:
    beats = [r.t for r in sim.records if r.kind is Kind.RECV and r.type == MessageType.HEARTBEAT]
    return list(zip(beats, beats[1:], strict=False))


def _simulate_step(sim: Simulation, step: Step, interval: float) -> None:
    seconds = step.intervals * interval
    if step.action == "storm":
        count = min(SIM_STORM_CAP, int(step.threads * step.rate * seconds))
        kinds = [name for name, _ in STORM_MIXES[step.mix]]
        for i in range(count):
            kind = kinds[i % len(kinds)]
            sim.advance(seconds / max(count, 1))
            if kind == "heartbeat":
                sim.send(MessageType.HEARTBEAT)
            elif kind.startswith("malformed:"):
                sim.send_malformed(kind.split(":", 1)[1])
            else:
                sim.send("lc_storm_noise", {"i": i})
        return
    windows: dict[str, Callable[[bool], None]] = {
        "silence": sim.set_silenced,
        "pause-reading": lambda on: sim.set_reading(not on),
    }
    if step.action in windows:
        windows[step.action](True)
        sim.advance(seconds)
        windows[step.action](False)
        return
    if step.action in ("delay-replies", "drop-replies"):
        sim.delay_replies, sim.drop_replies = step.delay, step.probability
        sim.advance(seconds)
        sim.delay_replies = sim.drop_replies = 0.0
        return
    actions: dict[str, Callable[[], None]] = {
        "quiet": lambda: None,
        "heartbeat": lambda: sim.send(MessageType.HEARTBEAT),
        "spawn": lambda: sim.spawn(step.users),
        "stale-spawn": lambda: sim.spawn(step.users, stale=True),
        "stop": lambda: sim.send(MessageType.STOP),
        "reconnect": sim.reconnect,
        "duplicate-ack": lambda: sim.send(MessageType.ACK, {"index": 0}),
        "unknown": lambda: sim.send("lc_unknown_type", {}),
        "malformed": lambda: sim.send_malformed(step.kind),
    }
    actions[step.action]()
    sim.advance(seconds)
