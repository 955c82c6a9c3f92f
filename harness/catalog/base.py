"""What a catalog case is, and the context its body drives the fake master and the worker with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import signal

from fakemaster.master import FakeMaster
from harness.launcher import WorkerProcess
from harness.consequences import ROBUSTNESS, judged
from harness.errors import ProtocolViolation
from harness.oracles import SHUTDOWN_NOTE, Oracle
from harness.protocol.messages import MessageType
from harness.protocol.profiles import DEFAULT_PROFILE, MasterProfile
from harness.protocol.timing import Timing
from harness.startup import STARTUP_TIMEOUT, StartupFailed, wait_for_registration
from harness.trace import TraceRecord
from harness.verdicts import Finding
from harness.worker_timing import KEYS

CATEGORIES = ("handshake", "heartbeat", "spawn", "stop-quit", "stats", "reconnect", "malformed", "storms", "timing")


@dataclass(frozen=True)
class Case:
    """One catalog case. ``id`` is stable forever; ``body`` drives the master and raises on a missed deadline."""

    id: str
    category: str
    title: str
    expectation: str
    spec: str  # section of the wire spec (shared/reference/locust-protocol.md)
    body: Callable[[CaseContext], None]
    budget: float  # the most this case may take, in heartbeat intervals (after the worker's first message) ...
    waits: tuple[tuple[str, float], ...] = ()  # ... plus these many of the worker's other periods (worker_timing.KEYS)
    oracles: tuple[Oracle, ...] = ()  # extra oracles beyond the default set
    setup: Callable[[FakeMaster], None] | None = None  # runs on the master before the worker starts
    exclusive: bool = False  # needs a quiet machine (floods): never runs beside other cases
    needs: tuple[str, ...] = ()  # master profile knobs (harness.protocol.profiles) the case is meaningless without

    def not_applicable(self, profile: MasterProfile) -> str | None:
        """Why the case does not apply under ``profile`` (a master that never does what it tests), or None."""
        missing = [knob for knob in self.needs if not getattr(profile, knob)]
        if not missing:
            return None
        return f"does not apply to a {profile.name} master ({profile.stands_for}): it has no {', '.join(missing)}"

    @property
    def kind(self) -> str:
        """``robustness`` for cases that feed input the stock master never sends (malformed frames, floods), else
        ``conformance``: graded alike, reported apart."""
        return "robustness" if self.category in ROBUSTNESS else "conformance"

    def seconds(self, timing: Timing) -> float:
        """The most this case may take at the worker's ``timing`` (what --max-case-seconds compares)."""
        return self.budget * timing.heartbeat_interval + sum(n * float(getattr(timing, KEYS[key])) for key, n in self.waits)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "kind": self.kind,
            "title": self.title,
            "expectation": self.expectation,
            "spec": self.spec,
            "budget_intervals": self.budget,
            "budget_waits": dict(self.waits),
            "needs": list(self.needs),
        }


