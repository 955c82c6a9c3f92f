"""Seed regression 3 of 3 -- socket corruption: several threads use one ZeroMQ socket.

ZeroMQ sockets are not thread-safe. A worker whose receiver, heartbeat, stats and user threads all send
and receive on the one DEALER works in a quiet test and breaks under load: libzmq aborts ("Assertion
failed: ..."), the process segfaults or corrupts its heap, or the socket stalls for good (in Java: ZMQ
errors such as errno 156384765). Which of these happens is a race; a storm makes it near certain.

The scenario: the master acks, starts 2 users, then floods the worker with ~3000 heartbeats/s from two
threads for 5 intervals (bounded), and finally asks for 3 users. A sound worker keeps heartbeating through
the storm and answers the last spawn. Up to 3 attempts (the race), stopping at the first reproduction.

    python repro/shared_socket_storm.py --worker 'reference'     # passes
    python repro/shared_socket_storm.py \\
        --worker '{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --defect shared-socket'

The spawns ask for the user class ConformanceUser (our locustfile's); a worker with other classes still
gets the storm, and a spawn of an unknown class is answered by a conformant Locust worker all the same.
"""

from __future__ import annotations

import re
import sys

from fakemaster.master import FakeMaster
from fakemaster.storm import StormSpec
from harness.launcher import WorkerProcess, describe_exit
from harness.protocol.timing import Timing
from harness.repro import Outcome, Recording, main
from harness.trace import fault_windows
from harness.verdicts import Verdict

USER_CLASS = "ConformanceUser"
STORM = {"threads": 2, "rate": 1500.0, "intervals": 5.0}
BROKEN = ("socket.", "heartbeat.missing", "progress")
CRASH = re.compile(r"(?:Assertion failed|Segmentation fault|Fatal Python error|double free|corrupted size)[^\n]*")


def drive(master: FakeMaster, worker: WorkerProcess, timing: Timing) -> None:
    master.expect("client_ready", 20.0)
    master.expect("heartbeat", timing.missing_after_max)
    master.spawn({USER_CLASS: 2})
    master.expect("spawning_complete", 4 * timing.heartbeat_interval)
    duration = STORM["intervals"] * timing.heartbeat_interval
    result = master.storm(StormSpec(threads=int(STORM["threads"]), rate=STORM["rate"], duration=duration, seed=7))
    master.note(f"repro: storm delivered {result.delivered} of {result.attempted} heartbeats ({result.refused} refused)")
    master.spawn({USER_CLASS: 3})
    master.expect("spawning_complete", 4 * timing.heartbeat_interval)


def explain(r: Recording) -> Outcome:
    storm = next(((a, b) for a, b, label in fault_windows(r.records) if label.startswith("storm")), None)
    broken = [f for f in r.findings if f.verdict is Verdict.FAILED and f.oracle.startswith(BROKEN)]
    tally = next((x.note.removeprefix("repro: ") for x in r.records if x.note.startswith("repro: storm")), "no storm ran")
    beats = r.heartbeats()
    evidence = [tally]
    if storm is not None:
        a, b = r.rel(storm[0]), r.rel(storm[1])
        during = [t for t in beats if a <= t <= b]
        last = f", the last at t={max(beats):.2f}s" if beats else ""
        evidence.append(f"worker heartbeats during the storm (t={a:.2f}-{b:.2f}s): {len(during)}{last}")
    if r.failure:
        evidence.append(f"the scenario: {r.failure}")
    if not broken and r.failure is None:
        return Outcome(False, "the worker came through the storm and answered the spawn after it", evidence)
    crash = CRASH.search(r.process.output())
    if crash:
        evidence.append(f"worker output: {crash.group(0)[:160]}")
    missing = r.missing_at()
    if r.exit_code is not None and r.exit_code < 0 and not r.process.killed_by_harness:
        what = f"the worker was {describe_exit(r.exit_code)}" + (f": {crash.group(0)[:120]}" if crash else "")
    elif crash:
        what = f"the worker's socket broke: {crash.group(0)[:120]}"
    elif missing:
        what = "the worker stopped heartbeating and was marked missing"
    else:
        what = f"the worker stopped answering: {r.failure or broken[0].observed[:120]}"
    last = f"its last heartbeat at t={max(beats):.2f}s" if beats else "no heartbeat at all"
    when = f", marked missing at t={missing[0]:.2f}s" if missing else ""
    return Outcome(True, f"{what} ({last}{when})", evidence, missing[0] if missing else max(beats, default=None))


if __name__ == "__main__":
    sys.exit(
        main(
            drive,
            explain,
            title="seed regression: socket corruption (several threads share one ZeroMQ socket)",
            description=__doc__ or "",
            attempts=3,
        )
    )
