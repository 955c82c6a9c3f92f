"""The pace probe: before a run, watch the worker heartbeat and settle the run's timing on what it does.

A template with ``{heartbeat_interval}`` is told an interval; one without keeps its own pace, whatever the
harness would like. So a run first starts the worker once against a fake master, lets it register and
counts its heartbeats (``probe``), then ``resolve`` decides:

* ``auto`` (the default for a template without the placeholder): adopt the measured pace, at most Locust's
  1 s (a real master ticks every second: a worker slower than that is judged against that tick, which is
  what a late-heartbeat bug looks like from outside);
* an explicit interval that a worker without the placeholder visibly does not follow: a usage error naming the
  measured cadence and the flag to pass (never a run of FAILED cases). A worker that is told the interval is
  only seen to register: how it keeps the interval is for the cases to judge, not a usage error;
* a worker that never registers: the run stops with that diagnosis (``StartupFailed``: did it start at all,
  did its TCP connection come up, did the ZMTP handshake complete).

The probe's trace and the worker's log stay in the report folder (``pace-probe/``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakemaster.master import FakeMaster
from harness.errors import ScenarioError
from harness.launcher import WorkerProcess, render_command, takes_interval
from harness.protocol.messages import MessageType
from harness.protocol.timing import LOCUST_TIMING
from harness.startup import StartupFailed, StartupFailure, wait_for_registration
from harness.trace import Kind, format_record
from harness.worker_timing import Cadence

AUTO = "auto"
PROBE_HEARTBEATS = 5  # heartbeats after the ack the probe waits for (4 gaps)
PROBE_MIN_HEARTBEATS = 3  # enough for a cadence once the patience below is spent
LOCUST_INTERVAL = LOCUST_TIMING.heartbeat_interval


@dataclass
class Pace:
    """How a run's heartbeat interval was settled (results.json ``run.pace``)."""

    mode: str  # "auto" (adopted from the worker) or "given" (--heartbeat-interval)
    interval: float  # the interval the run uses
    requested: float | None = None
    cadence: Cadence | None = None
    note: str = ""
    probe_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        cadence = self.cadence
        return {
            "mode": self.mode,
            "interval": self.interval,
            "requested": self.requested,
            "measured_s": round(cadence.median, 4) if cadence and cadence.measured else None,
            "gaps_s": [round(g, 4) for g in cadence.gaps] if cadence else [],
            "note": self.note,
            "probe_dir": self.probe_dir,
        }

    def describe(self) -> str:
        measured = f"; measured {self.cadence.describe()}" if self.cadence and self.cadence.gaps else ""
        how = "adopted from the worker" if self.mode == AUTO else "as given"
        return f"heartbeat interval {self.interval:g} s ({how}{measured}){'; ' + self.note if self.note else ''}"


@dataclass
class ProbeResult:
    """What the probe saw: heartbeat times after the ack, or why the worker never registered."""

    heartbeats: list[float] = field(default_factory=list)
    failure: StartupFailure | None = None
    folder: Path | None = None

    @property
    def cadence(self) -> Cadence:
        return Cadence.of(self.heartbeats)


def probe(template: str, interval: float, folder: Path, *, measure: bool = True, patience: float | None = None) -> ProbeResult:
    """Start the worker once (told ``interval`` if its template takes one), ack it and record its heartbeats.

    ``measure=False``: only see that it registers (a worker told its interval needs no measuring).
    """
    folder.mkdir(parents=True, exist_ok=True)
    result = ProbeResult(folder=folder)
    wait = patience if patience is not None else max(6.0, 8 * interval)
    with FakeMaster(timing=LOCUST_TIMING.compressed(interval), track_liveness=False) as master:
        command = render_command(template, master.host, master.port, interval)
        master.note(f"pace probe: {command}")
        process = WorkerProcess(command, folder / "worker.log", clock=master.clock.now, on_line=master.output_line)
        with process:
            failure = wait_for_registration(master, process)
            if failure is not None:
                result.failure = failure
            elif measure:
                started = time.monotonic()
                deadline = started + max(wait, (PROBE_HEARTBEATS + 1) * interval)
                while time.monotonic() < deadline and process.poll() is None:
                    beats = _heartbeats(master)
                    elapsed = time.monotonic() - started
                    if len(beats) >= PROBE_HEARTBEATS or (len(beats) >= PROBE_MIN_HEARTBEATS and elapsed > wait / 2):
                        break
                    if not beats and elapsed > max(3.0, 3 * interval):
                        break  # registered, and not one heartbeat in three intervals: nothing to measure
                    master.wait_for(MessageType.HEARTBEAT, 0.2, after=len(master.trace))
                result.heartbeats = _heartbeats(master)
                master.send(MessageType.QUIT)
                process.wait(1.0)
        master.trace.save(folder / "trace.jsonl")
        lines = [format_record(r, master.trace.t0, width=400) for r in master.trace.records()]
        (folder / "trace.txt").write_text("\n".join(lines) + "\n", "utf-8")
    return result


