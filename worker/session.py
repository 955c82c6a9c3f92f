"""The reference worker's protocol logic, sans-IO: messages and time in, effects out.

The session never touches a socket, a thread or the clock. Its adapter
(``worker.runtime``) feeds it received messages, ``now``, and the user pool's
completions, and carries out the effects it returns. Every phase change goes
through the one transition table in ``harness.protocol.states``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.protocol.messages import LOCUST_VERSION, Direction, Message, MessageType
from harness.protocol.schema import MAY_FAIL, Severity, check_payload
from harness.protocol.states import DEFERS_MESSAGES, TRANSITIONS, Event, Phase, next_phase, wire_state
from harness.protocol.timing import LOCUST_TIMING, Timing
from worker.defects import DEFECTS

# -- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: Message


@dataclass(frozen=True)
class ApplyUsers:
    """Start or stop users so that exactly these per-class counts run; report back with ``spawn_id``."""

    counts: dict[str, int]
    spawn_id: int


@dataclass(frozen=True)
class StopUsers:
    """Stop every user, giving them ``timeout`` seconds; report back when done."""

    timeout: float


@dataclass(frozen=True)
class Reconnect:
    """Close the socket and open a new one with the same identity.

    ``overlap`` > 0 is the ``overlapping-reconnect`` defect: the new socket connects at once and the old one stays
    open that many seconds more.
    """

    overlap: float = 0.0


@dataclass(frozen=True)
class Log:
    level: str
    text: str


@dataclass(frozen=True)
class Exit:
    code: int
    reason: str


Effect = Send | ApplyUsers | StopUsers | Reconnect | Log | Exit

EXIT_OK = 0
EXIT_MASTER_LOST = 1
EXIT_CONNECT_FAILED = 255  # as Locust: sys.exit(-1)

# As Locust's ``logs_reporter``: more new log lines than this in one log interval (a flood of unknown messages, say)
# and the worker sends the list once more, with a warning, then never again (spec 3.8).
MAX_NEW_LOG_LINES = 70
LOGS_DISABLED = (
    f"The worker attempted to send more than {MAX_NEW_LOG_LINES} log lines in one interval. "
    "Further log sending was disabled for this worker."
)

# One log line per kind of ignored message (an unknown type, a malformed frame, ...) per log interval: the first is
# logged as it comes, the rest are counted and summed up in one line when the interval ends. A flood of junk from the
# master must not become a flood of disk writes (and a backlog the worker drains long after the flood ended).
SUMMARY_DEADLINE = "log_summary"

_MAY_FAIL = MAY_FAIL[Direction.MASTER_TO_WORKER]
# The phases in which a master's silence is checked (from the ack until the worker starts quitting).
_SILENCE_CHECKED = frozenset(phase for phase, event in TRANSITIONS if event is Event.MASTER_SILENT)

_QUIT_TEXT = "Got quit message from master, shutting down..."
# The kinds of ignored messages logged once per interval: level, the first line, what the summary counts
# (formatted with the kind's subject and a detail).
_KINDS: dict[str, tuple[str, str, str]] = {
    "unknown": ("warning", "Unknown message type received: {0}", "messages of unknown type {0!r}"),
    "malformed": ("error", "Ignoring malformed {0} from master: {1}", "malformed {0} messages"),
    "frame": ("error", "Skipping malformed frame from master: {1}", "malformed frames ({0})"),
    "ignored": ("warning", "Ignoring {0} in phase {1}", "{0} messages ignored in phase {1}"),
    "stale": (
        "info",
        "Discard spawn message with older or equal timestamp than timestamp of previous spawn message",
        "stale spawn messages (older or equal timestamp)",
    ),
    "again": ("info", _QUIT_TEXT, "quit messages while quitting"),
    "info": ("info", "Received {0} from master: {1}", "{0} messages from master"),
}

# Messages that are handled even while a stop is being waited out (Locust's loop would sleep).
_ALWAYS_HANDLED = {MessageType.QUIT, MessageType.RECONNECT, MessageType.HEARTBEAT}


@dataclass
class _Quieted:
    """A kind of message logged once this interval; ``count`` more have been ignored since without a line."""

    what: str
    level: str
    count: int = 0


@dataclass
class WorkerConfig:
    node_id: str
    timing: Timing = LOCUST_TIMING
    version: str | int = LOCUST_VERSION
    additional_wait_after_stop: float = 0.0
    send_logs: bool = True
    defects: frozenset[str] = frozenset()  # named bugs switched on (worker.defects); empty in the reference worker
    waits_for_ack: bool = True  # False (--locust-compat below 2.10): start at once after client_ready, as workers did


@dataclass
class WorkerSession:
    """A Locust 2.47 worker's protocol behaviour.

    Args:
        config: identity, timing and options.
        report: returns ``stats``/``stats_total``/``errors`` since the last call (a delta); called with
            ``reset=False`` it leaves the counters as they are (only the cumulative-stats defect does that).
        resources: returns (cpu percent, rss bytes) of the process.
    """

    config: WorkerConfig
    report: Callable[[bool], dict[str, Any]]
    resources: Callable[[], tuple[float, int]]
    phase: Phase = Phase.CONNECTING
    reported_state: str = "ready"
    index: int | None = None
    user_classes_count: dict[str, int] = field(default_factory=dict)
    stop_timeout: float = 0.0
    host: str | None = None
    last_spawn_timestamp: float = 0.0
    last_master_heartbeat: float | None = None
    log_lines: list[str] = field(default_factory=list)
    _spawn_id: int = 0
    _attempts: int = 0
    _deadlines: dict[str, float] = field(default_factory=dict)
    _deferred: deque[Message] = field(default_factory=deque)
    _logs_sent: int = 0
    _logs_off: bool = False  # log sending disabled for good (MAX_NEW_LOG_LINES)
    _deaf: bool = False  # only with the deaf-after-garbage defect
    _quieted: dict[tuple[str, str], _Quieted] = field(default_factory=dict)  # logged once this interval: (kind, subject)
    _quiet_since: float = 0.0  # when the current quiet interval began
    _now: float = 0.0  # the latest time the session was told (for the summaries an exit writes)

    # -- helpers -------------------------------------------------------------------------------

    def _msg(self, message_type: str, data: Any = None) -> Send:
        return Send(Message(message_type, data, self.config.node_id))

    def _go(self, event: Event) -> None:
        new = next_phase(self.phase, event)
        if new is None:
            raise AssertionError(f"reference worker bug: no transition for {event} in phase {self.phase}")
        self.phase = new
        self.reported_state = wire_state(new, self.reported_state)

    def _log(self, level: str, text: str) -> Log:
        if not self._logs_off:  # (once log sending is off, nobody reads them: the list stops growing)
            self.log_lines.append(f"{level}: {text}")
        return Log(level, text)

    def _log_kind(self, kind: str, subject: str, detail: str = "") -> list[Effect]:
        """Log the first message of a kind (``_KINDS``) in a log interval; count the rest, summed up when it ends."""
        quieted = self._quieted.get((kind, subject))
        if quieted is not None:  # (the hot path of a flood: no text is built)
            quieted.count += 1
            return []
        level, text, what = _KINDS[kind]
        if not self._quieted:
            self._quiet_since = self._now
            self._deadlines[SUMMARY_DEADLINE] = self._now + self.config.timing.log_report_interval
        self._quieted[(kind, subject)] = _Quieted(what.format(subject, detail), level)
        return [self._log(level, text.format(subject, detail))]

    def _summaries(self) -> list[Effect]:
        """One line per kind with ignored messages; a kind still coming stays quiet for one more interval."""
        elapsed = self._now - self._quiet_since
        effects: list[Effect] = [
            self._log(q.level, f"Ignored {q.count:,} more {q.what} in the last {elapsed:.1f} s")
            for q in self._quieted.values()
            if q.count
        ]
        self._quieted = {key: _Quieted(q.what, q.level) for key, q in self._quieted.items() if q.count}
        self._deadlines.pop(SUMMARY_DEADLINE, None)
        if self._quieted:
            self._quiet_since = self._now
            self._deadlines[SUMMARY_DEADLINE] = self._now + self.config.timing.log_report_interval
        return effects

    def _final_summaries(self) -> list[Effect]:
        """At exit: the counts of the interval cut short, so nothing ignored goes unrecorded."""
        effects = self._summaries()
        self._quieted.clear()
        return effects

    def _defective(self, name: str) -> bool:
        """True if defect ``name`` (see ``worker.defects``) is switched on."""
        assert name in DEFECTS, f"no such defect: {name}"
        return name in self.config.defects

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    @property
    def heartbeating(self) -> bool:
        """True while heartbeats are due (from the ack until the worker exits)."""
        return "heartbeat" in self._deadlines

    def heartbeat(self) -> Send:
        """A heartbeat with the current state and resource usage."""
        cpu, rss = self.resources()
        # DEFECT stale-heartbeat-state: the state is read once at start-up and never again.
        state = "ready" if self._defective("stale-heartbeat-state") else self.reported_state
        return self._msg(MessageType.HEARTBEAT, {"state": state, "current_cpu_usage": cpu, "current_memory_usage": rss})

    # -- inputs --------------------------------------------------------------------------------

    def start(self, now: float) -> list[Effect]:
        """Begin the handshake: ``client_ready``, retried every connect timeout until ``ack``."""
        if self._defective("heartbeat-before-ack"):
            # DEFECT heartbeat-before-ack: heartbeats start now, before the ack, and the first one goes before client_ready.
            self._deadlines["heartbeat"] = now
            return [*self.tick(now), *self._send_client_ready(now)]
        if not self.config.waits_for_ack:
            # As a Locust worker before 2.10 (whose masters never ack): heartbeats and stats start with client_ready.
            return [*self._send_client_ready(now), *self._connected(now)]
        return self._send_client_ready(now)

    def _send_client_ready(self, now: float) -> list[Effect]:
        self._attempts += 1
        self._go(Event.SENT_CLIENT_READY)
        self._deadlines["connect"] = now + self.config.timing.connect_timeout
        return [self._msg(MessageType.CLIENT_READY, self.config.version)]

    def tick(self, now: float) -> list[Effect]:
        """Fire every deadline that is due at ``now`` (heartbeat first: it never waits behind the rest)."""
        effects: list[Effect] = []
        timing = self.config.timing
        self._now = now
        due = {name for name, t in self._deadlines.items() if t <= now}
        if "heartbeat" in due:
            effects.append(self.heartbeat())
            period = timing.heartbeat_interval
            if self._defective("late-heartbeats"):
                period *= 1.7  # DEFECT late-heartbeats: gaps of 1.7 intervals, too short for the master to mark it missing.
            self._deadlines["heartbeat"] = _next_slot(self._deadlines["heartbeat"], period, now)
        if "master_silence" in due:
            effects += self._master_lost(now)
            return effects
        if "connect" in due and self.phase is Phase.CONNECTING:
            effects += self._connect_retry(now)
        if SUMMARY_DEADLINE in due:
            effects += self._summaries()
        if "stats" in due:
            effects.append(self._stats())
            self._deadlines["stats"] = _next_slot(self._deadlines["stats"], timing.report_interval, now)
        if "logs" in due:
            effects += self._logs()
            if self._logs_off:
                del self._deadlines["logs"]
            else:
                self._deadlines["logs"] = _next_slot(self._deadlines["logs"], timing.log_report_interval, now)
        if "ready_after_stop" in due:
            del self._deadlines["ready_after_stop"]
            effects.append(self._msg(MessageType.CLIENT_READY, self.config.version))
            self._go(Event.SENT_CLIENT_READY)
            while self._deferred and self.phase not in DEFERS_MESSAGES:
                effects += self.receive(self._deferred.popleft(), now)
        if "quit" in due:  # users did not report stopping in time: quit anyway
            effects += self._finish_quit()
        return effects

    def _connect_retry(self, now: float) -> list[Effect]:
        retries = self.config.timing.connect_retry_count
        failed = self._log("info", f"Failed to connect to master, retry {self._attempts}/{retries}.")
        if self._defective("no-client-ready-retry"):
            del self._deadlines["connect"]
            return [failed]  # DEFECT no-client-ready-retry: client_ready is sent once; without an ack the worker waits forever.
        if self._attempts > retries:
            summaries = self._final_summaries()
            self._deadlines.clear()
            return [failed, *summaries, Exit(EXIT_CONNECT_FAILED, "no ack from the master")]
        return [failed, *self._send_client_ready(now)]

    def _stats(self) -> Send:
        # DEFECT cumulative-stats: the counters are never reset, so every report repeats all earlier ones.
        data = self.report(not self._defective("cumulative-stats"))
        data["user_classes_count"] = dict(self.user_classes_count)
        data["user_count"] = sum(self.user_classes_count.values())
        if self._defective("stats-backwards"):
            # DEFECT stats-backwards: counters read at different moments: one request fewer than the response
            # times recorded, and a user count that underflows (always negative).
            for entry in [data["stats_total"], *data["stats"]]:
                entry["num_requests"] = sum(entry["response_times"].values()) - 1
            data["user_count"] = -1 - data["user_count"]
        return self._msg(MessageType.STATS, data)

    def _logs(self) -> list[Effect]:
        if not self.config.send_logs or len(self.log_lines) <= self._logs_sent:
            return []
        effects: list[Effect] = []
        if len(self.log_lines) - self._logs_sent > MAX_NEW_LOG_LINES:
            effects.append(self._log("warning", LOGS_DISABLED))  # in the last list sent, as Locust's
            self._logs_off = True
        self._logs_sent = len(self.log_lines)
        return [*effects, self._msg(MessageType.LOGS, {"worker_id": self.config.node_id, "logs": list(self.log_lines)})]

    def _master_lost(self, now: float) -> list[Effect]:
        silent = now - (self.last_master_heartbeat or now)
        self._go(Event.MASTER_SILENT)
        effects: list[Effect] = [
            self._log(
                "error",
                f"Didn't get heartbeat from master in over {self.config.timing.master_heartbeat_timeout:g}s ({silent:.3f}s)",
            ),
            *self._final_summaries(),
            StopUsers(0.0),
            self._msg(MessageType.QUIT),
        ]
        self._go(Event.SENT_QUIT)
        self._deadlines.clear()
        return [*effects, Exit(EXIT_MASTER_LOST, "master heartbeat timeout")]

    def receive(self, message: Message, now: float) -> list[Effect]:
        """Handle one message from the master."""
        self._now = now
        phase, message_type = self.phase, message.type
        if phase is Phase.EXITED or self._deaf:
            return []  # (deaf-after-garbage: the receive loop has died)
        if phase in DEFERS_MESSAGES and message_type not in _ALWAYS_HANDLED:
            self._deferred.append(message)
            return []
        if message_type in _MAY_FAIL:  # (the others have no payload problem that would stop them: a flood's fast path)
            problems = [p for p in check_payload(message, Direction.MASTER_TO_WORKER) if p.severity is Severity.ERROR]
            if problems:
                return self._log_kind("malformed", message_type, str(problems[0]))
        handler = _HANDLERS.get(message_type)
        if handler is None:
            if self.config.defects and self._defective("crash-on-unknown"):
                # DEFECT crash-on-unknown: a message type without a handler raises here, in the socket thread.
                raise KeyError(f"no handler for message type {message.type!r}")
            return self._log_kind("unknown", message_type)
        return handler(self, message, now)

    def malformed(self, description: str, kind: str, now: float) -> list[Effect]:
        """A frame from the master that did not decode (``kind``: the rule it broke): log it and carry on."""
        self._now = now
        if self.phase is Phase.EXITED or self._deaf:
            return []
        if self._defective("deaf-after-garbage"):
            # DEFECT deaf-after-garbage: as Locust 2.47's own worker, the receive loop dies on an undecodable frame;
            # heartbeats go on, but no later message (spawn, stop, quit) is ever handled.
            self._deaf = True
            return [self._log("error", f"Receive loop ended by an undecodable frame: {description}")]
        return self._log_kind("frame", kind, description)

    def users_applied(self, spawn_id: int, counts: dict[str, int]) -> list[Effect]:
        """The user pool finished applying spawn ``spawn_id``; ``counts`` is what now runs."""
        self.user_classes_count = dict(counts)
        if spawn_id != self._spawn_id or self.phase is not Phase.SPAWNING:
            return []  # superseded by a newer spawn, or stopped meanwhile
        if self._defective("stuck-spawning"):
            return []  # DEFECT stuck-spawning: the users run, but spawning_complete is never sent.
        reported = dict(counts)
        if self._defective("wrong-counts"):
            # DEFECT wrong-counts: an off-by-one in the first class, carried into user_count.
            first = next(iter(reported), "")
            reported[first] = reported.get(first, 0) + 1
        self._go(Event.SENT_SPAWNING_COMPLETE)
        return [self._msg(MessageType.SPAWNING_COMPLETE, {"user_classes_count": reported, "user_count": sum(reported.values())})]

    def users_stopped(self, now: float) -> list[Effect]:
        """Every user has stopped (after a stop or a quit)."""
        self.user_classes_count = {k: 0 for k in self.user_classes_count}
        if self.phase is Phase.STOPPING:
            self._go(Event.SENT_CLIENT_STOPPED)
            if not self._defective("no-ready-after-stop"):  # DEFECT no-ready-after-stop: client_ready never follows.
                self._deadlines["ready_after_stop"] = now + self.stop_timeout + self.config.additional_wait_after_stop
            return [self._msg(MessageType.CLIENT_STOPPED)]
        if self.phase is Phase.QUITTING:
            return self._finish_quit()
        return []

    def user_error(self, text: str, traceback: str) -> list[Effect]:
        """A user task raised: report it as Locust's ``exception`` message."""
        if self.phase is Phase.EXITED:
            return []
        return [self._msg(MessageType.EXCEPTION, {"msg": text, "traceback": traceback})]

    def shutdown(self, reason: str) -> list[Effect]:
        """The process is asked to stop (SIGTERM/SIGINT): tell the master and exit."""
        if self._defective("silent-sigterm"):
            self._deadlines.clear()
            return [Exit(EXIT_OK, reason)]  # DEFECT silent-sigterm: exits without telling the master (no quit).
        if self.phase is Phase.EXITED:
            # (no-exit-on-quit: the quit was sent but the process lingers; a signal still ends it.)
            return [Exit(EXIT_OK, reason)] if self._defective("no-exit-on-quit") else []
        self._go(Event.SENT_QUIT)
        summaries = self._final_summaries()
        self._deadlines.clear()
        return [
            *summaries,
            self._log("info", f"Shutting down ({reason})"),
            StopUsers(0.0),
            self._msg(MessageType.QUIT),
            Exit(EXIT_OK, reason),
        ]

    def _finish_quit(self) -> list[Effect]:
        summaries = self._final_summaries()
        self._deadlines.clear()
        effects: list[Effect] = [*summaries, self._stats(), self._msg(MessageType.QUIT)]
        if self._defective("no-final-stats"):
            effects = [e for e in effects if not (isinstance(e, Send) and e.message.type == MessageType.STATS)]
            # DEFECT no-final-stats: straight to quit, the last stats are lost.
        self._go(Event.SENT_QUIT)
        if self._defective("no-exit-on-quit"):
            return effects  # DEFECT no-exit-on-quit: quit is sent, but the process never exits.
        return [*effects, Exit(EXIT_OK, "quit from master")]

    # -- message handlers ------------------------------------------------------------------------

    def _on_ack(self, message: Message, now: float) -> list[Effect]:
        if isinstance(message.data, dict) and "index" in message.data:
            self.index = message.data["index"]
        if self.phase is not Phase.CONNECTING:
            self._go(Event.RECV_ACK)
            return []
        return self._connected(now)

    def _connected(self, now: float) -> list[Effect]:
        self._go(Event.RECV_ACK)
        del self._deadlines["connect"]
        # As Locust: heartbeats, stats and logs start right after the ack.
        self._deadlines.update(heartbeat=now, stats=now, logs=now)
        self._arm_master_silence()
        if not self.config.waits_for_ack:
            return [self._log("info", "Connected to master (not waiting for an ack: --locust-compat below 2.10).")]
        return [self._log("info", f"Connected to master (index {self.index}).")]

    def _on_heartbeat(self, message: Message, now: float) -> list[Effect]:
        self.last_master_heartbeat = now
        self._arm_master_silence()
        return []

    def _arm_master_silence(self) -> None:
        # As Locust: the check runs only once connected and at least one master heartbeat arrived,
        # and it ends when the worker starts quitting.
        if self.last_master_heartbeat is None or self.phase not in _SILENCE_CHECKED:
            return
        if self.config.defects and self._defective("no-master-timeout"):
            return  # DEFECT no-master-timeout: the master-silence check is never armed.
        timeout = self.config.timing.master_heartbeat_timeout
        if self.config.defects and self._defective("impatient-master-timeout"):
            timeout = 2 * self.config.timing.heartbeat_interval  # DEFECT impatient-master-timeout: 2 intervals.
        self._deadlines["master_silence"] = self.last_master_heartbeat + timeout

    def _on_spawn(self, message: Message, now: float) -> list[Effect]:
        if self.phase not in (Phase.READY, Phase.SPAWNING, Phase.RUNNING):
            return self._log_kind("ignored", MessageType.SPAWN.value, str(self.phase))
        job = message.data
        effects: list[Effect] = [self._msg(MessageType.SPAWNING)]  # sent before the timestamp check, as Locust
        # DEFECT accepts-stale-spawn: the timestamp check is missing, so an older spawn is applied.
        if job["timestamp"] <= self.last_spawn_timestamp and not self._defective("accepts-stale-spawn"):
            self._go(Event.RECV_STALE_SPAWN)
            return [*effects, *self._log_kind("stale", MessageType.SPAWN.value)]
        self.last_spawn_timestamp = job["timestamp"]
        self.host = job["host"]
        self.stop_timeout = float(job["stop_timeout"] or 0.0)
        self._go(Event.RECV_SPAWN)
        self._spawn_id += 1
        if self._defective("silent-after-spawn") and "heartbeat" in self._deadlines:
            # DEFECT silent-after-spawn: spawning blocks the heartbeat for 6 intervals; the master marks it missing.
            self._deadlines["heartbeat"] = now + 6 * self.config.timing.heartbeat_interval
        counts = {**{k: 0 for k in self.user_classes_count}, **job["user_classes_count"]}
        return [*effects, ApplyUsers(counts, self._spawn_id)]

    def _on_stop(self, message: Message, now: float) -> list[Effect]:
        if self.phase not in (Phase.READY, Phase.SPAWNING, Phase.RUNNING):
            return self._log_kind("ignored", MessageType.STOP.value, str(self.phase))
        self._go(Event.RECV_STOP)
        return [StopUsers(self.stop_timeout)]

    def _on_quit(self, message: Message, now: float) -> list[Effect]:
        if self.phase is Phase.QUITTING:
            return self._log_kind("again", MessageType.QUIT.value)
        log = self._log("info", _QUIT_TEXT)
        self._go(Event.RECV_QUIT)
        # Heartbeats (if they had started) go on while users stop; stats, logs and the master-silence check end.
        kept = {name: t for name, t in self._deadlines.items() if name in ("heartbeat", SUMMARY_DEADLINE)}
        self._deadlines = {**kept, "quit": now + self.stop_timeout + self.config.timing.heartbeat_interval}
        return [log, StopUsers(self.stop_timeout)]

    def _on_reconnect(self, message: Message, now: float) -> list[Effect]:
        log = self._log("warning", "Received reconnect message from master. Resetting RPC connection.")
        if self._defective("ignores-reconnect"):
            return [log]  # DEFECT ignores-reconnect: logged, but the old socket (and TCP connection) is kept.
        if self._defective("overlapping-reconnect"):
            # DEFECT overlapping-reconnect: the new connection comes up while the old one still holds the identity.
            return [log, Reconnect(overlap=2 * self.config.timing.heartbeat_interval)]
        return [log, Reconnect()]

    def _on_info(self, message: Message, now: float) -> list[Effect]:
        return self._log_kind("info", message.type, f"{message.data!r}"[:250])


def _next_slot(previous: float, interval: float, now: float) -> float:
    """The next tick on a fixed cadence; if we fell more than a period behind, restart from now."""
    nxt = previous + interval
    return nxt if nxt > now else now + interval


_Handler = Callable[[WorkerSession, Message, float], list[Effect]]
_HANDLERS: dict[str, _Handler] = {
    MessageType.ACK: WorkerSession._on_ack,
    MessageType.HEARTBEAT: WorkerSession._on_heartbeat,
    MessageType.SPAWN: WorkerSession._on_spawn,
    MessageType.STOP: WorkerSession._on_stop,
    MessageType.QUIT: WorkerSession._on_quit,
    MessageType.RECONNECT: WorkerSession._on_reconnect,
    MessageType.SPAWNING_COMPLETE: WorkerSession._on_info,
    MessageType.UPDATE_USER_CLASS: WorkerSession._on_info,
}
