"""Simulated users: one thread each, running a small built-in task that records requests.

A controller thread starts and stops users, so the socket thread never waits
for thread creation or joins. Results go back to the socket thread through
``post`` (a queue plus a wake-up); users never touch the socket.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from worker.stats import RequestStats

Post = Callable[[Callable[[], None]], None]


@dataclass(frozen=True)
class TaskProfile:
    """What each user does: wait, then one simulated request of ``task_time`` seconds."""

    task_time: float = 0.05
    wait_time: float = 0.1
    method: str = "GET"
    fail_every: int = 0  # every Nth request of a user fails (0: never)
    raise_every: int = 0  # every Nth request of a user raises inside the task (0: never)
    busy: bool = False  # burn CPU for task_time instead of sleeping


class _User(threading.Thread):
    def __init__(self, class_name: str, profile: TaskProfile, stats: RequestStats, on_error: Callable[[str, str], None]) -> None:
        super().__init__(name=f"user-{class_name}", daemon=True)
        self.class_name = class_name
        self.profile = profile
        self.stats = stats
        self.on_error = on_error
        self.stopping = threading.Event()

    def run(self) -> None:
        name = f"/{self.class_name}"
        done = 0
        p = self.profile
        while not self.stopping.wait(p.wait_time):
            start = time.perf_counter()
            if p.busy:
                while time.perf_counter() - start < p.task_time:
                    pass
            elif self.stopping.wait(p.task_time):
                return  # interrupted mid-request: not recorded, as a killed Locust greenlet
            done += 1
            elapsed_ms = (time.perf_counter() - start) * 1000
            now = time.time()
            if p.raise_every and done % p.raise_every == 0:
                try:
                    raise RuntimeError(f"task of {self.class_name} failed on purpose (request {done})")
                except RuntimeError as exc:
                    self.on_error(str(exc), "".join(traceback.format_tb(exc.__traceback__)))
            if p.fail_every and done % p.fail_every == 0:
                self.stats.log_error(p.method, name, f"Failure('request {done} failed on purpose')", now)
            self.stats.log_request(p.method, name, elapsed_ms, 42, now)


class UserPool:
    """Owns the user threads; applies absolute per-class counts asynchronously."""

    def __init__(self, profile: TaskProfile, stats: RequestStats, post: Post, on_error: Callable[[str, str], None]) -> None:
        self.profile = profile
        self.stats = stats
        self.post = post
        self.on_error = on_error
        self._users: dict[str, list[_User]] = {}
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="user-controller", daemon=True)
        self._thread.start()

    def apply(self, counts: dict[str, int], done: Callable[[dict[str, int]], None]) -> None:
        """Make exactly ``counts`` users run; ``done(actual_counts)`` is posted to the socket thread."""
        self._jobs.put(lambda: self._apply(counts, done))

    def stop_all(self, timeout: float, done: Callable[[], None]) -> None:
        """Stop every user (waiting at most ``timeout`` s for each to finish its request), then post ``done``."""
        self._jobs.put(lambda: self._stop_all(timeout, done))

    def close(self) -> None:
        for users in self._users.values():
            for user in users:
                user.stopping.set()
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def _apply(self, counts: dict[str, int], done: Callable[[dict[str, int]], None]) -> None:
        for name, target in counts.items():
            users = self._users.setdefault(name, [])
            while len(users) > target:
                users.pop().stopping.set()
            while len(users) < target:
                user = _User(name, self.profile, self.stats, self.on_error)
                user.start()
                users.append(user)
        actual = {name: len(users) for name, users in self._users.items()}
        self.post(lambda: done(actual))

    def _stop_all(self, timeout: float, done: Callable[[], None]) -> None:
        users = [u for group in self._users.values() for u in group]
        for user in users:
            user.stopping.set()
        deadline = time.monotonic() + max(timeout, 0.0) + 1.0
        for user in users:
            user.join(max(0.0, deadline - time.monotonic()))
        self._users = {name: [] for name in self._users}
        self.post(done)