@dataclass
class CaseContext:
    """The case's handle on the fake master and the worker process; times are in heartbeat intervals."""

    master: FakeMaster
    process: WorkerProcess
    timing: Timing
    user_class: str
    findings: list[Finding] = field(default_factory=list)
    exempt: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def interval(self) -> float:
        return self.timing.heartbeat_interval

    def s(self, intervals: float) -> float:
        """Seconds in ``intervals`` heartbeat intervals."""
        return intervals * self.interval

    def reports(self, n: float) -> float:
        """``n`` of the worker's stats report intervals, in heartbeat intervals (the worker's own ratio)."""
        return n * self.timing.report_interval / self.interval

    def timeouts(self, n: float) -> float:
        """``n`` of the worker's master-silence timeouts, in heartbeat intervals."""
        return n * self.timing.master_heartbeat_timeout / self.interval

    # -- waiting -------------------------------------------------------------------------------

    def first_message(self) -> None:
        """Wait for the worker's first message; raise StartupFailed saying why it never came."""
        failure = wait_for_registration(self.master, self.process)
        if failure is not None:
            raise StartupFailed(failure)

    def expect(self, message_type: str, within: float, where: Callable[[Any], bool] | None = None, what: str = "") -> TraceRecord:
        """The next ``message_type`` within ``within`` intervals whose data satisfies ``where``."""
        predicate = (lambda r: where(r.message.data if r.message else None)) if where else None
        return self.master.expect(message_type, self.s(within), predicate, description=what)

    def expect_none(self, message_type: str, within: float) -> None:
        self.master.expect_none(message_type, self.s(within))

    def observe(self, intervals: float) -> None:
        """Let the worker run unprompted for a while."""
        self.master.sleep(self.s(intervals))

    # -- common sequences ----------------------------------------------------------------------

    def handshake(self) -> None:
        """client_ready (acked automatically, if the master profile acks) and the first heartbeat."""
        self.master.expect(MessageType.CLIENT_READY, STARTUP_TIMEOUT)
        self.first_heartbeat()

    def first_heartbeat(self) -> None:
        """The first heartbeat after client_ready: after the ack, or (a master profile that never acks) without one."""
        # Up to the longest gap the real master tolerates: lateness itself is the liveness oracle's to grade.
        within = self.timing.missing_after_max / self.interval
        profile = self.master.profile
        if profile.acks:
            self.expect(MessageType.HEARTBEAT, within, what="after the ack")
        elif self.master.wait_for(MessageType.HEARTBEAT, self.s(within)) is None:
            raise ProtocolViolation(
                "handshake.ack-required",
                f"heartbeats after client_ready without an ack (a {profile.name} master, Locust {profile.stands_for}, "
                "never acks; Locust workers before 2.10 did not wait for one)",
                f"no heartbeat within {self.s(within):.2f} s of client_ready (a worker that waits for an ack sends none)",
            )

    def spawn(
        self,
        users: int,
        *,
        timestamp: float | None = None,
        stop_timeout: float = 0.0,
        complete: bool = True,
        parsed_options: dict[str, Any] | None = None,
    ) -> TraceRecord | None:
        """Send a spawn for ``users`` of the run's user class; with ``complete``, expect the matching spawning_complete."""
        data = self.master.profile.spawn_payload(
            {self.user_class: users},
            timestamp=self.master.clock.wall() if timestamp is None else timestamp,
            stop_timeout=stop_timeout,
            parsed_options=parsed_options,
        )
        self.master.send(MessageType.SPAWN, data)
        if not complete:
            return None
        done = self.expect(
            MessageType.SPAWNING_COMPLETE,
            4,
            where=lambda d: users_of(d, self.user_class) == users,
            what=f"with user_classes_count {{{self.user_class!r}: {users}}}",
        )
        if self.master.profile.spawning_complete_broadcast:
            # 2.29+: the ramp's end, after the post-ramp wait for reports (not waited out here: nothing hangs on it).
            self.master.broadcast(MessageType.SPAWNING_COMPLETE, {"user_count": users})
        return done

    def quit(self, exit_within: float = 6) -> None:
        """Send quit and give the worker time to answer and exit (the shutdown oracles judge both; the real master
        does not wait for the worker's quit)."""
        self.master.send(MessageType.QUIT)
        self.master.wait_for(MessageType.QUIT, self.s(4))
        self.process.wait(self.s(exit_within))

    def require_exit(self, within: float) -> None:
        """Expect the process to end within ``within`` intervals (FAILED shutdown.exit if it does not)."""
        self.require_exit_s(self.s(within))

    def require_exit_s(self, seconds: float) -> None:
        code = self.process.wait(seconds)
        if code is None:
            self.note("shutdown.exit", f"the process exits within {seconds:.2f} s", "still running")

    def signal_worker(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the worker's process group as its OS would; what it prints from then on is its shutdown."""
        self.master.note(f"{SHUTDOWN_NOTE}{sig.name} sent by the case")
        self.process.signal_group(sig)

    def shutdown_expected(self, why: str) -> None:
        """From now on the worker is expected to be shutting down on its own (its output is judged as a shutdown's)."""
        self.master.note(f"{SHUTDOWN_NOTE}{why}")

    def note(self, oracle: str, expected: str, observed: str) -> None:
        """Record a case-specific finding, graded by its consequence (harness.consequences)."""
        self.findings.append(judged(oracle, expected, observed, self.master.clock.now() - self.master.trace.t0))

    def exempt_window(self, start: float, end: float, label: str) -> None:
        """Heartbeat gaps in [start, end] (trace clock) are the harness's doing, not the worker's."""
        self.exempt.append((start, end, label))


def total_users(data: Any) -> int | None:
    """The users a spawning_complete or stats report says run in all, summed over ``user_classes_count`` (what the
    real master reads; ``user_count`` is left to the schema oracle)."""
    counts = data.get("user_classes_count") if isinstance(data, dict) else None
    if not isinstance(counts, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        return None
    return sum(counts.values())


def users_of(data: Any, user_class: str) -> int | None:
    """The users of ``user_class`` a spawning_complete or stats report says run: from ``user_classes_count``, the only
    count the real master reads (``user_count`` is for its UI)."""
    if isinstance(data, dict) and isinstance(data.get("user_classes_count"), dict):
        value = data["user_classes_count"].get(user_class, 0)
        return value if isinstance(value, int) else None
    return None


ACTIVE = ("running", "spawning")  # states the real master treats alike: a worker with users
REGISTRY: dict[str, Case] = {}
Body = Callable[[CaseContext], None]


def case(
    id: str,
    category: str,
    title: str,
    expectation: str,
    spec: str,
    budget: float,
    *,
    waits: dict[str, float] | None = None,
    oracles: tuple[Oracle, ...] = (),
    setup: Callable[[FakeMaster], None] | None = None,
    exclusive: bool = False,
    needs: tuple[str, ...] = (),
) -> Callable[[Body], Body]:
    """Register a case body under a stable id; ``needs``: the master profile knobs it applies under."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    unknown_knobs = [knob for knob in needs if knob not in {*DEFAULT_PROFILE.knobs(), "acks"}]
    if unknown_knobs:
        raise ValueError(f"unknown master profile knobs {unknown_knobs} in needs of {id}")
    unknown = set(waits or {}) - set(KEYS)
    if unknown:
        raise ValueError(f"unknown periods {sorted(unknown)} in waits of {id}")

    def register(body: Body) -> Body:
        if id in REGISTRY:
            raise ValueError(f"duplicate case id {id}")
        REGISTRY[id] = Case(
            id, category, title, expectation, spec, body, budget, tuple((waits or {}).items()), oracles, setup, exclusive, needs
        )
        return body

    return register
