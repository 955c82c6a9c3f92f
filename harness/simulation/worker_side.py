"""The worker half of a simulation: ``worker.session.WorkerSession`` driven as ``worker.runtime`` drives it, its
effects carried out in memory (frames onto the link, users that start, stop and make requests, reconnects, exits)."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from harness.errors import MalformedFrame
from harness.protocol.codec import decode, encode
from harness.protocol.messages import Message
from harness.simulation.shared import LATENCY, NODE, WALL0, Shared
from worker.session import ApplyUsers, Effect, Exit, Log, Reconnect, Send, StopUsers, WorkerConfig, WorkerSession
from worker.stats import RequestStats

DECODE_CACHE_SIZE = 256
_DECODED: dict[bytes, Message] = {}  # frames with a nil payload, decoded once (as worker.runtime reuses them)
RECONNECT_DELAY = 0.05  # as worker.runtime: the new socket connects this long after a reconnect
EXIT_CRASH = 70  # the reference runtime's exit code when its socket thread dies


class WorkerSide(Shared):
    """The reference worker's session and its users, in memory."""

    defects: frozenset[str]
    user_delay: float  # intervals a spawn or a stop takes to take effect
    request_period: float  # intervals between one user's requests
    session: WorkerSession
    stats: RequestStats
    _users: int
    _users_since: float

    def _init_worker(self) -> None:
        self.session = WorkerSession(
            WorkerConfig(NODE, self.timing, defects=frozenset(self.defects)),
            report=self._report,
            resources=lambda: (1.0, 50_000_000),
        )
        self.stats = RequestStats(WALL0)
        self._users = 0
        self._users_since = 0.0
        self._worker_online_at = 0.0
        self.identity_lost_at = None
        self.reconnects_done = 0
        self.sigterm_at = None

    def _worker(self, step: Callable[..., list[Effect]], *args: Any) -> None:
        """Run one session input, ``step(*args)``, and carry out its effects, as ``worker.runtime`` does; a raise is a
        crash."""
        if self.exit_code is not None:
            return
        try:
            effects = step(*args)
        except Exception:
            self.output.append((self.now, traceback.format_exc()))
            self.exit_code = EXIT_CRASH
            return
        for effect in effects:
            self._effect(effect)

    def _effect(self, effect: Effect) -> None:
        if isinstance(effect, Send):
            if self.identity_lost_at is not None:
                return  # on a connection the master's ROUTER ignores
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
            if effect.overlap:  # connected at once, the old connection still attached: the ROUTER ignores the new one
                self.identity_lost_at = self.now + effect.overlap
                return
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
            self._worker(self.session.users_applied, spawn_id, counts)

    def _users_stopped(self) -> None:
        if self.exit_code is None:
            self._set_users(0)
            self._worker(self.session.users_stopped, self.now)

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
        for frame in frames:  # as worker.runtime (and Locust's worker): every frame is a message of its own
            if self.exit_code is not None:
                return
            message = _DECODED.get(frame)
            if message is not None:  # a frame seen before with a nil payload (the master's heartbeats): immutable
                self._worker(self.session.receive, message, self.now)
                continue
            try:
                message = decode(frame)
            except MalformedFrame as exc:
                text, rule = str(exc), exc.rule
                self._worker(self.session.malformed, text, rule, self.now)
                continue
            if message.data is None and len(_DECODED) < DECODE_CACHE_SIZE:
                _DECODED[frame] = message
            self._worker(self.session.receive, message, self.now)

    def sigterm(self) -> None:
        """The worker's OS asks it to stop."""
        self.sigterm_at = self.now
        self._worker(self.session.shutdown, "SIGTERM")
