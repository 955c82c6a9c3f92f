"""In-memory deterministic simulation: the reference worker's protocol logic and the master's core, joined.

``worker.session.WorkerSession`` (the reference worker, sans-IO) and
``harness.protocol.master.MasterCore`` (the fake master's decisions, sans-IO)
exchange encoded frames through in-memory links on a simulated clock: no
sockets, threads or sleeps, and the same inputs always give the same trace.
Time advances from event to event (worker deadlines, master liveness ticks,
deliveries, users finishing), so hours of protocol time take milliseconds.

The trace is made of the fake master's own ``TraceRecord``s, so the catalog's
oracles judge a simulation exactly as they judge a real run; a few checks only
a simulation can make (``check_simulation``) are added. ``SimulationMachine``
drives it with a Hypothesis ``RuleBasedStateMachine``; ``simulate`` replays a
``harness.schedule.Schedule``.
"""

from __future__ import annotations

import heapq
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from harness.consequences import judged
from harness.errors import MalformedFrame
from harness.faults import MALFORMED_KINDS, malformed_frames
from harness.oracles import REPLY_DEADLINE_INTERVALS, Evidence, excused_windows, judge_run
from harness.output import OutputLine
from harness.protocol.codec import decode, encode
from harness.protocol.master import Inbound, MasterCore
from harness.protocol.messages import Message, MessageType
from harness.protocol.schema import Severity
from harness.protocol.timing import LOCUST_TIMING, LivenessChange, Timing
from harness.schedule import STORM_MIXES, Schedule, Step
from harness.trace import Kind, TraceRecord, window_note
from harness.verdicts import Finding, Verdict, worst
from worker.session import EXIT_OK, ApplyUsers, Effect, Exit, Log, Reconnect, Send, StopUsers, WorkerConfig, WorkerSession
from worker.stats import RequestStats

NODE = "sim_worker"
USER_CLASS = "ConformanceUser"
WALL0 = 1_700_000_000.0  # the simulated wall clock at t=0 (spawn timestamps, per-second stats keys)
LATENCY = 0.0005  # one-way link latency, seconds
RECONNECT_DELAY = 0.05  # as worker.runtime: the new socket connects this long after a reconnect
EXIT_CRASH = 70  # the reference runtime's exit code when its socket thread dies
SIM_TIMING = LOCUST_TIMING.compressed(1.0)  # real Locust timing: the simulation costs nothing per second


INSPECT_CACHE_SIZE = 4096
_INSPECTED: dict[bytes, Inbound] = {}


_Event = tuple[float, int, Callable[[], None]]  # when, insertion order (ties), what


