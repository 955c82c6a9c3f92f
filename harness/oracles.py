"""Oracles: judgements over a case's recorded evidence (the wire trace and the worker process).

Each ``check_*`` is a pure function of an ``Evidence`` and returns ``Finding``s;
an empty list means nothing wrong was seen. They never raise for a bad worker.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.consequences import judged
from harness.output import OutputLine, Sign, crash_signs
from harness.protocol.master import master_can_read_heartbeat
from harness.protocol.messages import MessageType
from harness.protocol.schema import Severity
from harness.protocol.timing import Timing
from harness.trace import Kind, TraceRecord, fault_windows
from harness.verdicts import Finding, Verdict

NON_STRICT_GAP = 1.5  # heartbeat gaps above this many intervals are NON-STRICT (the master still accepts them)
# Our own timestamping lags the wire by up to this much on a loaded 2-core machine (the master's receive loop
# and GIL); it is added to the NON-STRICT limit so time compression does not turn our jitter into a verdict.
HARNESS_JITTER = 0.02
REPLY_DEADLINE_INTERVALS = 4.0  # spawn/stop/quit answered within this many heartbeat intervals

# Signals a process dies of when it crashes (not when someone asks it to stop).
CRASH_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP}


@dataclass
class Evidence:
    """Everything a case recorded: the trace, the worker process's fate, and the windows to excuse."""

    records: list[TraceRecord]
    t0: float
    timing: Timing
    end: float  # when observation stopped (absolute, trace clock)
    exit_code: int | None = None  # None: still running when the case ended
    killed_by_harness: bool = False
    output: list[OutputLine] = field(default_factory=list)  # what the worker printed, timed on the trace's clock
    exempt: list[tuple[float, float, str]] = field(default_factory=list)  # absolute windows
    asked_counts: dict[str, int] | None = None
    teardown_at: float | None = None  # when the harness began stopping the worker (trace clock); None: it did not
    exited_at: float | None = None  # when the worker was first seen to have ended (trace clock)
    needed_sigkill: bool = False  # the worker outlived the harness's SIGTERM and was killed
    output_not_judged: str = ""  # what of the output was not kept (a flood of output), said in a finding
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (start, end): the harness itself ran late

    @property
    def node_id(self) -> str | None:
        first = next((r for r in self.records if r.kind is Kind.RECV and r.message is not None), None)
        return first.message.node_id if first and first.message else None

    def received(self, *types: str) -> list[TraceRecord]:
        """Decoded messages from the worker (of ``types``, if given), in trace order."""
        return self._select(Kind.RECV, types)

    def sent(self, *types: str) -> list[TraceRecord]:
        """Messages the master handed to its socket (of ``types``, if given), in trace order."""
        return self._select(Kind.SEND, types)

    def _select(self, kind: Kind, types: tuple[str, ...]) -> list[TraceRecord]:
        index = self.__dict__.get("_index")
        if index is None or self.__dict__.get("_indexed") != len(self.records):  # built once; rebuilt if records grew
            index = {}
            for r in self.records:
                if r.message is not None and r.kind in (Kind.RECV, Kind.SEND):
                    index.setdefault((r.kind, None), []).append(r)
                    index.setdefault((r.kind, r.message.type), []).append(r)
            self.__dict__["_index"], self.__dict__["_indexed"] = index, len(self.records)
        if not types:
            return list(index.get((kind, None), []))
        if len(types) == 1:
            return list(index.get((kind, types[0]), []))
        return sorted((r for t in set(types) for r in index.get((kind, t), [])), key=lambda r: r.seq)

    def rel(self, t: float) -> float:
        return t - self.t0

    def exempted(self, start: float, end: float) -> bool:
        """True if the interval (start, end) overlaps a window in which the harness itself disrupted traffic."""
        return any(a < end and start < b for a, b, _ in self.exempt)


Oracle = Callable[[Evidence], list[Finding]]

# Windows in which the harness itself cut the worker off; heartbeat gaps there are not the worker's.
# Fault plans, storms and master silence are NOT excused: keeping heartbeats going through them is the test.
DISRUPTIONS = frozenset({"pause-reading", "master-down", "master-death"})
# Windows in which a message from the master may not reach the worker at all.
UNREACHABLE = frozenset({"master-down", "master-death", "reconnect"})


