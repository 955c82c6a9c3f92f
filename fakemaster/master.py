"""FakeMaster: a scriptable Locust master on a ZeroMQ ROUTER bound to 127.0.0.1.

Exactly one thread owns the socket; every public method here may be called from any thread, checks its
arguments, and hands its work to that thread. Every frame in both directions is recorded in ``trace`` with
a monotonic timestamp. The parts, each in a module of its own:

- ``fakemaster.socket_loop``: the ROUTER and its owner thread (binding, the receive path, the send path,
  liveness ticks, the lag probe), with ``fakemaster.socket_monitor`` for connection notes;
- ``fakemaster.outbound_faults``: the fault plan (``harness.faults``) applied to everything the master
  sends except storms;
- ``fakemaster.pauses``: pauses in reading, heartbeat silences; ``fakemaster.restarts``: restarts, death;
- ``fakemaster.storm``: send storms; ``fakemaster.waits``: waits and expectations for scripts;
  ``fakemaster.views``: snapshots of the registered workers.

Every fault applied, and the start and end of every fault window (``harness.trace.window_note``), is a
``Kind.FAULT`` record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fakemaster.pauses import Pauses
from fakemaster.restarts import Restarts
from fakemaster.socket_loop import SocketLoop
from fakemaster.storm import JOIN_SLACK, StormHandle, StormRegistry, StormResult, StormSpec
from fakemaster.views import WorkerViews
from fakemaster.waits import Predicate, TraceWaits
from harness.clock import Clock, MonotonicClock
from harness.errors import ScenarioError
from harness.faults import FaultPlan, malformed_frames
from harness.protocol.codec import DEFAULT_MAX_FRAME_BYTES, encode
from harness.protocol.master import MasterCore, WorkerView
from harness.protocol.messages import Message
from harness.protocol.profiles import DEFAULT_PROFILE, NO_ACK_NOTE, MasterProfile
from harness.protocol.timing import LOCUST_TIMING, Timing
from harness.trace import Kind, Trace, TraceRecord


def _check_seconds(what: str, seconds: Any, optional: bool = False) -> None:
    if optional and seconds is None:
        return
    if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds) and seconds >= 0):
        raise ScenarioError(f"{what}: expected a non-negative number of seconds{' or None' if optional else ''}, got {seconds!r}")


class FakeMaster:
    """A Locust-like master whose behaviour is switchable and whose traffic is recorded.

    Args:
        host: the address to bind; loopback only by default.
        port: 0 binds a free port (see ``port`` once started); a restart rebinds the same one.
        timing: Locust's intervals, possibly time-compressed.
        auto_ack / auto_heartbeat / track_liveness: the real master's automatic behaviours.
        profile: the Locust master release range to behave like (``harness.protocol.profiles``; default 2.47):
            whether and how it acks and answers heartbeats, its spawn payloads, and its quirks.
        clock: the clock for timestamps and deadlines.
        monitor: record connection accepted/disconnected notes from a ZeroMQ socket monitor.
        sockopts: extra ROUTER options set before binding (``{zmq.SNDHWM: 10}``); Locust's defaults otherwise.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timing: Timing = LOCUST_TIMING,
        auto_ack: bool = True,
        auto_heartbeat: bool = True,
        track_liveness: bool = True,
        clock: Clock | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        monitor: bool = True,
        sockopts: Mapping[int, int] | None = None,
        profile: MasterProfile = DEFAULT_PROFILE,
    ) -> None:
        self.clock = clock or MonotonicClock()
        self.timing = timing
        self.profile = profile
        self.core = MasterCore(timing, auto_ack, auto_heartbeat, track_liveness, max_frame_bytes, profile)
        self.trace = Trace(t0=self.clock.now())
        self._loop = loop = SocketLoop(
            host,
            port,
            clock=self.clock,
            timing=timing,
            core=self.core,
            trace=self.trace,
            monitor=monitor,
            sockopts=sockopts or {},
        )
        self.lag = loop.lag  # how late the socket thread's own timers ran (harness overload, not the worker's doing)
        self._owner = loop.owner  # the socket thread (benches measure it)
        self._send_frames = loop.send_frames  # the ROUTER send, owner thread only, bypassing faults (storms, benches)
        self._faults = loop.faults
        self._pauses = Pauses(loop)
        self._restarts = Restarts(loop)
        loop.add_timer(self._pauses)  # in one turn: the fault plan's deliveries, then ends of pauses, then a rebind
        loop.add_timer(self._restarts)
        self._waits = TraceWaits(self.trace, self.clock)
        self._views = WorkerViews(self._owner, self.core, self.trace)
        self._storms = StormRegistry(self, self.clock.now)

    @property
    def host(self) -> str:
        """The bound address."""
        return self._loop.host

    @property
    def port(self) -> int:
        """The bound port (0 until started)."""
        return self._loop.port

    @property
    def endpoint(self) -> str:
        """The ROUTER's address, for workers to connect to."""
        return self._loop.endpoint

    @property
    def cursor(self) -> int:
        """``expect`` and ``wait_for`` search the records after this sequence number."""
        return self._waits.cursor

    @cursor.setter
    def cursor(self, seq: int) -> None:
        self._waits.cursor = seq

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeMaster:
        """Bind the ROUTER and start the socket thread."""
        self._loop.start()
        self.note(f"master bound on tcp://{self.host}:{self.port}")
        profile = self.profile
        self.note(f"master profile {profile.name} (Locust {profile.stands_for}){'' if profile.acks else ': ' + NO_ACK_NOTE}")
        return self

    def close(self) -> None:
        """Cancel running storms, then stop the socket thread (the trace stays readable)."""
        self._storms.stop_all(self.note)
        self._owner.stop()

    def __enter__(self) -> FakeMaster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults (any thread) -----------------------------------------------------------------

    def install_faults(self, plan: FaultPlan) -> None:
        """Apply ``plan`` to every message sent from now on (replacing any previous plan; its held messages go now)."""
        if not isinstance(plan, FaultPlan):
            raise ScenarioError(f"install_faults takes a FaultPlan, got {type(plan).__name__}")
        self._owner.call(lambda: self._faults.install(plan))

    def clear_faults(self) -> None:
        """Stop applying faults; held messages are released now, delayed ones still arrive on time."""
        self._owner.call(lambda: self._faults.install(None))

    def pause_reading(self, seconds: float | None = None) -> None:
        """Stop reading the ROUTER, so the workers' sends pile up against the high-water marks.

        With ``seconds``, reading resumes by itself then; otherwise at ``resume_reading``. Peers still
        connect and disconnect meanwhile (libzmq's commands keep running, see ``harness.owner``): only
        messages wait.
        """
        _check_seconds("pause_reading", seconds, optional=True)
        self._owner.call(lambda: self._pauses.pause_reading(seconds))

    def resume_reading(self) -> None:
        """Read the ROUTER again (no-op if reading)."""
        self._owner.call(self._pauses.resume_reading)

    def silence(self, seconds: float | None = None) -> None:
        """Stop answering heartbeats (everything else goes on), for ``seconds`` or until ``end_silence``."""
        _check_seconds("silence", seconds, optional=True)
        self._owner.call(lambda: self._pauses.silence(seconds))

    def end_silence(self) -> None:
        """Answer heartbeats again (no-op if not silenced)."""
        self._owner.call(self._pauses.end_silence)

    def restart(self, down_for: float) -> None:
        """Close the ROUTER, forget every worker, and rebind the same port ``down_for`` seconds later.

        Sends while down are recorded as SEND_FAILED "master down"; workers' DEALERs reconnect by
        themselves. Returns at once: wait for the ``master-down end`` FAULT record to see the rebind.
        """
        _check_seconds("restart", down_for)
        self._owner.call(lambda: self._restarts.restart(down_for))

    def die(self) -> None:
        """Close the ROUTER for good; the trace stays readable, sends fail as SEND_FAILED "master dead"."""
        self._owner.call(self._restarts.die)

    def fault_note(self, text: str) -> None:
        """Append a FAULT record (window edges come from ``harness.trace.window_note``); any thread."""
        self._loop.fault_note(text)

    # -- storms (any thread) -----------------------------------------------------------------

    def storm(self, spec: StormSpec) -> StormResult:
        """Run a storm to its end and return what it did (see ``fakemaster.storm``)."""
        return self.storm_async(spec).join(spec.duration + 2 * JOIN_SLACK)

    def storm_async(self, spec: StormSpec) -> StormHandle:
        """Start a storm and return at once; ``handle.join(timeout)`` gives its StormResult."""
        if not isinstance(spec, StormSpec):
            raise ScenarioError(f"storm takes a StormSpec, got {type(spec).__name__}")
        node_id = spec.to if spec.to is not None else self.default_worker()
        index = self._owner.call(lambda: self.core.indexes.get(node_id, 0))
        return self._storms.launch(spec, node_id, index)

    def storm_send(self, identity: bytes, frames: list[bytes], message: Message | None, tag: str) -> bool:
        """A storm's send: straight to the socket on the owner thread, bypassing faults (StormTarget)."""
        return self._owner.call(lambda: self._send_frames(identity, frames, message, tag))

    def storm_send_many(self, identity: bytes, batch: list[tuple[list[bytes], Message | None]], tag: str) -> int:
        """A storm's batch: sent in order on the owner thread, each recorded; returns how many the socket took."""

        def send_all() -> int:
            send = self._send_frames
            return sum(send(identity, frames, message, tag) for frames, message in batch)

        return self._owner.call(send_all)

    # -- sending (any thread) ----------------------------------------------------------------

    def send(self, message_type: str, data: Any = None, to: str | None = None) -> bool:
        """Send a message to worker ``to`` (default: the latest registered).

        Returns False if the socket refused it; a message delayed, held or dropped by a fault counts
        as sent (its fate is in the trace).
        """
        node_id = to if to is not None else self.default_worker()
        return self.send_message(Message(message_type, data, node_id))

    def send_message(self, message: Message) -> bool:
        """Send ``message`` to the worker its node_id names, as ``send`` does."""
        frame = encode(message)
        return self._owner.call(lambda: self._faults.dispatch((message.node_id.encode(), [frame], message, "")))

    def broadcast(self, message_type: str, data: Any = None, to: list[str] | None = None) -> int:
        """Send one message to each worker in ``to`` (default: every registered worker) in one turn of the socket
        thread, as the real master sends a spawn or a quit to all its workers at once. Returns how many the socket
        took; each send and each refusal is recorded as by ``send``."""

        def send_all() -> int:
            dispatch = self._faults.dispatch
            sent = 0
            for node in list(self.core.workers) if to is None else to:
                message = Message(message_type, data, node)
                sent += dispatch((node.encode(), [encode(message)], message, ""))
            return sent

        return self._owner.call(send_all, timeout=60.0)

    def send_raw(self, frames: list[bytes], to: str | bytes | None = None, tag: str = "") -> bool:
        """Send arbitrary payload frames (malformed on purpose, perhaps) to a worker identity."""
        identity = to.encode() if isinstance(to, str) else to if to is not None else self.default_worker().encode()
        return self._owner.call(lambda: self._faults.dispatch((identity, list(frames), None, tag)))

    def send_malformed(self, kind: str, to: str | None = None, size: int = 0) -> bool:
        """Send ``harness.faults.malformed_frames(kind, ...)``; the SEND record's note is ``malformed:<kind>``."""
        node_id = to if to is not None else self.default_worker()
        return self.send_raw(malformed_frames(kind, node_id, size=size), node_id, tag=f"malformed:{kind}")

    def spawn(
        self,
        user_classes_count: dict[str, int],
        *,
        to: str | None = None,
        stop_timeout: float = 0.0,
        host: str | None = None,
        timestamp: float | None = None,
    ) -> bool:
        """Send a complete ``spawn`` as the profile's master builds it (absolute per-class counts, a fresh timestamp)."""
        return self.send("spawn", self._spawn_data(user_classes_count, stop_timeout, host, timestamp), to)

    def spawn_all(
        self,
        user_classes_count: dict[str, int],
        *,
        to: list[str] | None = None,
        stop_timeout: float = 0.0,
        host: str | None = None,
        timestamp: float | None = None,
    ) -> int:
        """``spawn`` to each worker in ``to`` (default: every registered one) at once (``broadcast``)."""
        return self.broadcast("spawn", self._spawn_data(user_classes_count, stop_timeout, host, timestamp), to)

    def _spawn_data(
        self, user_classes_count: dict[str, int], stop_timeout: float, host: str | None, timestamp: float | None
    ) -> dict[str, Any]:
        return self.profile.spawn_payload(
            user_classes_count,
            timestamp=self.clock.wall() if timestamp is None else timestamp,
            host=host,
            stop_timeout=stop_timeout,
        )

    # -- state (any thread) ------------------------------------------------------------------

    def workers(self) -> dict[str, WorkerView]:
        """A snapshot of the registered workers, as the real master would see them."""
        return self._views.workers()

    def worker_ids(self) -> list[str]:
        """The registered workers' ids, oldest registration first (cheap: no copy of their views)."""
        return self._views.worker_ids()

    def default_worker(self) -> str:
        """The worker a message goes to when none is named: the latest registered, else the latest heard."""
        return self._views.default_worker()

    def set_auto(self, *, ack: bool | None = None, heartbeat: bool | None = None, liveness: bool | None = None) -> None:
        """Switch the automatic behaviours on or off."""

        def apply() -> None:
            if ack is not None:
                self.core.auto_ack = ack
            if heartbeat is not None:
                self.core.auto_heartbeat = heartbeat
            if liveness is not None:
                self.core.track_liveness = liveness

        self._owner.call(apply)

    def note(self, text: str) -> None:
        """Append a NOTE record; any thread."""
        self._loop.note(text)

    def output_line(self, t: float, text: str) -> None:
        """Record a line the worker printed, read at ``t`` (trace clock); any thread (the output drain's)."""
        self.trace.add(t, Kind.OUTPUT, note=text)

    # -- scripting: waiting and expecting (see fakemaster.waits) -----------------------------

    def wait_for(
        self, message_type: str | None = None, within: float = 5.0, where: Predicate | None = None, after: int | None = None
    ) -> TraceRecord | None:
        """The next received message of ``message_type`` matching ``where`` after the cursor, or None."""
        return self._waits.wait_for(message_type, within, where, after)

    def expect(
        self, message_type: str, within: float = 5.0, where: Predicate | None = None, description: str = ""
    ) -> TraceRecord:
        """Like ``wait_for`` but a miss raises ExpectationFailed naming what was seen instead."""
        return self._waits.expect(message_type, within, where, description)

    def expect_connection(self, within: float) -> TraceRecord:
        """A new connection after the master's last send (see ``TraceWaits.expect_connection``)."""
        return self._waits.expect_connection(within)

    def expect_none(self, message_type: str, within: float, where: Predicate | None = None) -> None:
        """Raise ExpectationFailed if a matching message arrives within ``within`` seconds."""
        self._waits.expect_none(message_type, within, where)

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on the master's clock (nothing if negative)."""
        self.clock.sleep(max(0.0, seconds))
