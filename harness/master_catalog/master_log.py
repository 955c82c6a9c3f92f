"""What a master's own log says, read line by line (pure): registrations, missing workers, a dead listener.

The phrases are Locust's (2.0 to 2.47 share them; ``locust.runners``); the fake master's serving mode
(``fakemaster.serve``) prints the same ones in the same format, so one reader judges both
(tests/unit/test_master_log.py reads serve's own templates).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.output import OutputLine

# "<id> (index 0) reported as ready. 1 workers connected." (2.12+), "Worker <id> (index 0) reported ..." (2.11),
# "Client '<id>' reported as ready. Currently 1 clients ready to swarm." (2.0-2.10)
_READY = re.compile(r"(?:Client '|Worker )?([\w.:@-]+?)'? (?:\(index \d+\) )?reported as ready")
_MISSING = re.compile(r"Worker (\S+) failed to send heartbeat, setting state to missing")
_CRASH = "Unhandled exception in greenlet"
_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception|Exit)\b")  # a traceback's last line: "KeyError: 'x'"
LISTENER = "client_listener"
CRASH_CONTEXT = 40  # lines after the "Unhandled exception" line that may name the greenlet (its traceback)


@dataclass(frozen=True)
class LogEvent:
    """One thing the master logged about a worker (``node`` empty when it names none)."""

    t: float
    kind: str  # "ready", "missing" or "listener-crashed"
    node: str
    text: str


def events(lines: Sequence[OutputLine]) -> list[LogEvent]:
    """The registrations, missing marks and listener crashes in ``lines``, in order."""
    out: list[LogEvent] = []
    for i, line in enumerate(lines):
        text = line.text
        if "reported as ready" in text and (m := _READY.search(text)):
            out.append(LogEvent(line.t, "ready", m.group(1), text))
        elif "setting state to missing" in text and (m := _MISSING.search(text)):
            out.append(LogEvent(line.t, "missing", m.group(1), text))
        elif _CRASH in text and any(LISTENER in later.text for later in lines[i : i + CRASH_CONTEXT]):
            out.append(LogEvent(line.t, "listener-crashed", "", text))
    return out


def first(found: Sequence[LogEvent], kind: str, node: str | None = None) -> LogEvent | None:
    """The first event of ``kind`` (about ``node``, if given)."""
    return next((e for e in found if e.kind == kind and (node is None or e.node == node)), None)


def crash_excerpt(lines: Sequence[OutputLine]) -> str:
    """The listener's death as the master printed it: the "Unhandled exception" line and the exception it names."""
    for i, line in enumerate(lines):
        if _CRASH in line.text:
            block = [entry.text.strip() for entry in lines[i : i + CRASH_CONTEXT]]
            if any(LISTENER in text for text in block):
                raised = next((text for text in block[1:] if _EXCEPTION.match(text)), "")
                return f"{block[0][:300]} ... {raised[:300]}" if raised else block[0][:300]
    return ""


def error_excerpt(lines: Sequence[OutputLine], limit: int = 3) -> str:
    """The master's ERROR and CRITICAL lines (how many, and the last ``limit`` distinct ones), for an 'observed'."""
    errors = [line.text.strip() for line in lines if "/ERROR/" in line.text or "/CRITICAL/" in line.text]
    if not errors:
        return ""
    distinct = list(dict.fromkeys(text.split(": ", 1)[-1][:200] for text in errors))
    return f"{len(errors)} error lines, e.g. " + " | ".join(distinct[-limit:])
