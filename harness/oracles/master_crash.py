"""A worker message that kills the master's ``client_listener``: what the emulated master of the run's profile noted
when it crashed as its real release would (``harness.protocol.master``)."""

from __future__ import annotations

from harness.consequences import judged
from harness.oracles.evidence import Evidence
from harness.protocol.master import CRASH_NOTE
from harness.trace import Kind
from harness.verdicts import Finding


def check_master_crash(ev: Evidence) -> list[Finding]:
    """FAILED master.crashed, naming the message, if the emulated master's listener died during the run."""
    for record in ev.records:
        profile, _, rest = record.note.partition(": ")
        # (only the core's own note: other notes may quote a node_id, which the worker chose)
        if record.kind is Kind.NOTE and profile.startswith("master profile ") and rest.startswith(CRASH_NOTE):
            cause = rest.removeprefix(CRASH_NOTE).split("; as the real master")[0]
            return [
                judged(
                    "master.crashed",
                    "nothing that kills the master's client_listener (locust-protocol.md 7.2)",
                    f"{cause}: the {profile.removeprefix('master profile ')} master's listener dies on it",
                    ev.rel(record.t),
                )
            ]
    return []
