"""A socket owner: one thread, the only one that ever touches its ZeroMQ socket.

Other threads hand it work as closures on a queue and wake it through a pipe
(an in-process wake-up any thread may write to). It waits on the socket, the
pipe and any watched helper sockets (a socket monitor, say) with a deadline
given by ``next_deadline`` (the adapter's earliest timer). Reading the main
socket can be paused (``reading``), and the main socket may be closed and
reopened, all on the owner thread.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import traceback
from collections.abc import Callable
from typing import TypeVar

import zmq

from harness.errors import TransportError

T = TypeVar("T")

RECV_BATCH = 512  # messages read per wake-up before other work gets a turn
# While reading is paused, libzmq's own commands (peers attaching and leaving) still run this often. Left
# pending, a ROUTER (without ROUTER_HANDOVER, as Locust's) sees a reconnecting peer before the old connection's
# end, rejects it for good, and the pause would have cut the worker off: the harness's fault, not the worker's.
PAUSED_COMMANDS_MS = 5


class SocketOwner:
    """Runs ``on_readable``/``on_deadline`` callbacks and queued calls on one thread that owns a socket."""

    def __init__(
        self,
        make_socket: Callable[[zmq.Context[zmq.Socket[bytes]]], zmq.Socket[bytes]],
        on_readable: Callable[[zmq.Socket[bytes]], None],
        next_deadline: Callable[[], float | None],
        on_deadline: Callable[[], None],
        monotonic: Callable[[], float],
        name: str = "socket-owner",
        close_linger_ms: int = 0,
    ) -> None:
        self.close_linger_ms = close_linger_ms
        self._make_socket = make_socket
        self._on_readable = on_readable
        self._next_deadline = next_deadline
        self._on_deadline = on_deadline
        self._monotonic = monotonic
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.socket: zmq.Socket[bytes] | None = None
        self.failure: BaseException | None = None
        self.reading = True  # poll the main socket for input; set on the owner thread (e.g. from a call())
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._watched: dict[zmq.Socket[bytes], Callable[[zmq.Socket[bytes]], None]] = {}
        self._watch_version = 0
        self._retired: list[zmq.Socket[bytes]] = []  # replaced but kept open (replace_socket(keep_old=True))

    @property
    def on_owner_thread(self) -> bool:
        """True when called from the owner thread itself."""
        return threading.get_ident() == self._thread.ident  # ident is None until the thread starts

    def check_owner(self, what: str) -> None:
        """Raise TransportError unless called on the owner thread (a guard for socket code)."""
        if threading.get_ident() != self._thread.ident:
            raise TransportError(
                "socket.owner",
                f"{what} on the socket thread {self._thread.name!r}",
                f"thread {threading.current_thread().name!r}",
            )

    def start(self, timeout: float = 5.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TransportError("socket.start", f"the socket thread ready within {timeout} s", "no sign of life")
        if self._startup_error is not None:
            raise TransportError("socket.start", "a bound socket", repr(self._startup_error)) from self._startup_error

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the owner thread and return its result (any thread may call)."""
        if threading.current_thread() is self._thread:
            return fn()
        if not self._thread.is_alive():
            raise TransportError("socket.call", "a running socket thread", f"the socket thread has ended ({self.failure!r})")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed back to the caller
                    future.set_exception(exc)

        self._calls.put(run)
        self._wake()
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransportError("socket.call", f"the socket thread to answer within {timeout} s", "no answer") from None

    def post(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` to run on the owner thread without waiting for it (any thread may call)."""
        self._calls.put(fn)
        self._wake()

    def request_stop(self) -> None:
        """Ask the loop to end after the current turn (safe from the owner thread itself)."""
        self._stopping = True
        self._wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the owner thread to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._stopping = True
            self._wake()
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise TransportError("socket.stop", f"the socket thread to end within {timeout} s", "still running")
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or we are shutting down

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._context = context
        try:
            self.socket = self._make_socket(context)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            context.term()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException as exc:  # kept for callers: a dead owner is a harness failure, never silence
            self.failure = exc
            traceback.print_exc()
        finally:
            for sock in [*self._watched, *self._retired]:
                sock.close(linger=0)
            self._watched.clear()
            self._retired.clear()
            if self.socket is not None:
                self.socket.close(linger=self.close_linger_ms)
            context.term()

    def replace_socket(
        self, make: Callable[[zmq.Context[zmq.Socket[bytes]]], zmq.Socket[bytes]], *, keep_old: bool = False
    ) -> zmq.Socket[bytes] | None:
        """Close the socket and open a new one (owner thread only).

        With ``keep_old`` the old socket stays open, unread, and is returned: the caller closes it with
        ``close_retired`` (the owner closes any left at exit).
        """
        assert self.socket is not None
        old, context = self.socket, self.socket.context
        self.socket = make(context)
        if not keep_old:
            old.close(linger=0)
            return None
        self._retired.append(old)
        return old

    def close_retired(self, sock: zmq.Socket[bytes]) -> None:
        """Close a socket kept by ``replace_socket(keep_old=True)`` (owner thread only; no-op if already closed)."""
        self.check_owner("close_retired")
        if sock in self._retired:
            self._retired.remove(sock)
            sock.close(linger=0)

    def close_socket(self) -> None:
        """Close the main socket and leave none (owner thread only); reading it stops until ``open_socket``."""
        self.check_owner("close_socket")
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    def open_socket(self, make: Callable[[zmq.Context[zmq.Socket[bytes]]], zmq.Socket[bytes]]) -> None:
        """Open a new main socket after ``close_socket`` (owner thread only); ``make``'s errors propagate."""
        self.check_owner("open_socket")
        assert self._context is not None and self.socket is None
        self.socket = make(self._context)

    def watch(self, sock: zmq.Socket[bytes], on_readable: Callable[[zmq.Socket[bytes]], None]) -> None:
        """Poll a helper socket too (owner thread only); the owner closes it at the end unless unwatched."""
        self.check_owner("watch")
        self._watched[sock] = on_readable
        self._watch_version += 1

    def unwatch(self, sock: zmq.Socket[bytes]) -> None:
        """Stop polling a helper socket (owner thread only); closing it is then the caller's job."""
        self.check_owner("unwatch")
        if self._watched.pop(sock, None) is not None:
            self._watch_version += 1

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        if self.reading and self.socket is not None:
            poller.register(self.socket, zmq.POLLIN)
        for sock in self._watched:
            poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        return poller

    def _loop(self) -> None:
        polled = (self.socket, self.reading, self._watch_version)
        poller = self._poller()
        backlog = False  # calls left queued by the last turn (bounded per turn)
        while not self._stopping:
            if (self.socket, self.reading, self._watch_version) != polled:  # socket replaced, reading paused, watch changed
                polled = (self.socket, self.reading, self._watch_version)
                poller = self._poller()
            deadline = self._next_deadline()
            timeout_ms = None if deadline is None else max(0, int((deadline - self._monotonic()) * 1000) + 1)
            paused = not self.reading and self.socket is not None
            if paused:
                timeout_ms = PAUSED_COMMANDS_MS if timeout_ms is None else min(timeout_ms, PAUSED_COMMANDS_MS)
            if backlog:
                timeout_ms = 0
            ready = dict(poller.poll(timeout_ms))
            if paused and self.socket is not None:
                self.socket.getsockopt(zmq.EVENTS)  # runs libzmq's pending commands; reads no message
            if self._wake_r in ready or backlog:
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                # Only the calls queued now: senders that keep the queue full must not starve reading and timers.
                for _ in range(self._calls.qsize()):
                    self._calls.get_nowait()()
                backlog = not self._calls.empty()  # their wake-ups may be consumed already: poll without waiting
            if self.socket is not None and self.socket in ready and self.reading:
                self._on_readable(self.socket)
            for sock, handler in list(self._watched.items()):
                if sock in ready and sock in self._watched:
                    handler(sock)
            deadline = self._next_deadline()
            if deadline is not None and self._monotonic() >= deadline:
                self._on_deadline()