@dataclass
class Simulation:
    """One worker and one master, in memory. Drive it with the master's actions and ``advance``."""

    timing: Timing = SIM_TIMING
    defects: frozenset[str] = frozenset()
    seed: int = 0
    user_delay: float = 0.1  # intervals a spawn or a stop takes to take effect
    request_period: float = 1.0  # intervals between one user's requests
    now: float = 0.0
    records: list[TraceRecord] = field(default_factory=list)
    output: list[tuple[float, str]] = field(default_factory=list)  # (when, what the worker logged)
    exit_code: int | None = None

    def __post_init__(self) -> None:
        self._events: list[_Event] = []
        self._order = 0
        self._rng = random.Random(self.seed)
        self.core = MasterCore(self.timing)
        self.session = WorkerSession(
            WorkerConfig(NODE, self.timing, defects=frozenset(self.defects)),
            report=self._report,
            resources=lambda: (1.0, 50_000_000),
        )
        self.stats = RequestStats(WALL0)
        self._users = 0
        self._users_since = 0.0
        self.silenced = False
        self.reading = True
        self._held: list[bytes] = []  # worker frames waiting while the master does not read
        self.drop_replies = 0.0
        self.delay_replies = 0.0
        self.dead = False  # the master is gone for good
        self._worker_online_at = 0.0  # after a reconnect, the new socket connects at this time
        self.reconnects_asked = 0
        self.reconnect_windows: list[list[float]] = []  # [asked, new socket online]: frames sent meanwhile may be lost
        self.reconnects_done = 0
        self.sigterm_at: float | None = None

    # -- the clock -------------------------------------------------------------------------------

    def _at(self, t: float, action: Callable[[], None]) -> None:
        self._order += 1
        heapq.heappush(self._events, (t, self._order, action))

    def start(self) -> Simulation:
        """The master starts ticking; the worker starts its handshake."""
        self.core.start(self.now)
        self._worker(lambda: self.session.start(self.now))
        return self

    def advance(self, seconds: float) -> None:
        """Run every event up to ``now + seconds``."""
        end = self.now + max(0.0, seconds)
        events, inf = self._events, float("inf")
        while True:
            event = events[0][0] if events else inf
            deadline = self.session.next_deadline() if self.exit_code is None else None
            worker = inf if deadline is None else deadline
            tick = inf if self.dead or self.core.next_tick is None else self.core.next_tick
            t = min(event, worker, tick)
            if t > end:
                break
            self.now = max(self.now, t)
            if event == t:  # deliveries and users first, then the worker's timers, then the master's tick
                heapq.heappop(events)[2]()
            elif worker == t:
                self._worker(lambda: self.session.tick(self.now))
            else:
                self._record_liveness(self.core.tick(self.now))
        self.now = end

    # -- the worker side ---------------------------------------------------------------------------

    def _worker(self, step: Callable[[], list[Effect]]) -> None:
        """Run one session input and carry out its effects, as ``worker.runtime`` does; a raise is a crash."""
        if self.exit_code is not None:
            return
        try:
            effects = step()
        except Exception:
            self.output.append((self.now, traceback.format_exc()))
            self.exit_code = EXIT_CRASH
            return
        for effect in effects:
            self._effect(effect)

    def _effect(self, effect: Effect) -> None:
        if isinstance(effect, Send):
            frame = encode(effect.message)
            self._at(max(self.now, self._worker_online_at) + LATENCY, lambda: self._master_receives(frame))
        elif isinstance(effect, ApplyUsers):
            counts, spawn_id = dict(effect.counts), effect.spawn_id
            self._at(self.now + self.user_delay * self.timing.heartbeat_interval, lambda: self._users_applied(spawn_id, counts))
        elif isinstance(effect, StopUsers):
            delay = min(self.user_delay * self.timing.heartbeat_interval, effect.timeout)
            self._at(self.now + delay, self._users_stopped)
        elif isinstance(effect, Reconnect):
            self.reconnects_done += 1
            self._worker_online_at = self.now + RECONNECT_DELAY
            if self.reconnect_windows:
                self.reconnect_windows[-1][1] = self._worker_online_at + LATENCY
        elif isinstance(effect, Log):
            self.output.append((self.now, f"{effect.level}: {effect.text}"))
        elif isinstance(effect, Exit):
            self.exit_code = effect.code
            self._set_users(0)

    def _users_applied(self, spawn_id: int, counts: dict[str, int]) -> None:
        if self.exit_code is None:
            self._set_users(sum(counts.values()))
            self._worker(lambda: self.session.users_applied(spawn_id, counts))

    def _users_stopped(self) -> None:
        if self.exit_code is None:
            self._set_users(0)
            self._worker(lambda: self.session.users_stopped(self.now))

    def _set_users(self, users: int) -> None:
        self._log_requests()
        self._users = users

    def _log_requests(self) -> None:
        """The requests the running users made since the last look: one per user per ``request_period``."""
        period = self.request_period * self.timing.heartbeat_interval
        t = self._users_since + period
        while self._users and t <= self.now:
            for _ in range(self._users):
                self.stats.log_request("GET", "/sim", 10.0, 100, WALL0 + t)
            t += period
        self._users_since = t - period if self._users else self.now

    def _report(self, reset: bool) -> dict[str, Any]:
        self._log_requests()
        return self.stats.take_report(WALL0 + self.now, reset=reset)

    def _worker_receives(self, frames: list[bytes]) -> None:
        if self.exit_code is not None:
            return
        if len(frames) != 1:
            self._worker(lambda: self.session.malformed(f"{len(frames)} frames in one message (expected 1)", "frames", self.now))
            return
        try:
            message = decode(frames[0])
        except MalformedFrame as exc:
            text, rule = str(exc), exc.rule
            self._worker(lambda: self.session.malformed(text, rule, self.now))
            return
        self._worker(lambda: self.session.receive(message, self.now))

    # -- the master side ---------------------------------------------------------------------------

    def _record(self, kind: Kind, **fields: Any) -> TraceRecord:
        record = TraceRecord(len(self.records), self.now, kind, **fields)
        self.records.append(record)
        return record

    def _master_receives(self, frame: bytes) -> None:
        if self.dead:
            return
        if not self.reading:
            self._held.append(frame)
            return
        inbound = _INSPECTED.get(frame)
        if inbound is None:  # identical frames (most heartbeats) decode and validate identically: once is enough
            inbound = self.core.inspect(NODE.encode(), [frame])
            if len(_INSPECTED) < INSPECT_CACHE_SIZE:
                _INSPECTED[frame] = inbound
        broken = inbound.message is None or any(v.severity is Severity.ERROR for v in inbound.violations)
        self._record(
            Kind.RECV,
            identity=NODE,
            message=inbound.message,
            frames=(frame,) if broken else (),
            size=len(frame),
            violations=inbound.violations,
        )
        replies, changes = self.core.react(inbound)
        for reply in replies:
            if reply.type == MessageType.HEARTBEAT:
                if self.silenced:
                    self._record(Kind.FAULT, identity=NODE, message=reply, note="withheld: master-silence")
                    continue
                if self.drop_replies and self._rng.random() < self.drop_replies:
                    self._record(Kind.FAULT, identity=NODE, message=reply, note="dropped")
                    continue
                self._send_frames([encode(reply)], reply, self.delay_replies * self.timing.heartbeat_interval)
            else:
                self._send_frames([encode(reply)], reply)
        self._record_liveness(changes)

    def _record_liveness(self, changes: list[tuple[str, LivenessChange]]) -> None:
        for node, change in changes:
            self._record(Kind.LIVENESS, identity=node, note=str(change))

    def _send_frames(self, frames: list[bytes], message: Message | None, delay: float = 0.0, note: str = "") -> None:
        """Master to worker. While the worker is between sockets (a reconnect) the ROUTER cannot deliver: a
        SEND_FAILED record, as the fake master's ROUTER_MANDATORY socket gives; frames in flight to the old
        socket are lost with it."""
        if self.dead:
            return
        size = sum(map(len, frames))
        if self.now < self._worker_online_at:
            self._record(Kind.SEND_FAILED, identity=NODE, message=message, size=size, note="peer not connected")
            return
        self._record(Kind.SEND, identity=NODE, message=message, size=size, note=note)
        connection = self.reconnects_done

        def arrive() -> None:
            if connection == self.reconnects_done:
                self._worker_receives(frames)

        self._at(self.now + delay + LATENCY, arrive)

    # -- the master's actions ------------------------------------------------------------------------

    def send(self, message_type: str, data: Any = None) -> None:
        message = Message(message_type, data, NODE)
        self._send_frames([encode(message)], message)

    def send_malformed(self, kind: str) -> None:
        self._send_frames(malformed_frames(kind, NODE), None, note=f"malformed:{kind}")

    def spawn(self, users: int, *, stale: bool = False, stop_timeout: float = 0.0) -> None:
        data = {
            "timestamp": 0.0 if stale else WALL0 + self.now,
            "user_classes_count": {USER_CLASS: users},
            "host": None,
            "stop_timeout": stop_timeout,
            "parsed_options": {},
        }
        self.send(MessageType.SPAWN, data)

    def reconnect(self) -> None:
        self.reconnects_asked += 1
        self.reconnect_windows.append([self.now, self.now + 2 * LATENCY])
        self.send(MessageType.RECONNECT)

    def set_reading(self, reading: bool) -> None:
        """Stop or resume reading: held frames are read on resume, in order."""
        if reading != self.reading:
            self._record(Kind.FAULT, note=window_note("pause-reading", "end" if reading else "start"))
        self.reading = reading
        if reading:
            held, self._held = self._held, []
            for frame in held:
                self._master_receives(frame)

    def set_silenced(self, silenced: bool) -> None:
        if silenced != self.silenced:
            self._record(Kind.FAULT, note=window_note("master-silence", "start" if silenced else "end"))
        self.silenced = silenced

    def die(self) -> None:
        """The master is gone for good: nothing is read, sent or ticked any more."""
        if not self.dead:
            self._record(Kind.FAULT, note=window_note("master-death", "start"))
        self.dead = True

    def sigterm(self) -> None:
        """The worker's OS asks it to stop."""
        self.sigterm_at = self.now
        self._worker(lambda: self.session.shutdown("SIGTERM"))

    # -- judging -----------------------------------------------------------------------------------

    def evidence(self) -> Evidence:
        """The recording, judged as a real run's: windows still open (a dead master) last until now."""
        if not self.records or self.records[-1].t < self.now:
            self._record(Kind.NOTE, note="simulation: judged here")
        return Evidence(
            list(self.records),
            0.0,
            self.timing,
            self.now,
            exit_code=self.exit_code,
            output=[OutputLine(t, line) for t, text in self.output for line in text.splitlines()],
            exempt=[*excused_windows(self.records), *((a, b, "reconnect") for a, b in self.reconnect_windows)],
        )

    def judge(self) -> list[Finding]:
        """The catalog's oracles plus the checks only a simulation can make."""
        ev = self.evidence()
        return [
            *judge_run(ev),
            *check_simulation(self),
        ]


