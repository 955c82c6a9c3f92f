"""Clean shutdown: after the master's quit the worker says quit and exits by itself."""

from __future__ import annotations

from harness.consequences import judged
from harness.oracles.evidence import Evidence, reachable_quits, worker_quit_at
from harness.verdicts import Finding


def check_exit_after_quit(ev: Evidence, within: float) -> list[Finding]:
    """After the master's quit the worker exits by itself within ``within`` seconds (and says quit, which the real
    master does not wait for).

    A quit sent while the worker could not be reached (the master down or dead, or the worker between two
    connections after a reconnect) may never have arrived: not judged. A pause in reading does not excuse it.
    """
    quits = reachable_quits(ev)
    if not quits:
        return []
    findings: list[Finding] = []
    if worker_quit_at(ev) is None:
        findings.append(judged("shutdown.quit", "a quit message in answer to the master's quit", "none", ev.rel(quits[0].t)))
    if ev.exit_code is None or ev.killed_by_harness:
        findings.append(
            judged(
                "shutdown.exit",
                f"the process exits within {within:.2f} s of quit",
                "it was still running and had to be killed",
            )
        )
    return findings
