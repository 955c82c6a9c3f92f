"""The master catalog: what a Locust master must do for its workers, and what it must survive.

Each case starts a fresh master (harness.master_catalog.masters), drives fake workers at Locust's real pace and
judges the master by what its workers get (acks, heartbeat replies, spawns, quit) and by its own log (registrations,
"missing" marks, a dead listener). Verdicts follow from the consequence for the workers: a master whose listener
died reads nothing more from any worker (FAILED); one that lacks a later release's message (no ack before 2.10, no
heartbeat replies before 2.19) is UNIMPLEMENTED, since workers of its own release never wait for it. Cases name what
they saw; harness.master_catalog.consequences grades it.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.launcher import describe_exit
from harness.master_catalog.base import MasterCase, MasterCaseContext
from harness.master_catalog.masters import RUN, Launch
from harness.protocol.codec import encode
from harness.protocol.fake_worker import FakeWorkerCore, heartbeat_data
from harness.protocol.messages import Direction, Message, MessageType
from harness.protocol.schema import Severity, check_payload
from harness.protocol.timing import LOCUST_TIMING

REGISTER_WITHIN = 5.0  # seconds for a first registration (the master has just started listening)
LOG_SLACK = 0.5  # seconds between a master's tick and its log line reaching us, plus the tick's own drift and load
REPLY_WITHIN = 1.0  # seconds: a later heartbeat reply is NON-STRICT (a 2.19+ worker gives up only after 60 s)
DRAIN = 3.0  # seconds a master gets to answer the heartbeats already sent, once they stop
FLOOD = 5000  # heartbeats the flood case sends at once
ACK_WITHIN = 3.0  # seconds an ack may trail the master's own 'reported as ready' line before it counts as absent
SILENT_WORKERS = 20  # trials of the missing rule per run, their phases spread over one heartbeat interval
RAMP_SETTLES = 3.0  # seconds after the last spawn until a master's ramp is surely over (its report wait is 0.1-1 s)


def _register(ctx: MasterCaseContext, core: FakeWorkerCore) -> str:
    shown = ctx.registered(core, REGISTER_WITHIN)
    if shown is None:
        ctx.fail(
            "master.registers",
            f"the master acks the worker's client_ready or logs it as ready within {REGISTER_WITHIN:g} s",
            "neither an ack nor a 'reported as ready' line",
        )
    assert shown is not None
    return shown


def _still_reads(ctx: MasterCaseContext, after: str, within: float = 3.0) -> None:
    """FAILED master.listener-alive unless a new worker still registers after ``after``."""
    probe = ctx.worker("probe")
    if ctx.registered(probe, within) is not None:
        return
    excerpt = ctx.master.crash_excerpt() or ctx.master.error_excerpt()
    code = ctx.master.process.poll()
    ctx.finding(
        "master.listener-alive",
        f"the master still reads after {after}: a new worker's client_ready is acked or logged as ready within {within:g} s",
        "neither, for the probe worker"
        + (f"; the master printed: {excerpt}" if excerpt else "")
        + (f"; the master process had ended ({describe_exit(code)})" if code is not None else ""),
    )


# -- handshake --------------------------------------------------------------------------------


def ack(ctx: MasterCaseContext) -> None:
    first = ctx.worker("ready")
    shown = _register(ctx, first)
    ctx.run(ACK_WITHIN, lambda: bool(first.acks))  # registration seen in the log first: its ack may be on the way
    if not first.acks:
        ctx.finding(
            "master.ack",
            "an ack to every client_ready (Locust 2.10+)",
            f"no ack; the master {shown}",
        )
        return
    sent = next(r.t for r in ctx.workers.records if r.direction == "w2m" and r.node == first.node_id)
    t, data = first.acks[0]
    if t - sent > 1.0:
        ctx.finding(
            "master.ack.late",
            "the ack within 1 s of client_ready",
            f"after {t - sent:.3f} s",
        )
    second = ctx.worker("second")
    _register(ctx, second)
    ctx.run(ACK_WITHIN, lambda: bool(second.acks))
    if not second.acks:
        ctx.finding(
            "master.ack.missing",
            "an ack to the second worker's client_ready too (the master acked the first)",
            f"none within {ACK_WITHIN:g} s of its registration",
        )
    indexes = [_index(data), _index(second.acks[0][1]) if second.acks else None]
    if data is None:
        ctx.finding(
            "master.ack-index.nil",
            "ack data {'index': n} (Locust 2.11+)",
            "nil",
        )
    elif indexes[0] is None:
        ctx.finding(
            "master.ack-index.malformed",
            "ack data {'index': <int>} or nil",
            repr(data),
        )
    elif indexes[0] == indexes[1]:
        ctx.finding(
            "master.ack-index.shared",
            "a different index for each worker",
            f"both got {indexes[0]}",
        )


def _index(data: Any) -> int | None:
    return data.get("index") if isinstance(data, dict) and isinstance(data.get("index"), int) else None


# -- heartbeats -------------------------------------------------------------------------------


def replies_to(core: FakeWorkerCore, since: float) -> tuple[list[float], int]:
    """The reply delays of ``core``'s heartbeats sent from ``since`` on, each reply paired with the heartbeat it answers
    first in, first out (a master answers a worker's heartbeats in order), and how many of all its heartbeats have no
    reply. Meaningful once the replies are drained (``drain_replies``)."""
    pairs = zip(core.heartbeats_sent, core.replies, strict=False)  # the replies lost are the last ones unpaired
    delays = [reply - beat for beat, reply in pairs if beat >= since]
    return delays, max(0, len(core.heartbeats_sent) - len(core.replies))


def drain_replies(ctx: MasterCaseContext, cores: list[FakeWorkerCore]) -> None:
    """Stop the cores' heartbeats and give the master DRAIN seconds to answer those sent (shorter than the missing
    rule's 4 s, so nobody goes missing meanwhile): a reply not back by then is lost."""
    for core in cores:
        core.stop_heartbeats()
    ctx.run(DRAIN, lambda: all(len(c.replies) >= len(c.heartbeats_sent) for c in cores))


def heartbeat_replies(ctx: MasterCaseContext) -> None:
    worker = ctx.worker("beating")
    _register(ctx, worker)
    start = ctx.clock()
    ctx.run(4.6)
    if not worker.replies:
        ctx.finding(
            "master.heartbeat-reply",
            "a heartbeat reply to each heartbeat (Locust 2.19+)",
            f"no reply to {len(worker.heartbeats_sent)} heartbeats",
        )
        return
    drain_replies(ctx, [worker])
    delays, unanswered = replies_to(worker, start)
    late = [d for d in delays if d > REPLY_WITHIN]
    if unanswered:
        ctx.finding(
            "master.heartbeat-reply.lost",
            f"a reply to each of {len(worker.heartbeats_sent)} heartbeats (within {DRAIN:g} s)",
            f"{unanswered} without one",
        )
    elif late:
        ctx.finding(
            "master.heartbeat-reply.late",
            f"each reply within {REPLY_WITHIN:g} s",
            f"{len(late)} of {len(delays)} later, up to {max(late):.3f} s",
        )


# -- the missing rule -------------------------------------------------------------------------


def missing_window(ctx: MasterCaseContext) -> None:
    """SILENT_WORKERS workers, their heartbeat phases spread over one interval, each silent after two heartbeats;
    one more keeps beating. Each silent one's delay from its last heartbeat to the master's 'missing' line is one
    trial of the rule: the real rule puts every one in ((L+1)I, (L+2)I]."""
    timing = LOCUST_TIMING
    silent: list[FakeWorkerCore] = []
    for i in range(SILENT_WORKERS):
        silent.append(ctx.worker(f"silent{i:02d}"))
        ctx.run(timing.heartbeat_interval / SILENT_WORKERS)
    healthy = ctx.worker("healthy")
    healthy_from = ctx.clock()
    for core in silent:
        if ctx.registered(core, REGISTER_WITHIN) is None:
            _register(ctx, core)  # fails the case, naming the rule

    def quiet() -> bool:
        for core in silent:
            if core.heartbeats and len(core.heartbeats_sent) >= 2:
                core.stop_heartbeats()
        return all(not core.heartbeats for core in silent)

    ctx.run(4 * timing.heartbeat_interval, quiet)
    quitted = [core.node_id for core in silent if not core.heartbeats_sent]  # the master quit it before its first
    if quitted:
        ctx.fail(
            "master.quit.unprompted",
            "no quit to a registered worker that did nothing wrong",
            f"{len(quitted)} workers were quit before their first heartbeat (e.g. {quitted[0]})",
        )
    last = max(core.heartbeats_sent[-1] for core in silent)
    patience = timing.missing_after_max + 3 * timing.heartbeat_interval
    ctx.run(last + patience - ctx.clock(), lambda: all(ctx.logged("missing", c.node_id) for c in silent))
    # the healthy worker is watched for at least the rule's longest silence after it registered
    ctx.run(healthy_from + timing.missing_after_max + timing.heartbeat_interval - ctx.clock())
    delays: list[float] = []
    never: list[str] = []
    for core in silent:
        event = ctx.logged("missing", core.node_id)
        if event is None:
            never.append(core.node_id)
        else:
            delays.append(event.t - core.heartbeats_sent[-1])
    low, high = timing.missing_after_min, timing.missing_after_max
    ctx.measurements["missing_after_s"] = {
        "trials": len(silent),
        "declared": len(delays),
        "min": round(min(delays), 3) if delays else None,
        "max": round(max(delays), 3) if delays else None,
        "delays": [round(d, 3) for d in sorted(delays)],
        "rule": [low, high],
    }
    if ctx.logged("missing", healthy.node_id):
        ctx.finding(
            "master.missing.false",
            "a worker that heartbeats every second is never marked missing",
            "it was",
        )
    if never:
        ctx.finding(
            "master.missing.never",
            f"every silent worker marked missing within {patience:g} s of its last heartbeat (the rule: {low:g}-{high:g} s)",
            f"{len(never)} of {len(silent)} never were (e.g. {never[0]})",
        )
    if not delays:
        return
    observed = f"marked missing {min(delays):.3f}-{max(delays):.3f} s after the last heartbeat ({len(delays)} trials)"
    expected = f"between {low:g} and {high:g} s (Locust's rule: the 5th tick after the last heartbeat), +{LOG_SLACK:g} s"
    if min(delays) < timing.heartbeat_liveness * timing.heartbeat_interval:
        ctx.finding(
            "master.missing-window.early",
            expected,
            observed,
        )
    elif min(delays) < low - LOG_SLACK or max(delays) > high + LOG_SLACK:
        ctx.finding(
            "master.missing-window",
            expected,
            observed,
        )


# -- robustness: input the stock workers never send ---------------------------------------------


def _from_stranger(message_type: str, data: Any) -> Callable[[MasterCaseContext], None]:
    def body(ctx: MasterCaseContext) -> None:
        known = ctx.worker("known")
        _register(ctx, known)
        stranger = ctx.worker("stranger", register=False, heartbeats=False)
        ctx.workers.send(stranger.node_id, message_type, data)
        ctx.run(1.0, lambda: stranger.quit_at is not None)
        _still_reads(ctx, f"a {message_type} from a worker it never registered")
        ctx.measurements["stranger_got_quit"] = stranger.quit_at is not None

    return body


def odd_client_ready(ctx: MasterCaseContext) -> None:
    known = ctx.worker("known")
    _register(ctx, known)
    ctx.worker("odd", ready_data=5, heartbeats=False)
    ctx.run(1.0)
    _still_reads(ctx, "a client_ready whose data is the number 5 (truthy, not a version string)")


def not_msgpack(ctx: MasterCaseContext) -> None:
    known = ctx.worker("known")
    _register(ctx, known)
    garbage = ctx.worker("garbage", register=False, heartbeats=False)
    ctx.workers.send_raw(garbage.node_id, b"\xc1not msgpack", "0xc1 is never used in msgpack")
    ctx.run(1.0)
    _still_reads(ctx, "a frame that is not msgpack")


def trailing_bytes(ctx: MasterCaseContext) -> None:
    sender = ctx.worker("sender")
    bystander = ctx.worker("bystander")
    _register(ctx, sender)
    _register(ctx, bystander)
    frame = encode(Message(MessageType.HEARTBEAT, heartbeat_data(), sender.node_id)) + b"\x00"
    ctx.workers.send_raw(sender.node_id, frame, "a heartbeat followed by one byte (msgpack ExtraData)")
    ctx.run(0.2)
    probe = ctx.worker("probe")
    sent = ctx.clock()
    # Before 2.10 the master stops reading for FALLBACK_INTERVAL and rebinds its socket, and what was queued on the
    # old one is gone: the probe says client_ready again every second, as a worker waiting for its ack would.
    patience = LOCUST_TIMING.fallback_interval + 25.0
    while not ctx.run(1.0, lambda: ctx.how_registered(probe) is not None) and ctx.clock() < sent + patience:
        ctx.workers.send(probe.node_id, MessageType.CLIENT_READY, probe.ready_data)
    if ctx.how_registered(probe) is None:
        excerpt = ctx.master.crash_excerpt() or ctx.master.error_excerpt()
        ctx.fail(
            "master.listener-alive",
            f"the master still reads after a frame with trailing bytes: a new worker registers within {patience:g} s "
            "(its client_ready sent every second)",
            "it did not" + (f"; the master printed: {excerpt}" if excerpt else ""),
        )
    took = (ctx.registered_at(probe) or sent) - sent
    ctx.measurements["read_again_after_s"] = round(took, 3)
    if took > 1.0:
        ctx.finding(
            "master.stall",
            "a new worker registered within 1 s after a frame with trailing bytes (the master goes on reading)",
            f"after {took:.1f} s: the master read nothing from any worker meanwhile",
        )
    ctx.run(1.0, lambda: bool(sender.reconnects))
    if bystander.reconnects:
        ctx.finding(
            "master.reconnect-target",
            f"reconnect (if any) to the sender {sender.node_id}",
            f"reconnect sent to {bystander.node_id}, which sent nothing wrong",
        )
    if not sender.reconnects:
        ctx.finding(
            "master.reconnect",
            "reconnect to the sender (Locust 2.13.2+)",
            "none",
        )


def heartbeat_flood(ctx: MasterCaseContext) -> None:
    flooder = ctx.worker("flooder")
    steady = ctx.worker("steady")
    _register(ctx, flooder)
    _register(ctx, steady)
    sent = ctx.workers.send_many(flooder.node_id, MessageType.HEARTBEAT, heartbeat_data(), FLOOD)
    ctx.measurements["flood_sent"] = sent
    ctx.run(3.0)
    _still_reads(ctx, f"a flood of {sent} heartbeats from one worker")
    ctx.run(2.0)
    if ctx.logged("missing", steady.node_id) or ctx.logged("missing", flooder.node_id):
        ctx.finding(
            "master.missing.false",
            "no worker marked missing during or after another's flood",
            "a worker was marked missing",
        )


def reregister(ctx: MasterCaseContext) -> None:
    """A worker process restarts: its socket closes, a new one with the same identity registers again."""
    worker = ctx.worker("restarted")
    _register(ctx, worker)
    acks_before = len(worker.acks)
    ctx.workers.drop(worker.node_id)
    ctx.run(0.5)  # the old connection is gone before the new one comes (no identity clash on the ROUTER)
    again = ctx.clock()
    ctx.workers.add(worker)  # the same identity, a new socket, client_ready again
    ctx.run(
        REGISTER_WITHIN,
        lambda: (
            len(worker.acks) > acks_before
            or any(e.kind == "ready" and e.node == worker.node_id and e.t >= again for e in ctx.log())
        ),
    )
    if len(worker.acks) == acks_before and not any(
        e.kind == "ready" and e.node == worker.node_id and e.t >= again for e in ctx.log()
    ):
        if acks_before:  # a master that acks: the restarted worker waits for one (Locust 2.10+ exit after ~305 s)
            ctx.fail(
                "master.reregister",
                f"an ack to the restarted worker's client_ready within {REGISTER_WITHIN:g} s",
                "none",
            )
    ctx.run(LOCUST_TIMING.missing_after_max + 1.0)
    if ctx.logged("missing", worker.node_id):
        ctx.finding(
            "master.missing.false",
            "the re-registered worker, heartbeating every second, never marked missing",
            "it was",
        )
    _still_reads(ctx, "a worker re-registered under the same identity")


def stranger_heartbeats(ctx: MasterCaseContext) -> None:
    known = ctx.worker("known")
    _register(ctx, known)
    stranger = ctx.worker("stranger", register=False)
    stranger.heartbeat_from(ctx.clock())  # heartbeats every second, never a client_ready
    ctx.run(3.5)
    _still_reads(ctx, "heartbeats from a worker it never registered")
    if ctx.logged("ready", stranger.node_id) or stranger.acks:
        ctx.finding(
            "master.registers.stranger",
            "a worker that sent no client_ready is not registered",
            "it was (acked or logged as ready)",
        )
    ctx.measurements["stranger_replies"] = len(stranger.replies)


def many_workers(ctx: MasterCaseContext) -> None:
    """``ctx.swarm`` workers register at once and heartbeat for a while: all registered, none missing, replies on time."""
    swarm = [ctx.worker(f"swarm{i:04d}") for i in range(ctx.swarm)]
    ctx.run(10.0, lambda: all(c.acks for c in swarm) or _all_logged(ctx, swarm))
    joined = [c for c in swarm if c.acks or ctx.logged("ready", c.node_id)]
    if len(joined) < len(swarm):
        ctx.finding(
            "master.registers.some" if joined else "master.registers",
            f"all {len(swarm)} workers registered within 10 s",
            f"{len(joined)}",
        )
    start = ctx.clock()
    ctx.run(6.0)
    if any(c.replies for c in swarm):  # a master that replies (2.19+): its replies are judged, once drained
        drain_replies(ctx, swarm)
    answered = [replies_to(c, start) for c in swarm]
    delays = sorted(d for per_worker, _ in answered for d in per_worker)
    unanswered = sum(lost for _, lost in answered)
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))] if delays else None
    ctx.measurements["swarm"] = {
        "workers": len(swarm),
        "registered": len(joined),
        "heartbeats": sum(1 for c in swarm for beat in c.heartbeats_sent if beat >= start),
        "replies": len(delays),
        "reply_p50_ms": round(1000 * delays[len(delays) // 2], 2) if delays else None,
        "reply_p99_ms": round(1000 * p99, 2) if p99 is not None else None,
    }
    missing = [c.node_id for c in swarm if ctx.logged("missing", c.node_id)]
    if missing:
        ctx.finding(
            "master.missing.false",
            f"none of {len(swarm)} workers heartbeating every second marked missing",
            f"{len(missing)} were (e.g. {missing[0]})",
        )
    if delays and unanswered:
        ctx.finding(
            "master.heartbeat-reply.lost",
            f"a reply to each heartbeat (within {REPLY_WITHIN:g} s) with {len(swarm)} workers",
            f"{unanswered} without one",
        )
    elif p99 is not None and p99 > REPLY_WITHIN:
        ctx.finding(
            "master.heartbeat-reply.late",
            f"heartbeat replies within {REPLY_WITHIN:g} s (p99) with {len(swarm)} workers",
            f"p99 {round(1000 * p99)} ms",
        )


def _all_logged(ctx: MasterCaseContext, cores: list[FakeWorkerCore]) -> bool:
    ready = {e.node for e in ctx.log() if e.kind == "ready"}
    return all(c.node_id in ready for c in cores)


# -- a load test: dispatch, quit, stats --------------------------------------------------------

RUN_LAUNCH = Launch(workers=2, users=4, rate=100.0, run_time=8)


def _workers_of_a_run(ctx: MasterCaseContext, b_reports: bool = True) -> tuple[FakeWorkerCore, FakeWorkerCore]:
    a, b = ctx.worker("a"), ctx.worker("b", answer_spawns=b_reports)
    _register(ctx, a)
    _register(ctx, b)
    return a, b


def dispatch(ctx: MasterCaseContext) -> None:
    a, b = _workers_of_a_run(ctx)
    users = RUN_LAUNCH.users
    ctx.run(10.0, lambda: a.assigned() + b.assigned() == users)
    counts = {core.node_id: core.assigned() for core in (a, b)}
    if sum(counts.values()) != users:
        ctx.fail(
            "master.dispatch",
            f"{users} users spread over the 2 workers within 10 s of both registering",
            f"assigned {counts}",
        )
    if sorted(counts.values()) != [users // 2, users - users // 2]:
        ctx.finding(
            "master.dispatch.uneven",
            f"{users} users split evenly: 2 and 2",
            f"{counts}",
        )
    for core in (a, b):
        for _, data in core.spawns:
            problems = check_payload(Message(MessageType.SPAWN, data, core.node_id), Direction.MASTER_TO_WORKER)
            for problem in problems:
                ctx.finding(
                    "master.spawn-schema.deviation" if problem.severity is Severity.DEVIATION else "master.spawn-schema",
                    f"a spawn a Locust worker reads: {problem.expected}",
                    f"{problem.path}: {problem.observed}",
                )
        raw = [d.get("timestamp") if isinstance(d, dict) else None for _, d in core.spawns]
        stamps = [float(s) for s in raw if isinstance(s, int | float)]
        if len(stamps) != len(raw) or any(later <= earlier for earlier, later in itertools.pairwise(stamps)):
            ctx.finding(
                "master.spawn-order",
                "strictly increasing spawn timestamps",
                repr(raw),
            )
    _quit_at_the_end(ctx, (a, b))


def redispatch_on_quit(ctx: MasterCaseContext) -> None:
    """A worker quits mid-run: the master moves its users to the worker left (every 2.x release does)."""
    _quit_and_redispatch(ctx, settle=RAMP_SETTLES)  # the ramp is over (its report wait is 0.1-1 s): the run is running


def quit_during_ramp(ctx: MasterCaseContext) -> None:
    """A worker quits after it has its users, before reporting them (a worker whose users fail to start, say): the
    master is past its dispatcher's last step and waits for the ramp's reports. The quit comes 0.5 s after the
    spawn: one handled before the master's dispatch loop resumes after sending the spawns would be rebalanced by it
    (it checks for a rebalance once), which is another situation. The report wait is short by default (1 s in
    2.47); the case launches the master with 10 s (LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP, which every 2.x
    release reads; ``Launch.report_wait``), so the quit lands in it however loaded the machine is."""
    _quit_and_redispatch(ctx, settle=0.5, b_reports=False)


def _quit_and_redispatch(ctx: MasterCaseContext, settle: float, b_reports: bool = True) -> None:
    a, b = _workers_of_a_run(ctx, b_reports)
    users = RUN_LAUNCH.users
    ctx.run(10.0, lambda: a.assigned() + b.assigned() == users)
    if a.assigned() + b.assigned() != users:
        ctx.fail(
            "master.dispatch",
            f"{users} users over the 2 workers within 10 s",
            f"{a.assigned()} and {b.assigned()}",
        )
    ctx.run(settle)
    b.stop_heartbeats()
    ctx.workers.send(b.node_id, MessageType.QUIT)
    ctx.run(5.0, lambda: a.assigned() == users)
    if a.assigned() != users:
        ctx.finding(
            "master.redispatch",
            f"all {users} users on the worker left within 5 s of the other's quit",
            f"it runs {a.assigned()}",
        )


def _quit_at_the_end(ctx: MasterCaseContext, workers: tuple[FakeWorkerCore, ...]) -> None:
    run_time = float(RUN_LAUNCH.run_time or 0)
    ctx.run(run_time + 8.0, lambda: all(w.quit_at is not None for w in workers))
    without = [w.node_id for w in workers if w.quit_at is None]
    if without:
        ctx.finding(
            "master.quit",
            f"quit to every worker when the {run_time:g} s run ends",
            f"none to {without}",
        )


STATS_REPORTS = ((5, 0), (7, 1), (3, 0))  # (requests, failures) per report, each worker sends all three


def stats_merge(ctx: MasterCaseContext) -> None:
    csv_prefix = ctx.csv_prefix
    a, b = _workers_of_a_run(ctx)
    if not ctx.run(10.0, lambda: a.assigned() > 0 and b.assigned() > 0):
        ctx.fail(
            "master.dispatch",
            "users on both workers within 10 s of both registering",
            f"{a.assigned()} and {b.assigned()}",
        )
    for requests, failures in STATS_REPORTS:
        for core in (a, b):
            ctx.workers.send(core.node_id, MessageType.STATS, core.stats(requests, failures, ctx.wall()).data)
        ctx.run(0.5)
    _quit_at_the_end(ctx, (a, b))
    expected_requests = 2 * sum(r for r, _ in STATS_REPORTS)
    expected_failures = 2 * sum(f for _, f in STATS_REPORTS)
    ctx.master.process.wait(15.0)  # the master writes its CSV as it exits
    row = _aggregated(csv_prefix)
    ctx.measurements["stats_csv"] = row
    if row is None:
        ctx.finding(
            "master.stats-merge.no-report",
            f"the master's {csv_prefix.name}_stats.csv with an Aggregated row",
            "no such file or row after the master exited",
        )
        return
    seen = (row.get("Request Count"), row.get("Failure Count"))
    if seen != (str(expected_requests), str(expected_failures)):
        ctx.finding(
            "master.stats-merge",
            f"Aggregated Request Count {expected_requests} and Failure Count {expected_failures} "
            "(the sums of what the workers reported)",
            f"Request Count {seen[0]}, Failure Count {seen[1]}",
        )


def _aggregated(prefix: Path) -> dict[str, str] | None:
    path = prefix.parent / f"{prefix.name}_stats.csv"
    try:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return dict(row)
    except OSError:
        return None
    return None


# -- the catalog --------------------------------------------------------------------------------


def _case(id: str, title: str, expectation: str, spec: str, body: Callable[[MasterCaseContext], None], **kw: Any) -> MasterCase:
    return MasterCase(id, id.split("/")[0], title, expectation, spec, body, **kw)


CASES: tuple[MasterCase, ...] = (
    _case(
        "handshake/01-ack",
        "client_ready is acked with a worker index",
        "an ack within 1 s, data {'index': n}, a different n per worker (2.10+: ack; 2.11+: index)",
        "locust-protocol 4.1; locust-versions 2",
        ack,
    ),
    _case(
        "handshake/02-reregister",
        "a restarted worker registers again under the same identity",
        "a new ack (or ready line) for the second client_ready; heartbeats go on; never marked missing",
        "locust-protocol 4.1; locust-versions 2",
        reregister,
    ),
    _case(
        "heartbeat/01-replies",
        "each heartbeat gets a reply",
        "one heartbeat reply per worker heartbeat, within 1 s (2.19+)",
        "locust-protocol 4.3; locust-versions 1",
        heartbeat_replies,
    ),
    _case(
        "liveness/01-missing-window",
        "a silent worker is marked missing within Locust's window",
        f"{SILENT_WORKERS} silent workers each marked missing 4-5 s after its last heartbeat; a beating one never",
        "locust-protocol 5.2",
        missing_window,
        budget=30.0,
    ),
    _case(
        "robustness/01-unknown-spawning-complete",
        "spawning_complete from a worker the master never registered",
        "the master keeps reading (2.47: warns and sends quit; before: its listener dies)",
        "locust-versions 5",
        _from_stranger(MessageType.SPAWNING_COMPLETE, {"user_classes_count": {}, "user_count": 0}),
    ),
    _case(
        "robustness/02-unknown-spawning",
        "spawning from a worker the master never registered",
        "the master keeps reading (2.15+: warns and sends quit; before: its listener dies)",
        "locust-versions 7",
        _from_stranger(MessageType.SPAWNING, None),
    ),
    _case(
        "robustness/03-unknown-client-stopped",
        "client_stopped from a worker the master never registered",
        "the master keeps reading (2.10+: warns; before: its listener dies)",
        "locust-versions 7",
        _from_stranger(MessageType.CLIENT_STOPPED, None),
    ),
    _case(
        "robustness/04-client-ready-number",
        "client_ready whose data is a number, not a version",
        "the master keeps reading (2.5+ slice the data: the listener dies on a number)",
        "locust-versions 3",
        odd_client_ready,
    ),
    _case(
        "robustness/05-not-msgpack",
        "a frame that is not msgpack",
        "the master keeps reading (every release's listener dies on it)",
        "locust-protocol 7.2",
        not_msgpack,
    ),
    _case(
        "robustness/06-trailing-bytes",
        "a heartbeat with a trailing byte from a registered worker",
        "the master keeps reading (a new worker registers within 1 s) and sends reconnect to the sender only (2.13.2+)",
        "locust-versions 6",
        trailing_bytes,
    ),
    _case(
        "robustness/07-heartbeat-flood",
        f"{FLOOD:,} heartbeats at once from one worker",
        "the master keeps reading and marks nobody missing",
        "locust-protocol 7.3",
        heartbeat_flood,
    ),
    _case(
        "robustness/08-stranger-heartbeats",
        "heartbeats from a worker the master never registered",
        "the master keeps reading and does not register the stranger (2.19+: a debug line, no reply)",
        "locust-versions 7",
        stranger_heartbeats,
    ),
    _case(
        "load/01-many-workers",
        "a swarm of workers at once (200; master-run --swarm N)",
        "all registered within 10 s, none marked missing, heartbeat replies within 1 s (p99)",
        "locust-protocol 5.2; perf-anchors 2",
        many_workers,
        budget=30.0,
    ),
    _case(
        "dispatch/01-users-split",
        "users are spread over the workers and quit ends the run",
        "4 users over 2 workers, 2 each, in well-formed spawns with increasing timestamps; quit to both at the end",
        "locust-protocol 4.4, 4.8",
        dispatch,
        launch=RUN_LAUNCH,
        needs=(RUN,),
        budget=40.0,
    ),
    _case(
        "dispatch/02-redispatch-on-quit",
        "a worker that quits mid-run has its users moved",
        "after one of 2 workers sends quit, the other runs all 4 users within 5 s",
        "locust-protocol 4.8",
        redispatch_on_quit,
        launch=Launch(workers=2, users=4, rate=100.0, run_time=20),
        needs=(RUN,),
        budget=40.0,
    ),
    _case(
        "dispatch/03-quit-before-report",
        "a worker that quits after its spawn, before reporting it, has its users moved",
        "one of 2 workers quits right after its spawn (no spawning_complete): the other runs all 4 users within 5 s",
        "locust-protocol 4.8",
        quit_during_ramp,
        launch=Launch(workers=2, users=4, rate=100.0, run_time=20, report_wait=10.0),
        needs=(RUN,),
        budget=40.0,
    ),
    _case(
        "stats/01-merge",
        "the master's stats are the sum of its workers' reports",
        "the CSV's Aggregated Request/Failure Count equal the sums of the stats the workers sent",
        "locust-protocol 4.6",
        stats_merge,
        launch=RUN_LAUNCH,
        needs=(RUN,),
        budget=45.0,
    ),
)