def check_simulation(sim: Simulation) -> list[Finding]:
    """What the simulation knows that a trace alone does not: the worker's own actions and the master's intent."""
    findings: list[Finding] = []
    interval = sim.timing.heartbeat_interval
    if sim.reconnects_asked and not sim.reconnects_done and sim.exit_code is None:
        findings.append(judged("reconnect.socket", "a new connection after the master's reconnect", "the old socket was kept"))
    quits = [r for r in sim.records if r.kind is Kind.RECV and r.type == MessageType.QUIT]
    asked = [r.t for r in sim.records if r.kind is Kind.SEND and r.type == MessageType.QUIT]
    if quits and not asked and sim.sigterm_at is None and not sim.dead:
        silent_for = _master_silent_for(sim, quits[0].t)
        if silent_for < sim.timing.master_heartbeat_timeout:
            findings.append(
                judged(
                    "shutdown.unprompted",
                    f"no quit before the master has been silent for {sim.timing.master_heartbeat_timeout:g} s",
                    f"quit after {silent_for:.2f} s without a master heartbeat",
                    quits[0].t,
                )
            )
    if sim.sigterm_at is not None and not any(r.t >= sim.sigterm_at for r in quits):
        findings.append(judged("shutdown.sigterm", "quit sent on SIGTERM", "no quit", sim.sigterm_at))
    if sim.dead and sim.exit_code is None:
        dead_at = next(r.t for r in sim.records if r.note == window_note("master-death", "start"))
        limit = sim.timing.master_heartbeat_timeout + 2 * interval
        if sim.now - dead_at > limit:
            findings.append(
                judged(
                    "shutdown.master-death",
                    f"the worker gives up within {limit:g} s of the master's death",
                    f"still running {sim.now - dead_at:.1f} s later",
                    dead_at,
                )
            )
    return findings


