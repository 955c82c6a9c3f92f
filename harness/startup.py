"""Waiting for a worker to register, and saying exactly why it did not.

A worker that sends nothing can be four different things, and each gets its own verdict:

* the command did not start, or ended before sending anything: UNKNOWN ("launch"), nothing could be judged;
* it runs but never opened a TCP connection to the master's port: UNKNOWN ("connection.none"), most likely
  the command does not pass {host}/{port} on;
* its TCP connection came up but the ZMTP handshake never completed (or failed, errno named): FAILED
  ("connection.zmtp-handshake"): it is not speaking ZeroMQ to the master, a real master ignores it;
* the ZeroMQ connection is up but the worker never sent a message: FAILED ("startup").

The connection facts come from the fake master's socket monitor notes in the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

from fakemaster.master import FakeMaster
from harness.consequences import rule_for
from harness.errors import ConformanceError
from fakemaster.script import first_message_or_exit
from harness.launcher import WorkerProcess, describe_exit
from harness.trace import Kind
from harness.verdicts import Verdict

STARTUP_TIMEOUT = 20.0  # wall seconds for a worker's first message (a cold JVM or Locust import can be slow)
TAIL_LINES = 12


@dataclass(frozen=True)
class StartupFailure:
    """Why a worker never registered: the finding's oracle, expectation and observation (its verdict is the
    consequence table's)."""

    rule: str
    expected: str
    observed: str
    exit_code: int | None = None

    @property
    def verdict(self) -> Verdict:
        return rule_for(self.rule).verdict


def wait_for_registration(master: FakeMaster, process: WorkerProcess, within: float = STARTUP_TIMEOUT) -> StartupFailure | None:
    """None once the worker's first message arrived; else what went wrong, diagnosed from the trace."""
    if first_message_or_exit(master, process, within) is not None:
        return None
    return diagnose(master, process, within)


def diagnose(master: FakeMaster, process: WorkerProcess, within: float) -> StartupFailure:
    """The diagnosis of a worker that sent nothing within ``within`` seconds (see the module doc)."""
    code = process.poll()
    tail = process.output(tail_lines=TAIL_LINES) or "(no output)"
    notes = [r.note for r in master.trace.records() if r.kind is Kind.NOTE and r.note.startswith("connection ")]
    accepted = [n for n in notes if n.startswith("connection accepted")]
    succeeded = [n for n in notes if n.startswith("connection handshake succeeded")]
    failed = [n for n in notes if n.startswith("connection handshake failed")]
    if code is not None and not accepted:
        return StartupFailure(
            "launch",
            "a worker process that connects to the master",
            f"it ended ({describe_exit(code)}) before connecting:\n{tail}",
            code,
        )
    if not accepted:
        return StartupFailure(
            "connection.none",
            f"a TCP connection to the master at {master.endpoint} within {within:g} s",
            f"none: the worker runs but never connected (does its command pass {{host}} and {{port}} on?); output:\n{tail}",
        )
    if failed:
        return StartupFailure(
            "connection.zmtp-handshake",
            "a completed ZMTP handshake (ZeroMQ 3.x, NULL mechanism) on the worker's connection",
            f"{failed[0]}: the worker does not speak ZeroMQ to the master; output:\n{tail}",
            code,
        )
    if not succeeded:
        return StartupFailure(
            "connection.zmtp-handshake",
            "a completed ZMTP handshake (ZeroMQ 3.x, NULL mechanism) on the worker's connection",
            f"the TCP connection was accepted ({accepted[0].removeprefix('connection accepted ')}) but the ZMTP handshake "
            f"never completed within {within:g} s: not a ZeroMQ peer, or one stuck before its greeting; output:\n{tail}",
            code,
        )
    ended = f"; it then ended ({describe_exit(code)})" if code is not None else ""
    return StartupFailure(
        "startup",
        f"a first message (client_ready) within {within:g} s of connecting",
        f"nothing: the ZeroMQ connection came up but the worker never sent a message{ended}; output:\n{tail}",
        code,
    )


class StartupFailed(ConformanceError):
    """The worker never registered; ``failure`` says why and whose fault it is."""

    def __init__(self, failure: StartupFailure) -> None:
        self.failure = failure
        super().__init__(f"[{failure.rule}] expected {failure.expected}; observed {failure.observed}")
