"""A multi-threaded runtime with the socket designs behind the threading defects (``--defect`` only).

Many third-party Locust workers run a receiver thread, a heartbeat thread, a
stats thread and user threads that all use the one DEALER socket. This runtime
re-creates three such designs around the reference worker's sans-IO
``WorkerSession`` (guarded by a state lock; the socket is the defect):

* ``shared-socket``: no coordination at all. The receiver blocks in recv();
  the user threads send a ``user_request`` message after every request; the
  heartbeat thread sends, then waits for the master's reply; and it and the
  stats thread wait by trying a non-blocking read every half millisecond.
  ZeroMQ sockets are not thread-safe: while the master is quiet the readers
  rarely meet (an empty socket), but a storm of messages makes them collide
  inside libzmq, which asserts, crashes, or loses a wake-up so that nothing is
  received any more (then the heartbeat thread, waiting for a reply, sends only
  every 8 intervals). Under CPython's GIL concurrent *sends* alone break only at
  ~10^5 messages/s, hence the readers.
* ``lock-across-recv``: one lock around every socket call, and the receiver
  holds it while blocked in recv() with no timeout: nothing can be sent until
  the master sends something, so after the ack the heartbeats stop.
* ``slow-recv-timeout``: the same lock, held by the receiver through a receive
  timeout of one heartbeat interval: a heartbeat waits out the receive in
  progress, up to one interval late (gaps of ~2 intervals).

The heartbeat thread has the drifting cadence of many Java workers: it waits a
full interval after each heartbeat, samples the CPU over a tenth of an
interval, then sends. Some threads may be stuck inside the socket at the end,
so the process ends with ``os._exit`` (see ``worker.__main__``). The reference
worker is ``worker.runtime``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable

import zmq

from harness.errors import MalformedFrame
from harness.protocol.codec import decode, encode
from harness.protocol.messages import Message, MessageType
from worker.locks import FairLock
from worker.session import EXIT_OK, ApplyUsers, Effect, Exit, Log, Reconnect, Send, StopUsers, WorkerConfig
from worker.runtime_setup import ProcessUsage, finish, log, log_effect, master_endpoint, new_dealer, new_session
from worker.stats import RequestStats
from worker.users import TaskProfile, UserPool

DESIGNS = ("shared-socket", "lock-across-recv", "slow-recv-timeout")
USER_REQUEST = "user_request"  # the custom message user threads send after every request (shared-socket)
CPU_SAMPLE = 0.1  # the heartbeat thread samples the CPU over this fraction of an interval
REPLY_POLL = 0.0005  # shared-socket: how often the heartbeat and stats threads try to read the socket
SWITCH_INTERVAL = 5e-5  # shared-socket: seconds between the interpreter's thread switches (CPython's default: 5 ms)
REPLY_WAIT = 8  # shared-socket: how many intervals the heartbeat thread waits for the master's reply
TICK_POLL = 0.02  # the stats thread's longest sleep, so that it notices new deadlines
SHUTDOWN_GRACE = 1.0  # how long a signal waits for the quit to get through a busy socket
FLUSH_ON_EXIT = 0.3  # sends are queued in libzmq: give the last ones this long to leave


class _ReportingStats(RequestStats):
    """Request stats that also call ``on_request`` on the user thread after every request."""

    def __init__(self, now: float, on_request: Callable[[str, float], None]) -> None:
        super().__init__(now)
        self._on_request = on_request

    def log_request(self, method: str, name: str, response_time: float, content_length: int, now: float) -> None:
        super().log_request(method, name, response_time, content_length, now)
        self._on_request(name, response_time)


def _call(fn: Callable[[], None]) -> None:
    """The user pool's ``post``: run its callback at once, on the controller thread."""
    fn()


def _without_heartbeats(effects: list[Effect]) -> list[Effect]:
    """Heartbeats are the heartbeat thread's: drop the ones the session schedules itself."""
    return [e for e in effects if not (isinstance(e, Send) and e.message.type == MessageType.HEARTBEAT)]


