"""What only a simulation can judge: the worker's own actions and the master's intent, which a trace alone does not
show (``Simulation.judge`` adds these to the catalog's oracles)."""

from __future__ import annotations

from harness.consequences import judged
from harness.protocol.messages import MessageType
from harness.simulation.shared import Shared
from harness.trace import Kind, window_note
from harness.verdicts import Finding


def check_simulation(sim: Shared) -> list[Finding]:
    """What the simulation knows that a trace alone does not: the worker's own actions and the master's intent."""
    findings: list[Finding] = []
    interval = sim.timing.heartbeat_interval
    if sim.reconnects_asked and not sim.reconnects_done and sim.exit_code is None:
        findings.append(judged("reconnect.socket", "a new connection after the master's reconnect", "the old socket was kept"))
    if sim.identity_lost_at is not None:
        findings.append(
            judged(
                "reconnect.identity-race",
                "a new connection once the old one is gone",
                "the worker connected again while its old connection still held the identity: the ROUTER ignores it",
            )
        )
    quits = [r for r in sim.records if r.kind is Kind.RECV and r.type == MessageType.QUIT]
    asked = [r.t for r in sim.records if r.kind is Kind.SEND and r.type == MessageType.QUIT]
    if quits and not asked and sim.sigterm_at is None and not sim.dead:
        silent_for = _master_silent_for(sim, quits[0].t)
        if silent_for < sim.timing.master_heartbeat_timeout:
            findings.append(
                judged(
                    "shutdown.unprompted",
                    f"no quit before the master has been silent for {sim.timing.master_heartbeat_timeout:g} s",
                    f"quit after {silent_for:.2f} s without a master heartbeat",
                    quits[0].t,
                )
            )
    if sim.sigterm_at is not None and not any(r.t >= sim.sigterm_at for r in quits):
        findings.append(judged("shutdown.sigterm", "quit sent on SIGTERM", "no quit", sim.sigterm_at))
    if sim.dead and sim.exit_code is None:
        dead_at = next(r.t for r in sim.records if r.note == window_note("master-death", "start"))
        limit = sim.timing.master_heartbeat_timeout + 2 * interval
        if sim.now - dead_at > limit:
            findings.append(
                judged(
                    "shutdown.master-death",
                    f"the worker gives up within {limit:g} s of the master's death",
                    f"still running {sim.now - dead_at:.1f} s later",
                    dead_at,
                )
            )
    return findings


def _master_silent_for(sim: Shared, t: float) -> float:
    beats = [r.t for r in sim.records if r.kind is Kind.SEND and r.type == MessageType.HEARTBEAT and r.t <= t]
    acked = [r.t for r in sim.records if r.kind is Kind.SEND and r.type == MessageType.ACK and r.t <= t]
    last = max(beats or acked or [0.0])
    return t - last