def _master_silent_for(sim: Simulation, t: float) -> float:
    beats = [r.t for r in sim.records if r.kind is Kind.SEND and r.type == MessageType.HEARTBEAT and r.t <= t]
    acked = [r.t for r in sim.records if r.kind is Kind.SEND and r.type == MessageType.ACK and r.t <= t]
    last = max(beats or acked or [0.0])
    return t - last


# -- replaying a schedule ---------------------------------------------------------------------------

SIM_STORM_CAP = 40  # messages per storm step: without threads a storm is only volume, and volume is cheap to prove


@dataclass
class SimResult:
    findings: list[Finding]
    verdict: Verdict
    worst_gap: float | None  # intervals


def simulate(
    schedule: Schedule, *, timing: Timing = SIM_TIMING, defects: frozenset[str] = frozenset(), seed: int = 0
) -> SimResult:
    """Run ``schedule`` in memory against the reference worker's session (with ``defects``)."""
    sim = Simulation(timing, defects, seed).start()
    interval = timing.heartbeat_interval
    sim.advance(0.01 * interval)
    for step in schedule.steps:
        _simulate_step(sim, step, interval)
    sim.advance((REPLY_DEADLINE_INTERVALS + 1) * interval)
    if schedule.quit_at_end:
        sim.send(MessageType.QUIT)
        sim.advance(7 * interval)
    findings = sim.judge()
    gaps = [(b - a) / interval for a, b in _beat_pairs(sim)]
    return SimResult(findings, worst(f.verdict for f in findings), max(gaps, default=None))


