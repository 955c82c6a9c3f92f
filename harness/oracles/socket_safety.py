"""Socket safety: death by a crash signal, crash signs in the worker's output (judged by when they happened), garbled
frames, and a worker that had to be killed with SIGKILL."""

from __future__ import annotations

import enum
import signal

from harness.consequences import judged
from harness.oracles.evidence import Evidence, shutdown_began
from harness.output import Sign, crash_signs
from harness.trace import Kind, fault_windows
from harness.verdicts import Finding

# Signals a process dies of when it crashes (not when someone asks it to stop).
CRASH_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP}


def check_socket_safety(ev: Evidence) -> list[Finding]:
    """Death by a crash signal, crash signs in the output (judged by when they happened), garbled frames."""
    findings: list[Finding] = []
    shutdown = shutdown_began(ev)
    if ev.exit_code is not None and -ev.exit_code in CRASH_SIGNALS:
        phase = Phase.TEARDOWN if ev.killed_by_harness else Phase.SHUTDOWN if shutdown is not None else Phase.CASE
        sig = signal.Signals(-ev.exit_code)
        observed = f"it was killed by signal {int(sig)} ({sig.name}: abort/segfault, the signature of concurrent socket use)"
        findings.append(
            judged(
                {Phase.CASE: "socket.signal", Phase.SHUTDOWN: "shutdown.signal", Phase.TEARDOWN: "teardown.signal"}[phase],
                "the worker never dies by a signal",
                observed + _phase_suffix(ev, phase, shutdown),
            )
        )
    findings += check_output(ev, shutdown)
    if ev.needed_sigkill:
        findings.append(
            judged(
                "teardown.sigkill",
                "the worker ends on SIGTERM (as when a user or an orchestrator stops it)",
                "it was still running after the harness's SIGTERM and grace period, and was killed with SIGKILL"
                + (f" (SIGTERM at t={ev.rel(ev.teardown_at):.3f}s)" if ev.teardown_at is not None else ""),
            )
        )
    for rec in ev.received() + [r for r in ev.records if r.kind is Kind.RECV and r.message is None]:
        if not rec.violations:
            continue
        bad = [v for v in rec.violations if v.rule.split(".")[0] in ("codec", "framing", "envelope")]
        if bad:
            findings.append(
                judged(
                    "socket.frames",
                    "well-formed single-frame messages",
                    f"{bad[0]} ({len(rec.frames)} frame(s), {rec.size} bytes)",
                    ev.rel(rec.t),
                )
            )
            break
    return findings


class Phase(enum.StrEnum):
    """When a line of output happened, which decides what it means."""

    CASE = "case"  # while the case ran: the worker's own doing, judged in full
    SHUTDOWN = "shutdown"  # the worker shutting down on its own (after a quit, or a signal the case sent)
    TEARDOWN = "teardown"  # after the harness began stopping it: the harness's doing, reported only


def _phase_of(ev: Evidence, t: float, shutdown: tuple[float, str] | None) -> Phase:
    if ev.teardown_at is not None and t >= ev.teardown_at:
        return Phase.TEARDOWN
    if shutdown is not None and t >= shutdown[0]:
        return Phase.SHUTDOWN
    return Phase.CASE


def _phase_suffix(ev: Evidence, phase: Phase, shutdown: tuple[float, str] | None) -> str:
    if phase is Phase.SHUTDOWN and shutdown is not None:
        return f", while shutting down after {shutdown[1]} (t={ev.rel(shutdown[0]):.3f}s)"
    if phase is Phase.TEARDOWN and ev.teardown_at is not None:
        return f", after the harness began stopping the worker (SIGTERM at t={ev.rel(ev.teardown_at):.3f}s): not judged"
    return ""


def check_output(ev: Evidence, shutdown: tuple[float, str] | None = None) -> list[Finding]:
    """Crash signs in the worker's output (``harness.output``), one finding per kind of sign and phase.

    Each phase has its own oracle name, graded by harness.consequences: ``socket.*`` during the case,
    ``shutdown.output`` during the worker's own shutdown, ``teardown.output`` once the harness began tearing it
    down (a user task's traceback is ``output.task-traceback``: Locust logs it and carries on). Output of a stack
    dump the harness asked for is not judged.
    """
    if shutdown is None:
        shutdown = shutdown_began(ev)
    dumps = [(a, b) for a, b, label in fault_windows(ev.records) if label == "stack-dump"]
    lines = [line for line in ev.output if not any(a <= line.t <= b for a, b in dumps)]
    groups: dict[tuple[Phase, str], list[Sign]] = {}
    for sign in crash_signs([line.text for line in lines]):
        phase = _phase_of(ev, lines[sign.first].t, shutdown)
        groups.setdefault((phase, sign.kind), []).append(sign)
    findings = []
    for (phase, kind), group in groups.items():
        first = group[0]
        t = lines[first.first].t
        more = f" ({len(group)} times, the first shown)" if len(group) > 1 else ""
        if kind == "python.task-traceback":
            oracle = "output.task-traceback"
        elif phase is Phase.CASE:
            oracle = "socket.traceback" if kind == "python.traceback" else "socket.output"
        else:
            oracle = f"{phase.value}.output"
        expected = {
            Phase.CASE: "no crash or ZMQ error in the worker's output",
            Phase.SHUTDOWN: "a clean shutdown: no crash or ZMQ error while the worker shuts down",
            Phase.TEARDOWN: "no crash or ZMQ error while the harness stops the worker",
        }[phase]
        findings.append(
            judged(
                oracle,
                expected,
                f"{first.what}: {first.headline!r}{more}{_phase_suffix(ev, phase, shutdown)}",
                ev.rel(t),
            )
        )
    if ev.output_not_judged:
        findings.append(judged("output.not-judged", "every line of output judged", ev.output_not_judged))
    return findings
