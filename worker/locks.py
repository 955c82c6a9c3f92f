"""A first-come, first-served lock, so that the lock-based defects behave the same on every run.

``threading.Lock`` is not fair: a thread that releases it and at once takes it
again (a receive loop) usually wins over a thread that was already waiting, so
how long a waiter starves would be luck. ``FairLock`` hands the lock to the
longest waiter on release; a lock-based worker's delays then follow from its
design alone.
"""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A non-reentrant lock granted in arrival order."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (forever if None); True if taken."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as we gave up
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter, or free it."""
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unlocked FairLock")
            if self._waiters:
                self._waiters.popleft().set()  # stays held: ownership passes directly
            else:
                self._held = False

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
