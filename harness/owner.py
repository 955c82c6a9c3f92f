"""A socket owner: one thread, the only one that ever touches its ZeroMQ socket.

Other threads hand it work as closures on a queue and wake it through a pipe
(an in-process wake-up any thread may write to). It waits on the socket, the
pipe and any watched helper sockets (a socket monitor, say) with a deadline
given by ``next_deadline`` (the adapter's earliest timer). Helper sockets are
watched through one ``select.epoll`` on their ``ZMQ_FD``s, so a turn costs the
same with a thousand of them as with one (a proxy has one per worker); as
``ZMQ_FD`` is edge-like, a helper socket sent on from the owner thread must be
reported with ``touched``, and every helper socket is re-checked once a second.
Reading the main socket can be paused (``reading``), and the main socket may be
closed and reopened, all on the owner thread.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import resource
import select
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
WATCH_SWEEP_S = 1.0  # every watched socket's ZMQ_EVENTS is read this often, whatever its ZMQ_FD said (a safety net)
SWEEP_BATCH = 32  # watched sockets the sweep checks per turn (all at once: ~10 ms with a thousand, a stall per second)
SWEEP_STEP_MS = 5  # while a sweep is under way the loop waits at most this long, so that it goes on


def raise_open_file_limit(needed: int) -> None:
    """Raise this process's open-file limit towards ``needed`` (up to the hard limit): a socket per peer adds up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))


def readable(sock: zmq.Socket[bytes]) -> bool:
    """Input is queued on ``sock`` (reading ZMQ_EVENTS also runs its pending commands and clears its ZMQ_FD)."""
    events = sock.getsockopt(zmq.EVENTS)
    assert isinstance(events, int)
    return bool(events & zmq.POLLIN)


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
        max_sockets: int | None = None,
    ) -> None:
        """``max_sockets``: the context's socket limit, when an adapter needs more than libzmq's default (1023)."""
        self.close_linger_ms = close_linger_ms
        self._max_sockets = max_sockets
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
        self._watch_fds: dict[zmq.Socket[bytes], int] = {}  # watched socket -> its ZMQ_FD, registered in _epoll
        self._fd_socks: dict[int, zmq.Socket[bytes]] = {}
        self._hot: set[zmq.Socket[bytes]] = set()  # watched sockets to read this turn without waiting for ZMQ_FD
        self._epoll = select.epoll()
        self._next_sweep = 0.0
        self._sweeping: list[zmq.Socket[bytes]] = []  # watched sockets the sweep under way has still to check
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
        for fd in (self._wake_r, self._wake_w):  # once: a number closed twice may be another file's by then
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        if self._wake_w < 0:
            return  # stopped
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or we are shutting down

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        if self._max_sockets is not None:
            context.setsockopt(zmq.MAX_SOCKETS, self._max_sockets)
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
            self._epoll.close()
            if self.socket is not None:
                self.socket.close(linger=self.close_linger_ms)
            context.destroy(linger=0)  # any socket an adapter made and had not closed yet (a failure mid-way): term never hangs

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
        if sock not in self._watched:
            fd = sock.getsockopt(zmq.FD)
            assert isinstance(fd, int)
            self._epoll.register(fd, select.EPOLLIN)
            self._watch_fds[sock] = fd
            self._fd_socks[fd] = sock
        self._watched[sock] = on_readable
        self._hot.add(sock)  # input may be queued already: ZMQ_FD tells of changes, not of what is there

    def unwatch(self, sock: zmq.Socket[bytes]) -> None:
        """Stop polling a helper socket (owner thread only, before closing it); closing it is then the caller's job."""
        self.check_owner("unwatch")
        if self._watched.pop(sock, None) is not None:
            fd = self._watch_fds.pop(sock)
            self._fd_socks.pop(fd, None)
            self._hot.discard(sock)
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # closed already: the kernel dropped it from the epoll

    def touched(self, sock: zmq.Socket[bytes]) -> None:
        """A watched socket was sent on (owner thread only): the send may have taken the ZMQ_FD edge that input
        arrived with, so the socket is read this turn whatever its ZMQ_FD says."""
        if sock in self._watched:
            self._hot.add(sock)

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        if self.reading and self.socket is not None:
            poller.register(self.socket, zmq.POLLIN)
        poller.register(self._epoll.fileno(), zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        return poller

    def _read_watched(self, epoll_ready: bool) -> None:
        """Run the handler of every watched socket with input: those whose ZMQ_FD fired, those touched or left
        with input by the last turn, and all of them once a second (a few at a time, so that a thousand of them
        cost no stall)."""
        if epoll_ready:
            for fd, _ in self._epoll.poll(0):
                sock = self._fd_socks.get(fd)
                if sock is not None:
                    self._hot.add(sock)
        now = self._monotonic()
        if now >= self._next_sweep and not self._sweeping:
            self._next_sweep = now + WATCH_SWEEP_S
            self._sweeping = list(self._watched)
        if self._sweeping:
            self._hot.update(self._sweeping[-SWEEP_BATCH:])
            del self._sweeping[-SWEEP_BATCH:]
        hot, self._hot = self._hot, set()
        for sock in hot:
            handler = self._watched.get(sock)
            if handler is None or not readable(sock):
                continue  # reading ZMQ_EVENTS also clears its ZMQ_FD
            handler(sock)
            if sock in self._watched and readable(sock):
                self._hot.add(sock)  # the handler's batch left input behind: next turn, without waiting

    def _loop(self) -> None:
        polled = (self.socket, self.reading)
        poller = self._poller()
        epoll_fd = self._epoll.fileno()
        backlog = False  # calls left queued by the last turn (bounded per turn)
        while not self._stopping:
            if (self.socket, self.reading) != polled:  # socket replaced, reading paused
                polled = (self.socket, self.reading)
                poller = self._poller()
            deadline = self._next_deadline()
            timeout_ms = None if deadline is None else max(0, int((deadline - self._monotonic()) * 1000) + 1)
            paused = not self.reading and self.socket is not None
            if paused:
                timeout_ms = PAUSED_COMMANDS_MS if timeout_ms is None else min(timeout_ms, PAUSED_COMMANDS_MS)
            if self._sweeping:
                timeout_ms = SWEEP_STEP_MS if timeout_ms is None else min(timeout_ms, SWEEP_STEP_MS)
            if backlog or self._hot:
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
            if epoll_fd in ready or self._hot or self._sweeping or (self._watched and self._monotonic() >= self._next_sweep):
                self._read_watched(epoll_fd in ready)
            deadline = self._next_deadline()
            if deadline is not None and self._monotonic() >= deadline:
                self._on_deadline()