def excused_windows(records: Iterable[TraceRecord]) -> list[tuple[float, float, str]]:
    """The fault windows of ``records`` that excuse heartbeat gaps (the master could not hear the worker)."""
    return [w for w in fault_windows(records) if w[2] in DISRUPTIONS]


def _quit_time(ev: Evidence) -> float | None:
    quits = ev.received(MessageType.QUIT)
    return quits[0].t if quits else None


def check_heartbeat_liveness(ev: Evidence) -> list[Finding]:
    """The real master's missing rule -> FAILED; a gap above 1.5 x interval -> NON-STRICT."""
    findings: list[Finding] = []
    interval = ev.timing.heartbeat_interval
    acks = ev.sent(MessageType.ACK)
    if not acks:
        return findings  # heartbeats are only due once the worker has been acked
    for rec in ev.records:
        if rec.t < acks[0].t:
            continue  # a case that withholds the ack lets the master's counter run down: our doing
        if rec.t > ev.end:
            break  # after the observation ended (the worker was being stopped): not judged
        if rec.kind is Kind.LIVENESS and rec.note == "missing" and not ev.exempted(rec.t - ev.timing.missing_after_max, rec.t):
            findings.append(
                judged(
                    "heartbeat.missing",
                    f"a heartbeat at least every {ev.timing.missing_after_min:g} s (the master's missing rule)",
                    f"the real master's rule marked the worker missing{_last_beat_before(ev, rec.t)}",
                    ev.rel(rec.t),
                )
            )
    worst_at, worst_gap = max(heartbeat_gaps(ev), key=lambda g: g[1], default=(0.0, 0.0))
    limit = NON_STRICT_GAP * interval + HARNESS_JITTER
    if worst_gap > ev.timing.missing_after_max and not any(f.oracle == "heartbeat.missing" for f in findings):
        findings.append(
            judged(
                "heartbeat.missing",
                f"no heartbeat gap above {ev.timing.missing_after_max:g} s",
                f"a {worst_gap:.3f} s gap without heartbeats",
                ev.rel(worst_at),
            )
        )
    elif worst_gap > limit and not findings:
        findings.append(
            judged(
                "heartbeat.gap",
                f"heartbeat gaps of at most {limit:.3f} s (1.5 x interval + {HARNESS_JITTER:g} s)",
                f"a {worst_gap:.3f} s gap",
                ev.rel(worst_at),
            )
        )
    return findings


def heartbeat_gaps(ev: Evidence) -> list[tuple[float, float]]:
    """``(start, length)`` of every silence between readable heartbeats, from the first ack until the worker began
    shutting down (the master's quit, its own, a signal the case sent) or observation ended.

    A window in which the harness could not hear the worker excuses its own span only: the silence before it
    and after it is judged, so heartbeats that never resume after a master restart are a gap like any other.
    """
    acks = ev.sent(MessageType.ACK)
    if not acks:
        return []
    beats = [
        r.t
        for r in ev.received(MessageType.HEARTBEAT)
        if r.t >= acks[0].t and r.message and master_can_read_heartbeat(r.message.data)
    ]
    shutdown = shutdown_began(ev)
    stop = min(ev.end, shutdown[0]) if shutdown is not None else ev.end
    points = [acks[0].t, *[b for b in beats if b <= stop], stop]
    gaps: list[tuple[float, float]] = []
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            gaps += [(start, end - start) for start, end in _unexcused(a, b, ev.exempt) if end > start]
    return gaps