def _beat_pairs(sim: Simulation) -> list[tuple[float, float]]:
    beats = [r.t for r in sim.records if r.kind is Kind.RECV and r.type == MessageType.HEARTBEAT]
    return list(zip(beats, beats[1:], strict=False))


def _simulate_step(sim: Simulation, step: Step, interval: float) -> None:
    seconds = step.intervals * interval
    if step.action == "storm":
        count = min(SIM_STORM_CAP, int(step.threads * step.rate * seconds))
        kinds = [name for name, _ in STORM_MIXES[step.mix]]
        for i in range(count):
            kind = kinds[i % len(kinds)]
            sim.advance(seconds / max(count, 1))
            if kind == "heartbeat":
                sim.send(MessageType.HEARTBEAT)
            elif kind.startswith("malformed:"):
                sim.send_malformed(kind.split(":", 1)[1])
            else:
                sim.send("lc_storm_noise", {"i": i})
        return
    windows: dict[str, Callable[[bool], None]] = {
        "silence": sim.set_silenced,
        "pause-reading": lambda on: sim.set_reading(not on),
    }
    if step.action in windows:
        windows[step.action](True)
        sim.advance(seconds)
        windows[step.action](False)
        return
    if step.action in ("delay-replies", "drop-replies"):
        sim.delay_replies, sim.drop_replies = step.delay, step.probability
        sim.advance(seconds)
        sim.delay_replies = sim.drop_replies = 0.0
        return
    actions: dict[str, Callable[[], None]] = {
        "quiet": lambda: None,
        "heartbeat": lambda: sim.send(MessageType.HEARTBEAT),
        "spawn": lambda: sim.spawn(step.users),
        "stale-spawn": lambda: sim.spawn(step.users, stale=True),
        "stop": lambda: sim.send(MessageType.STOP),
        "reconnect": sim.reconnect,
        "duplicate-ack": lambda: sim.send(MessageType.ACK, {"index": 0}),
        "unknown": lambda: sim.send("lc_unknown_type", {}),
        "malformed": lambda: sim.send_malformed(step.kind),
    }
    actions[step.action]()
    sim.advance(seconds)


# -- the state machine -------------------------------------------------------------------------------

ACCEPTED = frozenset({Verdict.OK, Verdict.INFORMATIONAL})
_intervals = st.integers(0, 24).map(lambda q: q / 4)


