"""Seed regression 1 of 3 -- deadlock: a socket lock held across a blocking receive.

The worker's receiver thread takes the socket lock and blocks in recv() with no timeout; the heartbeat
thread needs the same lock to send. So a heartbeat only leaves when the master happens to send something.
The real master sends nothing unprompted (it only answers heartbeats), so after the ack the worker falls
silent and the master logs "Worker ... failed to send heartbeat, setting state to missing".

The scenario: the master acks, then stays quiet (answering heartbeats, as the real one) for 8 intervals;
then it sends one heartbeat of its own and watches whether a worker heartbeat escapes right after it.

    python repro/deadlock_lock_across_recv.py --worker 'reference'     # passes
    python repro/deadlock_lock_across_recv.py \\
        --worker '{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --defect lock-across-recv'
"""

from __future__ import annotations

import sys

from fakemaster.master import FakeMaster
from harness.launcher import WorkerProcess
from harness.protocol.timing import Timing
from harness.repro import Outcome, Recording, main

QUIET = 8.0  # intervals the master stays quiet after the ack
POKE = "repro: the master sends one heartbeat of its own"


def drive(master: FakeMaster, worker: WorkerProcess, timing: Timing) -> None:
    master.expect("client_ready", 20.0)  # acked automatically, with an index, as the real master does
    master.sleep(QUIET * timing.heartbeat_interval)
    master.note(POKE)
    master.send("heartbeat", None)
    master.sleep(2 * timing.heartbeat_interval)


def explain(r: Recording) -> Outcome:
    interval = r.timing.heartbeat_interval
    poke = next((r.rel(x.t) for x in r.records if x.note == POKE), None)
    if poke is None:
        return Outcome(False, f"the scenario did not get to its end: {r.failure or 'the worker was never acked'}")
    start, worst = max(r.gaps(until=poke), key=lambda g: g[1])
    missing = [t for t in r.missing_at() if t <= poke]
    beats = r.heartbeats()
    quiet_beats = [t for t in beats if t <= poke]
    after = [t - poke for t in beats if t > poke]
    if not missing and worst <= r.timing.missing_after_max:
        return Outcome(
            False,
            f"heartbeats kept their cadence while the master was quiet: {len(quiet_beats)} in {QUIET:g} intervals, "
            f"worst gap {worst:.3f} s (missing threshold {r.timing.missing_after_min:g} s)",
        )
    at = missing[0] if missing else start + worst
    silent, last = r.master_silent_for(at)
    evidence = [
        f"heartbeats after the ack while the master was quiet: {len(quiet_beats)} "
        f"(a conformant worker sends one every {interval:g} s, about {int(QUIET)})",
        f"the master's last message before that moment: {last}",
    ]
    if after and after[0] < interval / 2:
        evidence.append(
            f"{after[0] * 1000:.0f} ms after the master sent a heartbeat at t={poke:.3f}s, a worker heartbeat escaped: "
            "heartbeats only get out when the master sends something (a lock held across a blocking recv)"
        )
    elif not after:
        evidence.append(f"even after the master sent a heartbeat at t={poke:.3f}s, no worker heartbeat came")
    evidence.append(f"the gap lasted {worst:.2f} s in all (t={start:.3f}s to t={start + worst:.3f}s)")
    return Outcome(
        True,
        f"heartbeat gap {at - start:.2f} s > {r.timing.missing_after_min:g} s missing threshold at t={at:.2f} s "
        f"(marked missing); the master had been silent for {silent:.2f} s",
        evidence,
        at,
    )


if __name__ == "__main__":
    sys.exit(
        main(
            drive,
            explain,
            title="seed regression: deadlock (socket lock held across a blocking receive)",
            description=__doc__ or "",
        )
    )