class ThreadedRuntime:
    """Runs one defective worker (``design`` in ``DESIGNS``) against ``tcp://host:port`` until it exits."""

    def __init__(self, host: str, port: int, config: WorkerConfig, profile: TaskProfile, design: str) -> None:
        if design not in DESIGNS:
            raise ValueError(f"unknown threaded design {design!r}; expected one of {DESIGNS}")
        self.endpoint = master_endpoint(host, port)
        self.config = config
        self.design = design
        self.interval = config.timing.heartbeat_interval
        self.stats = (
            _ReportingStats(time.time(), self._report_request) if design == "shared-socket" else RequestStats(time.time())
        )
        self._process = ProcessUsage()
        self._cpu = self._process.cpu_percent()
        self.session = new_session(config, self.stats, self._resources)
        self._state = threading.RLock()  # guards the session; the socket's discipline is the defect
        self._socket_lock: contextlib.AbstractContextManager[object] = (
            contextlib.nullcontext()  # DEFECT shared-socket: nothing coordinates the threads that use the socket.
            if design == "shared-socket"
            else FairLock()  # DEFECT lock-across-recv, slow-recv-timeout: one lock, the receiver's recv() included.
        )
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._connect()
        self._done = threading.Event()
        self._shutdown_at: float | None = None
        self.pool = UserPool(profile, self.stats, _call, self._user_error)  # its callbacks lock for themselves
        self.exit_code: int | None = None
        self.exit_reason = ""

    def _resources(self) -> tuple[float, int]:
        return self._cpu, self._process.rss()

    def _connect(self) -> zmq.Socket[bytes]:
        # DEFECT slow-recv-timeout: each recv() waits up to a heartbeat interval, holding the socket lock.
        timeout = max(1, round(self.interval * 1000)) if self.design == "slow-recv-timeout" else None
        sock = new_dealer(self._context, self.config.node_id, keepalive=False, linger_ms=0, receive_timeout_ms=timeout)
        sock.connect(self.endpoint)
        return sock

    # -- threads -----------------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        """The receiver thread: recv() under the socket discipline, then handle the message."""
        while not self._done.is_set():
            # DEFECT lock-across-recv: the lock is held while recv() blocks with no timeout, so nothing else can
            # be sent until the master sends something. (slow-recv-timeout: held up to an interval; shared-socket: no lock.)
            with self._socket_lock:
                try:
                    frames = self._socket.recv_multipart()
                except zmq.Again:  # the receive timeout expired (slow-recv-timeout)
                    continue
                except zmq.ZMQError as exc:
                    if not self._done.is_set():
                        log.error("Receive failed, the receiver thread ends: %s", exc)
                    return
            self._handle(frames)

    def _handle(self, frames: list[bytes]) -> None:
        now = time.monotonic()
        if len(frames) != 1:
            text = f"{len(frames)} frames in one message (expected 1)"
            self._apply(self._session(lambda: self.session.malformed(text, "frames", now)))
            return
        try:
            message = decode(frames[0])
        except MalformedFrame as exc:
            problem, rule = str(exc), exc.rule
            self._apply(self._session(lambda: self.session.malformed(problem, rule, now)))
            return
        self._apply(self._session(lambda: self.session.receive(message, now)))

    def _heartbeat_loop(self) -> None:
        """The heartbeat thread: wait an interval, sample the CPU, send (the cadence drifts by design)."""
        while not self._wait(self.interval):
            self._cpu = self._process.cpu_percent(self.interval * CPU_SAMPLE)
            with self._state:
                if not self.session.heartbeating:
                    continue
                beat = self.session.heartbeat()
            sent_at = time.monotonic()
            self._send(beat.message)
            if self.design == "shared-socket" and self._await_reply(sent_at):
                return

    def _await_reply(self, sent_at: float) -> bool:
        """Wait until a master heartbeat arrives after ``sent_at`` (at most REPLY_WAIT intervals); True once done."""
        # DEFECT shared-socket: request/response heartbeats: the next heartbeat waits for the master's reply,
        # which this thread reads from the socket itself (see _wait) while the receiver thread reads it too.
        give_up = sent_at + REPLY_WAIT * self.interval
        while time.monotonic() < give_up:
            with self._state:
                if (self.session.last_master_heartbeat or 0.0) >= sent_at:
                    return self._done.is_set()
            if self._wait(self.interval * CPU_SAMPLE):
                return True
        return self._done.is_set()

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` (shared-socket: reading the socket meanwhile); True once the worker is done."""
        if self.design != "shared-socket":
            return self._done.wait(seconds)
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._done.is_set():
            # DEFECT shared-socket: the heartbeat and stats threads wait by reading the socket (for the master's
            # replies) and handle what arrives, alongside the receiver thread: three readers of one socket.
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                self._done.wait(REPLY_POLL)
                continue
            except zmq.ZMQError as exc:
                log.warning("%s thread: receive failed: %s", threading.current_thread().name, exc)
                return self._done.wait(max(0.0, end - time.monotonic()))
            self._handle(frames)
        return self._done.is_set()

    def _tick_loop(self) -> None:
        """The stats thread: stats, logs and every other deadline of the session except heartbeats."""
        while True:
            with self._state:
                deadline = self.session.next_deadline()
            wait = TICK_POLL if deadline is None else min(TICK_POLL, max(0.0, deadline - time.monotonic()))
            if self._wait(wait):
                return
            with self._state:
                now = time.monotonic()
                deadline = self.session.next_deadline()
                effects = self.session.tick(now) if deadline is not None and now >= deadline else []
            self._apply(_without_heartbeats(effects))

    # -- effects -----------------------------------------------------------------------------------

    def _session(self, call: Callable[[], list[Effect]]) -> list[Effect]:
        """Call the session under the state lock; its effects are applied after, with the lock released."""
        with self._state:
            return call()

    def _apply(self, effects: list[Effect]) -> None:
        """Carry out effects on this thread, never holding the state lock (sends may wait for the socket)."""
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect.message)
            elif isinstance(effect, ApplyUsers):
                self.pool.apply(effect.counts, self._on_applied(effect.spawn_id))
            elif isinstance(effect, StopUsers):
                self.pool.stop_all(effect.timeout, self._on_stopped)
            elif isinstance(effect, Reconnect):  # (never with overlap: worker.defects refuses that combination)
                with self._socket_lock:
                    old, self._socket = self._socket, self._connect()
                    old.close(linger=0)
                log.info("Reset connection to master")
            elif isinstance(effect, Log):
                log_effect(effect)
            elif isinstance(effect, Exit):
                self.exit_code, self.exit_reason = effect.code, effect.reason
                self.pool.close()
                self._done.set()

    def _on_applied(self, spawn_id: int) -> Callable[[dict[str, int]], None]:
        return lambda actual: self._apply(self._session(lambda: self.session.users_applied(spawn_id, actual)))

    def _on_stopped(self) -> None:
        self._apply(self._session(lambda: self.session.users_stopped(time.monotonic())))

    def _send(self, message: Message) -> None:
        """Send from whichever thread this is, under the socket discipline."""
        frame = encode(message)
        with self._socket_lock:
            try:
                self._socket.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                log.warning("Send queue full (master unreachable?): dropped %s", message.type)
            except zmq.ZMQError as exc:
                log.warning("Send of %s failed: %s", message.type, exc)

    # -- user threads ------------------------------------------------------------------------------

    def _report_request(self, name: str, response_time: float) -> None:
        # DEFECT shared-socket: every user thread sends on the socket itself, after every request.
        self._send(Message(USER_REQUEST, {"name": name, "response_time": response_time}, self.config.node_id))

    def _user_error(self, text: str, tb: str) -> None:
        self._apply(self._session(lambda: self.session.user_error(text, tb)))

    # -- main thread -------------------------------------------------------------------------------

    def request_shutdown(self, reason: str) -> None:
        """A signal: tell the master on another thread (the socket may be stuck); exit after a grace period."""
        if self._shutdown_at is None:
            self._shutdown_at = time.monotonic()
            threading.Thread(target=self._shutdown, args=(reason,), name="shutdown", daemon=True).start()

    def _shutdown(self, reason: str) -> None:
        self._apply(self._session(lambda: self.session.shutdown(reason)))

    def run(self) -> int:
        """Connect, run until the session exits (or a signal's grace period ends), and return the exit code."""
        self._apply(_without_heartbeats(self._session(lambda: self.session.start(time.monotonic()))))
        threads = {"receiver": self._receive_loop, "heartbeat": self._heartbeat_loop, "stats": self._tick_loop}
        if self.design == "shared-socket":
            # DEFECT shared-socket: a master-liveness watchdog blocks in recv() too, waiting for master heartbeats.
            threads["watchdog"] = self._receive_loop
            # DEFECT shared-socket: the threads of a JVM or Go worker run truly in parallel; CPython's GIL hands over
            # only every 5 ms, which hides most collisions. Handing over every 50 us comes closer to that parallelism.
            sys.setswitchinterval(SWITCH_INTERVAL)
        for name, target in threads.items():
            threading.Thread(target=target, name=name, daemon=True).start()
        while not self._done.wait(0.2):
            if self._shutdown_at is not None and time.monotonic() - self._shutdown_at > SHUTDOWN_GRACE:
                log.warning("Exiting without telling the master: the socket is busy")
                self.exit_code, self.exit_reason = EXIT_OK, "signal (socket busy)"
                break
        time.sleep(FLUSH_ON_EXIT)
        return finish(self.exit_code, self.exit_reason, self.stats)