def _heartbeats(master: FakeMaster) -> list[float]:
    records = master.trace.records()
    acks = [r.t for r in records if r.kind is Kind.SEND and r.type == MessageType.ACK]
    if not acks:
        return []
    return [r.t for r in records if r.kind is Kind.RECV and r.type == MessageType.HEARTBEAT and r.t > acks[0]]


def parse_interval(value: str | float | None) -> float | str | None:
    """``--heartbeat-interval``: a positive number of seconds or ``auto`` (None: not given)."""
    if value is None or value == AUTO:
        return value
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"--heartbeat-interval: expected a positive number of seconds or 'auto', got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ScenarioError(f"--heartbeat-interval: expected a positive number of seconds or 'auto', got {value!r}")
    return seconds


def resolve(template: str, requested: float | str | None, default: float, folder: Path) -> Pace:
    """The run's interval for ``template``: probe the worker, then adopt, check or refuse (see the module doc).

    ``requested``: a number, ``auto`` or None (auto for a template without ``{heartbeat_interval}``, else ``default``).
    Raises ``StartupFailed`` when the worker never registers, ``ScenarioError`` when it does not follow a given interval.
    """
    if requested is None:
        requested = default if takes_interval(template) else AUTO
    told = LOCUST_INTERVAL if requested == AUTO else float(requested)
    measure = requested == AUTO or not takes_interval(template)
    seen = probe(template, told, folder, measure=measure)
    if seen.failure is not None:
        raise StartupFailed(seen.failure)
    if not measure:  # told its interval: it registers, and the cases judge how it keeps the interval
        return Pace("given", told, told, None, "the worker takes the interval; the probe only saw it register", str(folder))
    cadence = seen.cadence
    where = str(folder)
    if requested == AUTO:
        if not cadence.measured:
            note = (
                f"too few heartbeats to measure ({len(seen.heartbeats)} after the ack): "
                f"assuming Locust's {LOCUST_INTERVAL:g} s (heartbeat gaps will be judged at that pace)"
            )
            return Pace(AUTO, LOCUST_INTERVAL, None, cadence, note, where)
        adopted = cadence.adopted()
        if adopted > LOCUST_INTERVAL:
            note = (
                f"measured {adopted:g} s, slower than Locust's {LOCUST_INTERVAL:g} s: judged against a real master's "
                f"{LOCUST_INTERVAL:g} s tick (pass --heartbeat-interval {adopted:g} if your master runs at that pace)"
            )
            return Pace(AUTO, LOCUST_INTERVAL, None, cadence, note, where)
        return Pace(AUTO, adopted, None, cadence, "", where)
    interval = float(requested)
    note = "" if cadence.measured else f"not verified: {len(seen.heartbeats)} heartbeats after the ack in the probe"
    if cadence.measured and not cadence.follows(interval):
        raise ScenarioError(
            f"the worker does not follow --heartbeat-interval {interval:g} (the command has no {{heartbeat_interval}} "
            f"placeholder): it heartbeats at its own pace, {cadence.describe()}. Run it at that pace: "
            f"--heartbeat-interval {min(cadence.adopted(), LOCUST_INTERVAL):g} (or --heartbeat-interval auto). "
            f"The probe's trace and log: {folder}"
        )
    return Pace("given", interval, interval, cadence, note, where)
