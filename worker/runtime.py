"""The reference worker's I/O adapter: one thread owns the DEALER socket.

That thread waits on the socket and a wake-up pipe with the session's next
deadline as timeout, feeds the sans-IO ``WorkerSession``, and carries out its
effects. User threads and the user controller never touch the socket: they
``post`` closures to it. A heartbeat therefore never waits behind a user, a
stats report or a blocking receive.

More things keep heartbeats on time under load (``bench/heartbeat_under_load.py``):

* a flood from the master is read in bounded turns: ``_on_readable`` hands the
  loop back as soon as a deadline is due, so a due heartbeat waits for at most
  ``DEADLINE_CHECK_EVERY`` messages, not for a whole receive batch;
* the heartbeat carries the CPU and memory figures measured after the previous
  one (as Locust's, which come from a monitor): the ``/proc`` reads behind
  them release and retake the GIL several times, and each retake can wait
  behind every CPU-bound user thread, so they happen after the send;
* the GIL switch interval is ``GIL_SWITCH_INTERVAL`` instead of CPython's 5 ms:
  with N user threads burning CPU, the socket thread waits about N switch
  intervals to get the GIL back after each wake-up;
* (in the session) Locust's rule that more than 70 new log lines in one
  interval stop the ``logs`` messages: a flood's warnings are not resent,
  ever longer, every log interval.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import zmq

from harness.errors import MalformedFrame
from harness.owner import RECV_BATCH, SocketOwner
from harness.protocol.codec import decode, encode
from harness.protocol.messages import Message, MessageType
from worker.session import EXIT_MASTER_LOST, ApplyUsers, Effect, Exit, Log, Reconnect, Send, StopUsers, WorkerConfig
from worker.runtime_setup import (
    EXIT_SOFTWARE,
    ProcessUsage,
    finish,
    log,
    log_effect,
    master_endpoint,
    new_dealer,
    new_session,
)
from worker.stats import RequestStats
from worker.users import TaskProfile, UserPool

FLUSH_ON_EXIT_MS = 500  # how long the final quit may take to leave the socket at exit
# Longer than the master needs to notice a closed connection on loopback (well under a millisecond), and within
# libzmq's own reconnect interval (100 ms): heartbeats due meanwhile leave at most this late.
RECONNECT_DELAY = 0.05
# Every this many messages of a receive batch, the socket thread checks whether a deadline (a heartbeat) is due.
DEADLINE_CHECK_EVERY = 16
# CPython hands the GIL to a waiting thread every 5 ms by default; a thread woken up (the socket thread, when a
# heartbeat is due) then competes with every CPU-bound user thread for it, one switch interval per hand-over.
GIL_SWITCH_INTERVAL = 0.0005


class WorkerRuntime:
    """Runs one reference worker against ``tcp://host:port`` until it exits."""

    def __init__(self, host: str, port: int, config: WorkerConfig, profile: TaskProfile) -> None:
        self.endpoint = master_endpoint(host, port)
        self.config = config
        self.stats = RequestStats(time.time())
        self._process = ProcessUsage()
        self._usage = self._process.measure()  # (cpu %, rss) for the next heartbeat; measured again after each one
        self.session = new_session(config, self.stats, self._resources)
        self.owner = SocketOwner(
            self._connect,
            self._on_readable,
            self._next_deadline,
            self._on_deadline,
            time.monotonic,
            name="worker-dealer",
            close_linger_ms=FLUSH_ON_EXIT_MS,
        )
        self.pool = UserPool(profile, self.stats, self.owner.post, self._user_error)
        self.exit_code: int | None = None
        self.exit_reason = ""
        self._connect_at: float | None = None  # a new socket waits this long before it connects (see RECONNECT_DELAY)
        self._held: list[Send] = []  # sent while the new socket waits to connect; they leave on connect
        self._retired: tuple[zmq.Socket[bytes], float] | None = None  # DEFECT overlapping-reconnect: (old socket, close at)

    def _resources(self) -> tuple[float, int]:
        return self._usage

    def _socket(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        return new_dealer(context, self.config.node_id, keepalive=True)

    def _connect(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        sock = self._socket(context)
        sock.connect(self.endpoint)
        return sock

    def _reconnect(self) -> None:
        """A new socket with the same identity, connected only once the master has seen the old one go.

        A ROUTER without ROUTER_HANDOVER (Locust's) rejects a connection whose identity is still attached, and
        the rejected DEALER stays silent for good. So the new socket waits RECONNECT_DELAY before it connects;
        what is sent meanwhile is held and leaves on connect (before connect() a DEALER has no pipe to queue into).
        """
        self.owner.replace_socket(self._socket)
        self._connect_at = time.monotonic() + RECONNECT_DELAY

    def _overlapping_reconnect(self, overlap: float) -> None:
        """DEFECT overlapping-reconnect: the new socket connects at once; the old one closes ``overlap`` s later."""
        if self._retired is not None:  # a reconnect during the last one's overlap: its old socket goes now
            self.owner.close_retired(self._retired[0])
        old = self.owner.replace_socket(self._connect, keep_old=True)
        assert old is not None
        self._retired = (old, time.monotonic() + overlap)

    def _next_deadline(self) -> float | None:
        deadline = self.session.next_deadline()
        for extra in (self._connect_at, self._retired[1] if self._retired else None):
            if extra is not None and (deadline is None or extra < deadline):
                deadline = extra
        return deadline

    # -- owner thread ------------------------------------------------------------------------------

    def _on_readable(self, sock: zmq.Socket[bytes]) -> None:
        # As Locust's worker (``zmqrpc.BaseSocket.recv``): every frame is a message of its own. (Telling the frames
        # of one message apart costs a getsockopt or a zero-copy Frame per receive, three times the receive: the
        # difference between draining a flood at half the raw rate or not.) A frame equal to the previous one with
        # a nil payload (a flood of one message) reuses its decoded Message: messages are immutable.
        last_frame: bytes | None = None
        last_message: Message | None = None
        receive, monotonic, recv, nowait = self.session.receive, time.monotonic, sock.recv, zmq.NOBLOCK
        for n in range(1, RECV_BATCH + 1):
            if n % DEADLINE_CHECK_EVERY == 0 and self._deadline_due():
                return  # the loop serves the deadline first, then polls (and reads) again
            try:
                frame = recv(nowait)
            except zmq.Again:
                return
            now = monotonic()
            if frame == last_frame and last_message is not None:
                message = last_message
            else:
                try:
                    message = decode(frame)
                except MalformedFrame as exc:
                    self._apply(self.session.malformed(str(exc), exc.rule, now))
                    continue
                last_frame, last_message = (frame, message) if message.data is None else (None, None)
            effects = receive(message, now)
            if effects:
                self._apply(effects)
                if self.exit_code is not None or self.owner.socket is not sock:
                    return  # exiting, or a reconnect replaced (and closed) this socket

    def _deadline_due(self) -> bool:
        deadline = self._next_deadline()
        return deadline is not None and time.monotonic() >= deadline

    def _on_deadline(self) -> None:
        now = time.monotonic()
        if self._retired is not None and now >= self._retired[1]:
            self.owner.close_retired(self._retired[0])
            self._retired = None
        if self._connect_at is not None and now >= self._connect_at and self.owner.socket is not None:
            self._connect_at = None
            self.owner.socket.connect(self.endpoint)
            held, self._held = self._held, []
            for effect in held:
                self._send(effect)
        effects = self.session.tick(now)
        self._apply(effects)
        if any(isinstance(e, Send) and e.message.type == MessageType.HEARTBEAT for e in effects):
            self._usage = self._process.measure()  # after the heartbeat has gone: these reads may wait for the GIL

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect)
            elif isinstance(effect, ApplyUsers):
                self.pool.apply(effect.counts, self._on_applied(effect.spawn_id))
            elif isinstance(effect, StopUsers):
                self.pool.stop_all(effect.timeout, lambda: self._apply(self.session.users_stopped(time.monotonic())))
            elif isinstance(effect, Reconnect):
                if effect.overlap:
                    self._overlapping_reconnect(effect.overlap)
                else:
                    self._reconnect()
                log.info("Reset connection to master")
            elif isinstance(effect, Log):
                log_effect(effect)
            elif isinstance(effect, Exit):
                self.exit_code, self.exit_reason = effect.code, effect.reason
                if effect.code == EXIT_MASTER_LOST:
                    self.owner.close_linger_ms = 0  # nobody is there to receive the quit: do not wait for it
                self.pool.close()
                self.owner.request_stop()

    def _on_applied(self, spawn_id: int) -> Callable[[dict[str, int]], None]:
        """The callback the user pool posts back when spawn ``spawn_id`` has been applied."""
        return lambda actual: self._apply(self.session.users_applied(spawn_id, actual))

    def _send(self, effect: Send) -> None:
        if self._connect_at is not None:
            # A socket that has not called connect() yet has no pipe to queue into (a send would fail at once):
            # hold the message and send it on connect, in order.
            self._held.append(effect)
            return
        sock = self.owner.socket
        assert sock is not None
        try:
            sock.send(encode(effect.message), zmq.NOBLOCK)
        except zmq.Again:
            log.warning("Send queue full (master unreachable?): dropped %s", effect.message.type)

    # -- any thread --------------------------------------------------------------------------------

    def _user_error(self, text: str, tb: str) -> None:
        self.owner.post(lambda: self._apply(self.session.user_error(text, tb)))

    def request_shutdown(self, reason: str) -> None:
        self.owner.post(lambda: self._apply(self.session.shutdown(reason)))

    def run(self) -> int:
        """Connect, run until the session exits, and return the exit code."""
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        self.owner.start()
        self.owner.post(lambda: self._apply(self.session.start(time.monotonic())))
        while not self.owner.join(0.2):  # short joins keep the main thread responsive to signals
            pass
        if self.owner.failure is not None:
            log.critical("socket thread failed: %r", self.owner.failure)
            return EXIT_SOFTWARE
        return finish(self.exit_code, self.exit_reason, self.stats)