class SimulationMachine(RuleBasedStateMachine):
    """Random master behaviour against the reference worker's session; every oracle must stay quiet.

    Subclass with ``DEFECTS`` set to a defect's name to see the same machine catch it.
    """

    DEFECTS: frozenset[str] = frozenset()
    ONLY: frozenset[str] | None = None  # judge with these oracles alone ("crash", "exit.unprompted": the invariants)

    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation(SIM_TIMING, self.DEFECTS)
        self.interval = SIM_TIMING.heartbeat_interval
        self.quit_sent = False

    @initialize(ack_after=st.sampled_from((0.0, 0.0, 0.0, 6.0, 12.0)))
    def connect(self, ack_after: float) -> None:
        """The worker connects; the master acks at once, or only after withholding its acks for a while."""
        if ack_after:
            self.sim.core.auto_ack = False
        self.sim.start()
        if ack_after:
            self.sim.advance(ack_after * self.interval)
            self.sim.core.auto_ack = True
            self.sim.advance(self.sim.timing.connect_timeout + self.interval)
        self.sim.advance(0.01 * self.interval)

    @rule(intervals=_intervals)
    def wait(self, intervals: float) -> None:
        self.sim.advance(intervals * self.interval)

    @precondition(lambda self: not self.quit_sent)
    @rule(users=st.integers(0, 6), stale=st.booleans(), stop_timeout=st.sampled_from((0.0, 0.0, 1.0)))
    def spawn(self, users: int, stale: bool, stop_timeout: float) -> None:
        self.sim.spawn(users, stale=stale, stop_timeout=stop_timeout * self.interval)

    @precondition(lambda self: not self.quit_sent)
    @rule()
    def stop(self) -> None:
        self.sim.send(MessageType.STOP)

    @precondition(lambda self: not self.quit_sent)
    @rule(message=st.sampled_from(("heartbeat", "ack", "reconnect", "unknown", "spawning_complete")))
    def send(self, message: str) -> None:
        if message == "reconnect":
            self.sim.reconnect()
        elif message == "ack":
            self.sim.send(MessageType.ACK, {"index": 0})
        elif message == "unknown":
            self.sim.send("lc_unknown_type", {"x": 1})
        elif message == "spawning_complete":
            self.sim.send(MessageType.SPAWNING_COMPLETE, {"user_classes_count": {}, "user_count": 0})
        else:
            self.sim.send(message)

    @rule(kind=st.sampled_from(MALFORMED_KINDS))
    def malformed(self, kind: str) -> None:
        self.sim.send_malformed(kind)

    @rule(intervals=_intervals)
    def silence(self, intervals: float) -> None:
        self.sim.set_silenced(True)
        self.sim.advance(intervals * self.interval)
        self.sim.set_silenced(False)

    @rule(intervals=st.integers(0, 12).map(lambda q: q / 4))
    def pause_reading(self, intervals: float) -> None:
        self.sim.set_reading(False)
        self.sim.advance(intervals * self.interval)
        self.sim.set_reading(True)

    @rule(delay=st.sampled_from((0.0, 0.5, 1.5)), drop=st.sampled_from((0.0, 0.5, 1.0)), intervals=_intervals)
    def faulty_replies(self, delay: float, drop: float, intervals: float) -> None:
        self.sim.delay_replies, self.sim.drop_replies = delay, drop
        self.sim.advance(intervals * self.interval)
        self.sim.delay_replies = self.sim.drop_replies = 0.0

    @precondition(lambda self: not self.quit_sent)
    @rule()
    def quit(self) -> None:
        self.quit_sent = True
        self.sim.send(MessageType.QUIT)

    @precondition(lambda self: not self.quit_sent)
    @rule()
    def sigterm(self) -> None:
        self.quit_sent = True
        self.sim.sigterm()

    @precondition(lambda self: not self.quit_sent and not self.sim.dead)
    @rule()
    def master_dies(self) -> None:
        self.quit_sent = True
        self.sim.die()
        self.sim.advance(self.sim.timing.master_heartbeat_timeout + 3 * self.interval)

    def _judged(self, oracle: str) -> bool:
        return self.ONLY is None or oracle in self.ONLY

    @invariant()
    def worker_alive_unless_told(self) -> None:
        if self.sim.exit_code == EXIT_CRASH and self._judged("crash"):
            raise AssertionError(f"the worker crashed:\n{self.sim.output[-1][1]}")
        unprompted = self.sim.exit_code not in (None, EXIT_OK, EXIT_CRASH) and not (self.quit_sent or self.sim.dead)
        if unprompted and self._judged("exit.unprompted"):
            raise AssertionError(f"the worker exited with {self.sim.exit_code} unprompted")

    def teardown(self) -> None:
        """Let pending requests reach their deadlines, then every oracle must pass."""
        self.sim.advance((REPLY_DEADLINE_INTERVALS + 2) * self.interval)
        bad = [f for f in self.sim.judge() if f.verdict not in ACCEPTED and self._judged(f.oracle)]
        if bad:
            raise AssertionError("\n".join(map(str, bad)))


def machine_for(defects: frozenset[str], only: frozenset[str] | None = None) -> type[SimulationMachine]:
    """The state machine against the reference worker's session with ``defects`` switched on, judging with the
    oracles in ``only`` alone (None: every oracle and invariant)."""
    name = "SimulationMachine_" + "_".join(sorted(d.replace("-", "_") for d in defects))
    return type(name, (SimulationMachine,), {"DEFECTS": frozenset(defects), "ONLY": only})


def run_machine(
    defects: frozenset[str] = frozenset(),
    *,
    examples: int = 200,
    steps: int = 10,
    shrink: bool = True,
    only: frozenset[str] | None = None,
) -> None:
    """Run the state machine for ``examples`` examples; raises AssertionError (with the steps, shrunk unless
    ``shrink`` is False) on a failure. ``only`` limits the judging to those oracles (see ``machine_for``)."""
    test_settings = settings(
        max_examples=examples,
        phases=(Phase.explicit, Phase.generate, Phase.shrink) if shrink else (Phase.explicit, Phase.generate),
        stateful_step_count=steps,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )
    run: Callable[..., None] = run_state_machine_as_test  # typed in some Hypothesis releases, not in others
    run(machine_for(defects, only), settings=test_settings)