def _unexcused(start: float, end: float, windows: Iterable[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """The parts of ``(start, end)`` outside every window."""
    parts = [(start, end)]
    for w0, w1, _ in sorted(windows):
        kept: list[tuple[float, float]] = []
        for a, b in parts:
            if w1 <= a or w0 >= b:
                kept.append((a, b))
                continue
            if a < w0:
                kept.append((a, w0))
            if w1 < b:
                kept.append((w1, b))
        parts = kept
    return parts


def _last_beat_before(ev: Evidence, t: float) -> str:
    beats = [r.t for r in ev.received(MessageType.HEARTBEAT) if r.t <= t]
    if not beats:
        return " (no heartbeat had arrived at all)"
    return f" after {t - beats[-1]:.3f} s of silence (last heartbeat at t={ev.rel(beats[-1]):.3f}s)"


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


# A case that makes the worker shut down by other means than quit (a signal, a master it is expected to give up on)
# says so with a note starting with this.
SHUTDOWN_NOTE = "worker shutdown begins: "


def shutdown_began(ev: Evidence) -> tuple[float, str] | None:
    """When and why the worker began shutting down on its own: the master's quit, its own quit, or a case's note."""
    moments: list[tuple[float, str]] = []
    sent = ev.sent(MessageType.QUIT)
    if sent:
        moments.append((sent[0].t, "the master's quit"))
    got = ev.received(MessageType.QUIT)
    if got:
        moments.append((got[0].t, "its own quit"))
    note = next((r for r in ev.records if r.kind is Kind.NOTE and r.note.startswith(SHUTDOWN_NOTE)), None)
    if note is not None:
        moments.append((note.t, note.note.removeprefix(SHUTDOWN_NOTE)))
    return min(moments) if moments else None


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


def check_schema(ev: Evidence) -> list[Finding]:
    """Every message the worker sent fits its schema: one finding per violated rule and field, with how many messages
    broke it (``schema.<type>`` for what the real master cannot read, ``schema.deviation.<type>`` for what it reads
    but Locust's own worker never sends)."""
    groups: dict[tuple[str, str, str], list[tuple[TraceRecord, Any]]] = {}
    for rec in ev.received():
        for v in rec.violations:
            if v.rule.startswith(("schema", "type", "direction")):
                family = "schema" if v.severity is Severity.ERROR else "schema.deviation"
                groups.setdefault((family, v.rule.split(".", 1)[-1], v.expected), []).append((rec, v))
    findings = []
    for (family, name, expected), hits in groups.items():
        rec, v = hits[0]
        count = f" ({len(hits)} messages, the first shown)" if len(hits) > 1 else ""
        findings.append(judged(f"{family}.{name}", expected, f"{v.observed}{count}", ev.rel(rec.t)))
    return findings


def check_protocol_order(ev: Evidence) -> list[Finding]:
    """First message client_ready; spawning_complete matches the spawn; states follow the phase; ready after stop."""
    findings: list[Finding] = []
    received = ev.received()
    if received and received[0].message is not None and received[0].message.type != MessageType.CLIENT_READY:
        first = received[0].message.type
        findings.append(
            judged(
                "order.first" if first in ACTED_ON_WHEN_UNKNOWN else "order.first-ignored",
                "client_ready as the worker's first message",
                f"{first} first",
                ev.rel(received[0].t),
            )
        )
    findings += _check_spawn_counts(ev)
    findings += _check_reported_states(ev)
    return findings


# What the real master does with a message from a worker it does not know yet (2.47): it asks a worker that says
# spawning or spawning_complete to quit; it ignores the rest (a heartbeat at debug level; stats are merged anyway).
ACTED_ON_WHEN_UNKNOWN = frozenset({MessageType.SPAWNING, MessageType.SPAWNING_COMPLETE})


def _valid_spawns(ev: Evidence) -> list[TraceRecord]:
    """Spawns the master sent whose timestamp was newer than every earlier one (a conformant worker applies them).

    As Locust's worker (``last_received_spawn_timestamp = 0``), a spawn must also be newer than 0.
    """
    newest = 0.0
    out = []
    for rec in ev.sent(MessageType.SPAWN):
        data = rec.message.data if rec.message else None
        ts = data.get("timestamp") if isinstance(data, dict) else None
        if isinstance(ts, (int, float)) and ts > newest:
            newest = ts
            out.append(rec)
    return out


def _spawn_counts(rec: TraceRecord) -> dict[str, Any] | None:
    data = rec.message.data if rec.message else None
    counts = data.get("user_classes_count") if isinstance(data, dict) else None
    return counts if isinstance(counts, dict) else None


def _match_spawns(ev: Evidence) -> tuple[dict[int, float], list[tuple[TraceRecord, TraceRecord]]]:
    """Pair spawning_completes with the valid spawns they answer.

    A spawning_complete answers any spawn still waiting (in a burst a worker may finish an older one first), the
    newest whose counts it matches; answering spawn k also settles the spawns before it. Returns when each settled
    spawn (by seq) was settled, and every (spawning_complete, spawn) pair whose counts match no waiting spawn.
    """
    events = sorted(
        [(r.t, 0, r) for r in _valid_spawns(ev)] + [(r.t, 1, r) for r in ev.received(MessageType.SPAWNING_COMPLETE)],
        key=lambda e: (e[0], e[1]),
    )
    pending: list[TraceRecord] = []
    settled: dict[int, float] = {}
    wrong: list[tuple[TraceRecord, TraceRecord]] = []
    last: TraceRecord | None = None
    for _, is_done, rec in events:
        if not is_done:
            pending.append(rec)
            last = rec
            continue
        got = _spawn_counts(rec)
        candidates = pending or ([last] if last is not None else [])
        if got is None or not candidates:
            continue
        # The newest spawn it matches: spawns alike in counts (a spawn, a stop, the same spawn again) are all settled.
        matches = [i for i, s in enumerate(candidates) if _counts_match(_spawn_counts(s) or {}, got)]
        matched = matches[-1] if matches else None
        if matched is None:
            wrong.append((rec, candidates[-1]))
        elif pending:
            settled.update((s.seq, rec.t) for s in pending[: matched + 1])
            pending = pending[matched + 1 :]
    return settled, wrong


def _check_spawn_counts(ev: Evidence) -> list[Finding]:
    _, wrong = _match_spawns(ev)
    if not wrong:
        return []
    done, spawn = wrong[0]
    return [
        judged(
            "order.spawn-counts",
            f"spawning_complete counts equal to the spawn's {_spawn_counts(spawn)}",
            f"{_spawn_counts(done)}",
            ev.rel(done.t),
        )
    ]


def _counts_match(asked: dict[str, int], got: dict[str, Any]) -> bool:
    keys = set(asked) | set(got)
    return all(asked.get(k, 0) == got.get(k, 0) for k in keys)


def _check_reported_states(ev: Evidence) -> list[Finding]:
    """After spawning_complete the worker reports running; after its post-stop client_ready, ready."""
    grace = ev.timing.heartbeat_interval  # a heartbeat may cross the change on the wire
    expected: tuple[str, float] | None = None
    for rec in ev.received():
        msg = rec.message
        assert msg is not None
        if msg.type == MessageType.SPAWNING_COMPLETE:
            expected = ("running", rec.t)
        elif msg.type in (MessageType.SPAWNING, MessageType.CLIENT_STOPPED, MessageType.QUIT):
            expected = None
        elif msg.type == MessageType.CLIENT_READY and any(r.t < rec.t for r in ev.received(MessageType.CLIENT_STOPPED)):
            expected = ("ready", rec.t)
        elif msg.type == MessageType.HEARTBEAT and expected is not None and rec.t - expected[1] > grace:
            if _stop_in_flight(ev, expected[1], rec.t):
                expected = None
                continue
            state = msg.data.get("state") if isinstance(msg.data, dict) else None
            if state != expected[0]:
                # The master treats spawning and running alike (both active): only its UI differs.
                spawning = expected[0] == "running" and state == "spawning"
                return [
                    judged(
                        "order.state-spawning" if spawning else "order.state",
                        f"heartbeats reporting {expected[0]!r} after "
                        f"{'spawning_complete' if expected[0] == 'running' else 'client_ready'}",
                        f"state {state!r} {rec.t - expected[1]:.3f} s later",
                        ev.rel(rec.t),
                    )
                ]
    return []


def _stop_in_flight(ev: Evidence, start: float, end: float) -> bool:
    return any(start < r.t < end for r in ev.sent(MessageType.SPAWN, MessageType.STOP, MessageType.QUIT))


def check_replies(ev: Evidence) -> list[Finding]:
    """Every spawn and stop the master sent is answered within the deadline.

    A stop sent to a worker that was ready is not waited for by the real master (its stop check counts a ready
    worker as stopped): left unanswered, it is ``stop.when-ready``. The worker's answer to quit is the exit
    oracle's (``check_exit_after_quit``).
    """
    deadline = REPLY_DEADLINE_INTERVALS * ev.timing.heartbeat_interval
    findings: list[Finding] = []
    rules: list[tuple[str, list[TraceRecord], tuple[str, ...]]] = [
        ("spawn", _valid_spawns(ev), (MessageType.SPAWNING_COMPLETE,)),
        ("stop", ev.sent(MessageType.STOP), (MessageType.CLIENT_STOPPED,)),
    ]
    settled, _ = _match_spawns(ev)
    for name, asks, answers in rules:
        for ask in asks:
            if ask.t + deadline > ev.end or ev.exempted(ask.t, ask.t + deadline):
                continue  # the case did not watch long enough to judge this one
            if name == "spawn":
                answered = settled.get(ask.seq, float("inf")) <= ask.t + deadline  # by a spawning_complete with its counts
            else:
                answered = any(ask.t <= r.t <= ask.t + deadline for r in ev.received(*answers))
            if answered:
                continue
            # A spawn is superseded by a later spawn, stop or quit (a stale spawn supersedes nothing), a stop by a
            # quit, the master's or the worker's own: the master no longer waits for the answer (Locust's master
            # deletes a worker that quits).
            quits = [*ev.sent(MessageType.QUIT), *ev.received(MessageType.QUIT)]
            later = [*_valid_spawns(ev), *ev.sent(MessageType.STOP), *quits] if name == "spawn" else quits
            if any(ask.seq < s.seq and s.t <= ask.t + deadline for s in later):
                continue
            ready = name == "stop" and worker_state_at(ev, ask.t) == "ready"
            findings.append(
                judged(
                    "stop.when-ready" if ready else f"progress.{name}",
                    f"{'/'.join(answers)} within {deadline:.2f} s of {name}",
                    "no answer" + (" (the worker was ready: the real master counts it as stopped)" if ready else ""),
                    ev.rel(ask.t),
                )
            )
            break
    return findings


def worker_state_at(ev: Evidence, t: float) -> str | None:
    """The state the worker was in at ``t`` as the master knew it: its last heartbeat's, moved on by spawns in flight
    and by what it said since (spawning, spawning_complete, client_stopped)."""
    state: str | None = None
    since = float("-inf")
    for rec in ev.received(MessageType.HEARTBEAT):
        if rec.t > t:
            break
        data = rec.message.data if rec.message else None
        state, since = (data.get("state") if isinstance(data, dict) else None), rec.t
    for rec in ev.received(MessageType.SPAWNING, MessageType.SPAWNING_COMPLETE, MessageType.CLIENT_STOPPED):
        if since < rec.t <= t:
            state = {"spawning": "spawning", "spawning_complete": "running"}.get(str(rec.type), "ready")
    if any(since < r.t <= t for r in _valid_spawns(ev)):
        state = "spawning"
    return state


def check_stats(ev: Evidence) -> list[Finding]:
    """Stats reports are internally consistent and never negative (counts never go backwards)."""
    for rec in ev.received(MessageType.STATS):
        data = rec.message.data if rec.message else None
        if not isinstance(data, dict):
            continue
        problem = _stats_problem(data)
        if problem:
            return [judged("stats.integrity", "consistent, non-negative delta counts", problem, ev.rel(rec.t))]
    return []


def check_stats_deltas(ev: Evidence) -> list[Finding]:
    """Reports are deltas, not cumulative.

    Requests are counted per wall-clock second (``num_reqs_per_sec``) and the master adds the reports up. A
    cumulative report repeats earlier seconds with at least their earlier counts; FAILED when a report does so
    for two or more seconds that an earlier report had already seen end (a second that is not the last one of
    that report). A single late request stamped with an earlier second (a thread that read the clock before a
    report was taken) is not that.
    """
    reports: list[tuple[float, dict[int, int]]] = []
    for rec in ev.received(MessageType.STATS):
        data = rec.message.data if rec.message else None
        total = data.get("stats_total") if isinstance(data, dict) else None
        counts = total.get("num_reqs_per_sec") if isinstance(total, dict) else None
        if isinstance(counts, dict):
            per_second = {k: v for k, v in counts.items() if isinstance(k, int) and isinstance(v, int) and v > 0}
            if per_second:
                reports.append((rec.t, per_second))
    closed: dict[int, tuple[int, float]] = {}  # second -> (count, when reported) for seconds a report saw end
    for t_new, new in reports:
        again = sorted(k for k, (count, _) in closed.items() if new.get(k, 0) >= count)
        if len(again) >= 2:
            first = closed[again[0]][1]
            return [
                judged(
                    "stats.deltas",
                    "each report to count only new requests (the master adds the reports up)",
                    f"the report at t={ev.rel(t_new):.3f}s repeats {len(again)} earlier seconds with their full counts "
                    f"(second {again[0]} was first reported at t={ev.rel(first):.3f}s): cumulative counts, "
                    "the master counts them twice",
                    ev.rel(t_new),
                )
            ]
        last = max(new)
        for k, v in new.items():
            if k < last and k not in closed:
                closed[k] = (v, t_new)
    return []


def _stats_problem(data: dict[str, Any]) -> str | None:
    entries = [e for e in data.get("stats", []) if isinstance(e, dict)]
    total = data.get("stats_total") if isinstance(data.get("stats_total"), dict) else None
    counts = data.get("user_classes_count")
    if isinstance(counts, dict) and isinstance(data.get("user_count"), int):
        if data["user_count"] < 0 or any(isinstance(v, int) and v < 0 for v in counts.values()):
            return f"negative user counts: user_count={data['user_count']}, user_classes_count={counts}"
    for entry in [*entries, *([total] if total else [])]:
        name = entry.get("name")
        try:
            n, none, fails = entry["num_requests"], entry["num_none_requests"], entry["num_failures"]
            if min(n, none, fails) < 0:
                return f"{name}: negative counts (num_requests={n}, num_failures={fails})"
            if sum(entry["response_times"].values()) != n - none:
                return (
                    f"{name}: response_times holds {sum(entry['response_times'].values())} samples for {n - none} timed requests"
                )
            if sum(entry["num_reqs_per_sec"].values()) != n:
                return f"{name}: num_reqs_per_sec sums to {sum(entry['num_reqs_per_sec'].values())}, num_requests is {n}"
        except (KeyError, TypeError, AttributeError):
            continue  # the schema oracle reports missing or mistyped fields
    if total and isinstance(data.get("stats"), list):
        per_entry = sum(e.get("num_requests", 0) for e in entries if isinstance(e.get("num_requests"), int))
        if isinstance(total.get("num_requests"), int) and total["num_requests"] != per_entry:
            return f"stats_total counts {total['num_requests']} requests, the entries {per_entry}"
    return None


def check_final_stats_on_quit(ev: Evidence) -> list[Finding]:
    """After the master's quit, a final stats report comes before the worker's quit, or before it exits if it sends
    no quit (optional in the spec: the requests since the last report are lost without it)."""
    unreachable = [(a, b) for a, b, label in ev.exempt if label in UNREACHABLE]
    quits_sent = [q for q in ev.sent(MessageType.QUIT) if not any(a <= q.t <= b for a, b in unreachable)]
    if not quits_sent:
        return []
    asked = quits_sent[0].t
    worker_quit = _quit_time(ev)
    if worker_quit is not None and worker_quit < asked:
        return []  # it had left on its own before the master asked
    if worker_quit is not None:
        until, how = worker_quit, "quit"
    elif ev.exit_code is not None and not ev.killed_by_harness:
        until, how = (ev.exited_at if ev.exited_at is not None else ev.end), "exited (without a quit)"
    else:
        return []  # it never ended: the exit oracle says so
    if any(asked <= r.t <= until for r in ev.received(MessageType.STATS)):
        return []
    return [
        judged(
            "stats.final",
            "a final stats report between the master's quit and the worker's end",
            f"it {how} without a final report: requests made since the last report are lost",
            ev.rel(until),
        )
    ]


def check_exit_after_quit(ev: Evidence, within: float) -> list[Finding]:
    """After the master's quit the worker exits by itself within ``within`` seconds (and says quit, which the real
    master does not wait for).

    A quit sent while the worker could not be reached (the master down or dead, or the worker between two
    connections after a reconnect) may never have arrived: not judged. A pause in reading does not excuse it.
    """
    unreachable = [(a, b) for a, b, label in ev.exempt if label in UNREACHABLE]
    quits = [q for q in ev.sent(MessageType.QUIT) if not any(a <= q.t <= b for a, b in unreachable)]
    if not quits:
        return []
    findings: list[Finding] = []
    if _quit_time(ev) is None:
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


DEFAULT_ORACLES: tuple[Oracle, ...] = (
    check_heartbeat_liveness,
    check_socket_safety,
    check_schema,
    check_protocol_order,
    check_replies,
    check_stats,
    check_stats_deltas,
    check_final_stats_on_quit,
)


EXIT_AFTER_QUIT_INTERVALS = 6.0  # a worker told to quit exits by itself within this many heartbeat intervals


def judge_run(ev: Evidence, extra: Iterable[Oracle] = ()) -> list[Finding]:
    """A whole run's judgement (a case, a repro, a simulation): every default oracle, ``extra``, and the exit
    check after a quit; timing findings made while the harness itself stalled are not the worker's (``overloaded``)."""
    within = EXIT_AFTER_QUIT_INTERVALS * ev.timing.heartbeat_interval
    return overloaded([*judge(ev, (*DEFAULT_ORACLES, *extra)), *check_exit_after_quit(ev, within=within)], ev)


def overload_tolerance(timing: Timing) -> float:
    """How late the harness may run before its own timing can no longer be trusted: a quarter of the interval (a
    heartbeat gap has half an interval of margin before NON-STRICT), at least 50 ms."""
    return max(0.05, 0.25 * timing.heartbeat_interval)


TIMING_ORACLES = ("heartbeat.", "progress")


def overloaded(findings: list[Finding], ev: Evidence) -> list[Finding]:
    """A heartbeat or progress finding that falls in a moment when the harness itself was later than the tolerance
    (``Evidence.stalls``) is never FAILED: it becomes UNKNOWN, harness.overloaded (rerun with fewer cases at once)."""
    if not ev.stalls:
        return findings
    windows = [(a, a + length) for a, length in heartbeat_gaps(ev) if length > NON_STRICT_GAP * ev.timing.heartbeat_interval]
    windows += [(r.t - ev.timing.missing_after_max, r.t) for r in ev.records if r.kind is Kind.LIVENESS and r.note == "missing"]
    out = []
    for f in findings:
        suspect = f.oracle.startswith(TIMING_ORACLES) and f.verdict in (Verdict.FAILED, Verdict.NON_STRICT)
        spans = windows if f.oracle.startswith("heartbeat.") else [(ev.t0, ev.end)]  # an answer could come any time
        hit = [(a, b) for a, b in ev.stalls if any(a < w1 and w0 < b for w0, w1 in spans)] if suspect else []
        if not hit:
            out.append(f)
            continue
        worst = max(b - a for a, b in hit)
        out.append(
            judged(
                "harness.overloaded",
                "a harness on time while it judged the worker's timing",
                f"the harness itself ran {worst:.3f} s late at t={ev.rel(hit[0][1]):.3f}s (more than the "
                f"{overload_tolerance(ev.timing):.3f} s it tolerates), so this cannot be told from the worker's doing: "
                f"{f.oracle} {f.verdict.value}: {f.observed}. Rerun with fewer cases at once (-j 1)",
                f.at,
            )
        )
    return out


def judge(ev: Evidence, oracles: Iterable[Oracle] = DEFAULT_ORACLES) -> list[Finding]:
    """Run every oracle; an oracle that crashes is a harness failure (UNKNOWN), never a pass."""
    findings: list[Finding] = []
    for oracle in oracles:
        try:
            findings += oracle(ev)
        except Exception as exc:  # a bug in our oracle must not read as a pass
            findings.append(judged(f"harness.{oracle.__name__}", "the oracle to run", f"it crashed: {exc!r}"))
    return findings
