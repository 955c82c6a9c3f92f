"""Seed regression 2 of 3 -- late heartbeats: a socket lock held through a receive timeout of one interval.

The receiver thread holds the socket lock while it waits in recv() with a timeout equal to the heartbeat
interval; the heartbeat thread needs the lock to send. A heartbeat that falls due while the receiver waits
leaves only when the receive times out or a message arrives: late by up to one interval, so gaps of up to
two intervals. The real master tolerates that (it marks a worker missing after 4-5 intervals), but the
margin is gone: a little CPU load or a slow stats send on top and the worker goes missing.

The scenario: the master acks and then behaves as the real one (answering every heartbeat) for 12 intervals.

    python repro/late_heartbeats_recv_timeout.py --worker 'reference'     # passes
    python repro/late_heartbeats_recv_timeout.py \\
        --worker '{python} -m worker --master-port {port} --heartbeat-interval {heartbeat_interval} --defect slow-recv-timeout'
"""

from __future__ import annotations

import statistics
import sys

from fakemaster.master import FakeMaster
from harness.launcher import WorkerProcess
from harness.oracles import HARNESS_JITTER, NON_STRICT_GAP
from harness.protocol.timing import Timing
from harness.repro import Outcome, Recording, main

OBSERVE = 12.0  # intervals


def drive(master: FakeMaster, worker: WorkerProcess, timing: Timing) -> None:
    master.expect("client_ready", 20.0)
    master.expect("heartbeat", timing.missing_after_max)
    master.sleep(OBSERVE * timing.heartbeat_interval)


def explain(r: Recording) -> Outcome:
    interval = r.timing.heartbeat_interval
    gaps = r.gaps()[1:]  # from the first heartbeat on (the first one follows the ack)
    if len(gaps) < 3:
        return Outcome(False, f"too few heartbeats to judge ({len(gaps) + 1}): {r.failure or 'the worker fell silent'}")
    limit = NON_STRICT_GAP * interval + HARNESS_JITTER
    late = [(t, g) for t, g in gaps if g > limit]
    start, worst = max(gaps, key=lambda g: g[1])
    lengths = sorted(g for _, g in gaps)
    spread = (
        f"gaps median {statistics.median(lengths):.3f} s, p90 {lengths[int(0.9 * (len(lengths) - 1))]:.3f} s, "
        f"max {worst:.3f} s over {len(gaps)} gaps"
    )
    if not late:
        return Outcome(False, f"heartbeats on time: {spread} (late above {limit:.3f} s)")
    missing = r.missing_at()
    evidence = [
        spread,
        f"late heartbeats arrive up to {worst - interval:.3f} s after they were due "
        f"({(worst - interval) / interval:.0%} of an interval): the receive timeout ({interval:g} s) holds them back",
        f"the real master marked the worker missing at t={missing[0]:.3f}s" if missing else "it was not marked missing (yet)",
    ]
    return Outcome(
        True,
        f"{len(late)} of {len(gaps)} heartbeat gaps above {limit:.3f} s (1.5 x {interval:g} s + {HARNESS_JITTER:g} s jitter); "
        f"worst {worst:.3f} s ending at t={start + worst:.2f} s",
        evidence,
        start + worst,
    )


if __name__ == "__main__":
    sys.exit(
        main(
            drive,
            explain,
            title="seed regression: late heartbeats (socket lock held through a one-interval receive timeout)",
            description=__doc__ or "",
        )
    )
